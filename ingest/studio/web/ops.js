// ops.js drives the operations dashboard: it reads /metrics every few seconds, keeps
// the last minute of scrapes to compute rates and latency percentiles, charts them with
// uPlot, and shows the models, the stages and the business figures beside them.
import {api, json, token, setToken, clearToken, fmtBytes, fmtMS} from './api.js';
import * as prom from './prom.js';

const $ = (id) => document.getElementById(id);

function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

const RATE_WINDOW = 30; // seconds: jobs/s, requests/s, error rates
const LATENCY_WINDOW = 60; // seconds: stage and HTTP percentiles
const HISTORY = 15 * 60; // seconds of chart history
const STAGES = ['preprocess', 'inference', 'postprocess', 'store'];
const TIERS = ['premium', 'normal', 'free'];
const OUTCOMES = ['succeeded', 'failed', 'cancelled'];
const PALETTE = ['#0b57d0', '#b3261e', '#146c2e', '#8e24aa', '#e37400', '#00838f', '#5d4037', '#c2185b', '#455a64', '#7cb342', '#3949ab', '#f9a825'];

const snaps = []; // {t: seconds, p: parsed}, the last LATENCY_WINDOW and a bit
let timer = 0;
let scrapes = 0;
let attempts = 0;
const charts = {};
window.__ops = {charts, get scrapes() { return scrapes; }, get attempts() { return attempts; }};

// --- charts --------------------------------------------------------------------------

// Chart keeps a time series per named line and draws it with uPlot when the library
// loaded; without it only the latest values are shown, as text. The container's data-*
// attributes report what it holds (tests and people checking the page read them).
class Chart {
  // hideIdle leaves out lines that have been zero (or empty) all along, so that twelve
  // idle queues do not crowd the legend; `total` lines always show.
  constructor(id, {unit = '', fmt = (v) => v.toFixed(2), names = [], hideIdle = false, span = 300, integer = false} = {}) {
    this.integer = integer;
    this.el = $(id);
    this.unit = unit;
    this.fmt = fmt;
    this.hideIdle = hideIdle;
    this.span = span;
    this.xs = [];
    this.cols = new Map(names.map((n) => [n, []]));
    this.plot = null;
    this.shape = '';
    charts[id.replace(/^chart-/, '')] = this;
    if (window.ResizeObserver) {
      new ResizeObserver(() => {
        if (this.plot) this.plot.setSize({width: this.width(), height: 200});
      }).observe(this.el);
    }
  }

  width() {
    return Math.max(240, this.el.clientWidth || 300);
  }

  // push adds a point at time t (seconds) with a value (number or null) per line.
  push(t, values) {
    for (const name of Object.keys(values)) {
      if (!this.cols.has(name)) this.cols.set(name, this.xs.map(() => null));
    }
    this.xs.push(t);
    for (const [name, col] of this.cols) {
      const v = values[name];
      col.push(Number.isFinite(v) ? v : null);
    }
    while (this.xs.length && this.xs[0] < t - HISTORY) {
      this.xs.shift();
      for (const col of this.cols.values()) col.shift();
    }
    this.render();
  }

  render() {
    const names = [...this.cols.keys()];
    let count = 0;
    let max = -Infinity;
    for (const col of this.cols.values()) {
      for (const v of col) {
        if (v !== null) { count++; max = Math.max(max, v); }
      }
    }
    this.el.dataset.points = String(this.xs.length);
    this.el.dataset.values = String(count);
    this.el.dataset.max = count ? String(max) : '';
    this.el.dataset.series = names.join(',');
    if (!window.uPlot) return;
    const shown = this.hideIdle ? names.filter((n) => n === 'total' || this.cols.get(n).some((v) => v > 0)) : names;
    const data = [this.xs, ...shown.map((n) => this.cols.get(n))];
    const shape = shown.join('|');
    if (this.plot && shape === this.shape) {
      this.plot.setData(data);
      this.fitX();
      return;
    }
    if (this.plot) this.plot.destroy();
    this.el.replaceChildren();
    this.shape = shape;
    const fmt = (v) => (v === null || v === undefined ? '–' : `${this.fmt(v)}${this.unit}`);
    this.plot = new window.uPlot({
      width: this.width(),
      height: 200,
      cursor: {drag: {x: false, y: false}},
      legend: {live: true},
      scales: {
        x: {time: true},
        y: {range: (u, lo, hi) => [0, Math.max(hi || 0, this.unit === '%' ? 1 : this.unit === ' s' ? 0.01 : 1) * 1.1]},
      },
      axes: [{stroke: '#555b66', grid: {stroke: '#eceef1'}},
        {stroke: '#555b66', grid: {stroke: '#eceef1'}, size: 52, values: (u, vals) => vals.map((v) => this.fmt(v)),
          // Counts of messages or jobs: whole-number ticks only.
          incrs: this.integer ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000] : undefined}],
      series: [{}, ...shown.map((n) => {
        const i = names.indexOf(n); // a line keeps its colour when others appear
        return {label: n, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: false, value: (u, v) => fmt(v), points: {show: false}};
      })],
    }, data, this.el);
    this.fitX();
  }

  // fitX shows at least `span` seconds, ending at the newest point: uPlot alone would
  // stretch one point, or lines without values, over years.
  fitX() {
    const last = this.xs.length ? this.xs[this.xs.length - 1] : Date.now() / 1000;
    const first = this.xs.length ? this.xs[0] : last;
    this.plot.setScale('x', {min: Math.min(first, last - this.span), max: last});
  }
}

