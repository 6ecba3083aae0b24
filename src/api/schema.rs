//! What utoipa's derives cannot say, said after the fact: `refine` reshapes
//! the generated document so that generated clients can type what they
//! hold. Internally tagged enums become a `oneOf` with a `discriminator`
//! over named variants (the derive gives `allOf` with an inline `{kind}`,
//! which no response validates against when the variant has
//! `additionalProperties: false`); untagged enums' variants, page items and
//! the decision trace get names; free-form JSON is named as such.

use std::collections::BTreeMap;

use utoipa::ToSchema;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, Discriminator, ObjectBuilder, OneOfBuilder, SchemaType, Type,
};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Schema};

use crate::domain::EventOutcome;
use crate::rules::RuleTrace;

/// How the decision was reached: the asset mapping, each rule tried and
/// why it matched or not, and the decision. Parts appear as they apply
/// (an unmapped event has no rules; `episode` only for a clear, `timer`
/// only for an alert held by `held_for_minutes`); more may be added.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DecisionTrace {
    /// How the event was mapped to an asset; null when it was not.
    mapping: Option<TraceMapping>,
    /// The candidate rules in evaluation order.
    rules: Option<Vec<RuleTrace>>,
    /// Rules the site/asset index ruled out without evaluating them.
    skipped_by_index: Option<u64>,
    /// What each matching shadow rule would have done.
    shadow: Option<Vec<ShadowDecision>>,
    decision: Option<TraceDecision>,
    /// For a clear: the rule and dedup key of the raise it belongs to.
    episode: Option<TraceEpisode>,
    /// Set when the producer sent no time: says the time received is used.
    time: Option<String>,
    /// For an alert held by `held_for_minutes`: what the timer decided.
    timer: Option<TraceTimer>,
}

/// How an event was mapped to an asset.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TraceMapping {
    asset_id: String,
    /// `hint`, `tag` or `pattern`.
    by: String,
    /// For a pattern: which pattern matched.
    detail: Option<String>,
}

/// What was decided and why.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TraceDecision {
    outcome: EventOutcome,
    reason: String,
    dedup_key: Option<String>,
    /// The order opened or merged into.
    work_order_id: Option<String>,
    /// The priority of the order opened.
    priority: Option<u8>,
    /// Templates (title, description) that failed to render, with the error.
    template_errors: Option<Vec<String>>,
}

/// A matching shadow rule and what it would have done (never done).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ShadowDecision {
    rule_id: String,
    rule: String,
    version: i32,
    would: ShadowAction,
}

/// What a shadow rule would have done.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ShadowAction {
    /// `create`, `merge` or `ignore`.
    action: String,
    connector: Option<String>,
    dedup_key: Option<String>,
    title: Option<String>,
    priority: Option<u8>,
    /// The open order it would merge into.
    work_order_id: Option<String>,
}

/// The raise a clear belongs to.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TraceEpisode {
    rule_id: String,
    rule: String,
    dedup_key: String,
    reason: String,
}

/// What the timer of a held alert found.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TraceTimer {
    held_for_minutes: i32,
    held_since: chrono::DateTime<chrono::Utc>,
    decided_as_of: chrono::DateTime<chrono::Utc>,
    due_at: chrono::DateTime<chrono::Utc>,
    fired_at: chrono::DateTime<chrono::Utc>,
    /// The decision when the event arrived.
    on_arrival: Option<TraceDecision>,
    /// When the timer's decision was not kept: what it would have been.
    outcome: Option<EventOutcome>,
    reason: Option<String>,
}

/// The document types that no handler names but `refine` refers to.
pub(super) fn extra_schemas() -> Vec<(String, RefOr<Schema>)> {
    let mut out = vec![];
    <DecisionTrace as ToSchema>::schemas(&mut out);
    out.push((DecisionTrace::name().into(), <DecisionTrace as utoipa::PartialSchema>::schema()));
    out
}

