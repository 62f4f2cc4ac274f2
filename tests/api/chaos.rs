//! Database partitions, drilled through a TCP proxy between HealthCore and PostgreSQL (the pattern
//! of crates.io's `ChaosProxy`), in four ways a network fails:
//!
//! - **reset**: every connection is reset, and new ones are reset as they arrive;
//! - **stall**: bytes stop moving, connections stay open; when the network returns they move again;
//! - **blackhole, then drop**: bytes stop moving, then every connection is closed;
//! - **half-open**: the database side is gone but HealthCore's side never hears of it: its
//!   connections stay open and silent for good, also after the network returns.
//!
//! During each fault every request must be answered 503 problem+json within 5 s and readiness must
//! say 503; within 5 s of the network returning everything must answer again, without a restart,
//! and every write that was acknowledged must be in the database.

use std::time::{Duration, Instant};

use healthcore::testing::shutdown::{self, Shutdown};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use uuid::Uuid;

use crate::helpers::{TestApp, patient_body};

/// What the network between HealthCore and PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network {
    Up,
    /// Nothing moves; connections stay open; new ones are accepted and left waiting.
    Stalled,
    /// Every connection is reset; new ones are reset as they arrive.
    Reset,
    /// Every connection is closed; new ones are accepted and left waiting.
    Dropped,
    /// Connections open now are dead for good on the database side and silent on ours; new ones
    /// are accepted and left waiting.
    HalfOpen,
}

struct ChaosProxy {
    port: u16,
    network: watch::Sender<Network>,
    accepting: tokio::task::JoinHandle<()>,
}

impl ChaosProxy {
    fn start(upstream: String) -> ChaosProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (network, watching) = watch::channel(Network::Up);
        let accepting = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(relay(client, upstream.clone(), watching.clone()));
            }
        });
        ChaosProxy { port, network, accepting }
    }

    fn set(&self, network: Network) {
        self.network.send_replace(network);
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every connection's task.
        self.accepting.abort();
    }
}

fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn relay(client: TcpStream, upstream: String, mut network: watch::Receiver<Network>) {
    // A connection that arrives during a fault waits for the network (or is reset).
    loop {
        match *network.borrow_and_update() {
            Network::Up => break,
            Network::Reset => return reset(client),
            _ => {}
        }
        if network.changed().await.is_err() {
            return;
        }
    }
    let Ok(server) = TcpStream::connect(&upstream).await else { return reset(client) };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (mut up, mut down) = (vec![0u8; 16384], vec![0u8; 16384]);
    let fault = loop {
        let moving = *network.borrow_and_update() == Network::Up;
        tokio::select! {
            read = client_read.read(&mut up), if moving => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if server_write.write_all(&up[..n]).await.is_err() { return },
            },
            read = server_read.read(&mut down), if moving => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if client_write.write_all(&down[..n]).await.is_err() { return },
            },
            changed = network.changed() => match changed.map(|_| *network.borrow()) {
                Err(_) => return,
                Ok(Network::Up | Network::Stalled) => {}
                Ok(fault) => break fault,
            },
        }
    };
    match fault {
        Network::Reset => {
            if let (Ok(client), Ok(server)) = (client_read.reunite(client_write), server_read.reunite(server_write)) {
                reset(client);
                reset(server);
            }
        }
        Network::HalfOpen => {
            // The database side goes; ours is kept, silent, until the proxy is dropped.
            drop((server_read, server_write));
            let _held = (client_read, client_write);
            std::future::pending::<()>().await;
        }
        _ => {}
    }
}

/// Tight limits, as production would have them, so that the drill runs in seconds.
const LIMITS: &[(&str, &str)] = &[
    ("HEALTHCORE_DB_ACQUIRE_TIMEOUT_MS", "1000"),
    ("HEALTHCORE_DB_STATEMENT_TIMEOUT_MS", "1000"),
    ("HEALTHCORE_REQUEST_TIMEOUT_MS", "4000"),
    ("HEALTHCORE_DB_MAX_CONNECTIONS", "8"),
];

/// The longest a request may take to be answered during the fault.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How soon after the network returns everything must answer again.
const RECOVER_WITHIN: Duration = Duration::from_secs(5);

