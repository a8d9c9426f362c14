// The optimizer from the server's list, with the options each takes (betas, momentum,
// clip_norm / lrd for ClippedAdam, ...), and gradient clipping.

import { choiceNames, choicesTaking, takes } from '../../capabilities.js';
import { h } from '../../util.js';
import { field, FormProblem, list, num, optionalNumber, prune, select, showFor, text } from './form.js';

export function mount(ctx) {
  const { optimizers } = ctx.caps;
  const names = optimizers.names;
  const optSelect = select('optimizer-name', choiceNames(names), optimizers.default);
  const lr = num('optimizer-lr', 0.01, { min: 0 });
  const betas = text('optimizer-betas', '', { placeholder: '0.9, 0.999' });
  const weightDecay = num('optimizer-weight-decay', '', { min: 0 });
  const momentum = num('optimizer-momentum', '', { min: 0 });
  const clipNorm = num('optimizer-clip-norm', '', { min: 0 });
  const lrd = num('optimizer-lrd', '', { min: 0, max: 1 });
  const clipGrad = num('inference-clip-grad-norm', '', { min: 0 });
  const optFields = h('div', { class: 'options' },
    field('lr', lr, { pointer: '/inference/optimizer/lr', showFor: choicesTaking(names, 'lr') }),
    field('betas', betas, { pointer: '/inference/optimizer/betas', showFor: choicesTaking(names, 'betas') }),
    field('weight_decay', weightDecay, { pointer: '/inference/optimizer/weight_decay', showFor: choicesTaking(names, 'weight_decay') }),
    field('momentum', momentum, { pointer: '/inference/optimizer/momentum', showFor: choicesTaking(names, 'momentum') }),
    field('clip_norm', clipNorm, { pointer: '/inference/optimizer/clip_norm', showFor: choicesTaking(names, 'clip_norm') }),
    field('lrd (lr decay per step)', lrd, { pointer: '/inference/optimizer/lrd', showFor: choicesTaking(names, 'lrd') }),
    field('Gradient clipping (max norm)', clipGrad, { pointer: '/inference/clip_grad_norm' }));
  ctx.form.append(h('fieldset', {}, h('legend', {}, 'Optimizer'), field('Optimizer', optSelect, { pointer: '/inference/optimizer/name' }), optFields));

  // A number of this optimizer's `option`, or nothing when it takes no such option.
  const option = (input, name) => (takes(names, optSelect.value, name) ? optionalNumber(input, `/inference/optimizer/${name}`) : undefined);

  function build(body) {
    const name = optSelect.value;
    const betasValue = takes(names, name, 'betas') && betas.value.trim() ? list(betas.value).map(Number) : undefined;
    if (betasValue && (betasValue.length !== 2 || betasValue.some((b) => !Number.isFinite(b)))) {
      throw new FormProblem('/inference/optimizer/betas', 'Two numbers, e.g. 0.9, 0.999.');
    }
    body.inference = prune({ ...body.inference,
      optimizer: prune({
        name,
        lr: optionalNumber(lr, '/inference/optimizer/lr'),
        betas: betasValue,
        weight_decay: option(weightDecay, 'weight_decay'),
        momentum: option(momentum, 'momentum'),
        clip_norm: option(clipNorm, 'clip_norm'),
        lrd: option(lrd, 'lrd'),
      }),
      clip_grad_norm: optionalNumber(clipGrad, '/inference/clip_grad_norm') });
  }

  function applySuggested(suggested) {
    const opt = suggested?.inference?.optimizer;
    optSelect.value = opt?.name || optimizers.default;
    lr.value = opt?.lr ?? 0.01;
  }

  function applySpec(spec) {
    const inf = spec.inference || {};
    const opt = inf.optimizer || {};
    betas.value = Array.isArray(opt.betas) ? opt.betas.join(', ') : '';
    weightDecay.value = opt.weight_decay ?? '';
    momentum.value = opt.momentum ?? '';
    clipNorm.value = opt.clip_norm ?? '';
    lrd.value = opt.lrd ?? '';
    clipGrad.value = inf.clip_grad_norm ?? '';
  }

  const offs = [
    ctx.build(build),
    ctx.on('suggested', applySuggested),
    ctx.on('spec', applySpec),
    ctx.on('sync', () => showFor(optFields, optSelect.value)),
  ];
  return () => offs.forEach((off) => off());
}
