//! Tokio glue shared by the gateway, the agent and the clients.
//!
//! # Layout
//! - [`mux`]: the [`mux::Driver`] future that runs the sans-IO multiplexer
//!   over a socket, and [`mux::MuxStream`], one stream as `AsyncRead + AsyncWrite`.
//! - [`session`]: [`session::MsgStream`], the one reader and writer of
//!   session messages (gateway, agent and `jg`), and the `Open` exchange.
//! - [`handshake`]: the `Control` frames of the connection handshake, for
//!   both ends.
//! - [`tls`]: rustls configurations (TLS 1.2/1.3 only) and certificate
//!   pinning by SHA-256 fingerprint.
//! - [`system`]: system streams: one head and body written in chunks, or
//!   read whole.
//! - [`dial`]: gateway URLs, HTTP `CONNECT` proxies, connect + TLS handshake.
//! - [`fs`]: private directories and atomically replaced private files.
//! - [`digest`]: SHA-256 as lowercase hex.
//! - [`allow`]: address ranges and destination allow lists, and a connect
//!   that checks the addresses a name resolves to against them.

pub mod allow;
pub mod dial;
pub mod digest;
pub mod fs;
pub mod handshake;
pub mod mux;
pub mod session;
pub mod system;
pub mod tls;
