// Run settings (steps, seed, device from the server's list, early stopping) and the
// outputs (posterior samples, predictive, trace log-probs; defaults from the server).

import { h } from '../../util.js';
import { check, field, num, optionalNumber, prune, select } from './form.js';

export function mount(ctx) {
  const { devices, outputs } = ctx.caps;
  const outputDefaults = Object.fromEntries(outputs.map((o) => [o.name, o.default]));
  const defaultDevice = devices.includes('cpu') ? 'cpu' : devices[0];
  const steps = num('steps', 1000, { min: 1, step: 1, required: true });
  const seed = num('seed', 0, { min: 0, step: 1 });
  const device = select('device', devices, defaultDevice);
  const stopCheck = check('stop-enabled');
  const relTol = num('stop-rel-tol', 0.0001, { min: 0 });
  const windowInput = num('stop-window', 100, { min: 2, step: 1 });
  const minSteps = num('stop-min-steps', 200, { min: 0, step: 1 });
  const stopFields = h('div', { class: 'options', id: 'stop-fields', hidden: true },
    field('rel_tol', relTol, { pointer: '/inference/stop/rel_tol' }),
    field('window', windowInput, { pointer: '/inference/stop/window' }),
    field('min_steps', minSteps, { pointer: '/inference/stop/min_steps' }));
  const numSamples = num('num-samples', outputDefaults.num_samples, { min: 1, step: 1 });
  const predictive = check('outputs-predictive', Boolean(outputDefaults.predictive));
  const logProbs = check('outputs-log-probs', outputDefaults.log_probs !== false);

  ctx.form.append(
    h('fieldset', {}, h('legend', {}, 'Run'),
      h('div', { class: 'options' },
        field('Steps', steps, { pointer: '/inference/steps' }),
        field('Seed', seed, { pointer: '/inference/seed' }),
        field('Device', device, { pointer: '/inference/device' }),
        field('Stop early when the loss settles', stopCheck, { pointer: '/inference/stop' })),
      stopFields),
    h('fieldset', {}, h('legend', {}, 'Outputs'),
      h('div', { class: 'options' },
        field('Posterior samples', numSamples, { pointer: '/outputs/num_samples' }),
        field('Posterior predictive of observed sites', predictive, { pointer: '/outputs/predictive' }),
        field('Trace log-probs and k-hat', logProbs, { pointer: '/outputs/log_probs' }))));

  function build(body) {
    body.inference = prune({ ...body.inference,
      steps: optionalNumber(steps, '/inference/steps'),
      seed: optionalNumber(seed, '/inference/seed'),
      device: device.value,
      stop: stopCheck.checked ? prune({
        rel_tol: optionalNumber(relTol, '/inference/stop/rel_tol'),
        window: optionalNumber(windowInput, '/inference/stop/window'),
        min_steps: optionalNumber(minSteps, '/inference/stop/min_steps'),
      }) : undefined });
    body.outputs = prune({ num_samples: optionalNumber(numSamples, '/outputs/num_samples'), predictive: predictive.checked, log_probs: logProbs.checked });
  }

  function applySpec(spec) {
    const inf = spec.inference || {};
    seed.value = inf.seed ?? 0;
    device.value = inf.device || defaultDevice;
    stopCheck.checked = Boolean(inf.stop);
    if (inf.stop) {
      relTol.value = inf.stop.rel_tol;
      windowInput.value = inf.stop.window;
      minSteps.value = inf.stop.min_steps;
    }
    const out = spec.outputs || {};
    numSamples.value = out.num_samples ?? outputDefaults.num_samples;
    predictive.checked = Boolean(out.predictive);
    logProbs.checked = out.log_probs !== false;
  }

  const offs = [
    ctx.build(build),
    ctx.on('suggested', (suggested) => { steps.value = suggested?.inference?.steps ?? 1000; }),
    ctx.on('spec', applySpec),
    ctx.on('sync', () => { stopFields.hidden = !stopCheck.checked; }),
  ];
  return () => offs.forEach((off) => off());
}
