// Browser tests of the web studio against a running `studio up` with the real models.
// Tests whose names end in "(needs …)" cover API routes that may not be served yet:
// they skip, saying why, on a server without them, and run once it has them.
import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {readFile} from 'node:fs/promises';
import {BASE, PHOTO, skipReason, launch, newPage, shot, photo, fetchServer, missingRoute, submitJob, waitJob,
  makePNG, pngHeader, alphaStats, GIF} from './harness.mjs';

const skip = skipReason() || false;
let browser;
// Filled in by the main flow and read by the tests that build on it.
const seen = {jobId: '', transports: new Set()};

before(async () => {
  if (!skip) browser = await launch();
});
after(async () => {
  if (browser) await browser.close();
});

async function open(opts) {
  const page = await newPage(browser, opts);
  await page.goto(`${BASE}/`);
  await page.waitForSelector('#task option[value="remove-background"]', {state: 'attached'});
  return page;
}

// watch records the progress bar's values and the transport until the result shows.
async function watchUntilResult(page, timeout = 180000) {
  const values = [];
  const end = Date.now() + timeout;
  for (;;) {
    const s = await page.evaluate(() => ({
      bar: Number(document.getElementById('bar').value),
      text: document.getElementById('progress-text').textContent,
      transport: document.getElementById('transport').dataset.kind || '',
      result: !document.getElementById('result').hidden,
      error: document.getElementById('job-error').hidden ? '' : document.getElementById('job-error').textContent,
    }));
    if (!values.length || values[values.length - 1].bar !== s.bar || values[values.length - 1].text !== s.text) values.push(s);
    if (s.transport) seen.transports.add(s.transport);
    if (s.error) throw new Error(`the job failed in the page: ${s.error}`);
    if (s.result) return values;
    if (Date.now() > end) throw new Error(`no result after ${timeout} ms; progress: ${JSON.stringify(values.slice(-5))}`);
    await page.waitForTimeout(100);
  }
}

