//! Parsing list query parameters into typed filters, collecting every bad parameter.
//!
//! Each parameter is declared once, as a `Query` (name, rule, description): `Params` parses a
//! request's value by it, and `Query::parameter` states it in the OpenAPI document, so the two
//! cannot disagree. A route lists its parameters with `query_parameters!`.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, SchemaType, Type};

use crate::domain::FieldErrors;
use crate::domain::contract::{self, Blank};
use crate::domain::validation::{self, Lines};
use crate::store::PageRequest;

pub const DEFAULT_LIMIT: u64 = 20;
pub const MAX_LIMIT: u64 = 100;
pub const MAX_OFFSET: u64 = 100_000;

/// A query parameter, declared once for parsing and for the OpenAPI document.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub name: &'static str,
    pub rule: Rule,
    pub description: &'static str,
}

/// What a query parameter's value must be. Every value is one line without control or invisible
/// characters; an empty value counts as absent.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// A text of at most this many characters, trimmed.
    Text(usize),
    Boolean,
    Uuid,
    /// An RFC 3339 instant.
    Time,
    /// A `YYYY-MM-DD` date from 1900-01-01 to 9999-12-31.
    Date,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A whole number in `min..=max`; `default` when absent.
    Number {
        default: u64,
        min: u64,
        max: u64,
    },
}

pub const LIMIT: Query = Query {
    name: "limit",
    rule: Rule::Number { default: DEFAULT_LIMIT, min: 1, max: MAX_LIMIT },
    description: "page size",
};
pub const OFFSET: Query =
    Query { name: "offset", rule: Rule::Number { default: 0, min: 0, max: MAX_OFFSET }, description: "items to skip" };

query_parameters!(
    /// The parameters of a list that has only paging.
    PageQuery: LIMIT, OFFSET
);

impl Query {
    pub const fn text(name: &'static str, max_chars: usize, description: &'static str) -> Self {
        Query { name, rule: Rule::Text(max_chars), description }
    }

    pub const fn of(name: &'static str, rule: Rule, description: &'static str) -> Self {
        Query { name, rule, description }
    }

    /// The parameter as the OpenAPI document states it.
    pub fn parameter(&self) -> Parameter {
        let schema = match self.rule {
            // Blank means absent; a query string has no `null`.
            Rule::Text(max_chars) => contract::text(max_chars, Lines::One, Blank::MeansNone)
                .schema_type(SchemaType::Type(Type::String))
                .description(Some(format!(
                    "one line, at most {max_chars} characters; white space around it is trimmed; no control or \
                     invisible formatting characters"
                ))),
            Rule::Boolean => ObjectBuilder::new().schema_type(SchemaType::Type(Type::Boolean)),
            Rule::Uuid => contract::uuid(),
            Rule::Time => contract::date_time(),
            Rule::Date => contract::date().pattern(Some("^(?:19|[2-9][0-9])")),
            Rule::OneOf(values) => contract::one_of(values),
            Rule::Number { default, min, max } => ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .minimum(Some(min as f64))
                .maximum(Some(max as f64))
                .default(Some(default.into())),
        };
        // An empty value counts as absent (`?name=` is no filter), which the schema must admit.
        let empty = ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).max_length(Some(0));
        ParameterBuilder::new()
            .name(self.name)
            .parameter_in(ParameterIn::Query)
            .description(Some(format!("{}; an empty value counts as absent", self.description)))
            .schema(Some(AnyOfBuilder::new().item(schema).item(empty)))
            .build()
    }
}

/// Declares a type whose OpenAPI parameters are the given `Query`s, for `#[utoipa::path(params(…))]`.
macro_rules! query_parameters {
    ($(#[$doc:meta])* $name:ident: $($query:expr),+ $(,)?) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                vec![$($query.parameter()),+]
            }
        }
    };
}
pub(crate) use query_parameters;

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
    fn raw(&mut self, query: &Query) -> Option<&'a str> {
        let value = self.values.get(query.name).map(String::as_str).filter(|v| !v.is_empty())?;
        match validation::check_characters(value, Lines::One) {
            Ok(()) => Some(value),
            Err((rule, message)) => {
                self.errors.add(query.name, rule, message);
                None
            }
        }
    }

    pub fn page(&mut self) -> PageRequest {
        PageRequest { limit: self.number(&LIMIT), offset: self.number(&OFFSET) }
    }

    fn number(&mut self, query: &Query) -> u64 {
        let Rule::Number { default, min, max } = query.rule else { unreachable!("{} is not a number", query.name) };
        match self.raw(query).map(str::parse::<u64>) {
            None => default,
            Some(Ok(n)) if (min..=max).contains(&n) => n,
            Some(_) => {
                self.errors.add(query.name, "range", format!("must be a whole number from {min} to {max}"));
                default
            }
        }
    }

    pub fn text(&mut self, query: &Query) -> Option<String> {
        let Rule::Text(max_chars) = query.rule else { unreachable!("{} is not a text", query.name) };
        // Trimmed before its characters are checked, as a body's text is.
        let as_sent = self.values.get(query.name).map(String::as_str);
        match validation::optional_line(as_sent, max_chars) {
            Ok(value) => value,
            Err((rule, message)) => {
                self.errors.add(query.name, rule, message);
                None
            }
        }
    }

    pub fn boolean(&mut self, query: &Query) -> Option<bool> {
        match self.raw(query)? {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.errors.add(query.name, "boolean", "must be true or false");
                None
            }
        }
    }

    /// A UUID, as the id type the caller names (`params.uuid::<PatientId>(&PATIENT)`).
    pub fn uuid<Id: FromStr>(&mut self, query: &Query) -> Option<Id> {
        let raw = self.raw(query)?;
        raw.parse().map_err(|_| self.errors.add(query.name, "uuid", "must be a UUID")).ok()
    }

    pub fn time(&mut self, query: &Query) -> Option<DateTime<Utc>> {
        let raw = self.raw(query)?;
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                self.errors.add(query.name, "rfc3339", "must be an RFC 3339 timestamp such as 2030-01-31T09:00:00Z")
            })
            .ok()
    }

    pub fn date(&mut self, query: &Query) -> Option<chrono::NaiveDate> {
        use chrono::Datelike;
        let raw = self.raw(query)?;
        validation::iso_date(raw).filter(|date| (1900..=9999).contains(&date.year())).or_else(|| {
            self.errors.add(query.name, "date", "must be a date from 1900-01-01 to 9999-12-31, such as 2030-01-31");
            None
        })
    }

    /// A value from the parameter's closed set, parsed by the domain's own parser.
    pub fn one_of<T>(&mut self, query: &Query, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
        let Rule::OneOf(values) = query.rule else { unreachable!("{} is not a closed set", query.name) };
        let raw = self.raw(query)?;
        let parsed = values.contains(&raw).then(|| parse(raw)).flatten();
        if parsed.is_none() {
            self.errors.add(query.name, "one_of", format!("must be one of {}", values.join(", ")));
        }
        parsed
    }

    pub fn finish(self) -> Result<(), FieldErrors> {
        if self.errors.is_empty() { Ok(()) } else { Err(self.errors) }
    }
}
