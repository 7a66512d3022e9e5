// studio.js drives the web studio: choose a task, a model version and parameters,
// upload an image, follow the job (WebSocket, then server-sent events, then polling),
// compare and download the result, rate it, and browse past jobs.
import {api, json, blobURL, token, setToken, clearToken, fmtBytes, fmtMS} from './api.js';

const $ = (id) => document.getElementById(id);

// h builds an element; strings become text nodes, never HTML.
function h(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

// Tasks this page knows how to present. noImage tasks send a prompt instead of an image.
const TASKS = {
  'remove-background': {label: 'Remove background', desc: 'Cut the subject out: a PNG with a transparent background, and its mask.'},
  'upscale': {label: 'Upscale', desc: 'Enlarge the image with a super-resolution model.'},
  'style-transfer': {label: 'Style transfer', desc: "Repaint the image in the model's style."},
  'ocr': {label: 'Read text (OCR)', desc: 'Find and read the text: boxes over the image, and the lines in reading order to copy.'},
  'generate': {label: 'Generate from a prompt', desc: "Draw new images from a text prompt with the operator's Stable Diffusion model. No image is uploaded.", noImage: true},
};

// SIZES are the image sizes offered for generate (multiples of 8); the model's default
// is used when none is picked.
const SIZES = [[512, 512], [768, 512], [512, 768], [768, 768], [1024, 1024], [256, 256], [64, 64]];

// OUTPUT are the output format controls of every task that returns an image (the
// params format, quality and background): quality shows for jpeg and webp, the
// background colour for jpeg, and a hidden control is not sent.
const OUTPUT = [
  {name: 'format', kind: 'choice', label: 'Output format', value: 'png',
    options: [['png', 'PNG: lossless, keeps transparency'], ['jpeg', 'JPEG: smaller, no transparency'], ['webp', 'WebP: smaller, keeps transparency']],
    help: 'JPEG fills transparent areas (a cut-out\'s background) with the background colour.'},
  {name: 'quality', kind: 'range', label: 'Quality', min: 1, max: 100, step: 1, value: 90, showFor: ['jpeg', 'webp'],
    help: 'Higher is sharper and larger.'},
  {name: 'background', kind: 'color', label: 'Background colour', value: '#ffffff', showFor: ['jpeg'],
    help: 'What transparent areas become in a JPEG.'},
];

// PARAMS are the controls per task: only parameters the pipeline applies, with the
// values it accepts. When the server publishes its parameter specs (GET /v1/tasks),
// a parameter it does not list is dropped and ranges are narrowed to its own.
const PARAMS = {
  'remove-background': [
    {name: 'threshold', kind: 'range', label: 'Mask threshold', min: 0, max: 1, step: 0.01, value: 0,
      help: 'Mask values below it become fully transparent; 0 keeps the soft edge.'},
  {name: 'color', kind: 'choice', label: 'Colour profile', value: 'keep',
    options: [['keep', "Keep the image's own profile"], ['srgb', 'Convert to sRGB']],
    help: 'Keep writes the result in the colour space you uploaded (Adobe RGB, Display P3, grey…) with its profile embedded; sRGB suits the web.'},
  ...OUTPUT,
  ],
  'ocr': [
    {name: 'min_confidence', kind: 'range', label: 'Minimum confidence', min: 0, max: 1, step: 0.05, value: 0.5,
      help: 'Lines read with less confidence are left out.'},
  ],
  'upscale': [
    {name: 'scale', kind: 'select', label: 'Scale', options: [2, 4], value: 4, format: (v) => `${v}×`,
      help: 'The output is this many times wider and taller than the input.'},
  {name: 'color', kind: 'choice', label: 'Colour profile', value: 'keep',
    options: [['keep', "Keep the image's own profile"], ['srgb', 'Convert to sRGB']],
    help: 'Keep writes the result in the colour space you uploaded (Adobe RGB, Display P3, grey…) with its profile embedded; sRGB suits the web.'},
  ...OUTPUT,
  ],
  'style-transfer': [...OUTPUT],
};

// Page-only choices: what to show, not sent to the server.
const PREF_MASK = 'studio.offerMask';
const JOBS_KEY = 'studio.jobs';
const LAST_KEY = 'studio.lastJob';
const STAGES = ['preprocess', 'inference', 'postprocess', 'store'];
const STAGE_LABEL = {ingest: 'Received', preprocess: 'Preparing the image', inference: 'Running the model',
  postprocess: 'Finishing the result', store: 'Saving'};
const RESULT_LABEL = {cutout: 'cut-out', image: 'result', mask: 'mask', thumbnail: 'thumbnail', overlay: 'text boxes', text: 'text (JSON)'};
const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

const state = {
  config: {max_upload_bytes: 10 << 20, accepted_types: ['image/jpeg', 'image/png', 'image/webp'], auth_required: false, example: false},
  models: [],
  specs: null, // task -> spec from GET /v1/tasks, or null when the server has none
  file: null,
  previewURL: '',
  current: '', // the job on show
  job: null,
  follow: null,
  rating: 0,
  resultURLs: [],
  ocrText: '', // the text of the ocr job on show, for the copy button
  cursor: '',
  galleryMode: 'server', // or 'local' when the server cannot list jobs
  localOffset: 0,
  galleryURLs: [],
};

// --- start ---------------------------------------------------------------------------

init().catch((e) => showFormError(e));

async function init() {
  bind();
  try {
    state.config = {...state.config, ...(await json('/static/config.json'))};
  } catch { /* an older server: keep the defaults */ }
  const types = state.config.accepted_types.map((t) => t.replace('image/', '').toUpperCase()).join(', ').replace(/, ([^,]*)$/, ' or $1');
  $('limits').textContent = `${types}, up to ${fmtBytes(state.config.max_upload_bytes)}. Checked by content on the server. Several files run as one batch.`;
  $('example').hidden = !state.config.example;
  updateAccount();
  if (state.config.auth_required && !token()) showSignIn('This server needs an access token.');
  await loadCatalog();
  await route();
  loadGallery(true);
}

function bind() {
  $('task').addEventListener('change', () => { fillVersions(); renderParams(); });
  $('version').addEventListener('change', () => { describeModel(); renderParams(); });
  $('job-form').addEventListener('submit', submit);
  $('file').addEventListener('change', () => chooseFiles($('file').files));
  $('example').addEventListener('click', useExample);
  const drop = $('drop');
  for (const t of ['dragenter', 'dragover']) {
    drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add('over'); });
  }
  for (const t of ['dragleave', 'drop']) {
    drop.addEventListener(t, () => drop.classList.remove('over'));
  }
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    if (e.dataTransfer) chooseFiles(e.dataTransfer.files);
  });
  $('cancel').addEventListener('click', cancelJob);
  $('batch-cancel').addEventListener('click', cancelBatch);
  $('batch-zip').addEventListener('click', downloadBatch);
  $('cmp-range').addEventListener('input', setSplit);
  $('ocr-copy').addEventListener('click', copyText);
  $('thumb-up').addEventListener('click', () => rate(1));
  $('thumb-down').addEventListener('click', () => rate(-1));
  $('feedback').addEventListener('submit', sendFeedback);
  $('more').addEventListener('click', () => loadGallery(false));
  $('signin-form').addEventListener('submit', signIn);
  $('signin-open').addEventListener('click', () => showSignIn(''));
  $('signout').addEventListener('click', signOut);
  window.addEventListener('studio:unauthorized', (e) => showSignIn(e.detail && e.detail.message));
  window.addEventListener('hashchange', () => route());
}

