// The session message codec (mirror of crates/proto/src/session.rs) and a
// session over the gateway's WebSocket: each binary WebSocket message
// carries bytes of the same `type: u8, length: u32 BE, payload` stream `jg`
// speaks over its HTTP upgrade. Data messages carry raw bytes, the others
// JSON.

import { sha256 } from './vendor/noble-hashes/sha2.js';
import {
  ERROR,
  MSG_TYPE,
  JSON_MSG_TYPES,
  SESSION_HEADER_LEN,
  SESSION_MAX_PAYLOAD,
  SESSION_CHUNK,
} from './contract.js';

// The message types and framing come from contract.js, generated from
// crates/proto/src/session.rs.
export const T = MSG_TYPE;
const MAX_TYPE = Math.max(...Object.values(T));
export const HEADER_LEN = SESSION_HEADER_LEN;
export const MAX_PAYLOAD = SESSION_MAX_PAYLOAD;
/** Size data is chunked into by senders. */
export const CHUNK = SESSION_CHUNK;

const JSON_TYPES = new Set(JSON_MSG_TYPES);
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Encodes one message; `payload` is a Uint8Array or, for JSON types, an object. */
export function encode(type, payload) {
  let body;
  if (payload instanceof Uint8Array) body = payload;
  else if (payload === undefined) body = new Uint8Array(0);
  else body = enc.encode(JSON.stringify(payload));
  if (body.length > MAX_PAYLOAD) throw new Error('session message too large');
  const out = new Uint8Array(HEADER_LEN + body.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, body.length, false);
  out.set(body, HEADER_LEN);
  return out;
}

export const open = (request) => encode(T.OPEN, request);
export const stdin = (bytes) => encode(T.STDIN, bytes);
export function resize(cols, rows) {
  const b = new Uint8Array(4);
  const v = new DataView(b.buffer);
  v.setUint16(0, cols, false);
  v.setUint16(2, rows, false);
  return encode(T.RESIZE, b);
}
export const fileData = (bytes) => encode(T.FILE_DATA, bytes);
export const fileEnd = (size, sha256) => encode(T.FILE_END, { size, sha256 });

/** Incremental decoder: push bytes, take whole messages `{type, body, json}`. */
export class Decoder {
  constructor() {
    this.buf = new Uint8Array(0);
  }

  push(bytes) {
    const b = new Uint8Array(this.buf.length + bytes.length);
    b.set(this.buf, 0);
    b.set(bytes, this.buf.length);
    this.buf = b;
  }

  /** The next whole message, or null. Throws on a malformed stream. */
  next() {
    if (this.buf.length < HEADER_LEN) return null;
    const type = this.buf[0];
    if (type === 0 || type > MAX_TYPE) throw new Error(`unknown session message type ${type}`);
    const len = new DataView(this.buf.buffer, this.buf.byteOffset).getUint32(1, false);
    if (len > MAX_PAYLOAD) throw new Error('session message too large');
    if (this.buf.length < HEADER_LEN + len) return null;
    const body = this.buf.slice(HEADER_LEN, HEADER_LEN + len);
    this.buf = this.buf.slice(HEADER_LEN + len);
    const msg = { type, body, json: null };
    if (JSON_TYPES.has(type)) msg.json = JSON.parse(dec.decode(body));
    if (type === T.RESIZE) {
      const v = new DataView(body.buffer, body.byteOffset);
      msg.json = { cols: v.getUint16(0, false), rows: v.getUint16(2, false) };
    }
    return msg;
  }
}

/** What `Session` is given to watch the live session `id` (no request is sent). */
export const watchTarget = (id) => `watch:${id}`;

/**
 * One session over a WebSocket to `GET /api/v1/endpoints/{name}/connect`
 * (or, for `support:ID`, `GET /api/v1/support/sessions/{ID}/connect`; for
 * `watch:ID`, `GET /api/v1/sessions/{ID}/watch`: someone else's live
 * session, watched — the gateway answers without a request).
 * The browser sends the session cookie (SameSite=Strict) and its Origin;
 * no secret is in the URL. Callbacks: onMessage(msg), onClose(reason).
 */
export class Session {
  constructor(endpoint, kind, request, { onMessage, onClose, onOpen }) {
    // `support:ID`: the machine of a customer in attended support.
    const watching = endpoint.startsWith('watch:');
    let path;
    if (watching) path = `/api/v1/sessions/${encodeURIComponent(endpoint.slice(6))}/watch`;
    else if (endpoint.startsWith('support:')) path = `/api/v1/support/sessions/${encodeURIComponent(endpoint.slice(8))}/connect?kind=${encodeURIComponent(kind)}`;
    else path = `/api/v1/endpoints/${encodeURIComponent(endpoint)}/connect?kind=${encodeURIComponent(kind)}`;
    const url = `wss://${location.host}${path}`;
    this.decoder = new Decoder();
    this.answered = false;
    this.closed = false;
    this.finalReason = null;
    this.ws = new WebSocket(url);
    this.ws.binaryType = 'arraybuffer';
    this.ws.onopen = () => {
      if (!watching) this.ws.send(open(request));
      if (onOpen) onOpen();
    };
    this.ws.onmessage = (ev) => {
      if (!(ev.data instanceof ArrayBuffer)) return;
      this.answered = true;
      this.decoder.push(new Uint8Array(ev.data));
      try {
        for (let m = this.decoder.next(); m; m = this.decoder.next()) {
          if (m.type === T.CLOSED) this.finalReason = m.json.reason;
          onMessage(m);
        }
      } catch (e) {
        this.finalReason = `protocol error: ${e.message}`;
        this.ws.close();
      }
    };
    this.ws.onclose = async (ev) => {
      if (this.closed) return;
      this.closed = true;
      let reason = this.finalReason;
      if (!this.answered) {
        // A refused WebSocket tells the page nothing; the same request
        // without the upgrade gets the gateway's own answer (the same
        // authorization decision) with its message.
        reason = (await explainRefusal(path)) || reason;
      }
      if (!reason && ev.code !== 1000 && ev.code !== 1005) {
        reason = `the connection to the gateway was lost (code ${ev.code})`;
      }
      onClose(reason);
    };
    this.ws.onerror = () => {
      if (!this.finalReason) this.finalReason = 'the connection to the gateway failed (not allowed, offline, or network error)';
    };
  }

  send(bytes) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  /** Bytes queued in the browser, not yet handed to the network. */
  get buffered() {
    return this.ws.bufferedAmount;
  }

  close() {
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
  }
}

async function explainRefusal(path) {
  try {
    const res = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
    const body = await res.json();
    if (body && body.message && body.error !== ERROR.UPGRADE_REQUIRED) return body.message;
  } catch {
    /* nothing better to say */
  }
  return null;
}

// --- SHA-256, incremental (files are hashed while they stream) -----------
// @noble/hashes (vendored, see vendor/README.md): the browser's own
// crypto.subtle.digest needs the whole file in memory at once.

export class Sha256 {
  constructor() {
    this.h = sha256.create();
  }

  update(data) {
    this.h.update(data);
  }

  /** The digest as lowercase hex; the hasher is spent afterwards. */
  hex() {
    return Array.from(this.h.digest(), (b) => b.toString(16).padStart(2, '0')).join('');
  }
}
