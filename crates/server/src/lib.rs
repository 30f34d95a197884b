//! The Jumpgate gateway: the one routing point between technicians and
//! endpoints.
//!
//! # Layout
//! - [`app`]: start-up and ordered shutdown; [`config`]: validated settings;
//!   [`site`]: the site's TLS identity (generated CA or its own certificate).
//! - `listener`: the one TLS port (ALPN routing: agents vs HTTP) and the
//!   redirect port.
//! - Domains, each with its own store code and HTTP routes: `identity`
//!   (users, passwords, tokens), `rbac` (the one authorization decision),
//!   `agents` (enrollment, live agent connections), `sessions` (open,
//!   relay, event table).
//! - `routes`: the one place that assembles every domain's routes, each
//!   wrapped with its access check; `api`: the toolkit domains declare
//!   routes with (route builder, the one error→HTTP mapping, extractors).
//! - [`keys`]: the key hierarchy for data at rest (root key, versioned
//!   KEKs, rotation and its sweep); `vault`: versioned, envelope-encrypted
//!   secrets with soft delete and purge protection.
//! - [`admin`] and `control`: `jumpgate admin` operations and the Unix
//!   socket that lets them reach a running gateway.

mod access;
pub mod admin;
mod agents;
pub mod analytics;
mod api;
pub mod app;
#[doc(hidden)]
pub mod bench;
mod blobs;
pub mod config;
mod control;
mod epm;
mod events;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod housekeeping;
mod http_client;
mod identity;
mod ids;
pub mod keys;
#[cfg(test)]
mod layers;
mod lease;
mod listener;
mod notify;
mod packages;
mod rbac;
mod recordings;
mod routes;
mod schema;
mod sessions;
pub mod site;
mod ssh;
mod state;
pub mod store;
mod support;
mod targets;
mod vault;
mod web;

pub use agents::EnrollError;
pub use api::RouteInfo;
pub use app::{ServerError, Started, run};
pub use blobs::BlobConfigError;
pub use config::{Config, ConfigError, RawConfig};
pub use events::{Broken as AuditBroken, Intact as AuditIntact};
pub use identity::IdentityError;
pub use keys::sweep::{
    DatabaseStatus, DomainStatus, KeyStatus, PurposeStatus, RootStatus, SweepError, VersionStatus,
};
pub use routes::route_table;
pub use store::StoreError;
