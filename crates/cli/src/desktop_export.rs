//! A desktop recording (the gateway's JSON-lines format, see
//! ARCHITECTURE.md "Desktop recordings") turned into a WebM video:
//! the `v` packets are replayed into a [`Canvas`], the canvas is sampled at
//! a fixed frame rate with the pointer drawn on it, and the samples are
//! re-encoded with libvpx (VP9) into [`crate::webm`].
//!
//! * **Time.** Frame `k` shows the screen as it was at `k / fps` seconds
//!   after the start of the recording; the video lasts as long as the
//!   recording (its last event), to within one frame.
//! * **Idle time** is not paid for frame by frame: while nothing changes,
//!   one (tiny) repeated frame per second is written instead of `fps`, and
//!   no keyframe (the timestamps stay on the frame grid; Matroska frames
//!   last until the next one). A keyframe starts every
//!   [`KEYFRAME_EVERY_MS`] of changing picture, so players can seek.
//! * **Size changes.** The video keeps the size of the first picture. A
//!   later picture of another size is centred in it, black around, and
//!   scaled down (area average) only when it would not fit.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Seek, Write};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use jumpgate_codec::{Canvas, Codec, Frame, Packet, VideoEncoder};
use serde::Deserialize;

use crate::webm::WebmWriter;

/// The default frame rate of exported videos.
pub(crate) const DEFAULT_FPS: u32 = 10;
/// While nothing changes, one repeated frame this often (ms).
const IDLE_REPEAT_MS: u64 = 1_000;
/// A keyframe at most this long (ms) after the previous one, when the
/// picture changed since.
const KEYFRAME_EVERY_MS: u64 = 10_000;

/// The first line of a desktop recording.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub(crate) version: u32,
    #[serde(default)]
    pub(crate) title: String,
}

impl Header {
    /// The header if `line` is a desktop recording's first line; `None`
    /// for anything else (an asciicast header).
    pub(crate) fn parse(line: &str) -> anyhow::Result<Option<Header>> {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        if v.get("jumpgate").and_then(|j| j.as_str()) != Some("desktop") {
            return Ok(None);
        }
        let h: Header =
            serde_json::from_value(v).context("the desktop recording's header is malformed")?;
        if h.version != 1 {
            bail!(
                "desktop recording version {} is not supported (this jg reads version 1)",
                h.version
            );
        }
        Ok(Some(h))
    }
}

/// A cursor image (`s` events).
#[derive(Debug, Deserialize)]
struct Shape {
    id: u32,
    width: u32,
    height: u32,
    hot_x: i32,
    hot_y: i32,
    rgba: String,
}

#[derive(Debug)]
struct CursorImage {
    width: u32,
    height: u32,
    hot_x: i32,
    hot_y: i32,
    rgba: Vec<u8>,
}

/// What the video shows of the pointer.
#[derive(Debug, Default)]
struct Pointer {
    shapes: HashMap<u32, CursorImage>,
    /// x, y, shape id (0: hidden).
    at: Option<(i32, i32, u32)>,
}

impl Pointer {
    fn visible(&self) -> Option<(i32, i32, &CursorImage)> {
        let (x, y, id) = self.at?;
        let img = self.shapes.get(&id)?;
        Some((x, y, img))
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Summary {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) duration_secs: f64,
    pub(crate) frames: u64,
    pub(crate) keyframes: u64,
    /// Packets of the recording that did not decode (skipped).
    pub(crate) bad_packets: u64,
}

/// The video being written, once the first picture fixed its size.
#[derive(Debug)]
struct Output<W: Write + Seek> {
    width: u32,
    height: u32,
    encoder: VideoEncoder,
    webm: WebmWriter<W>,
    /// The last frame written, composed (BGRA, `width * 4` per row).
    frame: Vec<u8>,
    last_written_ms: Option<u64>,
    last_key_ms: Option<u64>,
    /// The picture changed since the last keyframe.
    changed_since_key: bool,
    frames: u64,
    keyframes: u64,
}

/// Replays a desktop recording line by line into a WebM file.
#[derive(Debug)]
pub(crate) struct Exporter<W: Write + Seek> {
    fps: u32,
    canvas: Canvas,
    pointer: Pointer,
    /// The writer until the first picture, then the output.
    sink: Option<W>,
    out: Option<Output<W>>,
    /// The next frame slot to fill.
    next_slot: u64,
    /// The screen or pointer changed since the last written frame.
    dirty: bool,
    last_t: f64,
    bad_packets: u64,
    first_bad: Option<String>,
    line_no: u64,
}

impl<W: Write + Seek> Exporter<W> {
    pub(crate) fn new(out: W, fps: u32) -> Self {
        Exporter {
            fps: fps.clamp(1, 60),
            canvas: Canvas::new(),
            pointer: Pointer::default(),
            sink: Some(out),
            out: None,
            next_slot: 0,
            dirty: true,
            last_t: 0.0,
            bad_packets: 0,
            first_bad: None,
            line_no: 1,
        }
    }

