// The dashboard shell: hash routing (#/jobs, #/jobs/<id>, #/new), the API-key dialog and
// the page lifecycle (each page returns a cleanup function that stops its timers and
// streams when the user navigates away).

import { getKey, setKey } from './api.js';
import { renderJobs } from './pages/jobs.js';
import { renderJob } from './pages/job.js';
import { renderNewJob } from './pages/newjob.js';
import { renderSweep, renderSweeps } from './pages/sweeps.js';
import { announce, clear, h } from './util.js';

const ROUTES = [
  { pattern: /^#?\/?(?:jobs)?\/?$/, nav: 'jobs', title: 'Jobs', render: (root, m, q) => renderJobs(root, q) },
  { pattern: /^#\/jobs\/([^/?]+)$/, nav: 'jobs', title: 'Job', render: (root, m) => renderJob(root, decodeURIComponent(m[1])) },
  { pattern: /^#\/sweeps\/?$/, nav: 'sweeps', title: 'Sweeps', render: (root) => renderSweeps(root) },
  { pattern: /^#\/sweeps\/([^/?]+)$/, nav: 'sweeps', title: 'Sweep', render: (root, m) => renderSweep(root, decodeURIComponent(m[1])) },
  { pattern: /^#\/new$/, nav: 'new', title: 'New job', render: (root, m, q) => renderNewJob(root, q) },
];

let cleanup = null;
let firstRoute = true;

function splitHash(hash) {
  const i = hash.indexOf('?');
  return i < 0 ? [hash, new URLSearchParams()] : [hash.slice(0, i), new URLSearchParams(hash.slice(i + 1))];
}

async function route() {
  const root = document.getElementById('main');
  if (cleanup) {
    try { cleanup(); } catch (error) { console.error(error); }
    cleanup = null;
  }
  const [path, query] = splitHash(window.location.hash || '#/jobs');
  const match = ROUTES.map((r) => ({ r, m: r.pattern.exec(path) })).find((x) => x.m);
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (match && link.dataset.nav === match.r.nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  clear(root);
  if (!match) {
    document.title = 'Not found · vihub';
    root.append(h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: '#/jobs' }, 'Back to the jobs')));
    return;
  }
  document.title = `${match.r.title} · vihub`;
  try {
    cleanup = await match.r.render(root, match.m, query) || null;
  } catch (error) {
    console.error(error);
    root.append(h('div', { class: 'alert error', role: 'alert' }, `This page failed to load: ${error.message}`));
  }
  // After an in-app navigation, move focus to the new page's heading so keyboard and
  // screen-reader users start at its top; on first load focus stays at the document start
  // (where the skip link is).
  const heading = firstRoute ? null : root.querySelector('h1');
  firstRoute = false;
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

function setUpKeyDialog() {
  const dialog = document.getElementById('key-dialog');
  const input = document.getElementById('key-input');
  const button = document.getElementById('key-button');
  const refreshButton = () => {
    button.textContent = getKey() ? 'API key ✓' : 'API key';
    button.setAttribute('aria-label', getKey() ? 'API key (set)' : 'API key (not set)');
  };
  const open = () => {
    input.value = getKey();
    dialog.showModal();
    input.focus();
  };
  button.addEventListener('click', open);
  dialog.addEventListener('close', () => {
    if (dialog.returnValue === 'save') setKey(input.value.trim());
    if (dialog.returnValue === 'clear') setKey('');
    if (dialog.returnValue === 'save' || dialog.returnValue === 'clear') {
      refreshButton();
      announce(getKey() ? 'API key saved' : 'API key forgotten');
      route();
    }
    input.value = '';
  });
  // A 401 from any request means the key is missing or wrong: ask for it once.
  window.addEventListener('vihub:unauthorized', () => {
    if (!dialog.open) open();
  });
  refreshButton();
}

setUpKeyDialog();
window.addEventListener('hashchange', route);
route();
