//! Collecting every invalid field of an input, so a client learns all its mistakes in one round trip.

use serde::Serialize;

/// One invalid field: which one (a JSON pointer-like dotted name) and which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    /// Stable machine-readable rule name, e.g. `required`, `max_length`, `not_in_future`.
    pub rule: String,
    pub message: String,
}

/// An accumulator of field errors; `finish` turns it into `Ok(value)` or `Err(self)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: &str, rule: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, rule, message);
        errors
    }

    pub fn add(&mut self, field: &str, rule: &str, message: impl Into<String>) {
        self.0.push(FieldError { field: field.to_owned(), rule: rule.to_owned(), message: message.into() });
    }

    /// Records the error of a field parser and returns its value when it succeeded.
    pub fn check<T>(&mut self, field: &str, result: Result<T, (&'static str, String)>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err((rule, message)) => {
                self.add(field, rule, message);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, FieldErrors> {
        if self.is_empty() { Ok(value()) } else { Err(self) }
    }
}

/// A rule violation: (rule name, human message).
pub type RuleResult<T> = Result<T, (&'static str, String)>;

/// A text field that must be present in the input.
pub fn required(value: &Option<String>) -> RuleResult<&str> {
    present(value.as_deref())
}

/// A field of any type that must be present (and not `null`). Bodies keep required fields as
/// `Option`s and check them with this, so that every missing field is reported at once.
pub fn present<T>(value: Option<T>) -> RuleResult<T> {
    value.ok_or(("required", "is required".into()))
}

/// A field that may be absent or blank; when given it must pass `rule` (which trims it itself). Its
/// length as sent is bounded even when blank: that is what the contract's `maxLength` says.
pub fn optional<T>(value: &Option<String>, max_chars: usize, rule: fn(&str) -> RuleResult<T>) -> RuleResult<Option<T>> {
    match value.as_deref() {
        None => Ok(None),
        Some(text) => {
            within_length(text, max_chars)?;
            if text.trim().is_empty() { Ok(None) } else { rule(text).map(Some) }
        }
    }
}

/// A calendar date written `YYYY-MM-DD` exactly (the `date` format of the API contract: no white
/// space, no one-digit month or day, no sign).
pub fn iso_date(value: &str) -> Option<chrono::NaiveDate> {
    let exact_form = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").ok().filter(|_| exact_form)
}

/// Whether a text may span lines: free text (reasons, notes, addresses) may, a name may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    One,
    Many,
}

/// Trims a required single-line text (a name, a number) and bounds its length in characters.
pub fn required_line(value: &str, max_chars: usize) -> RuleResult<String> {
    required_trimmed(value, max_chars, Lines::One)
}

/// Trims a required free text and bounds its length in characters.
pub fn required_text(value: &str, max_chars: usize) -> RuleResult<String> {
    required_trimmed(value, max_chars, Lines::Many)
}

fn required_trimmed(value: &str, max_chars: usize, lines: Lines) -> RuleResult<String> {
    within_length(value, max_chars)?;
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(("required", "must not be empty".into()));
    }
    bounded(trimmed, max_chars, lines)
}

/// Trims an optional single-line text; an empty string counts as absent.
pub fn optional_line(value: Option<&str>, max_chars: usize) -> RuleResult<Option<String>> {
    optional_trimmed(value, max_chars, Lines::One)
}

/// Trims an optional free text; an empty string counts as absent.
pub fn optional_text(value: Option<&str>, max_chars: usize) -> RuleResult<Option<String>> {
    optional_trimmed(value, max_chars, Lines::Many)
}

fn optional_trimmed(value: Option<&str>, max_chars: usize, lines: Lines) -> RuleResult<Option<String>> {
    value.map_or(Ok(()), |value| within_length(value, max_chars))?;
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => bounded(text, max_chars, lines).map(Some),
    }
}

