use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The common lifecycle of a work order (docs/spec.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Opened by a rule in `review` mode: waits for a planner's approval,
    /// is not sent to the EAM, and absorbs later events like an open order.
    Proposed,
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
    /// A proposal nobody reviewed before its rule's `expire_after_hours`.
    Expired,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 11] = [
        Self::Proposed,
        Self::Pending,
        Self::Created,
        Self::Acknowledged,
        Self::InProgress,
        Self::Completed,
        Self::Closed,
        Self::Cancelled,
        Self::Rejected,
        Self::Failed,
        Self::Expired,
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
            Self::Proposed => "proposed",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Open orders absorb further events with the same dedup key. Once the
    /// work is done (or will never be done) a new event opens a new order.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Proposed | Self::Pending | Self::Created | Self::Acknowledged | Self::InProgress)
    }

    /// Statuses of the review before the EAM: only workbridge sets them,
    /// never a status report of an EAM.
    pub fn is_review_only(self) -> bool {
        matches!(self, Self::Proposed | Self::Expired)
    }

    /// No way leads out: the EAMs keep closed, cancelled and rejected orders
    /// closed (`completed` is not final: an EAM may reopen completed work);
    /// an expired proposal stays expired.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Closed | Self::Cancelled | Self::Rejected | Self::Expired)
    }

    /// The lifecycle's legal moves (the README's table). Work moves forward:
    /// pending → created → acknowledged → in progress → completed → closed,
    /// and may skip steps (a poll sees only the latest). An open order may
    /// be cancelled or rejected; delivery may fail; a failed order may be
    /// retried (back to pending); completed work may be reopened by the EAM
    /// (back to acknowledged or in progress). A proposal is approved
    /// (pending), rejected, expires or is withdrawn (cancelled); nothing
    /// else moves into `proposed`. Nothing leaves closed, cancelled,
    /// rejected or expired.
    pub fn transition_to(self, to: Self) -> Transition {
        use OrderStatus::*;
        if self == to {
            return Transition::Unchanged;
        }
        let legal = match self {
            Proposed => matches!(to, Pending | Rejected | Expired | Cancelled),
            Pending => matches!(to, Created | Cancelled | Rejected | Failed),
            Created | Acknowledged | InProgress => {
                to.rank().is_some_and(|r| r > self.rank().unwrap_or(0)) || matches!(to, Cancelled | Rejected)
            }
            Completed => matches!(to, Closed | Acknowledged | InProgress | Cancelled),
            Failed => matches!(to, Pending | Created),
            Closed | Cancelled | Rejected | Expired => false,
        };
        if legal { Transition::Legal } else { Transition::Illegal }
    }

    /// Place along the forward path of the work, for the states on it.
    fn rank(self) -> Option<u8> {
        match self {
            Self::Created => Some(1),
            Self::Acknowledged => Some(2),
            Self::InProgress => Some(3),
            Self::Completed => Some(4),
            Self::Closed => Some(5),
            _ => None,
        }
    }
}

/// A step of the review before the EAM, as the status history and the
/// lifecycle events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewAction {
    /// Opened as a proposal.
    Proposed,
    /// Approved by a planner: on to the EAM.
    Approved,
    /// Rejected by a planner (counts as a false alarm of the rule).
    Rejected,
    /// Not reviewed before its rule's `expire_after_hours`.
    Expired,
    /// Its alert cleared before anyone reviewed it.
    Withdrawn,
}

impl ReviewAction {
    pub const ALL: [ReviewAction; 5] = [Self::Proposed, Self::Approved, Self::Rejected, Self::Expired, Self::Withdrawn];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The status a proposal ends in.
    pub fn status(self) -> OrderStatus {
        match self {
            Self::Proposed => OrderStatus::Proposed,
            Self::Approved => OrderStatus::Pending,
            Self::Rejected => OrderStatus::Rejected,
            Self::Expired => OrderStatus::Expired,
            Self::Withdrawn => OrderStatus::Cancelled,
        }
    }
}

/// How a reported status relates to an order's current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The order is in that status already: nothing to record.
    Unchanged,
    Legal,
    /// Not a move the lifecycle knows. The EAM is the system of record, so
    /// the order follows it, and the history entry is flagged.
    Illegal,
}

/// Why a history entry is marked: it did not move the order as reported,
/// or moved it along a transition the lifecycle does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryFlag {
    /// Older than the status last applied (a late poll, a replayed webhook):
    /// recorded, and the order was not moved.
    Stale,
    /// A move the lifecycle does not allow (e.g. closed → in progress),
    /// followed because the EAM is the system of record.
    Illegal,
    /// A fact recorded without moving the order (e.g. the EAM confirmed a
    /// create after the order was cancelled here).
    Noted,
}

impl HistoryFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stale => "stale",
            Self::Illegal => "illegal",
            Self::Noted => "noted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Stale, Self::Illegal, Self::Noted].into_iter().find(|f| f.as_str() == s)
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
            [
                OrderStatus::Proposed,
                OrderStatus::Pending,
                OrderStatus::Created,
                OrderStatus::Acknowledged,
                OrderStatus::InProgress
            ]
        );
    }

    #[test]
    fn work_moves_forward_and_final_states_stay_final() {
        use OrderStatus::*;
        let legal = |a: OrderStatus, b: OrderStatus| a.transition_to(b) == Transition::Legal;
        assert!(legal(Pending, Created));
        assert!(legal(Created, InProgress), "a poll may skip steps");
        assert!(legal(Acknowledged, Closed));
        assert!(legal(InProgress, Cancelled));
        assert!(legal(Completed, Closed));
        assert!(legal(Completed, InProgress), "an EAM may reopen completed work");
        assert!(legal(Failed, Pending), "a failed order may be retried");
        assert_eq!(InProgress.transition_to(InProgress), Transition::Unchanged);
        assert_eq!(InProgress.transition_to(Acknowledged), Transition::Illegal);
        assert_eq!(Created.transition_to(Pending), Transition::Illegal);
        // A proposal ends one of four ways; nothing else leads into it.
        for to in [Pending, Rejected, Expired, Cancelled] {
            assert!(legal(Proposed, to), "proposed → {to:?}");
        }
        for to in [Created, Acknowledged, InProgress, Completed, Closed, Failed] {
            assert_eq!(Proposed.transition_to(to), Transition::Illegal, "proposed → {to:?}");
        }
        for from in OrderStatus::ALL.into_iter().filter(|s| *s != Proposed) {
            assert_eq!(from.transition_to(Proposed), Transition::Illegal, "{from:?} → proposed");
        }
        for a in ReviewAction::ALL {
            assert_eq!(ReviewAction::parse(a.as_str()), Some(a));
            assert!(a == ReviewAction::Proposed || legal(Proposed, a.status()), "{a:?}");
        }
        for end in [Closed, Cancelled, Rejected, Expired] {
            assert!(end.is_final());
            for to in OrderStatus::ALL.into_iter().filter(|s| *s != end) {
                assert_eq!(end.transition_to(to), Transition::Illegal, "{end:?} → {to:?}");
            }
        }
        for flag in [HistoryFlag::Stale, HistoryFlag::Illegal, HistoryFlag::Noted] {
            assert_eq!(HistoryFlag::parse(flag.as_str()), Some(flag));
        }
    }

    #[test]
    fn priority_is_bounded() {
        assert!(Priority::new(0).is_none());
        assert!(Priority::new(6).is_none());
        assert_eq!(serde_json::from_str::<Priority>("3").unwrap().get(), 3);
        assert!(serde_json::from_str::<Priority>("9").is_err());
    }
}
