//! Publishing the plan to RabbitMQ with pipelined publisher confirms, and
//! the dead letters afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation, Connection};

use crate::plan::{Planned, event_body};
use crate::testkit::Topology;
use crate::{Res, now_us};

#[derive(Default)]
pub struct PublishStats {
    pub acked: AtomicUsize,
    pub nacked: AtomicUsize,
    pub returned: AtomicUsize,
}

/// Publishes every planned event, `window` confirms in flight at most,
/// paced at `rate` per second when it is positive. Returns each event's
/// publish time (µs since the epoch).
pub async fn publish(
    channel: Channel,
    exchange: String,
    source: String,
    plan: Arc<Vec<Planned>>,
    window: usize,
    rate: f64,
    stats: Arc<PublishStats>,
) -> Res<Vec<i64>> {
    let props = workbridge::ingest::amqp::structured_properties();
    let mut sent_at = vec![0i64; plan.len()];
    let mut inflight = FuturesUnordered::new();
    let start = tokio::time::Instant::now();
    let settle = |c: Result<Confirmation, lapin::Error>| -> Res<()> {
        match c? {
            Confirmation::Ack(None) => stats.acked.fetch_add(1, Ordering::Relaxed),
            Confirmation::Ack(Some(_)) => stats.returned.fetch_add(1, Ordering::Relaxed),
            _ => stats.nacked.fetch_add(1, Ordering::Relaxed),
        };
        Ok(())
    };
    for (i, p) in plan.iter().enumerate() {
        if rate > 0.0 {
            // Settle confirms while waiting for this event's slot.
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            while tokio::time::Instant::now() < due {
                if inflight.is_empty() {
                    tokio::time::sleep_until(due).await;
                    break;
                }
                match tokio::time::timeout_at(due, inflight.next()).await {
                    Ok(Some(c)) => settle(c)?,
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let body = event_body(p, i, &source);
        let key = format!("alert.{}", p.site);
        sent_at[i] = now_us();
        // `mandatory`: an unroutable event comes back instead of vanishing.
        let confirm = channel
            .basic_publish(
                exchange.as_str().into(),
                key.into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                &body,
                props.clone(),
            )
            .await?;
        inflight.push(confirm);
        // Count the confirms already in (progress), then keep the window.
        while let Some(Some(c)) = inflight.next().now_or_never() {
            settle(c)?;
        }
        while inflight.len() >= window {
            if let Some(c) = inflight.next().await {
                settle(c)?;
            }
        }
    }
    while let Some(c) = inflight.next().await {
        settle(c)?;
    }
    Ok(sent_at)
}

pub async fn dead_lettered(conn: Option<&Connection>, names: &Topology) -> Option<u32> {
    let ch = conn?.create_channel().await.ok()?;
    let q = ch
        .queue_declare(
            names.dead_queue.as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .ok()?;
    let _ = ch.close(200, "done".into()).await;
    Some(q.message_count())
}
