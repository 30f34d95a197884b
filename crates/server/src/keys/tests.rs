use super::*;

fn open(dir: &Path) -> Keyring {
    Keyring::open_with(dir, root::site_root_file_only(dir).expect("root key file")).unwrap()
}

#[test]
fn data_keys_round_trip_and_stay_bound_to_their_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let ring = open(dir.path());
    let (key, wrapped) = ring.new_data_key(Purpose::Recordings).unwrap();
    assert!(wrapped.as_str().starts_with("recordings:v1:"));
    let back = ring.unwrap(Purpose::Recordings, &wrapped).unwrap();
    assert_eq!(back.as_bytes(), key.as_bytes());
    assert!(matches!(
        ring.unwrap(Purpose::Vault, &wrapped),
        Err(KeyError::Unwrap("vault"))
    ));

    // Reopening finds the same root key and keyring.
    let again = open(dir.path());
    let back = again.unwrap(Purpose::Recordings, &wrapped).unwrap();
    assert_eq!(back.as_bytes(), key.as_bytes());
    assert_eq!(
        again.database_key().unwrap().as_bytes(),
        ring.database_key().unwrap().as_bytes()
    );

    // A flipped bit is refused, not silently accepted.
    let mut s = wrapped.as_str().to_owned();
    let last = s.pop().unwrap();
    s.push(if last == 'A' { 'B' } else { 'A' });
    assert!(ring.unwrap(Purpose::Recordings, &WrappedKey(s)).is_err());
}

#[test]
fn another_sites_root_key_does_not_unwrap() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (_, wrapped) = open(a.path()).new_data_key(Purpose::Recordings).unwrap();
    let other = open(b.path());
    assert!(matches!(
        other.unwrap(Purpose::Recordings, &wrapped),
        Err(KeyError::Unwrap(_))
    ));
    // A's keyring with B's root key: a clear error naming the root source.
    fs::copy(
        a.path().join("keys/keyring.json"),
        b.path().join("keys/keyring.json"),
    )
    .unwrap();
    let err = Keyring::open_with(b.path(), root::site_root_file_only(b.path()).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("wrong root key"), "{err}");
    assert!(err.contains("root.key"), "{err}");
}

#[test]
fn a_readable_root_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path());
    let path = dir.path().join("keys/root.key");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        root::site_root_file_only(dir.path()),
        Err(KeyError::BadKeyFile { .. })
    ));
}

#[test]
fn a_lost_root_key_file_is_not_silently_replaced() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path());
    fs::remove_file(dir.path().join("keys/root.key")).unwrap();
    assert!(matches!(
        root::site_root_file_only(dir.path()),
        Err(KeyError::MissingRoot(_))
    ));
}

/// Keys wrapped by the single-version keyring (KEK v1 derived from the
/// root key with HKDF, no keyring file) still open.
#[test]
fn keys_wrapped_before_the_keyring_file_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = root::site_root_file_only(dir.path()).unwrap();
    let legacy = root.legacy_kek(Purpose::Recordings).unwrap();
    let kek = aead_key(&legacy[..]).unwrap();
    let key = DataKey([9; KEY_LEN]);
    let wrapped = wrap_with(&SystemRandom::new(), &kek, Purpose::Recordings, 1, &key).unwrap();
    let ring = Keyring::open_with(dir.path(), root).unwrap();
    assert_eq!(
        ring.unwrap(Purpose::Recordings, &wrapped)
            .unwrap()
            .as_bytes(),
        &[9; KEY_LEN]
    );
}