function latestText(id, parts) {
  $(id).textContent = parts.length ? `Now: ${parts.join(' · ')}` : 'No data yet.';
}

// --- scraping ------------------------------------------------------------------------

const chartThroughput = new Chart('chart-throughput', {unit: '/s', fmt: (v) => v.toFixed(v < 1 ? 3 : 2), names: OUTCOMES});
const chartErrors = new Chart('chart-errors', {unit: '%', fmt: (v) => v.toFixed(1), names: ['failed jobs', 'HTTP 5xx']});
const chartDepth = new Chart('chart-depth', {unit: '', fmt: (v) => v.toFixed(0), names: ['total'], hideIdle: true, integer: true});
const chartLag = new Chart('chart-lag', {unit: '', fmt: (v) => v.toFixed(0), names: ['total'], hideIdle: true, integer: true});
const latencyCharts = {};
for (const s of STAGES) addLatencyChart(s);

function addLatencyChart(stage) {
  if (latencyCharts[stage]) return latencyCharts[stage];
  const id = `chart-latency-${stage}`;
  $('latency-grid').append(h('figure', {class: 'panel'},
    h('figcaption', {}, h('strong', {text: stage})),
    h('div', {class: 'chart', id, role: 'img', 'aria-label': `${stage} latency percentiles`}),
    h('p', {class: 'latest', id: `latest-latency-${stage}`})));
  latencyCharts[stage] = new Chart(id, {unit: ' s', fmt: fmtSeconds, names: ['p50', 'p95', 'p99']});
  return latencyCharts[stage];
}

function fmtSeconds(v) {
  if (v >= 10) return v.toFixed(0);
  if (v >= 1) return v.toFixed(1);
  if (v >= 0.01) return v.toFixed(2);
  return v.toFixed(3);
}

// reference returns the oldest kept scrape inside the window before the newest one.
function reference(window) {
  const cur = snaps[snaps.length - 1];
  for (const s of snaps) {
    if (s === cur) return null;
    if (s.t >= cur.t - window - 1) return s;
  }
  return null;
}

async function scrape() {
  clearTimeout(timer);
  attempts++;
  let text;
  try {
    const res = await api('/metrics', {headers: {Accept: 'text/plain;version=0.0.4'}});
    text = await res.text();
    $('scrape-error').hidden = true;
  } catch (e) {
    $('scrape-error').textContent = e.status === 401
      ? 'The server refused to show its metrics: sign in with a token that may read them.'
      : `Could not read /metrics: ${e.detail || e.message}`;
    $('scrape-error').hidden = false;
    schedule();
    return;
  }
  const now = Date.now() / 1000;
  const p = prom.parse(text);
  snaps.push({t: now, p});
  while (snaps.length > 2 && snaps[0].t < now - LATENCY_WINDOW - 15) snaps.shift();
  scrapes++;
  try {
    update(now, p);
  } finally {
    $('scrape-status').textContent = `Read at ${new Date().toLocaleTimeString()} · ${p.series.length} series${p.skipped ? ` · ${p.skipped} unreadable lines` : ''}`;
    schedule();
  }
}

