//! Wrapping data keys under the KEKs: new data keys, wrap and unwrap
//! (AES-256-GCM, purpose and KEK version as associated data), and the
//! SQLCipher database key.

use super::*;

impl Keyring {
    /// A fresh data key and its wrapped form under `purpose`'s current KEK.
    pub(crate) fn new_data_key(&self, purpose: Purpose) -> Result<(DataKey, WrappedKey), KeyError> {
        let mut key = DataKey([0; KEY_LEN]);
        self.0.rng.fill(&mut key.0).map_err(|_| KeyError::Random)?;
        let wrapped = self.wrap(purpose, &key)?;
        Ok((key, wrapped))
    }

    /// Wraps an existing data key under `purpose`'s current KEK.
    pub(crate) fn wrap(&self, purpose: Purpose, key: &DataKey) -> Result<WrappedKey, KeyError> {
        let st = self.read();
        let version = st.current(purpose);
        let kek = st
            .keks
            .get(&(purpose, version))
            .ok_or(KeyError::UnknownVersion {
                purpose: purpose.as_str(),
                version,
            })?;
        wrap_with(&self.0.rng, kek, purpose, version, key)
    }

    /// The data key inside `wrapped`, whatever KEK version (not yet
    /// retired) wrapped it.
    pub(crate) fn unwrap(
        &self,
        purpose: Purpose,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, KeyError> {
        let mut parts = wrapped.0.splitn(3, ':');
        let (Some(p), Some(v), Some(b)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyError::Malformed);
        };
        if p != purpose.as_str() {
            return Err(KeyError::Unwrap(purpose.as_str()));
        }
        let version: u32 = v
            .strip_prefix('v')
            .and_then(|v| v.parse().ok())
            .ok_or(KeyError::Malformed)?;
        let blob = B64.decode(b).map_err(|_| KeyError::Malformed)?;
        if blob.len() != NONCE_LEN + KEY_LEN + AES_256_GCM.tag_len() {
            return Err(KeyError::Malformed);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Malformed)?;
        let st = self.read();
        let kek = st
            .keks
            .get(&(purpose, version))
            .ok_or(KeyError::UnknownVersion {
                purpose: purpose.as_str(),
                version,
            })?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plain = kek
            .open_in_place(nonce, Aad::from(aad(purpose, version).as_bytes()), &mut buf)
            .map_err(|_| KeyError::Unwrap(purpose.as_str()))?;
        let mut key = DataKey([0; KEY_LEN]);
        key.0.copy_from_slice(plain);
        Ok(key)
    }

    /// The SQLCipher key of the site's database.
    pub(crate) fn database_key(&self) -> Result<DataKey, KeyError> {
        let wrapped = WrappedKey(self.read().file.database_key.clone());
        self.unwrap(Purpose::Database, &wrapped)
    }

    /// The SQLCipher key the database file is to be re-encrypted with, if a
    /// database rotation is waiting for the next start.
    pub(crate) fn database_key_next(&self) -> Result<Option<DataKey>, KeyError> {
        let Some(w) = self.read().file.database_key_next.clone() else {
            return Ok(None);
        };
        self.unwrap(Purpose::Database, &WrappedKey(w)).map(Some)
    }

    /// Makes the next database key the current one: the file has been
    /// re-encrypted with it.
    pub(crate) fn promote_database_key(&self) -> Result<(), KeyError> {
        let _w = self
            .0
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut file = self.read().file.clone();
        let Some(next) = file.database_key_next.take() else {
            return Ok(());
        };
        file.database_key = next;
        self.store(&file)?;
        self.write().file = file;
        Ok(())
    }
}

pub(super) fn kek_aad(purpose: Purpose, version: u32) -> String {
    format!("jumpgate:kek:{}:v{version}", purpose.as_str())
}

pub(super) fn aead_key(raw: &[u8]) -> Result<LessSafeKey, KeyError> {
    let k = UnboundKey::new(&AES_256_GCM, raw).map_err(|_| KeyError::Malformed)?;
    Ok(LessSafeKey::new(k))
}

pub(super) fn unseal(
    root: &dyn RootKey,
    purpose: Purpose,
    version: u32,
    sealed: &str,
) -> Result<LessSafeKey, KeyError> {
    let blob = B64.decode(sealed).map_err(|_| KeyError::Malformed)?;
    let raw = root.open(kek_aad(purpose, version).as_bytes(), &blob)?;
    aead_key(&raw)
}

pub(super) fn wrap_with(
    rng: &SystemRandom,
    kek: &LessSafeKey,
    purpose: Purpose,
    version: u32,
    key: &DataKey,
) -> Result<WrappedKey, KeyError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| KeyError::Random)?;
    let mut sealed = Zeroizing::new(key.0.to_vec());
    kek.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(purpose, version).as_bytes()),
        &mut *sealed,
    )
    .map_err(|_| KeyError::Random)?;
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&sealed);
    Ok(WrappedKey(format!(
        "{}:v{version}:{}",
        purpose.as_str(),
        B64.encode(blob)
    )))
}

pub(super) fn aad(purpose: Purpose, version: u32) -> String {
    format!("jumpgate:{}:v{version}", purpose.as_str())
}

impl DataKey {
    /// Seals `plain` with AES-256-GCM under this data key, bound to `aad`
    /// (which names what the value is, so it cannot be moved): a fresh
    /// random nonce, and the ciphertext with its tag. The domains that
    /// keep sealed values (vault versions, TOTP secrets, support sessions)
    /// store the two as they like.
    pub(crate) fn seal(
        &self,
        aad: &[u8],
        plain: &[u8],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyError::Random)?;
        let mut sealed = plain.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut sealed,
            )
            .map_err(|_| KeyError::Random)?;
        Ok((nonce, sealed))
    }

    /// Opens what [`DataKey::seal`] made, with the same `aad`.
    ///
    /// # Errors
    /// [`KeyError::Malformed`]: a nonce of the wrong length, or a
    /// ciphertext altered or sealed under another key or `aad`.
    pub(crate) fn open(
        &self,
        aad: &[u8],
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Malformed)?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let n = self
            .aead()?
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| KeyError::Malformed)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }

    fn aead(&self) -> Result<LessSafeKey, KeyError> {
        Ok(LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.0).map_err(|_| KeyError::Malformed)?,
        ))
    }
}
