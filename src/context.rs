//! What the application layer knows about the request it serves: who asks, and how to trace it.

use crate::auth::Principal;

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub principal: Principal,
    pub correlation_id: String,
    /// The W3C `traceparent` the request arrived with, if well-formed; stored with its events.
    pub traceparent: Option<String>,
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