function schedule() {
  clearTimeout(timer);
  const every = Number($('interval').value);
  if (every > 0) timer = setTimeout(scrape, every);
}

function rateBy(cur, ref, name, label, values, where = () => true) {
  const out = {};
  const dt = ref ? cur.t - ref.t : 0;
  for (const v of values) {
    const now = prom.total(cur.p, name, (l) => l[label] === v && where(l));
    const before = ref ? prom.total(ref.p, name, (l) => l[label] === v && where(l)) : undefined;
    out[v] = dt > 0 ? (prom.increase(now || 0, before || 0) / dt) : null;
  }
  return out;
}

function update(now, p) {
  const cur = snaps[snaps.length - 1];
  const ref = reference(RATE_WINDOW);
  const latRef = reference(LATENCY_WINDOW);

  // Throughput by outcome.
  const thr = rateBy(cur, ref, 'studio_jobs_total', 'outcome', OUTCOMES);
  chartThroughput.push(now, thr);
  latestText('latest-throughput', ref ? OUTCOMES.map((o) => `${o} ${thr[o].toFixed(2)}/s`) : []);

  // Error rates: failed share of finished jobs, 5xx share of HTTP answers.
  const inc = (name, where) => (ref ? prom.increase(prom.total(cur.p, name, where) || 0, prom.total(ref.p, name, where) || 0) : undefined);
  const finished = inc('studio_jobs_total');
  const failed = inc('studio_jobs_total', (l) => l.outcome === 'failed');
  const reqs = inc('studio_http_request_duration_seconds_count');
  const errs = inc('studio_http_request_duration_seconds_count', (l) => /^5/.test(l.status || l.code || ''));
  const errRate = {'failed jobs': finished > 0 ? (100 * failed) / finished : null, 'HTTP 5xx': reqs > 0 ? (100 * errs) / reqs : null};
  chartErrors.push(now, errRate);
  latestText('latest-errors', Object.entries(errRate).filter(([, v]) => v !== null).map(([k, v]) => `${k} ${v.toFixed(1)}%`));

  // Stage latency percentiles over the window.
  const curB = prom.buckets(cur.p, 'studio_stage_duration_seconds', ['stage']);
  const refB = latRef ? prom.buckets(latRef.p, 'studio_stage_duration_seconds', ['stage']) : new Map();
  const stages = new Set([...STAGES, ...[...curB.values()].map((g) => g.labels.stage)]);
  const table = $('latency-table').tBodies[0];
  table.replaceChildren();
  for (const s of stages) {
    if (!s) continue;
    const chart = addLatencyChart(s);
    const k = prom.key({stage: s}, ['stage']);
    const all = curB.get(k);
    const win = all && latRef ? prom.bucketIncrease(all.buckets, refB.get(k) && refB.get(k).buckets) : null;
    const point = {};
    for (const [name, q] of [['p50', 0.5], ['p95', 0.95], ['p99', 0.99]]) point[name] = win ? prom.quantile(q, win) : null;
    chart.push(now, point);
    latestText(`latest-latency-${s}`, Object.entries(point).filter(([, v]) => v !== null).map(([n, v]) => `${n} ${fmtSeconds(v)} s`));
    const runs = all ? all.buckets[all.buckets.length - 1].count : 0;
    const q = (x) => (all && runs ? `${fmtSeconds(prom.quantile(x, all.buckets))} s` : '–');
    table.append(h('tr', {}, h('th', {scope: 'row', text: s}), h('td', {class: 'num', text: runs}),
      h('td', {class: 'num', text: q(0.5)}), h('td', {class: 'num', text: q(0.95)}), h('td', {class: 'num', text: q(0.99)})));
  }

  // Queue depth and lag, per stage and tier.
  for (const [metric, chart, latest] of [['studio_queue_depth', chartDepth, 'latest-depth'], ['studio_consumer_lag', chartLag, 'latest-lag']]) {
    const g = prom.sumBy(p, metric, ['stage', 'tier']);
    const values = {total: 0};
    const order = [...g.values()].sort((a, b) => (STAGES.indexOf(a.labels.stage) - STAGES.indexOf(b.labels.stage)) || (TIERS.indexOf(a.labels.tier) - TIERS.indexOf(b.labels.tier)));
    for (const x of order) {
      values[`${x.labels.stage}/${x.labels.tier}`] = x.value;
      values.total += x.value;
    }
    chart.push(now, order.length ? values : {total: null});
    const busy = Object.entries(values).filter(([k, v]) => k !== 'total' && v > 0);
    $(latest).textContent = !order.length ? `The server exports no ${metric} yet.`
      : busy.length ? `Now: ${busy.map(([k, v]) => `${k} ${v}`).join(' · ')}` : 'Now: every queue is empty.';
  }

  stagesTable(cur, ref, p);
  httpTable(cur, ref, latRef, p);
  kpis(thr, errRate, p, ref);
}

