//! The libvpx encoder and decoder (VP8/VP9), linked from the system
//! (Debian `libvpx-dev`, found by pkg-config).
//!
//! The only `unsafe` of the crate lives here: FFI calls into libvpx. Each
//! wrapper owns its codec context, initialises it in `new` (failing cleanly)
//! and destroys it in `Drop`; nothing borrowed from libvpx outlives the call
//! that returned it (packets and pictures are copied out at once).
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_uint};

use vpx_sys as ffi;
use yuv::{
    BufferStoreMut, YuvConversionMode, YuvPlanarImage, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

use crate::{Codec, Error};

/// BT.601, limited ("studio") range: what VP8 decoders assume and what the
/// VP9 stream declares in its header (and the browser is told).
const RANGE: YuvRange = YuvRange::Limited;
const MATRIX: YuvStandardMatrix = YuvStandardMatrix::Bt601;

fn codec_error(ctx: &mut ffi::vpx_codec_ctx_t, what: &str) -> Error {
    // SAFETY: `ctx` is an initialised context; libvpx returns a static or
    // context-owned NUL-terminated string (or NULL).
    let detail = unsafe {
        let msg = ffi::vpx_codec_error(ctx);
        let detail = ffi::vpx_codec_error_detail(ctx);
        let mut s = if msg.is_null() {
            String::new()
        } else {
            CStr::from_ptr(msg).to_string_lossy().into_owned()
        };
        if !detail.is_null() {
            s.push_str(": ");
            s.push_str(&CStr::from_ptr(detail).to_string_lossy());
        }
        s
    };
    Error::Vpx(format!("{what}: {detail}"))
}

/// Rate-control and speed settings handed to libvpx.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VpxSettings {
    pub(crate) codec: Codec,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) threads: u32,
    pub(crate) bitrate_kbps: u32,
    pub(crate) min_quantizer: u32,
}

/// One encoded frame, copied out of libvpx.
#[derive(Debug)]
pub(crate) struct EncodedFrame {
    pub(crate) data: Vec<u8>,
    pub(crate) keyframe: bool,
}

/// A realtime, zero-lag, CBR libvpx encoder tuned for screen content.
///
/// VP9 frames may be coded at a reduced size ([`VpxEncoder::encode`]'s
/// `shift`): the same stream, no keyframe (VP9 predicts from references of
/// another size, up to 2× per step); the decoder outputs the smaller picture.
pub(crate) struct VpxEncoder {
    ctx: Box<ffi::vpx_codec_ctx_t>,
    cfg: Box<ffi::vpx_codec_enc_cfg_t>,
    /// I420 of the coded size (`cfg.g_w` × `cfg.g_h`).
    img: *mut ffi::vpx_image_t,
    settings: VpxSettings,
    /// A reduced frame's BGRx picture at the coded size.
    scratch: Vec<u8>,
    /// Column sums of one output row while shrinking.
    sums: Vec<u16>,
    /// Wall-clock time of the last `vpx_codec_encode` (the encoder's cost
    /// measure for choosing the coded size).
    last_took: std::time::Duration,
}

impl std::fmt::Debug for VpxEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VpxEncoder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

// SAFETY: the encoder context and image are owned exclusively by this value
// and libvpx keeps no thread affinity; moving it to another thread is fine.
unsafe impl Send for VpxEncoder {}

