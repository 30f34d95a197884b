//! A tiny software painter: an `0x00RRGGBB` pixel buffer with anti-aliased
//! rounded rectangles and text from a system TrueType font. That is all the
//! prompt and the indicator need, and it keeps the crate free of a GUI
//! toolkit (no GL, a few hundred kB of code).

use std::path::{Path, PathBuf};

use ab_glyph::{Font as _, FontVec, PxScale, ScaleFont as _};

use crate::ConsentError;

/// Where fonts are looked for, regular and bold face, first found wins:
/// Debian/Ubuntu (`fonts-dejavu-core`, `fonts-liberation`, `fonts-noto-core`),
/// Fedora and Arch layouts.
const FONT_CANDIDATES: &[(&str, &str)] = &[
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
    ),
];

/// The regular and bold faces used for all text.
pub(crate) struct Fonts {
    pub(crate) regular: FontVec,
    pub(crate) bold: FontVec,
}

impl std::fmt::Debug for Fonts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fonts")
    }
}

impl Fonts {
    /// Loads the first installed candidate face pair.
    pub(crate) fn load() -> Result<Self, ConsentError> {
        for (regular, bold) in FONT_CANDIDATES {
            if Path::new(regular).exists() {
                // A missing bold face falls back to the regular one.
                let bold = read_font(Path::new(bold)).or_else(|_| read_font(Path::new(regular)))?;
                let regular = read_font(Path::new(regular))?;
                return Ok(Self { regular, bold });
            }
        }
        Err(ConsentError::NoFont(
            FONT_CANDIDATES
                .iter()
                .map(|(r, _)| PathBuf::from(r))
                .collect(),
        ))
    }
}

fn read_font(path: &Path) -> Result<FontVec, ConsentError> {
    let bytes =
        std::fs::read(path).map_err(|e| ConsentError::Font(format!("{}: {e}", path.display())))?;
    FontVec::try_from_vec(bytes).map_err(|e| ConsentError::Font(format!("{}: {e}", path.display())))
}

/// A text style: face, pixel size, colour.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style<'f> {
    pub(crate) font: &'f FontVec,
    pub(crate) size: f32,
    pub(crate) color: u32,
}

impl<'f> Style<'f> {
    pub(crate) fn new(font: &'f FontVec, size: f32, color: u32) -> Self {
        Self { font, size, color }
    }

    /// Advance width of `text` in pixels (with kerning).
    pub(crate) fn width(&self, text: &str) -> f32 {
        let font = self.font.as_scaled(PxScale::from(self.size));
        let mut w = 0.0;
        let mut prev = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                w += font.kern(p, id);
            }
            w += font.h_advance(id);
            prev = Some(id);
        }
        w
    }

    /// Height of capital letters, for centring text vertically.
    pub(crate) fn cap_height(&self) -> f32 {
        let font = self.font.as_scaled(PxScale::from(self.size));
        // The outline of "H" gives the cap height; fall back on the ascent.
        let glyph = font.scaled_glyph('H');
        match self.font.outline_glyph(glyph) {
            Some(o) => -o.px_bounds().min.y,
            None => font.ascent() * 0.72,
        }
    }

    /// `text`, cut with "…" so that it is at most `max` pixels wide.
    pub(crate) fn fit(&self, text: &str, max: f32) -> String {
        if self.width(text) <= max {
            return text.to_owned();
        }
        let mut chars: Vec<char> = text.chars().collect();
        while !chars.is_empty() {
            chars.pop();
            let candidate: String = chars.iter().collect::<String>().trim_end().to_owned() + "…";
            if self.width(&candidate) <= max {
                return candidate;
            }
        }
        "…".to_owned()
    }
}

/// A rectangle in window pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Rect {
    pub(crate) x: i32,
    pub(crate) y: i32,
    pub(crate) w: i32,
    pub(crate) h: i32,
}

impl Rect {
    pub(crate) const fn new(x: i32, y: i32, w: i32, h: i32) -> Self {
        Self { x, y, w, h }
    }

    pub(crate) fn contains(&self, x: i32, y: i32) -> bool {
        x >= self.x && y >= self.y && x < self.x + self.w && y < self.y + self.h
    }
}

/// The pixel buffer of one window.
#[derive(Debug)]
pub(crate) struct Canvas {
    pub(crate) w: i32,
    pub(crate) h: i32,
    pub(crate) px: Vec<u32>,
}

impl Canvas {
    pub(crate) fn new(w: i32, h: i32, bg: u32) -> Self {
        let len = usize::try_from(w.max(0) * h.max(0)).unwrap_or(0);
        Self {
            w,
            h,
            px: vec![bg; len],
        }
    }

    /// Blends `color` into pixel (x, y) with coverage `alpha` in 0..=1.
    fn blend(&mut self, x: i32, y: i32, color: u32, alpha: f32) {
        if x < 0 || y < 0 || x >= self.w || y >= self.h || alpha <= 0.0 {
            return;
        }
        // In range: x, y are non-negative and inside the buffer.
        let i = (y * self.w + x) as usize;
        if alpha >= 1.0 {
            self.px[i] = color;
            return;
        }
        let dst = self.px[i];
        let mix = |shift: u32| {
            let s = ((color >> shift) & 0xff) as f32;
            let d = ((dst >> shift) & 0xff) as f32;
            ((d + (s - d) * alpha).round() as u32).min(255) << shift
        };
        self.px[i] = mix(16) | mix(8) | mix(0);
    }