#[test]
fn rotation_keeps_old_versions_until_retired() {
    let dir = tempfile::tempdir().unwrap();
    let ring = open(dir.path());
    let db_key = *ring.database_key().unwrap().as_bytes();
    let (key, old) = ring.new_data_key(Purpose::Vault).unwrap();
    let rotated = ring.rotate(&[Purpose::Vault, Purpose::Database]).unwrap();
    assert_eq!(rotated, vec![(Purpose::Vault, 2), (Purpose::Database, 2)]);
    let (new_key, new) = ring.new_data_key(Purpose::Vault).unwrap();
    assert_eq!(new.version(), Some(2));
    assert_eq!(old.version(), Some(1));
    assert_eq!(ring.old_live_versions(Purpose::Vault), vec![1]);
    // The database key is the same key, re-wrapped; its old KEK is gone.
    assert_eq!(ring.database_key().unwrap().as_bytes(), &db_key);
    assert!(ring.old_live_versions(Purpose::Database).is_empty());

    // Another process (admin) opening the file sees the same state.
    let other = open(dir.path());
    assert_eq!(other.current_version(Purpose::Vault), 2);
    assert_eq!(
        other.unwrap(Purpose::Vault, &old).unwrap().as_bytes(),
        key.as_bytes()
    );
    assert_eq!(other.database_key().unwrap().as_bytes(), &db_key);

    assert!(!ring.retire(Purpose::Vault, 2).unwrap(), "current is kept");
    assert!(ring.retire(Purpose::Vault, 1).unwrap());
    assert!(matches!(
        ring.unwrap(Purpose::Vault, &old),
        Err(KeyError::UnknownVersion { version: 1, .. })
    ));
    let reopened = open(dir.path());
    assert!(reopened.unwrap(Purpose::Vault, &old).is_err());
    assert_eq!(
        reopened.unwrap(Purpose::Vault, &new).unwrap().as_bytes(),
        new_key.as_bytes()
    );
    let text = fs::read_to_string(dir.path().join("keys/keyring.json")).unwrap();
    let mode = fs::metadata(dir.path().join("keys/keyring.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(text.contains("retired_at_ms"), "{text}");
}

#[test]
fn sqlcipher_literal_is_a_raw_hex_key() {
    let k = DataKey([0xab; KEY_LEN]);
    let lit = k.sqlcipher_literal();
    assert_eq!(lit.len(), 2 * KEY_LEN + 5);
    assert!(lit.starts_with("\"x'ABAB") && lit.ends_with("'\""));
}

/// Two processes opening a new site at once end up with one keyring.
#[test]
fn concurrent_first_opens_agree_on_one_keyring() {
    let dir = tempfile::tempdir().unwrap();
    root::site_root_file_only(dir.path()).unwrap();
    let keys: Vec<[u8; KEY_LEN]> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| *open(dir.path()).database_key().unwrap().as_bytes()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.windows(2).all(|w| w[0] == w[1]));
    let leftovers: Vec<_> = fs::read_dir(dir.path().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}

/// The site keyring as `Keyring::open` makes it from the key file, without
/// looking at the environment.
fn open_site(dir: &Path) -> Keyring {
    recover_root_rotation(dir).unwrap();
    Keyring::open_inner(
        dir,
        root::site_root_file_only(dir).unwrap(),
        Some(dir.join("keys").join(ROOT_FILE)),
    )
    .unwrap()
}

fn key_file(dir: &Path, name: &str) -> PathBuf {
    dir.join("keys").join(name)
}

/// Copies `from` to `to` with mode 0600, like a root key file.
fn copy_key(from: &Path, to: &Path) {
    let _ = fs::remove_file(to);
    fs::copy(from, to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o600)).unwrap();
}

fn opens_with(dir: &Path, key: &Path) -> Result<Keyring, KeyError> {
    Keyring::open_with(dir, root::read_root_file(key)?)
}

#[test]
fn root_rotation_reseals_every_kek_under_a_new_root_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ring = open_site(d);
    let (key, wrapped) = ring.new_data_key(Purpose::Vault).unwrap();
    ring.rotate(&[Purpose::Vault]).unwrap();
    let old = d.join("old.key");
    copy_key(&key_file(d, ROOT_FILE), &old);
    assert!(ring.root_info().is_none());

    let info = ring.rotate_root(None).unwrap();
    assert_eq!(info.generation, 1);
    assert!(!key_file(d, ROOT_NEW_FILE).exists());
    assert_ne!(
        fs::read(&old).unwrap(),
        fs::read(key_file(d, ROOT_FILE)).unwrap()
    );
    // The running keyring keeps working, and its later writes are sealed
    // under the new root key.
    assert_eq!(
        ring.unwrap(Purpose::Vault, &wrapped).unwrap().as_bytes(),
        key.as_bytes()
    );
    ring.rotate(&[Purpose::Recordings]).unwrap();

    // The old root key no longer opens the keyring; the new one does.
    assert!(matches!(opens_with(d, &old), Err(KeyError::WrongRoot(_))));
    let again = open_site(d);
    assert_eq!(again.root_info(), Some(info));
    assert_eq!(
        again.unwrap(Purpose::Vault, &wrapped).unwrap().as_bytes(),
        key.as_bytes()
    );
    assert_eq!(
        again.database_key().unwrap().as_bytes(),
        ring.database_key().unwrap().as_bytes()
    );
    assert_eq!(again.rotate_root(None).unwrap().generation, 2);
}

