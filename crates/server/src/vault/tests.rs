use super::*;

async fn site() -> (tempfile::TempDir, SqlitePool, Keyring) {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keyring::open(dir.path()).unwrap();
    let db = crate::store::open(&dir.path().join("v.db")).await.unwrap();
    (dir, db, keys)
}

#[tokio::test]
async fn versions_round_trip_and_deleted_secrets_recover_whole() {
    let (_dir, db, keys) = site().await;
    assert_eq!(
        put(&db, &keys, "db-pass", b"one", "alice").await.unwrap(),
        1
    );
    assert_eq!(put(&db, &keys, "db-pass", b"two", "bob").await.unwrap(), 2);
    assert_eq!(
        &get(&db, &keys, "db-pass", None).await.unwrap().1[..],
        b"two"
    );
    assert_eq!(
        &get(&db, &keys, "db-pass", Some(1)).await.unwrap().1[..],
        b"one"
    );
    assert!(matches!(
        get(&db, &keys, "db-pass", Some(3)).await,
        Err(VaultError::NoVersion { version: 3, .. })
    ));
    let v = versions(&db, "db-pass").await.unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[1].created_by, "bob");

    let d = delete(&db, "db-pass", 1_000).await.unwrap();
    assert_eq!(d.purge_after_ms, Some(1_000 + 90 * DAY_MS));
    assert!(list(&db, false).await.unwrap().is_empty());
    assert_eq!(list(&db, true).await.unwrap()[0].name, "db-pass");
    assert!(matches!(
        get(&db, &keys, "db-pass", None).await,
        Err(VaultError::Deleted(_))
    ));
    assert!(matches!(
        put(&db, &keys, "db-pass", b"x", "a").await,
        Err(VaultError::Deleted(_))
    ));
    recover(&db, "db-pass").await.unwrap();
    let (version, value) = get(&db, &keys, "db-pass", None).await.unwrap();
    assert_eq!((version, &value[..]), (2, &b"two"[..]));
}

#[tokio::test]
async fn purge_protection_holds_until_retention_ends_and_is_irreversible() {
    let (_dir, db, keys) = site().await;
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
        purge(&db, "a", 0).await,
        Err(VaultError::NotDeleted(_))
    ));
    delete(&db, "a", 0).await.unwrap();
    purge(&db, "a", 1).await.unwrap();
    assert!(matches!(info(&db, "a").await, Err(VaultError::NotFound(_))));

    assert!(set_purge_protection(&db, true).await.unwrap());
    assert!(matches!(
        set_purge_protection(&db, false).await,
        Err(VaultError::ProtectionIrreversible)
    ));
    put(&db, &keys, "b", b"2", "t").await.unwrap();
    delete(&db, "b", 0).await.unwrap();
    let err = purge(&db, "b", 7 * DAY_MS - 1).await.unwrap_err();
    assert!(err.to_string().contains("cannot be purged before"), "{err}");
    purge(&db, "b", 7 * DAY_MS).await.unwrap();

    // The gateway purges expired ones itself.
    put(&db, &keys, "c", b"3", "t").await.unwrap();
    delete(&db, "c", 0).await.unwrap();
    expire(&db).await;
    assert!(matches!(info(&db, "c").await, Err(VaultError::NotFound(_))));
}

#[tokio::test]
async fn names_and_values_are_validated() {
    let (_dir, db, keys) = site().await;
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
}

/// A ciphertext moved to another secret does not decrypt (bound by AAD).
#[tokio::test]
async fn swapped_ciphertexts_are_refused() {
    let (_dir, db, keys) = site().await;
    put(&db, &keys, "a", b"alpha", "t").await.unwrap();
    put(&db, &keys, "b", b"beta", "t").await.unwrap();
    sqlx::query("UPDATE vault_versions SET (wrapped_key, nonce, ciphertext) = (SELECT wrapped_key, nonce, ciphertext FROM vault_versions WHERE name = 'a') WHERE name = 'b'")
        .execute(&db)
        .await
        .unwrap();
    assert!(matches!(
        get(&db, &keys, "b", None).await,
        Err(VaultError::Corrupt)
    ));
}