impl VpxEncoder {
    pub(crate) fn new(s: VpxSettings) -> Result<Self, Error> {
        if s.width == 0 || s.height == 0 || s.width > 16384 || s.height > 16384 {
            return Err(Error::BadSize {
                width: s.width,
                height: s.height,
            });
        }
        // SAFETY: plain FFI: the interface pointers are static; `cfg` is
        // written by `vpx_codec_enc_config_default` before it is read; `ctx`
        // is zeroed memory that `vpx_codec_enc_init_ver` initialises (and on
        // failure we free nothing but the image we allocated).
        unsafe {
            let iface = match s.codec {
                Codec::Vp8 => ffi::vpx_codec_vp8_cx(),
                Codec::Vp9 => ffi::vpx_codec_vp9_cx(),
            };
            let mut cfg: Box<ffi::vpx_codec_enc_cfg_t> =
                Box::new(MaybeUninit::zeroed().assume_init());
            let rc = ffi::vpx_codec_enc_config_default(iface, &mut *cfg, 0);
            if rc != ffi::VPX_CODEC_OK {
                return Err(Error::Vpx(format!("vpx_codec_enc_config_default: {rc:?}")));
            }
            cfg.g_w = s.width;
            cfg.g_h = s.height;
            // Timestamps in milliseconds.
            cfg.g_timebase.num = 1;
            cfg.g_timebase.den = 1000;
            cfg.g_threads = s.threads.clamp(1, 2);
            cfg.g_lag_in_frames = 0;
            cfg.g_error_resilient = 0;
            cfg.g_pass = ffi::vpx_enc_pass::VPX_RC_ONE_PASS;
            cfg.rc_end_usage = ffi::vpx_rc_mode::VPX_CBR;
            cfg.rc_target_bitrate = s.bitrate_kbps.max(50);
            // The quality ceiling while the screen moves: finer than this
            // costs bits the lossless refinement makes moot (measured:
            // scrolling text 5.2 Mbit/s at 2, 0.75 Mbit/s at 48).
            cfg.rc_min_quantizer = s.min_quantizer.min(56);
            cfg.rc_max_quantizer = 56;
            cfg.rc_undershoot_pct = 50;
            cfg.rc_overshoot_pct = 50;
            cfg.rc_buf_sz = 1000;
            cfg.rc_buf_initial_sz = 500;
            cfg.rc_buf_optimal_sz = 600;
            // We skip frames ourselves (and keep their changes for the next
            // frame); a frame libvpx dropped would leave regions undrawn.
            cfg.rc_dropframe_thresh = 0;
            cfg.rc_resize_allowed = 0;
            // Keyframes only when asked (stream start, new viewer, resize).
            cfg.kf_mode = ffi::vpx_kf_mode::VPX_KF_DISABLED;
            cfg.kf_min_dist = 0;
            cfg.kf_max_dist = 100_000;

            let mut ctx: Box<ffi::vpx_codec_ctx_t> = Box::new(MaybeUninit::zeroed().assume_init());
            let rc = ffi::vpx_codec_enc_init_ver(
                &mut *ctx,
                iface,
                &*cfg,
                0,
                ffi::VPX_ENCODER_ABI_VERSION as c_int,
            );
            if rc != ffi::VPX_CODEC_OK {
                return Err(Error::Vpx(format!("vpx_codec_enc_init: {rc:?}")));
            }
            let img = ffi::vpx_img_alloc(
                std::ptr::null_mut(),
                ffi::vpx_img_fmt::VPX_IMG_FMT_I420,
                s.width,
                s.height,
                32,
            );
            let mut enc = VpxEncoder {
                ctx,
                cfg,
                img,
                settings: s,
                scratch: Vec::new(),
                sums: Vec::new(),
                last_took: std::time::Duration::ZERO,
            };
            if img.is_null() {
                return Err(Error::Vpx("vpx_img_alloc failed".into()));
            }
            enc.tune()?;
            Ok(enc)
        }
    }

    fn control(&mut self, id: u32, value: c_int, name: &str) -> Result<(), Error> {
        // SAFETY: every control we set takes an int argument.
        let rc = unsafe { ffi::vpx_codec_control_(&mut *self.ctx, id as c_int, value) };
        if rc != ffi::VPX_CODEC_OK {
            return Err(codec_error(&mut self.ctx, name));
        }
        Ok(())
    }

