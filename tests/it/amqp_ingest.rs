use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::delivery::{created_reply, expected_body, rest_connector, wait_delivered};
use crate::helpers::{
    AmqpNames, Backend, Broker, FIXTURES, Options, alert, amqp_url, sandbox_connector, settings, spawn_app,
    spawn_app_prepared,
};
use crate::on_both_backends;

async fn an_event_from_rabbitmq_becomes_one_order_in_the_eam(backend: Backend) {
    let eam = MockServer::start().await;
    Mock::given(method("POST")).and(path("/api/v1/workorders")).respond_with(created_reply()).mount(&eam).await;
    let names = AmqpNames::new();
    let app = spawn_app(backend, Options { amqp: Some(names.clone()), ..Default::default() }).await;
    app.setup_flow(rest_connector(&eam)).await;
    app.eventually("the consumer is up", || async { app.get("/readyz").await.0 == 200 }).await;

    let broker = Broker::connect(&names).await;
    broker.publish_structured(&alert("q-1")).await;
    // the same event in binary mode with another id merges into that order
    let b = alert("q-2");
    let mut headers = lapin::types::FieldTable::default();
    for attr in ["specversion", "id", "source", "type", "time", "subject"] {
        headers
            .insert(format!("ce-{attr}").into(), lapin::types::AMQPValue::LongString(b[attr].as_str().unwrap().into()));
    }
    let props = lapin::BasicProperties::default().with_content_type("application/json".into()).with_headers(headers);
    broker.publish("alert.BEDFORD", b["data"].to_string().as_bytes(), props).await;

    let order = wait_delivered(&app).await;
    app.eventually("both events are decided", || async { app.get("/v1/events").await.1["total"] == 2 }).await;
    let (_, q2) = app.get("/v1/events/q-2").await;
    assert_eq!(q2["outcome"], "merged");
    let requests = eam.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "one POST for the two events");
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body, expected_body(order["id"].as_str().unwrap()));
    let (_, listed) = app.get("/v1/work-orders?site=BEDFORD&asset=MX-101").await;
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["items"][0]["external_id"], "WO-1001");
    assert_eq!(broker.queue_depth(&names.queue).await, 0, "everything acknowledged");
    drop(app);
    broker.cleanup().await;
}
on_both_backends!(an_event_from_rabbitmq_becomes_one_order_in_the_eam);

/// The producer sends an event twice, and a consumer's channel closes before
/// its ack so the broker redelivers it: still one event and one order.
async fn duplicates_and_redeliveries_make_one_order(backend: Backend) {
    let names = AmqpNames::new();
    // Declare the topology as the service would, before it runs.
    let opts = Options { amqp: Some(names.clone()), ..Default::default() };
    let s = settings("sqlite::memory:", &opts);
    let broker = Broker::connect(&names).await;
    workbridge::ingest::amqp::declare_topology(&broker.channel, &s.amqp).await.unwrap();
    broker.publish_structured(&alert("d-1")).await;

    // A consumer takes it and dies before acking.
    {
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        let mut consumer = ch
            .basic_consume(
                names.queue.as_str().into(),
                "doomed".into(),
                lapin::options::BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        use futures_util::StreamExt;
        let d = consumer.next().await.unwrap().unwrap();
        assert!(!d.redelivered);
        conn.close(320, "crash".into()).await.unwrap();
    }
    broker.publish_structured(&alert("d-1")).await;

    // The service starts (after a restart, with its rules in place) and
    // finds both copies; then the producer sends the event once more.
    let app = spawn_app_prepared(backend, opts, async |app| app.setup_flow(sandbox_connector()).await).await;
    wait_delivered(&app).await;
    // The producer sends d-1 once more, then d-2 twice; an unmapped marker
    // last tells us (the consumer works in order) that all were handled.
    broker.publish_structured(&alert("d-1")).await;
    broker.publish_structured(&alert("d-2")).await;
    broker.publish_structured(&alert("d-2")).await;
    let mut marker = alert("marker");
    marker["subject"] = json!("NOT.A.KNOWN.TAG");
    broker.publish_structured(&marker).await;
    app.eventually("the marker is stored", || async { app.get("/v1/events/marker").await.0 == 200 }).await;

    let (_, events) = app.get("/v1/events?limit=10").await;
    assert_eq!(events["total"], 3, "d-1, d-2 and the marker, each once: {events}");
    let (_, d1) = app.get("/v1/events/d-1").await;
    assert_eq!(d1["outcome"], "created");
    let (_, d2) = app.get("/v1/events/d-2").await;
    assert_eq!(d2["outcome"], "merged", "same asset and code: merged into the open order");
    let orders = app.orders().await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["event_count"], 2, "d-1 and d-2, each counted once");
    let (_, sandbox) = app.get("/v1/sandbox/orders").await;
    assert_eq!(sandbox["total"], 1, "one order in the EAM");
    assert_eq!(broker.queue_depth(&names.queue).await, 0);
    drop(app);
    broker.cleanup().await;
}
on_both_backends!(duplicates_and_redeliveries_make_one_order);

