// api.js is the pages' one way to call the server: it adds the stored token as a Bearer
// header, turns error answers (RFC 9457 problem details) into ApiError, and announces a
// 401 so that the page can show its sign-in box.

const TOKEN_KEY = 'studio.token';

// A token in the URL fragment (the link `studio up` prints: /#token=...) is taken once,
// stored, and removed from the address bar. Fragments never reach the server.
(function takeTokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return;
  try { localStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1])); } catch { /* private mode */ }
  history.replaceState(null, '', location.pathname + location.search);
})();

export function token() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(t) {
  try { localStorage.setItem(TOKEN_KEY, t); } catch { /* private mode: the token lasts this page only */ }
}

export function clearToken() {
  try { localStorage.removeItem(TOKEN_KEY); } catch { /* nothing stored */ }
}

// ApiError is a failed call. detail is the server's message for people, code its stable
// code for programs ("" when the answer was not a problem document, such as a 404 from
// a route this server does not have).
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || '';
    this.detail = problem.detail || problem.title || '';
    this.problem = problem;
  }

  // missingRoute is true when the server has no such route at all (an older server),
  // as opposed to a route answering "not found" about a resource.
  get missingRoute() {
    return (this.status === 404 || this.status === 405 || this.status === 501) && !this.code;
  }
}

export async function errorFrom(res) {
  let p = {};
  const ct = res.headers.get('Content-Type') || '';
  try {
    if (ct.includes('json')) {
      p = await res.json();
    } else {
      const text = (await res.text()).trim();
      if (text) p = {detail: text.slice(0, 300)};
    }
  } catch { /* an unreadable body: keep the status */ }
  if (!p || typeof p !== 'object') p = {};
  if (!p.detail && !p.title) p.title = `${res.status} ${res.statusText}`.trim();
  return new ApiError(res.status, p);
}

// api fetches path with the token and throws ApiError unless the answer is 2xx.
export async function api(path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  const t = token();
  if (t && !headers.has('Authorization')) headers.set('Authorization', 'Bearer ' + t);
  if (!headers.has('Accept')) headers.set('Accept', 'application/json, application/problem+json;q=0.9, */*;q=0.1');
  let res;
  try {
    res = await fetch(path, {...opts, headers});
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, {title: 'Network error', code: 'network',
      detail: 'The server did not answer. Check that it is running and reachable, then retry.'});
  }
  if (res.ok) return res;
  const err = await errorFrom(res);
  if (res.status === 401) {
    window.dispatchEvent(new CustomEvent('studio:unauthorized', {detail: {message: err.detail}}));
  }
  throw err;
}

export async function json(path, opts) {
  const res = await api(path, opts);
  return res.json();
}

// blobURL fetches a file with the token (an <img src> cannot send one) and returns an
// object URL for it; revoke it when the image goes away.
export async function blobURL(path, opts) {
  const res = await api(path, opts);
  const blob = await res.blob();
  return {url: URL.createObjectURL(blob), blob, filename: filenameOf(res)};
}

function filenameOf(res) {
  const cd = res.headers.get('Content-Disposition') || '';
  const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
  return m ? decodeURIComponent(m[1]) : '';
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MB`;
}

export function fmtMS(ms) {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60000);
  return `${m} min ${Math.round((ms % 60000) / 1000)} s`;
}