#[test]
fn crash_after_writing_the_new_root_key_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ring = open_site(d);
    let (key, wrapped) = ring.new_data_key(Purpose::Vault).unwrap();
    let before = fs::read(key_file(d, ROOT_FILE)).unwrap();
    drop(ring);
    // Step 1 done (or torn), step 2 not: the keyring is still sealed by
    // root.key; a half-written keyring.json.tmp may be there too.
    for torn in [false, true] {
        let next = key_file(d, ROOT_NEW_FILE);
        if torn {
            fs::write(&next, b"short").unwrap();
            fs::set_permissions(&next, fs::Permissions::from_mode(0o600)).unwrap();
            fs::write(key_file(d, "keyring.json.tmp"), b"{\"format\"").unwrap();
        } else {
            root::write_key_file(&next, &LocalRoot::generate(&next).unwrap()).unwrap();
        }
        let ring = open_site(d);
        assert!(!next.exists());
        assert_eq!(fs::read(key_file(d, ROOT_FILE)).unwrap(), before);
        assert_eq!(
            ring.unwrap(Purpose::Vault, &wrapped).unwrap().as_bytes(),
            key.as_bytes()
        );
        assert!(ring.root_info().is_none());
    }
    // And a rotation afterwards goes through.
    assert_eq!(open_site(d).rotate_root(None).unwrap().generation, 1);
}

#[test]
fn crash_after_the_keyring_commit_rolls_forward() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ring = open_site(d);
    let (key, wrapped) = ring.new_data_key(Purpose::Recordings).unwrap();
    let old = d.join("old.key");
    copy_key(&key_file(d, ROOT_FILE), &old);
    ring.rotate_root(None).unwrap();
    drop(ring);
    let new = fs::read(key_file(d, ROOT_FILE)).unwrap();
    // Put the files back as a crash between steps 2 and 3 leaves them: the
    // keyring re-sealed, root.key.new not yet renamed over root.key.
    fs::rename(key_file(d, ROOT_FILE), key_file(d, ROOT_NEW_FILE)).unwrap();
    copy_key(&old, &key_file(d, ROOT_FILE));
    assert!(matches!(
        opens_with(d, &key_file(d, ROOT_FILE)),
        Err(KeyError::WrongRoot(_))
    ));

    let ring = open_site(d);
    assert!(!key_file(d, ROOT_NEW_FILE).exists());
    assert_eq!(fs::read(key_file(d, ROOT_FILE)).unwrap(), new);
    assert_eq!(
        ring.unwrap(Purpose::Recordings, &wrapped)
            .unwrap()
            .as_bytes(),
        key.as_bytes()
    );
    assert_eq!(ring.root_info().map(|i| i.generation), Some(1));
}

#[test]
fn recovery_refuses_when_neither_root_key_opens_the_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    drop(open_site(d));
    let other = tempfile::tempdir().unwrap();
    drop(open_site(other.path()));
    copy_key(&key_file(other.path(), ROOT_FILE), &key_file(d, ROOT_FILE));
    let next = key_file(d, ROOT_NEW_FILE);
    root::write_key_file(&next, &LocalRoot::generate(&next).unwrap()).unwrap();
    let err = recover_root_rotation(d).err().unwrap();
    assert!(matches!(err, KeyError::WrongRoot(_)), "{err}");
    // Nothing was deleted or renamed.
    assert!(next.exists());
}

#[test]
fn a_keyring_opened_before_a_root_rotation_does_not_write_old_sealing_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stale = open_site(d);
    let ring = open_site(d);
    ring.rotate_root(None).unwrap();
    let err = stale.rotate(&[Purpose::Vault]).err().unwrap();
    assert!(matches!(err, KeyError::ChangedOnDisk(_)), "{err}");
    assert!(matches!(
        stale.retire(Purpose::Vault, 1),
        Ok(false) | Err(KeyError::ChangedOnDisk(_))
    ));
    drop(open_site(d));
}

#[test]
fn a_root_key_from_elsewhere_is_rotated_to_the_key_the_operator_gives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let env = |v: &str| Box::new(LocalRoot::from_env_value(v).unwrap()) as Box<dyn RootKey>;
    let ring = Keyring::open_with(d, env(&"11".repeat(32))).unwrap();
    let (key, wrapped) = ring.new_data_key(Purpose::Vault).unwrap();
    assert!(!ring.root_is_key_file());
    assert!(matches!(
        ring.rotate_root(None),
        Err(KeyError::NewRootNeeded)
    ));
    assert!(matches!(
        ring.rotate_root(Some(LocalRoot::from_env_value(&"11".repeat(32)).unwrap())),
        Err(KeyError::SameRoot)
    ));

    // The new key file: refused unless private.
    let file = d.join("new-root");
    fs::write(&file, format!("{}\n", "22".repeat(32))).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        LocalRoot::from_new_key_file(&file),
        Err(KeyError::BadNewKeyFile(_))
    ));
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let new = LocalRoot::from_new_key_file(&file).unwrap();
    assert_eq!(ring.rotate_root(Some(new)).unwrap().generation, 1);
    assert!(!key_file(d, ROOT_NEW_FILE).exists());

    assert!(matches!(
        Keyring::open_with(d, env(&"11".repeat(32))),
        Err(KeyError::WrongRoot(_))
    ));
    let again = Keyring::open_with(d, env(&"22".repeat(32))).unwrap();
    assert_eq!(
        again.unwrap(Purpose::Vault, &wrapped).unwrap().as_bytes(),
        key.as_bytes()
    );
}