// --- sign-in -------------------------------------------------------------------------

function updateAccount() {
  const has = !!token();
  $('account-state').textContent = has ? 'Signed in with a token' : '';
  $('signout').hidden = !has;
  $('signin-open').hidden = has;
}

function showSignIn(message) {
  const box = $('signin');
  $('signin-why').textContent = message
    ? `The server refused the request: ${message}`
    : 'Enter an access token for this server.';
  const wasHidden = box.hidden;
  box.hidden = false;
  if (wasHidden) $('token').focus();
}

async function signIn(e) {
  e.preventDefault();
  const t = $('token').value.trim();
  if (!t) { $('token').focus(); return; }
  setToken(t);
  $('token').value = '';
  $('signin').hidden = true;
  updateAccount();
  await loadCatalog();
  loadGallery(true);
  if (state.current) {
    const id = state.current;
    state.current = '';
    openJob(id);
  }
}

function signOut() {
  clearToken();
  updateAccount();
  if (state.config.auth_required) showSignIn('');
}

// --- task, model and parameters ------------------------------------------------------

// PRESETS are chained jobs (the steps field, README "Chained steps"): offered when every
// step's task is served; a chosen preset replaces the task, model and parameters.
const PRESETS = [
  {id: 'cutout-upscale', label: 'Cut out and upscale ×2', steps: 'remove-background,upscale:scale=2'},
];

function fillPresets() {
  const served = (t) => state.models.some((m) => m.task === t);
  const usable = PRESETS.filter((p) => p.steps.split(',').every((s) => served(s.split(/[:@]/)[0])));
  const sel = $('preset');
  sel.replaceChildren(h('option', {value: '', text: 'None: the task above'}),
    ...usable.map((p) => h('option', {value: p.id, text: p.label})));
  $('preset-field').hidden = !usable.length;
}

function chosenPreset() {
  return PRESETS.find((p) => p.id === $('preset').value);
}

async function loadCatalog() {
  try {
    const m = await json('/v1/models');
    state.models = (m.models || []).filter((x) => TASKS[x.task]);
  } catch (e) {
    if (e.status !== 401) showFormError(e, 'The model list could not be loaded');
    return;
  }
  try {
    const t = await json('/v1/tasks');
    state.specs = Object.fromEntries((t.tasks || []).map((s) => [s.task, s]));
  } catch {
    state.specs = null; // a server without GET /v1/tasks: the page's own table applies
  }
  const sel = $('task');
  const before = sel.value;
  sel.replaceChildren();
  const tasks = Object.keys(TASKS).filter((t) => state.models.some((m) => m.task === t));
  for (const t of tasks) sel.append(h('option', {value: t, text: TASKS[t].label}));
  if (!tasks.length) {
    sel.append(h('option', {value: '', text: 'No task is served'}));
    showFormError(null, 'This server serves no model for the tasks this page offers.');
  }
  if (tasks.includes(before)) sel.value = before;
  fillVersions();
  renderParams();
  fillPresets();
}

function modelsFor(task) {
  return state.models.filter((m) => m.task === task);
}

function selectedModel() {
  const id = $('version').value;
  const list = modelsFor($('task').value);
  return id ? list.find((m) => m.id === id) : (list.find((m) => m.default) || list[0]);
}

function fillVersions() {
  const task = $('task').value;
  $('task-desc').textContent = TASKS[task] ? TASKS[task].desc : '';
  const sel = $('version');
  sel.replaceChildren();
  const list = modelsFor(task);
  const def = list.find((m) => m.default) || list[0];
  if (def) sel.append(h('option', {value: '', text: `Automatic (default: ${def.name} ${def.version})`}));
  for (const m of list) {
    const tags = [];
    if (m.default) tags.push('default');
    if (m.weight) tags.push(`canary ${m.weight}%`);
    if (m.loaded === false) tags.push('not loaded');
    sel.append(h('option', {value: m.id, text: `${m.name} ${m.version}${tags.length ? ` (${tags.join(', ')})` : ''}`}));
  }
  describeModel();
}

function describeModel() {
  const m = selectedModel();
  if (!m) { $('model-desc').textContent = ''; return; }
  const bits = [];
  if (!$('version').value) bits.push('The server picks the version (canary weights apply).');
  if (m.scale) bits.push(`×${m.scale} model.`);
  if (m.fallback) bits.push(`Falls back to ${m.fallback}.`);
  if (m.license) bits.push(`Licence ${m.license}.`);
  if (m.loaded === false) bits.push('Not loaded yet: the first job waits for it.');
  $('model-desc').textContent = bits.join(' ');
}

// effectiveParams narrows the page's controls to what the server says it accepts.
function effectiveParams(task) {
  const spec = state.specs && state.specs[task];
  const model = selectedModel();
  const out = [];
  for (const p of PARAMS[task] || []) {
    const s = spec ? (spec.params || []).find((x) => x.name === p.name) : null;
    if (spec && !s) continue;
    const q = {...p};
    const lo = s && typeof s.minimum === 'number' ? s.minimum : -Infinity;
    const hi = s && typeof s.maximum === 'number' ? s.maximum : Infinity;
    if (q.kind === 'range') {
      q.min = Math.max(q.min, lo);
      q.max = Math.min(q.max, hi);
      q.value = Math.min(Math.max(q.value, q.min), q.max);
    } else if (q.kind === 'select') {
      q.options = q.options.filter((v) => v >= lo && v <= hi && !(p.name === 'scale' && model && model.scale && v > model.scale));
      if (!q.options.length) continue;
      if (!q.options.includes(q.value)) q.value = q.options[q.options.length - 1];
    } else if (q.kind === 'choice' && s && Array.isArray(s.enum)) {
      q.options = q.options.filter(([v]) => s.enum.includes(v));
      if (!q.options.length) continue;
    }
    out.push(q);
  }
  return out;
}

// takesStyle reports whether the chosen model repaints in the style of a second image
// the job carries (GET /v1/models: takes_style).
function takesStyle() {
  const m = selectedModel();
  return !!(m && m.takes_style);
}

