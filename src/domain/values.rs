//! Parsed values: a person's name, an e-mail address, a phone number and a medical record number
//! exist only once they have passed their rules, so a field of one of these types is valid by
//! construction. On the wire and in the database they are plain strings (`serde(transparent)`).
//!
//! Names, e-mail addresses and phone numbers are PHI: their `Debug` prints a placeholder, so a
//! patient that reaches a `{:?}` (a panic message, a debug log) does not carry them with it.

use std::fmt;

use serde::Serialize;

use utoipa::openapi::schema::ObjectBuilder;

use super::contract::{self, Blank};
use super::validation::{Lines, RuleResult, bounded, required_line, within_length};

/// Longest accepted given or family name, in characters.
pub const NAME_MAX: usize = 100;

const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 5..=20;

/// Declares a string newtype with its accessors; `redacted` ones hide their value from `Debug`.
macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident, redacted) => {
        string_value!(@common $(#[$doc])* $name);
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, shown) => {
        string_value!(@common $(#[$doc])* $name);
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }
    };
    (@common $(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A value the store reads back: it was parsed before it was written, and the
            /// database's constraints kept it so.
            pub fn stored(value: String) -> Self {
                Self(value)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_value! {
    /// A given or family name: one line, trimmed, in NFC, 1 to 100 characters.
    PersonName, redacted
}

string_value! {
    /// An e-mail address, checked permissively: one `@`, something on both sides, a dot in the
    /// domain, no spaces, at most 254 characters.
    Email, redacted
}

string_value! {
    /// A phone number: digits with an optional leading `+` and the usual separators, 5–20 digits.
    Phone, redacted
}

string_value! {
    /// A medical record number: `HC` and ten digits, the last a Luhn check digit so that a
    /// mistyped MRN is caught before it reaches the database. Not PHI on its own: it identifies a
    /// record, and is what staff quote instead of a name.
    Mrn, shown
}

impl PersonName {
    pub fn parse(value: &str) -> RuleResult<Self> {
        required_line(value, NAME_MAX).map(Self)
    }

    /// What `parse` accepts, as the API contract states it.
    pub fn schema() -> ObjectBuilder {
        contract::text(NAME_MAX, Lines::One, Blank::Refused).examples(["Ada"])
    }
}

impl Email {
    pub const MAX_CHARS: usize = 254;

    /// Not trimmed: an address with white space around it is refused, as the `email` format does.
    pub fn parse(value: &str) -> RuleResult<Self> {
        within_length(value, Self::MAX_CHARS)?;
        let text = bounded(value, Self::MAX_CHARS, Lines::One)?;
        let valid = match text.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !text.chars().any(char::is_whitespace)
                    && contract::is_email_format(value)
            }
            None => false,
        };
        if valid { Ok(Self(text)) } else { Err(("email", "must be an e-mail address".into())) }
    }

    /// What `parse` accepts, as the API contract states it.
    pub fn schema(blank: Blank) -> utoipa::openapi::schema::Schema {
        contract::email(Self::MAX_CHARS, blank)
    }
}

impl Phone {
    pub const MAX_CHARS: usize = 40;

    pub fn parse(value: &str) -> RuleResult<Self> {
        within_length(value, Self::MAX_CHARS)?;
        let text = value.trim();
        let digits = text.chars().filter(char::is_ascii_digit).count();
        let allowed = text
            .char_indices()
            .all(|(i, c)| c.is_ascii_digit() || PHONE_SEPARATORS.contains(c) || (c == '+' && i == 0));
        if allowed && PHONE_DIGITS.contains(&digits) {
            Ok(Self(text.to_owned()))
        } else {
            Err(("phone", "must be a phone number of 5 to 20 digits".into()))
        }
    }

    /// What `parse` accepts, as the API contract states it.
    pub fn schema(blank: Blank) -> ObjectBuilder {
        contract::phone(Self::MAX_CHARS, PHONE_SEPARATORS, PHONE_DIGITS, blank).examples(["+44 20 7946 0958"])
    }
}

/// What may stand between a phone number's digits.
const PHONE_SEPARATORS: &str = " -().";

impl Mrn {
    /// A new number from nine random digits; the tenth is their Luhn check digit.
    pub fn generate(random: u64) -> Self {
        let body = format!("{:09}", random % 1_000_000_000);
        Self(format!("HC{body}{}", luhn_check_digit(&body)))
    }
}

fn luhn_check_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_mrns_carry_a_valid_luhn_digit() {
        let mrn = Mrn::generate(7_992_739_871);
        assert_eq!(mrn.as_str().len(), 12);
        // 992739871 -> check digit computed by hand with the Luhn algorithm.
        assert_eq!(&mrn.as_str()[..11], "HC992739871");
        assert_eq!(luhn_check_digit("7992739871"), 3);
    }

    #[test]
    fn a_name_is_trimmed_one_line_and_bounded() {
        assert_eq!(PersonName::parse("  Ada ").unwrap(), "Ada");
        assert_eq!(PersonName::parse("   ").unwrap_err().0, "required");
        assert_eq!(PersonName::parse("Ada\nLovelace").unwrap_err().0, "single_line");
        assert_eq!(PersonName::parse(&"a".repeat(NAME_MAX + 1)).unwrap_err().0, "max_length");
    }

    #[test]
    fn email_and_phone_keep_their_rules() {
        assert!(Email::parse("ada@example.org").is_ok());
        for wrong in ["", "ada", "@b.org", "ada@example", "a@b@c.org", "ada @example.org", "ada@.org"] {
            assert_eq!(Email::parse(wrong).unwrap_err().0, "email", "{wrong}");
        }
        assert_eq!(Phone::parse(" +44 20 7946 0958 ").unwrap(), "+44 20 7946 0958");
        assert!(Phone::parse("+44 (20) 7946-0958").is_ok());
        assert_eq!(Phone::parse("12-34").unwrap_err().0, "phone");
        assert_eq!(Phone::parse("1+2345678").unwrap_err().0, "phone");
    }

    #[test]
    fn phi_values_do_not_show_in_debug_output() {
        let name = PersonName::parse("Ada").unwrap();
        let email = Email::parse("ada@example.org").unwrap();
        let phone = Phone::parse("+44 20 7946 0958").unwrap();
        let shown = format!("{name:?} {email:?} {phone:?}");
        assert!(!shown.contains("Ada") && !shown.contains("example") && !shown.contains("7946"), "{shown}");
        assert_eq!(format!("{:?}", Mrn::generate(1)), "Mrn(\"HC0000000018\")");
    }
}
