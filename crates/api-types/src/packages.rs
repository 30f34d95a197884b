//! The Package Manager (`/api/v1/packages/…`, issue #15): uploads of
//! Debian packages, trusted publisher keys, assignments per endpoint
//! group, what each endpoint did, and the endpoints' inventories.
//!
//! | method & path | auth | body → answer |
//! |---|---|---|
//! | `POST /api/v1/packages` | `epm-manage` | the `.deb` itself (`Content-Type: application/vnd.debian.binary-package` or `application/octet-stream`; optional header `X-Jumpgate-Signature`: the minisign signature file, base64) → 201 [`PackageInfo`] (200 when the same file was uploaded before); 400 `invalid_package` naming what is wrong; 409 `conflict` when another file has the same name, version and architecture |
//! | `GET  /api/v1/packages[?name=]` | `epm-manage` | → `Vec<`[`PackageInfo`]`>` by name, newest version first |
//! | `GET  /api/v1/packages/{id}` | `epm-manage` | → [`PackageInfo`] |
//! | `DELETE /api/v1/packages/{id}` | `epm-manage` | → 204; 409 while an assignment pins that version |
//! | `GET  /api/v1/packages/publishers` | `epm-manage` | → `Vec<`[`PublisherKeyInfo`]`>` |
//! | `POST /api/v1/packages/publishers` | `epm-manage` | [`AddPublisher`] → 201 [`PublisherKeyInfo`] |
//! | `DELETE /api/v1/packages/publishers/{name}` | `epm-manage` | → 204 |
//! | `GET  /api/v1/packages/settings` / `PUT` | `epm-manage` | [`PackageSettings`] |
//! | `GET  /api/v1/packages/assignments` | `epm-manage` | → `Vec<`[`Assignment`]`>` |
//! | `PUT  /api/v1/packages/assignments` | `epm-manage` | [`AssignRequest`] → [`AssignAnswer`] (the group's connected endpoints are told) |
//! | `DELETE /api/v1/packages/assignments/{group}/{package}` | `epm-manage` | → 204 (nothing is removed from endpoints: assign `remove` for that) |
//! | `GET  /api/v1/packages/status[?endpoint=&package=]` | `epm-manage` | → `Vec<`[`EndpointPackageStatus`]`>` |
//! | `GET  /api/v1/packages/inventory[?package=&version=&group=&endpoint=]` | `view` (rows of the caller's groups) | → `Vec<`[`InventoryRow`]`>`; `version` is a constraint such as `< 3.0.11` (Debian order) and needs `package` |
//! | `GET  /packages/{id}/{file}?expires=&sig=` | signed URL, no login | `manifest` or `deb` (local blob store only) |

use serde::{Deserialize, Serialize};

/// The header carrying an upload's detached signature (base64 of the
/// `.minisig` file).
pub const SIGNATURE_HEADER: &str = "x-jumpgate-signature";

/// One uploaded package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInfo {
    /// `pkg_…`.
    pub id: String,
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// SHA-256 of the `.deb`, lowercase hex.
    pub sha256: String,
    pub size: u64,
    /// The trusted publisher whose signature was checked (`None`: unsigned).
    #[serde(default)]
    pub publisher: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub depends: String,
    /// The EPM signing key that signed its manifest.
    pub key: String,
    /// SHA-256 of the signed manifest file.
    pub manifest_sha256: String,
    pub uploaded_by: String,
    pub uploaded_at: String,
}

/// A trusted publisher key (minisign).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublisherKeyInfo {
    pub name: String,
    /// minisign's key id (16 hex digits).
    pub key_id: String,
    /// The base64 public key line.
    pub public_key: String,
    pub added_by: String,
    pub added_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPublisher {
    /// A name for people (`acme-release`): letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// The `minisign.pub` file, or its base64 line.
    pub public_key: String,
}

/// The Package Manager's site settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSettings {
    /// Uploads without a valid signature by a trusted publisher are refused.
    pub require_signature: bool,
}

/// What an endpoint group should have of one package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub group: String,
    pub package: String,
    /// `install` or `remove`.
    pub action: String,
    /// The pinned version (install); `None`: the newest uploaded.
    #[serde(default)]
    pub version: Option<String>,
    pub updated_by: String,
    pub updated_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignRequest {
    pub group: String,
    pub package: String,
    /// `install` (also: upgrade or downgrade to `version`) or `remove`.
    pub action: String,
    /// Pin this version (install only); `None`: the newest uploaded.
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignAnswer {
    pub assignment: Assignment,
    /// The version endpoints are told to have (install).
    #[serde(default)]
    pub resolved_version: Option<String>,
    /// Connected endpoints of the group being told now.
    pub notified: u64,
}

/// What one endpoint last did about one package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPackageStatus {
    pub endpoint: String,
    pub group: String,
    pub package: String,
    pub action: String,
    /// Installed afterwards (`None`: not installed).
    #[serde(default)]
    pub version: Option<String>,
    /// `installed`, `removed`, `unchanged`, `refused`, `failed`.
    pub outcome: String,
    #[serde(default)]
    pub message: String,
    /// The installer's output (bounded).
    #[serde(default)]
    pub output: String,
    #[serde(default)]
    pub attempts: u32,
    pub updated_at: String,
    pub online: bool,
}

/// One installed package on one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRow {
    pub endpoint: String,
    pub group: String,
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// When the endpoint last reported its inventory.
    pub reported_at: String,
}
