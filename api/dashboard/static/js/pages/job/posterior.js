// The posterior: the summary table (mean, sd, 5/50/95% per element, from /summary) and
// a histogram of the draws per scalar site (from /samples) or a forest plot per vector site.

import { api } from '../../api.js';
import { forestPlot, histogram } from '../../charts.js';
import { fill, flatten, fmtNumber, fmtShape, h, shapeOf } from '../../util.js';
import { onResults, resultsPanel } from './context.js';

const QUANTITIES = ['mean', 'sd', 'q05', 'q50', 'q95'];

export function mount(ctx) {
  const { signal } = ctx;
  const posterior = resultsPanel(ctx, 'posterior', 'Posterior');

  async function load() {
    let summary;
    let samples = {};
    try {
      summary = (await api.get(`${ctx.base}/summary`, { signal })).summary || {};
    } catch (error) {
      if (!signal.aborted) fill(posterior, h('p', { class: 'alert error', role: 'alert' }, `Could not load the summary: ${error.message}`));
      return;
    }
    try {
      samples = (await api.get(`${ctx.base}/samples`, { signal })).samples || {};
    } catch (error) {
      if (signal.aborted) return;
      samples = {};
    }
    fill(posterior, summaryTable(summary), h('h3', {}, 'Marginals'), h('div', { class: 'plots', id: 'posterior-plots' },
      Object.entries(summary).map(([site, s]) => sitePlot(site, s, samples[site]))));
  }

  return onResults(ctx, posterior, load);
}

function summaryTable(summary) {
  const rows = [];
  for (const [site, s] of Object.entries(summary)) {
    const shape = shapeOf(s.mean);
    if (!shape.length) {
      rows.push([site, s]);
    } else {
      const cols = QUANTITIES.map((k) => flatten(s[k]));
      for (let i = 0; i < cols[0].length; i += 1) {
        rows.push([`${site}[${unravel(i, shape).join(', ')}]`, Object.fromEntries(QUANTITIES.map((k, j) => [k, cols[j][i]]))]);
      }
    }
  }
  return h('div', { class: 'table-wrap' }, h('table', { id: 'summary-table', class: 'summary-table' },
    h('caption', {}, 'Posterior summary per site'),
    h('thead', {}, h('tr', {}, ['Site', 'mean', 'sd', '5%', '50%', '95%'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.map(([name, s]) => h('tr', { dataset: { site: name } },
      h('th', { scope: 'row' }, name), QUANTITIES.map((k) => h('td', { class: 'num' }, fmtNumber(s[k]))))))));
}

function sitePlot(site, s, draws) {
  const shape = shapeOf(s.mean);
  let chart;
  if (!shape.length) {
    const values = Array.isArray(draws) ? flatten(draws).filter(Number.isFinite) : [];
    chart = values.length
      ? histogram({ values, width: 380, label: `Posterior of ${site}`, xLabel: site, marks: [{ value: s.mean, kind: 'mean' }, { value: s.q05 }, { value: s.q95 }] })
      : forestPlot({ rows: [{ label: site, lo: s.q05, mid: s.q50, hi: s.q95 }], width: 380, label: `Posterior of ${site}` });
  } else {
    const [lo, mid, hi] = ['q05', 'q50', 'q95'].map((k) => flatten(s[k]));
    chart = forestPlot({ rows: mid.map((m, i) => ({ label: `${site}[${unravel(i, shape).join(',')}]`, lo: lo[i], mid: m, hi: hi[i] })), width: 760, label: `Posterior of ${site}`, xLabel: site });
  }
  return h('figure', { class: ['site-plot', shape.length ? 'forest' : 'hist'], dataset: { site } }, chart,
    h('figcaption', {}, shape.length ? `${site} ${fmtShape(shape)}: median and 5–95% interval per element` : `${site}: posterior draws, mean and 5%/95% marked`));
}

// The multi-index of flat (row-major) position `index` in an array of `shape`.
function unravel(index, shape) {
  const out = [];
  let rest = index;
  for (let d = shape.length - 1; d >= 0; d -= 1) {
    out.unshift(rest % shape[d]);
    rest = Math.floor(rest / shape[d]);
  }
  return out;
}
