//! JSON bodies of the gateway's REST API (`/api/v1/...`), shared by the
//! server and its clients. Timestamps are RFC 3339 strings in UTC.
//!
//! | method & path                              | auth    | body → answer                         |
//! |--------------------------------------------|---------|---------------------------------------|
//! | `POST /api/v1/auth/login`                  | none    | [`LoginRequest`] → [`LoginResponse`]  |
//! | `POST /api/v1/auth/logout`                 | bearer  | → 204                                 |
//! | `POST /api/v1/agents/enroll`               | token in body | [`EnrollRequest`] → [`EnrollResponse`] |
//! | `GET  /api/v1/endpoints?name=&group=&online=&after=&limit=` | bearer | → `Vec<`[`Endpoint`]`>` by name (all filters optional; without `limit`, 1–10000, every endpoint; the next page starts `after` the last name) |
//! | `GET  /api/v1/endpoints/{name}/connect?kind=K` | bearer | HTTP/1.1 upgrade to [`SESSION_UPGRADE`] |
//! | `GET  /api/v1/sessions`                    | bearer  | → `Vec<`[`SessionEvent`]`>`           |
//! | `POST /api/v1/sessions/{id}/terminate`     | bearer  | → 204 (404 when not live)             |
//! | `GET  /api/v1/auth/session`                | cookie  | → [`ConsoleSession`]                  |
//! | `GET  /healthz`                            | none    | → `ok`                                |
//!
//! Every error answer is an [`ErrorBody`] with a stable `error` code
//! ([`ErrorCode`]).
//!
//! The web console authenticates with a session cookie ([`SESSION_COOKIE`],
//! from a login with [`LoginRequest::cookie`]) instead of a bearer token;
//! its state-changing requests carry [`CSRF_HEADER`], and its session
//! WebSockets (`Upgrade: websocket` on the connect route) must come from
//! the gateway's own origin.

use serde::{Deserialize, Serialize};

pub mod access;
pub mod alerts;
mod codes;
pub mod epm;
pub mod packages;
pub mod recording_search;
pub mod reports;
pub mod ssh;
pub mod support;
pub mod targets;
pub mod webhooks;
pub use codes::{ErrorCode, OAuthErrorCode};

/// The `Upgrade:` token of a session connection. After the `101` answer the
/// connection carries `jumpgate_proto::session` messages (raw bytes after the
/// open exchange for `forward`).
pub const SESSION_UPGRADE: &str = "jumpgate-session/1";

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// A TOTP code or a recovery code, for accounts with MFA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
    /// Ask for a browser session: the token is set as an `HttpOnly`,
    /// `Secure`, `SameSite=Strict` cookie instead of returned in the body,
    /// and the answer carries the session's CSRF token (see
    /// [`CSRF_HEADER`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cookie: bool,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Bearer token; send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: String,
    pub username: String,
    pub role: String,
    /// The site requires MFA for this role and none is enrolled yet: the
    /// token only allows enrolling it (`/api/v1/me/mfa/totp`) and logging out.
    #[serde(default)]
    pub mfa_enrollment_required: bool,
    /// The password expired under the site policy: the token only allows
    /// changing it (`/api/v1/me/password`) and logging out.
    #[serde(default)]
    pub password_change_required: bool,
    /// Cookie sessions only (then `token` is empty): the value every
    /// state-changing request must send in [`CSRF_HEADER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// The header a cookie-authenticated, state-changing request must carry
/// (the session's CSRF token). Bearer-token clients never need it.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The cookie holding a browser session token.
pub const SESSION_COOKIE: &str = "__Host-jg_session";

/// `GET /api/v1/auth/session`: the CSRF token of the calling cookie session
/// (for a console page that was reloaded).
#[derive(Clone, Serialize, Deserialize)]
pub struct ConsoleSession {
    pub csrf_token: String,
}

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("csrf_token", &"MASKED")
            .finish()
    }
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
    /// Set when a second agent with this endpoint's identity (a copied
    /// state directory, a stolen key) tried to connect while the known one
    /// was answering; cleared by re-enrolling the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<EndpointConflict>,
}

/// Refused second connections of one endpoint's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointConflict {
    /// The latest refusal.
    pub last_at: String,
    /// Refusals since the endpoint was enrolled or last re-enrolled.
    pub count: u64,
    /// Source address of the latest refused connection.
    pub newcomer: String,
}

/// `POST /api/v1/endpoints/{name}/reenroll`: a one-time token bound to
/// that endpoint; the agent that enrolls with it replaces the endpoint's
/// key, and the old key stops working.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReenrollToken {
    /// How long the token stays valid, e.g. `30m` (default 1h, at most 30d).
    #[serde(default)]
    pub ttl: Option<String>,
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
    /// The attended-support session this one belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_id: Option<String>,
}

/// Body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `unauthorized`, `endpoint_offline`.
    pub error: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

