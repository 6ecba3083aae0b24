// Rules: the list with versions and a line diff between two versions, a dry
// run from a pasted event (its trace shown readably), and a backtest over a
// range (what today's or a proposed rule set would change).
// Also exports the trace and event-evidence views the review queue uses.

import { api, h, problemBox, fmtTime, fmtPct, can, loading, table, field, formData, statusBadge } from '../lib.js';

// ---------------------------------------------------------------------------
// Shared views (used by review.js, triage.js and connectors.js too)

// Children for the DOM's replaceChildren/append, which would print null and
// arrays as text: nested arrays flattened, absent parts dropped.
const kids = (xs) => xs.flat(Infinity).filter((x) => x !== null && x !== undefined && x !== false && x !== true);

/**
 * Starts a page's render and returns a check for later: false once another
 * render of `main` began or the route left the page, so that a slow answer
 * never overwrites the page the user has moved to.
 */
export function renderGuard(main, pageName, ctx) {
  const gen = (main.wbRender = (main.wbRender || 0) + 1);
  return () =>
    main.wbRender === gen &&
    (ctx?.current ? ctx.current() : true) &&
    (location.hash.replace(/^#\/?/, '').split(/[/?]/)[0] || 'overview') === pageName;
}

/** Replaces an element's children (arrays flattened, null/false skipped). */
export function put(el, ...xs) {
  el.replaceChildren(...kids(xs));
}

/** Appends children (arrays flattened, null/false skipped). */
export function add(el, ...xs) {
  el.append(...kids(xs));
}

/** A local date-time input value ("2026-12-05T14:02") for a Date. */
export function toLocalInput(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** RFC 3339 (UTC) from a datetime-local value read in the viewer's zone; '' stays ''. */
export function fromLocalInput(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

/** A value against its threshold, e.g. "92.1 degC (threshold 85 degC, above)". */
export function valueAgainstThreshold(data) {
  if (!data || (data.value == null && data.threshold == null && data.score == null)) return '—';
  const unit = data.unit ? ` ${data.unit}` : '';
  const parts = [];
  if (data.value != null) parts.push(`${data.value}${unit}`);
  if (data.threshold != null) {
    let where = '';
    if (data.value != null) {
      if (data.value > data.threshold) where = ', above';
      else if (data.value < data.threshold) where = ', below';
      else where = ', at';
    }
    parts.push(`(threshold ${data.threshold}${unit}${where})`);
  }
  if (data.score != null) parts.push(`score ${data.score}`);
  return parts.join(' ');
}

/** Whether a value exceeds its threshold (for styling). */
function overThreshold(data) {
  return data && data.value != null && data.threshold != null && data.value > data.threshold;
}

/**
 * A table whose wrapper may scroll sideways (a tablet): keyboard users reach
 * it (a focusable region named by the caption), as axe asks of scrollable regions.
 */
export function tableRegion(opts) {
  const wrap = table(opts);
  wrap.tabIndex = 0;
  wrap.setAttribute('role', 'region');
  wrap.setAttribute('aria-label', opts.caption || 'Table');
  return wrap;
}

/** The events of an order: time, tag, code, severity, state, value against threshold, message. */
export function eventsTable(events, caption = 'Events') {
  return tableRegion({
    caption,
    columns: [
      { label: 'Time', cell: (e) => fmtTime(e.time || e.received_at) },
      { label: 'Tag', cell: (e) => h('code', {}, e.subject ?? '—') },
      { label: 'Code', cell: (e) => e.code },
      { label: 'Severity', cell: (e) => h('span', { class: `sev sev-${e.severity}` }, e.severity) },
      { label: 'State', cell: (e) => e.state },
      {
        label: 'Value against threshold',
        cell: (e) => {
          const d = e.cloudevent?.data;
          return h('span', { class: overThreshold(d) ? 'over-threshold' : null }, valueAgainstThreshold(d));
        },
      },
      { label: 'Message', cell: (e) => h('span', { class: 'plant-text' }, e.cloudevent?.data?.message ?? '') },
      { label: 'Outcome', cell: (e) => e.outcome },
    ],
    rows: events,
    empty: 'No events.',
  });
}

function pretty(v) {
  return JSON.stringify(v, null, 2);
}

function decisionView(d, dry) {
  if (!d) return null;
  return h(
    'dl',
    { class: 'kv' },
    h('dt', {}, 'Outcome'),
    h('dd', {}, h('strong', {}, d.outcome)),
    h('dt', {}, 'Reason'),
    h('dd', {}, d.reason ?? '—'),
    d.priority != null ? [h('dt', {}, 'Priority'), h('dd', {}, String(d.priority))] : null,
    d.dedup_key ? [h('dt', {}, 'Dedup key'), h('dd', {}, h('code', {}, d.dedup_key))] : null,
    d.work_order_id
      ? [
          // A dry run names only an existing order (the one it would merge into).
          h('dt', {}, dry ? 'Work order (would merge into)' : 'Work order'),
          h('dd', {}, h('a', { href: `#/orders/${encodeURIComponent(d.work_order_id)}` }, d.work_order_id)),
        ]
      : null,
    d.template_errors?.length ? [h('dt', {}, 'Template errors'), h('dd', {}, h('ul', {}, d.template_errors.map((t) => h('li', {}, t))))] : null,
  );
}

const KNOWN_TRACE_KEYS = new Set(['mapping', 'rules', 'decision', 'shadow', 'skipped_by_index', 'time', 'timer', 'episode', 'first', 'redecisions']);

/** A decision trace, readably: mapping, rules tried and why, the decision, and the rest. */
export function traceView(trace, { nested = false, dry = false } = {}) {
  const t = trace && typeof trace === 'object' ? trace : {};
  const H = nested ? 'h5' : 'h4';
  const parts = [];
  parts.push(h(H, {}, 'Mapping'));
  if (t.mapping) {
    parts.push(
      h('p', {}, 'Asset ', h('code', {}, t.mapping.asset_id), ` by ${t.mapping.by}`, t.mapping.detail ? ` (${t.mapping.detail})` : ''),
    );
  } else {
    parts.push(h('p', {}, 'Not mapped to an asset.'));
  }
  if (t.time) parts.push(h('p', { class: 'hint' }, t.time));
  if (Array.isArray(t.rules)) {
    parts.push(h(H, {}, 'Rules tried'));
    parts.push(
      h(
        'ol',
        { class: 'trace-rules' },
        t.rules.map((r) =>
          h(
            'li',
            { class: r.matched ? 'matched' : 'not-matched' },
            h('span', { class: 'mark', 'aria-hidden': 'true' }, r.matched ? '✓ ' : '✗ '),
            h('strong', {}, r.rule),
            ` v${r.version}`,
            r.shadow ? ' (shadow)' : '',
            r.matched ? ' — matched: ' : ' — did not match: ',
            r.reason,
          ),
        ),
      ),
    );
    if (t.skipped_by_index) parts.push(h('p', { class: 'hint' }, `${t.skipped_by_index} rule(s) ruled out by the site/asset index.`));
  }
  if (t.episode) {
    parts.push(h(H, {}, 'Episode'));
    parts.push(h('p', {}, `Clear of rule ${t.episode.rule}, dedup key `, h('code', {}, t.episode.dedup_key), `: ${t.episode.reason}`));
  }
  if (t.timer) {
    parts.push(h(H, {}, 'Timer'));
    parts.push(
      h(
        'p',
        {},
        `Held ${t.timer.held_for_minutes} min since ${fmtTime(t.timer.held_since)}, due ${fmtTime(t.timer.due_at)}, fired ${fmtTime(t.timer.fired_at)}`,
        t.timer.reason ? `: ${t.timer.reason}` : '',
      ),
    );
  }
  if (Array.isArray(t.shadow) && t.shadow.length) {
    parts.push(h(H, {}, 'Shadow rules'));
    parts.push(h('ul', {}, t.shadow.map((s) => h('li', {}, h('strong', {}, s.rule), ` v${s.version} would: `, h('code', {}, pretty(s.would))))));
  }
  parts.push(h(H, {}, 'Decision'));
  parts.push(t.decision ? decisionView(t.decision, dry) : h('p', {}, 'No decision recorded.'));
  if (Array.isArray(t.redecisions) && t.redecisions.length) {
    parts.push(h(H, {}, 'Re-decisions'));
    parts.push(
      h(
        'ol',
        {},
        t.redecisions.map((r) =>
          h('li', {}, `${fmtTime(r.at)}: ${r.previous_outcome} → ${r.outcome}`, r.asset_id ? ` (asset ${r.asset_id})` : '', r.decision?.reason ? ` — ${r.decision.reason}` : ''),
        ),
      ),
    );
  }
  if (t.first) {
    parts.push(h('details', { class: 'trace-first' }, h('summary', {}, 'First decision'), traceView(t.first, { nested: true })));
  }
  const rest = Object.fromEntries(Object.entries(t).filter(([k]) => !KNOWN_TRACE_KEYS.has(k)));
  if (Object.keys(rest).length) {
    parts.push(h('details', {}, h('summary', {}, 'Other trace parts'), h('pre', { class: 'json', role: 'region', tabindex: '0', 'aria-label': 'Other trace parts' }, pretty(rest))));
  }
  return h('div', { class: 'trace' }, parts);
}

// ---------------------------------------------------------------------------
// Line diff (LCS) of two texts

/** Lines of a and b as [{op: ' '|'-'|'+', line}], by longest common subsequence. */
export function lineDiff(a, b) {
  const x = a.split('\n');
  const y = b.split('\n');
  const n = x.length;
  const m = y.length;
  // lcs[i][j] = LCS length of x[i..] and y[j..]
  const lcs = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      out.push({ op: ' ', line: x[i] });
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
      out.push({ op: '-', line: x[i++] });
    } else {
      out.push({ op: '+', line: y[j++] });
    }
  }
  while (i < n) out.push({ op: '-', line: x[i++] });
  while (j < m) out.push({ op: '+', line: y[j++] });
  return out;
}

/** JSON with object keys sorted, so that a diff shows changes, not reordering. */
function stable(v) {
  if (Array.isArray(v)) return v.map(stable);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, stable(v[k])]),
    );
  }
  return v;
}

