use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_subscriptions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// A JSON array of event type names, or `["*"]` for every type.
    pub event_types: String,
    pub callback_url: String,
    /// The HMAC key deliveries are signed with. Never returned by the API after creation.
    pub secret: String,
    pub active: bool,
    pub consecutive_failures: i32,
    pub disabled_reason: Option<String>,
    pub created_by: Option<Uuid>,
    /// `envelope` (the event as published) or `fhir-id-only` (a FHIR notification Bundle).
    pub payload: String,
    /// How many events this subscription was notified of: the FHIR notifications' event numbers.
    pub events_notified: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
