// Browser scenarios of the console's shell, overview and work orders
// (issue 19 §4), against the real binary. Time is real here: the tests wait
// for conditions (the page's elements, the API's state), never for a time.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkA11y, launchBrowser, screenshot, seedDemo, signIn, startService } from './harness.mjs';

const HOSTILE = '<img src=x onerror=alert(1)>';
const TAGS = [
  'BEDFORD.PUMPING.MX101.BRG_TEMP',
  'BEDFORD.PUMPING.CV702.VIB_X',
  'BEDFORD.PUMPING.P504.BRG_TEMP',
  'BEDFORD.PUMPING.P405.BRG_TEMP',
  'BEDFORD.PUMPING.K506.VIB_X',
  'BEDFORD.COOLING.M701.CURRENT',
  'BEDFORD.COOLING.F505.VIB_X',
];
const ORDERS = 28; // more than a page (25)

let svc;
let browser;
let admin; // the admin's page
let viewerKey;
let worked = []; // orders taken through to completed in the sandbox
let failedId;
let hostileId;
let failRule;

async function ok(path, opts, what = path) {
  const r = await svc.api(path, opts);
  assert.ok(r.status >= 200 && r.status < 300, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function eventually(what, fn, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let seq = 0;
async function alert(subject, code, message = 'Bearing temperature above alarm limit', daysAgo = 0) {
  const body = {
    specversion: '1.0',
    id: `shell-${++seq}`,
    source: 'tdl://bedford/browser-shell',
    type: 'tdl.alert',
    time: new Date(Date.now() - daysAgo * 86400000).toISOString(),
    subject,
    data: { state: 'raised', code, severity: 'major', message, value: 92.1, threshold: 85, unit: 'degC' },
  };
  const d = await ok('/v1/events', { method: 'POST', body }, `event ${body.id}`);
  assert.equal(d.outcome, 'created', JSON.stringify(d));
  return d.work_order_id;
}

async function delivered(id) {
  return eventually(`${id} delivered`, async () => {
    const o = (await svc.api(`/v1/work-orders/${id}`)).body;
    return o.external_id ? o : null;
  });
}

/** Navigates by hash and waits for `selector` in the new page content. */
async function go(page, hash, selector) {
  await page.evaluate((h) => {
    location.hash = h;
  }, hash);
  await page.locator(selector).first().waitFor();
}

function noProblems(page) {
  assert.deepEqual(page.problems, [], 'no page error, dialog or CSP violation');
}

/** "83 %" → 83; "—" → null. */
const pct = (s) => (s.trim() === '—' ? null : Number(s.replace(/[^\d-]/g, '')));
const roundPct = (r) => (r === null || r === undefined ? null : Math.round(r * 100));
/** "3 h 12 min" → seconds. */
function seconds(s) {
  const units = { d: 86400, h: 3600, min: 60, s: 1 };
  let total = 0;
  for (const [, n, u] of s.matchAll(/(\d+)\s*(d|h|min|s)\b/g)) total += Number(n) * units[u];
  return total;
}

before(async () => {
  svc = await startService({
    env: { WORKBRIDGE_OUTBOX__MAX_ATTEMPTS: '2', WORKBRIDGE_OUTBOX__BACKOFF_MIN_MS: '50', WORKBRIDGE_OUTBOX__BACKOFF_MAX_MS: '100' },
  });
  await seedDemo(svc);
  // A connector nobody answers: its orders end failed (and can be retried).
  await ok('/v1/connectors', { method: 'POST', body: { name: 'unreachable', config: { kind: 'rest', url: 'http://127.0.0.1:9/orders', id_path: 'id', timeout_ms: 500 } } });
  failRule = await ok('/v1/rules', {
    method: 'POST',
    body: { name: 'to-unreachable', position: -50, when: { codes: ['SHELL_FAIL'] }, action: { kind: 'create', connector: 'unreachable', work_type: 'corrective', priority: 1 } },
  });

  const ids = [];
  for (let i = 0; i < ORDERS; i++) ids.push(await alert(TAGS[i % TAGS.length], `SHELL_${i}`));
  hostileId = await alert(TAGS[0], 'SHELL_HOSTILE', HOSTILE);
  failedId = await alert(TAGS[1], 'SHELL_FAIL');
  // Alerts raised 6, 13 and 20 days ago (as the plant's clock says), so that
  // the weekly charts have several weeks, and times of days.
  const past = [];
  for (const days of [6, 13, 20]) past.push(await alert(TAGS[days % TAGS.length], `SHELL_PAST_${days}`, 'Bearing temperature above alarm limit', days));
  // Orders worked in the sandbox EAM: acknowledged, then completed.
  for (const id of [...ids.slice(0, 3), ...past]) {
    const o = await delivered(id);
    for (const status of ['acknowledged', 'completed']) {
      await ok(`/v1/sandbox/orders/${encodeURIComponent(o.external_id)}/status`, { method: 'POST', body: { status } });
    }
    worked.push(id);
  }
  await eventually('the unreachable order failed', async () => (await svc.api(`/v1/work-orders/${failedId}`)).body.status === 'failed');
  viewerKey = await svc.createKey('viewer');
  browser = await launchBrowser();
  admin = await signIn(browser, svc, svc.adminKey);
});

after(async () => {
  await browser?.close();
  await svc?.stop();
});

describe('overview', () => {
  test('shows the figures of GET /v1/kpis for its range, and non-empty weekly charts', async () => {
    const page = admin;
    await page.locator('#chart-ack canvas').waitFor();
    const range = await page.locator('#range').evaluate((el) => ({ ...el.dataset }));
    // The default range: the last 28 days, whole days in the viewer's zone.
    const days = (new Date(range.until) - new Date(range.since)) / 86400000;
    assert.ok(days >= 27.9 && days <= 28.1, `28 days: ${days}`);
    const q = new URLSearchParams({ since: range.since, until: range.until });
    const kpis = await ok(`/v1/kpis?${q}`);
    assert.ok(kpis.orders >= ORDERS + 3, `orders: ${kpis.orders}`);

    const shown = async (kpi) => (await page.locator(`.card[data-kpi="${kpi}"] .value`).innerText()).trim();
    assert.equal(Number(await shown('orders')), kpis.orders);
    assert.equal(Number(await shown('backlog_open')), kpis.backlog_open);
    assert.equal(Number(await shown('review_backlog')), kpis.review.backlog);
    // Backlog by age: the table's counts are the API's buckets, in order.
    const ageCounts = await page
      .locator('section[aria-labelledby="h-backlog"] tbody tr td.num')
      .evaluateAll((cells) => cells.map((c) => Number(c.textContent.trim())));
    assert.deepEqual(ageCounts, kpis.backlog_by_age.map((b) => b.orders));
    assert.equal(ageCounts.reduce((a, b) => a + b, 0), kpis.backlog_open);
    for (const [kpi, value] of [
      ['automation_rate', kpis.automation_rate],
      ['acceptance_rate', kpis.acceptance_rate],
      ['approval_rate', kpis.review.approval_rate],
      ['dedup_savings', kpis.dedup_savings],
      ['sla_compliance', kpis.sla_compliance],
      ['mapping_coverage', kpis.mapping_coverage],
    ]) {
      assert.equal(pct(await shown(kpi)), roundPct(value), kpi);
    }
    assert.equal(kpis.automation_rate, 1, 'every alert opened an order');
    assert.equal(pct(await shown('automation_rate')), 100);
    for (const kpi of ['time_to_acknowledge', 'time_to_complete']) {
      assert.equal(kpis[kpi].count, worked.length, kpi);
      const [p50, p90] = (await shown(kpi)).split('/').map(seconds);
      // Shown rounded to the unit below the largest (s under a minute).
      assert.ok(Math.abs(p50 - kpis[kpi].p50) < 60, `${kpi} p50 ${p50} vs ${kpis[kpi].p50}`);
      assert.ok(Math.abs(p90 - kpis[kpi].p90) < 60, `${kpi} p90 ${p90} vs ${kpis[kpi].p90}`);
    }
    // SLA per priority: the table's rows are the API's.
    const slaRows = await page.locator('section[aria-labelledby="h-sla"] tbody tr').count();
    assert.equal(slaRows, Math.max(1, kpis.sla_by_priority.length));

    // Rules ranked by precision, with their false alarms.
    const rules = await ok(`/v1/kpis/rules?${q}`);
    const ruleRows = page.locator('section[aria-labelledby="h-rules"] tbody tr');
    assert.equal(await ruleRows.count(), rules.length);
    assert.ok(rules.some((r) => r.orders_created > 0));

    // Both charts are drawn, and their figures (the accessible table) are not empty.
    for (const id of ['chart-ack', 'chart-complete']) {
      const canvas = page.locator(`#${id} canvas`);
      const box = await canvas.boundingBox();
      assert.ok(box && box.width > 200 && box.height > 100, `${id} canvas ${JSON.stringify(box)}`);
      const cells = await page.locator(`#${id} details tbody td:nth-child(2)`).allInnerTexts();
      const weeksWithData = cells.filter((c) => c.trim() !== '—').length;
      assert.ok(weeksWithData >= 3, `${id} has p50s of several weeks: ${cells}`);
    }
    // The series of the chart is the API's weekly one.
    const tz = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
    const weeks = await ok(`/v1/kpis/timeseries?${q}&bucket=week&tz=${encodeURIComponent(tz)}`);
    assert.equal(await page.locator('#chart-ack details tbody tr').count(), weeks.length);

    noProblems(page);
    await checkA11y(page, 'overview');
    await screenshot(page, 'overview-1280');
  });

  test('a site and a range are applied from the form', async () => {
    const page = admin;
    await page.getByLabel('Site', { exact: true }).selectOption('BEDFORD');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.waitForURL(/site=BEDFORD/);
    await page.locator('#range[data-site="BEDFORD"]').waitFor();
    const range = await page.locator('#range').evaluate((el) => ({ ...el.dataset }));
    const kpis = await ok(`/v1/kpis?${new URLSearchParams({ since: range.since, until: range.until, site: 'BEDFORD' })}`);
    assert.equal(Number((await page.locator('.card[data-kpi="orders"] .value').innerText()).trim()), kpis.orders);
    noProblems(page);
  });

  test('reads on an 820px tablet', async () => {
    const page = await signIn(browser, svc, svc.adminKey, { viewport: { width: 820, height: 1180 } });
    await page.locator('#chart-complete canvas').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `no horizontal scroll of the page: ${overflow}px`);
    await checkA11y(page, 'overview at 820px');
    await screenshot(page, 'overview-820');
    await page.context().close();
  });
});

describe('work orders', () => {
  test('the list filters and pages through the orders', async () => {
    const page = admin;
    await go(page, '#/orders', '#page-info');
    const all = await ok('/v1/work-orders?limit=1');
    assert.ok(all.total > 25);
    assert.equal(await page.locator('#page-info').innerText(), `1–25 of ${all.total}`);
    assert.equal(await page.locator('main tbody tr').count(), 25);
    await checkA11y(page, 'work orders');
    await screenshot(page, 'orders-1280');

    await page.getByRole('link', { name: 'Next' }).click();
    await page.waitForURL(/offset=25/);
    await page.locator('#page-info', { hasText: `26–${all.total} of ${all.total}` }).waitFor();
    assert.equal(await page.locator('main tbody tr').count(), all.total - 25);
    await page.getByRole('link', { name: 'Previous' }).click();
    await page.locator('#page-info', { hasText: `1–25 of ${all.total}` }).waitFor();

    await page.getByLabel('Status', { exact: true }).selectOption('failed');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/status=failed/);
    const failed = await ok('/v1/work-orders?status=failed');
    assert.ok(failed.items.some((o) => o.id === failedId));
    await page.locator('#page-info', { hasText: `1–${failed.total} of ${failed.total}` }).waitFor();
    const rows = page.locator('main tbody tr');
    assert.equal(await rows.count(), failed.total);
    for (const text of await rows.allInnerTexts()) assert.match(text, /failed/);

    await page.getByLabel('Status', { exact: true }).selectOption('');
    await page.getByLabel('Rule', { exact: true }).selectOption({ label: 'to-unreachable' });
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(new RegExp(`rule=${failRule.id}`));
    await page.locator('#page-info', { hasText: '1–1 of 1' }).waitFor();
    await page.locator(`main a[data-id="${failedId}"]`).click();
    await page.waitForURL(new RegExp(`#/orders/${failedId}`));
    await page.locator('main h2', { hasText: 'Status history' }).waitFor();
    noProblems(page);
  });

  test('the detail shows the order, its timeline and trace; a planner retries and gives feedback', async () => {
    const page = admin;
    const id = worked[0];
    const order = await ok(`/v1/work-orders/${id}`);
    await go(page, `#/orders/${id}`, 'ol.timeline li');
    const main = page.locator('main');
    await main.getByText(order.external_id, { exact: true }).waitFor();
    // First event, then each status with the time since the step before.
    assert.equal(await page.locator('ol.timeline li').count(), order.history.length + 1);
    assert.ok((await page.locator('ol.timeline .gap').count()) >= order.history.length);
    assert.match(await main.innerText(), /alerts-to-orders v1 matched/);
    await checkA11y(page, 'order detail');
    await screenshot(page, 'order-detail-1280');

    // Feedback: useful / false alarm with a comment.
    await page.getByLabel('False alarm').check();
    await page.getByLabel('Comment').fill('Sensor drift, not the bearing');
    await page.getByRole('button', { name: 'Send feedback' }).click();
    await page.locator('section[aria-labelledby="h-feedback"] tbody td', { hasText: 'Sensor drift, not the bearing' }).waitFor();
    const fb = (await ok(`/v1/work-orders/${id}`)).feedback;
    assert.equal(fb.at(-1).verdict, 'false_alarm');

    // Retry of the failed delivery.
    await go(page, `#/orders/${failedId}`, '#retry');
    await screenshot(page, 'order-failed-1280');
    await page.locator('#retry').click();
    await page.getByRole('dialog').getByRole('button', { name: 'OK' }).click();
    await page.locator('#toasts', { hasText: 'Queued for delivery.' }).waitFor();
    const retried = await eventually('the retry in the order history', async () => {
      const o = await ok(`/v1/work-orders/${failedId}`);
      return o.history.some((h) => /retried/.test(h.note || '')) ? o : null;
    });
    // The page shows it too (it refreshed after the action).
    await page.locator('ol.timeline', { hasText: 'delivery retried through the API' }).waitFor();
    assert.ok(retried.history.length >= 2);
    noProblems(page);
  });

  test('a viewer sees no feedback or retry, and the API refuses them anyway', async () => {
    const page = await signIn(browser, svc, viewerKey);
    await go(page, `#/orders/${failedId}`, 'ol.timeline li');
    await page.locator('main h2', { hasText: 'Feedback' }).waitFor();
    assert.equal(await page.getByRole('button', { name: /retry/i }).count(), 0);
    assert.equal(await page.getByRole('button', { name: /feedback/i }).count(), 0);
    assert.equal(await page.locator('form.feedback-form').count(), 0);
    assert.match(await page.locator('#who-name').innerText(), /viewer/);
    const fb = await svc.api(`/v1/work-orders/${failedId}/feedback`, { method: 'POST', key: viewerKey, body: { verdict: 'useful', author: 'viewer' } });
    assert.equal(fb.status, 403);
    const retry = await svc.api(`/v1/work-orders/${failedId}/retry`, { method: 'POST', key: viewerKey });
    assert.equal(retry.status, 403);
    await checkA11y(page, 'order detail (viewer)');
    await screenshot(page, 'order-detail-viewer-1280');
    noProblems(page);
    await page.context().close();
  });

  test('plant text is shown as text: the hostile message renders literally', async () => {
    const page = admin;
    await go(page, `#/orders/${hostileId}`, '.event-message');
    assert.equal(await page.locator('.event-message').first().innerText(), HOSTILE);
    assert.equal(await page.locator('main img').count(), 0, 'no element made from the message');
    // Give an injected handler every chance: the image would fail at once.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    noProblems(page);
    await screenshot(page, 'order-hostile-1280');
  });
});

describe('keyboard', () => {
  test('the nav is reached by Tab, Enter opens a page and the focus moves to its content', async () => {
    const page = await signIn(browser, svc, svc.adminKey);
    await page.locator('#skip').focus();
    const reached = [];
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press('Tab');
      reached.push(await page.evaluate(() => document.activeElement.dataset.page || document.activeElement.textContent.trim()));
    }
    assert.deepEqual(reached.slice(0, 6), ['overview', 'review', 'orders', 'triage', 'rules', 'connectors']);
    assert.equal(reached[6], 'Sign out');
    // Back to "Work orders", Enter: the list opens and the focus is on <main>.
    for (let i = 0; i < 5; i++) await page.keyboard.press('Shift+Tab');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.page), 'orders');
    await page.keyboard.press('Enter');
    await page.locator('#page-info').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
    assert.equal(await page.locator('#nav a[aria-current="page"]').innerText(), 'Work orders');
    // The next Tab is the first filter, with a visible focus ring.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.name), 'status');
    assert.notEqual(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle), 'none');
    // The skip link goes to the content and leaves the route alone.
    await page.locator('#skip').focus();
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'main');
    assert.equal(await page.evaluate(() => location.hash), '#/orders');
    noProblems(page);
    await page.context().close();
  });
});

describe('sign-in', () => {
  test('a bad key shows the problem and stores nothing', async () => {
    const page = await signIn(browser, svc, 'wb_not_a_key_at_all', { expectFailure: true });
    const problem = page.locator('.problem[role="alert"]');
    await problem.waitFor();
    assert.match(await problem.innerText(), /unknown or revoked API key/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('wb.key')), null);
    assert.equal(await page.locator('#nav').isVisible(), false);
    await checkA11y(page, 'sign-in with a bad key');
    await screenshot(page, 'sign-in-bad-key-1280');
    await page.context().close();
  });

  test('sign-out forgets the key; the page needs no key to load', async () => {
    const page = await signIn(browser, svc, svc.adminKey);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('wb.key')), null);
    await checkA11y(page, 'sign-in');
    await screenshot(page, 'sign-in-1280');
    // Keyboard: the key field has the focus, the skip link is just before
    // it, and the focus is visible (an outline).
    assert.equal(await page.evaluate(() => document.activeElement.name), 'key');
    await page.keyboard.press('Shift+Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none');
    noProblems(page);
    await page.context().close();
  });
});
