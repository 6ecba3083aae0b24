// Overview: the KPIs of GET /v1/kpis for a range and a site, the weekly
// times to acknowledge and complete (GET /v1/kpis/timeseries with
// bucket=week: the API buckets them, in the viewer's zone, so the console
// needs no call per week), the open backlog by age and the rules ranked by
// precision (GET /v1/kpis/rules).
import uPlot from '../vendor/uplot/uPlot.esm.js';
import { api, show, field, fmtDuration, fmtPct, fmtTime, h, problemBox, table } from '../lib.js';

const DAY = 86400000;

/** YYYY-MM-DD of a date in the viewer's zone. */
function isoDay(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** Local midnight of a YYYY-MM-DD day. */
function dayStart(s) {
  const [y, m, d] = s.split('-').map(Number);
  return new Date(y, m - 1, d);
}

/** The range of the query: whole local days, `until` inclusive; default the last 28 days. */
export function rangeOf(query) {
  const today = new Date();
  const untilDay = /^\d{4}-\d{2}-\d{2}$/.test(query.get('until') || '') ? query.get('until') : isoDay(today);
  const sinceDay = /^\d{4}-\d{2}-\d{2}$/.test(query.get('since') || '')
    ? query.get('since')
    : isoDay(new Date(dayStart(untilDay).getTime() - 27 * DAY));
  const since = dayStart(sinceDay);
  const end = dayStart(untilDay);
  const until = new Date(end.getFullYear(), end.getMonth(), end.getDate() + 1);
  return { sinceDay, untilDay, since: since.toISOString(), until: until.toISOString() };
}

function card(kpi, label, value, sub) {
  return h(
    'div',
    { class: 'card', dataset: { kpi } },
    h('p', { class: 'label' }, label),
    h('p', { class: 'value' }, value),
    sub ? h('p', { class: 'sub' }, sub) : null,
  );
}

function p50p90(stats) {
  if (!stats || !stats.count) return ['—', 'no orders yet'];
  return [`${fmtDuration(stats.p50)} / ${fmtDuration(stats.p90)}`, `p50 / p90 over ${stats.count}`];
}

async function siteOptions() {
  try {
    const page = await api('/v1/assets', { query: { limit: 500 } });
    return [...new Set(page.items.map((a) => a.site))].sort();
  } catch {
    return [];
  }
}

/** "Under 1 day", "1 to 3 days", "28 days and over" for a bucket of kpis.backlog_by_age. */
function ageLabel(b) {
  if (b.min_days === 0) return `Under ${b.max_days} day${b.max_days === 1 ? '' : 's'}`;
  if (b.max_days == null) return `${b.min_days} days and over`;
  return `${b.min_days} to ${b.max_days} days`;
}

/** The unit that suits the largest duration of a chart. */
function unitFor(maxSeconds) {
  if (maxSeconds >= 2 * 86400) return { name: 'days', size: 86400 };
  if (maxSeconds >= 2 * 3600) return { name: 'hours', size: 3600 };
  if (maxSeconds >= 120) return { name: 'minutes', size: 60 };
  return { name: 'seconds', size: 1 };
}

function weeklyChart(title, points, pick, id) {
  const xs = points.map((p) => Math.floor(new Date(p.start).getTime() / 1000));
  const raw50 = points.map((p) => pick(p.kpis).p50 ?? null);
  const raw90 = points.map((p) => pick(p.kpis).p90 ?? null);
  const present = [...raw50, ...raw90].filter((v) => v !== null);
  const hasData = present.length > 0;
  const unit = unitFor(Math.max(0, ...present));
  const scaled = (vs) => vs.map((v) => (v === null ? null : v / unit.size));
  const box = h('figure', { class: 'chart', id, 'aria-labelledby': `${id}-title` }, h('h3', { id: `${id}-title` }, title));
  const data = table({
    caption: `${title}, per week`,
    columns: [
      { label: 'Week of', cell: (r) => fmtTime(r.start) },
      { label: 'p50', class: 'num', cell: (r) => fmtDuration(pick(r.kpis).p50) },
      { label: 'p90', class: 'num', cell: (r) => fmtDuration(pick(r.kpis).p90) },
      { label: 'Orders', class: 'num', cell: (r) => String(pick(r.kpis).count) },
    ],
    rows: points,
  });
  if (!hasData) box.append(h('p', { class: 'muted' }, 'No order reached this step in the range yet.'));
  box.append(h('details', { class: 'chart-data' }, h('summary', {}, 'Show the figures'), data));
  // Drawn once the figure is in the document, to know its width.
  box.draw = () => {
    if (!hasData) return;
    const width = Math.max(260, box.clientWidth - 24);
    const plot = new uPlot(
      {
        width,
        height: 220,
        scales: { x: { time: true, range: (u, min, max) => [min - 302400, max + 302400] }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] } },
        axes: [{}, { label: unit.name, size: 56, values: (u, ticks) => ticks.map((t) => `${+t.toFixed(2)}`) }],
        series: [
          { label: 'Week of' },
          { label: 'p50', stroke: '#0b5cad', width: 2, points: { show: true, size: 7 }, spanGaps: true },
          { label: 'p90', stroke: '#c2410c', width: 2, dash: [6, 4], points: { show: true, size: 7 }, spanGaps: true },
        ],
      },
      [xs, scaled(raw50), scaled(raw90)],
    );
    plot.root.setAttribute('role', 'img');
    plot.root.setAttribute('aria-label', `${title}: p50 and p90 in ${unit.name} per week; the figures are in the table below.`);
    box.insertBefore(plot.root, box.querySelector('details'));
  };
  return box;
}