// ---------------------------------------------------------------------------
// Identity and access (`/api/v1/me`, `/users`, `/roles`, `/groups`,
// `/api-clients`, `/settings/security`, `/oauth2/token`).
// ---------------------------------------------------------------------------

/// The caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub username: String,
    pub role: String,
    pub permissions: Vec<String>,
    pub groups: Vec<String>,
    pub mfa_enabled: bool,
    pub mfa_enrollment_required: bool,
    pub password_change_required: bool,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

impl std::fmt::Debug for ChangePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangePassword { .. }")
    }
}

/// Start of TOTP enrollment: shown once; confirmed with a code.
#[derive(Clone, Serialize, Deserialize)]
pub struct TotpEnrollment {
    /// Base32 secret for manual entry.
    pub secret: String,
    pub otpauth_url: String,
    /// The same URL as an SVG QR code.
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrollment { .. }")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

/// One-time recovery codes, shown once.
#[derive(Clone, Serialize, Deserialize)]
pub struct RecoveryCodes {
    pub codes: Vec<String>,
}

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryCodes({} codes)", self.codes.len())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    #[serde(default)]
    pub email: Option<String>,
    pub role: String,
    /// Endpoint groups the role's endpoint permissions apply to (`*`: all).
    pub groups: Vec<String>,
    pub mfa_enabled: bool,
    /// Set while the account is locked after failed logins.
    #[serde(default)]
    pub locked_until: Option<String>,
    pub created_at: String,
    pub password_changed_at: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    pub role: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub email: Option<String>,
}

impl std::fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUser")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// Fields left out stay as they are; `email: ""` removes the address.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    pub password: String,
}

impl std::fmt::Debug for SetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetPassword { .. }")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub description: String,
    /// `view`, `shell`, `exec`, `files`, `forward` (on the holder's groups),
    /// `manage-users`, `manage-endpoints`, `view-audit` (site-wide).
    pub permissions: Vec<String>,
    pub builtin: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRole {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub description: String,
    pub endpoints: u64,
    /// How the person at the group's endpoints takes part in a desktop
    /// session: [`CONSENT_MODES`] (`prompt` when the gateway is older).
    #[serde(default = "default_consent")]
    pub consent: String,
}

/// The consent modes of an endpoint group, the default first: `prompt`
/// (asked to allow or deny), `notify` (shown, not asked), `none`
/// (unattended; still audited and recorded).
pub const CONSENT_MODES: [&str; 3] = ["prompt", "notify", "none"];

fn default_consent() -> String {
    CONSENT_MODES[0].to_owned()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// One of [`CONSENT_MODES`]; `None`: `prompt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
}

/// `PATCH /api/v1/groups/{name}`: what is given changes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// One of [`CONSENT_MODES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetEndpointGroup {
    pub group: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollToken {
    #[serde(default)]
    pub group: Option<String>,
    /// e.g. "1h"; default 1h.
    #[serde(default)]
    pub ttl: Option<String>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct EnrollToken {
    pub token: String,
    pub group: String,
    pub expires_at: String,
}

impl std::fmt::Debug for EnrollToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollToken")
            .field("group", &self.group)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A one-time re-enrollment token, bound to one endpoint.
#[derive(Clone, Serialize, Deserialize)]
pub struct ReenrollToken {
    pub token: String,
    pub endpoint: String,
    pub expires_at: String,
}

impl std::fmt::Debug for ReenrollToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReenrollToken")
            .field("endpoint", &self.endpoint)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An OAuth2 API client (client-credentials grant).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiClient {
    pub client_id: String,
    pub name: String,
    /// `read` and/or `write`.
    pub scopes: Vec<String>,
    pub role: String,
    pub groups: Vec<String>,
    pub created_at: String,
    pub secret_rotated_at: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiClient {
    pub name: String,
    pub scopes: Vec<String>,
    pub role: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Shown once, at creation and rotation; stored only as a hash.
#[derive(Clone, Serialize, Deserialize)]
pub struct ApiClientSecret {
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for ApiClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClientSecret")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// RFC 6749 §5.1 access token response.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub scope: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// RFC 6749 §5.2 error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthError {
    pub error: OAuthErrorCode,
    pub error_description: String,
}

/// Site security settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    pub password_min_length: u32,
    /// Of lowercase, uppercase, digits, symbols.
    pub password_min_classes: u8,
    /// Earlier passwords that may not be reused.
    pub password_history: u32,
    /// Days until a password must be changed; `None`: never.
    #[serde(default)]
    pub password_max_age_days: Option<u32>,
    /// Failed logins before an account is locked.
    pub lockout_threshold: u32,
    pub lockout_duration_secs: u64,
    /// Roles whose users must use MFA.
    pub mfa_required_roles: Vec<String>,
}

/// An audit log entry (`GET /api/v1/events`, needs `view-audit`; query
/// parameters: `since` (RFC 3339), `user` (actor name), `limit` (default
/// 1000, at most 10000); newest first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// Position in the hash chain.
    #[serde(default)]
    pub id: i64,
    pub at: String,
    /// User or API client name.
    pub actor: String,
    pub action: String,
    pub target: String,
    /// `ok`, `failed`, `denied`, `locked`, ...
    pub outcome: String,
    pub detail: String,
    /// Hex SHA-256 of this entry in the chain.
    #[serde(default)]
    pub hash: String,
}

/// A session's recording (`GET /api/v1/recordings`, needs
/// `view-audit`; query parameters: `endpoint`, `user`, `since` (RFC 3339),
/// `limit` (default 100, at most 1000); newest first). The recording itself,
/// decrypted: `GET /api/v1/recordings/{id}/cast`, plain asciicast v2 for a
/// terminal ([`ASCIICAST_CONTENT_TYPE`]), JSON lines for a desktop
/// ([`DESKTOP_RECORDING_CONTENT_TYPE`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub id: String,
    /// The session row it belongs to (`GET /api/v1/sessions`).
    pub session_id: String,
    pub username: String,
    pub endpoint: String,
    pub started_at: String,
    /// `None` while the session runs, or when the gateway stopped without
    /// closing it (the recording then ends at the last flushed second).
    pub ended_at: Option<String>,
    /// Seconds from the first to the last recorded event.
    pub duration_secs: f64,
    /// Terminal size at the start (columns × rows); for a desktop, the
    /// first screen size in pixels (0 × 0 if no screen was ever shown).
    pub width: u16,
    pub height: u16,
    /// Whether keystrokes were recorded too (a site setting).
    pub input_recorded: bool,
    /// The recording stopped early (the gateway crashed or could not
    /// write): it plays up to the last second written.
    #[serde(default)]
    pub interrupted: bool,
    /// What was recorded: a terminal (asciicast v2) or a screen (JSON
    /// lines, [`DESKTOP_RECORDING_CONTENT_TYPE`]).
    #[serde(default)]
    pub kind: RecordingKind,
}

