use super::*;

/// A fresh vault on each engine, with a keyring; the temp dirs keep the
/// SQLite file and the keyring alive.
async fn sites(test: &str) -> Vec<(Store, Keyring, [Option<tempfile::TempDir>; 2])> {
    let mut out = Vec::new();
    for (db, lite) in crate::store::tests::engines(test).await {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keyring::open(dir.path()).unwrap();
        out.push((db, keys, [lite, Some(dir)]));
    }
    out
}

type Logged = (String, String, String, String, String);

/// The audit entries so far: (actor, action, target, outcome, detail).
async fn audit_log(db: &Store) -> Vec<Logged> {
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query_as(
        "SELECT actor, action, target, outcome, detail FROM events ORDER BY id"
    )
    .fetch_all(&mut *c)
    .await)
    .unwrap()
}

fn entry(actor: &str, action: &str, target: &str, detail: &str) -> Logged {
    (
        actor.into(),
        action.into(),
        target.into(),
        "ok".into(),
        detail.into(),
    )
}

#[tokio::test]
async fn versions_round_trip_and_deleted_secrets_recover_whole() {
    for (db, keys, _dirs) in sites("vault_round_trip").await {
        let engine = db.engine();
        assert_eq!(
            put(&db, &keys, "db-pass", b"one", "alice").await.unwrap(),
            1
        );
        assert_eq!(put(&db, &keys, "db-pass", b"two", "bob").await.unwrap(), 2);
        assert_eq!(
            &get(&db, &keys, "db-pass", None, "carol").await.unwrap().1[..],
            b"two"
        );
        assert_eq!(
            &get(&db, &keys, "db-pass", Some(1), "carol")
                .await
                .unwrap()
                .1[..],
            b"one"
        );
        assert!(matches!(
            get(&db, &keys, "db-pass", Some(3), "carol").await,
            Err(VaultError::NoVersion { version: 3, .. })
        ));
        let v = versions(&db, "db-pass").await.unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].created_by, "bob");

        let d = delete(&db, "db-pass", 1_000, "alice").await.unwrap();
        assert_eq!(d.purge_after_ms, Some(1_000 + 90 * DAY_MS));
        assert!(list(&db, false).await.unwrap().is_empty());
        assert_eq!(list(&db, true).await.unwrap()[0].name, "db-pass");
        assert!(matches!(
            get(&db, &keys, "db-pass", None, "carol").await,
            Err(VaultError::Deleted(_))
        ));
        assert!(matches!(
            put(&db, &keys, "db-pass", b"x", "a").await,
            Err(VaultError::Deleted(_))
        ));
        recover(&db, "db-pass", "alice").await.unwrap();
        let (version, value) = get(&db, &keys, "db-pass", None, "carol").await.unwrap();
        assert_eq!((version, &value[..]), (2, &b"two"[..]), "{engine}");

        // Each change and each value read has its entry; a refused one
        // none (the HTTP layer records failures); values never appear.
        let until = crate::ids::rfc3339(1_000 + 90 * DAY_MS);
        assert_eq!(
            audit_log(&db).await,
            vec![
                entry("alice", "vault-put", "db-pass", "version=1"),
                entry("bob", "vault-put", "db-pass", "version=2"),
                entry("carol", "vault-read", "db-pass", "version=2"),
                entry("carol", "vault-read", "db-pass", "version=1"),
                entry(
                    "alice",
                    "vault-delete",
                    "db-pass",
                    &format!("recoverable until {until}")
                ),
                entry("alice", "vault-recover", "db-pass", ""),
                entry("carol", "vault-read", "db-pass", "version=2"),
            ],
            "{engine}"
        );
    }
}

#[tokio::test]
async fn purge_protection_holds_until_retention_ends_and_is_irreversible() {
    for (db, keys, _dirs) in sites("vault_purge_protection").await {
        let engine = db.engine();
        assert_eq!(
            fix_retention(&db, Some(Duration::from_secs(7 * 86_400)))
                .await
                .unwrap(),
            7
        );
        assert!(matches!(
            fix_retention(&db, Some(Duration::from_secs(30 * 86_400))).await,
            Err(VaultError::RetentionFixed {
                stored: 7,
                configured: 30
            })
        ));
        assert_eq!(fix_retention(&db, None).await.unwrap(), 7);

        // Without protection, a deleted secret may be purged at once.
        put(&db, &keys, "a", b"1", "t").await.unwrap();
        assert!(matches!(
            purge(&db, "a", 0, "t").await,
            Err(VaultError::NotDeleted(_))
        ));
        delete(&db, "a", 0, "t").await.unwrap();
        purge(&db, "a", 1, "t").await.unwrap();
        assert!(matches!(info(&db, "a").await, Err(VaultError::NotFound(_))));

        assert!(set_purge_protection(&db, true, "admin").await.unwrap());
        assert!(!set_purge_protection(&db, true, "admin").await.unwrap());
        assert!(matches!(
            set_purge_protection(&db, false, "admin").await,
            Err(VaultError::ProtectionIrreversible)
        ));
        assert!(settings(&db).await.unwrap().purge_protection);
        put(&db, &keys, "b", b"2", "t").await.unwrap();
        delete(&db, "b", 0, "t").await.unwrap();
        let err = purge(&db, "b", 7 * DAY_MS - 1, "t").await.unwrap_err();
        assert!(err.to_string().contains("cannot be purged before"), "{err}");
        purge(&db, "b", 7 * DAY_MS, "t").await.unwrap();

        // The gateway purges expired ones itself.
        put(&db, &keys, "c", b"3", "t").await.unwrap();
        delete(&db, "c", 0, "t").await.unwrap();
        expire(&db).await;
        assert!(matches!(info(&db, "c").await, Err(VaultError::NotFound(_))));

        let log = audit_log(&db).await;
        let protection: Vec<_> = log
            .iter()
            .filter(|e| e.1 == "vault-purge-protection")
            .collect();
        assert_eq!(
            protection,
            [&entry("admin", "vault-purge-protection", "site", "enabled")],
            "{engine}: enabled once, audited once"
        );
        let purged: Vec<_> = log.iter().filter(|e| e.1 == "vault-purge").collect();
        assert_eq!(
            purged,
            [
                &entry("t", "vault-purge", "a", ""),
                &entry("t", "vault-purge", "b", ""),
                &entry("(vault retention)", "vault-purge", "c", "retention ended"),
            ],
            "{engine}"
        );
    }
}