test('the studio offers the served tasks and model versions from /v1/models', {skip}, async () => {
  const page = await open();
  const models = (await (await fetchServer('/v1/models')).json()).models;
  const tasks = await page.$$eval('#task option', (os) => os.map((o) => o.value));
  assert.ok(tasks.includes('remove-background'), `tasks offered: ${tasks}`);
  for (const t of tasks) assert.ok(models.some((m) => m.task === t), `task ${t} has no model`);
  const versions = await page.$$eval('#version option', (os) => os.map((o) => o.value));
  assert.deepEqual(versions.slice(1).sort(), models.filter((m) => m.task === 'remove-background').map((m) => m.id).sort());
  // remove-background: a 0..1 threshold slider, PNG output, the mask option.
  assert.equal(await page.getAttribute('#p-threshold', 'min'), '0');
  assert.equal(await page.getAttribute('#p-threshold', 'max'), '1');
  // Output format: PNG by default; quality shows for JPEG and WebP, the background
  // colour for JPEG only.
  assert.deepEqual(await page.$$eval('#p-format option', (os) => os.map((o) => o.value)), ['png', 'jpeg', 'webp']);
  assert.equal(await page.inputValue('#p-format'), 'png');
  assert.ok(!(await page.isVisible('#p-quality')) && !(await page.isVisible('#p-background')));
  await page.selectOption('#p-format', 'jpeg');
  assert.ok(await page.isVisible('#p-quality') && await page.isVisible('#p-background'));
  assert.equal(await page.inputValue('#p-quality'), '90');
  await page.selectOption('#p-format', 'webp');
  assert.ok(await page.isVisible('#p-quality') && !(await page.isVisible('#p-background')));
  await page.selectOption('#p-format', 'png');
  assert.ok(await page.isVisible('#p-mask'));
  // The limits are shown before anything is uploaded.
  assert.match(await page.textContent('#limits'), /JPEG, PNG or WEBP, up to 10(\.0)? MB/);
  if (tasks.includes('upscale')) {
    await page.selectOption('#task', 'upscale');
    assert.deepEqual(await page.$$eval('#p-scale option', (os) => os.map((o) => o.value)), ['2', '4']);
    await shot(page, 'studio-01-upscale-params');
    await page.selectOption('#task', 'remove-background');
  }
  await shot(page, 'studio-01-form');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a GIF is refused in the page with the server\'s problem detail', {skip}, async () => {
  const page = await open();
  const {res, body: problem} = await submitJob(GIF, {filename: 'tiny.gif', type: 'image/gif'});
  assert.ok(res.status >= 400 && problem.detail, `the server answered ${res.status}`);
  await page.setInputFiles('#file', {name: 'tiny.gif', mimeType: 'image/gif', buffer: GIF});
  await page.click('#run');
  await page.waitForSelector('#form-error:not([hidden])');
  const shown = await page.textContent('#form-error');
  assert.ok(shown.includes(problem.detail), `page shows ${JSON.stringify(shown)}, server said ${JSON.stringify(problem.detail)}`);
  if (problem.code) assert.ok(shown.includes(problem.code));
  assert.ok(await page.isHidden('#progress'), 'no job was started');
  await shot(page, 'studio-02-gif-refused');
  await page.context().close();
});

test('random bytes are refused in the page with the server\'s problem detail', {skip}, async () => {
  const page = await open();
  const junk = Buffer.from(Array.from({length: 2048}, (_, i) => (i * 7919 + 13) & 0xff));
  const {body: problem} = await submitJob(junk, {filename: 'photo.png', type: 'image/png'});
  await page.setInputFiles('#file', {name: 'photo.png', mimeType: 'image/png', buffer: junk});
  assert.match(await page.textContent('#preview-cap'), /no preview|photo\.png/);
  await page.click('#run');
  await page.waitForSelector('#form-error:not([hidden])');
  assert.ok((await page.textContent('#form-error')).includes(problem.detail));
  await shot(page, 'studio-03-random-bytes-refused');
  await page.context().close();
});

test('remove-background on a real photo: progress to 100%, before/after, PNG download with alpha, metadata', {skip}, async () => {
  const page = await open();
  await page.check('#p-mask'); // offer the mask download too
  // The result cache answers a repeat of the same photo and parameters without running
  // the model; a threshold of its own makes this run a real one.
  const threshold = (1 + Math.floor(Math.random() * 9)) / 100;
  await page.fill('#p-threshold', String(threshold));
  assert.equal(await page.textContent('#p-threshold-out'), threshold.toFixed(2));
  await page.setInputFiles('#file', {name: 'astronaut.png', mimeType: 'image/png', buffer: await photo()});
  await page.waitForFunction(() => document.getElementById('preview-img').naturalWidth > 0);
  await shot(page, 'studio-04-preview');
  await page.click('#run');
  await page.waitForSelector('#progress:not([hidden])');
  await page.waitForFunction(() => location.hash.startsWith('#job='));
  seen.jobId = decodeURIComponent(new URL(page.url()).hash.slice(5));
  await shot(page, 'studio-05-progress');
  const values = await watchUntilResult(page);
  const bars = values.map((v) => v.bar);
  assert.equal(Math.max(...bars), 100, `progress values ${bars}`);
  for (let i = 1; i < bars.length; i++) assert.ok(bars[i] >= bars[i - 1], `progress went back: ${bars}`);
  assert.match(await page.textContent('#progress-text'), /Done · 100%/);
  assert.equal(await page.getAttribute('#progress-text', 'aria-live'), 'polite');

  // Before and after, side by side and as a slider.
  await page.waitForFunction(() => ['before', 'after', 'cmp-before', 'cmp-after'].every((id) => document.getElementById(id).naturalWidth > 0));
  await shot(page, 'studio-06-result');
  await page.focus('#cmp-range');
  for (let i = 0; i < 20; i++) await page.keyboard.press('ArrowLeft');
  assert.equal(await page.inputValue('#cmp-range'), '30');
  assert.equal(await page.$eval('#compare', (e) => e.style.getPropertyValue('--split')), '30%');
  await page.locator('#compare-h').scrollIntoViewIfNeeded();
  await shot(page, 'studio-07-slider', {fullPage: false});

  // Metadata: dimensions, model and version, per-stage times, cache hit.
  const meta = await page.textContent('#meta');
  const job = await (await fetchServer(`/v1/jobs/${seen.jobId}`)).json();
  assert.ok(meta.includes(`${job.model} ${job.model_version}`), meta);
  assert.ok(meta.includes('512 × 512'), meta);
  assert.match(meta, /Cache hit\s*no/);
  assert.match(meta, new RegExp(`threshold = ${threshold}`));
  const stages = await page.$$eval('#stages tbody tr', (rows) => rows.map((r) => r.dataset.stage));
  assert.deepEqual(stages, ['preprocess', 'inference', 'postprocess', 'store']);

  // Downloads: one button per output (mask offered), and the cut-out is an RGBA PNG.
  const names = await page.$$eval('#downloads button', (bs) => bs.map((b) => b.dataset.name));
  assert.deepEqual(names.filter((n) => n !== 'thumbnail'), ['cutout', 'mask']);
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#downloads button[data-name="cutout"]')]);
  const png = await readFile(await dl.path());
  const hdr = pngHeader(png);
  assert.equal(hdr.colorType, 6, 'colour type 6: RGBA');
  assert.deepEqual([hdr.width, hdr.height], [512, 512]);
  const a = alphaStats(png);
  assert.ok(a.transparent > a.pixels * 0.05 && a.opaque > a.pixels * 0.05, `alpha: ${JSON.stringify(a)}`);
  assert.match(dl.suggestedFilename(), /\.png$/);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('remove-background to JPEG: the cut-out downloads as a .jpg whose background is the chosen colour', {skip}, async () => {
  const page = await open();
  // A threshold of its own keeps the result cache out of it.
  await page.fill('#p-threshold', String((10 + Math.floor(Math.random() * 9)) / 100));
  await page.selectOption('#p-format', 'jpeg');
  await page.fill('#p-quality', '80');
  await page.fill('#p-background', '#00ff00');
  await page.setInputFiles('#file', {name: 'astronaut.png', mimeType: 'image/png', buffer: await photo()});
  await page.waitForFunction(() => document.getElementById('preview-img').naturalWidth > 0);
  await page.click('#run');
  await page.waitForFunction(() => location.hash.startsWith('#job='));
  const id = decodeURIComponent(new URL(page.url()).hash.slice(5));
  await watchUntilResult(page);
  const job = await (await fetchServer(`/v1/jobs/${id}`)).json();
  assert.deepEqual([job.params.format, job.params.quality, job.params.background], ['jpeg', 80, '#00ff00']);
  assert.equal(job.results.cutout.content_type, 'image/jpeg');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#downloads button[data-name="cutout"]')]);
  const jpg = await readFile(await dl.path());
  assert.deepEqual([...jpg.subarray(0, 3)], [0xff, 0xd8, 0xff], 'a JPEG');
  assert.match(dl.suggestedFilename(), /\.jpg$/);
  await shot(page, 'studio-07b-jpeg-result');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('the "cut out and upscale" preset runs one chained job: one progress bar, the upscaled cut-out, every step\'s downloads (needs chained steps and an upscale model)', {skip}, async (t) => {
  const page = await open();
  if (await page.$eval('#preset-field', (e) => e.hidden)) {
    t.skip('no preset offered: the server serves no upscale model');
    await page.context().close();
    return;
  }
  await page.selectOption('#preset', 'cutout-upscale');
  await page.setInputFiles('#file', {name: 'chain.png', mimeType: 'image/png', buffer: makePNG(96, 64, Date.now() + 7)});
  await page.waitForFunction(() => document.getElementById('preview-img').naturalWidth > 0);
  await page.click('#run');
  await page.waitForFunction(() => location.hash.startsWith('#job='));
  const id = decodeURIComponent(new URL(page.url()).hash.slice(5));
  const values = await watchUntilResult(page, 600000);
  const bars = values.map((v) => v.bar);
  assert.equal(Math.max(...bars), 100, `progress values ${bars}`);
  for (let i = 1; i < bars.length; i++) assert.ok(bars[i] >= bars[i - 1], `progress went back: ${bars}`);
  await shot(page, 'studio-preset-chain');
  const job = await (await fetchServer(`/v1/jobs/${id}`)).json();
  assert.deepEqual(job.chain.map((s) => s.task), ['remove-background', 'upscale']);
  const names = await page.$$eval('#downloads button', (bs) => bs.map((b) => b.dataset.name));
  for (const n of ['image', 'step0.remove-background.cutout', 'step1.upscale.image']) assert.ok(names.includes(n), `downloads ${names}`);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('several files run as one batch: one card with counts and progress, refusals named, a ZIP of the results, and it reopens after a reload (needs POST /v2/batches)', {skip}, async (t) => {
  const probe = await fetchServer('/v2/batches/00000000000000000000000000', {method: 'GET'});
  if (missingRoute(probe)) return t.skip(`GET /v2/batches/{id} answers ${probe.status}: not served`);
  const page = await open();
  if (!(await page.$('#task option[value="upscale"]'))) return t.skip('this server does not serve upscale');
  await page.selectOption('#task', 'upscale');
  assert.match(await page.textContent('#limits'), /Several files run as one batch/);
  const files = [0, 1, 2].map((i) => ({name: `tile-${i}.png`, mimeType: 'image/png', buffer: makePNG(24, 16, 1000 + i)}));
  files.push({name: 'tiny.gif', mimeType: 'image/gif', buffer: GIF});
  await page.setInputFiles('#file', files);
  assert.match(await page.textContent('#preview-cap'), /4 images .* one batch/);
  await page.click('#run');
  await page.waitForSelector('#batch:not([hidden])');
  assert.match(await page.textContent('#batch-total'), /3 images/);
  assert.match(await page.textContent('#batch-refused'), /tiny\.gif/);
  const id = await page.textContent('#batch-id');
  assert.match(page.url(), new RegExp(`#batch=${id}$`));
  await page.waitForFunction(() => document.getElementById('batch-status').dataset.state === 'done', null, {timeout: 180000});
  assert.match(await page.textContent('#batch-status'), /Done: 3 succeeded, 0 failed, 0 cancelled/);
  assert.equal(await page.$eval('#batch-bar', (e) => e.value), 100);
  assert.equal(await page.$$eval('#batch-jobs li[data-status="succeeded"]', (l) => l.length), 3);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#batch-zip')]);
  assert.equal(download.suggestedFilename(), `batch-${id}.zip`);
  const chunks = [];
  for await (const c of await download.createReadStream()) chunks.push(c);
  const zip = Buffer.concat(chunks);
  assert.equal(zip.subarray(0, 2).toString(), 'PK', 'the download is a ZIP');
  await shot(page, 'studio-batch');
  await page.reload();
  await page.waitForSelector('#batch:not([hidden])');
  assert.equal(await page.textContent('#batch-id'), id);
  await page.click('#batch-jobs a');
  await page.waitForSelector('#result:not([hidden])', {timeout: 60000});
  await page.context().close();
});

test('ocr on a photographed page: boxes over the image, the lines in reading order, a copy button (needs an ocr model)', {skip}, async (t) => {
  const models = (await (await fetchServer('/v1/models')).json()).models;
  if (!models.some((m) => m.task === 'ocr')) return t.skip('the server serves no ocr model');
  const page = await newPage(browser, {permissions: ['clipboard-read', 'clipboard-write']});
  await page.goto(`${BASE}/`);
  await page.waitForSelector('#task option[value="ocr"]', {state: 'attached'});
  await page.selectOption('#task', 'ocr');
  assert.equal(await page.getAttribute('#p-min_confidence', 'max'), '1');
  // A confidence of its own keeps the result cache from answering a repeat run.
  const conf = (50 + Math.floor(Math.random() * 9)) / 100;
  await page.fill('#p-min_confidence', String(conf));
  const pagePNG = await readFile(PHOTO.replace(/[^/]+$/, 'page.png'));
  await page.setInputFiles('#file', {name: 'page.png', mimeType: 'image/png', buffer: pagePNG});
  await page.waitForFunction(() => document.getElementById('preview-img').naturalWidth > 0);
  await page.click('#run');
  await watchUntilResult(page);
  await page.waitForSelector('#ocr:not([hidden])');
  await page.waitForFunction(() => document.getElementById('after').naturalWidth === 384);
  const lines = await page.$$eval('#ocr-lines .ocr-text', (es) => es.map((e) => e.textContent));
  // The recogniser (a Chinese-English model) may run the title's two words together.
  assert.equal(lines[0].replaceAll(' ', ''), 'Region-basedsegmentation', `lines: ${lines}`);
  assert.ok(lines.length >= 6 && lines.some((l) => l.includes('markers of the coins')), `lines: ${lines}`);
  await shot(page, 'studio-ocr-result');
  await page.click('#ocr-copy');
  await page.waitForFunction(() => document.getElementById('ocr-copied').textContent !== '');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, lines.join('\n'));
  const names = await page.$$eval('#downloads button', (bs) => bs.map((b) => b.dataset.name));
  assert.deepEqual(names.filter((n) => n !== 'thumbnail').sort(), ['overlay', 'text']);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('progress arrives over the WebSocket (needs GET /v1/jobs/{id}/events with Upgrade)', {skip}, async (t) => {
  if (!seen.transports.size) return t.skip('the main flow did not run');
  if (!seen.transports.has('websocket')) {
    return t.skip(`this server does not answer WebSocket upgrades; the page followed the job with: ${[...seen.transports].join(', ')}`);
  }
  assert.ok(seen.transports.has('websocket'));
});

test('progress falls back to server-sent events without a WebSocket (needs a streaming SSE route)', {skip}, async (t) => {
  if (!seen.jobId) return t.skip('the main flow did not run');
  const probe = await fetchServer(`/v1/jobs/${seen.jobId}/events`, {headers: {Accept: 'text/event-stream'}});
  const ct = probe.headers.get('Content-Type') || '';
  await probe.body?.cancel();
  if (!probe.ok || !ct.includes('text/event-stream')) return t.skip(`GET /v1/jobs/{id}/events answers ${probe.status} ${ct}: no event stream yet`);
  const page = await newPage(browser);
  await page.addInitScript(() => { window.WebSocket = undefined; });
  await page.goto(`${BASE}/`);
  await page.waitForSelector('#task option[value="remove-background"]', {state: 'attached'});
  await page.setInputFiles('#file', {name: 'sse.png', mimeType: 'image/png', buffer: makePNG(320, 240, Date.now() + 99)});
  await page.click('#run');
  const values = await watchUntilResult(page);
  const kinds = new Set(values.map((v) => v.transport).filter(Boolean));
  assert.deepEqual([...kinds], ['sse'], `transports used: ${[...kinds]}`);
  assert.equal(values[values.length - 1].bar, 100);
  await page.context().close();
});

test('progress follows the job after a page reload', {skip}, async () => {
  const page = await open();
  await page.setInputFiles('#file', {name: 'disc.png', mimeType: 'image/png', buffer: makePNG(480, 360, Date.now())});
  await page.click('#run');
  await page.waitForFunction(() => location.hash.startsWith('#job='));
  const id = decodeURIComponent(new URL(page.url()).hash.slice(5));
  await page.reload();
  await page.waitForSelector('#progress:not([hidden])');
  assert.equal(await page.textContent('#progress-job'), id);
  await shot(page, 'studio-08-after-reload');
  const values = await watchUntilResult(page);
  assert.equal(values[values.length - 1].bar, 100);
  assert.equal(await page.getAttribute('#result', 'data-job'), id);
  await page.context().close();
});

test('thumbs up and a comment are sent to POST /v1/feedback (needs the feedback route)', {skip}, async (t) => {
  const probe = await fetchServer('/v1/feedback', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{}'});
  if (missingRoute(probe)) return t.skip(`POST /v1/feedback answers ${probe.status}: not served yet`);
  if (!seen.jobId) return t.skip('the main flow did not run');
  const page = await newPage(browser);
  await page.goto(`${BASE}/#job=${encodeURIComponent(seen.jobId)}`);
  await page.waitForSelector('#result:not([hidden])');
  await page.click('#thumb-up');
  assert.equal(await page.getAttribute('#thumb-up', 'aria-pressed'), 'true');
  await page.fill('#comment', 'Clean edges around the helmet.');
  const [req] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/feedback') && r.request().method() === 'POST' && r.ok()),
    page.click('#feedback button[type="submit"]'),
  ]);
  const sent = JSON.parse(req.request().postData());
  assert.equal(sent.job_id, seen.jobId);
  assert.ok(sent.rating === 1 || sent.rating === 'up', `rating ${sent.rating}`);
  assert.equal(sent.comment, 'Clean edges around the helmet.');
  await page.waitForSelector('#feedback-status[data-sent="true"]');
  await page.locator('#feedback').scrollIntoViewIfNeeded();
  await shot(page, 'studio-09-feedback', {fullPage: false});
  await page.context().close();
});

test('the gallery lists the job from GET /v1/jobs with a thumbnail and opens it (needs the job list)', {skip}, async (t) => {
  const probe = await fetchServer('/v1/jobs?limit=1');
  if (!probe.ok) return t.skip(`GET /v1/jobs answers ${probe.status}: not served yet`);
  if (!seen.jobId) return t.skip('the main flow did not run');
  const page = await open();
  const item = page.locator(`#gallery-list a[data-job="${seen.jobId}"]`);
  for (let i = 0; i < 5 && !(await item.count()); i++) {
    if (await page.isVisible('#more')) await page.click('#more');
    else break;
  }
  await item.waitFor();
  await item.locator('img').waitFor();
  assert.ok(await item.locator('img').evaluate((img) => img.complete && img.naturalWidth > 0));
  await page.locator('#gallery').scrollIntoViewIfNeeded();
  await shot(page, 'studio-10-gallery');
  await item.click();
  await page.waitForSelector(`#result[data-job="${seen.jobId}"]:not([hidden])`);
  await shot(page, 'studio-11-detail');
  await page.context().close();
});

test('the gallery pages through GET /v1/jobs with next_cursor (list answers stubbed in the page)', {skip}, async (t) => {
  if (!seen.jobId) return t.skip('the main flow did not run');
  const job = await (await fetchServer(`/v1/jobs/${seen.jobId}`)).json();
  const page = await newPage(browser);
  const cursors = [];
  await page.route('**/v1/jobs?*', (r) => {
    const u = new URL(r.request().url());
    cursors.push(u.searchParams.get('cursor') || '');
    const second = u.searchParams.get('cursor') === 'page-2';
    const fake = (n) => ({...job, id: `${job.id.slice(0, -2)}${String(n).padStart(2, '0')}`, status: 'failed', downloads: undefined});
    const body = second ? {jobs: [fake(2)]} : {jobs: [job, fake(1)], next_cursor: 'page-2'};
    return r.fulfill({status: 200, contentType: 'application/json', body: JSON.stringify(body)});
  });
  await page.goto(`${BASE}/`);
  await page.waitForSelector(`#gallery-list a[data-job="${seen.jobId}"] img`);
  assert.equal(await page.locator('#gallery-list li').count(), 2);
  await page.click('#more');
  await page.waitForFunction(() => document.querySelectorAll('#gallery-list li').length === 3);
  assert.ok(await page.isHidden('#more'), 'the last page hides "Load more"');
  assert.deepEqual(cursors.slice(-2), ['', 'page-2']);
  await page.locator('#gallery').scrollIntoViewIfNeeded();
  await shot(page, 'studio-10-gallery-pages', {fullPage: false});
  await page.click(`#gallery-list a[data-job="${seen.jobId}"]`);
  await page.waitForSelector(`#result[data-job="${seen.jobId}"]:not([hidden])`);
  await page.context().close();
});

test('jobs started in this browser are listed even when the server cannot list jobs', {skip}, async () => {
  if (!seen.jobId) return;
  const page = await open();
  await page.evaluate((id) => localStorage.setItem('studio.jobs', JSON.stringify([id])), seen.jobId);
  await page.route('**/v1/jobs?*', (r) => r.fulfill({status: 404, contentType: 'text/plain', body: '404 page not found'}));
  await page.reload();
  await page.waitForSelector(`#gallery-list a[data-job="${seen.jobId}"]`);
  assert.match(await page.textContent('#gallery-note'), /cannot list jobs yet/);
  await page.context().close();
});

test('the example photo is one click away', {skip}, async (t) => {
  const cfg = await (await fetchServer('/static/config.json')).json();
  if (!cfg.example) return t.skip('no example photo in the server\'s cache');
  const page = await open();
  await page.click('#example');
  await page.waitForFunction(() => document.getElementById('preview-img').naturalWidth > 0);
  assert.match(await page.textContent('#preview-cap'), /example\.png/);
  await page.context().close();
});

test('a 401 shows the sign-in box, and the token then goes out as a Bearer header', {skip}, async () => {
  const page = await newPage(browser);
  const auths = [];
  await page.route('**/v1/**', async (route) => {
    const auth = route.request().headers().authorization || '';
    auths.push(auth);
    if (auth !== 'Bearer dev-token-for-test') {
      return route.fulfill({status: 401, contentType: 'application/problem+json',
        body: JSON.stringify({type: '/docs/problems#unauthorized', title: 'Unauthorized', status: 401, code: 'unauthorized', detail: 'a bearer token is required'})});
    }
    return route.continue();
  });
  await page.goto(`${BASE}/`);
  await page.waitForSelector('#signin:not([hidden])');
  assert.match(await page.textContent('#signin-why'), /a bearer token is required/);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'token');
  await shot(page, 'studio-12-signin');
  await page.fill('#token', 'dev-token-for-test');
  await page.press('#token', 'Enter');
  await page.waitForSelector('#task option[value="remove-background"]', {state: 'attached'});
  assert.ok(await page.isHidden('#signin'));
  assert.equal(await page.evaluate(() => localStorage.getItem('studio.token')), 'dev-token-for-test');
  assert.ok(auths.includes('Bearer dev-token-for-test'));
  await page.context().close();
});

test('sign-in with the dev token printed by studio up (needs authentication on)', {skip}, async (t) => {
  const token = process.env.STUDIO_DEV_TOKEN;
  if (!token) return t.skip('STUDIO_DEV_TOKEN is not set: the server printed no dev token');
  const page = await newPage(browser);
  await page.goto(`${BASE}/`);
  await page.evaluate(() => localStorage.removeItem('studio.token'));
  await page.evaluate(() => fetch('/v1/jobs?limit=1').then((r) => r.status)).then((s) => assert.equal(s, 401, 'the list needs a token'));
  await page.click('#signin-open');
  await page.fill('#token', token);
  await page.press('#token', 'Enter');
  await page.waitForFunction(() => document.getElementById('account-state').textContent.includes('Signed in'));
  await page.context().close();
});

test('the studio works at phone width without sideways scrolling', {skip}, async () => {
  const page = await open({viewport: {width: 375, height: 740}, isMobile: true, hasTouch: true, deviceScaleFactor: 2});
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'the form overflows');
  await shot(page, 'studio-13-phone-form');
  if (seen.jobId) {
    await page.goto(`${BASE}/#job=${encodeURIComponent(seen.jobId)}`);
    await page.waitForSelector('#result:not([hidden])');
    await page.waitForFunction(() => document.getElementById('after').naturalWidth > 0);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'the result overflows');
    await shot(page, 'studio-14-phone-result');
  }
  await page.context().close();
});

test('every control is reachable with Tab and shows a focus ring', {skip}, async () => {
  const page = await open();
  const seenIds = [];
  for (let i = 0; i < 20 && !seenIds.includes('run'); i++) {
    await page.keyboard.press('Tab');
    const f = await page.evaluate(() => {
      const e = document.activeElement;
      const s = getComputedStyle(e);
      const ring = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
      // The file input is visually hidden: its drop zone draws the ring.
      const zone = e.id === 'file' && getComputedStyle(document.getElementById('drop')).outlineStyle !== 'none';
      return {id: e.id || e.textContent.trim().slice(0, 20), ring: ring || zone};
    });
    seenIds.push(f.id);
    assert.ok(f.ring, `no focus ring on ${f.id}`);
  }
  for (const id of ['task', 'version', 'p-threshold', 'file', 'run']) assert.ok(seenIds.includes(id), `${id} not reached: ${seenIds}`);
  await page.context().close();
});

test('generate: a prompt box instead of the image drop, step-by-step progress, the generated image (needs a generate model; browser-test.sh serves a synthetic one)', {skip}, async (t) => {
  const models = (await (await fetchServer('/v1/models')).json()).models;
  if (!models.some((m) => m.task === 'generate')) { t.skip('the server serves no generate model'); return; }
  const page = await open();
  await page.waitForSelector('#task option[value="generate"]', {state: 'attached'});
  await page.waitForLoadState('networkidle');
  await page.selectOption('#task', 'generate');
  assert.ok(await page.isHidden('#drop'), 'the image drop is hidden for generate');
  for (const id of ['#p-prompt', '#p-negative_prompt', '#p-seed', '#p-steps', '#p-guidance', '#p-size', '#p-num_images']) {
    assert.ok(await page.isVisible(id), `${id} is shown`);
  }
  // Running without a prompt is refused in the page.
  await page.click('#run');
  assert.match(await page.textContent('#form-error'), /prompt/i);
  await page.fill('#p-prompt', 'a photo of a red cat');
  await page.fill('#p-negative_prompt', 'blurry');
  // A seed of its own per run, or the result cache would answer a rerun at once.
  const seed = String(Date.now() % 1000000000);
  await page.fill('#p-seed', seed);
  await page.fill('#p-steps', '150');
  await page.selectOption('#p-size', '512x512');
  await shot(page, 'studio-generate-01-form');
  const posted = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/v1/jobs'), {timeout: 30000});
  await page.click('#run');
  await posted;
  const values = await watchUntilResult(page);
  assert.ok(values.some((v) => /step \d+ of 150/.test(v.text)), `no step progress shown: ${JSON.stringify(values.map((v) => v.text))}`);
  assert.ok(await page.isHidden('#before'), 'no before picture for a generated image');
  assert.ok(await page.isVisible('#after'));
  const size = await page.$eval('#after', (img) => [img.naturalWidth, img.naturalHeight]);
  assert.deepEqual(size, [512, 512]);
  assert.match(await page.textContent('#meta'), new RegExp(`seed = ${seed}`));
  await shot(page, 'studio-generate-02-result');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('style transfer with an arbitrary-style model: a style-image upload appears, is required, and goes with the job (needs a model with takes_style; browser-test.sh serves a synthetic one)', {skip}, async (t) => {
  const models = (await (await fetchServer('/v1/models')).json()).models;
  const styler = models.find((m) => m.task === 'style-transfer' && m.takes_style);
  if (!styler) { t.skip('the server serves no arbitrary-style model'); return; }
  const page = await open();
  await page.waitForSelector('#task option[value="style-transfer"]', {state: 'attached'});
  await page.selectOption('#task', 'style-transfer');
  const plain = models.find((m) => m.task === 'style-transfer' && !m.takes_style);
  if (plain) {
    await page.selectOption('#version', plain.id);
    assert.ok(await page.isHidden('#style-field'), 'no style upload for a model whose style is in its weights');
  }
  await page.selectOption('#version', styler.id);
  assert.ok(await page.isVisible('#style-field'), 'the style upload is shown');
  await page.setInputFiles('#file', {name: 'astronaut.png', mimeType: 'image/png', buffer: await photo()});
  // Running without a style image is refused in the page.
  await page.click('#run');
  assert.match(await page.textContent('#form-error'), /style image/i);
  // The photo as its own style: a rerun on the same server is answered by the result
  // cache, which the page shows the same way.
  await page.setInputFiles('#style-file', {name: 'style.png', mimeType: 'image/png', buffer: await photo()});
  await shot(page, 'studio-style-01-form');
  const posted = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/v1/jobs'), {timeout: 30000});
  await page.click('#run');
  await posted;
  // The server refuses a job of this model without a style image (422 missing_field),
  // so a result means the style image went with it.
  await watchUntilResult(page);
  const job = await (await fetchServer(`/v1/jobs/${decodeURIComponent(new URL(page.url()).hash.slice(5))}`)).json();
  assert.equal(`${job.model}@${job.model_version}`, styler.id);
  assert.ok(await page.isVisible('#after'));
  await shot(page, 'studio-style-02-result');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