function renderParams() {
  const task = $('task').value;
  const box = $('param-fields');
  $('style-field').hidden = !takesStyle();
  const noImage = !!(TASKS[task] && TASKS[task].noImage);
  $('drop').hidden = noImage;
  if (noImage) $('preview').hidden = true;
  if (task === 'generate') {
    // The form is drawn again when the catalog or the task specs arrive: what the user
    // has typed (a prompt, a seed) survives that.
    const kept = {};
    for (const el of box.querySelectorAll('textarea, input, select')) if (el.id) kept[el.id] = el.value;
    box.replaceChildren();
    renderGenerateParams(box);
    for (const [id, v] of Object.entries(kept)) {
      const el = document.getElementById(id);
      if (el && v !== '') el.value = v;
    }
    return;
  }
  box.replaceChildren();
  for (const p of effectiveParams(task)) {
    const id = `p-${p.name}`;
    const help = `${id}-help`;
    if (p.kind === 'range') {
      const digits = p.step >= 1 ? 0 : 2;
      const out = h('output', {id: `${id}-out`, for: id, text: Number(p.value).toFixed(digits)});
      const input = h('input', {id, type: 'range', name: p.name, min: p.min, max: p.max, step: p.step, value: p.value,
        'aria-describedby': help, 'data-kind': 'number'});
      input.addEventListener('input', () => { out.textContent = Number(input.value).toFixed(digits); });
      box.append(h('div', {class: 'field', 'data-show-for': p.showFor ? p.showFor.join(' ') : null},
        h('label', {for: id}, `${p.label} `, out),
        input,
        h('p', {class: 'hint', id: help, text: `${p.help} Range ${p.min} to ${p.max}.`})));
    } else if (p.kind === 'select') {
      const sel = h('select', {id, name: p.name, 'aria-describedby': help, 'data-kind': 'number'},
        p.options.map((v) => h('option', {value: v, selected: v === p.value, text: p.format ? p.format(v) : String(v)})));
      box.append(h('div', {class: 'field'}, h('label', {for: id, text: p.label}), sel,
        h('p', {class: 'hint', id: help, text: p.help})));
    } else if (p.kind === 'choice') {
      const sel = h('select', {id, name: p.name, 'aria-describedby': help, 'data-kind': 'string'},
        p.options.map(([v, text]) => h('option', {value: v, selected: v === p.value, text})));
      box.append(h('div', {class: 'field'}, h('label', {for: id, text: p.label}), sel,
        h('p', {class: 'hint', id: help, text: p.help})));
    } else if (p.kind === 'color') {
      const input = h('input', {id, type: 'color', name: p.name, value: p.value, 'aria-describedby': help, 'data-kind': 'string'});
      box.append(h('div', {class: 'field', 'data-show-for': p.showFor ? p.showFor.join(' ') : null},
        h('label', {for: id, text: p.label}), input, h('p', {class: 'hint', id: help, text: p.help})));
    }
  }
  const format = document.getElementById('p-format');
  if (format) {
    // Quality and background apply to some formats only: the others hide them.
    const sync = () => {
      for (const f of box.querySelectorAll('[data-show-for]')) f.hidden = !f.dataset.showFor.split(' ').includes(format.value);
    };
    format.addEventListener('change', sync);
    sync();
  }
  if (task === 'remove-background') {
    const cb = h('input', {id: 'p-mask', type: 'checkbox', checked: localStorage.getItem(PREF_MASK) === '1'});
    cb.addEventListener('change', () => {
      localStorage.setItem(PREF_MASK, cb.checked ? '1' : '0');
      if (state.job && state.job.status === 'succeeded') renderDownloads(state.job);
    });
    box.append(h('div', {class: 'field check'}, cb, h('label', {for: 'p-mask', text: 'Also offer the mask (black and white PNG) for download'})));
  }
  if (!box.children.length) box.append(h('p', {class: 'hint', text: 'This task takes no parameters.'}));
}

function collectParams() {
  const out = {};
  for (const el of $('param-fields').querySelectorAll('[data-kind]')) {
    if (el.closest('[hidden]')) continue; // a control that does not apply (quality with png)
    if (el.dataset.kind === 'number') out[el.name] = Number(el.value);
    else if (el.dataset.kind === 'boolean') out[el.name] = el.checked;
    else if (el.dataset.kind === 'string' && el.value.trim() !== '') out[el.name] = el.value;
    else if (el.dataset.kind === 'optional-number' && el.value.trim() !== '') out[el.name] = Number(el.value);
    else if (el.dataset.kind === 'size' && el.value) {
      const [w, hgt] = el.value.split('x').map(Number);
      out.width = w;
      out.height = hgt;
    }
  }
  return out;
}

// renderGenerateParams draws the controls of generate: the prompt, the negative prompt,
// seed, steps, guidance, size and image count. Empty optional fields use the model's
// defaults (SD-Turbo: 1 step, no guidance), so nothing is sent for them.
function renderGenerateParams(box) {
  const field = (id, label, input, help) => h('div', {class: 'field'},
    h('label', {for: id, text: label}), input, h('p', {class: 'hint', id: `${id}-help`, text: help}));
  box.append(
    field('p-prompt', 'Prompt', h('textarea', {id: 'p-prompt', name: 'prompt', rows: 3, maxlength: 1000, required: true,
      'data-kind': 'string', 'aria-describedby': 'p-prompt-help', placeholder: 'a photo of a red cat on a windowsill'}),
    'What to draw, in English; at most 75 tokens are read.'),
    field('p-negative_prompt', 'Negative prompt', h('textarea', {id: 'p-negative_prompt', name: 'negative_prompt', rows: 2, maxlength: 1000,
      'data-kind': 'string', 'aria-describedby': 'p-negative_prompt-help', placeholder: 'blurry, low quality'}),
    'What to steer away from; used when guidance is above 1.'),
    h('div', {class: 'grid2'},
      field('p-seed', 'Seed', h('input', {id: 'p-seed', name: 'seed', type: 'number', min: 0, max: 4294967295, step: 1, inputmode: 'numeric',
        'data-kind': 'optional-number', 'aria-describedby': 'p-seed-help', placeholder: 'random'}),
      'The same seed and settings give the same image. Empty: a random seed, shown with the result.'),
      field('p-steps', 'Steps', h('input', {id: 'p-steps', name: 'steps', type: 'number', min: 1, max: 150, step: 1, inputmode: 'numeric',
        'data-kind': 'optional-number', 'aria-describedby': 'p-steps-help', placeholder: "model's default"}),
      'Denoising steps, 1 to 150; SD-Turbo needs 1 to 4.'),
      field('p-guidance', 'Guidance', h('input', {id: 'p-guidance', name: 'guidance', type: 'number', min: 0, max: 30, step: 0.5,
        'data-kind': 'optional-number', 'aria-describedby': 'p-guidance-help', placeholder: "model's default"}),
      'How closely to follow the prompt, 0 to 30; 0 or 1 turns guidance off (SD-Turbo).'),
      field('p-size', 'Size', h('select', {id: 'p-size', name: 'size', 'data-kind': 'size', 'aria-describedby': 'p-size-help'},
        h('option', {value: '', text: "Model's default"}),
        SIZES.map(([w, hgt]) => h('option', {value: `${w}x${hgt}`, text: `${w} × ${hgt}`}))),
      'Width × height in pixels; larger sizes take longer.'),
      field('p-num_images', 'Images', h('select', {id: 'p-num_images', name: 'num_images', 'data-kind': 'number', 'aria-describedby': 'p-num_images-help'},
        [1, 2, 3, 4].map((v) => h('option', {value: v, text: String(v)}))),
      'How many images to make from the prompt.')));
}

