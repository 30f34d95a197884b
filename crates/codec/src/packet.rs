//! The packets the browser decodes (and [`crate::Canvas`] decodes in Rust).
//!
//! Each packet is one self-contained binary message; the transport frames
//! them (one packet per message). All integers are little-endian.
//!
//! ```text
//! StreamStart  u8 1 | u16 width | u16 height | u8 len | codec string (ASCII)
//! Video        u8 2 | u8 flags (bit 0: keyframe) | u64 timestamp µs
//!              | u16 n | n × (u16 x, u16 y, u16 w, u16 h) | VP8/VP9 frame (rest)
//! Tile         u8 3 | u8 format | u16 x | u16 y | u16 w | u16 h | payload (rest)
//! ```
//!
//! * **StreamStart** begins a stream: the client resizes its canvas to
//!   width × height and configures a new decoder with the codec string
//!   (WebCodecs `VideoDecoder.configure({codec, codedWidth, codedHeight})`;
//!   the colour space is BT.601 limited range). Sent first, after a
//!   resolution change and whenever the encoder is rebuilt.
//! * **Video** is one VP8/VP9 frame, to be decoded in order (the first of
//!   a stream is a keyframe: WebCodecs `EncodedVideoChunk` type `key`/`delta`
//!   with the timestamp). Only the listed rectangles of the decoded picture
//!   are drawn onto the canvas: the rest of the picture is the codec's
//!   approximation of regions the canvas already holds pixel-exact. A
//!   VP9 picture may be smaller than the stream (half or a quarter each
//!   way: heavy motion coded at a reduced size, without a keyframe): it
//!   covers the whole screen, so each rectangle is taken from the picture
//!   scaled to the stream's size.
//! * **Tile** is a lossless rectangle, drawn after every packet before it:
//!   format 1 = zlib (RFC 1950) of w × h RGB triplets, row by row;
//!   format 2 = zlib of a palette: u8 count−1, count × RGB, then w × h
//!   palette indices (u8). The browser inflates with
//!   `DecompressionStream('deflate')` and `putImageData`.

use crate::{Error, Rect};

const STREAM_START: u8 = 1;
const VIDEO: u8 = 2;
const TILE: u8 = 3;

/// How a [`Packet::Tile`] payload is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TileFormat {
    /// zlib of RGB triplets.
    ZlibRgb = 1,
    /// zlib of a palette (count−1, RGB × count) then one index per pixel.
    ZlibPalette = 2,
}

impl TileFormat {
    fn from_u8(v: u8) -> Result<Self, Error> {
        match v {
            1 => Ok(TileFormat::ZlibRgb),
            2 => Ok(TileFormat::ZlibPalette),
            _ => Err(Error::BadPacket(format!("unknown tile format {v}"))),
        }
    }
}

/// One message for the viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// A new stream: canvas size and decoder configuration.
    StreamStart {
        width: u16,
        height: u16,
        /// WebCodecs codec string, e.g. `vp09.00.41.08` or `vp8`.
        codec: String,
    },
    /// One compressed video frame and the regions of it to draw.
    Video {
        keyframe: bool,
        /// Microseconds since the stream's first frame.
        timestamp_us: u64,
        /// The regions of the decoded picture to copy onto the canvas.
        rects: Vec<Rect>,
        data: Vec<u8>,
    },
    /// A lossless rectangle.
    Tile {
        rect: Rect,
        format: TileFormat,
        data: Vec<u8>,
    },
}

impl Packet {
    /// Encoded size in bytes (what the link carries, before framing).
    pub fn len(&self) -> usize {
        match self {
            Packet::StreamStart { codec, .. } => 6 + codec.len(),
            Packet::Video { rects, data, .. } => 12 + rects.len() * 8 + data.len(),
            Packet::Tile { data, .. } => 10 + data.len(),
        }
    }