    fn tune(&mut self) -> Result<(), Error> {
        use ffi::vp8e_enc_control_id as C;
        match self.settings.codec {
            Codec::Vp9 => {
                // Fastest realtime speed; screen-content tools (palette,
                // intra block copy-like search for text).
                self.control(C::VP8E_SET_CPUUSED as u32, 9, "cpu-used")?;
                self.control(C::VP9E_SET_TUNE_CONTENT as u32, 1, "tune-content")?;
                // Two tile columns (log2 = 1) so two threads have work.
                self.control(C::VP9E_SET_TILE_COLUMNS as u32, 1, "tile-columns")?;
                self.control(C::VP9E_SET_ROW_MT as u32, 1, "row-mt")?;
                self.control(C::VP9E_SET_AQ_MODE as u32, 3, "aq-mode")?;
                self.control(C::VP9E_SET_NOISE_SENSITIVITY as u32, 0, "noise-sensitivity")?;
                self.control(
                    C::VP9E_SET_COLOR_SPACE as u32,
                    ffi::vpx_color_space::VPX_CS_BT_601 as c_int,
                    "color-space",
                )?;
                self.control(
                    C::VP9E_SET_COLOR_RANGE as u32,
                    ffi::vpx_color_range::VPX_CR_STUDIO_RANGE as c_int,
                    "color-range",
                )?;
            }
            Codec::Vp8 => {
                // VP8 realtime speed (0..16, higher is faster).
                self.control(C::VP8E_SET_CPUUSED as u32, 12, "cpu-used")?;
                self.control(C::VP8E_SET_SCREEN_CONTENT_MODE as u32, 1, "screen-content")?;
                self.control(C::VP8E_SET_STATIC_THRESHOLD as u32, 1, "static-threshold")?;
                self.control(C::VP8E_SET_TOKEN_PARTITIONS as u32, 1, "token-partitions")?;
            }
        }
        Ok(())
    }

    pub(crate) fn settings(&self) -> VpxSettings {
        self.settings
    }

    /// How long libvpx took to code the last frame (wall clock).
    pub(crate) fn last_took(&self) -> std::time::Duration {
        self.last_took
    }

