// Connectors: each connector with its health and circuit state (from
// /readyz, which shows them to any valid key) and the check button.

import { api, h, problemBox, toast, fmtTime, can, loading, ApiProblem } from '../lib.js';
import { put, tableRegion, renderGuard } from './rules.js';

/** /readyz answers 503 with the same body when a dependency is down. */
async function readiness() {
  try {
    return await api('/readyz');
  } catch (err) {
    if (err instanceof ApiProblem && err.status === 503 && err.body && typeof err.body === 'object') return err.body;
    throw err;
  }
}

function target(c) {
  const cfg = c.config || {};
  return cfg.base_url || cfg.url || cfg.instance_url || cfg.service_url || (cfg.kind === 'sandbox' ? 'inside workbridge' : '—');
}

function healthCell(hl) {
  if (!hl) return h('span', { class: 'badge' }, 'unknown');
  return h(
    'span',
    {},
    h('span', { class: `badge health-${hl.healthy ? 'ok' : 'bad'}` }, hl.healthy ? 'healthy' : 'unhealthy'),
    hl.failing ? h('span', { class: 'hint' }, ' last 3 deliveries failed') : null,
  );
}

export async function render(main, ctx) {
  const current = renderGuard(main, 'connectors', ctx);
  loading(main, 'Loading connectors…');
  let connectors;
  let ready;
  try {
    [connectors, ready] = await Promise.all([api('/v1/connectors'), readiness().catch((e) => ({ error: e }))]);
  } catch (err) {
    if (current()) put(main, h('h1', {}, 'Connectors'), problemBox(err));
    return;
  }
  if (!current()) return;
  const health = ready?.connectors || {};
  const admin = can(ctx.me, 'admin');
  const results = new Map();

  const columns = [
    { label: 'Name', cell: (c) => h('strong', {}, c.name) },
    { label: 'Kind', cell: (c) => c.config?.kind ?? '—' },
    { label: 'Sends to', cell: (c) => h('code', {}, target(c)) },
    { label: 'Enabled', cell: (c) => (c.enabled ? 'yes' : 'no') },
    { label: 'Health', cell: (c) => healthCell(health[c.name]) },
    {
      label: 'Circuit',
      cell: (c) => {
        const circuit = health[c.name]?.circuit;
        return circuit ? h('span', { class: `badge status-circuit-${circuit}` }, circuit.replace('_', '-')) : '—';
      },
    },
    { label: 'Webhook', cell: (c) => (c.webhook ? 'configured' : '—') },
    { label: 'Updated', cell: (c) => fmtTime(c.updated_at) },
  ];
  if (admin) {
    columns.push({
      label: 'Check',
      cell: (c) => {
        const out = h('div', { class: 'check-result', role: 'status' });
        results.set(c.name, out);
        const btn = h(
          'button',
          {
            type: 'button',
            'aria-label': `Check ${c.name}`,
            'on:click': async () => {
              btn.disabled = true;
              put(out, h('span', { class: 'loading' }, 'Checking…'));
              try {
                const r = await api(`/v1/connectors/${encodeURIComponent(c.name)}/check`, { method: 'POST' });
                put(out, 
                  h('span', { class: `badge check-${r.ok ? 'ok' : 'bad'}` }, r.ok ? 'OK' : 'Failed'),
                  ' ',
                  h('span', { class: 'check-detail' }, r.detail),
                  h('span', { class: 'hint' }, ` (${r.elapsed_ms} ms)`),
                );
                toast(`${c.name}: ${r.ok ? 'check passed' : 'check failed'}`, r.ok ? 'info' : 'error');
              } catch (err) {
                put(out, problemBox(err));
              } finally {
                btn.disabled = false;
              }
            },
          },
          'Check',
        );
        return h('div', { class: 'check-cell' }, btn, out);
      },
    });
  }

  put(main, 
    h('h1', {}, 'Connectors'),
    h('p', { class: 'lead' }, 'Health: the circuit breaker of this replica and whether the last three deliveries through the connector failed.'),
    ready?.error ? problemBox(ready.error) : null,
    ready && !ready.error
      ? h(
          'p',
          { class: 'readiness' },
          `Service ${ready.status}`,
          ready.outbox_pending != null ? ` · ${ready.outbox_pending} deliveries waiting for the EAM` : '',
          ready.unmapped_events != null ? [' · ', h('a', { href: '#/triage' }, `${ready.unmapped_events} unmapped events`)] : '',
        )
      : null,
    tableRegion({ caption: `${connectors.length} connector(s)`, columns, rows: connectors, empty: 'No connectors defined.' }),
    admin ? null : h('p', { class: 'hint' }, 'An admin key is needed to run a connector check.'),
  );
}
