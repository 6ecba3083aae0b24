//! Ingest: events arrive at the edge (HTTP in `http`, behind the handler in
//! `api::events`; AMQP in `amqp`), are parsed into domain events
//! (`domain::cloudevent`), then handed to `decisions` to be stored and decided.

pub mod amqp;
pub mod http;
