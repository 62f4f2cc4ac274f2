//! Patients: identity, demographics and contact details. Everything here except `id`, `mrn`, `sex`,
//! `active` and `version` is PHI and must never leave the database except in API responses.

use super::contract::{self, Blank};
use super::{Email, Mrn, PatientId, PersonName, Phone};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::assign;
use super::validation::{self, FieldErrors, RuleResult, optional, required};

pub const ADDRESS_MAX: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
    Other,
    Unknown,
}

impl Sex {
    pub const ALL: [Sex; 4] = [Sex::Male, Sex::Female, Sex::Other, Sex::Unknown];
    /// The wire names, in the order of `ALL` (and of the variants, which serde renames alike).
    pub const NAMES: [&'static str; 4] = ["male", "female", "other", "unknown"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(value: &str) -> RuleResult<Sex> {
        Self::ALL
            .into_iter()
            .find(|sex| sex.as_str() == value)
            .ok_or_else(|| ("one_of", format!("must be one of {}", Self::NAMES.join(", "))))
    }
}

/// A patient as stored and as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Patient {
    #[schema(value_type = uuid::Uuid)]
    pub id: PatientId,
    /// Medical record number: generated at registration, unique, never changes.
    #[schema(value_type = String)]
    pub mrn: Mrn,
    #[schema(value_type = String)]
    pub given_name: PersonName,
    #[schema(value_type = String)]
    pub family_name: PersonName,
    #[schema(value_type = String, format = Date)]
    pub birth_date: NaiveDate,
    pub sex: Sex,
    #[schema(value_type = Option<String>)]
    pub email: Option<Email>,
    #[schema(value_type = Option<String>)]
    pub phone: Option<Phone>,
    pub address: Option<String>,
    pub active: bool,
    /// Incremented on every change; the API exposes it as the ETag.
    pub version: i64,
    #[serde(serialize_with = "super::timestamp::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "super::timestamp::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

// The required fields are `Option`s here so that `PatientDraft::parse` can report every missing or
// invalid field at once; the schema marks them required.
/// A patient registration. The MRN is generated.
#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"given_name": "Ada", "family_name": "Lovelace", "birth_date": "1990-12-10", "sex": "female", "email": "ada@example.org", "phone": "+44 20 7946 0958"})))]
pub struct PatientInput {
    #[schema(required = true, schema_with = PersonName::schema)]
    pub given_name: Option<String>,
    #[schema(required = true, schema_with = PersonName::schema)]
    pub family_name: Option<String>,
    #[schema(required = true, schema_with = birth_date_schema)]
    pub birth_date: Option<String>,
    #[schema(required = true, value_type = Sex)]
    pub sex: Option<String>,
    #[schema(schema_with = optional_email)]
    pub email: Option<String>,
    #[schema(schema_with = optional_phone)]
    pub phone: Option<String>,
    #[schema(schema_with = optional_address)]
    pub address: Option<String>,
}

fn birth_date_schema() -> utoipa::openapi::schema::ObjectBuilder {
    contract::date().pattern(Some("^(?:19|20)")).description(Some("from 1900-01-01 to today"))
}

fn optional_email() -> utoipa::openapi::schema::Schema {
    Email::schema(Blank::MeansNone)
}

fn optional_phone() -> utoipa::openapi::schema::ObjectBuilder {
    Phone::schema(Blank::MeansNone)
}

fn optional_address() -> utoipa::openapi::schema::ObjectBuilder {
    contract::text(ADDRESS_MAX, validation::Lines::Many, Blank::MeansNone)
}

/// A valid new patient, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientDraft {
    pub given_name: PersonName,
    pub family_name: PersonName,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub address: Option<String>,
}

impl PatientDraft {
    pub fn parse(input: &PatientInput, today: NaiveDate) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let given_name = errors.check("given_name", required(&input.given_name).and_then(PersonName::parse));
        let family_name = errors.check("family_name", required(&input.family_name).and_then(PersonName::parse));
        let birth_date =
            errors.check("birth_date", required(&input.birth_date).and_then(|v| parse_birth_date(v, today)));
        let sex = errors.check("sex", required(&input.sex).and_then(Sex::parse));
        let email = errors.check("email", optional(&input.email, Email::MAX_CHARS, Email::parse));
        let phone = errors.check("phone", optional(&input.phone, Phone::MAX_CHARS, Phone::parse));
        let address = errors.check("address", validation::optional_text(input.address.as_deref(), ADDRESS_MAX));
        errors.into_result(|| PatientDraft {
            given_name: given_name.unwrap(),
            family_name: family_name.unwrap(),
            birth_date: birth_date.unwrap(),
            sex: sex.unwrap(),
            email: email.unwrap(),
            phone: phone.unwrap(),
            address: address.unwrap(),
        })
    }
}

