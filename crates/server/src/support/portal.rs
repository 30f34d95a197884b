//! The portal's branding (the `portal` row of `settings`) and what the
//! portal shows anyone: the site's name, texts, colours, logo and public
//! queues — nothing about technicians, endpoints or who waits.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jumpgate_api_types::support as api;

use super::SupportError;
use super::queues;
use crate::store::{AuditAction, AuditEvent, Exec, Store, sql};

/// The `settings` row holding the branding.
const KEY: &str = "portal";
/// Largest logo, decoded.
pub(crate) const LOGO_MAX: usize = 64 * 1024;
/// Longest site name and text (characters).
const NAME_MAX: usize = 80;
const TEXT_MAX: usize = 2000;

/// The stored branding (the API's shape, the logo base64).
pub(crate) async fn load(db: &Store) -> Result<api::PortalSettings, sqlx::Error> {
    let mut c = db.conn().await?;
    load_in(&mut c).await
}

async fn load_in(e: &mut dyn Exec) -> Result<api::PortalSettings, sqlx::Error> {
    let raw: Option<String> = sql!(e, |c| sqlx::query_scalar(
        "SELECT value FROM settings WHERE key = $1"
    )
    .bind(KEY)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(raw
        .and_then(|r| match serde_json::from_str(&r) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "stored portal settings are unreadable; using defaults");
                None
            }
        })
        .unwrap_or_else(defaults))
}

fn defaults() -> api::PortalSettings {
    api::PortalSettings {
        site_name: "Remote support".into(),
        colors: api::PortalColors::default(),
        texts: api::PortalTexts {
            welcome: "Welcome. A technician will help you in a moment.".into(),
            key_help: "Enter the session key your technician gave you.".into(),
            form_help: "No key? Tell us what you need and we will be with you shortly.".into(),
            privacy: String::new(),
        },
        logo: None,
    }
}

fn colour(field: &str, v: &str) -> Result<(), SupportError> {
    let ok = v.len() == 7 && v.starts_with('#') && v[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(SupportError::Invalid(format!(
            "colors.{field}: `{v}` is not a colour such as #1f6feb"
        )))
    }
}

fn text(field: &str, v: &str, max: usize) -> Result<(), SupportError> {
    if v.chars().count() > max {
        return Err(SupportError::Invalid(format!(
            "{field}: longer than {max} characters"
        )));
    }
    if v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(SupportError::Invalid(format!(
            "{field}: control characters are not allowed"
        )));
    }
    Ok(())
}

/// The logo's media type from its first bytes: PNG or JPEG only (no SVG,
/// which can carry script).
pub(crate) fn logo_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else {
        None
    }
}

/// Checks and stores the branding (`settings-change`, detail `portal`).
/// An absent logo keeps the stored one; `""` removes it.
///
/// # Errors
/// A field that fails its check (named), or the store failed.
pub(crate) async fn save(
    db: &Store,
    mut new: api::PortalSettings,
    actor: &str,
) -> Result<api::PortalSettings, SupportError> {
    let name = new.site_name.trim().to_owned();
    if name.is_empty() {
        return Err(SupportError::Invalid("site_name: must not be empty".into()));
    }
    text("site_name", &name, NAME_MAX)?;
    new.site_name = name;
    colour("primary", &new.colors.primary)?;
    colour("background", &new.colors.background)?;
    colour("text", &new.colors.text)?;
    for (f, v) in [
        ("texts.welcome", &new.texts.welcome),
        ("texts.key_help", &new.texts.key_help),
        ("texts.form_help", &new.texts.form_help),
        ("texts.privacy", &new.texts.privacy),
    ] {
        text(f, v, TEXT_MAX)?;
    }
    let mut w = db.write().await?;
    let before = load_in(&mut w).await?;
    match new.logo.as_deref() {
        None => new.logo = before.logo,
        Some("") => new.logo = None,
        Some(b64) => {
            let bytes = STANDARD
                .decode(b64)
                .map_err(|_| SupportError::Invalid("logo: not base64".into()))?;
            if bytes.len() > LOGO_MAX {
                return Err(SupportError::Invalid(format!(
                    "logo: {} bytes; at most {LOGO_MAX}",
                    bytes.len()
                )));
            }
            if logo_type(&bytes).is_none() {
                return Err(SupportError::Invalid(
                    "logo: must be a PNG or JPEG image".into(),
                ));
            }
        }
    }
    let json = serde_json::to_string(&new).map_err(|e| SupportError::Invalid(e.to_string()))?;
    sql!(w, |c| sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )
    .bind(KEY)
    .bind(&json)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(AuditEvent::new(actor, AuditAction::SettingsChange, "settings").detail("portal"))
        .await?;
    w.commit().await?;
    Ok(new)
}

/// What the portal shows anyone.
pub(crate) async fn info(db: &Store) -> Result<api::PortalInfo, sqlx::Error> {
    let s = load(db).await?;
    let queues = queues::list(db)
        .await?
        .into_iter()
        .filter(|q| q.public)
        .map(|q| api::PortalQueue {
            name: q.name,
            description: q.description,
        })
        .collect();
    Ok(api::PortalInfo {
        site_name: s.site_name,
        texts: s.texts,
        colors: s.colors,
        has_logo: s.logo.is_some(),
        queues,
    })
}

/// The logo's bytes and media type, if one is set.
pub(crate) async fn logo(db: &Store) -> Result<Option<(Vec<u8>, &'static str)>, sqlx::Error> {
    Ok(load(db).await?.logo.and_then(|b| {
        let bytes = STANDARD.decode(b).ok()?;
        let t = logo_type(&bytes)?;
        Some((bytes, t))
    }))
}
