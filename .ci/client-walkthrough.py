"""The README's walkthrough, done with the Python client that
openapi-python-client generates from openapi/openapi.json, against the real
binary: `python client-walkthrough.py <workbridge binary> <repository root>`
with the generated `workbridge_client` on PYTHONPATH (.ci/clients does this).

Every call goes through the client's typed models and its response parsing:
a response that does not fit its documented schema fails here (the parser
raises, or the parsed value has the wrong type), and so does a request the
client cannot express.
"""

import datetime as dt
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jsonschema
import referencing
import referencing.jsonschema

from workbridge_client import AuthenticatedClient
from workbridge_client.api.assets import bulk_assets
from workbridge_client.api.connectors import create_connector, get_connector, list_connectors, put_connector
from workbridge_client.api.events import get_event, list_events, post_events
from workbridge_client.api.kpis import get_kpis, get_rule_kpis
from workbridge_client.api.rules import backtest_rules, create_rule, list_rules, test_rules
from workbridge_client.api.sandbox import list_sandbox_orders, set_sandbox_status
from workbridge_client.api.suppressions import create_suppression
from workbridge_client.api.work_orders import add_feedback, get_work_order, list_work_orders
from workbridge_client.models import (
    Accepted,
    AlertState,
    BacktestReport,
    BacktestRequest,
    BatchResult,
    BulkResult,
    CloudEvent,
    CloudEventSpecversion,
    Criticality,
    ConnectorInput,
    ConnectorView,
    FeedbackCodes,
    NewAsset,
    NewConnector,
    StatusMap,
    WebhookSettings,
    CreateAction,
    CreateActionKind,
    DecisionTrace,
    DryRun,
    EventData,
    EventKind,
    EventOutcome,
    EventRecord,
    Feedback,
    FeedbackInput,
    IgnoreAction,
    IgnoreActionKind,
    Kpis,
    Matchers,
    OrderStatus,
    PageEventRecord,
    PageSandboxOrder,
    PageWorkOrder,
    PriorityMatrix,
    Rule,
    RuleInput,
    RuleKpis,
    RuleTest,
    SandboxConfig,
    SandboxConfigKind,
    SandboxOrder,
    SandboxStatusChange,
    Scope,
    Severity,
    Suppression,
    SuppressionInput,
    Verdict,
    WorkOrder,
    WorkOrderDetail,
)
from workbridge_client.types import Response

TAG = "BEDFORD.PUMPING.MX101.BRG_TEMP"
SOURCE = "tdl://bedford/analytics"


def step(text: str) -> None:
    print(f"  - {text}", flush=True)


def expect(response: Response, status: int, kind: type):
    """The response has `status` and its body parsed as `kind`."""
    assert response.status_code == status, f"HTTP {response.status_code}, expected {status}: {response.content!r}"
    assert isinstance(response.parsed, kind), f"parsed as {type(response.parsed).__name__}, expected {kind.__name__}"
    return response.parsed


def event(event_id: str, minute: int, subject: str = TAG, severity: Severity = Severity.MAJOR) -> CloudEvent:
    return CloudEvent(
        specversion=CloudEventSpecversion.VALUE_0,
        id=event_id,
        source=SOURCE,
        type_=EventKind.TDL_ALERT,
        time=dt.datetime(2026, 11, 24, 10, minute, tzinfo=dt.timezone.utc),
        subject=subject,
        data=EventData(
            state=AlertState.RAISED,
            code="HIGH_TEMPERATURE",
            severity=severity,
            message="Bearing temperature above alarm limit",
            value=92.1,
            unit="degC",
        ),
    )


