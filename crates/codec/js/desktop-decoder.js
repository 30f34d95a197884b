// Jumpgate desktop decoder for the browser: draws the packets of
// crates/codec (jumpgate-codec) onto a <canvas>. The packet format is
// documented in crates/codec/src/packet.rs; in short (little-endian):
//
//   1 StreamStart: u16 width, u16 height, u8 len, codec string
//   2 Video:       u8 flags (bit 0 key), u64 timestamp µs, u16 n,
//                  n × (u16 x, y, w, h), VP8/VP9 frame
//   3 Tile:        u8 format, u16 x, y, w, h, zlib payload
//                  (format 1: RGB; format 2: u8 count-1, palette RGB, indices)
//
// Video frames are decoded with WebCodecs (secure context needed: https or
// 127.0.0.1) and only the listed rectangles are copied to the canvas (a
// picture smaller than the stream, video coded at a reduced size, is scaled
// up to the screen); tiles
// are lossless and drawn with putImageData. Packets are applied strictly in
// order (a tile waits for the video frames sent before it).
//
// Usage:
//   import { DesktopDecoder } from './desktop-decoder.js';
//   const dec = new DesktopDecoder(canvas, { onError: (e) => ... });
//   socket.onmessage = (m) => dec.push(m.data);   // ArrayBuffer or Uint8Array
//   dec.stats  // { packets, bytes, videoFrames, scaledFrames, tiles, width, height }
//
// After a decode error (onError) the video decoder is closed and later video
// packets fail until the next StreamStart: ask the agent for a keyframe
// (the encoder's force_keyframe, which restarts the stream).

export const PACKET_STREAM_START = 1;
export const PACKET_VIDEO = 2;
export const PACKET_TILE = 3;
export const TILE_ZLIB_RGB = 1;
export const TILE_ZLIB_PALETTE = 2;

/** Parses one packet (an ArrayBuffer or a typed array view). */
export function parsePacket(input) {
  const bytes =
    input instanceof Uint8Array ? input : new Uint8Array(input.buffer ?? input, input.byteOffset ?? 0, input.byteLength);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (n) => {
    if (bytes.byteLength < n) throw new Error('truncated desktop packet');
  };
  need(1);
  const type = v.getUint8(0);
  if (type === PACKET_STREAM_START) {
    need(6);
    const len = v.getUint8(5);
    need(6 + len);
    const codec = new TextDecoder().decode(bytes.subarray(6, 6 + len));
    return { type, width: v.getUint16(1, true), height: v.getUint16(3, true), codec };
  }
  if (type === PACKET_VIDEO) {
    need(12);
    const key = (v.getUint8(1) & 1) === 1;
    const timestamp = Number(v.getBigUint64(2, true));
    const n = v.getUint16(10, true);
    need(12 + n * 8);
    const rects = [];
    for (let i = 0; i < n; i++) {
      const o = 12 + i * 8;
      rects.push({
        x: v.getUint16(o, true),
        y: v.getUint16(o + 2, true),
        w: v.getUint16(o + 4, true),
        h: v.getUint16(o + 6, true),
      });
    }
    return { type, key, timestamp, rects, data: bytes.subarray(12 + n * 8) };
  }
  if (type === PACKET_TILE) {
    need(10);
    return {
      type,
      format: v.getUint8(1),
      x: v.getUint16(2, true),
      y: v.getUint16(4, true),
      w: v.getUint16(6, true),
      h: v.getUint16(8, true),
      data: bytes.subarray(10),
    };
  }
  throw new Error(`unknown desktop packet type ${type}`);
}

