// The model: a catalog model (its description, source and suggested settings) or pasted
// source in the model language with its entry function.

import { api } from '../../api.js';
import { sourceView } from '../../highlight.js';
import { fill, h } from '../../util.js';
import { field, FormProblem, text } from './form.js';

const DEFAULT_SOURCE = `import pyro
import pyro.distributions as dist


def model(x, y=None):
    slope = pyro.sample("slope", dist.Normal(0.0, 10.0))
    intercept = pyro.sample("intercept", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(5.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(intercept + slope * x, sigma), obs=y)
`;
const PREFERRED_CATALOG_MODEL = 'eight_schools_noncentered';

// The fieldset's elements: the catalog / source radios, the catalog block and the source block.
function modelView() {
  const v = {
    kindCatalog: h('input', { type: 'radio', name: 'model-kind', id: 'model-kind-catalog', value: 'catalog', checked: true }),
    kindSource: h('input', { type: 'radio', name: 'model-kind', id: 'model-kind-source', value: 'source' }),
    catalogSelect: h('select', { id: 'catalog-model' }),
    catalogInfo: h('div', { id: 'catalog-info', class: 'catalog-info' }),
    sourceArea: h('textarea', { id: 'model-source', rows: 14, spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', class: 'code' }),
    entryInput: text('model-entry', 'model'),
    sourceError: h('div', { id: 'model-source-view' }),
  };
  v.sourceArea.value = DEFAULT_SOURCE;
  v.catalogBlock = h('div', { id: 'catalog-block' }, field('Catalog model', v.catalogSelect, { pointer: '/model/catalog' }), v.catalogInfo);
  v.sourceBlock = h('div', { id: 'source-block', hidden: true },
    field('Model source (the Pyro model language)', v.sourceArea, { pointer: '/model/source', help: 'A Pyro model function; imports of pyro, torch and pyro.distributions are accepted.' }),
    v.sourceError,
    field('Entry function', v.entryInput, { pointer: '/model/entry' }));
  v.fieldset = h('fieldset', {}, h('legend', {}, 'Model'),
    h('div', { class: 'radios', role: 'radiogroup', 'aria-label': 'Model from' },
      h('label', { class: 'radio', for: 'model-kind-catalog' }, v.kindCatalog, ' Catalog model'),
      h('label', { class: 'radio', for: 'model-kind-source' }, v.kindSource, ' My own source')),
    v.catalogBlock, v.sourceBlock);
  return v;
}

export function mount(ctx) {
  const { signal } = ctx;
  const v = modelView();
  const { kindCatalog, kindSource, catalogSelect, catalogInfo, sourceArea, entryInput, sourceError, catalogBlock, sourceBlock } = v;
  ctx.form.append(v.fieldset);

  ctx.modelKind = () => (kindSource.checked ? 'source' : 'catalog');
  ctx.sources['/model/source'] = { area: sourceArea, view: sourceError, active: () => ctx.modelKind() === 'source' };
  if (ctx.query.get('source') === '1') kindSource.checked = true;

  async function loadCatalogEntry(name) {
    fill(catalogInfo, h('p', { class: 'muted' }, 'Loading…'));
    let entry;
    try {
      entry = await api.get(`/v1/catalog/${encodeURIComponent(name)}`, { signal });
    } catch (error) {
      if (!signal.aborted) fill(catalogInfo, h('p', { class: 'alert error', role: 'alert' }, `Could not load ${name}: ${error.message}`));
      return;
    }
    ctx.emit('suggested', entry.suggested);
    fill(catalogInfo,
      h('p', {}, entry.description.split('\n\n')[0]),
      h('details', {}, h('summary', {}, 'Source'), sourceView(entry.source, { label: `Source of ${name}` })));
    ctx.emit('catalog-entry', entry);
    ctx.emit('sync');
  }

  async function loadCatalog() {
    let catalog;
    try {
      catalog = (await api.get('/v1/catalog', { signal })).items || [];
    } catch (error) {
      if (!signal.aborted) fill(catalogInfo, h('p', { class: 'alert error', role: 'alert' }, `Could not load the catalog: ${error.message}`));
      return;
    }
    fill(catalogSelect, ...catalog.map((c) => h('option', { value: c.name }, c.name)));
    const wanted = ctx.query.get('catalog');
    const first = catalog.find((c) => c.name === wanted) || catalog.find((c) => c.name === PREFERRED_CATALOG_MODEL) || catalog[0];
    if (first) {
      catalogSelect.value = first.name;
      await loadCatalogEntry(first.name);
    }
  }

  // An earlier job's model: its catalog entry (with that entry's suggestions) or its source.
  ctx.setModel = async (model) => {
    if (model.catalog) {
      kindCatalog.checked = true;
      catalogSelect.value = model.catalog;
      await loadCatalogEntry(model.catalog);
    } else if (model.source) {
      kindSource.checked = true;
      sourceArea.value = model.source;
      entryInput.value = model.entry || 'model';
    }
  };

  catalogSelect.addEventListener('change', () => loadCatalogEntry(catalogSelect.value));
  ctx.ready.push(loadCatalog());
  const offs = [
    ctx.on('sync', () => {
      catalogBlock.hidden = ctx.modelKind() !== 'catalog';
      sourceBlock.hidden = ctx.modelKind() !== 'source';
    }),
    ctx.build((body) => {
      if (ctx.modelKind() === 'source' && !sourceArea.value.trim()) throw new FormProblem('/model/source', 'Paste a model.');
      body.model = ctx.modelKind() === 'catalog' ? { catalog: catalogSelect.value } : { source: sourceArea.value, entry: entryInput.value.trim() || 'model' };
    }),
  ];
  return () => offs.forEach((off) => off());
}