function offerMask() {
  return localStorage.getItem(PREF_MASK) === '1';
}

// --- choosing and sending the image --------------------------------------------------

// chooseFiles takes what a file picker or a drop gave: one image is a job, several are
// a batch.
function chooseFiles(list) {
  const files = Array.from(list || []);
  if (files.length === 0) return;
  if (files.length === 1) {
    chooseFile(files[0]);
    return;
  }
  state.file = null;
  state.files = files;
  clearFormError();
  if (state.previewURL) URL.revokeObjectURL(state.previewURL);
  state.previewURL = '';
  const total = files.reduce((n, f) => n + f.size, 0);
  $('preview-img').removeAttribute('src');
  $('preview-img').alt = '';
  $('preview-cap').textContent = `${files.length} images · ${fmtBytes(total)} · they run as one batch`;
  $('preview').hidden = false;
  const big = files.filter((f) => f.size > state.config.max_upload_bytes);
  if (big.length) {
    showFormError(null, `${big.map((f) => f.name).join(', ')} ${big.length === 1 ? 'is' : 'are'} over the ${fmtBytes(state.config.max_upload_bytes)} limit: compress or resize ${big.length === 1 ? 'it' : 'them'}.`);
  }
}

function chooseFile(file) {
  state.files = null;
  state.file = file;
  clearFormError();
  if (state.previewURL) URL.revokeObjectURL(state.previewURL);
  state.previewURL = URL.createObjectURL(file);
  const img = $('preview-img');
  const cap = $('preview-cap');
  const desc = `${file.name || 'image'} · ${fmtBytes(file.size)}${file.type ? ` · ${file.type}` : ''}`;
  img.alt = `Preview of ${file.name || 'the chosen image'}`;
  img.onload = () => { cap.textContent = `${desc} · ${img.naturalWidth} × ${img.naturalHeight}`; };
  img.onerror = () => { cap.textContent = `${desc} · no preview: the browser cannot show this file; the server will check it.`; };
  img.src = state.previewURL;
  cap.textContent = desc;
  $('preview').hidden = false;
  if (file.size > state.config.max_upload_bytes) {
    showFormError(null, `${file.name || 'The file'} is ${fmtBytes(file.size)}, over the ${fmtBytes(state.config.max_upload_bytes)} limit: compress or resize it.`);
  }
}

async function useExample() {
  try {
    const res = await api('/static/example.png');
    const blob = await res.blob();
    chooseFile(new File([blob], 'example.png', {type: 'image/png'}));
    $('run').focus();
  } catch (e) {
    showFormError(e, 'The example photo could not be loaded');
  }
}

async function submit(e) {
  e.preventDefault();
  clearFormError();
  const preset = chosenPreset();
  const noImage = !preset && !!(TASKS[$('task').value] && TASKS[$('task').value].noImage);
  if (noImage && !$('p-prompt').value.trim()) {
    showFormError(null, 'Write a prompt first: what should the image show?');
    $('p-prompt').focus();
    return;
  }
  const style = !preset && takesStyle() ? $('style-file').files[0] : null;
  if (!preset && takesStyle() && !style) {
    showFormError(null, 'Choose a style image too: this model paints your image in its style.');
    $('style-file').focus();
    return;
  }
  if (style && style.size > state.config.max_upload_bytes) {
    showFormError(null, `The style image is ${fmtBytes(style.size)}, over the ${fmtBytes(state.config.max_upload_bytes)} limit: compress or resize it.`);
    return;
  }
  if (preset && state.files && state.files.length > 1) {
    showFormError(null, 'A preset runs on one image at a time: choose one file, or no preset for a batch.');
    return;
  }
  if (!noImage && state.files && state.files.length > 1) {
    if (style) {
      showFormError(null, 'A style image goes with one image at a time: choose a single image for this model.');
      return;
    }
    await submitBatch();
    return;
  }
  if (!noImage && !state.file) {
    showFormError(null, 'Choose an image first: drop one here, pick a file, or try the example photo.');
    return;
  }
  if (!noImage && state.file.size > state.config.max_upload_bytes) {
    showFormError(null, `The image is ${fmtBytes(state.file.size)}, over the ${fmtBytes(state.config.max_upload_bytes)} limit: compress or resize it.`);
    return;
  }
  const task = $('task').value;
  const fd = new FormData();
  if (preset) {
    fd.append('steps', preset.steps);
  } else {
    fd.append('task', task);
    const picked = $('version').value && selectedModel();
    if (picked) {
      fd.append('model', picked.name);
      fd.append('version', picked.version);
    }
    const params = collectParams();
    if (Object.keys(params).length) fd.append('params', JSON.stringify(params));
  }
  if (!noImage) fd.append('image', state.file, state.file.name || 'image');
  if (style) fd.append('style', style, style.name || 'style');
  const run = $('run');
  run.disabled = true;
  run.textContent = noImage ? 'Sending…' : 'Uploading…';
  try {
    const res = await api('/v1/jobs', {method: 'POST', body: fd});
    const job = await res.json();
    remember(job.id);
    state.current = '';
    await openJob(job.id, job, true);
    history.pushState(null, '', `#job=${encodeURIComponent(job.id)}`);
  } catch (err) {
    showFormError(err);
  } finally {
    run.disabled = false;
    run.textContent = 'Run';
  }
}

// --- batches -------------------------------------------------------------------------

// formFields returns the task, model and parameter fields a job or a batch sends.
function formFields() {
  const fd = new FormData();
  fd.append('task', $('task').value);
  const picked = $('version').value && selectedModel();
  if (picked) {
    fd.append('model', picked.name);
    fd.append('version', picked.version);
  }
  const params = collectParams();
  if (Object.keys(params).length) fd.append('params', JSON.stringify(params));
  return fd;
}

async function submitBatch() {
  const files = state.files;
  const big = files.filter((f) => f.size > state.config.max_upload_bytes);
  if (big.length) {
    showFormError(null, `${big.map((f) => f.name).join(', ')}: over the ${fmtBytes(state.config.max_upload_bytes)} limit.`);
    return;
  }
  const fd = formFields();
  for (const f of files) fd.append('image', f, f.name || 'image');
  const run = $('run');
  run.disabled = true;
  run.textContent = 'Uploading…';
  try {
    const res = await api('/v2/batches', {method: 'POST', body: fd});
    const b = await res.json();
    stopFollow();
    $('progress').hidden = true;
    $('result').hidden = true;
    showBatch(b);
    history.pushState(null, '', `#batch=${encodeURIComponent(b.id)}`);
    followBatch(b.id);
  } catch (err) {
    showFormError(err);
  } finally {
    run.disabled = false;
    run.textContent = 'Run';
  }
}

