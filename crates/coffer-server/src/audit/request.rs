//! Recording API requests, and who the client is.
//!
//! The client's address is decided once, by the outermost layer
//! ([`client_address`]) and kept for the request's task, so the console's
//! in-process calls to the API record the browser's address, not the
//! server's. It is the connection's peer, unless the peer is one of
//! `server.trusted_proxies`: then the right-most address of
//! `X-Forwarded-For` that is not a trusted proxy (a client can prepend
//! anything to that header; only what trusted proxies appended counts).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::catalog::AuditEvent;
use crate::state::Shared;

tokio::task_local! {
    /// The client's address for the request this task serves.
    static CLIENT: Option<String>;
}

/// Who made a request: set on the response by whoever authenticated it
/// (the route guard, the login), read by [`record`].
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// The client behind `peer`, given the `X-Forwarded-For` header and the
/// proxies trusted to have written it.
pub fn client_of(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(list) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in list.rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            // Garbage where a proxy would have written an address: believe
            // nothing further left.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// The outermost layer: decides the client's address for the request and
/// everything it calls in-process.
pub async fn client_address(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if CLIENT.try_with(|_| ()).is_ok() {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let client = peer.map(|p| client_of(p, forwarded, &state.config.trusted_proxies).to_string());
    CLIENT.scope(client, next.run(req)).await
}

/// Reads that take data out of the installation: recorded like changes.
const DOWNLOADS: &[&str] = &[
    "/api/v1/exports/{id}/download",
    "/api/v1/components/{name}/backup",
    "/api/v1/backup/{name}",
];

/// Appends every state-changing request and every download, once
/// answered, to the audit log.
pub async fn record(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no such route)".to_owned(), |m| m.as_str().to_owned());
    let read = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if read && !DOWNLOADS.contains(&route.as_str()) {
        return next.run(req).await;
    }
    let action = format!("{} {route}", req.method());
    let subject = req.uri().path().to_owned();
    let response = next.run(req).await;
    let actor = response
        .extensions()
        .get::<Actor>()
        .map_or_else(|| "anonymous".to_owned(), |a| a.0.clone());
    let event = AuditEvent {
        actor,
        address: CLIENT.try_with(Clone::clone).ok().flatten(),
        action,
        subject,
        outcome: response.status().as_u16().to_string(),
    };
    let appended = tokio::task::spawn_blocking(move || state.catalog.append_audit(event)).await;
    match appended {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!("the audit log missed a request: {e}"),
        Err(e) => tracing::error!("the audit log missed a request: {e}"),
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_proxies_say_who_the_client_is() {
        let trusted: Vec<IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ];
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(
            client_of(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // Through one trusted proxy.
        assert_eq!(
            client_of(ip("10.0.0.2"), Some("198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        // A client that prepends a lie: the proxy appended the real address.
        assert_eq!(
            client_of(ip("10.0.0.2"), Some("1.2.3.4, 198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        // Two trusted proxies in a row.
        assert_eq!(
            client_of(ip("127.0.0.1"), Some("198.51.100.7, 10.1.1.1"), &trusted),
            ip("198.51.100.7")
        );
        // No header, or garbage: the proxy itself.
        assert_eq!(client_of(ip("10.0.0.2"), None, &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_of(ip("10.0.0.2"), Some("nonsense"), &trusted),
            ip("10.0.0.2")
        );
        // Nothing trusted: the peer.
        assert_eq!(
            client_of(ip("10.0.0.2"), Some("198.51.100.7"), &[]),
            ip("10.0.0.2")
        );
    }
}