    fn slot_ms(&self, k: u64) -> u64 {
        (k * 1000 + u64::from(self.fps) / 2) / u64::from(self.fps)
    }

    /// Feeds one event line (after the header).
    pub(crate) fn line(&mut self, line: &str) -> anyhow::Result<()> {
        self.line_no += 1;
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(());
        }
        let (t, code, data): (f64, String, serde_json::Value) = serde_json::from_str(line)
            .with_context(|| format!("line {} of the recording is not an event", self.line_no))?;
        if !t.is_finite() || t < 0.0 {
            bail!("line {} of the recording has a bad time", self.line_no);
        }
        // Events never move time backwards (a late one counts as now).
        let t = t.max(self.last_t);
        self.frames_before(t)?;
        self.last_t = t;
        match code.as_str() {
            "v" => {
                let b64 = data
                    .as_str()
                    .ok_or_else(|| anyhow!("line {}: a video event without data", self.line_no))?;
                let applied = BASE64
                    .decode(b64)
                    .map_err(|e| anyhow!("not base64: {e}"))
                    .and_then(|b| Packet::parse(&b).map_err(anyhow::Error::new))
                    .and_then(|p| self.canvas.apply(&p).map_err(anyhow::Error::new));
                match applied {
                    Ok(()) => self.dirty = true,
                    Err(e) => {
                        self.bad_packets += 1;
                        self.first_bad
                            .get_or_insert_with(|| format!("line {}: {e:#}", self.line_no));
                    }
                }
            }
            "c" => {
                let (x, y, shape): (i32, i32, u32) = serde_json::from_value(data)
                    .with_context(|| format!("line {}: a malformed cursor event", self.line_no))?;
                self.pointer.at = Some((x, y, shape));
                self.dirty = true;
            }
            "s" => {
                let s: Shape = serde_json::from_value(data)
                    .with_context(|| format!("line {}: a malformed cursor shape", self.line_no))?;
                let rgba = BASE64.decode(&s.rgba).with_context(|| {
                    format!("line {}: a cursor shape not in base64", self.line_no)
                })?;
                if rgba.len() as u64 != u64::from(s.width) * u64::from(s.height) * 4 {
                    bail!(
                        "line {}: the cursor shape's size does not match its pixels",
                        self.line_no
                    );
                }
                self.pointer.shapes.insert(
                    s.id,
                    CursorImage {
                        width: s.width,
                        height: s.height,
                        hot_x: s.hot_x,
                        hot_y: s.hot_y,
                        rgba,
                    },
                );
                self.dirty = true;
            }
            // The screen's codec: the packets that follow are drawn by
            // `Canvas`, which draws every codec named so far (an old
            // recording's `jumpgate-1` as well).
            "i" => {
                let codec = data.get("codec").and_then(|c| c.as_str()).unwrap_or("");
                if !jumpgate_proto::desktop::codec::ALL.contains(&codec) {
                    bail!(
                        "line {}: the recording's screen codec {:?} is not one this jg draws ({})",
                        self.line_no,
                        codec.chars().take(32).collect::<String>(),
                        jumpgate_proto::desktop::codec::ALL.join(", ")
                    );
                }
            }
            // Control state, clipboard sizes: not pictures.
            _ => {}
        }
        Ok(())
    }

    /// Writes the frames due before time `t` (seconds).
    fn frames_before(&mut self, t: f64) -> anyhow::Result<()> {
        self.frames_before_ms((t * 1000.0).round() as u64)
    }

