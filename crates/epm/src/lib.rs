//! Endpoint privilege management, free of I/O: the same code decides on
//! the endpoint and answers a what-if on the gateway.
//!
//! - [`policy`]: the model (applications, rules, admin sessions, the
//!   default), its YAML form, and validation that names the bad field.
//! - [`engine`]: a policy compiled for one endpoint; decides in
//!   microseconds with tens of thousands of rules.
//! - [`bundle`]: the signed, immutable file a published policy becomes
//!   (canonical JSON, Ed25519), and its verification with rollback
//!   protection.
//! - [`package`]: the Package Manager's parts: `.deb` reading, Debian
//!   version order, signed package manifests, publisher signatures.
//! - [`code`]: the offline challenge/response that unlocks one elevation
//!   when the endpoint cannot reach the gateway.
//!
//! Design: docs/design/14-epm.md.

pub mod bundle;
pub mod code;
pub mod engine;
pub mod package;
pub mod policy;

pub use engine::{Caller, Decision, Engine, Program};
pub use policy::{Action, Policy};
