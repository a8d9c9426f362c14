// The guide: an autoguide from the server's list with the options that guide takes
// (init_scale, init_loc_fn, rank, hidden_dim, num_transforms, hide / expose, any other
// option as JSON), or a custom guide written in the model language.

import { choiceNames, choicesTaking, takes } from '../../capabilities.js';
import { h } from '../../util.js';
import { field, list, num, optionalNumber, parseJson, prune, select, showFor, text } from './form.js';

// Options with a field of their own; any other goes in "More options (JSON)".
const OWN_FIELDS = new Set(['init_scale', 'init_loc_fn', 'rank', 'num_transforms', 'hidden_dim']);

export function mount(ctx) {
  const { guides } = ctx.caps;
  const autoNames = choiceNames(guides.auto);
  // The autoguides that take `option` (every autoguide when the server could not say).
  const only = (option) => choicesTaking(guides.auto, option) ?? autoNames;
  const guideSelect = select('guide-name', [...autoNames, ['custom', 'Custom guide (source)']], guides.default);
  const initScale = num('guide-init-scale', '', { min: 0, placeholder: '0.1' });
  const initLoc = select('guide-init-loc', ['', ...(guides.init_loc_fns || [])], '');
  const rank = num('guide-rank', '', { min: 1, step: 1 });
  const hiddenDim = text('guide-hidden-dim', '', { placeholder: 'e.g. 20, 20' });
  const numTransforms = num('guide-num-transforms', '', { min: 1, step: 1 });
  const hideInput = text('guide-hide', '', { placeholder: 'site names, comma separated' });
  const exposeInput = text('guide-expose', '', { placeholder: 'site names, comma separated' });
  const guideExtra = h('textarea', { id: 'guide-extra', rows: 2, class: 'code', spellcheck: 'false', placeholder: '{"init_scale": 0.05}' });
  const guideSource = h('textarea', { id: 'guide-source', rows: 10, class: 'code', spellcheck: 'false' });
  guideSource.value = 'def guide(x, y=None):\n    ...\n';
  const guideSourceView = h('div', { id: 'guide-source-view' });
  const guideFields = h('div', { class: 'options' },
    field('init_scale', initScale, { pointer: '/guide/options/init_scale', showFor: only('init_scale') }),
    field('init_loc_fn', initLoc, { pointer: '/guide/options/init_loc_fn', showFor: only('init_loc_fn') }),
    field('rank', rank, { pointer: '/guide/options/rank', showFor: only('rank') }),
    field('hidden_dim', hiddenDim, { pointer: '/guide/options/hidden_dim', showFor: only('hidden_dim') }),
    field('num_transforms', numTransforms, { pointer: '/guide/options/num_transforms', showFor: only('num_transforms') }),
    field('hide (sites the guide skips)', hideInput, { pointer: '/guide/hide', showFor: autoNames }),
    field('expose (only these sites)', exposeInput, { pointer: '/guide/expose', showFor: autoNames }),
    field('More options (JSON)', guideExtra, { pointer: '/guide/options', showFor: autoNames, help: 'Other constructor arguments of the autoguide.' }),
    field('Guide source', guideSource, { pointer: '/guide/source', showFor: ['custom'] }),
    h('div', { dataset: { showFor: 'custom' } }, guideSourceView));
  ctx.form.append(h('fieldset', {}, h('legend', {}, 'Guide'), field('Guide', guideSelect, { pointer: '/guide/auto' }), guideFields));
  ctx.sources['/guide/source'] = { area: guideSource, view: guideSourceView, active: () => guideSelect.value === 'custom' };

  function build(body) {
    const name = guideSelect.value;
    if (name === 'custom') {
      body.guide = { source: guideSource.value, entry: 'guide' };
      return;
    }
    const extra = parseJson(guideExtra, '/guide/options', 'More options') || {};
    const options = prune({
      ...extra,
      init_scale: takes(guides.auto, name, 'init_scale') ? optionalNumber(initScale, '/guide/options/init_scale') : undefined,
      init_loc_fn: initLoc.value || undefined,
      rank: takes(guides.auto, name, 'rank') ? optionalNumber(rank, '/guide/options/rank') : undefined,
      hidden_dim: takes(guides.auto, name, 'hidden_dim') && hiddenDim.value.trim() ? list(hiddenDim.value).map(Number) : undefined,
      num_transforms: takes(guides.auto, name, 'num_transforms') ? optionalNumber(numTransforms, '/guide/options/num_transforms') : undefined,
    });
    body.guide = prune({ auto: name, options, hide: list(hideInput.value), expose: exposeInput.value.trim() ? list(exposeInput.value) : undefined });
  }

  function applySuggested(suggested) {
    const guide = suggested?.guide || {};
    guideSelect.value = guide.auto || guides.default;
    initScale.value = guide.options?.init_scale ?? '';
    initLoc.value = guide.options?.init_loc_fn ?? '';
    hideInput.value = (guide.hide || []).join(', ');
    exposeInput.value = (guide.expose || []).join(', ');
  }

  function applySpec(spec) {
    if (spec.guide?.source) {
      guideSelect.value = 'custom';
      guideSource.value = spec.guide.source;
    }
    const o = spec.guide?.options || {};
    rank.value = o.rank ?? '';
    numTransforms.value = o.num_transforms ?? '';
    hiddenDim.value = Array.isArray(o.hidden_dim) ? o.hidden_dim.join(', ') : (o.hidden_dim ?? '');
    const extra = Object.fromEntries(Object.entries(o).filter(([k]) => !OWN_FIELDS.has(k)));
    guideExtra.value = Object.keys(extra).length ? JSON.stringify(extra) : '';
  }

  const offs = [
    ctx.build(build),
    ctx.on('suggested', applySuggested),
    ctx.on('spec', applySpec),
    ctx.on('sync', () => showFor(guideFields, guideSelect.value)),
  ];
  return () => offs.forEach((off) => off());
}
