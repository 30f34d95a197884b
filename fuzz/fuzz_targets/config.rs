//! The gateway's configuration file (`jumpgate server --config FILE`):
//! TOML into `RawConfig`, then the same merge and validation as at start-up.
#![no_main]

use jumpgate_server::{Config, RawConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(raw) = toml::from_str::<RawConfig>(text) else {
        return;
    };
    // As `Config::load` does: command-line flags (none here) over the file.
    let once = Config::validate(raw.clone().merged_with(RawConfig::default()));
    // The file merged over itself is the same configuration.
    let twice = Config::validate(raw.clone().merged_with(raw));
    assert_eq!(once.is_ok(), twice.is_ok());
});
