//! `healthcore audit export | verify | restore`: a closed month of the audit trail goes to a
//! compressed JSON-lines file with a checksum that standard tools (`sha256sum`, `gzip`) accept,
//! the file is verified against the database, and on PostgreSQL the month's partition is detached
//! — never a record deleted — and can be restored from the file.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Datelike, Duration, Utc};
use healthcore::testing::jobs::{Job, RunOutcome, Scheduler};
use healthcore::testing::shutdown;
use healthcore::testing::store::entities::audit_event;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, healthcore_command, test_config};
use crate::on_both_backends;

fn healthcore(args: &[&str], database_url: &str) -> Output {
    healthcore_command()
        .args(args)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("HEALTHCORE_JWT_SECRET", "archive-test-signing-key-0123456789abcdef")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The first instant of the month `at` falls in, and of the next.
fn month_of(at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let first = at.date_naive().with_day(1).unwrap();
    let next = first.checked_add_months(chrono::Months::new(1)).unwrap();
    (first.and_hms_opt(0, 0, 0).unwrap().and_utc(), next.and_hms_opt(0, 0, 0).unwrap().and_utc())
}

/// The ids of the audit records the table holds for `[from, to)`, in id order.
async fn ids_between(app: &TestApp, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Uuid> {
    audit_event::Entity::find()
        .filter(audit_event::Column::OccurredAt.gte(from))
        .filter(audit_event::Column::OccurredAt.lt(to))
        .order_by_asc(audit_event::Column::Id)
        .all(app.store.db())
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.id)
        .collect()
}

/// Decompressed with `gzip`, not with HealthCore's own code.
fn archived_ids(file: &std::path::Path) -> Vec<Uuid> {
    let output = Command::new("gzip").arg("-dc").arg(file).output().expect("gzip is installed");
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

async fn a_closed_month_is_archived_verified_and_restorable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Two months ago by the application's clock: the partition job runs for that month as it
    // would have then, and the requests below are audited in it.
    app.clock.advance(-Duration::days(62));
    let (from, to) = month_of(app.clock.now());
    let config = test_config(&app.database_url(), &[]);
    let jobs = Scheduler::new(app.store.clone(), std::sync::Arc::new(config), app.metrics.clone())
        .with_clock(app.clock.clone());
    let (_stop, mut stopping) = shutdown::channel();
    let outcome = jobs.run_once(Job::AuditPartitions, app.clock.now(), &mut stopping).await;
    assert!(matches!(outcome, RunOutcome::Succeeded(_)), "{outcome:?}");
    for n in 0..3 {
        let patient = app.create_patient("Archived", &format!("Patient{n}")).await;
        app.get(&format!("/api/v1/patients/{patient}"), &app.admin_token).await.expect(200);
    }
    let recorded = ids_between(&app, from, to).await;
    assert!(recorded.len() >= 6, "{} records in the month", recorded.len());

    let dir = std::env::temp_dir().join(format!("hc_archive_{}", Uuid::new_v4().simple()));
    let month = from.format("%Y-%m").to_string();
    let before = to.format("%Y-%m").to_string();
    let database_url = app.database_url();
    let mut export = vec!["audit", "export", "--before", &before, "--dir", dir.to_str().unwrap()];
    if backend == Backend::Sqlite {
        let refused = healthcore(&[&export[..], &["--detach"]].concat(), &database_url);
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
        assert!(text(&refused).contains("SQLite keeps the audit trail in one table"), "{}", text(&refused));
    } else {
        export.push("--detach");
    }
    let exported = healthcore(&export, &database_url);
    assert!(exported.status.success(), "{}", text(&exported));
    assert!(text(&exported).contains(&format!("{month}: {} records", recorded.len())), "{}", text(&exported));

    // The file: the month's records in order, private, with a checksum sha256sum accepts.
    let file = dir.join(format!("audit-events-{month}.jsonl.gz"));
    assert_eq!(archived_ids(&file), recorded);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let checked = Command::new("sha256sum")
        .arg("-c")
        .arg(format!("audit-events-{month}.jsonl.gz.sha256"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stdout));
    let verified = healthcore(&["audit", "verify", file.to_str().unwrap()], &database_url);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).contains(&format!("{} records of {month}", recorded.len())));

    if backend == Backend::Postgres {
        // Detached, not deleted: the month left the trail whole and waits in its own table.
        assert!(ids_between(&app, from, to).await.is_empty());
        let partition = format!("audit_events_{}", from.format("%Y_%m"));
        assert!(text(&exported).contains(&format!("partition {partition} detached")), "{}", text(&exported));
        app.store.db_execute(&format!("DROP TABLE {partition}")).await.unwrap();
        let restored = healthcore(&["audit", "restore", file.to_str().unwrap()], &database_url);
        assert!(restored.status.success(), "{}", text(&restored));
        let n = recorded.len();
        assert!(text(&restored).contains(&format!("{n} of {n} records written back")), "{}", text(&restored));
        assert_eq!(ids_between(&app, from, to).await, recorded);
    } else {
        // SQLite: the records stay; a restore finds them all present.
        assert_eq!(ids_between(&app, from, to).await, recorded);
        let restored = healthcore(&["audit", "restore", file.to_str().unwrap()], &database_url);
        assert!(
            text(&restored).contains(&format!("0 of {} records written back", recorded.len())),
            "{}",
            text(&restored)
        );
        // Exporting again verifies the file already there against the database.
        let again = healthcore(&export, &database_url);
        assert!(again.status.success() && text(&again).contains("exists; verifying"), "{}", text(&again));
    }

    // A changed byte is caught, by the checksum before any record is read.
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let tampered = healthcore(&["audit", "verify", file.to_str().unwrap()], &database_url);
    assert!(!tampered.status.success() && text(&tampered).contains("checksum"), "{}", text(&tampered));
    let _ = std::fs::remove_dir_all(&dir);
    app.stop().await;
}

#[test]
fn only_closed_months_are_exported() {
    let next_month = month_of(Utc::now()).1.format("%Y-%m").to_string();
    let refused = healthcore(&["audit", "export", "--before", &next_month], "sqlite::memory:");
    assert!(!refused.status.success());
    assert!(text(&refused).contains("only closed months can be exported"), "{}", text(&refused));
}

on_both_backends!(a_closed_month_is_archived_verified_and_restorable);