    pub(crate) fn fill(&mut self, r: Rect, color: u32) {
        for y in r.y.max(0)..(r.y + r.h).min(self.h) {
            for x in r.x.max(0)..(r.x + r.w).min(self.w) {
                self.px[(y * self.w + x) as usize] = color;
            }
        }
    }

    /// A filled rounded rectangle, anti-aliased edges.
    pub(crate) fn round_rect(&mut self, r: Rect, radius: f32, color: u32) {
        self.shape(r, radius, color, None);
    }

    /// The outline of a rounded rectangle, `width` pixels wide, inside `r`.
    pub(crate) fn round_rect_outline(&mut self, r: Rect, radius: f32, width: f32, color: u32) {
        self.shape(r, radius, color, Some(width));
    }

    /// A filled circle centred at (cx, cy).
    pub(crate) fn circle(&mut self, cx: f32, cy: f32, radius: f32, color: u32) {
        let r = Rect::new(
            (cx - radius).floor() as i32,
            (cy - radius).floor() as i32,
            (radius * 2.0).ceil() as i32 + 1,
            (radius * 2.0).ceil() as i32 + 1,
        );
        for y in r.y..r.y + r.h {
            for x in r.x..r.x + r.w {
                let d =
                    ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt() - radius;
                self.blend(x, y, color, (0.5 - d).clamp(0.0, 1.0));
            }
        }
    }

    /// Rounded rectangle by its signed distance: the coverage of a pixel is
    /// how far its centre lies inside the edge, clamped to one pixel.
    fn shape(&mut self, r: Rect, radius: f32, color: u32, outline: Option<f32>) {
        let (hw, hh) = (r.w as f32 / 2.0, r.h as f32 / 2.0);
        let (cx, cy) = (r.x as f32 + hw, r.y as f32 + hh);
        let radius = radius.min(hw).min(hh);
        for y in r.y..r.y + r.h {
            for x in r.x..r.x + r.w {
                let qx = (x as f32 + 0.5 - cx).abs() - (hw - radius);
                let qy = (y as f32 + 0.5 - cy).abs() - (hh - radius);
                let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
                let d = outside + qx.max(qy).min(0.0) - radius;
                let mut cov = (0.5 - d).clamp(0.0, 1.0);
                if let Some(w) = outline {
                    cov -= (0.5 - (d + w)).clamp(0.0, 1.0);
                }
                self.blend(x, y, color, cov);
            }
        }
    }

    /// Draws `text` with its baseline at `baseline`, starting at `x`;
    /// returns the advance width.
    pub(crate) fn text(&mut self, style: Style<'_>, x: f32, baseline: f32, text: &str) -> f32 {
        let font = style.font.as_scaled(PxScale::from(style.size));
        let mut pen = x;
        let mut prev = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                pen += font.kern(p, id);
            }
            let glyph = id
                .with_scale_and_position(PxScale::from(style.size), ab_glyph::point(pen, baseline));
            if let Some(outline) = style.font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, cov| {
                    self.blend(
                        b.min.x as i32 + gx as i32,
                        b.min.y as i32 + gy as i32,
                        style.color,
                        cov,
                    );
                });
            }
            pen += font.h_advance(id);
            prev = Some(id);
        }
        pen - x
    }

    /// Draws `text` centred in `r`.
    pub(crate) fn text_centered(&mut self, style: Style<'_>, r: Rect, text: &str) {
        let w = style.width(text);
        let x = r.x as f32 + (r.w as f32 - w) / 2.0;
        let baseline = r.y as f32 + (r.h as f32 + style.cap_height()) / 2.0;
        self.text(style, x.round(), baseline.round(), text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounded_rect_fills_its_middle_and_softens_its_corners() {
        let mut c = Canvas::new(20, 20, 0x000000);
        c.round_rect(Rect::new(0, 0, 20, 20), 6.0, 0xffffff);
        assert_eq!(c.px[10 * 20 + 10], 0xffffff, "middle filled");
        assert_eq!(c.px[0], 0x000000, "corner pixel stays outside the radius");
        let edge = c.px[20 + 2] & 0xff; // near the corner arc: partial coverage
        assert!(edge > 0 && edge < 255, "anti-aliased corner, got {edge}");
    }

    #[test]
    fn text_draws_ink_when_a_font_is_installed() {
        let Ok(fonts) = Fonts::load() else {
            eprintln!("skipped: no font installed");
            return;
        };
        let mut c = Canvas::new(120, 30, 0xffffff);
        let style = Style::new(&fonts.regular, 16.0, 0x000000);
        let w = c.text(style, 2.0, 20.0, "Allow");
        assert!(w > 20.0 && w < 100.0, "width {w}");
        assert!(c.px.contains(&0x000000), "some fully covered pixels");
        assert!(
            style
                .fit("a very long technician name indeed", 60.0)
                .ends_with('…')
        );
        assert!(style.width(&style.fit("a very long technician name indeed", 60.0)) <= 60.0);
    }
}
