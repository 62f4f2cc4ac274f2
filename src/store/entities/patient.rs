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
