//! Parsing list query parameters into typed filters, collecting every bad parameter.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::domain::FieldErrors;
use crate::domain::validation::{self, Lines};
use crate::store::PageRequest;

pub const DEFAULT_LIMIT: u64 = 20;
pub const MAX_LIMIT: u64 = 100;
pub const MAX_OFFSET: u64 = 100_000;

pub struct Params<'a> {
    values: &'a HashMap<String, String>,
    pub errors: FieldErrors,
}

impl<'a> Params<'a> {
    pub fn new(values: &'a HashMap<String, String>) -> Self {
        Params { values, errors: FieldErrors::new() }
    }

    /// The parameter's value, if given and free of control and invisible characters (those are
    /// refused here for every parameter, before any is parsed or reaches the database).
    fn raw(&mut self, name: &str) -> Option<&'a str> {
        let value = self.values.get(name).map(String::as_str).filter(|v| !v.is_empty())?;
        match validation::check_characters(value, Lines::One) {
            Ok(()) => Some(value),
            Err((rule, message)) => {
                self.errors.add(name, rule, message);
                None
            }
        }
    }

    pub fn page(&mut self) -> PageRequest {
        let limit = self.number("limit", DEFAULT_LIMIT, 1, MAX_LIMIT);
        let offset = self.number("offset", 0, 0, MAX_OFFSET);
        PageRequest { limit, offset }
    }

    fn number(&mut self, name: &str, default: u64, min: u64, max: u64) -> u64 {
        match self.raw(name).map(str::parse::<u64>) {
            None => default,
            Some(Ok(n)) if (min..=max).contains(&n) => n,
            Some(_) => {
                self.errors.add(name, "range", format!("must be a whole number from {min} to {max}"));
                default
            }
        }
    }

    pub fn text(&mut self, name: &str, max_chars: usize) -> Option<String> {
        let raw = self.raw(name)?;
        match validation::optional_line(Some(raw), max_chars) {
            Ok(value) => value,
            Err((rule, message)) => {
                self.errors.add(name, rule, message);
                None
            }
        }
    }

    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.raw(name)? {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.errors.add(name, "boolean", "must be true or false");
                None
            }
        }
    }

    /// A UUID, as the id type the caller names (`params.uuid::<PatientId>("patient_id")`).
    pub fn uuid<Id: FromStr>(&mut self, name: &str) -> Option<Id> {
        let raw = self.raw(name)?;
        raw.parse().map_err(|_| self.errors.add(name, "uuid", "must be a UUID")).ok()
    }

    pub fn time(&mut self, name: &str) -> Option<DateTime<Utc>> {
        let raw = self.raw(name)?;
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| self.errors.add(name, "rfc3339", "must be an RFC 3339 timestamp such as 2030-01-31T09:00:00Z"))
            .ok()
    }

    pub fn date(&mut self, name: &str) -> Option<chrono::NaiveDate> {
        use chrono::Datelike;
        let raw = self.raw(name)?;
        chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .filter(|date| (1900..=9999).contains(&date.year()))
            .or_else(|| {
                self.errors.add(name, "date", "must be a date from 1900-01-01 to 9999-12-31, such as 2030-01-31");
                None
            })
    }

    /// A value from a closed set, parsed by the domain's own parser.
    pub fn one_of<T>(&mut self, name: &str, parse: fn(&str) -> Result<T, (&'static str, String)>) -> Option<T> {
        let raw = self.raw(name)?;
        parse(raw).map_err(|(rule, message)| self.errors.add(name, rule, message)).ok()
    }

    pub fn finish(self) -> Result<(), FieldErrors> {
        if self.errors.is_empty() { Ok(()) } else { Err(self.errors) }
    }
}
