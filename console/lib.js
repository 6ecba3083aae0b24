// Shared helpers for the console: API calls, DOM building (text nodes only,
// never innerHTML: plant text must render literally), formatting, role checks.

const KEY = 'wb.key';

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY);
}

/** A non-2xx answer of the API, with the problem+json fields. */
export class ApiProblem extends Error {
  constructor(status, body) {
    const b = body && typeof body === 'object' ? body : {};
    const title = b.title || `HTTP ${status}`;
    super(b.detail ? `${title}: ${b.detail}` : title);
    this.name = 'ApiProblem';
    this.status = status;
    this.title = title;
    this.detail = b.detail || (typeof body === 'string' ? body : '');
    this.errors = Array.isArray(b.errors) ? b.errors : [];
    this.body = body;
  }
}

// Set by app.js: called when the API answers 401 (the key is gone or revoked).
let onUnauthorized = null;
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** Calls the API; returns parsed JSON, text for non-JSON, null for 204. */
export async function api(path, { method = 'GET', body, query, key } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    const entries = query instanceof URLSearchParams ? query.entries() : Object.entries(query);
    for (const [k, v] of entries) {
      if (v !== undefined && v !== null && v !== '') q.append(k, String(v));
    }
    const s = q.toString();
    if (s) url += (url.includes('?') ? '&' : '?') + s;
  }
  const headers = { Accept: 'application/json' };
  const secret = key ?? getKey();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new ApiProblem(0, { title: 'Network error', detail: String(e.message || e) });
  }
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  const text = await res.text();
  let parsed = text;
  if (type.includes('json') && text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!res.ok) {
    const err = new ApiProblem(res.status, parsed);
    if (res.status === 401 && key === undefined) {
      clearKey();
      if (onUnauthorized) onUnauthorized(err);
    }
    throw err;
  }
  return parsed;
}

function append(el, child) {
  if (child === null || child === undefined || child === false || child === true) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

/** Builds an element; strings become text nodes. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on:')) {
      el.addEventListener(k.slice(3), v);
    } else if (k === 'class') {
      el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    } else if (k === 'for') {
      el.htmlFor = v;
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'value' && ('value' in el)) {
      el.value = v;
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

/**
 * Replaces an element's content with `children` as `h` takes them (null and
 * false skipped, arrays flattened); the DOM's own replaceChildren would
 * print "null" for a null.
 */
export function show(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A problem shown to the user: title, detail and each field error. */
export function problemBox(err) {
  const title = err?.title || err?.name || 'Error';
  const detail = err instanceof ApiProblem ? err.detail : err?.message || String(err);
  const errors = err?.errors || [];
  return h(
    'div',
    { role: 'alert', class: 'problem' },
    h('strong', { class: 'problem-title' }, title),
    detail ? h('p', { class: 'problem-detail' }, detail) : null,
    errors.length
      ? h(
          'ul',
          { class: 'problem-errors' },
          errors.map((e) =>
            h('li', {}, h('code', {}, e.pointer || e.parameter || ''), (e.pointer || e.parameter) ? ': ' : '', e.detail || ''),
          ),
        )
      : null,
  );
}

/** A short message in the live region, gone after 6 s. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', { class: `toast toast-${kind}` }, message);
  box.appendChild(t);
  setTimeout(() => t.remove(), 6000);
}

const timeFmt = new Intl.DateTimeFormat(undefined, {
  day: 'numeric',
  month: 'short',
  year: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
});

/** An instant in the viewer's zone, e.g. "5 Dec 2026, 14:02"; "—" when absent. */
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return timeFmt.format(d);
}

/** A duration in seconds: "45 s", "12 min", "3 h 12 min", "2 d 4 h"; "—" when absent. */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return '—';
  let s = Math.round(Number(seconds));
  const neg = s < 0;
  s = Math.abs(s);
  let out;
  if (s < 60) out = `${s} s`;
  else if (s < 3600) {
    const m = Math.floor(s / 60);
    const r = s % 60;
    out = r && m < 10 ? `${m} min ${r} s` : `${m} min`;
  } else if (s < 86400) {
    const hrs = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    out = m ? `${hrs} h ${m} min` : `${hrs} h`;
  } else {
    const d = Math.floor(s / 86400);
    const hrs = Math.floor((s % 86400) / 3600);
    out = hrs ? `${d} d ${hrs} h` : `${d} d`;
  }
  return neg ? `-${out}` : out;
}

