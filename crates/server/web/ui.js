// DOM helpers. Everything is built with createElement/textContent: no
// innerHTML, so nothing the API returns can become markup or script.

/** `h('button', {class: 'x', onclick: f}, 'text', child…)` */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Replaces the children of `el`. */
export function render(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/** An error message box (role=alert, so screen readers announce it). */
export function errorBox(err) {
  const msg = err && err.message ? err.message : String(err);
  return h('div', { class: 'error', role: 'alert' }, msg);
}

export function notice(text, kind = 'info') {
  return h('div', { class: `notice ${kind}`, role: 'status' }, text);
}

/** Shows an error (or clears it with null) in a status element. */
export function showError(slot, err) {
  render(slot, err ? errorBox(err) : null);
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString();
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(1)} ${units[i]}`;
}

/**
 * A table: `columns` = [{label, cell: (row) => node|text}], with a caption
 * for screen readers and an empty-state row.
 */
export function table(caption, columns, rows, empty = 'Nothing to show.') {
  const head = h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.label)));
  const body = rows.length
    ? rows.map((r) => h('tr', {}, columns.map((c) => h('td', { 'data-label': c.label }, clip(c.cell(r))))))
    : [h('tr', {}, h('td', { colspan: columns.length, class: 'empty' }, empty))];
  return h('div', { class: 'table-wrap' }, h('table', {}, h('caption', { class: 'sr-only' }, caption), h('thead', {}, head), h('tbody', {}, body)));
}

/** Plain text in a table cell, on one line cut with an ellipsis at the
 * column's width limit (the full value in its tooltip): however long a
 * value is (an endpoint may report anything), the other columns and the
 * action buttons stay on screen. */
function clip(cell) {
  if (typeof cell !== 'string' && typeof cell !== 'number') return cell;
  const text = String(cell);
  return h('span', { class: 'clip', title: text.length > 40 ? text : null }, text);
}

/** A labelled form field. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('small', {}, hint) : null);
}

/** A page heading that takes focus, so keyboard and screen-reader users land on the new page. */
export function heading(text) {
  return h('h1', { tabindex: '-1', class: 'page-title' }, text);
}

/** Runs an async action from a button: disables it meanwhile, shows errors in `slot`. */
export async function busy(button, slot, fn) {
  button.disabled = true;
  if (slot) showError(slot, null);
  try {
    return await fn();
  } catch (e) {
    if (slot) showError(slot, e);
    else throw e;
    return undefined;
  } finally {
    button.disabled = false;
  }
}

/** `a, b,c` → `['a', 'b', 'c']`: a comma-separated form field. */
export const splitList = (s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

/** A button that runs `fn` through `busy` (errors shown in `status`),
 * after the user confirms `confirmText` when one is given. */
export function actionButton(label, cls, status, confirmText, fn) {
  const b = h('button', { type: 'button', class: cls }, label);
  b.addEventListener('click', () => {
    if (confirmText && !window.confirm(confirmText)) return;
    busy(b, status, fn);
  });
  return b;
}
