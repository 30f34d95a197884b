//! The encoder: tile change detection, the lossless/video decision, the
//! lossless refinement of what stopped changing, and link adaptation.

use std::time::{Duration, Instant};

use crate::packet::Packet;
use crate::rate::Rate;
use crate::vpx::{VpxEncoder, VpxSettings};
use crate::{Config, Error, Frame, Rect, TILE, lossless};

/// What the viewer holds for one tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Exactly the source pixels of `last`.
    Exact,
    /// Drawn from a video frame at this time: approximate, to be refined.
    Lossy(Instant),
}

/// The stream currently being sent (one size, one libvpx encoder).
#[derive(Debug)]
struct Stream {
    width: u32,
    height: u32,
    cols: u32,
    rows: u32,
    vpx: VpxEncoder,
    /// The source pixels the viewer was last sent, per tile (BGRx, packed).
    last: Vec<u8>,
    /// The next `last` when a whole frame is remembered at once (filled
    /// while the frame is shrunk, then swapped in; empty until needed).
    spare: Vec<u8>,
    held: Vec<Held>,
    /// Tiles that may differ from `last` (damage hints not yet consumed).
    suspect: Vec<bool>,
    start: Instant,
    last_pts_ms: i64,
    last_video: Option<Instant>,
    /// Halvings each way of the size the last video frame was coded at.
    shift: u32,
    /// libvpx time per changed screen pixel, as if coded at full size
    /// (smoothed; nanoseconds): what a change is predicted to cost.
    cost_ns_per_px: Option<f64>,
    /// Frame intervals between video frames (smoothed, see `next_spacing`: 0.75..=2).
    spacing: f64,
}

impl Stream {
    fn tile_rect(&self, i: usize) -> Rect {
        let (c, r) = (i as u32 % self.cols, i as u32 / self.cols);
        let (x, y) = (c * TILE, r * TILE);
        Rect::new(x, y, TILE.min(self.width - x), TILE.min(self.height - y))
    }

    fn tile_differs(&self, frame: &Frame<'_>, i: usize) -> bool {
        let r = self.tile_rect(i);
        let row_bytes = self.width as usize * 4;
        (r.y..r.y + r.h).any(|y| {
            let a = frame.row(y as usize, r.x as usize, r.w as usize);
            let start = y as usize * row_bytes + r.x as usize * 4;
            a != &self.last[start..start + r.w as usize * 4]
        })
    }

    /// Remembers the pixels of `r` (whole rows at once where it spans the
    /// screen: a full-screen change is a handful of large copies, not one
    /// per tile row, which cost a third of the agent's CPU at 30 fps).
    fn remember_rect(&mut self, frame: &Frame<'_>, r: Rect) {
        let row_bytes = self.width as usize * 4;
        if r.x == 0 && r.w == self.width && frame.stride == row_bytes {
            let (a, b) = (r.y as usize * row_bytes, (r.y + r.h) as usize * row_bytes);
            self.last[a..b].copy_from_slice(&frame.data[a..b]);
            return;
        }
        for y in r.y..r.y + r.h {
            let start = y as usize * row_bytes + r.x as usize * 4;
            self.last[start..start + r.w as usize * 4].copy_from_slice(frame.row(
                y as usize,
                r.x as usize,
                r.w as usize,
            ));
        }
    }

    /// The smallest rectangle inside `r` holding every pixel of `frame`
    /// that differs from `last` (`None`: none differs).
    fn changed_bounds(&self, frame: &Frame<'_>, r: Rect) -> Option<Rect> {
        let row_bytes = self.width as usize * 4;
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for y in r.y..r.y + r.h {
            let a = frame.row(y as usize, r.x as usize, r.w as usize);
            let start = y as usize * row_bytes + r.x as usize * 4;
            let b = &self.last[start..start + r.w as usize * 4];
            if a == b {
                continue;
            }
            let first = a
                .chunks_exact(4)
                .zip(b.chunks_exact(4))
                .position(|(p, q)| p != q);
            let last = a
                .chunks_exact(4)
                .zip(b.chunks_exact(4))
                .rposition(|(p, q)| p != q);
            if let (Some(f), Some(l)) = (first, last) {
                x0 = x0.min(r.x + f as u32);
                x1 = x1.max(r.x + l as u32 + 1);
                y0 = y0.min(y);
                y1 = y1.max(y + 1);
            }
        }
        (x0 < x1).then(|| Rect::new(x0, y0, x1 - x0, y1 - y0))
    }

