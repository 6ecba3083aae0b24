//! The accounting after a fault: what the database, the simulated EAM and
//! the broker hold, against what was published.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};

use crate::harness::{Load, Service, connect_db, count, rows, wait_for};
use crate::helpers::{AmqpNames, Broker};
use crate::servicenow_sim::ServiceNowSim;

/// Stored events and orders as the database holds them.
#[derive(Debug, Default)]
pub struct Progress {
    pub events: i64,
    pub pending_deliveries: i64,
    pub pending_orders: i64,
}

pub async fn progress(db_url: &str) -> Option<Progress> {
    let db = connect_db(db_url).await?;
    let p = Progress {
        events: count(&db, "SELECT COUNT(*) FROM events").await?,
        pending_deliveries: count(&db, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'").await?,
        pending_orders: count(&db, "SELECT COUNT(*) FROM work_orders WHERE status = 'pending'").await?,
    };
    let _ = db.close().await;
    Some(p)
}

/// The status of one order, straight from the database.
pub async fn order_status(db_url: &str, id: &str) -> Option<String> {
    let db = connect_db(db_url).await?;
    let r = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            match db.get_database_backend() {
                sea_orm::DbBackend::Postgres => "SELECT status FROM work_orders WHERE id = $1",
                _ => "SELECT status FROM work_orders WHERE id = ?",
            },
            [id.into()],
        ))
        .await
        .ok()??;
    let status = r.try_get::<String>("", "status").ok();
    let _ = db.close().await;
    status
}

/// Waits until every event of `load` is stored and every order delivered
/// (or `within` runs out: the accounting then says what is missing).
pub async fn wait_settled(db_url: &str, load: &Load, within: Duration) {
    let want = load.ids.len() as i64;
    wait_for(within, async || {
        progress(db_url).await.is_some_and(|p| p.events >= want && p.pending_deliveries == 0 && p.pending_orders == 0)
    })
    .await;
}

