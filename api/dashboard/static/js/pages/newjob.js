// The new-job page: a catalog model or pasted source; guide, ELBO and optimizer with the
// options each takes; data from the catalog example, pasted JSON, an uploaded file or an
// existing dataset; POST /v1/validate before submitting, its messages shown inline next
// to the field (or source line) they concern.

import { api, ApiError } from '../api.js';
import { sourceView, withoutPosition } from '../highlight.js';
import { announce, clear, fill, fmtShape, h, uid } from '../util.js';

const AUTOGUIDES = ['AutoNormal', 'AutoDelta', 'AutoDiagonalNormal', 'AutoMultivariateNormal', 'AutoLowRankMultivariateNormal',
  'AutoLaplaceApproximation', 'AutoIAFNormal', 'AutoStructured', 'AutoNormalMessenger', 'AutoHierarchicalNormalMessenger', 'AutoGaussian'];
const ELBOS = ['Trace_ELBO', 'TraceMeanField_ELBO', 'TraceEnum_ELBO', 'TraceGraph_ELBO', 'RenyiELBO', 'TraceTailAdaptive_ELBO',
  'JitTrace_ELBO', 'JitTraceMeanField_ELBO', 'JitTraceEnum_ELBO', 'JitTraceGraph_ELBO'];
const OPTIMIZERS = ['Adam', 'ClippedAdam', 'AdamW', 'SGD', 'RMSprop', 'Adagrad', 'Adadelta', 'Adamax', 'NAdam', 'RAdam'];
const INIT_LOC_FNS = ['', 'init_to_median', 'init_to_mean', 'init_to_sample', 'init_to_feasible', 'init_to_uniform'];
const SCALE_GUIDES = ['AutoNormal', 'AutoDiagonalNormal', 'AutoMultivariateNormal', 'AutoLowRankMultivariateNormal', 'AutoNormalMessenger', 'AutoHierarchicalNormalMessenger'];
const BETAS_OPTIMIZERS = ['Adam', 'ClippedAdam', 'AdamW', 'Adamax', 'NAdam', 'RAdam'];

const DEFAULT_SOURCE = `import pyro
import pyro.distributions as dist


def model(x, y=None):
    slope = pyro.sample("slope", dist.Normal(0.0, 10.0))
    intercept = pyro.sample("intercept", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(5.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(intercept + slope * x, sigma), obs=y)
`;
const DEFAULT_DATA = '{\n  "x": [0.0, 1.0, 2.0, 3.0, 4.0],\n  "y": [0.9, 3.1, 5.0, 7.2, 8.8]\n}';

// A labelled control with a slot for its inline error. `pointer` ties it to problem+json
// pointers; `showFor` lists the choices (guide / ELBO / optimizer names) it applies to.
function field(label, control, { help, pointer, showFor, id } = {}) {
  const controlId = id || control.id || uid('f');
  control.id = controlId;
  const helpId = help ? `${controlId}-help` : null;
  const errorId = `${controlId}-error`;
  control.setAttribute('aria-describedby', [helpId, errorId].filter(Boolean).join(' '));
  const wrapper = h('div', { class: 'field', dataset: { pointer: pointer || '', showFor: showFor ? showFor.join(' ') : '' } },
    control.type === 'checkbox'
      ? h('label', { for: controlId, class: 'checkbox' }, control, ` ${label}`)
      : [h('label', { for: controlId }, label), control],
    help ? h('small', { id: helpId }, help) : null,
    h('div', { class: 'field-error', id: errorId, role: 'alert' }));
  return wrapper;
}

const num = (id, value, attrs = {}) => h('input', { id, type: 'number', step: 'any', value: value ?? '', inputmode: 'decimal', ...attrs });
const text = (id, value = '', attrs = {}) => h('input', { id, type: 'text', value, autocomplete: 'off', spellcheck: 'false', ...attrs });
const select = (id, options, value) => h('select', { id }, options.map((o) => {
  const [v, t] = Array.isArray(o) ? o : [o, o || '(default)'];
  return h('option', { value: v, selected: v === value }, t);
}));
const check = (id, checked = false) => h('input', { id, type: 'checkbox', checked });