function stagesTable(cur, ref, p) {
  const workers = prom.sumBy(p, 'studio_stage_workers', ['stage']);
  const depth = prom.sumBy(p, 'studio_queue_depth', ['stage']);
  const lag = prom.sumBy(p, 'studio_consumer_lag', ['stage']);
  const retries = prom.sumBy(p, 'studio_stage_retries_total', ['stage']);
  const dlq = prom.sumBy(p, 'studio_dlq_messages_total', ['stage']);
  const get = (m, s) => { const x = m.get(prom.key({stage: s}, ['stage'])); return x ? x.value : undefined; };
  const body = $('stages-table').tBodies[0];
  body.replaceChildren();
  for (const s of STAGES) {
    const d = get(depth, s);
    const l = get(lag, s);
    const cell = (v) => h('td', {class: 'num', text: v === undefined ? '–' : String(v)});
    body.append(h('tr', {'data-stage': s}, h('th', {scope: 'row', text: s}), cell(get(workers, s)),
      cell(d === undefined || l === undefined ? undefined : d - l), cell(l), cell(get(retries, s) ?? 0), cell(get(dlq, s) ?? 0)));
  }
  $('workers-note').textContent = (workers.size ? '' : 'Workers: this server exports no studio_stage_workers gauge yet. ')
    + 'Busy: delivered to a worker, not yet acknowledged. Waiting: not yet delivered. Retries and DLQ (dead-lettered messages) count since the process started.';
}

function httpTable(cur, ref, latRef, p) {
  const count = prom.sumBy(p, 'studio_http_request_duration_seconds_count', ['route']);
  const before = ref ? prom.sumBy(ref.p, 'studio_http_request_duration_seconds_count', ['route']) : new Map();
  const curB = prom.buckets(p, 'studio_http_request_duration_seconds', ['route']);
  const refB = latRef ? prom.buckets(latRef.p, 'studio_http_request_duration_seconds', ['route']) : new Map();
  const status = (cls) => prom.sumBy(p, 'studio_http_request_duration_seconds_count', ['route'], (l) => (l.status || l.code || '').startsWith(cls));
  const s5 = status('5');
  const s4 = status('4');
  const dt = ref ? cur.t - ref.t : 0;
  const rows = [...count.entries()].map(([k, x]) => {
    const prev = before.get(k);
    const rate = dt > 0 ? prom.increase(x.value, prev ? prev.value : 0) / dt : null;
    const b = curB.get(k);
    const win = b ? prom.bucketIncrease(b.buckets, refB.get(k) && refB.get(k).buckets) : null;
    const p95 = win ? prom.quantile(0.95, win) : null;
    return {route: x.labels.route || '(none)', rate, p95, total: x.value, e5: (s5.get(k) || {}).value || 0, e4: (s4.get(k) || {}).value || 0};
  }).sort((a, b) => b.total - a.total).slice(0, 12);
  const body = $('http-table').tBodies[0];
  body.replaceChildren();
  for (const r of rows) {
    body.append(h('tr', {}, h('th', {scope: 'row'}, h('code', {text: r.route})),
      h('td', {class: 'num', text: r.rate === null ? '–' : r.rate.toFixed(2)}),
      h('td', {class: 'num', text: r.p95 === null ? '–' : fmtMS(r.p95 * 1000)}),
      h('td', {class: 'num', text: r.total}), h('td', {class: 'num', text: r.e5}), h('td', {class: 'num', text: r.e4})));
  }
  if (!rows.length) body.append(h('tr', {}, h('td', {colspan: 6, text: 'The server exports no studio_http_request_duration_seconds yet.'})));
}