/// Reshapes the generated document; see the module's comment.
pub(super) fn refine(api: &mut OpenApi) {
    let components = api.components.get_or_insert_with(Default::default);
    for (name, schema) in extra_schemas() {
        components.schemas.entry(name).or_insert(schema);
    }
    let schemas = &mut components.schemas;
    tagged_union(schemas, "Action", &[("create", "CreateAction", None), ("ignore", "IgnoreAction", Some(1))]);
    tagged_union(
        schemas,
        "ConnectorConfig",
        &[
            ("sandbox", "SandboxConfig", Some(0)),
            ("rest", "RestConfig", None),
            ("maximo", "MaximoConfig", None),
            ("servicenow", "ServiceNowConfig", None),
            ("sap", "SapConfig", None),
        ],
    );
    name_variants(schemas, "Debounce", &[(0, "DebounceOccurrences"), (1, "DebounceHeldFor")]);
    name_variants(schemas, "HeaderValue", &[(1, "EnvSecret"), (2, "FileSecret")]);
    priority_matrix(schemas);
    page_items(schemas);
    let any = |description: &str| {
        ObjectBuilder::new().schema_type(SchemaType::AnyValue).description(Some(description)).build()
    };
    schemas.insert(
        "EventContext".into(),
        any("Any JSON value the producer sends as context (e.g. readings, area), available to rule conditions as `context`.")
            .into(),
    );
    schemas.insert(
        "AuditSnapshot".into(),
        any("Any JSON value: the entity as the API shows it (an asset, rule, connector, …), secrets masked.").into(),
    );
    schemas
        .insert("BodyTemplate".into(), any("Any JSON value: a template of the request body sent to the EAM.").into());
    for owner in ["EventRecord", "WorkOrder", "DryRun"] {
        point_to(schemas, owner, "trace", "DecisionTrace");
    }
    point_to(schemas, "EventRecord", "cloudevent", "CloudEvent");
    point_to(schemas, "EventData", "context", "EventContext");
    point_to(schemas, "AuditEntry", "before", "AuditSnapshot");
    point_to(schemas, "AuditEntry", "after", "AuditSnapshot");
    point_to(schemas, "RestConfig", "body", "BodyTemplate");
    name_maps(schemas);
    constraints(schemas);
    single_json_bodies(api);
    create_bodies(api);
}

/// The maps a client holds and sends back (a connector read with `GET` and
/// sent again with `PUT`) are components, so that a generated client has
/// one type for each, whichever schema holds it.
fn name_maps(schemas: &mut BTreeMap<String, RefOr<Schema>>) {
    /// (component, its description, the `(owner, property)`s that hold it)
    type Map<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let maps: &[Map] = &[
        (
            "FeedbackCodes",
            "The EAM's closure or failure codes that count as feedback → the verdict they give.",
            &[("ConnectorInput", "feedback_codes"), ("ConnectorView", "feedback_codes")],
        ),
        (
            "StatusMap",
            "The EAM's status words → workbridge's lifecycle statuses.",
            &[
                ("WebhookSettings", "statuses"),
                ("MaximoConfig", "statuses"),
                ("ServiceNowConfig", "statuses"),
                ("SapConfig", "statuses"),
                ("SapConfig", "phase_statuses"),
            ],
        ),
        (
            "HeaderMap",
            "HTTP header name → value: literal, or a secret read from the environment or a file.",
            &[("RestConfig", "headers")],
        ),
        ("WorkTypeMap", "workbridge's work type → the EAM's work type.", &[("MaximoConfig", "work_types")]),
    ];
    for (component, description, owners) in maps {
        let (owner, property) = owners[0];
        let mut value = serde_json::to_value(&object_mut(schemas, owner).properties[property]).expect("serializes");
        let map = value.as_object_mut().unwrap_or_else(|| panic!("{owner}.{property} is a schema"));
        assert!(map.contains_key("additionalProperties"), "{owner}.{property} is a map");
        map.retain(|k, _| ["type", "additionalProperties", "propertyNames"].contains(&k.as_str()));
        map.insert("description".into(), (*description).into());
        schemas.insert((*component).into(), serde_json::from_value(value).expect("the map deserializes"));
        for (owner, property) in *owners {
            point_to(schemas, owner, property, component);
        }
    }
}

