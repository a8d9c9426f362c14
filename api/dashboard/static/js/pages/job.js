// The job page: loads the job, mounts one module per section (pages/job/*.js, each
// `mount(ctx) -> cleanup`), follows the job live over SSE until it ends and tells the
// sections when it moved on or finished. Navigating away aborts every request and
// stream and runs every section's cleanup.

import { api, ApiError, followJob } from '../api.js';
import { capabilities } from '../capabilities.js';
import { announce, h, isFinal } from '../util.js';
import { cleanupAll } from '../events.js';
import { jobContext } from './job/context.js';
import * as diagnostics from './job/diagnostics.js';
import * as downloads from './job/downloads.js';
import * as header from './job/header.js';
import * as loss from './job/loss.js';
import * as posterior from './job/posterior.js';
import * as ppc from './job/ppc.js';
import * as reproduce from './job/reproduce.js';
import * as spec from './job/spec.js';

// In page order.
const SECTIONS = [header, loss, posterior, ppc, diagnostics, spec, downloads, reproduce];

export async function renderJob(root, jobId) {
  const controller = new AbortController();
  const { signal } = controller;
  let job;
  try {
    job = await api.get(`/v1/jobs/${encodeURIComponent(jobId)}`, { signal });
  } catch (error) {
    root.append(h('h1', {}, 'Job'), h('div', { class: 'alert error', role: 'alert' },
      error instanceof ApiError && error.status === 404 ? `There is no job ${jobId} in this account.` : `Could not load job ${jobId}: ${error.message}`),
    h('p', {}, h('a', { href: '#/jobs' }, 'Back to the jobs')));
    return () => controller.abort();
  }
  // Without the capabilities only the downloads are missing; the section says so.
  const [source, caps] = await Promise.all([spec.loadSource(job, { signal }), capabilities().catch(() => null)]);
  const ctx = jobContext({ root, jobId, job, source, caps, signal });
  const cleanups = SECTIONS.map((section) => section.mount(ctx));
  const cleanup = () => {
    controller.abort();
    cleanupAll(cleanups);
  };
  await Promise.all(ctx.ready);

  let resultsShownFor = null;
  function finished() {
    if (resultsShownFor === ctx.job.state) return;
    resultsShownFor = ctx.job.state;
    announce(`Job ${ctx.job.state}`);
    ctx.emit('finished', ctx.job.state);
  }

  function onJob(next) {
    const wasFinal = isFinal(ctx.job.state);
    ctx.job = { ...ctx.job, ...next };
    ctx.emit('job');
    if (isFinal(ctx.job.state) && (!wasFinal || resultsShownFor !== ctx.job.state)) finished();
  }

  function onUpdate(update) {
    if (update.type === 'job' || update.type === 'state') {
      onJob(update.data);
    } else if (update.type === 'progress') {
      ctx.job = { ...ctx.job, state: update.data.state || ctx.job.state, progress: { ...ctx.job.progress, ...update.data } };
      ctx.emit('job');
      ctx.emit('progress');
    } else if (update.type === 'end') {
      ctx.job = { ...ctx.job, state: update.data.state, error: update.data.error ?? ctx.job.error };
    }
    if (update.type === 'job' && !isFinal(update.data.state)) ctx.emit('progress');
  }

  if (isFinal(ctx.job.state)) {
    finished();
  } else {
    followJob(jobId, onUpdate, { signal }).then((final) => { if (final) onJob(final); }).catch((error) => {
      if (!signal.aborted) ctx.status(`Live updates stopped: ${error.message}`);
    });
  }
  return cleanup;
}
