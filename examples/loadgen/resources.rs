//! CPU and memory of the replicas, the database, the broker and the host,
//! from `/proc`.

use std::collections::HashMap;
use std::process::Command;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::args::Backend;
use crate::publish::dead_lettered;
use crate::service::{Replicas, names, warnings};
use crate::testkit::rows;
use crate::{Load, Run};

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is field 3.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Peak resident set size of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU counters at one moment, in clock ticks.
pub struct CpuSnapshot {
    pub replicas: Vec<u64>,
    pub own: u64,
    /// (busy, total) of the whole host, over all cores.
    pub host: (u64, u64),
    /// The database and the broker, by process name (their processes that
    /// exist at both snapshots; short-lived ones are missed).
    pub neighbours: HashMap<u32, (&'static str, u64)>,
}

pub const NEIGHBOURS: [(&str, &str); 2] = [("postgres", "PostgreSQL"), ("beam.smp", "RabbitMQ")];

impl CpuSnapshot {
    pub fn take(replicas: &Replicas) -> Self {
        let mut neighbours = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if let Some((_, label)) = NEIGHBOURS.iter().find(|(c, _)| *c == comm.trim())
                && let Some(t) = cpu_ticks(pid)
            {
                neighbours.insert(pid, (*label, t));
            }
        }
        let host = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let v: Vec<u64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
                // user nice system idle iowait irq softirq steal
                let total: u64 = v.iter().take(8).sum();
                Some((total - v.get(3)? - v.get(4)?, total))
            })
            .unwrap_or((0, 1));
        Self {
            replicas: replicas.0.iter().map(|r| cpu_ticks(r.child.id()).unwrap_or(0)).collect(),
            own: cpu_ticks(std::process::id()).unwrap_or(0),
            host,
            neighbours,
        }
    }

    /// CPU seconds of each neighbour (by label) between `self` and `later`.
    pub fn neighbours_since(&self, later: &Self, ticks: f64) -> Vec<(&'static str, f64)> {
        let mut out: Vec<(&'static str, f64)> = vec![];
        for (pid, (label, after)) in &later.neighbours {
            let before = self.neighbours.get(pid).map_or(0, |b| b.1);
            let secs = after.saturating_sub(before) as f64 / ticks;
            match out.iter_mut().find(|(l, _)| l == label) {
                Some(e) => e.1 += secs,
                None => out.push((label, secs)),
            }
        }
        out
    }
}

/// CPU and memory of the replicas and their neighbours during the load,
/// what the logs and PostgreSQL say about it, and the dead letters (which
/// fail the run). Returns the replicas' CPU seconds and whether all is well.
pub async fn print_resources(run: &Run, db: &DatabaseConnection, load: &Load) -> (f64, bool) {
    let (before, after, elapsed) = (&load.cpu_before, &load.cpu_after, load.elapsed);
    let ticks = clock_ticks_per_second();
    let mut ok = true;
    println!("\nresources during the load ({:.1} s):", elapsed.as_secs_f64());
    let mut cpu_total = 0.0;
    for (k, r) in run.replicas.0.iter().enumerate() {
        let cpu = after.replicas[k].saturating_sub(before.replicas[k]) as f64 / ticks;
        cpu_total += cpu;
        println!(
            "  replica {} (pid {}): CPU {cpu:.1} s ({:.0} % of one core), peak RSS {:.0} MB",
            k + 1,
            r.child.id(),
            100.0 * cpu / elapsed.as_secs_f64(),
            load.rss_kib[k] as f64 / 1024.0
        );
    }
    println!("  loadgen itself: CPU {:.1} s (publisher, EAM, polling)", (after.own - before.own) as f64 / ticks);
    for (label, secs) in before.neighbours_since(after, ticks) {
        println!("  {label}: CPU {secs:.1} s");
    }
    let (busy, total) = (after.host.0 - before.host.0, after.host.1 - before.host.1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("  host: {:.0} % busy over {cores} core(s)", 100.0 * busy as f64 / total.max(1) as f64);
    let warnings = warnings(&run.replicas);
    println!("  service logs: {} WARN/ERROR line(s)", warnings.iter().map(|w| w.1).sum::<usize>());
    for (message, n, first) in warnings.iter().take(5) {
        println!("    {n:>6} × {message}");
        println!("             first: {}", first.chars().take(400).collect::<String>());
    }
    if run.args.db == Backend::Postgres {
        // The run's own database: its counters cover this run only.
        let sql = "SELECT deadlocks AS d, xact_rollback AS r FROM pg_stat_database WHERE datname = current_database()";
        if let Ok(Some(row)) = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await {
            let (d, r): (i64, i64) = (row.try_get("", "d").unwrap_or(-1), row.try_get("", "r").unwrap_or(-1));
            println!("  PostgreSQL: {d} deadlock(s), {r} rolled-back transaction(s) in the run's database");
        }
        // Sequential scans that read many rows point at a missing index.
        let sql = "SELECT relname AS t, seq_scan AS s, seq_tup_read AS r FROM pg_stat_user_tables \
                   WHERE seq_tup_read > 0 ORDER BY seq_tup_read DESC LIMIT 4";
        if let Ok(scans) = rows(db, sql).await {
            let text: Vec<String> = scans
                .iter()
                .filter_map(|row| {
                    let (t, s, r): (String, i64, i64) =
                        (row.try_get("", "t").ok()?, row.try_get("", "s").ok()?, row.try_get("", "r").ok()?);
                    Some(format!("{t} {s} scans / {r} rows"))
                })
                .collect();
            println!(
                "  PostgreSQL sequential scans: {}",
                if text.is_empty() { "none".into() } else { text.join(", ") }
            );
        }
    }
    let dead = dead_lettered(run.amqp.as_ref(), &names(&run.run_id)).await;
    println!("  dead-lettered messages: {}", dead.map_or("?".into(), |d| d.to_string()));
    if dead.unwrap_or(0) > 0 {
        ok = false;
    }
    (cpu_total, ok)
}
