// A small Python highlighter for model sources, and a source view that can point at a
// line and column (for language errors). Tokens are escaped before they are wrapped,
// so user source can never inject markup.

import { escapeHtml, h } from './util.js';

const KEYWORDS = new Set(('and as assert break class continue def del elif else except False finally for from '
  + 'global if import in is lambda None nonlocal not or pass raise return True try while with yield').split(' '));
const NAMESPACES = new Set(['pyro', 'dist', 'torch', 'nn', 'constraints', 'poutine', 'F']);
const BUILTINS = new Set(['range', 'len', 'print', 'float', 'int', 'min', 'max', 'abs', 'sum', 'enumerate', 'zip', 'list', 'tuple', 'dict', 'bool', 'round']);

const TOKEN = new RegExp([
  '(#[^\\n]*)', // 1 comment
  '([rRbBuUfF]{0,2}(?:"""[\\s\\S]*?(?:"""|$)|\'\'\'[\\s\\S]*?(?:\'\'\'|$)|"(?:[^"\\\\\\n]|\\\\.)*"?|\'(?:[^\'\\\\\\n]|\\\\.)*\'?))', // 2 string
  '(\\b\\d[\\d_]*(?:\\.\\d*)?(?:[eE][+-]?\\d+)?j?\\b|\\.\\d+(?:[eE][+-]?\\d+)?)', // 3 number
  '(@[A-Za-z_][\\w.]*)', // 4 decorator
  '([A-Za-z_]\\w*)', // 5 name
].join('|'), 'g');

// Source -> HTML with <span class="tok-...">; newlines are kept (multi-line strings span
// lines, so the caller splits the HTML per line with splitHtmlLines).
export function highlightPython(source) {
  let out = '';
  let last = 0;
  let prevName = '';
  for (const m of source.matchAll(TOKEN)) {
    out += escapeHtml(source.slice(last, m.index));
    last = m.index + m[0].length;
    const text = escapeHtml(m[0]);
    let cls = null;
    if (m[1]) cls = 'comment';
    else if (m[2]) cls = 'string';
    else if (m[3]) cls = 'number';
    else if (m[4]) cls = 'decorator';
    else if (m[5]) {
      if (KEYWORDS.has(m[0])) cls = 'keyword';
      else if (prevName === 'def') cls = 'function';
      else if (NAMESPACES.has(m[0])) cls = 'namespace';
      else if (BUILTINS.has(m[0])) cls = 'builtin';
      prevName = m[0];
    }
    out += cls ? `<span class="tok-${cls}">${text}</span>` : text;
  }
  return out + escapeHtml(source.slice(last));
}

// Splits highlighted HTML into lines, closing and reopening spans at line ends so each
// line is well-formed on its own.
export function splitHtmlLines(html) {
  const lines = [];
  let open = [];
  let current = '';
  const re = /(<span class="[^"]*">)|(<\/span>)|(\n)|([^<\n]+)/g;
  for (const m of html.matchAll(re)) {
    if (m[1]) { open.push(m[1]); current += m[1]; } else if (m[2]) { open.pop(); current += m[2]; } else if (m[3]) {
      lines.push(current + '</span>'.repeat(open.length));
      current = open.join('');
    } else current += m[4];
  }
  lines.push(current + '</span>'.repeat(open.length));
  open = [];
  return lines;
}

// A read-only, numbered, highlighted view of `source`. With `error: {line, col, message}`
// the line is marked, a caret points at the column and the message sits under it.
export function sourceView(source, { error = null, label = 'Model source' } = {}) {
  const lines = splitHtmlLines(highlightPython(source || ''));
  const list = h('ol', { class: 'code-lines' });
  lines.forEach((lineHtml, i) => {
    const n = i + 1;
    const code = h('code');
    code.innerHTML = lineHtml || ' '; // escaped by highlightPython
    const isError = error && error.line === n;
    const li = h('li', { class: ['code-line', isError && 'error-line'], dataset: { line: String(n) } }, code);
    if (isError) li.setAttribute('aria-current', 'true');
    list.append(li);
    if (isError) {
      const col = Math.max(1, Number(error.col) || 1);
      list.append(h('li', { class: 'code-error', role: 'note', dataset: { errorLine: String(n) } },
        h('span', { class: 'caret', 'aria-hidden': 'true' }, `${' '.repeat(col - 1)}^`),
        h('span', { class: 'code-error-message' }, `Line ${n}${error.col ? `, column ${error.col}` : ''}: ${withoutPosition(error.message)}`)));
    }
  });
  return h('figure', { class: 'source-view' },
    h('figcaption', { class: 'visually-hidden' }, label),
    h('pre', { tabindex: '0', 'aria-label': label }, list));
}

// Language errors repeat their position in the message ("line 9, col 8: ..."); the view
// already says where, so the message is shown without it.
export function withoutPosition(message) {
  return String(message || '').replace(/^\s*line \d+(?:,\s*col(?:umn)? \d+)?:\s*/i, '');
}
