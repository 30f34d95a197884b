//! End-to-end tests: real `jumpgate server`, `jumpgate agent` and `jg`
//! processes talking TLS over loopback ports picked at run time.

mod gateway;
mod identity;
mod lifecycle;
mod recordings;
mod scope;
mod sessions;
mod support;
mod vault;
mod web;
