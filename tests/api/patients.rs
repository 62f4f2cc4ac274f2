use serde_json::json;

use crate::helpers::{Backend, RUNS, TableReads, TestApp, patient_body};
use crate::on_both_backends;

async fn a_registered_patient_reads_back_with_a_generated_mrn(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.post("/api/v1/patients", &app.admin_token, patient_body(" Ada ", "Lovelace")).await.expect(201);
    let id = created.id();
    assert_eq!(created.header("location"), Some(format!("/api/v1/patients/{id}").as_str()));
    assert_eq!(created.header("etag"), Some("\"1\""));
    let mrn = created.body["mrn"].as_str().unwrap();
    assert!(mrn.starts_with("HC") && mrn.len() == 12, "{mrn}");
    let read = app.get(&format!("/api/v1/patients/{id}"), &app.admin_token).await.expect(200);
    assert_eq!(read.body, created.body);
    assert_eq!(read.body["given_name"], "Ada");
    assert_eq!(read.body["active"], true);
    app.stop().await;
}

async fn every_invalid_field_is_reported_with_its_rule(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = app
        .post(
            "/api/v1/patients",
            &app.admin_token,
            json!({"given_name": "", "birth_date": "1899-12-31", "sex": "robot", "email": "x@", "phone": "12"}),
        )
        .await
        .expect_problem(422, "validation");
    let errors = reply.field_errors();
    let expected = [
        ("given_name", "required"),
        ("family_name", "required"),
        ("birth_date", "not_before_1900"),
        ("sex", "one_of"),
        ("email", "email"),
        ("phone", "phone"),
    ];
    assert_eq!(errors, expected.map(|(f, r)| (f.to_owned(), r.to_owned())));
    let list = app.get("/api/v1/patients", &app.admin_token).await.expect(200);
    assert_eq!(list.body["page"]["total"], 0, "nothing was written");
    app.stop().await;
}

async fn a_birth_date_in_the_future_is_rejected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(2)).date_naive().to_string();
    let mut body = patient_body("Ada", "Lovelace");
    body["birth_date"] = json!(tomorrow);
    let reply = app.post("/api/v1/patients", &app.admin_token, body).await.expect_problem(422, "validation");
    assert_eq!(reply.field_errors(), [("birth_date".to_owned(), "not_in_future".to_owned())]);
    app.stop().await;
}

