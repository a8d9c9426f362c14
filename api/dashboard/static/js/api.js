// The dashboard's only way to the server: the public REST API under /v1, same origin.
// The API key lives in localStorage and travels in the Authorization header, never in
// a URL. EventSource cannot send headers, so /events is read with fetch streaming and
// parsed here; downloads are fetched with the key and handed to the browser as blobs.

const KEY_STORAGE = 'vihub.apiKey';

export function getKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || '';
  } catch {
    return '';
  }
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

// A problem+json response (RFC 9457) as an exception; `problem` keeps every member
// (line, col, pointer, errors, ...).
export class ApiError extends Error {
  constructor(problem, status) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.problem = problem;
    this.status = status;
  }
}

function authHeaders(extra = {}) {
  const headers = { ...extra };
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

export function buildQuery(query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === '') continue;
    for (const v of Array.isArray(value) ? value : [value]) params.append(name, String(v));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

async function problemFrom(response) {
  let problem = null;
  try {
    const text = await response.text();
    problem = text ? JSON.parse(text) : null;
  } catch {
    problem = null;
  }
  if (!problem || typeof problem !== 'object') {
    problem = { title: response.statusText || 'Request failed', status: response.status };
  }
  if (response.status === 401) {
    window.dispatchEvent(new CustomEvent('vihub:unauthorized', { detail: problem }));
  }
  return new ApiError(problem, response.status);
}

export async function request(method, path, { query, body, form, headers, signal } = {}) {
  const init = { method, headers: authHeaders({ Accept: 'application/json', ...headers }), signal };
  if (form !== undefined) {
    init.body = form; // multipart: the browser sets the boundary
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path + buildQuery(query), init);
  if (!response.ok) throw await problemFrom(response);
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  return type.includes('json') ? response.json() : response.text();
}

export const api = {
  get: (path, options) => request('GET', path, options),
  post: (path, body, options = {}) => request('POST', path, { ...options, body }),
  del: (path, options) => request('DELETE', path, options),
};

// Reads a text/event-stream body and calls onEvent({event, data, id}) per event, `data`
// parsed as JSON when it is JSON. Resolves when the server closes the stream.
export async function readEventStream(path, onEvent, { signal, lastEventId } = {}) {
  const headers = authHeaders({ Accept: 'text/event-stream' });
  if (lastEventId) headers['Last-Event-ID'] = lastEventId;
  const response = await fetch(path, { headers, signal, cache: 'no-store' });
  if (!response.ok) throw await problemFrom(response);
  if (!response.body) throw new Error('This browser cannot stream responses');
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new EventStreamParser(onEvent);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.push(value);
  }
  parser.end();
  return parser.lastEventId;
}

// The SSE wire format (WHATWG HTML §9.2.6): lines of `field: value`, a blank line ends
// an event, lines starting with ':' are comments (keep-alives).
export class EventStreamParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.reset();
    this.lastEventId = null;
  }

  reset() {
    this.event = '';
    this.data = [];
  }

  push(chunk) {
    this.buffer += chunk;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop(); // an incomplete last line waits for the next chunk
    for (const line of lines) this.line(line);
  }

  end() {
    if (this.buffer) this.line(this.buffer);
    this.buffer = '';
    this.line('');
  }

  line(line) {
    if (line === '') {
      if (this.data.length) {
        const text = this.data.join('\n');
        let data = text;
        try {
          data = JSON.parse(text);
        } catch {
          // plain-text data stays a string
        }
        this.onEvent({ event: this.event || 'message', data, id: this.lastEventId });
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') this.lastEventId = value;
  }
}

// Follows a job until it ends: the SSE stream first; if the stream cannot be opened or
// keeps dropping, GET /v1/jobs/{id} polling. onUpdate gets {type, data} for each event
// and {type: 'job', data: job} for each poll; resolves with the final job.
export function followJob(jobId, onUpdate, { signal, pollMs = 1500 } = {}) {
  const jobPath = `/v1/jobs/${encodeURIComponent(jobId)}`;
  const sleep = (ms) => new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

  async function poll() {
    while (!signal?.aborted) {
      const job = await api.get(jobPath, { signal });
      onUpdate({ type: 'job', data: job });
      if (['succeeded', 'failed', 'cancelled'].includes(job.state)) return job;
      await sleep(pollMs);
    }
    return null;
  }

  async function run() {
    let failures = 0;
    let lastEventId = null;
    while (!signal?.aborted && failures < 3) {
      try {
        await readEventStream(`${jobPath}/events`, (event) => {
          failures = 0;
          if (event.id) lastEventId = event.id; // resume from here if the stream drops
          onUpdate({ type: event.event, data: event.data });
        }, { signal, lastEventId });
      } catch (error) {
        if (signal?.aborted) return null;
        if (error instanceof ApiError && error.status !== 503) break; // no stream for us: poll
        failures += 1;
      }
      // The stream ended (job over, or the server closed it): confirm with a GET.
      const job = await api.get(jobPath, { signal });
      onUpdate({ type: 'job', data: job });
      if (['succeeded', 'failed', 'cancelled'].includes(job.state)) return job;
      await sleep(500);
    }
    return poll();
  }

  return run();
}

// Fetches `path` with the key and saves the body under the server's file name (from
// Content-Disposition) or `fallbackName`.
export async function download(path, fallbackName, { query } = {}) {
  const response = await fetch(path + buildQuery(query), { headers: authHeaders() });
  if (!response.ok) throw await problemFrom(response);
  const blob = await response.blob();
  const disposition = response.headers.get('Content-Disposition') || '';
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
  const name = match ? decodeURIComponent(match[1]) : fallbackName;
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return { name, size: blob.size, type: blob.type };
}
