//! The registry, the rules and the event plan: what the run loads and
//! publishes, and the outcome each event is planned to have.

use chrono::{SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::Res;
use crate::args::Mix;

pub const ACTIVE_SITES: [&str; 3] = ["BEDFORD", "TEXAS", "NASHUA"];
/// Under a maintenance window for the whole run: its events are suppressed.
pub const SHUTDOWN_SITE: &str = "LOWELL";
pub const AREAS: [&str; 4] = ["PUMPING", "MIXING", "UTILITIES", "PACKAGING"];
/// (class, tag prefix, the tags of one asset)
pub const CLASSES: [(&str, &str, [&str; 3]); 7] = [
    ("PUMP", "P", ["VIB_X", "BRG_TEMP", "DISCH_PRESS"]),
    ("MOTOR", "M", ["CURRENT", "WINDING_TEMP", "VIB_X"]),
    ("COMPRESSOR", "K", ["DISCH_PRESS", "DISCH_TEMP", "VIB_X"]),
    ("FAN", "F", ["VIB_X", "BRG_TEMP", "CURRENT"]),
    ("CONVEYOR", "CV", ["SPEED", "CURRENT", "BRG_TEMP"]),
    ("HEAT_EXCHANGER", "HX", ["OUTLET_TEMP", "DIFF_PRESS", "FLOW"]),
    ("MIXER", "MX", ["CURRENT", "BRG_TEMP", "VIB_X"]),
];
pub const CODES: [&str; 5] = ["HIGH_VIBRATION", "HIGH_TEMPERATURE", "LOW_PRESSURE", "LOW_FLOW", "HIGH_CURRENT"];
/// Matched by the ignore rule.
pub const IGNORED_CODE: &str = "SENSOR_TEST";
pub const CONNECTOR: &str = "eam";

pub struct Equipment {
    pub site: &'static str,
    pub area: &'static str,
    pub tags: Vec<String>,
}

pub struct Registry {
    pub equipment: Vec<Equipment>,
    pub csv: String,
}

/// Sites, their areas, then equipment (about 3 % of it at the shut-down site).
pub fn registry(total: usize) -> Registry {
    let sites: Vec<&str> = ACTIVE_SITES.iter().copied().chain([SHUTDOWN_SITE]).collect();
    let mut csv = String::from("external_id,site,name,class,criticality,parent,eam_system,tags\n");
    for site in &sites {
        csv.push_str(&format!("{site},{site},{site} plant,SITE,,,rest,\n"));
        for area in AREAS {
            csv.push_str(&format!("{site}-{area},{site},{area} area,AREA,,{site},rest,\n"));
        }
    }
    let fixed = sites.len() * (1 + AREAS.len());
    let n = total.saturating_sub(fixed);
    let mut equipment = Vec::with_capacity(n);
    for j in 0..n {
        let site = if j % 33 == 32 { SHUTDOWN_SITE } else { ACTIVE_SITES[j % 3] };
        let area = AREAS[(j / 3) % AREAS.len()];
        let class = (j / 12) % CLASSES.len();
        let (class_name, prefix, tag_names) = CLASSES[class];
        let id = format!("{prefix}-{j:05}");
        let tags: Vec<String> = tag_names.iter().map(|t| format!("{site}.{area}.{prefix}{j:05}.{t}")).collect();
        let criticality = match j % 10 {
            0 => "A",
            1..=3 => "B",
            _ => "C",
        };
        let name = format!("{} {j:05}", class_name.to_lowercase().replace('_', " "));
        csv.push_str(&format!("{id},{site},{name},{class_name},{criticality},{site}-{area},rest,{}\n", tags.join(";")));
        equipment.push(Equipment { site, area, tags });
    }
    Registry { equipment, csv }
}

/// `n` rules: the ignore rule first, then emergency and corrective rules per
/// code, site and class, each with a CEL condition, and a catch-all last.
pub fn rules(n: u32) -> Vec<Value> {
    let specific = (n - 2) as usize;
    let emergency = specific * 47 / 100;
    let mut out = vec![json!({
        "name": "ignore-sensor-tests",
        "position": 0,
        "when": {"codes": [IGNORED_CODE]},
        "action": {"kind": "ignore"},
    })];
    for i in 0..specific {
        let code = CODES[i % CODES.len()];
        let site = ACTIVE_SITES[(i / CODES.len()) % ACTIVE_SITES.len()];
        let class = CLASSES[(i / (CODES.len() * ACTIVE_SITES.len())) % CLASSES.len()].0;
        let (kind, factor, priority) = if i < emergency {
            ("emergency", 1.8, json!({"critical": {"A": 1, "*": 1}, "major": {"A": 1, "*": 2}, "minor": {"*": 2}}))
        } else {
            ("corrective", 1.0, json!({"critical": {"A": 1, "*": 2}, "major": {"A": 2, "*": 3}, "minor": {"*": 4}}))
        };
        out.push(json!({
            "name": format!("{kind}-{}-{site}-{}-{i}", code.to_lowercase(), class.to_lowercase()),
            "position": 10 + i,
            "when": {
                "types": ["tdl.alert"],
                "codes": [code],
                "sites": [site],
                "asset_classes": [class],
                "min_severity": "minor",
                "condition": format!("event.value > {factor:.1} * event.threshold"),
            },
            "action": {
                "kind": "create",
                "connector": CONNECTOR,
                "work_type": kind,
                "priority": priority,
                "title": "{{ event.code }} on {{ asset.name }} ({{ asset.id }})",
            },
        }));
    }
    out.push(json!({
        "name": "alerts-to-orders",
        "position": 10_000,
        "when": {"types": ["tdl.alert"]},
        "action": {"kind": "create", "connector": CONNECTOR, "work_type": "corrective", "priority": 3},
    }));
    out
}

// ---------------------------------------------------------------------------
// The event plan

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expect {
    Created,
    Merged,
    Ignored,
    Suppressed,
    Unmapped,
}

impl Expect {
    pub const ALL: [Expect; 5] = [Self::Created, Self::Merged, Self::Ignored, Self::Suppressed, Self::Unmapped];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Merged => "merged",
            Self::Ignored => "ignored",
            Self::Suppressed => "suppressed",
            Self::Unmapped => "unmapped",
        }
    }
}

