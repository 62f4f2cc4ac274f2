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

/// A field that must be present in the input.
pub fn required(value: &Option<String>) -> RuleResult<&str> {
    value.as_deref().ok_or(("required", "is required".into()))
}

/// A field that may be absent or blank; when given it must pass `rule`.
pub fn optional(value: &Option<String>, rule: fn(&str) -> RuleResult<String>) -> RuleResult<Option<String>> {
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => rule(text).map(Some),
    }
}

/// Trims a required text and bounds its length in characters.
pub fn required_text(value: &str, max_chars: usize) -> RuleResult<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(("required", "must not be empty".into()));
    }
    bounded(trimmed, max_chars)
}

/// Trims an optional text; an empty string counts as absent.
pub fn optional_text(value: Option<&str>, max_chars: usize) -> RuleResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => bounded(text, max_chars).map(Some),
    }
}

fn bounded(text: &str, max_chars: usize) -> RuleResult<String> {
    if text.chars().count() > max_chars {
        return Err(("max_length", format!("must be at most {max_chars} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(("no_control_characters", "must not contain control characters".into()));
    }
    Ok(text.to_owned())
}

/// A deliberately permissive e-mail check: one `@`, something on both sides, a dot in the domain.
pub fn email(value: &str) -> RuleResult<String> {
    let text = bounded(value.trim(), 254)?;
    let valid = match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !text.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if valid { Ok(text) } else { Err(("email", "must be an e-mail address".into())) }
}

/// Phone numbers: digits with optional leading `+` and the usual separators, 5–20 digits.
pub fn phone(value: &str) -> RuleResult<String> {
    let text = value.trim();
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let allowed = text.char_indices().all(|(i, c)| c.is_ascii_digit() || " -().".contains(c) || (c == '+' && i == 0));
    if allowed && (5..=20).contains(&digits) {
        Ok(text.to_owned())
    } else {
        Err(("phone", "must be a phone number of 5 to 20 digits".into()))
    }
}

/// Deserializes a field that is present (possibly `null`) as `Some(value)`, so that with
/// `#[serde(default)]` "absent" and "null" can be told apart in partial updates.
pub fn present<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
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
    fn an_empty_optional_text_is_absent() {
        assert_eq!(optional_text(Some("  "), 5).unwrap(), None);
    }

    #[test]
    fn email_needs_a_local_part_and_a_dotted_domain() {
        assert!(email("a@b.org").is_ok());
        for bad in ["", "@b.org", "a@b", "a@.org", "a b@c.org", "a@b@c.org"] {
            assert!(email(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn phone_accepts_separators_and_a_leading_plus_only() {
        assert!(phone("+44 (20) 7946-0958").is_ok());
        assert!(phone("12+34567").is_err());
        assert!(phone("123").is_err());
    }
}
