// The explorer's page: talks only to this server's JSON API (docs/explorer.md). No framework; the
// state is the photo being looked at (a data-set image or an uploaded file) and the last answers.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  split: '',
  offset: 0,
  pageSize: 48,
  photo: null,       // {kind: 'dataset', split, id, hasMask} or {kind: 'upload', file, bytes}
  last: null,        // the last /api/explain answer
  lastCompare: null, // the last /api/compare answer
};

function showError(msg) {
  const e = $('error');
  e.textContent = msg;
  e.hidden = !msg;
}

async function api(path, params, body) {
  const q = new URLSearchParams(params || {}).toString();
  const res = await fetch(path + (q ? '?' + q : ''), body ? {method: 'POST', body} : {});
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch (_) { throw new Error(`${path}: HTTP ${res.status}: ${text.slice(0, 200)}`); }
  if (!res.ok) throw new Error(json.error || `${path}: HTTP ${res.status}`);
  return json;
}

function option(select, value, label) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = label === undefined ? value : label;
  select.appendChild(o);
}

// ---- start: what the model and the data set offer ----
async function init() {
  const info = state.info = await api('/api/info');
  $('model-info').textContent =
    `${info.model}: ${info.arch}, ${info.input_size} px, classes ${info.classes.join(' / ')}` +
    (info.mask_guidance > 0 ? ` (trained with mask guidance ${info.mask_guidance})` : '');
  for (const m of info.methods) option($('method'), m);
  $('method').value = info.defaults.method;
  option($('target'), 'predicted', 'the predicted class');
  info.classes.forEach((c, i) => option($('target'), String(i), c));
  option($('layer'), '', `default (${info.default_layer})`);
  for (const l of info.layers) option($('layer'), l.name, `${l.name}  ${l.channels}×${l.height}×${l.width}`);
  $('max-regions').value = info.defaults.max_regions;
  const cm = $('compare-methods');
  for (const m of info.methods) {
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.value = m;
    box.checked = m === 'cam' || m === 'gradcam';
    label.append(box, ' ' + m);
    cm.appendChild(label);
  }
  if (info.splits.length === 0) {
    $('dataset').hidden = true;
  } else {
    for (const s of info.splits) option($('split'), s.name, `${s.name} (${s.images} photos, ${s.masks} masks)`);
    state.split = info.splits.find((s) => s.name === 'val') ? 'val' : info.splits[0].name;
    $('split').value = state.split;
    await loadPage();
  }
}

// ---- browsing ----
async function loadPage() {
  const page = await api('/api/images', {split: state.split, offset: state.offset, limit: state.pageSize});
  const grid = $('grid');
  grid.replaceChildren();
  for (const im of page.images) {
    const fig = document.createElement('figure');
    fig.dataset.id = im.id;
    const img = document.createElement('img');
    img.loading = 'lazy';
    img.src = '/api/photo?' + new URLSearchParams({split: state.split, id: im.id, size: 96});
    img.alt = im.id;
    const cap = document.createElement('figcaption');
    cap.textContent = im.label_class + (im.has_mask ? ' ◌' : '');
    fig.append(img, cap);
    fig.title = `${im.id}: ${im.label_class}${im.has_mask ? ', with mask' : ''}`;
    fig.addEventListener('click', () => {
      for (const f of grid.children) f.classList.toggle('sel', f === fig);
      choose({kind: 'dataset', split: state.split, id: im.id, hasMask: im.has_mask, label: im.label_class});
    });
    grid.appendChild(fig);
  }
  const end = Math.min(page.total, state.offset + page.images.length);
  $('page-info').textContent = `${page.total ? state.offset + 1 : 0}–${end} of ${page.total}`;
  $('prev').disabled = state.offset === 0;
  $('next').disabled = end >= page.total;
}

// ---- the photo being looked at ----
function photoParams() {
  const p = state.photo;
  return p.kind === 'dataset' ? {split: p.split, id: p.id} : {name: p.file.name};
}
function photoBody() { return state.photo.kind === 'upload' ? state.photo.bytes : undefined; }

async function choose(photo) {
  state.photo = photo;
  $('photo-title').textContent = photo.kind === 'dataset'
    ? `${photo.id} (${photo.split}; label ${photo.label}${photo.hasMask ? '; expert mask available' : ''})`
    : `${photo.file.name} (your photo, ${Math.round(photo.bytes.byteLength / 1024)} KB)`;
  $('explain').disabled = false;
  $('compare').disabled = false;
  $('compare-grid').replaceChildren();
  await explain();
}

async function upload(file) {
  if (!file) return;
  const bytes = await file.arrayBuffer();
  for (const f of $('grid').children) f.classList.remove('sel');
  await choose({kind: 'upload', file, bytes});
}

function thresholdSpec() {
  const kind = $('thr-kind').value;
  return kind === 'otsu' ? 'otsu' : `${kind}:${$('thr-param').value}`;
}