#[tokio::test]
async fn names_and_values_are_validated() {
    for (db, keys, _dirs) in sites("vault_validated").await {
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(129)] {
            assert!(
                matches!(
                    put(&db, &keys, bad, b"v", "t").await,
                    Err(VaultError::InvalidName(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            put(&db, &keys, "ok", b"", "t").await,
            Err(VaultError::Empty)
        ));
        assert!(matches!(
            put(&db, &keys, "ok", &vec![0; MAX_VALUE + 1], "t").await,
            Err(VaultError::TooLarge)
        ));
        assert!(audit_log(&db).await.is_empty());
    }
}

/// A ciphertext moved to another secret does not decrypt (bound by AAD).
#[tokio::test]
async fn swapped_ciphertexts_are_refused() {
    for (db, keys, _dirs) in sites("vault_swapped").await {
        put(&db, &keys, "a", b"alpha", "t").await.unwrap();
        put(&db, &keys, "b", b"beta", "t").await.unwrap();
        db.execute_unchecked("UPDATE vault_versions SET (wrapped_key, nonce, ciphertext) = (SELECT wrapped_key, nonce, ciphertext FROM vault_versions WHERE name = 'a') WHERE name = 'b'")
            .await
            .unwrap();
        assert!(matches!(
            get(&db, &keys, "b", None, "t").await,
            Err(VaultError::Corrupt)
        ));
    }
}

/// The vault answers for its wrapped keys (`keys::stored`): counted per
/// KEK version, listed after a cursor in key order, replaced only if
/// unchanged.
#[tokio::test]
async fn stored_keys_page_by_cursor_and_replace_only_unchanged_keys() {
    use crate::keys::stored::WrappedKeys as _;
    for (db, keys, _dirs) in sites("vault_stored_keys").await {
        let engine = db.engine();
        for name in ["b", "a", "a10"] {
            for i in 0..2 {
                put(&db, &keys, name, format!("{name}{i}").as_bytes(), "t")
                    .await
                    .unwrap();
            }
        }
        let mut c = db.conn().await.unwrap();
        let counts = StoredKeys.count_by_version(&mut c, &[1, 2]).await.unwrap();
        assert_eq!(counts, BTreeMap::from([(Some(1), 6)]), "{engine}");
        // Pages of 4 from the start, then after the last id seen.
        let first = StoredKeys.stale_after(&mut c, 2, "", 4).await.unwrap();
        let ids: Vec<_> = first.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["a/1", "a/2", "a10/1", "a10/2"], "{engine}");
        let rest = StoredKeys
            .stale_after(&mut c, 2, &first[3].id, 4)
            .await
            .unwrap();
        let ids: Vec<_> = rest.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["b/1", "b/2"], "{engine}");
        assert!(
            StoredKeys
                .stale_after(&mut c, 1, "", 4)
                .await
                .unwrap()
                .is_empty()
        );

        let k = &first[0];
        assert_eq!(k.version, Some(1));
        let other = keys.new_data_key(Purpose::Vault).unwrap().1;
        // Not the stored key any more: nothing replaced.
        assert!(
            !StoredKeys
                .replace(&mut c, &k.id, &other, &other)
                .await
                .unwrap()
        );
        let plain = keys.unwrap(Purpose::Vault, &k.wrapped).unwrap();
        let fresh = keys.wrap(Purpose::Vault, &plain).unwrap();
        assert!(
            StoredKeys
                .replace(&mut c, &k.id, &k.wrapped, &fresh)
                .await
                .unwrap()
        );
        drop(c);
        assert_eq!(
            &get(&db, &keys, "a", Some(1), "t").await.unwrap().1[..],
            b"a0"
        );
    }
}