/// `(component, property, minLength, maxLength, pattern)`: what the code
/// checks of each text field, in the document's terms (lengths in
/// characters). `property[]` is each item of an array property.
const TEXTS: &[(&str, &str, usize, usize, &str)] = {
    use crate::domain::ident::{NAME_PATTERN, NOT_BLANK_PATTERN, SEGMENT_PATTERN, SEGMENT_TEXT_PATTERN, TEXT_PATTERN};
    &[
        ("ApiKeyInput", "name", 1, 128, NAME_PATTERN),
        ("AssetInput", "id", 1, 128, SEGMENT_PATTERN),
        ("AssetInput", "site", 1, 128, SEGMENT_PATTERN),
        ("AssetInput", "name", 1, 512, NAME_PATTERN),
        ("AssetInput", "class", 1, 128, NAME_PATTERN),
        ("AssetInput", "parent", 0, 128, SEGMENT_TEXT_PATTERN),
        ("AssetInput", "eam_system", 0, 128, TEXT_PATTERN),
        ("AssetInput", "tags[]", 1, 512, NAME_PATTERN),
        ("TagPatternInput", "pattern", 0, 512, ""),
        ("TagPatternInput", "asset_template", 1, 128, NAME_PATTERN),
        ("RuleInput", "name", 1, 128, NAME_PATTERN),
        ("CreateAction", "connector", 1, 64, CONNECTOR_NAME),
        ("ConnectorInput", "name", 1, 64, CONNECTOR_NAME),
        ("SuppressionInput", "target", 1, 512, NAME_PATTERN),
        ("SuppressionInput", "reason", 1, 512, NAME_PATTERN),
        ("SuppressionInput", "author", 1, 512, NAME_PATTERN),
        ("FeedbackInput", "author", 1, 128, NAME_PATTERN),
        ("FeedbackInput", "comment", 0, 4000, ""),
        ("RejectInput", "reason", 1, 1000, NOT_BLANK_PATTERN),
        ("BulkReject", "reason", 1, 1000, NOT_BLANK_PATTERN),
        ("RedecideFilter", "source", 1, 500, NOT_BLANK_PATTERN),
        ("RedecideFilter", "ids[]", 1, 500, NOT_BLANK_PATTERN),
        ("CloudEvent", "id", 1, 256, NAME_PATTERN),
        ("CloudEvent", "source", 1, 1024, NAME_PATTERN),
        ("CloudEvent", "subject", 1, 512, NAME_PATTERN),
        ("EventData", "code", 1, 128, NAME_PATTERN),
        ("AssetHint", "id", 1, 256, NAME_PATTERN),
    ]
};

/// A connector's name (`connectors::validate_name`).
const CONNECTOR_NAME: &str = "^[A-Za-z0-9._-]+$";

/// Applies `f` to the schema of `owner.property` (`property[]`: its items).
fn edit(
    schemas: &mut BTreeMap<String, RefOr<Schema>>,
    owner: &str,
    property: &str,
    f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let object = object_mut(schemas, owner);
    let (name, items) = property.strip_suffix("[]").map_or((property, false), |n| (n, true));
    let schema = object.properties.get_mut(name).unwrap_or_else(|| panic!("{owner} has no {name}"));
    let mut value = serde_json::to_value(&*schema).expect("a schema serializes");
    let target = if items {
        value.get_mut("items").unwrap_or_else(|| panic!("{owner}.{name} has no items"))
    } else {
        &mut value
    };
    f(target.as_object_mut().unwrap_or_else(|| panic!("{owner}.{property} is not an object schema")));
    *schema = serde_json::from_value(value).expect("the edited schema deserializes");
}

