//! A minimal WebM (Matroska) writer for one VP9 or VP8 video track: what
//! `jg recordings export` needs to turn a desktop recording into a file
//! any player opens.
//!
//! Hand-written rather than a crate: the writers on crates.io either build
//! libwebm's C++ (`webm`) or are generic EBML tag iterators
//! (`webm-iterable` + `ebml-iterable`) that leave the layout (sizes,
//! cluster timecodes, cues, seek head) to the caller anyway, which is all
//! this module does. Layout written:
//!
//! ```text
//! EBML header (DocType webm)
//! Segment (size patched at the end)
//!   SeekHead  -> Info, Tracks, Cues (positions patched at the end)
//!   Info      TimecodeScale 1 ms, Duration (patched), MuxingApp, WritingApp
//!   Tracks    one video track: V_VP9 / V_VP8, PixelWidth, PixelHeight
//!   Cluster…  Timecode, SimpleBlock… (a new cluster at every keyframe and
//!             at least every 5 s)
//!   Cues      one CuePoint per cluster that starts with a keyframe
//! ```

use std::io::{self, Seek, SeekFrom, Write};

use jumpgate_codec::Codec;

/// Element IDs (Matroska specification), written with their marker bits.
mod id {
    pub(super) const EBML: u32 = 0x1A45_DFA3;
    pub(super) const EBML_VERSION: u32 = 0x4286;
    pub(super) const EBML_READ_VERSION: u32 = 0x42F7;
    pub(super) const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub(super) const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub(super) const DOC_TYPE: u32 = 0x4282;
    pub(super) const DOC_TYPE_VERSION: u32 = 0x4287;
    pub(super) const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub(super) const SEGMENT: u32 = 0x1853_8067;
    pub(super) const SEEK_HEAD: u32 = 0x114D_9B74;
    pub(super) const SEEK: u32 = 0x4DBB;
    pub(super) const SEEK_ID: u32 = 0x53AB;
    pub(super) const SEEK_POSITION: u32 = 0x53AC;
    pub(super) const INFO: u32 = 0x1549_A966;
    pub(super) const TIMECODE_SCALE: u32 = 0x2A_D7B1;
    pub(super) const DURATION: u32 = 0x4489;
    pub(super) const MUXING_APP: u32 = 0x4D80;
    pub(super) const WRITING_APP: u32 = 0x5741;
    pub(super) const TRACKS: u32 = 0x1654_AE6B;
    pub(super) const TRACK_ENTRY: u32 = 0xAE;
    pub(super) const TRACK_NUMBER: u32 = 0xD7;
    pub(super) const TRACK_UID: u32 = 0x73C5;
    pub(super) const TRACK_TYPE: u32 = 0x83;
    pub(super) const FLAG_LACING: u32 = 0x9C;
    pub(super) const CODEC_ID: u32 = 0x86;
    pub(super) const VIDEO: u32 = 0xE0;
    pub(super) const PIXEL_WIDTH: u32 = 0xB0;
    pub(super) const PIXEL_HEIGHT: u32 = 0xBA;
    pub(super) const CLUSTER: u32 = 0x1F43_B675;
    pub(super) const TIMECODE: u32 = 0xE7;
    pub(super) const SIMPLE_BLOCK: u32 = 0xA3;
    pub(super) const CUES: u32 = 0x1C53_BB6B;
    pub(super) const CUE_POINT: u32 = 0xBB;
    pub(super) const CUE_TIME: u32 = 0xB3;
    pub(super) const CUE_TRACK_POSITIONS: u32 = 0xB7;
    pub(super) const CUE_TRACK: u32 = 0xF7;
    pub(super) const CUE_CLUSTER_POSITION: u32 = 0xF1;
}

/// The Matroska codec ID of the track.
fn codec_id(codec: Codec) -> &'static str {
    match codec {
        Codec::Vp8 => "V_VP8",
        Codec::Vp9 => "V_VP9",
    }
}

/// A cluster is closed after this long (ms) even without a keyframe.
const CLUSTER_MAX_MS: u64 = 5_000;
/// Bytes of the size field of elements whose size is patched later.
const PATCHED_SIZE_LEN: usize = 8;

