// Diagnostics from /diagnostics: the Pareto k-hat with the server's reading of it, the
// convergence, warnings, the validation pass, NaN/inf events and the run metadata. The
// run's settings (`meta.settings`) also complete the job's spec for the other sections.

import { api } from '../../api.js';
import { fill, fmtDuration, fmtNumber, h } from '../../util.js';
import { onResults, resultsPanel } from './context.js';

// What each of the server's k-hat readings means for the user (the thresholds come from
// GET /v1/capabilities, the reading of this job from its diagnostics).
const KHAT_MEANING = {
  good: { level: 'good', words: 'the guide is close enough to the posterior that importance-sampling estimates from it are reliable.' },
  ok: { level: 'ok', words: 'usable, but the guide misses some of the posterior; treat tail quantities with care.' },
  unreliable: { level: 'bad', words: 'the guide is far from the posterior and estimates from it are unreliable. Do not trust its means and intervals; try a richer guide.' },
  'very bad': { level: 'bad', words: 'the guide is far from the posterior and estimates from it are unreliable. Do not trust its means and intervals; try a richer guide.' },
  'not applicable': { level: 'unknown', words: 'the model has no latent sites, so there is no posterior to check.' },
  unknown: { level: 'unknown', words: 'k-hat was not computed for this job (it needs log-probs).' },
};

// The range of k-hat a reading stands for, from the server's thresholds ("0.5 ≤ k-hat < 0.7").
export function khatRange(reading, readings) {
  const i = (readings || []).findIndex((r) => r.reading === reading);
  if (i < 0) return '';
  const lower = i > 0 ? readings[i - 1].below : null;
  const upper = readings[i].below;
  if (lower === null && upper === null) return '';
  if (lower === null) return `k-hat < ${upper}`;
  if (upper === null) return `k-hat ≥ ${lower}`;
  return `${lower} ≤ k-hat < ${upper}`;
}

// The k-hat line: the value, the server's reading with its range, what it means, and the
// server's note (why k-hat is infinite or missing) when there is one.
export function khatView(d, readings) {
  const reading = d.k_hat_reading || 'unknown';
  const meaning = KHAT_MEANING[reading] || { level: 'unknown', words: '' };
  const lastRange = readings?.length && readings.at(-1).reading === reading && readings.at(-1).below === null;
  const value = Number.isFinite(d.k_hat) ? fmtNumber(d.k_hat, 3) : lastRange ? '∞' : 'not computed';
  const range = khatRange(reading, readings);
  return h('div', { class: ['khat', `khat-${meaning.level}`], id: 'khat', dataset: { reading }, role: meaning.level === 'bad' ? 'alert' : null },
    h('strong', {}, `Pareto k-hat: ${value}`), ' — ', h('span', { class: 'khat-reading' }, reading),
    range ? ` (${range})` : '', meaning.words ? `: ${meaning.words}` : '',
    d.k_hat_note ? h('p', { class: 'muted', id: 'khat-note' }, `Note: ${d.k_hat_note}.`) : null);
}

export function mount(ctx) {
  const { signal } = ctx;
  const body = resultsPanel(ctx, 'diagnostics', 'Diagnostics');

  async function load() {
    let diagnostics;
    try {
      diagnostics = await api.get(`${ctx.base}/diagnostics`, { signal });
    } catch (error) {
      if (!signal.aborted) fill(body, h('p', { class: 'alert error', role: 'alert' }, `Could not load diagnostics: ${error.message}`));
      return;
    }
    ctx.diagnostics = diagnostics;
    if (!ctx.job.spec && diagnostics.meta?.settings) {
      // The job JSON carries only the model; the run's settings name the rest of the spec.
      ctx.job.spec = diagnostics.meta.settings;
      ctx.emit('job');
    }
    const d = diagnostics.diagnostics || {};
    const validation = d.validation || {};
    fill(body,
      khatView(d, ctx.caps?.k_hat?.readings),
      h('dl', { class: 'meta' },
        h('dt', {}, 'Converged'), h('dd', {}, d.converged === true ? 'yes' : d.converged === false ? 'no (the loss was still moving at the end)' : '—'),
        d.stopped_early !== undefined ? [h('dt', {}, 'Stopped early'), h('dd', {}, d.stopped_early ? 'yes' : 'no')] : null),
      h('h3', {}, 'Warnings'), listOrNone((d.warnings || []).map(messageText), 'diagnostic-warnings', 'No warnings.'),
      h('h3', {}, 'Validation pass'), listOrNone([...(validation.errors || []), ...(validation.warnings || [])].map(messageText),
        'validation-messages', 'The model and guide passed validation with no messages.'),
      engineView(d),
      runMeta(diagnostics.meta || {}));
    ctx.emit('spec');
  }

  return onResults(ctx, body, load);
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

// A warning, validation message or NaN event as one line of text.
function messageText(m) {
  if (typeof m === 'string') return m;
  if (!m || typeof m !== 'object') return String(m);
  const where = m.site ? `[${m.site}] ` : m.step !== undefined ? `step ${m.step}: ` : '';
  const text = m.message || m.detail || m.reason || JSON.stringify(m);
  const extra = m.sites ? ` (sites: ${[].concat(m.sites).join(', ')})` : m.params ? ` (params: ${[].concat(m.params).join(', ')})` : '';
  return `${where}${text}${extra}`;
}

// How the fit ran and ended: the stop rule's reading and whether the compiled fast path
// trained it (with the reason when not), both as the server reported them.
function engineView(d) {
  const stop = d.stop || null;
  const fast = d.fast_path || null;
  const stopText = stop
    ? `${stop.reason === 'converged' ? 'converged' : 'reached the step cap'} at step ${stop.step ?? '—'} (rule: ${stop.rule ?? '—'})`
    : '—';
  const fastText = fast
    ? (fast.taken ? `taken (${fast.particles ?? 1} particle${fast.particles === 1 ? '' : 's'}${fast.compiled ? ', compiled' : ''})`
      : `not taken: ${fast.reason || 'not requested'}`)
    : '—';
  return h('dl', { class: 'meta', id: 'engine-meta' },
    h('dt', {}, 'Stopped'), h('dd', { id: 'stop-reading' }, stopText),
    h('dt', {}, 'Fast path'), h('dd', { id: 'fast-path-reading' }, fastText));
}
