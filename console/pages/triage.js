// Triage: unmapped events grouped by tag, fixed from the page (create the
// asset, add the tag to an asset, add a tag pattern) and re-decided with the
// job's progress; failed deliveries with retry; suppressions (maintenance
// windows) listed, created and ended.

import { api, h, problemBox, toast, fmtTime, can, loading, field, formData, confirmDialog } from '../lib.js';
import { toLocalInput, fromLocalInput, valueAgainstThreshold, put, add, tableRegion, renderGuard } from './rules.js';

const POLL_MS = 400;

/** A tag as a glob that matches exactly it (glob metacharacters as classes). */
export function globOfTag(tag) {
  return tag.replace(/[*?[\]{}]/g, (c) => `[${c}]`);
}

/** A regular expression that matches exactly the tag (anchored by the API). */
function regexOfTag(tag) {
  return tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function sectionShell(id, title, ...intro) {
  const body = h('div', { class: 'section-body' });
  const sec = h('section', { 'aria-labelledby': id, class: 'triage-section' }, h('h2', { id }, title), ...intro, body);
  return { sec, body };
}

function busy(el, text) {
  put(el, h('p', { role: 'status', class: 'loading' }, text));
}

// ---------------------------------------------------------------------------
// Unmapped events

function exampleView(ev) {
  const d = ev.cloudevent?.data || {};
  return h(
    'dl',
    { class: 'kv' },
    h('dt', {}, 'Example event'),
    h('dd', {}, h('code', {}, ev.event_id), ` from ${ev.source}`),
    h('dt', {}, 'Received'),
    h('dd', {}, fmtTime(ev.received_at)),
    h('dt', {}, 'Type'),
    h('dd', {}, `${ev.type} · ${ev.code} · ${ev.severity} · ${ev.state}`),
    h('dt', {}, 'Value'),
    h('dd', {}, valueAgainstThreshold(d)),
    h('dt', {}, 'Message'),
    h('dd', { class: 'plant-text' }, d.message ?? '—'),
    d.asset ? [h('dt', {}, 'Asset hint'), h('dd', {}, h('code', {}, d.asset.id), d.asset.site ? ` at ${d.asset.site}` : '')] : null,
  );
}

/** The job's progress, polled until it is done or failed (or the page is left). */
async function followJob(job, out, onDone) {
  const bar = h('progress', { max: String(Math.max(1, job.total)), value: String(job.processed), 'aria-labelledby': 'job-label' });
  const label = h('span', { id: 'job-label' }, '');
  const counts = h('p', { role: 'status', class: 'job-counts' }, '');
  put(out, h('div', { class: 'job' }, label, ' ', bar), counts);
  let j = job;
  for (;;) {
    label.textContent = `Re-decision ${j.state}: ${j.processed} of ${j.total} event(s)`;
    bar.max = Math.max(1, j.total);
    bar.value = j.processed;
    if (j.state === 'done' || j.state === 'failed') break;
    await new Promise((r) => setTimeout(r, POLL_MS));
    if (!out.isConnected) return;
    try {
      j = await api(`/v1/redecide-jobs/${encodeURIComponent(j.id)}`);
    } catch (err) {
      add(out, problemBox(err));
      return;
    }
  }
  counts.textContent = `Re-decision ${j.state}: ${j.total} selected, ${j.changed} changed, ${j.unchanged} unchanged, ${j.failed} failed.${j.error ? ` Error: ${j.error}` : ''}`;
  counts.classList.add(j.state === 'done' ? 'ok' : 'error');
  add(out, h('p', {}, 'Orders opened by the changed events: ', h('a', { href: '#/orders' }, 'work orders'), ' and ', h('a', { href: '#/review' }, 'review queue'), '.'));
  toast(counts.textContent, j.state === 'done' ? 'info' : 'error');
  await onDone?.(j);
}

/** The tag's events after a re-decision: each outcome and the order it opened or joined. */
async function redecidedEvents(tag, out) {
  try {
    const page = await api('/v1/events', { query: { subject: globOfTag(tag), limit: 20 } });
    add(
      out,
      tableRegion({
        caption: `Events of ${tag} now${page.total > page.items.length ? ` (latest ${page.items.length} of ${page.total})` : ''}`,
        columns: [
          { label: 'Event', cell: (e) => h('code', {}, e.event_id) },
          { label: 'Received', cell: (e) => fmtTime(e.received_at) },
          { label: 'Outcome', cell: (e) => h('strong', {}, e.outcome) },
          { label: 'Asset', cell: (e) => e.asset_id ?? '—' },
          { label: 'Work order', cell: (e) => (e.work_order_id ? h('a', { href: `#/orders/${encodeURIComponent(e.work_order_id)}` }, e.work_order_id) : '—') },
        ],
        rows: page.items,
        empty: 'No events.',
      }),
    );
  } catch (err) {
    add(out, problemBox(err));
  }
}

function fixPanel(group, ctx, reloadTable) {
  const admin = can(ctx.me, 'admin');
  const tag = group.subject;
  const panel = h('section', { class: 'fix-panel', 'aria-labelledby': 'fix-h' });
  const heading = h('h3', { id: 'fix-h', tabindex: '-1' }, tag ? `Fix tag ${tag}` : 'Events without a tag');
  const example = h('div', {}, h('p', { role: 'status', class: 'loading' }, 'Loading the example event…'));
  const jobOut = h('div', { class: 'job-out' });
  add(panel, heading, h('p', {}, `${group.count} unmapped event(s), first ${fmtTime(group.first_seen)}, last ${fmtTime(group.last_seen)}.`), example);

  let hint = null;
  api(`/v1/events/${encodeURIComponent(group.example_event_id)}`)
    .then((ev) => {
      hint = ev.cloudevent?.data?.asset || null;
      put(example, exampleView(ev));
      if (hint && createForm) {
        if (!createForm.elements.id.value) createForm.elements.id.value = hint.id;
        if (hint.site && !createForm.elements.site.value) createForm.elements.site.value = hint.site;
      }
    })
    .catch((err) => put(example, problemBox(err)));

  let createForm = null;
  if (!admin) {
    add(panel, h('p', { class: 'hint' }, 'An admin key is needed to add assets, tags or patterns and to re-decide events.'));
    return panel;
  }
  if (!tag) {
    add(panel, h('p', {}, 'These events carry no tag: give them an asset hint at the source. They cannot be re-decided by tag.'));
    return panel;
  }
  const redecideBtn = h(
    'button',
    {
      type: 'button',
      class: 'primary',
      'on:click': async () => {
        redecideBtn.disabled = true;
        busy(jobOut, 'Queuing the re-decision…');
        try {
          const job = await api('/v1/events/redecide', { method: 'POST', body: { outcome: 'unmapped', subject: globOfTag(tag) } });
          await followJob(job, jobOut, () => {
            reloadTable();
            return redecidedEvents(tag, jobOut);
          });
        } catch (err) {
          put(jobOut, problemBox(err));
        } finally {
          redecideBtn.disabled = false;
        }
      },
    },
    'Re-decide the events of this tag',
  );
  const afterFix = (msg) => {
    toast(msg);
    stepStatus.textContent = `${msg} Now re-decide the events.`;
    redecideBtn.focus();
  };
  const stepStatus = h('p', { role: 'status', class: 'step-status' }, '');

  // 1. create the asset
  const segs = tag.split('.');
  const createOut = h('div', {});
  createForm = h(
    'form',
    {
      class: 'fix-form',
      'aria-labelledby': 'fix-create-h',
      'on:submit': async (e) => {
        e.preventDefault();
        const f = formData(createForm);
        const body = {
          id: f.id.trim(),
          site: f.site.trim(),
          name: f.name.trim(),
          class: f.class.trim(),
          criticality: f.criticality || null,
          parent: f.parent.trim() || null,
          tags: f.tags
            .split(/[\n,;]/)
            .map((t) => t.trim())
            .filter(Boolean),
        };
        try {
          const a = await api('/v1/assets', { method: 'POST', body });
          put(createOut);
          afterFix(`Asset ${a.id} created with ${a.tags.length} tag(s).`);
        } catch (err) {
          put(createOut, problemBox(err));
        }
      },
    },
    h('h4', { id: 'fix-create-h' }, 'Create the asset'),
    h(
      'div',
      { class: 'grid-fields' },
      field({ label: 'Asset id', name: 'id', required: true, value: '' }),
      field({ label: 'Site', name: 'site', required: true, value: segs.length > 1 ? segs[0] : '' }),
      field({ label: 'Name', name: 'name', required: true, value: '' }),
      field({ label: 'Class', name: 'class', required: true, value: '', placeholder: 'PUMP, MOTOR, …' }),
      field({ label: 'Criticality', name: 'criticality', value: '', options: [{ value: '', label: 'none' }, 'A', 'B', 'C', '1', '2', '3', '4', '5'] }),
      field({ label: 'Parent (optional)', name: 'parent', value: '' }),
    ),
    field({ label: 'Tags (comma-separated)', name: 'tags', value: tag }),
    h('button', { type: 'submit' }, 'Create asset'),
    createOut,
  );

  // 2. add the tag to an existing asset
  const listId = 'asset-ids';
  const assetList = h('datalist', { id: listId });
  api('/v1/assets', { query: { limit: 500 } })
    .then((p) => put(assetList, ...p.items.filter((a) => !['SITE', 'AREA'].includes(a.class)).map((a) => h('option', { value: a.id }, `${a.name} (${a.site})`))))
    .catch(() => {});
  const addOut = h('div', {});
  const addForm = h(
    'form',
    {
      class: 'fix-form',
      'aria-labelledby': 'fix-add-h',
      'on:submit': async (e) => {
        e.preventDefault();
        const id = addForm.elements.asset.value.trim();
        try {
          const a = await api(`/v1/assets/${encodeURIComponent(id)}`);
          const body = {
            site: a.site,
            name: a.name,
            class: a.class,
            criticality: a.criticality ?? null,
            parent: a.parent ?? null,
            eam_system: a.eam_system ?? null,
            tags: [...new Set([...(a.tags || []), tag])],
          };
          await api(`/v1/assets/${encodeURIComponent(id)}`, { method: 'PUT', body });
          put(addOut);
          afterFix(`Tag added to asset ${id}.`);
        } catch (err) {
          put(addOut, problemBox(err));
        }
      },
    },
    h('h4', { id: 'fix-add-h' }, 'Add the tag to an existing asset'),
    field({ label: 'Asset id', name: 'asset', required: true, attrs: { list: listId, autocomplete: 'off' } }),
    assetList,
    h('button', { type: 'submit' }, 'Add tag'),
    addOut,
  );

  // 3. a tag pattern
  const patOut = h('div', {});
  const patForm = h(
    'form',
    {
      class: 'fix-form',
      'aria-labelledby': 'fix-pat-h',
      'on:submit': async (e) => {
        e.preventDefault();
        const f = formData(patForm);
        const body = { pattern: f.pattern, asset_template: f.asset_template.trim() };
        if (f.position !== '') body.position = Number(f.position);
        try {
          const p = await api('/v1/tag-patterns', { method: 'POST', body });
          put(patOut);
          afterFix(`Tag pattern ${p.id} added.`);
        } catch (err) {
          put(patOut, problemBox(err));
        }
      },
    },
    h('h4', { id: 'fix-pat-h' }, 'Add a tag pattern'),
    field({
      label: 'Pattern (regular expression over the whole tag)',
      name: 'pattern',
      required: true,
      value: regexOfTag(tag),
      hint: 'Named captures build the asset id, e.g. BEDFORD\\.PUMPING\\.P(?P<n>\\d+)\\..* with template P-{n}.',
      attrs: { spellcheck: 'false' },
    }),
    field({ label: 'Asset id template', name: 'asset_template', required: true, value: '', placeholder: 'P-{n}' }),
    field({ label: 'Position (optional)', name: 'position', type: 'number', value: '' }),
    h('button', { type: 'submit' }, 'Add pattern'),
    patOut,
  );

  add(panel, 
    h('div', { class: 'fix-forms' }, createForm, addForm, patForm),
    stepStatus,
    h('div', { class: 'redecide' }, h('h4', {}, 'Re-decide'), h('p', {}, 'Decides the unmapped events of this tag again against today\u2019s registry and rules.'), redecideBtn, jobOut),
  );
  return panel;
}

function unmappedSection(ctx) {
  const { sec, body } = sectionShell('unmapped-h', 'Unmapped events by tag', h('p', {}, 'Events whose tag matches no asset, tag or pattern, the most frequent tag first.'));
  const tableBox = h('div', {});
  const panelBox = h('div', {});
  add(body, tableBox, panelBox);
  let offset = 0;
  const LIMIT = 25;
  async function load() {
    busy(tableBox, 'Loading unmapped events…');
    let page;
    try {
      page = await api('/v1/events/unmapped-subjects', { query: { limit: LIMIT, offset } });
    } catch (err) {
      put(tableBox, problemBox(err));
      return;
    }
    put(tableBox, 
      tableRegion({
        caption: `${page.total} tag(s) with unmapped events`,
        columns: [
          { label: 'Tag', cell: (g) => (g.subject ? h('code', {}, g.subject) : h('em', {}, 'no tag')) },
          { label: 'Events', cell: (g) => String(g.count) },
          { label: 'First seen', cell: (g) => fmtTime(g.first_seen) },
          { label: 'Last seen', cell: (g) => fmtTime(g.last_seen) },
          {
            label: 'Fix',
            cell: (g) =>
              h(
                'button',
                {
                  type: 'button',
                  'aria-label': `Fix ${g.subject ?? 'events without a tag'}`,
                  'on:click': () => {
                    put(panelBox, fixPanel(g, ctx, load));
                    panelBox.querySelector('#fix-h').focus();
                  },
                },
                'Fix…',
              ),
          },
        ],
        rows: page.items,
        empty: 'No unmapped events.',
      }),
      page.total > LIMIT
        ? h(
            'nav',
            { class: 'pager', 'aria-label': 'Pages of tags' },
            h('button', { type: 'button', disabled: offset === 0, 'on:click': () => ((offset = Math.max(0, offset - LIMIT)), load()) }, '← Previous'),
            h('span', {}, `${offset + 1}–${offset + page.items.length} of ${page.total}`),
            h('button', { type: 'button', disabled: offset + LIMIT >= page.total, 'on:click': () => ((offset += LIMIT), load()) }, 'Next →'),
          )
        : null,
    );
  }
  return { sec, load };
}

// ---------------------------------------------------------------------------
// Failed deliveries

function failedSection(ctx) {
  const { sec, body } = sectionShell('failed-h', 'Failed deliveries', h('p', {}, 'Orders the EAM refused or that could not be delivered.'));
  const planner = can(ctx.me, 'planner');
  async function load() {
    busy(body, 'Loading failed deliveries…');
    let page;
    try {
      page = await api('/v1/work-orders', { query: { status: 'failed', limit: 50 } });
    } catch (err) {
      put(body, problemBox(err));
      return;
    }
    const columns = [
      { label: 'Order', cell: (o) => h('a', { href: `#/orders/${encodeURIComponent(o.id)}` }, o.id) },
      { label: 'Title', cell: (o) => h('span', { class: 'plant-text' }, o.title) },
      { label: 'Connector', cell: (o) => o.connector },
      { label: 'Asset', cell: (o) => o.asset_id ?? '—' },
      { label: 'Error', cell: (o) => h('span', { class: 'error-text' }, o.last_error ?? '—') },
      { label: 'Updated', cell: (o) => fmtTime(o.updated_at) },
    ];
    if (planner) {
      columns.push({
        label: 'Retry',
        cell: (o) =>
          h(
            'button',
            {
              type: 'button',
              'aria-label': `Retry ${o.id}`,
              'on:click': async (e) => {
                e.currentTarget.disabled = true;
                try {
                  await api(`/v1/work-orders/${encodeURIComponent(o.id)}/retry`, { method: 'POST' });
                  toast(`Retry of ${o.id} queued.`);
                  load();
                } catch (err) {
                  toast(err.message, 'error');
                  body.prepend(problemBox(err));
                }
              },
            },
            'Retry',
          ),
      });
    }
    put(body, 
      tableRegion({
        caption: `${page.total} failed order(s)${page.total > page.items.length ? `, the first ${page.items.length} shown` : ''}`,
        columns,
        rows: page.items,
        empty: 'No failed deliveries.',
      }),
      page.total > page.items.length ? h('p', {}, h('a', { href: '#/orders?status=failed' }, 'All failed orders')) : null,
    );
  }
  return { sec, load };
}

// ---------------------------------------------------------------------------
// Suppressions

function suppressionState(s, now) {
  const start = new Date(s.starts_at).getTime();
  const end = new Date(s.ends_at).getTime();
  if (now < start) return 'scheduled';
  if (now >= end) return 'ended';
  return 'active';
}

function suppressionsSection(ctx) {
  const { sec, body } = sectionShell(
    'supp-h',
    'Suppressions',
    h('p', {}, 'Maintenance windows: events a rule would act on meanwhile are stored as suppressed; nothing is dropped.'),
  );
  const admin = can(ctx.me, 'admin');
  const listBox = h('div', {});
  const formBox = h('div', {});
  add(body, listBox, formBox);

  async function load() {
    busy(listBox, 'Loading suppressions…');
    let list;
    try {
      list = await api('/v1/suppressions');
    } catch (err) {
      put(listBox, problemBox(err));
      return;
    }
    const now = Date.now();
    const columns = [
      { label: 'Scope', cell: (s) => s.scope },
      { label: 'Target', cell: (s) => h('code', {}, s.target) },
      { label: 'Starts', cell: (s) => fmtTime(s.starts_at) },
      { label: 'Ends', cell: (s) => fmtTime(s.ends_at) },
      { label: 'State', cell: (s) => h('span', { class: `badge supp-${suppressionState(s, now)}` }, suppressionState(s, now)) },
      { label: 'Reason', cell: (s) => h('span', { class: 'plant-text' }, s.reason) },
      { label: 'Author', cell: (s) => s.author },
    ];
    if (admin) {
      columns.push({
        label: 'End',
        cell: (s) =>
          h(
            'button',
            {
              type: 'button',
              'aria-label': `End suppression of ${s.scope} ${s.target}`,
              'on:click': async () => {
                if (!(await confirmDialog(`End (delete) the suppression of ${s.scope} ${s.target}?`))) return;
                try {
                  await api(`/v1/suppressions/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
                  toast(`Suppression of ${s.target} ended.`);
                  load();
                } catch (err) {
                  toast(err.message, 'error');
                  listBox.prepend(problemBox(err));
                }
              },
            },
            'End',
          ),
      });
    }
    put(listBox, tableRegion({ caption: `${list.length} suppression(s), newest first`, columns, rows: list, empty: 'No suppressions.' }));
  }

  if (admin) {
    const out = h('div', {});
    const targets = h('datalist', { id: 'supp-targets' });
    const now = new Date();
    const form = h(
      'form',
      {
        class: 'supp-form',
        'aria-labelledby': 'supp-new-h',
        'on:submit': async (e) => {
          e.preventDefault();
          const f = formData(form);
          const body = { scope: f.scope, target: f.target.trim(), ends_at: fromLocalInput(f.ends_at), reason: f.reason.trim(), author: f.author.trim() };
          if (f.starts_at) body.starts_at = fromLocalInput(f.starts_at);
          try {
            const s = await api('/v1/suppressions', { method: 'POST', body });
            put(out);
            toast(`Maintenance window for ${s.scope} ${s.target} created, until ${fmtTime(s.ends_at)}.`);
            form.elements.target.value = '';
            form.elements.reason.value = '';
            load();
          } catch (err) {
            put(out, problemBox(err));
          }
        },
      },
      h('h3', { id: 'supp-new-h' }, 'Create a maintenance window'),
      h(
        'div',
        { class: 'grid-fields' },
        field({ label: 'Scope', name: 'scope', value: 'asset', options: [{ value: 'asset', label: 'Asset' }, { value: 'site', label: 'Site' }, { value: 'rule', label: 'Rule' }] }),
        field({ label: 'Target (asset id, site or rule id)', name: 'target', required: true, value: '', attrs: { list: 'supp-targets', autocomplete: 'off' } }),
        field({ label: 'Starts (empty: now)', name: 'starts_at', type: 'datetime-local', value: '' }),
        field({ label: 'Ends', name: 'ends_at', type: 'datetime-local', required: true, value: toLocalInput(new Date(now.getTime() + 4 * 3600 * 1000)) }),
        field({ label: 'Reason', name: 'reason', required: true, value: '' }),
        field({ label: 'Author', name: 'author', required: true, value: ctx.me?.name ?? '' }),
      ),
      targets,
      h('button', { type: 'submit', class: 'primary' }, 'Create window'),
      out,
    );
    // Suggestions for the target follow the scope: asset ids, sites or rules.
    const choices = { asset: [], site: [], rule: [] };
    const suggest = () => put(targets, choices[form.elements.scope.value].map(([v, label]) => h('option', { value: v }, label)));
    Promise.all([api('/v1/assets', { query: { limit: 500 } }), api('/v1/rules')])
      .then(([assets, rules]) => {
        choices.asset = assets.items.filter((a) => !['SITE', 'AREA'].includes(a.class)).map((a) => [a.id, `${a.name} (${a.site})`]);
        choices.site = [...new Set(assets.items.map((a) => a.site))].sort().map((s) => [s, s]);
        choices.rule = rules.map((r) => [r.id, r.name]);
        suggest();
      })
      .catch(() => {});
    form.elements.scope.addEventListener('change', suggest);
    add(formBox, form);
  }
  return { sec, load };
}

export async function render(main, ctx) {
  renderGuard(main, 'triage', ctx);
  loading(main, 'Loading triage…');
  const parts = [unmappedSection(ctx), failedSection(ctx), suppressionsSection(ctx)];
  put(main, 
    h('h1', {}, 'Triage'),
    h(
      'nav',
      { class: 'toc', 'aria-label': 'Sections' },
      h('a', { href: '#unmapped-h', 'on:click': jump('unmapped-h') }, 'Unmapped events'),
      ' · ',
      h('a', { href: '#failed-h', 'on:click': jump('failed-h') }, 'Failed deliveries'),
      ' · ',
      h('a', { href: '#supp-h', 'on:click': jump('supp-h') }, 'Suppressions'),
    ),
    parts.map((p) => p.sec),
  );
  await Promise.all(parts.map((p) => p.load()));
}

/** In-page links without touching the hash route. */
function jump(id) {
  return (e) => {
    e.preventDefault();
    const el = document.getElementById(id);
    if (el) {
      el.setAttribute('tabindex', '-1');
      el.focus();
      el.scrollIntoView({ block: 'start' });
    }
  };
}
