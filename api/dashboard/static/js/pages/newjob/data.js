// The data: the catalog model's example, pasted JSON, an uploaded file (CSV, JSON, NPZ,
// Parquet) or an existing dataset of this account.

import { api } from '../../api.js';
import { announce, clear, fill, fmtShape, h } from '../../util.js';
import { field, FormProblem, parseJson } from './form.js';

const DEFAULT_DATA = '{\n  "x": [0.0, 1.0, 2.0, 3.0, 4.0],\n  "y": [0.9, 3.1, 5.0, 7.2, 8.8]\n}';
const KINDS = [['example', 'Catalog example data'], ['inline', 'Paste JSON'], ['upload', 'Upload a file'], ['existing', 'Existing dataset']];

function datasetFieldsView(ds) {
  return h('table', { class: 'fields-table' }, h('caption', {}, `${ds.name || ds.id} (${ds.format}, ${ds.size_bytes} bytes, sha256 ${ds.sha256.slice(0, 12)}…)`),
    h('thead', {}, h('tr', {}, ['Field', 'Shape', 'dtype'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, ds.fields.map((f) => h('tr', {}, h('th', { scope: 'row' }, f.name), h('td', {}, fmtShape(f.shape)), h('td', {}, f.dtype)))));
}

export function mount(ctx) {
  const { form, signal } = ctx;
  let uploadedDataset = null;
  let datasets = [];
  const radios = KINDS.map(([value, label]) => h('label', { class: 'radio', for: `data-kind-${value}` },
    h('input', { type: 'radio', name: 'data-kind', id: `data-kind-${value}`, value, checked: value === 'example' }), ` ${label}`));
  const inlineData = h('textarea', { id: 'data-inline', rows: 8, class: 'code', spellcheck: 'false' });
  inlineData.value = DEFAULT_DATA;
  const fileInput = h('input', { id: 'data-file', type: 'file', accept: '.csv,.json,.npz,.parquet' });
  const uploadButton = h('button', { type: 'button', class: 'secondary', id: 'upload-button' }, 'Upload');
  const uploadInfo = h('div', { id: 'upload-info', role: 'status' });
  const datasetSelect = h('select', { id: 'dataset-existing' });
  const datasetInfo = h('div', { id: 'dataset-info' });
  const exampleInfo = h('div', { id: 'example-data-info' });
  const blocks = {
    example: h('div', { dataset: { dataKind: 'example' } }, exampleInfo),
    inline: h('div', { dataset: { dataKind: 'inline' } }, field('Data (JSON object: field name → number or nested list)', inlineData, { pointer: '/data/inline' })),
    upload: h('div', { dataset: { dataKind: 'upload' } }, field('CSV (header row), JSON, NPZ or Parquet file', fileInput, { pointer: '/file' }), uploadButton, uploadInfo),
    existing: h('div', { dataset: { dataKind: 'existing' } }, field('Dataset', datasetSelect, { pointer: '/data/dataset_id' }), datasetInfo),
  };
  form.append(h('fieldset', {}, h('legend', {}, 'Data'), h('div', { class: 'radios', role: 'radiogroup', 'aria-label': 'Data from' }, radios), Object.values(blocks)));
  const radio = (kind) => form.querySelector(`#data-kind-${kind}`);
  const dataKind = () => form.querySelector('input[name="data-kind"]:checked').value;

  async function loadDatasets() {
    try {
      datasets = (await api.get('/v1/datasets', { signal })).items || [];
      fill(datasetSelect, h('option', { value: '' }, datasets.length ? '(choose a dataset)' : '(no datasets yet)'),
        ...datasets.map((d) => h('option', { value: d.id }, `${d.name || d.id} — ${d.fields.map((f) => f.name).join(', ')}`)));
    } catch (error) {
      if (!signal.aborted) fill(datasetInfo, h('p', { class: 'muted' }, `Could not list datasets: ${error.message}`));
    }
  }

  function showDataset() {
    const ds = datasets.find((d) => d.id === datasetSelect.value);
    clear(datasetInfo);
    if (ds) datasetInfo.append(datasetFieldsView(ds));
  }

  async function upload() {
    ctx.messages.clearErrors();
    const file = fileInput.files[0];
    if (!file) {
      ctx.messages.setFieldError('/file', 'Choose a file first.');
      return;
    }
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
      ctx.messages.showProblem(error);
    } finally {
      uploadButton.disabled = false;
    }
  }

  function build(body) {
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
  }

  function showExample(entry) {
    const schema = entry.data_schema || {};
    fill(exampleInfo,
      h('p', {}, `The example dataset of ${entry.name}:`),
      h('ul', {}, Object.entries(schema).map(([k, f]) => h('li', {}, h('code', {}, k), ` ${f.dtype} ${fmtShape(f.shape)} — ${f.description || ''}`))));
    inlineData.value = JSON.stringify(entry.example_data || {}, null, 1);
  }

  function sync() {
    const example = radio('example');
    example.disabled = ctx.modelKind() !== 'catalog';
    if (example.disabled && example.checked) radio('inline').checked = true;
    for (const [kind, block] of Object.entries(blocks)) block.hidden = kind !== dataKind();
  }

  // An earlier job's data: its dataset, or its inline data when the spec carries it.
  function fromJob({ job, spec }) {
    if (job.dataset_id) {
      radio('existing').checked = true;
      datasetSelect.value = job.dataset_id;
      showDataset();
    } else if (spec?.data?.inline) {
      radio('inline').checked = true;
      inlineData.value = JSON.stringify(spec.data.inline, null, 1);
    }
  }

  uploadButton.addEventListener('click', upload);
  datasetSelect.addEventListener('change', showDataset);
  ctx.ready.push(loadDatasets());
  const offs = [ctx.build(build), ctx.on('catalog-entry', showExample), ctx.on('sync', sync), ctx.on('from-job', fromJob)];
  return () => offs.forEach((off) => off());
}
