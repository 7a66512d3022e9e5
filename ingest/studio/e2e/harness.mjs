// Shared set-up of the browser tests: Debian's chromium through playwright-core (no
// browser download), the server under test, screenshots, and small image tools (a PNG
// encoder for distinct inputs, a PNG decoder to check results).
import {chromium} from 'playwright-core';
import {mkdir, readFile} from 'node:fs/promises';
import {existsSync} from 'node:fs';
import {join, resolve} from 'node:path';
import zlib, {deflateSync, inflateSync} from 'node:zlib';

export const BASE = (process.env.STUDIO_URL || '').replace(/\/$/, '');
export const ARTIFACTS = resolve(process.env.STUDIO_ARTIFACTS || 'test-artifacts');
export const PHOTO = process.env.STUDIO_PHOTO || join(process.env.STUDIO_CACHE || join(process.env.HOME || '', '.cache/studio'), 'photos/astronaut.png');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// skipReason says why the browser tests cannot run here, or '' when they can.
export function skipReason() {
  if (!BASE) return 'STUDIO_URL is not set: run scripts/browser-test.sh, which starts the server';
  if (!existsSync(CHROMIUM)) return `no browser at ${CHROMIUM}: apt-get install chromium`;
  return '';
}

// The flags keep Chromium off the network: this machine reaches nothing but loopback.
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

export async function launch() {
  await mkdir(ARTIFACTS, {recursive: true});
  return chromium.launch({executablePath: CHROMIUM, headless: true, args: FLAGS});
}

// newPage opens a page in a fresh context and fails the test on script errors.
export async function newPage(browser, opts = {}) {
  const context = await browser.newContext({acceptDownloads: true, viewport: {width: 1280, height: 900}, ...opts});
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) page.errors.push(m.text());
  });
  return page;
}

// shot saves a full-page screenshot and puts the scroll position back. Chromium takes
// a full-page shot by stretching the viewport to the page's height; when it shrinks the
// viewport again, a page scrolled less than its new maximum reports the maximum
// (window.scrollY) while the screen keeps the old offset, and the next mouse press snaps
// back to it: a click right after a shot then moves the page between mousedown and
// mouseup, the mouseup lands on another element, and the click never reaches its target
// (the generate test's Run button on a short page: a fresh server's empty gallery).
export async function shot(page, name, opts = {}) {
  const path = join(ARTIFACTS, `${name}.png`);
  const at = await page.evaluate(() => [window.scrollX, window.scrollY]);
  await page.screenshot({path, fullPage: true, ...opts});
  await page.evaluate(([x, y]) => window.scrollTo(x, y), at);
  return path;
}

export async function photo() {
  return readFile(PHOTO);
}

// --- the server ----------------------------------------------------------------------

export async function fetchServer(path, opts) {
  return fetch(BASE + path, opts);
}

// missingRoute is true when the server has no such route: a plain 404/405, not a problem
// document about a resource.
export function missingRoute(res) {
  const ct = res.headers.get('Content-Type') || '';
  return (res.status === 404 || res.status === 405) && !ct.includes('problem+json');
}

export async function submitJob(bytes, {task = 'remove-background', filename = 'input.png', type = 'image/png', params} = {}) {
  const fd = new FormData();
  fd.append('task', task);
  if (params) fd.append('params', JSON.stringify(params));
  fd.append('image', new Blob([bytes], {type}), filename);
  const res = await fetchServer('/v1/jobs', {method: 'POST', body: fd});
  const body = await res.json().catch(() => ({}));
  return {res, body};
}

export async function waitJob(id, timeoutMS = 180000) {
  const end = Date.now() + timeoutMS;
  for (;;) {
    const job = await (await fetchServer(`/v1/jobs/${id}`)).json();
    if (['succeeded', 'failed', 'cancelled'].includes(job.status)) return job;
    if (Date.now() > end) throw new Error(`job ${id} still ${job.status} after ${timeoutMS} ms`);
    await new Promise((ok) => setTimeout(ok, 250));
  }
}

// --- PNG -----------------------------------------------------------------------------

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
}

let crcTable;
function crc32(buf) {
  if (zlib.crc32) return zlib.crc32(buf);
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let c = -1;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

// makePNG draws a w×h RGB picture (a disc on a gradient, plus seeded noise so that every
// seed gives bytes the result cache has never seen).
export function makePNG(w, h, seed = Date.now()) {
  let s = seed >>> 0 || 1;
  const rnd = () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) & 0xff; };
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const i = y * (w * 3 + 1) + 1 + x * 3;
      const inDisc = (x - w / 2) ** 2 + (y - h / 2) ** 2 < (Math.min(w, h) / 3) ** 2;
      const n = rnd() & 15;
      raw[i] = inDisc ? 220 + (n >> 1) : (x * 255) / w;
      raw[i + 1] = inDisc ? 60 + n : (y * 255) / h;
      raw[i + 2] = inDisc ? 40 + n : 160;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

// pngHeader reads the signature and IHDR: {width, height, bitDepth, colorType}.
export function pngHeader(buf) {
  const sig = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
  if (buf.length < 33 || !buf.subarray(0, 8).equals(sig)) throw new Error('not a PNG: bad signature');
  if (buf.toString('ascii', 12, 16) !== 'IHDR') throw new Error('not a PNG: IHDR is not the first chunk');
  return {width: buf.readUInt32BE(16), height: buf.readUInt32BE(20), bitDepth: buf[24], colorType: buf[25], interlace: buf[28]};
}

// alphaStats decodes an 8-bit RGBA, non-interlaced PNG and counts its alpha values.
export function alphaStats(buf) {
  const hd = pngHeader(buf);
  if (hd.colorType !== 6 || hd.bitDepth !== 8 || hd.interlace !== 0) throw new Error(`unsupported PNG ${JSON.stringify(hd)}`);
  const idat = [];
  for (let off = 8; off < buf.length;) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('ascii', off + 4, off + 8);
    if (type === 'IDAT') idat.push(buf.subarray(off + 8, off + 8 + len));
    off += 12 + len;
  }
  const data = inflateSync(Buffer.concat(idat));
  const bpp = 4;
  const stride = hd.width * bpp;
  const out = Buffer.alloc(stride * hd.height);
  for (let y = 0; y < hd.height; y++) {
    const f = data[y * (stride + 1)];
    const line = data.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[y * stride + x - bpp] : 0;
      const b = y > 0 ? out[(y - 1) * stride + x] : 0;
      const c = x >= bpp && y > 0 ? out[(y - 1) * stride + x - bpp] : 0;
      let v = line[x];
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a); const pb = Math.abs(p - b); const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[y * stride + x] = v & 0xff;
    }
  }
  let transparent = 0;
  let opaque = 0;
  for (let i = 3; i < out.length; i += 4) {
    if (out[i] === 0) transparent++;
    else if (out[i] === 255) opaque++;
  }
  return {...hd, pixels: hd.width * hd.height, transparent, opaque};
}

// A 1×1 GIF: a real image in a format the API refuses by name.
export const GIF = Buffer.from('R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==', 'base64');