/// Checks that every published event is stored once with its effects, that
/// every dedup key has one order, and that every order is in the EAM exactly
/// once (and nothing else is). Returns what is wrong, with enough detail to
/// reproduce.
pub async fn audit(db_url: &str, load: &Load, eam: &ServiceNowSim, names: &AmqpNames) -> Vec<String> {
    let mut problems = vec![];
    let db = connect_db(db_url).await.expect("the service's database is reachable");

    // Events: each published id once, decided, linked to an order.
    let events = rows(&db, "SELECT source, ce_id, outcome, work_order_id FROM events").await.unwrap();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let mut per_order: HashMap<String, usize> = HashMap::new();
    let mut created_per_order: HashMap<String, usize> = HashMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for r in &events {
        let source: String = r.try_get("", "source").unwrap();
        let ce_id: String = r.try_get("", "ce_id").unwrap();
        let outcome: String = r.try_get("", "outcome").unwrap();
        let order: Option<String> = r.try_get("", "work_order_id").unwrap();
        *seen.entry((source, ce_id.clone())).or_default() += 1;
        *outcomes.entry(outcome.clone()).or_default() += 1;
        match &order {
            Some(o) => {
                *per_order.entry(o.clone()).or_default() += 1;
                if outcome == "created" {
                    *created_per_order.entry(o.clone()).or_default() += 1;
                }
            }
            None => problems.push(format!("event {ce_id} ({outcome}) is linked to no order")),
        }
        if outcome != "created" && outcome != "merged" {
            problems.push(format!("event {ce_id} has outcome {outcome}, expected created or merged"));
        }
    }
    let stored: HashSet<&str> = seen.keys().map(|(_, id)| id.as_str()).collect();
    let missing: Vec<&String> = load.ids.iter().filter(|id| !stored.contains(id.as_str())).collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{} of {} published events are not stored, e.g. {:?}",
            missing.len(),
            load.ids.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    if !doubled.is_empty() {
        problems.push(format!("{} events are stored more than once, e.g. {:?}", doubled.len(), doubled.first()));
    }
    let strangers = stored.iter().filter(|id| !load.ids.contains(**id)).count();
    if strangers > 0 {
        problems.push(format!("{strangers} stored events were never published"));
    }

    // Orders: one per dedup key, delivered, counting exactly their events.
    let orders =
        rows(&db, "SELECT id, dedup_key, status, external_id, event_count, last_error FROM work_orders").await.unwrap();
    let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut external: HashMap<String, Option<String>> = HashMap::new();
    for r in &orders {
        let id: String = r.try_get("", "id").unwrap();
        let key: String = r.try_get("", "dedup_key").unwrap();
        let status: String = r.try_get("", "status").unwrap();
        let external_id: Option<String> = r.try_get("", "external_id").unwrap();
        let event_count: i32 = r.try_get("", "event_count").unwrap();
        let last_error: Option<String> = r.try_get("", "last_error").unwrap();
        per_key.entry(key.clone()).or_default().push(id.clone());
        if status != "created" || external_id.is_none() {
            problems.push(format!(
                "order {id} ({key}) is {status}, external id {external_id:?}, expected created in the EAM (last error: {last_error:?})"
            ));
        }
        let linked = per_order.get(&id).copied().unwrap_or(0);
        if linked != event_count as usize {
            problems.push(format!("order {id} ({key}) counts {event_count} events but {linked} are linked to it"));
        }
        if created_per_order.get(&id).copied().unwrap_or(0) != 1 {
            problems
                .push(format!("order {id} ({key}) was created by {:?} events, expected 1", created_per_order.get(&id)));
        }
        external.insert(id, external_id);
    }
    for o in per_order.keys() {
        if !external.contains_key(o) {
            problems.push(format!("events are linked to order {o}, which does not exist"));
        }
    }
    for (key, ids) in &per_key {
        if ids.len() != 1 {
            problems.push(format!("dedup key {key} has {} orders: {ids:?}", ids.len()));
        }
    }
    let keys: BTreeSet<String> = per_key.keys().cloned().collect();
    if keys != load.keys {
        let lacking: Vec<_> = load.keys.difference(&keys).collect();
        let extra: Vec<_> = keys.difference(&load.keys).collect();
        problems.push(format!("dedup keys differ: without an order {lacking:?}, unexpected {extra:?}"));
    }

    // Deliveries: one create per order, delivered.
    let deliveries = rows(&db, "SELECT work_order_id, kind, status FROM outbox").await.unwrap();
    let mut creates: HashMap<String, Vec<String>> = HashMap::new();
    for r in &deliveries {
        let order: String = r.try_get("", "work_order_id").unwrap();
        let kind: String = r.try_get("", "kind").unwrap();
        let status: String = r.try_get("", "status").unwrap();
        if kind == "create" {
            creates.entry(order).or_default().push(status);
        } else {
            problems.push(format!("unexpected {kind} delivery ({status}) for order {order}"));
        }
    }
    for id in external.keys() {
        match creates.get(id).map(Vec::as_slice) {
            Some([s]) if s == "delivered" => {}
            other => problems.push(format!("order {id} has create deliveries {other:?}, expected one delivered")),
        }
    }
    let _ = db.close().await;

    // The EAM: exactly one incident per order, the one the order points to.
    let mut incidents: HashMap<String, Vec<String>> = HashMap::new();
    for i in eam.incidents() {
        incidents.entry(i.correlation_id.clone()).or_default().push(i.sys_id.clone());
    }
    for (id, external_id) in &external {
        match incidents.get(id).map(Vec::as_slice) {
            Some([one]) if Some(one) == external_id.as_ref() => {}
            Some([one]) => {
                problems.push(format!("order {id} points to {external_id:?} but its incident in the EAM is {one}"))
            }
            Some(many) => problems.push(format!(
                "order {id} was created {} times in the EAM (incidents {many:?}; the order points to {external_id:?})",
                many.len()
            )),
            None => problems.push(format!("order {id} is not in the EAM")),
        }
    }
    for (reference, ids) in &incidents {
        if !external.contains_key(reference) {
            problems.push(format!("the EAM holds incidents {ids:?} for reference {reference:?}, which is no order"));
        }
    }
    if eam.unauthorised() > 0 {
        problems.push(format!("{} requests reached the EAM without valid credentials", eam.unauthorised()));
    }

    // The broker: nothing left behind, nothing dead-lettered.
    let broker = Broker::connect(names).await;
    let left = broker.queue_depth(&names.queue).await;
    if left != 0 {
        problems.push(format!("{left} messages are still in the queue"));
    }
    let dead = broker.queue_depth(&names.dead_queue).await;
    if dead != 0 {
        problems.push(format!("{dead} messages were dead-lettered"));
    }
    let _ = broker.conn.close(200, "done".into()).await;

    if !problems.is_empty() {
        problems.insert(
            0,
            format!(
                "{} published ({} distinct), {} stored {outcomes:?}, {} orders for {} keys, {} incidents in the EAM",
                load.events.len(),
                load.ids.len(),
                events.len(),
                orders.len(),
                load.keys.len(),
                eam.incidents().len()
            ),
        );
    }
    problems
}

/// Panics with every problem found and the services' last log lines.
pub fn assert_no_problems(problems: &[String], services: &[&Service]) {
    if problems.is_empty() {
        return;
    }
    let logs: Vec<String> = services.iter().map(|s| s.log_tail(30)).collect();
    panic!("{} problem(s):\n  - {}\n{}", problems.len(), problems.join("\n  - "), logs.join("\n"));
}

/// Deletes the test's exchanges and queues.
pub async fn cleanup_broker(names: &AmqpNames) {
    Broker::connect(names).await.cleanup().await;
}
