// The sweeps pages: #/sweeps (this account's sweeps) and #/sweeps/<id>: each member's
// progress, the members' loss curves overlaid, the comparison table (sortable by any
// column, the recommended row marked, untrusted fits flagged) and the members' posterior
// marginals overlaid for a chosen site. Live until every member has ended.

import { api, ApiError } from '../api.js';
import { lineChart, PALETTE } from '../charts.js';
import { announce, fill, fmtDuration, fmtNumber, h, stateBadge } from '../util.js';

const REFRESH_MS = 2000;
const FINAL_RETRIES = 5; // reads of a done sweep whose parts could not all be read
const LOSS_POINTS = 300;
const BINS = 30;

// Columns of the comparison table: [key, title, formatter].
export const COMPARISON_COLUMNS = [
  ['point', 'Point', (r) => pointText(r.point) || `${r.guide} lr=${r.lr}`],
  ['elbo', 'ELBO ± SE', (r) => pm(r.elbo, r.elbo_se)],
  ['k_hat', 'k-hat', (r) => `${fmtNumber(r.k_hat, 3)} ${r.k_hat_reading}`],
  ['elpd_loo', 'elpd LOO ± SE', (r) => pm(r.elpd_loo, r.elpd_loo_se)],
  ['elpd_diff', 'Δ elpd ± SE', (r) => pm(r.elpd_diff, r.elpd_diff_se)],
  ['loo_weight', 'Weight', (r) => fmtNumber(r.loo_weight, 3)],
  ['steps', 'Steps', (r) => String(r.steps)],
  ['wall_s', 'Wall time', (r) => fmtDuration(r.wall_s)],
  ['converged', 'Converged', (r) => (r.converged === null || r.converged === undefined ? '–' : r.converged ? 'yes' : 'no')],
];

function pm(value, se) {
  if (value === null || value === undefined) return '–';
  return `${fmtNumber(value, 5)} ± ${fmtNumber(se, 2)}`;
}

export function pointText(point) {
  if (!point) return '';
  return Object.entries(point).map(([k, v]) => `${k.split('.').at(-1)}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
}

function section(id, title, ...children) {
  return h('section', { id, class: 'panel', 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title` }, title), ...children);
}

// ---- #/sweeps ------------------------------------------------------------------------

export async function renderSweeps(root) {
  const controller = new AbortController();
  const status = h('p', { class: 'muted', id: 'sweeps-status', role: 'status' }, 'Loading…');
  const body = h('tbody');
  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Sweeps')), status,
    h('div', { class: 'table-wrap' }, h('table', { class: 'jobs-table', id: 'sweeps-table' },
      h('caption', { class: 'visually-hidden' }, 'Sweeps, newest first'),
      h('thead', {}, h('tr', {}, ['Sweep', 'State', 'Members', 'Progress', 'Created'].map((t) => h('th', { scope: 'col' }, t)))),
      body)));
  try {
    const { items } = await api.get('/v1/sweeps', { query: { page_size: 100 }, signal: controller.signal });
    status.textContent = items.length ? `${items.length} sweeps` : 'No sweeps yet. Create one with POST /v1/sweeps, client.sweep(...) or `vihub sweep`.';
    fill(body, items.map((s) => h('tr', { dataset: { sweepId: s.id } },
      h('td', {}, h('a', { href: `#/sweeps/${encodeURIComponent(s.id)}` }, s.name || s.id.slice(0, 8))),
      h('td', {}, stateBadge(s.state)),
      h('td', { class: 'num' }, String(s.member_count)),
      h('td', { class: 'num' }, `${Math.round(100 * s.progress)}%`),
      h('td', {}, new Date(s.created_at).toLocaleString()))));
  } catch (error) {
    if (!controller.signal.aborted) status.textContent = `Could not load the sweeps: ${error.message}`;
  }
  return () => controller.abort();
}

// ---- #/sweeps/<id> -------------------------------------------------------------------
// The page is four parts (head + members, loss curves, comparison, marginals), each
// `part(ctx) -> update()`; `refresh` re-reads the sweep and updates them in turn until
// every member has ended.