function explainParams(method) {
  const p = Object.assign({}, photoParams(), {
    method: method || $('method').value,
    threshold: thresholdSpec(),
    shape: $('shape').value,
    max_regions: $('max-regions').value,
  });
  if ($('target').value !== 'predicted') p.target = $('target').value;
  if ($('layer').value) p.layer = $('layer').value;
  return p;
}

async function explain() {
  if (!state.photo) return;
  showError('');
  $('explain').disabled = true;
  document.body.classList.add('busy');
  try {
    const r = await api('/api/explain', explainParams(), photoBody());
    state.last = r;
    render(r);
    await glassBox(r.method);
  } catch (e) {
    showError(e.message);
  } finally {
    $('explain').disabled = false;
    document.body.classList.remove('busy');
  }
}

// ---- one answer on the page ----
function render(r) {
  const img = $('overlay');
  img.src = 'data:image/png;base64,' + r.overlay_png;
  img.dataset.method = r.method;
  drawRegions(r);
  drawBars(r);
  drawTable(r);
  drawScores(r);
  drawMask(r);
  const stem = (state.photo.kind === 'dataset' ? state.photo.id : state.photo.file.name.replace(/\.[^.]*$/, '')) + '-' + r.method;
  $('dl-png').href = img.src;
  $('dl-png').download = stem + '.png';
  const json = Object.assign({}, r);
  delete json.overlay_png;
  $('dl-json').href = URL.createObjectURL(new Blob([JSON.stringify(json, null, 1)], {type: 'application/json'}));
  $('dl-json').download = stem + '.json';
}

const SVG = 'http://www.w3.org/2000/svg';
function drawRegions(r) {
  const svg = $('regions-svg');
  svg.setAttribute('viewBox', `0 0 ${r.width} ${r.height}`);
  svg.replaceChildren();
  for (const g of r.regions) {
    const c = document.createElementNS(SVG, 'circle');
    c.setAttribute('cx', g.circle.cx);
    c.setAttribute('cy', g.circle.cy);
    c.setAttribute('r', g.circle.r);
    c.dataset.region = g.id;
    const t = document.createElementNS(SVG, 'text');
    t.setAttribute('x', g.circle.cx + g.circle.r * 0.71);
    t.setAttribute('y', g.circle.cy - g.circle.r * 0.71);
    t.textContent = g.id;
    svg.append(c, t);
  }
}

function drawBars(r) {
  const bars = $('bars');
  bars.replaceChildren();
  for (const [name, p] of Object.entries(r.probabilities)) {
    const row = document.createElement('div');
    row.className = 'bar' + (name === r.predicted_class ? ' pred' : '');
    const label = document.createElement('span');
    label.textContent = name + (name === r.target_class ? ' ◀ explained' : '');
    const track = document.createElement('div');
    track.className = 'track';
    const fill = document.createElement('div');
    fill.className = 'fill';
    fill.style.width = (100 * p).toFixed(1) + '%';
    track.appendChild(fill);
    const value = document.createElement('span');
    value.textContent = p.toFixed(3);
    row.append(label, track, value);
    bars.appendChild(row);
  }
}

function drawTable(r) {
  const body = $('regions').querySelector('tbody');
  body.replaceChildren();
  for (const g of r.regions) {
    const tr = document.createElement('tr');
    tr.dataset.region = g.id;
    for (const v of [g.id, `${g.circle.cx.toFixed(0)}, ${g.circle.cy.toFixed(0)}`, g.circle.r.toFixed(0), g.area,
                     g.peak.toFixed(2), g.score.toFixed(0)]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  $('regions-note').textContent =
    `${r.method} of "${r.target_class}" at ${r.layer || 'the input'}; ${r.threshold}; ${r.seconds.toFixed(2)} s`;
}

function drawScores(r) {
  const s = r.localization;
  $('scores').textContent = s
    ? `Dice ${s.dice.toFixed(3)} · IoU ${s.iou.toFixed(3)} · energy inside ${s.energy.toFixed(3)} · ` +
      `pointing ${s.pointing ? 'hit' : 'miss'} (peak ${s.peak_distance === null ? '—' : s.peak_distance.toFixed(1)} px ` +
      `from the mask, tolerance ${s.tolerance_px.toFixed(1)} px at ${s.resolution} px)`
    : 'no expert mask for this photo';
}

// The expert mask's outline, traced on a canvas over the overlay: a pixel of the mask with a
// neighbour outside it.
async function drawMask(r) {
  const canvas = $('mask-canvas');
  canvas.width = r.width;
  canvas.height = r.height;
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, r.width, r.height);
  const p = state.photo;
  $('mask-toggle-label').hidden = !(p.kind === 'dataset' && p.hasMask);
  if (!(p.kind === 'dataset' && p.hasMask) || !$('mask-toggle').checked) return;
  const img = new Image();
  img.src = '/api/mask?' + new URLSearchParams({split: p.split, id: p.id});
  await img.decode();
  const tmp = document.createElement('canvas');
  tmp.width = r.width;
  tmp.height = r.height;
  const t = tmp.getContext('2d');
  t.imageSmoothingEnabled = false;
  t.drawImage(img, 0, 0, r.width, r.height);
  const m = t.getImageData(0, 0, r.width, r.height).data;
  const out = ctx.createImageData(r.width, r.height);
  const inside = (x, y) => x >= 0 && y >= 0 && x < r.width && y < r.height && m[4 * (y * r.width + x)] > 127;
  for (let y = 0; y < r.height; ++y)
    for (let x = 0; x < r.width; ++x)
      if (inside(x, y) && (!inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1))) {
        const i = 4 * (y * r.width + x);
        out.data.set([0, 255, 120, 255], i);
      }
  ctx.putImageData(out, 0, 0);
}