/// A partial update: absent fields stay as they are; `null` (or a blank text) clears an optional
/// field. The required ones cannot be cleared: `null` is refused for them.
#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"family_name": "King", "phone": null})))]
pub struct PatientPatchInput {
    #[serde(default, deserialize_with = "super::validation::given")]
    #[schema(schema_with = PersonName::schema)]
    pub given_name: Option<String>,
    #[serde(default, deserialize_with = "super::validation::given")]
    #[schema(schema_with = PersonName::schema)]
    pub family_name: Option<String>,
    #[serde(default, deserialize_with = "super::validation::given")]
    #[schema(schema_with = birth_date_schema)]
    pub birth_date: Option<String>,
    #[serde(default, deserialize_with = "super::validation::given")]
    #[schema(value_type = Sex)]
    pub sex: Option<String>,
    #[serde(default, deserialize_with = "super::validation::given")]
    #[schema(schema_with = optional_email)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::validation::given")]
    #[schema(schema_with = optional_phone)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::validation::given")]
    #[schema(schema_with = optional_address)]
    pub address: Option<Option<String>>,
}

/// A valid partial update. `Some(None)` clears an optional field.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PatientPatch {
    pub given_name: Option<PersonName>,
    pub family_name: Option<PersonName>,
    pub birth_date: Option<NaiveDate>,
    pub sex: Option<Sex>,
    pub email: Option<Option<Email>>,
    pub phone: Option<Option<Phone>>,
    pub address: Option<Option<String>>,
}

impl PatientPatch {
    pub fn parse(input: &PatientPatchInput, today: NaiveDate) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let patch = PatientPatch {
            given_name: input.given_name.as_deref().and_then(|v| errors.check("given_name", PersonName::parse(v))),
            family_name: input.family_name.as_deref().and_then(|v| errors.check("family_name", PersonName::parse(v))),
            birth_date: input
                .birth_date
                .as_deref()
                .and_then(|v| errors.check("birth_date", parse_birth_date(v, today))),
            sex: input.sex.as_deref().and_then(|v| errors.check("sex", Sex::parse(v))),
            email: input
                .email
                .as_ref()
                .and_then(|v| errors.check("email", optional(v, Email::MAX_CHARS, Email::parse))),
            phone: input
                .phone
                .as_ref()
                .and_then(|v| errors.check("phone", optional(v, Phone::MAX_CHARS, Phone::parse))),
            address: input
                .address
                .as_ref()
                .and_then(|v| errors.check("address", validation::optional_text(v.as_deref(), ADDRESS_MAX))),
        };
        errors.into_result(|| patch)
    }

    /// Applies the patch; returns the names of the fields whose value changed.
    pub fn apply(self, patient: &mut Patient) -> Vec<&'static str> {
        let mut changed = Vec::new();
        assign(&mut patient.given_name, self.given_name, "given_name", &mut changed);
        assign(&mut patient.family_name, self.family_name, "family_name", &mut changed);
        assign(&mut patient.birth_date, self.birth_date, "birth_date", &mut changed);
        assign(&mut patient.sex, self.sex, "sex", &mut changed);
        assign(&mut patient.email, self.email, "email", &mut changed);
        assign(&mut patient.phone, self.phone, "phone", &mut changed);
        assign(&mut patient.address, self.address, "address", &mut changed);
        changed
    }
}

/// Birth dates are calendar dates between 1900-01-01 and today, written `YYYY-MM-DD` exactly.
pub fn parse_birth_date(value: &str, today: NaiveDate) -> RuleResult<NaiveDate> {
    let date = validation::iso_date(value).ok_or(("date", "must be a date in YYYY-MM-DD form".to_string()))?;
    if date > today {
        return Err(("not_in_future", "must not be in the future".into()));
    }
    if date.year() < 1900 {
        return Err(("not_before_1900", "must not be before 1900-01-01".into()));
    }
    Ok(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()
    }

    fn valid_input() -> PatientInput {
        PatientInput {
            given_name: Some(" Ada ".into()),
            family_name: Some("Lovelace".into()),
            birth_date: Some("1990-12-10".into()),
            sex: Some("female".into()),
            email: Some("ada@example.org".into()),
            phone: None,
            address: Some("".into()),
        }
    }

    #[test]
    fn a_complete_input_parses_and_is_trimmed() {
        let draft = PatientDraft::parse(&valid_input(), today()).unwrap();
        assert_eq!(draft.given_name, "Ada");
        assert_eq!(draft.address, None);
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let input = PatientInput { birth_date: Some("2999-01-01".into()), sex: Some("x".into()), ..Default::default() };
        let errors = PatientDraft::parse(&input, today()).unwrap_err();
        let fields: Vec<_> = errors.0.iter().map(|e| (e.field.as_str(), e.rule.as_str())).collect();
        assert_eq!(
            fields,
            [
                ("given_name", "required"),
                ("family_name", "required"),
                ("birth_date", "not_in_future"),
                ("sex", "one_of")
            ]
        );
    }

    #[test]
    fn a_birth_date_before_1900_is_rejected() {
        assert_eq!(parse_birth_date("1899-12-31", today()).unwrap_err().0, "not_before_1900");
        assert!(parse_birth_date("1900-01-01", today()).is_ok());
        assert_eq!(parse_birth_date("2026-02-30", today()).unwrap_err().0, "date");
    }

    #[test]
    fn a_patch_with_null_clears_an_optional_field() {
        let input: PatientPatchInput = serde_json::from_str(r#"{"email": null}"#).unwrap();
        let patch = PatientPatch::parse(&input, today()).unwrap();
        assert_eq!(patch.email, Some(None));
        assert_eq!(patch.phone, None);
    }
}