def walkthrough(client: AuthenticatedClient, root: Path) -> None:
    step("load assets: CSV (the demo registry) and JSON")
    csv = (root / "tests/fixtures/assets-demo.csv").read_bytes()
    # The generated client sends JSON bodies; CSV goes through its own
    # HTTP client and the answer through the generated model.
    raw = client.get_httpx_client().post("/v1/assets/bulk", content=csv, headers={"Content-Type": "text/csv"})
    assert raw.status_code == 200, raw.text
    loaded = BulkResult.from_dict(raw.json())
    assert loaded.created == 30 and loaded.rejected == 0, loaded
    json_assets = [
        NewAsset(id="MX-900", site="BEDFORD", name="Spare mixer", class_="MIXER", criticality=Criticality.B,
                   tags=["BEDFORD.PUMPING.MX900.BRG_TEMP"]),
    ]
    loaded = expect(bulk_assets.sync_detailed(client=client, body=json_assets), 200, BulkResult)
    assert loaded.created == 1, loaded

    step("create a connector (sandbox) and rules")
    connector = expect(
        create_connector.sync_detailed(
            client=client,
            body=NewConnector(
                name="sandbox",
                config=SandboxConfig(kind=SandboxConfigKind.SANDBOX),
                feedback_codes=FeedbackCodes.from_dict({"No Fault Found": "false_alarm"}),
            ),
        ),
        201,
        ConnectorView,
    )
    assert isinstance(connector.config, SandboxConfig), connector.config
    listed = list_connectors.sync(client=client)
    assert [c.name for c in listed] == ["sandbox"] and isinstance(listed[0].config, SandboxConfig)

    step("read the connector and send it back with a change (the maps are one type each)")
    got = expect(get_connector.sync_detailed(client=client, name="sandbox"), 200, ConnectorView)
    assert isinstance(got.feedback_codes, FeedbackCodes), got.feedback_codes
    codes = got.feedback_codes
    codes["Solved (Permanently)"] = Verdict.USEFUL
    webhook = WebhookSettings(
        secrets=["whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="],
        statuses=StatusMap.from_dict({"DONE": "completed"}),
    )
    sent = ConnectorInput(enabled=got.enabled, config=got.config, webhook=webhook, feedback_codes=codes)
    put = expect(put_connector.sync_detailed(client=client, name="sandbox", body=sent), 200, ConnectorView)
    assert put.feedback_codes["Solved (Permanently)"] == Verdict.USEFUL, put.feedback_codes
    assert put.feedback_codes["No Fault Found"] == Verdict.FALSE_ALARM, put.feedback_codes
    # The webhook secret comes back masked; sent back as read, it is kept.
    again = ConnectorInput(enabled=put.enabled, config=put.config, webhook=put.webhook, feedback_codes=put.feedback_codes)
    put = expect(put_connector.sync_detailed(client=client, name="sandbox", body=again), 200, ConnectorView)
    assert isinstance(put.webhook, WebhookSettings) and put.webhook.secrets == ["***"], put.webhook
    assert put.webhook.statuses["DONE"] == OrderStatus.COMPLETED, put.webhook.statuses
    matrix = PriorityMatrix.from_dict({"critical": {"A": 1, "*": 2}, "major": {"*": 2}})
    rule = expect(
        create_rule.sync_detailed(
            client=client,
            body=RuleInput(
                name="alerts-to-orders",
                when=Matchers(types=[EventKind.TDL_ALERT], min_severity=Severity.MINOR),
                action=CreateAction(kind=CreateActionKind.CREATE, connector="sandbox", work_type="corrective",
                                    priority=matrix),
            ),
        ),
        201,
        Rule,
    )
    assert isinstance(rule.action, CreateAction) and isinstance(rule.action.priority, PriorityMatrix), rule.action
    assert rule.action.priority["critical"]["A"] == 1
    ignore = expect(
        create_rule.sync_detailed(
            client=client,
            body=RuleInput(name="ignore-anomalies", when=Matchers(types=[EventKind.TDL_ANOMALY]),
                           action=IgnoreAction(kind=IgnoreActionKind.IGNORE)),
        ),
        201,
        Rule,
    )
    assert isinstance(ignore.action, IgnoreAction), ignore.action
    rules = list_rules.sync(client=client)
    assert {type(r.action) for r in rules} == {CreateAction, IgnoreAction}, rules

    step("post an event: single (201), repeated (200), batch (200)")
    first = expect(post_events.sync_detailed(client=client, body=event("walkthrough-1", 15)), 201, Accepted)
    assert first.outcome == EventOutcome.CREATED and first.asset_id == "MX-101" and not first.duplicate, first
    again = expect(post_events.sync_detailed(client=client, body=event("walkthrough-1", 15)), 200, Accepted)
    assert again.duplicate and again.id == first.id, again
    batch = expect(
        post_events.sync_detailed(
            # A batch's elements are checked one by one (the document types
            # them as any value): CloudEvents as dicts.
            client=client,
            body=[e.to_dict() for e in
                  (event("walkthrough-2", 20), event("walkthrough-1", 15), event("unmapped-1", 21, "NOWHERE.TAG"))],
        ),
        200,
        BatchResult,
    )
    assert (batch.accepted, batch.duplicates, batch.rejected) == (2, 1, 0), batch
    assert batch.items[0].result.outcome == EventOutcome.MERGED, batch.items[0]
    assert batch.items[2].result.outcome == EventOutcome.UNMAPPED, batch.items[2]

    step("list and open the order; its trace is typed")
    page = expect(list_work_orders.sync_detailed(client=client), 200, PageWorkOrder)
    assert page.total == 1 and isinstance(page.items[0], WorkOrder), page
    order = expect(get_work_order.sync_detailed(first.work_order_id, client=client), 200, WorkOrderDetail)
    assert order.event_count == 2 and order.priority == 2, order
    assert isinstance(order.trace, DecisionTrace) and order.trace.decision.outcome == EventOutcome.CREATED, order.trace
    assert [r.rule for r in order.trace.rules] == ["alerts-to-orders"], order.trace.rules
    assert all(isinstance(e, EventRecord) and isinstance(e.cloudevent, CloudEvent) for e in order.events)
    assert {e.cloudevent.id for e in order.events} == {"walkthrough-1", "walkthrough-2"}
    opened = expect(get_event.sync_detailed("walkthrough-1", client=client), 200, EventRecord)
    assert opened.trace.mapping.asset_id == "MX-101" and opened.cloudevent.data.value == 92.1, opened

    step("the sandbox receives the order; move it as a planner would")
    deadline = time.monotonic() + 30
    while True:
        sandbox = expect(list_sandbox_orders.sync_detailed(client=client), 200, PageSandboxOrder)
        if sandbox.items:
            break
        assert time.monotonic() < deadline, "the order never reached the sandbox"
        time.sleep(0.2)
    sbx = sandbox.items[0]
    assert isinstance(sbx, SandboxOrder) and sbx.reference == first.work_order_id, sbx
    moved = expect(
        set_sandbox_status.sync_detailed(sbx.id, client=client, body=SandboxStatusChange(status=OrderStatus.IN_PROGRESS)),
        200,
        SandboxOrder,
    )
    assert moved.status == "in_progress", moved
    order = expect(get_work_order.sync_detailed(first.work_order_id, client=client), 200, WorkOrderDetail)
    assert order.status == OrderStatus.IN_PROGRESS and order.external_id == sbx.id, order
    assert OrderStatus.IN_PROGRESS in [h.status for h in order.history], order.history

    step("give feedback")
    feedback = expect(
        add_feedback.sync_detailed(
            first.work_order_id, client=client,
            body=FeedbackInput(verdict=Verdict.USEFUL, author="planner@bedford", comment="bearing replaced"),
        ),
        201,
        Feedback,
    )
    assert feedback.verdict == Verdict.USEFUL, feedback

    step("read the KPIs and the per-rule KPIs")
    since = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    until = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)
    kpis = expect(get_kpis.sync_detailed(client=client, since=since, until=until), 200, Kpis)
    assert kpis.orders == 1, kpis
    per_rule = expect(get_rule_kpis.sync_detailed(client=client, since=since, until=until), 200, list)
    mine = [k for k in per_rule if isinstance(k, RuleKpis) and k.rule_id == rule.id]
    assert mine and mine[0].orders_created == 1 and mine[0].feedback_useful == 1, per_rule

    step("list unmapped events")
    unmapped = expect(list_events.sync_detailed(client=client, outcome=EventOutcome.UNMAPPED), 200, PageEventRecord)
    assert [e.event_id for e in unmapped.items] == ["unmapped-1"], unmapped
    assert unmapped.items[0].cloudevent.subject == "NOWHERE.TAG"

    step("create a suppression")
    now = dt.datetime.now(dt.timezone.utc)
    suppression = expect(
        create_suppression.sync_detailed(
            client=client,
            body=SuppressionInput(scope=Scope.ASSET, target="MX-101", ends_at=now + dt.timedelta(hours=2),
                                  reason="bearing replacement", author="planner@bedford"),
        ),
        201,
        Suppression,
    )
    assert suppression.scope == Scope.ASSET and suppression.target == "MX-101", suppression

    step("dry-run and backtest rules")
    dry = expect(
        test_rules.sync_detailed(client=client, body=RuleTest(event=event("dry-1", 30, severity=Severity.CRITICAL))),
        200,
        DryRun,
    )
    assert isinstance(dry.trace, DecisionTrace) and dry.asset_id == "MX-101", dry
    report = expect(
        backtest_rules.sync_detailed(client=client, body=BacktestRequest(since=since, until=until)),
        200,
        BacktestReport,
    )
    assert report.events == 3 and report.actual.orders == 1 and len(report.orders) == 1, report
    assert all(o.verdict is not None for o in report.orders), report.orders

    check_against_document(client, [
        "/v1/rules", f"/v1/rules/{rule.id}", f"/v1/rules/{ignore.id}", f"/v1/rules/{rule.id}/versions",
        "/v1/connectors", "/v1/connectors/sandbox", "/v1/assets?limit=500", "/v1/assets/MX-101", "/v1/tag-patterns",
        "/v1/events", "/v1/events/walkthrough-1", "/v1/work-orders", f"/v1/work-orders/{first.work_order_id}",
        "/v1/deliveries", "/v1/sandbox/orders", f"/v1/sandbox/orders/{sbx.id}", "/v1/suppressions",
        "/v1/kpis", "/v1/kpis/rules", "/v1/kpis/timeseries?bucket=day", "/v1/audit?limit=500", "/v1/api-keys",
        "/healthz", "/readyz",
    ])


