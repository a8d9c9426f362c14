// The job page: header with live progress and cancel; the loss curve (live over SSE),
// ELBO terms per site, gradient norms; posterior summary with histograms / forest plots;
// diagnostics; the error with the source line it points at; the spec; downloads; and
// curl / Python snippets that reproduce the job.

import { api, ApiError, download, followJob } from '../api.js';
import { autoSize, forestPlot, histogram, lineChart, smooth } from '../charts.js';
import { sourceView } from '../highlight.js';
import { elboName, elboText, guideName, guideText, modelName, optimizerText, specOf } from '../jobinfo.js';
import { lossPoints, prettySeriesName, seriesFrom } from '../series.js';
import { curlSnippet, pythonSnippet } from '../snippets.js';
import {
  announce, clear, copyText, fill, flatten, fmtDuration, fmtNumber, fmtShape, fmtTime, h, isFinal, jobDuration,
  shapeOf, stateBadge, throttle,
} from '../util.js';

const MAX_LOSS_POINTS = 1000;

const DOWNLOADS = [
  { what: 'params', label: 'Parameters', formats: ['json', 'safetensors', 'npz', 'pt'] },
  { what: 'samples', label: 'Posterior samples', formats: ['json', 'npz', 'netcdf', 'safetensors'] },
  { what: 'log-probs', label: 'Log-probs', formats: ['json', 'npz', 'netcdf'] },
  { what: 'loss', label: 'Loss curve', formats: ['json', 'npz'], live: true },
  { what: 'summary', label: 'Summary', formats: ['json'] },
  { what: 'diagnostics', label: 'Diagnostics', formats: ['json'] },
];
const EXTENSIONS = { json: 'json', npz: 'npz', safetensors: 'safetensors', netcdf: 'nc', pt: 'pt' };

export function kHatReading(kHat, reading) {
  if (kHat === null || kHat === undefined || !Number.isFinite(kHat)) {
    return { level: 'unknown', words: 'k-hat was not computed for this job (it needs log-probs).' };
  }
  const level = reading && reading !== 'unknown' ? reading : kHat < 0.5 ? 'good' : kHat < 0.7 ? 'ok' : 'bad';
  const words = kHat < 0.5
    ? 'good: the guide is close enough to the posterior that importance-sampling estimates from it are reliable.'
    : kHat < 0.7
      ? 'ok: usable, but the guide misses some of the posterior; treat tail quantities with care.'
      : 'unreliable: the guide is far from the posterior (k-hat ≥ 0.7). Do not trust its means and intervals; try a richer guide.';
  return { level, words };
}