/// Content type of a plain asciicast v2 recording.
pub const ASCIICAST_CONTENT_TYPE: &str = "application/x-asciicast";

/// The content type of a desktop recording's content: JSON lines, a header
/// object (`{"jumpgate":"desktop","version":1,…}`) then `[t, code, data]`
/// events (`i` screen info, `v` one codec packet in base64, `c` cursor
/// position, `s` cursor shape, `x` control state, `b` clipboard size).
pub const DESKTOP_RECORDING_CONTENT_TYPE: &str = "application/x-jumpgate-desktop";

/// What a recording holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordingKind {
    /// A shell or exec session, as asciicast v2.
    #[default]
    Terminal,
    /// A desktop session's screen, as JSON lines.
    Desktop,
}

impl RecordingKind {
    /// The name stored and sent.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Terminal => "terminal",
            Self::Desktop => "desktop",
        }
    }

    /// The content type its content is served with.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Terminal => ASCIICAST_CONTENT_TYPE,
            Self::Desktop => DESKTOP_RECORDING_CONTENT_TYPE,
        }
    }
}

/// `PUT /api/v1/vault/secrets/{name}`: stores a new version (needs
/// `vault-write`). The value is base64 (standard alphabet), at most 64 KiB
/// decoded.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    pub value: String,
}

impl std::fmt::Debug for PutSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PutSecret { value: MASKED }")
    }
}

/// What a `PUT` of a secret created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersionCreated {
    pub name: String,
    pub version: u32,
}

/// `GET /api/v1/vault/secrets/{name}[?version=N]` (needs `vault-read`;
/// every read is audited). The value is base64.
#[derive(Clone, Serialize, Deserialize)]
pub struct SecretValue {
    pub name: String,
    pub version: u32,
    pub value: String,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretValue {{ name: {:?}, version: {}, value: MASKED }}",
            self.name, self.version
        )
    }
}

/// A vault secret without its value (`GET /api/v1/vault/secrets`, with
/// `?deleted=true` the soft-deleted ones).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    pub name: String,
    pub latest_version: u32,
    pub created_at: String,
    pub updated_at: String,
    /// Set while the secret is soft-deleted (recoverable).
    pub deleted_at: Option<String>,
    /// When a deleted secret may be purged (with purge protection) and is
    /// purged by the gateway.
    pub purge_after: Option<String>,
}

/// One version of a secret (`GET /api/v1/vault/secrets/{name}/versions`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersion {
    pub version: u32,
    pub created_at: String,
    pub created_by: String,
}

/// The vault's site settings (`GET /api/v1/vault/settings`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultSettings {
    /// How long a deleted secret stays recoverable (7 to 90; fixed).
    pub retention_days: u32,
    /// Once true, never false again.
    pub purge_protection: bool,
}

/// `PUT /api/v1/vault/settings/purge-protection`: `true` enables purge
/// protection for good; `false` is refused once it is on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPurgeProtection {
    pub enabled: bool,
}