export async function render(main, ctx) {
  const range = rangeOf(ctx.query);
  const site = ctx.query.get('site') || '';
  const base = { since: range.since, until: range.until, site: site || undefined };
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;

  const [sites, kpis, rules, series, ruleList] = await Promise.all([
    siteOptions(),
    api('/v1/kpis', { query: base }),
    api('/v1/kpis/rules', { query: base }),
    api('/v1/kpis/timeseries', { query: { ...base, bucket: 'week', tz } }).catch((e) => e),
    api('/v1/rules').catch(() => []),
  ]);
  const ruleName = new Map(ruleList.map((r) => [r.id, r.name]));

  const form = h(
    'form',
    { class: 'filters', 'aria-label': 'Range and site' },
    field({ label: 'From', name: 'since', type: 'date', value: range.sinceDay, required: true }),
    field({ label: 'To (inclusive)', name: 'until', type: 'date', value: range.untilDay, required: true }),
    field({
      label: 'Site',
      name: 'site',
      value: site,
      options: [{ value: '', label: 'All sites' }, ...[...new Set([...sites, ...(site ? [site] : [])])].map((s) => ({ value: s, label: s }))],
    }),
    h('button', { type: 'submit', class: 'primary' }, 'Show'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const k of ['since', 'until', 'site']) if (form.elements[k].value) q.set(k, form.elements[k].value);
    location.hash = `#/overview?${q}`;
  });

  const [ackValue, ackSub] = p50p90(kpis.time_to_acknowledge);
  const [doneValue, doneSub] = p50p90(kpis.time_to_complete);
  const [reviewValue, reviewSub] = p50p90(kpis.review.time_to_review);
  const cards = h(
    'div',
    { class: 'cards' },
    card('orders', 'Orders', String(kpis.orders), 'opened in range (approved proposals included)'),
    card('automation_rate', 'Automation rate', fmtPct(kpis.automation_rate), 'raised events that led to an order'),
    card('acceptance_rate', 'Acceptance rate', fmtPct(kpis.acceptance_rate), 'orders the planners took on'),
    card('approval_rate', 'Approval rate', fmtPct(kpis.review.approval_rate), `${kpis.review.approved} approved, ${kpis.review.rejected} rejected`),
    card('dedup_savings', 'Dedup savings', fmtPct(kpis.dedup_savings), 'events merged into an open order'),
    card('sla_compliance', 'SLA compliance', fmtPct(kpis.sla_compliance), 'completed by their due time'),
    card('time_to_acknowledge', 'Time to acknowledge', ackValue, ackSub),
    card('time_to_complete', 'Time to complete', doneValue, doneSub),
    card('backlog_open', 'Open backlog', String(kpis.backlog_open), kpis.backlog_oldest_age != null ? `oldest ${fmtDuration(kpis.backlog_oldest_age)}` : 'nothing open'),
    card('review_backlog', 'Waiting for review', String(kpis.review.backlog), `time to review ${reviewValue}${kpis.review.time_to_review.count ? ` (${reviewSub})` : ''}`),
    card('mapping_coverage', 'Mapping coverage', fmtPct(kpis.mapping_coverage), 'events mapped to an asset'),
  );

  const charts = [];
  let chartSection;
  if (series instanceof Error) {
    chartSection = problemBox(series);
  } else {
    charts.push(weeklyChart('Time to acknowledge', series, (k) => k.time_to_acknowledge, 'chart-ack'));
    charts.push(weeklyChart('Time to complete', series, (k) => k.time_to_complete, 'chart-complete'));
    chartSection = h('div', { class: 'grid-2' }, charts);
  }

  const ranked = [...rules].sort((a, b) => (b.precision ?? -1) - (a.precision ?? -1) || b.false_alarm - a.false_alarm);

  // The user may have moved on while this page loaded.
  if (ctx.current && !ctx.current()) return;
  show(
    main,
    h('h1', {}, 'Overview'),
    form,
    h(
      'p',
      { class: 'muted', id: 'range', dataset: { since: range.since, until: range.until, site } },
      `${fmtTime(range.since)} to ${fmtTime(range.until)}${site ? ` · site ${site}` : ' · all sites'}`,
    ),
    h('section', { 'aria-labelledby': 'h-figures' }, h('h2', { id: 'h-figures' }, 'Figures'), cards),
    h('section', { 'aria-labelledby': 'h-weekly' }, h('h2', { id: 'h-weekly' }, 'Per week'), chartSection),
    h(
      'div',
      { class: 'grid-2' },
      h(
        'section',
        { 'aria-labelledby': 'h-sla' },
        h('h2', { id: 'h-sla' }, 'SLA compliance per priority'),
        table({
          caption: 'Orders completed by their due time, per priority',
          columns: [
            { label: 'Priority', cell: (r) => String(r.priority) },
            { label: 'Met', class: 'num', cell: (r) => String(r.met) },
            { label: 'Missed', class: 'num', cell: (r) => String(r.missed) },
            { label: 'Compliance', class: 'num', cell: (r) => fmtPct(r.compliance) },
          ],
          rows: kpis.sla_by_priority,
          empty: 'No order completed or overdue in the range.',
        }),
      ),
      h(
        'section',
        { 'aria-labelledby': 'h-backlog' },
        h('h2', { id: 'h-backlog' }, 'Backlog by age'),
        table({
          caption: `Open orders in range by age since created (${kpis.backlog_open} open)`,
          columns: [
            { label: 'Age', cell: (b) => ageLabel(b) },
            { label: 'Orders', class: 'num', cell: (b) => String(b.orders) },
          ],
          rows: kpis.backlog_by_age,
        }),
      ),
    ),
    h(
      'section',
      { 'aria-labelledby': 'h-rules' },
      h('h2', { id: 'h-rules' }, 'Rules by precision'),
      table({
        caption: 'Each rule version, best precision first',
        columns: [
          { label: 'Rule', cell: (r) => h('a', { href: `#/orders?rule=${encodeURIComponent(r.rule_id)}` }, ruleName.get(r.rule_id) || r.rule_id) },
          { label: 'Version', class: 'num', cell: (r) => String(r.rule_version) },
          { label: 'Precision', class: 'num', cell: (r) => fmtPct(r.precision) },
          { label: 'Useful', class: 'num', cell: (r) => String(r.useful) },
          { label: 'False alarms', class: 'num', cell: (r) => String(r.false_alarm) },
          { label: 'Undecided', class: 'num', cell: (r) => String(r.undecided) },
          { label: 'Orders', class: 'num', cell: (r) => String(r.orders_created) },
          { label: 'Approval rate', class: 'num', cell: (r) => fmtPct(r.approval_rate) },
        ],
        rows: ranked,
        empty: 'No rule matched an event in the range.',
      }),
    ),
  );
  for (const c of charts) c.draw();
}
