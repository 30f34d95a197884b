//! One-time enrollment tokens for agents.

use std::time::Duration;

use super::IdentityError;
use crate::ids;
use crate::store::{AuditEvent, Store, sql};

/// A new one-time enrollment token.
#[derive(Clone)]
pub(crate) struct EnrollToken {
    pub(crate) token: String,
    pub(crate) expires_at_ms: i64,
}

/// Creates one-time enrollment tokens for endpoints of `group`, creating
/// the group if it does not exist yet; the tokens and their one audit entry
/// (`audit`) commit together.
///
/// # Errors
/// Invalid group name or database failure.
pub(crate) async fn create_enroll_tokens(
    db: &Store,
    group: &str,
    ttl: Duration,
    count: u32,
    audit: AuditEvent,
) -> Result<Vec<EnrollToken>, IdentityError> {
    ids::validate_name("group", group).map_err(IdentityError::InvalidName)?;
    let now = ids::now_ms();
    let expires_at_ms = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let mut w = db.write().await?;
    sql!(w, |c| sqlx::query(
        "INSERT INTO groups (name, description, created_at) VALUES ($1, '', $2)
         ON CONFLICT (name) DO NOTHING"
    )
    .bind(group)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let token = ids::random_token("jge");
        sql!(w, |c| sqlx::query(
            "INSERT INTO enroll_tokens (token_hash, group_name, created_at, expires_at)
             VALUES ($1, $2, $3, $4)"
        )
        .bind(ids::token_hash(&token))
        .bind(group)
        .bind(now)
        .bind(expires_at_ms)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        out.push(EnrollToken {
            token,
            expires_at_ms,
        });
    }
    w.audit(audit).await?;
    w.commit().await?;
    Ok(out)
}
