//! The RabbitMQ consumer (docs/spec.md §2). Declares its topology, consumes with
//! manual acks and a prefetch, and acknowledges a message only after the
//! transaction that stored the event and its effects has committed. A
//! message that can never be processed is republished to the dead-letter
//! exchange with an `x-workbridge-error` header (publisher-confirmed) and
//! only then acknowledged. On any broker error it reconnects with backoff.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio_util::sync::CancellationToken;

use crate::broker::{BrokerStatus, until_connection_lost};
use crate::config::AmqpSettings;
use crate::decisions::{Decider, DecisionError, PreparedBatch};
use crate::domain::InboundEvent;
use crate::domain::cloudevent::{self as parse, EventError};

/// Stops the receiving stage when the committing one gives up (or the
/// consumer is dropped).
struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl AbortOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// A batch between the two stages: its deliveries, in order, and the
/// prepared events (or the events, when preparing them failed).
struct Staged {
    deliveries: Vec<Delivery>,
    prepared: Result<PreparedBatch, Arc<[InboundEvent]>>,
}

#[derive(Clone)]
pub struct Consumer {
    settings: AmqpSettings,
    decider: Decider,
    status: Arc<BrokerStatus>,
}

impl Consumer {
    pub fn new(settings: AmqpSettings, decider: Decider, status: Arc<BrokerStatus>) -> Self {
        Self { settings, decider, status }
    }