function kpis(thr, errRate, p, ref) {
  const dl = $('kpis');
  dl.replaceChildren();
  const add = (k, v, id) => dl.append(h('div', {'data-kpi': id}, h('dt', {text: k}), h('dd', {text: v})));
  const sum = (o) => Object.values(o).reduce((a, b) => a + (b || 0), 0);
  add('Jobs/s (30 s)', ref ? sum(thr).toFixed(2) : '–', 'throughput');
  add('Failed jobs', errRate['failed jobs'] === null ? '–' : `${errRate['failed jobs'].toFixed(1)}%`, 'errors');
  add('Jobs finished', String(prom.total(p, 'studio_jobs_total') ?? 0), 'jobs');
  add('Queued now', String(prom.total(p, 'studio_consumer_lag') ?? 0), 'queued');
  add('Dead-lettered', String(prom.total(p, 'studio_dlq_messages_total') ?? 0), 'dlq');
}

// --- models --------------------------------------------------------------------------

async function loadModels() {
  const body = $('models-table').tBodies[0];
  let models;
  try {
    models = (await json('/v1/models')).models || [];
  } catch (e) {
    $('models-note').textContent = `The model list could not be loaded: ${e.detail || e.message}`;
    return;
  }
  const last = snaps[snaps.length - 1];
  const loadTimes = last ? prom.sumBy(last.p, 'studio_model_load_seconds', ['model', 'version']) : new Map();
  body.replaceChildren();
  for (const m of models) {
    const lt = loadTimes.get(prom.key({model: m.name, version: m.version}, ['model', 'version']));
    const routing = [m.default ? 'default' : '', m.routed_weight !== undefined ? `rollout ${m.routed_weight}%` : (m.weight ? `canary ${m.weight}%` : ''),
      m.fallback ? `falls back to ${m.fallback}` : ''].filter(Boolean).join(', ') || '–';
    const loaded = m.loaded === undefined ? h('span', {text: 'not in this process'})
      : m.loaded ? h('span', {class: 'ok-dot', text: 'loaded'}) : h('span', {class: 'bad-dot', text: 'not loaded'});
    body.append(h('tr', {'data-model': m.id}, h('th', {scope: 'row', text: `${m.name} ${m.version}`}), h('td', {text: m.task}),
      h('td', {text: routing}), h('td', {}, loaded), h('td', {class: 'num', text: lt ? fmtMS(lt.value * 1000) : '–'})));
  }
  $('models-note').textContent = models.length ? '' : 'No model is served.';
}

// --- rollouts ------------------------------------------------------------------------

const pct = (v) => `${(100 * (v || 0)).toFixed(1)}%`;

function figureRows(stable, canary) {
  const ms = (f, k) => (f && f.p95_ms && f.p95_ms[k] ? fmtMS(f.p95_ms[k]) : '–');
  const rows = [
    ['Jobs', (f) => String(f.jobs || 0)],
    ['Failed (bad input excluded)', (f) => String(f.failed || 0)],
    ['Error rate', (f) => pct(f.error_rate)],
    ['Fallbacks', (f) => String(f.fallbacks || 0)],
    ['p95 inference', (f) => ms(f, 'inference')],
    ['p95 all stages', (f) => ms(f, 'total')],
    ['Thumbs down', (f) => `${f.thumbs_down || 0} of ${f.ratings || 0}`],
  ];
  return rows.map(([name, cell]) => h('tr', {}, h('th', {scope: 'row', text: name}),
    h('td', {class: 'num', text: stable ? cell(stable) : '–'}), h('td', {class: 'num', text: canary ? cell(canary) : '–'})));
}

