use std::net::{IpAddr, Ipv4Addr};

use jumpgate_api_types as api;
use sqlx::SqlitePool;

use super::*;

const PW: &str = "correct horse battery";

async fn db() -> (tempfile::TempDir, SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let pool = crate::store::open(&dir.path().join("t.db")).await.unwrap();
    (dir, pool)
}

fn audit() -> crate::events::Audit<'static> {
    crate::events::Audit::new("test", "test", "test")
}

async fn user(db: &SqlitePool, name: &str, role: &str) -> UserRecord {
    create_user(
        db,
        &NewUser {
            username: name,
            password: PW,
            role,
            groups: &["*".to_owned()],
            email: None,
        },
        &audit(),
    )
    .await
    .unwrap();
    get_user(db, name).await.unwrap()
}

fn limiter() -> RateLimiter {
    RateLimiter::new(1000, 1000)
}

async fn try_login(
    db: &SqlitePool,
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
    login(db, &limiter(), &a, Duration::from_secs(60)).await
}

/// Asserts that a login succeeded for `name` with a token that authenticates
/// as that user (more than `is_ok()`: the session is the right one).
async fn assert_logged_in(
    db: &SqlitePool,
    r: Result<LoginSession, IdentityError>,
    name: &str,
) -> LoginSession {
    let s = r.unwrap_or_else(|e| panic!("{name}: login failed: {e}"));
    assert_eq!(s.user.username, name);
    let subject = authenticate(db, &s.token).await.unwrap();
    assert_eq!(subject.name, name);
    s
}

#[tokio::test]
async fn login_authenticate_logout() {
    let (_d, db) = db().await;
    user(&db, "alice", "admin").await;
    let s = try_login(&db, "alice", PW, None).await.unwrap();
    assert_eq!(s.restriction, Restriction::None);
    let subject = authenticate(&db, &s.token).await.unwrap();
    assert_eq!(
        (subject.name.as_str(), subject.role.as_str()),
        ("alice", "admin")
    );
    assert!(subject.has(rbac::Permission::ManageUsers));
    logout(&db, &s.token).await.unwrap();
    assert!(matches!(
        authenticate(&db, &s.token).await,
        Err(IdentityError::Unauthenticated)
    ));
}