// showBatch renders a batch as one card: counts, progress, ETA, each job with a link,
// the images that were refused.
function showBatch(b) {
  state.batch = b;
  $('batch').hidden = false;
  $('batch-id').textContent = b.id;
  $('batch-total').textContent = `${b.total} ${b.total === 1 ? 'image' : 'images'}`;
  $('batch-bar').value = b.percent;
  $('batch-pct').textContent = `${b.percent}%`;
  const c = b.counts;
  const parts = [`${c.succeeded} succeeded`, `${c.failed} failed`, `${c.cancelled} cancelled`, `${c.running} running`, `${c.queued} queued`];
  let status = b.status === 'done' ? `Done: ${parts.slice(0, 3).join(', ')}.` : `${parts.join(', ')}.`;
  if (b.status !== 'done' && b.eta_seconds != null) status += ` About ${fmtSeconds(b.eta_seconds)} left.`;
  $('batch-status').textContent = status;
  $('batch-status').dataset.state = b.status;
  const refused = $('batch-refused');
  if (b.refused && b.refused.length) {
    refused.replaceChildren(h('p', {}, `${b.refused.length} ${b.refused.length === 1 ? 'image was' : 'images were'} refused:`),
      h('ul', {}, b.refused.map((r) => h('li', {}, `${r.filename || `#${r.index + 1}`}: ${(r.problem && r.problem.detail) || 'refused'}`))));
    refused.hidden = false;
  } else if (!state.batchRefusedShown) {
    refused.hidden = true;
  }
  if (b.refused && b.refused.length) state.batchRefusedShown = true;
  $('batch-jobs').replaceChildren(...b.jobs.map((j) => h('li', {'data-status': j.status},
    h('a', {href: `#job=${encodeURIComponent(j.id)}`, text: j.id}), ` ${j.status}${j.status === 'failed' && j.error ? `: ${j.error.message}` : ''}`)));
  $('batch-zip').disabled = c.succeeded === 0;
  $('batch-cancel').hidden = b.status === 'done';
}

function fmtSeconds(s) {
  if (s < 60) return `${Math.max(1, Math.round(s))} s`;
  return `${Math.round(s / 60)} min`;
}

async function followBatch(id) {
  const mine = (state.batchFollow = {});
  while (state.batchFollow === mine) {
    await sleep(1500);
    if (state.batchFollow !== mine) return;
    try {
      const b = await json(`/v2/batches/${encodeURIComponent(id)}`);
      showBatch(b);
      if (b.status === 'done') return;
    } catch (err) {
      $('batch-status').textContent = `Could not read the batch: ${err.detail || err.message}. Retrying…`;
    }
  }
}

async function cancelBatch() {
  const b = state.batch;
  if (!b) return;
  try {
    const res = await api(`/v2/batches/${encodeURIComponent(b.id)}`, {method: 'DELETE'});
    showBatch(await res.json());
  } catch (err) {
    $('batch-status').textContent = `Cancel failed: ${err.detail || err.message}`;
  }
}

async function downloadBatch() {
  const b = state.batch;
  if (!b) return;
  try {
    const {url} = await blobURL(`/v2/batches/${encodeURIComponent(b.id)}/results`);
    const a = h('a', {href: url, download: `batch-${b.id}.zip`});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (err) {
    $('batch-status').textContent = `Download failed: ${err.detail || err.message}`;
  }
}

function showFormError(err, prefix) {
  const box = $('form-error');
  box.replaceChildren();
  const msg = err ? (err.detail || err.message) : '';
  box.append(h('p', {}, prefix && msg ? `${prefix}: ${msg}` : (msg || prefix)));
  if (err && err.problem && Array.isArray(err.problem.errors)) {
    const extra = err.problem.errors.filter((f) => f.message && !msg.includes(f.message));
    if (extra.length) box.append(h('ul', {}, extra.map((f) => h('li', {}, `${f.field ? `${f.field}: ` : ''}${f.message}`))));
  }
  if (err && err.code) box.append(h('p', {class: 'code'}, `Error code: ${err.code}`));
  box.hidden = false;
}

function clearFormError() {
  $('form-error').hidden = true;
  $('form-error').replaceChildren();
}

// --- following a job -----------------------------------------------------------------

function remember(id) {
  try {
    const ids = JSON.parse(localStorage.getItem(JOBS_KEY) || '[]').filter((x) => x !== id);
    ids.unshift(id);
    localStorage.setItem(JOBS_KEY, JSON.stringify(ids.slice(0, 100)));
    localStorage.setItem(LAST_KEY, id);
  } catch { /* storage full or off: the URL still holds the job */ }
}

function hashJob() {
  const m = /(?:^#|&)job=([^&]+)/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : '';
}

// route opens the job named in the URL (so a reload resumes it), or else resumes the
// last job this browser started while it is still running.
async function route() {
  const bm = /(?:^#|&)batch=([^&]+)/.exec(location.hash);
  if (bm) {
    const bid = decodeURIComponent(bm[1]);
    try {
      const b = await json(`/v2/batches/${encodeURIComponent(bid)}`);
      showBatch(b);
      if (b.status !== 'done') followBatch(bid);
    } catch (err) {
      showFormError(err, `Batch ${bid} could not be opened`);
    }
    return;
  }
  const id = hashJob();
  if (id) return openJob(id);
  if (state.current) return;
  let last = '';
  try { last = localStorage.getItem(LAST_KEY) || ''; } catch { /* none */ }
  if (!last) return;
  try {
    const job = await json(`/v1/jobs/${encodeURIComponent(last)}`);
    if (!FINAL.has(job.status)) {
      history.replaceState(null, '', `#job=${encodeURIComponent(last)}`);
      openJob(last, job);
    }
  } catch { /* gone */ }
}

async function openJob(id, initial, live) {
  if (state.current === id) return;
  stopFollow();
  state.current = id;
  state.job = null;
  $('result').hidden = true;
  $('job-error').hidden = true;
  let job = initial;
  if (!job) {
    try {
      job = await json(`/v1/jobs/${encodeURIComponent(id)}`);
    } catch (e) {
      if (state.current !== id) return;
      $('progress').hidden = false;
      $('progress-job').textContent = id;
      showJobError(e.status === 404 ? `No job ${id}: it may have expired.` : (e.detail || e.message));
      return;
    }
    if (state.current !== id) return;
  }
  $('progress-job').textContent = id;
  if (FINAL.has(job.status)) {
    renderProgress(job);
    finish(job, !!live);
    return;
  }
  renderProgress(job);
  if (live) $('progress').scrollIntoView({block: 'nearest'});
  follow(id);
}

function follow(id) {
  const f = {id, stopped: false, ws: null, ctrl: new AbortController(), attempts: 0,
    mode: 'WebSocket' in window ? 'websocket' : 'sse'};
  state.follow = f;
  state.ticker = setInterval(tick, 250);
  connect(f);
}

function stopFollow() {
  const f = state.follow;
  if (f) {
    f.stopped = true;
    if (f.ws) f.ws.close(1000, 'done');
    f.ctrl.abort();
  }
  state.follow = null;
  clearInterval(state.ticker);
}

function connect(f) {
  if (f.stopped) return;
  if (f.mode === 'websocket') connectWS(f);
  else if (f.mode === 'sse') connectSSE(f);
  else poll(f);
}

// onJob applies a new state of the job; it reports whether the job is over.
function onJob(f, job) {
  if (f.stopped || !job || job.id !== f.id) return f.stopped;
  state.job = job;
  renderProgress(job);
  if (FINAL.has(job.status)) {
    stopFollow();
    finish(job, true);
    return true;
  }
  return false;
}

async function connectWS(f) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let url = `${scheme}//${location.host}/v1/jobs/${encodeURIComponent(f.id)}/events`;
  // Browsers cannot set headers on a WebSocket, and a URL ends up in access logs: the
  // socket carries a single-use ticket that expires in seconds, never the token.
  if (token()) {
    try {
      const t = await json('/v1/tickets', {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({jobs: [f.id]}), signal: f.ctrl.signal});
      url += `?ticket=${encodeURIComponent(t.ticket)}`;
    } catch {
      if (f.stopped) return;
      f.mode = 'sse';
      connect(f);
      return;
    }
    if (f.stopped) return;
  }
  let opened = false;
  let over = false;
  let ws;
  try {
    ws = new WebSocket(url);
  } catch {
    f.mode = 'sse';
    connect(f);
    return;
  }
  f.ws = ws;
  ws.onopen = () => { opened = true; f.attempts = 0; setTransport('live over a WebSocket', 'websocket'); };
  ws.onmessage = (m) => {
    let frame;
    try { frame = JSON.parse(m.data); } catch { return; }
    const job = frame.job ? {...frame.job} : (state.job ? {...state.job} : null);
    if (!job) return;
    for (const k of ['status', 'stage', 'percent', 'queue_position', 'step', 'steps']) {
      if (frame[k] !== undefined) job[k] = frame[k];
    }
    over = onJob(f, job) || over;
  };
  ws.onclose = () => {
    if (f.stopped || over) return;
    if (!opened) {
      // The server does not speak WebSocket on this route (or refused the upgrade).
      f.mode = 'sse';
      connect(f);
    } else {
      retry(f);
    }
  };
}

async function connectSSE(f) {
  let res;
  try {
    res = await api(`/v1/jobs/${encodeURIComponent(f.id)}/events`, {headers: {Accept: 'text/event-stream'}, signal: f.ctrl.signal});
  } catch (e) {
    if (f.stopped) return;
    if (e.status === 404 && e.code) { showJobError(e.detail); stopFollow(); return; }
    f.mode = 'poll';
    connect(f);
    return;
  }
  if (!res.body || !(res.headers.get('Content-Type') || '').includes('text/event-stream')) {
    f.mode = 'poll';
    connect(f);
    return;
  }
  f.attempts = 0;
  setTransport('live over server-sent events', 'sse');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += value.replace(/\r\n?/g, '\n');
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = parseSSE(block);
        if (!ev.data) continue;
        let data;
        try { data = JSON.parse(ev.data); } catch { continue; }
        if (ev.event === 'queue') {
          if (state.job) onJob(f, {...state.job, queue_position: data.queue_position});
        } else if (onJob(f, data)) {
          return;
        }
      }
    }
  } catch {
    if (f.stopped) return;
  }
  retry(f);
}

function parseSSE(block) {
  const ev = {event: 'message', data: ''};
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
    if (field === 'event') ev.event = value;
    else if (field === 'data') ev.data += (ev.data ? '\n' : '') + value;
  }
  return ev;
}

async function poll(f) {
  setTransport('checking every second', 'poll');
  while (!f.stopped) {
    try {
      const job = await json(`/v1/jobs/${encodeURIComponent(f.id)}`, {signal: f.ctrl.signal});
      if (onJob(f, job)) return;
    } catch (e) {
      if (f.stopped) return;
      if (e.status === 404) { showJobError(e.detail || e.message); stopFollow(); return; }
    }
    await sleep(1000);
  }
}

function retry(f) {
  if (f.stopped) return;
  f.attempts++;
  const delay = Math.min(1000 * 2 ** (f.attempts - 1), 10000);
  setTransport(`connection lost; reconnecting in ${Math.round(delay / 1000)} s`, 'reconnecting');
  setTimeout(() => connect(f), delay);
}

function sleep(ms) {
  return new Promise((ok) => setTimeout(ok, ms));
}

function setTransport(text, kind) {
  $('transport').textContent = `· ${text}`;
  $('transport').dataset.kind = kind;
}

function renderProgress(job) {
  $('progress').hidden = false;
  const pct = job.status === 'succeeded' ? 100 : Math.max(0, Math.min(100, Number(job.percent) || 0));
  $('bar').value = pct;
  $('bar-pct').textContent = `${pct}%`;
  let text;
  switch (job.status) {
    case 'queued':
      text = job.queue_position ? `Queued: number ${job.queue_position} in the ${job.tier || ''} queue` : 'Queued';
      break;
    case 'running':
      text = `${STAGE_LABEL[job.stage] || job.stage || 'Working'} (${job.stage || 'running'}) · ${pct}%`;
      // A generate job reports its denoising steps while the model runs.
      if (job.steps && job.stage === 'inference') text += ` · step ${job.step || 0} of ${job.steps}`;
      break;
    case 'succeeded':
      text = `Done · 100%${job.cache_hit ? ' · answered from the result cache' : ''}`;
      break;
    case 'failed':
      text = `Failed${job.error && job.error.stage ? ` at ${job.error.stage}` : ''}`;
      break;
    case 'cancelled':
      text = 'Cancelled';
      break;
    default:
      text = `${job.status} · ${pct}%`;
  }
  // Rewriting the same text would make screen readers announce it again.
  if ($('progress-text').textContent !== text) $('progress-text').textContent = text;
  $('progress').dataset.status = job.status;
  $('cancel').hidden = FINAL.has(job.status);
  state.job = job;
  tick();
}

function tick() {
  const job = state.job;
  if (!job || !job.submitted_at) { $('elapsed').textContent = ''; return; }
  const start = Date.parse(job.submitted_at);
  const end = FINAL.has(job.status) && job.finished_at ? Date.parse(job.finished_at) : Date.now();
  const took = fmtMS(Math.max(0, end - start));
  $('elapsed').textContent = FINAL.has(job.status) ? `Took ${took}` : `${took} elapsed`;
}

function showJobError(message) {
  const box = $('job-error');
  box.textContent = message;
  box.hidden = false;
}

async function finish(job, live) {
  state.job = job;
  tick();
  if (job.status === 'failed') {
    const e = job.error || {};
    showJobError(`${e.message || 'The job failed.'}${e.code ? ` (${e.code})` : ''}`);
  }
  if (job.status === 'succeeded') await renderResult(job, live);
  if (live) loadGallery(true);
}

async function cancelJob() {
  const id = state.current;
  if (!id) return;
  try {
    const res = await api(`/v1/jobs/${encodeURIComponent(id)}`, {method: 'DELETE'});
    const job = await res.json().catch(() => null);
    if (job && job.id && state.follow) onJob(state.follow, job);
  } catch (e) {
    showJobError(e.missingRoute ? 'This server cannot cancel jobs yet.' : (e.detail || e.message));
  }
}

// --- the result ----------------------------------------------------------------------

// unsafe reports whether the safety checker flagged a generated image (its pixels are
// black): the page says so instead of showing a black square without a word.
const unsafe = (ref) => ((ref && ref.flags) || []).includes('unsafe');
const UNSAFE_NOTE = 'blacked out: the safety checker flagged it';

function mainResult(job) {
  const d = job.downloads || {};
  for (const name of ['cutout', 'image', 'overlay']) if (d[name]) return name;
  return Object.keys(d).find((n) => n !== 'thumbnail' && n !== 'mask' && n !== 'text') || Object.keys(d)[0];
}

async function renderResult(job, live) {
  for (const u of state.resultURLs) URL.revokeObjectURL(u);
  state.resultURLs = [];
  const name = mainResult(job);
  const out = (job.results || {})[name] || {};
  const inp = job.input || {};
  $('result-h').textContent = `Result: ${TASKS[job.task] ? TASKS[job.task].label.toLowerCase() : job.task}${unsafe(out) ? ` (${UNSAFE_NOTE})` : ''}`;
  const generated = !!(TASKS[job.task] && TASKS[job.task].noImage);
  $('side').classList.toggle('single', generated);
  $('before').closest('figure').hidden = generated;
  document.querySelector('.compare-block').hidden = generated;
  try {
    const [before, after] = await Promise.all([
      // A generate job's input is its prompt document, not a picture: show the image only.
      generated ? Promise.resolve({url: ''}) : blobURL(`/v1/jobs/${encodeURIComponent(job.id)}/input`),
      blobURL(job.downloads[name]),
    ]);
    if (state.current !== job.id) {
      URL.revokeObjectURL(before.url);
      URL.revokeObjectURL(after.url);
      return;
    }
    state.resultURLs.push(...[before.url, after.url].filter(Boolean));
    const beforeAlt = `Input image${inp.width ? `, ${inp.width} × ${inp.height}` : ''}`;
    const afterAlt = `Result (${RESULT_LABEL[name] || name})${out.width ? `, ${out.width} × ${out.height}` : ''}${unsafe(out) ? `, ${UNSAFE_NOTE}` : ''}`;
    for (const [id, u, alt] of [['before', before.url, beforeAlt], ['cmp-before', before.url, ''], ['after', after.url, afterAlt], ['cmp-after', after.url, '']]) {
      $(id).src = u;
      $(id).alt = alt;
    }
  } catch (e) {
    showJobError(`The result could not be loaded: ${e.detail || e.message}`);
  }
  $('cmp-range').value = 50;
  setSplit();
  renderDownloads(job);
  renderMeta(job);
  await renderText(job);
  resetFeedback();
  $('result').hidden = false;
  $('result').dataset.job = job.id;
  if (live) $('result-h').focus({preventScroll: false});
}

// renderText lists the lines an ocr job read, in reading order, with their confidence;
// the overlay (the "after" image) shows their boxes over the input.
async function renderText(job) {
  const box = $('ocr');
  const list = $('ocr-lines');
  list.replaceChildren();
  $('ocr-copied').textContent = '';
  state.ocrText = '';
  box.hidden = true;
  const url = (job.downloads || {}).text;
  if (job.task !== 'ocr' || !url) return;
  try {
    const res = await json(url);
    if (state.current !== job.id) return;
    const lines = res.lines || [];
    state.ocrText = res.text || lines.map((l) => l.text).join('\n');
    for (const l of lines) {
      list.append(h('li', {'data-index': l.index}, h('span', {class: 'ocr-text', text: l.text}), ' ',
        h('small', {text: `${Math.round(100 * l.confidence)}%`, title: 'confidence'})));
    }
    if (!lines.length) list.append(h('li', {class: 'hint', text: 'No text found.'}));
    $('ocr-copy').disabled = !lines.length;
    box.hidden = false;
  } catch (e) {
    showJobError(`The text could not be loaded: ${e.detail || e.message}`);
  }
}

async function copyText() {
  const status = $('ocr-copied');
  try {
    await navigator.clipboard.writeText(state.ocrText);
    status.textContent = 'Copied.';
  } catch {
    // No clipboard access (an insecure origin, or permission refused): select the
    // lines so the user can copy them by hand.
    const range = document.createRange();
    range.selectNodeContents($('ocr-lines'));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    status.textContent = 'Selected: press Ctrl+C to copy.';
  }
}

function setSplit() {
  const v = Number($('cmp-range').value);
  $('compare').style.setProperty('--split', `${v}%`);
  $('cmp-range').setAttribute('aria-valuetext', `${v}% result`);
}

function renderDownloads(job) {
  const box = $('downloads');
  box.replaceChildren();
  const d = job.downloads || {};
  const order = ['cutout', 'image', 'mask', 'thumbnail'];
  const names = Object.keys(d).sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  for (const name of names) {
    if (name === 'mask' && job.task === 'remove-background' && !offerMask()) continue;
    const ref = (job.results || {})[name] || {};
    const ext = (d[name].match(/\.([a-z0-9]+)$/i) || [, ''])[1].toUpperCase();
    const info = [ext, ref.width ? `${ref.width} × ${ref.height}` : '', ref.size ? fmtBytes(ref.size) : '', unsafe(ref) ? UNSAFE_NOTE : ''].filter(Boolean).join(' · ');
    box.append(h('button', {type: 'button', class: 'download', 'data-name': name,
      onclick: () => download(d[name], `${job.id}-${name}${ext ? `.${ext.toLowerCase()}` : ''}`)},
    `Download ${RESULT_LABEL[name] || name}`, h('small', {}, info)));
  }
}

async function download(url, fallbackName) {
  try {
    const {url: obj, filename} = await blobURL(url);
    const a = h('a', {href: obj, download: filename || fallbackName, hidden: true});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(obj), 60000);
  } catch (e) {
    showJobError(`The download failed: ${e.detail || e.message}`);
  }
}

function renderMeta(job) {
  const dl = $('meta');
  dl.replaceChildren();
  const add = (k, v) => { if (v !== undefined && v !== '') dl.append(h('dt', {text: k}), h('dd', {text: v})); };
  const dims = (r) => (r && r.width ? `${r.width} × ${r.height}` : '');
  add('Model', `${job.model} ${job.model_version}${job.fallback_from ? ` (fallback from ${job.fallback_from})` : ''}`);
  add('Task', `${job.task}${job.tier ? ` · ${job.tier} tier` : ''}`);
  const inp = job.input || {};
  add('Input', [dims(inp), inp.content_type, inp.size ? fmtBytes(inp.size) : ''].filter(Boolean).join(' · '));
  for (const [name, ref] of Object.entries(job.results || {})) {
    if (name === 'thumbnail') continue;
    add(`Output: ${RESULT_LABEL[name] || name}`, [dims(ref), ref.content_type, ref.size ? fmtBytes(ref.size) : '', unsafe(ref) ? UNSAFE_NOTE : ''].filter(Boolean).join(' · '));
  }
  if (job.params && Object.keys(job.params).length) {
    add('Parameters', Object.entries(job.params).map(([k, v]) => `${k} = ${v}`).join(', '));
  }
  add('Cache hit', job.cache_hit ? 'yes: answered from the result cache, no model ran' : 'no');
  if (job.submitted_at && job.finished_at) add('Total time', fmtMS(Date.parse(job.finished_at) - Date.parse(job.submitted_at)));
  const first = STAGES.map((s) => job.stages && job.stages[s]).find(Boolean);
  if (first && job.submitted_at) add('Waiting before the first stage', fmtMS(Date.parse(first.started_at) - Date.parse(job.submitted_at)));
  add('Job id', job.id);
  if (job.trace_id) add('Trace id', job.trace_id);

  const body = $('stages').tBodies[0];
  body.replaceChildren();
  for (const s of STAGES) {
    const t = job.stages && job.stages[s];
    if (!t) continue;
    body.append(h('tr', {'data-stage': s},
      h('th', {scope: 'row', text: s}),
      h('td', {text: fmtMS(t.duration_ms)}),
      h('td', {text: t.attempts || 1}),
      h('td', {text: t.batch_size || '–'}),
      h('td', {text: t.worker || '–'})));
  }
  $('stages').hidden = !body.children.length;
}

// --- feedback ------------------------------------------------------------------------

function resetFeedback() {
  state.rating = 0;
  $('thumb-up').setAttribute('aria-pressed', 'false');
  $('thumb-down').setAttribute('aria-pressed', 'false');
  $('comment').value = '';
  $('feedback-status').textContent = '';
}

function rate(v) {
  state.rating = state.rating === v ? 0 : v;
  $('thumb-up').setAttribute('aria-pressed', String(state.rating === 1));
  $('thumb-down').setAttribute('aria-pressed', String(state.rating === -1));
}

async function sendFeedback(e) {
  e.preventDefault();
  const status = $('feedback-status');
  if (!state.rating) {
    status.textContent = 'Choose Good or Not good first.';
    return;
  }
  const body = {job_id: state.current, rating: state.rating, comment: $('comment').value.trim()};
  if (!body.comment) delete body.comment;
  const post = (b) => api('/v1/feedback', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(b)});
  try {
    try {
      await post(body);
    } catch (err) {
      // Some servers take the rating as "up"/"down" rather than 1/-1: answer their
      // validation error by sending the other spelling once.
      const aboutRating = err.status === 422 && JSON.stringify(err.problem || {}).includes('rating');
      if (!aboutRating) throw err;
      await post({...body, rating: body.rating > 0 ? 'up' : 'down'});
    }
    status.textContent = 'Thank you: your feedback was sent.';
    status.dataset.sent = 'true';
  } catch (err) {
    status.textContent = err.missingRoute ? 'This server does not take feedback yet.' : `Not sent: ${err.detail || err.message}`;
    status.dataset.sent = 'false';
  }
}

