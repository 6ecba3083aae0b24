//! Ingest: parse CloudEvents at the edge (HTTP in `http`-facing handlers,
//! AMQP in `amqp`), then hand the validated event to `decisions::accept`.

pub mod amqp;
pub mod parse;

pub use parse::IngestError;
