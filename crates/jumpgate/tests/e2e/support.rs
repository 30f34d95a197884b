//! Test harness: the real `jumpgate` and `jg` binaries, started as child
//! processes on loopback ports chosen at run time, killed on drop. It lives
//! in `crates/test-support` (`jumpgate-test-support`), shared with the
//! other tests; this module re-exports it so tests `use crate::support::*`.
//!
//! Helpers for one test file belong in that file; helpers several tests
//! share go into `crates/test-support` (an `impl Site` block cannot be
//! written here: `Site` is that crate's type).

pub(crate) use jumpgate_test_support::*;
