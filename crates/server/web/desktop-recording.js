// Desktop recordings (the gateway's JSON-lines format, content type
// application/x-jumpgate-desktop): parsing and the index arithmetic of
// seeking. Pure functions, no DOM: unit-tested in node
// (crates/jumpgate/tests/browser/units.test.mjs).
//
//   {"jumpgate":"desktop","version":1,"width":W,"height":H,"timestamp":T,"title":"user@endpoint"}
//   [t, "i", DesktopInfo]       [t, "v", base64 codec packet]
//   [t, "c", [x, y, shape]]     [t, "s", {id, width, height, hot_x, hot_y, rgba: base64}]
//   [t, "x", ControlState]      [t, "b", {from, bytes}]   (clipboard: size only)

/** The first byte of a codec packet that starts a new stream (crates/codec packet.rs). */
const STREAM_START = 1;

function base64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Whether `text` starts like a desktop recording. */
export function isDesktopRecording(text) {
  const first = text.slice(0, Math.max(0, text.indexOf('\n')) || text.length);
  try {
    return JSON.parse(first).jumpgate === 'desktop';
  } catch {
    return false;
  }
}

/** Words for a control-state or clipboard event (captions, timeline). */
export function caption(e) {
  if (e.kind === 'x') {
    if (e.data.note === 'refused') return `request refused (${e.data.message})`;
    if (e.data.note === 'failed') return `the session failed at the endpoint (${e.data.message})`;
    const what = { allowed: 'technician has control', 'view-only': 'view only', 'taken-back': 'the user took back control', ended: 'the user ended the session' }[e.data.input] || e.data.input;
    return e.data.message && e.data.message !== what ? `${what} (${e.data.message})` : what;
  }
  if (e.kind === 'b') return `clipboard: ${e.data.bytes} bytes from the ${e.data.from}`;
  if (e.kind === 'i') return `screen ${e.data.width}×${e.data.height}${e.data.monitor === null || e.data.monitor === undefined ? '' : `, monitor ${e.data.monitor}`}`;
  return '';
}

/**
 * Parses a recording: `{header, events: [{t, kind, data, start?}], duration,
 * marks}`; `marks` are the control-state and clipboard events (the
 * timeline). A line that is not an event is an error naming its number.
 * `codecs`: the screen codecs the caller's decoder draws (the contract's
 * DESKTOP_CODECS); a recording in another one is refused rather than drawn
 * wrongly (an old recording's `jumpgate-1` is one of them).
 */
export function parseDesktopRecording(text, codecs) {
  const lines = text.split('\n');
  const header = JSON.parse(lines[0] || 'null');
  if (!header || header.jumpgate !== 'desktop') throw new Error('This is not a desktop recording.');
  if (header.version !== 1) throw new Error(`Unsupported desktop recording format (version ${header.version}).`);
  const events = [];
  for (let n = 1; n < lines.length; n++) {
    const l = lines[n];
    if (l.trim() === '') continue;
    let e;
    try {
      e = JSON.parse(l);
    } catch {
      throw new Error(`The recording is damaged at line ${n + 1}.`);
    }
    if (!Array.isArray(e) || e.length < 3 || typeof e[1] !== 'string') throw new Error(`The recording is damaged at line ${n + 1}.`);
    const t = Number(e[0]);
    const kind = e[1];
    let data = e[2];
    const ev = { t, kind, data };
    if (kind === 'v') {
      ev.data = base64(String(data));
      ev.start = ev.data[0] === STREAM_START;
    } else if (kind === 'c') {
      ev.data = { x: Number(data[0]), y: Number(data[1]), shape: Number(data[2]) };
    } else if (kind === 's') {
      ev.data = { ...data, rgba: base64(String(data.rgba || '')) };
    } else if (kind === 'i' && codecs && !codecs.includes(data && data.codec)) {
      // Its packets would be drawn wrongly (an old recording's jumpgate-1 is known).
      throw new Error(`This recording's screen codec (${data && data.codec}) cannot be replayed by this console.`);
    } else if (!['i', 'x', 'b'].includes(kind)) {
      continue; // a kind from a newer gateway: skipped
    }
    events.push(ev);
  }
  const duration = events.length ? events[events.length - 1].t : 0;
  const marks = events.filter((e) => e.kind === 'x' || e.kind === 'b');
  return { header, events, duration, marks };
}

/** The number of events at or before `t` (events are in time order). */
export function countAt(events, t) {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (events[mid].t <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Where to start applying packets to show the first `count` events: the
 * last stream start among them (the codec's StreamStart resets the
 * picture: nothing before it matters), or 0.
 */
export function restartPoint(events, count) {
  for (let i = Math.min(count, events.length) - 1; i >= 0; i--) {
    if (events[i].kind === 'v' && events[i].start) return i;
  }
  return 0;
}

/** The last event of `kind` among the first `count` (or null). */
export function lastOf(events, count, kind, pred = () => true) {
  for (let i = Math.min(count, events.length) - 1; i >= 0; i--) {
    if (events[i].kind === kind && pred(events[i].data)) return events[i];
  }
  return null;
}
