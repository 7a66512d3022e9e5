// prom.js reads the Prometheus text exposition format (version 0.0.4) and does the
// arithmetic the dashboard needs: counter increases between two scrapes and quantiles
// from histogram buckets, as PromQL's increase() and histogram_quantile() would. It has
// no DOM dependency, so node's test runner checks it directly.

// parse returns {series: [{name, labels, value}], types: {name: type}}. Lines it cannot
// read are skipped and counted in `skipped`, so one odd line never blanks a dashboard.
export function parse(text) {
  const series = [];
  const types = {};
  let skipped = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const m = /^#\s*TYPE\s+(\S+)\s+(\S+)/.exec(line);
      if (m) types[m[1]] = m[2];
      continue;
    }
    const s = parseSample(line);
    if (s) series.push(s);
    else skipped++;
  }
  return {series, types, skipped};
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

function parseSample(line) {
  const nm = NAME.exec(line);
  if (!nm) return null;
  const name = nm[0];
  let i = name.length;
  const labels = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') { i++; break; }
      const lm = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
      if (!lm) return null;
      i += lm[0].length;
      while (line[i] === ' ') i++;
      if (line[i] !== '=') return null;
      i++;
      while (line[i] === ' ') i++;
      if (line[i] !== '"') return null;
      i++;
      let v = '';
      for (;;) {
        if (i >= line.length) return null;
        const c = line[i];
        if (c === '\\') {
          const n = line[i + 1];
          v += n === 'n' ? '\n' : n;
          i += 2;
        } else if (c === '"') {
          i++;
          break;
        } else {
          v += c;
          i++;
        }
      }
      labels[lm[0]] = v;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  const value = parseValue(rest[0]);
  if (value === undefined) return null;
  return {name, labels, value};
}

function parseValue(s) {
  if (s === undefined || s === '') return undefined;
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  return Number.isNaN(v) ? undefined : v;
}

// key is a stable string for a label set restricted to `by` (all labels when omitted).
export function key(labels, by) {
  const names = by || Object.keys(labels).sort();
  return names.map((n) => `${n}=${labels[n] ?? ''}`).join(',');
}

// sumBy adds the samples of metric `name` that pass `where`, grouped by the labels `by`.
// It returns a Map of group key -> {labels, value}.
export function sumBy(parsed, name, by = [], where = () => true) {
  const out = new Map();
  for (const s of parsed.series) {
    if (s.name !== name || !where(s.labels)) continue;
    const k = key(s.labels, by);
    const g = out.get(k);
    if (g) g.value += s.value;
    else out.set(k, {labels: Object.fromEntries(by.map((b) => [b, s.labels[b] ?? ''])), value: s.value});
  }
  return out;
}

// total is the sum of every sample of `name` passing `where`; undefined if none exists.
export function total(parsed, name, where = () => true) {
  let sum;
  for (const s of parsed.series) {
    if (s.name === name && where(s.labels)) sum = (sum || 0) + s.value;
  }
  return sum;
}

// increase is how much a counter grew from prev to cur. A smaller value means the
// process restarted, and then the whole current value is the increase (as in PromQL).
export function increase(cur, prev) {
  if (cur === undefined) return undefined;
  if (prev === undefined || cur < prev) return cur;
  return cur - prev;
}

// buckets returns, per group of `by` labels, the cumulative histogram buckets of
// `name` (the base name, without _bucket): a Map of key -> {labels, buckets: [{le, count}]}
// sorted by le, counts summed over the labels left out.
export function buckets(parsed, name, by = [], where = () => true) {
  const groups = new Map();
  for (const s of parsed.series) {
    if (s.name !== `${name}_bucket` || !where(s.labels)) continue;
    const le = parseValue(s.labels.le);
    if (le === undefined) continue;
    const k = key(s.labels, by);
    let g = groups.get(k);
    if (!g) {
      g = {labels: Object.fromEntries(by.map((b) => [b, s.labels[b] ?? ''])), byLe: new Map()};
      groups.set(k, g);
    }
    g.byLe.set(le, (g.byLe.get(le) || 0) + s.value);
  }
  const out = new Map();
  for (const [k, g] of groups) {
    const list = [...g.byLe.entries()].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({le, count}));
    out.set(k, {labels: g.labels, buckets: list});
  }
  return out;
}

// bucketIncrease is the per-bucket increase from prev to cur (both lists of {le, count}
// as buckets() returns them); a reset in any bucket takes cur as it is.
export function bucketIncrease(cur, prev) {
  if (!prev) return cur;
  const before = new Map(prev.map((b) => [b.le, b.count]));
  if (cur.some((b) => before.has(b.le) && b.count < before.get(b.le))) return cur;
  return cur.map((b) => ({le: b.le, count: b.count - (before.get(b.le) || 0)}));
}

// quantile estimates the q-quantile (0..1) from cumulative buckets like PromQL's
// histogram_quantile: linear interpolation inside the bucket that holds the rank, the
// lowest bucket starting at 0, and the highest finite bound when the rank falls in the
// +Inf bucket. It returns null when there are no observations.
export function quantile(q, list) {
  if (!list || !list.length) return null;
  const b = [...list].sort((x, y) => x.le - y.le);
  const n = b[b.length - 1].count;
  if (!(n > 0) || b[b.length - 1].le !== Infinity) return n > 0 ? b[b.length - 1].le : null;
  const rank = q * n;
  let prevLe = 0;
  let prevCount = 0;
  for (let i = 0; i < b.length; i++) {
    const {le, count} = b[i];
    if (count >= rank) {
      if (le === Infinity) return i > 0 ? b[i - 1].le : null;
      if (i === 0 && le <= 0) return le;
      const inBucket = count - prevCount;
      if (inBucket <= 0) return le;
      return prevLe + (le - prevLe) * ((rank - prevCount) / inBucket);
    }
    prevLe = le;
    prevCount = count;
  }
  return b[b.length - 1].le;
}
