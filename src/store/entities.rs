//! sea-orm entities. Private to `store/`: the rest of the service sees domain
//! types and the view structs the store functions return.

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub mod events {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub source: String,
        pub ce_id: String,
        pub kind: String,
        pub subject: Option<String>,
        pub event_time: Option<ChronoDateTimeUtc>,
        pub received_at: ChronoDateTimeUtc,
        pub state: String,
        pub code: String,
        pub severity: String,
        pub site: Option<String>,
        pub asset_id: Option<String>,
        pub mapped_by: Option<String>,
        pub outcome: String,
        pub rule_id: Option<String>,
        pub rule_version: Option<i32>,
        pub work_order_id: Option<String>,
        pub trace: Json,
        pub payload: Json,
        pub dedup_key: Option<String>,
    }
    no_relations!();
}

pub mod assets {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "assets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub site: String,
        pub name: String,
        pub class: String,
        pub criticality: Option<String>,
        pub parent_id: Option<String>,
        pub eam_system: Option<String>,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }
    no_relations!();
}

pub mod asset_tags {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "asset_tags")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tag: String,
        pub asset_id: String,
    }
    no_relations!();
}

pub mod tag_patterns {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "tag_patterns")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub pattern: String,
        pub asset_template: String,
        pub position: i32,
        pub created_at: ChronoDateTimeUtc,
    }
    no_relations!();
}

pub mod connectors {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "connectors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub kind: String,
        pub config: Json,
        pub webhook: Option<Json>,
        pub feedback_codes: Option<Json>,
        pub enabled: bool,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }
    no_relations!();
}

pub mod rules {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub enabled: bool,
        pub position: i32,
        pub version: i32,
        pub definition: Json,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }
    no_relations!();
}

pub mod rule_versions {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rule_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub rule_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i32,
        pub name: String,
        pub enabled: bool,
        pub position: i32,
        pub definition: Json,
        pub created_at: ChronoDateTimeUtc,
    }
    no_relations!();
}

pub mod work_orders {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "work_orders")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub connector: String,
        pub rule_id: String,
        pub rule_version: i32,
        pub dedup_key: String,
        pub open_key: Option<String>,
        pub asset_id: Option<String>,
        pub site: Option<String>,
        pub title: String,
        pub description: String,
        pub work_type: String,
        pub priority: i32,
        pub status: String,
        pub external_id: Option<String>,
        pub external_url: Option<String>,
        pub event_count: i32,
        pub first_event_time: ChronoDateTimeUtc,
        pub last_event_time: ChronoDateTimeUtc,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
        pub delivered_at: Option<ChronoDateTimeUtc>,
        pub trace: Json,
        pub last_error: Option<String>,
        pub due_by: Option<ChronoDateTimeUtc>,
        pub last_comment_at: Option<ChronoDateTimeUtc>,
        pub polled_at: Option<ChronoDateTimeUtc>,
        pub external_site: Option<String>,
        pub status_at: Option<ChronoDateTimeUtc>,
        pub expires_at: Option<ChronoDateTimeUtc>,
        pub proposed_at: Option<ChronoDateTimeUtc>,
        pub reviewed_at: Option<ChronoDateTimeUtc>,
        pub review_outcome: Option<String>,
    }
    no_relations!();
}

pub mod outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub work_order_id: String,
        pub kind: String,
        pub status: String,
        pub attempts: i32,
        pub next_attempt_at: ChronoDateTimeUtc,
        pub locked_until: Option<ChronoDateTimeUtc>,
        pub last_error: Option<String>,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
        pub claims: i32,
        pub claim_token: Option<String>,
    }
    no_relations!();
}

pub mod status_history {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "status_history")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub work_order_id: String,
        pub status: String,
        pub external_status: Option<String>,
        pub source: String,
        pub at: ChronoDateTimeUtc,
        pub recorded_at: ChronoDateTimeUtc,
        pub note: Option<String>,
        pub published_at: Option<ChronoDateTimeUtc>,
        pub flag: Option<String>,
        /// The review step this entry records (`ReviewAction`), if any.
        pub review: Option<String>,
    }
    no_relations!();
}

pub mod sandbox_orders {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sandbox_orders")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub reference: String,
        pub title: String,
        pub description: String,
        pub asset_id: Option<String>,
        pub site: Option<String>,
        pub work_type: String,
        pub priority: i32,
        pub status: String,
        pub payload: Json,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }
    no_relations!();
}

pub mod suppressions {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "suppressions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub scope: String,
        pub target: String,
        pub starts_at: ChronoDateTimeUtc,
        pub ends_at: ChronoDateTimeUtc,
        pub reason: String,
        pub author: String,
        pub created_at: ChronoDateTimeUtc,
    }
    no_relations!();
}

pub mod webhook_receipts {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_receipts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub connector: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub webhook_id: String,
        pub received_at: ChronoDateTimeUtc,
    }
    no_relations!();
}

pub mod feedback {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "feedback")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub work_order_id: String,
        pub verdict: String,
        pub comment: Option<String>,
        pub author: String,
        pub source: String,
        pub created_at: ChronoDateTimeUtc,
    }
    no_relations!();
}

pub mod api_keys {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub role: String,
        pub key_hash: String,
        pub created_at: ChronoDateTimeUtc,
        pub revoked_at: Option<ChronoDateTimeUtc>,
    }
    no_relations!();
}

pub mod audit {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub at: ChronoDateTimeUtc,
        pub actor_key_id: String,
        pub actor_name: String,
        pub action: String,
        pub entity: String,
        pub entity_id: String,
        pub before: Option<Json>,
        pub after: Option<Json>,
    }
    no_relations!();
}

pub mod debounce_timers {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "debounce_timers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub dedup_key: String,
        pub rule_id: String,
        pub event_source: String,
        pub event_ce_id: String,
        pub held_since: ChronoDateTimeUtc,
        pub held_for_minutes: i32,
        pub due_at: ChronoDateTimeUtc,
        pub locked_until: Option<ChronoDateTimeUtc>,
        pub claim_token: Option<String>,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }
    no_relations!();
}

pub mod redecide_jobs {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "redecide_jobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub state: String,
        pub filter: Json,
        pub bound_at: ChronoDateTimeUtc,
        pub total: i64,
        pub processed: i64,
        pub changed: i64,
        pub unchanged: i64,
        pub failed: i64,
        pub cursor_received_at: Option<ChronoDateTimeUtc>,
        pub cursor_id: Option<String>,
        pub error: Option<String>,
        pub created_by: Option<String>,
        pub claims: i32,
        pub locked_until: Option<ChronoDateTimeUtc>,
        pub claim_token: Option<String>,
        pub created_at: ChronoDateTimeUtc,
        pub started_at: Option<ChronoDateTimeUtc>,
        pub finished_at: Option<ChronoDateTimeUtc>,
        pub updated_at: ChronoDateTimeUtc,
    }
    no_relations!();
}