export async function renderSweep(root, sweepId) {
  const controller = new AbortController();
  const { signal } = controller;
  const base = `/v1/sweeps/${encodeURIComponent(sweepId)}`;
  let sweep;
  try {
    sweep = await api.get(base, { signal });
  } catch (error) {
    root.append(h('h1', {}, 'Sweep'), h('div', { class: 'alert error', role: 'alert' },
      error instanceof ApiError && error.status === 404 ? `There is no sweep ${sweepId} in this account.` : `Could not load sweep ${sweepId}: ${error.message}`),
    h('p', {}, h('a', { href: '#/sweeps' }, 'Back to the sweeps')));
    return () => controller.abort();
  }
  const ctx = { root, base, signal, sweep, samples: new Map() };
  const updates = [headPart(ctx), lossPart(ctx), comparisonPart(ctx), marginalsPart(ctx)];
  let timer = null;
  let retries = FINAL_RETRIES;
  async function refresh() {
    try {
      ctx.sweep = await api.get(base, { signal });
    } catch {
      if (signal.aborted) return;
    }
    // A part answers false when a read failed (a dropped request, a busy server): once the
    // sweep is done there is no next poll to mend it, so it is read again a few times.
    let complete = true;
    for (const update of updates) if ((await update()) === false) complete = false;
    if (signal.aborted) return;
    if (ctx.sweep.done && (complete || retries-- <= 0)) {
      announce(`Sweep ${ctx.sweep.state}`);
      return;
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }
  await refresh();
  return () => { clearTimeout(timer); controller.abort(); };
}

function memberLabel(member) {
  return `#${member.position} ${pointText(member.point)}`;
}

function succeededMembers(sweep) {
  return sweep.members.filter((m) => m.job.state === 'succeeded');
}

function headPart(ctx) {
  const title = h('h1', {});
  const summary = h('p', { id: 'sweep-summary', class: 'muted', role: 'status' });
  const progress = h('progress', { id: 'sweep-progress', max: 1, value: 0, 'aria-label': 'Steps done over all members' });
  const cancelButton = h('button', { type: 'button', id: 'sweep-cancel', class: 'danger', onClick: cancel }, 'Cancel sweep');
  const membersBody = h('tbody');
  ctx.root.append(
    h('div', { class: 'page-head' }, title, cancelButton),
    h('p', {}, progress, ' ', summary),
    section('sweep-members', 'Members', h('div', { class: 'table-wrap' }, h('table', { class: 'jobs-table', id: 'members-table' },
      h('caption', { class: 'visually-hidden' }, 'Sweep members in point order'),
      h('thead', {}, h('tr', {}, ['#', 'Point', 'State', 'Step', 'Loss', 'Job'].map((t) => h('th', { scope: 'col' }, t)))),
      membersBody))));

  async function cancel() {
    cancelButton.disabled = true;
    try {
      ctx.sweep = await api.post(`${ctx.base}/cancel`, undefined, { signal: ctx.signal });
      announce('Sweep cancel requested');
      update();
    } catch (error) {
      summary.textContent = `Cancel failed: ${error.message}`;
    } finally {
      cancelButton.disabled = false;
    }
  }

  function update() {
    const { sweep } = ctx;
    title.textContent = sweep.name || `Sweep ${sweep.id.slice(0, 8)}`;
    title.dataset.state = sweep.state;
    progress.value = sweep.progress;
    const c = sweep.counts;
    summary.textContent = `${sweep.state}: ${c.succeeded} succeeded, ${c.running} running, ${c.queued} queued, ${c.failed} failed, ${c.cancelled} cancelled`;
    cancelButton.hidden = sweep.done;
    fill(membersBody, sweep.members.map((m) => h('tr', { dataset: { jobId: m.job.id, state: m.job.state } },
      h('td', { class: 'num' }, String(m.position)),
      h('td', {}, pointText(m.point)),
      h('td', {}, stateBadge(m.job.state)),
      h('td', { class: 'num' }, `${m.job.progress.step}/${m.job.progress.steps}`),
      h('td', { class: 'num' }, fmtNumber(m.job.progress.loss)),
      h('td', {}, h('a', { href: `#/jobs/${encodeURIComponent(m.job.id)}` }, m.job.id.slice(0, 8))))));
  }
  return update;
}

function lossPart(ctx) {
  const chart = h('div', { id: 'sweep-loss-chart' });
  ctx.root.append(section('sweep-loss', 'Loss curves', chart));
  return async () => {
    const { members } = ctx.sweep;
    const bodies = await Promise.all(members.map((m) => api.get(`/v1/jobs/${encodeURIComponent(m.job.id)}/loss`,
      { query: { max_points: LOSS_POINTS }, signal: ctx.signal }).catch(() => null)));
    const series = members.map((m, i) => ({
      name: memberLabel(m), color: PALETTE[i % PALETTE.length],
      points: bodies[i] ? bodies[i].steps.map((s, j) => [s, bodies[i].loss[j] ?? NaN]) : [],
    }));
    fill(chart, lineChart({ series, log: true, label: 'Loss of each member', yLabel: 'loss', width: 900 }));
    return bodies.every(Boolean);
  };
}

function comparisonPart(ctx) {
  const body = h('div', { id: 'sweep-comparison' }, h('p', { class: 'muted' }, 'The table appears when members have succeeded.'));
  ctx.root.append(section('sweep-table', 'Comparison', body));
  let sort = 'elbo';
  let order = 'desc';
  async function update() {
    if (!ctx.sweep.counts.succeeded) return;
    let table;
    try {
      table = await api.get(`${ctx.base}/comparison`, { query: { sort, order }, signal: ctx.signal });
    } catch (error) {
      if (!ctx.signal.aborted) fill(body, h('p', { class: 'muted' }, `No comparison yet: ${error.message}`));
      return;
    }
    fill(body, comparisonTable(table, { sort, order, onSort: (key) => {
      order = key === sort && order === 'desc' ? 'asc' : 'desc';
      sort = key;
      update();
    } }));
  }
  return update;
}

function memberSamples(ctx, jobId) {
  if (!ctx.samples.has(jobId)) {
    ctx.samples.set(jobId, api.get(`/v1/jobs/${encodeURIComponent(jobId)}/samples`, { signal: ctx.signal })
      .then((body) => body.samples).catch(() => null));
  }
  return ctx.samples.get(jobId);
}

// Density of each member's draws of one site on common bins, as lines.
function densitySeries(ctx, done, draws) {
  const all = draws.flat().filter(Number.isFinite);
  const lo = Math.min(...all);
  const width = (Math.max(...all) - lo) / BINS || 1;
  return done.map((m, i) => {
    const counts = new Array(BINS).fill(0);
    for (const v of draws[i]) counts[Math.min(BINS - 1, Math.max(0, Math.floor((v - lo) / width)))] += 1;
    const total = draws[i].length || 1;
    return { name: memberLabel(m), color: PALETTE[ctx.sweep.members.indexOf(m) % PALETTE.length],
      points: counts.map((c, b) => [lo + (b + 0.5) * width, c / (total * width)]) };
  });
}

function marginalsPart(ctx) {
  const select = h('select', { id: 'marginal-site', onChange: () => draw() });
  const chart = h('div', { id: 'sweep-marginals' });
  ctx.root.append(section('sweep-marginal', 'Posterior marginals',
    h('div', { class: 'field' }, h('label', { for: 'marginal-site' }, 'Site'), select), chart));

  async function draw() {
    const site = select.value;
    const done = succeededMembers(ctx.sweep);
    if (!site || !done.length) return;
    const draws = await Promise.all(done.map((m) => memberSamples(ctx, m.job.id).then((s) => (s && s[site]) || [])));
    if (!draws.flat().some(Number.isFinite)) return;
    fill(chart, lineChart({ series: densitySeries(ctx, done, draws), label: `Posterior density of ${site} per member`,
      xLabel: site, yLabel: 'density', width: 900 }));
    chart.dataset.site = site;
    chart.dataset.members = String(done.length);
  }

  return async () => {
    const done = succeededMembers(ctx.sweep);
    if (!done.length) return;
    if (!select.options.length) {
      const first = await memberSamples(ctx, done[0].job.id);
      const sites = Object.keys(first || {}).filter((name) => (first[name] || []).every((v) => typeof v === 'number'));
      fill(select, sites.map((name) => h('option', { value: name }, name)));
    }
    // Redraw when more members have succeeded since the last drawing.
    if (chart.dataset.members !== String(done.length)) await draw();
  };
}

// The comparison table; `onSort(key)` is called when a column header is clicked.
export function comparisonTable(table, { sort, order, onSort }) {
  const header = COMPARISON_COLUMNS.map(([key, text]) => {
    const sortable = key !== 'point';
    const current = key === sort;
    return h('th', { scope: 'col', 'aria-sort': current ? (order === 'asc' ? 'ascending' : 'descending') : null },
      sortable ? h('button', { type: 'button', class: 'link-button', dataset: { sort: key }, onClick: () => onSort(key) },
        text, current ? (order === 'asc' ? ' ▲' : ' ▼') : '') : text);
  });
  const rows = table.rows.map((row) => h('tr', {
    class: [row.recommended ? 'recommended' : '', row.trusted ? '' : 'untrusted'],
    dataset: { jobId: row.job_id, recommended: String(row.recommended), trusted: String(row.trusted) },
  },
  h('td', {}, row.recommended ? h('span', { class: 'badge state-succeeded', title: 'Recommended' }, '★ recommended') : null,
    row.trusted ? null : h('span', { class: 'badge state-failed', title: 'k-hat > 0.7' }, 'untrusted')),
  COMPARISON_COLUMNS.map(([key, , format]) => h('td', { class: key === 'point' ? '' : 'num', dataset: { col: key } }, format(row)))));
  const rule = table.rule || {};
  return h('div', {},
    h('div', { class: 'table-wrap' }, h('table', { class: 'jobs-table', id: 'comparison-table' },
      h('caption', { class: 'visually-hidden' }, 'Comparison of the sweep members'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, ''), header)), h('tbody', {}, rows))),
    h('p', { id: 'comparison-rule' }, `Recommended by ${rule.criterion === 'elpd_loo' ? 'PSIS-LOO elpd' : 'ELBO'}: ${rule.reason || ''}. `,
      'Fits with k-hat > 0.7 are flagged untrusted.'),
    (table.notes || []).map((note) => h('p', { class: 'muted' }, note)));
}
