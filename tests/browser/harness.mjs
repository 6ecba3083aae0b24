// The browser tests' harness: starts the real binary on a random port with a
// temporary SQLite database, drives Debian's Chromium with playwright-core,
// runs axe-core in the page and saves screenshots.
//
// playwright-core and axe-core come from the directory .ci/browser installs
// them in (NODE_PATH), or from tests/browser/node_modules when present.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '..', '..');

/** `require` that looks in NODE_PATH first (ES modules ignore NODE_PATH). */
function requireFrom() {
  const dirs = (process.env.NODE_PATH || '').split(':').filter(Boolean);
  for (const d of dirs) {
    try {
      const req = createRequire(join(d, 'noop.js'));
      req.resolve('playwright-core');
      return req;
    } catch {
      // next
    }
  }
  return createRequire(import.meta.url);
}
const req = requireFrom();
const { chromium } = req('playwright-core');
const AXE_SOURCE = readFileSync(req.resolve('axe-core/axe.min.js'), 'utf8');

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function until(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e.fatal) throw e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the service; returns { url, adminKey, api, createKey, stop }. */
export async function startService({ env = {} } = {}) {
  const bin = process.env.WORKBRIDGE_BIN || join(ROOT, 'target', 'debug', 'workbridge');
  const dir = mkdtempSync(join(tmpdir(), 'wb-browser-'));
  const port = await freePort();
  const adminKey = `wb_browser_${randomBytes(16).toString('hex')}`;
  const child = spawn(bin, ['serve'], {
    env: {
      ...process.env,
      WORKBRIDGE_HTTP_ADDR: `127.0.0.1:${port}`,
      WORKBRIDGE_DATABASE_URL: `sqlite://${join(dir, 'wb.db')}?mode=rwc`,
      WORKBRIDGE_AMQP__ENABLED: 'false',
      WORKBRIDGE_ADMIN_KEY: adminKey,
      WORKBRIDGE_OUTBOX__POLL_INTERVAL_MS: '100',
      RUST_LOG: process.env.RUST_LOG || 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (b) => {
    log = (log + b.toString()).slice(-20000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  child.on('exit', (code) => {
    exited = code;
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await until('the service to answer /healthz', async () => {
      if (exited !== null) throw Object.assign(new Error('exited'), { fatal: true });
      return (await fetch(`${url}/healthz`)).ok;
    });
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`the service did not start (${e.message}); its log:\n${log}`);
  }

  /** Calls the API; returns { status, body } (body parsed when JSON). */
  async function api(path, { method = 'GET', body, key = adminKey, contentType } = {}) {
    const headers = { Accept: 'application/json' };
    if (key) headers.Authorization = `Bearer ${key}`;
    let payload;
    if (body !== undefined) {
      headers['Content-Type'] = contentType || (path === '/v1/events' ? 'application/cloudevents+json' : 'application/json');
      payload = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch(url + path, { method, headers, body: payload });
    const text = await res.text();
    let parsed = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed };
  }

  async function createKey(role) {
    const r = await api('/v1/api-keys', { method: 'POST', body: { name: `${role} in the browser tests`, role } });
    if (r.status !== 201) throw new Error(`cannot create a ${role} key: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.secret;
  }

  async function stop() {
    if (exited === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  }

  return { url, adminKey, api, createKey, stop, log: () => log };
}

/** Chromium from Debian, headless. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
}

/**
 * A new page signed in with `key`, at #/overview once it has rendered.
 * Every page fails its test on an uncaught error, a dialog (alert() from
 * injected markup) or a CSP violation: `page.problems` collects them.
 */
export async function signIn(browser, svc, key, { viewport = { width: 1280, height: 900 }, expectFailure = false } = {}) {
  const context = await browser.newContext({ viewport, locale: 'en-GB', timezoneId: process.env.TZ_BROWSER || 'Europe/London' });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('dialog', async (d) => {
    page.problems.push(`dialog: ${d.type()} ${d.message()}`);
    await d.dismiss();
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) page.problems.push(`CSP: ${m.text()}`);
  });
  await page.goto(`${svc.url}/`);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  if (!expectFailure) {
    await page.waitForURL(/#\/overview/);
    await page.locator('main h1', { hasText: 'Overview' }).waitFor();
    await page.locator('main .cards').waitFor();
  }
  return page;
}

/** axe-core on the page as it is: fails on a serious or critical violation. */
export async function checkA11y(page, label) {
  const has = await page.evaluate(() => typeof window.axe !== 'undefined');
  // Evaluated through the DevTools protocol: the page's CSP (no inline
  // script) does not apply to it, and stays on for everything else.
  if (!has) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () =>
    window.axe.run(document, { resultTypes: ['violations'], runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }),
  );
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const summary = bad.map((v) => `${v.impact} ${v.id}: ${v.help}\n    ${v.nodes.slice(0, 5).map((n) => n.target.join(' ')).join('\n    ')}`);
  if (bad.length) throw new Error(`axe on ${label}: ${bad.length} serious/critical violation(s)\n  ${summary.join('\n  ')}`);
  // The milder findings are reported, not failed on.
  const mild = result.violations.map((v) => `${v.id} (${v.impact}, ${v.nodes.length})`);
  console.log(`axe ${label}: no serious or critical violation${mild.length ? `; milder: ${mild.join(', ')}` : ''}`);
  return result.violations;
}

/** A PNG of the whole page into $WORKBRIDGE_SCREENSHOTS (default target/console-screenshots/). */
export async function screenshot(page, name) {
  const dir = process.env.WORKBRIDGE_SCREENSHOTS || join(ROOT, 'target', 'console-screenshots');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * The README walkthrough's set-up: the demo assets (tests/fixtures/assets-demo.csv),
 * the sandbox connector, a live rule for alerts and a review rule for anomalies.
 */
export async function seedDemo(svc) {
  const ok = (r, what) => {
    if (r.status < 200 || r.status >= 300) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const csv = readFileSync(join(ROOT, 'tests', 'fixtures', 'assets-demo.csv'), 'utf8');
  ok(await svc.api('/v1/assets/bulk', { method: 'POST', body: csv, contentType: 'text/csv' }), 'assets');
  ok(await svc.api('/v1/connectors', { method: 'POST', body: { name: 'sandbox', config: { kind: 'sandbox' } } }), 'connector');
  const live = ok(
    await svc.api('/v1/rules', {
      method: 'POST',
      body: {
        name: 'alerts-to-orders',
        when: { types: ['tdl.alert'], min_severity: 'minor' },
        action: { kind: 'create', connector: 'sandbox', work_type: 'corrective', priority: 2 },
      },
    }),
    'live rule',
  );
  const review = ok(
    await svc.api('/v1/rules', {
      method: 'POST',
      body: {
        name: 'anomalies-for-review',
        mode: 'review',
        when: { types: ['tdl.anomaly'], min_severity: 'minor' },
        action: { kind: 'create', connector: 'sandbox', work_type: 'inspection', priority: 3 },
      },
    }),
    'review rule',
  );
  return { connector: 'sandbox', liveRule: live.name, liveRuleId: live.id, reviewRule: review.name, reviewRuleId: review.id, site: 'BEDFORD' };
}
