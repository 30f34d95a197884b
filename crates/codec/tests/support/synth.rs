//! Synthetic but realistic screens for the codec tests and the measurement
//! harness (`examples/codec_bench.rs` includes this file): a desktop with
//! windows, a terminal with anti-aliased glyphs (typing, scrolling), and a
//! full-screen moving picture.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;

/// A BGRx screen, `w * 4` bytes per row.
#[derive(Clone)]
pub struct Screen {
    pub w: u32,
    pub h: u32,
    pub data: Vec<u8>,
}

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

impl Screen {
    pub fn new(w: u32, h: u32) -> Screen {
        Screen {
            w,
            h,
            data: vec![0; (w * h * 4) as usize],
        }
    }

    pub fn put(&mut self, x: u32, y: u32, rgb: [u8; 3]) {
        if x < self.w && y < self.h {
            let i = ((y * self.w + x) * 4) as usize;
            self.data[i..i + 4].copy_from_slice(&[rgb[2], rgb[1], rgb[0], 0]);
        }
    }

    pub fn fill(&mut self, x: u32, y: u32, w: u32, h: u32, rgb: [u8; 3]) {
        for yy in y..(y + h).min(self.h) {
            for xx in x..(x + w).min(self.w) {
                self.put(xx, yy, rgb);
            }
        }
    }

    /// A desktop: vertical gradient wallpaper and two flat windows.
    pub fn desktop(w: u32, h: u32) -> Screen {
        let mut s = Screen::new(w, h);
        for y in 0..h {
            let t = y * 255 / h.max(1);
            let rgb = [30 + (t / 8) as u8, 60 + (t / 5) as u8, 110 + (t / 3) as u8];
            for x in 0..w {
                s.put(x, y, rgb);
            }
        }
        s.fill(w / 2, h / 8, w / 3, h / 2, [240, 240, 240]);
        s.fill(w / 2, h / 8, w / 3, 28, [60, 90, 160]);
        s.fill(0, h.saturating_sub(36), w, 36, [40, 40, 48]);
        s
    }

    pub fn frame(&self) -> jumpgate_codec::Frame<'_> {
        jumpgate_codec::Frame::new(self.w, self.h, self.w as usize * 4, &self.data).unwrap()
    }
}

pub const CELL_W: u32 = 8;
pub const CELL_H: u32 = 16;

/// An 8×16 anti-aliased glyph (coverage 0..=16 per pixel) made of a few
/// strokes chosen by the character: text-like edges and density.
pub fn glyph(c: char) -> [[u8; CELL_W as usize]; CELL_H as usize] {
    let mut cov = [[0u8; CELL_W as usize]; CELL_H as usize];
    if c == ' ' {
        return cov;
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 * 0x1000_0001));
    let strokes = 2 + rng.below(3);
    // 4×4 supersampling on the 8×16 cell.
    let mut hi = [[false; 32]; 64];
    for _ in 0..strokes {
        let (x0, y0) = (4 + rng.below(24) as i32, 12 + rng.below(40) as i32);
        let (x1, y1) = (4 + rng.below(24) as i32, 12 + rng.below(40) as i32);
        let steps = 64;
        for k in 0..=steps {
            let x = x0 + (x1 - x0) * k / steps;
            let y = y0 + (y1 - y0) * k / steps;
            for dy in -2..=2 {
                for dx in -2..=2 {
                    let (px, py) = (x + dx, y + dy);
                    if (0..32).contains(&px) && (0..64).contains(&py) {
                        hi[py as usize][px as usize] = true;
                    }
                }
            }
        }
    }
    for (y, row) in cov.iter_mut().enumerate() {
        for (x, v) in row.iter_mut().enumerate() {
            let mut n = 0;
            for sy in 0..4 {
                for sx in 0..4 {
                    n += u8::from(hi[y * 4 + sy][x * 4 + sx]);
                }
            }
            *v = n;
        }
    }
    cov
}

const WORDS: &[&str] = &[
    "cargo",
    "build",
    "--release",
    "warning:",
    "unused",
    "variable",
    "src/main.rs:42:9",
    "fn",
    "let",
    "mut",
    "impl",
    "Compiling",
    "serde",
    "v1.0.228",
    "tokio",
    "Finished",
    "error[E0308]:",
    "mismatched",
    "types",
    "expected",
    "found",
    "|",
    "^^^^",
    "note:",
    "/usr/lib/x86_64-linux-gnu",
    "drwxr-xr-x",
    "root",
    "4096",
    "Dec",
    "1",
    "07:12",
    "README.md",
    "journalctl",
    "-u",
    "ssh.service",
];

const COLOURS: &[[u8; 3]] = &[
    [204, 204, 204],
    [204, 204, 204],
    [204, 204, 204],
    [106, 153, 85],
    [86, 156, 214],
    [206, 145, 120],
    [220, 220, 170],
    [244, 71, 71],
];