pub struct Planned {
    pub subject: String,
    pub site: &'static str,
    pub area: &'static str,
    pub code: &'static str,
    pub severity: &'static str,
    pub value: f64,
    pub threshold: f64,
    pub expect: Expect,
}

/// Blocks of ten events, shuffled: 2 new keys, 6 repeats of an opened key,
/// 2 others (ignored, suppressed, unmapped in turn); or only new keys.
pub fn plan(reg: &Registry, n: usize, seed: u64, mix: Mix) -> Res<Vec<Planned>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let active: Vec<usize> = (0..reg.equipment.len()).filter(|&i| reg.equipment[i].site != SHUTDOWN_SITE).collect();
    let shut: Vec<usize> = (0..reg.equipment.len()).filter(|&i| reg.equipment[i].site == SHUTDOWN_SITE).collect();
    if active.is_empty() || shut.is_empty() {
        return Err("--assets is too small for the mix".into());
    }
    let mut fresh: Vec<(usize, usize)> = active.iter().flat_map(|&a| (0..CODES.len()).map(move |c| (a, c))).collect();
    fresh.shuffle(&mut rng);
    let creates = if mix == Mix::NewOrders { n } else { n.div_ceil(10) * 2 };
    if creates > fresh.len() {
        return Err(format!("{n} events need {creates} (asset, code) keys; the registry has {}", fresh.len()).into());
    }
    let mut fresh = fresh.into_iter();
    let mut opened: Vec<(usize, usize)> = Vec::with_capacity(creates);
    let mut others = 0usize;
    let mut out = Vec::with_capacity(n);
    let severities = |rng: &mut StdRng| match rng.random_range(0..100) {
        0..50 => "minor",
        50..85 => "major",
        _ => "critical",
    };
    while out.len() < n {
        let mut block = [
            Expect::Created,
            Expect::Created,
            Expect::Merged,
            Expect::Merged,
            Expect::Merged,
            Expect::Merged,
            Expect::Merged,
            Expect::Merged,
            Expect::Ignored,
            Expect::Ignored,
        ];
        if mix == Mix::NewOrders {
            block = [Expect::Created; 10];
        }
        block.shuffle(&mut rng);
        if opened.is_empty() {
            // A repeat needs a key opened before it.
            let first = block.iter().position(|e| *e == Expect::Created).unwrap_or(0);
            block.swap(0, first);
        }
        for slot in block {
            if out.len() == n {
                break;
            }
            let (asset, code, expect) = match slot {
                Expect::Created => {
                    let (a, c) = fresh.next().ok_or("out of fresh keys")?;
                    opened.push((a, c));
                    (Some(a), CODES[c], Expect::Created)
                }
                Expect::Merged => {
                    let (a, c) = opened[rng.random_range(0..opened.len())];
                    (Some(a), CODES[c], Expect::Merged)
                }
                _ => {
                    others += 1;
                    match others % 3 {
                        0 => (Some(active[rng.random_range(0..active.len())]), IGNORED_CODE, Expect::Ignored),
                        1 => (
                            Some(shut[rng.random_range(0..shut.len())]),
                            CODES[rng.random_range(0..5)],
                            Expect::Suppressed,
                        ),
                        _ => (None, CODES[rng.random_range(0..5)], Expect::Unmapped),
                    }
                }
            };
            let threshold = [10.0, 80.0, 4.0, 50.0, 120.0][rng.random_range(0..5)];
            let value = threshold * rng.random_range(1.02..2.5);
            let (subject, site, area) = match asset {
                Some(a) => {
                    let e = &reg.equipment[a];
                    (e.tags[rng.random_range(0..e.tags.len())].clone(), e.site, e.area)
                }
                None => {
                    // Tags outside the registry (and no tag pattern covers them).
                    let site = ACTIVE_SITES[rng.random_range(0..3)];
                    let area = AREAS[rng.random_range(0..AREAS.len())];
                    (format!("{site}.{area}.XT{:05}.PV", rng.random_range(0..100_000)), site, area)
                }
            };
            let severity = severities(&mut rng);
            out.push(Planned { subject, site, area, code, severity, value, threshold, expect });
        }
    }
    Ok(out)
}

pub fn event_id(i: usize) -> String {
    format!("ev-{i:08}")
}

pub fn event_index(ce_id: &str) -> Option<usize> {
    ce_id.strip_prefix("ev-")?.parse().ok()
}

pub fn event_body(p: &Planned, i: usize, source: &str) -> Vec<u8> {
    let e = json!({
        "specversion": "1.0",
        "id": event_id(i),
        "source": source,
        "type": "tdl.alert",
        "time": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
        "subject": p.subject,
        "datacontenttype": "application/json",
        "data": {
            "state": "raised",
            "code": p.code,
            "severity": p.severity,
            "message": format!("{} on {}", p.code, p.subject),
            "value": (p.value * 100.0).round() / 100.0,
            "threshold": p.threshold,
            "context": {"area": p.area},
        },
    });
    serde_json::to_vec(&e).expect("a JSON value serialises")
}
