// What the pages show about a job, read from the job JSON defensively: the spec sections
// (guide, ELBO, optimizer) appear in `job.spec` when the server includes them.

export function specOf(job) {
  return job.spec || job.request || {};
}

export function modelName(job) {
  const model = job.model || specOf(job).model || {};
  if (model.catalog) return model.catalog;
  if (model.source) return model.entry && model.entry !== 'model' ? `custom (${model.entry})` : 'custom model';
  return '—';
}

export function guideName(job) {
  const guide = specOf(job).guide || job.guide;
  if (!guide) return '—';
  if (guide.auto) return guide.auto;
  if (guide.source) return `custom (${guide.entry || 'guide'})`;
  if (guide.list) return `AutoGuideList(${guide.list.map((g) => g.auto).join(', ')})`;
  return '—';
}

export function elboName(job) {
  const inference = specOf(job).inference || job.inference;
  return inference?.elbo?.name || '—';
}

export function optimizerText(inference) {
  const opt = inference?.optimizer;
  if (!opt) return '—';
  const args = Object.entries(opt).filter(([k, v]) => k !== 'name' && v !== null && v !== undefined
    && !(typeof v === 'object' && !Array.isArray(v) && !Object.keys(v).length));
  return `${opt.name}(${args.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')})`;
}

export function stepsText(job) {
  const p = job.progress || {};
  return `${p.step ?? 0} / ${p.steps ?? '?'}`;
}
