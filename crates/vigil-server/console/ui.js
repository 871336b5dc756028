// Building blocks of the console: DOM construction (text nodes only), the API client,
// formatting, tables and SVG charts. Nothing here writes HTML from strings: event content
// is attacker-controlled and only ever becomes text.

export const session = {
  token: sessionStorage.getItem('vigil.token') || '',
  me: null,
  onUnauthorized: () => {},
};

export function isAdmin() {
  return session.me && session.me.role === 'admin';
}

export function canSubmit() {
  return session.me && (session.me.role === 'admin' || session.me.role === 'agent');
}

// h('div', {class: 'x', on: {click: fn}}, 'text', child, [more]) -> Element.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'hidden') {
      el[k] = Boolean(v);
    } else if (k.startsWith('on') || k === 'style' || k === 'srcdoc') {
      throw new Error(`h(): attribute ${k} is not allowed; use {on: {...}} or a class`);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

export function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

// ---- API -------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, body, fallback) {
    const e = (body && body.error) || {};
    super(e.message || fallback || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'http_' + status;
    this.field = e.field;
    this.line = e.line;
    this.column = e.column;
    this.scriptError = e.script_error;
  }
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const t = q.toString();
  return t ? '?' + t : '';
}

// api('/api/v1/x', {method, json, body, contentType, as: 'json'|'text'})
export async function api(path, opts = {}) {
  const headers = {};
  if (session.token) headers.Authorization = 'Bearer ' + session.token;
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['Content-Type'] = 'application/json';
  } else if (opts.contentType) {
    headers['Content-Type'] = opts.contentType;
  }
  let res;
  try {
    res = await fetch(path, { method: opts.method || 'GET', headers, body });
  } catch (e) {
    throw new ApiError(0, null, `cannot reach the Vigil server (${e.message})`);
  }
  if (res.status === 401 && !opts.noAuthRedirect) {
    let b = null;
    try { b = await res.json(); } catch (_) { /* not JSON */ }
    const err = new ApiError(401, b);
    session.onUnauthorized(err.message);
    throw err;
  }
  if (!res.ok) {
    let b = null;
    try { b = await res.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(res.status, b);
  }
  if (opts.as === 'text') return res.text();
  if (res.status === 204) return null;
  const ct = res.headers.get('content-type') || '';
  return ct.includes('json') ? res.json() : res.text();
}

// ---- formatting ------------------------------------------------------------------------

export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'];
export const SEVERITY_COLORS = {
  info: '#8a94a8', low: '#3f8fd2', medium: '#e0a526', high: '#e0662b', critical: '#c62828',
};

export function sevRank(s) {
  return SEVERITIES.indexOf(String(s || '').toLowerCase());
}

export function badge(text, kind) {
  return h('span', { class: `badge ${kind || ''}` }, text);
}

export function severity(sev) {
  const s = String(sev || 'info').toLowerCase();
  return h('span', { class: `badge sev sev-${SEVERITIES.includes(s) ? s : 'info'}` }, s);
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, {
    year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
  });
}

export function ago(iso) {
  if (!iso) return '—';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return String(iso);
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 0) return 'in the future';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function num(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function timeEl(iso) {
  return h('time', { datetime: iso || '', title: iso || '' }, fmtTime(iso));
}

// Dotted-or-nested field lookup on an ECS object: get(e, 'host.name').
export function get(obj, path) {
  if (!obj) return undefined;
  if (path in obj) return obj[path];
  let cur = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = cur[part];
  }
  return cur;
}

// ---- widgets ---------------------------------------------------------------------------

export function notice(message, kind = 'info') {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
}

export function errorNotice(e) {
  const parts = [e.message || String(e)];
  if (e.field) parts.push(` (field: ${e.field})`);
  return notice(parts.join(''), 'error');
}

export function spinner(text = 'Loading…') {
  return h('div', { class: 'loading' }, text);
}

