//! Integration tests: the real application on a random port, against the
//! real RabbitMQ and PostgreSQL of the machine and a fresh SQLite file, with
//! EAMs simulated over HTTP by wiremock.

mod helpers;
// The process and database helpers shared with the fault tests and the load tool.
#[path = "../testkit/mod.rs"]
#[allow(dead_code)]
mod testkit;

mod amqp_ingest;
mod audit;
mod auth;
mod connectors;
mod console;
mod delivery;
mod http_ingest;
mod input;
mod kpis;
mod lifecycle;
mod maximo;
mod metrics;
mod openapi;
mod redecide;
mod registry;
mod review;
mod rules;
mod sap;
mod scale;
mod secrets;
mod security;
mod servicenow;
mod shutdown;
mod webhooks;
mod windows;
