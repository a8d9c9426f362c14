// Turns the per-step records of /loss into chart series. The engine writes
// `elbo_terms` as [{step, elbo, reconstruction: {site: v}, kl: {site: v}}] and
// `grad_norms` as [{step, norms: {param: v}}]; a column form {steps: [...], name: [...]}
// is read too, so a server that reshapes the records still draws.

// Record members that are bookkeeping, not a quantity over steps.
const NOT_SERIES = new Set(['step', 'steps', 'num_particles']);

function leaves(obj, prefix, out) {
  for (const [key, value] of Object.entries(obj || {})) {
    if (NOT_SERIES.has(key)) continue;
    const name = prefix ? `${prefix}/${key}` : key;
    if (typeof value === 'number' || value === null) out.push([name, value]);
    else if (value && typeof value === 'object' && !Array.isArray(value)) leaves(value, name, out);
  }
  return out;
}

function fromRecords(records) {
  const byName = new Map();
  for (const record of records) {
    if (!record || typeof record !== 'object') continue;
    const step = Number(record.step ?? record.steps);
    for (const [name, value] of leaves(record, '', [])) {
      if (!byName.has(name)) byName.set(name, []);
      byName.get(name).push([step, value === null ? NaN : value]);
    }
  }
  return [...byName].map(([name, points]) => ({ name, points }));
}

function fromColumns(record, prefix = '') {
  const steps = Array.isArray(record.steps) ? record.steps : Array.isArray(record.step) ? record.step : null;
  const out = [];
  for (const [key, value] of Object.entries(record)) {
    if (key === 'steps' || key === 'step') continue;
    const name = prefix ? `${prefix}/${key}` : key;
    if (steps && Array.isArray(value) && value.length === steps.length && value.every((v) => typeof v === 'number' || v === null)) {
      out.push({ name, points: steps.map((s, i) => [s, value[i] ?? NaN]) });
    } else if (value && typeof value === 'object' && !Array.isArray(value)) {
      out.push(...fromColumns(steps ? { steps, ...value } : value, name));
    }
  }
  return out;
}

export function seriesFrom(data) {
  if (!data) return [];
  if (Array.isArray(data)) return fromRecords(data);
  if (typeof data === 'object') return fromColumns(data);
  return [];
}

// Display names: "kl/mu" -> "KL mu", "reconstruction/obs" -> "reconstruction obs",
// "norms/AutoNormal.locs.mu" -> "AutoNormal.locs.mu".
export function prettySeriesName(name) {
  return name
    .replace(/^norms\//, '')
    .replace(/^kl\//, 'KL ')
    .replace(/^reconstruction\//, 'reconstruction ')
    .replace(/^elbo$/, 'ELBO (total)');
}

export function lossPoints(body) {
  const steps = body?.steps || [];
  const loss = body?.loss || [];
  return steps.map((s, i) => [s, loss[i] === null || loss[i] === undefined ? NaN : loss[i]]);
}
