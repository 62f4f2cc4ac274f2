//! The `patients` table.

use super::entities::patient::{self, Column, Entity};
use super::row_counts::CountedTable;
use super::{MatchOrder, Page, PageRequest, Selection, fetch_one, fetch_page, fetch_page_of_matches};
use crate::domain::validation::search_key;
use crate::domain::{Email, Mrn, Patient, PatientId, PersonName, Phone, Sex};
use sea_orm::sea_query::{ExprTrait, InsertStatement, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Select, prelude::Expr,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PatientSort {
    /// Family name, given name, then id: stable across pages. A name search lists the family
    /// name's matches first, then the given name's (`BY_FAMILY_NAME_KEY`, `BY_GIVEN_NAME_KEY`).
    #[default]
    Name,
    /// Registration order, newest last.
    CreatedAt,
}

#[derive(Debug, Clone, Default)]
pub struct PatientFilter {
    /// Case-insensitive prefix of the given or family name.
    pub name_prefix: Option<String>,
    pub mrn_prefix: Option<String>,
    pub active: Option<bool>,
    /// Restricts the list to one patient (a patient user listing "all" patients sees itself).
    pub only: Option<PatientId>,
    /// The patient with this id (FHIR's `_id`); unlike `only`, a search term of the caller's.
    pub id: Option<PatientId>,
    /// The MRN, exactly.
    pub mrn: Option<String>,
    /// Case-insensitive prefixes of the family name and of the given name, each alone.
    pub family_prefix: Option<String>,
    pub given_prefix: Option<String>,
    /// Born on or after this day, and before this one.
    pub born_from: Option<chrono::NaiveDate>,
    pub born_before: Option<chrono::NaiveDate>,
    pub sort: PatientSort,
}

impl PatientSort {
    /// The columns a list is sorted on, in turn, ascending; the last is unique.
    fn columns(self) -> &'static [Column] {
        match self {
            PatientSort::Name => &[Column::FamilyName, Column::GivenName, Column::Id],
            PatientSort::CreatedAt => &[Column::CreatedAt, Column::Id],
        }
    }
}

impl PatientFilter {
    /// No condition at all: the list is the whole table (the sort is not a condition).
    fn selects_all(&self) -> bool {
        // Destructured so that a new condition cannot be forgotten here.
        let PatientFilter {
            name_prefix,
            mrn_prefix,
            active,
            only,
            id,
            mrn,
            family_prefix,
            given_prefix,
            born_from,
            born_before,
            sort: _,
        } = self;
        name_prefix.is_none()
            && mrn_prefix.is_none()
            && active.is_none()
            && only.is_none()
            && id.is_none()
            && mrn.is_none()
            && family_prefix.is_none()
            && given_prefix.is_none()
            && born_from.is_none()
            && born_before.is_none()
    }
}