    /// Never true: every packet has a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The wire form (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.len());
        match self {
            Packet::StreamStart {
                width,
                height,
                codec,
            } => {
                b.push(STREAM_START);
                b.extend_from_slice(&width.to_le_bytes());
                b.extend_from_slice(&height.to_le_bytes());
                b.push(codec.len() as u8);
                b.extend_from_slice(codec.as_bytes());
            }
            Packet::Video {
                keyframe,
                timestamp_us,
                rects,
                data,
            } => {
                b.push(VIDEO);
                b.push(u8::from(*keyframe));
                b.extend_from_slice(&timestamp_us.to_le_bytes());
                b.extend_from_slice(&(rects.len() as u16).to_le_bytes());
                for r in rects {
                    put_rect(&mut b, r);
                }
                b.extend_from_slice(data);
            }
            Packet::Tile { rect, format, data } => {
                b.push(TILE);
                b.push(*format as u8);
                put_rect(&mut b, rect);
                b.extend_from_slice(data);
            }
        }
        b
    }

    /// Parses the wire form; a truncated or unknown packet is an error.
    pub fn parse(b: &[u8]) -> Result<Packet, Error> {
        let mut r = Reader { b, at: 0 };
        match r.u8()? {
            STREAM_START => {
                let width = r.u16()?;
                let height = r.u16()?;
                let n = r.u8()? as usize;
                let codec = std::str::from_utf8(r.take(n)?)
                    .map_err(|_| Error::BadPacket("codec string is not UTF-8".into()))?
                    .to_owned();
                Ok(Packet::StreamStart {
                    width,
                    height,
                    codec,
                })
            }
            VIDEO => {
                let keyframe = r.u8()? & 1 == 1;
                let timestamp_us = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
                let n = r.u16()? as usize;
                let mut rects = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    rects.push(r.rect()?);
                }
                Ok(Packet::Video {
                    keyframe,
                    timestamp_us,
                    rects,
                    data: r.rest().to_vec(),
                })
            }
            TILE => {
                let format = TileFormat::from_u8(r.u8()?)?;
                let rect = r.rect()?;
                Ok(Packet::Tile {
                    rect,
                    format,
                    data: r.rest().to_vec(),
                })
            }
            t => Err(Error::BadPacket(format!("unknown packet type {t}"))),
        }
    }
}

fn put_rect(b: &mut Vec<u8>, r: &Rect) {
    for v in [r.x, r.y, r.w, r.h] {
        b.extend_from_slice(&(v as u16).to_le_bytes());
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| Error::BadPacket("truncated packet".into()))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn rect(&mut self) -> Result<Rect, Error> {
        Ok(Rect {
            x: self.u16()? as u32,
            y: self.u16()? as u32,
            w: self.u16()? as u32,
            h: self.u16()? as u32,
        })
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.at..];
        self.at = self.b.len();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_round_trip_and_truncation_is_an_error() {
        let packets = [
            Packet::StreamStart {
                width: 1920,
                height: 1080,
                codec: "vp09.00.41.08".into(),
            },
            Packet::Video {
                keyframe: true,
                timestamp_us: 123_456_789,
                rects: vec![Rect::new(0, 0, 64, 32), Rect::new(1856, 1048, 64, 32)],
                data: vec![1, 2, 3],
            },
            Packet::Tile {
                rect: Rect::new(32, 64, 96, 32),
                format: TileFormat::ZlibPalette,
                data: vec![9; 40],
            },
        ];
        for p in packets {
            let b = p.to_bytes();
            assert_eq!(b.len(), p.len());
            assert_eq!(Packet::parse(&b).unwrap(), p);
            // Cut inside the header: an error, not a panic.
            let header = match p {
                Packet::StreamStart { .. } => b.len() - 1,
                Packet::Video { .. } => 12 + 16 - 1,
                Packet::Tile { .. } => 9,
            };
            assert!(matches!(
                Packet::parse(&b[..header]),
                Err(Error::BadPacket(_))
            ));
        }
        assert!(matches!(Packet::parse(&[7]), Err(Error::BadPacket(_))));
        assert!(matches!(Packet::parse(&[]), Err(Error::BadPacket(_))));
    }
}
