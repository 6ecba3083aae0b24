//! A simulated IBM Maximo: the JSON API on MXAPIWODETAIL as IBM documents it
//! (`docs/eam-apis.md` §1), with work orders at several sites. Work-order
//! numbers are counted per site, so two sites hold the same `wonum`, as in
//! a real Maximo. It answers queries (`oslc.where` with `=` and `in`,
//! `and`, paging by `oslc.pageSize`/`pageno` up to the server's
//! `mxe.oslc.maxpagesize` with `responseInfo.nextPage`), creates (201 with
//! the lean member) and updates through the member `href` (POST with
//! `x-method-override: PATCH`; `patchtype: MERGE` adds work logs).
//! Members come back newest first, not in the order they were asked for.

#![allow(dead_code)] // the fault tests include the testkit too, without a simulated EAM

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const OS_PATH: &str = "/maximo/api/os/mxapiwodetail";

#[derive(Debug, Clone, PartialEq)]
pub struct SimWorkOrder {
    pub workorderid: u64,
    pub siteid: String,
    pub wonum: String,
    pub status: String,
    /// RFC 3339, as Maximo answers it.
    pub statusdate: String,
    pub externalrefid: Option<String>,
    pub description: String,
    pub worklog: Vec<String>,
}

#[derive(Default)]
struct State {
    orders: Vec<SimWorkOrder>,
    next_wonum: BTreeMap<String, u64>,
    queries: usize,
}

/// The simulated Maximo; clones share its state.
#[derive(Clone)]
pub struct MaximoSim {
    state: Arc<Mutex<State>>,
    base: String,
    max_page_size: usize,
    delay: Duration,
}

impl MaximoSim {
    /// Starts a server with `mxe.oslc.maxpagesize` = `max_page_size`,
    /// answering every request after `delay`.
    pub async fn start(max_page_size: usize, delay: Duration) -> (MockServer, MaximoSim) {
        let server = MockServer::start().await;
        let sim = MaximoSim { state: Arc::default(), base: server.uri(), max_page_size, delay };
        Mock::given(wiremock::matchers::path_regex(format!("^{OS_PATH}(/.*)?$")))
            .respond_with(sim.clone())
            .mount(&server)
            .await;
        (server, sim)
    }

    /// Adds a work order as another system (or a planner) would.
    pub fn insert(&self, siteid: &str, status: &str, statusdate: &str) -> SimWorkOrder {
        let mut state = self.state.lock().unwrap();
        let wo = new_order(&mut state, siteid, status, statusdate, None, "");
        state.orders.push(wo.clone());
        wo
    }

    /// Sets an order's status as a planner in Maximo would.
    pub fn set_status(&self, siteid: &str, wonum: &str, status: &str, statusdate: &str) {
        let mut state = self.state.lock().unwrap();
        let wo = state.orders.iter_mut().find(|o| o.siteid == siteid && o.wonum == wonum).expect("the order exists");
        wo.status = status.to_owned();
        wo.statusdate = statusdate.to_owned();
    }

    /// Deletes an order (Maximo lets an administrator delete a WAPPR order).
    pub fn delete(&self, siteid: &str, wonum: &str) {
        self.state.lock().unwrap().orders.retain(|o| !(o.siteid == siteid && o.wonum == wonum));
    }

    pub fn order(&self, siteid: &str, wonum: &str) -> Option<SimWorkOrder> {
        self.state.lock().unwrap().orders.iter().find(|o| o.siteid == siteid && o.wonum == wonum).cloned()
    }

    pub fn orders(&self) -> Vec<SimWorkOrder> {
        self.state.lock().unwrap().orders.clone()
    }

    /// Status queries answered so far (GETs with `wonum in`).
    pub fn status_queries(&self) -> usize {
        self.state.lock().unwrap().queries
    }

    fn href(&self, wo: &SimWorkOrder) -> String {
        format!("{}{OS_PATH}/_{}", self.base, wo.workorderid)
    }

    fn member(&self, wo: &SimWorkOrder) -> Value {
        json!({"wonum": wo.wonum, "siteid": wo.siteid, "status": wo.status, "statusdate": wo.statusdate,
               "workorderid": wo.workorderid, "href": self.href(wo)})
    }

    fn query(&self, req: &Request) -> ResponseTemplate {
        let params: BTreeMap<String, String> = req.url.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
        let clauses = match params.get("oslc.where").map(|w| parse_where(w)) {
            Some(Ok(c)) => c,
            Some(Err(e)) => return error(400, "BMXAA8744E", &e),
            None => vec![],
        };
        let page_size = params
            .get("oslc.pageSize")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(self.max_page_size)
            .min(self.max_page_size)
            .max(1);
        let pageno = params.get("pageno").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
        let mut state = self.state.lock().unwrap();
        if clauses.iter().any(|(field, values)| field == "wonum" && values.len() > 1)
            || params.get("oslc.where").is_some_and(|w| w.contains(" in "))
        {
            state.queries += 1;
        }
        let mut matching: Vec<&SimWorkOrder> =
            state.orders.iter().filter(|o| clauses.iter().all(|(f, values)| values.contains(&field(o, f)))).collect();
        // Newest first: not the order they were asked for.
        matching.sort_by_key(|o| std::cmp::Reverse(o.workorderid));
        let start = (pageno - 1) * page_size;
        let page: Vec<Value> = matching.iter().skip(start).take(page_size).map(|o| self.member(o)).collect();
        let mut info = json!({"pagenum": pageno});
        if start + page_size < matching.len() {
            let mut next = req.url.clone();
            let kept: Vec<(String, String)> =
                params.iter().filter(|(k, _)| *k != "pageno").map(|(k, v)| (k.clone(), v.clone())).collect();
            next.query_pairs_mut().clear().extend_pairs(kept).append_pair("pageno", &(pageno + 1).to_string());
            info["nextPage"] = json!({"href": next.to_string()});
        }
        ResponseTemplate::new(200)
            .set_body_json(json!({"member": page, "href": format!("{}{OS_PATH}", self.base), "responseInfo": info}))
    }

