// Unit tests (node --test) of the console's pure modules: the desktop
// page's keyboard and mouse translation (web/keys.js) and desktop
// recordings (web/desktop-recording.js). Run by
// crates/jumpgate/tests/e2e/web.rs (`the_consoles_pure_modules_pass_their_unit_tests`).
//
// The files are loaded as they are served (ES modules without a
// package.json around them), through data: URLs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const web = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../server/web');
const load = (name) => import(`data:text/javascript;base64,${fs.readFileSync(path.join(web, name)).toString('base64')}`);
const K = await load('keys.js');
const R = await load('desktop-recording.js');

test('characters are sent by their keysyms', () => {
  const typed = [...'Grüße, Wörld! ½ €'].map((c) => K.keysymForEvent({ key: c, code: 'KeyX' }));
  assert.deepEqual(typed, [0x47, 0x72, 0xfc, 0xdf, 0x65, 0x2c, 0x20, 0x57, 0xf6, 0x72, 0x6c, 0x64, 0x21, 0x20, 0xbd, 0x20, 0x010020ac]);
  assert.equal(K.keysymForChar('\n'), 0xff0d);
  assert.equal(K.keysymForChar('😀'), 0x01000000 + 0x1f600);
  assert.equal(K.keysymForChar('ж'), 0x01000436);
});

test('named keys, modifiers and function keys map to X keysyms', () => {
  const ks = (key, code = '') => K.keysymForEvent({ key, code });
  assert.equal(ks('Enter'), 0xff0d);
  assert.equal(ks('Backspace'), 0xff08);
  assert.equal(ks('Tab'), 0xff09);
  assert.equal(ks('Escape'), 0xff1b);
  assert.equal(ks('ArrowLeft'), 0xff51);
  assert.equal(ks('ArrowDown'), 0xff54);
  assert.equal(ks('Delete'), 0xffff);
  assert.equal(ks('F1'), 0xffbe);
  assert.equal(ks('F12'), 0xffc9);
  assert.equal(ks('Shift', 'ShiftLeft'), 0xffe1);
  assert.equal(ks('Shift', 'ShiftRight'), 0xffe2);
  assert.equal(ks('Control', 'ControlLeft'), 0xffe3);
  assert.equal(ks('Alt', 'AltRight'), 0xffea);
  assert.equal(ks('Meta', 'MetaLeft'), 0xffeb);
  assert.equal(ks('AltGraph', 'AltRight'), 0xfe03);
  // Not sent: dead keys (their character comes with the next key or as text).
  assert.equal(ks('Dead', 'BracketLeft'), null);
  assert.equal(ks('Unidentified'), null);
  assert.equal(ks('MediaPlayPause'), null);
});

test('mouse buttons, wheel notches and coordinates', () => {
  assert.equal(K.buttonBits(1), 1); // left
  assert.equal(K.buttonBits(2), 4); // right
  assert.equal(K.buttonBits(4), 2); // middle
  assert.equal(K.buttonBits(1 | 2 | 8 | 16), 1 | 4 | 8 | 16);
  const w = new K.WheelAccumulator();
  assert.deepEqual(w.take({ deltaY: 100 }), { dx: 0, dy: 1 });
  assert.deepEqual(w.take({ deltaY: 40 }), { dx: 0, dy: 0 });
  assert.deepEqual(w.take({ deltaY: 70 }), { dx: 0, dy: 1 });
  assert.deepEqual(w.take({ deltaX: -3, deltaMode: 1 }), { dx: -1, dy: 0 });
  assert.deepEqual(new K.WheelAccumulator().take({ deltaY: -2, deltaMode: 2 }), { dx: 0, dy: -2 });
  const box = { left: 100, top: 50, width: 800, height: 450 };
  // A 1600×900 screen drawn at half size.
  assert.deepEqual(K.toScreen(100, 50, box, 1600, 900), { x: 0, y: 0 });
  assert.deepEqual(K.toScreen(500, 275, box, 1600, 900), { x: 800, y: 450 });
  assert.deepEqual(K.toScreen(2000, -5, box, 1600, 900), { x: 1599, y: 0 });
});

test('input messages have the proto layout', () => {
  assert.deepEqual([...K.pointerBody(0x0102, 0x0304, 5)], [1, 2, 3, 4, 5]);
  assert.deepEqual([...K.wheelBody(-1, 3)], [0xff, 0xff, 0, 3]);
  assert.deepEqual([...K.keyBody(0x010020ac, true)], [1, 0, 0x20, 0xac, 1]);
  assert.deepEqual([...K.u32Body(7)], [0, 0, 0, 7]);
  assert.equal(K.readU64(K.u64Body(2 ** 40 + 3)), 2 ** 40 + 3);
  const cursor = new Uint8Array([0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 9, 0, 0, 0, 4]);
  assert.deepEqual(K.parseCursor(cursor), { x: -2, y: 9, shape: 4 });
  const shape = new Uint8Array(12 + 2 * 1 * 4);
  shape.set([0, 0, 0, 4, 0, 2, 0, 1, 0, 1, 0, 0], 0);
  const s = K.parseCursorShape(shape);
  assert.equal(s.id, 4);
  assert.equal(s.width, 2);
  assert.equal(s.hot_x, 1);
  assert.throws(() => K.parseCursorShape(shape.subarray(0, 15)), /size/);
  const v = K.parseVideo(new Uint8Array([0, 0, 1, 0, 9, 8]));
  assert.equal(v.seq, 256);
  assert.deepEqual([...v.data], [9, 8]);
  // Ctrl+Alt+Del: pressed in order, released in reverse.
  const cad = K.SPECIAL_KEYS.find((k) => k.id === 'ctrl-alt-del');
  assert.deepEqual(K.comboEvents(cad.keys), [[0xffe3, true], [0xffe9, true], [0xffff, true], [0xffff, false], [0xffe9, false], [0xffe3, false]]);
});

