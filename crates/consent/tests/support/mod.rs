//! The tests' X display: the shared Xvfb of `jumpgate-test-support`.

#![allow(unused_imports, unreachable_pub)]

pub use jumpgate_test_support::xvfb::{WAIT, Xvfb, artifacts, have_tools};