#[test]
fn a_missing_keyring_beside_a_database_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    drop(Keyring::open(dir.path()).unwrap());
    fs::write(
        crate::app::db_path(dir.path()),
        b"SQLite format 3\0 (encrypted)",
    )
    .unwrap();
    let keyring = dir.path().join("keys").join(KEYRING_FILE);
    fs::remove_file(&keyring).unwrap();
    let root_before = fs::read(dir.path().join("keys").join(ROOT_FILE)).unwrap();
    for attempt in [
        Keyring::open(dir.path()),
        Keyring::open_with(dir.path(), root::site_root_file_only(dir.path()).unwrap()),
    ] {
        let Err(err) = attempt else {
            panic!("a missing keyring was not refused")
        };
        let err = err.to_string();
        assert!(
            err.contains("keyring file") && err.contains("is missing"),
            "{err}"
        );
        assert!(!err.contains("another site"), "{err}");
    }
    assert!(!keyring.exists(), "a new keyring was written");
    assert_eq!(
        fs::read(dir.path().join("keys").join(ROOT_FILE)).unwrap(),
        root_before
    );
    // A new site (no database yet, or an empty file) still gets its keyring.
    fs::write(crate::app::db_path(dir.path()), b"").unwrap();
    drop(Keyring::open(dir.path()).unwrap());
    assert!(keyring.exists());
}

/// Found while writing the keyring fuzz target (`fuzz/fuzz_targets/
/// keyring.rs`, docs/fuzzing.md): a retired version numbered 4294967295 (it needs no
/// root key to write) opened, and the next rotation overflowed computing
/// the version after it. Version numbers are checked when the file is read.
#[test]
fn out_of_range_or_repeated_versions_in_the_keyring_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let path = dir.path().join("keys").join(KEYRING_FILE);
    let good = fs::read(&path).unwrap();
    for extra in [
        r#"{"version": 4294967295, "created_at_ms": 0}"#,
        r#"{"version": 0, "created_at_ms": 0}"#,
        r#"{"version": 1, "created_at_ms": 0}"#,
    ] {
        let mut file: serde_json::Value = serde_json::from_slice(&good).unwrap();
        file["purposes"]["recordings"]["versions"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::from_str(extra).unwrap());
        fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        let err = Keyring::open_with(dir.path(), root::site_root_file_only(dir.path()).unwrap())
            .expect_err("refused")
            .to_string();
        assert!(err.contains("out of range or repeated"), "{extra}: {err}");
    }
    // The unaltered file still opens and rotates.
    fs::write(&path, &good).unwrap();
    let ring = open(dir.path());
    assert_eq!(
        ring.rotate(&[Purpose::Recordings]).unwrap(),
        vec![(Purpose::Recordings, 2)]
    );
}

/// A keyring written before the `policy` purpose existed gets version 1 of
/// it when opened (written at once), and every other key is unchanged.
#[test]
fn a_keyring_without_a_later_purpose_gets_it_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let ring = open(dir.path());
    let (key, wrapped) = ring.new_data_key(Purpose::Vault).unwrap();
    drop(ring);
    let path = dir.path().join("keys").join(KEYRING_FILE);
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    file["purposes"].as_object_mut().unwrap().remove("policy");
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();

    let ring = open(dir.path());
    assert_eq!(
        ring.unwrap(Purpose::Vault, &wrapped).unwrap().as_bytes(),
        key.as_bytes()
    );
    let (p, w) = ring.new_data_key(Purpose::Policy).unwrap();
    assert_eq!(ring.current_version(Purpose::Policy), 1);
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(stored["purposes"].get("policy").is_some());
    // Another process opening it later sees the same policy KEK.
    let again = open(dir.path());
    assert_eq!(
        again.unwrap(Purpose::Policy, &w).unwrap().as_bytes(),
        p.as_bytes()
    );
}
