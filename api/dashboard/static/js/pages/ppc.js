// The posterior predictive check panel of the job page (jobs fitted with
// outputs.predictive): per observed site, the observed data's histogram against the
// replicated draws' average histogram, and a table of test statistics (mean, sd, min,
// max, quantiles) observed vs replicated with Bayesian p-values; p-values near 0 or 1
// (outside [0.05, 0.95]) are flagged. Mounted under the job page by main.js; it waits for
// the job to succeed on its own.

import { api } from '../api.js';
import { lineChart } from '../charts.js';
import { fill, fmtNumber, h, isFinal } from '../util.js';

const POLL_MS = 2000;

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

// Appends the panel to `root` when the job asked for predictive draws; returns a cleanup.
export function mountPpcPanel(root, jobId) {
  const controller = new AbortController();
  const { signal } = controller;
  const base = `/v1/jobs/${encodeURIComponent(jobId)}`;
  const body = h('div', { id: 'ppc-body' }, h('p', { class: 'muted' }, 'Shown when the job has succeeded.'));
  const panel = h('section', { id: 'ppc', class: 'panel', 'aria-labelledby': 'ppc-title', hidden: true },
    h('h2', { id: 'ppc-title' }, 'Posterior predictive checks'),
    h('p', { class: 'muted' }, 'p-value = P(T(replicated) ≥ T(observed)); values below 0.05 or above 0.95 (⚠) mean the model does not reproduce that feature of the data.'),
    body);
  let timer = null;

  async function check() {
    let job;
    try {
      job = await api.get(base, { signal });
    } catch {
      return;
    }
    if (!job.spec?.outputs?.predictive) return; // nothing to check: the panel stays hidden
    panel.hidden = false;
    if (!isFinal(job.state)) {
      timer = setTimeout(check, POLL_MS);
      return;
    }
    if (job.state !== 'succeeded') {
      fill(body, h('p', { class: 'muted' }, `The job ${job.state}: no predictive checks.`));
      return;
    }
    try {
      const ppc = await api.get(`${base}/ppc`, { signal });
      fill(body, Object.entries(ppc.sites).map(([name, site]) => siteView(name, site)),
        (ppc.notes || []).map((n) => h('p', { class: 'muted' }, n)));
      panel.dataset.loaded = 'true';
    } catch (error) {
      if (!signal.aborted) fill(body, h('p', { class: 'muted' }, `No predictive checks: ${error.message}`));
    }
  }

  root.append(panel);
  check();
  return () => { clearTimeout(timer); controller.abort(); };
}
