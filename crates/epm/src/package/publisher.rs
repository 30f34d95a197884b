//! Publishers' detached signatures of packages: minisign (`minisign -S`
//! makes `FILE.deb.minisig`; keys are the one-line base64 public keys of
//! `minisign.pub`). Checked by the gateway at upload, against the keys an
//! administrator trusts; the endpoint relies on the gateway's signed
//! manifest instead (which names the publisher).
//!
//! Only minisign's pre-hashed signatures (the default since minisign 0.8)
//! are accepted: they are checked while the file streams by.

use minisign_verify::{PublicKey, Signature};

/// Why a publisher key or signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    #[error("not a minisign public key (the base64 line of minisign.pub): {0}")]
    BadKey(String),
    #[error("not a minisign signature file: {0}")]
    BadSignatureFile(String),
    #[error("signed by minisign key {0}, which is not a trusted publisher")]
    UnknownKey(String),
    #[error("the signature by publisher `{0}` does not match the package")]
    Mismatch(String),
}

/// A trusted publisher key, parsed.
#[derive(Clone, Debug)]
pub struct PublisherKey {
    /// The administrator's name for it.
    pub name: String,
    /// minisign's key id (16 hex digits, as `minisign -V` prints it).
    pub key_id: String,
    key: PublicKey,
}

/// minisign's key id of the 8 raw key-id bytes (little-endian u64, hex),
/// as minisign prints it.
fn key_id_hex(raw: [u8; 8]) -> String {
    format!("{:016X}", u64::from_le_bytes(raw))
}

/// The key id and algorithm of a base64 minisign key or signature line:
/// bytes 2..10 are the key id.
fn key_id_of(b64: &str) -> Option<String> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let id: [u8; 8] = raw.get(2..10)?.try_into().ok()?;
    Some(key_id_hex(id))
}

impl PublisherKey {
    /// Parses a public key: the base64 line, or the whole `minisign.pub`
    /// file (comment line and key line).
    ///
    /// # Errors
    /// Not a minisign Ed25519 public key.
    pub fn parse(name: &str, text: &str) -> Result<Self, PublisherError> {
        let line = text
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| PublisherError::BadKey("empty".into()))?;
        let key =
            PublicKey::from_base64(line).map_err(|e| PublisherError::BadKey(e.to_string()))?;
        let key_id = key_id_of(line).ok_or_else(|| PublisherError::BadKey("too short".into()))?;
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// The base64 line (what is stored).
    pub fn normalized(text: &str) -> Option<String> {
        text.lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .map(str::to_owned)
    }
}

/// A signature file, parsed, with the key id that made it.
pub struct DetachedSignature {
    pub key_id: String,
    sig: Signature,
}

impl std::fmt::Debug for DetachedSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedSignature")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl DetachedSignature {
    /// # Errors
    /// Not a minisign signature file.
    pub fn parse(text: &str) -> Result<Self, PublisherError> {
        let sig =
            Signature::decode(text).map_err(|e| PublisherError::BadSignatureFile(e.to_string()))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .unwrap_or_default();
        let key_id = key_id_of(line)
            .ok_or_else(|| PublisherError::BadSignatureFile("no signature line".into()))?;
        Ok(Self { key_id, sig })
    }

    /// The trusted key that made this signature.
    ///
    /// # Errors
    /// None of `keys` has its key id.
    pub fn signer<'a>(&self, keys: &'a [PublisherKey]) -> Result<&'a PublisherKey, PublisherError> {
        keys.iter()
            .find(|k| k.key_id == self.key_id)
            .ok_or_else(|| PublisherError::UnknownKey(self.key_id.clone()))
    }

    /// Checks the signature over the bytes `read` yields (streamed).
    ///
    /// # Errors
    /// Unknown key, a legacy (not pre-hashed) signature, a mismatch, or
    /// the reader failed.
    pub fn verify<R: std::io::Read>(
        &self,
        keys: &[PublisherKey],
        mut read: R,
    ) -> Result<String, PublisherError> {
        let signer = self.signer(keys)?;
        let mut v = signer
            .key
            .verify_stream(&self.sig)
            .map_err(|e| PublisherError::BadSignatureFile(e.to_string()))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = read
                .read(&mut buf)
                .map_err(|e| PublisherError::BadSignatureFile(e.to_string()))?;
            if n == 0 {
                break;
            }
            v.update(&buf[..n]);
        }
        v.finalize()
            .map_err(|_| PublisherError::Mismatch(signer.name.clone()))?;
        Ok(signer.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key pair and signature made by the real `minisign` (skipped where
    /// it is not installed).
    #[test]
    fn minisign_signatures_verify_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let (pk, sk) = (dir.path().join("k.pub"), dir.path().join("k.key"));
        let Ok(gen_out) = std::process::Command::new("minisign")
            .args(["-G", "-W", "-p"])
            .arg(&pk)
            .arg("-s")
            .arg(&sk)
            .output()
        else {
            crate::package::skip("minisign is not installed (apt-get install minisign)");
            return;
        };
        assert!(gen_out.status.success(), "{gen_out:?}");
        let file = dir.path().join("p.deb");
        std::fs::write(&file, b"package bytes").unwrap();
        let out = std::process::Command::new("minisign")
            .args(["-S", "-s"])
            .arg(&sk)
            .arg("-m")
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let sig_text = std::fs::read_to_string(dir.path().join("p.deb.minisig")).unwrap();
        let key = PublisherKey::parse("acme", &std::fs::read_to_string(&pk).unwrap()).unwrap();
        let sig = DetachedSignature::parse(&sig_text).unwrap();
        assert_eq!(sig.key_id, key.key_id);
        assert_eq!(
            sig.verify(std::slice::from_ref(&key), &b"package bytes"[..])
                .unwrap(),
            "acme"
        );
        assert!(matches!(
            sig.verify(std::slice::from_ref(&key), &b"package bytez"[..]),
            Err(PublisherError::Mismatch(_))
        ));
        assert!(matches!(
            sig.verify(&[], &b"package bytes"[..]),
            Err(PublisherError::UnknownKey(_))
        ));
        assert!(matches!(
            PublisherKey::parse("x", "not a key"),
            Err(PublisherError::BadKey(_))
        ));
        assert!(matches!(
            DetachedSignature::parse("garbage"),
            Err(PublisherError::BadSignatureFile(_))
        ));
    }
}
