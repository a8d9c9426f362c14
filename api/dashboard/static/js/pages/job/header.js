// The job page's head: the model name with the state badge, progress (steps, loss,
// rate, ETA), the cancel button, the job's facts, the error with the source line it
// points at, and the table of contents.

import { api } from '../../api.js';
import { sourceView } from '../../highlight.js';
import { elboName, guideName, modelName } from '../../jobinfo.js';
import { announce, fill, fmtDuration, fmtNumber, fmtTime, h, isFinal, jobDuration, stateBadge } from '../../util.js';

const CONTENTS = [['loss', 'Loss'], ['elbo-terms', 'ELBO terms'], ['grad-norms', 'Gradient norms'], ['posterior', 'Posterior'],
  ['diagnostics', 'Diagnostics'], ['spec', 'Spec'], ['downloads', 'Downloads'], ['reproduce', 'Reproduce']];

function problemText(problem) {
  if (!problem) return '';
  return [problem.title, problem.detail].filter(Boolean).join(': ');
}

export function mount(ctx) {
  const title = h('h1', {});
  const meta = h('dl', { class: 'meta' });
  const progressBar = h('progress', { id: 'job-progress', max: 1, value: 0, 'aria-label': 'Steps done' });
  const progressText = h('span', { id: 'progress-text', class: 'num' });
  const cancelButton = h('button', { type: 'button', id: 'cancel-button', class: 'danger', onClick: cancel }, 'Cancel job');
  const actionStatus = h('span', { role: 'status', class: 'muted' });
  const errorBox = h('div', { id: 'job-error' });
  const toc = h('nav', { class: 'toc', 'aria-label': 'On this page' }, h('ul', {},
    CONTENTS.map(([id, text]) => h('li', {}, h('a', { href: `#/jobs/${encodeURIComponent(ctx.jobId)}`, onClick: (e) => {
      e.preventDefault();
      const target = document.getElementById(id);
      target?.scrollIntoView({ block: 'start' });
      target?.querySelector('h2')?.setAttribute('tabindex', '-1');
      target?.querySelector('h2')?.focus({ preventScroll: true });
    } }, text)))));

  ctx.root.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/jobs' }, '← Jobs')),
    h('div', { class: 'page-head' }, title, h('div', { class: 'actions' },
      h('a', { class: 'button secondary', id: 'edit-job', href: `#/new?from=${encodeURIComponent(ctx.jobId)}` }, 'New job from this one'),
      cancelButton, actionStatus)),
    h('div', { class: 'progress-row' }, progressBar, progressText),
    meta, errorBox, toc);
  ctx.status = (text) => { actionStatus.textContent = text; };

  const render = () => renderHead(ctx, { title, meta, progressBar, progressText, cancelButton, errorBox });

  // The answer to a cancel replaces the job as shown; the live stream then reports the end.
  async function cancel() {
    cancelButton.disabled = true;
    actionStatus.textContent = 'Cancelling…';
    try {
      ctx.job = await api.post(`${ctx.base}/cancel`, undefined, { signal: ctx.signal });
      actionStatus.textContent = ctx.job.state === 'cancelled' ? 'Cancelled.' : 'Cancel requested; the worker stops at its next check.';
      announce(actionStatus.textContent);
      render();
    } catch (error) {
      actionStatus.textContent = `Could not cancel: ${error.message}`;
    } finally {
      cancelButton.disabled = false;
    }
  }

  render();
  return ctx.on('job', render);
}

// The head's parts for the job as last seen.
function renderHead(ctx, { title, meta, progressBar, progressText, cancelButton, errorBox }) {
  const { job } = ctx;
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
  fill(errorBox, job.error ? errorView(job, ctx.source) : null);
}

// The job's error, with the source line it points at when the source is known.
function errorView(job, source) {
  const problem = job.error;
  const box = h('div', { class: 'alert error', role: 'alert', id: 'job-error-alert' },
    h('h2', {}, job.state === 'cancelled' ? 'Cancelled' : 'The job failed'),
    h('p', {}, problemText(problem)),
    problem.step !== undefined ? h('p', {}, `At step ${problem.step}.`) : null,
    Array.isArray(problem.sites) && problem.sites.length ? h('p', {}, `Sites involved: ${problem.sites.join(', ')}`) : null);
  if (problem.line && source) {
    box.append(sourceView(source, { error: { line: problem.line, col: problem.col, message: problem.detail || problem.title }, label: 'Model source at the error' }));
  }
  return box;
}
