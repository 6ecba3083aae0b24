//! Benchmarks of the per-event hot path: parsing and validating a CloudEvent,
//! mapping it to an asset among 10,000, evaluating it against 1,000 rules,
//! rendering a work-order body.
//!
//! `cargo bench --bench hot_path` (figures in the README).

use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use workbridge::domain::cloudevent as parse;
use workbridge::domain::{Asset, template};
use workbridge::domain::{EventKind, Severity};
use workbridge::rules::{Action, Matchers, Rule, RuleMode, RuleSet, evaluate};

const EVENT: &str = r#"{"specversion": "1.0", "id": "fae11c54-f86d-49a2-9dc3-8fb1872afa55", "source": "tdl://plant/analytics", "type": "tdl.alert", "time": "2026-11-24T00:01:30.000Z", "subject": "TEXAS.PUMPING.MX4106.DISCH_PRESS", "datacontenttype": "application/json", "data": {"state": "raised", "code": "LOW_PRESSURE", "severity": "major", "message": "LOW_PRESSURE on Mixer 4106", "value": 11.6, "threshold": 10.0, "context": {"area": "PUMPING"}}}"#;

const CODES: [&str; 5] = ["HIGH_VIBRATION", "HIGH_TEMPERATURE", "LOW_PRESSURE", "LOW_FLOW", "HIGH_CURRENT"];
const SITES: [&str; 3] = ["BEDFORD", "TEXAS", "NASHUA"];
const CLASSES: [&str; 7] = ["PUMP", "MOTOR", "COMPRESSOR", "FAN", "CONVEYOR", "HEAT_EXCHANGER", "MIXER"];

