// The session message codec (mirror of crates/proto/src/session.rs) and a
// session over the gateway's WebSocket: each binary WebSocket message
// carries bytes of the same `type: u8, length: u32 BE, payload` stream `jg`
// speaks over its HTTP upgrade. Data messages carry raw bytes, the others
// JSON.

export const T = Object.freeze({
  OPEN: 1,
  ACCEPTED: 2,
  REFUSED: 3,
  STDIN: 4,
  STDOUT: 5,
  STDERR: 6,
  RESIZE: 7,
  EXIT: 8,
  STDIN_EOF: 9,
  SIGNAL: 10,
  FILE_DATA: 11,
  FILE_END: 12,
  FILE_RESULT: 13,
  CLOSED: 14,
});
const MAX_TYPE = 14;
export const HEADER_LEN = 5;
export const MAX_PAYLOAD = 1024 * 1024;
/** Size data is chunked into by senders. */
export const CHUNK = 32 * 1024;

const JSON_TYPES = new Set([T.OPEN, T.ACCEPTED, T.REFUSED, T.EXIT, T.FILE_END, T.FILE_RESULT, T.CLOSED]);
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

/**
 * One session over a WebSocket to `GET /api/v1/endpoints/{name}/connect`.
 * The browser sends the session cookie (SameSite=Strict) and its Origin;
 * no secret is in the URL. Callbacks: onMessage(msg), onClose(reason).
 */
export class Session {
  constructor(endpoint, kind, request, { onMessage, onClose, onOpen }) {
    const path = `/api/v1/endpoints/${encodeURIComponent(endpoint)}/connect?kind=${encodeURIComponent(kind)}`;
    const url = `wss://${location.host}${path}`;
    this.decoder = new Decoder();
    this.answered = false;
    this.closed = false;
    this.finalReason = null;
    this.ws = new WebSocket(url);
    this.ws.binaryType = 'arraybuffer';
    this.ws.onopen = () => {
      this.ws.send(open(request));
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
    if (body && body.message && body.error !== 'upgrade_required') return body.message;
  } catch {
    /* nothing better to say */
  }
  return null;
}

// --- SHA-256, incremental (files are hashed while they stream) -----------

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export class Sha256 {
  constructor() {
    this.h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    this.block = new Uint8Array(64);
    this.fill = 0;
    this.length = 0;
    this.w = new Uint32Array(64);
  }

  update(data) {
    this.length += data.length;
    let i = 0;
    while (i < data.length) {
      const n = Math.min(64 - this.fill, data.length - i);
      this.block.set(data.subarray(i, i + n), this.fill);
      this.fill += n;
      i += n;
      if (this.fill === 64) {
        this.compress(this.block);
        this.fill = 0;
      }
    }
  }

  compress(b) {
    const w = this.w;
    for (let t = 0; t < 16; t++) {
      w[t] = (b[4 * t] << 24) | (b[4 * t + 1] << 16) | (b[4 * t + 2] << 8) | b[4 * t + 3];
    }
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15];
      const y = w[t - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    let [a, bb, c, d, e, f, g, h] = this.h;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (h + S1 + ch + K[t] + w[t]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & bb) ^ (a & c) ^ (bb & c);
      const t2 = (S0 + maj) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = bb;
      bb = a;
      a = (t1 + t2) | 0;
    }
    const H = this.h;
    H[0] += a; H[1] += bb; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += h;
  }

  /** The digest as lowercase hex; the hasher is spent afterwards. */
  hex() {
    const bits = this.length * 8;
    const pad = new Uint8Array(((this.fill < 56 ? 56 : 120) - this.fill) + 8);
    pad[0] = 0x80;
    const v = new DataView(pad.buffer);
    v.setUint32(pad.length - 8, Math.floor(bits / 0x100000000), false);
    v.setUint32(pad.length - 4, bits >>> 0, false);
    const len = this.length;
    this.update(pad);
    this.length = len;
    return Array.from(this.h, (x) => x.toString(16).padStart(8, '0')).join('');
  }
}
