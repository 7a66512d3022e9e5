// Unit tests of the dashboard's Prometheus text parser and histogram arithmetic. They need
// no browser and no server.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {readFile} from 'node:fs/promises';

// prom.js is an ES module served to browsers; load it as one whatever node makes of .js
// files in that directory.
const src = await readFile(new URL('../web/prom.js', import.meta.url), 'utf8');
const prom = await import(`data:text/javascript,${encodeURIComponent(src)}`);

const text = `# HELP studio_jobs_total Jobs.
# TYPE studio_jobs_total counter
studio_jobs_total{model="isnet",outcome="succeeded",task="remove-background",version="small"} 7
studio_jobs_total{model="isnet",outcome="failed",task="remove-background",version="small"} 1
studio_jobs_total{model="realesrgan",outcome="succeeded",task="upscale",version="general-x4v3"} 2
# TYPE studio_stage_duration_seconds histogram
studio_stage_duration_seconds_bucket{stage="inference",task="remove-background",le="1"} 0
studio_stage_duration_seconds_bucket{stage="inference",task="remove-background",le="5"} 6
studio_stage_duration_seconds_bucket{stage="inference",task="remove-background",le="10"} 8
studio_stage_duration_seconds_bucket{stage="inference",task="remove-background",le="+Inf"} 8
studio_stage_duration_seconds_sum{stage="inference",task="remove-background"} 33.5
studio_stage_duration_seconds_count{stage="inference",task="remove-background"} 8
studio_stage_duration_seconds_bucket{stage="inference",task="upscale",le="1"} 2
studio_stage_duration_seconds_bucket{stage="inference",task="upscale",le="5"} 2
studio_stage_duration_seconds_bucket{stage="inference",task="upscale",le="10"} 2
studio_stage_duration_seconds_bucket{stage="inference",task="upscale",le="+Inf"} 2
odd_label{path="C:\\\\dir\\"x\\"\\nnext"} 1.5e3 1700000000000
nan_value NaN
this line is not a sample
`;

test('parse reads samples, labels with escapes, special values and timestamps', () => {
  const p = prom.parse(text);
  assert.equal(p.types.studio_jobs_total, 'counter');
  assert.equal(p.types.studio_stage_duration_seconds, 'histogram');
  assert.equal(p.skipped, 1);
  const odd = p.series.find((s) => s.name === 'odd_label');
  assert.equal(odd.labels.path, 'C:\\dir"x"\nnext');
  assert.equal(odd.value, 1500);
  assert.ok(Number.isNaN(p.series.find((s) => s.name === 'nan_value').value));
});

test('sumBy and total add up series by the labels asked for', () => {
  const p = prom.parse(text);
  const byOutcome = prom.sumBy(p, 'studio_jobs_total', ['outcome']);
  assert.equal(byOutcome.get('outcome=succeeded').value, 9);
  assert.equal(byOutcome.get('outcome=failed').value, 1);
  assert.equal(prom.total(p, 'studio_jobs_total'), 10);
  assert.equal(prom.total(p, 'studio_jobs_total', (l) => l.task === 'upscale'), 2);
  assert.equal(prom.total(p, 'missing_metric'), undefined);
});

test('increase treats a smaller value as a counter reset', () => {
  assert.equal(prom.increase(10, 4), 6);
  assert.equal(prom.increase(3, 40), 3);
  assert.equal(prom.increase(5, undefined), 5);
});

test('buckets merge the labels left out and sort by bound', () => {
  const p = prom.parse(text);
  const b = prom.buckets(p, 'studio_stage_duration_seconds', ['stage']).get('stage=inference').buckets;
  assert.deepEqual(b, [{le: 1, count: 2}, {le: 5, count: 8}, {le: 10, count: 10}, {le: Infinity, count: 10}]);
});

test('quantile interpolates inside the bucket like histogram_quantile', () => {
  const b = [{le: 1, count: 2}, {le: 5, count: 8}, {le: 10, count: 10}, {le: Infinity, count: 10}];
  assert.equal(prom.quantile(0.5, b), 1 + 4 * ((5 - 2) / 6)); // rank 5 in (1,5]
  assert.equal(prom.quantile(0.1, b), 0.5); // rank 1 in (0,1]
  assert.equal(prom.quantile(0.99, b), 5 + 5 * ((9.9 - 8) / 2));
  assert.equal(prom.quantile(0.99, [{le: 1, count: 1}, {le: Infinity, count: 5}]), 1, 'the +Inf bucket answers the highest finite bound');
  assert.equal(prom.quantile(0.5, [{le: 1, count: 0}, {le: Infinity, count: 0}]), null, 'no observations, no quantile');
});

test('bucketIncrease gives the histogram of one window', () => {
  const before = [{le: 1, count: 2}, {le: 5, count: 8}, {le: Infinity, count: 8}];
  const after = [{le: 1, count: 2}, {le: 5, count: 9}, {le: Infinity, count: 10}];
  assert.deepEqual(prom.bucketIncrease(after, before), [{le: 1, count: 0}, {le: 5, count: 1}, {le: Infinity, count: 2}]);
  assert.deepEqual(prom.bucketIncrease(before, after), before, 'a reset takes the current buckets');
});
