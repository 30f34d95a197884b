//! One-time enrollment tokens for agents.

use sqlx::SqlitePool;

use super::*;

/// A new one-time enrollment token.
#[derive(Clone)]
pub(crate) struct EnrollToken {
    pub(crate) token: String,
    pub(crate) expires_at_ms: i64,
}

/// Creates a one-time enrollment token for endpoints of `group`, creating
/// the group if it does not exist yet.
///
/// # Errors
/// Invalid group name or database failure.
pub(crate) async fn create_enroll_tokens(
    db: &SqlitePool,
    group: &str,
    ttl: Duration,
    count: u32,
    audit: &Audit<'_>,
) -> Result<Vec<EnrollToken>, IdentityError> {
    ids::validate_name("group", group).map_err(IdentityError::InvalidName)?;
    let now = ids::now_ms();
    let expires_at_ms = now + ttl.as_millis() as i64;
    // The tokens and their one audit entry commit together.
    let mut tx = crate::store::begin_write(db).await?;
    sqlx::query("INSERT OR IGNORE INTO groups (name, description, created_at) VALUES (?, '', ?)")
        .bind(group)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let token = ids::random_token("jge");
        sqlx::query("INSERT INTO enroll_tokens (token_hash, group_name, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(ids::token_hash(&token))
            .bind(group)
            .bind(now)
            .bind(expires_at_ms)
            .execute(&mut *tx)
            .await?;
        out.push(EnrollToken {
            token,
            expires_at_ms,
        });
    }
    audit.append(&mut tx).await?;
    tx.commit().await?;
    Ok(out)
}
