// The review queue: open proposals (orders opened by rules in review mode)
// with the evidence a planner needs (events and their values against
// thresholds, the asset and its criticality, the rule and its trace);
// approve, reject with a reason, bulk actions and keyboard shortcuts.

import { api, h, problemBox, toast, fmtTime, can, loading, field, formData, statusBadge } from '../lib.js';
import { eventsTable, traceView, toLocalInput, fromLocalInput, put, renderGuard } from './rules.js';

const LIMIT = 20;

// The page's keydown listener, removed when the page renders again or is left.
let keyHandler = null;
// The proposal to focus after an action's refresh (the page is built anew).
let focusAfterRefresh = null;

function dropKeyHandler() {
  if (keyHandler) document.removeEventListener('keydown', keyHandler);
  keyHandler = null;
}

/** True when a key press belongs to a text control (no shortcut then). */
function typing(target) {
  if (!target || !(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  const el = target.closest('input, textarea, select');
  if (!el) return false;
  if (el.tagName === 'INPUT') return !['checkbox', 'radio', 'button', 'submit', 'reset'].includes(el.type);
  return true;
}

function isoToLocal(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : toLocalInput(d);
}

function hashWith(query, changes) {
  const q = new URLSearchParams(query);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === '') q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return `#/review${s ? `?${s}` : ''}`;
}

function filtersForm(ctx, rules) {
  const q = ctx.query;
  const form = h(
    'form',
    {
      class: 'filters',
      'aria-label': 'Filter proposals',
      'on:submit': (e) => {
        e.preventDefault();
        const f = formData(form);
        location.hash = hashWith(new URLSearchParams(), {
          site: f.site.trim(),
          asset: f.asset.trim(),
          rule: f.rule,
          since: fromLocalInput(f.since),
          until: fromLocalInput(f.until),
        });
      },
    },
    field({ label: 'Site', name: 'site', value: q.get('site') ?? '' }),
    field({ label: 'Asset', name: 'asset', value: q.get('asset') ?? '' }),
    field({
      label: 'Rule',
      name: 'rule',
      value: q.get('rule') ?? '',
      options: [{ value: '', label: 'All rules' }, ...rules.map((r) => ({ value: r.id, label: `${r.name} (${r.mode})` }))],
    }),
    field({ label: 'Proposed since', name: 'since', type: 'datetime-local', value: isoToLocal(q.get('since')) }),
    field({ label: 'Proposed until', name: 'until', type: 'datetime-local', value: isoToLocal(q.get('until')) }),
    h('div', { class: 'filter-actions' }, h('button', { type: 'submit' }, 'Apply filters'), h('a', { href: '#/review', class: 'button-link' }, 'Clear')),
  );
  return form;
}

function shortcutsHelp(planner) {
  const keys = [
    ['j', 'next proposal'],
    ['k', 'previous proposal'],
    ...(planner
      ? [
          ['a', 'approve the current proposal'],
          ['r', 'reject the current proposal (asks for a reason)'],
          ['x', 'select or unselect the current proposal'],
        ]
      : []),
  ];
  return h(
    'section',
    { class: 'shortcuts', 'aria-labelledby': 'shortcuts-h' },
    h('h2', { id: 'shortcuts-h' }, 'Keyboard shortcuts'),
    h('ul', {}, keys.map(([k, what]) => h('li', {}, h('kbd', {}, k), ` ${what}`))),
    h('p', { class: 'hint' }, 'Shortcuts do not apply while typing in a field.'),
  );
}

function assetView(asset, assetId) {
  if (!assetId) return h('p', {}, 'No asset.');
  if (!asset) return h('p', {}, h('code', {}, assetId), ' (not in the registry)');
  return h(
    'dl',
    { class: 'kv' },
    h('dt', {}, 'Id'),
    h('dd', {}, h('code', {}, asset.id), ` ${asset.name}`),
    h('dt', {}, 'Class'),
    h('dd', {}, asset.class),
    h('dt', {}, 'Criticality'),
    h('dd', {}, asset.criticality ? h('strong', { class: `crit crit-${asset.criticality}` }, asset.criticality) : '—'),
    h('dt', {}, 'Site'),
    h('dd', {}, asset.site),
    asset.parent ? [h('dt', {}, 'Parent'), h('dd', {}, asset.parent)] : null,
  );
}

function ruleView(order, rule) {
  const matched = (order.trace?.rules || []).find((r) => r.rule_id === order.rule_id && r.matched);
  const w = rule?.when || {};
  const conds = [];
  if (w.types?.length) conds.push(`types ${w.types.join(', ')}`);
  if (w.min_severity) conds.push(`severity at least ${w.min_severity}`);
  if (w.tags?.length) conds.push(`tags ${w.tags.join(', ')}`);
  if (w.codes?.length) conds.push(`codes ${w.codes.join(', ')}`);
  if (w.criticality?.length) conds.push(`criticality ${w.criticality.join(', ')}`);
  if (w.sites?.length) conds.push(`sites ${w.sites.join(', ')}`);
  if (w.asset_classes?.length) conds.push(`classes ${w.asset_classes.join(', ')}`);
  return h(
    'dl',
    { class: 'kv' },
    h('dt', {}, 'Name'),
    h(
      'dd',
      {},
      h('a', { href: `#/rules?rule=${encodeURIComponent(order.rule_id)}` }, rule ? rule.name : order.rule_id),
      ` v${order.rule_version}`,
      rule && rule.version !== order.rule_version ? ` (now v${rule.version})` : '',
    ),
    h('dt', {}, 'When'),
    h('dd', {}, conds.length ? conds.join('; ') : 'any event'),
    w.condition ? [h('dt', {}, 'Condition'), h('dd', {}, h('code', {}, w.condition))] : null,
    h('dt', {}, 'Why it matched'),
    h('dd', {}, matched ? matched.reason : order.trace?.decision?.reason ?? '—'),
  );
}

export async function render(main, ctx) {
  dropKeyHandler();
  const live = renderGuard(main, 'review', ctx);
  loading(main, 'Loading proposals…');
  const q = ctx.query ?? new URLSearchParams();
  const planner = can(ctx.me, 'planner');
  const offset = Math.max(0, Number(q.get('offset')) || 0);
  const query = { site: q.get('site'), asset: q.get('asset'), rule: q.get('rule'), since: q.get('since'), until: q.get('until'), limit: LIMIT, offset };
  let page;
  let rules = [];
  try {
    [page, rules] = await Promise.all([api('/v1/proposals', { query }), api('/v1/rules').catch(() => [])]);
  } catch (err) {
    if (live()) put(main, h('h1', {}, 'Review queue'), filtersForm(ctx, rules), problemBox(err));
    return;
  }
  if (!live()) return;
  if (!page.items.length && offset > 0 && page.total > 0) {
    // Past the end (the last page was just decided): show the last page there is.
    location.hash = hashWith(q, { offset: Math.floor((page.total - 1) / LIMIT) * LIMIT || null });
    return;
  }
  const rulesById = new Map(rules.map((r) => [r.id, r]));
  const items = page.items;
  const selected = new Set();
  let current = items.length ? 0 : -1;

  const counter = h('span', { class: 'sel-count', role: 'status' }, '0 selected');
  const articles = [];
  const boxes = [];
  const rejectOpeners = [];
  const commentOf = new Map();

  function updateSelection() {
    counter.textContent = `${selected.size} selected`;
    boxes.forEach((b, i) => {
      b.checked = selected.has(items[i].id);
      articles[i].classList.toggle('selected', b.checked);
    });
    if (allBox) {
      allBox.checked = items.length > 0 && selected.size === items.length;
      allBox.indeterminate = selected.size > 0 && selected.size < items.length;
    }
  }

  function setCurrent(i, focus = true) {
    if (!items.length) return;
    current = Math.max(0, Math.min(items.length - 1, i));
    articles.forEach((a, j) => {
      a.classList.toggle('current', j === current);
      if (j === current) a.setAttribute('aria-current', 'true');
      else a.removeAttribute('aria-current');
    });
    if (focus) {
      articles[current].focus();
      articles[current].scrollIntoView({ block: 'nearest' });
    }
  }

  // Runs an action; on success a toast (`what`, or what(result)) and a refresh.
  async function act(what, fn, box) {
    let res;
    try {
      res = await fn();
    } catch (err) {
      toast(err.message || String(err), 'error');
      if (box) put(box, problemBox(err));
      return false;
    }
    toast(typeof what === 'function' ? what(res) : what);
    focusAfterRefresh = current;
    ctx.refresh();
    return true;
  }

  // An approval's comment is optional: it goes into the order's history and the audit trail.
  const approve = (o, box, comment = '') =>
    act(
      `Approved ${o.id}: it goes to the EAM.`,
      () => api(`/v1/work-orders/${encodeURIComponent(o.id)}/approve`, { method: 'POST', body: comment.trim() ? { comment: comment.trim() } : undefined }),
      box,
    );
  const reject = (o, reason, box) =>
    act(`Rejected ${o.id}.`, () => api(`/v1/work-orders/${encodeURIComponent(o.id)}/reject`, { method: 'POST', body: { reason } }), box);

  function bulkSummary(verb, res) {
    const ok = res.results.filter((r) => r.status).length;
    const bad = res.results.filter((r) => r.error);
    return `${verb} ${ok} of ${res.results.length}.${bad.length ? ` Failed: ${bad.map((r) => `${r.id} (${r.error.detail || r.error.title})`).join('; ')}` : ''}`;
  }

  // --- one proposal
  function proposalCard(o, i) {
    const titleId = `prop-${i}-title`;
    const evidence = h('div', { class: 'evidence' }, h('p', { role: 'status', class: 'loading' }, 'Loading evidence…'));
    const actionBox = h('div', { class: 'action-problem' });
    let actions = null;
    if (planner) {
      const box = h('input', {
        type: 'checkbox',
        id: `prop-${i}-sel`,
        'on:change': () => {
          if (box.checked) selected.add(o.id);
          else selected.delete(o.id);
          updateSelection();
        },
      });
      boxes.push(box);
      const reasonId = `prop-${i}-reason`;
      const rejectForm = h(
        'form',
        {
          class: 'reject-form',
          hidden: true,
          'aria-label': `Reject ${o.id}`,
          'on:submit': async (e) => {
            e.preventDefault();
            const reason = rejectForm.elements.reason.value.trim();
            if (!reason) {
              rejectForm.elements.reason.setAttribute('aria-invalid', 'true');
              rejectForm.elements.reason.focus();
              return;
            }
            await reject(o, reason, actionBox);
          },
        },
        h('label', { for: reasonId }, 'Reason for rejecting (required)'),
        h('textarea', { id: reasonId, name: 'reason', required: true, rows: '2', maxlength: '1000' }),
        h(
          'div',
          { class: 'actions' },
          h('button', { type: 'submit', class: 'danger' }, 'Reject proposal'),
          h(
            'button',
            {
              type: 'button',
              'on:click': () => {
                rejectForm.hidden = true;
                rejectBtn.focus();
              },
            },
            'Cancel',
          ),
        ),
      );
      const openReject = () => {
        rejectForm.hidden = false;
        rejectForm.elements.reason.focus();
      };
      rejectOpeners.push(openReject);
      const approveComment = h('input', { type: 'text', id: `prop-${i}-comment`, name: 'comment', maxlength: '1000', autocomplete: 'off' });
      commentOf.set(o.id, approveComment);
      const rejectBtn = h('button', { type: 'button', class: 'danger', 'aria-label': `Reject ${o.id}`, 'on:click': openReject }, 'Reject…');
      actions = h(
        'div',
        { class: 'proposal-actions' },
        h('div', { class: 'select' }, box, h('label', { for: `prop-${i}-sel` }, 'Select')),
        h('label', { for: `prop-${i}-comment`, class: 'approve-comment' }, 'Approval comment (optional)'),
        approveComment,
        h('button', { type: 'button', class: 'primary approve', 'aria-label': `Approve ${o.id}`, 'on:click': () => approve(o, actionBox, approveComment.value) }, 'Approve'),
        rejectBtn,
        rejectForm,
        actionBox,
      );
    }
    const art = h(
      'article',
      {
        class: 'proposal',
        tabindex: '-1',
        'aria-labelledby': titleId,
        dataset: { id: o.id },
        'on:focusin': () => {
          if (current !== i) setCurrent(i, false);
        },
      },
      h('h2', { id: titleId, class: 'plant-text' }, o.title),
      h(
        'p',
        { class: 'meta' },
        statusBadge(o.status),
        ' ',
        h('a', { href: `#/orders/${encodeURIComponent(o.id)}` }, o.id),
        ` · priority ${o.priority} · ${o.event_count} event(s) · proposed ${fmtTime(o.proposed_at || o.created_at)}`,
        o.expires_at ? ` · expires ${fmtTime(o.expires_at)}` : '',
        o.site ? ` · site ${o.site}` : '',
      ),
      actions,
      evidence,
    );
    articles.push(art);
    return { art, evidence };
  }

  // --- evidence, loaded after the list shows
  const assetCache = new Map();
  const assetOf = (id) => {
    if (!id) return Promise.resolve(null);
    if (!assetCache.has(id)) assetCache.set(id, api(`/v1/assets/${encodeURIComponent(id)}`).catch((e) => (e.status === 404 ? null : Promise.reject(e))));
    return assetCache.get(id);
  };
  async function loadEvidence(o, evidence) {
    try {
      const [detail, asset] = await Promise.all([api(`/v1/work-orders/${encodeURIComponent(o.id)}`), assetOf(o.asset_id)]);
      put(evidence, 
        h('div', { class: 'evidence-grid' }, h('div', {}, h('h3', {}, 'Asset'), assetView(asset, o.asset_id)), h('div', {}, h('h3', {}, 'Rule'), ruleView(o, rulesById.get(o.rule_id)))),
        eventsTable(detail.events, `Events (${detail.events.length})`),
        o.description ? h('details', {}, h('summary', {}, 'Description'), h('p', { class: 'plant-text pre-wrap' }, o.description)) : null,
        h('details', { class: 'trace-details' }, h('summary', {}, 'Decision trace'), traceView(o.trace)),
      );
    } catch (err) {
      put(evidence, problemBox(err));
    }
  }

  // --- bulk bar
  let allBox = null;
  let bulk = null;
  if (planner && items.length) {
    allBox = h('input', {
      type: 'checkbox',
      id: 'sel-all',
      'on:change': () => {
        if (allBox.checked) items.forEach((o) => selected.add(o.id));
        else selected.clear();
        updateSelection();
      },
    });
    const bulkReason = h('textarea', { id: 'bulk-reason', name: 'reason', rows: '1', maxlength: '1000' });
    const bulkBox = h('div', { class: 'action-problem' });
    const needSelection = () => {
      if (selected.size) return true;
      toast('Select one or more proposals first.', 'error');
      return false;
    };
    bulk = h(
      'section',
      { class: 'bulk-bar', 'aria-labelledby': 'bulk-h' },
      h('h2', { id: 'bulk-h', class: 'visually-hidden' }, 'Bulk actions'),
      h('div', { class: 'select' }, allBox, h('label', { for: 'sel-all' }, 'Select all on this page')),
      counter,
      h(
        'button',
        {
          type: 'button',
          class: 'primary',
          'on:click': async () => {
            if (!needSelection()) return;
            await act((res) => bulkSummary('Approved', res), () => api('/v1/proposals/approve', { method: 'POST', body: { ids: [...selected] } }), bulkBox);
          },
        },
        'Approve selected',
      ),
      h('div', { class: 'field' }, h('label', { for: 'bulk-reason' }, 'Reason for rejecting the selected'), bulkReason),
      h(
        'button',
        {
          type: 'button',
          class: 'danger',
          'on:click': async () => {
            if (!needSelection()) return;
            const reason = bulkReason.value.trim();
            if (!reason) {
              bulkReason.setAttribute('aria-invalid', 'true');
              bulkReason.focus();
              toast('A reason is required to reject.', 'error');
              return;
            }
            await act((res) => bulkSummary('Rejected', res), () => api('/v1/proposals/reject', { method: 'POST', body: { ids: [...selected], reason } }), bulkBox);
          },
        },
        'Reject selected',
      ),
      bulkBox,
    );
  }

  const cards = items.map(proposalCard);
  const from = page.total ? offset + 1 : 0;
  const to = offset + items.length;
  const pager = h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages of proposals' },
    offset > 0 ? h('a', { href: hashWith(q, { offset: Math.max(0, offset - LIMIT) || null }) }, '← Previous') : null,
    h('span', {}, `${from}–${to} of ${page.total}`),
    to < page.total ? h('a', { href: hashWith(q, { offset: offset + LIMIT }) }, 'Next →') : null,
  );

  put(main, 
    h('h1', {}, 'Review queue'),
    h('p', { class: 'lead' }, `${page.total} open proposal(s), oldest first. Approved proposals go to the EAM; rejected ones count as false alarms for their rule.`),
    filtersForm(ctx, rules),
    shortcutsHelp(planner),
    bulk,
    items.length ? h('div', { class: 'proposals' }, cards.map((c) => c.art)) : h('p', { class: 'empty' }, 'No proposals waiting for review.'),
    pager,
  );
  const again = focusAfterRefresh;
  focusAfterRefresh = null;
  if (items.length) setCurrent(again ?? 0, again !== null);
  else if (again !== null) main.focus();
  cards.forEach((c, i) => loadEvidence(items[i], c.evidence));

  const root = main.firstChild;
  keyHandler = (e) => {
    if (!root.isConnected) {
      dropKeyHandler();
      return;
    }
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    if (typing(e.target) || document.querySelector('dialog[open]')) return;
    const o = items[current];
    switch (e.key) {
      case 'j':
        setCurrent(current + 1);
        break;
      case 'k':
        setCurrent(current - 1);
        break;
      case 'a':
        if (!planner || !o) return;
        approve(o, null, commentOf.get(o.id)?.value || '');
        break;
      case 'r':
        if (!planner || !o) return;
        setCurrent(current, false);
        rejectOpeners[current]();
        break;
      case 'x':
        if (!planner || !o) return;
        if (selected.has(o.id)) selected.delete(o.id);
        else selected.add(o.id);
        updateSelection();
        break;
      default:
        return;
    }
    e.preventDefault();
  };
  document.addEventListener('keydown', keyHandler);
}