export function jsonBlock(value, cls = '') {
  return h('pre', { class: `json ${cls}` }, JSON.stringify(value, null, 2));
}

export function card(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', {}, title) : null, children);
}

// table([{label, cell: row => Node|string, class}], rows, {empty, rowAttrs: row => attrs})
export function table(columns, rows, opts = {}) {
  const head = h('tr', {}, columns.map((c) => h('th', { class: c.class || null }, c.label)));
  const body = h('tbody', {});
  if (!rows.length) {
    body.append(h('tr', {}, h('td', { class: 'empty', colspan: columns.length }, opts.empty || 'Nothing here yet.')));
  }
  for (const row of rows) {
    body.append(tableRow(columns, row, opts));
  }
  return h('table', { class: 'grid', id: opts.id || null }, h('thead', {}, head), body);
}

export function tableRow(columns, row, opts = {}) {
  const attrs = opts.rowAttrs ? opts.rowAttrs(row) : {};
  return h('tr', attrs, columns.map((c) => h('td', { class: c.class || null }, c.cell(row))));
}

// Key/value list of an object's scalar fields, nested objects one level deep.
export function kv(obj, opts = {}) {
  const dl = h('dl', { class: 'kv' });
  const add = (k, v) => {
    if (v === null || v === undefined) v = '—';
    if (typeof v === 'object') v = JSON.stringify(v);
    if (typeof v === 'number' && !Number.isInteger(v)) v = num(v, 4);
    dl.append(h('dt', {}, k), h('dd', {}, String(v)));
  };
  for (const [k, v] of Object.entries(obj || {})) {
    if (opts.skip && opts.skip.includes(k)) continue;
    if (v && typeof v === 'object' && !Array.isArray(v) && opts.depth !== 0) {
      for (const [k2, v2] of Object.entries(v)) {
        if (v2 && typeof v2 === 'object' && !Array.isArray(v2)) add(`${k}.${k2}`, v2);
        else add(`${k}.${k2}`, v2);
      }
    } else {
      add(k, Array.isArray(v) ? v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : x)).join(', ') : v);
    }
  }
  if (!dl.firstChild) dl.append(h('dt', {}, '—'), h('dd', {}, 'nothing reported'));
  return dl;
}

export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', {}, label), input, hint ? h('small', {}, hint) : null);
}

export function select(options, value, attrs = {}) {
  return h('select', attrs, options.map((o) => {
    const [v, label] = Array.isArray(o) ? o : [o, o === '' ? 'any' : o];
    return h('option', { value: v, selected: v === value }, label);
  }));
}

export function button(label, onClick, attrs = {}) {
  return h('button', { type: 'button', ...attrs, on: { click: onClick } }, label);
}

// Runs an async action with the button disabled and the error shown in `out`.
export async function busy(btn, out, fn) {
  btn.disabled = true;
  const label = btn.textContent;
  btn.textContent = label + '…';
  try {
    return await fn();
  } catch (e) {
    if (out) replace(out, errorNotice(e));
    return undefined;
  } finally {
    btn.disabled = false;
    btn.textContent = label;
  }
}

