//! FHIR search: reading a search's parameters by what `capability` declares for its type, and the
//! `searchset` Bundle with its `self` and `next` links.
//!
//! A parameter may be repeated (every occurrence must hold: `date=ge2030-01-01&date=lt2030-02-01`);
//! a comma-separated list of alternatives is not supported and is refused. An empty value counts
//! as absent. A parameter this server does not know (or a modifier such as `name:exact`) is
//! ignored and left out of the `self` link, as FHIR's lenient handling says; under
//! `Prefer: handling=strict` it is refused with 400. Invalid values are refused with 400 naming
//! each parameter.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::capability::{RESULT_PARAMETERS, ResourceSupport};
use crate::domain::FieldErrors;
use crate::domain::validation::{self, Lines};
use crate::error::ProblemCode;
use crate::http::params::{DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET};
use crate::http::problem::Problem;
use crate::store::{Page, PageRequest};

/// A half-open range of instants: `from <= t < to`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Range {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Range {
    fn narrow(&mut self, other: Range) {
        self.from = self.from.max(other.from);
        self.to = match (self.to, other.to) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// The range as days, for date-only elements (a birth date).
    pub fn days(&self) -> (Option<NaiveDate>, Option<NaiveDate>) {
        let ceil = |t: DateTime<Utc>| {
            if t.time() == NaiveTime::MIN { t.date_naive() } else { t.date_naive() + Duration::days(1) }
        };
        (self.from.map(ceil), self.to.map(ceil))
    }
}

/// A token: `system|code`, `|code` (no system) or `code` (any system).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub system: Option<String>,
    pub code: String,
}

impl Token {
    /// The code, if the token can name something of `system`.
    pub fn code_in(&self, system: &str) -> Option<&str> {
        match &self.system {
            Some(s) if s != system => None,
            _ => Some(&self.code),
        }
    }
}

/// The id that no resource has: what a search term that cannot match anything filters by, so the
/// search still runs (and is audited) as its REST twin would, and finds nothing.
pub const NO_MATCH: Uuid = Uuid::nil();

pub struct Search {
    support: &'static ResourceSupport,
    pairs: Vec<(String, String)>,
    /// The parameters this search applied, in the order received, for the `self` link.
    applied: Vec<(String, String)>,
    errors: FieldErrors,
}

/// A name as a client sent it, repeated in an error only when it is plainly a parameter name.
fn printable(name: &str) -> &str {
    let plain =
        !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:.-".contains(&b));
    if plain { name } else { "(a parameter)" }
}

/// Whether the request asks for strict handling of search parameters.
fn strict(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|pref| pref.trim().eq_ignore_ascii_case("handling=strict"))
}

/// 400 with every bad parameter named, as an OperationOutcome (by `outcome::middleware`).
pub fn refused(errors: FieldErrors) -> Response {
    let names: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    let detail = format!("the search has invalid parameters: {}", names.join(", "));
    let mut problem = Problem::new(StatusCode::BAD_REQUEST, ProblemCode::BadRequest, detail);
    problem.errors = errors.0;
    problem.into_response()
}

