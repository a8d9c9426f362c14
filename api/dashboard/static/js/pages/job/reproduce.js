// curl and Python snippets that resubmit this job (they read the key from
// $VIHUB_API_KEY and never contain it).

import { specOf } from '../../jobinfo.js';
import { curlSnippet, pythonSnippet } from '../../snippets.js';
import { copyText, fill, h } from '../../util.js';
import { section } from './context.js';

// The job body that reproduces `job`: its spec as far as the server returned it.
export function reproduceBody(job) {
  const spec = specOf(job);
  const body = {};
  for (const key of ['model', 'guide', 'inference', 'outputs']) if (spec[key]) body[key] = spec[key];
  if (!body.model) body.model = job.model;
  if (spec.data) body.data = spec.data;
  else if (job.dataset_id) body.data = { dataset_id: job.dataset_id };
  if (Object.keys(job.labels || {}).length) body.labels = job.labels;
  return body;
}

function snippet(id, label, text) {
  const status = h('span', { role: 'status', class: 'muted' });
  return h('div', { class: 'snippet' },
    h('div', { class: 'snippet-head' }, h('h3', { id: `${id}-title` }, label),
      h('button', { type: 'button', class: 'secondary small', id: `copy-${id}`, onClick: async () => {
        try { await copyText(text); status.textContent = 'Copied.'; } catch (error) { status.textContent = `Copy failed: ${error.message}`; }
      } }, `Copy ${label}`), status),
    h('pre', { id: `snippet-${id}`, tabindex: '0', 'aria-labelledby': `${id}-title` }, h('code', {}, text)));
}

export function mount(ctx) {
  const body = h('div', { id: 'reproduce-body' });
  ctx.root.append(section('reproduce', 'Reproduce this job', body));

  function render() {
    const jobBody = reproduceBody(ctx.job);
    const origin = window.location.origin;
    fill(body,
      specOf(ctx.job).guide ? null : h('p', { class: 'muted' }, 'The server did not return this job\'s full spec; the snippets reproduce its model and data with default settings.'),
      h('p', { class: 'muted' }, 'Both read the key from the VIHUB_API_KEY environment variable; neither contains it.'),
      snippet('curl', 'curl', curlSnippet(jobBody, origin)),
      snippet('python', 'Python', pythonSnippet(jobBody, origin)));
  }

  render();
  return ctx.on('spec', render);
}
