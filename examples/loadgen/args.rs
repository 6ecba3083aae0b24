//! The command line.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// End-to-end load run of workbridge through RabbitMQ, the database and a
/// simulated REST EAM.
#[derive(Parser, Debug, Clone)]
#[command(about, long_about = None)]
pub struct Args {
    /// Database of the service: a fresh SQLite file or a fresh PostgreSQL database.
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    pub db: Backend,
    /// Service processes consuming the same queue (2 needs PostgreSQL).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub replicas: u8,
    /// Events to publish.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Events per second; 0 publishes as fast as the broker confirms.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Publishes awaiting the broker's confirm at once.
    #[arg(long, default_value_t = 4096)]
    pub window: usize,
    /// Assets in the registry (sites and areas included).
    #[arg(long, default_value_t = 10_000)]
    pub assets: usize,
    /// Rules (one ignore rule, specific create rules, one catch-all).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(3..))]
    pub rules: u32,
    /// The workbridge binary [default: $CARGO_TARGET_DIR/release/workbridge, else ./target/release/workbridge].
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Extra variables for the service, e.g. `--env WORKBRIDGE_AMQP__PREFETCH=128` (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// RabbitMQ, for the service and the publisher.
    #[arg(long, env = "WORKBRIDGE_AMQP_URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// PostgreSQL server database used to create and drop the run's database.
    #[arg(long, default_value = "postgres://root@127.0.0.1:5432/postgres")]
    pub pg_admin_url: String,
    /// Keep the database, the logs and the temporary folder.
    #[arg(long)]
    pub keep: bool,
    /// Give up waiting for decisions and deliveries after this long.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// PostgreSQL: run ANALYZE on the run's database this often during the
    /// load (0: never), standing in for autovacuum where it is switched off.
    #[arg(long, default_value_t = 0)]
    pub analyze_every_secs: u64,
    /// Delay of each answer of the simulated EAM.
    #[arg(long, default_value_t = 0)]
    pub eam_delay_ms: u64,
    /// Seed of the event plan (same seed, same events).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The mix: `realistic` (20 % new orders, 60 % merges, 20 % others) or
    /// `new-orders` (every event opens an order: the delivery path at full load).
    #[arg(long, value_enum, default_value_t = Mix::Realistic)]
    pub mix: Mix,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    Realistic,
    NewOrders,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

pub fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("expected K=V, got {s:?}"))
}
