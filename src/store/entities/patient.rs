use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "patients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub mrn: String,
    pub given_name: String,
    pub family_name: String,
    /// `validation::search_key` of the family name: what a name filter matches.
    pub family_name_key: String,
    pub given_name_key: String,
    pub birth_date: Date,
    pub sex: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub active: bool,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// By position: a patient is read on every get and twenty times a page of the list.
impl crate::store::rows::ReadRow for Model {
    fn read_row(row: &sea_orm::QueryResult) -> Result<Self, DbErr> {
        use crate::store::rows::column;
        Ok(Model {
            id: column(row, Column::Id as usize)?,
            mrn: column(row, Column::Mrn as usize)?,
            given_name: column(row, Column::GivenName as usize)?,
            family_name: column(row, Column::FamilyName as usize)?,
            family_name_key: column(row, Column::FamilyNameKey as usize)?,
            given_name_key: column(row, Column::GivenNameKey as usize)?,
            birth_date: column(row, Column::BirthDate as usize)?,
            sex: column(row, Column::Sex as usize)?,
            email: column(row, Column::Email as usize)?,
            phone: column(row, Column::Phone as usize)?,
            address: column(row, Column::Address as usize)?,
            active: column(row, Column::Active as usize)?,
            version: column(row, Column::Version as usize)?,
            created_at: column(row, Column::CreatedAt as usize)?,
            updated_at: column(row, Column::UpdatedAt as usize)?,
        })
    }
}
