//! The relay as an operator runs it on PostgreSQL: several instances, one leader, and a leader
//! killed with SIGKILL in the middle of a batch without losing an event.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use healthcore::config::{KafkaConfig, RelayConfig};
use healthcore::testing::relay::Relay;
use healthcore::testing::store::{Store, outbox};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, healthcore_command};

fn broker() -> String {
    std::env::var("HEALTHCORE_TEST_KAFKA")
        .expect("HEALTHCORE_TEST_KAFKA names the test broker; ./scripts/test starts one")
}

fn kafka(prefix: &str) -> KafkaConfig {
    let settings = [
        ("KAFKA_BOOTSTRAP_SERVERS", broker()),
        ("KAFKA_TOPIC_PREFIX", prefix.to_owned()),
        ("HEALTHCORE_KAFKA_MESSAGE_TIMEOUT_MS", "5000".to_owned()),
        ("HEALTHCORE_KAFKA_TOPIC_PARTITIONS", "3".to_owned()),
    ];
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    crate::helpers::test_config("sqlite::memory:", &settings).kafka.expect("Kafka is configured")
}

async fn pending(store: &Store) -> u64 {
    outbox::backlog(store.db()).await.unwrap().pending
}

/// Writes `count` events straight into the outbox, in transactions of 100, as the API would.
async fn record_events(app: &TestApp, count: usize) {
    let patient = app.create_patient("Ada", "Lovelace").await;
    let row = healthcore::testing::store::patients::find(
        app.store.db(),
        healthcore::testing::domain::PatientId::from_uuid(patient),
    )
    .await
    .unwrap()
    .unwrap();
    let ctx = healthcore::testing::context::RequestContext {
        clock: Default::default(),
        principal: healthcore::testing::auth::Principal {
            user_id: healthcore::testing::domain::UserId::from_uuid(Uuid::nil()),
            role: healthcore::testing::domain::Role::Admin,
            patient_id: None,
        },
        correlation_id: "relay-test".into(),
        client_addr: None,
        user_agent: None,
        attempt: Default::default(),
    };
    for chunk in 0..count / 100 {
        let tx = app.store.begin_write().await.unwrap();
        let envelopes: Vec<_> = (0..100)
            .map(|i| {
                let mut event = healthcore::testing::events::patient_updated(&row, &["phone"]);
                event.aggregate_version = 2 + (chunk * 100 + i) as i64;
                healthcore::testing::events::Envelope::new(event, &ctx, chrono::Utc::now())
            })
            .collect();
        outbox::append(&tx, &envelopes, None).await.unwrap();
        tx.commit().await.unwrap();
    }
}

async fn wait_until(what: &str, within: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_relays_one_leads_and_the_other_takes_over_when_it_stops() {
    let prefix = format!("hc{}", Uuid::new_v4().simple());
    let app = TestApp::spawn_with(Backend::Postgres, &[("HEALTHCORE_RELAY_ENABLED", "false")]).await;
    let config = RelayConfig { enabled: true, max_age_seconds: 30, batch_size: 200, poll_ms: 50, retention_hours: 168 };
    let mut relays = Vec::new();
    for _ in 0..2 {
        let store = Store::connect(app.store.url(), 2).await.unwrap();
        let relay =
            Relay::new(store.clone(), kafka(&prefix), config.clone(), store.events_committed(), Default::default())
                .unwrap();
        let state = relay.state();
        let (stop, stopping) = healthcore::testing::shutdown::channel();
        let task = tokio::spawn(relay.run(stopping, Duration::from_secs(2)));
        relays.push((state, stop, task));
    }
    record_events(&app, 300).await;
    wait_until("the backlog drained", Duration::from_secs(30), async || pending(&app.store).await == 0).await;
    let leaders: Vec<bool> = relays.iter().map(|(state, _, _)| state.borrow().leader).collect();
    assert_eq!(leaders.iter().filter(|l| **l).count(), 1, "exactly one leader: {leaders:?}");

    let leader = leaders.iter().position(|l| *l).unwrap();
    let (_, stop, task) = relays.remove(leader);
    stop.stop();
    task.await.unwrap();
    let (follower_state, follower_stop, follower_task) = relays.remove(0);
    wait_until("the other relay leads", Duration::from_secs(10), async || follower_state.borrow().leader).await;
    record_events(&app, 100).await;
    wait_until("the new leader drained the backlog", Duration::from_secs(30), async || pending(&app.store).await == 0)
        .await;
    follower_stop.stop();
    follower_task.await.unwrap();
    app.stop().await;
}

fn spawn_relay(database_url: &str, prefix: &str) -> Child {
    spawn_relay_polling_every(database_url, prefix, 50)
}

fn spawn_relay_polling_every(database_url: &str, prefix: &str, poll_ms: u32) -> Child {
    healthcore_command()
        .arg("relay")
        .env("DATABASE_URL", database_url)
        .env("KAFKA_BOOTSTRAP_SERVERS", broker())
        .env("KAFKA_TOPIC_PREFIX", prefix)
        .env("HEALTHCORE_RELAY_BATCH_SIZE", "200")
        .env("HEALTHCORE_RELAY_POLL_MS", poll_ms.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the relay starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_batch_loses_no_event() {
    const EVENTS: usize = 3000;
    let prefix = format!("hc{}", Uuid::new_v4().simple());
    let app = TestApp::spawn_with(Backend::Postgres, &[("HEALTHCORE_RELAY_ENABLED", "false")]).await;
    record_events(&app, EVENTS).await;
    let total = pending(&app.store).await;
    let mut first = spawn_relay(app.store.url(), &prefix);
    // Kill it as soon as it has published some, but not all.
    wait_until("the first relay published some events", Duration::from_secs(30), async || {
        pending(&app.store).await < total
    })
    .await;
    first.kill().unwrap(); // SIGKILL: no shutdown, no flush
    first.wait().unwrap();
    let left = pending(&app.store).await;
    assert!(left > 0, "the relay finished before it could be killed; raise EVENTS");

    let mut second = spawn_relay(app.store.url(), &prefix);
    wait_until("the second relay drained the backlog", Duration::from_secs(60), async || {
        pending(&app.store).await == 0
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();

    // Every recorded event is on the broker (some perhaps twice: at-least-once).
    let recorded: std::collections::HashSet<String> = outbox::after(app.store.db(), 0, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.envelope.event_id.to_string())
        .collect();
    let on_broker = crate::kafka::event_ids_on_broker(&broker(), &prefix, recorded.len()).await;
    assert!(
        recorded.is_subset(&on_broker),
        "{} recorded events are missing on the broker",
        recorded.difference(&on_broker).count()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_in_another_process_is_woken_by_the_commit_not_by_polling() {
    let prefix = format!("hc{}", Uuid::new_v4().simple());
    let app = TestApp::spawn_with(Backend::Postgres, &[("HEALTHCORE_RELAY_ENABLED", "false")]).await;
    app.create_patient("Ada", "Lovelace").await;
    // Polling once a minute: only LISTEN/NOTIFY can make it publish within the bound below.
    let mut relay = spawn_relay_polling_every(app.store.url(), &prefix, 60_000);
    wait_until("the relay published what was there at its start", Duration::from_secs(30), async || {
        pending(&app.store).await == 0
    })
    .await;
    app.create_patient("Alan", "Turing").await;
    wait_until("the relay published the new event", Duration::from_secs(10), async || pending(&app.store).await == 0)
        .await;
    relay.kill().unwrap();
    relay.wait().unwrap();
    app.stop().await;
}
