// Browser tests of the operations dashboard against a running `studio up`.
import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {BASE, skipReason, launch, newPage, shot, fetchServer, missingRoute, submitJob, waitJob, makePNG} from './harness.mjs';

const skip = skipReason() || false;
let browser;

before(async () => {
  if (!skip) browser = await launch();
});
after(async () => {
  if (browser) await browser.close();
});

async function openOps() {
  const page = await newPage(browser, {viewport: {width: 1280, height: 1000}});
  await page.goto(`${BASE}/ops`);
  await page.selectOption('#interval', '2000');
  return page;
}

// chart reads what a chart holds from the data-* attributes the page keeps on it.
function chart(page, id) {
  return page.$eval(`#chart-${id}`, (e) => ({points: Number(e.dataset.points || 0), values: Number(e.dataset.values || 0),
    max: e.dataset.max === '' || e.dataset.max === undefined ? null : Number(e.dataset.max), series: e.dataset.series || '',
    drawn: !!e.querySelector('canvas')}));
}

test('the dashboard charts throughput, error rate, stage latency and queues from /metrics after a few jobs (needs /metrics)', {skip}, async (t) => {
  const probe = await fetchServer('/metrics');
  if (missingRoute(probe)) return t.skip(`GET /metrics answers ${probe.status}: not served yet`);
  const page = await openOps();
  // A first read, so that the jobs below fall inside the rate windows.
  await page.waitForFunction(() => window.__ops && window.__ops.scrapes >= 2, null, {timeout: 30000});
  const models = (await (await fetchServer('/v1/models')).json()).models;
  const jobs = [];
  for (let i = 0; i < 2; i++) {
    jobs.push(submitJob(makePNG(200, 150, Date.now() + i), {filename: `ops-${i}.png`}));
  }
  if (models.some((m) => m.task === 'upscale')) {
    jobs.push(submitJob(makePNG(48, 32, Date.now() + 7), {task: 'upscale', filename: 'ops-up.png', params: {scale: 2}}));
  }
  const submitted = await Promise.all(jobs);
  for (const {res, body} of submitted) assert.equal(res.status, 202, JSON.stringify(body));
  const done = await Promise.all(submitted.map(({body}) => waitJob(body.id)));
  for (const j of done) assert.equal(j.status, 'succeeded', JSON.stringify(j.error));

  // The page has seen every job once a scrape after the last one has been drawn.
  await page.waitForFunction((n) => {
    const d = (id) => document.getElementById(id).dataset;
    const row = [...document.querySelectorAll('#latency-table tbody tr')].find((r) => r.cells[0].textContent === 'store');
    return Number(d('chart-throughput').max) > 0 && Number(d('chart-latency-inference').values) > 0 && row && Number(row.cells[1].textContent) >= n;
  }, done.length, {timeout: 60000});
  const thr = await chart(page, 'throughput');
  assert.ok(thr.max > 0, JSON.stringify(thr));
  assert.equal(thr.drawn, true, 'uPlot drew the throughput chart');
  for (const s of ['preprocess', 'inference', 'postprocess', 'store']) {
    const c = await chart(page, `latency-${s}`);
    assert.ok(c.values > 0, `${s} latency: ${JSON.stringify(c)}`);
    assert.equal(c.series, 'p50,p95,p99');
  }
  const err = await chart(page, 'errors');
  assert.ok(err.values > 0, `error rate: ${JSON.stringify(err)}`);
  assert.equal((await chart(page, 'depth')).drawn, true);
  assert.equal((await chart(page, 'lag')).drawn, true);
  const runs = await page.$eval('#latency-table tbody', (b) => Object.fromEntries([...b.rows].map((r) => [r.cells[0].textContent, Number(r.cells[1].textContent)])));
  for (const s of ['preprocess', 'inference', 'postprocess', 'store']) assert.ok(runs[s] >= done.length, JSON.stringify(runs));
  assert.match(await page.textContent('#latest-throughput'), /succeeded \d/);
  assert.deepEqual(page.errors, []);
  await shot(page, 'ops-01-dashboard');
  await page.context().close();
});

test('the dashboard lists the models and whether each is loaded', {skip}, async () => {
  const page = await openOps();
  const models = (await (await fetchServer('/v1/models')).json()).models;
  await page.waitForSelector(`#models-table tr[data-model="${models[0].id}"]`);
  for (const m of models) {
    const row = await page.textContent(`#models-table tr[data-model="${m.id}"]`);
    assert.ok(row.includes(`${m.name} ${m.version}`), row);
    if (m.loaded !== undefined) assert.ok(row.includes(m.loaded ? 'loaded' : 'not loaded'), row);
  }
  await page.context().close();
});

test('business panels say "analytics not configured" when /ops/api/business answers 404 or 503', {skip}, async (t) => {
  const res = await fetchServer('/ops/api/business');
  if (res.status !== 404 && res.status !== 503) return t.skip(`analytics are configured or need an operator token here (${res.status})`);
  const page = await openOps();
  await page.waitForSelector('#biz-note:not([hidden])');
  assert.match(await page.textContent('#biz-note'), /Analytics not configured/);
  assert.ok(await page.isHidden('#biz-body'));
  await page.context().close();
});

