// Browser scenarios of the review, triage, rules and connectors pages
// (issue 19 §4), against the real binary (harness.mjs starts it).
//
// The scenarios make their own rules, assets and events with codes and tags
// of their own, evaluated before any seeded rule (position -100), so they do
// not depend on what seedDemo loads beyond the sandbox connector.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { checkA11y, launchBrowser, screenshot, seedDemo, signIn, startService } from './harness.mjs';

const RUN = Date.now().toString(36).slice(-5).toUpperCase();
const HOSTILE = '<img src=x onerror=alert(1)>';

let svc;
let browser;
let adminPage;
let reviewRule;
let liveRule;

/** Calls the API directly (as a client would); returns { status, body }. */
async function call(method, path, body, key = svc.adminKey) {
  const headers = { Authorization: `Bearer ${key}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = path === '/v1/events' ? 'application/cloudevents+json' : 'application/json';
  const res = await fetch(svc.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

async function ok(method, path, body, key) {
  const r = await call(method, path, body, key);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path} answered ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Polls until fn returns a truthy value (the service works in the background). */
async function eventually(fn, what, ms = 20000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let seq = 0;
function event({ type = 'tdl.anomaly', subject, code, severity = 'major', value, threshold, unit = 'mm/s', message }) {
  const data = { state: 'raised', code, severity };
  if (value !== undefined) Object.assign(data, { value, threshold, unit });
  if (message) data.message = message;
  return {
    specversion: '1.0',
    id: `c2-${RUN}-${++seq}`,
    source: 'tdl://bedford/browser-tests',
    type,
    time: new Date().toISOString(),
    subject,
    data,
  };
}

async function postEvent(spec) {
  const e = event(spec);
  const r = await ok('POST', '/v1/events', e);
  return { ...r, event_id: e.id };
}

async function asset(id, criticality) {
  const tag = `C2${RUN}.AREA.${id}.VIB`;
  await ok('POST', '/v1/assets', { id, site: 'BEDFORD', name: `Test pump ${id}`, class: 'PUMP', criticality, tags: [tag] });
  return tag;
}

/** Waits for the page in view to finish loading (the router does not cancel a slow render). */
async function settle(page) {
  await page.waitForFunction(() => !document.querySelector('main .loading'), null, { timeout: 15000 }).catch(() => {});
}

async function go(page, hash, selector) {
  await settle(page);
  await page.evaluate((h) => {
    // The same hash again fires no hashchange: ask the router to render anyway.
    if (location.hash === h) window.dispatchEvent(new HashChangeEvent('hashchange'));
    else location.hash = h;
  }, hash);
  if (selector) await page.waitForSelector(selector);
}

async function toastWith(page, text) {
  await page.waitForSelector(`#toasts .toast:has-text("${text}")`);
}

/** The text of the overview's rules-table row that names the rule (name or id). */
async function overviewRuleRow(page, rule) {
  await go(page, '#/overview');
  const row = page.locator('main tr', { hasText: rule.name }).or(page.locator('main tr', { hasText: rule.id })).first();
  await row.waitFor({ timeout: 20000 });
  return (await row.innerText()).replace(/\s+/g, ' ').trim();
}

before(async () => {
  svc = await startService();
  await seedDemo(svc);
  if ((await call('GET', '/v1/connectors/sandbox')).status === 404) {
    await ok('POST', '/v1/connectors', { name: 'sandbox', config: { kind: 'sandbox' } });
  }
  reviewRule = await ok('POST', '/v1/rules', {
    name: `c2-review-${RUN}`,
    position: -100,
    mode: 'review',
    when: { types: ['tdl.anomaly'], codes: ['C2_REVIEW'], condition: 'event.value > event.threshold' },
    action: { kind: 'create', connector: 'sandbox', work_type: 'inspection', priority: 3, title: 'Check {{ asset.name }}: {{ event.code }}' },
  });
  liveRule = await ok('POST', '/v1/rules', {
    name: `c2-live-${RUN}`,
    position: -99,
    when: { types: ['tdl.alert'], codes: ['C2_TRIAGE'] },
    action: { kind: 'create', connector: 'sandbox', work_type: 'corrective', priority: 2 },
  });
  browser = await launchBrowser();
  adminPage = await signIn(browser, svc, svc.adminKey);
});

// axe's lesser findings (moderate, minor), reported at the end of the run.
const axeNotes = [];

/** axe on the page: serious or critical fails the test; the rest is noted. */
async function a11y(page, label) {
  const all = await checkA11y(page, label);
  for (const v of all) axeNotes.push(`${label}: ${v.impact} ${v.id} (${v.nodes.length})`);
}

/** A screenshot of the page without the toasts of earlier steps on top of it. */
async function shot(page, name) {
  await page.evaluate(() => document.getElementById('toasts')?.replaceChildren());
  await screenshot(page, name);
}

/** No uncaught error, dialog (injected markup) or CSP violation on the page so far. */
function clean(page) {
  assert.deepEqual(page.problems ?? [], [], 'page problems');
}

after(async () => {
  console.log(`axe, moderate or minor findings on the pages: ${axeNotes.length ? `\n  ${axeNotes.join('\n  ')}` : 'none'}`);
  await browser?.close();
  await svc?.stop();
});

describe('review queue', () => {
  test('a proposal shows its evidence, is approved, and its order reaches the sandbox EAM', async () => {
    const tag = await asset(`C2P1-${RUN}`, 'A');
    const d = await postEvent({ subject: tag, code: 'C2_REVIEW', value: 7.9, threshold: 4.5, message: `Vibration ${HOSTILE} rising` });
    assert.equal(d.outcome, 'created');
    const id = d.work_order_id;
    assert.equal((await ok('GET', `/v1/work-orders/${id}`)).status, 'proposed');

    const page = adminPage;
    await go(page, '#/review', `article.proposal[data-id="${id}"] .evidence table`);
    const card = page.locator(`article.proposal[data-id="${id}"]`);
    const text = await card.innerText();
    assert.match(text, /7\.9 mm\/s \(threshold 4\.5 mm\/s, above\)/, 'value against threshold');
    assert.match(text, /Criticality\s+A/, 'asset criticality');
    assert.match(text, new RegExp(`c2-review-${RUN}`), 'the rule');
    // Plant text renders as text: the hostile message shows literally, no element made.
    assert.ok(text.includes(HOSTILE), 'hostile message shown literally');
    assert.equal(await page.locator('main img').count(), 0);
    await card.locator('summary', { hasText: 'Decision trace' }).click();
    assert.match(await card.locator('.trace').innerText(), /Rules tried[\s\S]*matched/);
    await a11y(page, 'review');
    await shot(page, 'review');

    await card.getByLabel('Approval comment (optional)').fill('Bearing noise confirmed on site');
    await card.locator(`button[aria-label="Approve ${id}"]`).click();
    await toastWith(page, `Approved ${id}`);
    await page.waitForSelector(`article.proposal[data-id="${id}"]`, { state: 'detached' });
    const order = await ok('GET', `/v1/work-orders/${id}`);
    assert.notEqual(order.status, 'proposed');
    assert.ok(
      order.history.some((e) => e.review === 'approved' && (e.note || '').includes('Bearing noise confirmed on site')),
      'the approval comment is in the history',
    );
    const sandbox = await eventually(async () => {
      const p = await ok('GET', '/v1/sandbox/orders?limit=500');
      return p.items.find((o) => o.reference === id);
    }, 'the approved order in the sandbox EAM');
    assert.match(sandbox.id, /^SBX-/);
    clean(page);
  });

  test('a rejection with a reason (keyboard) changes the rule\u2019s precision on the overview', async () => {
    const tag = await asset(`C2P2-${RUN}`, 'B');
    const d = await postEvent({ subject: tag, code: 'C2_REVIEW', value: 5.2, threshold: 4.5 });
    const id = d.work_order_id;
    const page = adminPage;
    const before = await overviewRuleRow(page, reviewRule);

    await go(page, '#/review', `article.proposal[data-id="${id}"]`);
    // Move to the proposal with j/k, then r opens its reject form.
    const ids = await page.locator('article.proposal').evaluateAll((as) => as.map((a) => a.dataset.id));
    await page.locator('main h1').click();
    for (let i = 0; i < ids.indexOf(id); i++) await page.keyboard.press('j');
    await page.keyboard.press('r');
    const reason = page.locator(`article.proposal[data-id="${id}"] textarea[name=reason]`);
    await reason.waitFor();
    assert.ok(await reason.evaluate((el) => el === document.activeElement), 'r focuses the reason');
    // Typing "a" and "x" in the field must not approve or select.
    const why = 'a sensor artefact at start-up, x-axis noise';
    await page.keyboard.type(why);
    assert.equal(await reason.inputValue(), why);
    await page.locator(`article.proposal[data-id="${id}"] button`, { hasText: 'Reject proposal' }).click();
    await toastWith(page, `Rejected ${id}`);
    assert.equal((await ok('GET', `/v1/work-orders/${id}`)).status, 'rejected');

    const kpis = await ok('GET', '/v1/kpis/rules');
    const mine = kpis.filter((k) => k.rule_id === reviewRule.id);
    assert.ok(mine.some((k) => k.false_alarm >= 1), `the rejection counts as a false alarm: ${JSON.stringify(mine)}`);
    const afterRow = await overviewRuleRow(page, reviewRule);
    assert.notEqual(afterRow, before, 'the overview rules row changed');
    assert.match(afterRow, /0 %/, `precision shown as 0 %: ${afterRow}`);
    clean(page);
  });

  test('bulk approve of a selection (checkbox and x)', async () => {
    const t3 = await asset(`C2P3-${RUN}`, 'C');
    const t4 = await asset(`C2P4-${RUN}`, 'C');
    const a = (await postEvent({ subject: t3, code: 'C2_REVIEW', value: 9, threshold: 4.5 })).work_order_id;
    const b = (await postEvent({ subject: t4, code: 'C2_REVIEW', value: 9, threshold: 4.5 })).work_order_id;
    const page = adminPage;
    await go(page, '#/review', `article.proposal[data-id="${b}"]`);
    await page.locator(`article.proposal[data-id="${a}"] input[type=checkbox]`).check();
    // x toggles the current proposal: focus b's card, then x.
    await page.locator(`article.proposal[data-id="${b}"]`).focus();
    await page.keyboard.press('x');
    assert.ok(await page.locator(`article.proposal[data-id="${b}"] input[type=checkbox]`).isChecked());
    assert.match(await page.locator('.sel-count').innerText(), /2 selected/);
    await page.getByRole('button', { name: 'Approve selected' }).click();
    await toastWith(page, 'Approved 2 of 2');
    for (const id of [a, b]) assert.equal((await ok('GET', `/v1/work-orders/${id}`)).status === 'proposed', false);
  });

  test('a approves the current proposal from the keyboard, and the focus stays in the queue', async () => {
    const tag = await asset(`C2P7-${RUN}`, 'B');
    const id = (await postEvent({ subject: tag, code: 'C2_REVIEW', value: 7, threshold: 4.5 })).work_order_id;
    const page = adminPage;
    await go(page, '#/review', `article.proposal[data-id="${id}"]`);
    await page.locator(`article.proposal[data-id="${id}"]`).focus();
    await page.keyboard.press('a');
    await toastWith(page, `Approved ${id}`);
    await page.waitForSelector(`article.proposal[data-id="${id}"]`, { state: 'detached' });
    assert.notEqual((await ok('GET', `/v1/work-orders/${id}`)).status, 'proposed');
    // After the refresh the focus is on a proposal or the page, not lost on <body>.
    assert.ok(await page.evaluate(() => document.activeElement !== document.body && document.getElementById('main').contains(document.activeElement)));
    clean(page);
  });

  test('a viewer sees no approve button, and the API refuses the viewer anyway', async () => {
    const tag = await asset(`C2P5-${RUN}`, 'B');
    const id = (await postEvent({ subject: tag, code: 'C2_REVIEW', value: 6, threshold: 4.5 })).work_order_id;
    const viewerKey = await svc.createKey('viewer');
    const page = await signIn(browser, svc, viewerKey);
    try {
      await go(page, '#/review', `article.proposal[data-id="${id}"] .evidence table`);
      assert.equal(await page.locator('main button', { hasText: /^Approve/ }).count(), 0);
      assert.equal(await page.locator('main button', { hasText: /^Reject/ }).count(), 0);
      assert.equal(await page.locator('main input[type=checkbox]').count(), 0);
      // Shortcuts that act do nothing for a viewer.
      await page.locator(`article.proposal[data-id="${id}"]`).focus();
      await page.keyboard.press('a');
      await a11y(page, 'review (viewer)');
      await shot(page, 'review-viewer');
      const r = await call('POST', `/v1/work-orders/${id}/approve`, undefined, viewerKey);
      assert.equal(r.status, 403);
      const bulk = await call('POST', '/v1/proposals/approve', { ids: [id] }, viewerKey);
      assert.equal(bulk.status, 403);
      assert.equal((await ok('GET', `/v1/work-orders/${id}`)).status, 'proposed');
      clean(page);
    } finally {
      await page.close();
    }
  });

  test('the queue on a tablet', async () => {
    const page = await signIn(browser, svc, svc.adminKey, { viewport: { width: 820, height: 1180 } });
    try {
      await go(page, '#/review', 'article.proposal .evidence table');
      await a11y(page, 'review (tablet)');
      await shot(page, 'review-tablet');
    } finally {
      await page.close();
    }
  });
});

describe('rules', () => {
  test('versions diff, a dry run with its trace, and a backtest', async () => {
    // A second version of the review rule, so there is something to diff.
    await ok('PUT', `/v1/rules/${reviewRule.id}`, {
      name: reviewRule.name,
      position: -100,
      mode: 'review',
      expire_after_hours: 48,
      when: { types: ['tdl.anomaly'], codes: ['C2_REVIEW'], condition: 'event.value > event.threshold' },
      action: { kind: 'create', connector: 'sandbox', work_type: 'inspection', priority: 3, title: 'Check {{ asset.name }}: {{ event.code }}' },
    });
    const page = adminPage;
    await go(page, '#/rules', 'main table');
    await page.getByRole('button', { name: `Versions of ${reviewRule.name}` }).click();
    await page.waitForSelector('pre.diff');
    assert.match(await page.locator('.diff-wrap [role=status]').innerText(), /Version 1 → 2: \d+ line\(s\) added/);
    const added = await page.locator('pre.diff .diff-add').allInnerTexts();
    assert.ok(added.some((l) => l.includes('"expire_after_hours": 48')), `diff shows the change: ${added.join('|')}`);

    const tag = await asset(`C2P6-${RUN}`, 'A');
    const ev = event({ subject: tag, code: 'C2_REVIEW', value: 8, threshold: 4.5 });
    await page.getByLabel('Event (CloudEvent JSON)').fill(JSON.stringify(ev, null, 2));
    await page.getByRole('button', { name: 'Run dry run' }).click();
    await page.waitForSelector('.dry-run-result');
    const result = await page.locator('.dry-run-result').innerText();
    assert.match(result, /Outcome\s+created/);
    assert.match(result, /Would create/);
    assert.match(result, /Rules tried/);
    assert.match(result, new RegExp(`${reviewRule.name} v2 — matched`));
    // A bad paste is reported, not thrown.
    await page.getByLabel('Event (CloudEvent JSON)').fill('{ not json');
    await page.getByRole('button', { name: 'Run dry run' }).click();
    await page.waitForSelector('.dry-run .problem:has-text("Event is not valid JSON")');

    await page.getByRole('button', { name: 'Run backtest' }).click();
    await page.waitForSelector('.backtest-result');
    assert.match(await page.locator('.backtest-result').innerText(), /event\(s\) from/);
    await page.getByLabel('Event (CloudEvent JSON)').fill(JSON.stringify(ev, null, 2));
    await page.getByRole('button', { name: 'Run dry run' }).click();
    await page.waitForSelector('.dry-run-result');
    await a11y(page, 'rules');
    await shot(page, 'rules');
    clean(page);
  });
});

describe('triage', () => {
  test('an unmapped event is fixed from the page (asset created, re-decided) and its order appears', async () => {
    const tag = `C2${RUN}.NEW.P77.TEMP`;
    const d = await postEvent({ type: 'tdl.alert', subject: tag, code: 'C2_TRIAGE', value: 91, threshold: 85, unit: 'degC', message: HOSTILE });
    assert.equal(d.outcome, 'unmapped');
    const page = adminPage;
    await go(page, '#/triage', 'main table');
    await page.getByRole('button', { name: `Fix ${tag}` }).click();
    const panel = page.locator('.fix-panel');
    await panel.locator('dd.plant-text').waitFor();
    assert.equal(await panel.locator('dd.plant-text').innerText(), HOSTILE);
    const form = panel.locator('form', { hasText: 'Create the asset' });
    assert.equal(await form.getByLabel('Tags (comma-separated)').inputValue(), tag);
    await form.getByLabel('Asset id', { exact: true }).fill(`P77-${RUN}`);
    await form.getByLabel('Site', { exact: true }).fill('BEDFORD');
    await form.getByLabel('Name', { exact: true }).fill('Pump 77');
    await form.getByLabel('Class', { exact: true }).fill('PUMP');
    await form.getByLabel('Criticality', { exact: true }).selectOption('B');
    await form.getByRole('button', { name: 'Create asset' }).click();
    await panel.locator('.step-status:has-text("created")').waitFor();
    await panel.getByRole('button', { name: 'Re-decide the events of this tag' }).click();
    await panel.locator('.job-counts:has-text("done")').waitFor({ timeout: 30000 });
    assert.match(await panel.locator('.job-counts').innerText(), /1 selected, 1 changed, 0 unchanged, 0 failed/);
    const ev = await ok('GET', `/v1/events/${d.event_id}`);
    assert.equal(ev.outcome, 'created');
    assert.equal(ev.asset_id, `P77-${RUN}`);
    assert.ok(ev.work_order_id, 'the event opened an order');
    const order = await ok('GET', `/v1/work-orders/${ev.work_order_id}`);
    assert.equal(order.rule_id, liveRule.id);
    // The panel lists the event with its new outcome and a link to its order.
    const href = `a[href="#/orders/${encodeURIComponent(ev.work_order_id)}"]`;
    const link = panel.locator(href);
    await link.waitFor();
    assert.match(await panel.locator('tr', { has: page.locator(href) }).innerText(), /created/);
    // The tag has left the unmapped list.
    await page.waitForSelector(`main table code:has-text("${tag}")`, { state: 'detached' });
    await a11y(page, 'triage');
    await shot(page, 'triage');
    // The link opens the order's page.
    await link.click();
    await page.waitForFunction((id) => location.hash === `#/orders/${encodeURIComponent(id)}`, ev.work_order_id);
    await page.waitForSelector(`main :text("${ev.work_order_id}")`);
    clean(page);
  });

  test('the tag added to an existing asset, or a tag pattern, maps the events on re-decision', async () => {
    const page = adminPage;
    // 1. The tag, added to an asset that exists.
    const target = `C2ADD-${RUN}`;
    await ok('POST', '/v1/assets', { id: target, site: 'BEDFORD', name: 'Existing pump', class: 'PUMP', tags: [] });
    const tag1 = `C2${RUN}.ADD.X1.TEMP`;
    const e1 = await postEvent({ type: 'tdl.alert', subject: tag1, code: 'C2_TRIAGE' });
    assert.equal(e1.outcome, 'unmapped');
    await go(page, '#/triage', 'main table');
    await page.getByRole('button', { name: `Fix ${tag1}` }).click();
    let panel = page.locator('.fix-panel');
    const addForm = panel.locator('form', { hasText: 'Add the tag to an existing asset' });
    await addForm.getByLabel('Asset id', { exact: true }).fill(target);
    await addForm.getByRole('button', { name: 'Add tag' }).click();
    await panel.locator(`.step-status:has-text("Tag added to asset ${target}")`).waitFor();
    assert.deepEqual((await ok('GET', `/v1/assets/${target}`)).tags, [tag1]);
    await panel.getByRole('button', { name: 'Re-decide the events of this tag' }).click();
    await panel.locator('.job-counts:has-text("done")').waitFor({ timeout: 30000 });
    let ev = await ok('GET', `/v1/events/${e1.event_id}`);
    assert.equal(ev.asset_id, target);
    assert.equal(ev.outcome, 'created');

    // 2. A tag pattern for a family of tags.
    await ok('POST', '/v1/assets', { id: `FAM${RUN}-12`, site: 'BEDFORD', name: 'Family pump 12', class: 'PUMP', tags: [] });
    const tag2 = `C2${RUN}.FAM.P12.TEMP`;
    const e2 = await postEvent({ type: 'tdl.alert', subject: tag2, code: 'C2_TRIAGE' });
    assert.equal(e2.outcome, 'unmapped');
    await go(page, '#/triage', `main table code:has-text("${tag2}")`);
    await page.getByRole('button', { name: `Fix ${tag2}` }).click();
    panel = page.locator('.fix-panel');
    const patForm = panel.locator('form', { hasText: 'Add a tag pattern' });
    // Prefilled with the tag as an exact expression; widened here to the family.
    assert.equal(await patForm.getByLabel(/^Pattern/).inputValue(), tag2.replace(/\./g, '\\.'));
    await patForm.getByLabel(/^Pattern/).fill(`C2${RUN}\\.FAM\\.P(?P<n>\\d+)\\..*`);
    await patForm.getByLabel('Asset id template').fill(`FAM${RUN}-{n}`);
    await patForm.getByRole('button', { name: 'Add pattern' }).click();
    await panel.locator('.step-status:has-text("Tag pattern")').waitFor();
    await panel.getByRole('button', { name: 'Re-decide the events of this tag' }).click();
    await panel.locator('.job-counts:has-text("done")').waitFor({ timeout: 30000 });
    ev = await ok('GET', `/v1/events/${e2.event_id}`);
    assert.equal(ev.asset_id, `FAM${RUN}-12`);
    assert.equal(ev.mapped_by, 'pattern');
    assert.equal(ev.outcome, 'created');
    clean(page);
  });

  test('a failed delivery is listed and retried from the page', async () => {
    // An EAM that refuses orders (a permanent 4xx) until it is "fixed".
    let accept = false;
    const eam = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (accept) {
          res.writeHead(201, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ id: `EXT-${RUN}` }));
        } else {
          res.writeHead(422, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ error: { message: 'asset unknown in the EAM' } }));
        }
      });
    });
    await new Promise((r) => eam.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${eam.address().port}/orders`;
      await ok('POST', '/v1/connectors', { name: `c2-rest-${RUN}`.toLowerCase(), config: { kind: 'rest', url, id_path: 'id' } });
      await ok('POST', '/v1/rules', {
        name: `c2-fail-${RUN}`,
        position: -98,
        when: { codes: ['C2_FAIL'] },
        action: { kind: 'create', connector: `c2-rest-${RUN}`.toLowerCase(), work_type: 'corrective', priority: 2 },
      });
      const tag = await asset(`C2F1-${RUN}`, 'B');
      const id = (await postEvent({ type: 'tdl.alert', subject: tag, code: 'C2_FAIL' })).work_order_id;
      await eventually(async () => (await ok('GET', `/v1/work-orders/${id}`)).status === 'failed', 'the delivery to fail');

      const page = adminPage;
      await go(page, '#/triage', `main tr:has(a[href="#/orders/${id}"])`);
      const row = page.locator('main tr', { has: page.locator(`a[href="#/orders/${id}"]`) });
      assert.match(await row.innerText(), /asset unknown in the EAM/);
      accept = true;
      await row.getByRole('button', { name: `Retry ${id}` }).click();
      await toastWith(page, `Retry of ${id} queued`);
      const order = await eventually(async () => {
        const o = await ok('GET', `/v1/work-orders/${id}`);
        return o.external_id ? o : null;
      }, 'the retried order to be delivered');
      assert.equal(order.external_id, `EXT-${RUN}`);
      assert.notEqual(order.status, 'failed');
      clean(page);
    } finally {
      eam.close();
    }
  });

  test('a maintenance window is created for an asset and ended', async () => {
    const page = adminPage;
    await go(page, '#/triage', 'form.supp-form');
    const form = page.locator('form.supp-form');
    await form.getByLabel('Scope', { exact: true }).selectOption('asset');
    await form.getByLabel('Target (asset id, site or rule id)').fill(`C2P1-${RUN}`);
    await form.getByLabel('Reason', { exact: true }).fill('Bearing replacement');
    await form.getByRole('button', { name: 'Create window' }).click();
    await toastWith(page, `Maintenance window for asset C2P1-${RUN} created`);
    const row = page.locator('main tr', { hasText: `C2P1-${RUN}` });
    await row.waitFor();
    assert.match(await row.innerText(), /active/);
    const list = await ok('GET', '/v1/suppressions?active=true');
    assert.ok(list.some((s) => s.target === `C2P1-${RUN}` && s.scope === 'asset'));
    // An event for the asset meanwhile is suppressed.
    const d = await postEvent({ subject: `C2${RUN}.AREA.C2P1-${RUN}.VIB`, code: 'C2_REVIEW', value: 9, threshold: 4.5 });
    assert.equal(d.outcome, 'suppressed');
    await a11y(page, 'triage (suppressions)');
    await shot(page, 'triage-suppressions');
    await row.getByRole('button', { name: /^End suppression/ }).click();
    await page.locator('dialog[open] button', { hasText: 'OK' }).click();
    await toastWith(page, `Suppression of C2P1-${RUN} ended`);
    assert.ok(!(await ok('GET', '/v1/suppressions')).some((s) => s.target === `C2P1-${RUN}`));
  });
});

describe('connectors', () => {
  test('health, circuit and the check button', async () => {
    const page = adminPage;
    await go(page, '#/connectors', 'main table');
    const row = page.locator('main tr', { hasText: 'sandbox' }).first();
    assert.match(await row.innerText(), /healthy[\s\S]*closed/);
    await row.getByRole('button', { name: 'Check sandbox' }).click();
    await row.locator('.check-result .badge').waitFor();
    assert.match(await row.locator('.check-result').innerText(), /^OK/);
    await toastWith(page, 'sandbox: check passed');
    await a11y(page, 'connectors');
    await shot(page, 'connectors');
    clean(page);
  });
});

describe('roles and errors', () => {
  test('a viewer sees triage, rules and connectors read-only', async () => {
    const page = await signIn(browser, svc, await svc.createKey('viewer'));
    try {
      await postEvent({ type: 'tdl.alert', subject: `C2${RUN}.VIEW.Q1.TEMP`, code: 'C2_TRIAGE' });
      await go(page, '#/triage', 'main table code:has-text("VIEW.Q1")');
      assert.equal(await page.locator('form.supp-form').count(), 0, 'no maintenance-window form');
      assert.equal(await page.getByRole('button', { name: /^End suppression/ }).count(), 0);
      await page.getByRole('button', { name: `Fix C2${RUN}.VIEW.Q1.TEMP` }).click();
      await page.locator('.fix-panel .hint:has-text("An admin key is needed")').waitFor();
      assert.equal(await page.locator('.fix-panel form').count(), 0, 'no fix forms');
      assert.equal(await page.getByRole('button', { name: 'Re-decide the events of this tag' }).count(), 0);
      await a11y(page, 'triage (viewer)');

      await go(page, '#/rules', 'main table');
      assert.equal(await page.getByRole('button', { name: 'Run dry run' }).count(), 0);
      assert.equal(await page.getByRole('button', { name: 'Run backtest' }).count(), 0);
      await a11y(page, 'rules (viewer)');

      await go(page, '#/connectors', 'main table');
      assert.equal(await page.getByRole('button', { name: /^Check / }).count(), 0);
      await a11y(page, 'connectors (viewer)');
      clean(page);
    } finally {
      await page.close();
    }
  });

  test('a refused request shows the problem\u2019s detail, naming the parameter', async () => {
    const page = adminPage;
    await go(page, '#/review?since=not-a-date', 'main .problem');
    const problem = await page.locator('main .problem').innerText();
    assert.match(problem, /since/);
    // The filters stay usable to correct it.
    assert.equal(await page.getByRole('button', { name: 'Apply filters' }).count(), 1);
    const bad = await call('GET', '/v1/proposals?since=not-a-date');
    assert.equal(bad.status, 422);
    assert.ok(problem.includes(bad.body.detail), `the API's detail is shown: ${bad.body.detail}`);
    clean(page);
  });
});

