//! Connector definitions, stored as JSON documents. The store does not
//! know the connector kinds: the configuration and webhook types are the
//! caller's (`decisions::StoredConnector` names them).

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::connectors;
use super::{StoreError, corrupt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A stored connector with its configuration unmasked: for the dispatcher only.
#[derive(Debug, Clone)]
pub struct StoredConnector<C, W> {
    pub name: String,
    pub enabled: bool,
    pub config: C,
    pub webhook: Option<W>,
    pub feedback_codes: std::collections::BTreeMap<String, crate::domain::Verdict>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn from_model<C: DeserializeOwned, W: DeserializeOwned>(
    m: connectors::Model,
) -> Result<StoredConnector<C, W>, StoreError> {
    let config: C = serde_json::from_value(m.config).map_err(|_| corrupt("connector config of", &m.name))?;
    let webhook = match m.webhook {
        Some(w) => Some(serde_json::from_value(w).map_err(|_| corrupt("webhook settings of", &m.name))?),
        None => None,
    };
    let feedback_codes = match m.feedback_codes {
        Some(f) => serde_json::from_value(f).map_err(|_| corrupt("feedback codes of", &m.name))?,
        None => Default::default(),
    };
    Ok(StoredConnector {
        name: m.name,
        enabled: m.enabled,
        config,
        webhook,
        feedback_codes,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub async fn get<C: DeserializeOwned, W: DeserializeOwned>(
    conn: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<StoredConnector<C, W>>, StoreError> {
    connectors::Entity::find_by_id(name.to_owned()).one(conn).await?.map(from_model).transpose()
}

/// The connector, its row locked until the transaction ends (PostgreSQL:
/// `FOR UPDATE`; SQLite has one writer), so that a rule saved meanwhile
/// waits for the delete to decide and then sees the connector gone.
pub async fn get_locked<C: DeserializeOwned, W: DeserializeOwned>(
    conn: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<StoredConnector<C, W>>, StoreError> {
    let mut q = connectors::Entity::find_by_id(name.to_owned());
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        q = q.lock_exclusive();
    }
    q.one(conn).await?.map(from_model).transpose()
}

/// Whether the connector exists, its row share-locked until the transaction
/// ends (PostgreSQL), so that it cannot be deleted before a rule that names
/// it is committed.
pub async fn exists_locked(conn: &impl ConnectionTrait, name: &str) -> Result<bool, StoreError> {
    let mut q = connectors::Entity::find_by_id(name.to_owned());
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        q = q.lock_shared();
    }
    Ok(q.one(conn).await?.is_some())
}

/// The names of every connector.
pub async fn names(conn: &impl ConnectionTrait) -> Result<std::collections::BTreeSet<String>, StoreError> {
    Ok(connectors::Entity::find()
        .select_only()
        .column(connectors::Column::Name)
        .into_tuple::<String>()
        .all(conn)
        .await?
        .into_iter()
        .collect())
}

/// What holds a connector: enabled rules that create orders through it,
/// and its open orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// Names of the enabled rules whose action creates through it.
    pub rules: Vec<String>,
    /// Orders through it that are still open (pending to in progress).
    pub open_orders: u64,
}

impl Usage {
    pub fn is_unused(&self) -> bool {
        self.rules.is_empty() && self.open_orders == 0
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules: Vec<String> = self.rules.iter().map(|r| format!("{r:?}")).collect();
        let orders = match self.open_orders {
            1 => "1 open work order".to_owned(),
            n => format!("{n} open work orders"),
        };
        let rules = match rules.len() {
            0 => "no enabled rule".to_owned(),
            1 => format!("enabled rule {}", rules[0]),
            _ => format!("enabled rules {}", rules.join(", ")),
        };
        write!(f, "{rules} and {orders}; disable or change those rules and let the orders close first")
    }
}

pub async fn usage(conn: &impl ConnectionTrait, name: &str) -> Result<Usage, StoreError> {
    use super::entities::work_orders;
    use crate::domain::OrderStatus;
    use sea_orm::{Condition, PaginatorTrait};
    let rules = super::rules::list(conn)
        .await?
        .into_iter()
        .filter(|r| r.enabled && matches!(&r.action, crate::domain::rule::Action::Create(c) if c.connector == name))
        .map(|r| r.name)
        .collect();
    let open: Vec<&str> = OrderStatus::ALL.into_iter().filter(|s| s.is_open()).map(OrderStatus::as_str).collect();
    let open_orders = work_orders::Entity::find()
        .filter(work_orders::Column::Connector.eq(name))
        .filter(
            Condition::any()
                .add(work_orders::Column::Status.is_in(open))
                .add(work_orders::Column::OpenKey.is_not_null()),
        )
        .count(conn)
        .await?;
    Ok(Usage { rules, open_orders })
}

pub async fn list<C: DeserializeOwned, W: DeserializeOwned>(
    conn: &impl ConnectionTrait,
) -> Result<Vec<StoredConnector<C, W>>, StoreError> {
    connectors::Entity::find()
        .order_by_asc(connectors::Column::Name)
        .all(conn)
        .await?
        .into_iter()
        .map(from_model)
        .collect()
}

#[allow(clippy::too_many_arguments)]
/// Creates (`must_exist = false`, conflict if present) or replaces
/// (`must_exist = true`, not found if absent) a connector.
pub async fn save<C: Serialize + DeserializeOwned, W: Serialize + DeserializeOwned>(
    conn: &impl ConnectionTrait,
    name: &str,
    kind: &str,
    enabled: bool,
    config: &C,
    webhook: Option<&W>,
    feedback_codes: &std::collections::BTreeMap<String, crate::domain::Verdict>,
    must_exist: bool,
    now: DateTime<Utc>,
) -> Result<StoredConnector<C, W>, StoreError> {
    let existing = connectors::Entity::find_by_id(name.to_owned()).one(conn).await?;
    let model = connectors::ActiveModel {
        name: Set(name.to_owned()),
        kind: Set(kind.to_owned()),
        config: Set(serde_json::to_value(config).unwrap_or_default()),
        webhook: Set(webhook.map(|w| serde_json::to_value(w).unwrap_or_default())),
        feedback_codes: Set(
            (!feedback_codes.is_empty()).then(|| serde_json::to_value(feedback_codes).unwrap_or_default())
        ),
        enabled: Set(enabled),
        created_at: Set(existing.as_ref().map_or(now, |e| e.created_at)),
        updated_at: Set(now),
    };
    match (existing.is_some(), must_exist) {
        (true, false) => {
            return Err(StoreError::Conflict(format!("connector {name} already exists")));
        }
        (false, true) => return Err(StoreError::NotFound(format!("connector {name}"))),
        (true, true) => {
            connectors::Entity::update(model).exec(conn).await?;
        }
        (false, false) => {
            connectors::Entity::insert(model).exec_without_returning(conn).await?;
        }
    }
    get(conn, name).await?.ok_or_else(|| StoreError::NotFound(format!("connector {name}")))
}

pub async fn delete<C: ConnectionTrait>(conn: &C, name: &str) -> Result<(), StoreError> {
    let res = connectors::Entity::delete_by_id(name.to_owned()).exec(conn).await?;
    if res.rows_affected == 0 {
        return Err(StoreError::NotFound(format!("connector {name}")));
    }
    Ok(())
}

/// Records a webhook delivery id; `false` when it was received before.
/// Receipts from before `forget_before` are dropped first: a replay that
/// old fails the timestamp check anyway, so the table holds only the
/// replay window.
pub async fn record_webhook<C: ConnectionTrait>(
    conn: &C,
    connector: &str,
    webhook_id: &str,
    now: DateTime<Utc>,
    forget_before: DateTime<Utc>,
) -> Result<bool, StoreError> {
    use super::entities::webhook_receipts;
    use sea_orm::sea_query::OnConflict;
    webhook_receipts::Entity::delete_many()
        .filter(webhook_receipts::Column::Connector.eq(connector))
        .filter(webhook_receipts::Column::ReceivedAt.lt(forget_before))
        .exec(conn)
        .await?;
    let rows = webhook_receipts::Entity::insert(webhook_receipts::ActiveModel {
        connector: Set(connector.to_owned()),
        webhook_id: Set(webhook_id.to_owned()),
        received_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([webhook_receipts::Column::Connector, webhook_receipts::Column::WebhookId])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(rows == 1)
}