    /// Consumes until cancelled, reconnecting with exponential backoff.
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = self.settings.reconnect_min();
        while !cancel.is_cancelled() {
            let mut connected = false;
            let result = self.consume(&cancel, &mut connected).await;
            if connected {
                backoff = self.settings.reconnect_min();
            }
            match result {
                Ok(()) => break,
                Err(e) => {
                    let msg = e.to_string();
                    self.status.set(false, Some(msg.clone()));
                    tracing::warn!(error = %msg, retry_in_ms = backoff.as_millis() as u64, "RabbitMQ unavailable; reconnecting");
                }
            }
            let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 4));
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(backoff + jitter) => {}
            }
            backoff = (backoff * 2).min(self.settings.reconnect_max());
        }
        self.status.set(false, None);
        tracing::info!("consumer stopped");
    }

    async fn consume(&self, cancel: &CancellationToken, connected: &mut bool) -> Result<(), lapin::Error> {
        // Named, so that operators (and tests) can tell it apart in the broker.
        let props =
            ConnectionProperties::default().with_connection_name(format!("workbridge {}", self.settings.queue).into());
        let conn = Connection::connect(&self.settings.url, props).await?;
        let status = &self.status;
        until_connection_lost("consumer", &conn, self.consume_on(&conn, cancel, connected), |e| {
            status.set(false, Some(e.to_string()))
        })
        .await
    }

    async fn consume_on(
        &self,
        conn: &Connection,
        cancel: &CancellationToken,
        connected: &mut bool,
    ) -> Result<(), lapin::Error> {
        let s = &self.settings;
        let channel = conn.create_channel().await?;
        declare_topology(&channel, s).await?;
        channel.basic_qos(s.prefetch, BasicQosOptions::default()).await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        let tag = format!("workbridge-{}", uuid::Uuid::new_v4().simple());
        let mut deliveries = channel
            .basic_consume(s.queue.as_str().into(), tag.into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        *connected = true;
        self.status.set(true, None);
        tracing::info!(queue = %s.queue, prefetch = s.prefetch, "consuming");
        // Two stages, so that the service reads and evaluates the next batch
        // while the database writes this one: `receive` parses and prepares
        // batches in delivery order, `commit` decides and acks them in that
        // same order. At most one prepared batch waits between them. They
        // run as two tasks, so that their CPU work can use two cores.
        let (staged_tx, staged_rx) = tokio::sync::mpsc::channel(1);
        let receiver = {
            let (this, channel, cancel) = (self.clone(), channel.clone(), cancel.clone());
            tokio::spawn(async move { this.receive(&channel, &mut deliveries, staged_tx, &cancel).await })
        };
        let guard = AbortOnDrop(Some(receiver.abort_handle()));
        // Ends once `receive` has ended (its sender dropped) and what it
        // staged is decided, or at `commit`'s first error (which stops
        // `receive` as `guard` drops).
        self.commit(&channel, staged_rx, cancel).await?;
        guard.disarm();
        receiver.await.map_err(|e| {
            tracing::error!(error = %e, "the receiving stage of the consumer failed");
            lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                lapin::ChannelState::Error,
                "receiving stage failed",
            ))
        })??;
        // Cancelled: unacked deliveries return to the queue when the channel closes.
        let _ = channel.close(200, "shutdown".into()).await;
        let _ = conn.close(200, "shutdown".into()).await;
        Ok(())
    }

    /// Takes what the broker has already sent (never waiting for more, up
    /// to `batch_max`), dead-letters what does not parse and prepares the
    /// rest. Ends when cancelled.
    async fn receive(
        &self,
        channel: &Channel,
        deliveries: &mut lapin::Consumer,
        staged: tokio::sync::mpsc::Sender<Staged>,
        cancel: &CancellationToken,
    ) -> Result<(), lapin::Error> {
        let s = &self.settings;
        loop {
            // Take a batch only once it can be staged: while `commit` is
            // busy with one batch and another waits, messages accumulate into
            // the next batch instead of leaving in a small one.
            let slot = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                slot = staged.reserve() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return Ok(()), // `commit` has stopped, with an error of its own
                },
            };
            let delivery = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                d = deliveries.next() => d,
            };
            let first = match delivery {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                        lapin::ChannelState::Closed,
                        "consumer stream ended",
                    )));
                }
            };
            let mut batch = vec![first];
            let mut failed = None;
            while batch.len() < s.batch_max.max(1) {
                match deliveries.next().now_or_never() {
                    Some(Some(Ok(d))) => batch.push(d),
                    Some(Some(Err(e))) => {
                        failed = Some(e);
                        break;
                    }
                    Some(None) | None => break,
                }
            }
            let (deliveries_ok, events) = self.parse_batch(channel, batch).await?;
            if !events.is_empty() {
                let events: Arc<[InboundEvent]> = events.into();
                // A batch that cannot be prepared (the database is away, a
                // rule runs too long) is decided by `commit` as it can.
                let prepared = self.decider.prepare(events.clone()).await.map_err(|e| {
                    tracing::info!(error = %e, size = events.len(), "preparing a batch failed");
                    events
                });
                slot.send(Staged { deliveries: deliveries_ok, prepared });
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }

    /// Dead-letters what does not parse; returns the rest, in order.
    async fn parse_batch(
        &self,
        channel: &Channel,
        batch: Vec<Delivery>,
    ) -> Result<(Vec<Delivery>, Vec<InboundEvent>), lapin::Error> {
        let mut deliveries = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        for d in batch {
            if d.redelivered {
                self.decider.metrics().redeliveries.inc();
            }
            match self.parse(&d) {
                Ok(event) => {
                    deliveries.push(d);
                    events.push(event);
                }
                Err(e) => {
                    self.decider.metrics().rejected(e.kind());
                    tracing::warn!(routing_key = %d.routing_key, reason = %e, "dead-lettering a message");
                    dead_letter(channel, &self.settings, &d, &e.to_string(), e.kind()).await?;
                    d.ack(BasicAckOptions::default()).await?;
                }
            }
        }
        Ok((deliveries, events))
    }

    /// Decides the staged batches in order until `receive` stops.
    async fn commit(
        &self,
        channel: &Channel,
        mut staged: tokio::sync::mpsc::Receiver<Staged>,
        cancel: &CancellationToken,
    ) -> Result<(), lapin::Error> {
        while let Some(batch) = staged.recv().await {
            self.commit_batch(channel, batch, cancel).await?;
        }
        Ok(())
    }

    /// Decides a batch in one transaction and acks it with one `multiple`
    /// ack after the commit. If the batch fails, its messages are decided
    /// one by one, which isolates a message that cannot be decided and
    /// retries the database while it is away.
    async fn commit_batch(
        &self,
        channel: &Channel,
        batch: Staged,
        cancel: &CancellationToken,
    ) -> Result<(), lapin::Error> {
        let Staged { deliveries, prepared } = batch;
        let Some(last) = deliveries.last() else { return Ok(()) };
        let events = match prepared {
            Ok(prepared) => {
                let events = prepared.events().clone();
                // Two replicas' batches can deadlock on the same open orders;
                // PostgreSQL aborts one, which is simply tried again.
                let mut next = Some(prepared);
                for attempt in 1..=3 {
                    let outcome = match next.take() {
                        Some(prepared) => self.decider.accept_prepared(prepared).await,
                        None => self.decider.accept_batch(events.clone()).await,
                    };
                    match outcome {
                        Ok(_) => {
                            self.decider.metrics().batch(events.len());
                            // Every earlier delivery on this channel is settled, so
                            // `multiple` acks exactly this batch.
                            return last.ack(BasicAckOptions { multiple: true }).await.map(drop);
                        }
                        Err(e) if e.is_contention() && attempt < 3 => {
                            tracing::info!(error = %e, source = ?std::error::Error::source(&e), attempt, "batch aborted by lock contention; trying again");
                            tokio::time::sleep(Duration::from_millis(rand::random_range(5..50))).await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), size = events.len(), "batch failed; deciding one by one");
                            break;
                        }
                    }
                }
                events
            }
            Err(events) => events,
        };
        for (d, event) in deliveries.into_iter().zip(events.iter()) {
            self.handle(channel, d, event, cancel).await?;
        }
        Ok(())
    }

    async fn handle(
        &self,
        channel: &Channel,
        d: Delivery,
        event: &InboundEvent,
        cancel: &CancellationToken,
    ) -> Result<(), lapin::Error> {
        self.decider.metrics().batch(1);
        // Keep the message (unacked) while the database is away; a message
        // whose processing fails for another reason goes back to the queue,
        // whose delivery limit dead-letters it if it keeps failing.
        let mut wait = Duration::from_millis(200);
        let mut failures = 0;
        loop {
            match self.decider.accept(event).await {
                Ok(_) => return d.ack(BasicAckOptions::default()).await.map(drop),
                // Valid, but no decision is possible until a rule changes:
                // keep it, with the reason, where an operator can replay it.
                Err(e @ DecisionError::EvaluationTimeout(_)) => {
                    tracing::warn!(routing_key = %d.routing_key, reason = %e, "dead-lettering a message");
                    dead_letter(channel, &self.settings, &d, &e.to_string(), "rule_timeout").await?;
                    return d.ack(BasicAckOptions::default()).await.map(drop);
                }
                Err(e) => {
                    failures += 1;
                    let transient = e.is_connection_error();
                    tracing::warn!(error = %e, source = ?std::error::Error::source(&e), transient, failures, "storing an event failed");
                    if (!transient && failures >= 3) || cancel.is_cancelled() {
                        return d.nack(BasicNackOptions { requeue: true, multiple: false }).await.map(drop);
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    fn parse(&self, d: &Delivery) -> Result<InboundEvent, EventError> {
        let limit = self.settings.max_message_bytes;
        if d.data.len() > limit {
            return Err(EventError::TooLarge { size: d.data.len(), limit });
        }
        let headers: Vec<(String, String)> = d
            .properties
            .headers()
            .as_ref()
            .map(|h| h.inner().iter().filter_map(|(k, v)| amqp_text(v).map(|v| (k.as_str().to_owned(), v))).collect())
            .unwrap_or_default();
        let content_type = d.properties.content_type().as_ref().map(|c| c.as_str().to_owned());
        let binary = headers.iter().any(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k == "ce-specversion"
                || k == "ce_specversion"
                || k == "cloudevents:specversion"
                || k == "cloudevents_specversion"
        });
        let event = if binary {
            parse::binary(headers.iter().map(|(k, v)| (k.as_str(), v.clone())), content_type.as_deref(), &d.data)?
        } else {
            parse::structured(&d.data)?
        };
        let traceparent = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("traceparent")).map(|(_, v)| v.as_str());
        Ok(parse::with_traceparent(event, traceparent))
    }
}

fn amqp_text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        AMQPValue::Boolean(b) => Some(b.to_string()),
        AMQPValue::LongInt(i) => Some(i.to_string()),
        AMQPValue::LongLongInt(i) => Some(i.to_string()),
        AMQPValue::Timestamp(t) => chrono::DateTime::from_timestamp(*t as i64, 0).map(|t| t.to_rfc3339()),
        _ => None,
    }
}

