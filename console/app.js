// The console shell: sign-in with an API key, the role from /v1/me, a hash
// router that loads one page module per route, nav state and focus.
import { api, ApiProblem, clearKey, field, getKey, h, loading, problemBox, setKey, setUnauthorizedHandler } from './lib.js';

const PAGES = {
  overview: { title: 'Overview', module: './pages/overview.js' },
  review: { title: 'Review', module: './pages/review.js' },
  orders: { title: 'Work orders', module: './pages/orders.js' },
  triage: { title: 'Triage', module: './pages/triage.js' },
  rules: { title: 'Rules', module: './pages/rules.js' },
  connectors: { title: 'Connectors', module: './pages/connectors.js' },
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let me = null;
let lastProblem = null;
// Each navigation's number: a page that loads after the user moved on is dropped.
let navSeq = 0;

/** `#/orders/WO-1?status=failed` → { page: 'orders', params: ['WO-1'], query }. */
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || 'overview', params: parts.slice(1), query: new URLSearchParams(qs) };
}

function showSignIn(problem) {
  me = null;
  nav.hidden = true;
  who.hidden = true;
  document.title = 'Sign in · workbridge';
  const form = h(
    'form',
    { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('p', { class: 'muted' }, 'Paste an API key. It is kept in this tab only (session storage) and sent as a bearer token.'),
    problem ? problemBox(problem) : null,
    field({ label: 'API key', name: 'key', type: 'password', required: true, attrs: { autocomplete: 'off', spellcheck: 'false' } }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = form.elements.key.value.trim();
    if (!key) return;
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      // Checked before it is stored, so a bad key leaves nothing behind.
      const who = await api('/v1/me', { key });
      setKey(key);
      me = who;
      if (!location.hash || location.hash === '#' || location.hash.startsWith('#/signin')) location.hash = '#/overview';
      await route();
    } catch (err) {
      showSignIn(err);
    }
  });
  main.replaceChildren(form);
  const input = form.elements.key;
  if (problem) form.querySelector('.problem')?.focus?.();
  input.focus();
}

function updateChrome(page) {
  nav.hidden = false;
  who.hidden = false;
  document.getElementById('who-name').textContent = `${me.name} (${me.role})`;
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function route({ focus = true } = {}) {
  if (!getKey()) return showSignIn(lastProblem);
  if (!me) {
    loading(main, 'Signing in…');
    try {
      me = await api('/v1/me');
    } catch (err) {
      if (err instanceof ApiProblem && err.status === 401) return; // the handler shows sign-in
      main.replaceChildren(problemBox(err));
      return;
    }
  }
  lastProblem = null;
  const seq = ++navSeq;
  const { page, params, query } = parseHash();
  const def = PAGES[page];
  updateChrome(page);
  document.title = `${def ? def.title : 'Not found'} · workbridge`;
  if (me.role === 'ingest') {
    main.replaceChildren(
      h('h1', {}, 'Ingest key'),
      h('p', {}, 'This key may only post events; the console needs a viewer, planner or admin key.'),
    );
    return focusMain();
  }
  if (!def) {
    main.replaceChildren(problemBox({ title: 'Page not found', message: `There is no page “${page}”.` }));
    return focusMain();
  }
  if (focus) {
    loading(main);
    focusMain();
  }
  // A refresh after an action keeps the focus where the user is.
  const ctx = { params, query, me, refresh: () => route({ focus: false }), current: () => seq === navSeq };
  let mod;
  try {
    // `#/orders/<id>` is the detail of one order.
    mod = await import(page === 'orders' && params.length ? './pages/order.js' : def.module);
  } catch (err) {
    if (seq !== navSeq) return;
    main.replaceChildren(problemBox({ title: 'Page not available', message: `The ${def.title} page could not be loaded.` }));
    console.error(err);
    return;
  }
  if (seq !== navSeq) return;
  try {
    await mod.render(main, ctx);
  } catch (err) {
    if (seq !== navSeq || (err instanceof ApiProblem && err.status === 401)) return;
    main.replaceChildren(h('h1', {}, def.title), problemBox(err));
  }
}

function focusMain() {
  main.focus({ preventScroll: false });
}

setUnauthorizedHandler((err) => {
  me = null;
  lastProblem = err;
  showSignIn(err);
});

document.getElementById('sign-out').addEventListener('click', () => {
  clearKey();
  me = null;
  lastProblem = null;
  history.replaceState(null, '', '#/overview');
  showSignIn();
});

// The skip link moves the focus without touching the hash (the router's).
document.getElementById('skip').addEventListener('click', (e) => {
  e.preventDefault();
  focusMain();
});

window.addEventListener('hashchange', () => route());
route();
