// Small SVG charts: line charts (linear, log or symmetric-log y), histograms and forest
// plots. Each function returns an <svg> with role="img" and an aria-label that states
// what it shows; plotted elements carry data-* attributes (data-points, data-bins, ...)
// that the browser tests read.

import { fmtNumber } from './util.js';

const NS = 'http://www.w3.org/2000/svg';
export const PALETTE = ['#2b59c3', '#d1495b', '#00798c', '#edae49', '#66a182', '#8e6c8a', '#30638e', '#b86f52', '#4d4d4d', '#9b5de5'];
const MARGIN = { top: 14, right: 16, bottom: 38, left: 62 };

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgRoot(width, height, label) {
  const svg = el('svg', {
    viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': label,
    preserveAspectRatio: 'xMidYMid meet',
  });
  svg.style.maxWidth = `${width}px`;
  svg.append(el('title', {}, label));
  return svg;
}

// "Nice" tick values covering [lo, hi] (Heckbert's algorithm).
export function niceTicks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  const niceNum = (range, round) => {
    const exp = Math.floor(Math.log10(range));
    const f = range / 10 ** exp;
    let nf;
    if (round) nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    else nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nf * 10 ** exp;
  };
  const step = niceNum(niceNum(hi - lo, false) / Math.max(count - 1, 1), true);
  const start = Math.ceil(lo / step - 1e-9) * step;
  const ticks = [];
  for (let v = start; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}

// y transforms. 'log' needs positive values; 'symlog' (sign(y)·log10(1+|y|)) handles the
// negative losses an ELBO can have while still compressing the early, large values.
const SCALES = {
  linear: { f: (y) => y, inv: (t) => t },
  log: { f: (y) => Math.log10(y), inv: (t) => 10 ** t },
  symlog: { f: (y) => Math.sign(y) * Math.log10(1 + Math.abs(y)), inv: (t) => Math.sign(t) * (10 ** Math.abs(t) - 1) },
};

export function chooseScale(values, wantLog) {
  if (!wantLog) return 'linear';
  return values.every((v) => v > 0) ? 'log' : 'symlog';
}

function logTicks(scale, tlo, thi) {
  const ticks = [];
  if (scale === 'log') {
    for (let k = Math.floor(tlo); k <= Math.ceil(thi); k += 1) if (k >= tlo - 1e-9 && k <= thi + 1e-9) ticks.push(10 ** k);
    if (ticks.length < 2) return niceTicks(10 ** tlo, 10 ** thi).filter((v) => v > 0);
    return ticks;
  }
  // symlog: 0 and ±10^k where they fall inside the range
  const candidates = [0];
  for (let k = 0; k <= 12; k += 1) candidates.push(10 ** k, -(10 ** k));
  return candidates
    .filter((v) => { const t = SCALES.symlog.f(v); return t >= tlo - 1e-9 && t <= thi + 1e-9; })
    .sort((a, b) => a - b);
}