async fn lists_filter_by_name_prefix_and_paginate_in_a_stable_order(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (given, family) in
        [("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper"), ("Linus", "Lovelace"), ("Ada", "Byron")]
    {
        app.create_patient(given, family).await;
    }
    let reply = app.get("/api/v1/patients?name=LOVE", &app.admin_token).await.expect(200);
    let names: Vec<String> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} {}", p["given_name"], p["family_name"]))
        .collect();
    assert_eq!(names, ["\"Ada\" \"Lovelace\"", "\"Linus\" \"Lovelace\""]);
    let reply = app.get("/api/v1/patients?name=ada", &app.admin_token).await.expect(200);
    assert_eq!(reply.body["page"]["total"], 2, "given-name prefix matches too");

    let mut seen = Vec::new();
    for offset in [0, 2, 4] {
        let page = app.get(&format!("/api/v1/patients?limit=2&offset={offset}"), &app.admin_token).await.expect(200);
        assert_eq!(page.body["page"]["total"], 5);
        seen.extend(
            page.body["items"].as_array().unwrap().iter().map(|p| p["family_name"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(seen, ["Byron", "Hopper", "Lovelace", "Lovelace", "Turing"]);
    // The total rides along with a page's rows; a page past the end, which has none, still has it.
    let past = app.get("/api/v1/patients?limit=2&offset=6", &app.admin_token).await.expect(200);
    assert_eq!(past.body["items"], json!([]));
    assert_eq!(past.body["page"]["total"], 5);
    assert_eq!(past.body["page"]["total_is_exact"], true);
    app.stop().await;
}

/// A name-prefix list is gathered from each name's matches: a patient matching by both names is
/// listed and counted once, pages past the end still carry the total, and the other conditions
/// and the sort apply to the matches.
async fn a_name_prefix_list_counts_each_match_once_whatever_the_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada_adams = app.create_patient("Ada", "Adams").await;
    app.create_patient("Ada", "Lovelace").await;
    app.create_patient("Linus", "Adamson").await;
    app.create_patient("Grace", "Hopper").await;
    let names = crate::helpers::Reply::listed_names;
    let first = app.get("/api/v1/patients?name=ada&limit=2", &app.admin_token).await.expect(200);
    assert_eq!(first.body["page"]["total"], 3, "Ada Adams matches by both names and counts once");
    assert_eq!(names(&first), ["Ada Adams", "Linus Adamson"]);
    let second = app.get("/api/v1/patients?name=ada&limit=2&offset=2", &app.admin_token).await.expect(200);
    assert_eq!((second.body["page"]["total"].clone(), names(&second)), (json!(3), vec!["Ada Lovelace".to_owned()]));
    let past = app.get("/api/v1/patients?name=ada&limit=2&offset=10", &app.admin_token).await.expect(200);
    assert_eq!((past.body["page"]["total"].clone(), names(&past)), (json!(3), Vec::<String>::new()));
    let none = app.get("/api/v1/patients?name=zzz", &app.admin_token).await.expect(200);
    assert_eq!((none.body["page"]["total"].clone(), names(&none)), (json!(0), Vec::<String>::new()));

    let by_registration = app.get("/api/v1/patients?name=ada&sort=created_at", &app.admin_token).await.expect(200);
    assert_eq!(names(&by_registration), ["Ada Adams", "Ada Lovelace", "Linus Adamson"]);
    app.delete(&format!("/api/v1/patients/{ada_adams}"), &app.admin_token).await.expect(200);
    let active = app.get("/api/v1/patients?name=ada&active=true", &app.admin_token).await.expect(200);
    assert_eq!(
        (active.body["page"]["total"].clone(), names(&active)),
        (json!(2), vec!["Linus Adamson".to_owned(), "Ada Lovelace".to_owned()])
    );
    app.stop().await;
}

/// A name search lists the patients whose family name starts with the prefix first, by family
/// name and given name, then those whose given name does, by given name and family name: the
/// order of each name's index, which a page is read from (`a_name_search_reads_its_page_not_its_matches`).
async fn a_name_search_lists_family_name_matches_before_given_name_matches(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (given, family) in [("Ada", "Aaron"), ("Zoe", "Adams"), ("adam", "Zeller"), ("Bea", "adair"), ("Cy", "Byron")] {
        app.create_patient(given, family).await;
    }
    let listed = app.get("/api/v1/patients?name=ADA", &app.admin_token).await.expect(200);
    assert_eq!(
        listed.listed_names(),
        ["Bea adair", "Zoe Adams", "Ada Aaron", "adam Zeller"],
        "case-folded, family names first"
    );
    assert_eq!(
        (listed.body["page"]["total"].clone(), listed.body["page"]["total_is_exact"].clone()),
        (json!(4), json!(true))
    );
    app.stop().await;
}

async fn lists_filter_by_mrn_prefix_and_active_flag(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.post("/api/v1/patients", &app.admin_token, patient_body("Ada", "Lovelace")).await.expect(201);
    let alan = app.create_patient("Alan", "Turing").await;
    let mrn = ada.body["mrn"].as_str().unwrap();
    let reply =
        app.get(&format!("/api/v1/patients?mrn={}", &mrn[..8].to_lowercase()), &app.admin_token).await.expect(200);
    assert!(reply.body["items"].as_array().unwrap().iter().any(|p| p["mrn"] == mrn));
    let exact = app.get(&format!("/api/v1/patients?mrn={mrn}"), &app.admin_token).await.expect(200);
    assert_eq!(exact.body["page"]["total"], 1);
    app.delete(&format!("/api/v1/patients/{alan}"), &app.admin_token).await.expect(200);
    let active = app.get("/api/v1/patients?active=true", &app.admin_token).await.expect(200);
    assert_eq!(active.body["page"]["total"], 1);
    assert_eq!(active.body["items"][0]["mrn"], mrn);
    for order in ["name", "created_at"] {
        let deactivated = app.get(&format!("/api/v1/patients?active=false&sort={order}"), &app.admin_token).await;
        let deactivated = deactivated.expect(200);
        assert_eq!(deactivated.body["page"]["total"], 1, "{order}");
        assert_eq!(deactivated.body["items"][0]["id"], alan.to_string(), "{order}");
    }
    app.stop().await;
}

async fn wildcards_in_a_name_filter_match_literally(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_patient("Ada", "Lovelace").await;
    let reply = app.get("/api/v1/patients?name=%25", &app.admin_token).await.expect(200);
    assert_eq!(reply.body["page"]["total"], 0);
    app.stop().await;
}

async fn bad_list_parameters_are_all_reported(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reply = app
        .get("/api/v1/patients?limit=0&offset=-1&active=yes&sort=age", &app.admin_token)
        .await
        .expect_problem(422, "validation");
    let mut fields: Vec<String> = reply.field_errors().into_iter().map(|(f, _)| f).collect();
    fields.sort();
    assert_eq!(fields, ["active", "limit", "offset", "sort"]);
    let reply = app.get("/api/v1/patients?limit=101", &app.admin_token).await.expect_problem(422, "validation");
    assert_eq!(reply.field_errors(), [("limit".to_owned(), "range".to_owned())]);
    app.stop().await;
}

async fn a_partial_update_changes_only_the_sent_fields_and_bumps_the_version(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_patient("Ada", "Lovelace").await;
    let path = format!("/api/v1/patients/{id}");
    let reply = app
        .call_with(
            reqwest::Method::PATCH,
            &path,
            Some(&app.admin_token),
            Some(json!({"family_name": "King", "email": null})),
            &[("if-match", "\"1\"")],
        )
        .await
        .expect(200);
    assert_eq!(reply.body["family_name"], "King");
    assert_eq!(reply.body["given_name"], "Ada");
    assert_eq!(reply.body["email"], serde_json::Value::Null);
    assert_eq!(reply.body["version"], 2);
    assert_eq!(reply.header("etag"), Some("\"2\""));
    app.stop().await;
}

async fn an_update_with_a_stale_etag_gets_412_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_patient("Ada", "Lovelace").await;
    let path = format!("/api/v1/patients/{id}");
    app.patch(&path, &app.admin_token, json!({"given_name": "Augusta"})).await.expect(200);
    app.call_with(
        reqwest::Method::PATCH,
        &path,
        Some(&app.admin_token),
        Some(json!({"given_name": "Stale"})),
        &[("if-match", "\"1\"")],
    )
    .await
    .expect_problem(412, "stale-version");
    let read = app.get(&path, &app.admin_token).await.expect(200);
    assert_eq!(read.body["given_name"], "Augusta");
    assert_eq!(read.body["version"], 2);
    app.stop().await;
}

async fn delete_deactivates_and_keeps_the_record_until_reactivated(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_patient("Ada", "Lovelace").await;
    let reply = app.delete(&format!("/api/v1/patients/{id}"), &app.admin_token).await.expect(200);
    assert_eq!(reply.body["active"], false);
    let read = app.get(&format!("/api/v1/patients/{id}"), &app.admin_token).await.expect(200);
    assert_eq!(read.body["active"], false);
    let inactive = app.get("/api/v1/patients?active=false", &app.admin_token).await.expect(200);
    assert_eq!(inactive.body["page"]["total"], 1);
    let reply = app.post(&format!("/api/v1/patients/{id}/reactivate"), &app.admin_token, json!({})).await.expect(200);
    assert_eq!(reply.body["active"], true);
    assert_eq!(reply.body["version"], 3);
    app.stop().await;
}

async fn an_unknown_patient_is_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.get(&format!("/api/v1/patients/{}", uuid::Uuid::now_v7()), &app.admin_token)
        .await
        .expect_problem(404, "not-found");
    app.patch(&format!("/api/v1/patients/{}", uuid::Uuid::now_v7()), &app.admin_token, json!({"given_name": "X"}))
        .await
        .expect_problem(404, "not-found");
    app.stop().await;
}