    /// Whether any tile of the one-row run `r` is held lossy by the viewer.
    fn any_lossy(&self, r: Rect) -> bool {
        let row = r.y / TILE;
        (r.x / TILE..(r.x + r.w).div_ceil(TILE))
            .any(|c| matches!(self.held[(row * self.cols + c) as usize], Held::Lossy(_)))
    }

    /// Horizontal runs of the selected tiles, as pixel rectangles.
    fn runs(&self, selected: &[bool]) -> Vec<Rect> {
        let mut out = Vec::new();
        for row in 0..self.rows {
            let mut c = 0;
            while c < self.cols {
                let i = (row * self.cols + c) as usize;
                if !selected[i] {
                    c += 1;
                    continue;
                }
                let first = self.tile_rect(i);
                let mut end = c + 1;
                while end < self.cols && selected[(row * self.cols + end) as usize] {
                    end += 1;
                }
                let last = self.tile_rect((row * self.cols + end - 1) as usize);
                out.push(Rect::new(
                    first.x,
                    first.y,
                    last.x + last.w - first.x,
                    first.h,
                ));
                c = end;
            }
        }
        out
    }

    /// Learns from a video frame of `area` changed pixels coded at `shift`.
    fn note_cost(&mut self, took: Duration, area: u64, shift: u32) {
        if area == 0 {
            return;
        }
        let per_px = took.as_nanos() as f64 * f64::from(1u32 << (2 * shift)) / area as f64;
        self.cost_ns_per_px = Some(match self.cost_ns_per_px {
            Some(c) => 0.6 * c + 0.4 * per_px,
            None => per_px,
        });
        self.shift = shift;
    }

    fn next_pts(&mut self, now: Instant) -> (i64, u64) {
        let pts = (now.saturating_duration_since(self.start).as_millis() as i64)
            .max(self.last_pts_ms + 1);
        let duration = (pts - self.last_pts_ms).max(1) as u64;
        self.last_pts_ms = pts;
        (pts, duration)
    }
}

/// Screen frames in, [`Packet`]s out. See the crate documentation.
#[derive(Debug)]
pub struct Encoder {
    config: Config,
    stream: Option<Stream>,
    restart: bool,
    rate: Rate,
    vpx_kbps: u32,
}

/// What one [`Encoder::encode`] did, for the caller's figures.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncodeStats {
    pub changed_tiles: u32,
    pub video_frames: u32,
    pub lossless_tiles: u32,
    pub refined_tiles: u32,
    /// Changes held back (link busy or frame rate limit).
    pub deferred: bool,
    /// The video frame was coded at half the screen's size each way this
    /// many times (0: full size; see [`Config::video_budget`]).
    pub video_shift: u32,
}

