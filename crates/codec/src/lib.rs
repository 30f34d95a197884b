//! Remote-desktop encoding for Jumpgate: screen frames in, packets a browser
//! decodes out. No I/O and no clock of its own (the caller passes `now`),
//! except that libvpx calls are timed when [`Config::video_budget`] is set.
//!
//! The scheme (chosen by measurement, see ARCHITECTURE.md "Desktop
//! encoding" and docs/benchmarks.md):
//!
//! * The screen is a grid of 32×32 tiles. Each [`Encoder::encode`] compares
//!   the frame with what the viewer was last sent (only inside the damage
//!   rectangles when the caller has them) and finds the changed tiles.
//!   Nothing changed and nothing left to refine: no packets at all.
//! * A small change (typing, a cursor, a clock) is sent at once as lossless
//!   tiles: pixel-exact, a few hundred bytes.
//! * A large change (scrolling, a moving window, video) is one VP9 (or VP8)
//!   frame from libvpx, realtime, CBR, zero lag, screen-content tuning, at
//!   most 2 threads. The viewer draws only the changed tiles of the decoded
//!   picture, so regions it already holds exactly stay exact. When such a
//!   frame would take libvpx longer than [`Config::video_budget`], it is
//!   coded at half or a quarter of the size (VP9, no keyframe) and the
//!   viewer scales it up.
//! * Tiles last drawn from video are re-sent losslessly once they have not
//!   changed for [`Config::refine_after`]: static text ends pixel-exact.
//! * The caller reports what the link acknowledged ([`Encoder::on_acked`]);
//!   the encoder lowers the video bitrate (quality) and frame rate, skips
//!   frames while too much is in flight (their changes are kept for the
//!   next frame) and paces the lossless refinement.
//!
//! [`Packet`] documents the wire format; `js/desktop-decoder.js` is the
//! browser decoder (WebCodecs), [`Canvas`] the same decoder in Rust (tests,
//! benchmarks, screenshots). [`VideoEncoder`] is a plain full-frame
//! encoder for video files (the export of desktop recordings).

mod canvas;
mod encoder;
mod lossless;
mod packet;
mod rate;
mod video;
mod vpx;

use std::time::Duration;

pub use canvas::Canvas;
pub use encoder::{EncodeStats, Encoder};
pub use packet::{Packet, TileFormat};
pub use video::{VideoEncoder, VideoFrame};

/// Side of the square tiles the screen is compared and refined in.
pub const TILE: u32 = 32;

/// Errors of the codec.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The frame's size or stride does not match its buffer, or is out of range.
    #[error("bad frame: {0}")]
    BadFrame(String),
    /// A width or height the codec cannot take (0 or above 16384, or above
    /// 65535 for the packet format).
    #[error("unsupported size {width}x{height}")]
    BadSize { width: u32, height: u32 },
    /// libvpx refused (initialisation, configuration, encode or decode).
    #[error("libvpx: {0}")]
    Vpx(String),
    /// A packet that does not parse or decode.
    #[error("bad packet: {0}")]
    BadPacket(String),
}

/// A rectangle in screen pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub const fn new(x: u32, y: u32, w: u32, h: u32) -> Rect {
        Rect { x, y, w, h }
    }
}

/// The video codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Vp8,
    Vp9,
}

impl Codec {
    /// The WebCodecs codec string for a stream of this size.
    pub fn webcodecs_string(self, width: u32, height: u32) -> String {
        match self {
            Codec::Vp8 => "vp8".into(),
            // Profile 0, 8 bit; level 4.1 covers 1080p, 5.1 covers 4K.
            Codec::Vp9 if u64::from(width) * u64::from(height) <= 2_228_224 => {
                "vp09.00.41.08".into()
            }
            Codec::Vp9 => "vp09.00.51.08".into(),
        }
    }
}

/// One screen frame: 32-bit pixels in memory order B, G, R, x (X11's
/// 24-bit depth on little-endian). The fourth byte is not sent, but a change
/// of it counts as a change: it must be constant (X's padding is).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub width: u32,
    pub height: u32,
    /// Bytes per row (at least `width * 4`).
    pub stride: usize,
    pub data: &'a [u8],
}

