//! Rotation: new KEK versions, retirement of old ones once the sweep has
//! re-wrapped every stored key, and the root key's rotation (with the
//! recovery of one a crash interrupted).

use super::*;

impl Keyring {
    /// The version new wraps of `purpose` use.
    pub(crate) fn current_version(&self, purpose: Purpose) -> u32 {
        self.read().current(purpose)
    }

    /// Every KEK version of `purpose`, oldest first.
    pub(crate) fn versions(&self, purpose: Purpose) -> Vec<KekInfo> {
        self.read()
            .file
            .purposes
            .get(purpose.as_str())
            .map(|pk| {
                pk.versions
                    .iter()
                    .map(|e| KekInfo {
                        version: e.version,
                        created_at_ms: e.created_at_ms,
                        retired: e.sealed.is_none(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Versions older than the current one that are not retired yet: what
    /// the sweep still has to move keys off.
    pub(crate) fn old_live_versions(&self, purpose: Purpose) -> Vec<u32> {
        let current = self.current_version(purpose);
        self.versions(purpose)
            .into_iter()
            .filter(|v| !v.retired && v.version != current)
            .map(|v| v.version)
            .collect()
    }

    /// Adds a new current KEK version to each of `purposes`; new wraps use
    /// it at once. The database key is re-wrapped in the same keyring write
    /// (it is the only key the database KEK wraps), so old database KEK
    /// versions are retired right away. Answers the new versions.
    pub(crate) fn rotate(&self, purposes: &[Purpose]) -> Result<Vec<(Purpose, u32)>, KeyError> {
        let _w = self
            .0
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = now_ms();
        let mut file = self.read().file.clone();
        let mut new_keks = Vec::new();
        let mut out = Vec::new();
        let mut retire_db = Vec::new();
        for &p in purposes {
            let pk = file
                .purposes
                .get_mut(p.as_str())
                .ok_or(KeyError::UnknownPurpose(p.as_str().to_owned()))?;
            let version = pk
                .versions
                .iter()
                .map(|e| e.version)
                .max()
                .unwrap_or(0)
                .checked_add(1)
                .ok_or_else(|| KeyError::BadKeyring {
                    path: self.0.path.display().to_string(),
                    message: format!("no {} key version number is left", p.as_str()),
                })?;
            let mut raw = Zeroizing::new([0u8; KEY_LEN]);
            self.0
                .rng
                .fill(&mut raw[..])
                .map_err(|_| KeyError::Random)?;
            let sealed = self.root().seal(kek_aad(p, version).as_bytes(), &raw[..])?;
            pk.versions.push(KekEntry {
                version,
                created_at_ms: now,
                sealed: Some(B64.encode(sealed)),
                retired_at_ms: None,
            });
            pk.current = version;
            let kek = aead_key(&raw[..])?;
            if p == Purpose::Database {
                // Both database keys move to the new KEK at once. A next
                // key already waiting is kept: the file may already be
                // re-encrypted with it (crash before it was made current).
                let db_key = self.database_key()?;
                file.database_key = wrap_with(&self.0.rng, &kek, p, version, &db_key)?.0;
                let next = match self.database_key_next()? {
                    Some(k) => k,
                    None => {
                        let mut k = DataKey([0; KEY_LEN]);
                        self.0.rng.fill(&mut k.0).map_err(|_| KeyError::Random)?;
                        k
                    }
                };
                file.database_key_next = Some(wrap_with(&self.0.rng, &kek, p, version, &next)?.0);
                for e in &mut pk.versions {
                    if e.version != version && e.sealed.is_some() {
                        e.sealed = None;
                        e.retired_at_ms = Some(now);
                        retire_db.push(e.version);
                    }
                }
            }
            new_keks.push(((p, version), kek));
            out.push((p, version));
        }
        self.store(&file)?;
        let mut st = self.write();
        st.file = file;
        for (k, kek) in new_keks {
            st.keks.insert(k, kek);
        }
        for v in retire_db {
            st.keks.remove(&(Purpose::Database, v));
        }
        Ok(out)
    }

    /// Retires `version` of `purpose`: its sealed KEK is erased from the
    /// keyring file, so keys still wrapped by it can no longer be opened.
    /// The caller has checked that none are stored. The current version is
    /// never retired.
    pub(crate) fn retire(&self, purpose: Purpose, version: u32) -> Result<bool, KeyError> {
        let _w = self
            .0
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut file = self.read().file.clone();
        let Some(pk) = file.purposes.get_mut(purpose.as_str()) else {
            return Ok(false);
        };
        if pk.current == version {
            return Ok(false);
        }
        let Some(e) = pk
            .versions
            .iter_mut()
            .find(|e| e.version == version && e.sealed.is_some())
        else {
            return Ok(false);
        };
        e.sealed = None;
        e.retired_at_ms = Some(now_ms());
        self.store(&file)?;
        let mut st = self.write();
        st.file = file;
        st.keks.remove(&(purpose, version));
        Ok(true)
    }

    /// When the root key was last rotated (`None`: never).
    pub(crate) fn root_info(&self) -> Option<RootInfo> {
        self.read().file.root
    }

    /// Where the root key in use comes from (never the key).
    pub(crate) fn root_source(&self) -> String {
        self.root().describe()
    }

    /// Whether the root key in use is the site's key file (a rotation then
    /// makes the new key itself; otherwise the operator supplies it).
    pub(crate) fn root_is_key_file(&self) -> bool {
        self.0.root_file.is_some()
    }

    /// Re-seals every KEK in the keyring under a new root key. The KEKs
    /// themselves, and so every wrapped data key, stay as they are; this
    /// process keeps working with them throughout.
    ///
    /// With the site's key file, `new` may be `None` (a random key is made)
    /// and the protocol is, each step durable (file and directory fsync'd)
    /// before the next:
    ///
    /// 1. write the new key to `keys/root.key.new` (mode 0600);
    /// 2. write the keyring re-sealed under the new key to
    ///    `keyring.json.tmp` and rename it over `keyring.json` (the
    ///    commit point);
    /// 3. rename `root.key.new` over `root.key`.
    ///
    /// A crash leaves `root.key.new` behind only between steps 1 and 3;
    /// [`Keyring::open`] then tries the keyring with `root.key`: if it opens,
    /// the crash was before the commit point and `root.key.new` is deleted
    /// (rolled back); else, if it opens with `root.key.new`, that file is
    /// renamed over `root.key` (rolled forward). So the site always opens.
    ///
    /// When the root key came from [`ROOT_KEY_ENV`] (or a caller), `new`
    /// is required, and only step 2 happens: the operator sets the variable
    /// to the new key before the next start.
    ///
    /// Answers the new root generation.
    pub(crate) fn rotate_root(&self, new: Option<LocalRoot>) -> Result<RootInfo, KeyError> {
        let _w = self
            .0
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let new = match (&self.0.root_file, new) {
            (_, Some(k)) => k,
            (Some(path), None) => LocalRoot::generate(path)?,
            (None, None) => return Err(KeyError::NewRootNeeded),
        };
        let new = match &self.0.root_file {
            Some(path) => new.described_as(format!("key file {}", path.display())),
            None => new.described_as(self.root().describe()),
        };
        let mut file = self.read().file.clone();
        // Re-seal every live KEK; the new key must differ from the old.
        {
            let old = self.root();
            for p in Purpose::ALL {
                let Some(pk) = file.purposes.get_mut(p.as_str()) else {
                    continue;
                };
                for e in &mut pk.versions {
                    let Some(sealed) = &e.sealed else { continue };
                    let blob = B64.decode(sealed).map_err(|_| KeyError::Malformed)?;
                    let aad = kek_aad(p, e.version);
                    if new.open(aad.as_bytes(), &blob).is_ok() {
                        return Err(KeyError::SameRoot);
                    }
                    let raw = old.open(aad.as_bytes(), &blob)?;
                    e.sealed = Some(B64.encode(new.seal(aad.as_bytes(), &raw)?));
                }
            }
        }
        let info = RootInfo {
            generation: file.root.map_or(0, |r| r.generation).saturating_add(1),
            rotated_at_ms: now_ms(),
        };
        file.root = Some(info);
        match &self.0.root_file {
            Some(root_path) => {
                let next = root_path.with_file_name(ROOT_NEW_FILE);
                if next.exists() {
                    return Err(KeyError::RotationPending(next.display().to_string()));
                }
                // Step 1.
                root::write_key_file(&next, &new)?;
                // Step 2, the commit point. On failure `root.key.new` stays:
                // whether the rename happened is for `open` to find out.
                self.store(&file)?;
                // Step 3. From the commit point the keyring on disk needs
                // the new key: this process uses it even if step 3 fails
                // (the next open then finishes it).
                let step3 = finish_root_file(&next, root_path, &new);
                self.install(new, file);
                step3?;
            }
            None => {
                self.store(&file)?;
                self.install(new, file);
            }
        }
        Ok(info)
    }

    pub(super) fn install(&self, new: LocalRoot, file: KeyringFile) {
        *self
            .0
            .root
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Box::new(new);
        self.write().file = file;
    }

    /// Writes `file` as the keyring, unless another process re-sealed the
    /// file on disk under another root key since this one read it: then
    /// writing would put back KEKs sealed by a root key that is gone.
    pub(super) fn store(&self, file: &KeyringFile) -> Result<(), KeyError> {
        let path = &self.0.path;
        let bytes = fs::read(path).map_err(|cause| KeyError::Io {
            path: path.display().to_string(),
            cause,
        })?;
        let on_disk = parse_keyring(path, &bytes)?;
        if on_disk.root != self.read().file.root {
            return Err(KeyError::ChangedOnDisk(path.display().to_string()));
        }
        write_atomically(path, file)
    }
}

/// Step 3 of a root rotation: `root.key.new` becomes `root.key`. Should
/// another process's open have rolled step 1 back meanwhile (it saw the
/// keyring still under the old key just before the commit point), the new
/// key is written again from memory first.
pub(super) fn finish_root_file(
    next: &Path,
    root_path: &Path,
    new: &LocalRoot,
) -> Result<(), KeyError> {
    let io = |cause| KeyError::Io {
        path: root_path.display().to_string(),
        cause,
    };
    match fs::rename(next, root_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            root::write_key_file(next, new)?;
            fs::rename(next, root_path).map_err(io)?;
        }
        Err(e) => return Err(io(e)),
    }
    root::sync_dir(root_path)
}

/// Finishes or rolls back a root key rotation a crash interrupted: see the
/// protocol on [`Keyring::rotate_root`]. Nothing to do without
/// `keys/root.key.new`.
pub(super) fn recover_root_rotation(data_dir: &Path) -> Result<(), KeyError> {
    let dir = data_dir.join("keys");
    let next = dir.join(ROOT_NEW_FILE);
    if !next.exists() {
        return Ok(());
    }
    let ring = dir.join(KEYRING_FILE);
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |cause: std::io::Error| KeyError::Io { path, cause }
    };
    let bytes = match fs::read(&ring) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // No keyring: nothing was sealed by either key yet.
            fs::remove_file(&next).map_err(io(&next))?;
            return root::sync_dir(&next);
        }
        Err(e) => return Err(io(&ring)(e)),
    };
    let file = parse_keyring(&ring, &bytes)?;
    let old = root::site_root_file_only(data_dir)?;
    match unseal_all(&ring, &file, old.as_ref()) {
        Ok(_) => {
            // Crash before the commit point: roll back.
            fs::remove_file(&next).map_err(io(&next))?;
            tracing::warn!("an interrupted root key rotation was rolled back");
            return root::sync_dir(&next);
        }
        Err(KeyError::WrongRoot(_)) => {}
        Err(e) => return Err(e),
    }
    let new = root::read_root_file(&next)?;
    match unseal_all(&ring, &file, new.as_ref()) {
        Ok(_) => {
            // Crash after the commit point: roll forward.
            let root_path = dir.join(ROOT_FILE);
            fs::rename(&next, &root_path).map_err(io(&root_path))?;
            tracing::warn!("an interrupted root key rotation was completed");
            root::sync_dir(&root_path)
        }
        Err(KeyError::WrongRoot(_)) => Err(KeyError::WrongRoot(old.describe())),
        Err(e) => Err(e),
    }
}
