//! End-to-end tests: real `jumpgate server`, `jumpgate agent` and `jg`
//! processes talking TLS over loopback ports picked at run time.

mod agent_identity;
mod attended;
mod attended_live;
mod blobs;
mod desktop;
mod desktop_watch;
mod edge;
mod endpoint_list;
mod epm;
mod epm_agent;
mod gateway;
mod harness;
mod identity;
mod lifecycle;
mod migrate_store;
mod pg_tls;
mod recording_rotation;
mod recording_search;
mod recordings;
mod revocation;
mod scope;
mod sessions;
mod support;
mod support_client;
mod support_pin;
mod system_streams;
mod vault;
mod web;
mod web_desktop;
mod web_epm;
mod web_portal;
mod web_recording_search;
mod web_support;
