//! A minimal RFB 3.8 (VNC) client, for **measurement only**: it lets the
//! desktop benchmark watch x11vnc the way it watches Jumpgate. It is not a
//! viewer and not part of the product.
//!
//! What it does: the 3.8 handshake with security type None, a shared
//! session, `SetPixelFormat` 32 bpp / depth 24 little-endian true colour
//! (memory order B, G, R, x: the layout of `jumpgate_codec::Canvas`),
//! `SetEncodings` ZRLE + CopyRect + Raw with the LastRect, DesktopSize and
//! RichCursor pseudo-encodings (the cursor comes separately, as Jumpgate's
//! does, so the framebuffer holds the screen without it), and an incremental
//! `FramebufferUpdateRequest` after every update, like any viewer.
//! Updates are decoded into a framebuffer (Raw, CopyRect, ZRLE), so the
//! benchmark can check what arrived pixel by pixel. `PointerEvent` is the
//! only input it sends.

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub(crate) const ENC_RAW: i32 = 0;
pub(crate) const ENC_COPY_RECT: i32 = 1;
pub(crate) const ENC_ZRLE: i32 = 16;
pub(crate) const ENC_RICH_CURSOR: i32 = -239;
pub(crate) const ENC_LAST_RECT: i32 = -224;
pub(crate) const ENC_DESKTOP_SIZE: i32 = -223;

/// A 32-bit BGRx framebuffer (`width * 4` bytes per row).
#[derive(Debug, Default)]
pub(crate) struct Framebuffer {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) pixels: Vec<u8>,
}

impl Framebuffer {
    pub(crate) fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            pixels: vec![0; width as usize * height as usize * 4],
        }
    }

    fn check(&self, r: &RectHeader) -> Result<()> {
        if u32::from(r.x) + u32::from(r.w) > self.width
            || u32::from(r.y) + u32::from(r.h) > self.height
        {
            bail!(
                "rectangle {}x{}+{}+{} outside the {}x{} framebuffer",
                r.w,
                r.h,
                r.x,
                r.y,
                self.width,
                self.height
            );
        }
        Ok(())
    }

    /// Stores one pixel given as its three colour bytes (B, G, R).
    fn put(&mut self, x: usize, y: usize, bgr: [u8; 3]) {
        let at = (y * self.width as usize + x) * 4;
        self.pixels[at..at + 3].copy_from_slice(&bgr);
        self.pixels[at + 3] = 0;
    }
}

/// The header of one rectangle of a `FramebufferUpdate`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RectHeader {
    pub(crate) x: u16,
    pub(crate) y: u16,
    pub(crate) w: u16,
    pub(crate) h: u16,
    pub(crate) encoding: i32,
}

impl RectHeader {
    pub(crate) fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }
}

/// One rectangle, read off the wire and ready to apply.
#[derive(Debug)]
pub(crate) enum RectData {
    /// Raw pixels, 4 bytes each.
    Raw(Vec<u8>),
    CopyRect {
        src_x: u16,
        src_y: u16,
    },
    /// The rectangle's zlib bytes (one stream per connection).
    Zrle(Vec<u8>),
    /// A pseudo-rectangle: nothing to draw (cursor, LastRect).
    Pseudo,
    /// The framebuffer's new size.
    Resize,
}

/// The reading side of an RFB connection: messages in, rectangles applied.
pub(crate) struct Reader<R> {
    r: R,
    inflate: flate2::Decompress,
    scratch: Vec<u8>,
}

impl<R> std::fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

/// What the server said once the handshake is done.
#[derive(Debug)]
pub(crate) struct ServerInit {
    pub(crate) width: u16,
    pub(crate) height: u16,
}

