//! Publishes CloudEvents (one JSON object per line, structured mode) to the
//! `tdl.events` exchange, as the trusted data layer would, and waits for the
//! broker to confirm each one.
//!
//! ```text
//! cargo run --example publish -- tests/fixtures/events-day.jsonl
//! echo '{"specversion":"1.0",…}' | cargo run --example publish -- -
//! ```
//! Options: `--url` (default `WORKBRIDGE_AMQP_URL` or the local broker),
//! `--exchange` (default `tdl.events`). The routing key is `<kind>.<site>`
//! (e.g. `alert.BEDFORD`), from the event's type and its asset hint's site or
//! the first part of its tag.

use std::io::{BufRead, BufReader};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;

fn routing_key(event: &Value) -> String {
    let kind = event["type"].as_str().unwrap_or("unknown").trim_start_matches("tdl.");
    let site = event["data"]["asset"]["site"]
        .as_str()
        .or_else(|| event["subject"].as_str().and_then(|s| s.split('.').next()))
        .unwrap_or("unknown");
    format!("{kind}.{site}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url =
        std::env::var("WORKBRIDGE_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let mut exchange = "tdl.events".to_owned();
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--url" => url = args.next().ok_or("--url needs a value")?,
            "--exchange" => exchange = args.next().ok_or("--exchange needs a value")?,
            other => file = Some(other.to_owned()),
        }
    }
    let reader: Box<dyn BufRead> = match file.as_deref() {
        None | Some("-") => Box::new(BufReader::new(std::io::stdin())),
        Some(path) => Box::new(BufReader::new(std::fs::File::open(path)?)),
    };
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let (mut sent, mut skipped) = (0, 0);
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        // Lines that are not JSON are sent as they are (to try the dead-letter path).
        let key =
            serde_json::from_str::<Value>(&line).map(|e| routing_key(&e)).unwrap_or_else(|_| "unknown.unknown".into());
        let confirm = channel
            .basic_publish(
                exchange.as_str().into(),
                key.into(),
                BasicPublishOptions::default(),
                line.as_bytes(),
                workbridge::ingest::amqp::structured_properties(),
            )
            .await?
            .await?;
        if confirm.is_ack() {
            sent += 1;
        } else {
            skipped += 1;
        }
    }
    conn.close(200, "done".into()).await?;
    println!("published {sent} event(s) to {exchange}; {skipped} not confirmed");
    Ok(())
}