test('business panels render the figures /ops/api/business returns', {skip}, async () => {
  const page = await newPage(browser, {viewport: {width: 1280, height: 1000}});
  const day = 24 * 3600 * 1000;
  const now = Date.now();
  const body = {window: '7d', from: new Date(now - 7 * day).toISOString(), to: new Date(now).toISOString(),
    totals: {jobs: 120, succeeded: 114, failed: 5, cancelled: 1, cache_hits: 12, users: 9, thumbs_up: 30, thumbs_down: 3, input_bytes: 250e6},
    series: Array.from({length: 7}, (_, i) => ({start: new Date(now - (7 - i) * day).toISOString(), jobs: 10 + i * 3, succeeded: 9 + i * 3, failed: 1})),
    models: [{task: 'remove-background', model: 'isnet', version: 'small', jobs: 100, failed: 4, p50_ms: 4100, p95_ms: 6900, thumbs_up: 28, thumbs_down: 3}],
    tenants: [{tenant: 'acme', jobs: 80, users: 5, input_bytes: 150e6}],
    errors: [{code: 'corrupt_image', stage: 'preprocess', count: 4}],
    replays: [{replay_id: '01jreplay', task: 'remove-background', model: 'isnet', original_version: 'small', shadow_version: 'large',
      requests: 10, compared: 9, failed: 1, mean_iou: 0.987, min_iou: 0.91, original_p50_ms: 4100, shadow_p50_ms: 5200}]};
  await page.route('**/ops/api/business?*', (r) => r.fulfill({status: 200, contentType: 'application/json', body: JSON.stringify(body)}));
  await page.goto(`${BASE}/ops`);
  await page.waitForSelector('#biz-body:not([hidden])');
  assert.match(await page.textContent('#biz-kpis'), /120/);
  assert.match(await page.textContent('#biz-models'), /isnet small/);
  assert.match(await page.textContent('#biz-errors'), /corrupt_image/);
  assert.match(await page.textContent('#biz-replays'), /isnet small → large.*0\.9870 \/ 0\.9100/s);
  const c = await chart(page, 'biz');
  assert.equal(c.points, 7);
  await page.locator('#business').scrollIntoViewIfNeeded();
  await shot(page, 'ops-02-business', {fullPage: false});
  await page.context().close();
});

test('the SQL box runs a cookbook query and a typed one against the real analytics store, charts it and offers CSV', {skip}, async (t) => {
  const probe = await fetchServer('/ops/api/sql', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({sql: 'SELECT 1'})});
  if (probe.status !== 200) return t.skip(`POST /ops/api/sql answers ${probe.status}: analytics are off or need an operator token here`);
  const page = await openOps();
  await page.waitForFunction(() => document.querySelectorAll('#sql-cookbook option').length > 1, null, {timeout: 30000});
  await page.selectOption('#sql-cookbook', 'p95_by_stage');
  await page.waitForFunction(() => (window.__ops.sqlRuns || 0) >= 1, null, {timeout: 60000});
  assert.match(await page.textContent('#sql-result thead'), /stage/);
  assert.match(await page.textContent('#sql-note'), /rows .*on ClickHouse 2\d\./);

  await page.fill('#sql-text', "SELECT arrayJoin(['a', 'b', 'c']) AS letter, length(letter) * 2 AS n, 'x,\"y' AS quoted");
  await page.press('#sql-text', 'Control+Enter');
  await page.waitForFunction(() => window.__ops.sqlRuns >= 2, null, {timeout: 60000});
  assert.equal(await page.$$eval('#sql-result tbody tr', (rows) => rows.length), 3);
  assert.equal(await page.getAttribute('#sql-chart', 'data-bars'), '3');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#sql-csv')]);
  const chunks = [];
  for await (const c of await download.createReadStream()) chunks.push(c);
  assert.equal(Buffer.concat(chunks).toString(), 'letter,n,quoted\r\na,2,"x,""y"\r\nb,2,"x,""y"\r\nc,2,"x,""y"\r\n');

  await page.fill('#sql-text', 'DROP TABLE jobs');
  await page.click('#sql-run');
  await page.waitForFunction(() => document.querySelector('#sql-note').dataset.state === 'error');
  assert.match(await page.textContent('#sql-note'), /read-only/);
  await page.locator('#sql').scrollIntoViewIfNeeded();
  await shot(page, 'ops-04-sql', {fullPage: false});
  await page.context().close();
});

test('the dashboard fits a phone-width screen', {skip}, async () => {
  const page = await newPage(browser, {viewport: {width: 375, height: 740}, isMobile: true, hasTouch: true});
  await page.goto(`${BASE}/ops`);
  await page.waitForFunction(() => window.__ops && window.__ops.attempts >= 1);
  await page.waitForTimeout(500);
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'the dashboard overflows');
  await shot(page, 'ops-03-phone');
  await page.context().close();
});
