//! A plain full-frame VP9/VP8 encoder for video files (`jg recordings
//! export`): every frame is coded whole, keyframes only when asked, no
//! tiles and no link adaptation. The live path is [`crate::Encoder`].

use crate::vpx::{VpxEncoder, VpxSettings};
use crate::{Codec, Error, Frame};

/// One compressed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// Full frames in, VP9/VP8 frames out (libvpx, realtime speed, CBR).
#[derive(Debug)]
pub struct VideoEncoder {
    vpx: VpxEncoder,
}

impl VideoEncoder {
    /// An encoder for `width` × `height` frames at about `bitrate_kbps`
    /// while the picture moves (a still picture costs next to nothing).
    pub fn new(codec: Codec, width: u32, height: u32, bitrate_kbps: u32) -> Result<Self, Error> {
        let vpx = VpxEncoder::new(VpxSettings {
            codec,
            width,
            height,
            threads: 2,
            bitrate_kbps,
            // Files are watched frame by frame: a much finer quality
            // ceiling than the live stream's (which the lossless
            // refinement makes exact anyway).
            min_quantizer: 4,
        })?;
        Ok(VideoEncoder { vpx })
    }

    pub fn width(&self) -> u32 {
        self.vpx.settings().width
    }

    pub fn height(&self) -> u32 {
        self.vpx.settings().height
    }

    /// Encodes `frame` (the encoder's size) shown at `pts_ms` for
    /// `duration_ms`; `keyframe` forces a keyframe (the first frame always
    /// is one). Usually one frame out, none if libvpx held it back.
    pub fn encode(
        &mut self,
        frame: &Frame<'_>,
        pts_ms: u64,
        duration_ms: u64,
        keyframe: bool,
    ) -> Result<Vec<VideoFrame>, Error> {
        frame.check()?;
        if (frame.width, frame.height) != (self.width(), self.height()) {
            return Err(Error::BadFrame(format!(
                "{}x{} frame for a {}x{} encoder",
                frame.width,
                frame.height,
                self.width(),
                self.height()
            )));
        }
        let pts =
            i64::try_from(pts_ms).map_err(|_| Error::BadFrame("timestamp out of range".into()))?;
        let out = self.vpx.encode(
            frame.data,
            frame.stride,
            0,
            pts,
            duration_ms,
            keyframe,
            None,
        )?;
        Ok(out
            .into_iter()
            .map(|f| VideoFrame {
                data: f.data,
                keyframe: f.keyframe,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Canvas, Packet, Rect};

    /// Left half red, right half blue, a white square moving by `shift`.
    fn picture(w: u32, h: u32, shift: u32) -> Vec<u8> {
        let mut px = vec![0u8; (w * h * 4) as usize];
        for y in 0..h {
            for x in 0..w {
                let i = ((y * w + x) * 4) as usize;
                let bgr = if (shift..shift + 16).contains(&x) && (8..24).contains(&y) {
                    [255, 255, 255]
                } else if x < w / 2 {
                    [0, 0, 255]
                } else {
                    [255, 0, 0]
                };
                px[i..i + 3].copy_from_slice(&bgr);
                px[i + 3] = 255;
            }
        }
        px
    }

    fn close(a: &[u8], b: [u8; 3]) -> bool {
        a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 24)
    }

    #[test]
    fn frames_decode_to_the_picture_and_keyframes_come_when_asked() {
        for codec in [Codec::Vp9, Codec::Vp8] {
            let (w, h) = (160, 90);
            let mut enc = VideoEncoder::new(codec, w, h, 800).unwrap();
            let mut canvas = Canvas::new();
            canvas
                .apply(&Packet::StreamStart {
                    width: w as u16,
                    height: h as u16,
                    codec: codec.webcodecs_string(w, h),
                })
                .unwrap();
            let mut keys = Vec::new();
            for n in 0..12u32 {
                let px = picture(w, h, 4 + n * 4);
                let frame = Frame::new(w, h, w as usize * 4, &px).unwrap();
                let out = enc.encode(&frame, u64::from(n) * 100, 100, n == 8).unwrap();
                assert_eq!(out.len(), 1, "one frame per frame, no lag");
                keys.push(out[0].keyframe);
                canvas
                    .apply(&Packet::Video {
                        keyframe: out[0].keyframe,
                        timestamp_us: u64::from(n) * 100_000,
                        rects: vec![Rect::new(0, 0, w, h)],
                        data: out[0].data.clone(),
                    })
                    .unwrap();
            }
            let mut want = vec![false; 12];
            want[0] = true;
            want[8] = true;
            assert_eq!(keys, want, "{codec:?}");
            // The last picture: red left, blue right, the square at x 48..64.
            let px = canvas.pixels();
            let at = |x: u32, y: u32| &px[((y * w + x) * 4) as usize..][..3];
            assert!(close(at(10, 60), [0, 0, 255]), "{codec:?} {:?}", at(10, 60));
            assert!(
                close(at(150, 60), [255, 0, 0]),
                "{codec:?} {:?}",
                at(150, 60)
            );
            assert!(
                close(at(56, 16), [255, 255, 255]),
                "{codec:?} {:?}",
                at(56, 16)
            );
        }
    }

    #[test]
    fn a_frame_of_another_size_is_refused() {
        let mut enc = VideoEncoder::new(Codec::Vp9, 64, 64, 300).unwrap();
        let px = vec![0u8; 32 * 32 * 4];
        let frame = Frame::new(32, 32, 128, &px).unwrap();
        assert!(matches!(
            enc.encode(&frame, 0, 100, false),
            Err(Error::BadFrame(_))
        ));
    }
}