async fn bad_messages_are_dead_lettered_with_the_reason(backend: Backend) {
    let names = AmqpNames::new();
    let app =
        spawn_app(backend, Options { amqp: Some(names.clone()), max_message_bytes: 4096, ..Default::default() }).await;
    app.eventually("the consumer is up", || async { app.get("/readyz").await.0 == 200 }).await;
    let broker = Broker::connect(&names).await;

    let fixtures = std::fs::read_to_string(format!("{FIXTURES}/events-invalid.jsonl")).unwrap();
    let mut bodies: Vec<(String, Vec<u8>)> = fixtures
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let c: Value = serde_json::from_str(l).unwrap();
            (c["reason"].as_str().unwrap().to_owned(), c["body"].as_str().unwrap().as_bytes().to_vec())
        })
        .collect();
    let mut big = alert("big");
    big["data"]["blob"] = json!("x".repeat(5000));
    bodies.push(("oversize".into(), big.to_string().into_bytes()));
    for (_, body) in &bodies {
        broker.publish("alert.BEDFORD", body, workbridge::ingest::amqp::structured_properties()).await;
    }
    // and one valid event, which must not be lost among them
    broker.publish_structured(&alert("ok-1")).await;

    let dead = broker.take(&names.dead_queue, bodies.len()).await;
    assert_eq!(dead.len(), bodies.len());
    for (d, (reason, body)) in dead.iter().zip(&bodies) {
        assert_eq!(&d.data, body, "the original body is kept");
        let headers = d.properties.headers().as_ref().unwrap();
        let err = match headers.inner().get("x-workbridge-error") {
            Some(lapin::types::AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            other => panic!("{reason}: no x-workbridge-error header: {other:?}"),
        };
        assert!(!err.is_empty(), "{reason}");
        if reason == "oversize" {
            assert!(err.contains("too large"), "{err}");
        }
        if reason == "missing id" {
            assert!(err.contains("id"), "{err}");
        }
    }
    app.eventually("the valid event is stored", || async { app.get("/v1/events").await.1["total"] == 1 }).await;
    assert_eq!(broker.queue_depth(&names.queue).await, 0);
    drop(app);
    broker.cleanup().await;
}
on_both_backends!(bad_messages_are_dead_lettered_with_the_reason);

/// The broker pid of the service's connection, found by its name.
fn service_connection(queue: &str) -> Option<String> {
    connection_pid(&format!("workbridge {queue}"))
}

/// The broker pid of the connection named `name`.
fn connection_pid(name: &str) -> Option<String> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl runs");
    let needle = format!("{{\"connection_name\",\"{name}\"}}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(&needle))
        .and_then(|l| l.split('\t').next())
        .map(str::to_owned)
}

/// The broker drops the service's connection (as in a broker restart or a
/// network cut): the consumer reconnects with backoff and goes on consuming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_reconnects_after_the_broker_drops_it() {
    let names = AmqpNames::new();
    let opts = Options { amqp: Some(names.clone()), ..Default::default() };
    let app = spawn_app_prepared(Backend::Sqlite, opts, async |app| app.setup_flow(sandbox_connector()).await).await;
    app.eventually("the consumer is up", || async { app.get("/readyz").await.0 == 200 }).await;
    let first = service_connection(&names.queue).expect("the service is connected");
    let closed = std::process::Command::new("rabbitmqctl")
        .args(["close_connection", &first, "test: forced close"])
        .output()
        .unwrap();
    assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));
    app.eventually("a new connection", || async { service_connection(&names.queue).is_some_and(|pid| pid != first) })
        .await;
    app.eventually("ready again", || async { app.get("/readyz").await.0 == 200 }).await;
    let broker = Broker::connect(&names).await;
    broker.publish_structured(&alert("after-reconnect")).await;
    let order = wait_delivered(&app).await;
    assert_eq!(order["event_count"], 1);
    drop(app);
    broker.cleanup().await;
}

/// Work that waits on a broker operation which never finishes must not hide
/// a lost connection (lapin can leave one pending when the connection dies):
/// the loss is reported at once, and the work is abandoned after a grace, so
/// that the consumer can report the outage and reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_stuck_on_a_lost_connection_is_reported_and_abandoned() {
    let name = format!("workbridge stuck {}", uuid::Uuid::new_v4().simple());
    let props = lapin::ConnectionProperties::default().with_connection_name(name.as_str().into());
    let conn = lapin::Connection::connect(&amqp_url(), props).await.unwrap();
    let close = tokio::task::spawn_blocking(move || {
        let mut pid = None;
        for _ in 0..50 {
            pid = connection_pid(&name);
            if pid.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let pid = pid.expect("the broker lists the connection");
        let closed = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", &pid, "test: forced close"])
            .output()
            .unwrap();
        assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));
    });
    let reported = std::sync::Mutex::new(None);
    let never_ends = std::future::pending::<Result<(), lapin::Error>>();
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        workbridge::broker::until_connection_lost("test", &conn, never_ends, |e| {
            *reported.lock().unwrap() = Some((e.to_string(), tokio::time::Instant::now()))
        }),
    )
    .await;
    let returned = tokio::time::Instant::now();
    close.await.unwrap();
    let outcome = outcome.expect("the stuck work is abandoned within 30 s of the connection's loss");
    assert!(outcome.is_err(), "abandoned work ends with the connection's error");
    let (reason, at) = reported.lock().unwrap().clone().expect("the loss is reported");
    assert!(!reason.is_empty());
    assert!(returned.duration_since(at) >= Duration::from_secs(1), "the work got a grace before it was abandoned");
}

