// DOM and formatting helpers shared by the pages. No framework: `h` builds elements,
// and text always goes through textContent, never innerHTML, unless it was escaped.

export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === 'class') {
      el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (!svg && name in el && typeof value !== 'string') {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// Replaces el's children; null / undefined / false children are skipped (the native
// Element.append would print them as text).
export function fill(el, ...children) {
  return append(clear(el), children);
}

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

let idCounter = 0;
export function uid(prefix = 'id') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

export function announce(message) {
  const el = document.getElementById('announcer');
  if (!el) return;
  el.textContent = '';
  // A fresh text node after a tick makes screen readers repeat identical messages.
  setTimeout(() => { el.textContent = message; }, 30);
}

export function fmtNumber(x, digits = 4) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (typeof x !== 'number') return String(x);
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '−∞';
  const abs = Math.abs(x);
  if (abs !== 0 && (abs >= 1e6 || abs < 1e-3)) return x.toExponential(digits - 1);
  return Number(x.toPrecision(digits)).toString();
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return `${m} min ${s} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function parseTime(value) {
  if (!value) return null;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : t;
}

export function fmtTime(value) {
  const t = parseTime(value);
  if (t === null) return '—';
  return new Date(t).toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

// Seconds between started_at and finished_at (or now while running).
export function jobDuration(job) {
  const start = parseTime(job.started_at);
  if (start === null) return null;
  const end = parseTime(job.finished_at) ?? Date.now();
  return Math.max(0, (end - start) / 1000);
}

export const FINAL_STATES = new Set(['succeeded', 'failed', 'cancelled']);

export function isFinal(state) {
  return FINAL_STATES.has(state);
}

export function stateBadge(state) {
  return h('span', { class: ['badge', `state-${state}`] }, state || 'unknown');
}

// Shape of a nested list (the JSON form of an array): [] for a number.
export function shapeOf(value) {
  const shape = [];
  let v = value;
  while (Array.isArray(v)) {
    shape.push(v.length);
    v = v[0];
  }
  return shape;
}

export function flatten(value) {
  return Array.isArray(value) ? value.flat(Infinity) : [value];
}

export function fmtShape(shape) {
  if (!shape || shape.length === 0) return 'scalar';
  return `[${shape.join(', ')}]`;
}

export function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  // 127.0.0.1 is a secure context, but a LAN address over http is not.
  const area = h('textarea', { class: 'visually-hidden', readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  try {
    document.execCommand('copy');
  } finally {
    area.remove();
  }
  return Promise.resolve();
}

// A debounce-free throttle that always runs the last call: live charts refetch at most
// once per `ms` however many progress events arrive.
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  let pending = null;
  return (...args) => {
    pending = args;
    const wait = last + ms - Date.now();
    if (wait <= 0 && !timer) {
      last = Date.now();
      fn(...pending);
      pending = null;
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        const callArgs = pending;
        pending = null;
        if (callArgs) fn(...callArgs);
      }, Math.max(wait, 0));
    }
  };
}