/// Puts in the document what the code enforces and utoipa's derives do not
/// say: text lengths and patterns, enums, bounds, the types of event fields.
fn constraints(schemas: &mut BTreeMap<String, RefOr<Schema>>) {
    use serde_json::json;
    for (owner, property, min, max, pattern) in TEXTS {
        edit(schemas, owner, property, |s| {
            if *min > 0 {
                s.insert("minLength".into(), json!(min));
            }
            s.insert("maxLength".into(), json!(max));
            if !pattern.is_empty() {
                s.insert("pattern".into(), json!(pattern));
            }
        });
    }
    let criticality = serde_json::from_value(json!({
        "type": "string",
        "enum": crate::domain::asset::CRITICALITIES,
        "description": "A/B/C or 1–5."
    }))
    .expect("a schema");
    schemas.insert("Criticality".into(), criticality);
    edit(schemas, "AssetInput", "criticality", |s| {
        s.clear();
        s.insert("oneOf".into(), json!([json_ref("Criticality"), {"type": "null"}]));
    });
    edit(schemas, "AssetInput", "tags", |s| {
        s.insert("maxItems".into(), json!(crate::domain::asset::MAX_TAGS));
        s.insert("uniqueItems".into(), json!(true));
    });
    // The statuses a planner can set in the (simulated) EAM.
    edit(schemas, "SandboxStatusChange", "status", |s| {
        s.clear();
        s.insert("type".into(), json!("string"));
        s.insert("enum".into(), json!(super::sandbox::SETTABLE.iter().map(|s| s.as_str()).collect::<Vec<_>>()));
        s.insert("description".into(), json!("The status to set; the lifecycle's others are workbridge's own."));
    });
    edit(schemas, "CloudEvent", "specversion", |s| {
        s.insert("enum".into(), json!(["1.0"]));
    });
    // Extension attributes (CloudEvents 1.0: lower-case letters and digits,
    // a string, a boolean or a 32-bit integer), kept with the event.
    let cloudevent = object_mut(schemas, "CloudEvent");
    let extension = serde_json::from_value(json!({
        "type": ["string", "boolean", "integer"],
        "minimum": i32::MIN,
        "maximum": i32::MAX,
        "description": "An extension attribute (e.g. `traceparent`): a string, a boolean or a 32-bit integer."
    }))
    .expect("a schema");
    cloudevent.additional_properties = Some(Box::new(AdditionalProperties::RefOr(RefOr::T(extension))));
    cloudevent.property_names =
        Some(Box::new(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[a-z0-9]+$")).build().into()));
    // Bounds the connectors' and rules' checks enforce.
    for owner in ["RestConfig", "MaximoConfig", "ServiceNowConfig", "SapConfig"] {
        edit(schemas, owner, "timeout_ms", |s| {
            s.insert("minimum".into(), json!(100));
            s.insert("maximum".into(), json!(120_000));
        });
    }
    for (owner, property, minimum) in [
        ("DebounceOccurrences", "occurrences", 2),
        ("DebounceOccurrences", "within_minutes", 1),
        ("DebounceHeldFor", "held_for_minutes", 1),
    ] {
        edit(schemas, owner, property, |s| {
            s.insert("minimum".into(), json!(minimum));
        });
    }
    edit(schemas, "WebhookSettings", "secrets", |s| {
        s.insert("minItems".into(), json!(1));
        s.insert("maxItems".into(), json!(crate::connectors::MAX_WEBHOOK_SECRETS));
    });
}

/// Creating an asset or a connector needs its id or name (a replacement
/// takes it from the path): the create operations take `NewAsset` and
/// `NewConnector`, which require it.
fn create_bodies(api: &mut OpenApi) {
    let schemas = &mut api.components.as_mut().expect("components").schemas;
    for (from, to, field) in [("AssetInput", "NewAsset", "id"), ("ConnectorInput", "NewConnector", "name")] {
        let mut value = serde_json::to_value(&schemas[from]).expect("a schema serializes");
        value["required"].as_array_mut().expect("required fields").insert(0, field.into());
        let property = &mut value["properties"][field];
        property["type"] = "string".into();
        // What the replacement says of the path does not apply.
        if let Some(description) = property["description"].as_str() {
            property["description"] = description.split("; on `PUT").next().unwrap_or(description).to_owned().into();
        }
        schemas.insert(to.into(), serde_json::from_value(value).expect("the schema deserializes"));
    }
    let body = |api: &mut OpenApi, path: &str| -> serde_json::Value {
        let op = api.paths.paths.get_mut(path).and_then(|p| p.post.as_mut()).expect("documented");
        let Some(RefOr::T(body)) = &op.request_body else { panic!("{path} has a body") };
        serde_json::to_value(body).expect("a body serializes")
    };
    for (path, schema) in [
        ("/v1/assets", json_ref("NewAsset")),
        ("/v1/assets/bulk", serde_json::json!({"type": "array", "items": json_ref("NewAsset")})),
        ("/v1/connectors", json_ref("NewConnector")),
    ] {
        let mut value = body(api, path);
        value["content"]["application/json"]["schema"] = schema;
        let op = api.paths.paths.get_mut(path).and_then(|p| p.post.as_mut()).expect("documented");
        op.request_body = Some(serde_json::from_value(value).expect("a body"));
    }
    // An approval's body is optional (no body at all), but when there is
    // one it is an `ApproveInput` object: `null` is not one.
    let op = api.paths.paths.get_mut("/v1/work-orders/{id}/approve").and_then(|p| p.post.as_mut()).expect("documented");
    let Some(RefOr::T(body)) = &op.request_body else { panic!("approve has a body") };
    let mut value = serde_json::to_value(body).expect("a body serializes");
    value["content"]["application/json"]["schema"] = json_ref("ApproveInput");
    op.request_body = Some(serde_json::from_value(value).expect("a body"));
}

fn json_ref(name: &str) -> serde_json::Value {
    serde_json::json!({"$ref": format!("#/components/schemas/{name}")})
}

fn object_mut<'a>(
    schemas: &'a mut BTreeMap<String, RefOr<Schema>>,
    name: &str,
) -> &'a mut utoipa::openapi::schema::Object {
    match schemas.get_mut(name) {
        Some(RefOr::T(Schema::Object(o))) => o,
        _ => panic!("component {name} is not an object schema"),
    }
}

