//! The MIT-SHM segment the X server made for capture, mapped read-only so
//! captured pixels are copied once, from the segment straight into the
//! frame (`pread` copied them through the kernel: 17 % of the agent's CPU
//! besides libvpx on a full-screen change at 30 fps).
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
        // other ShmGetImage while a slice of it is alive, so the bytes do
        // not change under a reference. The mapping is read-only and `len`
        // is the size the segment was created with.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        Ok(Self { map })
    }

    /// The first `len` bytes (`len` at most the mapped length).
    pub(crate) fn bytes(&self, len: usize) -> &[u8] {
        &self.map[..len]
    }
}
