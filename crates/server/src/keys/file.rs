//! The keyring file (`keys/keyring.json`): its format, reading and
//! unsealing it, a new site's first keyring, and atomic writes.

use super::*;

/// The keyring file: per purpose, every KEK version sealed by the root key,
/// and the database key wrapped by the current database KEK (the database
/// cannot hold its own key).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyringFile {
    pub(super) format: u32,
    pub(super) purposes: BTreeMap<String, PurposeKeys>,
    pub(super) database_key: String,
    /// After a database rotation: the next SQLCipher key, wrapped like
    /// `database_key`. The gateway re-encrypts the file with it
    /// (`PRAGMA rekey`) at its next start, while nothing else has the
    /// database open, then makes it `database_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) database_key_next: Option<String>,
    /// The root key's rotations: absent until the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) root: Option<RootInfo>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PurposeKeys {
    pub(super) current: u32,
    pub(super) versions: Vec<KekEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KekEntry {
    pub(super) version: u32,
    pub(super) created_at_ms: i64,
    /// The KEK sealed by the root key; erased when the version is retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sealed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) retired_at_ms: Option<i64>,
}

pub(super) fn parse_keyring(path: &Path, bytes: &[u8]) -> Result<KeyringFile, KeyError> {
    serde_json::from_slice(bytes).map_err(|e| KeyError::BadKeyring {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Every live KEK of `file`, opened with `root`.
pub(super) fn unseal_all(
    path: &Path,
    file: &KeyringFile,
    root: &dyn RootKey,
) -> Result<HashMap<(Purpose, u32), LessSafeKey>, KeyError> {
    let mut keks = HashMap::new();
    for p in Purpose::ALL {
        let Some(pk) = file.purposes.get(p.as_str()) else {
            return Err(KeyError::BadKeyring {
                path: path.display().to_string(),
                message: format!("no {} keys", p.as_str()),
            });
        };
        let mut seen = std::collections::BTreeSet::new();
        for e in &pk.versions {
            // Rotation numbers the next version after the highest one.
            if e.version == 0 || e.version == u32::MAX || !seen.insert(e.version) {
                return Err(KeyError::BadKeyring {
                    path: path.display().to_string(),
                    message: format!(
                        "{} key version {} is out of range or repeated",
                        p.as_str(),
                        e.version
                    ),
                });
            }
            if let Some(sealed) = &e.sealed {
                let kek = unseal(root, p, e.version, sealed)?;
                keks.insert((p, e.version), kek);
            }
        }
        if !keks.contains_key(&(p, pk.current)) {
            return Err(KeyError::BadKeyring {
                path: path.display().to_string(),
                message: format!("the current {} key is missing", p.as_str()),
            });
        }
    }
    Ok(keks)
}

/// Gives a keyring written before a purpose existed (`policy`) version 1 of
/// that purpose's KEK (random). Answers whether the file changed (then the
/// caller writes it before using it). Only purposes added later can be
/// missing: the database key's purpose is never added here.
pub(super) fn add_missing_purposes(
    file: &mut KeyringFile,
    root: &dyn RootKey,
    rng: &SystemRandom,
) -> Result<bool, KeyError> {
    let mut changed = false;
    for p in Purpose::ALL {
        if p == Purpose::Database || file.purposes.contains_key(p.as_str()) {
            continue;
        }
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill(&mut raw[..]).map_err(|_| KeyError::Random)?;
        let sealed = root.seal(kek_aad(p, 1).as_bytes(), &raw[..])?;
        file.purposes.insert(
            p.as_str().to_owned(),
            PurposeKeys {
                current: 1,
                versions: vec![KekEntry {
                    version: 1,
                    created_at_ms: now_ms(),
                    sealed: Some(B64.encode(sealed)),
                    retired_at_ms: None,
                }],
            },
        );
        changed = true;
    }
    Ok(changed)
}

/// A new keyring: version 1 of every KEK (derived from a local root key
/// as the single-version keyring did, so keys it wrapped still open;
/// random otherwise) and a random database key.
pub(super) fn new_keyring(root: &dyn RootKey, rng: &SystemRandom) -> Result<State, KeyError> {
    let now = now_ms();
    let mut purposes = BTreeMap::new();
    let mut keks = HashMap::new();
    for p in Purpose::ALL {
        let raw = match root.legacy_kek(p) {
            Some(k) => k,
            None => {
                let mut k = Zeroizing::new([0u8; KEY_LEN]);
                rng.fill(&mut k[..]).map_err(|_| KeyError::Random)?;
                k
            }
        };
        let sealed = root.seal(kek_aad(p, 1).as_bytes(), &raw[..])?;
        purposes.insert(
            p.as_str().to_owned(),
            PurposeKeys {
                current: 1,
                versions: vec![KekEntry {
                    version: 1,
                    created_at_ms: now,
                    sealed: Some(B64.encode(sealed)),
                    retired_at_ms: None,
                }],
            },
        );
        keks.insert((p, 1), aead_key(&raw[..])?);
    }
    let mut db_key = DataKey([0; KEY_LEN]);
    rng.fill(&mut db_key.0).map_err(|_| KeyError::Random)?;
    let database_key = wrap_with(
        rng,
        &keks[&(Purpose::Database, 1)],
        Purpose::Database,
        1,
        &db_key,
    )?
    .0;
    Ok(State {
        file: KeyringFile {
            format: 1,
            purposes,
            database_key,
            database_key_next: None,
            root: None,
        },
        keks,
    })
}

/// Writes the keyring so that a crash leaves either the old or the new
/// file, never a torn one: temporary file (0600), fsync, rename, fsync dir.
pub(super) fn write_atomically(path: &Path, file: &KeyringFile) -> Result<(), KeyError> {
    let io = |cause| KeyError::Io {
        path: path.display().to_string(),
        cause,
    };
    let text = serde_json::to_vec_pretty(file).map_err(|e| KeyError::BadKeyring {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    jumpgate_net::fs::write_private_atomic(path, &text).map_err(io)
}

/// Like [`write_atomically`], but only if no keyring exists yet (`false`:
/// one does). Two processes starting a new site agree on one keyring.
pub(super) fn create_atomically(path: &Path, file: &KeyringFile) -> Result<bool, KeyError> {
    let io = |cause| KeyError::Io {
        path: path.display().to_string(),
        cause,
    };
    let mut tag = [0u8; 8];
    SystemRandom::new()
        .fill(&mut tag)
        .map_err(|_| KeyError::Random)?;
    let tmp = path.with_extension(format!("json.new-{}", u64::from_le_bytes(tag)));
    let text = serde_json::to_vec_pretty(file).map_err(|e| KeyError::BadKeyring {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    root::write_new_private(&tmp, &text)?;
    // link(2) fails if the target exists, unlike rename(2).
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(e)),
    }
}
