//! The `practitioners` table.

use sea_orm::sea_query::{ExprTrait, Func, InsertStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Select, prelude::Expr,
};

use super::entities::practitioner::{self, Column, Entity};
use super::patients::{name_starts_with, prefix_pattern};
use super::{Page, PageRequest, Selection, fetch_page};
use crate::domain::validation::search_key;
use crate::domain::{PersonName, Practitioner, PractitionerId, PractitionerRole};

#[derive(Debug, Clone, Default)]
pub struct PractitionerFilter {
    pub name_prefix: Option<String>,
    pub licence_prefix: Option<String>,
    pub role: Option<PractitionerRole>,
    pub active: Option<bool>,
    pub id: Option<PractitionerId>,
    /// The licence number, exactly.
    pub licence: Option<String>,
}

pub fn to_domain(row: practitioner::Model) -> Result<Practitioner, DbErr> {
    Ok(Practitioner {
        role: PractitionerRole::parse(&row.role)
            .map_err(|_| DbErr::Type(format!("practitioners.role holds '{}'", row.role)))?,
        id: PractitionerId::from_uuid(row.id),
        licence_number: row.licence_number,
        given_name: PersonName::stored(row.given_name),
        family_name: PersonName::stored(row.family_name),
        specialty: row.specialty,
        active: row.active,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn to_row(practitioner: &Practitioner) -> practitioner::Model {
    practitioner::Model {
        id: practitioner.id.as_uuid(),
        licence_number: practitioner.licence_number.clone(),
        given_name: practitioner.given_name.as_str().to_owned(),
        family_name: practitioner.family_name.as_str().to_owned(),
        family_name_key: search_key(practitioner.family_name.as_str()),
        given_name_key: search_key(practitioner.given_name.as_str()),
        role: practitioner.role.as_str().to_owned(),
        specialty: practitioner.specialty.clone(),
        active: practitioner.active,
        version: practitioner.version,
        created_at: practitioner.created_at,
        updated_at: practitioner.updated_at,
    }
}

/// The insert of a new practitioner's row, for a unit of work that writes it with its records
/// (`UnitOfWork::adding`).
pub fn insertion(practitioner: &Practitioner) -> InsertStatement {
    Entity::insert(to_row(practitioner).into_active_model()).into_query()
}

pub async fn find(conn: &impl ConnectionTrait, id: PractitionerId) -> Result<Option<Practitioner>, DbErr> {
    Entity::find_by_id(id).one(conn).await?.map(to_domain).transpose()
}

pub async fn find_for_update(conn: &impl ConnectionTrait, id: PractitionerId) -> Result<Option<Practitioner>, DbErr> {
    Entity::find_by_id(id).lock_exclusive().one(conn).await?.map(to_domain).transpose()
}

pub async fn update(conn: &impl ConnectionTrait, practitioner: &Practitioner) -> Result<(), DbErr> {
    to_row(practitioner).into_active_model().reset_all().update(conn).await?;
    Ok(())
}

fn filtered(filter: &PractitionerFilter) -> Select<Entity> {
    let mut query = Entity::find();
    if let Some(prefix) = &filter.name_prefix {
        let [family, given] = name_starts_with(Column::FamilyNameKey, Column::GivenNameKey, prefix);
        query = query.filter(family.or(given));
    }
    if let Some(prefix) = &filter.licence_prefix {
        query = query.filter(
            Expr::expr(Func::lower(Expr::col(Column::LicenceNumber))).like(prefix_pattern(&prefix.to_lowercase())),
        );
    }
    if let Some(role) = filter.role {
        query = query.filter(Column::Role.eq(role.as_str()));
    }
    if let Some(active) = filter.active {
        query = query.filter(Column::Active.eq(active));
    }
    if let Some(id) = filter.id {
        query = query.filter(Column::Id.eq(id));
    }
    if let Some(licence) = &filter.licence {
        query = query.filter(Column::LicenceNumber.eq(licence.as_str()));
    }
    query
}

pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &PractitionerFilter,
    page: PageRequest,
) -> Result<Page<Practitioner>, DbErr> {
    let order = |query: Select<Entity>| {
        query.order_by_asc(Column::FamilyName).order_by_asc(Column::GivenName).order_by_asc(Column::Id)
    };
    fetch_page(conn, filtered(filter), Selection::Filtered, order, page, to_domain).await
}
