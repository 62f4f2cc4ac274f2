//! What the application layer knows about the request it serves: who asks, and where from (the trace travels with the `tracing` span, see `telemetry::traces`).

use crate::auth::Principal;

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub principal: Principal,
    pub correlation_id: String,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
}

/// The context of a request that has not (yet) authenticated: a login attempt.
#[derive(Debug, Clone)]
pub struct AnonymousContext {
    pub correlation_id: String,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
}
