// Keyboard and mouse translation for the desktop page: browser events →
// the session's input messages (X keysyms, the proto's button bits, wheel
// notches). Pure functions, no DOM: unit-tested in node
// (crates/jumpgate/tests/browser/keys.test.mjs).

/** X keysyms of the keys that produce no text (`KeyboardEvent.key` names). */
export const NAMED_KEYS = Object.freeze({
  Backspace: 0xff08,
  Tab: 0xff09,
  Enter: 0xff0d,
  Pause: 0xff13,
  ScrollLock: 0xff14,
  Escape: 0xff1b,
  Home: 0xff50,
  ArrowLeft: 0xff51,
  ArrowUp: 0xff52,
  ArrowRight: 0xff53,
  ArrowDown: 0xff54,
  PageUp: 0xff55,
  PageDown: 0xff56,
  End: 0xff57,
  PrintScreen: 0xff61,
  Insert: 0xff63,
  ContextMenu: 0xff67,
  NumLock: 0xff7f,
  CapsLock: 0xffe5,
  Delete: 0xffff,
  AltGraph: 0xfe03, // ISO_Level3_Shift
});

/** Modifiers: the left or right keysym by `KeyboardEvent.code`. */
const MODIFIERS = Object.freeze({
  Shift: [0xffe1, 0xffe2],
  Control: [0xffe3, 0xffe4],
  Alt: [0xffe9, 0xffea],
  Meta: [0xffeb, 0xffec], // the Windows/Super key (Super_L, Super_R)
  OS: [0xffeb, 0xffec],
  Super: [0xffeb, 0xffec],
});

export const KEYSYM = Object.freeze({
  SHIFT_L: 0xffe1,
  CONTROL_L: 0xffe3,
  ALT_L: 0xffe9,
  SUPER_L: 0xffeb,
  ESCAPE: 0xff1b,
  TAB: 0xff09,
  DELETE: 0xffff,
  PRINT: 0xff61,
  F4: 0xffc1,
});

/**
 * The keysym for typing one character, as crates/desktop's
 * `keysym::from_char`: Latin-1 characters are their own keysyms, control
 * characters their keys, everything else `0x0100_0000 + code point`.
 */
export function keysymForChar(ch) {
  const cp = ch.codePointAt(0);
  if (cp === 0x0a || cp === 0x0d) return NAMED_KEYS.Enter;
  if (cp === 0x09) return NAMED_KEYS.Tab;
  if (cp === 0x08) return NAMED_KEYS.Backspace;
  if (cp === 0x1b) return NAMED_KEYS.Escape;
  if (cp === 0x7f) return NAMED_KEYS.Delete;
  if ((cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff)) return cp;
  return 0x01000000 + cp;
}

/**
 * The keysym of a key event (`{key, code}` of a KeyboardEvent), or null for
 * what is not sent (dead keys, IME composition, unknown names). Keys that
 * produce text are sent by the character's keysym, so "Grüße ½ €" arrives
 * as typed whatever the endpoint's layout.
 */
export function keysymForEvent({ key, code }) {
  if (typeof key !== 'string' || key === '' || key === 'Dead' || key === 'Unidentified' || key === 'Process') return null;
  const chars = [...key];
  if (chars.length === 1) return keysymForChar(key);
  if (MODIFIERS[key]) return MODIFIERS[key][typeof code === 'string' && code.endsWith('Right') ? 1 : 0];
  if (NAMED_KEYS[key] !== undefined) return NAMED_KEYS[key];
  const f = /^F([1-9][0-9]?)$/.exec(key);
  if (f && Number(f[1]) <= 35) return 0xffbe + Number(f[1]) - 1;
  return null;
}

/**
 * The session's button bits (proto `desktop::button`: left 1, middle 2,
 * right 4, back 8, forward 16) from `MouseEvent.buttons` (left 1, right 2,
 * middle 4, back 8, forward 16).
 */
export function buttonBits(domButtons) {
  let b = domButtons & (1 | 8 | 16);
  if (domButtons & 2) b |= 4;
  if (domButtons & 4) b |= 2;
  return b;
}

/** Pixels of wheel movement per notch (`deltaMode` 0); lines per notch (mode 1). */
const PIXELS_PER_NOTCH = 100;
const LINES_PER_NOTCH = 3;

/**
 * Turns wheel deltas into whole notches, keeping the remainder (touchpads
 * send many small deltas). `take(ev)` returns `{dx, dy}` notches to send now
 * (both 0: nothing to send).
 */