fn variants(schemas: &BTreeMap<String, RefOr<Schema>>, name: &str) -> Vec<RefOr<Schema>> {
    match schemas.get(name) {
        Some(RefOr::T(Schema::OneOf(o))) => o.items.clone(),
        _ => panic!("component {name} is not a oneOf"),
    }
}

fn description_of(schema: &RefOr<Schema>) -> Option<String> {
    match schema {
        RefOr::T(Schema::Object(o)) => o.description.clone(),
        RefOr::T(Schema::AllOf(a)) => a.description.clone(),
        RefOr::T(Schema::OneOf(o)) => o.description.clone(),
        _ => None,
    }
}

fn kind_property(value: &str) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some([value])).build().into()
}

/// Turns the `oneOf` of an internally tagged (`kind`) enum into a
/// discriminated `oneOf` over named components: a variant that is a struct
/// of its own gets `kind` added; a unit variant (`Some(index)` of the
/// derive's `oneOf`) becomes a component with `kind` only.
fn tagged_union(schemas: &mut BTreeMap<String, RefOr<Schema>>, name: &str, tags: &[(&str, &str, Option<usize>)]) {
    let derived = variants(schemas, name);
    let description = match schemas.get(name) {
        Some(RefOr::T(Schema::OneOf(o))) => o.description.clone(),
        _ => None,
    };
    let mut union = OneOfBuilder::new().description(description);
    for (tag, component, unit) in tags {
        match unit {
            Some(index) => {
                let object = ObjectBuilder::new()
                    .description(description_of(&derived[*index]))
                    .property("kind", kind_property(tag))
                    .required("kind")
                    .additional_properties(Some(AdditionalProperties::FreeForm(false)))
                    .build();
                schemas.insert((*component).into(), object.into());
            }
            None => {
                let object = object_mut(schemas, component);
                object.properties.insert("kind".into(), kind_property(tag));
                object.required.insert(0, "kind".into());
                assert!(
                    matches!(object.additional_properties.as_deref(), Some(AdditionalProperties::FreeForm(false))),
                    "{component} must refuse unknown fields"
                );
            }
        }
        union = union.item(Ref::from_schema_name(*component));
    }
    let mapping = tags.iter().map(|(tag, component, _)| (*tag, format!("#/components/schemas/{component}")));
    union = union.discriminator(Some(Discriminator::with_mapping("kind", mapping)));
    schemas.insert(name.into(), Schema::OneOf(union.build()).into());
}

