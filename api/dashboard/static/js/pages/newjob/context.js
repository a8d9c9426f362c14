// What the sections of the new-job page share. Each section module exports
// `mount(ctx) -> cleanup`: it appends its fieldset to `ctx.form`, adds its part of the job
// body with `ctx.build(fn)` and listens for:
//
//   'sync'           a choice changed: show the fields that apply to it
//   'suggested'      settings to fill in (a catalog entry's `suggested`, or the guide /
//                    inference part of an earlier job's spec)
//   'spec'           an earlier job's full spec (after 'suggested'): fill in the rest
//   'catalog-entry'  the chosen catalog model's entry (description, example data)
//   'from-job'       {job, spec}: an earlier job this one starts from (data, labels)

import { eventBus } from '../../events.js';

export function newJobContext({ form, caps, signal, query }) {
  const builders = [];
  return {
    ...eventBus(),
    form,
    caps,
    signal,
    query,
    // Promises of first loads (catalog, datasets) the page waits for.
    ready: [],
    // pointer -> {area, view, active()}: the source text areas a problem's line can point
    // into ('/model/source', '/guide/source'), with where to show the marked source.
    sources: {},
    // Set by the model section: 'catalog' or 'source'.
    modelKind: () => 'catalog',
    // Set by the messages section: clearErrors, setFieldError, showProblem, showReport, firstInvalid.
    messages: null,
    build(fn) {
      builders.push(fn);
      return () => builders.splice(builders.indexOf(fn), 1);
    },
    // The job body from every section, in mount order (a bad field throws FormProblem).
    buildBody() {
      const body = {};
      for (const fn of builders) fn(body);
      return body;
    },
  };
}
