// The answers of the server under the form: a problem+json shown next to the field its
// pointer names (or on the source line it names, with the line selected), a validation
// report, and progress notes ("Validating…").

import { ApiError } from '../../api.js';
import { sourceView, withoutPosition } from '../../highlight.js';
import { announce, clear, h } from '../../util.js';

function reportItem(m) {
  return h('li', {}, m.site ? `[${m.site}] ${m.message}` : m.message || String(m));
}

function selectLine(area, line) {
  const lines = area.value.split('\n');
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  area.setSelectionRange(start, start + (lines[line - 1] || '').length);
}

// The field a pointer names, or the closest enclosing one (/data/inline/y -> /data/inline).
function fieldFor(form, pointer) {
  let p = pointer || '';
  while (p) {
    const el = [...form.querySelectorAll('.field[data-pointer]')].find((f) => f.dataset.pointer === p && !f.closest('[hidden]'));
    if (el) return el;
    p = p.slice(0, p.lastIndexOf('/'));
  }
  return null;
}

// The message under the field `pointer` names, which is marked invalid; false if none.
function setError(form, pointer, message) {
  const f = fieldFor(form, pointer);
  if (!f) return false;
  f.querySelector('.field-error').textContent = message;
  f.querySelector('input, select, textarea')?.setAttribute('aria-invalid', 'true');
  return true;
}

export function mount(ctx) {
  const { form } = ctx;
  const messages = h('div', { id: 'validation-messages', 'aria-live': 'polite' });
  form.append(messages);

  function clearErrors() {
    clear(messages);
    for (const { view } of Object.values(ctx.sources)) clear(view);
    for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  }

  const setFieldError = (pointer, message) => setError(form, pointer, message);

  // A problem with a line in a source the form shows: the marked source under its text
  // area, the message on the field, the line selected.
  function showSourceProblem(problem) {
    const pointer = problem.pointer === '/guide/source' ? '/guide/source' : '/model/source';
    const target = ctx.sources[pointer];
    if (!target?.active()) return false;
    const position = `Line ${problem.line}${problem.col ? `, column ${problem.col}` : ''}`;
    target.view.append(sourceView(target.area.value, { error: { line: problem.line, col: problem.col, message: problem.detail || problem.title }, label: 'Source at the error' }));
    setFieldError(pointer, `${position}: ${withoutPosition(problem.detail || problem.title)}`);
    selectLine(target.area, problem.line);
    return true;
  }

  function showProblem(error) {
    const problem = error instanceof ApiError ? error.problem : { title: 'Error', detail: error.message };
    const items = [];
    if (!(problem.line && showSourceProblem(problem)) && problem.pointer) setFieldError(problem.pointer, problem.detail || problem.title);
    for (const e of problem.errors || []) {
      if (!setFieldError(e.pointer || '', e.detail)) items.push(`${e.pointer || e.parameter || ''}: ${e.detail}`);
    }
    const report = problem.report;
    const reportMessages = report ? [...(report.errors || []), ...(report.warnings || [])] : [];
    messages.append(h('div', { class: 'alert error', role: 'alert', id: 'problem' },
      h('strong', {}, problem.title || 'Request failed'),
      problem.detail ? h('p', {}, problem.detail) : null,
      problem.line ? h('p', { id: 'problem-line' }, `Line ${problem.line}${problem.col ? `, column ${problem.col}` : ''}`) : null,
      items.length ? h('ul', {}, items.map((t) => h('li', {}, t))) : null,
      reportMessages.length ? h('ul', {}, reportMessages.map(reportItem)) : null));
    announce(`${problem.title || 'Request failed'}${problem.detail ? `: ${problem.detail}` : ''}`);
  }

  function showReport(result) {
    const report = result.report || {};
    const warnings = report.warnings || [];
    const info = report.info || {};
    messages.append(h('div', { class: 'alert ok', role: 'status', id: 'validation-ok' },
      h('strong', {}, 'Valid.'), ' The model and guide fit together on this data.',
      warnings.length ? h('ul', { id: 'validation-warnings' }, warnings.map(reportItem)) : null,
      Object.keys(info).length ? h('details', {}, h('summary', {}, 'What the validation pass found'), h('pre', {}, JSON.stringify(info, null, 2))) : null));
  }

  ctx.messages = {
    clearErrors,
    setFieldError,
    showProblem,
    showReport,
    clear: () => clear(messages),
    note: (element) => messages.append(element),
    firstInvalid: () => form.querySelector('[aria-invalid="true"]'),
  };
  return () => {}; // nothing outlives the form: its elements go with the page
}
