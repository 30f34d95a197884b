//! Narrow entry points for the fuzz targets in `fuzz/` (cargo feature
//! `fuzzing`, off in every normal build): the decoders of bytes the gateway
//! reads from disk that are internal to this crate. Not an API.

use std::path::Path;

/// Reads `bytes` as a recording file (under a fixed fuzzing key).
pub fn recording_file(bytes: &[u8]) {
    crate::recordings::fuzzing::read(bytes);
}

/// Seals `pieces` as a recording file (finished if `last`), cuts it at
/// `cut` as a crash would, and checks that it reads back up to the cut.
pub fn recording_round_trip(pieces: &[&[u8]], last: bool, cut: usize) {
    crate::recordings::fuzzing::round_trip(pieces, last, cut);
}

/// Opens `bytes` as the keyring file (under a fixed fuzzing root key) and,
/// when it opens, wraps, unwraps, rotates and retires. `scratch` is a
/// directory the keyring may be written to.
pub fn keyring_file(scratch: &Path, bytes: &[u8]) {
    crate::keys::fuzzing::keyring(scratch, bytes);
}

/// A valid keyring file under the fuzzing root key (a corpus seed).
pub fn keyring_seed() -> Vec<u8> {
    crate::keys::fuzzing::seed()
}

/// Parses a root key as an operator supplies it (`JUMPGATE_ROOT_KEY`, the
/// new key file of a rotation).
pub fn root_key_text(text: &str) {
    crate::keys::fuzzing::root_key_text(text);
}