fn rule(i: usize, when: Matchers) -> Rule {
    Rule {
        id: format!("r{i}"),
        name: format!("rule-{i}"),
        enabled: true,
        position: i as i32,
        version: 1,
        mode: RuleMode::Live,
        expire_after_hours: None,
        when,
        action: Action::Ignore,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// 1,000 rules as a plant would write them: per code, site and class, each
/// with a CEL condition; none matches the benchmark event until the last.
fn realistic_rules() -> Vec<Rule> {
    let mut rules: Vec<Rule> = (0..999)
        .map(|i| {
            rule(
                i,
                Matchers {
                    types: vec![EventKind::Alert],
                    codes: vec![CODES[i % CODES.len()].into()],
                    sites: vec![SITES[i % SITES.len()].into()],
                    asset_classes: vec![CLASSES[i % CLASSES.len()].into()],
                    min_severity: Some(Severity::Minor),
                    condition: Some(format!("event.value > {}.0 * event.threshold", 2 + i % 3)),
                    ..Default::default()
                },
            )
        })
        .collect();
    rules.push(rule(999, Matchers { condition: Some("event.value > event.threshold".into()), ..Default::default() }));
    rules
}

/// The worst case: 1,000 rules the index cannot rule out (no type or code),
/// each with a CEL condition that is false.
fn unindexed_rules() -> Vec<Rule> {
    (0..1000)
        .map(|i| {
            rule(
                i,
                Matchers {
                    condition: Some(format!("event.value > {}.0 * event.threshold", i + 2)),
                    ..Default::default()
                },
            )
        })
        .collect()
}

fn asset() -> Asset {
    Asset {
        id: "MX-4106".into(),
        site: "TEXAS".into(),
        name: "Mixer 4106".into(),
        class: "MIXER".into(),
        criticality: Some("B".into()),
        parent: Some("TEXAS-PUMPING".into()),
        eam_system: Some("maximo".into()),
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("hot_path");
    g.throughput(Throughput::Elements(1));

    g.bench_function("parse_and_validate_event", |b| {
        b.iter(|| parse::structured(black_box(EVENT.as_bytes())).unwrap())
    });

    let event = parse::structured(EVENT.as_bytes()).unwrap();
    let asset = asset();
    let realistic = RuleSet::compile(realistic_rules()).unwrap();
    g.bench_function("evaluate_1000_rules_indexed", |b| {
        b.iter(|| {
            let ev = evaluate(black_box(&event), &asset, &realistic);
            assert_eq!(ev.acting.map(|r| r.id.as_str()), Some("r999"));
        })
    });
    let unindexed = RuleSet::compile(unindexed_rules()).unwrap();
    g.bench_function("evaluate_1000_rules_all_cel", |b| {
        b.iter(|| {
            let ev = evaluate(black_box(&event), &asset, &unindexed);
            assert_eq!(ev.trace.len(), 1000);
        })
    });
    bench_mapping(&mut g);
    g.bench_function("compile_1000_rules", |b| b.iter(|| RuleSet::compile(black_box(realistic_rules())).unwrap()));

    let body = json!({
        "siteid": "{{ asset.site }}", "assetnum": "{{ order.asset_id }}", "description": "{{ order.title }}",
        "description_longdescription": "{{ order.description }}", "worktype": "CM", "wopriority": "{{ order.priority }}",
        "externalrefid": "{{ order.reference }}", "reportdate": "{{ event.time }}",
        "targcompdate": "{{ order.due_by }}"
    });
    let ctx = json!({
        "order": {"reference": "01a2129a-6818-7095-8009-f1533ba7f1f4", "title": "LOW_PRESSURE on Mixer 4106 (MX-4106)",
                  "description": "LOW_PRESSURE on Mixer 4106\nSeverity: major", "priority": 2, "asset_id": "MX-4106",
                  "due_by": "2026-11-25T00:01:30Z"},
        "asset": asset, "event": workbridge::domain::event_context(&event),
    });
    g.bench_function("render_work_order_body", |b| b.iter(|| template::render_json(black_box(&body), &ctx).unwrap()));
    g.finish();
}

/// Maps an event by its tag among 10,000 assets (30,000 tags) in an SQLite
/// file: the indexed lookup each decision makes.
fn bench_mapping(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use workbridge::domain::AssetInput;
    use workbridge::store::{Store, TransactionTrait, assets};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(async {
        let store =
            Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display()), 1).await.unwrap();
        store.migrate().await.unwrap();
        let txn = store.conn().begin().await.unwrap();
        for i in 0..10_000 {
            let id = format!("MX-{i}");
            let input = AssetInput {
                id: Some(id.clone()),
                site: SITES[i % SITES.len()].into(),
                name: format!("Mixer {i}"),
                class: "MIXER".into(),
                criticality: Some("B".into()),
                parent: None,
                eam_system: None,
                tags: ["DISCH_PRESS", "BRG_TEMP", "VIB"].iter().map(|t| format!("PLANT.AREA.MX{i}.{t}")).collect(),
            };
            assets::upsert(&txn, &input.validate(None).unwrap(), Utc::now()).await.unwrap();
        }
        txn.commit().await.unwrap();
        store
    });
    let mut event = parse::structured(EVENT.as_bytes()).unwrap();
    event.subject = Some("PLANT.AREA.MX7777.VIB".into());
    g.bench_function("map_event_among_10000_assets", |b| {
        b.iter(|| {
            let m = rt.block_on(workbridge::mapping::map_event(store.conn(), black_box(&event))).unwrap();
            assert_eq!(m.unwrap().asset.id, "MX-7777");
        })
    });
    // What the consumer does: a batch of 128 events mapped together, two
    // statements whatever its size. Reported per event.
    let batch: Vec<_> = (0..128)
        .map(|i| {
            let mut e = event.clone();
            e.subject = Some(format!("PLANT.AREA.MX{}.VIB", i * 73));
            e
        })
        .collect();
    let refs: Vec<_> = batch.iter().collect();
    g.throughput(Throughput::Elements(refs.len() as u64));
    g.bench_function("map_batch_of_128_among_10000_assets", |b| {
        b.iter(|| {
            let m = rt.block_on(workbridge::mapping::map_events(store.conn(), black_box(&refs))).unwrap();
            assert_eq!(m[127].as_ref().unwrap().asset.id, "MX-9271");
        })
    });
    g.throughput(Throughput::Elements(1));
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
