//! The API documentation page: a small self-contained HTML page that renders the served OpenAPI
//! document. Nothing is fetched from outside the service, at build time or at run time.

use axum::response::Html;

pub async fn page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