    /// Changes the CBR target (kbit/s) without a keyframe.
    pub(crate) fn set_bitrate(&mut self, kbps: u32) -> Result<(), Error> {
        let kbps = kbps.max(50);
        if kbps == self.cfg.rc_target_bitrate {
            return Ok(());
        }
        self.cfg.rc_target_bitrate = kbps;
        self.settings.bitrate_kbps = kbps;
        // SAFETY: `cfg` is the configuration the context was made with.
        let rc = unsafe { ffi::vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg) };
        if rc != ffi::VPX_CODEC_OK {
            return Err(codec_error(&mut self.ctx, "vpx_codec_enc_config_set"));
        }
        Ok(())
    }

    /// The size frames are coded at with `shift` (halvings each way).
    pub(crate) fn coded_size(&self, shift: u32) -> (u32, u32) {
        let (w, h) = (self.settings.width, self.settings.height);
        (w.div_ceil(1 << shift), h.div_ceil(1 << shift))
    }

    /// Codes the next frames at `w` × `h` (no keyframe: see the type).
    fn set_coded_size(&mut self, w: u32, h: u32) -> Result<(), Error> {
        if (w, h) == (self.cfg.g_w, self.cfg.g_h) {
            return Ok(());
        }
        // SAFETY: `img` was allocated by vpx_img_alloc (or is null after a
        // failed allocation below) and is replaced before any use.
        let img = unsafe {
            if !self.img.is_null() {
                ffi::vpx_img_free(self.img);
            }
            self.img = std::ptr::null_mut();
            ffi::vpx_img_alloc(
                std::ptr::null_mut(),
                ffi::vpx_img_fmt::VPX_IMG_FMT_I420,
                w,
                h,
                32,
            )
        };
        if img.is_null() {
            return Err(Error::Vpx("vpx_img_alloc failed".into()));
        }
        self.img = img;
        self.cfg.g_w = w;
        self.cfg.g_h = h;
        // SAFETY: `cfg` is the configuration the context was made with.
        let rc = unsafe { ffi::vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg) };
        if rc != ffi::VPX_CODEC_OK {
            return Err(codec_error(
                &mut self.ctx,
                "vpx_codec_enc_config_set (size)",
            ));
        }
        Ok(())
    }

    /// Encodes one BGRA frame (`stride` bytes per row) of the encoder's size,
    /// coded at half the size each way `shift` times (VP9 only; 0 for VP8).
    /// `pts_ms`/`duration_ms` are in the 1/1000 timebase. `copy_to`
    /// (`width * height * 4` bytes) receives a packed copy of the frame,
    /// made while its pixels are read anyway for a reduced size.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn encode(
        &mut self,
        bgra: &[u8],
        stride: usize,
        shift: u32,
        pts_ms: i64,
        duration_ms: u64,
        force_key: bool,
        copy_to: Option<&mut [u8]>,
    ) -> Result<Vec<EncodedFrame>, Error> {
        let shift = if self.settings.codec == Codec::Vp9 {
            shift.min(4)
        } else {
            0
        };
        let (w, h) = (self.settings.width, self.settings.height);
        let (cw, ch) = self.coded_size(shift);
        if (cw, ch) != (self.cfg.g_w, self.cfg.g_h) && self.settings.codec == Codec::Vp9 {
            // Reduced size means heavy motion: the screen-content tools
            // (palette, intra block copy search) cost a quarter more there
            // and help little on moving pictures (measured on the
            // benchmark's full-screen workload: 41 → 33 ms of CPU per
            // half-size frame).
            let content = i32::from(shift == 0);
            self.control(
                ffi::vp8e_enc_control_id::VP9E_SET_TUNE_CONTENT as u32,
                content,
                "tune-content",
            )?;
        }
        self.set_coded_size(cw, ch)?;
        // Full size: the caller's pixels straight into the picture libvpx
        // reads. Reduced: BGRx averaged down to the coded size first (one
        // pass over the screen), then only the small picture converted;
        // converting the full size and shrinking the I420 planes read and
        // wrote the screen's worth of pixels twice more.
        let (src, src_stride) = if shift == 0 {
            if let Some(copy) = copy_to {
                copy_packed(bgra, w as usize, h as usize, stride, copy);
            }
            (bgra, stride)
        } else {
            shrink_bgrx(
                bgra,
                w as usize,
                h as usize,
                stride,
                shift,
                &mut self.scratch,
                &mut self.sums,
                copy_to,
            );
            (&self.scratch[..], cw as usize * 4)
        };
        {
            let uvh = ch.div_ceil(2) as usize;
            // SAFETY: `img` was allocated by vpx_img_alloc for (cw, ch)
            // I420 (`set_coded_size` above): its planes hold `stride[i] *
            // rows` bytes each, rows = ch for Y and ceil(ch/2) for U and V;
            // the slices end before the next libvpx call.
            let (y_plane, u_plane, v_plane, strides) = unsafe {
                let img = &mut *self.img;
                let st = [
                    img.stride[0] as usize,
                    img.stride[1] as usize,
                    img.stride[2] as usize,
                ];
                (
                    std::slice::from_raw_parts_mut(img.planes[0], st[0] * ch as usize),
                    std::slice::from_raw_parts_mut(img.planes[1], st[1] * uvh),
                    std::slice::from_raw_parts_mut(img.planes[2], st[2] * uvh),
                    st,
                )
            };
            let mut planar = YuvPlanarImageMut {
                y_plane: BufferStoreMut::Borrowed(y_plane),
                y_stride: strides[0] as u32,
                u_plane: BufferStoreMut::Borrowed(u_plane),
                u_stride: strides[1] as u32,
                v_plane: BufferStoreMut::Borrowed(v_plane),
                v_stride: strides[2] as u32,
                width: cw,
                height: ch,
            };
            yuv::bgra_to_yuv420(
                &mut planar,
                src,
                src_stride as u32,
                RANGE,
                MATRIX,
                YuvConversionMode::Balanced,
            )
            .map_err(|e| Error::Vpx(format!("colour conversion: {e}")))?;
        }
        let flags = if force_key {
            ffi::VPX_EFLAG_FORCE_KF as ffi::vpx_enc_frame_flags_t
        } else {
            0
        };
        // SAFETY: the context and image are valid; output packets are
        // copied out before the next call into libvpx.
        unsafe {
            let started = std::time::Instant::now();
            let rc = ffi::vpx_codec_encode(
                &mut *self.ctx,
                self.img,
                pts_ms,
                duration_ms.max(1) as _,
                flags,
                ffi::VPX_DL_REALTIME as _,
            );
            self.last_took = started.elapsed();
            if rc != ffi::VPX_CODEC_OK {
                return Err(codec_error(&mut self.ctx, "vpx_codec_encode"));
            }
            let mut out = Vec::new();
            let mut iter: ffi::vpx_codec_iter_t = std::ptr::null();
            loop {
                let pkt = ffi::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter);
                if pkt.is_null() {
                    break;
                }
                let pkt = &*pkt;
                if pkt.kind != ffi::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    continue;
                }
                let f = pkt.data.frame;
                let data = std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize).to_vec();
                out.push(EncodedFrame {
                    data,
                    keyframe: f.flags & ffi::VPX_FRAME_IS_KEY != 0,
                });
            }
            Ok(out)
        }
    }
}