/// The 3.8 handshake (security None, shared), then our pixel format and
/// encodings. Returns the server's size and name.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<ServerInit> {
    let mut version = [0u8; 12];
    s.read_exact(&mut version).await?;
    if &version[..4] != b"RFB " {
        bail!("not an RFB server: {:?}", String::from_utf8_lossy(&version));
    }
    s.write_all(b"RFB 003.008\n").await?;
    let n = s.read_u8().await?;
    if n == 0 {
        let reason = read_string(s).await?;
        bail!("the server refused the connection: {reason}");
    }
    let mut types = vec![0u8; usize::from(n)];
    s.read_exact(&mut types).await?;
    if !types.contains(&1) {
        bail!("the server does not offer security type None (offers {types:?})");
    }
    s.write_u8(1).await?;
    if s.read_u32().await? != 0 {
        let reason = read_string(s).await.unwrap_or_default();
        bail!("security handshake failed: {reason}");
    }
    s.write_u8(1).await?; // ClientInit: shared
    let width = s.read_u16().await?;
    let height = s.read_u16().await?;
    let mut format = [0u8; 16];
    s.read_exact(&mut format).await?;
    let _name = read_string(s).await?;

    // SetPixelFormat: 32 bpp, depth 24, little-endian, true colour,
    // max 255 each, shifts R 16 G 8 B 0.
    let mut msg = vec![0u8, 0, 0, 0];
    msg.extend_from_slice(&[32, 24, 0, 1]);
    for max in [255u16; 3] {
        msg.extend_from_slice(&max.to_be_bytes());
    }
    msg.extend_from_slice(&[16, 8, 0, 0, 0, 0]);
    // SetEncodings.
    let encodings = [
        ENC_ZRLE,
        ENC_COPY_RECT,
        ENC_RAW,
        ENC_LAST_RECT,
        ENC_DESKTOP_SIZE,
        ENC_RICH_CURSOR,
    ];
    msg.extend_from_slice(&[2, 0]);
    msg.extend_from_slice(&(encodings.len() as u16).to_be_bytes());
    for e in encodings {
        msg.extend_from_slice(&e.to_be_bytes());
    }
    s.write_all(&msg).await?;
    s.flush().await?;
    Ok(ServerInit { width, height })
}