on_both_backends!(
    a_registered_patient_reads_back_with_a_generated_mrn,
    every_invalid_field_is_reported_with_its_rule,
    a_birth_date_in_the_future_is_rejected,
    lists_filter_by_name_prefix_and_paginate_in_a_stable_order,
    a_name_prefix_list_counts_each_match_once_whatever_the_page,
    a_name_search_lists_family_name_matches_before_given_name_matches,
    lists_filter_by_mrn_prefix_and_active_flag,
    wildcards_in_a_name_filter_match_literally,
    bad_list_parameters_are_all_reported,
    a_partial_update_changes_only_the_sent_fields_and_bumps_the_version,
    an_update_with_a_stale_etag_gets_412_and_changes_nothing,
    delete_deactivates_and_keeps_the_record_until_reactivated,
    an_unknown_patient_is_404,
);

/// A register of `count` patients written by one SQL statement on PostgreSQL (far faster than
/// through the API), `g` being each one's ordinal: MRNs HC0000000001…, family names "Family" and the
/// number `family_number` gives, given names "Given", a birth date in twenty thousand days,
/// registered a second apart, active where `active` holds.
async fn insert_register(app: &TestApp, count: i64, family_number: &str, active: &str) {
    app.store
        .db_execute(&format!(
            "INSERT INTO patients (id, mrn, given_name, family_name, family_name_key, given_name_key, birth_date, sex, \
             email, phone, address, active, version, created_at, updated_at) \
             SELECT gen_random_uuid(), 'HC' || lpad(g::text, 10, '0'), 'Given', 'Family' || ({family_number}), \
             'family' || ({family_number}), 'given', date '1940-01-01' + g % 20000, 'unknown', NULL, NULL, NULL, \
             {active}, 1, now() - interval '1 second' * g, now() FROM generate_series(1, {count}) g"
        ))
        .await
        .unwrap();
}

