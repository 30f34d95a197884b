//! The Package Manager's network-free parts (issue #15), shared by the
//! gateway, the agent and `jg`:
//!
//! - [`deb`]: reading and checking a `.deb` (ar archive, control file).
//! - [`version`]: Debian version numbers, ordered exactly as dpkg does,
//!   and constraints such as `< 3.0.11`.
//! - [`manifest`]: the signed manifest beside each package in blob storage
//!   (signed with the EPM signing keys agents already trust).
//! - [`publisher`]: publishers' detached minisign signatures, checked at
//!   upload.

pub mod deb;
pub mod manifest;
pub mod publisher;
pub mod version;

/// A test that needs a tool this machine lacks (dpkg, dpkg-deb, minisign)
/// says `skipped:` and returns — unless `JUMPGATE_REQUIRE_PACKAGE_TOOLS`
/// is set (`scripts/test`, which installs them), where it fails.
#[cfg(test)]
pub(crate) fn skip(why: &str) {
    assert!(
        std::env::var_os("JUMPGATE_REQUIRE_PACKAGE_TOOLS").is_none(),
        "{why}, and JUMPGATE_REQUIRE_PACKAGE_TOOLS is set"
    );
    println!("skipped: {why}");
}
