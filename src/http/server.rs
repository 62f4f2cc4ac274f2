//! The HTTP/1.1 server loop: what a client may make the server spend before it has sent a request
//! is bounded here. `axum::serve` bounds nothing: connections that sent their headers at a byte a
//! second, sent nothing at all, or idled between requests stayed open for more than five minutes.
//!
//! - At most `max_connections` are open; one more is answered 503 `overloaded` and closed.
//! - A request head must arrive within `header_read` of its first byte, and a connection may idle
//!   (before a first request, between requests, while a client does not read its response) for at
//!   most `idle`. Both are enforced by a watchdog per connection that sleeps until the deadline of
//!   the connection's current phase; hyper's own header timer cannot tell idling from a slow head.
//! - A request head may be at most `MAX_HEAD_BYTES`, so an open connection holds little memory.
//! - The request body's own limits (size, read time) are `http::body`'s; the time to answer once
//!   the request is in is `http::deadline`'s.
//! - Requests hyper refuses before any route sees them (a bad request line, headers too large, a
//!   duplicate `Content-Length`) get a problem+json body like every other error; hyper itself would
//!   send an empty one.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use super::problem::Problem;
use crate::error::ProblemCode;
use crate::shutdown::{self, Shutdown};
use crate::telemetry::metrics::{Metrics, PhaseLabels, StatusLabels};

/// Largest request head (request line and headers); beyond it the request is answered 431.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// The limits of `HEALTHCORE_HTTP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read: Duration,
    pub idle: Duration,
}

impl From<&crate::config::HttpLimits> for ConnectionLimits {
    fn from(limits: &crate::config::HttpLimits) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: limits.max_connections,
            header_read: Duration::from_millis(limits.header_timeout_ms),
            idle: Duration::from_millis(limits.idle_timeout_ms),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets requests in
/// flight finish (idle connections close at once) and returns when every connection has closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = shutdown::channel();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, say: pause rather than spin.
                    tracing::warn!(error = %err, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let connection = Connection { app: app.clone(), limits, metrics: metrics.clone(), _slot: slot };
                connections.spawn(connection.serve(stream, peer, stopping.clone()));
            }
            Err(_) => {
                metrics.http.connections_refused.inc();
                connections.spawn(refuse(stream));
            }
        }
    }
    drop(listener);
    stop.stop();
    while connections.join_next().await.is_some() {}
}

/// The answer to a connection over the cap: 503 and close, without reading a request.
async fn refuse(mut stream: TcpStream) {
    let response = problem_response(
        StatusCode::SERVICE_UNAVAILABLE,
        ProblemCode::Overloaded,
        "too many connections are open; retry shortly",
        &[("retry-after", "1")],
    );
    let answered = async {
        stream.write_all(&response).await?;
        stream.shutdown().await?;
        // Closing with a request still unread would reset the connection and could lose the
        // answer: read what the client sent, briefly.
        let mut discard = [0u8; 4096];
        while stream.read(&mut discard).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answered).await;
}

struct Connection {
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: SocketAddr, mut stopping: Shutdown) {
        let metrics = self.metrics.clone();
        metrics.http.connections.inc();
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
            rewrite: None,
            metrics: metrics.clone(),
        });
        let (app, serving) = (self.app.clone(), activity.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let request = request.map(axum::body::Body::new);
            let busy = serving.request_started();
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
                drop(busy);
                response
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .max_buf_size(MAX_HEAD_BYTES)
            .max_header_size(MAX_HEAD_BYTES)
            .serve_connection(io, service);
        tokio::pin!(connection);
        let mut draining = stopping.is_shutdown();
        if draining {
            connection.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                _ = connection.as_mut() => break,
                phase = activity.expired(self.limits) => {
                    metrics.http.connection_timeouts.get_or_create(&PhaseLabels { phase }).inc();
                    break;
                }
                () = stopping.recv(), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
        metrics.http.connections.dec();
    }
}

/// What a connection is doing, for its watchdog: idling (since when), receiving a request head
/// (since its first byte), or serving requests (no deadline here: `http::body` and
/// `http::deadline` bound that).
#[derive(Debug, Clone, Copy)]
enum Phase {
    Idle(Instant),
    Head(Instant),
    Serving(usize),
}

