//! Wrapped data keys as the domains that store them answer for them.
//!
//! `keys` owns the KEKs but not the tables where wrapped data keys live:
//! each domain that stores some (a recording's key, a secret version's key,
//! …) implements [`WrappedKeys`] over its own table, and the rotation
//! sweep (`sweep`) and key status ask every domain of the registry
//! ([`domains`]) instead of reading or rewriting their tables themselves.
//!
//! A domain names each stored key by an id of its own, made of its real key
//! columns (never SQLite's `rowid`, which PostgreSQL does not have); the
//! sweep pages through a domain's keys in the domain's key order with the
//! id of the last key seen as the cursor, so keys added or re-wrapped
//! meanwhile never make it skip or repeat one.

use std::collections::BTreeMap;

use super::{Purpose, WrappedKey};
use crate::store::Exec;

/// One stored wrapped key, as a domain lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredKey {
    /// The domain's id of the key (see the module doc): the cursor after it
    /// lists the keys that follow.
    pub(crate) id: String,
    pub(crate) wrapped: WrappedKey,
    /// The KEK version that wraps it (`None`: the stored text names none).
    pub(crate) version: Option<u32>,
}

impl StoredKey {
    pub(crate) fn new(id: String, wrapped: String) -> Self {
        let wrapped = WrappedKey::from(wrapped);
        let version = wrapped.version();
        Self {
            id,
            wrapped,
            version,
        }
    }
}

/// A domain that stores data keys wrapped by one purpose's KEK.
#[async_trait::async_trait]
pub(crate) trait WrappedKeys: Sync {
    /// The domain's name (in key status and logs).
    fn name(&self) -> &'static str;

    /// The purpose whose KEK wraps this domain's keys.
    fn purpose(&self) -> Purpose;

    /// How many stored keys each KEK version of `versions` wraps; keys
    /// under none of them are counted under `None`.
    async fn count_by_version(
        &self,
        e: &mut dyn Exec,
        versions: &[u32],
    ) -> Result<BTreeMap<Option<u32>, u64>, sqlx::Error>;

    /// Up to `limit` stored keys not wrapped by KEK version `current`,
    /// with ids after `after` (`""`: from the start), in id order.
    async fn stale_after(
        &self,
        e: &mut dyn Exec,
        current: u32,
        after: &str,
        limit: u32,
    ) -> Result<Vec<StoredKey>, sqlx::Error>;

    /// Replaces key `id` by `new` if it is still `old` (compare-and-set: a
    /// concurrent writer's key is never overwritten). Answers whether it
    /// was replaced.
    async fn replace(
        &self,
        e: &mut dyn Exec,
        id: &str,
        old: &WrappedKey,
        new: &WrappedKey,
    ) -> Result<bool, sqlx::Error>;
}

/// A domain table that holds one wrapped key per row under a text id: the
/// [`WrappedKeys`] of the domain is its four statements (constants of the
/// domain, which owns the table).
pub(crate) struct TableKeys {
    pub(crate) name: &'static str,
    pub(crate) purpose: Purpose,
    /// `SELECT COUNT(*) FROM t`.
    pub(crate) count_all: &'static str,
    /// The same, `WHERE wrapped_key LIKE $1`.
    pub(crate) count_like: &'static str,
    /// `SELECT id, wrapped_key FROM t WHERE id > $1 AND wrapped_key NOT
    /// LIKE $2 ORDER BY id LIMIT $3`.
    pub(crate) stale_after: &'static str,
    /// `UPDATE t SET wrapped_key = $1 WHERE id = $2 AND wrapped_key = $3`.
    pub(crate) replace: &'static str,
}

#[async_trait::async_trait]
impl WrappedKeys for TableKeys {
    fn name(&self) -> &'static str {
        self.name
    }

    fn purpose(&self) -> Purpose {
        self.purpose
    }

    async fn count_by_version(
        &self,
        e: &mut dyn Exec,
        versions: &[u32],
    ) -> Result<BTreeMap<Option<u32>, u64>, sqlx::Error> {
        count_like(e, self.purpose, versions, self.count_all, self.count_like).await
    }

    async fn stale_after(
        &self,
        e: &mut dyn Exec,
        current: u32,
        after: &str,
        limit: u32,
    ) -> Result<Vec<StoredKey>, sqlx::Error> {
        use crate::store::sql;
        let rows: Vec<(String, String)> = sql!(e, |c| sqlx::query_as(self.stale_after)
            .bind(after)
            .bind(like_version(self.purpose, current))
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|(id, w)| StoredKey::new(id, w))
            .collect())
    }

    async fn replace(
        &self,
        e: &mut dyn Exec,
        id: &str,
        old: &WrappedKey,
        new: &WrappedKey,
    ) -> Result<bool, sqlx::Error> {
        use crate::store::sql;
        let n = sql!(e, |c| sqlx::query(self.replace)
            .bind(new.as_str())
            .bind(id)
            .bind(old.as_str())
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}

/// Every domain that stores wrapped data keys, in sweep order.
///
/// A domain that starts storing wrapped keys adds itself here, and it is
/// swept and shown in key status from then on. Identity's app-encrypted
/// TOTP secrets (being added on the identity branch) belong in this list
/// as `&crate::identity::…` once they exist.
pub(crate) fn domains() -> &'static [&'static dyn WrappedKeys] {
    &[
        &crate::recordings::STORED_KEYS,
        &crate::vault::StoredKeys,
        &crate::identity::TotpKeys,
        &crate::support::SESSION_KEYS,
        &crate::support::PEPPER_KEY,
        &crate::epm::SIGNING_KEYS,
        &crate::epm::SITE_KEYS,
        &crate::recordings::search::SEARCH_KEY,
        &crate::ssh::HOST_KEYS,
        &crate::notify::webhooks::SECRET_KEYS,
        &crate::ssh::USER_CAS,
    ]
}

/// The stored text of every key wrapped by `purpose`'s KEK `version`
/// starts with this (see [`WrappedKey`]); a `LIKE` pattern for it.
pub(crate) fn like_version(purpose: Purpose, version: u32) -> String {
    // Purpose names are lowercase letters: nothing to escape.
    format!("{}:v{version}:%", purpose.as_str())
}

/// [`WrappedKeys::count_by_version`] for a domain's table: `count_all`
/// counts its keys, `count_like` those whose wrapped key is `LIKE $1`
/// (both constants of the domain); one count per version.
pub(crate) async fn count_like(
    e: &mut dyn Exec,
    purpose: Purpose,
    versions: &[u32],
    count_all: &'static str,
    count_like: &'static str,
) -> Result<BTreeMap<Option<u32>, u64>, sqlx::Error> {
    use crate::store::sql;
    let mut out = BTreeMap::new();
    let total: i64 = sql!(e, |c| sqlx::query_scalar(count_all)
        .fetch_one(&mut *c)
        .await)?;
    let mut known = 0i64;
    for &v in versions {
        let n: i64 = sql!(e, |c| sqlx::query_scalar(count_like)
            .bind(like_version(purpose, v))
            .fetch_one(&mut *c)
            .await)?;
        known += n;
        if n > 0 {
            out.insert(Some(v), u64::try_from(n).unwrap_or(0));
        }
    }
    if total > known {
        out.insert(None, u64::try_from(total - known).unwrap_or(0));
    }
    Ok(out)
}
