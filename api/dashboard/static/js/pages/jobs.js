// The jobs page: the account's jobs with filters (state, labels), page tokens, and live
// refresh while any listed job is queued or running.

import { api } from '../api.js';
import { elboName, guideName, modelName, stepsText } from '../jobinfo.js';
import { announce, clear, fmtDuration, fmtNumber, fmtTime, h, isFinal, jobDuration, stateBadge } from '../util.js';

const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const PAGE_SIZE = 25;
const REFRESH_MS = 2000;

export function renderJobs(root, query) {
  const state = query.get('state') || '';
  const labels = query.get('label') || '';
  const pageSize = Math.min(100, Math.max(1, Number(query.get('page_size') || query.get('limit')) || PAGE_SIZE));
  const tokens = [null]; // page tokens of the pages visited, for "Previous"
  let page = 0;
  let timer = null;
  let stopped = false;
  let controller = null;

  const filters = filterForm(query, { state, labels }, load);

  const status = h('p', { class: 'muted', id: 'jobs-status', role: 'status' }, 'Loading…');
  const tableBody = h('tbody');
  const table = jobsTable(tableBody);
  const prev = h('button', { type: 'button', class: 'secondary', onClick: () => { page -= 1; load(); } }, '← Previous');
  const next = h('button', { type: 'button', class: 'secondary', onClick: () => { page += 1; load(); } }, 'Next →');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, h('span', { id: 'page-number' }), next);

  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Jobs'), h('a', { class: 'button', href: '#/new' }, 'New job')),
    filters, status, h('div', { class: 'table-wrap' }, table), pager);

  async function load({ quiet = false } = {}) {
    clearTimeout(timer);
    controller?.abort();
    controller = new AbortController();
    if (!quiet) status.textContent = 'Loading…';
    const labelList = labels.split(/[\s,]+/).filter(Boolean);
    try {
      const result = await api.get('/v1/jobs', {
        query: { state: state || undefined, label: labelList, page_size: pageSize, page_token: tokens[page] || undefined },
        signal: controller.signal,
      });
      if (stopped) return;
      tokens[page + 1] = result.next_page_token || null;
      tokens.length = page + 2;
      // A refresh must not pull focus from under a keyboard user: remember the focused
      // row's link and focus the same job's link in the new rows.
      const focusedId = tableBody.contains(document.activeElement)
        ? document.activeElement.closest('tr')?.dataset.jobId : null;
      clear(tableBody);
      for (const job of result.items) tableBody.append(jobRow(job));
      if (focusedId) tableBody.querySelector(`tr[data-job-id="${CSS.escape(focusedId)}"] a`)?.focus();
      if (!result.items.length) {
        tableBody.append(h('tr', {}, h('td', { colspan: 8, class: 'empty' },
          state || labels ? 'No jobs match these filters.' : 'No jobs yet. ', state || labels ? null : h('a', { href: '#/new' }, 'Submit one.'))));
      }
      const live = result.items.filter((j) => !isFinal(j.state)).length;
      status.textContent = `${result.items.length} job${result.items.length === 1 ? '' : 's'} on this page${live ? `, ${live} live (refreshing)` : ''}.`;
      prev.disabled = page === 0;
      next.disabled = !result.next_page_token;
      pager.querySelector('#page-number').textContent = `Page ${page + 1}`;
      if (!quiet) announce(status.textContent);
      if (live) timer = setTimeout(refresh, REFRESH_MS);
    } catch (error) {
      if (error.name === 'AbortError' || stopped) return;
      status.textContent = '';
      clear(tableBody);
      tableBody.append(h('tr', {}, h('td', { colspan: 8 }, h('div', { class: 'alert error', role: 'alert' },
        `Could not load the jobs: ${error.message}`))));
      timer = setTimeout(refresh, REFRESH_MS * 3);
    }
  }

  function refresh() {
    if (stopped) return;
    if (document.hidden) { timer = setTimeout(refresh, REFRESH_MS); return; }
    load({ quiet: true });
  }

  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    controller?.abort();
  };
}

// The filter form; submitting it moves to the filtered URL (or reloads when it is the same).
function filterForm(query, { state, labels }, reload) {
  const stateSelect = h('select', { id: 'filter-state', name: 'state' },
    h('option', { value: '' }, 'All states'),
    STATES.map((s) => h('option', { value: s, selected: s === state }, s)));
  const labelInput = h('input', {
    id: 'filter-label', name: 'label', type: 'text', value: labels, placeholder: 'team=vision run=3',
    'aria-describedby': 'filter-label-help', autocomplete: 'off',
  });
  return h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter jobs', onSubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (query.get('page_size') || query.get('limit')) q.set('page_size', query.get('page_size') || query.get('limit'));
    if (stateSelect.value) q.set('state', stateSelect.value);
    if (labelInput.value.trim()) q.set('label', labelInput.value.trim());
    const hash = `#/jobs${q.toString() ? `?${q}` : ''}`;
    if (window.location.hash === hash) reload(); else window.location.hash = hash;
  } },
  h('div', { class: 'field' }, h('label', { for: 'filter-state' }, 'State'), stateSelect),
  h('div', { class: 'field' }, h('label', { for: 'filter-label' }, 'Labels'), labelInput,
    h('small', { id: 'filter-label-help' }, 'key=value, several separated by spaces')),
  h('button', { type: 'submit' }, 'Filter'));
}

// One row of the table: state, model (with labels), ELBO, guide, steps, loss, duration, created.
function jobRow(job) {
  const href = `#/jobs/${encodeURIComponent(job.id)}`;
  return h('tr', { dataset: { jobId: job.id, state: job.state } },
    h('td', {}, stateBadge(job.state)),
    h('td', {}, h('a', { href, 'aria-label': `Job ${job.id}: ${modelName(job)}, ${job.state}` }, modelName(job)),
      Object.keys(job.labels || {}).length
        ? h('div', { class: 'labels' }, Object.entries(job.labels).map(([k, v]) => h('span', { class: 'label-chip' }, `${k}=${v}`)))
        : null),
    h('td', {}, elboName(job)),
    h('td', {}, guideName(job)),
    h('td', { class: 'num' }, stepsText(job)),
    h('td', { class: 'num' }, fmtNumber(job.progress?.loss)),
    h('td', { class: 'num' }, fmtDuration(jobDuration(job))),
    h('td', {}, h('time', { datetime: job.created_at }, fmtTime(job.created_at))));
}

function jobsTable(tableBody) {
  return h('table', { class: 'jobs-table', 'aria-describedby': 'jobs-status' },
    h('caption', { class: 'visually-hidden' }, 'Jobs, newest first'),
    h('thead', {}, h('tr', {}, ['State', 'Model', 'ELBO', 'Guide', 'Steps', 'Final loss', 'Duration', 'Created']
      .map((t) => h('th', { scope: 'col' }, t)))),
    tableBody);
}
