//! The service under test: its replicas as child processes, and what
//! their logs say.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Res;

pub struct Names {
    pub exchange: String,
    pub queue: String,
    pub dlx: String,
    pub dead_queue: String,
    pub lifecycle: String,
}

impl Names {
    pub fn new(run: &str) -> Self {
        let p = format!("loadgen.{run}");
        Self {
            exchange: format!("{p}.tdl.events"),
            queue: format!("{p}.events"),
            dlx: format!("{p}.dlx"),
            dead_queue: format!("{p}.events.dead"),
            lifecycle: format!("{p}.workorders"),
        }
    }
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
            let _ = r.child.kill();
            let _ = r.child.wait();
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
                let _ = r.child.kill();
                let _ = r.child.wait();
            }
        }
    }
}

pub fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
    pub names: &'a Names,
    pub extra: &'a [(String, String)],
    pub dir: &'a Path,
}

pub fn spawn_replica(cfg: &ServiceConfig<'_>, k: usize) -> Res<Replica> {
    let port = free_port()?;
    let log = cfg.dir.join(format!("replica-{k}.log"));
    let n = cfg.names;
    let mut cmd = Command::new(cfg.bin);
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("WORKBRIDGE_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("WORKBRIDGE_DATABASE_URL", cfg.db_url)
        .env("WORKBRIDGE_ADMIN_KEY", cfg.admin_key)
        .env("WORKBRIDGE_AMQP_URL", cfg.amqp_url)
        .env("WORKBRIDGE_AMQP__EXCHANGE", &n.exchange)
        .env("WORKBRIDGE_AMQP__QUEUE", &n.queue)
        .env("WORKBRIDGE_AMQP__DEAD_LETTER_EXCHANGE", &n.dlx)
        .env("WORKBRIDGE_AMQP__DEAD_LETTER_QUEUE", &n.dead_queue)
        .env("WORKBRIDGE_AMQP__LIFECYCLE_EXCHANGE", &n.lifecycle)
        // So that the queues of a crashed run do not stay behind.
        .env("WORKBRIDGE_AMQP__QUEUE_EXPIRES_MS", "600000");
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
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = r.child.try_wait() {
            return Err(format!("the service exited ({status}); see {}:\n{}", r.log.display(), tail(&r.log)).into());
        }
        if let Ok(resp) = http.get(format!("{}/readyz", r.base)).send().await
            && let Ok(v) = resp.json::<Value>().await
            && v["broker"]["ok"] == true
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the service is not ready after 120 s; see {}", r.log.display()).into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
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
