//! The signed, immutable file a published policy becomes.
//!
//! ```text
//! JGPOL1\n
//! {"key":"pk_…","sig":"<base64 Ed25519 signature of the payload>"}\n
//! <payload: canonical JSON of BundleContent>
//! ```
//!
//! The payload is `serde_json` of plain structs (fields in declaration
//! order, no unordered maps), so the same content always encodes to the
//! same bytes. An endpoint accepts a bundle only when the whole file hashes
//! to what the gateway announced, the signature is by a key the gateway
//! told it to trust, and the version is not below the highest it ever
//! accepted ([`verify`]).

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::policy::Policy;

/// First line of every bundle.
pub const MAGIC: &[u8] = b"JGPOL1\n";
/// Largest bundle an endpoint will take.
pub const MAX_SIZE: usize = 16 * 1024 * 1024;

/// What a bundle says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleContent {
    /// Site-wide, increasing with every publish.
    pub version: u64,
    /// RFC 3339, UTC.
    pub published_at: String,
    /// The user who published it.
    pub published_by: String,
    pub policy: Policy,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    key: String,
    sig: String,
}

/// Why a bundle was refused (or could not be made).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a policy bundle: {0}")]
    Malformed(String),
    #[error("the bundle's SHA-256 is {got}, but the gateway announced {expected}")]
    HashMismatch { expected: String, got: String },
    #[error("signed by key `{0}`, which this endpoint does not trust")]
    UnknownKey(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error(
        "version {offered} is older than version {accepted}, already accepted (rollback refused)"
    )]
    Rollback { offered: u64, accepted: u64 },
    #[error("the policy inside is invalid: {0}")]
    InvalidPolicy(String),
    #[error("signing key: {0}")]
    Key(String),
}

/// A policy-signing key (Ed25519).
pub struct SigningKey {
    id: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key, and its PKCS#8 document to keep (wrapped) for later.
    ///
    /// # Errors
    /// The system's random source failed.
    pub fn generate(id: &str) -> Result<(Self, Zeroizing<Vec<u8>>), BundleError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| BundleError::Key("could not generate a key".into()))?;
        let pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
        let key = Self::from_pkcs8(id, &pkcs8)?;
        Ok((key, pkcs8))
    }

    /// A key kept as PKCS#8.
    ///
    /// # Errors
    /// Not an Ed25519 PKCS#8 document.
    pub fn from_pkcs8(id: &str, pkcs8: &[u8]) -> Result<Self, BundleError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|_| BundleError::Key("not an Ed25519 PKCS#8 key".into()))?;
        Ok(Self {
            id: id.to_owned(),
            pair,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// The public key as [`TrustedKey::public_key`](jumpgate_proto::epm::TrustedKey) carries it.
    pub fn public_key_b64(&self) -> String {
        B64.encode(self.pair.public_key().as_ref())
    }

    /// Signs `payload`: the base64 Ed25519 signature (package manifests
    /// are signed with the same keys as bundles).
    pub fn sign_b64(&self, payload: &[u8]) -> String {
        B64.encode(self.pair.sign(payload).as_ref())
    }

    pub fn trusted(&self) -> jumpgate_proto::epm::TrustedKey {
        jumpgate_proto::epm::TrustedKey {
            id: self.id.clone(),
            public_key: self.public_key_b64(),
        }
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut s = String::with_capacity(64);
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The canonical bytes of the content (what is signed).
pub fn canonical(content: &BundleContent) -> Vec<u8> {
    // Plain structs of strings and numbers: cannot fail.
    serde_json::to_vec(content).unwrap_or_default()
}

/// Makes the bundle file.
pub fn seal(content: &BundleContent, key: &SigningKey) -> Vec<u8> {
    let payload = canonical(content);
    let sig = key.pair.sign(&payload);
    let header = serde_json::to_vec(&Header {
        key: key.id.clone(),
        sig: B64.encode(sig.as_ref()),
    })
    .unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + header.len() + 1 + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&header);
    out.push(b'\n');
    out.extend_from_slice(&payload);
    out
}

/// Checks a bundle as an endpoint does: the whole file's hash (when the
/// gateway announced one), the signature by one of `keys`, the version
/// against the highest accepted so far, and the policy's validity.
///
/// # Errors
/// Why it is refused.
pub fn verify(
    bytes: &[u8],
    keys: &[jumpgate_proto::epm::TrustedKey],
    expected_sha256: Option<&str>,
    last_accepted: Option<u64>,
) -> Result<BundleContent, BundleError> {
    if bytes.len() > MAX_SIZE {
        return Err(BundleError::Malformed(format!(
            "larger than {MAX_SIZE} bytes"
        )));
    }
    if let Some(expected) = expected_sha256 {
        let got = sha256_hex(bytes);
        if !got.eq_ignore_ascii_case(expected) {
            return Err(BundleError::HashMismatch {
                expected: expected.to_owned(),
                got,
            });
        }
    }
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| BundleError::Malformed("wrong magic".into()))?;
    let nl = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| BundleError::Malformed("no header line".into()))?;
    let (header, payload) = rest.split_at(nl);
    let payload = payload.get(1..).unwrap_or_default();
    let header: Header = serde_json::from_slice(header)
        .map_err(|e| BundleError::Malformed(format!("header: {e}")))?;
    verify_signature(keys, &header.key, payload, &header.sig)?;
    let content: BundleContent = serde_json::from_slice(payload)
        .map_err(|e| BundleError::Malformed(format!("payload: {e}")))?;
    if let Some(accepted) = last_accepted
        && content.version < accepted
    {
        return Err(BundleError::Rollback {
            offered: content.version,
            accepted,
        });
    }
    content
        .policy
        .validate()
        .map_err(|e| BundleError::InvalidPolicy(e.to_string()))?;
    Ok(content)
}

