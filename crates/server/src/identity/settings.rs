//! Site security settings (password policy, lockout, MFA requirement),
//! stored as JSON under the `security` key of the `settings` table.

use jumpgate_api_types as api;
use serde::{Deserialize, Serialize};

use crate::store::{AuditEvent, Exec, Store, sql};

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

/// The row of `settings` holding them (also read with other things by
/// `identity::tokens`).
pub(crate) const KEY: &str = "security";

/// The site's settings (the defaults until an administrator saves some).
pub(crate) async fn load(db: &Store) -> Result<SecuritySettings, sqlx::Error> {
    load_in(&mut db.conn().await?).await
}

/// [`load`] inside a transaction (a change that depends on the policy).
pub(crate) async fn load_in(e: &mut dyn Exec) -> Result<SecuritySettings, sqlx::Error> {
    let raw: Option<String> = sql!(e, |c| sqlx::query_scalar(
        "SELECT value FROM settings WHERE key = $1"
    )
    .bind(KEY)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(parse(raw.as_deref()))
}

/// The settings as stored under their key (`None`: never saved).
pub(crate) fn parse(raw: Option<&str>) -> SecuritySettings {
    raw.and_then(|r| match serde_json::from_str(r) {
        Ok(s) => Some(s),
        Err(e) => {
            // Stored by this code, so this is corruption: fall back to the
            // (strict) defaults rather than to no policy at all.
            tracing::error!(error = %e, "stored security settings are unreadable; using defaults");
            None
        }
    })
    .unwrap_or_default()
}

/// Stores the settings; `audit` (a `settings-change` entry) commits with
/// them.
pub(crate) async fn save(
    db: &Store,
    s: &SecuritySettings,
    audit: AuditEvent,
) -> Result<(), sqlx::Error> {
    let json = serde_json::to_string(s).unwrap_or_default();
    let mut w = db.write().await?;
    sql!(w, |c| sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )
    .bind(KEY)
    .bind(&json)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(audit).await?;
    w.commit().await
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
        for (db, _dir) in crate::store::tests::engines("identity_settings").await {
            assert_eq!(load(&db).await.unwrap(), SecuritySettings::default());
            let mut api = SecuritySettings::default().to_api();
            api.password_min_length = 16;
            api.mfa_required_roles = vec!["admin".into()];
            let s = SecuritySettings::from_api(&api).unwrap();
            let audit = AuditEvent::new(
                "test",
                crate::store::AuditAction::SettingsChange,
                "security",
            );
            save(&db, &s, audit.clone()).await.unwrap();
            assert_eq!(load(&db).await.unwrap(), s, "{}", db.engine());
            // Saved again (the row exists): replaced, not refused.
            save(&db, &SecuritySettings::default(), audit)
                .await
                .unwrap();
            assert_eq!(load(&db).await.unwrap(), SecuritySettings::default());
            assert!(s.mfa_required("admin") && !s.mfa_required("auditor"));
            api.password_min_length = 3;
            assert!(
                SecuritySettings::from_api(&api)
                    .unwrap_err()
                    .contains("password policy")
            );
        }
    }
}