async fn read_string<S: AsyncRead + Unpin>(s: &mut S) -> Result<String> {
    let len = s.read_u32().await?;
    if len > 1 << 20 {
        bail!("string of {len} bytes");
    }
    let mut b = vec![0u8; len as usize];
    s.read_exact(&mut b).await?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// `FramebufferUpdateRequest` for the whole screen.
pub(crate) fn update_request(incremental: bool, width: u16, height: u16) -> [u8; 10] {
    let mut m = [0u8; 10];
    m[0] = 3;
    m[1] = u8::from(incremental);
    m[6..8].copy_from_slice(&width.to_be_bytes());
    m[8..10].copy_from_slice(&height.to_be_bytes());
    m
}

/// `PointerEvent`: the buttons held (bit 0 = left) at (x, y).
pub(crate) fn pointer_event(buttons: u8, x: u16, y: u16) -> [u8; 6] {
    let mut m = [5u8, buttons, 0, 0, 0, 0];
    m[2..4].copy_from_slice(&x.to_be_bytes());
    m[4..6].copy_from_slice(&y.to_be_bytes());
    m
}

/// A server message, as far as the benchmark cares.
#[derive(Debug)]
pub(crate) enum ServerMsg {
    /// A `FramebufferUpdate`: its rectangles, read and not yet applied.
    Update(Vec<(RectHeader, RectData)>),
    /// Anything else (bell, cut text, colour map).
    Other,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub(crate) fn new(r: R) -> Self {
        Self {
            r,
            inflate: flate2::Decompress::new(true),
            scratch: Vec::new(),
        }
    }

    /// Reads the next server message whole (rectangles included).
    pub(crate) async fn next(&mut self) -> Result<ServerMsg> {
        let kind = self.r.read_u8().await?;
        match kind {
            0 => {
                let _pad = self.r.read_u8().await?;
                let n = self.r.read_u16().await?;
                let mut rects = Vec::new();
                // 0xFFFF: until a LastRect (an extension x11vnc uses).
                let mut i = 0u32;
                while n == 0xFFFF || i < u32::from(n) {
                    i += 1;
                    let h = RectHeader {
                        x: self.r.read_u16().await?,
                        y: self.r.read_u16().await?,
                        w: self.r.read_u16().await?,
                        h: self.r.read_u16().await?,
                        encoding: self.r.read_i32().await?,
                    };
                    let data = self.read_rect(&h).await?;
                    let last = h.encoding == ENC_LAST_RECT;
                    rects.push((h, data));
                    if last {
                        break;
                    }
                }
                Ok(ServerMsg::Update(rects))
            }
            1 => {
                let _pad = self.r.read_u8().await?;
                let _first = self.r.read_u16().await?;
                let n = self.r.read_u16().await?;
                let mut skip = vec![0u8; usize::from(n) * 6];
                self.r.read_exact(&mut skip).await?;
                Ok(ServerMsg::Other)
            }
            2 => Ok(ServerMsg::Other),
            3 => {
                let mut pad = [0u8; 3];
                self.r.read_exact(&mut pad).await?;
                let _ = read_string(&mut self.r).await?;
                Ok(ServerMsg::Other)
            }
            k => bail!("unknown server message type {k}"),
        }
    }

    async fn read_rect(&mut self, h: &RectHeader) -> Result<RectData> {
        let pixels = h.area() as usize;
        Ok(match h.encoding {
            ENC_RAW => {
                let mut b = vec![0u8; pixels * 4];
                self.r.read_exact(&mut b).await?;
                RectData::Raw(b)
            }
            ENC_COPY_RECT => RectData::CopyRect {
                src_x: self.r.read_u16().await?,
                src_y: self.r.read_u16().await?,
            },
            ENC_ZRLE => {
                let len = self.r.read_u32().await? as usize;
                if len > 64 << 20 {
                    bail!("ZRLE rectangle of {len} bytes");
                }
                let mut b = vec![0u8; len];
                self.r.read_exact(&mut b).await?;
                RectData::Zrle(b)
            }
            ENC_RICH_CURSOR => {
                let mask = usize::from(h.w).div_ceil(8) * usize::from(h.h);
                let mut b = vec![0u8; pixels * 4 + mask];
                self.r.read_exact(&mut b).await?;
                RectData::Pseudo
            }
            ENC_LAST_RECT => RectData::Pseudo,
            ENC_DESKTOP_SIZE => RectData::Resize,
            e => bail!("the server sent encoding {e}, which was not asked for"),
        })
    }

    /// Draws one rectangle onto `fb`.
    pub(crate) fn apply(
        &mut self,
        fb: &mut Framebuffer,
        h: &RectHeader,
        data: &RectData,
    ) -> Result<()> {
        match data {
            RectData::Raw(b) => {
                fb.check(h)?;
                let row = usize::from(h.w) * 4;
                for y in 0..usize::from(h.h) {
                    let at = ((usize::from(h.y) + y) * fb.width as usize + usize::from(h.x)) * 4;
                    fb.pixels[at..at + row].copy_from_slice(&b[y * row..(y + 1) * row]);
                }
            }
            RectData::CopyRect { src_x, src_y } => {
                fb.check(h)?;
                fb.check(&RectHeader {
                    x: *src_x,
                    y: *src_y,
                    ..*h
                })?;
                let row = usize::from(h.w) * 4;
                let stride = fb.width as usize * 4;
                let copy: Vec<u8> = (0..usize::from(h.h))
                    .flat_map(|y| {
                        let at = (usize::from(*src_y) + y) * stride + usize::from(*src_x) * 4;
                        fb.pixels[at..at + row].to_vec()
                    })
                    .collect();
                for y in 0..usize::from(h.h) {
                    let at = (usize::from(h.y) + y) * stride + usize::from(h.x) * 4;
                    fb.pixels[at..at + row].copy_from_slice(&copy[y * row..(y + 1) * row]);
                }
            }
            RectData::Zrle(z) => {
                fb.check(h)?;
                self.inflate_all(z)?;
                let data = std::mem::take(&mut self.scratch);
                let result = zrle(fb, h, &data);
                self.scratch = data;
                result?;
            }
            RectData::Resize => {
                *fb = Framebuffer::new(u32::from(h.w), u32::from(h.h));
            }
            RectData::Pseudo => {}
        }
        Ok(())
    }

    /// Inflates one ZRLE rectangle's bytes into `scratch` (the zlib
    /// stream continues across rectangles).
    fn inflate_all(&mut self, z: &[u8]) -> Result<()> {
        self.scratch.clear();
        let mut input = z;
        loop {
            if self.scratch.capacity() - self.scratch.len() < 64 * 1024 {
                self.scratch.reserve(256 * 1024);
            }
            let before_in = self.inflate.total_in();
            let before_out = self.inflate.total_out();
            self.inflate
                .decompress_vec(input, &mut self.scratch, flate2::FlushDecompress::Sync)
                .context("ZRLE zlib data")?;
            let used = (self.inflate.total_in() - before_in) as usize;
            input = &input[used..];
            let made = self.inflate.total_out() - before_out;
            if input.is_empty() && made == 0 {
                return Ok(());
            }
            if used == 0 && made == 0 && self.scratch.len() < self.scratch.capacity() {
                bail!("ZRLE zlib data stalled");
            }
        }
    }
}

/// A cursor over the inflated ZRLE bytes.
struct Bytes<'a> {
    b: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn u8(&mut self) -> Result<u8> {
        let v = *self.b.get(self.at).context("ZRLE data ends early")?;
        self.at += 1;
        Ok(v)
    }

    /// A CPIXEL: 3 bytes (depth 24 in 32 bpp), B, G, R for our format.
    fn cpixel(&mut self) -> Result<[u8; 3]> {
        let s = self
            .b
            .get(self.at..self.at + 3)
            .context("ZRLE data ends early")?;
        self.at += 3;
        Ok([s[0], s[1], s[2]])
    }

    fn run(&mut self) -> Result<usize> {
        let mut n = 1usize;
        loop {
            let b = self.u8()?;
            n += usize::from(b);
            if b != 255 {
                return Ok(n);
            }
        }
    }
}