async function inflate(data) {
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Decodes a lossless tile payload into RGBA ImageData. */
export async function decodeTile(p) {
  const raw = await inflate(p.data);
  const n = p.w * p.h;
  const out = new Uint8ClampedArray(n * 4);
  if (p.format === TILE_ZLIB_RGB) {
    if (raw.length !== n * 3) throw new Error('tile has the wrong size');
    for (let i = 0, j = 0; i < n; i++, j += 3) {
      out[i * 4] = raw[j];
      out[i * 4 + 1] = raw[j + 1];
      out[i * 4 + 2] = raw[j + 2];
      out[i * 4 + 3] = 255;
    }
  } else if (p.format === TILE_ZLIB_PALETTE) {
    const count = raw[0] + 1;
    if (raw.length !== 1 + count * 3 + n) throw new Error('tile has the wrong size');
    const base = 1 + count * 3;
    for (let i = 0; i < n; i++) {
      const k = raw[base + i];
      if (k >= count) throw new Error('palette index out of range');
      out[i * 4] = raw[1 + k * 3];
      out[i * 4 + 1] = raw[2 + k * 3];
      out[i * 4 + 2] = raw[3 + k * 3];
      out[i * 4 + 3] = 255;
    }
  } else {
    throw new Error(`unknown tile format ${p.format}`);
  }
  return new ImageData(out, p.w, p.h);
}

export class DesktopDecoder {
  constructor(canvas, { onError } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { alpha: false });
    this.onError = onError ?? ((e) => console.error('desktop decoder:', e));
    this.decoder = null;
    this.waiting = [];
    this.queue = Promise.resolve();
    this.stats = { packets: 0, bytes: 0, videoFrames: 0, scaledFrames: 0, tiles: 0, width: 0, height: 0 };
  }

  /** Queues one packet; the promise settles once it has been drawn. */
  push(buf) {
    const run = this.queue.then(() => this.apply(buf));
    // One bad packet is reported and does not stall the ones after it.
    this.queue = run.catch((e) => this.onError(e));
    return run;
  }

  /** Resolves when every packet pushed so far has been drawn. */
  idle() {
    return this.queue;
  }

  close() {
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
    for (const w of this.waiting) w.reject(new Error('decoder closed'));
    this.waiting = [];
  }

  async apply(buf) {
    const p = parsePacket(buf);
    this.stats.packets += 1;
    this.stats.bytes += buf.byteLength;
    if (p.type === PACKET_STREAM_START) {
      this.close();
      this.canvas.width = p.width;
      this.canvas.height = p.height;
      this.ctx = this.canvas.getContext('2d', { alpha: false });
      this.ctx.imageSmoothingEnabled = false;
      this.stats.width = p.width;
      this.stats.height = p.height;
      this.decoder = new VideoDecoder({
        output: (frame) => {
          const w = this.waiting.shift();
          if (w) w.resolve(frame);
          else frame.close();
        },
        error: (e) => {
          for (const w of this.waiting) w.reject(e);
          this.waiting = [];
          this.onError(e);
        },
      });
      this.decoder.configure({
        codec: p.codec,
        codedWidth: p.width,
        codedHeight: p.height,
        optimizeForLatency: true,
        // What the encoder converts with: BT.601, limited range.
        colorSpace: { primaries: 'smpte170m', transfer: 'smpte170m', matrix: 'smpte170m', fullRange: false },
      });
      return;
    }
    if (p.type === PACKET_VIDEO) {
      if (!this.decoder || this.decoder.state !== 'configured') throw new Error('video before the stream start');
      const frame = await new Promise((resolve, reject) => {
        this.waiting.push({ resolve, reject });
        this.decoder.decode(
          new EncodedVideoChunk({ type: p.key ? 'key' : 'delta', timestamp: p.timestamp, data: p.data }),
        );
      });
      try {
        // A frame coded at a reduced size (heavy motion) covers the whole
        // screen: its rectangles are scaled up, smoothed.
        const fw = frame.displayWidth;
        const fh = frame.displayHeight;
        const sx = fw / this.canvas.width;
        const sy = fh / this.canvas.height;
        const scaled = sx !== 1 || sy !== 1;
        this.ctx.imageSmoothingEnabled = scaled;
        for (const r of p.rects) {
          if (scaled) {
            this.ctx.drawImage(frame, r.x * sx, r.y * sy, r.w * sx, r.h * sy, r.x, r.y, r.w, r.h);
          } else {
            this.ctx.drawImage(frame, r.x, r.y, r.w, r.h, r.x, r.y, r.w, r.h);
          }
        }
        this.ctx.imageSmoothingEnabled = false;
        if (scaled) this.stats.scaledFrames += 1;
      } finally {
        frame.close();
      }
      this.stats.videoFrames += 1;
      return;
    }
    const img = await decodeTile(p);
    this.ctx.putImageData(img, p.x, p.y);
    this.stats.tiles += 1;
  }
}
