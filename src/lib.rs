//! workbridge: events from a plant's trusted data layer in, work orders in
//! the EAM out, and the figures of how maintenance responds.
//!
//! Modules follow the data flow: `ingest` → `mapping` → `rules` →
//! `decisions` (with the outbox and its dispatcher) → `connectors` → `sync`.

pub mod api;
pub mod app;
pub mod broker;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod decisions;
pub mod domain;
pub mod ingest;
pub mod kpis;
pub mod mapping;
pub mod metrics;
pub mod rules;
pub mod sandbox;
pub mod store;
pub mod sync;
pub mod telemetry;