// ---- CAM and Grad-CAM taken apart ----
function figure(png, caption) {
  const fig = document.createElement('figure');
  const img = document.createElement('img');
  img.src = 'data:image/png;base64,' + png;
  img.alt = caption;
  const cap = document.createElement('figcaption');
  cap.textContent = caption;
  fig.append(img, cap);
  return fig;
}
function op(text) {
  const s = document.createElement('span');
  s.className = 'op';
  s.textContent = text;
  return s;
}
async function glassBox(method) {
  const box = $('glass');
  if (method !== 'cam' && method !== 'gradcam') { box.hidden = true; return; }
  const p = explainParams(method);
  const g = await api('/api/glassbox', {...p, top: 6}, photoBody());
  $('glass-method').textContent = g.method === 'cam' ? 'CAM' : 'Grad-CAM';
  $('glass-formula').textContent = g.formula;
  $('glass-layer').textContent = g.layer;
  $('glass-class').textContent = g.target_class;
  $('glass-total').textContent = g.channels_total;
  const sym = g.method === 'cam' ? 'w' : 'α';
  const maps = $('glass-maps');
  maps.replaceChildren();
  g.channels.forEach((c, i) => {
    if (i) maps.appendChild(op('+'));
    maps.appendChild(figure(c.png, `${sym}=${c.weight.toPrecision(3)} · A${c.k}`));
  });
  maps.appendChild(op('+ …'));
  const steps = $('glass-steps');
  steps.replaceChildren();
  for (const s of g.steps) steps.appendChild(figure(s.png, `first ${s.terms}`));
  steps.appendChild(op('→'));
  steps.appendChild(figure(g.map_png, `all ${g.channels_total} = the map`));
  box.hidden = false;
}

// ---- several methods side by side ----
async function compare() {
  const methods = [...$('compare-methods').querySelectorAll('input:checked')].map((b) => b.value);
  if (!methods.length) return showError('tick at least one method to compare');
  showError('');
  $('compare').disabled = true;
  const grid = $('compare-grid');
  grid.replaceChildren();
  try {
    const p = explainParams();
    delete p.method;
    p.methods = methods.join(',');
    const r = await api('/api/compare', p, photoBody());
    state.lastCompare = r;
    for (const x of r.results) {
      const fig = document.createElement('figure');
      fig.dataset.method = x.method;
      const cap = document.createElement('figcaption');
      if (x.error) {
        cap.textContent = `${x.method}: ${x.error}`;
      } else {
        const img = document.createElement('img');
        img.src = 'data:image/png;base64,' + x.overlay_png;
        img.alt = x.method;
        fig.appendChild(img);
        const s = x.localization;
        cap.textContent = `${x.method}: ${x.regions.length} region(s)` +
          (s ? `; Dice ${s.dice.toFixed(2)}, energy ${s.energy.toFixed(2)}, pointing ${s.pointing ? 'hit' : 'miss'}` : '') +
          `; ${x.seconds.toFixed(2)} s`;
      }
      fig.appendChild(cap);
      grid.appendChild(fig);
    }
  } catch (e) {
    showError(e.message);
  } finally {
    $('compare').disabled = false;
  }
}

// ---- wiring ----
window.addEventListener('DOMContentLoaded', () => {
  $('explain').addEventListener('click', explain);
  $('compare').addEventListener('click', compare);
  $('split').addEventListener('change', () => { state.split = $('split').value; state.offset = 0; loadPage().catch((e) => showError(e.message)); });
  $('prev').addEventListener('click', () => { state.offset = Math.max(0, state.offset - state.pageSize); loadPage().catch((e) => showError(e.message)); });
  $('next').addEventListener('click', () => { state.offset += state.pageSize; loadPage().catch((e) => showError(e.message)); });
  $('file').addEventListener('change', (e) => upload(e.target.files[0]).catch((x) => showError(x.message)));
  $('mask-toggle').addEventListener('change', () => state.last && drawMask(state.last));
  $('thr-kind').addEventListener('change', () => { $('thr-param').disabled = $('thr-kind').value === 'otsu'; });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    upload(e.dataTransfer.files[0]).catch((x) => showError(x.message));
  });
  init().catch((e) => showError(e.message));
});