/// A page of every patient is planned once per connection, not on every run: its bounds are
/// written into the statement, which then has no parameter. (With `LIMIT $1 OFFSET $2` PostgreSQL
/// made a plan for the values given every time, since a plan for any values must guess a tenth of
/// the table and never looks as cheap: about a sixth of its time under list patients.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_every_patient_is_planned_once_per_connection() {
    use healthcore::testing::store::patients::{PatientFilter, list};
    use healthcore::testing::store::{PageRequest, Store};
    use sea_orm::{ConnectionTrait, Statement};
    let app = TestApp::spawn(Backend::Postgres).await;
    for family in ["Lovelace", "Hopper", "Noether"] {
        app.create_patient("Ada", family).await;
    }
    // One connection: every page runs on the session whose prepared statements are read below.
    let store = Store::connect(&app.database_url(), 1).await.unwrap();
    let first_page = PageRequest { limit: 2, offset: 0 };
    for _ in 0..8 {
        let page = list(store.db(), &PatientFilter::default(), first_page).await.unwrap();
        assert_eq!((page.items.len(), page.total), (2, 3));
    }
    let plans = Statement::from_string(
        sea_orm::DbBackend::Postgres,
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%kept_total_rows%' \
         AND statement NOT LIKE '%pg_prepared_statements%'",
    );
    let rows = store.db().query_all_raw(plans).await.unwrap();
    let counts: Vec<(i64, i64)> = rows
        .iter()
        .map(|row| (row.try_get("", "generic_plans").unwrap(), row.try_get("", "custom_plans").unwrap()))
        .collect();
    assert_eq!(counts, vec![(8, 0)], "one statement, its one plan used on every run");
    store.close().await;
    app.stop().await;
}