function rolloutCard(r) {
  const live = r.live || {};
  const stable = live.stable || r.stable_figures, canary = live.canary || r.canary_figures;
  const actions = h('div', {class: 'row'});
  const act = (verb) => h('button', {type: 'button', text: verb, 'data-verb': verb});
  if (r.state === 'running' || r.state === 'pending') actions.append(act('pause'));
  if (r.state === 'paused') actions.append(act('resume'));
  if (!['promoted', 'rolled-back', 'aborted'].includes(r.state)) actions.append(act('abort'));
  actions.addEventListener('click', async (e) => {
    const verb = e.target.dataset && e.target.dataset.verb;
    if (!verb || (verb === 'abort' && !window.confirm(`Send every ${r.task} job back to ${r.stable}?`))) return;
    try {
      await json(`/v2/admin/rollouts/${encodeURIComponent(r.task)}/${verb}`, {method: 'POST'});
    } catch (err) {
      $('rollouts-note').hidden = false;
      $('rollouts-note').textContent = `Could not ${verb} the rollout: ${err.detail || err.message}`;
    }
    loadRollouts();
  });
  const table = h('table', {class: 'rollout-figures'},
    h('caption', {text: 'This step, since ' + (r.step_started_at ? new Date(r.step_started_at).toLocaleTimeString() : '–')}),
    h('thead', {}, h('tr', {}, h('th', {scope: 'col', text: ''}), h('th', {scope: 'col', class: 'num', text: `stable ${r.stable}`}), h('th', {scope: 'col', class: 'num', text: `canary ${r.canary}`}))),
    h('tbody', {}, ...figureRows(stable, canary)));
  const timeline = h('ol', {class: 'timeline'}, ...(r.timeline || []).map((t) => h('li', {'data-state': t.to},
    h('time', {datetime: t.at, text: new Date(t.at).toLocaleTimeString()}), ' ',
    h('strong', {text: t.to}), ` ${t.weight}% · ${t.actor}: ${t.reason}`)));
  return h('article', {class: 'rollout', 'data-task': r.task, 'data-state': r.state},
    h('h3', {text: `${r.task}: ${r.model} ${r.stable} → ${r.canary} · ${r.state} at ${r.weight}%`}),
    actions, h('div', {class: 'table-wrap'}, table), h('h4', {text: 'Timeline'}), timeline);
}

async function loadRollouts() {
  const note = $('rollouts-note'), list = $('rollouts-list');
  let rollouts;
  try {
    rollouts = (await json('/v2/admin/rollouts')).rollouts || [];
  } catch (e) {
    note.hidden = false;
    note.textContent = e.status === 401 || e.status === 403
      ? 'Rollouts are for operators: sign in with a token that holds the admin scope.'
      : `Rollouts are unavailable: ${e.detail || e.message}`;
    return;
  }
  const views = await Promise.all(rollouts.map((r) => json(`/v2/admin/rollouts/${encodeURIComponent(r.task)}`).catch(() => r)));
  list.replaceChildren(...views.map(rolloutCard));
  note.hidden = views.length > 0;
  if (!views.length) note.textContent = 'No rollout yet.';
}

// --- business ------------------------------------------------------------------------

let bizChart = null;