const b64 = (bytes) => Buffer.from(bytes).toString('base64');
const recording = [
  JSON.stringify({ jumpgate: 'desktop', version: 1, width: 4, height: 2, timestamp: 1764579600, title: 'tom@web-1' }),
  JSON.stringify([0.0, 'x', { input: 'allowed', message: 'allowed by the user' }]),
  JSON.stringify([0.01, 'i', { width: 4, height: 2, monitors: [], monitor: null, codec: 'jumpgate-1' }]),
  JSON.stringify([0.02, 'v', b64([1, 4, 0, 2, 0, 3, 118, 112, 57])]),
  JSON.stringify([0.5, 'v', b64([3, 1, 0, 0])]),
  JSON.stringify([0.6, 's', { id: 3, width: 1, height: 1, hot_x: 0, hot_y: 0, rgba: b64([1, 2, 3, 255]) }]),
  JSON.stringify([0.61, 'c', [2, 1, 3]]),
  JSON.stringify([1.5, 'v', b64([1, 8, 0, 4, 0, 3, 118, 112, 57])]),
  JSON.stringify([2.0, 'b', { from: 'technician', bytes: 12 }]),
  JSON.stringify([2.5, 'x', { input: 'taken-back', message: 'the user took back control' }]),
  JSON.stringify([3.25, 'v', b64([2, 0])]),
  JSON.stringify([3.5, 'q', 'a kind from a newer gateway']),
  '',
].join('\n');

test('desktop recordings parse, and seeking restarts at the last stream start', () => {
  assert.ok(R.isDesktopRecording(recording));
  assert.ok(!R.isDesktopRecording('{"version":2,"width":80,"height":24}\n[0.1,"o","hi"]\n'));
  const rec = R.parseDesktopRecording(recording);
  assert.equal(rec.header.title, 'tom@web-1');
  assert.equal(rec.duration, 3.25);
  assert.equal(rec.events.length, 10, 'unknown kinds are skipped');
  const v = rec.events.filter((e) => e.kind === 'v');
  assert.deepEqual(v.map((e) => e.start), [true, false, true, false]);
  assert.deepEqual([...v[1].data], [3, 1, 0, 0]);
  assert.deepEqual(rec.events[5].data, { x: 2, y: 1, shape: 3 });
  assert.deepEqual([...rec.events[4].data.rgba], [1, 2, 3, 255]);
  assert.deepEqual(rec.marks.map((m) => m.kind), ['x', 'b', 'x']);
  assert.equal(R.caption(rec.marks[2]), 'the user took back control');
  assert.equal(R.caption(rec.marks[1]), 'clipboard: 12 bytes from the technician');
  assert.equal(R.caption(rec.marks[0]), 'technician has control (allowed by the user)');
  // Counting events up to a time, and where to restart decoding.
  assert.equal(R.countAt(rec.events, -1), 0);
  assert.equal(R.countAt(rec.events, 0.5), 4);
  assert.equal(R.countAt(rec.events, 100), rec.events.length);
  assert.equal(R.restartPoint(rec.events, R.countAt(rec.events, 1.0)), 2, 'before the second stream: the first');
  assert.equal(R.restartPoint(rec.events, R.countAt(rec.events, 3.3)), 6, 'after it: the second');
  assert.equal(R.restartPoint(rec.events, 1), 0);
  assert.equal(R.lastOf(rec.events, rec.events.length, 's', (d) => d.id === 3).t, 0.6);
  assert.equal(R.lastOf(rec.events, 3, 'c'), null);
});

test('a recording names its screen codec: known ones replay, others are refused; notes have captions', () => {
  const codecs = ['jumpgate-2', 'jumpgate-1'];
  const rec = (codec) => [
    JSON.stringify({ jumpgate: 'desktop', version: 1, width: 4, height: 2, timestamp: 1, title: 'a@b' }),
    JSON.stringify([0.01, 'i', { width: 4, height: 2, monitors: [], monitor: null, codec }]),
    JSON.stringify([0.5, 'x', { input: 'allowed', message: 'there is no monitor 7 on this endpoint', note: 'refused' }]),
    JSON.stringify([1.0, 'x', { input: 'ended', message: "the endpoint's display went away", note: 'failed' }]),
  ].join('\n');
  const old = R.parseDesktopRecording(rec('jumpgate-1'), codecs);
  assert.equal(R.parseDesktopRecording(rec('jumpgate-2'), codecs).events.length, 3);
  assert.throws(() => R.parseDesktopRecording(rec('jumpgate-9'), codecs), /screen codec \(jumpgate-9\) cannot be replayed/);
  assert.equal(R.caption(old.marks[0]), 'request refused (there is no monitor 7 on this endpoint)');
  assert.equal(R.caption(old.marks[1]), "the session failed at the endpoint (the endpoint's display went away)");
});

test('damaged or foreign recordings are refused with the line named', () => {
  assert.throws(() => R.parseDesktopRecording('{"version":2}\n'), /not a desktop recording/);
  assert.throws(() => R.parseDesktopRecording('{"jumpgate":"desktop","version":9}\n'), /version 9/);
  assert.throws(() => R.parseDesktopRecording('{"jumpgate":"desktop","version":1}\n[0,"v","AQ=="]\n{oops\n'), /line 3/);
});