#[tokio::test]
async fn wrong_password_unknown_user_and_locked_account_fail_alike() {
    let (_d, db) = db().await;
    user(&db, "bob", "technician").await;
    let wrong = try_login(&db, "bob", "wrong password!!", None)
        .await
        .err()
        .unwrap()
        .to_string();
    let unknown = try_login(&db, "nobody", PW, None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert_eq!(wrong, unknown);
    // Lock the account (default threshold 5): even the right password fails,
    // with the same message.
    for _ in 0..5 {
        assert!(matches!(
            try_login(&db, "bob", "wrong password!!", None).await,
            Err(IdentityError::InvalidCredentials)
        ));
    }
    let locked = try_login(&db, "bob", PW, None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert_eq!(locked, wrong);
    assert!(
        get_user(&db, "bob")
            .await
            .unwrap()
            .to_api()
            .locked_until
            .is_some()
    );
    // An administrator unlocks it.
    unlock(&db, &get_user(&db, "bob").await.unwrap().id, &audit())
        .await
        .unwrap();
    assert_logged_in(&db, try_login(&db, "bob", PW, None).await, "bob").await;
}

#[tokio::test]
async fn the_source_address_is_rate_limited() {
    let (_d, db) = db().await;
    user(&db, "carl", "technician").await;
    let tight = RateLimiter::new(2, 1);
    let a = Attempt {
        ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        username: "carl",
        password: PW,
        second_factor: None,
    };
    for _ in 0..2 {
        let r = login(&db, &tight, &a, Duration::from_secs(60)).await;
        assert_logged_in(&db, r, "carl").await;
    }
    assert!(matches!(
        login(&db, &tight, &a, Duration::from_secs(60)).await,
        Err(IdentityError::RateLimited(_))
    ));
}

#[tokio::test]
async fn totp_login_with_replay_protection_and_one_time_recovery_codes() {
    let (_d, db) = db().await;
    let u = user(&db, "dana", "admin").await;
    assert!(matches!(
        confirm_totp(&db, &u, "123456", &audit()).await,
        Err(IdentityError::Invalid(_))
    ));
    let secret = begin_totp(&db, &u).await.unwrap();
    let u = get_user(&db, "dana").await.unwrap();
    let far = mfa::code_at(&secret, unix_secs() + 10 * mfa::STEP_SECS);
    assert!(matches!(
        confirm_totp(&db, &u, &far, &audit()).await,
        Err(IdentityError::WrongCode)
    ));
    // Confirm with the code of the previous step, so the login below uses a
    // fresh one (the confirm step is spent).
    let earlier = mfa::code_at(&secret, unix_secs() - mfa::STEP_SECS);
    let codes = confirm_totp(&db, &u, &earlier, &audit()).await.unwrap();
    assert_eq!(codes.len(), mfa::RECOVERY_CODES);

    assert!(matches!(
        try_login(&db, "dana", PW, None).await,
        Err(IdentityError::MfaRequired)
    ));
    let now_code = mfa::code_at(&secret, unix_secs());
    let r = try_login(&db, "dana", PW, Some(&now_code)).await;
    assert_logged_in(&db, r, "dana").await;
    // The same code again is a replay.
    assert!(matches!(
        try_login(&db, "dana", PW, Some(&now_code)).await,
        Err(IdentityError::MfaRequired)
    ));
    // A recovery code works once.
    let r = try_login(&db, "dana", PW, Some(&codes[0].to_lowercase())).await;
    assert_logged_in(&db, r, "dana").await;
    assert!(matches!(
        try_login(&db, "dana", PW, Some(&codes[0])).await,
        Err(IdentityError::MfaRequired)
    ));
    // Wrong password with a valid code still fails.
    assert!(matches!(
        try_login(&db, "dana", "wrong password!!", Some(&codes[1])).await,
        Err(IdentityError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn mfa_required_roles_get_a_restricted_session_until_enrolled() {
    let (_d, db) = db().await;
    let u = user(&db, "erin", "technician").await;
    let before = try_login(&db, "erin", PW, None).await.unwrap();
    assert_eq!(
        authenticate(&db, &before.token).await.unwrap().restriction,
        Restriction::None
    );
    let mut s = settings::load(&db).await.unwrap();
    s.mfa_required_roles = vec!["technician".into()];
    settings::save(&db, &s, None).await.unwrap();
    // The new policy applies to the session opened before it, too.
    assert_eq!(
        authenticate(&db, &before.token).await.unwrap().restriction,
        Restriction::MfaEnrollment
    );
    let login1 = try_login(&db, "erin", PW, None).await.unwrap();
    assert_eq!(login1.restriction, Restriction::MfaEnrollment);
    let subject = authenticate(&db, &login1.token).await.unwrap();
    assert_eq!(subject.restriction, Restriction::MfaEnrollment);
    // Enrolling lifts the restriction on the live session.
    let secret = begin_totp(&db, &u).await.unwrap();
    let u = get_user(&db, "erin").await.unwrap();
    confirm_totp(&db, &u, &mfa::code_at(&secret, unix_secs()), &audit())
        .await
        .unwrap();
    assert_eq!(
        authenticate(&db, &login1.token).await.unwrap().restriction,
        Restriction::None
    );
}

#[tokio::test]
async fn expired_passwords_restrict_the_session_to_changing_it() {
    let (_d, db) = db().await;
    user(&db, "fred", "technician").await;
    let mut s = settings::load(&db).await.unwrap();
    s.password.max_age_days = Some(1);
    settings::save(&db, &s, None).await.unwrap();
    sqlx::query("UPDATE users SET password_changed_at = ? WHERE username = 'fred'")
        .bind(ids::now_ms() - 2 * 86_400_000)
        .execute(&db)
        .await
        .unwrap();
    let l = try_login(&db, "fred", PW, None).await.unwrap();
    assert_eq!(l.restriction, Restriction::PasswordChange);
    let u = get_user(&db, "fred").await.unwrap();
    set_password(&db, &u, "a brand new passphrase", &audit())
        .await
        .unwrap();
    // Changing the password ended every session, the restricted one too.
    assert!(matches!(
        authenticate(&db, &l.token).await,
        Err(IdentityError::Unauthenticated)
    ));
    assert_eq!(
        try_login(&db, "fred", "a brand new passphrase", None)
            .await
            .unwrap()
            .restriction,
        Restriction::None
    );
}

#[tokio::test]
async fn password_policy_names_every_broken_rule_and_history_blocks_reuse() {
    let (_d, db) = db().await;
    let err = create_user(
        &db,
        &NewUser {
            username: "gina",
            password: "password",
            role: "technician",
            groups: &[],
            email: None,
        },
        &audit(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("shorter than 12"), "{err}");
    assert!(err.contains("commonly used"), "{err}");
    let u = user(&db, "gina", "technician").await;
    let err = set_password(&db, &u, PW, &audit())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("used recently"), "{err}");
    set_password(&db, &u, "another long passphrase", &audit())
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_input_is_refused_clearly() {
    let (_d, db) = db().await;
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
        create_user(&db, &new("bad name", "admin", &[], None), &audit()).await,
        Err(IdentityError::InvalidName(_))
    ));
    assert!(matches!(
        create_user(&db, &new("h", "root", &[], None), &audit()).await,
        Err(IdentityError::UnknownRole(_))
    ));
    static NOPE: [String; 1] = [String::new()];
    let err = create_user(&db, &new("h", "admin", &NOPE, None), &audit())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown group"), "{err}");
    let err = create_user(&db, &new("h", "admin", &[], Some("not-an-email")), &audit())
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::Invalid(_)), "{err}");
    user(&db, "hank", "admin").await;
    assert!(matches!(
        create_user(&db, &new("hank", "admin", &[], None), &audit()).await,
        Err(IdentityError::UserExists(_))
    ));
    // The last admin cannot be demoted or deleted.
    assert!(matches!(
        delete_user(&db, "hank", &audit()).await,
        Err(IdentityError::Conflict(_))
    ));
    let demote = api::UpdateUser {
        role: Some("auditor".into()),
        ..Default::default()
    };
    assert!(matches!(
        update_user(&db, "hank", &demote, "test").await,
        Err(IdentityError::Conflict(_))
    ));
}

#[tokio::test]
async fn admins_without_groups_get_all_groups() {
    let (_d, db) = db().await;
    create_user(
        &db,
        &NewUser {
            username: "ivy",
            password: PW,
            role: "admin",
            groups: &[],
            email: Some("ivy@example.com"),
        },
        &audit(),
    )
    .await
    .unwrap();
    let u = get_user(&db, "ivy").await.unwrap();
    assert_eq!(u.groups, vec!["*".to_owned()]);
    assert_eq!(u.email.as_deref(), Some("ivy@example.com"));
}

#[tokio::test]
async fn nothing_is_acknowledged_when_the_audit_log_cannot_be_written() {
    let (_d, db) = db().await;
    user(&db, "kim", "admin").await;
    // The audit write fails (as with a full disk): the login must not succeed.
    sqlx::query("CREATE TRIGGER no_audit BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END")
        .execute(&db)
        .await
        .unwrap();
    let err = try_login(&db, "kim", PW, None).await.err().unwrap();
    assert!(matches!(err, IdentityError::Db(_)), "{err}");
    let tokens: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM auth_tokens")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(tokens, 0, "no session may exist without its audit entry");
    sqlx::query("DROP TRIGGER no_audit")
        .execute(&db)
        .await
        .unwrap();
    assert_logged_in(&db, try_login(&db, "kim", PW, None).await, "kim").await;
}

#[tokio::test]
async fn a_user_change_whose_audit_entry_fails_does_not_happen() {
    let (_dir, db) = db().await;
    sqlx::query("ALTER TABLE events RENAME TO events_gone")
        .execute(&db)
        .await
        .unwrap();
    let ivy = NewUser {
        username: "ivy",
        password: PW,
        role: "technician",
        groups: &[],
        email: None,
    };
    let made = create_user(&db, &ivy, &audit()).await;
    assert!(matches!(made, Err(IdentityError::Db(_))), "{made:?}");
    assert!(matches!(
        get_user(&db, "ivy").await,
        Err(IdentityError::UnknownUser(_))
    ));
}

#[tokio::test]
async fn user_names_are_unique_ignoring_case_and_log_in_in_any_case() {
    let (_d, db) = db().await;
    user(&db, "alice", "technician").await;
    let new = |name: &'static str| NewUser {
        username: name,
        password: PW,
        role: "technician",
        groups: &[],
        email: None,
    };
    let err = create_user(&db, &new("Alice"), &audit()).await.unwrap_err();
    assert!(
        matches!(&err, IdentityError::UserExists(n) if n == "alice"),
        "{err}"
    );
    assert!(err.to_string().contains("not case-sensitive"), "{err}");
    // The database refuses it too, whatever the code path.
    let raw = sqlx::query("INSERT INTO users (id, username, password_hash, role, created_at) VALUES ('x', 'ALICE', 'h', 'technician', 0)")
        .execute(&db)
        .await;
    assert!(raw.is_err(), "{raw:?}");
    let s = try_login(&db, "ALICE", PW, None).await.unwrap();
    assert_eq!(s.user.username, "alice");
    assert_eq!(get_user(&db, "Alice").await.unwrap().username, "alice");
}

#[tokio::test]
async fn errors_about_bad_input_do_not_repeat_it_whole() {
    let (_d, db) = db().await;
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
        let err = create_user(&db, &u, &audit())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.len() < 300 && err.contains("5000 characters"), "{err}");
    }
}