async function loadBusiness() {
  const note = $('biz-note');
  let b;
  try {
    b = await json(`/ops/api/business?window=${encodeURIComponent($('window').value)}`);
  } catch (e) {
    $('biz-body').hidden = true;
    note.hidden = false;
    note.dataset.state = 'off';
    if (e.status === 404 || e.status === 503 || e.code === 'analytics_not_configured') {
      note.textContent = 'Analytics not configured: business figures come from the ClickHouse sink, which is off on this server.'
        + (e.code && e.code !== 'analytics_not_configured' && e.detail ? ` (${e.detail})` : '');
    } else if (e.status === 401 || e.status === 403) {
      note.textContent = 'Business figures are for operators: sign in with a token that holds the admin scope.';
    } else {
      note.textContent = `Business figures are unavailable: ${e.detail || e.message}`;
    }
    return;
  }
  note.hidden = true;
  note.dataset.state = 'on';
  $('biz-body').hidden = false;
  const t = b.totals || {};
  const dl = $('biz-kpis');
  dl.replaceChildren();
  const ratings = (t.thumbs_up || 0) + (t.thumbs_down || 0);
  for (const [k, v] of [
    ['Jobs', t.jobs ?? 0],
    ['Succeeded', t.jobs ? `${((100 * (t.succeeded || 0)) / t.jobs).toFixed(1)}%` : '–'],
    ['Failed', t.failed ?? 0],
    ['Cache hits', t.jobs ? `${((100 * (t.cache_hits || 0)) / t.jobs).toFixed(1)}%` : '–'],
    ['Users', t.users ?? 0],
    ['Rated good', ratings ? `${((100 * (t.thumbs_up || 0)) / ratings).toFixed(0)}% of ${ratings}` : '–'],
    ['Uploaded', fmtBytes(t.input_bytes || 0)],
  ]) dl.append(h('div', {}, h('dt', {text: k}), h('dd', {text: String(v)})));

  if (!bizChart) bizChart = new Chart('chart-biz', {unit: '', fmt: (v) => v.toFixed(0), names: ['jobs', 'succeeded', 'failed'], span: 3600, integer: true});
  bizChart.xs = [];
  for (const col of bizChart.cols.values()) col.length = 0;
  for (const x of b.series || []) {
    bizChart.xs.push(Date.parse(x.start) / 1000);
    bizChart.cols.get('jobs').push(x.jobs);
    bizChart.cols.get('succeeded').push(x.succeeded);
    bizChart.cols.get('failed').push(x.failed);
  }
  bizChart.render();

  const fill = (id, rows, cells) => {
    const body = $(id).tBodies[0];
    body.replaceChildren();
    for (const r of rows) body.append(h('tr', {}, cells(r)));
    if (!rows.length) body.append(h('tr', {}, h('td', {colspan: $(id).tHead.rows[0].cells.length, text: 'Nothing in this period.'})));
  };
  const num = (v) => h('td', {class: 'num', text: String(v ?? 0)});
  fill('biz-models', b.models || [], (m) => [h('th', {scope: 'row', text: `${m.model} ${m.version}`}), h('td', {text: m.task}), num(m.jobs), num(m.failed),
    h('td', {class: 'num', text: m.p50_ms ? fmtMS(m.p50_ms) : '–'}), h('td', {class: 'num', text: m.p95_ms ? fmtMS(m.p95_ms) : '–'}),
    h('td', {class: 'num', text: `${m.thumbs_up || 0} / ${m.thumbs_down || 0}`})]);
  fill('biz-tenants', b.tenants || [], (x) => [h('th', {scope: 'row', text: x.tenant}), num(x.jobs), num(x.users), h('td', {class: 'num', text: fmtBytes(x.input_bytes || 0)})]);
  fill('biz-errors', b.errors || [], (x) => [h('th', {scope: 'row'}, h('code', {text: x.code})), h('td', {text: x.stage || '–'}), num(x.count)]);
  const metric = (v, digits) => (v === undefined || v === null ? '–' : v.toFixed(digits));
  fill('biz-replays', b.replays || [], (r) => [h('th', {scope: 'row'}, h('code', {text: r.replay_id})), h('td', {text: r.task}),
    h('td', {text: `${r.model} ${r.original_version} → ${r.shadow_version}`}), num(r.requests), num(r.failed),
    h('td', {class: 'num', text: `${metric(r.mean_iou, 4)} / ${metric(r.min_iou, 4)}`}),
    h('td', {class: 'num', text: `${metric(r.mean_psnr, 2)} / ${metric(r.mean_ssim, 4)}`}),
    h('td', {class: 'num', text: r.text_equal_share === undefined ? '–' : `${(100 * r.text_equal_share).toFixed(1)}% / ${metric(r.mean_cer, 4)}`}),
    h('td', {class: 'num', text: r.compared ? `${fmtMS(r.original_p50_ms)} / ${fmtMS(r.shadow_p50_ms)}` : '–'})]);
}

// --- SQL -----------------------------------------------------------------------------

let sqlLast = null; // the last result, for the CSV download

async function loadCookbook() {
  let book;
  try {
    book = await json('/ops/api/sql/cookbook');
  } catch {
    return; // signed out or not an operator: the Run button says so when pressed
  }
  const sel = $('sql-cookbook');
  sel.replaceChildren(h('option', {value: '', text: 'choose a query…'}));
  for (const q of book) {
    const o = h('option', {value: q.name, text: `${q.name}: ${q.title}`});
    o.dataset.sql = q.sql;
    sel.append(o);
  }
}