/// A terminal window: a grid of coloured characters on a dark background.
pub struct Terminal {
    pub x: u32,
    pub y: u32,
    pub cols: u32,
    pub rows: u32,
    pub lines: VecDeque<Vec<(char, [u8; 3])>>,
    pub cursor: (u32, u32),
    rng: Rng,
    glyphs: std::collections::HashMap<char, [[u8; CELL_W as usize]; CELL_H as usize]>,
}

pub const TERM_BG: [u8; 3] = [30, 30, 30];

impl Terminal {
    pub fn new(x: u32, y: u32, cols: u32, rows: u32, seed: u64) -> Terminal {
        let mut t = Terminal {
            x,
            y,
            cols,
            rows,
            lines: VecDeque::new(),
            cursor: (0, rows - 1),
            rng: Rng(seed | 1),
            glyphs: Default::default(),
        };
        for _ in 0..rows - 1 {
            let l = t.random_line();
            t.lines.push_back(l);
        }
        t.lines.push_back(Vec::new());
        t
    }

    pub fn rect(&self) -> jumpgate_codec::Rect {
        jumpgate_codec::Rect::new(self.x, self.y, self.cols * CELL_W, self.rows * CELL_H)
    }

    pub fn random_line(&mut self) -> Vec<(char, [u8; 3])> {
        let mut line = Vec::new();
        let target = 10 + self.rng.below(u64::from(self.cols) - 10) as usize;
        while line.len() < target {
            let w = WORDS[self.rng.below(WORDS.len() as u64) as usize];
            let c = COLOURS[self.rng.below(COLOURS.len() as u64) as usize];
            for ch in w.chars() {
                line.push((ch, c));
            }
            line.push((' ', c));
        }
        line.truncate(self.cols as usize);
        line
    }

    /// Scrolls one line up with a new line at the bottom.
    pub fn scroll(&mut self) {
        self.lines.pop_front();
        let l = self.random_line();
        self.lines.push_back(l);
    }

    /// Types `n` characters on the last line (a new line when it is full).
    /// Returns the cell rectangles that changed.
    pub fn type_chars(&mut self, n: usize) -> Vec<jumpgate_codec::Rect> {
        self.type_chars_then(n, true)
    }

    /// As `type_chars`; a full line either scrolls the terminal (`scroll`)
    /// or is cleared (a prompt redrawn in place).
    pub fn type_chars_then(&mut self, n: usize, scroll: bool) -> Vec<jumpgate_codec::Rect> {
        let mut dirty = Vec::new();
        for _ in 0..n {
            let len = self.lines.back().map_or(0, |l| l.len()) as u32;
            if len + 1 >= self.cols {
                if scroll {
                    self.scroll();
                    self.lines.pop_back();
                    self.lines.push_back(Vec::new());
                    dirty.push(self.rect());
                } else {
                    self.lines.back_mut().expect("a line").clear();
                    dirty.push(jumpgate_codec::Rect::new(
                        self.x,
                        self.y + (self.rows - 1) * CELL_H,
                        self.cols * CELL_W,
                        CELL_H,
                    ));
                }
            }
            let ch = b"abcdefghijklmnopqrstuvwxyz  ,.;"[self.rng.below(31) as usize] as char;
            let row = self.rows - 1;
            let col = self.lines.back().map_or(0, |l| l.len()) as u32;
            self.lines
                .back_mut()
                .expect("a line")
                .push((ch, COLOURS[0]));
            // The new character and the cursor cell after it.
            dirty.push(jumpgate_codec::Rect::new(
                self.x + col * CELL_W,
                self.y + row * CELL_H,
                2 * CELL_W,
                CELL_H,
            ));
        }
        dirty
    }

    pub fn draw(&mut self, s: &mut Screen) {
        s.fill(
            self.x,
            self.y,
            self.cols * CELL_W,
            self.rows * CELL_H,
            TERM_BG,
        );
        for (r, line) in self.lines.iter().enumerate() {
            for (c, &(ch, fg)) in line.iter().enumerate() {
                let g = *self.glyphs.entry(ch).or_insert_with(|| glyph(ch));
                let (ox, oy) = (self.x + c as u32 * CELL_W, self.y + r as u32 * CELL_H);
                for (gy, grow) in g.iter().enumerate() {
                    for (gx, &cov) in grow.iter().enumerate() {
                        if cov == 0 {
                            continue;
                        }
                        let mix = |f: u8, b: u8| {
                            ((u32::from(f) * u32::from(cov) + u32::from(b) * (16 - u32::from(cov)))
                                / 16) as u8
                        };
                        s.put(
                            ox + gx as u32,
                            oy + gy as u32,
                            [
                                mix(fg[0], TERM_BG[0]),
                                mix(fg[1], TERM_BG[1]),
                                mix(fg[2], TERM_BG[2]),
                            ],
                        );
                    }
                }
            }
        }
        // A block cursor after the last line's text.
        let col = self.lines.back().map_or(0, |l| l.len()) as u32;
        if col < self.cols {
            s.fill(
                self.x + col * CELL_W,
                self.y + (self.rows - 1) * CELL_H,
                CELL_W,
                CELL_H,
                [200, 200, 200],
            );
        }
    }
}

