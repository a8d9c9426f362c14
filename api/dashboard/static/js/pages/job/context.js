// What the sections of the job page share: the job as last seen, the page's abort signal,
// the model source and diagnostics once loaded, the server's capabilities, and an event
// bus. Each section module exports `mount(ctx) -> cleanup`; it appends its own elements
// to `ctx.root` and listens for the events it redraws on:
//
//   'job'       the job JSON changed (state, progress, error, spec)
//   'progress'  the job moved on: the loss curve may have grown
//   'finished'  the job reached a final state (once per state; data: the state)
//   'spec'      the run's settings are known (from /diagnostics): redraw what shows them

import { eventBus } from '../../events.js';
import { fill, h } from '../../util.js';

export function jobContext({ root, jobId, job, source, caps, signal }) {
  return {
    ...eventBus(),
    root,
    jobId,
    base: `/v1/jobs/${encodeURIComponent(jobId)}`,
    job,
    source,
    caps,
    signal,
    diagnostics: null,
    // Promises of first loads the page waits for before it goes live.
    ready: [],
    // Set by the header section: a short status line next to the job's actions.
    status: () => {},
  };
}

// A panel with a heading the table of contents can jump to.
export function section(id, title, ...children) {
  return h('section', { id, class: 'panel', 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title` }, title), ...children);
}

// A panel for results, appended to the page, saying when they come; returns its body.
export function resultsPanel(ctx, id, title) {
  const body = h('div', { id: `${id}-body` }, h('p', { class: 'muted' }, 'Available when the job has succeeded.'));
  ctx.root.append(section(id, title, body));
  return body;
}

// Loads a results section when the job succeeds; says why there are none when it ends
// otherwise. Returns the cleanup.
export function onResults(ctx, body, load) {
  return ctx.on('finished', (state) => {
    if (state === 'succeeded') load();
    else fill(body, h('p', { class: 'muted' }, state === 'cancelled' ? 'The job was cancelled: no results.' : 'The job failed: no results.'));
  });
}