function cellText(v) {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

async function runSQL() {
  const note = $('sql-note');
  const sql = $('sql-text').value.trim();
  if (!sql) return;
  note.hidden = false;
  note.dataset.state = 'running';
  note.textContent = 'Running…';
  $('sql-run').disabled = true;
  let res;
  try {
    res = await json('/ops/api/sql', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({sql})});
  } catch (e) {
    note.dataset.state = 'error';
    if (e.status === 401 || e.status === 403) note.textContent = 'Queries are for operators: sign in with a token that holds the admin scope.';
    else if (e.status === 503) note.textContent = `Analytics unavailable: ${e.detail || e.message}`;
    else note.textContent = e.detail || e.message;
    return;
  } finally {
    $('sql-run').disabled = false;
  }
  sqlLast = res;
  window.__ops.sqlRuns = (window.__ops.sqlRuns || 0) + 1;
  note.dataset.state = 'done';
  note.textContent = `${res.rows.length} rows${res.truncated ? ' (cut at the row limit)' : ''} in ${res.elapsed_ms.toFixed(0)} ms on ClickHouse ${res.engine}.`;
  const table = $('sql-result');
  table.tHead.replaceChildren(h('tr', {}, res.columns.map((c) => h('th', {scope: 'col', title: c.type, text: c.name}))));
  const numeric = res.columns.map((c) => /^(Nullable\()?(U?Int|Float|Decimal)/.test(c.type));
  table.tBodies[0].replaceChildren(...res.rows.map((r) => h('tr', {}, r.map((v, i) => h('td', {class: numeric[i] ? 'num' : null, text: cellText(v)})))));
  table.hidden = false;
  $('sql-csv').disabled = false;
  drawBars(res, numeric);
}

// drawBars charts the first numeric column against the first column as bars (the first
// 50 rows), when the result has both.
function drawBars(res, numeric) {
  const box = $('sql-chart');
  box.replaceChildren();
  const vi = numeric.indexOf(true);
  if (vi < 0 || res.columns.length < 2 || !res.rows.length) {
    box.hidden = true;
    return;
  }
  const li = vi === 0 ? 1 : 0;
  const rows = res.rows.slice(0, 50);
  const max = Math.max(...rows.map((r) => Math.abs(Number(r[vi]) || 0)), 1e-12);
  box.append(h('p', {class: 'hint', text: `${res.columns[vi].name} by ${res.columns[li].name}`}));
  for (const r of rows) {
    const v = Number(r[vi]) || 0;
    const bar = h('span', {class: 'sql-bar'});
    bar.style.width = `${(100 * Math.abs(v)) / max}%`;
    box.append(h('div', {class: 'sql-bar-row'}, h('span', {class: 'sql-bar-label', text: cellText(r[li])}), h('span', {class: 'sql-bar-track'}, bar), h('span', {class: 'num', text: cellText(r[vi])})));
  }
  box.dataset.bars = String(rows.length);
  box.hidden = false;
}

function csvOf(res) {
  const q = (s) => (/[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
  const lines = [res.columns.map((c) => q(c.name)).join(',')];
  for (const r of res.rows) lines.push(r.map((v) => q(cellText(v))).join(','));
  return lines.join('\r\n') + '\r\n';
}

$('sql-form').addEventListener('submit', (e) => { e.preventDefault(); runSQL(); });
$('sql-text').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runSQL(); }
});
$('sql-cookbook').addEventListener('change', (e) => {
  const o = e.target.selectedOptions[0];
  if (o && o.dataset.sql) { $('sql-text').value = o.dataset.sql; runSQL(); }
});
$('sql-csv').addEventListener('click', () => {
  if (!sqlLast) return;
  const url = URL.createObjectURL(new Blob([csvOf(sqlLast)], {type: 'text/csv'}));
  const a = h('a', {href: url, download: 'query.csv'});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
});

// --- sign-in -------------------------------------------------------------------------

function updateAccount() {
  $('account-state').textContent = token() ? 'Signed in with a token' : '';
  $('signout').hidden = !token();
}

window.addEventListener('studio:unauthorized', (e) => {
  const box = $('signin');
  $('signin-why').textContent = `The server refused the request${e.detail && e.detail.message ? `: ${e.detail.message}` : ''}.`;
  if (box.hidden) {
    box.hidden = false;
    $('token').focus();
  }
});
$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = $('token').value.trim();
  if (!t) return;
  setToken(t);
  $('token').value = '';
  $('signin').hidden = true;
  updateAccount();
  scrape();
  loadModels();
  loadBusiness();
  loadCookbook();
  loadRollouts();
});
$('signout').addEventListener('click', () => { clearToken(); updateAccount(); });

// --- start ---------------------------------------------------------------------------

$('interval').addEventListener('change', () => scrape());
$('window').addEventListener('change', () => loadBusiness());
updateAccount();

function start() {
  $('charts-missing').hidden = !!window.uPlot;
  scrape();
  loadModels();
  loadBusiness();
  loadCookbook();
  loadRollouts();
  setInterval(loadModels, 15000);
  setInterval(loadRollouts, 5000);
  setInterval(loadBusiness, 60000);
}

// uPlot is a classic deferred script: it has run by the time this module runs, or failed.
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
