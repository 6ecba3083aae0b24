//! The service under test: its replicas as child processes, and what
//! their logs say.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Res;
use crate::testkit::{self, Topology};

/// The run's own RabbitMQ names (`loadgen.<run>.…`).
pub fn names(run: &str) -> Topology {
    Topology::with_prefix(&format!("loadgen.{run}"))
}

pub struct Replica {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

/// The replicas; any still running are killed when this is dropped (on an
/// early error, too).
#[derive(Default)]
pub struct Replicas(pub Vec<Replica>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for r in &mut self.0 {
            testkit::kill(&mut r.child);
        }
    }
}

impl Replicas {
    /// SIGTERM (a clean stop, as in production), then SIGKILL after 30 s.
    pub async fn stop(&mut self) {
        for r in &self.0 {
            let _ = Command::new("kill").args(["-TERM", &r.child.id().to_string()]).status();
        }
        for r in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(r.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if matches!(r.child.try_wait(), Ok(None)) {
                eprintln!("replica {} did not stop in 30 s; killing it", r.child.id());
                testkit::kill(&mut r.child);
            }
        }
    }
}

pub fn default_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
    target.join("release").join("workbridge")
}

pub struct ServiceConfig<'a> {
    pub bin: &'a Path,
    pub db_url: &'a str,
    pub admin_key: &'a str,
    pub amqp_url: &'a str,
    pub names: &'a Topology,
    pub extra: &'a [(String, String)],
    pub dir: &'a Path,
}

pub fn spawn_replica(cfg: &ServiceConfig<'_>, k: usize) -> Res<Replica> {
    let port = testkit::free_port()?;
    let log = cfg.dir.join(format!("replica-{k}.log"));
    let mut cmd = testkit::service_command(
        cfg.bin,
        &testkit::ServiceEnv {
            port,
            db_url: cfg.db_url,
            admin_key: cfg.admin_key,
            amqp_url: cfg.amqp_url,
            topology: cfg.names,
        },
    );
    cmd.env("RUST_LOG", "warn");
    for (k, v) in cfg.extra {
        cmd.env(k, v);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", cfg.bin.display()))?;
    Ok(Replica { child, base: format!("http://127.0.0.1:{port}"), log })
}

/// Waits until the replica answers `/readyz` with the broker connected (its
/// queue is then declared and bound).
pub async fn wait_ready(http: &reqwest::Client, r: &mut Replica) -> Res<()> {
    let url = format!("{}/readyz", r.base);
    let ready = testkit::wait_ready(&mut r.child, Duration::from_secs(120), async || {
        let Ok(resp) = http.get(&url).send().await else { return false };
        resp.json::<Value>().await.is_ok_and(|v| v["broker"]["ok"] == true)
    })
    .await;
    match ready {
        Ok(()) => Ok(()),
        Err(testkit::NotReady::Exited(status)) => {
            Err(format!("the service exited ({status}); see {}:\n{}", r.log.display(), testkit::log_tail(&r.log, 20))
                .into())
        }
        Err(testkit::NotReady::TimedOut) => {
            Err(format!("the service is not ready after 120 s; see {}", r.log.display()).into())
        }
    }
}

pub fn pids(r: &Replicas) -> Vec<String> {
    r.0.iter().map(|r| r.child.id().to_string()).collect()
}

/// WARN and ERROR lines of the replicas' logs, grouped by their message
/// (the text before the first field), most frequent first, each with its
/// first line in full.
pub fn warnings(r: &Replicas) -> Vec<(String, usize, String)> {
    let mut by_message: HashMap<String, (usize, String)> = HashMap::new();
    for r in &r.0 {
        for line in std::fs::read_to_string(&r.log).unwrap_or_default().lines() {
            let line = strip_ansi(line);
            let Some(at) = line.find(" WARN ").or_else(|| line.find(" ERROR ")) else {
                continue;
            };
            let rest = line[at..].trim();
            // Up to the first `field=value`.
            let message = match rest.split_once('=') {
                Some((head, _)) => head.rsplit_once(' ').map_or(head, |(m, _)| m),
                None => rest,
            };
            let entry = by_message.entry(message.trim().chars().take(140).collect()).or_insert((0, line.clone()));
            entry.0 += 1;
        }
    }
    let mut out: Vec<_> = by_message.into_iter().map(|(m, (n, first))| (m, n, first)).collect();
    out.sort_by_key(|w| std::cmp::Reverse(w.1));
    out
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
