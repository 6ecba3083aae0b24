//! The figures and the checks: publish times joined with the service's
//! tables and the EAM's receive times.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::Res;
use crate::args::Args;
use crate::db::timestamp_us;
use crate::eam::Eam;
use crate::plan::{Expect, Planned, event_index};
use crate::publish::PublishStats;
use crate::testkit::rows;

pub struct Dist {
    pub p50: i64,
    pub p90: i64,
    pub p99: i64,
    pub max: i64,
}

/// Nearest-rank percentiles (as the KPIs compute them).
pub fn dist(mut v: Vec<i64>) -> Option<Dist> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some(Dist { p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), max: v[v.len() - 1] })
}

pub fn fmt_us(us: i64) -> String {
    if us.abs() < 1_000_000 { format!("{:.1} ms", us as f64 / 1e3) } else { format!("{:.2} s", us as f64 / 1e6) }
}

pub fn fmt_dist(d: &Option<Dist>) -> String {
    match d {
        Some(d) => format!("{} / {} / {} / {}", fmt_us(d.p50), fmt_us(d.p90), fmt_us(d.p99), fmt_us(d.max)),
        None => "n/a".into(),
    }
}

pub struct Report<'a> {
    pub args: &'a Args,
    pub source: &'a str,
    pub db: &'a DatabaseConnection,
    pub eam: &'a Eam,
    pub sent_at: &'a [i64],
    pub plan: &'a [Planned],
    pub expected: &'a HashMap<Expect, i64>,
    pub stats: &'a PublishStats,
    pub published_in: Duration,
}

/// The figures, joined from the tool's publish times, the service's tables
/// and the EAM's receive times.
pub struct Figures {
    pub decision: Option<Dist>,
    pub to_eam: Option<Dist>,
    pub events_per_s: f64,
    pub orders_per_s: f64,
}