impl Search {
    /// The search's parameters, checked against what `support` declares; unknown ones are
    /// dropped, or refused under `Prefer: handling=strict`.
    pub fn parse(
        support: &'static ResourceSupport,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Search, FieldErrors> {
        let mut pairs = Vec::new();
        let mut unknown = FieldErrors::new();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let known = support.search.iter().any(|p| p.name == name) || RESULT_PARAMETERS.contains(&name.as_ref());
            if known {
                pairs.push((name.into_owned(), value.into_owned()));
            } else {
                unknown.add(printable(&name), "supported", "is not a search parameter of this server");
            }
        }
        if strict(headers) && !unknown.is_empty() {
            return Err(unknown);
        }
        Ok(Search { support, pairs, applied: Vec::new(), errors: FieldErrors::new() })
    }

    /// The one value of a parameter, or none: empty values count as absent; a repeated parameter
    /// and a list of alternatives are refused, for parameters where every value must hold alone.
    pub fn single(&mut self, name: &'static str) -> Option<String> {
        let mut values = self.all(name);
        if values.len() > 1 {
            self.errors.add(name, "once", "may be given once here");
            return None;
        }
        values.pop()
    }

    /// Every non-empty value of a parameter, each one line without control or invisible
    /// characters and without a list of alternatives.
    fn all(&mut self, name: &'static str) -> Vec<String> {
        debug_assert!(self.support.search.iter().any(|p| p.name == name) || RESULT_PARAMETERS.contains(&name));
        let mut values = Vec::new();
        for (_, value) in self.pairs.iter().filter(|(n, _)| n == name) {
            if value.is_empty() {
                continue;
            }
            if let Err((rule, message)) = validation::check_characters(value, Lines::One) {
                self.errors.add(name, rule, message);
            } else if value.contains(',') && name != "_format" {
                self.errors.add(name, "single_value", "takes one value (lists of alternatives are not supported)");
            } else {
                self.applied.push((name.to_owned(), value.clone()));
                values.push(value.clone());
            }
        }
        values
    }

    /// A string parameter: a prefix of at most `max_chars` characters, trimmed.
    pub fn string(&mut self, name: &'static str, max_chars: usize) -> Option<String> {
        let value = self.single(name)?;
        match validation::optional_line(Some(&value), max_chars) {
            Ok(value) => value,
            Err((rule, message)) => {
                self.errors.add(name, rule, message);
                None
            }
        }
    }

    pub fn token(&mut self, name: &'static str) -> Option<Token> {
        let value = self.single(name)?;
        Some(match value.split_once('|') {
            Some((system, code)) => Token { system: Some(system.to_owned()), code: code.to_owned() },
            None => Token { system: None, code: value },
        })
    }

    pub fn boolean(&mut self, name: &'static str) -> Option<bool> {
        match self.single(name)?.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.errors.add(name, "boolean", "must be true or false");
                None
            }
        }
    }

    /// An id (`_id`): a UUID, or `NO_MATCH` for anything else (no resource has such an id).
    pub fn id(&mut self) -> Option<Uuid> {
        let value = self.single("_id")?;
        Some(value.parse().unwrap_or(NO_MATCH))
    }

    /// A reference to a resource of one of `types`: `Type/<id>`, an absolute URL ending so, or a
    /// bare id. Returns the type named (the first of `types` for a bare id) and the id, which is
    /// `NO_MATCH` when it is not a UUID.
    pub fn reference(&mut self, name: &'static str, types: &[&'static str]) -> Option<(&'static str, Uuid)> {
        let value = self.single(name)?;
        let mut segments = value.rsplit('/');
        let id = segments.next().unwrap_or_default();
        let named = segments.next();
        let resource_type = match named {
            None => types[0],
            Some(named) => match types.iter().find(|t| **t == named) {
                Some(t) => t,
                None => {
                    self.errors.add(name, "reference", format!("must refer to a {}", types.join(" or a ")));
                    return None;
                }
            },
        };
        Some((resource_type, id.parse().unwrap_or(NO_MATCH)))
    }

    /// A date parameter: every occurrence narrows the range (`ge…` and `lt…` together bound it).
    pub fn dates(&mut self, name: &'static str, dates_only: bool) -> Range {
        let mut range = Range::default();
        for value in self.all(name) {
            match parse_date_condition(&value, dates_only) {
                Some(condition) => range.narrow(condition),
                None => self.errors.add(
                    name,
                    "date",
                    if dates_only {
                        "must be an optional prefix (eq, ge, gt, le, lt) and YYYY, YYYY-MM or YYYY-MM-DD"
                    } else {
                        "must be an optional prefix (eq, ge, gt, le, lt) and a date or an instant with its time zone"
                    },
                ),
            }
        }
        range
    }

    /// `_count` (20 when absent; a larger count than 100 is a wish the page caps, as FHIR lets a
    /// server) and `_offset` (up to 100,000).
    pub fn page(&mut self) -> PageRequest {
        let mut number = |name: &'static str, default: u64, max: u64, capped: bool| match self.single(name) {
            None => default,
            Some(value) => match value.parse::<u64>() {
                Ok(n) if n <= max => n,
                Ok(_) if capped => max,
                _ => {
                    let rule = if capped { "whole number" } else { "range" };
                    self.errors.add(name, rule, format!("must be a whole number from 0 to {max}"));
                    default
                }
            },
        };
        let limit = number("_count", DEFAULT_LIMIT, MAX_LIMIT, true);
        let offset = number("_offset", 0, MAX_OFFSET, false);
        // The links state the page explicitly; `_format` was checked by the outcome middleware.
        self.applied.retain(|(name, _)| !RESULT_PARAMETERS.contains(&name.as_str()));
        PageRequest { limit, offset }
    }

    /// Refuses a parameter's value for a reason its reader found.
    pub fn refuse(&mut self, name: &'static str, rule: &'static str, message: &str) {
        self.errors.add(name, rule, message);
    }

    /// The bad parameters, if any; `refused` makes them the 400 response.
    pub fn finish(&mut self) -> Result<(), FieldErrors> {
        let errors = std::mem::replace(&mut self.errors, FieldErrors::new());
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    fn link(&self, base: &str, page: PageRequest) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.applied {
            query.append_pair(name, value);
        }
        query.append_pair("_count", &page.limit.to_string());
        query.append_pair("_offset", &page.offset.to_string());
        format!("{base}/{}?{}", self.support.resource_type, query.finish())
    }

    /// The `searchset` Bundle of a page: each entry a resource (`Type/id`, resource), with `self`
    /// (the parameters applied) and, when more follow, `next`.
    pub fn bundle<T>(&self, base: &str, page: &Page<T>, entries: Vec<(String, Value)>) -> Value {
        let request = PageRequest { limit: page.limit, offset: page.offset };
        let mut links = vec![json!({"relation": "self", "url": self.link(base, request)})];
        // Past the counted bound, more follow while pages are full.
        let more = if page.total_is_exact {
            page.offset + page.limit < page.total
        } else {
            page.items.len() as u64 == page.limit
        };
        let next = PageRequest { limit: page.limit, offset: page.offset + page.limit };
        if page.limit > 0 && more && next.offset <= MAX_OFFSET {
            links.push(json!({"relation": "next", "url": self.link(base, next)}));
        }
        let entry: Vec<Value> = entries
            .into_iter()
            .map(|(reference, resource)| {
                json!({"fullUrl": format!("{base}/{reference}"), "resource": resource, "search": {"mode": "match"}})
            })
            .collect();
        let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "link": links});
        // `total` is "the number of matches" in FHIR: a lower bound is left out.
        if page.total_is_exact {
            bundle["total"] = json!(page.total);
        }
        // FHIR JSON has no empty arrays: a search that found nothing has no `entry`.
        if !entry.is_empty() {
            bundle["entry"] = Value::Array(entry);
        }
        bundle
    }
}