/// The rule every text HealthCore accepts keeps, in bodies and query strings alike: its characters
/// (see `check_characters`), in Unicode normalization form C, so that a name typed with a composed
/// `é` and one with `e` plus a combining accent are the same name, stored and searched alike.
pub fn clean(text: &str, lines: Lines) -> RuleResult<String> {
    check_characters(text, lines)?;
    Ok(unicode_normalization::UnicodeNormalization::nfc(text).collect())
}

/// Cleans a text and bounds it as stored (trimmed, in NFC: a few characters decompose, so this can
/// be longer than what was sent).
pub(super) fn bounded(text: &str, max_chars: usize, lines: Lines) -> RuleResult<String> {
    let text = clean(text, lines)?;
    within_length(&text, max_chars)?;
    Ok(text)
}

/// Bounds a text's length in characters. Texts are bounded as sent as well as as stored: the length
/// as sent is what the OpenAPI document's `maxLength` states.
pub fn within_length(text: &str, max_chars: usize) -> RuleResult<()> {
    if text.chars().count() > max_chars {
        return Err(("max_length", format!("must be at most {max_chars} characters")));
    }
    Ok(())
}

/// Refuses control characters (NUL included: PostgreSQL cannot store it in text, and SQLite would)
/// — line breaks and tabs only where `lines` allows them — and invisible format characters:
/// bidirectional overrides and isolates, zero-width spaces, the byte-order mark and the like, with
/// which a name can be made to display as another. A zero-width (non-)joiner between two non-ASCII
/// characters is kept: Persian and the Indic scripts need it, as do emoji sequences.
pub fn check_characters(text: &str, lines: Lines) -> RuleResult<()> {
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        // Printable ASCII is in none of the tables: most text never reaches them.
        if matches!(c, ' '..='~') {
            continue;
        }
        if in_ranges(c, LINE_BREAKS) {
            if lines == Lines::One {
                return Err(("single_line", "must be one line, without line breaks or tabs".into()));
            }
            continue;
        }
        if in_ranges(c, CONTROLS) {
            return Err(("no_control_characters", "must not contain control characters".into()));
        }
        if in_ranges(c, FORMAT_CHARACTERS) {
            let joins = |n: Option<&char>| n.is_some_and(|n| !n.is_ascii() && !n.is_whitespace());
            let joiner = JOINERS.contains(&c);
            if !(joiner && i > 0 && joins(chars.get(i - 1)) && joins(chars.get(i + 1))) {
                return Err(("no_invisible_characters", "must not contain invisible formatting characters".into()));
            }
        }
    }
    Ok(())
}

/// The tables below are the one declaration of which characters a text may hold: `check_characters`
/// applies them, and `contract` turns them into the patterns the OpenAPI document states.
pub type CharRanges = &'static [(char, char)];

/// Line breaks and tabs: allowed in free text, refused in a one-line text.
pub(super) const LINE_BREAKS: CharRanges = &[('\t', '\n'), ('\r', '\r'), ('\u{2028}', '\u{2029}')];

/// Unicode's control characters (general category Cc); the line breaks above are among them.
pub(super) const CONTROLS: CharRanges = &[('\u{0}', '\u{1F}'), ('\u{7F}', '\u{9F}')];

