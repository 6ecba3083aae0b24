//! Domain types: what the rest of the service works with once input has been
//! parsed at the edge (HTTP, AMQP, connector replies).

mod event;
pub mod ident;
mod order;

pub use event::{AlertState, AssetHint, EventKind, EventOutcome, InboundEvent, Severity};
pub use order::{OrderStatus, Priority};
