use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The common lifecycle of a work order (docs/spec.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Decided, not yet delivered to the EAM.
    Pending,
    Created,
    /// Approved, accepted or assigned.
    Acknowledged,
    InProgress,
    Completed,
    Closed,
    Cancelled,
    Rejected,
    /// Delivery gave up.
    Failed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 9] = [
        Self::Pending,
        Self::Created,
        Self::Acknowledged,
        Self::InProgress,
        Self::Completed,
        Self::Closed,
        Self::Cancelled,
        Self::Rejected,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Created => "created",
            Self::Acknowledged => "acknowledged",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Closed => "closed",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Open orders absorb further events with the same dedup key. Once the
    /// work is done (or will never be done) a new event opens a new order.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Created | Self::Acknowledged | Self::InProgress)
    }
}

/// 1 (highest) to 5 (lowest), as Maximo, SAP and ServiceNow number them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Priority(u8);

impl Priority {
    pub fn new(value: u8) -> Option<Self> {
        (1..=5).contains(&value).then_some(Self(value))
    }
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Priority {
    type Error = String;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::new(value).ok_or_else(|| format!("priority must be 1 to 5, got {value}"))
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p.0
    }
}

impl utoipa::ToSchema for Priority {}
impl utoipa::PartialSchema for Priority {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(1))
            .maximum(Some(5))
            .description(Some("1 (highest) to 5 (lowest)"))
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_only_active_ones_are_open() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        let open: Vec<_> = OrderStatus::ALL.into_iter().filter(|s| s.is_open()).collect();
        assert_eq!(
            open,
            [OrderStatus::Pending, OrderStatus::Created, OrderStatus::Acknowledged, OrderStatus::InProgress]
        );
    }

    #[test]
    fn priority_is_bounded() {
        assert!(Priority::new(0).is_none());
        assert!(Priority::new(6).is_none());
        assert_eq!(serde_json::from_str::<Priority>("3").unwrap().get(), 3);
        assert!(serde_json::from_str::<Priority>("9").is_err());
    }
}