impl<'a> Frame<'a> {
    /// A frame over `data`, checked: the buffer must hold every row.
    pub fn new(width: u32, height: u32, stride: usize, data: &'a [u8]) -> Result<Self, Error> {
        let f = Frame {
            width,
            height,
            stride,
            data,
        };
        f.check()?;
        Ok(f)
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.width == 0 || self.height == 0 || self.width > 16384 || self.height > 16384 {
            return Err(Error::BadSize {
                width: self.width,
                height: self.height,
            });
        }
        let row = self.width as usize * 4;
        if self.stride < row {
            return Err(Error::BadFrame(format!(
                "stride {} is less than width {} × 4",
                self.stride, self.width
            )));
        }
        let need = self.stride * (self.height as usize - 1) + row;
        if self.data.len() < need {
            return Err(Error::BadFrame(format!(
                "{} bytes for {}x{} with stride {} (need {need})",
                self.data.len(),
                self.width,
                self.height,
                self.stride
            )));
        }
        Ok(())
    }

    /// `w` pixels of row `y` from column `x`.
    pub(crate) fn row(&self, y: usize, x: usize, w: usize) -> &'a [u8] {
        let start = y * self.stride + x * 4;
        &self.data[start..start + w * 4]
    }
}

/// Encoder settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub codec: Codec,
    /// libvpx threads (1 or 2).
    pub threads: u32,
    /// Upper bound of the video bitrate (kbit/s); the link may lower it.
    pub max_bitrate_kbps: u32,
    /// Lower bound the adaptation does not go below (kbit/s).
    pub min_bitrate_kbps: u32,
    /// The finest quantizer (0..=56) video may use: the quality ceiling of
    /// moving content. Lower is sharper and costs more bits; what stops
    /// moving is made exact by the lossless refinement anyway.
    pub min_quantizer: u32,
    /// Nominal video frame rate: the budget and the link adaptation count
    /// in its intervals; frames may come [`min_spacing`] apart.
    pub max_fps: u32,
    /// A tile drawn from video is re-sent losslessly once it has been
    /// unchanged this long.
    pub refine_after: Duration,
    /// Changes up to this many pixels (whole tiles) go out as lossless tiles
    /// instead of a video frame.
    pub lossless_max_area: u32,
    /// zlib level of the lossless tiles (1 fastest … 9 smallest).
    pub zlib_level: u32,
    /// libvpx time per video frame (wall clock) the encoder stays under by
    /// coding large changes at a reduced size: a change predicted to take
    /// longer at full size is coded at half the size each way (or a
    /// quarter, see `max_downscale`). About half the frame interval leaves
    /// room for capture and the rest of the machine (what the agent sets).
    /// `Duration::MAX` (the default): always full size, and the output
    /// does not depend on how fast the machine is.
    pub video_budget: Duration,
    /// How many halvings (each way) video may be coded at under
    /// `video_budget`: 0 never reduces, 1 allows half, 2 a quarter. VP9
    /// only (VP8 would need a keyframe for each size change).
    pub max_downscale: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            codec: Codec::Vp9,
            threads: 2,
            max_bitrate_kbps: 6000,
            min_bitrate_kbps: 150,
            min_quantizer: 48,
            max_fps: 30,
            refine_after: Duration::from_millis(200),
            lossless_max_area: 24 * TILE * TILE,
            zlib_level: 6,
            video_budget: Duration::MAX,
            max_downscale: 2,
        }
    }
}

impl Config {
    /// The interval of [`Config::max_fps`].
    pub fn frame_interval(&self) -> Duration {
        Duration::from_micros(1_000_000 / u64::from(self.max_fps.max(1)))
    }
}

/// The shortest time between two captured (and video) frames for a frame
/// `interval`: three quarters of it (25 ms at 30 fps). Capture is driven
/// by damage, not by a fixed grid, and a source painting at about the frame
/// rate with jitter (one frame late, the next on time) is then captured once
/// per frame; a source faster than the frame rate is captured at most 4/3
/// as often, and [`Config::video_budget`] per frame shrinks to match.
pub fn min_spacing(interval: Duration) -> Duration {
    interval * 3 / 4
}

/// `rect` of `frame` as one lossless tile packet (screenshots, tools).
pub fn lossless_tile(frame: &Frame<'_>, rect: Rect, zlib_level: u32) -> Result<Packet, Error> {
    frame.check()?;
    if rect.w == 0
        || rect.h == 0
        || rect.x.saturating_add(rect.w) > frame.width
        || rect.y.saturating_add(rect.h) > frame.height
        || frame.width > u32::from(u16::MAX)
        || frame.height > u32::from(u16::MAX)
    {
        return Err(Error::BadFrame(format!("{rect:?} is not inside the frame")));
    }
    let (format, data) = lossless::encode(frame, rect, zlib_level);
    Ok(Packet::Tile { rect, format, data })
}
