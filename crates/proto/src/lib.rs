//! The Jumpgate wire protocol, free of I/O.
//!
//! # Layout
//! - [`frame`]: the 12-byte-header frames of an agent connection.
//! - [`mux`]: the stream multiplexer state machine with per-stream flow
//!   control ([`mux::Mux`]); fed bytes, it produces bytes and events.
//! - [`control`]: control messages on stream 0, including the handshake
//!   (version negotiation, agent authentication).
//! - [`session`]: messages inside one stream (shell, exec, file transfer,
//!   forwarding), end to end between technician and agent.
//! - [`desktop`]: what a desktop session's messages carry (screen updates,
//!   cursor, input by keysym, clipboard, who has control).
//! - [`assist`]: attended support between the gateway and a customer's
//!   client (chat, rights asked and granted, participants).
//! - [`epm`]: endpoint privilege management: policy notices, approval
//!   decisions and the events endpoints report.
//! - [`packages`]: the Package Manager: package notices, results and the
//!   endpoints' inventories.
//! - [`system`]: system streams, which the gateway opens to an agent on its
//!   own behalf (agent facts, later policies), with bodies up to 16 MiB.
//!
//! - [`target`]: agentless targets reached through a jump point.
//!
//! Nothing here opens a socket or reads a clock, so every rule is tested in
//! memory (see `mux/tests.rs`).

pub mod assist;
pub mod control;
pub mod desktop;
pub mod epm;
mod error;
pub mod frame;
pub mod mux;
pub mod packages;
pub mod session;
pub mod system;
pub mod target;
pub mod text;

pub use error::ProtoError;
pub use frame::StreamId;
