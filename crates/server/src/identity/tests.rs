use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use jumpgate_api_types as api;

use super::lockout::RateLimiter;
use super::mfa::TotpSecret;
use super::second_factor::unix_secs;
use super::*;
use crate::ids;
use crate::keys::{Keyring, Purpose};
use crate::rbac::{self, Restriction};
use crate::store::{AuditAction, AuditEvent, Store, sql};

const PW: &str = "correct horse battery";

/// A site on one engine: its store and keyring.
struct Site {
    db: Store,
    keys: Keyring,
    _dirs: (Option<tempfile::TempDir>, tempfile::TempDir),
}

/// One fresh site per available engine (SQLite always, PostgreSQL when
/// `JUMPGATE_TEST_POSTGRES` is set).
async fn sites(test: &str) -> Vec<Site> {
    let mut out = Vec::new();
    for (db, dir) in crate::store::tests::engines(test).await {
        let kdir = tempfile::tempdir().unwrap();
        let keys = Keyring::open(kdir.path()).unwrap();
        out.push(Site {
            db,
            keys,
            _dirs: (dir, kdir),
        });
    }
    out
}

fn audit() -> AuditEvent {
    AuditEvent::new("test", AuditAction::UserUpdate, "test")
}

async fn user(db: &Store, name: &str, role: &str) -> UserRecord {
    create_user(
        db,
        &NewUser {
            username: name,
            password: PW,
            role,
            groups: &["*".to_owned()],
            email: None,
        },
        audit(),
    )
    .await
    .unwrap();
    get_user(db, name).await.unwrap()
}

fn limiter() -> RateLimiter {
    RateLimiter::new(1000, 1000)
}

async fn try_login(
    s: &Site,
    name: &str,
    pw: &str,
    code: Option<&str>,
) -> Result<LoginSession, IdentityError> {
    let a = Attempt {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        username: name,
        password: pw,
        second_factor: code,
    };
    login(&s.db, &s.keys, &limiter(), &a, Duration::from_secs(60)).await
}

/// Asserts that a login succeeded for `name` with a token that authenticates
/// as that user (more than `is_ok()`: the session is the right one).
async fn assert_logged_in(
    db: &Store,
    r: Result<LoginSession, IdentityError>,
    name: &str,
) -> LoginSession {
    let s = r.unwrap_or_else(|e| panic!("{} {name}: login failed: {e}", db.engine()));
    assert_eq!(s.user.username, name);
    let subject = authenticate(db, &s.token).await.unwrap();
    assert_eq!(subject.name, name);
    s
}

/// Runs one statement with binds through the store (for tests that play
/// with the database directly).
async fn raw_blob(db: &Store, column: &str, user: &str) -> Option<Vec<u8>> {
    let q = if column == "totp_secret" {
        "SELECT totp_secret FROM users WHERE username = $1"
    } else {
        "SELECT totp_pending FROM users WHERE username = $1"
    };
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query_scalar(q)
        .bind(user)
        .fetch_one(&mut *c)
        .await)
    .unwrap()
}

#[tokio::test]
async fn login_authenticate_logout() {
    for s in sites("identity_login").await {
        let db = &s.db;
        user(db, "alice", "admin").await;
        let l = try_login(&s, "alice", PW, None).await.unwrap();
        assert_eq!(l.restriction, Restriction::None);
        let subject = authenticate(db, &l.token).await.unwrap();
        assert_eq!(
            (subject.name.as_str(), subject.role.as_str()),
            ("alice", "admin")
        );
        assert!(subject.has(rbac::Permission::ManageUsers));
        logout(db, &l.token).await.unwrap();
        assert!(matches!(
            authenticate(db, &l.token).await,
            Err(IdentityError::Unauthenticated)
        ));
    }
}

