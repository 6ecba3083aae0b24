//! Prometheus metrics (`/metrics`), one registry per application (no
//! global state, so that tests and several apps in one process stay apart).
//! Labels stay low-cardinality: type, outcome, action, connector.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub r#type: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub connector: String,
    /// What was sent: create, cancel or comment.
    pub kind: String,
    /// success, transient, permanent, unknown or circuit_open.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabels {
    pub connector: String,
}

fn latency_histogram() -> Histogram {
    // 5 ms to about 40 s
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub events: Family<EventLabels, Counter>,
    pub rejected: Family<ReasonLabels, Counter>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub delivery_seconds: Family<ConnectorLabels, Histogram, fn() -> Histogram>,
    pub redeliveries: Counter,
    /// Messages decided per transaction (group commit).
    pub batch_size: Histogram,
    pub outbox_depth: Gauge,
    pub orders_open: Gauge,
    pub connector_healthy: Family<ConnectorLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::default();
        let events = Family::<EventLabels, Counter>::default();
        r.register(
            "workbridge_events_received",
            "Events stored, by CloudEvents type and outcome (the decision)",
            events.clone(),
        );
        let rejected = Family::<ReasonLabels, Counter>::default();
        r.register(
            "workbridge_events_rejected",
            "Messages and requests refused as malformed, invalid or too large",
            rejected.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        r.register("workbridge_deliveries", "Calls to EAMs, by connector, kind and outcome", deliveries.clone());
        let delivery_seconds =
            Family::<ConnectorLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        r.register("workbridge_delivery_seconds", "Latency of EAM calls", delivery_seconds.clone());
        let redeliveries = Counter::default();
        r.register(
            "workbridge_consumer_redeliveries",
            "RabbitMQ messages delivered again (redelivered flag)",
            redeliveries.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        r.register(
            "workbridge_consumer_batch_size",
            "RabbitMQ messages decided in one transaction (group commit)",
            batch_size.clone(),
        );
        let outbox_depth = Gauge::default();
        r.register("workbridge_outbox_depth", "Deliveries waiting to be made", outbox_depth.clone());
        let orders_open = Gauge::default();
        r.register("workbridge_orders_open", "Work orders that are open (pending to in progress)", orders_open.clone());
        let connector_healthy = Family::<ConnectorLabels, Gauge>::default();
        r.register(
            "workbridge_connector_healthy",
            "1 when a connector's circuit is closed and its deliveries succeed",
            connector_healthy.clone(),
        );
        Self {
            registry: Mutex::new(r),
            events,
            rejected,
            deliveries,
            delivery_seconds,
            redeliveries,
            batch_size,
            outbox_depth,
            orders_open,
            connector_healthy,
        }
    }
}

impl Metrics {
    pub fn event(&self, kind: &str, outcome: &str) {
        self.events.get_or_create(&EventLabels { r#type: kind.to_owned(), outcome: outcome.to_owned() }).inc();
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
    }

    pub fn delivery(&self, connector: &str, kind: &str, outcome: &str, seconds: Option<f64>) {
        let labels =
            DeliveryLabels { connector: connector.to_owned(), kind: kind.to_owned(), outcome: outcome.to_owned() };
        self.deliveries.get_or_create(&labels).inc();
        if let Some(s) = seconds {
            self.delivery_seconds.get_or_create(&ConnectorLabels { connector: connector.to_owned() }).observe(s);
        }
    }

    pub fn batch(&self, size: usize) {
        self.batch_size.observe(size as f64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}