struct Activity {
    phase: Mutex<Phase>,
    /// Wakes the watchdog when a deadline may have moved earlier (a head started, serving ended).
    changed: Notify,
    /// Responses the application owes: a response head written when none is owed is hyper's own.
    owed_responses: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            changed: Notify::new(),
            owed_responses: AtomicUsize::new(0),
        }
    }

    fn update(&self, next: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        *phase = next(*phase);
    }

    fn bytes_read(&self) {
        let mut started = false;
        self.update(|phase| match phase {
            Phase::Idle(_) => {
                started = true;
                Phase::Head(Instant::now())
            }
            other => other,
        });
        if started {
            self.changed.notify_one();
        }
    }

    fn request_started(self: &Arc<Self>) -> Busy {
        self.owed_responses.fetch_add(1, Ordering::Relaxed);
        self.update(|phase| match phase {
            Phase::Serving(n) => Phase::Serving(n + 1),
            _ => Phase::Serving(1),
        });
        Busy(self.clone())
    }

    /// Whether a response head being written is one the application owes (and now paid).
    fn pay_response(&self) -> bool {
        self.owed_responses.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }

    fn deadline(&self, limits: ConnectionLimits) -> Option<(Instant, &'static str)> {
        match *self.phase.lock().unwrap_or_else(|e| e.into_inner()) {
            Phase::Idle(since) => Some((since + limits.idle, "idle")),
            Phase::Head(since) => Some((since + limits.header_read, "header")),
            Phase::Serving(_) => None,
        }
    }

    /// Resolves with the phase whose deadline passed.
    async fn expired(&self, limits: ConnectionLimits) -> &'static str {
        loop {
            match self.deadline(limits) {
                None => self.changed.notified().await,
                Some((at, phase)) if Instant::now() >= at => return phase,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// A request being served; when the last one ends the connection is idle again.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.update(|phase| match phase {
            Phase::Serving(n) if n > 1 => Phase::Serving(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
        self.0.changed.notify_one();
    }
}

/// The connection's socket, telling its `Activity` when bytes arrive, and answering with a
/// problem+json body in place of the empty error response hyper writes for a request it could
/// not parse.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// The problem response replacing hyper's, and how much of it is written.
    rewrite: Option<(Vec<u8>, usize)>,
    metrics: Arc<Metrics>,
}

impl Watched {
    fn drain_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some((bytes, written)) = &mut self.rewrite {
            while *written < bytes.len() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The status of a response head at the start of `buf`, if it is one.
fn response_status(buf: &[u8]) -> Option<u16> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ").or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.rewrite.is_some() {
            // hyper's own response is replaced; whatever else it writes before closing is dropped.
            ready!(self.drain_rewrite(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        if let Some(status) = response_status(buf)
            && status >= 200
            && !self.activity.pay_response()
            && status >= 400
        {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            self.metrics.http.malformed_requests.get_or_create(&StatusLabels { status: status.as_u16() }).inc();
            let (code, detail) = match status {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                    (ProblemCode::HeadersTooLarge, "the request line and headers are larger than 32 KiB")
                }
                StatusCode::URI_TOO_LONG => (ProblemCode::UriTooLong, "the request target is too long"),
                _ => (
                    ProblemCode::BadRequest,
                    "the request is not valid HTTP/1.1 (request line, headers or Content-Length)",
                ),
            };
            self.rewrite = Some((problem_response(status, code, detail, &[]), 0));
            ready!(self.drain_rewrite(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain_rewrite(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.drain_rewrite(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A complete HTTP/1.1 problem+json response that closes the connection, for answers given
/// outside the router (it has its own correlation ID: there was no request to take one from).
fn problem_response(status: StatusCode, code: ProblemCode, detail: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut problem = Problem::new(status, code, detail);
    let correlation_id = uuid::Uuid::new_v4().to_string();
    problem.correlation_id = Some(correlation_id.clone());
    let body = serde_json::to_string(&problem).unwrap_or_default();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\nx-correlation-id: {correlation_id}\r\n\
         cache-control: no-store\r\nx-content-type-options: nosniff\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        super::problem::CONTENT_TYPE,
        body.len(),
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_are_recognised_by_their_status_line() {
        assert_eq!(response_status(b"HTTP/1.1 400 Bad Request\r\n"), Some(400));
        assert_eq!(response_status(b"HTTP/1.0 431 Request Header Fields Too Large\r\n"), Some(431));
        assert_eq!(response_status(b"{\"id\": 1}"), None);
        assert_eq!(response_status(b"HTTP/1.1 "), None);
    }

    #[test]
    fn a_problem_response_is_complete_and_closes_the_connection() {
        let bytes = problem_response(StatusCode::BAD_REQUEST, ProblemCode::BadRequest, "nope", &[]);
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["type"], "https://healthcore.dev/problems/bad-request");
    }
}