export class WheelAccumulator {
  constructor() {
    this.x = 0;
    this.y = 0;
  }

  take({ deltaX = 0, deltaY = 0, deltaMode = 0 }) {
    const unit = deltaMode === 0 ? 1 / PIXELS_PER_NOTCH : deltaMode === 1 ? 1 / LINES_PER_NOTCH : 1;
    this.x += deltaX * unit;
    this.y += deltaY * unit;
    const dx = Math.trunc(this.x);
    const dy = Math.trunc(this.y);
    this.x -= dx;
    this.y -= dy;
    const clamp = (n) => Math.max(-32768, Math.min(32767, n));
    return { dx: clamp(dx), dy: clamp(dy) };
  }
}

/**
 * A pointer position on the page → the remote screen's pixel (clamped to
 * the screen), given the drawn element's box and the screen size.
 */
export function toScreen(clientX, clientY, box, width, height) {
  if (!width || !height || !box.width || !box.height) return { x: 0, y: 0 };
  const x = Math.floor(((clientX - box.left) * width) / box.width);
  const y = Math.floor(((clientY - box.top) * height) / box.height);
  return { x: Math.max(0, Math.min(width - 1, x)), y: Math.max(0, Math.min(height - 1, y)) };
}

/** Key combinations the browser or the local system keeps, for the keys menu. */
export const SPECIAL_KEYS = Object.freeze([
  { id: 'ctrl-alt-del', label: 'Ctrl+Alt+Del', keys: [KEYSYM.CONTROL_L, KEYSYM.ALT_L, KEYSYM.DELETE] },
  { id: 'super', label: 'Super (Windows key)', keys: [KEYSYM.SUPER_L] },
  { id: 'alt-tab', label: 'Alt+Tab', keys: [KEYSYM.ALT_L, KEYSYM.TAB] },
  { id: 'ctrl-esc', label: 'Ctrl+Esc', keys: [KEYSYM.CONTROL_L, KEYSYM.ESCAPE] },
  { id: 'alt-f4', label: 'Alt+F4', keys: [KEYSYM.ALT_L, KEYSYM.F4] },
  { id: 'print', label: 'PrintScreen', keys: [KEYSYM.PRINT] },
]);

/** The presses and releases of a combination: `[[keysym, down]…]`. */
export function comboEvents(keys) {
  return [...keys.map((k) => [k, true]), ...[...keys].reverse().map((k) => [k, false])];
}

// --- Session messages of desktop input (proto::desktop, big-endian) ------

export function pointerBody(x, y, buttons) {
  const b = new Uint8Array(5);
  const v = new DataView(b.buffer);
  v.setUint16(0, x, false);
  v.setUint16(2, y, false);
  b[4] = buttons & 0xff;
  return b;
}

export function wheelBody(dx, dy) {
  const b = new Uint8Array(4);
  const v = new DataView(b.buffer);
  v.setInt16(0, dx, false);
  v.setInt16(2, dy, false);
  return b;
}

export function keyBody(keysym, down) {
  const b = new Uint8Array(5);
  new DataView(b.buffer).setUint32(0, keysym >>> 0, false);
  b[4] = down ? 1 : 0;
  return b;
}

export function u32Body(n) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, false);
  return b;
}

export function u64Body(n) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), false);
  return b;
}

export function readU64(body) {
  return Number(new DataView(body.buffer, body.byteOffset, body.byteLength).getBigUint64(0, false));
}

/** `Cursor`: i32 x, i32 y, u32 shape. */
export function parseCursor(body) {
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (body.byteLength !== 12) throw new Error('cursor message must be 12 bytes');
  return { x: v.getInt32(0, false), y: v.getInt32(4, false), shape: v.getUint32(8, false) };
}

/** `CursorShape`: u32 id, u16 width, height, hot_x, hot_y, RGBA rows. */
export function parseCursorShape(body) {
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (body.byteLength < 12) throw new Error('cursor shape message too short');
  const s = { id: v.getUint32(0, false), width: v.getUint16(4, false), height: v.getUint16(6, false), hot_x: v.getUint16(8, false), hot_y: v.getUint16(10, false) };
  s.rgba = body.subarray(12);
  if (s.rgba.length !== s.width * s.height * 4) throw new Error('cursor shape size does not match its pixels');
  return s;
}

/** `Video`: u32 seq, then one codec packet. */
export function parseVideo(body) {
  if (body.byteLength < 4) throw new Error('video message too short');
  return { seq: new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0, false), data: body.subarray(4) };
}