def check_against_document(client: AuthenticatedClient, urls: list[str]) -> None:
    """The raw answers of GET `urls` validate against the schemas the served
    document gives them (JSON Schema 2020-12): what a validating client or
    a fuzzer sees, independent of the generated parser's leniency."""
    http = client.get_httpx_client()
    document = http.get("/openapi.json").json()
    templates = list(document["paths"])

    def template_of(path: str) -> str:
        """The documented path template `path` matches, literal segments first."""
        parts = path.split("/")
        matches = [
            t for t in templates
            if len(t.split("/")) == len(parts)
            and all(a == b or a.startswith("{") for a, b in zip(t.split("/"), parts))
        ]
        assert matches, f"{path} is not documented"
        return max(matches, key=lambda t: sum(not a.startswith("{") for a in t.split("/")))

    for url in urls:
        response = http.get(url)
        assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text}"
        schema = document["paths"][template_of(url.split("?")[0])]["get"]["responses"]["200"]["content"][
            "application/json"]["schema"]
        contents = dict(document, **{"x-checked": schema})
        resource = referencing.Resource.from_contents(contents, default_specification=referencing.jsonschema.DRAFT202012)
        registry = referencing.Registry().with_resource("urn:workbridge:openapi", resource)
        validator = jsonschema.Draft202012Validator({"$ref": "urn:workbridge:openapi#/x-checked"}, registry=registry)
        errors = sorted(validator.iter_errors(response.json()), key=lambda e: list(e.absolute_path))
        assert not errors, f"GET {url} breaks its schema: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
    step(f"{len(urls)} raw responses validate against the document's schemas")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    binary, root = sys.argv[1], Path(sys.argv[2])
    port = free_port()
    key = "wb_walk_" + secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(
            os.environ,
            WORKBRIDGE_HTTP_ADDR=f"127.0.0.1:{port}",
            WORKBRIDGE_DATABASE_URL=f"sqlite://{tmp}/wb.db?mode=rwc",
            WORKBRIDGE_AMQP__ENABLED="false",
            WORKBRIDGE_ADMIN_KEY=key,
            RUST_LOG="warn",
        )
        log = open(Path(tmp) / "service.log", "w")
        service = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            with AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True) as client:
                walkthrough(client, root)
        except BaseException:
            log.flush()
            print((Path(tmp) / "service.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            service.terminate()
            service.wait(timeout=30)
    print("the README walkthrough passes with the generated Python client")


if __name__ == "__main__":
    main()
