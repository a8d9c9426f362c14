// The new-job page: one module per section (pages/newjob/*.js, each `mount(ctx) ->
// cleanup`) builds its part of the form and of the job body; the choices (guides, ELBOs,
// optimizers and the options each takes) come from GET /v1/capabilities. Validate runs
// POST /v1/validate and shows its messages inline next to the field (or source line) they
// concern; submit validates first. #/new?from=<job id> starts from an earlier job.

import { api } from '../api.js';
import { capabilities } from '../capabilities.js';
import { cleanupAll } from '../events.js';
import { announce, h } from '../util.js';
import { newJobContext } from './newjob/context.js';
import * as data from './newjob/data.js';
import * as elbo from './newjob/elbo.js';
import { FormProblem } from './newjob/form.js';
import * as guide from './newjob/guide.js';
import * as labels from './newjob/labels.js';
import * as messages from './newjob/messages.js';
import * as model from './newjob/model.js';
import * as optimizer from './newjob/optimizer.js';
import * as run from './newjob/run.js';

// In page order; the job body is built in this order too.
const SECTIONS = [model, guide, elbo, optimizer, run, data, labels, messages];

export async function renderNewJob(root, query) {
  const controller = new AbortController();
  const { signal } = controller;
  let caps;
  try {
    caps = await capabilities();
  } catch (error) {
    root.append(h('h1', {}, 'New job'), h('div', { class: 'alert error', role: 'alert' },
      `Could not load what this server offers (guides, ELBOs, optimizers): ${error.message}`));
    return () => controller.abort();
  }
  const form = h('form', { id: 'new-job-form', class: 'new-job', novalidate: true });
  const ctx = newJobContext({ form, caps, signal, query });
  const cleanups = SECTIONS.map((section) => section.mount(ctx));
  const validateButton = h('button', { type: 'button', id: 'validate-button', class: 'secondary' }, 'Validate');
  const submitButton = h('button', { type: 'submit', id: 'submit-button' }, 'Validate and submit');
  form.append(h('div', { class: 'actions' }, validateButton, submitButton));
  root.append(h('h1', {}, 'New job'), form);
  validateButton.addEventListener('click', async () => {
    validateButton.disabled = true;
    try { await validate(ctx); } finally { validateButton.disabled = false; }
  });
  form.addEventListener('submit', (e) => submit(ctx, e, submitButton));
  form.addEventListener('change', () => ctx.emit('sync'));
  const cleanup = () => {
    controller.abort();
    cleanupAll(cleanups);
  };
  ctx.emit('sync');
  await Promise.all(ctx.ready);
  if (query.get('from')) await loadFrom(ctx, query.get('from'));
  ctx.emit('sync');
  return cleanup;
}


// The body, checked by the server's validation pass; null (with the problem shown) if not.
async function validate(ctx) {
  const say = ctx.messages;
  say.clearErrors();
  let body;
  try {
    body = ctx.buildBody();
  } catch (error) {
    if (!(error instanceof FormProblem)) throw error;
    say.setFieldError(error.pointer, error.message);
    say.note(h('div', { class: 'alert error', role: 'alert', id: 'problem' }, error.message));
    say.firstInvalid()?.focus();
    return null;
  }
  say.note(h('p', { class: 'muted' }, 'Validating…'));
  try {
    const result = await api.post('/v1/validate', body, { signal: ctx.signal });
    say.clear();
    say.showReport(result);
    return body;
  } catch (error) {
    if (ctx.signal.aborted) return null;
    say.clear();
    say.showProblem(error);
    say.firstInvalid()?.focus();
    return null;
  }
}

// Validates, then submits a valid body (with an Idempotency-Key, so a retried POST makes one job).
async function submit(ctx, e, submitButton) {
  const say = ctx.messages;
  e.preventDefault();
  submitButton.disabled = true;
  try {
    const body = await validate(ctx);
    if (!body) return;
    say.note(h('p', { class: 'muted' }, 'Submitting…'));
    try {
      const job = await api.post('/v1/jobs', body, { signal: ctx.signal, headers: { 'Idempotency-Key': crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) } });
      announce('Job submitted');
      window.location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (error) {
      if (ctx.signal.aborted) return;
      say.clear();
      say.showProblem(error);
      say.firstInvalid()?.focus();
    }
  } finally {
    submitButton.disabled = false;
  }
}

// #/new?from=<job id>: start from an earlier job's spec (its model, data, labels, and
// its settings when the server returns them).
async function loadFrom(ctx, jobId) {
  const { messages: say, signal } = ctx;
  const base = `/v1/jobs/${encodeURIComponent(jobId)}`;
  let job;
  try {
    job = await api.get(base, { signal });
  } catch (error) {
    if (!signal.aborted) say.note(h('p', { class: 'alert error', role: 'alert' }, `Could not load job ${jobId}: ${error.message}`));
    return;
  }
  let spec = job.spec || null;
  if (!spec && job.state === 'succeeded') {
    try {
      spec = (await api.get(`${base}/diagnostics`, { signal })).meta?.settings || null;
    } catch {
      spec = null;
    }
  }
  await ctx.setModel(job.model || spec?.model || {});
  if (spec) {
    ctx.emit('suggested', { guide: spec.guide?.auto ? spec.guide : undefined, inference: spec.inference });
    ctx.emit('spec', spec);
  }
  ctx.emit('from-job', { job, spec });
  ctx.emit('sync');
  say.note(h('p', { class: 'muted', id: 'from-job' }, `Started from job ${job.id}${spec ? '' : ' (its guide and inference settings are not available; defaults shown)'}.`));
}

