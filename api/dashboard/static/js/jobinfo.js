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
  const { name, options, ...args } = opt;
  return callText(name, { ...args, ...(options || {}) });
}

export function stepsText(job) {
  const p = job.progress || {};
  return `${p.step ?? 0} / ${p.steps ?? '?'}`;
}

function callText(name, args) {
  const parts = Object.entries(args).filter(([, v]) => v !== null && v !== undefined
    && !(Array.isArray(v) && !v.length) && !(typeof v === 'object' && !Array.isArray(v) && !Object.keys(v).length));
  return `${name}(${parts.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')})`;
}

// "AutoNormal(init_scale=0.1) hiding [obs_scale]"; a custom guide by its entry function.
export function guideText(guide) {
  if (!guide) return null;
  if (guide.source) return `custom guide (entry ${guide.entry || 'guide'})`;
  if (guide.list) return `AutoGuideList[${guide.list.map(guideText).join('; ')}]`;
  let text = callText(guide.auto, guide.options || {});
  if (guide.hide?.length) text += ` hiding [${guide.hide.join(', ')}]`;
  if (guide.expose) text += ` exposing [${guide.expose.join(', ')}]`;
  return text;
}

// The ELBO with the options that matter for it (alpha only for RenyiELBO, ...).
export function elboText(elbo) {
  if (!elbo) return null;
  const { name, num_particles: particles, vectorize_particles: vectorize, max_plate_nesting: nesting } = elbo;
  const args = { num_particles: particles, vectorize_particles: vectorize || undefined, max_plate_nesting: nesting };
  if (name === 'RenyiELBO') args.alpha = elbo.alpha;
  if (name === 'TraceTailAdaptive_ELBO') args.tail_adaptive_beta = elbo.tail_adaptive_beta;
  return callText(name, args);
}
