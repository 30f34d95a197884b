// Reports: a dashboard of the analytics store's reports (`GET
// /api/v1/reports`, then each `GET /api/v1/reports/{name}` with the same
// filters), each drawn as a plain SVG chart (bars, stacked bars — package
// compliance: compliant, failed, pending —, or a line over days)
// with its table and CSV/JSON exports. No chart library: the SVG is made
// with createElementNS and presentation attributes (the CSP allows no
// inline styles), and every value goes in as text.

import { get, seg } from './api.js';
import { h, render, heading, table, notice, showError, field, busy } from './ui.js';
import { main } from './app.js';

const SVG = 'http://www.w3.org/2000/svg';
/** Bars or points drawn at most (the table has every row). */
const MAX_POINTS = 31;

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function cut(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/** A "nice" top for the value axis: 1, 2 or 5 × a power of ten. */
function niceMax(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * The chart of a report: labels from its text columns, heights from its
 * first number column.
 */
export function chart(report) {
  const num = report.columns.findIndex((c) => c.numeric);
  const dims = report.columns.map((c, i) => (c.numeric ? -1 : i)).filter((i) => i >= 0);
  const rows = report.rows.slice(0, MAX_POINTS);
  const labels = rows.map((r) => dims.map((i) => String(r[i] ?? '')).join(' · ') || '(none)');
  const values = rows.map((r) => Number(r[num]) || 0);
  const W = 640;
  const H = 260;
  const left = 44;
  const right = 12;
  // Stacked bars have their legend in a band of its own above the plot.
  const top = report.chart === 'stacked-bar' ? 34 : 12;
  const bottom = 78;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const max = niceMax(Math.max(0, ...values));
  const y = (v) => top + plotH - (v / max) * plotH;
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`,
    width: '100%',
    role: 'img',
    'aria-label': `${report.title}: chart of ${report.columns[num] ? report.columns[num].name : ''}`,
    class: 'report-chart',
    'data-report': report.name,
  });
  // Value axis: 0, half, top, with grid lines.
  for (const v of [0, max / 2, max]) {
    svg.appendChild(s('line', { x1: left, x2: W - right, y1: y(v), y2: y(v), stroke: '#c8ccd4', 'stroke-width': 1 }));
    svg.appendChild(s('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#5b6270' }, Number.isInteger(v) ? v : v.toFixed(1)));
  }
  if (!rows.length) {
    svg.appendChild(s('text', { x: left + plotW / 2, y: top + plotH / 2, 'text-anchor': 'middle', 'font-size': 13, fill: '#5b6270' }, 'No events in this window'));
    return svg;
  }
  const step = plotW / rows.length;
  const every = Math.max(1, Math.ceil(rows.length / 16));
  rows.forEach((_, i) => {
    const cx = left + step * i + step / 2;
    if (i % every === 0) {
      svg.appendChild(
        s('text', { x: cx, y: top + plotH + 14, 'text-anchor': 'end', 'font-size': 11, fill: '#3b4150', transform: `rotate(-35 ${cx} ${top + plotH + 14})` }, cut(labels[i], 22)),
      );
    }
  });
  if (report.chart === 'stacked-bar') {
    // The first number is the total; the following ones are its parts.
    const parts = report.columns.map((c, i) => (c.numeric ? i : -1)).filter((i) => i >= 0 && i !== num);
    const colours = ['#2e8540', '#c62828', '#9aa1ad', '#2f6fde'];
    const bw = Math.max(2, Math.min(48, step * 0.7));
    rows.forEach((r, i) => {
      const x = left + step * i + (step - bw) / 2;
      let base = 0;
      parts.forEach((col, k) => {
        const v = Number(r[col]) || 0;
        if (v > 0) {
          svg.appendChild(
            s('rect', { x, y: y(base + v), width: bw, height: Math.max(0, y(base) - y(base + v)), fill: colours[k % colours.length], class: `bar part-${report.columns[col].name}`, 'data-value': v }, s('title', {}, `${labels[i]}: ${v} ${report.columns[col].name}`)),
          );
        }
        base += v;
      });
    });
    // The legend, top right.
    parts.forEach((col, k) => {
      const lx = W - right - 90 * (parts.length - k);
      svg.appendChild(s('rect', { x: lx, y: 6, width: 10, height: 10, fill: colours[k % colours.length] }));
      svg.appendChild(s('text', { x: lx + 14, y: 15, 'font-size': 11, fill: '#3b4150' }, report.columns[col].name));
    });
  } else if (report.chart === 'line') {
    const pts = values.map((v, i) => `${left + step * i + step / 2},${y(v)}`).join(' ');
    svg.appendChild(s('polyline', { points: pts, fill: 'none', stroke: '#2f6fde', 'stroke-width': 2.5, class: 'series' }));
    values.forEach((v, i) => {
      svg.appendChild(s('circle', { cx: left + step * i + step / 2, cy: y(v), r: 3.5, fill: '#2f6fde', class: 'point' }, s('title', {}, `${labels[i]}: ${v}`)));
    });
  } else {
    const bw = Math.max(2, Math.min(48, step * 0.7));
    values.forEach((v, i) => {
      const x = left + step * i + (step - bw) / 2;
      svg.appendChild(
        s('rect', { x, y: y(v), width: bw, height: Math.max(0, top + plotH - y(v)), fill: '#2f6fde', rx: 2, class: 'bar', 'data-value': v }, s('title', {}, `${labels[i]}: ${v}`)),
      );
    });
  }
  svg.appendChild(s('line', { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, stroke: '#3b4150', 'stroke-width': 1 }));
  return svg;
}

function query(f, format) {
  const q = new URLSearchParams();
  for (const k of ['since', 'until', 'group', 'user']) if (f[k]) q.set(k, f[k]);
  if (format) q.set('format', format);
  const t = q.toString();
  return t ? `?${t}` : '';
}

function reportCard(info, report, f) {
  const cols = report.columns.map((c, i) => ({ label: c.name, cell: (r) => (r[i] === null ? '—' : r[i]) }));
  const path = `/api/v1/reports/${seg(info.name)}`;
  return h(
    'section',
    { class: 'card report', id: `report-${info.name}`, 'aria-labelledby': `report-${info.name}-title` },
    h('h2', { id: `report-${info.name}-title` }, info.title),
    h('p', { class: 'hint' }, info.description),
    chart(report),
    table(info.title, cols, report.rows.slice(0, 10), 'No events in this window.'),
    report.rows.length > 10 ? h('p', { class: 'hint' }, `${report.rows.length - 10} more rows in the export.`) : null,
    h(
      'p',
      {},
      h('a', { class: 'button', href: `${path}${query(f, 'csv')}`, download: `${info.name}.csv` }, 'Export CSV'),
      ' ',
      h('a', { class: 'button', href: `${path}${query(f, 'json')}`, download: `${info.name}.json` }, 'Export JSON'),
    ),
  );
}

export async function reportsPage() {
  const since = h('input', { type: 'date', name: 'since' });
  const until = h('input', { type: 'date', name: 'until' });
  const group = h('input', { name: 'group', autocomplete: 'off' });
  const user = h('input', { name: 'user', autocomplete: 'off' });
  const status = h('div', { 'aria-live': 'polite' });
  const apply = h('button', { type: 'submit', class: 'primary' }, 'Apply');
  const form = h(
    'form',
    { class: 'card grid-form', 'aria-label': 'Report filters' },
    field('From (day, UTC)', since),
    field('Before (day, UTC)', until),
    field('Endpoint group', group),
    field('User', user),
    h('div', { class: 'field' }, apply),
  );
  const cards = h('div', { id: 'report-cards' });
  const list = await get('/api/v1/reports');
  const load = async () => {
    const f = { since: since.value, until: until.value, group: group.value.trim(), user: user.value.trim() };
    const reports = await Promise.all(list.map((info) => get(`/api/v1/reports/${seg(info.name)}${query(f)}`)));
    render(cards, list.map((info, i) => reportCard(info, reports[i], f)));
    main.dataset.loaded = 'reports';
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await busy(apply, status, load);
  });
  render(main, heading('Reports'), h('p', { class: 'hint' }, 'From the analytics store, read with its read-only identity. Events arrive within seconds.'), form, status, cards);
  try {
    await load();
  } catch (e) {
    showError(status, e);
    render(cards, notice('The reports could not be loaded.', 'warn'));
  }
}