/// Copies a `w` × `h` BGRx picture (`stride` bytes per row) into `dst`,
/// `w * 4` bytes per row.
fn copy_packed(src: &[u8], w: usize, h: usize, stride: usize, dst: &mut [u8]) {
    let row = w * 4;
    if stride == row {
        dst[..row * h].copy_from_slice(&src[..row * h]);
        return;
    }
    for (d, s) in dst[..row * h].chunks_exact_mut(row).zip(src.chunks(stride)) {
        d.copy_from_slice(&s[..row]);
    }
}

/// Shrinks a `w` × `h` BGRx picture (`stride` bytes per row) by 2^`shift`
/// each way into `dst`, packed (ceil(w/2^shift) × ceil(h/2^shift)
/// pixels): each output pixel is the rounded mean of its block (of the
/// part inside the picture at the right and bottom edges). `copy`, when
/// given, receives a packed copy of the picture on the way (each row is
/// read once for both).
#[allow(clippy::too_many_arguments)]
fn shrink_bgrx(
    src: &[u8],
    w: usize,
    h: usize,
    stride: usize,
    shift: u32,
    dst: &mut Vec<u8>,
    sums: &mut Vec<u16>,
    mut copy: Option<&mut [u8]>,
) {
    let f = 1usize << shift;
    let (cw, ch) = (w.div_ceil(f), h.div_ceil(f));
    let row = w * 4;
    dst.resize(cw * ch * 4, 0);
    // Up to 16 rows of 255 per column: fits in u16.
    sums.resize(row, 0);
    for oy in 0..ch {
        let y0 = oy * f;
        let rows = f.min(h - y0);
        for r in 0..rows {
            let line = &src[(y0 + r) * stride..][..row];
            if r == 0 {
                for (a, &b) in sums.iter_mut().zip(line) {
                    *a = u16::from(b);
                }
            } else {
                for (a, &b) in sums.iter_mut().zip(line) {
                    *a += u16::from(b);
                }
            }
            if let Some(copy) = copy.as_deref_mut() {
                copy[(y0 + r) * row..][..row].copy_from_slice(line);
            }
        }
        let out = &mut dst[oy * cw * 4..][..cw * 4];
        let whole = w / f;
        if rows == f {
            let bits = 2 * shift;
            match f {
                2 => block_means::<8>(&sums[..whole * 8], &mut out[..whole * 4], bits),
                4 => block_means::<16>(&sums[..whole * 16], &mut out[..whole * 4], bits),
                _ => block_means_any(&sums[..whole * f * 4], f, rows, &mut out[..whole * 4]),
            }
        } else {
            block_means_any(&sums[..whole * f * 4], f, rows, &mut out[..whole * 4]);
        }
        if whole < cw {
            // The right edge's partial block.
            block_means_any(
                &sums[whole * f * 4..],
                w - whole * f,
                rows,
                &mut out[whole * 4..],
            );
        }
    }
}

