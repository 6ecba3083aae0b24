//! Domain types: what the rest of the service works with once input has been
//! parsed at the edge (HTTP, AMQP, connector replies).

pub mod asset;
pub mod cloudevent;
mod event;
mod feedback;
pub mod glob;
pub mod ident;
mod ids;
pub mod inhibit;
mod order;
pub mod rule;
pub mod template;

pub use asset::{Asset, AssetInput, AssetView, TagPattern, TagPatternInput, ValidAsset};
pub use event::{
    AlertState, AssetHint, EventKind, EventOutcome, EventView, InboundEvent, Severity, TIME_RECEIVED, event_context,
};
pub use feedback::{FeedbackSource, OrderVerdict, Verdict, order_verdict};
pub use ids::{EamRef, ExternalId, WorkOrderId};
pub use order::{HistoryFlag, OrderStatus, Priority, ReviewAction, Transition};