/// Moves the inline object variants of an untagged enum to named
/// components; their fields are all the variant has.
fn name_variants(schemas: &mut BTreeMap<String, RefOr<Schema>>, name: &str, names: &[(usize, &str)]) {
    let Some(RefOr::T(Schema::OneOf(union))) = schemas.get_mut(name) else { panic!("{name} is not a oneOf") };
    let mut named = vec![];
    for (index, component) in names {
        let mut variant = std::mem::replace(&mut union.items[*index], Ref::from_schema_name(*component).into());
        if let RefOr::T(Schema::Object(o)) = &mut variant {
            o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
        named.push((component.to_string(), variant));
    }
    schemas.extend(named);
}

/// `PrioritySpec`'s matrix, named: severity → `PriorityRow` (criticality → priority).
fn priority_matrix(schemas: &mut BTreeMap<String, RefOr<Schema>>) {
    let Some(RefOr::T(Schema::OneOf(union))) = schemas.get_mut("PrioritySpec") else {
        panic!("PrioritySpec is not a oneOf")
    };
    let RefOr::T(Schema::Object(mut matrix)) =
        std::mem::replace(&mut union.items[1], Ref::from_schema_name("PriorityMatrix").into())
    else {
        panic!("PrioritySpec's matrix is not an object")
    };
    let row = ObjectBuilder::new()
        .description(Some("criticality (or `\"*\"` for any) → priority."))
        .additional_properties(Some(Ref::from_schema_name("Priority")))
        .build();
    matrix.additional_properties =
        Some(Box::new(AdditionalProperties::RefOr(Ref::from_schema_name("PriorityRow").into())));
    schemas.insert("PriorityRow".into(), row.into());
    schemas.insert("PriorityMatrix".into(), Schema::Object(matrix).into());
}

/// `Page_X.items` refers to the component `X` (the derive inlines it).
fn page_items(schemas: &mut BTreeMap<String, RefOr<Schema>>) {
    let pages: Vec<String> = schemas.keys().filter(|n| n.starts_with("Page_")).cloned().collect();
    for page in pages {
        let item = page.trim_start_matches("Page_").to_owned();
        assert!(schemas.contains_key(&item), "{page}'s item {item} is a component");
        let items = ArrayBuilder::new().items(Ref::from_schema_name(item)).build();
        object_mut(schemas, &page).properties.insert("items".into(), items.into());
    }
}

/// Points `owner.property` at the component `target`, keeping the
/// property's description.
fn point_to(schemas: &mut BTreeMap<String, RefOr<Schema>>, owner: &str, property: &str, target: &str) {
    let object = object_mut(schemas, owner);
    let old = object.properties.get(property).unwrap_or_else(|| panic!("{owner} has no {property}"));
    let mut reference = Ref::from_schema_name(target);
    reference.description = description_of(old).unwrap_or_default();
    object.properties.insert(property.into(), reference.into());
}

/// Bodies that the service accepts in several media types are documented
/// as JSON only (the others are in the operation's description): one
/// schema per body is what generated clients can call. A repeated single
/// event answers 200 with `Accepted`, a batch 200 with `BatchResult`.
fn single_json_bodies(api: &mut OpenApi) {
    for path in ["/v1/events", "/v1/assets/bulk"] {
        let op = api.paths.paths.get_mut(path).and_then(|p| p.post.as_mut()).expect("documented");
        let Some(RefOr::T(body)) = op.request_body.as_mut() else { panic!("{path} has a body") };
        body.content.retain(|mime, _| mime == "application/json");
    }
    let events = api.paths.paths.get_mut("/v1/events").and_then(|p| p.post.as_mut()).expect("documented");
    let Some(RefOr::T(body)) = events.request_body.as_mut() else { panic!("POST /v1/events has a body") };
    // A batch's elements are taken one by one: an element that is not a
    // valid CloudEvent is reported in its item of the 200 answer, and the
    // others are stored. So the batch is an array of anything, each element
    // meant to be a `CloudEvent`.
    let element = ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some(
            "A CloudEvent (see `CloudEvent`); one that is not valid is refused in its item of the answer.",
        ))
        .build();
    let one_or_many =
        OneOfBuilder::new().item(Ref::from_schema_name("CloudEvent")).item(ArrayBuilder::new().items(element)).build();
    body.content.insert(
        "application/json".into(),
        ContentBuilder::new().schema(Some(Schema::OneOf(one_or_many))).build().into(),
    );
    let Some(RefOr::T(ok)) = events.responses.responses.get_mut("200") else { panic!("POST /v1/events documents 200") };
    let either =
        OneOfBuilder::new().item(Ref::from_schema_name("Accepted")).item(Ref::from_schema_name("BatchResult")).build();
    ok.content
        .insert("application/json".into(), ContentBuilder::new().schema(Some(Schema::OneOf(either))).build().into());
}
