//! Fault tests: the real binary (a child process) against the machine's
//! RabbitMQ and PostgreSQL and a simulated ServiceNow, under a bounded load,
//! while something breaks: the service is killed, two replicas race,
//! RabbitMQ or PostgreSQL goes away, the EAM refuses and then times out
//! after storing. Each test then checks that every published event is
//! stored exactly once and that every order is in the EAM exactly once.
//!
//! They stop shared services, so they run alone and one at a time:
//! `cargo nextest run --workspace --profile faults` (`.config/nextest.toml`);
//! the main suite (`cargo nextest run --workspace`) leaves them out.

// Shared with the main suite; only part of it is used here.
#[allow(dead_code, unused_imports)]
#[path = "../it/helpers.rs"]
mod helpers;

// The process and database helpers, shared with the load tool.
#[path = "../testkit/mod.rs"]
mod testkit;

mod accounting;
mod harness;
mod servicenow_sim;

mod broker_restart;
mod database_restart;
mod eam_outage;
mod replicas;
mod sigkill;
