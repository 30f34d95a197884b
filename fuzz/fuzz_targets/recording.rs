//! The recording file reader (`crates/server/src/recordings/file.rs`): what
//! replay, export and crash recovery read from disk.
//!
//! Two modes: the input as a whole file (magic, chunk headers, sealed
//! chunks under a fixed fuzzing key; the text of any chunk that opens goes
//! through what crash recovery reads of it), or plaintext pieces sealed as
//! a real recording and cut at an arbitrary byte, as a crash would leave
//! it, which must read back exactly up to the cut.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    File(&'a [u8]),
    Written {
        pieces: Vec<&'a [u8]>,
        finished: bool,
        cut: usize,
    },
}

fuzz_target!(|input: Input<'_>| match input {
    Input::File(bytes) => jumpgate_server::fuzzing::recording_file(bytes),
    Input::Written {
        pieces,
        finished,
        cut,
    } => jumpgate_server::fuzzing::recording_round_trip(&pieces, finished, cut),
});
