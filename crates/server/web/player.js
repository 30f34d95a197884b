// Recording replay: an asciicast v2 file (`GET /api/v1/recordings/{id}/cast`)
// played into a read-only xterm.js, with play/pause, speed and a seekable
// progress bar.

import { Terminal } from './vendor/xterm/xterm.mjs';
import { h, render, heading, errorBox, field } from './ui.js';
import { main, onLeave } from './app.js';
import { apiText, seg } from './api.js';

/** Parses asciicast v2 text: `{header, events: [{t, kind, data}], duration}`. */
export function parseCast(text) {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (!lines.length) throw new Error('The recording is empty.');
  const header = JSON.parse(lines[0]);
  if (header.version !== 2) throw new Error(`Unsupported recording format (version ${header.version}).`);
  const events = [];
  for (const l of lines.slice(1)) {
    const e = JSON.parse(l);
    if (!Array.isArray(e) || e.length < 3) continue;
    events.push({ t: Number(e[0]), kind: e[1], data: String(e[2]) });
  }
  const duration = events.length ? events[events.length - 1].t : 0;
  return { header, events, duration };
}

const fmt = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, '0')}`;

export async function playerPage(id) {
  render(main, heading('Recording'), h('p', {}, 'Loading…'));
  let cast;
  try {
    cast = parseCast(await apiText(`/api/v1/recordings/${seg(id)}/cast`));
  } catch (e) {
    render(main, heading('Recording'), errorBox(e), h('a', { href: '#/recordings' }, 'Back to recordings'));
    return;
  }
  const { header, events, duration } = cast;
  const play = h('button', { type: 'button', class: 'primary', id: 'play', 'aria-pressed': 'false' }, 'Play');
  const speed = h('select', { id: 'speed' }, [1, 2, 4].map((s) => h('option', { value: s }, `${s}×`)));
  const seek = h('input', { type: 'range', min: 0, max: Math.max(duration, 0.001), step: 'any', value: 0, id: 'seek', 'aria-label': 'Position' });
  const time = h('span', { class: 'time', id: 'play-time', 'aria-live': 'off' }, `0:00 / ${fmt(duration)}`);
  const box = h('div', { class: 'terminal player', id: 'player' });
  const when = header.timestamp ? new Date(header.timestamp * 1000).toLocaleString() : '';
  render(
    main,
    heading('Recording'),
    h('p', {}, `${header.width}×${header.height}${when ? `, recorded ${when}` : ''}, ${fmt(duration)} long. `, h('a', { href: '#/recordings' }, 'Back to recordings')),
    h('div', { class: 'toolbar' }, play, field('Speed', speed), h('div', { class: 'seek' }, seek, time)),
    box,
  );
  const term = new Terminal({ cols: header.width || 80, rows: header.height || 24, disableStdin: true, scrollback: 2000, cursorBlink: false });
  term.open(box);

  let idx = 0; // next event to write
  let pos = 0; // seconds into the recording
  let playing = false;
  let timer = null;
  let wallStart = 0;
  let posStart = 0;

  const apply = (e) => {
    if (e.kind === 'o') term.write(e.data);
    else if (e.kind === 'r') {
      const [c, r] = e.data.split('x').map(Number);
      if (c > 0 && r > 0) term.resize(c, r);
    }
  };
  const show = () => {
    seek.value = String(pos);
    time.textContent = `${fmt(pos)} / ${fmt(duration)}`;
  };
  const advanceTo = (t) => {
    while (idx < events.length && events[idx].t <= t) apply(events[idx++]);
    pos = Math.min(t, duration);
    show();
  };
  const setPlaying = (on) => {
    playing = on;
    play.textContent = on ? 'Pause' : 'Play';
    play.setAttribute('aria-pressed', on ? 'true' : 'false');
    if (timer) clearInterval(timer);
    timer = null;
    if (on) {
      wallStart = performance.now();
      posStart = pos;
      timer = setInterval(tick, 30);
    }
  };
  const tick = () => {
    const t = posStart + ((performance.now() - wallStart) / 1000) * Number(speed.value);
    advanceTo(t);
    if (idx >= events.length && t >= duration) {
      setPlaying(false);
      box.dataset.finished = 'true';
    }
  };
  const restartAt = (t) => {
    term.reset();
    term.resize(header.width || 80, header.height || 24);
    idx = 0;
    delete box.dataset.finished;
    advanceTo(t);
    if (playing) setPlaying(true);
  };
  play.addEventListener('click', () => {
    if (!playing && idx >= events.length) restartAt(0);
    setPlaying(!playing);
  });
  speed.addEventListener('change', () => playing && setPlaying(true));
  seek.addEventListener('input', () => {
    const t = Number(seek.value);
    if (t < pos) restartAt(t);
    else advanceTo(t);
    if (playing) setPlaying(true);
  });
  onLeave(() => {
    if (timer) clearInterval(timer);
    term.dispose();
  });
  show();
}