/// A name search is planned once per connection and its plan kept, whatever the prefix: its bounds
/// are written into the statement and a prefix is a range of keys. (With `LIKE $1` and `LIMIT $2`
/// PostgreSQL planned it on every run, which took twice the time of running it at a million
/// patients.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_search_is_planned_once_per_connection() {
    use healthcore::testing::store::patients::{PatientFilter, list};
    use healthcore::testing::store::{PageRequest, Store};
    use sea_orm::{ConnectionTrait, Statement};
    let app = TestApp::spawn(Backend::Postgres).await;
    for (given, family) in [("Ada", "Lovelace"), ("Grace", "Hopper"), ("Emmy", "Noether")] {
        app.create_patient(given, family).await;
    }
    // A register large enough that no plan made for any prefix reads it whole.
    insert_register(&app, 20_000, "g", "true").await;
    // Vacuumed, as autovacuum would: a plan's cost counts the table's pages an index-only scan
    // must still visit.
    app.store.db_execute("VACUUM ANALYZE patients").await.unwrap();
    let store = Store::connect(&app.database_url(), 1).await.unwrap();
    let first_page = PageRequest { limit: 2, offset: 0 };
    for prefix in ["lov", "hop", "noe", "ada", "gra", "emm", "lo", "zzz"] {
        let filter = PatientFilter { name_prefix: Some(prefix.to_owned()), ..PatientFilter::default() };
        let page = list(store.db(), &filter, first_page).await.unwrap();
        assert_eq!(page.total, if prefix == "zzz" { 0 } else { 1 }, "{prefix}");
    }
    let plans = Statement::from_string(
        sea_orm::DbBackend::Postgres,
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%match_rank%' \
         AND statement NOT LIKE '%pg_prepared_statements%'",
    );
    let rows = store.db().query_all_raw(plans).await.unwrap();
    let counts: Vec<(i64, i64)> = rows
        .iter()
        .map(|row| (row.try_get("", "generic_plans").unwrap(), row.try_get("", "custom_plans").unwrap()))
        .collect();
    assert_eq!(counts, vec![(3, 5)], "one statement, planned for the first five runs, then its plan kept");
    store.close().await;
    app.stop().await;
}

/// The searches of a register that no index of the names answers: by MRN prefix, of the
/// deactivated patients, by birth date (FHIR), and a page in registration order. Each read the
/// whole table, whatever it matched (none had an index to be answered by; at a million patients
/// 1.9 s for an MRN prefix, 2 s and 503s for a birth date). Index entries count as reads, since an
/// index-only scan of a whole index is as much a walk of the register. Two connections, so that
/// each statement also runs planned for any values (from its sixth run on one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_search_reads_its_matches_not_the_register() {
    const REGISTER: i64 = 40_000;
    let app = TestApp::spawn_with(Backend::Postgres, &[("HEALTHCORE_DB_MAX_CONNECTIONS", "2")]).await;
    let start = app.table_reads("patients").await;
    // Every thousandth patient deactivated.
    insert_register(&app, REGISTER, "g % 500", "g % 1000 <> 0").await;
    app.store.db_execute("ANALYZE patients").await.unwrap();
    let what = "the register to be reported";
    app.table_reads_once(what, "patients", |now| now.inserted >= start.inserted + REGISTER).await;
    let birth_day = chrono::NaiveDate::from_ymd_opt(1940, 1, 1).unwrap() + chrono::Days::new(5_000);
    let searches = [
        ("/api/v1/patients?mrn=hc000001234", "/page/total", 10),
        ("/api/v1/patients?active=false&limit=5", "/page/total", REGISTER / 1000),
        ("/api/v1/patients?sort=created_at&limit=5", "/page/total", REGISTER),
        ("/api/v1/patients?sort=created_at&active=false&limit=5", "/page/total", REGISTER / 1000),
        (&format!("/fhir/R4/Patient?birthdate={birth_day}&_count=5"), "/total", 2),
    ];
    let mut whole_table_reads = Vec::new();
    for (search, total, matches) in searches {
        let before = app.table_reads("patients").await;
        for _ in 0..RUNS {
            let listed = app.get(search, &app.admin_token).await.expect(200);
            assert_eq!(listed.body.pointer(total), Some(&json!(matches)), "{search}");
        }
        let read = patients_read_per_search(&app, &before).await;
        if read >= REGISTER / 100 {
            whole_table_reads.push(format!("{search}: {read}"));
        }
    }
    assert!(whole_table_reads.is_empty(), "rows and index entries read a search, of {REGISTER}: {whole_table_reads:?}");
    app.stop().await;
}