    /// Writes the frames due before `t_ms`.
    fn frames_before_ms(&mut self, t_ms: u64) -> anyhow::Result<()> {
        loop {
            if self.out.is_none() {
                if self.canvas.width() == 0 {
                    // No picture yet: the video starts black (see `start`).
                    while self.slot_ms(self.next_slot) < t_ms {
                        self.next_slot += 1;
                    }
                    return Ok(());
                }
                self.start()?;
            }
            let last = self.out.as_ref().and_then(|o| o.last_written_ms);
            if !self.dirty
                && let Some(last) = last
            {
                // Idle: on to the next repeat, but not past `t_ms` (a
                // change then must show at the next slot).
                while self.slot_ms(self.next_slot) < (last + IDLE_REPEAT_MS).min(t_ms) {
                    self.next_slot += 1;
                }
            }
            let at = self.slot_ms(self.next_slot);
            if at >= t_ms {
                return Ok(());
            }
            self.write_slot(at)?;
            self.next_slot += 1;
        }
    }

    /// The first picture: fixes the video's size.
    fn start(&mut self) -> anyhow::Result<()> {
        let (w, h) = (self.canvas.width(), self.canvas.height());
        let kbps = (u64::from(w) * u64::from(h) * u64::from(self.fps) / 5_000).clamp(300, 8_000);
        let encoder = VideoEncoder::new(Codec::Vp9, w, h, kbps as u32)
            .context("starting the video encoder")?;
        let sink = self.sink.take().expect("the writer");
        let webm = WebmWriter::new(sink, Codec::Vp9, w, h).context("writing the video")?;
        let mut out = Output {
            width: w,
            height: h,
            encoder,
            webm,
            frame: vec![0; w as usize * h as usize * 4],
            last_written_ms: None,
            last_key_ms: None,
            changed_since_key: false,
            frames: 0,
            keyframes: 0,
        };
        if self.next_slot > 0 {
            // The picture came after the first frame's time: black until then.
            out.write(0)?;
        }
        self.out = Some(out);
        Ok(())
    }

    /// Writes the frame of the slot at `at_ms`.
    fn write_slot(&mut self, at_ms: u64) -> anyhow::Result<()> {
        let out = self.out.as_mut().expect("started");
        if self.dirty {
            compose(
                &self.canvas,
                &self.pointer,
                out.width,
                out.height,
                &mut out.frame,
            );
            out.changed_since_key = true;
            self.dirty = false;
        }
        out.write(at_ms)
    }

    /// Writes the frames up to the last event's time and closes the file.
    pub(crate) fn finish(mut self) -> anyhow::Result<(W, Summary)> {
        let end_ms = (self.last_t * 1000.0).round() as u64;
        // Every slot up to and including the end…
        self.frames_before_ms(end_ms + 1)?;
        if self.out.is_none() {
            bail!("the recording holds no picture of the screen");
        }
        // …and the last one always, so the video lasts to the end.
        let fps = u64::from(self.fps);
        let mut last_slot = end_ms * fps / 1000;
        while last_slot > 0 && self.slot_ms(last_slot) > end_ms {
            last_slot -= 1;
        }
        while self.slot_ms(last_slot + 1) <= end_ms {
            last_slot += 1;
        }
        let last_ms = self.slot_ms(last_slot);
        if self.out.as_ref().and_then(|o| o.last_written_ms) < Some(last_ms) {
            self.write_slot(last_ms)?;
        }
        let duration_ms = last_ms + self.slot_ms(1);
        let out = self.out.take().expect("started");
        let summary = Summary {
            width: out.width,
            height: out.height,
            duration_secs: duration_ms as f64 / 1000.0,
            frames: out.frames,
            keyframes: out.keyframes,
            bad_packets: self.bad_packets,
        };
        if let Some(first) = &self.first_bad {
            eprintln!(
                "jg: warning: {} packet(s) of the recording did not decode and were skipped \
                 (first: {first})",
                self.bad_packets
            );
        }
        let w = out.webm.finish(duration_ms).context("writing the video")?;
        Ok((w, summary))
    }
}

impl<W: Write + Seek> Output<W> {
    /// Encodes the composed frame shown from `at_ms` on.
    fn write(&mut self, at_ms: u64) -> anyhow::Result<()> {
        let key = match self.last_key_ms {
            None => true,
            Some(k) => self.changed_since_key && at_ms >= k + KEYFRAME_EVERY_MS,
        };
        let duration = self
            .last_written_ms
            .map_or(100, |l| at_ms.saturating_sub(l).max(1));
        let frame = Frame::new(
            self.width,
            self.height,
            self.width as usize * 4,
            &self.frame,
        )?;
        let coded = self
            .encoder
            .encode(&frame, at_ms, duration, key)
            .context("encoding the video")?;
        for f in coded {
            if f.keyframe {
                self.last_key_ms = Some(at_ms);
                self.changed_since_key = false;
                self.keyframes += 1;
            }
            self.webm
                .write_frame(at_ms, f.keyframe, &f.data)
                .context("writing the video")?;
            self.frames += 1;
        }
        self.last_written_ms = Some(at_ms);
        Ok(())
    }
}

