//! The signed manifest kept beside every package in blob storage. The
//! endpoint checks it before it touches the system: signed by one of the
//! EPM signing keys the gateway told it to trust (the same keys as policy
//! bundles, [`crate::bundle::SigningKey`]), naming the package and version
//! it was asked to install, and giving the SHA-256 and size the downloaded
//! `.deb` must have.
//!
//! ```text
//! JGPKG1\n
//! {"key":"pk_…","sig":"<base64 Ed25519 signature of the payload>"}\n
//! <payload: canonical JSON of Manifest>
//! ```

use serde::{Deserialize, Serialize};

use crate::bundle::{self, BundleError, SigningKey};

/// First line of every manifest.
pub const MAGIC: &[u8] = b"JGPKG1\n";
/// Largest manifest an endpoint reads.
pub const MAX_SIZE: usize = 64 * 1024;

/// What a manifest says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The gateway's id of the upload (`pkg_…`).
    pub id: String,
    /// `Package` of the control file.
    pub name: String,
    /// `Version` of the control file.
    pub version: String,
    /// `Architecture` of the control file.
    pub architecture: String,
    /// SHA-256 of the `.deb`, lowercase hex.
    pub sha256: String,
    /// Size of the `.deb` in bytes.
    pub size: u64,
    /// The trusted publisher key whose detached signature the gateway
    /// checked at upload; `None`: uploaded unsigned.
    pub publisher: Option<String>,
    pub uploaded_by: String,
    /// RFC 3339, UTC.
    pub uploaded_at: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    key: String,
    sig: String,
}

/// Why a manifest was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("not a package manifest: {0}")]
    Malformed(String),
    #[error("the manifest's SHA-256 is {got}, but the gateway announced {expected}")]
    HashMismatch { expected: String, got: String },
    #[error("manifest: {0}")]
    Signature(#[from] BundleError),
}

/// The canonical bytes of a manifest (what is signed).
pub fn canonical(m: &Manifest) -> Vec<u8> {
    // Strings, numbers and an option: cannot fail.
    serde_json::to_vec(m).unwrap_or_default()
}

/// Makes the manifest file.
pub fn seal(m: &Manifest, key: &SigningKey) -> Vec<u8> {
    let payload = canonical(m);
    let header = serde_json::to_vec(&Header {
        key: key.id().to_owned(),
        sig: key.sign_b64(&payload),
    })
    .unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + header.len() + 1 + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&header);
    out.push(b'\n');
    out.extend_from_slice(&payload);
    out
}

/// Checks a manifest file: its hash when the gateway announced one, the
/// signature by one of `keys`.
///
/// # Errors
/// Why it is refused.
pub fn verify(
    bytes: &[u8],
    keys: &[jumpgate_proto::epm::TrustedKey],
    expected_sha256: Option<&str>,
) -> Result<Manifest, ManifestError> {
    if bytes.len() > MAX_SIZE {
        return Err(ManifestError::Malformed(format!(
            "larger than {MAX_SIZE} bytes"
        )));
    }
    if let Some(expected) = expected_sha256 {
        let got = bundle::sha256_hex(bytes);
        if !got.eq_ignore_ascii_case(expected) {
            return Err(ManifestError::HashMismatch {
                expected: expected.to_owned(),
                got,
            });
        }
    }
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| ManifestError::Malformed("wrong magic".into()))?;
    let nl = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| ManifestError::Malformed("no header line".into()))?;
    let (header, payload) = rest.split_at(nl);
    let payload = payload.get(1..).unwrap_or_default();
    let header: Header = serde_json::from_slice(header)
        .map_err(|e| ManifestError::Malformed(format!("header: {e}")))?;
    bundle::verify_signature(keys, &header.key, payload, &header.sig)?;
    serde_json::from_slice(payload).map_err(|e| ManifestError::Malformed(format!("payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            id: "pkg_1".into(),
            name: "jg-hello".into(),
            version: "1.0-1".into(),
            architecture: "all".into(),
            sha256: "ab".repeat(32),
            size: 1234,
            publisher: Some("acme".into()),
            uploaded_by: "admin".into(),
            uploaded_at: "2026-12-02T08:00:00Z".into(),
        }
    }

    #[test]
    fn a_sealed_manifest_verifies_and_is_canonical() {
        let (key, pkcs8) = SigningKey::generate("pk_1").unwrap();
        let file = seal(&manifest(), &key);
        let again = SigningKey::from_pkcs8("pk_1", &pkcs8).unwrap();
        assert_eq!(seal(&manifest(), &again), file);
        let got = verify(&file, &[key.trusted()], Some(&bundle::sha256_hex(&file))).unwrap();
        assert_eq!(got, manifest());
    }

    #[test]
    fn tampered_and_foreign_manifests_are_refused() {
        let (key, _) = SigningKey::generate("pk_1").unwrap();
        let (other, _) = SigningKey::generate("pk_2").unwrap();
        let file = seal(&manifest(), &key);
        let trusted = [key.trusted()];
        // Another hash in the payload (one byte), signature unchanged.
        let text = String::from_utf8(file.clone()).unwrap();
        let bad = text.replacen("abab", "abac", 1).into_bytes();
        assert_eq!(
            verify(&bad, &trusted, None).unwrap_err(),
            ManifestError::Signature(BundleError::BadSignature)
        );
        assert!(matches!(
            verify(&bad, &trusted, Some(&bundle::sha256_hex(&file))),
            Err(ManifestError::HashMismatch { .. })
        ));
        assert_eq!(
            verify(&file, &[other.trusted()], None).unwrap_err(),
            ManifestError::Signature(BundleError::UnknownKey("pk_1".into()))
        );
        // A policy bundle is not a manifest.
        assert!(matches!(
            verify(b"JGPOL1\n{}\n{}", &trusted, None),
            Err(ManifestError::Malformed(_))
        ));
    }
}