/// Means of blocks of `N / 4` pixels' column sums (each the sum of
/// `2^bits / (N / 4)` rows): one output pixel per `N` sums.
fn block_means<const N: usize>(sums: &[u16], out: &mut [u8], bits: u32) {
    let round = 1u32 << (bits - 1);
    for (o, b) in out.chunks_exact_mut(4).zip(sums.chunks_exact(N)) {
        let mut s = [0u32; 4];
        for px in b.chunks_exact(4) {
            for c in 0..4 {
                s[c] += u32::from(px[c]);
            }
        }
        for c in 0..4 {
            o[c] = ((s[c] + round) >> bits) as u8;
        }
    }
}

/// Means of blocks `cols` pixels wide of column sums of `rows` rows.
fn block_means_any(sums: &[u16], cols: usize, rows: usize, out: &mut [u8]) {
    let n = (cols * rows) as u32;
    for (o, b) in out.chunks_exact_mut(4).zip(sums.chunks_exact(cols * 4)) {
        let mut s = [0u32; 4];
        for px in b.chunks_exact(4) {
            for c in 0..4 {
                s[c] += u32::from(px[c]);
            }
        }
        for c in 0..4 {
            o[c] = ((s[c] + n / 2) / n) as u8;
        }
    }
}

impl Drop for VpxEncoder {
    fn drop(&mut self) {
        // SAFETY: both were initialised in `new` and are released once.
        unsafe {
            if !self.img.is_null() {
                ffi::vpx_img_free(self.img);
            }
            ffi::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// A libvpx decoder producing BGRA (the reference decoder's video path).
pub(crate) struct VpxDecoder {
    ctx: Box<ffi::vpx_codec_ctx_t>,
}

impl std::fmt::Debug for VpxDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VpxDecoder").finish_non_exhaustive()
    }
}

// SAFETY: as for the encoder: exclusively owned, no thread affinity.
unsafe impl Send for VpxDecoder {}

/// A decoded picture converted to BGRA, `width * 4` bytes per row.
#[derive(Debug)]
pub(crate) struct DecodedFrame {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) bgra: Vec<u8>,
}

impl VpxDecoder {
    pub(crate) fn new(codec: Codec) -> Result<Self, Error> {
        // SAFETY: zeroed context initialised by vpx_codec_dec_init_ver; a
        // NULL config lets libvpx pick its defaults.
        unsafe {
            let iface = match codec {
                Codec::Vp8 => ffi::vpx_codec_vp8_dx(),
                Codec::Vp9 => ffi::vpx_codec_vp9_dx(),
            };
            let mut ctx: Box<ffi::vpx_codec_ctx_t> = Box::new(MaybeUninit::zeroed().assume_init());
            let rc = ffi::vpx_codec_dec_init_ver(
                &mut *ctx,
                iface,
                std::ptr::null(),
                0,
                ffi::VPX_DECODER_ABI_VERSION as c_int,
            );
            if rc != ffi::VPX_CODEC_OK {
                return Err(Error::Vpx(format!("vpx_codec_dec_init: {rc:?}")));
            }
            Ok(VpxDecoder { ctx })
        }
    }