// --- gallery -------------------------------------------------------------------------

async function loadGallery(reset) {
  const list = $('gallery-list');
  if (reset) {
    state.galleryMode = 'server';
    state.cursor = '';
    state.localOffset = 0;
    for (const u of state.galleryURLs) URL.revokeObjectURL(u);
    state.galleryURLs = [];
  }
  let jobs = [];
  let more = false;
  if (state.galleryMode === 'server') {
    try {
      const page = await json(`/v1/jobs?limit=12${state.cursor ? `&cursor=${encodeURIComponent(state.cursor)}` : ''}`);
      jobs = page.jobs || page.items || [];
      state.cursor = page.next_cursor || '';
      more = !!state.cursor;
      $('gallery-note').textContent = '';
    } catch (e) {
      if (e.status === 401) {
        $('gallery-note').textContent = 'Sign in to see your jobs.';
        return;
      }
      // Without a job list (an older server, or one failing to list), the jobs this
      // browser started are still worth showing.
      state.galleryMode = 'local';
      state.galleryWhy = e.missingRoute ? 'This server cannot list jobs yet' : `The server could not list your jobs (${e.detail || e.message})`;
    }
  }
  if (state.galleryMode === 'local') {
    $('gallery-note').textContent = `${state.galleryWhy}: showing the jobs started in this browser.`;
    let ids = [];
    try { ids = JSON.parse(localStorage.getItem(JOBS_KEY) || '[]'); } catch { /* none */ }
    const slice = ids.slice(state.localOffset, state.localOffset + 12);
    state.localOffset += slice.length;
    more = state.localOffset < ids.length;
    const got = await Promise.all(slice.map((id) => json(`/v1/jobs/${encodeURIComponent(id)}`).catch(() => null)));
    jobs = got.filter(Boolean);
  }
  if (reset) list.replaceChildren();
  for (const job of jobs) list.append(galleryItem(job));
  $('more').hidden = !more;
  if (reset && !jobs.length) $('gallery-note').textContent ||= 'No jobs yet: run one above.';
}

