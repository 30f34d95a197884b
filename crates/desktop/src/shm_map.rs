//! The MIT-SHM segment the X server made for capture, mapped read-only.
//! With DAMAGE the capturer's frame is the segment itself: the server
//! writes each change in place and nothing is copied (`pread` copied the
//! pixels through the kernel, then a copy from the mapping into a frame of
//! its own cost ~1 ms of the agent's CPU per 1080p frame).
//!
//! The crate's only `unsafe`: mapping the file.

#![allow(unsafe_code)]

use std::fs::File;

/// A read-only shared mapping of a capture segment.
pub(crate) struct ShmMap {
    map: memmap2::Mmap,
}

impl std::fmt::Debug for ShmMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmMap")
            .field("len", &self.map.len())
            .finish()
    }
}

impl ShmMap {
    /// Maps the first `len` bytes of the segment `file`.
    pub(crate) fn new(file: &File, len: usize) -> std::io::Result<Self> {
        // SAFETY: the segment was created by the X server for this
        // connection alone (ShmCreateSegment hands the only other
        // descriptor to us), and the server writes into it only while it
        // answers one of our ShmGetImage requests. `Capturer` reads it
        // only after that request's reply, on the same thread, and sends no
        // other ShmGetImage while a slice of it is alive: the requests need
        // `&mut Capturer`, and the only other holder of the mapping is the
        // capturer's own `Frame`, lent out only as `&Frame` borrowed from
        // the capturer (a clone of a frame copies the pixels out), so the
        // bytes do not change under a reference. The mapping is read-only
        // and `len` is the size the segment was created with.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        Ok(Self { map })
    }

    /// The first `len` bytes (`len` at most the mapped length).
    pub(crate) fn bytes(&self, len: usize) -> &[u8] {
        &self.map[..len]
    }
}