describe('a long queue', () => {
  test('pages through the proposals, and rejects a whole page in bulk with one reason', async () => {
    const n = 23;
    const ids = Array.from({ length: n }, (_, i) => `C2Q${i}-${RUN}`);
    await ok(
      'POST',
      '/v1/assets/bulk',
      ids.map((id) => ({ id, site: 'BEDFORD', name: `Queue pump ${id}`, class: 'PUMP', criticality: 'C', tags: [`C2${RUN}.Q.${id}.VIB`] })),
    );
    for (const id of ids) await postEvent({ subject: `C2${RUN}.Q.${id}.VIB`, code: 'C2_REVIEW', value: 6, threshold: 4.5 });
    const total = (await ok('GET', '/v1/proposals?limit=1')).total;
    assert.ok(total > 20);
    const page = adminPage;
    await go(page, '#/review', 'main nav.pager');
    assert.equal(await page.locator('article.proposal').count(), 20);
    assert.match(await page.locator('main nav.pager').innerText(), new RegExp(`1–20 of ${total}`));
    await page.getByRole('link', { name: 'Next →' }).click();
    await page.waitForFunction(() => location.hash.includes('offset=20'));
    await page.locator('main nav.pager', { hasText: `21–${total} of ${total}` }).waitFor();
    const onPage = await page.locator('article.proposal').evaluateAll((as) => as.map((a) => a.dataset.id));
    assert.equal(onPage.length, total - 20);

    await page.getByLabel('Select all on this page').check();
    assert.match(await page.locator('.sel-count').innerText(), new RegExp(`${onPage.length} selected`));
    // No reason: refused on the page, nothing sent.
    await page.getByRole('button', { name: 'Reject selected' }).click();
    await toastWith(page, 'A reason is required to reject.');
    assert.equal((await ok('GET', `/v1/work-orders/${onPage[0]}`)).status, 'proposed');
    await page.getByLabel('Reason for rejecting the selected').fill('duplicate of a known issue');
    await page.getByRole('button', { name: 'Reject selected' }).click();
    await toastWith(page, `Rejected ${onPage.length} of ${onPage.length}`);
    for (const id of onPage) assert.equal((await ok('GET', `/v1/work-orders/${id}`)).status, 'rejected');
    // The page it was on is gone: the queue shows its last page instead.
    await page.waitForFunction(() => !location.hash.includes('offset='));
    await page.locator('main nav.pager', { hasText: '1–20 of 20' }).waitFor();
    clean(page);
  });
});
