//! What an unauthenticated client can make the server spend is bounded: memory for password
//! checks, connections, and the time a connection may take to send its request.

use serde_json::json;

use crate::helpers::ServeProcess;

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
    let server = ServeProcess::start(&folder, &[]).await;
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