/// The canvas with the pointer drawn on it, fitted into `w` × `h`.
fn compose(canvas: &Canvas, pointer: &Pointer, w: u32, h: u32, dst: &mut [u8]) {
    let (cw, ch) = (canvas.width(), canvas.height());
    let mut src = Cow::Borrowed(canvas.pixels());
    if let Some((x, y, img)) = pointer.visible() {
        draw_cursor(src.to_mut(), cw, ch, x, y, img);
    }
    fit(&src, cw, ch, dst, w, h);
}

/// Alpha-blends the cursor image with its hot spot at (`x`, `y`).
fn draw_cursor(px: &mut [u8], w: u32, h: u32, x: i32, y: i32, img: &CursorImage) {
    let (x0, y0) = (x - img.hot_x, y - img.hot_y);
    for iy in 0..img.height as i32 {
        let py = y0 + iy;
        if py < 0 || py >= h as i32 {
            continue;
        }
        for ix in 0..img.width as i32 {
            let px_x = x0 + ix;
            if px_x < 0 || px_x >= w as i32 {
                continue;
            }
            let s = ((iy as u32 * img.width + ix as u32) * 4) as usize;
            let [r, g, b, a] = [
                img.rgba[s],
                img.rgba[s + 1],
                img.rgba[s + 2],
                img.rgba[s + 3],
            ];
            if a == 0 {
                continue;
            }
            let d = ((py as u32 * w + px_x as u32) * 4) as usize;
            for (k, c) in [b, g, r].into_iter().enumerate() {
                let bg = u32::from(px[d + k]);
                px[d + k] =
                    ((u32::from(c) * u32::from(a) + bg * (255 - u32::from(a)) + 127) / 255) as u8;
            }
        }
    }
}

/// Copies `src` (`sw` × `sh` BGRA) into `dst` (`dw` × `dh`): centred with
/// black around, scaled down by area averaging when it does not fit.
fn fit(src: &[u8], sw: u32, sh: u32, dst: &mut [u8], dw: u32, dh: u32) {
    if (sw, sh) == (dw, dh) {
        dst.copy_from_slice(&src[..dst.len()]);
        return;
    }
    dst.chunks_exact_mut(4)
        .for_each(|p| p.copy_from_slice(&[0, 0, 0, 255]));
    if sw == 0 || sh == 0 {
        return;
    }
    // The scaled size: the largest that fits, never enlarged.
    let (tw, th) = if sw <= dw && sh <= dh {
        (sw, sh)
    } else if u64::from(sw) * u64::from(dh) >= u64::from(sh) * u64::from(dw) {
        (
            dw,
            ((u64::from(sh) * u64::from(dw) / u64::from(sw)) as u32).max(1),
        )
    } else {
        (
            ((u64::from(sw) * u64::from(dh) / u64::from(sh)) as u32).max(1),
            dh,
        )
    };
    let (ox, oy) = ((dw - tw) / 2, (dh - th) / 2);
    let span = |i: u32, t: u32, s: u32| {
        let a = (u64::from(i) * u64::from(s) / u64::from(t)) as u32;
        let b = ((u64::from(i + 1) * u64::from(s) / u64::from(t)) as u32).max(a + 1);
        (a, b.min(s))
    };
    for y in 0..th {
        let (sy0, sy1) = span(y, th, sh);
        for x in 0..tw {
            let (sx0, sx1) = span(x, tw, sw);
            let mut sum = [0u32; 3];
            for sy in sy0..sy1 {
                let row = (sy * sw) as usize * 4;
                for sx in sx0..sx1 {
                    let p = row + sx as usize * 4;
                    for (acc, &v) in sum.iter_mut().zip(&src[p..p + 3]) {
                        *acc += u32::from(v);
                    }
                }
            }
            let n = (sy1 - sy0) * (sx1 - sx0);
            let d = (((oy + y) * dw + ox + x) * 4) as usize;
            for (out, acc) in dst[d..d + 3].iter_mut().zip(sum) {
                *out = ((acc + n / 2) / n) as u8;
            }
        }
    }
}

#[cfg(test)]
#[path = "desktop_export_tests.rs"]
mod tests;
