// Form pieces the new-job sections share: labelled controls with a slot for their inline
// error, visibility by the chosen guide / ELBO / optimizer, and reading values into a
// job body (a bad value throws a FormProblem that names its field's JSON pointer).

import { h, uid } from '../../util.js';

// A labelled control with a slot for its inline error. `pointer` ties it to problem+json
// pointers; `showFor` lists the choices (guide / ELBO / optimizer names) it applies to
// (null or empty: all of them).
export function field(label, control, { help, pointer, showFor, id } = {}) {
  const controlId = id || control.id || uid('f');
  control.id = controlId;
  const helpId = help ? `${controlId}-help` : null;
  const errorId = `${controlId}-error`;
  control.setAttribute('aria-describedby', [helpId, errorId].filter(Boolean).join(' '));
  return h('div', { class: 'field', dataset: { pointer: pointer || '', showFor: showFor ? showFor.join(' ') : '' } },
    control.type === 'checkbox'
      ? h('label', { for: controlId, class: 'checkbox' }, control, ` ${label}`)
      : [h('label', { for: controlId }, label), control],
    help ? h('small', { id: helpId }, help) : null,
    h('div', { class: 'field-error', id: errorId, role: 'alert' }));
}

export const num = (id, value, attrs = {}) => h('input', { id, type: 'number', step: 'any', value: value ?? '', inputmode: 'decimal', ...attrs });
export const text = (id, value = '', attrs = {}) => h('input', { id, type: 'text', value, autocomplete: 'off', spellcheck: 'false', ...attrs });
export const select = (id, options, value) => h('select', { id }, options.map((o) => {
  const [v, t] = Array.isArray(o) ? o : [o, o || '(default)'];
  return h('option', { value: v, selected: v === value }, t);
}));
export const check = (id, checked = false) => h('input', { id, type: 'checkbox', checked });

// Shows the fields under `container` that apply to the choice `value`.
export function showFor(container, value) {
  for (const el of container.querySelectorAll('[data-show-for]')) {
    const names = el.dataset.showFor;
    if (names) el.hidden = !names.split(' ').includes(value);
  }
}

export class FormProblem extends Error {
  constructor(pointer, message) {
    super(message);
    this.pointer = pointer;
  }
}

export function optionalNumber(input, pointer) {
  if (input.value === '') return undefined;
  const v = Number(input.value);
  if (!Number.isFinite(v)) throw new FormProblem(pointer, 'Enter a number.');
  return v;
}

export const list = (value) => value.split(',').map((s) => s.trim()).filter(Boolean);

export function parseJson(area, pointer, what) {
  if (!area.value.trim()) return undefined;
  try {
    return JSON.parse(area.value);
  } catch (error) {
    throw new FormProblem(pointer, `${what} is not valid JSON: ${error.message}`);
  }
}

export const prune = (obj) => Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));