/// Registrations sent one after another for as long as the drill runs; the ids of those answered
/// 201 are the acknowledged writes that must all be found afterwards.
fn keep_registering(app: &TestApp, stop: Shutdown) -> tokio::task::JoinHandle<Vec<Uuid>> {
    let (client, url, token) = (app.client.clone(), app.url("/api/v1/patients"), app.admin_token.clone());
    tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        while !stop.is_shutdown() {
            let sent = client.post(&url).bearer_auth(&token).json(&patient_body("Ada", "Lovelace")).send().await;
            if let Ok(response) = sent
                && response.status() == 201
            {
                let body: serde_json::Value = response.json().await.unwrap();
                acknowledged.push(body["id"].as_str().unwrap().parse().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        acknowledged
    })
}

/// A request during the fault: answered 503 problem+json, within `ANSWER_WITHIN`.
async fn assert_refused_in_time(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) {
    let started = Instant::now();
    let reply = app.call(method.clone(), path, token, body).await;
    let took = started.elapsed();
    assert!(took <= ANSWER_WITHIN, "{method} {path} took {took:?} during the fault");
    assert_eq!(reply.status, 503, "{method} {path} during the fault: {:#}", reply.body);
    if path != "/health/ready" {
        assert_eq!(reply.header("content-type"), Some("application/problem+json"), "{method} {path}");
        assert!(reply.header("retry-after").is_some(), "{method} {path} has no Retry-After");
    }
}

/// `host:port` of a `postgres://user@host:port/database` URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['/', '?']).next().unwrap()
}

async fn drill(fault: Network) {
    let mut upstream = String::new();
    let mut proxy = None;
    let app = TestApp::spawn_postgres_via(
        |url| {
            upstream = authority(url).to_owned();
            let started = ChaosProxy::start(upstream.clone());
            let rewritten = url.replacen(&upstream, &format!("127.0.0.1:{}", started.port), 1);
            proxy = Some(started);
            rewritten
        },
        LIMITS,
    )
    .await;
    let proxy = proxy.expect("the proxy started");
    let patient = app.create_patient("Grace", "Hopper").await;
    let read = format!("/api/v1/patients/{patient}");
    app.get(&read, &app.admin_token).await.expect(200);
    let (stop, stopping) = shutdown::channel();
    let registering = keep_registering(&app, stopping);

    proxy.set(if fault == Network::Dropped { Network::Stalled } else { fault });
    if fault == Network::Dropped {
        // The blackhole first: requests in flight wait on connections that answer nothing...
        assert_refused_in_time(&app, Method::GET, &read, Some(&app.admin_token), None).await;
        // ...then the connections are dropped.
        proxy.set(Network::Dropped);
    }
    for _ in 0..2 {
        assert_refused_in_time(&app, Method::GET, &read, Some(&app.admin_token), None).await;
        assert_refused_in_time(&app, Method::GET, "/api/v1/patients?limit=5", Some(&app.admin_token), None).await;
        let login = json!({"username": "admin", "password": crate::helpers::ADMIN_PASSWORD});
        assert_refused_in_time(&app, Method::POST, "/api/v1/auth/token", None, Some(login)).await;
        assert_refused_in_time(
            &app,
            Method::POST,
            "/api/v1/patients",
            Some(&app.admin_token),
            Some(patient_body("Ada", "Lovelace")),
        )
        .await;
        assert_refused_in_time(&app, Method::GET, "/health/ready", None, None).await;
    }
    app.call(Method::GET, "/health/live", None, None).await.expect(200);

    proxy.set(Network::Up);
    let returned = Instant::now();
    loop {
        let ready = app.call(Method::GET, "/health/ready", None, None).await;
        let read_back = app.get(&read, &app.admin_token).await;
        if ready.status == 200 && read_back.status == 200 {
            break;
        }
        assert!(
            returned.elapsed() < RECOVER_WITHIN,
            "not recovered {:?} after the network returned: ready {} {:#}, read {} {:#}",
            returned.elapsed(),
            ready.status,
            ready.body,
            read_back.status,
            read_back.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{fault:?}: recovered {:?} after the network returned", returned.elapsed());
    // Recovered means recovered: every request now succeeds, reads (and their audit records),
    // lists, sign-ins and writes alike.
    for _ in 0..10 {
        app.get(&read, &app.admin_token).await.expect(200);
        app.get("/api/v1/patients?limit=5", &app.admin_token).await.expect(200);
    }
    app.login("admin", crate::helpers::ADMIN_PASSWORD).await;
    app.create_patient("Katherine", "Johnson").await;

    stop.stop();
    let acknowledged = registering.await.unwrap();
    let direct = healthcore::testing::store::Store::connect(&app.database_url(), 1).await.unwrap();
    for id in &acknowledged {
        let found = healthcore::testing::store::patients::find(
            direct.db(),
            healthcore::testing::domain::PatientId::from_uuid(*id),
        )
        .await
        .unwrap();
        assert!(found.is_some(), "{fault:?}: the acknowledged registration {id} is missing");
    }
    eprintln!("{fault:?}: {} acknowledged registrations, all found", acknowledged.len());
    direct.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_network_gives_503_in_time_and_service_resumes_when_it_returns() {
    drill(Network::Reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_network_gives_503_in_time_and_service_resumes_when_it_returns() {
    drill(Network::Stalled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackhole_then_dropped_connections_give_503_in_time_and_service_resumes() {
    drill(Network::Dropped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_give_503_in_time_and_service_resumes_without_them() {
    drill(Network::HalfOpen).await;
}