/// A full-screen moving picture: a textured "photo" panning diagonally
/// under a slowly changing colour wash (every pixel changes every frame).
pub struct Motion {
    tex_w: u32,
    tex: Vec<[u8; 3]>,
}

impl Motion {
    pub fn new(w: u32, h: u32) -> Motion {
        let tex_w = w + 512;
        let tex_h = h + 512;
        let mut rng = Rng(0x51_7cc1_b727_220a);
        // Value noise, three octaves, on a coarse lattice.
        let octave = |cell: u32, rng: &mut Rng| {
            let gw = tex_w / cell + 2;
            let gh = tex_h / cell + 2;
            let g: Vec<f32> = (0..gw * gh)
                .map(|_| (rng.below(1000) as f32) / 1000.0)
                .collect();
            (cell, gw, g)
        };
        let octs = [
            octave(128, &mut rng),
            octave(32, &mut rng),
            octave(8, &mut rng),
        ];
        let mut tex = Vec::with_capacity((tex_w * tex_h) as usize);
        for y in 0..tex_h {
            for x in 0..tex_w {
                let mut v = [0f32; 3];
                for (k, (cell, gw, g)) in octs.iter().enumerate() {
                    let (cx, cy) = (x / cell, y / cell);
                    let (fx, fy) = (
                        (x % cell) as f32 / *cell as f32,
                        (y % cell) as f32 / *cell as f32,
                    );
                    let at = |i: u32, j: u32| g[(j * gw + i) as usize];
                    let n = at(cx, cy) * (1.0 - fx) * (1.0 - fy)
                        + at(cx + 1, cy) * fx * (1.0 - fy)
                        + at(cx, cy + 1) * (1.0 - fx) * fy
                        + at(cx + 1, cy + 1) * fx * fy;
                    let weight = [0.6, 0.3, 0.1][k];
                    v[0] += n * weight;
                    v[1] += n * weight * (0.8 + 0.1 * k as f32);
                    v[2] += (1.0 - n) * weight;
                }
                tex.push([
                    (v[0] * 255.0) as u8,
                    (v[1] * 230.0) as u8,
                    (v[2] * 200.0) as u8,
                ]);
            }
        }
        Motion { tex_w, tex }
    }

    pub fn draw(&self, s: &mut Screen, t: u32) {
        let (ox, oy) = ((t * 5) % 512, (t * 3) % 512);
        let wash = (t * 4 % 256) as u16;
        for y in 0..s.h {
            let row = ((y + oy) * self.tex_w + ox) as usize;
            for x in 0..s.w {
                let c = self.tex[row + x as usize];
                let i = ((y * s.w + x) * 4) as usize;
                s.data[i] = ((u16::from(c[2]) * 3 + wash) / 4) as u8;
                s.data[i + 1] = c[1];
                s.data[i + 2] = ((u16::from(c[0]) * 3 + (255 - wash)) / 4) as u8;
            }
        }
    }
}

/// A harder full-screen picture (like the desktop benchmark's painter):
/// 8×8 blocks of noise over a gradient panning diagonally, and fresh random
/// 16×16 blocks every frame. Little of it predicts well.
pub struct BlockNoise {
    tex_w: u32,
    tex: Vec<[u8; 3]>,
    rng: Rng,
}

impl BlockNoise {
    pub fn new(w: u32, h: u32) -> BlockNoise {
        let (tex_w, tex_h) = (w + 512, h + 512);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let bw = tex_w / 8 + 1;
        let blocks: Vec<u64> = (0..bw * (tex_h / 8 + 1)).map(|_| rng.next()).collect();
        let mut tex = Vec::with_capacity((tex_w * tex_h) as usize);
        for y in 0..tex_h {
            for x in 0..tex_w {
                let n = blocks[((y / 8) * bw + x / 8) as usize];
                let g = [
                    x * 255 / tex_w,
                    y * 255 / tex_h,
                    (x + y) * 255 / (tex_w + tex_h),
                ];
                tex.push(std::array::from_fn(|c| {
                    (g[c] as u8 / 2).wrapping_add((n >> (c * 8)) as u8 / 2)
                }));
            }
        }
        BlockNoise { tex_w, tex, rng }
    }

    pub fn draw(&mut self, s: &mut Screen, t: u32) {
        let (ox, oy) = ((t * 6) % 512, (t * 3) % 512);
        for y in 0..s.h {
            let row = ((y + oy) * self.tex_w + ox) as usize;
            for x in 0..s.w {
                let c = self.tex[row + x as usize];
                s.put(x, y, [c[2], c[1], c[0]]);
            }
        }
        for _ in 0..(s.w / 16) * (s.h / 16) / 27 {
            let r = self.rng.next();
            let bx = (r % u64::from(s.w / 16)) as u32 * 16;
            let by = ((r >> 16) % u64::from(s.h / 16)) as u32 * 16;
            let c = (r >> 32).to_le_bytes();
            s.fill(bx, by, 16, 16, [c[2], c[1], c[0]]);
        }
    }
}
