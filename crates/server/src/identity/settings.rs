//! Site security settings (password policy, lockout, MFA requirement),
//! stored as JSON under the `security` key of the `settings` table.

use jumpgate_api_types as api;
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use super::lockout::LockoutPolicy;
use super::password::PasswordPolicy;

/// The validated security settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SecuritySettings {
    pub(crate) password: PasswordPolicy,
    pub(crate) lockout: LockoutPolicy,
    /// Roles whose users must use MFA.
    pub(crate) mfa_required_roles: Vec<String>,
}

const KEY: &str = "security";

pub(crate) async fn load<'e>(
    db: impl sqlx::SqliteExecutor<'e>,
) -> Result<SecuritySettings, sqlx::Error> {
    let raw: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
        .bind(KEY)
        .fetch_optional(db)
        .await?;
    Ok(raw
        .and_then(|r| match serde_json::from_str(&r) {
            Ok(s) => Some(s),
            Err(e) => {
                // Stored by this code, so this is corruption: fall back to
                // the (strict) defaults rather than to no policy at all.
                tracing::error!(error = %e, "stored security settings are unreadable; using defaults");
                None
            }
        })
        .unwrap_or_default())
}

/// Stores the settings; with `audit`, its entry commits in the same
/// transaction.
pub(crate) async fn save(
    db: &SqlitePool,
    s: &SecuritySettings,
    audit: Option<&crate::events::Audit<'_>>,
) -> Result<(), sqlx::Error> {
    let json = serde_json::to_string(s).unwrap_or_default();
    let mut tx = crate::store::begin_write(db).await?;
    sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .bind(KEY)
        .bind(json)
        .execute(&mut *tx)
        .await?;
    if let Some(a) = audit {
        a.append(&mut tx).await?;
    }
    tx.commit().await
}

impl SecuritySettings {
    pub(crate) fn to_api(&self) -> api::SecuritySettings {
        api::SecuritySettings {
            password_min_length: self.password.min_length as u32,
            password_min_classes: self.password.min_classes,
            password_history: self.password.history,
            password_max_age_days: self.password.max_age_days,
            lockout_threshold: self.lockout.threshold,
            lockout_duration_secs: self.lockout.duration_secs,
            mfa_required_roles: self.mfa_required_roles.clone(),
        }
    }

    /// Validates settings sent by an administrator. Role names are checked
    /// by the caller (they live in the database).
    pub(crate) fn from_api(a: &api::SecuritySettings) -> Result<Self, String> {
        let s = Self {
            password: PasswordPolicy {
                min_length: a.password_min_length as usize,
                min_classes: a.password_min_classes,
                history: a.password_history,
                max_age_days: a.password_max_age_days,
            },
            lockout: LockoutPolicy {
                threshold: a.lockout_threshold,
                duration_secs: a.lockout_duration_secs,
            },
            mfa_required_roles: a.mfa_required_roles.clone(),
        };
        s.password
            .validate()
            .map_err(|e| format!("password policy: {e}"))?;
        s.lockout.validate().map_err(|e| format!("lockout: {e}"))?;
        Ok(s)
    }

    pub(crate) fn mfa_required(&self, role: &str) -> bool {
        self.mfa_required_roles.iter().any(|r| r == role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn defaults_then_saved_values() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open(&dir.path().join("t.db")).await.unwrap();
        assert_eq!(load(&db).await.unwrap(), SecuritySettings::default());
        let mut api = SecuritySettings::default().to_api();
        api.password_min_length = 16;
        api.mfa_required_roles = vec!["admin".into()];
        let s = SecuritySettings::from_api(&api).unwrap();
        save(&db, &s, None).await.unwrap();
        assert_eq!(load(&db).await.unwrap(), s);
        assert!(s.mfa_required("admin") && !s.mfa_required("auditor"));
        api.password_min_length = 3;
        assert!(
            SecuritySettings::from_api(&api)
                .unwrap_err()
                .contains("password policy")
        );
    }
}
