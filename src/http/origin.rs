//! Where a request comes from: the connection's peer, or — when the peer is one of
//! `HEALTHCORE_TRUSTED_PROXIES` — the address that proxy reports in `X-Forwarded-For`. Audit
//! records name it, and sign-in throttling counts by it; behind a proxy that is not trusted every
//! request would seem to come from the proxy (and one attacker could lock all sign-ins out).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{Extensions, HeaderMap, header},
    middleware::Next,
    response::Response,
};

use super::correlation::CorrelationId;
use crate::config::TrustedProxies;
use crate::context::AnonymousContext;

/// The client address of a request, as `middleware` determined it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

/// The client: the peer, unless the peer is a trusted proxy; then, walking `X-Forwarded-For`
/// from the nearest hop back, the first address that is not a trusted proxy (an entry that does
/// not parse stops the walk: what lies beyond it is the client's own say-so).
fn client(trusted: &TrustedProxies, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if !trusted.trusts(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(address) = hop.parse::<IpAddr>() else { break };
        client = address;
        if !trusted.trusts(address) {
            break;
        }
    }
    client
}

pub async fn middleware(State(trusted): State<Arc<TrustedProxies>>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = peer.map(|peer| client(&trusted, peer, request.headers()));
    request.extensions_mut().insert(ClientAddr(client));
    next.run(request).await
}

/// The origin of a request for its audit records: correlation ID, client address, user agent.
pub fn origin(extensions: &Extensions, headers: &HeaderMap) -> AnonymousContext {
    AnonymousContext {
        correlation_id: extensions.get::<CorrelationId>().map(|c| c.0.clone()).unwrap_or_default(),
        client_addr: extensions.get::<ClientAddr>().and_then(|c| c.0).map(|ip| ip.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn a_trusted_proxy_is_believed_and_an_untrusted_peer_is_not() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, ::1").unwrap();
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client(&trusted, proxy, &forwarded("198.51.100.7")), "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(client(&trusted, stranger, &forwarded("198.51.100.7")), stranger);
        // A client cannot hide behind an address it writes itself: the nearest untrusted hop wins.
        let chain = forwarded("1.2.3.4, 198.51.100.7, 10.9.9.9");
        assert_eq!(client(&trusted, proxy, &chain), "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(client(&trusted, proxy, &forwarded("garbage, 10.9.9.9")), "10.9.9.9".parse::<IpAddr>().unwrap());
        assert_eq!(client(&trusted, proxy, &HeaderMap::new()), proxy);
    }
}
