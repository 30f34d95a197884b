//! JSON bodies of the gateway's REST API (`/api/v1/...`), shared by the
//! server and its clients. Timestamps are RFC 3339 strings in UTC.
//!
//! | method & path                              | auth    | body → answer                         |
//! |--------------------------------------------|---------|---------------------------------------|
//! | `POST /api/v1/auth/login`                  | none    | [`LoginRequest`] → [`LoginResponse`]  |
//! | `POST /api/v1/auth/logout`                 | bearer  | → 204                                 |
//! | `POST /api/v1/agents/enroll`               | token in body | [`EnrollRequest`] → [`EnrollResponse`] |
//! | `GET  /api/v1/endpoints`                   | bearer  | → `Vec<`[`Endpoint`]`>`               |
//! | `GET  /api/v1/endpoints/{name}/connect?kind=K` | bearer | HTTP/1.1 upgrade to [`SESSION_UPGRADE`] |
//! | `GET  /api/v1/sessions`                    | bearer  | → `Vec<`[`SessionEvent`]`>`           |
//! | `GET  /healthz`                            | none    | → `ok`                                |
//!
//! Every error answer is an [`ErrorBody`] with a stable `error` code.

use serde::{Deserialize, Serialize};

/// The `Upgrade:` token of a session connection. After the `101` answer the
/// connection carries `jumpgate_proto::session` messages (raw bytes after the
/// open exchange for `forward`).
pub const SESSION_UPGRADE: &str = "jumpgate-session/1";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Bearer token; send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: String,
    pub username: String,
    pub role: String,
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse")
            .field("token", &"MASKED")
            .field("expires_at", &self.expires_at)
            .field("username", &self.username)
            .field("role", &self.role)
            .finish()
    }
}

/// What an agent reports about its machine at enrollment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointDetails {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub agent_version: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The one-time enrollment token.
    pub token: String,
    /// Requested endpoint name; defaults to the hostname.
    pub name: String,
    /// The agent's Ed25519 public key, base64 (standard), 32 bytes raw.
    pub public_key: String,
    pub details: EndpointDetails,
}

impl std::fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("token", &"MASKED")
            .field("name", &self.name)
            .field("details", &self.details)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub agent_id: String,
    pub endpoint: String,
    pub group: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub name: String,
    pub group: String,
    pub online: bool,
    /// Last time the agent was connected (now, when online); `None` if never.
    pub last_seen: Option<String>,
    pub enrolled_at: String,
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub agent_version: String,
}

/// One row of the session event table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEvent {
    pub id: String,
    pub username: String,
    pub endpoint: String,
    pub kind: String,
    /// Command, path or host:port, depending on the kind.
    pub target: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// Bytes from the technician to the endpoint.
    pub bytes_up: u64,
    /// Bytes from the endpoint to the technician.
    pub bytes_down: u64,
    /// `open`, `ok`, `refused: ...`, `error: ...`, `denied`, `terminated: ...`.
    pub outcome: String,
}

/// Body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `unauthorized`, `endpoint_offline`.
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}