/// Appends an element ID (its bytes already carry the length marker).
fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().position(|&b| b != 0).unwrap_or(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends `size` as an EBML variable-length integer, as short as it goes
/// (the all-ones value of each length is reserved for "unknown").
fn put_size(out: &mut Vec<u8>, size: u64) {
    let mut len = 1;
    while len < 8 && size >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    put_size_len(out, size, len);
}

/// Appends `size` as an EBML variable-length integer of exactly `len` bytes.
fn put_size_len(out: &mut Vec<u8>, size: u64, len: usize) {
    debug_assert!((1..=8).contains(&len) && size < (1u64 << (7 * len)) - 1);
    let v = size | (1u64 << (7 * len));
    out.extend_from_slice(&v.to_be_bytes()[8 - len..]);
}

fn element(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn uint(out: &mut Vec<u8>, id: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().position(|&b| b != 0).unwrap_or(7);
    element(out, id, &bytes[skip..]);
}

/// An unsigned integer always 8 bytes long (patched later in place).
fn uint8(out: &mut Vec<u8>, id: u32, v: u64) {
    element(out, id, &v.to_be_bytes());
}

fn float(out: &mut Vec<u8>, id: u32, v: f64) {
    element(out, id, &v.to_be_bytes());
}

fn string(out: &mut Vec<u8>, id: u32, s: &str) {
    element(out, id, s.as_bytes());
}

fn master(out: &mut Vec<u8>, id: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut b = Vec::new();
    body(&mut b);
    element(out, id, &b);
}

/// The SeekHead with fixed-width positions: its size does not depend on
/// the values, so it can be written first and patched at the end.
fn seek_head(info: u64, tracks: u64, cues: u64) -> Vec<u8> {
    let mut out = Vec::new();
    master(&mut out, id::SEEK_HEAD, |b| {
        for (target, pos) in [(id::INFO, info), (id::TRACKS, tracks), (id::CUES, cues)] {
            master(b, id::SEEK, |s| {
                let mut idb = Vec::new();
                put_id(&mut idb, target);
                element(s, id::SEEK_ID, &idb);
                uint8(s, id::SEEK_POSITION, pos);
            });
        }
    });
    out
}

/// One keyframe cluster, for the cues.
#[derive(Debug, Clone, Copy)]
struct Cue {
    time_ms: u64,
    /// Cluster position relative to the segment's data.
    position: u64,
}

/// Writes a WebM file frame by frame into a seekable writer; sizes and
/// positions that are only known at the end are patched by [`finish`].
///
/// [`finish`]: WebmWriter::finish
#[derive(Debug)]
pub(crate) struct WebmWriter<W: Write + Seek> {
    out: W,
    /// File offset of the segment's data (positions count from here).
    segment_data: u64,
    /// File offset of the Duration float's 8 bytes.
    duration_at: u64,
    info_pos: u64,
    tracks_pos: u64,
    /// Bytes of the segment's data written so far.
    written: u64,
    cluster: Vec<u8>,
    cluster_start_ms: Option<u64>,
    cluster_keyframe: bool,
    last_ms: Option<u64>,
    cues: Vec<Cue>,
}

impl<W: Write + Seek> WebmWriter<W> {
    /// Writes the header, the track (`width` × `height` pixels) and room
    /// for what is patched later.
    pub(crate) fn new(mut out: W, codec: Codec, width: u32, height: u32) -> io::Result<Self> {
        let start = out.stream_position()?;
        let mut head = Vec::new();
        master(&mut head, id::EBML, |b| {
            uint(b, id::EBML_VERSION, 1);
            uint(b, id::EBML_READ_VERSION, 1);
            uint(b, id::EBML_MAX_ID_LENGTH, 4);
            uint(b, id::EBML_MAX_SIZE_LENGTH, 8);
            string(b, id::DOC_TYPE, "webm");
            uint(b, id::DOC_TYPE_VERSION, 4);
            uint(b, id::DOC_TYPE_READ_VERSION, 2);
        });
        put_id(&mut head, id::SEGMENT);
        // Placeholder size: patched once everything is written.
        put_size_len(&mut head, 0, PATCHED_SIZE_LEN);
        let segment_data = start + head.len() as u64;

        let mut seg = seek_head(0, 0, 0);
        let info_pos = seg.len() as u64;
        let mut duration_in_info = 0;
        master(&mut seg, id::INFO, |b| {
            uint(b, id::TIMECODE_SCALE, 1_000_000);
            // Duration's value is the last 8 bytes of the element.
            float(b, id::DURATION, 0.0);
            duration_in_info = b.len() - 8;
            string(b, id::MUXING_APP, "jumpgate");
            string(
                b,
                id::WRITING_APP,
                concat!("jg ", env!("CARGO_PKG_VERSION")),
            );
        });
        // The Info body starts after its ID (4 bytes) and its size (1 byte:
        // the body is far below 127 bytes).
        let duration_at = segment_data + info_pos + 4 + 1 + duration_in_info as u64;
        let tracks_pos = seg.len() as u64;
        master(&mut seg, id::TRACKS, |b| {
            master(b, id::TRACK_ENTRY, |t| {
                uint(t, id::TRACK_NUMBER, 1);
                uint(t, id::TRACK_UID, 1);
                uint(t, id::TRACK_TYPE, 1);
                uint(t, id::FLAG_LACING, 0);
                string(t, id::CODEC_ID, codec_id(codec));
                master(t, id::VIDEO, |v| {
                    uint(v, id::PIXEL_WIDTH, u64::from(width));
                    uint(v, id::PIXEL_HEIGHT, u64::from(height));
                });
            });
        });
        out.write_all(&head)?;
        out.write_all(&seg)?;
        Ok(WebmWriter {
            out,
            segment_data,
            duration_at,
            info_pos,
            tracks_pos,
            written: seg.len() as u64,
            cluster: Vec::new(),
            cluster_start_ms: None,
            cluster_keyframe: false,
            last_ms: None,
            cues: Vec::new(),
        })
    }

    /// Adds one compressed frame shown from `time_ms` on. Times must not
    /// go backwards; the first frame must be a keyframe.
    pub(crate) fn write_frame(
        &mut self,
        time_ms: u64,
        keyframe: bool,
        data: &[u8],
    ) -> io::Result<()> {
        if self.last_ms.is_some_and(|l| time_ms < l) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame times must not go backwards",
            ));
        }
        if self.last_ms.is_none() && !keyframe {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the first frame must be a keyframe",
            ));
        }
        let new_cluster = match self.cluster_start_ms {
            None => true,
            Some(start) => keyframe || time_ms - start >= CLUSTER_MAX_MS,
        };
        if new_cluster {
            self.flush_cluster()?;
            self.cluster_start_ms = Some(time_ms);
            self.cluster_keyframe = keyframe;
            uint(&mut self.cluster, id::TIMECODE, time_ms);
        }
        let rel = time_ms - self.cluster_start_ms.expect("a cluster");
        let rel = i16::try_from(rel).expect("clusters are shorter than 32 s");
        put_id(&mut self.cluster, id::SIMPLE_BLOCK);
        put_size(&mut self.cluster, 4 + data.len() as u64);
        // Track number 1 as a 1-byte vint, relative timecode, flags.
        self.cluster.push(0x81);
        self.cluster.extend_from_slice(&rel.to_be_bytes());
        self.cluster.push(if keyframe { 0x80 } else { 0 });
        self.cluster.extend_from_slice(data);
        self.last_ms = Some(time_ms);
        Ok(())
    }

    fn flush_cluster(&mut self) -> io::Result<()> {
        let Some(start) = self.cluster_start_ms.take() else {
            return Ok(());
        };
        if self.cluster_keyframe {
            self.cues.push(Cue {
                time_ms: start,
                position: self.written,
            });
        }
        let mut head = Vec::new();
        put_id(&mut head, id::CLUSTER);
        put_size(&mut head, self.cluster.len() as u64);
        self.out.write_all(&head)?;
        self.out.write_all(&self.cluster)?;
        self.written += (head.len() + self.cluster.len()) as u64;
        self.cluster.clear();
        Ok(())
    }

    /// Writes the last cluster and the cues, patches the sizes, the seek
    /// head and the duration (`duration_ms`: where the video ends), and
    /// hands back the writer.
    pub(crate) fn finish(mut self, duration_ms: u64) -> io::Result<W> {
        self.flush_cluster()?;
        let cues_pos = self.written;
        let mut cues = Vec::new();
        master(&mut cues, id::CUES, |b| {
            for c in &self.cues {
                master(b, id::CUE_POINT, |p| {
                    uint(p, id::CUE_TIME, c.time_ms);
                    master(p, id::CUE_TRACK_POSITIONS, |t| {
                        uint(t, id::CUE_TRACK, 1);
                        uint(t, id::CUE_CLUSTER_POSITION, c.position);
                    });
                });
            }
        });
        self.out.write_all(&cues)?;
        self.written += cues.len() as u64;
        let end = self.out.stream_position()?;

        let mut size = Vec::new();
        put_size_len(&mut size, self.written, PATCHED_SIZE_LEN);
        self.out
            .seek(SeekFrom::Start(self.segment_data - PATCHED_SIZE_LEN as u64))?;
        self.out.write_all(&size)?;
        self.out
            .write_all(&seek_head(self.info_pos, self.tracks_pos, cues_pos))?;
        self.out.seek(SeekFrom::Start(self.duration_at))?;
        self.out.write_all(&(duration_ms as f64).to_be_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// Reads a variable-length integer: (value, length). `keep_marker` for IDs.
    fn vint(b: &[u8], keep_marker: bool) -> (u64, usize) {
        let len = b[0].leading_zeros() as usize + 1;
        let mut v = u64::from(b[0]);
        if !keep_marker {
            v &= (1 << (8 - len)) - 1;
        }
        for &x in &b[1..len] {
            v = (v << 8) | u64::from(x);
        }
        (v, len)
    }

    /// The elements of `b` in order: (id, body offset in `b`, body).
    fn children(b: &[u8]) -> Vec<(u32, usize, &[u8])> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < b.len() {
            let (id, n) = vint(&b[at..], true);
            let (size, m) = vint(&b[at + n..], false);
            let start = at + n + m;
            let end = start + size as usize;
            out.push((id as u32, start, &b[start..end]));
            at = end;
        }
        out
    }

    fn find(b: &[u8], want: u32) -> &[u8] {
        children(b)
            .into_iter()
            .find(|(id, _, _)| *id == want)
            .map(|(_, _, body)| body)
            .unwrap_or_else(|| panic!("no element {want:#x}"))
    }

    fn be(b: &[u8]) -> u64 {
        b.iter().fold(0, |v, &x| (v << 8) | u64::from(x))
    }

    #[test]
    fn sizes_are_shortest_vints_and_ids_keep_their_marker() {
        let enc = |v| {
            let mut o = Vec::new();
            put_size(&mut o, v);
            o
        };
        assert_eq!(enc(0), [0x80]);
        assert_eq!(enc(126), [0xFE]);
        // 127 is "unknown" in one byte: two bytes.
        assert_eq!(enc(127), [0x40, 0x7F]);
        assert_eq!(enc(16_382), [0x7F, 0xFE]);
        assert_eq!(enc(16_383), [0x20, 0x3F, 0xFF]);
        let mut o = Vec::new();
        put_size_len(&mut o, 5, 8);
        assert_eq!(o, [1, 0, 0, 0, 0, 0, 0, 5]);
        for v in [0, 1, 126, 127, 300, 1 << 20, (1 << 49) - 2] {
            assert_eq!(vint(&enc(v), false), (v, enc(v).len()));
        }
        let mut o = Vec::new();
        put_id(&mut o, id::SEGMENT);
        put_id(&mut o, id::TIMECODE);
        put_id(&mut o, id::SEEK_ID);
        assert_eq!(o, [0x18, 0x53, 0x80, 0x67, 0xE7, 0x53, 0xAB]);
    }

    #[test]
    fn a_file_has_patched_sizes_seek_positions_duration_and_cues() {
        let mut w = WebmWriter::new(Cursor::new(Vec::new()), Codec::Vp9, 640, 360).unwrap();
        // 0 ms key, 100 ms delta, 6 s delta (new cluster by time, no cue),
        // 7 s key (new cluster with a cue).
        w.write_frame(0, true, &[1, 2, 3]).unwrap();
        w.write_frame(100, false, &[4]).unwrap();
        assert!(w.write_frame(50, false, &[9]).is_err());
        w.write_frame(6_000, false, &[5]).unwrap();
        w.write_frame(7_000, true, &[6, 7]).unwrap();
        let file = w.finish(7_100).unwrap().into_inner();

        let top = children(&file);
        assert_eq!(top.len(), 2, "EBML header and one segment");
        assert_eq!(top[0].0, id::EBML);
        assert_eq!(find(top[0].2, id::DOC_TYPE), b"webm");
        let (seg_id, seg_at, seg) = top[1];
        assert_eq!(seg_id, id::SEGMENT);
        assert_eq!(seg_at + seg.len(), file.len(), "segment size patched");

        let parts = children(seg);
        let ids: Vec<u32> = parts.iter().map(|p| p.0).collect();
        assert_eq!(
            ids,
            [
                id::SEEK_HEAD,
                id::INFO,
                id::TRACKS,
                id::CLUSTER,
                id::CLUSTER,
                id::CLUSTER,
                id::CUES
            ]
        );
        // Every seek entry points at the element it names (positions are
        // relative to the segment's data; an element starts at its ID).
        let pos_of = |want: u32| {
            parts
                .iter()
                .find(|p| p.0 == want)
                .map(|(_, at, body)| {
                    let mut head = Vec::new();
                    put_id(&mut head, want);
                    put_size(&mut head, body.len() as u64);
                    (at - head.len()) as u64
                })
                .unwrap()
        };
        for (_, _, seek) in children(parts[0].2) {
            let target = be(find(seek, id::SEEK_ID)) as u32;
            assert_eq!(be(find(seek, id::SEEK_POSITION)), pos_of(target));
        }
        let info = parts[1].2;
        assert_eq!(be(find(info, id::TIMECODE_SCALE)), 1_000_000);
        let d = f64::from_be_bytes(find(info, id::DURATION).try_into().unwrap());
        assert_eq!(d, 7_100.0);
        let track = find(parts[2].2, id::TRACK_ENTRY);
        assert_eq!(find(track, id::CODEC_ID), b"V_VP9");
        let video = find(track, id::VIDEO);
        assert_eq!(be(find(video, id::PIXEL_WIDTH)), 640);
        assert_eq!(be(find(video, id::PIXEL_HEIGHT)), 360);

        // Clusters: timecodes and blocks (track 1, relative time, key flag).
        let blocks = |c: &[u8]| -> (u64, Vec<(i16, bool, Vec<u8>)>) {
            let kids = children(c);
            let tc = be(kids[0].2);
            let bs = kids[1..]
                .iter()
                .map(|(id, _, b)| {
                    assert_eq!(*id, id::SIMPLE_BLOCK);
                    assert_eq!(b[0], 0x81);
                    (
                        i16::from_be_bytes([b[1], b[2]]),
                        b[3] & 0x80 != 0,
                        b[4..].to_vec(),
                    )
                })
                .collect();
            (tc, bs)
        };
        assert_eq!(
            blocks(parts[3].2),
            (0, vec![(0, true, vec![1, 2, 3]), (100, false, vec![4])])
        );
        assert_eq!(blocks(parts[4].2), (6_000, vec![(0, false, vec![5])]));
        assert_eq!(blocks(parts[5].2), (7_000, vec![(0, true, vec![6, 7])]));

        // Cues: the two keyframe clusters, at their positions.
        let cluster_pos: Vec<u64> = {
            let mut at = 0;
            let mut out = Vec::new();
            for (id, _, body) in &parts {
                if *id == id::CLUSTER {
                    out.push(at);
                }
                let mut head = Vec::new();
                put_id(&mut head, *id);
                put_size(&mut head, body.len() as u64);
                at += (head.len() + body.len()) as u64;
            }
            out
        };
        let cues: Vec<(u64, u64)> = children(parts[6].2)
            .into_iter()
            .map(|(_, _, p)| {
                let t = find(p, id::CUE_TRACK_POSITIONS);
                assert_eq!(be(find(t, id::CUE_TRACK)), 1);
                (
                    be(find(p, id::CUE_TIME)),
                    be(find(t, id::CUE_CLUSTER_POSITION)),
                )
            })
            .collect();
        assert_eq!(cues, [(0, cluster_pos[0]), (7_000, cluster_pos[2])]);
    }

    #[test]
    fn the_first_frame_must_be_a_keyframe() {
        let mut w = WebmWriter::new(Cursor::new(Vec::new()), Codec::Vp8, 2, 2).unwrap();
        assert!(w.write_frame(0, false, &[1]).is_err());
    }
}