impl Report<'_> {
    pub async fn figures(&self) -> Res<(Figures, bool)> {
        let mut ok = true;
        let n = self.plan.len();
        let events = rows(
            self.db,
            &format!("SELECT ce_id, received_at, outcome, work_order_id FROM events WHERE source = '{}'", self.source),
        )
        .await?;
        let mut seen = vec![0u32; n];
        let mut decision = Vec::with_capacity(n);
        let mut last_decision = i64::MIN;
        let mut outcomes: HashMap<String, i64> = HashMap::new();
        let mut created_by_order: HashMap<String, String> = HashMap::new();
        let mut foreign = 0;
        for row in &events {
            let ce_id: String = row.try_get("", "ce_id")?;
            let Some(i) = event_index(&ce_id).filter(|&i| i < n) else {
                foreign += 1;
                continue;
            };
            seen[i] += 1;
            let at = timestamp_us(row, "received_at")?;
            last_decision = last_decision.max(at);
            decision.push(at - self.sent_at[i]);
            let outcome: String = row.try_get("", "outcome")?;
            if outcome == "created" {
                let order: Option<String> = row.try_get("", "work_order_id")?;
                created_by_order.insert(order.unwrap_or_default(), ce_id);
            }
            *outcomes.entry(outcome).or_default() += 1;
        }

        println!("\noutcomes (stored by the service; planned in brackets):");
        for e in Expect::ALL {
            let got = outcomes.remove(e.as_str()).unwrap_or(0);
            let want = self.expected.get(&e).copied().unwrap_or(0);
            println!(
                "  {:<11} {got:>8}  {:>5.1} %  [{want}]{}",
                e.as_str(),
                100.0 * got as f64 / n as f64,
                if got == want { "" } else { "  MISMATCH" }
            );
            ok &= got == want;
        }
        for (outcome, got) in &outcomes {
            println!("  {outcome:<11} {got:>8}  unexpected");
            ok = false;
        }

        // Orders: every one delivered once, under one external id.
        let orders = rows(self.db, "SELECT id, external_id, status FROM work_orders").await?;
        let received = self.eam.orders.lock().unwrap_or_else(|p| p.into_inner());
        let mut external_ids = HashSet::new();
        let (mut with_external, mut not_delivered, mut mismatched) = (0usize, 0usize, 0usize);
        for row in &orders {
            let id: String = row.try_get("", "id")?;
            let external: Option<String> = row.try_get("", "external_id")?;
            match external {
                Some(x) => {
                    with_external += 1;
                    external_ids.insert(x);
                }
                None => not_delivered += 1,
            }
            // The EAM's first event must be the event that opened the order.
            let got = received.get(&id).map(|r| r.first_event.as_str());
            if got != created_by_order.get(&id).map(String::as_str) {
                mismatched += 1;
            }
        }
        let mut to_eam = Vec::with_capacity(received.len());
        let mut last_eam = i64::MIN;
        for r in received.values() {
            last_eam = last_eam.max(r.at_us);
            if let Some(i) = event_index(&r.first_event).filter(|&i| i < n) {
                to_eam.push(r.at_us - self.sent_at[i]);
            }
        }
        let first = self.sent_at.iter().copied().min().unwrap_or(0);
        let span = |last: i64| (last - first).max(1) as f64 / 1e6;
        let figures = Figures {
            decision: dist(decision),
            to_eam: dist(to_eam),
            events_per_s: n as f64 / span(last_decision),
            orders_per_s: received.len() as f64 / span(last_eam),
        };

        println!("\nchecks:");
        let missing = seen.iter().filter(|&&c| c == 0).count();
        let doubled = seen.iter().filter(|&&c| c > 1).count();
        let mut check = |good: bool, text: String| {
            println!("  [{}] {text}", if good { "ok" } else { "FAIL" });
            ok &= good;
        };
        let (acked, nacked, returned) = (
            self.stats.acked.load(Ordering::Relaxed),
            self.stats.nacked.load(Ordering::Relaxed),
            self.stats.returned.load(Ordering::Relaxed),
        );
        check(
            acked == n && nacked == 0 && returned == 0,
            format!("published {n}: {acked} confirmed, {nacked} nacked, {returned} unroutable"),
        );
        check(
            missing == 0 && doubled == 0 && foreign == 0,
            format!(
                "each event stored exactly once: {} rows, {missing} missing, {doubled} stored twice, {foreign} unknown",
                events.len()
            ),
        );
        let posts = self.eam.posts.load(Ordering::Relaxed);
        let replays = self.eam.replays.load(Ordering::Relaxed);
        check(
            received.len() == external_ids.len() && with_external == external_ids.len(),
            format!(
                "no duplicate in the EAM: {} created there, {} orders with an external id, {} distinct external ids \
                 ({posts} POSTs, {replays} repeated an Idempotency-Key)",
                received.len(),
                with_external,
                external_ids.len()
            ),
        );
        check(
            not_delivered == 0 && orders.len() == received.len(),
            format!("every order delivered: {} orders, {not_delivered} without an external id", orders.len()),
        );
        check(mismatched == 0, format!("EAM body names the order's first event: {mismatched} mismatch(es)"));
        Ok((figures, ok))
    }

    pub async fn print(&self) -> Res<(Figures, bool)> {
        let (f, ok) = self.figures().await?;
        let n = self.plan.len();
        println!("\nthroughput:");
        println!(
            "  published   {:>9.0} ev/s  ({n} in {:.1} s, confirms pipelined)",
            n as f64 / self.published_in.as_secs_f64(),
            self.published_in.as_secs_f64()
        );
        println!("  decided     {:>9.0} ev/s  (first publish to last decision)", f.events_per_s);
        println!("  delivered   {:>9.0} orders/s  (first publish to last order in the EAM)", f.orders_per_s);
        if self.args.rate > 0.0 && f.events_per_s < 0.95 * self.args.rate {
            println!("  the service fell behind the offered {} ev/s: latency below is mostly queueing", self.args.rate);
        }
        println!("latency p50 / p90 / p99 / max:");
        println!("  publish → decision        {}", fmt_dist(&f.decision));
        println!("  publish → order in EAM    {}", fmt_dist(&f.to_eam));
        Ok((f, ok))
    }

    pub fn table_row(&self, f: &Figures, cpu: f64, peak_rss_kib: &[u64]) {
        let achieved = self.plan.len() as f64 / self.published_in.as_secs_f64();
        let rate = match self.args.rate {
            r if r <= 0.0 => "max".to_owned(),
            r if achieved < 0.95 * r => format!("{r} ev/s ({achieved:.0} achieved)"),
            r => format!("{r} ev/s"),
        };
        println!("\nREADME row:");
        println!(
            "| database | replicas | events | offered | decided | delivered | publish → decision p50/p90/p99/max \
             | publish → EAM p50/p90/p99/max | CPU s | peak RSS |"
        );
        println!(
            "| {} | {} | {} | {rate} | {:.0} ev/s | {:.0} orders/s | {} | {} | {cpu:.1} | {} MB |",
            self.args.db.name(),
            self.args.replicas,
            self.plan.len(),
            f.events_per_s,
            f.orders_per_s,
            fmt_dist(&f.decision),
            fmt_dist(&f.to_eam),
            peak_rss_kib.iter().map(|k| format!("{:.0}", *k as f64 / 1024.0)).collect::<Vec<_>>().join(" + ")
        );
    }
}
