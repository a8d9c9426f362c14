// The loss curve (live while the job runs, raw and smoothed, log-scale toggle), the ELBO
// terms per site and the gradient norms per parameter, all from /loss.

import { api } from '../../api.js';
import { autoSize, lineChart, smooth } from '../../charts.js';
import { lossPoints, prettySeriesName, seriesFrom } from '../../series.js';
import { fmtNumber, h, isFinal, throttle } from '../../util.js';
import { section } from './context.js';

const MAX_LOSS_POINTS = 1000;

export function mount(ctx) {
  const { signal } = ctx;
  let logScale = false;
  let lossBody = null;
  const logToggle = h('input', { type: 'checkbox', id: 'log-scale', role: 'switch', onChange: (e) => { logScale = e.target.checked; drawLoss(); } });
  const lossChart = h('div', { id: 'loss-chart', class: 'chart-box' });
  const lossInfo = h('p', { class: 'muted', id: 'loss-info' });
  const elboChart = h('div', { id: 'elbo-terms-chart', class: 'chart-box' });
  const gradChart = h('div', { id: 'grad-norms-chart', class: 'chart-box' });

  ctx.root.append(h('div', { class: 'grid-2' },
    section('loss', 'Loss', h('div', { class: 'chart-controls' },
      h('label', { for: 'log-scale', class: 'switch' }, logToggle, ' Log scale')), lossChart, lossInfo),
    section('elbo-terms', 'ELBO terms per site', h('p', { class: 'muted' },
      'Reconstruction = E_q[log p(x | z)] per observed site; KL = E_q[log p(z) − log q(z)] per latent site. They add up to the ELBO.'), elboChart),
    section('grad-norms', 'Gradient norms per parameter', gradChart)));

  const renderLossChart = autoSize(lossChart, (width) => {
    const points = lossPoints(lossBody);
    const series = [{ name: 'loss', points, className: 'raw' }];
    if (points.length > 2) series.push({ name: 'smoothed', points: smooth(points), className: 'smoothed', color: '#d1495b' });
    return lineChart({ series, log: logScale, width, height: 300, yLabel: 'loss (−ELBO)', label: 'Loss curve', emptyText: ctx.job.state === 'queued' ? 'Waiting for the job to start' : 'No loss points yet' });
  }, { signal });
  const waitingText = () => (isFinal(ctx.job.state) ? 'Not recorded for this job' : 'Shown when the job has finished');
  const renderElboChart = autoSize(elboChart, (width) => lineChart({
    series: seriesFrom(lossBody?.elbo_terms).map((s) => ({ ...s, name: prettySeriesName(s.name) })),
    width, yLabel: 'nats', label: 'ELBO terms per site', emptyText: waitingText(),
  }), { signal });
  const renderGradChart = autoSize(gradChart, (width) => lineChart({
    series: seriesFrom(lossBody?.grad_norms).map((s) => ({ ...s, name: prettySeriesName(s.name) })),
    width, log: true, yLabel: 'gradient norm', label: 'Gradient norms per parameter', emptyText: waitingText(),
  }), { signal });

  function drawLoss() {
    const points = lossPoints(lossBody);
    renderLossChart();
    const total = lossBody?.num_points ?? points.length;
    lossInfo.textContent = points.length
      ? `${total} step${total === 1 ? '' : 's'} recorded${total > points.length ? `, ${points.length} plotted` : ''}; last loss ${fmtNumber(points.at(-1)[1])}.`
      : '';
  }

  async function loadLoss() {
    try {
      lossBody = await api.get(`${ctx.base}/loss`, { query: { max_points: MAX_LOSS_POINTS }, signal });
    } catch (error) {
      if (signal.aborted) return;
      lossInfo.textContent = `Could not load the loss curve: ${error.message}`;
      return;
    }
    drawLoss();
    renderElboChart();
    renderGradChart();
  }

  // The page goes live only once the curve so far is drawn.
  ctx.ready.push(loadLoss());
  const offs = [ctx.on('progress', throttle(loadLoss, 1000)), ctx.on('finished', loadLoss)];
  return () => offs.forEach((off) => off());
}
