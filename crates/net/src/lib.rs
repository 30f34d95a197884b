//! Tokio glue shared by the gateway, the agent and the clients.
//!
//! # Layout
//! - [`mux`]: the [`mux::Driver`] future that runs the sans-IO multiplexer
//!   over a socket, and [`mux::MuxStream`], one stream as `AsyncRead + AsyncWrite`.
//! - [`tls`]: rustls configurations (TLS 1.2/1.3 only) and certificate
//!   pinning by SHA-256 fingerprint.
//! - [`system`]: system streams: one head and body written in chunks, or
//!   read whole.
//! - [`dial`]: gateway URLs, HTTP `CONNECT` proxies, connect + TLS handshake.

pub mod dial;
pub mod mux;
pub mod system;
pub mod tls;