export async function renderNewJob(root, query) {
  const controller = new AbortController();
  const { signal } = controller;
  let catalog = [];
  let catalogEntry = null;
  let uploadedDataset = null;

  // ---- model ---------------------------------------------------------------------------
  const kindCatalog = h('input', { type: 'radio', name: 'model-kind', id: 'model-kind-catalog', value: 'catalog', checked: true });
  const kindSource = h('input', { type: 'radio', name: 'model-kind', id: 'model-kind-source', value: 'source' });
  const catalogSelect = h('select', { id: 'catalog-model' });
  const catalogInfo = h('div', { id: 'catalog-info', class: 'catalog-info' });
  const sourceArea = h('textarea', { id: 'model-source', rows: 14, spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', class: 'code' });
  sourceArea.value = DEFAULT_SOURCE;
  const entryInput = text('model-entry', 'model');
  const sourceError = h('div', { id: 'model-source-view' });
  const catalogBlock = h('div', { id: 'catalog-block' }, field('Catalog model', catalogSelect, { pointer: '/model/catalog' }), catalogInfo);
  const sourceBlock = h('div', { id: 'source-block', hidden: true },
    field('Model source (the Pyro model language)', sourceArea, { pointer: '/model/source', help: 'A Pyro model function; imports of pyro, torch and pyro.distributions are accepted.' }),
    sourceError,
    field('Entry function', entryInput, { pointer: '/model/entry' }));

  // ---- guide -----------------------------------------------------------------------------
  const guideSelect = select('guide-name', [...AUTOGUIDES, ['custom', 'Custom guide (source)']], 'AutoNormal');
  const initScale = num('guide-init-scale', '', { min: 0, placeholder: '0.1' });
  const initLoc = select('guide-init-loc', INIT_LOC_FNS, '');
  const rank = num('guide-rank', '', { min: 1, step: 1 });
  const hiddenDim = text('guide-hidden-dim', '', { placeholder: 'e.g. 20, 20' });
  const numTransforms = num('guide-num-transforms', '', { min: 1, step: 1 });
  const hideInput = text('guide-hide', '', { placeholder: 'site names, comma separated' });
  const exposeInput = text('guide-expose', '', { placeholder: 'site names, comma separated' });
  const guideExtra = h('textarea', { id: 'guide-extra', rows: 2, class: 'code', spellcheck: 'false', placeholder: '{"init_scale": 0.05}' });
  const guideSource = h('textarea', { id: 'guide-source', rows: 10, class: 'code', spellcheck: 'false' });
  guideSource.value = 'def guide(x, y=None):\n    ...\n';
  const guideSourceView = h('div', { id: 'guide-source-view' });
  const autoOnly = AUTOGUIDES;
  const guideFields = h('div', { class: 'options' },
    field('init_scale', initScale, { pointer: '/guide/options/init_scale', showFor: SCALE_GUIDES }),
    field('init_loc_fn', initLoc, { pointer: '/guide/options/init_loc_fn', showFor: autoOnly }),
    field('rank', rank, { pointer: '/guide/options/rank', showFor: ['AutoLowRankMultivariateNormal'] }),
    field('hidden_dim', hiddenDim, { pointer: '/guide/options/hidden_dim', showFor: ['AutoIAFNormal'] }),
    field('num_transforms', numTransforms, { pointer: '/guide/options/num_transforms', showFor: ['AutoIAFNormal'] }),
    field('hide (sites the guide skips)', hideInput, { pointer: '/guide/hide', showFor: autoOnly }),
    field('expose (only these sites)', exposeInput, { pointer: '/guide/expose', showFor: autoOnly }),
    field('More options (JSON)', guideExtra, { pointer: '/guide/options', showFor: autoOnly, help: 'Other constructor arguments of the autoguide.' }),
    field('Guide source', guideSource, { pointer: '/guide/source', showFor: ['custom'] }),
    h('div', { dataset: { showFor: 'custom' } }, guideSourceView));

  // ---- ELBO --------------------------------------------------------------------------------
  const elboSelect = select('elbo-name', ELBOS, 'Trace_ELBO');
  const particles = num('elbo-num-particles', 1, { min: 1, step: 1 });
  const vectorize = check('elbo-vectorize');
  const plateNesting = num('elbo-max-plate-nesting', '', { min: 0, step: 1, placeholder: 'inferred' });
  const alpha = num('elbo-alpha', 0);
  const tailBeta = num('elbo-tail-beta', -1, { max: 0 });
  const elboFields = h('div', { class: 'options' },
    field('num_particles', particles, { pointer: '/inference/elbo/num_particles' }),
    field('vectorize_particles', vectorize, { pointer: '/inference/elbo/vectorize_particles' }),
    field('max_plate_nesting', plateNesting, { pointer: '/inference/elbo/max_plate_nesting', help: 'Empty: inferred from the model.' }),
    field('alpha', alpha, { pointer: '/inference/elbo/alpha', showFor: ['RenyiELBO'] }),
    field('tail_adaptive_beta', tailBeta, { pointer: '/inference/elbo/tail_adaptive_beta', showFor: ['TraceTailAdaptive_ELBO'] }));

  // ---- optimizer -------------------------------------------------------------------------------
  const optSelect = select('optimizer-name', OPTIMIZERS, 'Adam');
  const lr = num('optimizer-lr', 0.01, { min: 0 });
  const betas = text('optimizer-betas', '', { placeholder: '0.9, 0.999' });
  const weightDecay = num('optimizer-weight-decay', '', { min: 0 });
  const momentum = num('optimizer-momentum', '', { min: 0 });
  const clipNorm = num('optimizer-clip-norm', '', { min: 0 });
  const lrd = num('optimizer-lrd', '', { min: 0, max: 1 });
  const clipGrad = num('inference-clip-grad-norm', '', { min: 0 });
  const optFields = h('div', { class: 'options' },
    field('lr', lr, { pointer: '/inference/optimizer/lr' }),
    field('betas', betas, { pointer: '/inference/optimizer/betas', showFor: BETAS_OPTIMIZERS }),
    field('weight_decay', weightDecay, { pointer: '/inference/optimizer/weight_decay' }),
    field('momentum', momentum, { pointer: '/inference/optimizer/momentum', showFor: ['SGD', 'RMSprop'] }),
    field('clip_norm', clipNorm, { pointer: '/inference/optimizer/clip_norm', showFor: ['ClippedAdam'] }),
    field('lrd (lr decay per step)', lrd, { pointer: '/inference/optimizer/lrd', showFor: ['ClippedAdam'] }),
    field('Gradient clipping (max norm)', clipGrad, { pointer: '/inference/clip_grad_norm' }));

  // ---- run and outputs -----------------------------------------------------------------------------
  const steps = num('steps', 1000, { min: 1, step: 1, required: true });
  const seed = num('seed', 0, { min: 0, step: 1 });
  const device = select('device', ['cpu', 'cuda', 'auto'], 'cpu');
  const stopCheck = check('stop-enabled');
  const relTol = num('stop-rel-tol', 0.0001, { min: 0 });
  const windowInput = num('stop-window', 100, { min: 2, step: 1 });
  const minSteps = num('stop-min-steps', 200, { min: 0, step: 1 });
  const stopFields = h('div', { class: 'options', id: 'stop-fields', hidden: true },
    field('rel_tol', relTol, { pointer: '/inference/stop/rel_tol' }),
    field('window', windowInput, { pointer: '/inference/stop/window' }),
    field('min_steps', minSteps, { pointer: '/inference/stop/min_steps' }));
  const numSamples = num('num-samples', 1000, { min: 1, step: 1 });
  const predictive = check('outputs-predictive');
  const logProbs = check('outputs-log-probs', true);

  // ---- data ------------------------------------------------------------------------------------------
  const dataKinds = [['example', 'Catalog example data'], ['inline', 'Paste JSON'], ['upload', 'Upload a file'], ['existing', 'Existing dataset']];
  const dataRadios = dataKinds.map(([value, label]) => h('label', { class: 'radio', for: `data-kind-${value}` },
    h('input', { type: 'radio', name: 'data-kind', id: `data-kind-${value}`, value, checked: value === 'example' }), ` ${label}`));
  const inlineData = h('textarea', { id: 'data-inline', rows: 8, class: 'code', spellcheck: 'false' });
  inlineData.value = DEFAULT_DATA;
  const fileInput = h('input', { id: 'data-file', type: 'file', accept: '.csv,.json,.npz,.parquet' });
  const uploadButton = h('button', { type: 'button', class: 'secondary', id: 'upload-button' }, 'Upload');
  const uploadInfo = h('div', { id: 'upload-info', role: 'status' });
  const datasetSelect = h('select', { id: 'dataset-existing' });
  const datasetInfo = h('div', { id: 'dataset-info' });
  const dataBlocks = {
    example: h('div', { dataset: { dataKind: 'example' } }, h('div', { id: 'example-data-info' })),
    inline: h('div', { dataset: { dataKind: 'inline' } }, field('Data (JSON object: field name → number or nested list)', inlineData, { pointer: '/data/inline' })),
    upload: h('div', { dataset: { dataKind: 'upload' } }, field('CSV (header row), JSON, NPZ or Parquet file', fileInput, { pointer: '/file' }), uploadButton, uploadInfo),
    existing: h('div', { dataset: { dataKind: 'existing' } }, field('Dataset', datasetSelect, { pointer: '/data/dataset_id' }), datasetInfo),
  };
  const labelsArea = h('textarea', { id: 'labels', rows: 2, class: 'code', spellcheck: 'false', placeholder: 'team=vision\nrun=3' });

  // ---- buttons and messages --------------------------------------------------------------------------
  const messages = h('div', { id: 'validation-messages', 'aria-live': 'polite' });
  const validateButton = h('button', { type: 'button', id: 'validate-button', class: 'secondary' }, 'Validate');
  const submitButton = h('button', { type: 'submit', id: 'submit-button' }, 'Validate and submit');

  const form = h('form', { id: 'new-job-form', class: 'new-job', novalidate: true },
    h('fieldset', {}, h('legend', {}, 'Model'),
      h('div', { class: 'radios', role: 'radiogroup', 'aria-label': 'Model from' },
        h('label', { class: 'radio', for: 'model-kind-catalog' }, kindCatalog, ' Catalog model'),
        h('label', { class: 'radio', for: 'model-kind-source' }, kindSource, ' My own source')),
      catalogBlock, sourceBlock),
    h('fieldset', {}, h('legend', {}, 'Guide'), field('Guide', guideSelect, { pointer: '/guide/auto' }), guideFields),
    h('fieldset', {}, h('legend', {}, 'ELBO'), field('ELBO', elboSelect, { pointer: '/inference/elbo/name' }), elboFields),
    h('fieldset', {}, h('legend', {}, 'Optimizer'), field('Optimizer', optSelect, { pointer: '/inference/optimizer/name' }), optFields),
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
        field('Trace log-probs and k-hat', logProbs, { pointer: '/outputs/log_probs' }))),
    h('fieldset', {}, h('legend', {}, 'Data'), h('div', { class: 'radios', role: 'radiogroup', 'aria-label': 'Data from' }, dataRadios), Object.values(dataBlocks)),
    h('fieldset', {}, h('legend', {}, 'Labels'), field('Labels (key=value, one per line)', labelsArea, { pointer: '/labels' })),
    messages,
    h('div', { class: 'actions' }, validateButton, submitButton));

  root.append(h('h1', {}, 'New job'), form);

  // ---- behaviour ---------------------------------------------------------------------------------------
  const modelKind = () => (kindSource.checked ? 'source' : 'catalog');
  const dataKind = () => form.querySelector('input[name="data-kind"]:checked').value;

  function showFor(container, value) {
    for (const el of container.querySelectorAll('[data-show-for]')) {
      const list = el.dataset.showFor;
      if (list) el.hidden = !list.split(' ').includes(value);
    }
  }

  function syncVisibility() {
    catalogBlock.hidden = modelKind() !== 'catalog';
    sourceBlock.hidden = modelKind() !== 'source';
    const exampleRadio = form.querySelector('#data-kind-example');
    exampleRadio.disabled = modelKind() !== 'catalog';
    if (exampleRadio.disabled && exampleRadio.checked) form.querySelector('#data-kind-inline').checked = true;
    for (const [kind, block] of Object.entries(dataBlocks)) block.hidden = kind !== dataKind();
    showFor(guideFields, guideSelect.value);
    showFor(elboFields, elboSelect.value);
    showFor(optFields, optSelect.value);
    stopFields.hidden = !stopCheck.checked;
  }

  form.addEventListener('change', (e) => {
    if (e.target === catalogSelect) loadCatalogEntry(catalogSelect.value);
    if (e.target === datasetSelect) showDataset();
    syncVisibility();
  });

  function applySuggested(suggested) {
    const guide = suggested?.guide || {};
    const inference = suggested?.inference || {};
    guideSelect.value = guide.auto || 'AutoNormal';
    initScale.value = guide.options?.init_scale ?? '';
    initLoc.value = guide.options?.init_loc_fn ?? '';
    hideInput.value = (guide.hide || []).join(', ');
    exposeInput.value = (guide.expose || []).join(', ');
    elboSelect.value = inference.elbo?.name || 'Trace_ELBO';
    particles.value = inference.elbo?.num_particles ?? 1;
    vectorize.checked = Boolean(inference.elbo?.vectorize_particles);
    plateNesting.value = inference.elbo?.max_plate_nesting ?? '';
    optSelect.value = inference.optimizer?.name || 'Adam';
    lr.value = inference.optimizer?.lr ?? 0.01;
    steps.value = inference.steps ?? 1000;
  }

  async function loadCatalogEntry(name) {
    fill(catalogInfo, h('p', { class: 'muted' }, 'Loading…'));
    try {
      catalogEntry = await api.get(`/v1/catalog/${encodeURIComponent(name)}`, { signal });
    } catch (error) {
      if (!signal.aborted) fill(catalogInfo, h('p', { class: 'alert error', role: 'alert' }, `Could not load ${name}: ${error.message}`));
      return;
    }
    applySuggested(catalogEntry.suggested);
    fill(catalogInfo,
      h('p', {}, catalogEntry.description.split('\n\n')[0]),
      h('details', {}, h('summary', {}, 'Source'), sourceView(catalogEntry.source, { label: `Source of ${name}` })));
    const schema = catalogEntry.data_schema || {};
    fill(dataBlocks.example.firstChild,
      h('p', {}, `The example dataset of ${name}:`),
      h('ul', {}, Object.entries(schema).map(([k, f]) => h('li', {}, h('code', {}, k), ` ${f.dtype} ${fmtShape(f.shape)} — ${f.description || ''}`))));
    inlineData.value = JSON.stringify(catalogEntry.example_data || {}, null, 1);
    syncVisibility();
  }

  async function loadCatalog() {
    try {
      catalog = (await api.get('/v1/catalog', { signal })).items || [];
    } catch (error) {
      if (!signal.aborted) fill(catalogInfo, h('p', { class: 'alert error', role: 'alert' }, `Could not load the catalog: ${error.message}`));
      return;
    }
    fill(catalogSelect, ...catalog.map((c) => h('option', { value: c.name }, c.name)));
    const wanted = query.get('catalog');
    const first = catalog.find((c) => c.name === wanted) || catalog.find((c) => c.name === 'eight_schools_noncentered') || catalog[0];
    if (first) {
      catalogSelect.value = first.name;
      await loadCatalogEntry(first.name);
    }
  }

  async function loadDatasets() {
    try {
      const list = (await api.get('/v1/datasets', { signal })).items || [];
      fill(datasetSelect, h('option', { value: '' }, list.length ? '(choose a dataset)' : '(no datasets yet)'),
        ...list.map((d) => h('option', { value: d.id }, `${d.name || d.id} — ${d.fields.map((f) => f.name).join(', ')}`)));
      datasetSelect._datasets = list;
    } catch (error) {
      if (!signal.aborted) fill(datasetInfo, h('p', { class: 'muted' }, `Could not list datasets: ${error.message}`));
    }
  }

  // Datasets reach several GB (chunked uploads): sizes in binary units.
  function fmtBytes(n) {
    const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = Number(n) || 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return i === 0 ? `${v} bytes` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
  }

  function datasetFieldsView(ds) {
    return h('table', { class: 'fields-table' }, h('caption', {}, `${ds.name || ds.id} (${ds.format}, ${fmtBytes(ds.size_bytes)}, sha256 ${ds.sha256.slice(0, 12)}…)`),
      h('thead', {}, h('tr', {}, ['Field', 'Shape', 'dtype'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ds.fields.map((f) => h('tr', {}, h('th', { scope: 'row' }, f.name), h('td', {}, fmtShape(f.shape)), h('td', {}, f.dtype)))));
  }

  function showDataset() {
    const ds = (datasetSelect._datasets || []).find((d) => d.id === datasetSelect.value);
    clear(datasetInfo);
    if (ds) datasetInfo.append(datasetFieldsView(ds));
  }

  uploadButton.addEventListener('click', async () => {
    clearErrors();
    const file = fileInput.files[0];
    if (!file) { setFieldError('/file', 'Choose a file first.'); return; }
    const formData = new FormData();
    formData.append('file', file, file.name);
    uploadButton.disabled = true;
    fill(uploadInfo, 'Uploading…');
    try {
      uploadedDataset = await api.post('/v1/datasets', undefined, { form: formData, signal });
      fill(uploadInfo, h('p', {}, `Uploaded as dataset ${uploadedDataset.id}${uploadedDataset.created === false ? ' (the same data was already stored)' : ''}.`), datasetFieldsView(uploadedDataset));
      announce('Dataset uploaded');
      loadDatasets();
    } catch (error) {
      clear(uploadInfo);
      showProblem(error);
    } finally {
      uploadButton.disabled = false;
    }
  });

  // ---- the body -------------------------------------------------------------------------------------
  class FormProblem extends Error {
    constructor(pointer, message) { super(message); this.pointer = pointer; }
  }
  const optionalNumber = (input, pointer) => {
    if (input.value === '') return undefined;
    const v = Number(input.value);
    if (!Number.isFinite(v)) throw new FormProblem(pointer, 'Enter a number.');
    return v;
  };
  const list = (value) => value.split(',').map((s) => s.trim()).filter(Boolean);
  const parseJson = (area, pointer, what) => {
    if (!area.value.trim()) return undefined;
    try {
      return JSON.parse(area.value);
    } catch (error) {
      throw new FormProblem(pointer, `${what} is not valid JSON: ${error.message}`);
    }
  };
  const prune = (obj) => Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));

  function buildBody() {
    const body = {};
    body.model = modelKind() === 'catalog' ? { catalog: catalogSelect.value } : { source: sourceArea.value, entry: entryInput.value.trim() || 'model' };
    if (modelKind() === 'source' && !sourceArea.value.trim()) throw new FormProblem('/model/source', 'Paste a model.');
    if (guideSelect.value === 'custom') {
      body.guide = { source: guideSource.value, entry: 'guide' };
    } else {
      const extra = parseJson(guideExtra, '/guide/options', 'More options') || {};
      const options = prune({
        ...extra,
        init_scale: SCALE_GUIDES.includes(guideSelect.value) ? optionalNumber(initScale, '/guide/options/init_scale') : undefined,
        init_loc_fn: initLoc.value || undefined,
        rank: guideSelect.value === 'AutoLowRankMultivariateNormal' ? optionalNumber(rank, '/guide/options/rank') : undefined,
        hidden_dim: guideSelect.value === 'AutoIAFNormal' && hiddenDim.value.trim() ? list(hiddenDim.value).map(Number) : undefined,
        num_transforms: guideSelect.value === 'AutoIAFNormal' ? optionalNumber(numTransforms, '/guide/options/num_transforms') : undefined,
      });
      body.guide = prune({ auto: guideSelect.value, options, hide: list(hideInput.value), expose: exposeInput.value.trim() ? list(exposeInput.value) : undefined });
    }
    const elbo = elboSelect.value;
    const opt = optSelect.value;
    const betasValue = BETAS_OPTIMIZERS.includes(opt) && betas.value.trim() ? list(betas.value).map(Number) : undefined;
    if (betasValue && (betasValue.length !== 2 || betasValue.some((b) => !Number.isFinite(b)))) throw new FormProblem('/inference/optimizer/betas', 'Two numbers, e.g. 0.9, 0.999.');
    body.inference = prune({
      elbo: prune({
        name: elbo,
        num_particles: optionalNumber(particles, '/inference/elbo/num_particles'),
        vectorize_particles: vectorize.checked,
        max_plate_nesting: optionalNumber(plateNesting, '/inference/elbo/max_plate_nesting'),
        alpha: elbo === 'RenyiELBO' ? optionalNumber(alpha, '/inference/elbo/alpha') : undefined,
        tail_adaptive_beta: elbo === 'TraceTailAdaptive_ELBO' ? optionalNumber(tailBeta, '/inference/elbo/tail_adaptive_beta') : undefined,
      }),
      optimizer: prune({
        name: opt,
        lr: optionalNumber(lr, '/inference/optimizer/lr'),
        betas: betasValue,
        weight_decay: optionalNumber(weightDecay, '/inference/optimizer/weight_decay'),
        momentum: ['SGD', 'RMSprop'].includes(opt) ? optionalNumber(momentum, '/inference/optimizer/momentum') : undefined,
        clip_norm: opt === 'ClippedAdam' ? optionalNumber(clipNorm, '/inference/optimizer/clip_norm') : undefined,
        lrd: opt === 'ClippedAdam' ? optionalNumber(lrd, '/inference/optimizer/lrd') : undefined,
      }),
      clip_grad_norm: optionalNumber(clipGrad, '/inference/clip_grad_norm'),
      steps: optionalNumber(steps, '/inference/steps'),
      seed: optionalNumber(seed, '/inference/seed'),
      device: device.value,
      stop: stopCheck.checked ? prune({
        rel_tol: optionalNumber(relTol, '/inference/stop/rel_tol'),
        window: optionalNumber(windowInput, '/inference/stop/window'),
        min_steps: optionalNumber(minSteps, '/inference/stop/min_steps'),
      }) : undefined,
    });
    body.outputs = prune({ num_samples: optionalNumber(numSamples, '/outputs/num_samples'), predictive: predictive.checked, log_probs: logProbs.checked });
    const kind = dataKind();
    if (kind === 'inline') {
      const inline = parseJson(inlineData, '/data/inline', 'The data');
      if (!inline || typeof inline !== 'object' || Array.isArray(inline)) throw new FormProblem('/data/inline', 'The data must be a JSON object of fields.');
      body.data = { inline };
    } else if (kind === 'upload') {
      if (!uploadedDataset) throw new FormProblem('/file', 'Upload the file first (or choose another data source).');
      body.data = { dataset_id: uploadedDataset.id };
    } else if (kind === 'existing') {
      if (!datasetSelect.value) throw new FormProblem('/data/dataset_id', 'Choose a dataset.');
      body.data = { dataset_id: datasetSelect.value };
    }
    const labels = {};
    for (const line of labelsArea.value.split('\n').map((l) => l.trim()).filter(Boolean)) {
      const i = line.indexOf('=');
      if (i < 1) throw new FormProblem('/labels', `"${line}" is not key=value.`);
      labels[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    if (Object.keys(labels).length) body.labels = labels;
    return body;
  }

  // ---- messages ----------------------------------------------------------------------------------------
  function clearErrors() {
    clear(messages);
    clear(sourceError);
    clear(guideSourceView);
    for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  }

  // The field a pointer names, or the closest enclosing one (/data/inline/y -> /data/inline).
  function fieldFor(pointer) {
    let p = pointer || '';
    while (p) {
      const el = [...form.querySelectorAll('.field[data-pointer]')].find((f) => f.dataset.pointer === p && !f.closest('[hidden]'));
      if (el) return el;
      p = p.slice(0, p.lastIndexOf('/'));
    }
    return null;
  }

  function setFieldError(pointer, message) {
    const f = fieldFor(pointer);
    if (!f) return false;
    const control = f.querySelector('input, select, textarea');
    f.querySelector('.field-error').textContent = message;
    control?.setAttribute('aria-invalid', 'true');
    return true;
  }

  function firstInvalid() {
    return form.querySelector('[aria-invalid="true"]');
  }

  function showProblem(error) {
    const problem = error instanceof ApiError ? error.problem : { title: 'Error', detail: error.message };
    const items = [];
    if (problem.line && (problem.pointer === '/guide/source' ? guideSelect.value === 'custom' : modelKind() === 'source')) {
      const isGuide = problem.pointer === '/guide/source';
      const area = isGuide ? guideSource : sourceArea;
      const view = isGuide ? guideSourceView : sourceError;
      view.append(sourceView(area.value, { error: { line: problem.line, col: problem.col, message: problem.detail || problem.title }, label: 'Source at the error' }));
      setFieldError(isGuide ? '/guide/source' : '/model/source', `Line ${problem.line}${problem.col ? `, column ${problem.col}` : ''}: ${withoutPosition(problem.detail || problem.title)}`);
      selectLine(area, problem.line);
    } else if (problem.pointer) {
      setFieldError(problem.pointer, problem.detail || problem.title);
    }
    for (const e of problem.errors || []) {
      const where = e.pointer || e.parameter || '';
      if (!setFieldError(e.pointer || '', e.detail)) items.push(`${where}: ${e.detail}`);
    }
    const report = problem.report;
    const reportMessages = report ? [...(report.errors || []), ...(report.warnings || [])] : [];
    messages.append(h('div', { class: 'alert error', role: 'alert', id: 'problem' },
      h('strong', {}, problem.title || 'Request failed'),
      problem.detail ? h('p', {}, problem.detail) : null,
      problem.line ? h('p', { id: 'problem-line' }, `Line ${problem.line}${problem.col ? `, column ${problem.col}` : ''}`) : null,
      items.length ? h('ul', {}, items.map((t) => h('li', {}, t))) : null,
      reportMessages.length ? h('ul', {}, reportMessages.map((m) => h('li', {}, m.site ? `[${m.site}] ${m.message}` : m.message || String(m)))) : null));
    announce(`${problem.title || 'Request failed'}${problem.detail ? `: ${problem.detail}` : ''}`);
  }

  function selectLine(area, line) {
    const lines = area.value.split('\n');
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    area.setSelectionRange(start, start + (lines[line - 1] || '').length);
  }

  function showReport(result) {
    const report = result.report || {};
    const warnings = report.warnings || [];
    const info = report.info || {};
    messages.append(h('div', { class: 'alert ok', role: 'status', id: 'validation-ok' },
      h('strong', {}, 'Valid.'), ' The model and guide fit together on this data.',
      warnings.length ? h('ul', { id: 'validation-warnings' }, warnings.map((m) => h('li', {}, m.site ? `[${m.site}] ${m.message}` : m.message || String(m)))) : null,
      Object.keys(info).length ? h('details', {}, h('summary', {}, 'What the validation pass found'), h('pre', {}, JSON.stringify(info, null, 2))) : null));
  }

  async function validate() {
    clearErrors();
    let body;
    try {
      body = buildBody();
    } catch (error) {
      if (!(error instanceof FormProblem)) throw error;
      setFieldError(error.pointer, error.message);
      messages.append(h('div', { class: 'alert error', role: 'alert', id: 'problem' }, error.message));
      firstInvalid()?.focus();
      return null;
    }
    messages.append(h('p', { class: 'muted' }, 'Validating…'));
    try {
      const result = await api.post('/v1/validate', body, { signal });
      clear(messages);
      showReport(result);
      return body;
    } catch (error) {
      if (signal.aborted) return null;
      clear(messages);
      showProblem(error);
      firstInvalid()?.focus();
      return null;
    }
  }

  validateButton.addEventListener('click', async () => {
    validateButton.disabled = true;
    try { await validate(); } finally { validateButton.disabled = false; }
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submitButton.disabled = true;
    try {
      const body = await validate();
      if (!body) return;
      messages.append(h('p', { class: 'muted' }, 'Submitting…'));
      try {
        const job = await api.post('/v1/jobs', body, { signal, headers: { 'Idempotency-Key': crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) } });
        announce('Job submitted');
        window.location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
      } catch (error) {
        if (signal.aborted) return;
        clear(messages);
        showProblem(error);
        firstInvalid()?.focus();
      }
    } finally {
      submitButton.disabled = false;
    }
  });

  // #/new?from=<job id>: start from an earlier job's spec (its model, data, labels, and
  // its settings when the server returns them).
  async function loadFrom(jobId) {
    const base = `/v1/jobs/${encodeURIComponent(jobId)}`;
    let job;
    try {
      job = await api.get(base, { signal });
    } catch (error) {
      if (!signal.aborted) messages.append(h('p', { class: 'alert error', role: 'alert' }, `Could not load job ${jobId}: ${error.message}`));
      return;
    }
    let spec = job.spec || null;
    if (!spec && job.state === 'succeeded') {
      try {
        spec = (await api.get(`${base}/diagnostics`, { signal })).meta?.settings || null;
      } catch {
        spec = null;
      }
    }
    const model = job.model || spec?.model || {};
    if (model.catalog) {
      kindCatalog.checked = true;
      catalogSelect.value = model.catalog;
      await loadCatalogEntry(model.catalog);
    } else if (model.source) {
      kindSource.checked = true;
      sourceArea.value = model.source;
      entryInput.value = model.entry || 'model';
    }
    if (spec) applySpec(spec);
    if (job.dataset_id) {
      form.querySelector('#data-kind-existing').checked = true;
      datasetSelect.value = job.dataset_id;
      showDataset();
    } else if (spec?.data?.inline) {
      form.querySelector('#data-kind-inline').checked = true;
      inlineData.value = JSON.stringify(spec.data.inline, null, 1);
    }
    labelsArea.value = Object.entries(job.labels || {}).map(([k, v]) => `${k}=${v}`).join('\n');
    syncVisibility();
    messages.append(h('p', { class: 'muted', id: 'from-job' }, `Started from job ${job.id}${spec ? '' : ' (its guide and inference settings are not available; defaults shown)'}.`));
  }

  function applySpec(spec) {
    applySuggested({ guide: spec.guide?.auto ? spec.guide : undefined, inference: spec.inference });
    if (spec.guide?.source) {
      guideSelect.value = 'custom';
      guideSource.value = spec.guide.source;
    }
    const o = spec.guide?.options || {};
    rank.value = o.rank ?? '';
    numTransforms.value = o.num_transforms ?? '';
    hiddenDim.value = Array.isArray(o.hidden_dim) ? o.hidden_dim.join(', ') : (o.hidden_dim ?? '');
    const known = new Set(['init_scale', 'init_loc_fn', 'rank', 'num_transforms', 'hidden_dim']);
    const extra = Object.fromEntries(Object.entries(o).filter(([k]) => !known.has(k)));
    guideExtra.value = Object.keys(extra).length ? JSON.stringify(extra) : '';
    const inf = spec.inference || {};
    alpha.value = inf.elbo?.alpha ?? 0;
    tailBeta.value = inf.elbo?.tail_adaptive_beta ?? -1;
    const opt = inf.optimizer || {};
    betas.value = Array.isArray(opt.betas) ? opt.betas.join(', ') : '';
    weightDecay.value = opt.weight_decay ?? '';
    momentum.value = opt.momentum ?? '';
    clipNorm.value = opt.clip_norm ?? '';
    lrd.value = opt.lrd ?? '';
    clipGrad.value = inf.clip_grad_norm ?? '';
    seed.value = inf.seed ?? 0;
    device.value = inf.device || 'cpu';
    stopCheck.checked = Boolean(inf.stop);
    if (inf.stop) {
      relTol.value = inf.stop.rel_tol;
      windowInput.value = inf.stop.window;
      minSteps.value = inf.stop.min_steps;
    }
    const out = spec.outputs || {};
    numSamples.value = out.num_samples ?? 1000;
    predictive.checked = Boolean(out.predictive);
    logProbs.checked = out.log_probs !== false;
  }

  if (query.get('source') === '1') kindSource.checked = true;
  syncVisibility();
  await Promise.all([loadCatalog(), loadDatasets()]);
  if (query.get('from')) await loadFrom(query.get('from'));
  syncVisibility();
  return () => controller.abort();
}
