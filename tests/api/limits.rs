//! What an unauthenticated client can make the server spend is bounded: memory for password
//! checks, connections, and the time a connection may take to send its request.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, ServeProcess, TestApp};

/// The API container's memory limit in `deploy/kubernetes/api.yaml`, in bytes.
fn documented_memory_limit() -> u64 {
    let manifests = crate::deployment::documents(&crate::deployment::path("deploy/kubernetes/api.yaml"));
    let deployment = manifests.iter().find(|m| m["kind"] == "Deployment").expect("the API Deployment");
    let limit = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
        .as_str()
        .expect("a memory limit");
    let mebibytes: u64 = limit.strip_suffix("Mi").expect("the limit is given in Mi").parse().unwrap();
    mebibytes << 20
}

fn temp_folder(prefix: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{prefix}_{}", uuid::Uuid::new_v4().simple()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_logins_keep_memory_under_the_documented_limit() {
    let folder = temp_folder("hc_login_memory");
    // One client's burst of distinct names: the address throttle would (rightly) refuse most of
    // them before any hashing, so it is lifted here to measure the hashing bound itself.
    let settings = [("HEALTHCORE_LOGIN_ADDRESS_FREE_ATTEMPTS", "1000000".to_owned())];
    let server = ServeProcess::start(&folder, &settings).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut logins = tokio::task::JoinSet::new();
    for n in 0..200 {
        let (client, url) = (client.clone(), server.url("/api/v1/auth/token"));
        // A different account name each: one client's burst, not one account's.
        let body = json!({"username": format!("nobody-{n}"), "password": "not-the-password"});
        logins.spawn(async move { client.post(url).json(&body).send().await.unwrap() });
    }
    let (mut checked, mut shed) = (0, 0);
    while let Some(response) = logins.join_next().await {
        let response = response.unwrap();
        match response.status().as_u16() {
            401 => checked += 1,
            503 => {
                let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok());
                assert!(retry_after.is_some_and(|v| v.parse::<u64>().is_ok()), "503 without Retry-After");
                let problem: serde_json::Value = response.json().await.unwrap();
                assert_eq!(problem["type"], "https://healthcore.dev/problems/overloaded");
                shed += 1;
            }
            other => panic!("a login was answered {other}"),
        }
    }
    let peak = server.peak_rss();
    let limit = documented_memory_limit();
    eprintln!("200 logins: {checked} checked, {shed} shed; peak RSS {} MiB (limit {} MiB)", peak >> 20, limit >> 20);
    assert!(checked > 0, "some logins were checked");
    assert!(peak < limit, "peak RSS {} MiB is over the documented {} MiB", peak >> 20, limit >> 20);
    assert!(server.stop());
    std::fs::remove_dir_all(&folder).unwrap();
}

/// A raw TCP connection to the app, for what an HTTP client library would not send.
async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base_url.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the server closes the connection (or `within` passes: then `None`).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    read.ok().map(|_| String::from_utf8_lossy(&received).into_owned())
}

/// The status and problem body of a raw HTTP/1.1 response.
fn problem_of(response: &str) -> (u16, serde_json::Value) {
    let status =
        response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {response:?}"));
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head in {response:?}"));
    assert!(head.to_ascii_lowercase().contains("content-type: application/problem+json"), "{head}");
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}")))
}

