// Recording replay: an asciicast v2 file (`GET /api/v1/recordings/{id}/cast`)
// played into a read-only xterm.js, with play/pause, speed and a seekable
// progress bar; a desktop recording (the same route, JSON lines, see
// desktop-recording.js) drawn by the codec's decoder on a canvas.

import { Terminal } from './vendor/xterm/xterm.mjs';
import { h, render, heading, errorBox, field } from './ui.js';
import { main, onLeave } from './app.js';
import { apiText, seg } from './api.js';
import { DesktopDecoder } from './desktop-decoder.js';
import { isDesktopRecording, parseDesktopRecording, countAt, restartPoint, lastOf, caption } from './desktop-recording.js';
import { DESKTOP_CODECS } from './contract.js';

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

/** The player of recording `id`, positioned at `startAt` seconds (a search hit's moment). */
export async function playerPage(id, startAt = 0) {
  render(main, heading('Recording'), h('p', {}, 'Loading…'));
  let cast;
  try {
    const text = await apiText(`/api/v1/recordings/${seg(id)}/cast`);
    if (isDesktopRecording(text)) {
      desktopPlayer(parseDesktopRecording(text, DESKTOP_CODECS));
      return;
    }
    cast = parseCast(text);
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
  // Opened at a moment (a search hit): everything up to it is on the
  // screen, paused there.
  if (startAt > 0) advanceTo(Math.min(startAt, duration));
  box.dataset.ready = 'true';
}

// --- Desktop recordings ----------------------------------------------------

/**
 * Plays a parsed desktop recording. The decoder draws into a canvas that is
 * not on the page; the visible one copies it once per animation frame,
 * except while seeking: seeking back restarts from the last stream start
 * before the target (the codec's StreamStart resets the picture), seeking
 * forward applies the packets in between (or also jumps to a later stream
 * start), and only the picture at the target is shown.
 */
function desktopPlayer(rec) {
  const { header, events, duration, marks } = rec;
  const play = h('button', { type: 'button', class: 'primary', id: 'play', 'aria-pressed': 'false' }, 'Play');
  const speed = h('select', { id: 'speed' }, [1, 2, 4, 8].map((s) => h('option', { value: s }, `${s}×`)));
  const seek = h('input', { type: 'range', min: 0, max: Math.max(duration, 0.001), step: 'any', value: 0, id: 'seek', 'aria-label': 'Position' });
  const time = h('span', { class: 'time', id: 'play-time', 'aria-live': 'off' }, `0:00 / ${fmt(duration)}`);
  const scale = h('select', { id: 'replay-scale' }, h('option', { value: 'fit' }, 'Fit'), h('option', { value: '1' }, '1:1'));
  const captionBox = h('div', { class: 'captions', id: 'replay-caption', 'aria-live': 'polite' });
  const markButtons = marks.map((m) => {
    const b = h('button', { type: 'button', dataset: { t: m.t, kind: m.kind } }, `${fmt(m.t)} ${caption(m)}`);
    b.addEventListener('click', () => {
      seekTo(m.t);
    });
    return b;
  });
  const timeline = marks.length
    ? h('section', { 'aria-labelledby': 'replay-events-title' }, h('h2', { id: 'replay-events-title', class: 'sr-only' }, 'Control and clipboard events'),
      h('ul', { class: 'timeline-events', id: 'replay-events' }, markButtons.map((b) => h('li', {}, b))))
    : null;
  const canvas = h('canvas', { id: 'replay-canvas', width: header.width || 640, height: header.height || 360, 'aria-label': `Replay of ${header.title || 'a desktop session'}` });
  const cursorCanvas = h('canvas', { class: 'desk-cursor', width: canvas.width, height: canvas.height, 'aria-hidden': 'true' });
  const screen = h('div', { class: 'desk-screen fit', id: 'replay-screen' }, canvas, cursorCanvas);
  const when = header.timestamp ? new Date(header.timestamp * 1000).toLocaleString() : '';
  render(
    main,
    heading('Desktop recording'),
    h('p', {}, `${header.title ? `${header.title}, ` : ''}${header.width}×${header.height}${when ? `, recorded ${when}` : ''}, ${fmt(duration)} long. `, h('a', { href: '#/recordings' }, 'Back to recordings')),
    h('div', { class: 'toolbar' }, play, field('Speed', speed), field('Scale', scale), h('div', { class: 'seek' }, seek, time)),
    captionBox,
    timeline,
    h('div', { class: 'desk-stage' }, screen),
  );

  // The decoder's canvas, off the page.
  const work = document.createElement('canvas');
  const view = canvas.getContext('2d', { alpha: false });
  let decoder = new DesktopDecoder(work, { onError: () => {} });
  let applied = 0; // events [0, applied) went to the decoder
  let target = 0; // events [0, target) should be shown
  let resetTo = null; // restart the decoder at this event first
  let running = false;
  let seeking = false;
  let dirty = false;
  let pos = 0;
  let playing = false;
  let timer = null;
  let wallStart = 0;
  let posStart = 0;
  let frame = 0;

  const pump = async () => {
    if (running) return;
    running = true;
    screen.dataset.ready = 'false';
    try {
      for (;;) {
        if (resetTo !== null) {
          decoder.close();
          decoder = new DesktopDecoder(work, { onError: () => {} });
          applied = resetTo;
          resetTo = null;
        }
        if (applied >= target) break;
        const e = events[applied++];
        if (e.kind !== 'v') continue;
        try {
          await decoder.push(e.data);
        } catch {
          /* a damaged packet: the next stream start repairs the picture */
        }
        dirty = true;
      }
    } finally {
      running = false;
      seeking = false;
      dirty = true;
      screen.dataset.applied = String(applied);
      screen.dataset.ready = 'true';
    }
  };
  /** Shows the picture at `t`: `jump` hides the frames on the way. */
  const goTo = (t, jump) => {
    const count = countAt(events, t);
    const restart = restartPoint(events, count);
    if (count < applied || resetTo !== null || restart > applied) resetTo = restart;
    target = count;
    if (jump && (resetTo !== null || count - applied > 1)) seeking = true;
    pos = Math.min(Math.max(t, 0), duration);
    pump();
  };

  const drawCursor = () => {
    const count = countAt(events, pos);
    const ctx = cursorCanvas.getContext('2d');
    ctx.clearRect(0, 0, cursorCanvas.width, cursorCanvas.height);
    const c = lastOf(events, count, 'c');
    if (!c || !c.data.shape) return;
    const s = lastOf(events, count, 's', (d) => d.id === c.data.shape);
    if (!s || !s.data.width || !s.data.height) return;
    if (!s.image) s.image = new ImageData(new Uint8ClampedArray(s.data.rgba), s.data.width, s.data.height);
    ctx.putImageData(s.image, c.data.x - s.data.hot_x, c.data.y - s.data.hot_y);
  };
  let lastCaption = null;
  const show = () => {
    seek.value = String(pos);
    time.textContent = `${fmt(pos)} / ${fmt(duration)}`;
    const count = countAt(events, pos);
    const mark = [...marks].reverse().find((m) => m.t <= pos) || null;
    if (mark !== lastCaption) {
      lastCaption = mark;
      captionBox.textContent = mark ? caption(mark) : '';
      for (const b of markButtons) b.setAttribute('aria-current', mark && Number(b.dataset.t) === mark.t && b.dataset.kind === mark.kind ? 'true' : 'false');
    }
    if (String(count) !== screen.dataset.count) dirty = true;
    screen.dataset.count = String(count);
  };
  const paint = () => {
    frame = requestAnimationFrame(paint);
    if (!dirty || seeking || !work.width) return;
    dirty = false;
    if (canvas.width !== work.width || canvas.height !== work.height) {
      canvas.width = work.width;
      canvas.height = work.height;
    }
    if (cursorCanvas.width !== work.width || cursorCanvas.height !== work.height) {
      cursorCanvas.width = work.width;
      cursorCanvas.height = work.height;
    }
    view.drawImage(work, 0, 0);
    drawCursor();
  };
  frame = requestAnimationFrame(paint);

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
    goTo(Math.min(t, duration), false);
    show();
    if (t >= duration) {
      setPlaying(false);
      screen.dataset.finished = 'true';
    }
  };
  const seekTo = (t) => {
    delete screen.dataset.finished;
    goTo(t, true);
    show();
    if (playing) setPlaying(true);
  };
  play.addEventListener('click', () => {
    if (!playing && pos >= duration) seekTo(0);
    setPlaying(!playing);
  });
  speed.addEventListener('change', () => playing && setPlaying(true));
  scale.addEventListener('change', () => screen.classList.toggle('fit', scale.value === 'fit'));
  seek.addEventListener('input', () => seekTo(Number(seek.value)));
  onLeave(() => {
    if (timer) clearInterval(timer);
    cancelAnimationFrame(frame);
    decoder.close();
  });
  // The first picture (and the first second's events) at once.
  goTo(0, true);
  show();
}
