// The job's spec: model, guide, ELBO, optimizer and run settings (the run's own settings
// once /diagnostics has them), the data fields with their shapes, and the model source.

import { api } from '../../api.js';
import { sourceView } from '../../highlight.js';
import { elboName, elboText, guideName, guideText, modelName, optimizerText, specOf } from '../../jobinfo.js';
import { fill, flatten, fmtShape, h, shapeOf } from '../../util.js';
import { section } from './context.js';

export function mount(ctx) {
  const body = h('div', { id: 'spec-body' });
  ctx.root.append(section('spec', 'Spec', body));

  async function dataFields() {
    const { job } = ctx;
    if (job.dataset_id) {
      try {
        const ds = await api.get(`/v1/datasets/${encodeURIComponent(job.dataset_id)}`, { signal: ctx.signal });
        return { origin: `dataset ${ds.name || ds.id}`, fields: ds.fields.map((f) => [f.name, fmtShape(f.shape), f.dtype]) };
      } catch {
        return { origin: `dataset ${job.dataset_id}`, fields: [] };
      }
    }
    const inline = specOf(job).data?.inline;
    if (inline) return { origin: 'inline', fields: Object.entries(inline).map(([k, v]) => [k, fmtShape(shapeOf(v)), typeof flatten(v)[0]]) };
    return { origin: job.model?.catalog ? 'the catalog example data' : 'unknown', fields: [] };
  }

  async function render() {
    const { job, source } = ctx;
    const spec = specOf(job);
    const settings = ctx.diagnostics?.meta?.settings || {};
    const inference = spec.inference || settings.inference || settings;
    const guide = spec.guide || settings.guide;
    const { origin, fields } = await dataFields();
    if (ctx.signal.aborted) return;
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
    fill(body,
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

  render();
  return ctx.on('spec', render);
}

// The model source: in the job for pasted source, from the catalog for a catalog model.
export async function loadSource(job, { signal }) {
  const model = job.model || specOf(job).model || {};
  if (model.source) return model.source;
  if (!model.catalog) return null;
  try {
    return (await api.get(`/v1/catalog/${encodeURIComponent(model.catalog)}`, { signal })).source;
  } catch {
    return null;
  }
}