impl Encoder {
    pub fn new(config: Config) -> Encoder {
        let rate = Rate::new(config.max_bitrate_kbps, config.min_bitrate_kbps);
        Encoder {
            vpx_kbps: rate.target_kbps(),
            rate,
            config,
            stream: None,
            restart: false,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The next [`encode`](Self::encode) starts a new stream: `StreamStart`
    /// and a keyframe of the whole screen (a new viewer, or a viewer that
    /// lost packets).
    pub fn force_keyframe(&mut self) {
        self.restart = true;
    }

    /// The viewer side acknowledged `cumulative` bytes of packets in total
    /// (the sum of [`Packet::len`] of every packet delivered so far).
    pub fn on_acked(&mut self, now: Instant, cumulative: u64) {
        self.rate.on_acked(now, cumulative);
    }

    /// Caps the video bitrate (e.g. a quality setting chosen by the viewer).
    pub fn set_max_bitrate(&mut self, kbps: u32) {
        self.rate.set_max(kbps);
    }

    /// The current video bitrate target (kbit/s).
    pub fn target_kbps(&self) -> u32 {
        self.rate.target_kbps()
    }

    /// Total bytes of packets produced so far.
    pub fn bytes_sent(&self) -> u64 {
        self.rate.sent()
    }

    /// When `encode` should be called again even without new damage to
    /// finish the lossless refinement (`None`: nothing left to refine).
    pub fn refine_due(&self) -> Option<Instant> {
        let s = self.stream.as_ref()?;
        s.held
            .iter()
            .filter_map(|h| match h {
                Held::Lossy(t) => Some(*t + self.config.refine_after),
                Held::Exact => None,
            })
            .min()
    }

    /// Encodes one frame. `dirty` are the regions that may have changed
    /// since the previous call (X DAMAGE); `None` compares the whole frame.
    /// Returns the packets to send, in order: none when nothing changed and
    /// nothing remains to refine.
    pub fn encode(
        &mut self,
        frame: &Frame<'_>,
        dirty: Option<&[Rect]>,
        now: Instant,
    ) -> Result<Vec<Packet>, Error> {
        self.encode_with_stats(frame, dirty, now).map(|(p, _)| p)
    }

    /// [`encode`](Self::encode), also telling what it did.
    pub fn encode_with_stats(
        &mut self,
        frame: &Frame<'_>,
        dirty: Option<&[Rect]>,
        now: Instant,
    ) -> Result<(Vec<Packet>, EncodeStats), Error> {
        frame.check()?;
        if frame.width > u32::from(u16::MAX) || frame.height > u32::from(u16::MAX) {
            return Err(Error::BadSize {
                width: frame.width,
                height: frame.height,
            });
        }
        let mut stats = EncodeStats::default();
        let same_size = self
            .stream
            .as_ref()
            .is_some_and(|s| s.width == frame.width && s.height == frame.height);
        if !same_size || self.restart {
            let packets = self.start_stream(frame, now)?;
            stats.video_frames = 1;
            stats.changed_tiles = self.stream.as_ref().map_or(0, |s| s.held.len() as u32);
            self.account(&packets);
            return Ok((packets, stats));
        }
        self.sync_bitrate()?;
        let config = self.config.clone();
        let may_send = self.rate.may_send();
        let min_interval = self.rate.min_frame_interval(config.max_fps);
        let s = self.stream.as_mut().expect("a stream");

        // Which tiles changed since the viewer was last sent them.
        match dirty {
            None => s.suspect.iter_mut().for_each(|t| *t = true),
            Some(rects) => {
                for r in rects {
                    mark(s, *r);
                }
            }
        }
        let changed: Vec<bool> = (0..s.held.len())
            .map(|i| s.suspect[i] && s.tile_differs(frame, i))
            .collect();
        for (suspect, c) in s.suspect.iter_mut().zip(&changed) {
            // Compared and equal: the hint is used up.
            *suspect &= *c;
        }
        stats.changed_tiles = changed.iter().filter(|c| **c).count() as u32;

        let mut packets = Vec::new();
        if stats.changed_tiles > 0 {
            let area: u64 = (0..changed.len())
                .filter(|&i| changed[i])
                .map(|i| {
                    let r = s.tile_rect(i);
                    u64::from(r.w * r.h)
                })
                .sum();
            // At the full frame rate a frame [`crate::min_spacing`] after
            // the last is on time: a source at about the frame rate with
            // jitter (one frame late, the next on time) would otherwise
            // lose frames; the rate stays the source's, and the libvpx
            // budget follows the actual spacing (below). At a rate lowered
            // for the link, an eighth early.
            let earliest = if min_interval > config.frame_interval() {
                min_interval - min_interval / 8
            } else {
                crate::min_spacing(min_interval)
            };
            let video_due = s
                .last_video
                .is_none_or(|t| now.saturating_duration_since(t) >= earliest);
            if !may_send {
                stats.deferred = true;
            } else if area <= u64::from(config.lossless_max_area) {
                // Only the changed pixels (a typed character is one glyph
                // cell, not a whole tile) unless the viewer holds part of
                // the run from video: then all of it, to make it exact.
                let rects: Vec<Rect> = s
                    .runs(&changed)
                    .into_iter()
                    .filter_map(|r| {
                        if s.any_lossy(r) {
                            Some(r)
                        } else {
                            s.changed_bounds(frame, r)
                        }
                    })
                    .collect();
                for rect in rects {
                    let (format, data) = lossless::encode(frame, rect, config.zlib_level);
                    packets.push(Packet::Tile { rect, format, data });
                }
                for r in s.runs(&changed) {
                    s.remember_rect(frame, r);
                }
                for (i, c) in changed.iter().enumerate() {
                    if *c {
                        s.held[i] = Held::Exact;
                        s.suspect[i] = false;
                        stats.lossless_tiles += 1;
                    }
                }
            } else if video_due {
                let (pts, duration) = s.next_pts(now);
                // Frame intervals since the last video frame, smoothed
                // (see `next_spacing`).
                let gap = s.last_video.map_or(MAX_SPACING, |t| {
                    video_gap(
                        now.saturating_duration_since(t),
                        s.vpx.last_took(),
                        config.frame_interval(),
                    )
                });
                s.spacing = next_spacing(s.spacing, gap);
                // Reduced size only when most of the screen changed (heavy
                // motion): a smaller change (a scrolling terminal, a moving
                // window) stays sharp at full size, even if slower, so its
                // last frame is close to exact instead of waiting for the
                // refinement.
                let most = area * 2 >= u64::from(s.width) * u64::from(s.height);
                let shift = if most {
                    choose_shift(s.cost_ns_per_px, s.shift, area, s.spacing, &config)
                } else {
                    0
                };
                // Every tile changed and the frame is reduced: the
                // shrinking pass reads every pixel anyway, so it also
                // copies the frame into the spare buffer, which becomes
                // what the viewer was sent (no second pass over the screen
                // to remember it).
                let whole = shift > 0 && changed.iter().all(|c| *c);
                if whole {
                    s.spare.resize(s.last.len(), 0);
                }
                let out = s.vpx.encode(
                    frame.data,
                    frame.stride,
                    shift,
                    pts,
                    duration,
                    false,
                    whole.then_some(&mut s.spare[..]),
                )?;
                s.note_cost(s.vpx.last_took(), area, shift);
                stats.video_shift = shift;
                if out.is_empty() {
                    stats.deferred = true;
                } else {
                    let mut rects = s.runs(&changed);
                    if rects.len() > usize::from(u16::MAX) {
                        // More runs than a packet can list (a huge screen
                        // with scattered changes): draw the whole picture,
                        // so every tile is now held from video.
                        rects = vec![Rect::new(0, 0, s.width, s.height)];
                        s.held.iter_mut().for_each(|h| *h = Held::Lossy(now));
                    }
                    for (n, f) in out.into_iter().enumerate() {
                        packets.push(Packet::Video {
                            keyframe: f.keyframe,
                            timestamp_us: pts as u64 * 1000,
                            rects: if n == 0 { rects.clone() } else { Vec::new() },
                            data: f.data,
                        });
                    }
                    if whole {
                        std::mem::swap(&mut s.last, &mut s.spare);
                    } else {
                        for r in s.runs(&changed) {
                            s.remember_rect(frame, r);
                        }
                    }
                    for (i, c) in changed.iter().enumerate() {
                        if *c {
                            s.held[i] = Held::Lossy(now);
                            s.suspect[i] = false;
                        }
                    }
                    s.last_video = Some(now);
                    stats.video_frames = 1;
                }
            } else {
                stats.deferred = true;
            }
        }

        // Lossless refinement of tiles that stopped changing.
        if may_send {
            let mut budget = self
                .rate
                .refine_budget()
                .saturating_sub(packets.iter().map(|p| p.len() as u64).sum());
            let mut due = vec![false; s.held.len()];
            let mut any = false;
            for i in 0..s.held.len() {
                if let Held::Lossy(t) = s.held[i]
                    && !changed[i]
                    && now.saturating_duration_since(t) >= config.refine_after
                {
                    due[i] = true;
                    any = true;
                }
            }
            if any {
                for rect in s.runs(&due) {
                    if budget == 0 {
                        break;
                    }
                    let (format, data) = lossless::encode(frame, rect, config.zlib_level);
                    let p = Packet::Tile { rect, format, data };
                    budget = budget.saturating_sub(p.len() as u64);
                    packets.push(p);
                    // Exact as of this frame (`remember` only matters when
                    // damage hints missed a change).
                    s.remember_rect(frame, rect);
                    let (c0, r0) = (rect.x / TILE, rect.y / TILE);
                    for c in c0..(rect.x + rect.w).div_ceil(TILE) {
                        let i = (r0 * s.cols + c) as usize;
                        s.held[i] = Held::Exact;
                        stats.refined_tiles += 1;
                    }
                }
            }
        }
        self.account(&packets);
        Ok((packets, stats))
    }

    fn account(&mut self, packets: &[Packet]) {
        for p in packets {
            self.rate.on_sent(p.len());
        }
    }

    fn sync_bitrate(&mut self) -> Result<(), Error> {
        let target = self.rate.target_kbps();
        let differs = target.abs_diff(self.vpx_kbps) * 20 > self.vpx_kbps;
        if differs && let Some(s) = self.stream.as_mut() {
            s.vpx.set_bitrate(target)?;
            self.vpx_kbps = target;
        }
        Ok(())
    }

    fn start_stream(&mut self, frame: &Frame<'_>, now: Instant) -> Result<Vec<Packet>, Error> {
        let (width, height) = (frame.width, frame.height);
        let kbps = self.rate.target_kbps();
        let cost = self.stream.as_ref().and_then(|s| s.cost_ns_per_px);
        let vpx = match self.stream.take() {
            // Same size (a forced keyframe): keep the encoder.
            Some(s) if s.width == width && s.height == height => s.vpx,
            _ => VpxEncoder::new(VpxSettings {
                codec: self.config.codec,
                width,
                height,
                threads: self.config.threads,
                bitrate_kbps: kbps,
                min_quantizer: self.config.min_quantizer,
            })?,
        };
        self.vpx_kbps = vpx.settings().bitrate_kbps;
        let (cols, rows) = (width.div_ceil(TILE), height.div_ceil(TILE));
        let mut s = Stream {
            width,
            height,
            cols,
            rows,
            vpx,
            last: vec![0; width as usize * height as usize * 4],
            spare: Vec::new(),
            held: vec![Held::Lossy(now); (cols * rows) as usize],
            suspect: vec![false; (cols * rows) as usize],
            start: now,
            last_pts_ms: -1,
            last_video: Some(now),
            shift: 0,
            // What was learnt about this screen's cost carries over a
            // forced keyframe (the keyframe itself is not typical).
            cost_ns_per_px: cost,
            spacing: MAX_SPACING,
        };
        s.remember_rect(frame, Rect::new(0, 0, width, height));
        let (pts, duration) = s.next_pts(now);
        let out = s
            .vpx
            .encode(frame.data, frame.stride, 0, pts, duration, true, None)?;
        if s.cost_ns_per_px.is_none() {
            // Nothing learnt yet: the keyframe is the first estimate. A
            // keyframe costs more than the frames after it, so the first
            // frame of motion is coded smaller rather than too slowly
            // (then the estimate follows the frames actually coded).
            let area = u64::from(width) * u64::from(height);
            s.note_cost(s.vpx.last_took(), area, 0);
        }
        let mut packets = vec![Packet::StreamStart {
            width: width as u16,
            height: height as u16,
            codec: self.config.codec.webcodecs_string(width, height),
        }];
        for (n, f) in out.into_iter().enumerate() {
            packets.push(Packet::Video {
                keyframe: f.keyframe,
                timestamp_us: pts as u64 * 1000,
                rects: if n == 0 {
                    vec![Rect::new(0, 0, width, height)]
                } else {
                    Vec::new()
                },
                data: f.data,
            });
        }
        self.stream = Some(s);
        self.restart = false;
        Ok(packets)
    }
}

/// The coded size (halvings each way) for a video frame of `area`
/// changed pixels: the finest whose predicted libvpx time fits the
/// budget (a finer size than now only with a quarter of it to spare,
/// so sizes do not flip-flop), and at most one halving more than the
/// last frame (VP9 predicts across at most a 2× size step). `spacing` is
/// the smoothed time between video frames in frame intervals
/// ([`MIN_SPACING`]..=[`MAX_SPACING`]): the budget is per interval, so
/// occasional video may take a little longer per frame, and a source
/// faster than the frame rate (captured up to [`crate::min_spacing`]
/// apart) gets less per frame: libvpx time per second stays the same.
fn choose_shift(cost: Option<f64>, last: u32, area: u64, spacing: f64, config: &Config) -> u32 {
    let max = if config.codec == crate::Codec::Vp9 {
        config.max_downscale.min(2)
    } else {
        0
    };
    let Some(cost) = cost else {
        return 0;
    };
    let budget = config.video_budget.as_nanos() as f64 * spacing.clamp(MIN_SPACING, MAX_SPACING);
    let predicted = |shift: u32| cost * area as f64 / f64::from(1u32 << (2 * shift));
    let want = (0..=max)
        .find(|&l| {
            let allowed = if l < last { budget * 0.75 } else { budget };
            predicted(l) <= allowed
        })
        .unwrap_or(max);
    want.min(last + 1)
}

/// The time between two video frames in frame intervals, not counting
/// what the previous frame's own coding took beyond one interval: a source
/// painting every interval while a frame took three intervals to code is
/// still a source of one frame per interval (counted as three, the slow
/// frame would earn the next one a larger budget, and the one after that
/// too: full-size frames for most of a second after motion starts).
fn video_gap(since_last: Duration, last_took: Duration, interval: Duration) -> f64 {
    let late = last_took.saturating_sub(interval);
    since_last.saturating_sub(late).as_secs_f64() / interval.as_secs_f64().max(1e-6)
}

/// The smoothed spacing after a video frame `gap` intervals after the
/// last: a shorter gap is taken at once (motion started: the budget per
/// frame shrinks with the next frame, not over a dozen), a longer one
/// raises it gradually (one pause in motion does not make the next frame
/// full size).
fn next_spacing(spacing: f64, gap: f64) -> f64 {
    let gap = gap.clamp(MIN_SPACING, MAX_SPACING);
    if gap < spacing {
        gap
    } else {
        0.7 * spacing + 0.3 * gap
    }
}

/// The shortest smoothed spacing (in frame intervals) the budget is
/// scaled by: [`crate::min_spacing`] as a fraction of the interval.
const MIN_SPACING: f64 = 0.75;

/// The longest: a change of most of the screen after a pause gets at most
/// two intervals' budget. The first frame of motion cannot be told from a
/// one-off change (a window maximised); with more time it was coded at
/// full size, several intervals long, and the source's next frames were
/// replaced before they were captured. A one-off change coded at reduced
/// size is made exact by the lossless refinement.
const MAX_SPACING: f64 = 2.0;

/// Marks the tiles `r` touches as possibly changed (clipped to the screen).
fn mark(s: &mut Stream, r: Rect) {
    if r.w == 0 || r.h == 0 || r.x >= s.width || r.y >= s.height {
        return;
    }
    let x1 = (r.x.saturating_add(r.w)).min(s.width);
    let y1 = (r.y.saturating_add(r.h)).min(s.height);
    for row in r.y / TILE..y1.div_ceil(TILE) {
        for c in r.x / TILE..x1.div_ceil(TILE) {
            s.suspect[(row * s.cols + c) as usize] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coded_size_follows_the_predicted_cost_one_halving_at_a_time() {
        let config = Config {
            video_budget: Duration::from_millis(16),
            max_downscale: 2,
            ..Config::default()
        };
        let screen = 1920 * 1080;
        // 40 ns per pixel: a full screen takes 83 ms at full size, 21 ms
        // at half, 5 ms at a quarter.
        let cost = Some(40.0);
        // Nothing measured yet: full size.
        assert_eq!(choose_shift(None, 0, screen, 1.0, &config), 0);
        // Over budget: one halving per frame, down to a quarter.
        assert_eq!(choose_shift(cost, 0, screen, 1.0, &config), 1);
        assert_eq!(choose_shift(cost, 1, screen, 1.0, &config), 2);
        assert_eq!(choose_shift(cost, 2, screen, 1.0, &config), 2);
        // A small change fits at full size: straight back (VP9 predicts
        // from smaller references at any ratio up to 16×).
        assert_eq!(choose_shift(cost, 2, 200 * 200, 1.0, &config), 0);
        // Half size would fit, but not with a quarter of the budget spare:
        // stay (no flip-flop at the edge).
        let edge = (16e6 * 4.0 / 40.0 * 0.9) as u64;
        assert_eq!(choose_shift(cost, 2, edge, 1.0, &config), 2);
        assert_eq!(choose_shift(cost, 1, edge, 1.0, &config), 1);
        // Video only every fifth interval: more time per frame (two
        // intervals at most, see MAX_SPACING).
        assert_eq!(choose_shift(cost, 0, screen / 4, 5.0, &config), 0);
        assert_eq!(choose_shift(cost, 0, screen / 4, 1.0, &config), 1);
        // Never reduced: VP8, max_downscale 0, or no budget.
        let vp8 = Config {
            codec: crate::Codec::Vp8,
            ..config
        };
        assert_eq!(choose_shift(cost, 0, screen, 1.0, &vp8), 0);
        let off = Config {
            max_downscale: 0,
            ..config
        };
        assert_eq!(choose_shift(cost, 0, screen, 1.0, &off), 0);
        let unlimited = Config {
            video_budget: Duration::MAX,
            ..config
        };
        assert_eq!(choose_shift(cost, 0, screen, 1.0, &unlimited), 0);
    }

    /// Motion after a pause: the first frame gets at most two intervals'
    /// budget, the ones after it shrink at once to what fits one interval,
    /// even when the one before took three intervals to code (which is not
    /// the source's spacing); a pause raises the budget again gradually.
    #[test]
    fn motion_shrinks_the_coded_size_from_the_second_frame() {
        let config = Config {
            video_budget: Duration::from_micros(16_667),
            max_downscale: 2,
            ..Config::default()
        };
        let interval = config.frame_interval();
        let ms = Duration::from_millis;
        let screen = 1920 * 1080;
        // 40 ns per pixel: 83 ms at full size, 21 ms at half, 5 at a quarter.
        let cost = Some(40.0);
        // After a pause: two intervals' budget (not eight: full size).
        let mut spacing = next_spacing(MAX_SPACING, 8.0);
        assert_eq!(spacing, MAX_SPACING);
        assert_eq!(choose_shift(cost, 0, screen, spacing, &config), 1);
        assert_eq!(choose_shift(cost, 0, screen, 8.0, &config), 1);
        // The source paints every 33 ms; the full-size frame took 83 ms,
        // the next is captured 86 ms after it: about one interval apart.
        let gap = video_gap(ms(86), ms(83), interval);
        assert!((gap - 1.09).abs() < 0.01, "{gap}");
        spacing = next_spacing(spacing, gap);
        assert_eq!(spacing, gap);
        assert_eq!(choose_shift(cost, 0, screen, spacing, &config), 1);
        spacing = next_spacing(spacing, video_gap(ms(34), ms(21), interval));
        assert_eq!(choose_shift(cost, 1, screen, spacing, &config), 2);
        // A frame that took under an interval: the gap counts in full.
        assert!((video_gap(ms(100), ms(5), interval) - 3.0).abs() < 0.01);
        // Gaps under the shortest spacing count as it.
        assert_eq!(next_spacing(1.0, 0.2), MIN_SPACING);
        // A pause raises the spacing gradually, up to two intervals.
        assert!((next_spacing(1.0, 8.0) - 1.3).abs() < 1e-9);
        assert!((next_spacing(1.0, 1.5) - 1.15).abs() < 1e-9);
    }

    #[test]
    fn a_source_a_little_faster_or_jittery_is_coded_once_per_frame() {
        let (w, h) = (320, 192);
        let mut enc = Encoder::new(Config::default());
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // (time, video expected): 33 ms frames with one 8 ms late and the
        // next on time (25 ms apart), then two frames 20 ms apart: the
        // second is under the minimum spacing (25 ms at 30 fps) and held.
        let plan = [
            (0, true),
            (33, true),
            (74, true),
            (99, true),
            (132, true),
            (152, false),
            (160, true),
        ];
        for (n, (ms, video)) in plan.into_iter().enumerate() {
            let px = picture(w, h, n as u32, 40 + n as u32 * 8);
            let frame = Frame::new(w, h, w as usize * 4, &px).unwrap();
            let (_, stats) = enc.encode_with_stats(&frame, None, at(ms)).unwrap();
            assert_eq!(stats.video_frames == 1, video, "frame {n} at {ms} ms");
            assert_eq!(stats.deferred, !video, "frame {n} at {ms} ms");
        }
        assert_eq!(
            crate::min_spacing(Duration::from_millis(40)),
            Duration::from_millis(30)
        );
    }

    #[test]
    fn frames_closer_than_the_interval_get_a_smaller_budget_each() {
        let config = Config {
            video_budget: Duration::from_millis(16),
            max_downscale: 2,
            ..Config::default()
        };
        // 20 ns per pixel. 1,600,000 pixels: 32 ms at full size, 8 ms at
        // half: half size both at the frame rate (budget 16 ms) and at 4/3
        // of it (12 ms per frame).
        let cost = Some(20.0);
        let area = 1_600_000;
        assert_eq!(choose_shift(cost, 1, area, 1.0, &config), 1);
        assert_eq!(choose_shift(cost, 1, area, 0.75, &config), 1);
        // 500,000 pixels, 10 ms: full size either way.
        let area = 500_000;
        assert_eq!(choose_shift(cost, 0, area, 1.0, &config), 0);
        assert_eq!(choose_shift(cost, 0, area, 0.75, &config), 0);
        // 700,000 pixels, 14 ms: full size at the frame rate, half size
        // when frames come 0.75 intervals apart.
        let area = 700_000;
        assert_eq!(choose_shift(cost, 0, area, 1.0, &config), 0);
        assert_eq!(choose_shift(cost, 0, area, 0.75, &config), 1);
        // Never below 0.75 intervals, whatever the caller passes.
        assert_eq!(
            choose_shift(cost, 0, area, 0.1, &config),
            choose_shift(cost, 0, area, 0.75, &config)
        );
    }

    #[test]
    fn only_a_change_of_most_of_the_screen_is_coded_at_reduced_size() {
        let (w, h) = (320, 192);
        let mut enc = Encoder::new(Config {
            video_budget: Duration::ZERO,
            // Two rows of tiles go as video, not lossless.
            lossless_max_area: 4 * TILE * TILE,
            ..Config::default()
        });
        let mut now = Instant::now();
        let mut shifts = Vec::new();
        let mut canvas = crate::Canvas::new();
        // Frames 1..=3 change the top 60 rows (two rows of tiles, a third
        // of the screen), then 4..=6 all of it.
        let mut px = picture(w, h, 0, 40);
        for t in 0..7u32 {
            let next = picture(w, h, t, 40 + t * 8);
            let rows = if (1..=3).contains(&t) { 60 } else { h };
            let bytes = (rows * w * 4) as usize;
            px[..bytes].copy_from_slice(&next[..bytes]);
            let frame = Frame::new(w, h, w as usize * 4, &px).unwrap();
            let (packets, stats) = enc.encode_with_stats(&frame, None, now).unwrap();
            for p in &packets {
                canvas.apply(p).unwrap();
            }
            assert_eq!(stats.video_frames, 1, "{t}");
            shifts.push(stats.video_shift);
            now += Duration::from_millis(40);
        }
        assert_eq!(shifts, [0, 0, 0, 0, 1, 2, 2]);
    }

    /// Reduced frames of a wholly changed screen remember the frame while
    /// shrinking it: the same picture again is no change, and the
    /// refinement then makes the viewer's picture exact.
    #[test]
    fn a_wholly_changed_reduced_frame_is_remembered_exactly() {
        let (w, h) = (320, 192);
        let mut enc = Encoder::new(Config {
            video_budget: Duration::ZERO,
            ..Config::default()
        });
        let mut canvas = crate::Canvas::new();
        let mut now = Instant::now();
        let mut shifts = Vec::new();
        let mut px = Vec::new();
        for t in 0..4 {
            px = picture(w, h, t, 40 + t * 8);
            let frame = Frame::new(w, h, w as usize * 4, &px).unwrap();
            let (packets, stats) = enc.encode_with_stats(&frame, None, now).unwrap();
            for p in &packets {
                canvas.apply(p).unwrap();
            }
            shifts.push(stats.video_shift);
            now += Duration::from_millis(40);
        }
        assert_eq!(shifts, [0, 1, 2, 2]);
        let frame = Frame::new(w, h, w as usize * 4, &px).unwrap();
        let (_, stats) = enc.encode_with_stats(&frame, None, now).unwrap();
        assert_eq!(stats.changed_tiles, 0);
        for _ in 0..20 {
            now += Duration::from_millis(250);
            for p in enc.encode(&frame, Some(&[]), now).unwrap() {
                canvas.apply(&p).unwrap();
            }
            if enc.refine_due().is_none() {
                break;
            }
        }
        assert!(enc.refine_due().is_none());
        let exact = canvas
            .pixels()
            .chunks_exact(4)
            .zip(px.chunks_exact(4))
            .all(|(a, b)| a[..3] == b[..3]);
        assert!(exact, "the viewer's picture is not the screen's");
    }

    /// A moving diagonal gradient with a white square at (x0, 40).
    fn picture(w: u32, h: u32, t: u32, x0: u32) -> Vec<u8> {
        let mut px = vec![255u8; (w * h * 4) as usize];
        for y in 0..h {
            for x in 0..w {
                let i = ((y * w + x) * 4) as usize;
                if !((x0..x0 + 48).contains(&x) && (40..88).contains(&y)) {
                    let v = ((x + y + t * 7) % 256) as u8;
                    px[i..i + 3].copy_from_slice(&[v, 255 - v, (x * 255 / w) as u8]);
                }
            }
        }
        px
    }

    #[test]
    fn reduced_frames_go_back_to_full_size_without_a_keyframe() {
        let (w, h) = (320, 192);
        let mut enc = Encoder::new(Config {
            video_budget: Duration::ZERO,
            ..Config::default()
        });
        let mut canvas = crate::Canvas::new();
        let mut now = Instant::now();
        let mut shifts = Vec::new();
        for t in 0..8 {
            if t == 5 {
                // Time to spare again: the next frame is full size, coded
                // from the quarter-size references.
                enc.config.video_budget = Duration::MAX;
            }
            let px = picture(w, h, t, 40 + t * 8);
            let frame = Frame::new(w, h, w as usize * 4, &px).unwrap();
            let (packets, stats) = enc.encode_with_stats(&frame, None, now).unwrap();
            for p in &packets {
                assert!(
                    t == 0 || !matches!(p, Packet::Video { keyframe: true, .. }),
                    "{t}"
                );
                canvas.apply(p).unwrap();
            }
            shifts.push(stats.video_shift);
            // The square is where it is now, at the screen's size.
            let at = |x: u32, y: u32| {
                let i = ((y * w + x) * 4) as usize;
                canvas.pixels()[i..i + 3].to_vec()
            };
            let x0 = 40 + t * 8;
            assert!(
                at(x0 + 24, 64).iter().all(|&c| c > 190),
                "{t}: {:?}",
                at(x0 + 24, 64)
            );
            assert!(
                at(x0 + 24, 150).iter().any(|&c| c < 190),
                "{t}: {:?}",
                at(x0 + 24, 150)
            );
            now += Duration::from_millis(40);
        }
        // The keyframe (t = 0) is the first cost estimate: over a zero
        // budget, so the first frame after it is half size already.
        assert_eq!(shifts, [0, 1, 2, 2, 2, 0, 0, 0]);
    }
}