const TIGHT: &[(&str, &str)] = &[
    ("HEALTHCORE_HTTP_HEADER_TIMEOUT_MS", "600"),
    ("HEALTHCORE_HTTP_IDLE_TIMEOUT_MS", "800"),
    ("HEALTHCORE_HTTP_BODY_TIMEOUT_MS", "600"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_sent_a_byte_at_a_time_is_cut_off() {
    let app = TestApp::spawn_with(Backend::Sqlite, TIGHT).await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    let mut closed = false;
    for byte in b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().chain([b'a'; 100].iter()) {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let closed = closed || read_until_closed(&mut stream, Duration::from_secs(2)).await.is_some();
    assert!(closed, "the slow head was still being accepted after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(3), "closed only after {:?}", started.elapsed());
    assert!(scrape(&app).await.contains("healthcore_http_connection_timeouts_total{phase=\"header\"} 1"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_keep_alive_connections_are_closed() {
    let app = TestApp::spawn_with(Backend::Sqlite, TIGHT).await;
    let mut silent = connect(&app).await;
    let started = Instant::now();
    assert_eq!(read_until_closed(&mut silent, Duration::from_secs(3)).await.as_deref(), Some(""));
    assert!(started.elapsed() >= Duration::from_millis(700), "closed too early: {:?}", started.elapsed());

    let mut kept_alive = connect(&app).await;
    kept_alive.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let answered = Instant::now();
    let response = read_until_closed(&mut kept_alive, Duration::from_secs(3)).await.expect("closed after idling");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(answered.elapsed() >= Duration::from_millis(700), "closed too early: {:?}", answered.elapsed());
    // The test client's own pooled connection idles out too.
    let idle = counter(&scrape(&app).await, "healthcore_http_connection_timeouts_total{phase=\"idle\"}");
    assert!(idle >= 2.0, "{idle} idle connections closed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_limit_declared_length_is_refused_before_the_body_and_a_slow_body_times_out() {
    let app = TestApp::spawn_with(Backend::Sqlite, TIGHT).await;
    let mut huge = connect(&app).await;
    let head = format!(
        "POST /api/v1/patients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
        app.admin_token
    );
    huge.write_all(head.as_bytes()).await.unwrap();
    let response = read_until_closed(&mut huge, Duration::from_secs(2)).await.expect("answered without the body");
    let (status, problem) = problem_of(&response);
    assert_eq!((status, problem["type"].as_str()), (413, Some("https://healthcore.dev/problems/payload-too-large")));

    let mut slow = connect(&app).await;
    let head = head.replace("1000000000", "100");
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(b"{\"given_name\":").await.unwrap();
    let response = read_until_closed(&mut slow, Duration::from_secs(3)).await.expect("answered in time");
    let (status, problem) = problem_of(&response);
    assert_eq!((status, problem["type"].as_str()), (408, Some("https://healthcore.dev/problems/request-timeout")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_with_503_until_one_closes() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("HEALTHCORE_HTTP_MAX_CONNECTIONS", "4")]).await;
    // The test client keeps its own pooled connection (logging in opened it): use no more.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&app).await);
    }
    let mut refused = connect(&app).await;
    refused.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let response = read_until_closed(&mut refused, Duration::from_secs(3)).await.expect("answered and closed");
    let (status, problem) = problem_of(&response);
    assert_eq!((status, problem["type"].as_str()), (503, Some("https://healthcore.dev/problems/overloaded")));
    assert!(response.to_ascii_lowercase().contains("retry-after: 1"), "{response}");
    drop(held.pop());
    crate::helpers::eventually("a slot to free up", || async {
        let mut stream = connect(&app).await;
        stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
        let response = read_until_closed(&mut stream, Duration::from_secs(2)).await?;
        response.starts_with("HTTP/1.1 200").then_some(())
    })
    .await;
    assert!(scrape(&app).await.contains("healthcore_http_connections_refused_total"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_http_parser_refuses_get_problem_bodies() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let cases: [(&str, String, u16); 4] = [
        ("a bad request line", "GARBAGE\r\n\r\n".to_owned(), 400),
        (
            "two Content-Length headers",
            "POST /api/v1/patients HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}".to_owned(),
            400,
        ),
        (
            "headers too large",
            format!("GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(40_000)),
            431,
        ),
        ("a header with a bad name", "GET /health/live HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n".to_owned(), 400),
    ];
    for (what, request, expected) in cases {
        let mut stream = connect(&app).await;
        stream.write_all(request.as_bytes()).await.unwrap();
        let response = read_until_closed(&mut stream, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("{what}: not answered and closed"));
        let (status, problem) = problem_of(&response);
        assert_eq!(status, expected, "{what}: {response}");
        assert_eq!(problem["status"], expected, "{what}");
        assert!(problem["correlation_id"].as_str().is_some_and(|id| !id.is_empty()), "{what}");
    }
    assert!(scrape(&app).await.contains("healthcore_http_malformed_requests_total{status=\"431\"} 1"));
    app.stop().await;
}

fn counter(scrape: &str, series: &str) -> f64 {
    scrape.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

async fn scrape(app: &TestApp) -> String {
    app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_database_and_its_folder_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let folder = temp_folder("hc_private");
    let server = ServeProcess::start(&folder, &[]).await;
    // A write, so that the write-ahead log and its index exist too.
    let client = reqwest::Client::new();
    let login = json!({"username": "admin", "password": "serve-process-test-password"});
    assert_eq!(client.post(server.url("/api/v1/auth/token")).json(&login).send().await.unwrap().status(), 200);
    let data = folder.join("data");
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data folder");
    for file in ["healthcore.db", "healthcore.db-wal", "healthcore.db-shm", "jwt-signing-key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert!(server.stop());
    // A database left readable by others (by an earlier version) is made private on the next start.
    std::fs::set_permissions(data.join("healthcore.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = ServeProcess::start(&folder, &[]).await;
    assert_eq!(mode(&data.join("healthcore.db")), 0o600);
    assert!(server.stop());
    std::fs::remove_dir_all(&folder).unwrap();
}
