//! The API contract's statement of each input rule: the OpenAPI schemas of request fields, built
//! from the declarations the parsers apply — `validation`'s character tables and the limits the
//! value types and drafts check — so that what the document promises and what the server accepts
//! cannot drift apart. A client generated from the document knows what to send; a request the
//! document calls valid is accepted, and one it calls invalid is refused.
//!
//! Two rules are beyond a schema and are stated in words instead: a zero-width (non-)joiner is
//! accepted between two non-ASCII characters (the patterns refuse it everywhere), and a text whose
//! normal form C is longer than what was sent (a handful of characters decompose) is bounded as
//! stored as well as as sent.

use std::ops::RangeInclusive;
use std::sync::LazyLock;

use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};

use super::validation::{CharRanges, Lines, WHITE_SPACE, forbidden};

/// Whether a text field may be left blank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blank {
    /// When given, it must hold something besides white space; `null` is refused.
    Refused,
    /// `null`, an empty or an all-white-space text mean "none".
    MeansNone,
}

fn string_type(blank: Blank) -> SchemaType {
    match blank {
        Blank::Refused => SchemaType::Type(Type::String),
        Blank::MeansNone => SchemaType::Array(vec![Type::String, Type::Null]),
    }
}

/// A character class of `ranges` (negated when `except`), written so that ECMA-262, Python and Rust
/// regular expressions read it alike: printable ASCII as itself, the rest of the Basic Multilingual
/// Plane as `\uXXXX` (which all three know, and which keeps control characters out of the document,
/// where YAML readers refuse them), and characters beyond it as themselves (the three disagree on
/// how to escape those).
fn class(ranges: &[(char, char)], except: bool) -> String {
    let mut class = String::from(if except { "[^" } else { "[" });
    for &(low, high) in ranges {
        push_literal(&mut class, low);
        if high != low {
            class.push('-');
            push_literal(&mut class, high);
        }
    }
    class.push(']');
    class
}

fn push_literal(class: &mut String, c: char) {
    match c {
        '\\' | ']' | '[' | '^' | '-' => {
            class.push('\\');
            class.push(c);
        }
        ' '..='~' => class.push(c),
        '\u{0}'..='\u{FFFF}' => class.push_str(&format!("\\u{:04X}", c as u32)),
        _ => class.push(c),
    }
}

/// The whole-text pattern of a value that is trimmed before it is checked: `core` with any white
/// space around it, or (where a blank means none) white space alone.
fn trimmed(core: &str, blank: Blank) -> String {
    let space = class(WHITE_SPACE, false);
    match blank {
        Blank::Refused => format!("^{space}*{core}{space}*$"),
        Blank::MeansNone => format!("^{space}*(?:{core})?{space}*$"),
    }
}

/// The pattern of a trimmed text: a core that starts and ends with a visible character. `inner` is
/// the class of the core's characters; `edge` that of its first and last.
fn trimmed_pattern(inner: &str, edge: &str, blank: Blank) -> String {
    trimmed(&format!("{edge}(?:{inner}*{edge})?"), blank)
}

fn with_white_space(ranges: &[(char, char)]) -> Vec<(char, char)> {
    let mut all = ranges.to_vec();
    all.extend_from_slice(WHITE_SPACE);
    all
}

/// A text of at most `max_chars` characters (as sent; white space around it is trimmed), on one
/// line or many, without control or invisible formatting characters.
pub fn text(max_chars: usize, lines: Lines, blank: Blank) -> ObjectBuilder {
    let forbidden = forbidden(lines);
    let pattern = trimmed_pattern(&class(&forbidden, true), &class(&with_white_space(&forbidden), true), blank);
    let description = format!(
        "{}at most {max_chars} characters; white space around it is trimmed; no control or invisible \
         formatting characters{}",
        if lines == Lines::One { "one line, " } else { "" },
        if blank == Blank::MeansNone { "; null or blank means none" } else { "" },
    );
    ObjectBuilder::new()
        .schema_type(string_type(blank))
        .max_length(Some(max_chars))
        .pattern(Some(pattern))
        .description(Some(description))
}

/// A text trimmed before it is checked whose visible characters all come from `allowed`.
pub fn restricted_text(max_chars: usize, allowed: CharRanges, blank: Blank) -> ObjectBuilder {
    let class = class(allowed, false);
    ObjectBuilder::new()
        .schema_type(string_type(blank))
        .max_length(Some(max_chars))
        .pattern(Some(trimmed_pattern(&class, &class, blank)))
}

