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
