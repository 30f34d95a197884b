//! The viewer's side in Rust: applies packets to a BGRA canvas exactly as
//! `js/desktop-decoder.js` does in the browser (decode every video frame,
//! draw only its listed rectangles; draw lossless tiles as they come). A
//! picture smaller than the stream (video coded at a reduced size under
//! heavy motion) is scaled up to the screen.

use crate::packet::Packet;
use crate::vpx::VpxDecoder;
use crate::{Codec, Error, Rect, lossless};

/// A decoded screen.
#[derive(Debug, Default)]
pub struct Canvas {
    width: u32,
    height: u32,
    bgra: Vec<u8>,
    decoder: Option<VpxDecoder>,
}

impl Canvas {
    pub fn new() -> Canvas {
        Canvas::default()
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// BGRA pixels, `width * 4` bytes per row, alpha 255.
    pub fn pixels(&self) -> &[u8] {
        &self.bgra
    }

    /// Applies one packet.
    pub fn apply(&mut self, packet: &Packet) -> Result<(), Error> {
        match packet {
            Packet::StreamStart {
                width,
                height,
                codec,
            } => {
                let codec = if codec == "vp8" {
                    Codec::Vp8
                } else if codec.starts_with("vp09.") {
                    Codec::Vp9
                } else {
                    return Err(Error::BadPacket(format!("unknown codec {codec:?}")));
                };
                self.decoder = Some(VpxDecoder::new(codec)?);
                if (u32::from(*width), u32::from(*height)) != (self.width, self.height) {
                    self.width = u32::from(*width);
                    self.height = u32::from(*height);
                    self.bgra = vec![0; self.width as usize * self.height as usize * 4];
                }
            }
            Packet::Video { rects, data, .. } => {
                let dec = self
                    .decoder
                    .as_mut()
                    .ok_or_else(|| Error::BadPacket("video before the stream start".into()))?;
                let Some(pic) = dec.decode(data)? else {
                    return Ok(());
                };
                if pic.width > self.width || pic.height > self.height {
                    return Err(Error::BadPacket("picture larger than the stream".into()));
                }
                let row = self.width as usize * 4;
                let scaled = (pic.width, pic.height) != (self.width, self.height);
                for r in rects {
                    let r = self.clip(*r)?;
                    if !scaled {
                        for y in r.y..r.y + r.h {
                            let s = y as usize * row + r.x as usize * 4;
                            let e = s + r.w as usize * 4;
                            self.bgra[s..e].copy_from_slice(&pic.bgra[s..e]);
                        }
                        continue;
                    }
                    // A frame coded at a reduced size covers the whole
                    // screen: each screen pixel takes the picture's pixel
                    // under its centre (nearest neighbour).
                    let (pw, ph) = (u64::from(pic.width), u64::from(pic.height));
                    let (sw, sh) = (u64::from(self.width), u64::from(self.height));
                    let src_x: Vec<usize> = (r.x..r.x + r.w)
                        .map(|x| ((u64::from(x) * 2 + 1) * pw / (2 * sw)) as usize * 4)
                        .collect();
                    for y in r.y..r.y + r.h {
                        let py = ((u64::from(y) * 2 + 1) * ph / (2 * sh)) as usize;
                        let src =
                            &pic.bgra[py * pic.width as usize * 4..][..pic.width as usize * 4];
                        let s = y as usize * row + r.x as usize * 4;
                        let dst = &mut self.bgra[s..s + r.w as usize * 4];
                        for (d, &sx) in dst.chunks_exact_mut(4).zip(&src_x) {
                            d.copy_from_slice(&src[sx..sx + 4]);
                        }
                    }
                }
            }
            Packet::Tile { rect, format, data } => {
                let r = self.clip(*rect)?;
                if r != *rect {
                    return Err(Error::BadPacket("tile outside the screen".into()));
                }
                let px = lossless::decode(r, *format, data)?;
                let row = self.width as usize * 4;
                let w = r.w as usize * 4;
                for (n, y) in (r.y..r.y + r.h).enumerate() {
                    let s = y as usize * row + r.x as usize * 4;
                    self.bgra[s..s + w].copy_from_slice(&px[n * w..(n + 1) * w]);
                }
            }
        }
        Ok(())
    }

    fn clip(&self, r: Rect) -> Result<Rect, Error> {
        if r.x >= self.width || r.y >= self.height {
            return Err(Error::BadPacket("rectangle outside the screen".into()));
        }
        Ok(Rect::new(
            r.x,
            r.y,
            r.w.min(self.width - r.x),
            r.h.min(self.height - r.y),
        ))
    }
}
