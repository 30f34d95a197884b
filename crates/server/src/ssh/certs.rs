//! Short-lived SSH user certificates (issue #16): at `jg login` the client
//! sends a public key and gets an OpenSSH user certificate for it, signed
//! by the user CA (`user_ca`). Principal: the user's name. Valid from a
//! minute ago (clocks differ) until the login token expires or
//! [`MAX_LIFETIME`] has passed, whichever is sooner. Its key id names the
//! user, the login (a prefix of the token's hash) and the serial. Every
//! issued certificate is recorded with the login token's hash: the front
//! door accepts a certificate only while that login is live, so logging
//! out, a revoked session, a locked or deleted account refuse it too.

use jumpgate_api_types::ssh::SshCert;
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::{Certificate, HashAlg, PrivateKey, PublicKey};

use super::SshError;
use crate::identity::{self, Credential, UserRecord};
use crate::ids::{self, UserId, random_bytes};
use crate::store::{AuditAction, AuditEvent, Store, sql};

/// The longest a certificate is valid, whatever the login's lifetime.
pub(crate) const MAX_LIFETIME_SECS: u64 = 12 * 3600;
/// How far back a certificate's validity starts (clock differences).
const BACKDATE_SECS: u64 = 60;

fn now_secs() -> u64 {
    u64::try_from(ids::now_ms() / 1000).unwrap_or(0)
}

