// The ELBO from the server's list, with its options (alpha only where the server says
// RenyiELBO takes it, tail_adaptive_beta for TraceTailAdaptive_ELBO, ...).

import { choiceNames, choicesTaking, takes } from '../../capabilities.js';
import { h } from '../../util.js';
import { check, field, num, optionalNumber, prune, select, showFor } from './form.js';

export function mount(ctx) {
  const { elbos } = ctx.caps;
  const elboSelect = select('elbo-name', choiceNames(elbos.names), elbos.default);
  const particles = num('elbo-num-particles', 1, { min: 1, step: 1 });
  const vectorize = check('elbo-vectorize');
  const plateNesting = num('elbo-max-plate-nesting', '', { min: 0, step: 1, placeholder: 'inferred' });
  const alpha = num('elbo-alpha', 0);
  const tailBeta = num('elbo-tail-beta', -1, { max: 0 });
  const elboFields = h('div', { class: 'options' },
    field('num_particles', particles, { pointer: '/inference/elbo/num_particles', showFor: choicesTaking(elbos.names, 'num_particles') }),
    field('vectorize_particles', vectorize, { pointer: '/inference/elbo/vectorize_particles', showFor: choicesTaking(elbos.names, 'vectorize_particles') }),
    field('max_plate_nesting', plateNesting, { pointer: '/inference/elbo/max_plate_nesting', help: 'Empty: inferred from the model.', showFor: choicesTaking(elbos.names, 'max_plate_nesting') }),
    field('alpha', alpha, { pointer: '/inference/elbo/alpha', showFor: choicesTaking(elbos.names, 'alpha') }),
    field('tail_adaptive_beta', tailBeta, { pointer: '/inference/elbo/tail_adaptive_beta', showFor: choicesTaking(elbos.names, 'tail_adaptive_beta') }));
  ctx.form.append(h('fieldset', {}, h('legend', {}, 'ELBO'), field('ELBO', elboSelect, { pointer: '/inference/elbo/name' }), elboFields));

  function build(body) {
    const name = elboSelect.value;
    body.inference = { ...body.inference,
      elbo: prune({
        name,
        num_particles: optionalNumber(particles, '/inference/elbo/num_particles'),
        vectorize_particles: vectorize.checked,
        max_plate_nesting: optionalNumber(plateNesting, '/inference/elbo/max_plate_nesting'),
        alpha: takes(elbos.names, name, 'alpha') ? optionalNumber(alpha, '/inference/elbo/alpha') : undefined,
        tail_adaptive_beta: takes(elbos.names, name, 'tail_adaptive_beta') ? optionalNumber(tailBeta, '/inference/elbo/tail_adaptive_beta') : undefined,
      }) };
  }

  function applySuggested(suggested) {
    const elbo = suggested?.inference?.elbo;
    elboSelect.value = elbo?.name || elbos.default;
    particles.value = elbo?.num_particles ?? 1;
    vectorize.checked = Boolean(elbo?.vectorize_particles);
    plateNesting.value = elbo?.max_plate_nesting ?? '';
  }

  function applySpec(spec) {
    alpha.value = spec.inference?.elbo?.alpha ?? 0;
    tailBeta.value = spec.inference?.elbo?.tail_adaptive_beta ?? -1;
  }

  const offs = [
    ctx.build(build),
    ctx.on('suggested', applySuggested),
    ctx.on('spec', applySpec),
    ctx.on('sync', () => showFor(elboFields, elboSelect.value)),
  ];
  return () => offs.forEach((off) => off());
}
