// The data: the catalog model's example, pasted JSON, an uploaded file (CSV, JSON, NPZ,
// Parquet) or an existing dataset of this account.

import { api } from '../../api.js';
import { announce, clear, fill, fmtShape, h } from '../../util.js';
import { field, FormProblem, parseJson } from './form.js';

const DEFAULT_DATA = '{\n  "x": [0.0, 1.0, 2.0, 3.0, 4.0],\n  "y": [0.9, 3.1, 5.0, 7.2, 8.8]\n}';
const KINDS = [['example', 'Catalog example data'], ['inline', 'Paste JSON'], ['upload', 'Upload a file'], ['existing', 'Existing dataset']];

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

// The fieldset's elements: a radio per data kind and a block per kind.
function dataView() {
  const v = {
    radios: KINDS.map(([value, label]) => h('label', { class: 'radio', for: `data-kind-${value}` },
      h('input', { type: 'radio', name: 'data-kind', id: `data-kind-${value}`, value, checked: value === 'example' }), ` ${label}`)),
    inlineData: h('textarea', { id: 'data-inline', rows: 8, class: 'code', spellcheck: 'false' }),
    fileInput: h('input', { id: 'data-file', type: 'file', accept: '.csv,.json,.npz,.parquet' }),
    uploadButton: h('button', { type: 'button', class: 'secondary', id: 'upload-button' }, 'Upload'),
    uploadInfo: h('div', { id: 'upload-info', role: 'status' }),
    datasetSelect: h('select', { id: 'dataset-existing' }),
    datasetInfo: h('div', { id: 'dataset-info' }),
    exampleInfo: h('div', { id: 'example-data-info' }),
  };
  v.inlineData.value = DEFAULT_DATA;
  v.blocks = {
    example: h('div', { dataset: { dataKind: 'example' } }, v.exampleInfo),
    inline: h('div', { dataset: { dataKind: 'inline' } }, field('Data (JSON object: field name → number or nested list)', v.inlineData, { pointer: '/data/inline' })),
    upload: h('div', { dataset: { dataKind: 'upload' } }, field('CSV (header row), JSON, NPZ or Parquet file', v.fileInput, { pointer: '/file' }), v.uploadButton, v.uploadInfo),
    existing: h('div', { dataset: { dataKind: 'existing' } }, field('Dataset', v.datasetSelect, { pointer: '/data/dataset_id' }), v.datasetInfo),
  };
  v.fieldset = h('fieldset', {}, h('legend', {}, 'Data'), h('div', { class: 'radios', role: 'radiogroup', 'aria-label': 'Data from' }, v.radios), Object.values(v.blocks));
  return v;
}

// body.data for the chosen kind (the catalog example needs none: the server uses it).
function buildData(body, kind, v, uploadedDataset) {
  if (kind === 'inline') {
    const inline = parseJson(v.inlineData, '/data/inline', 'The data');
    if (!inline || typeof inline !== 'object' || Array.isArray(inline)) throw new FormProblem('/data/inline', 'The data must be a JSON object of fields.');
    body.data = { inline };
  } else if (kind === 'upload') {
    if (!uploadedDataset) throw new FormProblem('/file', 'Upload the file first (or choose another data source).');
    body.data = { dataset_id: uploadedDataset.id };
  } else if (kind === 'existing') {
    if (!v.datasetSelect.value) throw new FormProblem('/data/dataset_id', 'Choose a dataset.');
    body.data = { dataset_id: v.datasetSelect.value };
  }
}

function showExample(v, entry) {
  const schema = entry.data_schema || {};
  fill(v.exampleInfo,
    h('p', {}, `The example dataset of ${entry.name}:`),
    h('ul', {}, Object.entries(schema).map(([k, f]) => h('li', {}, h('code', {}, k), ` ${f.dtype} ${fmtShape(f.shape)} — ${f.description || ''}`))));
  v.inlineData.value = JSON.stringify(entry.example_data || {}, null, 1);
}

export function mount(ctx) {
  const { form, signal } = ctx;
  const v = dataView();
  let uploadedDataset = null;
  let datasets = [];
  form.append(v.fieldset);
  const radio = (kind) => form.querySelector(`#data-kind-${kind}`);
  const dataKind = () => form.querySelector('input[name="data-kind"]:checked').value;

  async function loadDatasets() {
    try {
      datasets = (await api.get('/v1/datasets', { signal })).items || [];
      fill(v.datasetSelect, h('option', { value: '' }, datasets.length ? '(choose a dataset)' : '(no datasets yet)'),
        ...datasets.map((d) => h('option', { value: d.id }, `${d.name || d.id} — ${d.fields.map((f) => f.name).join(', ')}`)));
    } catch (error) {
      if (!signal.aborted) fill(v.datasetInfo, h('p', { class: 'muted' }, `Could not list datasets: ${error.message}`));
    }
  }

  function showDataset() {
    const ds = datasets.find((d) => d.id === v.datasetSelect.value);
    clear(v.datasetInfo);
    if (ds) v.datasetInfo.append(datasetFieldsView(ds));
  }

  async function upload() {
    ctx.messages.clearErrors();
    const file = v.fileInput.files[0];
    if (!file) {
      ctx.messages.setFieldError('/file', 'Choose a file first.');
      return;
    }
    const formData = new FormData();
    formData.append('file', file, file.name);
    v.uploadButton.disabled = true;
    fill(v.uploadInfo, 'Uploading…');
    try {
      uploadedDataset = await api.post('/v1/datasets', undefined, { form: formData, signal });
      fill(v.uploadInfo, h('p', {}, `Uploaded as dataset ${uploadedDataset.id}${uploadedDataset.created === false ? ' (the same data was already stored)' : ''}.`), datasetFieldsView(uploadedDataset));
      announce('Dataset uploaded');
      loadDatasets();
    } catch (error) {
      clear(v.uploadInfo);
      ctx.messages.showProblem(error);
    } finally {
      v.uploadButton.disabled = false;
    }
  }

  function sync() {
    const example = radio('example');
    example.disabled = ctx.modelKind() !== 'catalog';
    if (example.disabled && example.checked) radio('inline').checked = true;
    for (const [kind, block] of Object.entries(v.blocks)) block.hidden = kind !== dataKind();
  }

  // An earlier job's data: its dataset, or its inline data when the spec carries it.
  function fromJob({ job, spec }) {
    if (job.dataset_id) {
      radio('existing').checked = true;
      v.datasetSelect.value = job.dataset_id;
      showDataset();
    } else if (spec?.data?.inline) {
      radio('inline').checked = true;
      v.inlineData.value = JSON.stringify(spec.data.inline, null, 1);
    }
  }

  v.uploadButton.addEventListener('click', upload);
  v.datasetSelect.addEventListener('change', showDataset);
  ctx.ready.push(loadDatasets());
  const offs = [
    ctx.build((body) => buildData(body, dataKind(), v, uploadedDataset)),
    ctx.on('catalog-entry', (entry) => showExample(v, entry)),
    ctx.on('sync', sync),
    ctx.on('from-job', fromJob),
  ];
  return () => offs.forEach((off) => off());
}