/// `[prefix]value` as the range of start times it admits. A value covers the whole of its
/// precision (`2030-01` is January; an instant to the second is that second).
fn parse_date_condition(text: &str, dates_only: bool) -> Option<Range> {
    let (prefix, value) = match text.get(..2) {
        Some(p @ ("eq" | "ge" | "gt" | "le" | "lt")) => (p, &text[2..]),
        _ => (text.get(..1).filter(|c| c.bytes().all(|b| b.is_ascii_digit())).map(|_| "eq")?, text),
    };
    let (start, end) = value_range(value, dates_only)?;
    Some(match prefix {
        "eq" => Range { from: Some(start), to: Some(end) },
        "ge" => Range { from: Some(start), to: None },
        "gt" => Range { from: Some(end), to: None },
        "lt" => Range { from: None, to: Some(start) },
        _ => Range { from: None, to: Some(end) },
    })
}

/// The instants a date or instant value covers, `[start, end)`.
fn value_range(value: &str, dates_only: bool) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let at_midnight = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = value.splitn(3, '-').collect();
    match parts.as_slice() {
        [year] if digits(year, 4) => {
            let first = NaiveDate::from_ymd_opt(year.parse().ok()?, 1, 1)?;
            Some((at_midnight(first), at_midnight(first.with_year(first.year() + 1)?)))
        }
        [year, month] if digits(year, 4) && digits(month, 2) => {
            let first = NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)?;
            let next = first.checked_add_months(chrono::Months::new(1))?;
            Some((at_midnight(first), at_midnight(next)))
        }
        [_, _, day] if day.len() == 2 => {
            let date = validation::iso_date(value)?;
            Some((at_midnight(date), at_midnight(date + Duration::days(1))))
        }
        _ if !dates_only => {
            let instant = DateTime::parse_from_rfc3339(value).ok()?.with_timezone(&Utc);
            let precision = if value.contains('.') { Duration::microseconds(1) } else { Duration::seconds(1) };
            Some((instant, instant + precision))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn a_date_covers_its_precision_and_prefixes_bound_it() {
        let range = |text| parse_date_condition(text, false).unwrap();
        assert_eq!(range("2030-01-31"), Range { from: at("2030-01-31T00:00:00Z"), to: at("2030-02-01T00:00:00Z") });
        assert_eq!(range("ge2030-01"), Range { from: at("2030-01-01T00:00:00Z"), to: None });
        assert_eq!(range("gt2030"), Range { from: at("2031-01-01T00:00:00Z"), to: None });
        assert_eq!(range("lt2030-01-31T09:00:00+01:00"), Range { from: None, to: at("2030-01-31T08:00:00Z") });
        assert_eq!(range("le2030-01-31T09:00:00Z"), Range { from: None, to: at("2030-01-31T09:00:01Z") });
        for bad in ["ne2030-01-01", "2030-1-1", "ge", "2030-02-30", "2030-01-31T09:00:00", "sa2030"] {
            assert_eq!(parse_date_condition(bad, false), None, "{bad}");
        }
        assert_eq!(parse_date_condition("2030-01-31T09:00:00Z", true), None);
    }

    #[test]
    fn repeated_conditions_narrow_the_range_and_days_round_up() {
        let mut range = parse_date_condition("ge2030-01-01", true).unwrap();
        range.narrow(parse_date_condition("lt2030-02-01", true).unwrap());
        range.narrow(parse_date_condition("le2030-03-01", true).unwrap());
        assert_eq!(range, Range { from: at("2030-01-01T00:00:00Z"), to: at("2030-02-01T00:00:00Z") });
        let days = Range { from: at("2030-01-01T00:00:00Z"), to: at("2030-02-01T00:00:01Z") }.days();
        assert_eq!(days, (NaiveDate::from_ymd_opt(2030, 1, 1), NaiveDate::from_ymd_opt(2030, 2, 2)));
    }
}
