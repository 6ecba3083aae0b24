//! A stateful ServiceNow Table API (`incident`) on wiremock, shaped like
//! `tests/it/servicenow.rs` and `docs/eam-apis.md` §2: basic
//! authentication, `Accept: application/json` required, a create answers 201
//! with `result.sys_id`, `sysparm_query=correlation_id=…` finds records
//! (`{"result": []}` when none), `sys_idIN…` polls. Like ServiceNow it does
//! not deduplicate on `correlation_id`: a second create with the same
//! reference is a second incident, which is what the tests count.
//!
//! Faults: `Mode::Unavailable` answers 503; `Mode::SlowAfterStore` stores the
//! incident at once but answers only after a delay longer than the
//! connector's timeout (the create's outcome is unknown to workbridge).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const TABLE: &str = "/api/now/table/incident";
const USER: &str = "workbridge";
const PASSWORD: &str = "sn-fault-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Stores and answers, after `delay` (zero: at once).
    Normal { delay: Duration },
    /// 503 to everything, nothing stored.
    Unavailable,
    /// Creates are stored, then answered after `delay`; reads answer at once.
    SlowAfterStore { delay: Duration },
}

/// One stored incident.
#[derive(Debug, Clone)]
pub struct Incident {
    pub sys_id: String,
    pub number: String,
    pub correlation_id: String,
    /// The create was answered later than the test's connector timeout.
    pub answered_late: bool,
}

/// One lookup by reference and whether it found something.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub reference: String,
    pub found: bool,
}

#[derive(Debug, Default)]
struct State {
    mode: Option<Mode>,
    incidents: Vec<Incident>,
    /// Requests answered 503.
    refused: usize,
    lookups: Vec<Lookup>,
    polls: usize,
    /// When the last create arrived, and how long its answer is held.
    last_create: Option<(Instant, Duration)>,
    unauthorised: usize,
}

#[derive(Clone)]
pub struct ServiceNowSim {
    state: Arc<Mutex<State>>,
}

struct Responder(Arc<Mutex<State>>);

impl ServiceNowSim {
    pub fn new(mode: Mode) -> Self {
        Self { state: Arc::new(Mutex::new(State { mode: Some(mode), ..Default::default() })) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves the table API on `server`.
    pub async fn mount(&self, server: &MockServer) {
        Mock::given(path(TABLE)).respond_with(Responder(self.state.clone())).mount(server).await;
    }

    /// Starts a server for the simulator on a free port.
    pub async fn start(mode: Mode) -> (Self, MockServer) {
        let sim = Self::new(mode);
        let server = MockServer::builder().start().await;
        sim.mount(&server).await;
        (sim, server)
    }

    /// Starts a server for the simulator on `port` (which nothing answered on
    /// before: the EAM comes up).
    pub async fn start_on(&self, port: u16) -> MockServer {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the EAM's port is still free");
        let server = MockServer::builder().listener(listener).start().await;
        self.mount(&server).await;
        server
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state().mode = Some(mode);
    }

    pub fn incidents(&self) -> Vec<Incident> {
        self.state().incidents.clone()
    }

    pub fn lookups(&self) -> Vec<Lookup> {
        self.state().lookups.clone()
    }

    /// Requests answered 503 (creates, and the lookups before retries).
    pub fn refused(&self) -> usize {
        self.state().refused
    }

    pub fn unauthorised(&self) -> usize {
        self.state().unauthorised
    }

    /// A create has arrived and its answer has not been sent yet (with a
    /// margin of `margin` before it is).
    pub fn create_in_flight(&self, margin: Duration) -> bool {
        self.state().last_create.is_some_and(|(at, held)| at.elapsed() + margin < held)
    }

    /// The connector's configuration for this simulator at `base_url`.
    pub fn connector(base_url: &str, timeout_ms: u64) -> Value {
        json!({"name": "servicenow", "config": {
            "kind": "servicenow", "instance_url": base_url, "username": USER, "password": PASSWORD,
            "assignment_group": "Maintenance Bedford", "timeout_ms": timeout_ms
        }})
    }
}

fn failure(status: u16, message: &str, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": {"message": message, "detail": detail}, "status": "failure"}))
}

fn authorised(req: &Request) -> bool {
    use base64::Engine;
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}")));
    req.headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

fn query(req: &Request) -> BTreeMap<String, String> {
    req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn row(i: &Incident) -> Value {
    json!({"sys_id": i.sys_id, "number": i.number, "state": "1", "correlation_id": i.correlation_id,
           "sys_updated_on": "2026-11-24 10:15:01", "close_code": ""})
}

impl wiremock::Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !authorised(req) {
            s.unauthorised += 1;
            return failure(401, "User Not Authenticated", "Required to provide Auth information");
        }
        if req.headers.get("accept").and_then(|v| v.to_str().ok()) != Some("application/json") {
            return failure(400, "Bad request", "Accept header must be application/json");
        }
        let mode = s.mode.unwrap_or(Mode::Normal { delay: Duration::ZERO });
        if mode == Mode::Unavailable {
            s.refused += 1;
            return failure(503, "Service Unavailable", "The instance is under maintenance");
        }
        let q = query(req);
        match req.method {
            wiremock::http::Method::POST => {
                let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
                    return failure(400, "Exception while reading request", "Not valid JSON");
                };
                let delay = match mode {
                    Mode::Normal { delay } | Mode::SlowAfterStore { delay } => delay,
                    Mode::Unavailable => Duration::ZERO,
                };
                let n = s.incidents.len() + 1;
                let incident = Incident {
                    sys_id: format!("{:032x}", 0x5eed_0000_u128 + n as u128),
                    number: format!("INC{:07}", 10_000 + n),
                    correlation_id: body["correlation_id"].as_str().unwrap_or_default().to_owned(),
                    answered_late: matches!(mode, Mode::SlowAfterStore { .. }),
                };
                let reply = json!({"result": row(&incident)});
                let location = format!("{}/{}", req.url.as_str().split('?').next().unwrap_or(""), incident.sys_id);
                s.incidents.push(incident);
                s.last_create = Some((Instant::now(), delay));
                ResponseTemplate::new(201).insert_header("Location", location).set_body_json(reply).set_delay(delay)
            }
            wiremock::http::Method::GET => {
                let limit = q.get("sysparm_limit").and_then(|l| l.parse().ok()).unwrap_or(10_000usize);
                let sysparm_query = q.get("sysparm_query").cloned().unwrap_or_default();
                let rows: Vec<Value> = if let Some(reference) = sysparm_query.strip_prefix("correlation_id=") {
                    let found: Vec<Value> =
                        s.incidents.iter().filter(|i| i.correlation_id == reference).map(row).collect();
                    s.lookups.push(Lookup { reference: reference.to_owned(), found: !found.is_empty() });
                    found
                } else if let Some(ids) = sysparm_query.strip_prefix("sys_idIN") {
                    s.polls += 1;
                    let ids: Vec<&str> = ids.split(',').collect();
                    s.incidents.iter().filter(|i| ids.contains(&i.sys_id.as_str())).map(row).collect()
                } else {
                    // Unknown query fields are dropped by ServiceNow: every row.
                    s.incidents.iter().map(row).collect()
                };
                ResponseTemplate::new(200)
                    .set_body_json(json!({"result": rows.into_iter().take(limit).collect::<Vec<_>>()}))
            }
            wiremock::http::Method::PATCH => ResponseTemplate::new(200).set_body_json(json!({"result": {}})),
            _ => failure(405, "Method not Supported", "Only GET, POST and PATCH"),
        }
    }
}