#[tokio::test]
async fn wrong_password_unknown_user_and_locked_account_fail_alike() {
    for s in sites("identity_fail_alike").await {
        let db = &s.db;
        user(db, "bob", "technician").await;
        let wrong = try_login(&s, "bob", "wrong password!!", None)
            .await
            .err()
            .unwrap()
            .to_string();
        let unknown = try_login(&s, "nobody", PW, None)
            .await
            .err()
            .unwrap()
            .to_string();
        assert_eq!(wrong, unknown);
        // Lock the account (default threshold 5): even the right password
        // fails, with the same message.
        for _ in 0..5 {
            assert!(matches!(
                try_login(&s, "bob", "wrong password!!", None).await,
                Err(IdentityError::InvalidCredentials)
            ));
        }
        let locked = try_login(&s, "bob", PW, None)
            .await
            .err()
            .unwrap()
            .to_string();
        assert_eq!(locked, wrong);
        assert!(
            get_user(db, "bob")
                .await
                .unwrap()
                .to_api()
                .locked_until
                .is_some()
        );
        // One lockout entry, written by the failure that locked it; the
        // attempt while locked is recorded too.
        let mut c = db.conn().await.unwrap();
        let entries: Vec<(String, String, String)> = sql!(c, |c| sqlx::query_as(
            "SELECT action, outcome, detail FROM events WHERE actor = 'bob' ORDER BY id"
        )
        .fetch_all(&mut *c)
        .await)
        .unwrap();
        let lockouts = entries.iter().filter(|e| e.0 == "lockout").count();
        assert_eq!(lockouts, 1, "{} {entries:?}", db.engine());
        assert_eq!(
            entries.last().map(|e| (e.1.as_str(), e.2.as_str())),
            Some(("failed", "account locked")),
            "{entries:?}"
        );
        // An administrator unlocks it.
        unlock(db, &get_user(db, "bob").await.unwrap().id, audit())
            .await
            .unwrap();
        assert_logged_in(db, try_login(&s, "bob", PW, None).await, "bob").await;
    }
}

#[tokio::test]
async fn the_source_address_is_rate_limited() {
    for s in sites("identity_rate_limit").await {
        let db = &s.db;
        user(db, "carl", "technician").await;
        let tight = RateLimiter::new(2, 1);
        let a = Attempt {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            username: "carl",
            password: PW,
            second_factor: None,
        };
        for _ in 0..2 {
            let r = login(db, &s.keys, &tight, &a, Duration::from_secs(60)).await;
            assert_logged_in(db, r, "carl").await;
        }
        assert!(matches!(
            login(db, &s.keys, &tight, &a, Duration::from_secs(60)).await,
            Err(IdentityError::RateLimited(_))
        ));
    }
}

#[tokio::test]
async fn totp_login_with_replay_protection_and_one_time_recovery_codes() {
    for s in sites("identity_totp").await {
        let db = &s.db;
        let u = user(db, "dana", "admin").await;
        assert!(matches!(
            confirm_totp(db, &s.keys, &u, "123456", audit()).await,
            Err(IdentityError::Invalid(_))
        ));
        let secret = begin_totp(db, &s.keys, &u).await.unwrap();
        let u = get_user(db, "dana").await.unwrap();
        let far = mfa::code_at(&secret, unix_secs() + 10 * mfa::STEP_SECS);
        assert!(matches!(
            confirm_totp(db, &s.keys, &u, &far, audit()).await,
            Err(IdentityError::WrongCode)
        ));
        // Confirm with the code of the previous step, so the login below
        // uses a fresh one (the confirm step is spent).
        let earlier = mfa::code_at(&secret, unix_secs() - mfa::STEP_SECS);
        let codes = confirm_totp(db, &s.keys, &u, &earlier, audit())
            .await
            .unwrap();
        assert_eq!(codes.len(), mfa::RECOVERY_CODES);

        assert!(matches!(
            try_login(&s, "dana", PW, None).await,
            Err(IdentityError::MfaRequired)
        ));
        let now_code = mfa::code_at(&secret, unix_secs());
        let r = try_login(&s, "dana", PW, Some(&now_code)).await;
        assert_logged_in(db, r, "dana").await;
        // The same code again is a replay.
        assert!(matches!(
            try_login(&s, "dana", PW, Some(&now_code)).await,
            Err(IdentityError::MfaRequired)
        ));
        // A recovery code works once, and its use is audited.
        let r = try_login(&s, "dana", PW, Some(&codes[0].to_lowercase())).await;
        assert_logged_in(db, r, "dana").await;
        assert!(matches!(
            try_login(&s, "dana", PW, Some(&codes[0])).await,
            Err(IdentityError::MfaRequired)
        ));
        let mut c = db.conn().await.unwrap();
        let used: i64 = sql!(c, |c| {
            sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE action = 'mfa' AND outcome = 'recovery-code-used'"
        )
        .fetch_one(&mut *c)
        .await
        })
        .unwrap();
        assert_eq!(used, 1, "{}", db.engine());
        // Wrong password with a valid code still fails.
        assert!(matches!(
            try_login(&s, "dana", "wrong password!!", Some(&codes[1])).await,
            Err(IdentityError::InvalidCredentials)
        ));
    }
}

