// One work order: its fields and EAM link, the events that opened or joined
// it, the decision trace, the status history as a timeline, deliveries,
// feedback and retry (planner and admin only; the API refuses them anyway).
import { api, show, can, confirmDialog, field, fmtDuration, fmtTime, formData, h, problemBox, statusBadge, table, toast } from '../lib.js';

function props(pairs) {
  return h(
    'dl',
    { class: 'props' },
    pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null || v === '' ? '—' : v)]),
  );
}

/** Only http(s) links from the EAM become links: never `javascript:`. */
function safeUrl(u) {
  try {
    const url = new URL(u);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

function traceView(trace) {
  if (!trace) return h('p', { class: 'muted' }, 'No trace.');
  const parts = [];
  if (trace.mapping) {
    parts.push(['Mapping', `asset ${trace.mapping.asset_id} by ${trace.mapping.by}${trace.mapping.detail ? ` (${trace.mapping.detail})` : ''}`]);
  } else {
    parts.push(['Mapping', 'not mapped to an asset']);
  }
  if (trace.rules?.length) {
    parts.push([
      'Rules',
      h(
        'ul',
        { class: 'trace-rules' },
        trace.rules.map((r) =>
          h('li', {}, h('strong', {}, `${r.rule} v${r.version}`), r.matched ? ' matched' : ' did not match', r.shadow ? ' (shadow)' : '', ': ', r.reason),
        ),
      ),
    ]);
  }
  if (trace.skipped_by_index) parts.push(['Skipped by index', String(trace.skipped_by_index)]);
  if (trace.decision) {
    const d = trace.decision;
    parts.push(['Decision', `${d.outcome}: ${d.reason}`]);
    if (d.priority !== null && d.priority !== undefined) parts.push(['Priority', String(d.priority)]);
    if (d.template_errors?.length) parts.push(['Template errors', d.template_errors.join('; ')]);
  }
  if (trace.shadow?.length) parts.push(['Shadow rules', trace.shadow.map((s) => `${s.rule} v${s.version} would ${JSON.stringify(s.would)}`).join('; ')]);
  if (trace.timer) parts.push(['Timer', `held ${trace.timer.held_for_minutes} min since ${fmtTime(trace.timer.held_since)}, fired ${fmtTime(trace.timer.fired_at)}`]);
  if (trace.episode) parts.push(['Episode', `${trace.episode.rule} (${trace.episode.dedup_key}): ${trace.episode.reason}`]);
  return h(
    'div',
    { class: 'trace' },
    props(parts),
    h('details', {}, h('summary', {}, 'The trace as JSON'), h('pre', {}, JSON.stringify(trace, null, 2))),
  );
}

function timeline(order) {
  const steps = [{ status: 'first event', at: order.first_event_time, source: 'plant', first: true }, ...order.history]
    .map((s) => ({ ...s, t: new Date(s.at).getTime() }))
    .sort((a, b) => a.t - b.t);
  return h(
    'ol',
    { class: 'timeline', 'aria-label': 'Status history' },
    steps.map((s, i) =>
      h(
        'li',
        {},
        i > 0 ? h('div', { class: 'gap' }, `after ${fmtDuration((s.t - steps[i - 1].t) / 1000)}`) : null,
        h(
          'div',
          {},
          s.first ? h('strong', {}, 'First event') : statusBadge(s.status),
          ' ',
          h('time', { datetime: s.at }, fmtTime(s.at)),
          ` · ${s.source}`,
          s.external_status ? ` · EAM status ${s.external_status}` : '',
          s.review ? ` · review: ${s.review}` : '',
          s.flag ? ` · ${s.flag}` : '',
        ),
        s.note ? h('div', { class: 'muted' }, s.note) : null,
      ),
    ),
  );
}

function eventsTable(events) {
  return table({
    caption: 'Events that opened or joined this order',
    columns: [
      { label: 'Received', cell: (e) => fmtTime(e.received_at) },
      { label: 'Tag', cell: (e) => e.subject || '—' },
      { label: 'State', cell: (e) => e.state },
      { label: 'Code', cell: (e) => e.code },
      { label: 'Severity', cell: (e) => e.severity },
      {
        label: 'Value',
        cell: (e) => {
          const d = e.cloudevent?.data || {};
          if (d.value === null || d.value === undefined) return '—';
          const unit = d.unit ? ` ${d.unit}` : '';
          return `${d.value}${unit}${d.threshold !== null && d.threshold !== undefined ? ` (threshold ${d.threshold}${unit})` : ''}`;
        },
      },
      { label: 'Message', cell: (e) => h('span', { class: 'event-message' }, e.cloudevent?.data?.message ?? '—') },
      { label: 'Outcome', cell: (e) => e.outcome },
      { label: 'Trace', cell: (e) => h('details', {}, h('summary', {}, 'Trace'), traceView(e.trace)) },
    ],
    rows: events,
    empty: 'No events.',
  });
}

function feedbackForm(order, ctx) {
  const form = h(
    'form',
    { class: 'feedback-form', 'aria-labelledby': 'h-feedback-form' },
    h('h3', { id: 'h-feedback-form' }, 'Give feedback'),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Was this order useful?'),
      h('label', {}, h('input', { type: 'radio', name: 'verdict', value: 'useful', required: true }), ' Useful'),
      ' ',
      h('label', {}, h('input', { type: 'radio', name: 'verdict', value: 'false_alarm' }), ' False alarm'),
    ),
    field({ label: 'Comment', name: 'comment', type: 'textarea' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Send feedback')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const data = formData(form);
    form.querySelector('.problem')?.remove();
    try {
      await api(`/v1/work-orders/${encodeURIComponent(order.id)}/feedback`, {
        method: 'POST',
        body: { verdict: data.verdict, author: ctx.me.name, comment: data.comment || null },
      });
      toast('Feedback recorded.');
      await ctx.refresh();
    } catch (err) {
      form.append(problemBox(err));
    }
  });
  return form;
}

export async function render(main, ctx) {
  const id = ctx.params[0];
  const [order, deliveries] = await Promise.all([
    api(`/v1/work-orders/${encodeURIComponent(id)}`),
    api('/v1/deliveries', { query: { work_order: id, limit: 100 } }).catch((e) => e),
  ]);
  const planner = can(ctx.me, 'planner');
  const eamUrl = order.external_url ? safeUrl(order.external_url) : null;
  const failed = order.status === 'failed' || (!(deliveries instanceof Error) && deliveries.items.some((d) => d.status === 'failed'));

  const retry =
    planner && failed
      ? h(
          'button',
          {
            type: 'button',
            class: 'primary',
            id: 'retry',
            'on:click': async (e) => {
              if (!(await confirmDialog(`Deliver ${order.id} to ${order.connector} again?`))) return;
              e.target.disabled = true;
              try {
                await api(`/v1/work-orders/${encodeURIComponent(order.id)}/retry`, { method: 'POST' });
                toast('Queued for delivery.');
                await ctx.refresh();
              } catch (err) {
                e.target.disabled = false;
                e.target.after(problemBox(err));
              }
            },
          },
          'Retry delivery',
        )
      : null;

  // The user may have moved on while this page loaded.
  if (ctx.current && !ctx.current()) return;
  show(
    main,
    h('p', {}, h('a', { href: '#/orders' }, '← Work orders')),
    h('h1', {}, order.title || order.id),
    h('p', {}, statusBadge(order.status), ` priority ${order.priority} · ${order.work_type} · `, h('code', { class: 'small' }, order.id)),
    order.last_error ? h('div', { class: 'problem', role: 'alert' }, h('strong', {}, 'Last delivery error'), h('p', {}, order.last_error)) : null,
    retry ? h('div', { class: 'actions' }, retry) : null,
    h(
      'div',
      { class: 'grid-2' },
      h(
        'section',
        { 'aria-labelledby': 'h-fields' },
        h('h2', { id: 'h-fields' }, 'Order'),
        props([
          ['Description', h('span', { class: 'pre-line' }, order.description)],
          ['Asset', order.asset_id],
          ['Site', order.site],
          ['Rule', `${order.trace?.rules?.find((r) => r.rule_id === order.rule_id)?.rule || order.rule_id} v${order.rule_version}`],
          ['Connector', order.connector],
          ['EAM id', order.external_id ? (eamUrl ? h('a', { href: eamUrl, target: '_blank', rel: 'noopener noreferrer' }, order.external_id) : order.external_id) : null],
          ['EAM site', order.external_site ?? undefined],
          ['Dedup key', h('code', {}, order.dedup_key)],
          ['Events', String(order.event_count)],
          ['First event', fmtTime(order.first_event_time)],
          ['Last event', fmtTime(order.last_event_time)],
          ['Created', fmtTime(order.created_at)],
          ['Delivered', fmtTime(order.delivered_at)],
          ['Due by', fmtTime(order.due_by)],
          ...(order.proposed_at ? [['Proposed', fmtTime(order.proposed_at)], ['Review', order.review ? `${order.review} ${fmtTime(order.reviewed_at)}` : 'waiting']] : []),
        ]),
      ),
      h('section', { 'aria-labelledby': 'h-history' }, h('h2', { id: 'h-history' }, 'Status history'), timeline(order)),
    ),
    h('section', { 'aria-labelledby': 'h-events' }, h('h2', { id: 'h-events' }, 'Events'), eventsTable(order.events)),
    h('section', { 'aria-labelledby': 'h-trace' }, h('h2', { id: 'h-trace' }, 'Decision trace'), traceView(order.trace)),
    h(
      'section',
      { 'aria-labelledby': 'h-deliveries' },
      h('h2', { id: 'h-deliveries' }, 'Deliveries'),
      deliveries instanceof Error
        ? problemBox(deliveries)
        : table({
            caption: 'Deliveries to the EAM',
            columns: [
              { label: 'Kind', cell: (d) => d.kind },
              { label: 'Status', cell: (d) => statusBadge(d.status) },
              { label: 'Attempts', class: 'num', cell: (d) => String(d.attempts) },
              { label: 'Next attempt', cell: (d) => (d.status === 'pending' ? fmtTime(d.next_attempt_at) : '—') },
              { label: 'Last error', cell: (d) => d.last_error || '—' },
              { label: 'Updated', cell: (d) => fmtTime(d.updated_at) },
            ],
            rows: deliveries.items,
            empty: 'No delivery (a proposal waits for review).',
          }),
    ),
    h(
      'section',
      { 'aria-labelledby': 'h-feedback' },
      h('h2', { id: 'h-feedback' }, 'Feedback'),
      table({
        caption: 'Feedback, oldest first',
        columns: [
          { label: 'When', cell: (f) => fmtTime(f.created_at) },
          { label: 'Verdict', cell: (f) => (f.verdict === 'false_alarm' ? 'false alarm' : f.verdict) },
          { label: 'By', cell: (f) => `${f.author} (${f.source})` },
          { label: 'Comment', cell: (f) => f.comment || '—' },
        ],
        rows: order.feedback,
        empty: 'No feedback yet.',
      }),
      planner ? feedbackForm(order, ctx) : null,
    ),
  );
}
