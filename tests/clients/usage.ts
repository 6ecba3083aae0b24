// Type-checked by .ci/clients against the types openapi-typescript generates
// from openapi/openapi.json (`schema.d.ts` beside this file at check time):
// what a TypeScript client writes and reads must type, and what the service
// refuses must not.
import type { components, paths } from "./schema";

type S = components["schemas"];

// A rule and a connector: the discriminated unions narrow on `kind`.
const rule: S["RuleInput"] = {
  name: "high temperature",
  when: { types: ["tdl.alert"], min_severity: "major" },
  action: { kind: "create", connector: "sandbox", priority: { critical: { A: 1, "*": 2 } } },
};
const ignore: S["Action"] = { kind: "ignore" };
// @ts-expect-error a create action names its connector
const incomplete: S["Action"] = { kind: "create" };
// @ts-expect-error an ignore action has nothing else
const extra: S["IgnoreAction"] = { kind: "ignore", connector: "x" };
const connector: S["ConnectorInput"] = { name: "sandbox", config: { kind: "sandbox" } };
const rest: S["ConnectorConfig"] = {
  kind: "rest",
  url: "https://eam.example.com/api/orders",
  id_path: "/id",
  headers: { Authorization: { env: "EAM_TOKEN" }, "X-Plant": "north" },
};

function connectorUrl(config: S["ConnectorConfig"]): string | null {
  switch (config.kind) {
    case "rest":
      return config.url;
    case "maximo":
      return config.base_url;
    case "servicenow":
      return config.instance_url;
    case "sap":
      return config.service_url;
    case "sandbox":
      return null;
  }
}

// Pages hold named items; the decision trace has a shape.
function firstOrder(page: S["Page_WorkOrder"]): S["WorkOrder"] | undefined {
  return page.items[0];
}
function ruleReasons(event: S["EventRecord"]): string[] {
  const decision: S["TraceDecision"] | null | undefined = event.trace.decision;
  const tried = (event.trace.rules ?? []).map((r: S["RuleTrace"]) => `${r.rule}: ${r.reason}`);
  return decision ? [...tried, decision.reason] : tried;
}
function eventSubject(event: S["EventRecord"]): string | null | undefined {
  const ce: S["CloudEvent"] = event.cloudevent;
  return ce.subject;
}

// POST /v1/events: one event answers Accepted (201, or 200 when repeated),
// a batch answers BatchResult (200).
type PostEvents = paths["/v1/events"]["post"];
type Posted = PostEvents["responses"][200]["content"]["application/json"];
function acceptedIds(r: Posted): string[] {
  return "items" in r ? r.items.flatMap((i) => (i.result ? [i.result.id] : [])) : [r.id];
}
const batch: PostEvents["requestBody"]["content"]["application/json"] = [
  {
    specversion: "1.0",
    id: "e-1",
    source: "tdl://historian",
    type: "tdl.alert",
    subject: "P-101.TEMP",
    data: { state: "raised", code: "HIGH_TEMP", severity: "critical", value: 92.1 },
  },
];

export { rule, ignore, incomplete, extra, connector, rest, connectorUrl, firstOrder, ruleReasons, eventSubject, acceptedIds, batch };
