//! Route handlers: parse the request, call one service function, shape the response.

pub mod analytics;
pub mod appointments;
pub mod audit;
pub mod auth;
pub mod docs;
pub mod health;
pub mod integrations;
pub mod notifications;
pub mod patients;
pub mod practitioners;
pub mod users;

use serde::Serialize;
use utoipa::ToSchema;

/// Pagination facts returned with every list.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageInfo {
    /// Number of items matching the filters, across all pages. A filtered list stops counting a
    /// hundred matches past the page's end (`offset` + `limit` + 100), and not before 1,000 (a
    /// patient name search, by `name`, FHIR's `name`, `family` or `given`, at the hundred): when
    /// more match, this is where it stopped and `total_is_exact` is false. Unfiltered lists count
    /// every match.
    pub total: u64,
    /// Whether `total` is the number of matches, or only a lower bound of it.
    pub total_is_exact: bool,
    pub limit: u64,
    pub offset: u64,
}

impl<T> From<&crate::store::Page<T>> for PageInfo {
    fn from(page: &crate::store::Page<T>) -> Self {
        PageInfo { total: page.total, total_is_exact: page.total_is_exact, limit: page.limit, offset: page.offset }
    }
}
