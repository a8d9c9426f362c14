// Downloads of every result in every format the server offers for it (the list comes
// from GET /v1/capabilities), fetched with the key.

import { download } from '../../api.js';
import { announce, fill, h } from '../../util.js';
import { section } from './context.js';

// How the page names each result resource; one the server adds later shows by its name.
const LABELS = {
  params: 'Parameters', samples: 'Posterior samples', 'log-probs': 'Log-probs', loss: 'Loss curve', summary: 'Summary', diagnostics: 'Diagnostics',
};
// The loss curve grows while the job runs (docs/api.md, Result formats): readable at once.
const LIVE = new Set(['loss']);

export function mount(ctx) {
  const body = h('div', { id: 'downloads-body' });
  ctx.root.append(section('downloads', 'Downloads', body));

  function render() {
    const results = ctx.caps?.results;
    if (!results) {
      fill(body, h('p', { class: 'alert error', role: 'alert' }, 'Could not load the list of downloads from the server; reload the page to try again.'));
      return;
    }
    const extension = Object.fromEntries((ctx.caps.formats || []).map((f) => [f.name, f.extension]));
    const ready = ctx.job.state === 'succeeded';
    fill(body,
      ready ? null : h('p', { class: 'muted' }, 'Results can be downloaded once the job has succeeded; the loss curve is available now.'),
      h('table', { class: 'downloads' }, h('tbody', {}, results.map((r) => {
        const label = LABELS[r.name] || r.name;
        return h('tr', {}, h('th', { scope: 'row' }, label), h('td', {}, r.formats.map((fmt) => h('button', {
          type: 'button', class: 'secondary small', disabled: !(ready || LIVE.has(r.name)),
          dataset: { download: `${r.name}.${fmt}` }, 'aria-label': `Download ${label.toLowerCase()} as ${fmt}`,
          onClick: (e) => save(e.currentTarget, r.name, `${ctx.jobId}-${r.name}.${extension[fmt] || fmt}`, fmt),
        }, fmt))));
      }))));
  }

  async function save(button, resource, fallbackName, fmt) {
    button.disabled = true;
    try {
      const file = await download(`${ctx.base}/${resource}`, fallbackName, { query: { format: fmt } });
      announce(`Downloaded ${file.name} (${file.size} bytes)`);
      button.dataset.downloaded = String(file.size);
    } catch (error) {
      announce(`Download failed: ${error.message}`);
      ctx.status(`Download failed: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  render();
  return ctx.on('finished', render);
}