/// Decodes one ZRLE rectangle (64×64 tiles, RFC 6143 §7.7.6).
fn zrle(fb: &mut Framebuffer, h: &RectHeader, data: &[u8]) -> Result<()> {
    let mut b = Bytes { b: data, at: 0 };
    let (x0, y0) = (usize::from(h.x), usize::from(h.y));
    let (w, hh) = (usize::from(h.w), usize::from(h.h));
    let mut ty = 0;
    while ty < hh {
        let th = (hh - ty).min(64);
        let mut tx = 0;
        while tx < w {
            let tw = (w - tx).min(64);
            let (ox, oy) = (x0 + tx, y0 + ty);
            let sub = b.u8()?;
            match sub {
                0 => {
                    for y in 0..th {
                        for x in 0..tw {
                            let p = b.cpixel()?;
                            fb.put(ox + x, oy + y, p);
                        }
                    }
                }
                1 => {
                    let p = b.cpixel()?;
                    for y in 0..th {
                        for x in 0..tw {
                            fb.put(ox + x, oy + y, p);
                        }
                    }
                }
                2..=16 => {
                    let palette = (0..sub).map(|_| b.cpixel()).collect::<Result<Vec<_>>>()?;
                    let bits = match sub {
                        2 => 1,
                        3 | 4 => 2,
                        _ => 4,
                    };
                    for y in 0..th {
                        let (mut byte, mut left) = (0u8, 0u32);
                        for x in 0..tw {
                            if left == 0 {
                                byte = b.u8()?;
                                left = 8;
                            }
                            left -= bits;
                            let i = usize::from((byte >> left) & ((1u8 << bits) - 1));
                            let p = *palette.get(i).context("ZRLE palette index")?;
                            fb.put(ox + x, oy + y, p);
                        }
                    }
                }
                128 => {
                    let mut i = 0;
                    while i < tw * th {
                        let p = b.cpixel()?;
                        let n = b.run()?;
                        for k in i..(i + n).min(tw * th) {
                            fb.put(ox + k % tw, oy + k / tw, p);
                        }
                        i += n;
                    }
                }
                130..=255 => {
                    let palette = (0..sub - 128)
                        .map(|_| b.cpixel())
                        .collect::<Result<Vec<_>>>()?;
                    let mut i = 0;
                    while i < tw * th {
                        let idx = b.u8()?;
                        let p = *palette
                            .get(usize::from(idx & 127))
                            .context("ZRLE palette index")?;
                        let n = if idx & 128 != 0 { b.run()? } else { 1 };
                        for k in i..(i + n).min(tw * th) {
                            fb.put(ox + k % tw, oy + k / tw, p);
                        }
                        i += n;
                    }
                }
                s => bail!("ZRLE subencoding {s} is not defined"),
            }
            tx += 64;
        }
        ty += 64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(w: u16, h: u16) -> RectHeader {
        RectHeader {
            x: 0,
            y: 0,
            w,
            h,
            encoding: ENC_ZRLE,
        }
    }

    #[test]
    fn zrle_tiles_of_every_kind_decode() {
        // A 70×2 rectangle: two tiles (64 and 6 wide).
        let mut fb = Framebuffer::new(70, 2);
        let mut data = Vec::new();
        // Tile 1: palette RLE, 2 colours: a run of 100 of colour 0, then
        // 28 single pixels of colour 1.
        data.push(130);
        data.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        data.push(128);
        data.push(99);
        data.extend(std::iter::repeat_n(1u8, 28));
        // Tile 2: packed palette of 2: rows 0b101010.. and 0b010101...
        data.push(2);
        data.extend_from_slice(&[10, 20, 30, 40, 50, 60]);
        data.push(0b1010_1000);
        data.push(0b0101_0100);
        zrle(&mut fb, &header(70, 2), &data).expect("decodes");
        let px = |x: usize, y: usize| {
            let at = (y * 70 + x) * 4;
            [fb.pixels[at], fb.pixels[at + 1], fb.pixels[at + 2]]
        };
        assert_eq!(px(0, 0), [1, 2, 3]);
        assert_eq!(px(35, 1), [1, 2, 3]); // pixel 99 of the tile
        assert_eq!(px(36, 1), [4, 5, 6]); // pixel 100
        assert_eq!(px(63, 1), [4, 5, 6]);
        assert_eq!(px(64, 0), [40, 50, 60]);
        assert_eq!(px(65, 0), [10, 20, 30]);
        assert_eq!(px(64, 1), [10, 20, 30]);
        assert_eq!(px(65, 1), [40, 50, 60]);
    }

    #[test]
    fn zrle_rejects_truncated_data() {
        let mut fb = Framebuffer::new(4, 4);
        assert!(zrle(&mut fb, &header(4, 4), &[0, 1, 2]).is_err());
        assert!(zrle(&mut fb, &header(4, 4), &[17]).is_err());
    }
}
