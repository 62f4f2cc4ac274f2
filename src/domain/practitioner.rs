//! Practitioners: the people appointments are booked with. Managed by administrators only.

use super::contract::{self, Blank};
use super::validation::{CharRanges, Lines, in_ranges};
use super::{PersonName, PractitionerId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::ObjectBuilder;

use super::assign;
use super::validation::{self, FieldErrors, RuleResult, required};

pub const LICENCE_MAX: usize = 50;
pub const SPECIALTY_MAX: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PractitionerRole {
    Physician,
    Nurse,
    Therapist,
    Technician,
    Other,
}

impl PractitionerRole {
    pub const ALL: [Self; 5] = [Self::Physician, Self::Nurse, Self::Therapist, Self::Technician, Self::Other];
    /// The wire names, in the order of `ALL` (and of the variants, which serde renames alike).
    pub const NAMES: [&'static str; 5] = ["physician", "nurse", "therapist", "technician", "other"];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn parse(value: &str) -> RuleResult<Self> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == value)
            .ok_or_else(|| ("one_of", format!("must be one of {}", Self::NAMES.join(", "))))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Practitioner {
    #[schema(value_type = uuid::Uuid)]
    pub id: PractitionerId,
    /// Professional licence number; unique across practitioners.
    pub licence_number: String,
    #[schema(value_type = String)]
    pub given_name: PersonName,
    #[schema(value_type = String)]
    pub family_name: PersonName,
    pub role: PractitionerRole,
    pub specialty: Option<String>,
    pub active: bool,
    pub version: i64,
    #[serde(serialize_with = "super::timestamp::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "super::timestamp::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"licence_number": "GMC-7046512", "given_name": "Grace", "family_name": "Hopper", "role": "physician", "specialty": "cardiology"})))]
pub struct PractitionerInput {
    #[schema(required = true, schema_with = licence_number_schema)]
    pub licence_number: Option<String>,
    #[schema(required = true, schema_with = PersonName::schema)]
    pub given_name: Option<String>,
    #[schema(required = true, schema_with = PersonName::schema)]
    pub family_name: Option<String>,
    #[schema(required = true, value_type = PractitionerRole)]
    pub role: Option<String>,
    #[schema(schema_with = specialty_schema)]
    pub specialty: Option<String>,
}

/// The characters of a licence number.
const LICENCE_CHARACTERS: CharRanges = &[('0', '9'), ('A', 'Z'), ('a', 'z'), ('-', '-'), ('.', '/')];

pub(super) fn licence_number_schema() -> ObjectBuilder {
    contract::restricted_text(LICENCE_MAX, LICENCE_CHARACTERS, Blank::Refused)
        .description(Some("unique, whatever its case (stored upper-case); letters, digits, `-`, `/` and `.`"))
}

fn specialty_schema() -> ObjectBuilder {
    contract::text(SPECIALTY_MAX, Lines::One, Blank::MeansNone)
}

#[derive(Debug, Clone, PartialEq)]
pub struct PractitionerDraft {
    pub licence_number: String,
    pub given_name: PersonName,
    pub family_name: PersonName,
    pub role: PractitionerRole,
    pub specialty: Option<String>,
}

/// Licence numbers: letters, digits and `-`, `/`, `.`; stored upper-case so uniqueness ignores case.
pub fn parse_licence_number(value: &str) -> RuleResult<String> {
    let text = validation::required_line(value, LICENCE_MAX)?;
    if text.chars().all(|c| in_ranges(c, LICENCE_CHARACTERS)) {
        Ok(text.to_ascii_uppercase())
    } else {
        Err(("licence_number", "may contain only letters, digits, '-', '/' and '.'".into()))
    }
}

impl PractitionerDraft {
    pub fn parse(input: &PractitionerInput) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let licence_number =
            errors.check("licence_number", required(&input.licence_number).and_then(parse_licence_number));
        let given_name = errors.check("given_name", required(&input.given_name).and_then(PersonName::parse));
        let family_name = errors.check("family_name", required(&input.family_name).and_then(PersonName::parse));
        let role = errors.check("role", required(&input.role).and_then(PractitionerRole::parse));
        let specialty = errors.check("specialty", validation::optional_line(input.specialty.as_deref(), SPECIALTY_MAX));
        errors.into_result(|| PractitionerDraft {
            licence_number: licence_number.unwrap(),
            given_name: given_name.unwrap(),
            family_name: family_name.unwrap(),
            role: role.unwrap(),
            specialty: specialty.unwrap(),
        })
    }
}

/// A partial update: absent fields stay as they are; `null` (or a blank text) clears the specialty.
/// The required fields cannot be cleared: `null` is refused for them.
#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"specialty": "paediatrics"})))]
pub struct PractitionerPatchInput {
    #[serde(default, deserialize_with = "super::validation::given")]
    #[schema(schema_with = licence_number_schema)]
    pub licence_number: Option<String>,
    #[serde(default, deserialize_with = "super::validation::given")]
    #[schema(schema_with = PersonName::schema)]
    pub given_name: Option<String>,
    #[serde(default, deserialize_with = "super::validation::given")]
    #[schema(schema_with = PersonName::schema)]
    pub family_name: Option<String>,
    #[serde(default, deserialize_with = "super::validation::given")]
    #[schema(value_type = PractitionerRole)]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "super::validation::given")]
    #[schema(schema_with = specialty_schema)]
    pub specialty: Option<Option<String>>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct PractitionerPatch {
    pub licence_number: Option<String>,
    pub given_name: Option<PersonName>,
    pub family_name: Option<PersonName>,
    pub role: Option<PractitionerRole>,
    pub specialty: Option<Option<String>>,
}

impl PractitionerPatch {
    pub fn parse(input: &PractitionerPatchInput) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let patch = PractitionerPatch {
            licence_number: input
                .licence_number
                .as_deref()
                .and_then(|v| errors.check("licence_number", parse_licence_number(v))),
            given_name: input.given_name.as_deref().and_then(|v| errors.check("given_name", PersonName::parse(v))),
            family_name: input.family_name.as_deref().and_then(|v| errors.check("family_name", PersonName::parse(v))),
            role: input.role.as_deref().and_then(|v| errors.check("role", PractitionerRole::parse(v))),
            specialty: input
                .specialty
                .as_ref()
                .and_then(|v| errors.check("specialty", validation::optional_line(v.as_deref(), SPECIALTY_MAX))),
        };
        errors.into_result(|| patch)
    }

    /// Applies the patch; returns the names of the fields whose value changed.
    pub fn apply(self, practitioner: &mut Practitioner) -> Vec<&'static str> {
        let mut changed = Vec::new();
        assign(&mut practitioner.licence_number, self.licence_number, "licence_number", &mut changed);
        assign(&mut practitioner.given_name, self.given_name, "given_name", &mut changed);
        assign(&mut practitioner.family_name, self.family_name, "family_name", &mut changed);
        assign(&mut practitioner.role, self.role, "role", &mut changed);
        assign(&mut practitioner.specialty, self.specialty, "specialty", &mut changed);
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licence_numbers_are_normalised_to_upper_case() {
        assert_eq!(parse_licence_number(" md-123/a ").unwrap(), "MD-123/A");
    }

    #[test]
    fn a_licence_number_with_spaces_inside_is_rejected() {
        assert_eq!(parse_licence_number("MD 123").unwrap_err().0, "licence_number");
    }

    #[test]
    fn a_practitioner_without_role_is_rejected_naming_the_field() {
        let input = PractitionerInput {
            licence_number: Some("L1".into()),
            given_name: Some("G".into()),
            family_name: Some("F".into()),
            ..Default::default()
        };
        let errors = PractitionerDraft::parse(&input).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!((errors.0[0].field.as_str(), errors.0[0].rule.as_str()), ("role", "required"));
    }
}