/// The login named by a token hash in key ids and audit entries: the
/// first 6 bytes of the (already one-way) hash, in hex.
fn login_ref(hash: &[u8]) -> String {
    hash.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Issues a certificate for `public_key` (OpenSSH one-line form) to `user`,
/// bound to the login `login` (a user's token) that expires at
/// `login_expires_ms`. Audited `ssh-cert-issue`.
///
/// # Errors
/// A bad public key, a login that is not a user's, the store.
pub(crate) async fn issue(
    db: &Store,
    ca: &PrivateKey,
    user_id: &UserId,
    username: &str,
    login: &Credential,
    login_expires_ms: i64,
    public_key: &str,
) -> Result<SshCert, SshError> {
    let parsed = super::user_keys::parse(public_key)?;
    let hash = login
        .user_hash()
        .ok_or_else(|| SshError::BadKey("certificates are for users' logins".into()))?;
    let now = now_secs();
    let login_end = u64::try_from(login_expires_ms / 1000).unwrap_or(0);
    let valid_before = login_end.min(now + MAX_LIFETIME_SECS);
    if valid_before <= now {
        return Err(SshError::BadKey(
            "your login has ended: log in again".into(),
        ));
    }
    let valid_after = now.saturating_sub(BACKDATE_SECS);
    let serial = u64::from_be_bytes(random_bytes::<8>());
    let key_id = format!(
        "jumpgate user={username} login={} serial={serial:016x}",
        login_ref(hash)
    );
    let bad = |e: russh::keys::ssh_key::Error| SshError::Key(format!("certificate: {e}"));
    let mut b = Builder::new(
        random_bytes::<32>().to_vec(),
        parsed.key.key_data().clone(),
        valid_after,
        valid_before,
    )
    .map_err(bad)?;
    b.serial(serial).map_err(bad)?;
    b.cert_type(CertType::User).map_err(bad)?;
    b.key_id(key_id.clone()).map_err(bad)?;
    b.valid_principal(username).map_err(bad)?;
    b.extension("permit-pty", "").map_err(bad)?;
    b.extension("permit-port-forwarding", "").map_err(bad)?;
    let cert = b.sign(ca).map_err(bad)?;
    let text = cert.to_openssh().map_err(bad)?;
    let now_ms = ids::now_ms();
    let valid_before_ms = i64::try_from(valid_before).unwrap_or(i64::MAX / 1000) * 1000;
    let mut w = db.write().await?;
    // Expired certificates are dead weight.
    sql!(w, |c| sqlx::query(
        "DELETE FROM ssh_user_certs WHERE valid_before <= $1"
    )
    .bind(now_ms)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    sql!(w, |c| {
        sqlx::query(
        "INSERT INTO ssh_user_certs (serial, user_id, token_hash, fingerprint, valid_before, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(format!("{serial:016x}"))
    .bind(user_id.as_str())
    .bind(hash)
    .bind(&parsed.fingerprint)
    .bind(valid_before_ms)
    .bind(now_ms)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    w.audit(
        AuditEvent::new(username, AuditAction::SshCertIssue, username).detail(format!(
            "serial={serial:016x} fingerprint={} login={} valid_before={}",
            parsed.fingerprint,
            login_ref(hash),
            ids::rfc3339(valid_before_ms)
        )),
    )
    .await?;
    w.commit().await?;
    Ok(SshCert {
        certificate: text,
        key_id,
        principal: username.to_owned(),
        valid_before: ids::rfc3339(valid_before_ms),
    })
}

/// Whether `user_id` holds a live certificate for `key`: the front door
/// asks before the client signs (the offered key is the certificate's).
pub(crate) async fn holds(db: &Store, user_id: &UserId, key: &PublicKey) -> Result<bool, SshError> {
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let mut c = db.conn().await?;
    let n: i64 = sql!(c, |c| sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM ssh_user_certs
          WHERE user_id = $1 AND fingerprint = $2 AND valid_before > $3"
    )
    .bind(user_id.as_str())
    .bind(&fingerprint)
    .bind(ids::now_ms())
    .fetch_one(&mut *c)
    .await)?;
    Ok(n > 0)
}

/// Why a certificate is refused (logged, never told to the client).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error("not signed by this gateway's user CA")]
    OtherCa,
    #[error("not a user certificate")]
    NotUser,
    #[error("not valid for this user")]
    Principal,
    #[error("outside its validity window")]
    Expired,
    #[error("not issued by this gateway (or already expired and swept)")]
    Unknown,
    #[error("the login it was issued for has ended")]
    LoginEnded,
    #[error(transparent)]
    Ssh(#[from] SshError),
}

/// Checks a certificate (its signature over the key already verified by
/// russh, its possession proven by the client) for `account`: signed by
/// `ca`, a user certificate naming the account, within its window, issued
/// here to that account for that key, and the login behind it still live.
/// The login's credential is what the connection's sessions carry.
pub(crate) async fn check(
    db: &Store,
    ca: &PublicKey,
    cert: &Certificate,
    account: &UserRecord,
) -> Result<Credential, Refused> {
    if cert.signature_key() != ca.key_data() || cert.verify_signature().is_err() {
        return Err(Refused::OtherCa);
    }
    if cert.cert_type() != CertType::User {
        return Err(Refused::NotUser);
    }
    if !cert.valid_principals().contains(&account.username) {
        return Err(Refused::Principal);
    }
    let now = now_secs();
    if now < cert.valid_after() || now >= cert.valid_before() {
        return Err(Refused::Expired);
    }
    let fingerprint = PublicKey::from(cert.public_key().clone())
        .fingerprint(HashAlg::Sha256)
        .to_string();
    let row: Option<(String, Vec<u8>, String)> = {
        let mut c = db.conn().await.map_err(SshError::from)?;
        sql!(c, |c| sqlx::query_as(
            "SELECT user_id, token_hash, fingerprint FROM ssh_user_certs WHERE serial = $1"
        )
        .bind(format!("{:016x}", cert.serial()))
        .fetch_optional(&mut *c)
        .await)
        .map_err(SshError::from)?
    };
    let Some((user_id, hash, stored_fp)) = row else {
        return Err(Refused::Unknown);
    };
    if user_id != account.id.as_str() || stored_fp != fingerprint {
        return Err(Refused::Unknown);
    }
    let credential = Credential::of_user_hash(hash);
    match identity::authenticate_credential(db, &credential).await {
        Ok(s) if s.user_id() == Some(&account.id) => Ok(credential),
        _ => Err(Refused::LoginEnded),
    }
}
