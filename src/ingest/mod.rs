//! Ingest: events arrive at the edge (HTTP in `api::events`, AMQP in
//! `amqp`), are parsed into domain events (`domain::cloudevent`), then
//! handed to `decisions` to be stored and decided.

pub mod amqp;