/// The exchange, the quorum queue with its dead-lettering, and the dead-letter
/// queue. Idempotent: the same declarations as `docker/rabbitmq/definitions.json`.
pub async fn declare_topology(channel: &Channel, s: &AmqpSettings) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel.exchange_declare(s.exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default()).await?;
    channel
        .exchange_declare(s.dead_letter_exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await?;
    let queue_opts = QueueDeclareOptions { durable: true, ..Default::default() };
    let mut dead_args = FieldTable::default();
    dead_args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    if let Some(ms) = s.queue_expires_ms {
        dead_args.insert("x-expires".into(), AMQPValue::LongInt(ms as i32));
    }
    channel.queue_declare(s.dead_letter_queue.as_str().into(), queue_opts, dead_args).await?;
    channel
        .queue_bind(
            s.dead_letter_queue.as_str().into(),
            s.dead_letter_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(s.dead_letter_exchange.as_str().into()));
    args.insert("x-delivery-limit".into(), AMQPValue::LongInt(s.delivery_limit as i32));
    args.insert("x-dead-letter-strategy".into(), AMQPValue::LongString("at-least-once".into()));
    args.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
    if let Some(ms) = s.queue_expires_ms {
        args.insert("x-expires".into(), AMQPValue::LongInt(ms as i32));
    }
    channel.queue_declare(s.queue.as_str().into(), queue_opts, args).await?;
    channel
        .queue_bind(
            s.queue.as_str().into(),
            s.exchange.as_str().into(),
            s.binding_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Republishes `d` to the dead-letter exchange with the reason, and waits
/// for the broker's confirm so that the original can be acked safely.
async fn dead_letter(
    channel: &Channel,
    s: &AmqpSettings,
    d: &Delivery,
    reason: &str,
    kind: &str,
) -> Result<(), lapin::Error> {
    let mut headers = d.properties.headers().clone().unwrap_or_default();
    let reason: String = reason.chars().take(1000).collect();
    headers.insert("x-workbridge-error".into(), AMQPValue::LongString(LongString::from(reason)));
    headers.insert("x-workbridge-error-kind".into(), AMQPValue::LongString(kind.into()));
    headers.insert("x-original-exchange".into(), AMQPValue::LongString(d.exchange.as_str().into()));
    headers.insert("x-original-routing-key".into(), AMQPValue::LongString(d.routing_key.as_str().into()));
    let properties = d.properties.clone().with_headers(headers).with_delivery_mode(2);
    let routing_key: ShortString = d.routing_key.clone();
    let confirm = channel
        .basic_publish(
            s.dead_letter_exchange.as_str().into(),
            routing_key,
            BasicPublishOptions::default(),
            &d.data,
            properties,
        )
        .await?
        .await?;
    if confirm.is_nack() {
        return Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
            lapin::ChannelState::Error,
            "dead-letter publish was not confirmed",
        )));
    }
    Ok(())
}

/// For tests and tools: properties of a structured-mode CloudEvent message.
pub fn structured_properties() -> BasicProperties {
    BasicProperties::default().with_content_type("application/cloudevents+json".into()).with_delivery_mode(2)
}