function galleryItem(job) {
  const when = job.submitted_at ? new Date(job.submitted_at) : null;
  const label = `${TASKS[job.task] ? TASKS[job.task].label : job.task}, ${job.status}${when ? `, ${when.toLocaleString()}` : ''}`;
  const pic = h('span', {class: 'thumb-img'}, h('span', {class: 'placeholder', text: job.status}));
  const btn = h('a', {class: 'item', href: `#job=${encodeURIComponent(job.id)}`, 'data-job': job.id, 'aria-label': `Open job ${job.id}: ${label}`},
    pic,
    h('span', {class: 'cap'}, h('strong', {text: TASKS[job.task] ? TASKS[job.task].label : job.task}), h('span', {class: `status ${job.status}`, text: job.status}),
      when ? h('time', {datetime: job.submitted_at, text: when.toLocaleString([], {dateStyle: 'short', timeStyle: 'short'})}) : null));
  btn.addEventListener('click', () => setTimeout(() => $('progress').scrollIntoView({block: 'start'}), 50));
  const thumb = job.downloads && job.downloads.thumbnail;
  if (thumb) {
    blobURL(thumb).then(({url}) => {
      state.galleryURLs.push(url);
      pic.replaceChildren(h('img', {src: url, alt: '', loading: 'lazy', class: 'checker'}));
    }).catch(() => { /* keep the placeholder */ });
  }
  return h('li', {}, btn);
}
