// The posterior predictive check panel of the job page (jobs fitted with
// outputs.predictive): per observed site, the observed data's histogram against the
// replicated draws' average histogram, and a table of test statistics (mean, sd, min,
// max, quantiles) observed vs replicated with Bayesian p-values; p-values near 0 or 1
// (outside [0.05, 0.95]) are flagged. A section of the job page (`mount(ctx) -> cleanup`);
// jobs without predictive draws get no panel.

import { api } from '../../api.js';
import { lineChart } from '../../charts.js';
import { fill, fmtNumber, h } from '../../util.js';
import { onResults, section } from './context.js';

export function extremeP(p) {
  return p < 0.05 || p > 0.95;
}

function siteView(name, site) {
  const { edges, observed, replicated_mean: replicated } = site.histogram;
  const centres = observed.map((_, i) => (edges[i] + edges[i + 1]) / 2);
  const chart = lineChart({
    series: [
      { name: `observed ${name}`, points: centres.map((x, i) => [x, observed[i]]), color: '#222222' },
      { name: 'replicated (mean of draws)', points: centres.map((x, i) => [x, replicated[i]]), color: '#2b59c3' },
    ],
    label: `Observed ${name} vs posterior predictive replications`, xLabel: name, yLabel: 'count', width: 640, height: 220,
  });
  const rows = Object.entries(site.statistics).map(([stat, s]) => h('tr', {
    class: extremeP(s.p_value) ? 'untrusted' : '', dataset: { stat, pValue: String(s.p_value) },
  },
  h('th', { scope: 'row' }, stat),
  h('td', { class: 'num' }, fmtNumber(s.observed)),
  h('td', { class: 'num' }, `${fmtNumber(s.replicated.mean)} ± ${fmtNumber(s.replicated.sd, 2)}`),
  h('td', { class: 'num' }, `${fmtNumber(s.replicated.q05)} – ${fmtNumber(s.replicated.q95)}`),
  h('td', { class: 'num' }, fmtNumber(s.p_value, 3), extremeP(s.p_value) ? ' ⚠' : '')));
  return h('div', { class: 'ppc-site', dataset: { site: name } },
    h('h3', {}, `${name} (${site.num_observations} observations, ${site.num_draws} replications)`),
    chart,
    h('div', { class: 'table-wrap' }, h('table', { class: 'jobs-table ppc-table' },
      h('caption', { class: 'visually-hidden' }, `Test statistics of ${name}`),
      h('thead', {}, h('tr', {}, ['Statistic', 'Observed', 'Replicated mean ± sd', 'Replicated 90% interval', 'p-value']
        .map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows))));
}

export function mount(ctx) {
  if (!ctx.job.spec?.outputs?.predictive) return () => {};
  const body = h('div', { id: 'ppc-body' }, h('p', { class: 'muted' }, 'Available when the job has succeeded.'));
  const panel = section('ppc', 'Posterior predictive checks',
    h('p', { class: 'muted' }, 'p-value = P(T(replicated) ≥ T(observed)); values below 0.05 or above 0.95 (⚠) mean the model does not reproduce that feature of the data.'),
    body);
  ctx.root.append(panel);
  return onResults(ctx, body, async () => {
    try {
      const ppc = await api.get(`${ctx.base}/ppc`, { signal: ctx.signal });
      fill(body, Object.entries(ppc.sites).map(([name, site]) => siteView(name, site)),
        (ppc.notes || []).map((n) => h('p', { class: 'muted' }, n)));
      panel.dataset.loaded = 'true';
    } catch (error) {
      if (!ctx.signal.aborted) fill(body, h('p', { class: 'muted' }, `No predictive checks: ${error.message}`));
    }
  });
}