function axes(svg, { x0, x1, y0, y1, xTicks, yTicks, xPos, yPos, xLabel, yLabel, xFmt = fmtNumber, yFmt = fmtNumber }) {
  const g = el('g', { class: 'axes' });
  for (const v of yTicks) {
    const y = yPos(v);
    g.append(el('line', { x1: x0, x2: x1, y1: y, y2: y, class: 'grid' }));
    g.append(el('text', { x: x0 - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, yFmt(v)));
  }
  for (const v of xTicks) {
    const x = xPos(v);
    g.append(el('line', { x1: x, x2: x, y1: y1, y2: y1 + 4, class: 'axis' }));
    g.append(el('text', { x, y: y1 + 16, 'text-anchor': 'middle', class: 'tick' }, xFmt(v)));
  }
  g.append(el('line', { x1: x0, x2: x1, y1: y1, y2: y1, class: 'axis' }));
  g.append(el('line', { x1: x0, x2: x0, y1: y0, y2: y1, class: 'axis' }));
  if (xLabel) g.append(el('text', { x: (x0 + x1) / 2, y: y1 + 32, 'text-anchor': 'middle', class: 'axis-label' }, xLabel));
  if (yLabel) {
    g.append(el('text', {
      x: -(y0 + y1) / 2, y: 14, transform: 'rotate(-90)', 'text-anchor': 'middle', class: 'axis-label',
    }, yLabel));
  }
  svg.append(g);
}

function emptyChart(width, height, label, message) {
  const svg = svgRoot(width, height, `${label}: ${message}`);
  svg.append(el('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'empty' }, message));
  return svg;
}

// series: [{name, points: [[x, y], ...], color?, className?}]; non-finite y are skipped
// (a NaN step shows as a gap in the line, not a crash of the chart).
export function lineChart({ series, log = false, xLabel = 'step', yLabel = '', label = 'Line chart', width = 640, height = 260, emptyText = 'No points yet' }) {
  const finite = series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  if (!finite.length) return emptyChart(width, height, label, emptyText);
  const scaleName = chooseScale(finite.map((p) => p[1]), log);
  const scale = SCALES[scaleName];
  const xs = finite.map((p) => p[0]);
  const ts = finite.map((p) => scale.f(p[1]));
  let xmin = Math.min(...xs);
  let xmax = Math.max(...xs);
  if (xmin === xmax) { xmin -= 1; xmax += 1; }
  let tmin = Math.min(...ts);
  let tmax = Math.max(...ts);
  if (tmin === tmax) { const pad = Math.abs(tmin) * 0.05 || 1; tmin -= pad; tmax += pad; }
  const tpad = (tmax - tmin) * 0.04;
  tmin -= tpad;
  tmax += tpad;
  const x0 = MARGIN.left;
  const x1 = width - MARGIN.right;
  const y0 = MARGIN.top;
  const y1 = height - MARGIN.bottom;
  const xPos = (x) => x0 + ((x - xmin) / (xmax - xmin)) * (x1 - x0);
  const tPos = (t) => y1 - ((t - tmin) / (tmax - tmin)) * (y1 - y0);
  const yPos = (y) => tPos(scale.f(y));
  const yTicks = scaleName === 'linear' ? niceTicks(tmin, tmax) : logTicks(scaleName, tmin, tmax);
  const xTicks = niceTicks(xmin, xmax, 6).filter((v) => v >= xmin && v <= xmax);
  const last = series.find((s) => s.points.length)?.points.at(-1);
  const svg = svgRoot(width, height,
    `${label}: ${series.map((s) => s.name).join(', ')}; ${finite.length} points${last ? `, last ${fmtNumber(last[1])} at ${xLabel} ${last[0]}` : ''}${scaleName !== 'linear' ? `, ${scaleName} scale` : ''}`);
  svg.dataset.scale = scaleName;
  axes(svg, { x0, x1, y0, y1, xTicks, yTicks: yTicks.filter((v) => scale.f(v) >= tmin && scale.f(v) <= tmax), xPos, yPos, xLabel, yLabel });
  const clipId = `clip-${Math.random().toString(36).slice(2)}`;
  const clip = el('clipPath', { id: clipId });
  clip.append(el('rect', { x: x0, y: y0, width: x1 - x0, height: y1 - y0 }));
  svg.append(clip);
  const plot = el('g', { 'clip-path': `url(#${clipId})` });
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    let d = '';
    let pen = false;
    let count = 0;
    for (const [x, y] of s.points) {
      if (!Number.isFinite(x) || !Number.isFinite(y) || (scaleName === 'log' && y <= 0)) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${xPos(x).toFixed(1)},${yPos(y).toFixed(1)}`;
      pen = true;
      count += 1;
    }
    const path = el('path', { d, fill: 'none', stroke: color, class: ['series', s.className].filter(Boolean).join(' ') });
    path.dataset.series = s.name;
    path.dataset.points = String(count);
    const lastFinite = s.points.filter(([px, py]) => Number.isFinite(px) && Number.isFinite(py)).at(-1);
    if (lastFinite) path.dataset.lastX = String(lastFinite[0]);
    if (count === 1) {
      const [x, y] = s.points.find(([px, py]) => Number.isFinite(px) && Number.isFinite(py));
      plot.append(el('circle', { cx: xPos(x), cy: yPos(y), r: 2.5, fill: color }));
    }
    plot.append(path);
  });
  svg.append(plot);
  if (series.length < 2) return svg;
  const figure = document.createElement('div');
  figure.className = 'chart-figure';
  figure.append(svg, legend(series));
  return figure;
}

// An HTML legend under the chart: it wraps on narrow screens and long site names stay
// readable (an in-SVG legend would cover the lines).
function legend(series) {
  const list = document.createElement('ul');
  list.className = 'legend';
  series.forEach((s, i) => {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = ['swatch', s.className].filter(Boolean).join(' ');
    swatch.style.backgroundColor = s.color || PALETTE[i % PALETTE.length];
    swatch.setAttribute('aria-hidden', 'true');
    item.append(swatch, document.createTextNode(s.name));
    list.append(item);
  });
  return list;
}

// Draws `draw(width)` into `container` at the container's pixel width (so text keeps its
// size) and again whenever that width changes. Returns a function that redraws now.
export function autoSize(container, draw, { signal } = {}) {
  let lastWidth = 0;
  const render = () => {
    lastWidth = Math.max(280, Math.round(container.clientWidth || 640));
    while (container.firstChild) container.removeChild(container.firstChild);
    container.append(draw(lastWidth));
  };
  if (typeof ResizeObserver !== 'undefined') {
    let pending = null;
    const observer = new ResizeObserver(() => {
      const width = Math.round(container.clientWidth);
      if (Math.abs(width - lastWidth) < 8 || pending) return;
      pending = requestAnimationFrame(() => { pending = null; render(); });
    });
    observer.observe(container);
    signal?.addEventListener('abort', () => observer.disconnect(), { once: true });
  }
  return render;
}

// Exponential moving average with a window that grows with the series, so a short run
// is not flattened and a long one is readable.
export function smooth(points, span = null) {
  const n = points.length;
  if (!n) return [];
  const window = span || Math.max(5, Math.min(200, Math.round(n / 20)));
  const alpha = 2 / (window + 1);
  const out = [];
  let avg = null;
  for (const [x, y] of points) {
    if (!Number.isFinite(y)) { out.push([x, NaN]); continue; }
    avg = avg === null ? y : alpha * y + (1 - alpha) * avg;
    out.push([x, avg]);
  }
  return out;
}

export function histogramBins(values, maxBins = 40) {
  const finite = values.filter(Number.isFinite);
  if (!finite.length) return [];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (lo === hi) { lo -= 0.5; hi += 0.5; }
  const count = Math.max(5, Math.min(maxBins, Math.ceil(Math.sqrt(finite.length))));
  const width = (hi - lo) / count;
  const bins = Array.from({ length: count }, (_, i) => ({ lo: lo + i * width, hi: lo + (i + 1) * width, n: 0 }));
  for (const v of finite) bins[Math.min(count - 1, Math.floor((v - lo) / width))].n += 1;
  return bins;
}

// marks: [{value, label}] drawn as vertical lines (mean, quantiles).
export function histogram({ values, label = 'Histogram', xLabel = '', marks = [], width = 320, height = 190 }) {
  const bins = histogramBins(values);
  if (!bins.length) return emptyChart(width, height, label, 'No samples');
  const margin = { ...MARGIN, left: 44 };
  const x0 = margin.left;
  const x1 = width - margin.right;
  const y0 = margin.top;
  const y1 = height - margin.bottom;
  const lo = bins[0].lo;
  const hi = bins.at(-1).hi;
  const nmax = Math.max(...bins.map((b) => b.n));
  const xPos = (x) => x0 + ((x - lo) / (hi - lo)) * (x1 - x0);
  const yPos = (n) => y1 - (n / nmax) * (y1 - y0);
  const svg = svgRoot(width, height, `${label}: ${values.length} samples in ${bins.length} bins from ${fmtNumber(lo)} to ${fmtNumber(hi)}`);
  axes(svg, {
    x0, x1, y0, y1, xPos, yPos, xLabel,
    xTicks: niceTicks(lo, hi, 5).filter((v) => v >= lo && v <= hi),
    yTicks: niceTicks(0, nmax, 4).filter((v) => v <= nmax && Number.isInteger(v)),
  });
  const g = el('g', { class: 'bars' });
  g.dataset.bins = String(bins.length);
  for (const b of bins) {
    const bar = el('rect', {
      x: xPos(b.lo) + 0.5, y: yPos(b.n), width: Math.max(0.5, xPos(b.hi) - xPos(b.lo) - 1), height: y1 - yPos(b.n), class: 'bar',
    });
    bar.append(el('title', {}, `${fmtNumber(b.lo)} to ${fmtNumber(b.hi)}: ${b.n}`));
    g.append(bar);
  }
  svg.append(g);
  for (const m of marks) {
    if (!Number.isFinite(m.value) || m.value < lo || m.value > hi) continue;
    const x = xPos(m.value);
    svg.append(el('line', { x1: x, x2: x, y1: y0, y2: y1, class: `mark mark-${m.kind || 'q'}` }));
  }
  return svg;
}

// rows: [{label, lo, mid, hi}] (an interval and a point per element of a vector site).
export function forestPlot({ rows, label = 'Forest plot', xLabel = '', width = 420 }) {
  const rowHeight = 20;
  const height = MARGIN.top + MARGIN.bottom + rowHeight * Math.max(rows.length, 1);
  const values = rows.flatMap((r) => [r.lo, r.mid, r.hi]).filter(Number.isFinite);
  if (!values.length) return emptyChart(width, 120, label, 'No summary');
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const margin = { ...MARGIN, left: 90 };
  const x0 = margin.left;
  const x1 = width - margin.right;
  const y0 = margin.top;
  const y1 = height - margin.bottom;
  const xPos = (x) => x0 + ((x - lo) / (hi - lo)) * (x1 - x0);
  const svg = svgRoot(width, height, `${label}: 5%–95% intervals and medians of ${rows.length} elements`);
  axes(svg, { x0, x1, y0, y1, xPos, yPos: () => y0, xLabel, xTicks: niceTicks(lo, hi, 5).filter((v) => v >= lo && v <= hi), yTicks: [] });
  if (lo < 0 && hi > 0) svg.append(el('line', { x1: xPos(0), x2: xPos(0), y1: y0, y2: y1, class: 'zero' }));
  const g = el('g', { class: 'forest' });
  g.dataset.rows = String(rows.length);
  rows.forEach((r, i) => {
    const y = y0 + rowHeight * (i + 0.5);
    g.append(el('text', { x: x0 - 8, y: y + 4, 'text-anchor': 'end', class: 'tick' }, r.label));
    if (Number.isFinite(r.lo) && Number.isFinite(r.hi)) g.append(el('line', { x1: xPos(r.lo), x2: xPos(r.hi), y1: y, y2: y, class: 'interval' }));
    if (Number.isFinite(r.mid)) {
      const dot = el('circle', { cx: xPos(r.mid), cy: y, r: 3.5, class: 'point' });
      dot.append(el('title', {}, `${r.label}: ${fmtNumber(r.mid)} (${fmtNumber(r.lo)} to ${fmtNumber(r.hi)})`));
      g.append(dot);
    }
  });
  svg.append(g);
  return svg;
}
