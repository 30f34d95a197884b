// Search inside terminal recordings (`GET /api/v1/recordings/search`): a
// search box on the recordings page whose hits open the player at the
// moment of the match (`#/recordings/ID?t=SECONDS`).

import { get, seg } from './api.js';
import { h, render, showError, field, fmtTime } from './ui.js';

const fmtOffset = (s) => `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, '0')}`;

/**
 * The player's route for recording `id` at `t` seconds. `t` is written in
 * full (not rounded): the player shows every event up to it, the hit's own
 * included.
 */
export function playerAt(id, t) {
  return `#/recordings/${seg(id)}?t=${seg(String(Number(t)))}`;
}

/** The search section: a form, its status, its results. */
export function recordingSearch() {
  const input = h('input', { type: 'search', id: 'recording-search-q', name: 'q', maxlength: 256, placeholder: 'rm -rf /var/lib', autocomplete: 'off', spellcheck: 'false' });
  const go = h('button', { type: 'submit', id: 'recording-search-go' }, 'Search');
  const status = h('div', { 'aria-live': 'polite', id: 'recording-search-status' });
  const results = h('div', { id: 'recording-search-results' });
  const more = h('button', { type: 'button', id: 'recording-search-more', hidden: true }, 'More results');
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Search inside recordings' },
    field('Text typed or printed', input, 'Whole words; case and spacing are ignored.'),
    go,
  );
  const list = h('ol', { class: 'search-hits' });
  let cursor = null;
  let query = '';

  const hitItem = (hit) => {
    const r = hit.recording;
    const links = hit.matches.map((m) =>
      h('li', {},
        h('a', { href: playerAt(r.id, m.offset_secs), class: 'search-hit', dataset: { recording: r.id, offset: String(m.offset_secs) } },
          h('span', { class: 'time' }, fmtOffset(m.offset_secs)),
          ' ',
          h('span', { class: 'stream' }, m.stream === 'input' ? 'typed' : 'output'),
          ' ',
          h('code', {}, m.snippet))));
    return h('li', { class: 'search-result' },
      h('p', {}, h('strong', {}, `${r.username} on ${r.endpoint}`), `, ${fmtTime(r.started_at)} (session ${r.session_id})`),
      h('ul', {}, links),
      hit.more ? h('p', { class: 'hint' }, 'More matches in this recording.') : null);
  };

  const load = async (first) => {
    const q = new URLSearchParams({ q: query, limit: '20' });
    if (!first && cursor) q.set('cursor', cursor);
    let page;
    try {
      page = await get(`/api/v1/recordings/search?${q}`);
      showError(status, null);
    } catch (e) {
      if (first) render(results);
      more.hidden = true;
      showError(status, e);
      return;
    }
    if (first) render(list);
    for (const hit of page.results) list.appendChild(hitItem(hit));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    const n = list.children.length;
    const pending = page.not_indexed ? ` ${page.not_indexed} recording(s) not searchable yet (running, or being indexed).` : '';
    status.textContent = `${n ? `${n} recording(s) found` : 'Nothing found'}${cursor ? ' so far' : ''}.${pending}`;
    render(results, n ? list : null);
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    query = input.value.trim();
    cursor = null;
    if (!query) {
      status.textContent = 'Type the text to search for.';
      render(results);
      more.hidden = true;
      return;
    }
    load(true);
  });
  more.addEventListener('click', () => load(false));
  return h('section', { 'aria-labelledby': 'recording-search-title', class: 'card' },
    h('h2', { id: 'recording-search-title' }, 'Search inside recordings'),
    form, status, results, more);
}
