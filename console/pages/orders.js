// Work orders: a filterable, paginated list (GET /v1/work-orders); the
// filters live in the hash (`#/orders?status=failed&offset=50`) so that a
// view can be linked and the back button works.
import { api, show, field, fmtTime, h, statusBadge, table } from '../lib.js';

const STATUSES = ['proposed', 'pending', 'created', 'acknowledged', 'in_progress', 'completed', 'closed', 'cancelled', 'rejected', 'failed', 'expired'];
const FILTERS = ['status', 'site', 'asset', 'rule', 'connector'];
export const PAGE_SIZE = 25;

function hashWith(query, changes) {
  const q = new URLSearchParams(query);
  for (const [k, v] of Object.entries(changes)) {
    if (v === '' || v === null || v === undefined || (k === 'offset' && Number(v) === 0)) q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return `#/orders${s ? `?${s}` : ''}`;
}

export async function render(main, ctx) {
  const q = ctx.query;
  const offset = Math.max(0, Number.parseInt(q.get('offset') || '0', 10) || 0);
  const filter = {};
  for (const k of FILTERS) if (q.get(k)) filter[k] = q.get(k);
  const [page, connectors, rules] = await Promise.all([
    api('/v1/work-orders', { query: { ...filter, limit: PAGE_SIZE, offset } }),
    api('/v1/connectors').catch(() => []),
    api('/v1/rules').catch(() => []),
  ]);
  const connectorNames = connectors.map((c) => c.name);
  const ruleName = new Map(rules.map((r) => [r.id, r.name]));

  const form = h(
    'form',
    { class: 'filters', 'aria-label': 'Filter work orders' },
    field({ label: 'Status', name: 'status', value: filter.status || '', options: [{ value: '', label: 'Any status' }, ...STATUSES] }),
    field({ label: 'Site', name: 'site', value: filter.site || '' }),
    field({ label: 'Asset', name: 'asset', value: filter.asset || '' }),
    rules.length
      ? field({
          label: 'Rule',
          name: 'rule',
          value: filter.rule || '',
          options: [{ value: '', label: 'Any rule' }, ...rules.map((r) => ({ value: r.id, label: r.name }))],
        })
      : field({ label: 'Rule', name: 'rule', value: filter.rule || '' }),
    connectorNames.length
      ? field({ label: 'Connector', name: 'connector', value: filter.connector || '', options: [{ value: '', label: 'Any connector' }, ...connectorNames] })
      : field({ label: 'Connector', name: 'connector', value: filter.connector || '' }),
    h('button', { type: 'submit', class: 'primary' }, 'Filter'),
    h('a', { href: '#/orders', class: 'button' }, 'Clear'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const changes = { offset: 0 };
    for (const k of FILTERS) changes[k] = form.elements[k].value.trim();
    location.hash = hashWith(new URLSearchParams(), changes);
  });

  const first = page.total === 0 ? 0 : offset + 1;
  const last = Math.min(offset + page.items.length, page.total);
  const pager = h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    offset > 0
      ? h('a', { href: hashWith(q, { offset: Math.max(0, offset - PAGE_SIZE) }), class: 'button', rel: 'prev' }, 'Previous')
      : null,
    h('span', { id: 'page-info', role: 'status' }, `${first}–${last} of ${page.total}`),
    offset + PAGE_SIZE < page.total ? h('a', { href: hashWith(q, { offset: offset + PAGE_SIZE }), class: 'button', rel: 'next' }, 'Next') : null,
  );

  // The user may have moved on while this page loaded.
  if (ctx.current && !ctx.current()) return;
  show(
    main,
    h('h1', {}, 'Work orders'),
    form,
    table({
      caption: 'Work orders, newest first',
      columns: [
        {
          label: 'Order',
          cell: (o) => [
            h('a', { href: `#/orders/${encodeURIComponent(o.id)}`, dataset: { id: o.id } }, o.title || o.id),
            h('br', {}),
            h('code', { class: 'muted small', title: o.id }, o.id),
          ],
        },
        { label: 'Status', cell: (o) => statusBadge(o.status) },
        { label: 'Priority', class: 'num', cell: (o) => String(o.priority) },
        { label: 'Asset', class: 'nowrap', cell: (o) => o.asset_id || '—' },
        { label: 'Site', cell: (o) => o.site || '—' },
        { label: 'Rule', cell: (o) => ruleName.get(o.rule_id) || o.rule_id },
        { label: 'EAM id', class: 'nowrap', cell: (o) => o.external_id || '—' },
        { label: 'Events', class: 'num', cell: (o) => String(o.event_count) },
        { label: 'First event', class: 'nowrap', cell: (o) => fmtTime(o.first_event_time) },
      ],
      rows: page.items,
      empty: 'No work order matches these filters.',
    }),
    pager,
  );
}
