//! SIGTERM under load: the real binary is stopped while it consumes, and
//! started again; every event is stored once and no order is doubled.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{ADMIN_KEY, AmqpNames, Broker, FIXTURES, alert, amqp_url, client_with_key};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(db: &str, port: u16, names: &AmqpNames) -> Child {
    Command::new(env!("CARGO_BIN_EXE_workbridge"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("WORKBRIDGE_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("WORKBRIDGE_DATABASE_URL", db)
        .env("WORKBRIDGE_ADMIN_KEY", ADMIN_KEY)
        .env("WORKBRIDGE_AMQP_URL", amqp_url())
        .env("WORKBRIDGE_AMQP__EXCHANGE", &names.exchange)
        .env("WORKBRIDGE_AMQP__QUEUE", &names.queue)
        .env("WORKBRIDGE_AMQP__DEAD_LETTER_EXCHANGE", &names.dlx)
        .env("WORKBRIDGE_AMQP__DEAD_LETTER_QUEUE", &names.dead_queue)
        .env("WORKBRIDGE_AMQP__LIFECYCLE_EXCHANGE", &names.lifecycle)
        .env("WORKBRIDGE_AMQP__QUEUE_EXPIRES_MS", "600000")
        .env("WORKBRIDGE_AMQP__PREFETCH", "16")
        .env("WORKBRIDGE_OUTBOX__POLL_INTERVAL_MS", "50")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts")
}

async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_event_and_doubles_no_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("wb.db").display());
    let names = AmqpNames::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = client_with_key(ADMIN_KEY);
    let get = |path: &str| {
        let req = client.get(format!("{base}{path}"));
        async move {
            match req.send().await {
                Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            }
        }
    };

    let mut child = start(&db, port, &names);
    wait_until("the service answers", async || get("/readyz").await["broker"]["ok"] == true).await;
    let csv = std::fs::read_to_string(format!("{FIXTURES}/assets-demo.csv")).unwrap();
    client
        .post(format!("{base}/v1/assets/bulk"))
        .header("content-type", "text/csv")
        .body(csv.clone())
        .send()
        .await
        .unwrap();
    client
        .post(format!("{base}/v1/connectors"))
        .json(&json!({"name": "sandbox", "config": {"kind": "sandbox"}}))
        .send()
        .await
        .unwrap();
    let r = client
        .post(format!("{base}/v1/rules"))
        .json(&json!({"name": "all", "action": {"kind": "create", "connector": "sandbox"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Events over every tag of the demo registry, several per tag and code.
    // (tag, its asset)
    let tags: Vec<(String, String)> = csv
        .lines()
        .skip(1)
        .flat_map(|l| {
            let asset = l.split(',').next().unwrap_or_default().to_owned();
            let tags = l.rsplit(',').next().unwrap_or_default();
            tags.split(';').filter(|t| !t.is_empty()).map(|t| (t.to_owned(), asset.clone())).collect::<Vec<_>>()
        })
        .collect();
    let codes = ["HIGH_TEMPERATURE", "HIGH_VIBRATION"];
    let events: Vec<Value> = (0..400)
        .map(|i| {
            let mut e = alert(&format!("sig-{i}"));
            e["subject"] = json!(tags[i % tags.len()].0);
            e["data"]["code"] = json!(codes[i % 2]);
            e
        })
        .collect();
    // Orders are one per open (asset, code): tags of one asset share them.
    let keys: HashSet<(String, &str)> = (0..400).map(|i| (tags[i % tags.len()].1.clone(), codes[i % 2])).collect();

    // Publish in the background while the service consumes, and stop it midway.
    let publisher_names = names.clone();
    let to_publish = events.clone();
    let publishing = tokio::spawn(async move {
        let broker = Broker::connect(&publisher_names).await;
        for e in &to_publish {
            broker.publish_structured(e).await;
        }
        broker
    });
    wait_until("some events are stored", async || get("/v1/events?limit=1").await["total"].as_u64().unwrap_or(0) >= 50)
        .await;
    let stored_before = get("/v1/events?limit=1").await["total"].as_u64().unwrap_or(0);
    assert!(stored_before < 400, "the load was still running when SIGTERM came");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "a clean exit on SIGTERM: {exit:?}");
    let broker = publishing.await.unwrap();

    let mut child = start(&db, port, &names);
    wait_until("every event is stored", async || get("/v1/events?limit=1").await["total"] == 400).await;
    wait_until("every order is delivered", async || get("/v1/work-orders?status=pending&limit=1").await["total"] == 0)
        .await;
    let orders = get("/v1/work-orders?limit=1").await["total"].as_u64().unwrap();
    let unmapped = get("/v1/events?outcome=unmapped&limit=1").await["total"].as_u64().unwrap();
    assert_eq!(unmapped, 0);
    assert_eq!(orders as usize, keys.len(), "one order per (tag's asset, code)");
    let sandbox = get("/v1/sandbox/orders?limit=1").await["total"].as_u64().unwrap();
    assert_eq!(sandbox, orders, "no order twice in the EAM");
    assert_eq!(broker.queue_depth(&names.queue).await, 0);
    let _ = child.kill();
    let _ = child.wait();
    broker.cleanup().await;
}