// datetime-local <-> RFC 3339
export function toLocalInput(date) {
  const p = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}T${p(date.getHours())}:${p(date.getMinutes())}`;
}

export function fromLocalInput(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

// ---- charts ----------------------------------------------------------------------------

const PALETTE = ['#3f6fd8', '#2a9d8f', '#e0a526', '#e0662b', '#8e5bd0', '#c62828', '#5a6b85', '#6aa84f'];

export function color(i) {
  return PALETTE[i % PALETTE.length];
}

// Stacked bars over time. points: [{t: Date|string, values: {key: n}}];
// series: [{key, label, color}]. Lines: optional [{key, label, color}] drawn over the bars
// from points[i].values[key] on their own scale.
export function timeChart(points, series, opts = {}) {
  const W = opts.width || 640;
  const H = opts.height || 180;
  const pad = { l: 44, r: opts.lines ? 44 : 10, t: 10, b: 22 };
  const iw = W - pad.l - pad.r;
  const ih = H - pad.t - pad.b;
  const n = Math.max(points.length, 1);
  const totals = points.map((p) => series.reduce((a, sr) => a + (p.values[sr.key] || 0), 0));
  const max = Math.max(1, ...totals);
  const bw = iw / n;
  const svg = s('svg', {
    class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': opts.label || 'chart',
  });
  // grid + axis labels
  for (const f of [0, 0.5, 1]) {
    const y = pad.t + ih - ih * f;
    svg.append(s('line', { x1: pad.l, x2: W - pad.r, y1: y, y2: y, class: 'gridline' }));
    svg.append(s('text', { x: pad.l - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' }, num(max * f, max < 10 ? 1 : 0)));
  }
  points.forEach((p, i) => {
    let y = pad.t + ih;
    const x = pad.l + i * bw;
    for (const sr of series) {
      const v = p.values[sr.key] || 0;
      if (!v) continue;
      const bh = (v / max) * ih;
      y -= bh;
      const rect = s('rect', {
        x: x + bw * 0.1, y, width: Math.max(bw * 0.8, 1), height: Math.max(bh, 0.5), fill: sr.color,
      });
      rect.append(s('title', {}, `${fmtTime(p.t)} · ${sr.label}: ${num(v)}`));
      svg.append(rect);
    }
  });
  if (opts.lines) {
    for (const ln of opts.lines) {
      const vals = points.map((p) => p.values[ln.key] || 0);
      const lmax = Math.max(ln.max || 0, ...vals, 1e-9);
      const d = vals.map((v, i) => {
        const x = pad.l + i * bw + bw / 2;
        const y = pad.t + ih - (v / lmax) * ih;
        return `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`;
      }).join(' ');
      if (d) svg.append(s('path', { d, fill: 'none', stroke: ln.color, 'stroke-width': 2 }));
      svg.append(s('text', { x: W - pad.r + 6, y: pad.t + 8, class: 'axis' }, num(lmax, 2)));
    }
  }
  // time labels: first, middle, last
  const idx = [...new Set([0, Math.floor((points.length - 1) / 2), points.length - 1])].filter((i) => i >= 0);
  for (const i of idx) {
    const p = points[i];
    if (!p) continue;
    const d = new Date(p.t);
    const label = opts.dayLabels
      ? d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) + ' ' + d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', hour12: false })
      : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', hour12: false });
    svg.append(s('text', {
      x: pad.l + i * bw + bw / 2, y: H - 6,
      'text-anchor': i === 0 ? 'start' : i === points.length - 1 ? 'end' : 'middle', class: 'axis',
    }, label));
  }
  const legend = h('div', { class: 'legend' }, [...series, ...(opts.lines || [])].map((sr) =>
    h('span', {}, h('i', { class: 'swatch', dataset: { color: sr.color } }), sr.label)));
  // Swatch colours through the CSSOM (allowed by the CSP; style attributes are not).
  legend.querySelectorAll('i.swatch').forEach((i) => { i.style.background = i.dataset.color; });
  return h('figure', { class: 'chart-wrap' }, svg, legend);
}

// Horizontal bars: items [{label, value, color?}]
export function barList(items, opts = {}) {
  const max = Math.max(1, ...items.map((i) => i.value));
  const list = h('div', { class: 'barlist' });
  if (!items.length) list.append(h('p', { class: 'muted' }, opts.empty || 'Nothing yet.'));
  items.forEach((it, i) => {
    const bar = h('span', { class: 'bar' });
    bar.style.width = `${(it.value / max) * 100}%`;
    bar.style.background = it.color || color(i);
    list.append(h('div', { class: 'barrow' },
      h('span', { class: 'barlabel', title: it.label }, it.label),
      h('span', { class: 'bartrack' }, bar),
      h('span', { class: 'barvalue' }, num(it.value))));
  });
  return list;
}