function section(id, title, ...children) {
  return h('section', { id, class: 'panel', 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title` }, title), ...children);
}

function problemText(problem) {
  if (!problem) return '';
  return [problem.title, problem.detail].filter(Boolean).join(': ');
}

export async function renderJob(root, jobId) {
  const controller = new AbortController();
  const { signal } = controller;
  const base = `/v1/jobs/${encodeURIComponent(jobId)}`;
  let job;
  try {
    job = await api.get(base, { signal });
  } catch (error) {
    root.append(h('h1', {}, 'Job'), h('div', { class: 'alert error', role: 'alert' },
      error instanceof ApiError && error.status === 404 ? `There is no job ${jobId} in this account.` : `Could not load job ${jobId}: ${error.message}`),
    h('p', {}, h('a', { href: '#/jobs' }, 'Back to the jobs')));
    return () => controller.abort();
  }

  let logScale = false;
  let lossBody = null;
  let source = null; // model source, fetched from the catalog for catalog models
  let resultsShownFor = null;
  let diagnostics = null;

  // ---- header -------------------------------------------------------------------------
  const title = h('h1', {});
  const meta = h('dl', { class: 'meta' });
  const progressBar = h('progress', { id: 'job-progress', max: 1, value: 0, 'aria-label': 'Steps done' });
  const progressText = h('span', { id: 'progress-text', class: 'num' });
  const cancelButton = h('button', { type: 'button', id: 'cancel-button', class: 'danger', onClick: cancel }, 'Cancel job');
  const actionStatus = h('span', { role: 'status', class: 'muted' });
  const errorBox = h('div', { id: 'job-error' });
  const toc = h('nav', { class: 'toc', 'aria-label': 'On this page' }, h('ul', {},
    [['loss', 'Loss'], ['elbo-terms', 'ELBO terms'], ['grad-norms', 'Gradient norms'], ['posterior', 'Posterior'],
      ['diagnostics', 'Diagnostics'], ['spec', 'Spec'], ['downloads', 'Downloads'], ['reproduce', 'Reproduce']]
      .map(([id, text]) => h('li', {}, h('a', { href: `#/jobs/${encodeURIComponent(jobId)}`, onClick: (e) => {
        e.preventDefault();
        const target = document.getElementById(id);
        target?.scrollIntoView({ block: 'start' });
        target?.querySelector('h2')?.setAttribute('tabindex', '-1');
        target?.querySelector('h2')?.focus({ preventScroll: true });
      } }, text)))));

  // ---- loss ---------------------------------------------------------------------------
  const logToggle = h('input', { type: 'checkbox', id: 'log-scale', role: 'switch', onChange: (e) => { logScale = e.target.checked; drawLoss(); } });
  const lossChart = h('div', { id: 'loss-chart', class: 'chart-box' });
  const lossInfo = h('p', { class: 'muted', id: 'loss-info' });
  const elboChart = h('div', { id: 'elbo-terms-chart', class: 'chart-box' });
  const gradChart = h('div', { id: 'grad-norms-chart', class: 'chart-box' });
  const posterior = h('div', { id: 'posterior-body' }, h('p', { class: 'muted' }, 'Available when the job has succeeded.'));
  const diagnosticsBody = h('div', { id: 'diagnostics-body' }, h('p', { class: 'muted' }, 'Available when the job has succeeded.'));
  const specBody = h('div', { id: 'spec-body' });
  const downloadsBody = h('div', { id: 'downloads-body' });
  const reproduceBody = h('div', { id: 'reproduce-body' });

  root.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/jobs' }, '← Jobs')),
    h('div', { class: 'page-head' }, title, h('div', { class: 'actions' },
      h('a', { class: 'button secondary', id: 'edit-job', href: `#/new?from=${encodeURIComponent(jobId)}` }, 'New job from this one'),
      cancelButton, actionStatus)),
    h('div', { class: 'progress-row' }, progressBar, progressText),
    meta, errorBox, toc,
    h('div', { class: 'grid-2' },
      section('loss', 'Loss', h('div', { class: 'chart-controls' },
        h('label', { for: 'log-scale', class: 'switch' }, logToggle, ' Log scale')), lossChart, lossInfo),
      section('elbo-terms', 'ELBO terms per site', h('p', { class: 'muted' },
        'Reconstruction = E_q[log p(x | z)] per observed site; KL = E_q[log p(z) − log q(z)] per latent site. They add up to the ELBO.'), elboChart),
      section('grad-norms', 'Gradient norms per parameter', gradChart)),
    section('posterior', 'Posterior', posterior),
    section('diagnostics', 'Diagnostics', diagnosticsBody),
    section('spec', 'Spec', specBody),
    section('downloads', 'Downloads', downloadsBody),
    section('reproduce', 'Reproduce this job', reproduceBody));

  function renderHeader() {
    fill(title, `${modelName(job)} `, stateBadge(job.state));
    title.dataset.state = job.state;
    const p = job.progress || {};
    progressBar.max = Math.max(1, p.steps || 1);
    progressBar.value = Math.min(p.step || 0, progressBar.max);
    progressText.textContent = `${p.step ?? 0} / ${p.steps ?? '?'} steps`
      + (p.loss !== null && p.loss !== undefined ? ` · loss ${fmtNumber(p.loss)}` : '')
      + (!isFinal(job.state) && p.steps_per_s ? ` · ${fmtNumber(p.steps_per_s, 3)} steps/s` : '')
      + (!isFinal(job.state) && p.eta_s ? ` · ETA ${fmtDuration(p.eta_s)}` : '');
    fill(meta,
      ...[['Job id', h('code', {}, job.id)], ['Guide', guideName(job)], ['ELBO', elboName(job)],
        ['Created', fmtTime(job.created_at)], ['Started', fmtTime(job.started_at)], ['Finished', fmtTime(job.finished_at)],
        ['Duration', fmtDuration(jobDuration(job))], ['Attempts', String(job.attempts ?? 0)], ['Queue', job.queue || '—'],
        ['Labels', Object.entries(job.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ') || '—']]
        .filter(([k, v]) => !(['Guide', 'ELBO'].includes(k) && v === '—'))
        .flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    cancelButton.hidden = isFinal(job.state);
    renderError();
  }

  function renderError() {
    clear(errorBox);
    if (!job.error) return;
    const problem = job.error;
    const box = h('div', { class: 'alert error', role: 'alert', id: 'job-error-alert' },
      h('h2', {}, job.state === 'cancelled' ? 'Cancelled' : 'The job failed'),
      h('p', {}, problemText(problem)),
      problem.step !== undefined ? h('p', {}, `At step ${problem.step}.`) : null,
      Array.isArray(problem.sites) && problem.sites.length ? h('p', {}, `Sites involved: ${problem.sites.join(', ')}`) : null);
    if (problem.line && source) {
      box.append(sourceView(source, { error: { line: problem.line, col: problem.col, message: problem.detail || problem.title }, label: 'Model source at the error' }));
    }
    errorBox.append(box);
  }

  // ---- loss, ELBO terms, grad norms -------------------------------------------------------
  const renderLossChart = autoSize(lossChart, (width) => {
    const points = lossPoints(lossBody);
    const series = [{ name: 'loss', points, className: 'raw' }];
    if (points.length > 2) series.push({ name: 'smoothed', points: smooth(points), className: 'smoothed', color: '#d1495b' });
    return lineChart({ series, log: logScale, width, height: 300, yLabel: 'loss (−ELBO)', label: 'Loss curve', emptyText: job.state === 'queued' ? 'Waiting for the job to start' : 'No loss points yet' });
  }, { signal });
  const waitingText = () => (isFinal(job.state) ? 'Not recorded for this job' : 'Shown when the job has finished');
  const renderElboChart = autoSize(elboChart, (width) => lineChart({
    series: seriesFrom(lossBody?.elbo_terms).map((s) => ({ ...s, name: prettySeriesName(s.name) })),
    width, yLabel: 'nats', label: 'ELBO terms per site', emptyText: waitingText(),
  }), { signal });
  const renderGradChart = autoSize(gradChart, (width) => lineChart({
    series: seriesFrom(lossBody?.grad_norms).map((s) => ({ ...s, name: prettySeriesName(s.name) })),
    width, log: true, yLabel: 'gradient norm', label: 'Gradient norms per parameter', emptyText: waitingText(),
  }), { signal });

  function drawLoss() {
    const points = lossPoints(lossBody);
    renderLossChart();
    const total = lossBody?.num_points ?? points.length;
    lossInfo.textContent = points.length
      ? `${total} step${total === 1 ? '' : 's'} recorded${total > points.length ? `, ${points.length} plotted` : ''}; last loss ${fmtNumber(points.at(-1)[1])}.`
      : '';
  }

  function drawTerms() {
    renderElboChart();
    renderGradChart();
  }

  async function loadLoss() {
    try {
      lossBody = await api.get(`${base}/loss`, { query: { max_points: MAX_LOSS_POINTS }, signal });
    } catch (error) {
      if (signal.aborted) return;
      lossInfo.textContent = `Could not load the loss curve: ${error.message}`;
      return;
    }
    drawLoss();
    drawTerms();
  }
  const refreshLoss = throttle(loadLoss, 1000);

  // ---- posterior ----------------------------------------------------------------------------
  async function loadPosterior() {
    let summary;
    let samples = {};
    try {
      summary = (await api.get(`${base}/summary`, { signal })).summary || {};
    } catch (error) {
      if (!signal.aborted) fill(posterior, h('p', { class: 'alert error', role: 'alert' }, `Could not load the summary: ${error.message}`));
      return;
    }
    try {
      samples = (await api.get(`${base}/samples`, { signal })).samples || {};
    } catch (error) {
      if (signal.aborted) return;
      samples = {};
    }
    fill(posterior, summaryTable(summary), h('h3', {}, 'Marginals'), h('div', { class: 'plots', id: 'posterior-plots' },
      Object.entries(summary).map(([site, s]) => sitePlot(site, s, samples[site]))));
  }

  function summaryTable(summary) {
    const rows = [];
    for (const [site, s] of Object.entries(summary)) {
      const shape = shapeOf(s.mean);
      if (!shape.length) {
        rows.push([site, s]);
      } else {
        const cols = ['mean', 'sd', 'q05', 'q50', 'q95'].map((k) => flatten(s[k]));
        const n = cols[0].length;
        const index = (i) => unravel(i, shape).join(', ');
        for (let i = 0; i < n; i += 1) {
          rows.push([`${site}[${index(i)}]`, { mean: cols[0][i], sd: cols[1][i], q05: cols[2][i], q50: cols[3][i], q95: cols[4][i] }]);
        }
      }
    }
    return h('div', { class: 'table-wrap' }, h('table', { id: 'summary-table', class: 'summary-table' },
      h('caption', {}, 'Posterior summary per site'),
      h('thead', {}, h('tr', {}, ['Site', 'mean', 'sd', '5%', '50%', '95%'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.map(([name, s]) => h('tr', { dataset: { site: name } },
        h('th', { scope: 'row' }, name), ['mean', 'sd', 'q05', 'q50', 'q95'].map((k) => h('td', { class: 'num' }, fmtNumber(s[k]))))))));
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

  // ---- diagnostics --------------------------------------------------------------------------
  async function loadDiagnostics() {
    try {
      diagnostics = await api.get(`${base}/diagnostics`, { signal });
    } catch (error) {
      if (!signal.aborted) fill(diagnosticsBody, h('p', { class: 'alert error', role: 'alert' }, `Could not load diagnostics: ${error.message}`));
      return;
    }
    const d = diagnostics.diagnostics || {};
    if (!job.spec && diagnostics.meta?.settings) {
      // The job JSON carries only the model; the run's settings name the rest of the spec.
      job.spec = diagnostics.meta.settings;
      renderHeader();
      renderReproduce();
    }
    const k = kHatReading(d.k_hat, d.k_hat_reading);
    const warnings = (d.warnings || []).map(messageText);
    const validation = d.validation || {};
    const validationMessages = [...(validation.errors || []), ...(validation.warnings || [])].map(messageText);
    const nanEvents = d.nan_events || [];
    fill(diagnosticsBody,
      h('div', { class: ['khat', `khat-${k.level}`], id: 'khat', role: k.level === 'bad' ? 'alert' : null },
        h('strong', {}, `Pareto k-hat: ${fmtNumber(d.k_hat, 3)}`), ' — ', k.words),
      h('dl', { class: 'meta' },
        h('dt', {}, 'Converged'), h('dd', {}, d.converged === true ? 'yes' : d.converged === false ? 'no (the loss was still moving at the end)' : '—'),
        d.stopped_early !== undefined ? [h('dt', {}, 'Stopped early'), h('dd', {}, d.stopped_early ? 'yes' : 'no')] : null),
      h('h3', {}, 'Warnings'), listOrNone(warnings, 'diagnostic-warnings', 'No warnings.'),
      h('h3', {}, 'Validation pass'), listOrNone(validationMessages, 'validation-messages', 'The model and guide passed validation with no messages.'),
      h('h3', {}, 'NaN / inf events'), listOrNone(nanEvents.map(messageText), 'nan-events', 'None.'),
      runMeta(diagnostics.meta || {}));
    renderSpec();
  }

  function listOrNone(items, id, empty) {
    return items.length ? h('ul', { id, class: 'messages' }, items.map((t) => h('li', {}, t))) : h('p', { id, class: 'muted' }, empty);
  }

  function runMeta(metaInfo) {
    const versions = metaInfo.versions || {};
    const rows = [
      ['Versions', Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ')],
      ['Device', metaInfo.device], ['Seed', metaInfo.seed], ['Steps done', metaInfo.steps_done],
      ['Wall time', metaInfo.wall_time_s !== undefined ? fmtDuration(metaInfo.wall_time_s) : undefined],
    ].filter(([, v]) => v !== undefined && v !== null && v !== '');
    if (!rows.length) return null;
    return h('details', {}, h('summary', {}, 'Run metadata'), h('dl', { class: 'meta' }, rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))])));
  }

  // ---- spec ---------------------------------------------------------------------------------
  async function loadSource() {
    const model = job.model || specOf(job).model || {};
    if (model.source) {
      source = model.source;
    } else if (model.catalog) {
      try {
        const entry = await api.get(`/v1/catalog/${encodeURIComponent(model.catalog)}`, { signal });
        source = entry.source;
      } catch {
        source = null;
      }
    }
  }

  async function dataFields() {
    const spec = specOf(job);
    if (job.dataset_id) {
      try {
        const ds = await api.get(`/v1/datasets/${encodeURIComponent(job.dataset_id)}`, { signal });
        return { origin: `dataset ${ds.name || ds.id}`, fields: ds.fields.map((f) => [f.name, fmtShape(f.shape), f.dtype]) };
      } catch {
        return { origin: `dataset ${job.dataset_id}`, fields: [] };
      }
    }
    const inline = spec.data?.inline;
    if (inline) return { origin: 'inline', fields: Object.entries(inline).map(([k, v]) => [k, fmtShape(shapeOf(v)), typeof flatten(v)[0]]) };
    return { origin: job.model?.catalog ? 'the catalog example data' : 'unknown', fields: [] };
  }

  async function renderSpec() {
    const spec = specOf(job);
    const settings = diagnostics?.meta?.settings || {};
    const inference = spec.inference || settings.inference || settings;
    const guide = spec.guide || settings.guide;
    const { origin, fields } = await dataFields();
    if (signal.aborted) return;
    const rows = [
      ['Model', modelName(job) + (job.model?.entry && job.model.entry !== 'model' ? ` (entry ${job.model.entry})` : '')],
      ['Guide', guide ? guideText(guide) : guideName(job)],
      ['ELBO', inference?.elbo ? elboText(inference.elbo) : elboName(job)],
      ['Optimizer', optimizerText(inference)],
      ['Scheduler', inference?.scheduler ? JSON.stringify(inference.scheduler) : null],
      ['Steps', inference?.steps ?? job.progress?.steps],
      ['Seed', inference?.seed], ['Device', inference?.device],
      ['Stop rule', inference?.stop ? JSON.stringify(inference.stop) : null],
      ['JIT', inference?.jit !== undefined && inference?.jit !== false ? String(inference.jit) : null],
      ['Gradient clipping', inference?.clip_grad_norm ?? null],
      ['Outputs', spec.outputs ? `${spec.outputs.num_samples} posterior samples${spec.outputs.predictive ? ', predictive' : ''}${spec.outputs.log_probs ? ', log-probs' : ''}` : null],
    ].filter(([, v]) => v !== null && v !== undefined && v !== '—');
    const partial = !guide && !inference?.elbo;
    fill(specBody,
      h('dl', { class: 'meta spec' }, rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, h('code', {}, String(v)))])),
      partial ? h('p', { class: 'muted', id: 'spec-partial' }, 'The job JSON carries the model only; the guide, ELBO and optimizer settings show here once the job has results.') : null,
      h('h3', {}, `Data (${origin})`),
      fields.length
        ? h('table', { class: 'fields-table', id: 'data-fields' }, h('thead', {}, h('tr', {}, ['Field', 'Shape', 'Type'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, fields.map(([name, shape, dtype]) => h('tr', {}, h('th', { scope: 'row' }, name), h('td', {}, shape), h('td', {}, dtype)))))
        : h('p', { class: 'muted' }, 'No field list available.'),
      h('h3', {}, 'Model source'),
      source ? sourceView(source, { error: job.error?.line ? { line: job.error.line, col: job.error.col, message: job.error.detail } : null })
        : h('p', { class: 'muted' }, 'The source is not available.'));
  }

  // ---- downloads and snippets -------------------------------------------------------------------
  function renderDownloads() {
    const ready = job.state === 'succeeded';
    fill(downloadsBody,
      ready ? null : h('p', { class: 'muted' }, 'Results can be downloaded once the job has succeeded; the loss curve is available now.'),
      h('table', { class: 'downloads' }, h('tbody', {}, DOWNLOADS.map((d) => h('tr', {},
        h('th', { scope: 'row' }, d.label),
        h('td', {}, d.formats.map((fmt) => h('button', {
          type: 'button', class: 'secondary small', disabled: !(ready || d.live),
          dataset: { download: `${d.what}.${fmt}` }, 'aria-label': `Download ${d.label.toLowerCase()} as ${fmt}`,
          onClick: async (e) => {
            const button = e.currentTarget;
            button.disabled = true;
            try {
              const file = await download(`${base}/${d.what}`, `${jobId}-${d.what}.${EXTENSIONS[fmt]}`, { query: { format: fmt } });
              announce(`Downloaded ${file.name} (${file.size} bytes)`);
              button.dataset.downloaded = String(file.size);
            } catch (error) {
              announce(`Download failed: ${error.message}`);
              actionStatus.textContent = `Download failed: ${error.message}`;
            } finally {
              button.disabled = false;
            }
          },
        }, fmt))))))));
  }

  function reproduceBodyFor() {
    const spec = specOf(job);
    const body = {};
    for (const key of ['model', 'guide', 'inference', 'outputs']) if (spec[key]) body[key] = spec[key];
    if (!body.model) body.model = job.model;
    if (spec.data) body.data = spec.data;
    else if (job.dataset_id) body.data = { dataset_id: job.dataset_id };
    if (Object.keys(job.labels || {}).length) body.labels = job.labels;
    return body;
  }

  function renderReproduce() {
    const body = reproduceBodyFor();
    const origin = window.location.origin;
    const snippet = (id, label, text) => {
      const status = h('span', { role: 'status', class: 'muted' });
      return h('div', { class: 'snippet' },
        h('div', { class: 'snippet-head' }, h('h3', { id: `${id}-title` }, label),
          h('button', { type: 'button', class: 'secondary small', id: `copy-${id}`, onClick: async () => {
            try { await copyText(text); status.textContent = 'Copied.'; } catch (error) { status.textContent = `Copy failed: ${error.message}`; }
          } }, `Copy ${label}`), status),
        h('pre', { id: `snippet-${id}`, tabindex: '0', 'aria-labelledby': `${id}-title` }, h('code', {}, text)));
    };
    fill(reproduceBody,
      specOf(job).guide ? null : h('p', { class: 'muted' }, 'The server did not return this job\'s full spec; the snippets reproduce its model and data with default settings.'),
      h('p', { class: 'muted' }, 'Both read the key from the VIHUB_API_KEY environment variable; neither contains it.'),
      snippet('curl', 'curl', curlSnippet(body, origin)),
      snippet('python', 'Python', pythonSnippet(body, origin)));
  }

  // ---- actions ----------------------------------------------------------------------------------
  async function cancel() {
    cancelButton.disabled = true;
    actionStatus.textContent = 'Cancelling…';
    try {
      job = await api.post(`${base}/cancel`, undefined, { signal });
      actionStatus.textContent = job.state === 'cancelled' ? 'Cancelled.' : 'Cancel requested; the worker stops at its next check.';
      announce(actionStatus.textContent);
      renderHeader();
    } catch (error) {
      actionStatus.textContent = `Could not cancel: ${error.message}`;
    } finally {
      cancelButton.disabled = false;
    }
  }

  function onJob(next) {
    const wasFinal = isFinal(job.state);
    job = { ...job, ...next };
    renderHeader();
    if (isFinal(job.state) && (!wasFinal || resultsShownFor !== job.state)) finished();
  }

  function finished() {
    if (resultsShownFor === job.state) return;
    resultsShownFor = job.state;
    announce(`Job ${job.state}`);
    loadLoss();
    renderDownloads();
    if (job.state === 'succeeded') {
      loadPosterior();
      loadDiagnostics();
    } else {
      const text = job.state === 'cancelled' ? 'The job was cancelled: no results.' : 'The job failed: no results.';
      fill(posterior, h('p', { class: 'muted' }, text));
      fill(diagnosticsBody, h('p', { class: 'muted' }, text));
    }
  }

  // ---- start ----------------------------------------------------------------------------------
  await loadSource();
  renderHeader();
  renderSpec();
  renderDownloads();
  renderReproduce();
  await loadLoss();
  if (isFinal(job.state)) {
    finished();
  } else {
    followJob(jobId, (update) => {
      if (update.type === 'job' || update.type === 'state') onJob(update.data);
      else if (update.type === 'progress') {
        job = { ...job, state: update.data.state || job.state, progress: { ...job.progress, ...update.data } };
        renderHeader();
        refreshLoss();
      } else if (update.type === 'end') {
        job = { ...job, state: update.data.state, error: update.data.error ?? job.error };
      }
      if (update.type === 'job' && !isFinal(update.data.state)) refreshLoss();
    }, { signal }).then((final) => { if (final) onJob(final); }).catch((error) => {
      if (!signal.aborted) actionStatus.textContent = `Live updates stopped: ${error.message}`;
    });
  }
  return () => controller.abort();
}

function messageText(m) {
  if (typeof m === 'string') return m;
  if (!m || typeof m !== 'object') return String(m);
  const where = m.site ? `[${m.site}] ` : m.step !== undefined ? `step ${m.step}: ` : '';
  const text = m.message || m.detail || m.reason || JSON.stringify(m);
  const extra = m.sites ? ` (sites: ${[].concat(m.sites).join(', ')})` : m.params ? ` (params: ${[].concat(m.params).join(', ')})` : '';
  return `${where}${text}${extra}`;
}

function unravel(index, shape) {
  const out = [];
  let rest = index;
  for (let d = shape.length - 1; d >= 0; d -= 1) {
    out.unshift(rest % shape[d]);
    rest = Math.floor(rest / shape[d]);
  }
  return out;
}