pub fn to_domain(row: patient::Model) -> Result<Patient, DbErr> {
    Ok(Patient {
        sex: Sex::parse(&row.sex).map_err(|_| DbErr::Type(format!("patients.sex holds '{}'", row.sex)))?,
        id: PatientId::from_uuid(row.id),
        mrn: Mrn::stored(row.mrn),
        given_name: PersonName::stored(row.given_name),
        family_name: PersonName::stored(row.family_name),
        birth_date: row.birth_date,
        email: row.email.map(Email::stored),
        phone: row.phone.map(Phone::stored),
        address: row.address,
        active: row.active,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn to_row(patient: &Patient) -> patient::Model {
    patient::Model {
        id: patient.id.as_uuid(),
        mrn: patient.mrn.as_str().to_owned(),
        given_name: patient.given_name.as_str().to_owned(),
        family_name: patient.family_name.as_str().to_owned(),
        family_name_key: search_key(patient.family_name.as_str()),
        given_name_key: search_key(patient.given_name.as_str()),
        birth_date: patient.birth_date,
        sex: patient.sex.as_str().to_owned(),
        email: patient.email.as_ref().map(|email| email.as_str().to_owned()),
        phone: patient.phone.as_ref().map(|phone| phone.as_str().to_owned()),
        address: patient.address.clone(),
        active: patient.active,
        version: patient.version,
        created_at: patient.created_at,
        updated_at: patient.updated_at,
    }
}

/// The insert of a new patient's row, for a unit of work that writes it with its records
/// (`UnitOfWork::adding`).
pub fn insertion(patient: &Patient) -> InsertStatement {
    Entity::insert(to_row(patient).into_active_model()).into_query()
}

pub async fn find(conn: &impl ConnectionTrait, id: PatientId) -> Result<Option<Patient>, DbErr> {
    fetch_one(conn, Entity::find_by_id(id)).await?.map(to_domain).transpose()
}

/// Reads the row and, on PostgreSQL, locks it until the transaction ends.
pub async fn find_for_update(conn: &impl ConnectionTrait, id: PatientId) -> Result<Option<Patient>, DbErr> {
    fetch_one(conn, Entity::find_by_id(id).lock_exclusive()).await?.map(to_domain).transpose()
}

/// Writes every column of `patient`; the caller has bumped `version` and `updated_at`.
pub async fn update(conn: &impl ConnectionTrait, patient: &Patient) -> Result<(), DbErr> {
    to_row(patient).into_active_model().reset_all().update(conn).await?;
    Ok(())
}

/// The family name starts with `prefix`; the given name does: the two ways a name prefix matches,
/// compared by the search keys (case-folded, NFC), so that `élo` finds Élodie on SQLite as on
/// PostgreSQL. Keys are never NULL, so each condition is true or false (`fetch_page_of_matches`
/// negates them).
pub(super) fn name_starts_with(
    family_key: impl ColumnTrait + Copy,
    given_key: impl ColumnTrait + Copy,
    prefix: &str,
) -> [Expr; 2] {
    [key_starts_with(family_key, prefix), key_starts_with(given_key, prefix)]
}

/// The rows whose search key in `key` starts with `prefix`'s: the keys from it up to the first
/// string after every string it starts. Keys compare byte by byte on both databases (migration
/// 22; SQLite's default), so the range holds exactly the prefix's matches; unlike a `LIKE`, it can
/// be read from the key's index by a plan made for any prefix (`fetch_page_of_matches`).
pub(super) fn key_starts_with(key: impl ColumnTrait + Copy, prefix: &str) -> Expr {
    let start = search_key(prefix);
    match after_every_string_starting(&start) {
        Some(end) => Expr::col(key).gte(start).and(Expr::col(key).lt(end)),
        None => Expr::col(key).gte(start),
    }
}

/// The first string greater than every string that starts with `prefix`: its last character that
/// has a successor, advanced by one, with what follows it dropped. None when every string from
/// `prefix` on starts with it (it is empty, or all `char::MAX`).
fn after_every_string_starting(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The code points after the last one below the surrogates start at U+E000.
        let next = if last == '\u{D7FF}' { Some('\u{E000}') } else { char::from_u32(u32::from(last) + 1) };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A name search's orders (`PatientSort::Name`): the patients whose family name starts with the
/// prefix by family name, given name and id, then those whose given name does by given name, family
/// name and id; each the order of its key's index (migration 22), compared by the search keys
/// (case-folded; byte by byte, the same on both databases).
const BY_FAMILY_NAME_KEY: &[Column] = &[Column::FamilyNameKey, Column::GivenNameKey, Column::Id];
const BY_GIVEN_NAME_KEY: &[Column] = &[Column::GivenNameKey, Column::FamilyNameKey, Column::Id];

/// The condition of a deactivated patient, as `ix_patients_deactivated_by_*` state it (migration
/// 20): a query that says `active = $1` instead is planned for any value from its sixth run on a
/// connection, and a plan for any value cannot read an index of deactivated patients alone.
pub(super) const DEACTIVATED: &str = "NOT active";

/// `LIKE` pattern for a prefix, with the wildcards of the input escaped; the prefix's case is kept.
pub(super) fn prefix_pattern(prefix: &str) -> LikeExpr {
    let escaped: String = prefix
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    LikeExpr::new(format!("{escaped}%")).escape('\\')
}

/// Every condition of `filter` but `name_prefix`, which `list` splits into one alternative per name.
fn filtered(filter: &PatientFilter) -> Select<Entity> {
    let mut query = Entity::find();
    if let Some(prefix) = &filter.mrn_prefix {
        // MRNs are capitals and digits (`Mrn::generate`): a prefix in capitals matches them as
        // `lower(mrn)` would match it in lower case, and can be read from the MRN's index.
        query = query.filter(Column::Mrn.like(prefix_pattern(&prefix.to_uppercase())));
    }
    if let Some(active) = filter.active {
        query = query.filter(if active { Column::Active.eq(true) } else { Expr::cust(DEACTIVATED) });
    }
    if let Some(id) = filter.only {
        query = query.filter(Column::Id.eq(id));
    }
    if let Some(id) = filter.id {
        query = query.filter(Column::Id.eq(id));
    }
    if let Some(mrn) = &filter.mrn {
        query = query.filter(Column::Mrn.eq(mrn.as_str()));
    }
    if let Some(prefix) = &filter.family_prefix {
        query = query.filter(key_starts_with(Column::FamilyNameKey, prefix));
    }
    if let Some(prefix) = &filter.given_prefix {
        query = query.filter(key_starts_with(Column::GivenNameKey, prefix));
    }
    if let Some(day) = filter.born_from {
        query = query.filter(Column::BirthDate.gte(day));
    }
    if let Some(day) = filter.born_before {
        query = query.filter(Column::BirthDate.lt(day));
    }
    query
}

pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &PatientFilter,
    page: PageRequest,
) -> Result<Page<Patient>, DbErr> {
    if let Some(prefix) = &filter.name_prefix {
        let alternatives = name_starts_with(Column::FamilyNameKey, Column::GivenNameKey, prefix).into();
        let order = match filter.sort {
            PatientSort::Name => MatchOrder::ByAlternative(vec![BY_FAMILY_NAME_KEY, BY_GIVEN_NAME_KEY]),
            PatientSort::CreatedAt => MatchOrder::Together(PatientSort::CreatedAt.columns()),
        };
        return fetch_page_of_matches(conn, filtered(filter), alternatives, order, page, to_domain).await;
    }
    if filter.family_prefix.is_some() || filter.given_prefix.is_some() {
        // A family name's prefix alone, listed by name, is read from the front of the family
        // name's index, which is in the list's order. With a given name's prefix (whose index is
        // not), or by registration, every match is gathered to find the page.
        let order = match (filter.sort, &filter.given_prefix) {
            (PatientSort::Name, None) => MatchOrder::ByAlternative(vec![BY_FAMILY_NAME_KEY]),
            (PatientSort::Name, Some(_)) => MatchOrder::Together(BY_FAMILY_NAME_KEY),
            (PatientSort::CreatedAt, _) => MatchOrder::Together(PatientSort::CreatedAt.columns()),
        };
        return fetch_page_of_matches(conn, filtered(filter), Vec::new(), order, page, to_domain).await;
    }
    let order = filter.sort.columns();
    let selection =
        if filter.selects_all() { Selection::WholeTable(CountedTable::Patients) } else { Selection::Filtered };
    let in_order = |query: Select<Entity>| order.iter().fold(query, |query, column| query.order_by_asc(*column));
    fetch_page(conn, filtered(filter), selection, in_order, page, to_domain).await
}

#[cfg(test)]
mod tests {
    use super::after_every_string_starting;

    #[test]
    fn the_end_of_a_prefix_range_follows_every_string_that_starts_with_it() {
        assert_eq!(after_every_string_starting("lov").as_deref(), Some("low"));
        assert_eq!(after_every_string_starting("éz").as_deref(), Some("é{"));
        assert_eq!(after_every_string_starting("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(after_every_string_starting("b\u{10FFFF}").as_deref(), Some("c"));
        assert_eq!(after_every_string_starting("\u{10FFFF}"), None);
        assert_eq!(after_every_string_starting(""), None);
        for (prefix, string) in [("lov", "lovelace"), ("lov", "lov"), ("a\u{D7FF}", "a\u{D7FF}\u{10FFFF}")] {
            assert!(string < after_every_string_starting(prefix).unwrap().as_str(), "{string}");
        }
    }
}
