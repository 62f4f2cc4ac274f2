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
use crate::context::AnonymousContext;

/// The client address of a request, as `middleware` determined it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

/// Addresses and CIDR blocks of reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// `10.0.0.0/8, 192.168.1.5, ::1`; `Err` names the entry that is neither an address nor a block.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let mut blocks = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (address, bits) = entry.split_once('/').unwrap_or((entry, ""));
            let address: IpAddr = address.parse().map_err(|_| format!("'{entry}' is not an address or CIDR block"))?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let bits = if bits.is_empty() {
                max
            } else {
                bits.parse::<u8>().map_err(|_| format!("'{entry}' has a bad prefix length"))?
            };
            if bits > max {
                return Err(format!("'{entry}' has a prefix longer than {max} bits"));
            }
            blocks.push((address, bits));
        }
        Ok(TrustedProxies(blocks))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|(block, bits)| match (block, address) {
            (IpAddr::V4(block), IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                u32::from(*block) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(block), IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                u128::from(*block) & mask == u128::from(address) & mask
            }
            _ => false,
        })
    }

    /// The client: the peer, unless the peer is a trusted proxy; then, walking `X-Forwarded-For`
    /// from the nearest hop back, the first address that is not a trusted proxy (an entry that does
    /// not parse stops the walk: what lies beyond it is the client's own say-so).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
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
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let blocks: Vec<String> = self.0.iter().map(|(address, bits)| format!("{address}/{bits}")).collect();
        f.write_str(&blocks.join(","))
    }
}

pub async fn middleware(State(trusted): State<Arc<TrustedProxies>>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = peer.map(|peer| trusted.client(peer, request.headers()));
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
        assert_eq!(trusted.client(proxy, &forwarded("198.51.100.7")), "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(trusted.client(stranger, &forwarded("198.51.100.7")), stranger);
        // A client cannot hide behind an address it writes itself: the nearest untrusted hop wins.
        let chain = forwarded("1.2.3.4, 198.51.100.7, 10.9.9.9");
        assert_eq!(trusted.client(proxy, &chain), "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(trusted.client(proxy, &forwarded("garbage, 10.9.9.9")), "10.9.9.9".parse::<IpAddr>().unwrap());
        assert_eq!(trusted.client(proxy, &HeaderMap::new()), proxy);
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(TrustedProxies::parse("10.0.0.0/33").unwrap_err().contains("10.0.0.0/33"));
        assert!(TrustedProxies::parse("proxy.local").unwrap_err().contains("proxy.local"));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
    }
}