/** A ratio 0..1 as a whole percentage ("83 %"); "—" for null. */
export function fmtPct(ratio) {
  if (ratio === null || ratio === undefined || Number.isNaN(Number(ratio))) return '—';
  return `${Math.round(Number(ratio) * 100)} %`;
}

const RANK = { ingest: 0, viewer: 1, planner: 2, admin: 3 };

/** Role check: can(me,'planner') is true for planner and admin, etc. */
export function can(me, need) {
  if (!me || !me.role) return false;
  if (need === 'ingest') return me.role === 'ingest' || me.role === 'admin';
  return (RANK[me.role] ?? -1) >= (RANK[need] ?? 99);
}

/** Replaces the content with a status placeholder. */
export function loading(main, text = 'Loading…') {
  main.replaceChildren(h('p', { role: 'status', class: 'loading' }, text));
}

/** A table with caption and column headers; `empty` text when no rows. */
export function table({ caption, columns, rows, empty = 'Nothing to show.' }) {
  const t = h(
    'table',
    {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)))),
  );
  const body = h('tbody', {});
  if (!rows || rows.length === 0) {
    body.appendChild(h('tr', {}, h('td', { colspan: String(columns.length), class: 'empty' }, empty)));
  } else {
    for (const row of rows) {
      body.appendChild(h('tr', {}, columns.map((c) => h('td', { class: c.class }, c.cell(row)))));
    }
  }
  t.appendChild(body);
  return h('div', { class: 'table-wrap' }, t);
}

let fieldSeq = 0;

/** A labelled control: input, select (with options) or textarea (type 'textarea'). */
export function field({ label, name, type = 'text', value, required, options, placeholder, hint, attrs = {} }) {
  const id = `f-${name}-${++fieldSeq}`;
  let control;
  if (options) {
    control = h(
      'select',
      { id, name, required, ...attrs },
      options.map((o) => {
        const opt = typeof o === 'object' ? o : { value: o, label: o };
        return h('option', { value: opt.value, selected: String(opt.value) === String(value ?? '') }, opt.label ?? opt.value);
      }),
    );
  } else if (type === 'textarea') {
    control = h('textarea', { id, name, required, placeholder, ...attrs });
    if (value !== undefined && value !== null) control.value = value;
  } else if (type === 'checkbox') {
    control = h('input', { id, name, type, checked: !!value, ...attrs });
  } else {
    control = h('input', { id, name, type, required, placeholder, ...attrs });
    if (value !== undefined && value !== null) control.value = value;
  }
  const hintEl = hint ? h('small', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: `field field-${type}` }, h('label', { for: id }, label), control, hintEl);
}

/** The form's named controls as a plain object (checkboxes → boolean). */
export function formData(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else if (el.type === 'radio') {
      if (el.checked) out[el.name] = el.value;
    } else out[el.name] = el.value;
  }
  return out;
}

/** A status shown as a badge. */
export function statusBadge(status) {
  const s = String(status ?? 'unknown');
  return h('span', { class: `badge status-${s.replace(/[^a-z0-9_-]/gi, '_')}` }, s);
}

/** A modal OK/Cancel question; resolves true on OK. */
export function confirmDialog(text) {
  return new Promise((resolve) => {
    const before = document.activeElement;
    const dlg = h('dialog', { class: 'confirm', 'aria-label': 'Confirm' });
    const done = (ok) => {
      dlg.close();
      dlg.remove();
      if (before && before.focus) before.focus();
      resolve(ok);
    };
    dlg.append(
      h('p', {}, text),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', class: 'primary', 'on:click': () => done(true) }, 'OK'),
        h('button', { type: 'button', 'on:click': () => done(false) }, 'Cancel'),
      ),
    );
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    dlg.querySelector('button.primary').focus();
  });
}