/// Each status change goes out as a CloudEvent on the lifecycle exchange,
/// routing key `<status>.<site>`.
async fn status_changes_are_published_as_lifecycle_events(backend: Backend) {
    let names = AmqpNames::new();
    let broker = Broker::connect(&names).await;
    let queue = broker.lifecycle_queue().await;

    let app = spawn_app(backend, Options { amqp: Some(names.clone()), ..Default::default() }).await;
    app.setup_flow(sandbox_connector()).await;
    let (_, a) = app.post_json("/v1/events", &alert("lc-1")).await;
    let order_id = a["work_order_id"].as_str().unwrap().to_owned();
    let order = wait_delivered(&app).await;
    let sbx = order["external_id"].as_str().unwrap();
    app.post_json(&format!("/v1/sandbox/orders/{sbx}/status"), &json!({"status": "in_progress"})).await;

    let got = broker.take(&queue, 3).await;
    let keys: Vec<&str> = got.iter().map(|d| d.routing_key.as_str()).collect();
    assert_eq!(keys, ["pending.BEDFORD", "created.BEDFORD", "in_progress.BEDFORD"]);
    let events: Vec<Value> = got.iter().map(|d| serde_json::from_slice(&d.data).unwrap()).collect();
    for e in &events {
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["type"], "workbridge.workorder.status");
        assert_eq!(e["subject"], order_id.as_str());
        assert_eq!(e["data"]["asset_id"], "MX-101");
    }
    assert_eq!(events[2]["data"]["status"], "in_progress");
    assert_eq!(events[2]["data"]["reported_by"], "sandbox");
    assert_eq!(got[0].properties.content_type().as_ref().unwrap().as_str(), "application/cloudevents+json");
    drop(app);
    broker.cleanup().await;
}
on_both_backends!(status_changes_are_published_as_lifecycle_events);

/// A backlog is decided in batches (one transaction each, acked with
/// `multiple` after the commit); a duplicate inside a batch or across
/// batches counts once, and a later event merges into the order an earlier
/// event of the same batch opened.
async fn a_backlog_is_decided_in_batches_each_event_once(backend: Backend) {
    let names = AmqpNames::new();
    let opts = Options { amqp: Some(names.clone()), ..Default::default() };
    let s = settings("sqlite::memory:", &opts);
    let broker = Broker::connect(&names).await;
    workbridge::ingest::amqp::declare_topology(&broker.channel, &s.amqp).await.unwrap();
    for i in 0..200 {
        let mut e = alert(&format!("b-{i}"));
        e["data"]["code"] = json!(format!("CODE_{}", i % 10));
        broker.publish_structured(&e).await;
        if i % 10 == 0 {
            broker.publish_structured(&e).await;
        }
    }
    let app = spawn_app_prepared(backend, opts, async |app| app.setup_flow(sandbox_connector()).await).await;
    app.eventually("the backlog is decided", || async { app.get("/v1/events?limit=1").await.1["total"] == 200 }).await;
    let orders = app.orders().await;
    assert_eq!(orders.len(), 10, "one order per code");
    for o in &orders {
        assert_eq!(o["event_count"], 20, "{o}");
    }
    app.eventually("every message is acked", || async { broker.queue_depth(&names.queue).await == 0 }).await;
    // The last batch is counted just after its commit, so the 200th event
    // can be visible a moment before its batch is counted.
    let scrape = async || app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let value_in = |metrics: &str, name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    app.eventually("every delivery is counted", || async {
        value_in(&scrape().await, "workbridge_consumer_batch_size_sum") >= 220.0
    })
    .await;
    let metrics = scrape().await;
    let value = |name: &str| value_in(&metrics, name);
    assert_eq!(value("workbridge_consumer_batch_size_sum"), 220.0, "every delivery counted once");
    let batches = value("workbridge_consumer_batch_size_count");
    assert!(value("workbridge_consumer_batch_size_bucket{le=\"1.0\"}") < batches, "some batches hold several");
    assert!(batches < 220.0);
    drop(app);
    broker.cleanup().await;
}
on_both_backends!(a_backlog_is_decided_in_batches_each_event_once);