/// A PostgreSQL operator (or anyone with the database but not the keys)
/// reads no TOTP secret: the columns hold sealed blobs, bound to their user.
#[tokio::test]
async fn totp_secrets_are_not_stored_in_plain() {
    for s in sites("identity_totp_sealed").await {
        let db = &s.db;
        let u = user(db, "olga", "admin").await;
        user(db, "pete", "admin").await;
        let secret = begin_totp(db, &s.keys, &u).await.unwrap();
        let pending = raw_blob(db, "totp_pending", "olga").await.unwrap();
        let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        // Positive control: the check finds the secret where it is.
        assert!(contains(secret.as_bytes(), secret.as_bytes()));
        assert!(!contains(&pending, secret.as_bytes()), "{}", db.engine());
        assert!(!contains(&pending, secret.base32().as_bytes()));
        assert!(pending.starts_with(b"jgtotp1\0"), "{}", db.engine());
        let u = get_user(db, "olga").await.unwrap();
        let code = mfa::code_at(&secret, unix_secs() - mfa::STEP_SECS);
        confirm_totp(db, &s.keys, &u, &code, audit()).await.unwrap();
        let active = raw_blob(db, "totp_secret", "olga").await.unwrap();
        assert!(!contains(&active, secret.as_bytes()), "{}", db.engine());
        assert!(raw_blob(db, "totp_pending", "olga").await.is_none());
        // Another keyring (another site's keys) does not open it.
        let kdir = tempfile::tempdir().unwrap();
        let other = Keyring::open(kdir.path()).unwrap();
        let now_code = mfa::code_at(&secret, unix_secs());
        assert!(matches!(
            try_login(
                &Site {
                    db: db.clone(),
                    keys: other,
                    _dirs: (None, kdir)
                },
                "olga",
                PW,
                Some(&now_code)
            )
            .await,
            Err(IdentityError::Keys(_))
        ));
        // Moved to another user, the blob does not open either.
        let mut c = db.conn().await.unwrap();
        sql!(c, |c| sqlx::query(
            "UPDATE users SET totp_secret = $1 WHERE username = 'pete'"
        )
        .bind(&active)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        assert!(matches!(
            try_login(&s, "pete", PW, Some(&now_code)).await,
            Err(IdentityError::Keys(_))
        ));
        // The owner logs in with it.
        let r = try_login(&s, "olga", PW, Some(&now_code)).await;
        assert_logged_in(db, r, "olga").await;
    }
}

/// Secrets stored in the clear by earlier versions keep working, are
/// sealed by `reseal_totp_secrets` (the gateway's start), and a vault KEK
/// rotation re-wraps them so the old version can be retired.
#[tokio::test]
async fn plain_totp_secrets_are_sealed_and_rotations_rewrap_them() {
    for s in sites("identity_totp_reseal").await {
        let db = &s.db;
        user(db, "quin", "admin").await;
        let secret = TotpSecret::generate();
        let mut c = db.conn().await.unwrap();
        sql!(c, |c| sqlx::query(
            "UPDATE users SET totp_secret = $1 WHERE username = 'quin'"
        )
        .bind(secret.as_bytes())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        drop(c);
        // Codes are made when used (a loaded machine may take a step's
        // time between two logins).
        let earlier = mfa::code_at(&secret, unix_secs() - mfa::STEP_SECS);
        let r = try_login(&s, "quin", PW, Some(&earlier)).await;
        assert_logged_in(db, r, "quin").await;
        assert_eq!(
            totp_key_versions(db)
                .await
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![(0, 1)]
        );
        assert_eq!(reseal_totp_secrets(db, &s.keys).await.unwrap(), 1);
        assert_eq!(reseal_totp_secrets(db, &s.keys).await.unwrap(), 0);
        let sealed = raw_blob(db, "totp_secret", "quin").await.unwrap();
        assert!(sealed.starts_with(b"jgtotp1\0"));
        let v1 = s.keys.current_version(Purpose::Vault);
        assert_eq!(
            totp_key_versions(db)
                .await
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![(v1, 1)]
        );
        // Rotation: the secret is re-wrapped under the new version, and
        // the old one retired; the secret still opens.
        s.keys.rotate(&[Purpose::Vault]).unwrap();
        let v2 = s.keys.current_version(Purpose::Vault);
        assert_ne!(v1, v2);
        assert_eq!(reseal_totp_secrets(db, &s.keys).await.unwrap(), 1);
        assert_eq!(
            totp_key_versions(db)
                .await
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![(v2, 1)]
        );
        assert!(s.keys.retire(Purpose::Vault, v1).unwrap());
        let r = try_login(&s, "quin", PW, Some(&mfa::code_at(&secret, unix_secs()))).await;
        assert_logged_in(db, r, "quin").await;
    }
}

/// The key sweep re-wraps sealed TOTP secrets (`TotpKeys` in the
/// registry) and retires the old vault KEK only then; the secret opens.
#[tokio::test]
async fn the_key_sweep_rewraps_totp_secrets() {
    use crate::keys::sweep;
    for s in sites("identity_totp_sweep").await {
        let db = &s.db;
        user(db, "quin", "admin").await;
        let secret = TotpSecret::generate();
        let mut c = db.conn().await.unwrap();
        sql!(c, |c| sqlx::query(
            "UPDATE users SET totp_secret = $1 WHERE username = 'quin'"
        )
        .bind(secret.as_bytes())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        drop(c);
        assert_eq!(reseal_totp_secrets(db, &s.keys).await.unwrap(), 1);
        let v1 = s.keys.current_version(Purpose::Vault);
        sweep::rotate(db, &s.keys, &[Purpose::Vault], "t")
            .await
            .unwrap();
        let v2 = s.keys.current_version(Purpose::Vault);
        let st = sweep::status(db, &s.keys).await.unwrap();
        assert!(
            st.to_string()
                .contains("identity (TOTP) 1 stored, 1 pending"),
            "{st}"
        );
        let n = sweep::sweep_all(
            db,
            &s.keys,
            sweep::Pace {
                batch: 10,
                pause: std::time::Duration::ZERO,
            },
            &tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            totp_key_versions(db)
                .await
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![(v2, 1)]
        );
        assert!(
            s.keys.old_live_versions(Purpose::Vault).is_empty(),
            "v{v1} retired"
        );
        let r = try_login(&s, "quin", PW, Some(&mfa::code_at(&secret, unix_secs()))).await;
        assert_logged_in(db, r, "quin").await;
    }
}

#[tokio::test]
async fn mfa_required_roles_get_a_restricted_session_until_enrolled() {
    for s in sites("identity_mfa_required").await {
        let db = &s.db;
        let u = user(db, "erin", "technician").await;
        let before = try_login(&s, "erin", PW, None).await.unwrap();
        assert_eq!(
            authenticate(db, &before.token).await.unwrap().restriction,
            Restriction::None
        );
        let mut set = settings::load(db).await.unwrap();
        set.mfa_required_roles = vec!["technician".into()];
        settings::save(db, &set, audit()).await.unwrap();
        // The new policy applies to the session opened before it, too.
        assert_eq!(
            authenticate(db, &before.token).await.unwrap().restriction,
            Restriction::MfaEnrollment
        );
        let login1 = try_login(&s, "erin", PW, None).await.unwrap();
        assert_eq!(login1.restriction, Restriction::MfaEnrollment);
        let subject = authenticate(db, &login1.token).await.unwrap();
        assert_eq!(subject.restriction, Restriction::MfaEnrollment);
        // Enrolling lifts the restriction on the live session.
        let secret = begin_totp(db, &s.keys, &u).await.unwrap();
        let u = get_user(db, "erin").await.unwrap();
        confirm_totp(
            db,
            &s.keys,
            &u,
            &mfa::code_at(&secret, unix_secs()),
            audit(),
        )
        .await
        .unwrap();
        assert_eq!(
            authenticate(db, &login1.token).await.unwrap().restriction,
            Restriction::None
        );
    }
}

#[tokio::test]
async fn expired_passwords_restrict_the_session_to_changing_it() {
    for s in sites("identity_expired_pw").await {
        let db = &s.db;
        user(db, "fred", "technician").await;
        let mut set = settings::load(db).await.unwrap();
        set.password.max_age_days = Some(1);
        settings::save(db, &set, audit()).await.unwrap();
        let mut c = db.conn().await.unwrap();
        sql!(c, |c| sqlx::query(
            "UPDATE users SET password_changed_at = $1 WHERE username = 'fred'"
        )
        .bind(ids::now_ms() - 2 * 86_400_000)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        drop(c);
        let l = try_login(&s, "fred", PW, None).await.unwrap();
        assert_eq!(l.restriction, Restriction::PasswordChange);
        let u = get_user(db, "fred").await.unwrap();
        set_password(db, &u, "a brand new passphrase", audit())
            .await
            .unwrap();
        // Changing the password ended every session, the restricted one too.
        assert!(matches!(
            authenticate(db, &l.token).await,
            Err(IdentityError::Unauthenticated)
        ));
        assert_eq!(
            try_login(&s, "fred", "a brand new passphrase", None)
                .await
                .unwrap()
                .restriction,
            Restriction::None
        );
    }
}

#[tokio::test]
async fn password_policy_names_every_broken_rule_and_history_blocks_reuse() {
    for s in sites("identity_pw_policy").await {
        let db = &s.db;
        let err = create_user(
            db,
            &NewUser {
                username: "gina",
                password: "password",
                role: "technician",
                groups: &[],
                email: None,
            },
            audit(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("shorter than 12"), "{err}");
        assert!(err.contains("commonly used"), "{err}");
        let u = user(db, "gina", "technician").await;
        let err = set_password(db, &u, PW, audit())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("used recently"), "{err}");
        set_password(db, &u, "another long passphrase", audit())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn bad_input_is_refused_clearly() {
    for s in sites("identity_bad_input").await {
        let db = &s.db;
        let new = |name: &'static str,
                   role: &'static str,
                   groups: &'static [String],
                   email: Option<&'static str>| NewUser {
            username: name,
            password: PW,
            role,
            groups,
            email,
        };
        assert!(matches!(
            create_user(db, &new("bad name", "admin", &[], None), audit()).await,
            Err(IdentityError::InvalidName(_))
        ));
        assert!(matches!(
            create_user(db, &new("h", "root", &[], None), audit()).await,
            Err(IdentityError::UnknownRole(_))
        ));
        static NOPE: [String; 1] = [String::new()];
        let err = create_user(db, &new("h", "admin", &NOPE, None), audit())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unknown group"), "{err}");
        let err = create_user(db, &new("h", "admin", &[], Some("not-an-email")), audit())
            .await
            .unwrap_err();
        assert!(matches!(err, IdentityError::Invalid(_)), "{err}");
        user(db, "hank", "admin").await;
        assert!(matches!(
            create_user(db, &new("hank", "admin", &[], None), audit()).await,
            Err(IdentityError::UserExists(_))
        ));
        // The last admin cannot be demoted or deleted.
        assert!(matches!(
            delete_user(db, "hank", audit()).await,
            Err(IdentityError::Conflict(_))
        ));
        let demote = api::UpdateUser {
            role: Some("auditor".into()),
            ..Default::default()
        };
        assert!(matches!(
            update_user(db, "hank", &demote, "test").await,
            Err(IdentityError::Conflict(_))
        ));
    }
}

#[tokio::test]
async fn users_are_updated_and_deleted_with_their_audit_entries() {
    for s in sites("identity_update_delete").await {
        let db = &s.db;
        user(db, "una", "admin").await;
        user(db, "vic", "technician").await;
        let change = api::UpdateUser {
            role: Some("auditor".into()),
            groups: Some(vec!["default".into()]),
            email: Some("vic@example.com".into()),
        };
        let v = update_user(db, "vic", &change, "una").await.unwrap();
        assert_eq!(
            (v.role.as_str(), v.groups.clone(), v.email.as_deref()),
            (
                "auditor",
                vec!["default".to_owned()],
                Some("vic@example.com")
            )
        );
        // An empty email clears it; absent fields stay.
        let clear = api::UpdateUser {
            email: Some(String::new()),
            ..Default::default()
        };
        let v = update_user(db, "vic", &clear, "una").await.unwrap();
        assert_eq!((v.role.as_str(), v.email), ("auditor", None));
        let l = try_login(&s, "vic", PW, None).await.unwrap();
        assert_eq!(
            revoke_sessions(
                db,
                &v.id,
                AuditEvent::new("una", AuditAction::SessionsRevoke, "vic")
            )
            .await
            .unwrap(),
            1
        );
        assert!(authenticate(db, &l.token).await.is_err());
        delete_user(
            db,
            "vic",
            AuditEvent::new("una", AuditAction::UserDelete, "vic"),
        )
        .await
        .unwrap();
        assert!(matches!(
            get_user(db, "vic").await,
            Err(IdentityError::UnknownUser(_))
        ));
        let mut c = db.conn().await.unwrap();
        let entries: Vec<(String, String, String)> = sql!(c, |c| sqlx::query_as(
            "SELECT actor, action, detail FROM events WHERE target = 'vic' ORDER BY id"
        )
        .fetch_all(&mut *c)
        .await)
        .unwrap();
        let actions: Vec<&str> = entries.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(
            actions,
            [
                "user-update",
                "user-update",
                "login",
                "sessions-revoke",
                "user-delete"
            ],
            "{} {entries:?}",
            db.engine()
        );
        assert_eq!(entries[0].2, "role=auditor groups=default");
        assert_eq!(entries[3].2, "1 session(s)");
    }
}

#[tokio::test]
async fn admins_without_groups_get_all_groups() {
    for s in sites("identity_admin_groups").await {
        let db = &s.db;
        create_user(
            db,
            &NewUser {
                username: "ivy",
                password: PW,
                role: "admin",
                groups: &[],
                email: Some("ivy@example.com"),
            },
            audit(),
        )
        .await
        .unwrap();
        let u = get_user(db, "ivy").await.unwrap();
        assert_eq!(u.groups, vec!["*".to_owned()]);
        assert_eq!(u.email.as_deref(), Some("ivy@example.com"));
    }
}

#[tokio::test]
async fn nothing_is_acknowledged_when_the_audit_log_cannot_be_written() {
    for s in sites("identity_no_audit_no_login").await {
        let db = &s.db;
        user(db, "kim", "admin").await;
        // The audit write fails (as with a full disk): the login must not
        // succeed.
        db.execute_unchecked("ALTER TABLE events RENAME TO events_gone")
            .await
            .unwrap();
        let err = try_login(&s, "kim", PW, None).await.err().unwrap();
        assert!(matches!(err, IdentityError::Db(_)), "{err}");
        let mut c = db.conn().await.unwrap();
        let tokens: i64 = sql!(c, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM auth_tokens"
        )
        .fetch_one(&mut *c)
        .await)
        .unwrap();
        drop(c);
        assert_eq!(tokens, 0, "no session may exist without its audit entry");
        db.execute_unchecked("ALTER TABLE events_gone RENAME TO events")
            .await
            .unwrap();
        assert_logged_in(db, try_login(&s, "kim", PW, None).await, "kim").await;
    }
}

#[tokio::test]
async fn a_user_change_whose_audit_entry_fails_does_not_happen() {
    for s in sites("identity_no_audit_no_change").await {
        let db = &s.db;
        user(db, "lee", "admin").await;
        db.execute_unchecked("ALTER TABLE events RENAME TO events_gone")
            .await
            .unwrap();
        let ivy = NewUser {
            username: "ivy",
            password: PW,
            role: "technician",
            groups: &[],
            email: None,
        };
        let made = create_user(db, &ivy, audit()).await;
        assert!(matches!(made, Err(IdentityError::Db(_))), "{made:?}");
        assert!(matches!(
            get_user(db, "ivy").await,
            Err(IdentityError::UnknownUser(_))
        ));
        let lee = get_user(db, "lee").await.unwrap();
        let pw = set_password(db, &lee, "an entirely new passphrase", audit()).await;
        assert!(matches!(pw, Err(IdentityError::Db(_))), "{pw:?}");
        assert!(delete_user(db, "lee", audit()).await.is_err());
        db.execute_unchecked("ALTER TABLE events_gone RENAME TO events")
            .await
            .unwrap();
        // Neither the new password nor the deletion happened.
        assert_logged_in(db, try_login(&s, "lee", PW, None).await, "lee").await;
    }
}

#[tokio::test]
async fn user_names_are_unique_ignoring_case_and_log_in_in_any_case() {
    for s in sites("identity_names_nocase").await {
        let db = &s.db;
        user(db, "alice", "technician").await;
        let new = |name: &'static str| NewUser {
            username: name,
            password: PW,
            role: "technician",
            groups: &[],
            email: None,
        };
        let err = create_user(db, &new("Alice"), audit()).await.unwrap_err();
        assert!(
            matches!(&err, IdentityError::UserExists(n) if n == "alice"),
            "{err}"
        );
        assert!(err.to_string().contains("not case-sensitive"), "{err}");
        // The database refuses it too, whatever the code path.
        let raw = db
            .execute_unchecked("INSERT INTO users (id, username, password_hash, role, created_at) VALUES ('x', 'ALICE', 'h', 'technician', 0)")
            .await;
        assert!(raw.is_err(), "{raw:?}");
        let l = try_login(&s, "ALICE", PW, None).await.unwrap();
        assert_eq!(l.user.username, "alice");
        assert_eq!(get_user(db, "Alice").await.unwrap().username, "alice");
    }
}

#[tokio::test]
async fn errors_about_bad_input_do_not_repeat_it_whole() {
    for s in sites("identity_bounded_errors").await {
        let db = &s.db;
        let huge = "x".repeat(5000);
        let groups = [huge.clone()];
        for u in [
            NewUser {
                username: &huge,
                password: PW,
                role: "technician",
                groups: &[],
                email: None,
            },
            NewUser {
                username: "ok-name",
                password: PW,
                role: &huge,
                groups: &[],
                email: None,
            },
            NewUser {
                username: "ok-name",
                password: PW,
                role: "technician",
                groups: &groups,
                email: None,
            },
            NewUser {
                username: "ok-name",
                password: PW,
                role: "technician",
                groups: &[],
                email: Some(&huge),
            },
        ] {
            let err = create_user(db, &u, audit()).await.unwrap_err().to_string();
            assert!(err.len() < 300 && err.contains("5000 characters"), "{err}");
        }
    }
}

#[tokio::test]
async fn reserved_and_role_named_user_names_are_refused() {
    for s in sites("identity_reserved_names").await {
        let db = &s.db;
        user(db, "chief", "admin").await;
        let new = |name: &'static str, role: &'static str| NewUser {
            username: name,
            password: PW,
            role,
            groups: &[],
            email: None,
        };
        for (name, role) in [
            ("root", "admin"),
            ("Jumpgate", "admin"),
            ("system", "technician"),
            ("gateway", "auditor"),
            ("admin", "technician"),
            ("Auditor", "technician"),
        ] {
            let err = create_user(db, &new(name, role), audit())
                .await
                .unwrap_err();
            assert!(
                matches!(err, IdentityError::InvalidName(_)),
                "{name}: {err}"
            );
        }
        // The e2e tests' `admin` holds the admin role: allowed, and it may
        // not be moved to another role while it bears the name.
        create_user(db, &new("admin", "admin"), audit())
            .await
            .unwrap();
        create_user(db, &new("technician", "technician"), audit())
            .await
            .unwrap();
        let demote = api::UpdateUser {
            role: Some("technician".into()),
            groups: None,
            email: None,
        };
        let err = update_user(db, "admin", &demote, "chief")
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("must hold the `admin` role"),
            "{err}"
        );
        // Nor may a role take a user's name, or differ from one only in case.
        let mut w = db.write().await.unwrap();
        let role = |name: &str| api::CreateRole {
            name: name.into(),
            description: String::new(),
            permissions: vec!["view".into()],
        };
        let err = rbac::store::create(&mut w, &role("Chief"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("a user is named `chief`"), "{err}");
        let err = rbac::store::create(&mut w, &role("ADMIN"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, rbac::store::RoleError::Exists(ref n) if n == "admin"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn roles_are_created_changed_and_deleted_under_their_rules() {
    for s in sites("identity_roles").await {
        let db = &s.db;
        let mut w = db.write().await.unwrap();
        let made = rbac::store::create(
            &mut w,
            &api::CreateRole {
                name: "night-shift".into(),
                description: "after hours".into(),
                permissions: vec!["view".into(), "shell".into()],
            },
        )
        .await
        .unwrap();
        assert!(!made.builtin);
        let changed = rbac::store::update(
            &mut w,
            "night-shift",
            &api::UpdateRole {
                description: None,
                permissions: Some(vec!["view".into()]),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (changed.description.as_str(), changed.permissions.clone()),
            ("after hours", vec!["view".to_owned()])
        );
        assert!(matches!(
            rbac::store::delete(&mut w, "admin").await,
            Err(rbac::store::RoleError::Builtin(_))
        ));
        w.commit().await.unwrap();
        user(db, "walt", "night-shift").await;
        let perms = rbac::role_permissions(db, "night-shift")
            .await
            .unwrap()
            .unwrap();
        assert!(perms.contains(&rbac::Permission::View) && perms.len() == 1);
        let mut w = db.write().await.unwrap();
        assert!(matches!(
            rbac::store::delete(&mut w, "night-shift").await,
            Err(rbac::store::RoleError::InUse(_, 1))
        ));
        drop(w);
        delete_user(db, "walt", audit()).await.unwrap();
        let mut set = settings::load(db).await.unwrap();
        set.mfa_required_roles = vec!["night-shift".into()];
        settings::save(db, &set, audit()).await.unwrap();
        let mut w = db.write().await.unwrap();
        assert!(matches!(
            rbac::store::delete(&mut w, "night-shift").await,
            Err(rbac::store::RoleError::InPolicy(_))
        ));
        drop(w);
        settings::save(db, &settings::SecuritySettings::default(), audit())
            .await
            .unwrap();
        let mut w = db.write().await.unwrap();
        rbac::store::delete(&mut w, "night-shift").await.unwrap();
        w.commit().await.unwrap();
        let names: Vec<String> = rbac::store::list(db)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(
            names,
            ["admin", "auditor", "supervisor", "technician"],
            "{}",
            db.engine()
        );
    }
}

#[tokio::test]
async fn enrollment_tokens_are_made_with_their_group_and_one_entry() {
    for s in sites("identity_enroll_tokens").await {
        let db = &s.db;
        let made = create_enroll_tokens(
            db,
            "lab",
            Duration::from_secs(600),
            3,
            AuditEvent::new("test", AuditAction::EnrollTokenCreate, "lab").group("lab"),
        )
        .await
        .unwrap();
        assert_eq!(made.len(), 3);
        // Again for the same group: the group exists already, no error.
        create_enroll_tokens(
            db,
            "lab",
            Duration::from_secs(600),
            1,
            AuditEvent::new("test", AuditAction::EnrollTokenCreate, "lab"),
        )
        .await
        .unwrap();
        let mut c = db.conn().await.unwrap();
        let (tokens, groups, entries): (i64, i64, i64) = sql!(c, |c| sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM enroll_tokens WHERE group_name = 'lab'),
                    (SELECT COUNT(*) FROM groups WHERE name = 'lab'),
                    (SELECT COUNT(*) FROM events WHERE action = 'enroll-token-create')"
        )
        .fetch_one(&mut *c)
        .await)
        .unwrap();
        assert_eq!((tokens, groups, entries), (4, 1, 2), "{}", db.engine());
    }
}

#[tokio::test]
async fn unknown_login_names_are_recorded_as_a_keyed_fingerprint() {
    for s in sites("identity_fingerprint").await {
        let db = &s.db;
        user(db, "bob", "technician").await;
        // A password typed into the name field.
        let typed = "Tr0ub4dor&3-in-the-wrong-field";
        for _ in 0..2 {
            assert!(try_login(&s, typed, PW, None).await.is_err());
        }
        assert!(try_login(&s, "someone-else", PW, None).await.is_err());
        assert!(
            try_login(&s, "bob", "wrong password!!", None)
                .await
                .is_err()
        );
        let mut c = db.conn().await.unwrap();
        let rows: Vec<(String, String, String)> = sql!(c, |c| sqlx::query_as(
            "SELECT actor, target, detail FROM events
              WHERE action = 'login' AND outcome = 'failed' ORDER BY id",
        )
        .fetch_all(&mut *c)
        .await)
        .unwrap();
        assert_eq!(rows.len(), 4, "{rows:?}");
        let all: Vec<(String, String, String)> = sql!(c, |c| sqlx::query_as(
            "SELECT actor, target, detail FROM events"
        )
        .fetch_all(&mut *c)
        .await)
        .unwrap();
        let everything: String = all.iter().map(|(a, t, d)| format!("{a}{t}{d}|")).collect();
        // Positive control: the text read is the log's.
        assert!(everything.contains("wrong password"), "{everything}");
        assert!(!everything.contains("Tr0ub4dor"), "{everything}");
        assert!(!everything.contains("someone-else"), "{everything}");
        let label = &rows[0].0;
        assert!(label.starts_with("unknown user (fingerprint "), "{label}");
        assert_eq!(
            label.len(),
            "unknown user (fingerprint )".len() + 12,
            "{label}"
        );
        assert_eq!(rows[0].1, *label);
        // Equal attempts correlate; different ones do not.
        assert_eq!(rows[1].0, *label);
        assert_ne!(rows[2].0, *label);
        assert!(rows[2].0.starts_with("unknown user (fingerprint "));
        // Known users are recorded by name.
        assert_eq!(
            (rows[3].0.as_str(), rows[3].2.as_str()),
            ("bob", "wrong password")
        );
        // The key is the site's: another site gives another fingerprint.
        let other = crate::store::tests::engines("identity_fingerprint_other").await;
        let other = other
            .iter()
            .find(|(o, _)| o.engine() == db.engine())
            .unwrap();
        assert_ne!(unknown_user_label(&other.0, typed).await.unwrap(), *label);
    }
}