/// Checks `sig` (base64) over `payload` by the key `key_id` of `keys`.
///
/// # Errors
/// The key is not among `keys`, or the signature does not verify.
pub fn verify_signature(
    keys: &[jumpgate_proto::epm::TrustedKey],
    key_id: &str,
    payload: &[u8],
    sig: &str,
) -> Result<(), BundleError> {
    let key = keys
        .iter()
        .find(|k| k.id == key_id)
        .ok_or_else(|| BundleError::UnknownKey(key_id.to_owned()))?;
    let public = B64
        .decode(&key.public_key)
        .map_err(|_| BundleError::Key(format!("trusted key `{}` is not base64", key.id)))?;
    let sig = B64.decode(sig).map_err(|_| BundleError::BadSignature)?;
    UnparsedPublicKey::new(&ED25519, &public)
        .verify(payload, &sig)
        .map_err(|_| BundleError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(version: u64) -> BundleContent {
        BundleContent {
            version,
            published_at: "2026-12-02T05:00:00Z".into(),
            published_by: "alice".into(),
            policy: Policy::from_yaml(crate::policy::tests::SAMPLE).unwrap(),
        }
    }

    #[test]
    fn a_sealed_bundle_verifies_and_is_canonical() {
        let (key, pkcs8) = SigningKey::generate("pk_1").unwrap();
        let again = SigningKey::from_pkcs8("pk_1", &pkcs8).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let file = seal(&content(3), &key);
        // Ed25519 is deterministic and the payload canonical.
        assert_eq!(seal(&content(3), &again), file);
        let got = verify(&file, &[key.trusted()], Some(&sha256_hex(&file)), Some(3)).unwrap();
        assert_eq!(got, content(3));
    }

    #[test]
    fn tampering_unknown_keys_and_rollback_are_refused() {
        let (key, _) = SigningKey::generate("pk_1").unwrap();
        let (other, _) = SigningKey::generate("pk_2").unwrap();
        let file = seal(&content(5), &key);
        let trusted = [key.trusted()];
        // One byte of the payload changed (and the hash announced for it).
        let mut bad = file.clone();
        let last = bad.len() - 2;
        bad[last] ^= 1;
        assert_eq!(
            verify(&bad, &trusted, None, None).unwrap_err(),
            BundleError::BadSignature
        );
        assert!(matches!(
            verify(&bad, &trusted, Some(&sha256_hex(&file)), None),
            Err(BundleError::HashMismatch { .. })
        ));
        assert_eq!(
            verify(&file, &[other.trusted()], None, None).unwrap_err(),
            BundleError::UnknownKey("pk_1".into())
        );
        // Same id, other key: the signature fails.
        let imposter = jumpgate_proto::epm::TrustedKey {
            id: "pk_1".into(),
            public_key: other.public_key_b64(),
        };
        assert_eq!(
            verify(&file, &[imposter], None, None).unwrap_err(),
            BundleError::BadSignature
        );
        assert_eq!(
            verify(&file, &trusted, None, Some(6)).unwrap_err(),
            BundleError::Rollback {
                offered: 5,
                accepted: 6
            }
        );
        assert!(matches!(
            verify(b"JGPOL1\nnope", &trusted, None, None),
            Err(BundleError::Malformed(_))
        ));
    }
}
