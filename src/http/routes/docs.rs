//! The interactive API documentation at `/api/docs`: Swagger UI, whose JavaScript and CSS come
//! embedded from the `swagger-ui-dist` crate (nothing is fetched at build or run time), over the
//! served OpenAPI document. The page and its start-up script are ours: the crate's own index page
//! writes the request's URI into its HTML, so only its two assets are served, by delegating to
//! the crate's router. Every script is a file of this origin, so the page's Content-Security-Policy
//! allows no inline script and no other origin.

use std::sync::LazyLock;

use axum::{
    Router,
    body::Body,
    extract::Request,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use tower::ServiceExt;

/// Where the page and its assets are served.
pub const PREFIX: &str = "/api/docs";

/// Scripts and styles from this origin only (Swagger UI styles elements inline); calls to this
/// origin only; images may be inline data (Swagger UI's icons).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                      img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

static ASSETS: LazyLock<Router> = LazyLock::new(|| {
    swagger_ui_dist::generate_routes(swagger_ui_dist::ApiDefinition {
        uri_prefix: PREFIX,
        api_definition: swagger_ui_dist::OpenApiSource::Uri("/api/openapi.json"),
        title: Some("HealthCore API"),
    })
});

fn with_policy(response: impl IntoResponse, content_type: &'static str) -> Response {
    let mut response = response.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    response
}

pub async fn page() -> Response {
    with_policy(include_str!("docs.html"), "text/html; charset=utf-8")
}

pub async fn script() -> Response {
    with_policy(include_str!("docs.js"), "text/javascript; charset=utf-8")
}

/// `swagger-ui-bundle.js` or `swagger-ui.css`, from the crate.
pub async fn asset(request: Request) -> Response {
    let uri = request.uri().clone();
    let forwarded = Request::get(uri).body(Body::empty()).expect("a GET of a known path is a valid request");
    match ASSETS.clone().oneshot(forwarded).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