/// Unicode's format characters (general category Cf, as of Unicode 15.1).
pub(super) const FORMAT_CHARACTERS: CharRanges = &[
    ('\u{AD}', '\u{AD}'),
    ('\u{600}', '\u{605}'),
    ('\u{61C}', '\u{61C}'),
    ('\u{6DD}', '\u{6DD}'),
    ('\u{70F}', '\u{70F}'),
    ('\u{890}', '\u{891}'),
    ('\u{8E2}', '\u{8E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// The zero-width non-joiner and joiner: format characters kept between two non-ASCII characters.
pub(super) const JOINERS: [char; 2] = ['\u{200C}', '\u{200D}'];

/// Unicode's White_Space characters: what `str::trim` removes from both ends of a text.
pub(super) const WHITE_SPACE: CharRanges = &[
    ('\t', '\r'),
    (' ', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{A0}', '\u{A0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200A}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202F}', '\u{202F}'),
    ('\u{205F}', '\u{205F}'),
    ('\u{3000}', '\u{3000}'),
];

pub fn in_ranges(c: char, ranges: CharRanges) -> bool {
    ranges.iter().any(|&(low, high)| (low..=high).contains(&c))
}

/// The characters a text with these `lines` may not hold anywhere (a joiner aside, see
/// `check_characters`).
pub(super) fn forbidden(lines: Lines) -> Vec<(char, char)> {
    let mut ranges: Vec<(char, char)> = FORMAT_CHARACTERS.to_vec();
    match lines {
        Lines::One => {
            ranges.extend_from_slice(CONTROLS);
            ranges.extend_from_slice(LINE_BREAKS);
        }
        // The control characters but the line breaks and tabs.
        Lines::Many => ranges.extend_from_slice(&[
            ('\u{0}', '\u{8}'),
            ('\u{B}', '\u{C}'),
            ('\u{E}', '\u{1F}'),
            ('\u{7F}', '\u{9F}'),
        ]),
    }
    ranges
}

/// The key a name is searched by: case folded and in NFC, the same on both databases (SQLite's own
/// `lower()` and `LIKE` fold ASCII letters only, so `élo` never found Élodie there). Folding goes
/// through the upper case and back, as Unicode case folding does for the letters whose lower case
/// alone is not enough: the micro sign and the Greek mu are one letter, and so are `ß` and `SS`.
pub fn search_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = name.nfc().flat_map(char::to_uppercase).flat_map(char::to_lowercase).collect();
    folded.nfc().collect()
}

/// Deserializes a field that is present as `Some(value)`, so that with `#[serde(default)]` "absent"
/// and "null" can be told apart in partial updates: with `T = Option<String>` a `null` is
/// `Some(None)` (clear the field); with `T = String` it is refused (the field cannot be cleared).
pub fn given<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_required_text_is_rejected_as_required() {
        assert_eq!(required_text("   ", 10).unwrap_err().0, "required");
    }

    #[test]
    fn text_longer_than_the_limit_is_rejected() {
        assert_eq!(required_text("abcdef", 5).unwrap_err().0, "max_length");
        assert_eq!(required_text("abcde", 5).unwrap(), "abcde");
    }

    #[test]
    fn control_and_invisible_characters_are_refused_and_joiners_between_letters_kept() {
        assert_eq!(required_line("Ada\u{0}", 10).unwrap_err().0, "no_control_characters");
        assert_eq!(required_line("Ada\nLovelace", 20).unwrap_err().0, "single_line");
        assert!(required_text("first line\nsecond", 40).is_ok());
        for invisible in ["\u{202E}ecalevol", "Ada\u{200B}", "\u{FEFF}Ada", "A\u{2066}da", "Ad\u{00AD}a"] {
            assert_eq!(required_line(invisible, 20).unwrap_err().0, "no_invisible_characters", "{invisible:?}");
        }
        assert!(required_line("می\u{200C}خواهم", 20).is_ok(), "ZWNJ between Persian letters");
        assert_eq!(required_line("a\u{200D}b", 20).unwrap_err().0, "no_invisible_characters");
    }

    #[test]
    fn text_is_stored_in_normalization_form_c() {
        assert_eq!(required_line("E\u{301}lodie", 20).unwrap(), "\u{C9}lodie");
    }

    #[test]
    fn search_keys_fold_case_beyond_ascii() {
        for (name, prefix) in [("Élodie", "élo"), ("Łukasz", "łu"), ("Øyvind", "ØY"), ("Иванова", "иван")]
        {
            assert!(search_key(name).starts_with(&search_key(prefix)), "{name} / {prefix}");
        }
        assert_eq!(search_key("E\u{301}LODIE"), search_key("élodie"));
        assert_eq!(search_key("\u{B5}"), search_key("\u{3BC}"), "micro sign and mu");
        assert_eq!(search_key("Straße"), search_key("STRASSE"));
    }

    #[test]
    fn an_empty_optional_text_is_absent() {
        assert_eq!(optional_text(Some("  "), 5).unwrap(), None);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::patient::{PatientInput, PatientPatch, PatientPatchInput};
    use crate::domain::{PatientDraft, appointment};

    fn any_text() -> impl Strategy<Value = String> {
        // Any Unicode, with the characters that matter here made frequent.
        proptest::collection::vec(
            prop_oneof![
                any::<char>(),
                Just('\u{0}'),
                Just('\n'),
                Just('\u{202E}'),
                Just('\u{200B}'),
                Just('\u{200D}'),
                Just('\u{FEFF}'),
                Just('e'),
                Just('\u{301}'),
                Just('É'),
            ],
            0..40,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn accepted_text_holds_no_control_or_invisible_character(text in any_text()) {
            if let Ok(clean) = required_line(&text, 100) {
                let joiner = |c: char| matches!(c, '\u{200C}' | '\u{200D}');
                let hidden = clean.chars().any(|c| c.is_control() || (in_ranges(c, FORMAT_CHARACTERS) && !joiner(c)));
                prop_assert!(!hidden, "{:?}", clean);
                prop_assert!(!clean.is_empty() && clean.chars().count() <= 100);
                let again: String = unicode_normalization::UnicodeNormalization::nfc(clean.as_str()).collect();
                prop_assert_eq!(&again, &clean, "stored in NFC");
            }
        }

        #[test]
        fn search_keys_are_stable_and_case_blind(text in any_text()) {
            let key = search_key(&text);
            prop_assert_eq!(search_key(&key), key.clone());
            prop_assert_eq!(search_key(&text.to_uppercase()), search_key(&text.to_lowercase()));
        }

        #[test]
        fn patient_input_of_any_text_is_parsed_or_refused_field_by_field(
            given in proptest::option::of(any_text()),
            family in proptest::option::of(any_text()),
            birth in proptest::option::of(any_text()),
            sex in proptest::option::of(any_text()),
            email in proptest::option::of(any_text()),
            phone in proptest::option::of(any_text()),
            address in proptest::option::of(any_text()),
        ) {
            let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
            let input = PatientInput { given_name: given, family_name: family, birth_date: birth, sex, email, phone, address };
            match PatientDraft::parse(&input, today) {
                Ok(draft) => {
                    prop_assert!(draft.birth_date <= today);
                    prop_assert!(check_characters(draft.given_name.as_str(), Lines::One).is_ok());
                }
                Err(errors) => prop_assert!(errors.0.iter().all(|e| !e.field.is_empty() && !e.rule.is_empty())),
            }
            let patch = PatientPatchInput { given_name: input.given_name.clone(), ..Default::default() };
            let _ = PatientPatch::parse(&patch, today);
        }

        #[test]
        fn any_slot_is_a_valid_one_or_refused(start in -1_000_000_000_000i64..1_000_000_000_000, length in -100_000i64..100_000) {
            let now = chrono::DateTime::from_timestamp(1_796_000_000, 0).unwrap();
            let start = chrono::DateTime::from_timestamp(start, 0);
            let end = start.map(|s| s + chrono::Duration::seconds(length));
            let mut errors = FieldErrors::new();
            let window = appointment::BookingWindow { now, horizon_days: 730 };
            if let Some(slot) = appointment::parse_slot(&mut errors, start, end, window) {
                prop_assert!(errors.is_empty());
                prop_assert!(slot.start() > now && slot.end() > slot.start());
                prop_assert!(slot.start() <= now + chrono::Duration::days(window.horizon_days));
            } else {
                prop_assert!(!errors.is_empty());
            }
        }
    }
}
