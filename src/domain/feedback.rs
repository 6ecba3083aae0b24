//! A person's or the EAM's judgment of an automatic order: was it useful?

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Useful,
    FalseAlarm,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Useful => "useful",
            Self::FalseAlarm => "false_alarm",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Useful, Self::FalseAlarm].into_iter().find(|v| v.as_str() == s)
    }
}

/// Who gave a verdict on an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackSource {
    /// A planner, through `POST /v1/work-orders/{id}/feedback`.
    Planner,
    /// A planner rejecting a proposal in review.
    Review,
    /// The EAM's closure code, mapped by the connector's `feedback_codes`.
    Eam,
}

impl FeedbackSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planner => "planner",
            Self::Review => "review",
            Self::Eam => "eam",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Planner, Self::Review, Self::Eam].into_iter().find(|v| v.as_str() == s)
    }
}

/// What an order counts as in a rule's precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderVerdict {
    Useful,
    FalseAlarm,
    Undecided,
}

impl From<Verdict> for OrderVerdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Useful => Self::Useful,
            Verdict::FalseAlarm => Self::FalseAlarm,
        }
    }
}

/// THE verdict on an order, used by the per-rule KPIs and the backtest
/// alike. `feedback` is the order's feedback, oldest first (within one
/// source the latest counts). Precedence:
///
/// 1. a planner's feedback;
/// 2. a rejection in review (false alarm);
/// 3. the EAM's closure code, where the connector maps it;
/// 4. the order's outcome: in progress, completed or closed → useful;
///    cancelled or rejected → false alarm; anything else (proposed, pending,
///    created, acknowledged, failed, expired) → undecided.
pub fn order_verdict(
    feedback: impl IntoIterator<Item = (FeedbackSource, Verdict)>,
    status: super::OrderStatus,
) -> OrderVerdict {
    use super::OrderStatus::*;
    let (mut planner, mut review, mut eam) = (None, None, None);
    for (source, verdict) in feedback {
        match source {
            FeedbackSource::Planner => planner = Some(verdict),
            FeedbackSource::Review => review = Some(verdict),
            FeedbackSource::Eam => eam = Some(verdict),
        }
    }
    if let Some(v) = planner.or(review).or(eam) {
        return v.into();
    }
    match status {
        InProgress | Completed | Closed => OrderVerdict::Useful,
        Cancelled | Rejected => OrderVerdict::FalseAlarm,
        Proposed | Pending | Created | Acknowledged | Failed | Expired => OrderVerdict::Undecided,
    }
}

#[cfg(test)]
mod tests {
    use super::super::OrderStatus::*;
    use super::FeedbackSource::*;
    use super::Verdict::*;
    use super::*;

    #[test]
    fn planner_beats_review_beats_eam_beats_the_outcome() {
        assert_eq!(order_verdict([(Planner, Useful)], Cancelled), OrderVerdict::Useful);
        assert_eq!(order_verdict([(Planner, Useful), (Review, FalseAlarm)], Rejected), OrderVerdict::Useful);
        assert_eq!(order_verdict([(Eam, Useful), (Review, FalseAlarm)], Rejected), OrderVerdict::FalseAlarm);
        assert_eq!(order_verdict([(Eam, FalseAlarm)], Completed), OrderVerdict::FalseAlarm);
        // Within one source, the latest counts.
        assert_eq!(order_verdict([(Planner, FalseAlarm), (Planner, Useful)], Created), OrderVerdict::Useful);
        assert_eq!(order_verdict([], Closed), OrderVerdict::Useful);
        assert_eq!(order_verdict([], InProgress), OrderVerdict::Useful);
        assert_eq!(order_verdict([], Rejected), OrderVerdict::FalseAlarm);
        for open in [Proposed, Pending, Created, Acknowledged, Failed, Expired] {
            assert_eq!(order_verdict([], open), OrderVerdict::Undecided, "{open:?}");
        }
        for s in [Planner, Review, Eam] {
            assert_eq!(FeedbackSource::parse(s.as_str()), Some(s));
        }
    }
}