    fn create(&self, req: &Request) -> ResponseTemplate {
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return error(400, "BMXAA0000E", "the body is not JSON");
        };
        let Some(site) = body["siteid"].as_str() else {
            return error(400, "BMXAA4195E", "BMXAA4195E - A value is required for the Site field.");
        };
        let mut state = self.state.lock().unwrap();
        let reference = body["externalrefid"].as_str().map(str::to_owned);
        let description = body["description"].as_str().unwrap_or_default().to_owned();
        let wo = new_order(&mut state, site, "WAPPR", "2026-11-24T10:15:01-05:00", reference, &description);
        state.orders.push(wo.clone());
        ResponseTemplate::new(201).set_body_json(self.member(&wo)).insert_header("location", self.href(&wo).as_str())
    }

    fn update(&self, req: &Request, id: &str) -> ResponseTemplate {
        if req.headers.get("x-method-override").and_then(|v| v.to_str().ok()) != Some("PATCH") {
            return error(405, "BMXAA9552E", "only PATCH through x-method-override is simulated");
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return error(400, "BMXAA0000E", "the body is not JSON");
        };
        let merge = req.headers.get("patchtype").and_then(|v| v.to_str().ok()) == Some("MERGE");
        let mut state = self.state.lock().unwrap();
        let Some(wo) = state.orders.iter_mut().find(|o| o.workorderid.to_string() == id) else {
            return error(404, "BMXAA8727E", "BMXAA8727E - The OSLC resource was not found.");
        };
        if let Some(status) = body["status"].as_str() {
            wo.status = status.to_owned();
            wo.statusdate = "2026-11-24T11:00:00-05:00".to_owned();
        }
        if let Some(logs) = body["worklog"].as_array() {
            let texts = logs.iter().filter_map(|l| l["description_longdescription"].as_str().map(str::to_owned));
            if !merge {
                wo.worklog.clear();
            }
            wo.worklog.extend(texts);
        }
        ResponseTemplate::new(204)
    }
}

impl Respond for MaximoSim {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if req.headers.get("apikey").is_none() {
            return error(401, "BMXAA7901E", "BMXAA7901E - You cannot log in at this time.").set_delay(self.delay);
        }
        let member = req.url.path().strip_prefix(OS_PATH).and_then(|p| p.strip_prefix("/_"));
        let answer = match (req.method.as_str(), member) {
            ("GET", None) => self.query(req),
            ("POST", None) => self.create(req),
            ("POST", Some(id)) => self.update(req, id),
            _ => error(405, "BMXAA9552E", "method not simulated"),
        };
        answer.set_delay(self.delay)
    }
}

fn new_order(
    state: &mut State,
    siteid: &str,
    status: &str,
    statusdate: &str,
    externalrefid: Option<String>,
    description: &str,
) -> SimWorkOrder {
    let next = state.next_wonum.entry(siteid.to_owned()).or_insert(1001);
    let wonum = next.to_string();
    *next += 1;
    SimWorkOrder {
        workorderid: state.orders.len() as u64 + 1,
        siteid: siteid.to_owned(),
        wonum,
        status: status.to_owned(),
        statusdate: statusdate.to_owned(),
        externalrefid,
        description: description.to_owned(),
        worklog: vec![],
    }
}

fn field(o: &SimWorkOrder, name: &str) -> String {
    match name {
        "siteid" => o.siteid.clone(),
        "wonum" => o.wonum.clone(),
        "status" => o.status.clone(),
        "externalrefid" => o.externalrefid.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

/// `a="x" and b in ["y","z"]` → [(a, [x]), (b, [y, z])]. Maximo refuses
/// `or` (BMXAA8744E).
fn parse_where(w: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    if w.contains(" or ") {
        return Err("BMXAA8744E - The or operator is not supported in oslc.where.".into());
    }
    w.split(" and ")
        .map(|clause| {
            let clause = clause.trim();
            if let Some((f, list)) = clause.split_once(" in ") {
                let list = list.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']')).ok_or("bad in list")?;
                let values = list.split(',').map(|v| v.trim().trim_matches('"').to_owned()).collect();
                Ok((f.trim().to_owned(), values))
            } else if let Some((f, v)) = clause.split_once('=') {
                Ok((f.trim().to_owned(), vec![v.trim().trim_matches('"').to_owned()]))
            } else {
                Err(format!("cannot parse {clause:?}"))
            }
        })
        .collect()
}

fn error(status: u16, reason: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"Error": {"reasonCode": reason, "message": message, "statusCode": status.to_string()}}))
}