/// Rows and index entries of `patients` read a search, over the `RUNS` searches since `before`.
async fn patients_read_per_search(app: &TestApp, before: &TableReads) -> i64 {
    let what = "the searches' reads to be reported";
    let after = app.table_reads_once(what, "patients", |now| now.scans >= before.scans + RUNS).await;
    (after.rows + after.index_entries - before.rows - before.index_entries) / RUNS
}

/// A name search reads the first entries of each name's index, up to its page's end and a hundred
/// matches past it to count, however many patients match: a three-letter prefix matches thousands
/// at a million patients, and gathering them all to count and sort cost 2.4 ms a search
/// (BENCHMARKS.md). A register of 40,000 where "family1" matches 8,880 family names and "giv" every
/// given name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_search_reads_its_page_not_its_matches() {
    const REGISTER: i64 = 40_000;
    let app = TestApp::spawn_with(Backend::Postgres, &[("HEALTHCORE_DB_MAX_CONNECTIONS", "2")]).await;
    let start = app.table_reads("patients").await;
    insert_register(&app, REGISTER, "g % 500", "true").await;
    app.store.db_execute("VACUUM ANALYZE patients").await.unwrap();
    let what = "the register to be reported";
    app.table_reads_once(what, "patients", |now| now.inserted >= start.inserted + REGISTER).await;
    // Each counted to its page's end and a hundred past it.
    let searches = [
        ("/api/v1/patients?name=family1&limit=5", 105, "Family1"),
        ("/api/v1/patients?name=family1&limit=5&offset=200", 305, "Family100"),
        ("/api/v1/patients?name=giv&limit=5&active=true", 105, "Family0"),
    ];
    let mut walks = Vec::new();
    for (search, total, first_family) in searches {
        let before = app.table_reads("patients").await;
        for _ in 0..RUNS {
            let listed = app.get(search, &app.admin_token).await.expect(200);
            assert_eq!(listed.body["page"]["total"], total, "{search}");
            assert_eq!(listed.body["page"]["total_is_exact"], false, "{search}");
            assert_eq!(listed.body["items"].as_array().unwrap().len(), 5, "{search}");
            assert_eq!(listed.body["items"][0]["family_name"], first_family, "{search}");
        }
        let read = patients_read_per_search(&app, &before).await;
        if read >= 1_000 {
            walks.push(format!("{search}: {read}"));
        }
    }
    // FHIR's `family` alone, in the same order: its page too (it gathered all 8,880 matches).
    let search = "/fhir/R4/Patient?family=family1&_count=5";
    let before = app.table_reads("patients").await;
    for _ in 0..RUNS {
        let bundle = app.get(search, &app.admin_token).await.expect(200).body;
        assert!(bundle.get("total").is_none(), "counted to a hundred past the page: {}", bundle["link"]);
        assert_eq!(bundle["entry"].as_array().unwrap().len(), 5, "{search}");
        assert_eq!(bundle["entry"][0]["resource"]["name"][0]["family"], "Family1", "{search}");
    }
    let read = patients_read_per_search(&app, &before).await;
    if read >= 1_000 {
        walks.push(format!("{search}: {read}"));
    }
    assert!(walks.is_empty(), "rows and index entries read a search, of {REGISTER}: {walks:?}");
    app.stop().await;
}