function diffView(from, to) {
  const a = pretty(stable(from));
  const b = pretty(stable(to));
  const lines = lineDiff(a, b);
  const added = lines.filter((l) => l.op === '+').length;
  const removed = lines.filter((l) => l.op === '-').length;
  const cls = { ' ': 'diff-same', '-': 'diff-del', '+': 'diff-add' };
  const sr = { ' ': '', '-': 'removed: ', '+': 'added: ' };
  return h(
    'div',
    { class: 'diff-wrap' },
    h('p', { role: 'status' }, `Version ${from.version} → ${to.version}: ${added} line(s) added, ${removed} removed.`),
    h(
      'pre',
      { class: 'diff', role: 'region', tabindex: '0', 'aria-label': `Diff of version ${from.version} and version ${to.version}` },
      lines.map((l) =>
        h('span', { class: `diff-line ${cls[l.op]}` }, h('span', { class: 'visually-hidden' }, sr[l.op]), `${l.op === ' ' ? ' ' : l.op === '-' ? '−' : '+'} ${l.line}\n`),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------
// The page

const SAMPLE_EVENT = () => ({
  specversion: '1.0',
  id: `dry-run-${Date.now()}`,
  source: 'tdl://bedford/analytics',
  type: 'tdl.alert',
  time: new Date().toISOString(),
  subject: 'BEDFORD.PUMPING.MX101.BRG_TEMP',
  data: {
    state: 'raised',
    code: 'HIGH_TEMPERATURE',
    severity: 'major',
    message: 'Bearing temperature above alarm limit',
    value: 92.1,
    threshold: 85,
    unit: 'degC',
  },
});

/** Parses a JSON textarea; throws a problem-shaped error naming the field. */
function parseJson(text, name, { optional = false } = {}) {
  if (optional && !text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    const err = new Error(e.message);
    err.title = `${name} is not valid JSON`;
    throw err;
  }
}

async function versionsPanel(rule, panel) {
  put(panel, h('p', { role: 'status', class: 'loading' }, 'Loading versions…'));
  let versions;
  try {
    versions = await api(`/v1/rules/${encodeURIComponent(rule.id)}/versions`);
  } catch (err) {
    put(panel, problemBox(err));
    return;
  }
  versions.sort((a, b) => a.version - b.version);
  const byVersion = new Map(versions.map((v) => [String(v.version), v]));
  const opts = versions.map((v) => ({ value: String(v.version), label: `v${v.version} — ${fmtTime(v.created_at)}` }));
  const last = versions[versions.length - 1];
  const prev = versions.length > 1 ? versions[versions.length - 2] : last;
  const out = h('div', { class: 'diff-out' });
  const form = h(
    'form',
    {
      class: 'inline-form',
      'aria-label': `Compare versions of ${rule.name}`,
      'on:submit': (e) => {
        e.preventDefault();
        const f = formData(form);
        put(out, diffView(byVersion.get(f.from), byVersion.get(f.to)));
      },
    },
    field({ label: 'From version', name: 'from', options: opts, value: String(prev.version) }),
    field({ label: 'To version', name: 'to', options: opts, value: String(last.version) }),
    h('button', { type: 'submit' }, 'Show diff'),
  );
  put(panel, 
    h('h3', { id: 'versions-heading', tabindex: '-1' }, `Versions of ${rule.name}`),
    tableRegion({
      caption: `${versions.length} version(s)`,
      columns: [
        { label: 'Version', cell: (v) => `v${v.version}` },
        { label: 'Created', cell: (v) => fmtTime(v.created_at) },
        { label: 'Mode', cell: (v) => v.mode },
        { label: 'Enabled', cell: (v) => (v.enabled ? 'yes' : 'no') },
        { label: 'Position', cell: (v) => String(v.position) },
      ],
      rows: versions,
    }),
    form,
    out,
  );
  put(out, diffView(byVersion.get(String(prev.version)), last));
  panel.querySelector('#versions-heading').focus();
}

function dryRunSection(ctx) {
  const result = h('div', { class: 'result', 'aria-live': 'polite' });
  if (!can(ctx.me, 'planner')) {
    return h('section', { 'aria-labelledby': 'dry-run-h' }, h('h2', { id: 'dry-run-h' }, 'Dry run'), h('p', {}, 'A planner or admin key is needed for a dry run.'));
  }
  const form = h(
    'form',
    {
      'aria-labelledby': 'dry-run-h',
      'on:submit': async (e) => {
        e.preventDefault();
        const f = formData(form);
        let body;
        try {
          body = { event: parseJson(f.event, 'Event') };
          const rules = parseJson(f.rules, 'Proposed rules', { optional: true });
          if (rules !== undefined) body.rules = rules;
        } catch (err) {
          put(result, problemBox(err));
          return;
        }
        put(result, h('p', { role: 'status', class: 'loading' }, 'Running…'));
        try {
          const r = await api('/v1/rules/test', { method: 'POST', body });
          put(result, dryRunView(r));
        } catch (err) {
          put(result, problemBox(err));
        }
      },
    },
    field({ label: 'Event (CloudEvent JSON)', name: 'event', type: 'textarea', value: pretty(SAMPLE_EVENT()), attrs: { rows: '14', spellcheck: 'false', class: 'code' } }),
    field({
      label: 'Proposed rules (optional JSON array, as for POST /v1/rules)',
      name: 'rules',
      type: 'textarea',
      value: '',
      attrs: { rows: '4', spellcheck: 'false', class: 'code' },
      hint: 'Empty: the stored rules.',
    }),
    h('button', { type: 'submit', class: 'primary' }, 'Run dry run'),
  );
  return h('section', { 'aria-labelledby': 'dry-run-h', class: 'dry-run' }, h('h2', { id: 'dry-run-h' }, 'Dry run'), form, result);
}

function dryRunView(r) {
  const wc = r.would_create;
  return h(
    'div',
    { class: 'dry-run-result' },
    h('h3', {}, 'Result'),
    h(
      'dl',
      { class: 'kv' },
      h('dt', {}, 'Outcome'),
      h('dd', {}, h('strong', { class: 'dry-outcome' }, r.outcome)),
      h('dt', {}, 'Asset'),
      h('dd', {}, r.asset_id ?? '—'),
      h('dt', {}, 'Rule'),
      h('dd', {}, r.rule_id ? `${(r.trace?.rules || []).find((t) => t.rule_id === r.rule_id)?.rule ?? r.rule_id} v${r.rule_version ?? '?'}` : '—'),
      r.work_order_id ? [h('dt', {}, 'Open order'), h('dd', {}, h('a', { href: `#/orders/${encodeURIComponent(r.work_order_id)}` }, r.work_order_id))] : null,
    ),
    wc
      ? h(
          'div',
          {},
          h('h4', {}, 'Would create'),
          h(
            'dl',
            { class: 'kv' },
            h('dt', {}, 'Title'),
            h('dd', { class: 'plant-text' }, wc.title),
            h('dt', {}, 'Connector'),
            h('dd', {}, wc.connector),
            h('dt', {}, 'Work type'),
            h('dd', {}, wc.work_type),
            h('dt', {}, 'Priority'),
            h('dd', {}, String(wc.priority)),
            h('dt', {}, 'Dedup key'),
            h('dd', {}, h('code', {}, wc.dedup_key)),
            h('dt', {}, 'Due by'),
            h('dd', {}, fmtTime(wc.due_by)),
            h('dt', {}, 'Description'),
            h('dd', { class: 'plant-text' }, wc.description),
          ),
        )
      : null,
    h('h3', {}, 'Trace'),
    traceView(r.trace, { dry: true }),
  );
}

function tallyTable(report) {
  const a = report.actual;
  const p = report.proposed;
  const outcomes = [...new Set([...Object.keys(a.outcomes || {}), ...Object.keys(p.outcomes || {})])].sort();
  const rows = [
    { label: 'Orders opened', a: a.orders, p: p.orders },
    { label: 'Accepted', a: a.accepted, p: p.accepted },
    { label: 'Rejected', a: a.rejected, p: p.rejected },
    { label: 'Undecided', a: a.undecided, p: p.undecided },
    { label: 'Precision', a: fmtPct(a.precision), p: fmtPct(p.precision) },
    ...outcomes.map((o) => ({ label: `Events ${o}`, a: a.outcomes?.[o] ?? 0, p: p.outcomes?.[o] ?? 0 })),
  ];
  return tableRegion({
    caption: 'Stored decisions against the rules tested',
    columns: [
      { label: 'Figure', cell: (r) => r.label },
      { label: 'Actual', cell: (r) => String(r.a) },
      { label: 'With these rules', cell: (r) => String(r.p) },
      {
        label: 'Change',
        cell: (r) => (typeof r.a === 'number' && typeof r.p === 'number' && r.a !== r.p ? h('strong', {}, `${r.p - r.a > 0 ? '+' : ''}${r.p - r.a}`) : ''),
      },
    ],
    rows,
  });
}

function backtestView(report) {
  return h(
    'div',
    { class: 'backtest-result' },
    h(
      'p',
      { role: 'status' },
      `${report.events} event(s) from ${fmtTime(report.since)} to ${fmtTime(report.until)}; ${report.changes.length} would change outcome.`,
    ),
    report.truncated ? h('p', { class: 'warning' }, 'The range held more events than the replay limit: the figures cover the first ones only.') : null,
    tallyTable(report),
    tableRegion({
      caption: `Events whose outcome would change${report.changes.length >= 200 ? ' (first 200)' : ''}`,
      columns: [
        { label: 'Event', cell: (c) => h('code', {}, c.event_id) },
        { label: 'Actual', cell: (c) => c.actual },
        { label: 'With these rules', cell: (c) => h('strong', {}, c.proposed) },
      ],
      rows: report.changes,
      empty: 'No event would change.',
    }),
    tableRegion({
      caption: `Simulated orders${report.orders.length >= 200 ? ' (first 200)' : ''}`,
      columns: [
        { label: 'Rule', cell: (o) => o.rule },
        { label: 'Asset', cell: (o) => o.asset_id },
        { label: 'Title', cell: (o) => h('span', { class: 'plant-text' }, o.title) },
        { label: 'First event', cell: (o) => fmtTime(o.first_event_time) },
        { label: 'Events', cell: (o) => String(o.events) },
        { label: 'Verdict', cell: (o) => o.verdict },
        { label: 'Real orders', cell: (o) => (o.real_orders.length ? o.real_orders.map((id, i) => [i ? ', ' : '', h('a', { href: `#/orders/${encodeURIComponent(id)}` }, id)]) : '—') },
      ],
      rows: report.orders,
      empty: 'No order would be opened.',
    }),
  );
}

function backtestSection(ctx) {
  if (!can(ctx.me, 'planner')) {
    return h('section', { 'aria-labelledby': 'backtest-h' }, h('h2', { id: 'backtest-h' }, 'Backtest'), h('p', {}, 'A planner or admin key is needed for a backtest.'));
  }
  const result = h('div', { class: 'result', 'aria-live': 'polite' });
  const now = new Date();
  const weekAgo = new Date(now.getTime() - 7 * 86400 * 1000);
  const form = h(
    'form',
    {
      'aria-labelledby': 'backtest-h',
      'on:submit': async (e) => {
        e.preventDefault();
        const f = formData(form);
        const body = { since: fromLocalInput(f.since), until: fromLocalInput(f.until) };
        try {
          const rules = parseJson(f.rules, 'Proposed rules', { optional: true });
          if (rules !== undefined) body.rules = rules;
        } catch (err) {
          put(result, problemBox(err));
          return;
        }
        put(result, h('p', { role: 'status', class: 'loading' }, 'Replaying…'));
        try {
          put(result, backtestView(await api('/v1/rules/backtest', { method: 'POST', body })));
        } catch (err) {
          put(result, problemBox(err));
        }
      },
    },
    h(
      'div',
      { class: 'inline-form' },
      field({ label: 'Since', name: 'since', type: 'datetime-local', value: toLocalInput(weekAgo), required: true }),
      field({ label: 'Until', name: 'until', type: 'datetime-local', value: toLocalInput(new Date(now.getTime() + 60000)), required: true }),
    ),
    field({
      label: 'Proposed rules (optional JSON array, as for POST /v1/rules)',
      name: 'rules',
      type: 'textarea',
      value: '',
      attrs: { rows: '4', spellcheck: 'false', class: 'code' },
      hint: 'Empty: today\u2019s rules against the stored decisions.',
    }),
    h('button', { type: 'submit', class: 'primary' }, 'Run backtest'),
  );
  return h('section', { 'aria-labelledby': 'backtest-h', class: 'backtest' }, h('h2', { id: 'backtest-h' }, 'Backtest'), form, result);
}

export async function render(main, ctx) {
  const current = renderGuard(main, 'rules', ctx);
  loading(main, 'Loading rules…');
  let rules;
  try {
    rules = await api('/v1/rules');
  } catch (err) {
    if (current()) put(main, h('h1', {}, 'Rules'), problemBox(err));
    return;
  }
  if (!current()) return;
  rules.sort((a, b) => a.position - b.position || a.name.localeCompare(b.name));
  const panel = h('div', { class: 'versions-panel' });
  put(main, 
    h('h1', {}, 'Rules'),
    h(
      'section',
      { 'aria-labelledby': 'rules-h' },
      h('h2', { id: 'rules-h' }, 'Rules and versions'),
      tableRegion({
        caption: `${rules.length} rule(s), in evaluation order`,
        columns: [
          { label: 'Position', cell: (r) => String(r.position) },
          { label: 'Name', cell: (r) => h('strong', {}, r.name) },
          { label: 'Mode', cell: (r) => statusBadge(r.mode) },
          { label: 'Enabled', cell: (r) => (r.enabled ? 'yes' : 'no') },
          { label: 'Action', cell: (r) => (r.action?.kind === 'create' ? `create via ${r.action.connector}` : r.action?.kind ?? '—') },
          { label: 'Version', cell: (r) => `v${r.version}` },
          { label: 'Updated', cell: (r) => fmtTime(r.updated_at) },
          {
            label: 'Versions',
            cell: (r) =>
              h('button', { type: 'button', 'aria-label': `Versions of ${r.name}`, 'on:click': () => versionsPanel(r, panel) }, `Versions (${r.version})`),
          },
        ],
        rows: rules,
        empty: 'No rules yet.',
      }),
      panel,
    ),
    dryRunSection(ctx),
    backtestSection(ctx),
  );
  const pick = ctx.query?.get('rule');
  const chosen = pick && rules.find((r) => r.id === pick || r.name === pick);
  if (chosen) versionsPanel(chosen, panel);
}