#[tokio::test]
async fn reserved_and_role_named_user_names_are_refused() {
    let (_d, db) = db().await;
    user(&db, "chief", "admin").await;
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
        let err = create_user(&db, &new(name, role), &audit())
            .await
            .unwrap_err();
        assert!(
            matches!(err, IdentityError::InvalidName(_)),
            "{name}: {err}"
        );
    }
    // The e2e tests' `admin` holds the admin role: allowed, and it may not
    // be moved to another role while it bears the name.
    create_user(&db, &new("admin", "admin"), &audit())
        .await
        .unwrap();
    create_user(&db, &new("technician", "technician"), &audit())
        .await
        .unwrap();
    let demote = api::UpdateUser {
        role: Some("technician".into()),
        groups: None,
        email: None,
    };
    let err = update_user(&db, "admin", &demote, "chief")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("must hold the `admin` role"),
        "{err}"
    );
    // Nor may a role take a user's name, or differ from one only in case.
    let mut tx = crate::store::begin_write(&db).await.unwrap();
    let role = |name: &str| api::CreateRole {
        name: name.into(),
        description: String::new(),
        permissions: vec!["view".into()],
    };
    let err = rbac::store::create(&mut tx, &role("Chief"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("a user is named `chief`"), "{err}");
    let err = rbac::store::create(&mut tx, &role("ADMIN"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, rbac::store::RoleError::Exists(ref n) if n == "admin"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_login_names_are_recorded_as_a_keyed_fingerprint() {
    let (_d, db) = db().await;
    user(&db, "bob", "technician").await;
    // A password typed into the name field.
    let typed = "Tr0ub4dor&3-in-the-wrong-field";
    for _ in 0..2 {
        assert!(try_login(&db, typed, PW, None).await.is_err());
    }
    assert!(try_login(&db, "someone-else", PW, None).await.is_err());
    assert!(
        try_login(&db, "bob", "wrong password!!", None)
            .await
            .is_err()
    );
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT actor, target, detail FROM events WHERE action = 'login' AND outcome = 'failed' ORDER BY id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let everything: String =
        sqlx::query_scalar("SELECT group_concat(actor || target || detail, '|') FROM events")
            .fetch_one(&db)
            .await
            .unwrap();
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
    let (_d2, other) = self::db().await;
    assert_ne!(unknown_user_label(&other, typed).await.unwrap(), *label);
}
