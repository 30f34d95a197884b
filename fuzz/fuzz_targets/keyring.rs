//! The keyring file `keys/keyring.json` (`crates/server/src/keys`): read
//! at every start and by `jumpgate admin`. Parsed and opened as the gateway
//! does, under a fixed fuzzing root key; a keyring that opens must wrap and
//! unwrap keys of every purpose, and survive a rotation and the retirement
//! of old versions. The input is also tried as a root key's text
//! (`JUMPGATE_ROOT_KEY`, the new key file of a rotation).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a scratch directory"))
        .path()
}

fuzz_target!(|data: &[u8]| {
    jumpgate_server::fuzzing::keyring_file(scratch(), data);
    if let Ok(text) = std::str::from_utf8(data) {
        jumpgate_server::fuzzing::root_key_text(text);
    }
});