/// Whether `text` is of JSON Schema's `email` format (RFC 5321), checked by the same library
/// OpenAPI validators use, so that the server and the document's `format` agree.
pub fn is_email_format(text: &str) -> bool {
    static EMAIL: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
        jsonschema::options()
            .should_validate_formats(true)
            .build(&serde_json::json!({"type": "string", "format": "email"}))
            .expect("a schema of one known format compiles")
    });
    EMAIL.is_valid(&serde_json::Value::String(text.to_owned()))
}

/// An e-mail address as `Email::parse` accepts it: of the `email` format, and besides one `@`
/// with something on both sides, a dot inside the domain, no white space or forbidden character.
/// Where a blank means none, the blank text (and `null`) is an alternative of its own: it is no
/// `email`.
pub fn email(max_chars: usize, blank: Blank) -> Schema {
    let mut refused = with_white_space(&forbidden(Lines::One));
    refused.push(('@', '@'));
    let part = class(&refused, true);
    refused.push(('.', '.'));
    let label_edge = class(&refused, true);
    let space = class(WHITE_SPACE, false);
    let address = format!("{part}+@{label_edge}{part}*\\.{part}*{label_edge}");
    let email = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(max_chars))
        .pattern(Some(format!("^{address}$")))
        .examples(["ada@example.org"]);
    match blank {
        Blank::Refused => email.into(),
        Blank::MeansNone => {
            let none = ObjectBuilder::new()
                .schema_type(string_type(blank))
                .max_length(Some(max_chars))
                .pattern(Some(format!("^{space}*$")));
            AnyOfBuilder::new()
                .item(email)
                .item(none)
                .description(Some("an e-mail address; null or blank means none"))
                .into()
        }
    }
}

/// A phone number as `Phone::parse` accepts it: an optional leading `+`, then a number of digits
/// in `digits` among the `separators`.
pub fn phone(max_chars: usize, separators: &str, digits: RangeInclusive<usize>, blank: Blank) -> ObjectBuilder {
    let separators: Vec<(char, char)> = separators.chars().map(|c| (c, c)).collect();
    let separator = class(&separators, false);
    let (fewest, most) = digits.into_inner();
    let number = format!("\\+?{separator}*(?:[0-9]{separator}*){{{fewest},{most}}}");
    ObjectBuilder::new()
        .schema_type(string_type(blank))
        .max_length(Some(max_chars))
        .pattern(Some(trimmed(&number, blank)))
}

/// A calendar date, `YYYY-MM-DD` exactly.
pub fn date() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
}

/// An instant, RFC 3339 (`2030-01-15T09:30:00Z`).
pub fn date_time() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
}

/// A record's id.
pub fn uuid() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
}

/// A text taken as it is (no trimming, any characters), of `min_chars` to `max_chars` characters.
pub fn verbatim(min_chars: usize, max_chars: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .min_length(Some(min_chars))
        .max_length(Some(max_chars))
}

/// A text taken as it is (not trimmed) of `min_chars` to `max_chars` characters, without control
/// or invisible characters (line breaks as `lines` allows).
pub fn text_as_sent(min_chars: usize, max_chars: usize, lines: Lines) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .min_length(Some(min_chars))
        .max_length(Some(max_chars))
        .pattern(Some(format!("^{}*$", class(&forbidden(lines), true))))
}

/// An absolute `http://` or `https://` URL with a host (white space around it is trimmed), as
/// `config::check_webhook_url` accepts it.
pub fn url(max_chars: usize) -> ObjectBuilder {
    let space = class(WHITE_SPACE, false);
    let refused = with_white_space(&forbidden(Lines::One));
    let mut host_start = refused.clone();
    host_start.push(('/', '/'));
    let pattern = format!("^{space}*https?://{}{}*{space}*$", class(&host_start, true), class(&refused, true));
    ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).max_length(Some(max_chars)).pattern(Some(pattern))
}

/// A word of `length` characters, each from `allowed`, taken as it is (no trimming).
pub fn word(length: RangeInclusive<usize>, allowed: CharRanges) -> ObjectBuilder {
    let (fewest, most) = length.into_inner();
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .min_length(Some(fewest))
        .max_length(Some(most))
        .pattern(Some(format!("^{}*$", class(allowed, false))))
}

