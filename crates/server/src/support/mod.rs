//! Attended support: the public portal, session keys, queues, the
//! customer's client connection, chat, rights the customer grants, and
//! technicians working together (design: `docs/design/13-attended-support.md`).
//!
//! Owns the `support_*` tables ([`schema`]).

pub(crate) mod schema;
