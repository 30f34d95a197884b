//! Users' SSH public keys: what a user registers (`jg ssh-keys add`) to
//! log in through the SSH front door. Each user sees and changes only their
//! own; every change is audited with the key's fingerprint.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jumpgate_api_types::ssh::SshKey;
use russh::keys::{HashAlg, PublicKey};

use super::SshError;
use crate::ids::{self, UserId, random_bytes};
use crate::store::{AuditAction, AuditEvent, Store, sql};

/// Longest accepted public key line (an RSA 16384-bit key fits).
pub(crate) const MAX_LINE: usize = 16 * 1024;
/// Most keys one user may hold.
pub(crate) const MAX_PER_USER: i64 = 100;

/// A public key line parsed and checked: what is stored.
pub(crate) struct Parsed {
    pub(crate) key: PublicKey,
    pub(crate) fingerprint: String,
    /// The key in OpenSSH's form, without its comment.
    pub(crate) openssh: String,
    pub(crate) comment: String,
}

/// Parses an OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
///
/// # Errors
/// [`SshError::BadKey`] naming what is wrong.
pub(crate) fn parse(text: &str) -> Result<Parsed, SshError> {
    let line = text.trim();
    if line.is_empty() {
        return Err(SshError::BadKey("the public key is empty".into()));
    }
    if line.len() > MAX_LINE {
        return Err(SshError::BadKey(format!(
            "the public key is longer than {MAX_LINE} bytes"
        )));
    }
    if line.contains("PRIVATE KEY") {
        return Err(SshError::BadKey(
            "this is a private key: give the public key (the .pub file)".into(),
        ));
    }
    if line.contains('\n') {
        return Err(SshError::BadKey(
            "give one public key (one line, as in id_ed25519.pub)".into(),
        ));
    }
    let mut key = PublicKey::from_openssh(line).map_err(|e| {
        SshError::BadKey(format!(
            "not an OpenSSH public key ({e}); give the one line of a .pub file"
        ))
    })?;
    let comment: &str = key.comment().as_ref();
    let comment: String = comment
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    key.set_comment("");
    let openssh = key
        .to_openssh()
        .map_err(|e| SshError::BadKey(e.to_string()))?;
    Ok(Parsed {
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        key,
        openssh,
        comment,
    })
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    fingerprint: String,
    public_key: String,
    comment: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl From<KeyRow> for SshKey {
    fn from(r: KeyRow) -> Self {
        let algorithm = r
            .public_key
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        Self {
            id: r.id,
            fingerprint: r.fingerprint,
            algorithm,
            comment: r.comment,
            created_at: ids::rfc3339(r.created_at),
            last_used_at: r.last_used_at.map(ids::rfc3339),
        }
    }
}

/// Registers `text` for user `user_id` (`username` for the audit entry).
///
/// # Errors
/// A bad key, a key the user holds already, too many keys, the store.
pub(crate) async fn add(
    db: &Store,
    user_id: &UserId,
    username: &str,
    text: &str,
) -> Result<SshKey, SshError> {
    let p = parse(text)?;
    let id = format!("sk_{}", URL_SAFE_NO_PAD.encode(random_bytes::<9>()));
    let now = ids::now_ms();
    let mut w = db.write().await?;
    let held: i64 = sql!(w, |c| sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM ssh_user_keys WHERE user_id = $1"
    )
    .bind(user_id.as_str())
    .fetch_one(&mut *c)
    .await)?;
    if held >= MAX_PER_USER {
        return Err(SshError::TooMany(MAX_PER_USER));
    }
    let inserted = sql!(w, |c| sqlx::query(
        "INSERT INTO ssh_user_keys (id, user_id, fingerprint, public_key, comment, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (user_id, fingerprint) DO NOTHING"
    )
    .bind(&id)
    .bind(user_id.as_str())
    .bind(&p.fingerprint)
    .bind(&p.openssh)
    .bind(&p.comment)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if inserted == 0 {
        return Err(SshError::Duplicate(p.fingerprint));
    }
    w.audit(
        AuditEvent::new(username, AuditAction::SshKeyAdd, username)
            .detail(format!("id={id} fingerprint={}", p.fingerprint)),
    )
    .await?;
    w.commit().await?;
    Ok(SshKey {
        id,
        fingerprint: p.fingerprint,
        algorithm: p.key.algorithm().as_str().to_owned(),
        comment: p.comment,
        created_at: ids::rfc3339(now),
        last_used_at: None,
    })
}

/// The user's keys, oldest first.
pub(crate) async fn list(db: &Store, user_id: &UserId) -> Result<Vec<SshKey>, SshError> {
    let mut c = db.conn().await?;
    let rows: Vec<KeyRow> = sql!(c, |c| sqlx::query_as(
        "SELECT id, fingerprint, public_key, comment, created_at, last_used_at
           FROM ssh_user_keys WHERE user_id = $1 ORDER BY created_at, id"
    )
    .bind(user_id.as_str())
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows.into_iter().map(SshKey::from).collect())
}

/// Removes the user's key `id` (another user's key is unknown to them)
/// and closes this gateway's connections that logged in with it.
///
/// # Errors
/// [`SshError::UnknownKey`], the store.
pub(crate) async fn remove(
    db: &Store,
    user_id: &UserId,
    username: &str,
    id: &str,
) -> Result<(), SshError> {
    let mut w = db.write().await?;
    let fingerprint: Option<String> = sql!(w, |c| sqlx::query_scalar(
        "DELETE FROM ssh_user_keys WHERE id = $1 AND user_id = $2 RETURNING fingerprint"
    )
    .bind(id)
    .bind(user_id.as_str())
    .fetch_optional(&mut *c)
    .await)?;
    let Some(fingerprint) = fingerprint else {
        return Err(SshError::UnknownKey(id.to_owned()));
    };
    w.audit(
        AuditEvent::new(username, AuditAction::SshKeyRemove, username)
            .detail(format!("id={id} fingerprint={fingerprint}")),
    )
    .await?;
    w.commit().await?;
    // Connections that logged in with it end now, with their sessions.
    let cut = super::cut_key(id);
    if cut > 0 {
        tracing::info!(key = %id, connections = cut, "SSH connections of a removed key closed");
    }
    Ok(())
}

/// The id of `user_id`'s key that is `key`, if registered.
pub(crate) async fn find(
    db: &Store,
    user_id: &UserId,
    key: &PublicKey,
) -> Result<Option<String>, SshError> {
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let mut c = db.conn().await?;
    let row: Option<(String, String)> = sql!(c, |c| sqlx::query_as(
        "SELECT id, public_key FROM ssh_user_keys WHERE user_id = $1 AND fingerprint = $2"
    )
    .bind(user_id.as_str())
    .bind(&fingerprint)
    .fetch_optional(&mut *c)
    .await)?;
    // The fingerprint found it; the stored key itself must be this key.
    Ok(row.and_then(|(id, stored)| {
        let stored = PublicKey::from_openssh(&stored).ok()?;
        (stored.key_data() == key.key_data()).then_some(id)
    }))
}

/// Notes a login with key `id`.
pub(crate) async fn used(db: &Store, id: &str) -> Result<(), SshError> {
    let mut c = db.write_conn().await?;
    sql!(c, |c| sqlx::query(
        "UPDATE ssh_user_keys SET last_used_at = $1 WHERE id = $2"
    )
    .bind(ids::now_ms())
    .bind(id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // An Ed25519 key from `ssh-keygen -t ed25519 -C alice@laptop`; its
    // fingerprint as `ssh-keygen -l -E sha256` prints it.
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJu6vjXLab+hpbd7oL+Z3kVTYam0qHVPKmWKGJH1wLgf alice@laptop";
    const FINGERPRINT: &str = "SHA256:iPyyXyypKhcB0qG23C7ATvpkLwbPUQ3VIpw0dQsiEQU";

    #[test]
    fn a_public_key_line_is_parsed_with_its_fingerprint_and_comment() {
        let p = parse(&format!("  {KEY}\n")).unwrap();
        assert_eq!(p.fingerprint, FINGERPRINT);
        assert_eq!(p.comment, "alice@laptop");
        assert!(p.openssh.starts_with("ssh-ed25519 AAAA"));
        assert!(!p.openssh.contains("alice"), "the comment is kept apart");
        // The comment does not change the key's identity.
        let other = parse(KEY.trim_end_matches("alice@laptop")).unwrap();
        assert_eq!(other.fingerprint, p.fingerprint);
    }

    #[test]
    fn what_is_not_one_public_key_is_refused_with_a_reason() {
        let why = |t: &str| parse(t).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(why("").contains("empty"));
        assert!(why("not a key").contains("not an OpenSSH public key"));
        assert!(why("ssh-ed25519 AAAA").contains("not an OpenSSH public key"));
        assert!(why(&format!("{KEY}\n{KEY}")).contains("one public key"));
        assert!(
            why("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n")
                .contains("private key")
        );
        assert!(why(&"A".repeat(MAX_LINE + 1)).contains("longer"));
    }
}