/// One of a fixed set of words.
pub fn one_of(values: &[&'static str]) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).enum_values(Some(values.iter().copied()))
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use utoipa::openapi::schema::{Object, Schema};

    use super::*;
    use crate::domain::practitioner::{licence_number_schema, parse_licence_number};
    use crate::domain::validation::{JOINERS, optional_text};
    use crate::domain::{Email, PersonName, Phone};

    /// Whether `text` is valid by the schema's string rules, as a validator of the document judges.
    fn fits(schema: &Object, text: &str) -> bool {
        let length = text.chars().count();
        let pattern = regex::Regex::new(schema.pattern.as_deref().unwrap()).unwrap();
        pattern.is_match(text)
            && schema.max_length.is_none_or(|max| length <= max)
            && schema.min_length.is_none_or(|min| length >= min)
    }

    fn object(schema: impl Into<Schema>) -> Object {
        match schema.into() {
            Schema::Object(object) => object,
            _ => panic!("not an object schema"),
        }
    }

    /// Texts made of the characters the rules are about: white space, line breaks, control and
    /// invisible characters, the punctuation of addresses and numbers, letters and digits.
    fn texts() -> impl Strategy<Value = String> {
        let interesting = prop_oneof![
            Just(' '),
            Just('\t'),
            Just('\n'),
            Just('\u{85}'),
            Just('\u{A0}'),
            Just('\u{2028}'),
            Just('\u{0}'),
            Just('\u{7F}'),
            Just('\u{200B}'),
            Just('\u{202E}'),
            Just('\u{FEFF}'),
            Just('@'),
            Just('.'),
            Just('+'),
            Just('-'),
            Just('('),
            Just('/'),
            Just('é'),
            Just('ß'),
        ];
        let common = prop_oneof![proptest::char::range('a', 'e'), proptest::char::range('0', '9')];
        proptest::collection::vec(prop_oneof![2 => interesting, 3 => common, 1 => any::<char>()], 0..14)
            .prop_map(|chars| chars.into_iter().collect::<String>())
            // A joiner between two non-ASCII characters is the one rule the patterns leave to words.
            .prop_filter("no joiner", |text| !text.contains(JOINERS))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn a_name_fits_the_document_exactly_when_the_server_accepts_it(text in texts()) {
            prop_assert_eq!(fits(&PersonName::schema().build(), &text), PersonName::parse(&text).is_ok(), "{:?}", text);
        }

        #[test]
        fn a_free_text_fits_the_document_exactly_when_the_server_accepts_it(text in texts()) {
            let schema = text_schema_of_notes();
            prop_assert_eq!(fits(&schema, &text), optional_text(Some(&text), 10).is_ok(), "{:?}", text);
        }

        #[test]
        fn an_email_fits_the_document_exactly_when_the_server_accepts_it(text in texts()) {
            let schema = object(Email::schema(Blank::Refused));
            let fits = fits(&schema, &text) && is_email_format(&text);
            prop_assert_eq!(fits, Email::parse(&text).is_ok(), "{:?}", text);
        }

        #[test]
        fn a_phone_number_fits_the_document_exactly_when_the_server_accepts_it(text in texts()) {
            let schema = Phone::schema(Blank::Refused).build();
            prop_assert_eq!(fits(&schema, &text), Phone::parse(&text).is_ok(), "{:?}", text);
        }

        #[test]
        fn a_licence_number_fits_the_document_exactly_when_the_server_accepts_it(text in texts()) {
            let schema = licence_number_schema().build();
            prop_assert_eq!(fits(&schema, &text), parse_licence_number(&text).is_ok(), "{:?}", text);
        }
    }

    /// The closed sets' `NAMES` are their wire names: what `as_str` and `parse` use, the enums of
    /// the query parameters, and what serde writes (and so what their derived schemas list).
    #[test]
    fn every_closed_set_is_written_as_its_names() {
        fn agree<T: serde::Serialize + Copy>(all: &[T], names: &[&str], as_str: fn(T) -> &'static str) {
            assert_eq!(all.len(), names.len());
            for (value, name) in all.iter().zip(names) {
                assert_eq!(serde_json::to_value(value).unwrap(), *name);
                assert_eq!(as_str(*value), *name);
            }
        }
        use crate::domain::audit::AuditOutcome;
        use crate::domain::{AppointmentStatus, PractitionerRole, Sex};
        agree(&Sex::ALL, &Sex::NAMES, Sex::as_str);
        agree(&PractitionerRole::ALL, &PractitionerRole::NAMES, PractitionerRole::as_str);
        agree(&AppointmentStatus::ALL, &AppointmentStatus::NAMES, AppointmentStatus::as_str);
        agree(&AuditOutcome::ALL, &AuditOutcome::NAMES, AuditOutcome::as_str);
    }

    fn text_schema_of_notes() -> Object {
        text(10, Lines::Many, Blank::MeansNone).build()
    }
}
