//! A real HTTP server on a loopback port that plays a webhook receiver: it records every request
//! and answers with the status the test scripts (a queue of answers, then a default).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a webhook body is JSON")
    }
}

#[derive(Default)]
struct Script {
    answers: VecDeque<StatusCode>,
    default: Option<StatusCode>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct WebhookReceiver {
    pub base_url: String,
    script: Arc<Mutex<Script>>,
    arrived: Arc<tokio::sync::Notify>,
}

async fn receive(
    State(receiver): State<WebhookReceiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let status = {
        let mut script = receiver.script.lock().unwrap();
        script.received.push(Received { path: uri.path().to_owned(), headers, body });
        let default = script.default.unwrap_or(StatusCode::OK);
        script.answers.pop_front().unwrap_or(default)
    };
    receiver.arrived.notify_waiters();
    status
}

impl WebhookReceiver {
    pub async fn start() -> WebhookReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = WebhookReceiver {
            base_url: format!("http://{}", listener.local_addr().unwrap()),
            script: Default::default(),
            arrived: Default::default(),
        };
        let app = axum::Router::new().route("/{*path}", post(receive)).with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The next requests are answered with these statuses, in order.
    pub fn answer_next(&self, statuses: &[u16]) {
        let mut script = self.script.lock().unwrap();
        script.answers.extend(statuses.iter().map(|s| StatusCode::from_u16(*s).unwrap()));
    }

    /// Requests beyond the scripted ones are answered with this status (200 unless set).
    pub fn answer_always(&self, status: u16) {
        self.script.lock().unwrap().default = Some(StatusCode::from_u16(status).unwrap());
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    /// Waits (at most 30 s) until `count` requests to `path` have arrived and returns them.
    pub async fn wait_for(&self, path: &str, count: usize) -> Vec<Received> {
        let what = format!("{count} webhook requests to {path}");
        self.wait_until(&what, Duration::from_secs(30), |received| {
            let matching: Vec<Received> = received.into_iter().filter(|r| r.path == path).collect();
            (matching.len() >= count).then_some(matching)
        })
        .await
    }

    /// Waits (at most `within`) until `check` finds what it looks for among the requests received
    /// so far, and returns what it found.
    pub async fn wait_until<T>(&self, what: &str, within: Duration, check: impl Fn(Vec<Received>) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            if let Some(found) = check(self.received()) {
                return found;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("{what} did not arrive within {within:?}; received {} requests", self.received().len());
            }
        }
    }
}

/// Checks a delivery's signature the way a receiver would, independently of HealthCore's code:
/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, with a timestamp no older than 5 minutes.
pub fn signature_is_valid(received: &Received, secret: &str) -> bool {
    use hmac::{Hmac, Mac};
    let header = received.header("x-healthcore-signature");
    let Some((t, v1)) = header.strip_prefix("t=").and_then(|rest| rest.split_once(",v1=")) else { return false };
    let Ok(timestamp) = t.parse::<i64>() else { return false };
    if (chrono::Utc::now().timestamp() - timestamp).abs() > 300 {
        return false;
    }
    let Ok(expected) = hex::decode(v1) else { return false };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&received.body);
    mac.verify_slice(&expected).is_ok()
}
