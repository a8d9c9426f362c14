// Labels of the job, one key=value per line.

import { h } from '../../util.js';
import { field, FormProblem } from './form.js';

export function mount(ctx) {
  const labelsArea = h('textarea', { id: 'labels', rows: 2, class: 'code', spellcheck: 'false', placeholder: 'team=vision\nrun=3' });
  ctx.form.append(h('fieldset', {}, h('legend', {}, 'Labels'), field('Labels (key=value, one per line)', labelsArea, { pointer: '/labels' })));

  function build(body) {
    const labels = {};
    for (const line of labelsArea.value.split('\n').map((l) => l.trim()).filter(Boolean)) {
      const i = line.indexOf('=');
      if (i < 1) throw new FormProblem('/labels', `"${line}" is not key=value.`);
      labels[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    if (Object.keys(labels).length) body.labels = labels;
  }

  const offs = [
    ctx.build(build),
    ctx.on('from-job', ({ job }) => { labelsArea.value = Object.entries(job.labels || {}).map(([k, v]) => `${k}=${v}`).join('\n'); }),
  ];
  return () => offs.forEach((off) => off());
}
