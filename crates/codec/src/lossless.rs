//! Lossless rectangles: a palette when the region has at most 256 colours
//! (text, UI), RGB otherwise; zlib either way.

use std::io::Write;

use flate2::Compression;
use flate2::write::{ZlibDecoder, ZlibEncoder};

use crate::packet::TileFormat;
use crate::{Error, Frame, Rect};

/// Encodes `rect` of `frame` (BGRx) losslessly.
pub(crate) fn encode(frame: &Frame<'_>, rect: Rect, level: u32) -> (TileFormat, Vec<u8>) {
    let (w, h) = (rect.w as usize, rect.h as usize);
    let mut palette: Vec<[u8; 3]> = Vec::with_capacity(256);
    // Small open-addressing table: packed RGB + 1 (0 = empty) -> index.
    let mut table = [0u32; 1024];
    let mut slots = [0u8; 1024];
    let mut indices = Vec::with_capacity(w * h);
    let mut fits = true;
    'rows: for y in 0..h {
        let row = frame.row(rect.y as usize + y, rect.x as usize, w);
        for px in row.chunks_exact(4) {
            let key = (u32::from(px[2]) << 16 | u32::from(px[1]) << 8 | u32::from(px[0])) + 1;
            let mut slot = (key.wrapping_mul(0x9E37_79B1) >> 22) as usize;
            loop {
                if table[slot] == key {
                    indices.push(slots[slot]);
                    break;
                }
                if table[slot] == 0 {
                    if palette.len() == 256 {
                        fits = false;
                        break 'rows;
                    }
                    table[slot] = key;
                    slots[slot] = palette.len() as u8;
                    indices.push(palette.len() as u8);
                    palette.push([px[2], px[1], px[0]]);
                    break;
                }
                slot = (slot + 1) & 1023;
            }
        }
    }
    let mut z = ZlibEncoder::new(Vec::new(), Compression::new(level));
    if fits {
        let mut head = Vec::with_capacity(1 + palette.len() * 3);
        head.push((palette.len() - 1) as u8);
        for c in &palette {
            head.extend_from_slice(c);
        }
        z.write_all(&head).expect("writing to a Vec");
        z.write_all(&indices).expect("writing to a Vec");
        (
            TileFormat::ZlibPalette,
            z.finish().expect("writing to a Vec"),
        )
    } else {
        let mut rgb = Vec::with_capacity(w * 3);
        for y in 0..h {
            rgb.clear();
            for px in frame
                .row(rect.y as usize + y, rect.x as usize, w)
                .chunks_exact(4)
            {
                rgb.extend_from_slice(&[px[2], px[1], px[0]]);
            }
            z.write_all(&rgb).expect("writing to a Vec");
        }
        (TileFormat::ZlibRgb, z.finish().expect("writing to a Vec"))
    }
}

/// Decodes a tile payload into BGRA (`rect.w * 4` bytes per row, alpha 255).
pub(crate) fn decode(rect: Rect, format: TileFormat, data: &[u8]) -> Result<Vec<u8>, Error> {
    let n = rect.w as usize * rect.h as usize;
    let mut z = ZlibDecoder::new(Vec::new());
    let raw = z
        .write_all(data)
        .and_then(|_| z.finish())
        .map_err(|e| Error::BadPacket(format!("tile does not inflate: {e}")))?;
    let mut out = Vec::with_capacity(n * 4);
    match format {
        TileFormat::ZlibRgb => {
            if raw.len() != n * 3 {
                return Err(Error::BadPacket("tile has the wrong size".into()));
            }
            for c in raw.chunks_exact(3) {
                out.extend_from_slice(&[c[2], c[1], c[0], 255]);
            }
        }
        TileFormat::ZlibPalette => {
            let count =
                *raw.first()
                    .ok_or_else(|| Error::BadPacket("empty tile".into()))? as usize
                    + 1;
            if raw.len() != 1 + count * 3 + n {
                return Err(Error::BadPacket("tile has the wrong size".into()));
            }
            let pal = &raw[1..1 + count * 3];
            for &i in &raw[1 + count * 3..] {
                let i = i as usize;
                if i >= count {
                    return Err(Error::BadPacket("palette index out of range".into()));
                }
                out.extend_from_slice(&[pal[i * 3 + 2], pal[i * 3 + 1], pal[i * 3], 255]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(width: u32, height: u32, px: impl Fn(u32, u32) -> [u8; 3], want: TileFormat) {
        let mut data = vec![0u8; (width * height * 4) as usize];
        for y in 0..height {
            for x in 0..width {
                let i = ((y * width + x) * 4) as usize;
                let [r, g, b] = px(x, y);
                data[i..i + 4].copy_from_slice(&[b, g, r, 7]);
            }
        }
        let frame = Frame::new(width, height, width as usize * 4, &data).unwrap();
        let rect = Rect::new(3, 2, width - 5, height - 3);
        let (format, payload) = encode(&frame, rect, 6);
        assert_eq!(format, want);
        let back = decode(rect, format, &payload).unwrap();
        for y in 0..rect.h {
            for x in 0..rect.w {
                let i = ((y * rect.w + x) * 4) as usize;
                let [r, g, b] = px(rect.x + x, rect.y + y);
                assert_eq!(back[i..i + 4], [b, g, r, 255], "({x},{y})");
            }
        }
        // A payload of the wrong size or a broken stream is an error.
        assert!(decode(Rect::new(0, 0, rect.w + 1, rect.h), format, &payload).is_err());
        assert!(decode(rect, format, &payload[..payload.len() / 2]).is_err());
    }

    #[test]
    fn few_colours_go_as_a_palette_many_as_rgb_both_exact() {
        // Exactly 256 colours fit the palette; one more does not.
        check(
            40,
            20,
            |x, y| [((x * 20 + y) % 256) as u8, 9, 200],
            TileFormat::ZlibPalette,
        );
        check(
            70,
            40,
            |x, y| [(x * 3) as u8, (y * 5) as u8, (x ^ y) as u8],
            TileFormat::ZlibRgb,
        );
    }
}