    pub(crate) fn decode(&mut self, data: &[u8]) -> Result<Option<DecodedFrame>, Error> {
        // SAFETY: `data` outlives the call; the returned image belongs to the
        // decoder and is converted (copied) before the next call.
        unsafe {
            let rc = ffi::vpx_codec_decode(
                &mut *self.ctx,
                data.as_ptr(),
                data.len() as c_uint,
                std::ptr::null_mut(),
                0,
            );
            if rc != ffi::VPX_CODEC_OK {
                return Err(codec_error(&mut self.ctx, "vpx_codec_decode"));
            }
            let mut iter: ffi::vpx_codec_iter_t = std::ptr::null();
            let mut last = None;
            loop {
                let img = ffi::vpx_codec_get_frame(&mut *self.ctx, &mut iter);
                if img.is_null() {
                    break;
                }
                let img = &*img;
                if img.fmt != ffi::vpx_img_fmt::VPX_IMG_FMT_I420 {
                    return Err(Error::Vpx(format!(
                        "unexpected picture format {:?}",
                        img.fmt
                    )));
                }
                let (w, h) = (img.d_w, img.d_h);
                let ch = h.div_ceil(2) as usize;
                let ys = img.stride[0] as usize;
                let us = img.stride[1] as usize;
                let vs = img.stride[2] as usize;
                let planar = YuvPlanarImage {
                    y_plane: std::slice::from_raw_parts(img.planes[0], ys * h as usize),
                    y_stride: ys as u32,
                    u_plane: std::slice::from_raw_parts(img.planes[1], us * ch),
                    u_stride: us as u32,
                    v_plane: std::slice::from_raw_parts(img.planes[2], vs * ch),
                    v_stride: vs as u32,
                    width: w,
                    height: h,
                };
                let mut bgra = vec![0u8; w as usize * h as usize * 4];
                yuv::yuv420_to_bgra(&planar, &mut bgra, w * 4, RANGE, MATRIX)
                    .map_err(|e| Error::Vpx(format!("colour conversion: {e}")))?;
                last = Some(DecodedFrame {
                    width: w,
                    height: h,
                    bgra,
                });
            }
            Ok(last)
        }
    }
}

impl Drop for VpxDecoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe {
            ffi::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every output pixel is the rounded mean of its block (the part of it
    /// inside the picture at the edges), for odd sizes and a padded stride,
    /// and the copy made on the way is the picture.
    #[test]
    fn shrinking_averages_blocks_and_copies_the_picture() {
        for (w, h, shift) in [(37, 21, 1), (37, 21, 2), (64, 32, 2), (10, 7, 3), (5, 3, 1)] {
            let stride = w * 4 + 12;
            let src: Vec<u8> = (0..stride * h).map(|i| (i * 7 + i / 5) as u8).collect();
            let (mut dst, mut sums) = (Vec::new(), Vec::new());
            let mut copy = vec![0u8; w * h * 4];
            shrink_bgrx(
                &src,
                w,
                h,
                stride,
                shift,
                &mut dst,
                &mut sums,
                Some(&mut copy),
            );
            let f = 1usize << shift;
            let (cw, ch) = (w.div_ceil(f), h.div_ceil(f));
            assert_eq!(dst.len(), cw * ch * 4);
            for oy in 0..ch {
                for ox in 0..cw {
                    for c in 0..4 {
                        let (mut sum, mut n) = (0u32, 0u32);
                        for y in oy * f..((oy + 1) * f).min(h) {
                            for x in ox * f..((ox + 1) * f).min(w) {
                                sum += u32::from(src[y * stride + x * 4 + c]);
                                n += 1;
                            }
                        }
                        let want = ((sum + n / 2) / n) as u8;
                        assert_eq!(dst[(oy * cw + ox) * 4 + c], want, "{w}x{h}>>{shift}");
                    }
                }
            }
            for y in 0..h {
                assert_eq!(
                    copy[y * w * 4..(y + 1) * w * 4],
                    src[y * stride..y * stride + w * 4]
                );
            }
        }
    }
}
