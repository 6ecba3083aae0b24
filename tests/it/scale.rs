//! Scale-out: what lets several replicas share one PostgreSQL, and what
//! keeps a second replica off an SQLite file.

use chrono::{Duration, Utc};
use serde_json::json;

use crate::helpers::{Backend, Options, alert, sandbox_connector, settings, spawn_app};
use crate::on_both_backends;

/// Status polling is split by a lease in the database: a claim stamps the
/// orders it takes, so another replica claiming at the same time gets the
/// others, and nobody polls them again before the interval has passed.
async fn status_polling_is_split_between_replicas(backend: Backend) {
    let app = spawn_app(backend, Options::default()).await;
    app.setup_flow(sandbox_connector()).await;
    for i in 0..10 {
        let mut e = alert(&format!("p-{i}"));
        e["data"]["code"] = json!(format!("CODE_{i}"));
        assert_eq!(app.post_json("/v1/events", &e).await.0, 201);
    }
    app.eventually("ten orders are delivered", || async {
        app.orders().await.iter().filter(|o| o["external_id"].is_string()).count() == 10
    })
    .await;
    use workbridge::store::work_orders::claim_for_poll;
    let conn = app.store.conn();
    let interval = Duration::minutes(1);
    let now = Utc::now();
    let first = claim_for_poll(conn, "sandbox", now, now - interval, now - interval, 6).await.unwrap();
    let second = claim_for_poll(conn, "sandbox", now, now - interval, now - interval, 6).await.unwrap();
    assert_eq!(first.len(), 6);
    assert_eq!(second.len(), 4, "the other replica gets the rest");
    let mut all: Vec<&str> = first.iter().chain(&second).map(|o| o.id.as_str()).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 10, "no order is polled twice");
    assert!(
        claim_for_poll(conn, "sandbox", now, now - interval, now - interval, 6).await.unwrap().is_empty(),
        "not due yet"
    );
    // One interval later they are due again, least recently polled first.
    let later = now + interval + Duration::seconds(1);
    assert_eq!(
        claim_for_poll(conn, "sandbox", later, later - interval, later - interval, 100).await.unwrap().len(),
        10
    );
}
on_both_backends!(status_polling_is_split_between_replicas);

/// SQLite serves one replica: a second service on the same file is refused
/// with an error that says why, and the file is free again once the first stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_on_one_sqlite_file_is_refused() {
    let app = spawn_app(Backend::Sqlite, Options::default()).await;
    let url = app.settings.database.url.clone();
    let mut second = settings(&url, &Options::default());
    second.admin_key = None;
    let err = match workbridge::app::Application::build(second.clone()).await {
        Ok(_) => panic!("a second replica started on {url}"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("SQLite serves one replica"), "{err}");
    assert!(err.contains("PostgreSQL"), "{err}");
    let app = app.restart(Options::default()).await;
    assert_eq!(app.get("/healthz").await.0, 200, "the first replica's restart takes the file again");
}
