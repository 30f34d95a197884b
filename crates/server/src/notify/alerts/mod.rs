//! Mail alerts (issue #17, part 1): alert rules turn audit entries into
//! mail, sent through the site's mail server (`[smtp]`).
//!
//! ```text
//! events (hash chain) ── notify::run (lease `alerts`) ── Alerts::take ──► alert_mail
//!   per entry × matching rule: token bucket → `pending` (each) / `digest` / `limited`
//!                                                     │ wake
//!                                                     ▼
//!                        smtp::run: due digests folded into one `pending` mail,
//!                        `pending` sent with backoff → `sent` / `dead`
//! ```
//!
//! - `rules`: the rules, their matching and rate limit; `templates`: the
//!   subject and body with the entry's allowed fields; `smtp`: the mail
//!   server connection and the worker; `http`: the routes.
//! - Rules and recipients are read when an entry is taken: a mail goes to
//!   the addresses the rule named at that moment.
//! - Without `[smtp]` nothing runs: entries are not taken, and a later
//!   start with `[smtp]` begins at the chain's head (no mail about the past).

pub(crate) mod http;
pub(crate) mod rules;
pub(crate) mod schema;
pub(crate) mod smtp;
pub(crate) mod templates;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Notify;

use self::rules::Rule;
use crate::lease::Job;
use crate::notify::{Consumer, Entry, TakeFuture};
use crate::state::AppState;
use crate::store::{Store, WriteTx, sql};

/// The mail alerts' reader of the audit chain.
#[derive(Debug, Default)]
pub(crate) struct Alerts {
    /// Wakes the mail worker after entries were queued.
    pub(crate) wake: Arc<Notify>,
}

impl Consumer for Alerts {
    fn name(&self) -> &'static str {
        "alerts"
    }

    fn job(&self) -> Job {
        Job::Alerts
    }

    fn take<'a>(&'a self, tx: &'a mut WriteTx, entries: &'a [Entry]) -> TakeFuture<'a> {
        Box::pin(take(tx, entries, crate::ids::now_ms()))
    }

    fn taken(&self) {
        self.wake.notify_one();
    }
}

/// Queues what `entries` call for under the rules as they are now, and
/// stores the rules' buckets, in `tx`.
///
/// # Errors
/// The store failed (nothing is queued: the entries come again).
pub(crate) async fn take(tx: &mut WriteTx, entries: &[Entry], now: i64) -> Result<(), sqlx::Error> {
    let mut rules = rules::all(tx).await?;
    if rules.is_empty() {
        return Ok(());
    }
    let mut addresses: BTreeMap<String, String> = BTreeMap::new();
    let mut touched = vec![false; rules.len()];
    for entry in entries {
        if entry.actor == smtp::ACTOR {
            // The mailer's own steps (its read of the SMTP password from
            // the vault): mailing them would read the password again, and
            // a rule on `vault-read` (or `all`) would feed itself.
            continue;
        }
        for (i, rule) in rules.iter_mut().enumerate() {
            if !rule.matches(entry) {
                continue;
            }
            touched[i] = true;
            let mut to = match addresses.get(&rule.name) {
                Some(a) => a.clone(),
                None => {
                    let a = rules::addresses(tx, &rule.recipients).await?;
                    let a = serde_json::to_string(&a).unwrap_or_else(|_| "[]".into());
                    addresses.insert(rule.name.clone(), a.clone());
                    a
                }
            };
            if rule.recipients.approvers && entry.action.starts_with("access-") {
                // This entry's approvers, besides the rule's fixed list:
                // its group's approval setting, now; for an elevation
                // request, the holders of `epm-approve` on its group.
                let mut all: Vec<String> = serde_json::from_str(&to).unwrap_or_default();
                let elevation = crate::access::kind_of(tx, &entry.target).await?.as_deref()
                    == Some(crate::access::ELEVATION);
                let approvers = if elevation {
                    rules::elevation_approver_addresses(tx, &entry.group_names(), &entry.actor)
                        .await?
                } else {
                    rules::approver_addresses(tx, &entry.group_names(), &entry.actor).await?
                };
                for a in approvers {
                    if !all.iter().any(|o| o.eq_ignore_ascii_case(&a)) {
                        all.push(a);
                    }
                }
                to = serde_json::to_string(&all).unwrap_or_else(|_| "[]".into());
            }
            let (state, due) = if to == "[]" {
                ("dead", now)
            } else if !rule.take_token(now) {
                ("limited", now)
            } else if rule.digest_secs > 0 {
                ("digest", digest_due(tx, rule, now).await?)
            } else {
                ("pending", now)
            };
            queue(tx, rule, entry, &to, state, due, now).await?;
            if state == "dead" {
                tracing::warn!(rule = %rule.name, "alert: no recipient of the rule has a mail address");
            } else if state == "limited" {
                tracing::info!(rule = %rule.name, entry = entry.id, "alert held back by the rule's rate limit");
            }
        }
    }
    for (rule, touched) in rules.iter().zip(touched) {
        if touched {
            rules::save_bucket(tx, rule).await?;
        }
    }
    Ok(())
}

/// When the rule's open digest window ends (the window opens at its first
/// entry).
async fn digest_due(tx: &mut WriteTx, rule: &Rule, now: i64) -> Result<i64, sqlx::Error> {
    let open: Option<i64> = sql!(tx, |c| {
        sqlx::query_scalar(
        "SELECT CAST(MIN(due_at) AS BIGINT) FROM alert_mail WHERE rule = $1 AND state = 'digest'"
    )
    .bind(&rule.name)
    .fetch_one(&mut *c)
    .await
    })?;
    Ok(open.unwrap_or(now + rule.digest_secs * 1000))
}

async fn queue(
    tx: &mut WriteTx,
    rule: &Rule,
    entry: &Entry,
    to: &str,
    state: &str,
    due: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let subject = templates::one_line(&templates::render(&rule.subject, entry, &rule.name));
    let body = templates::render(&rule.body, entry, &rule.name);
    sql!(tx, |c| {
        sqlx::query(
        "INSERT INTO alert_mail (rule, entry_id, recipients, subject, body, state, due_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    .bind(&rule.name)
    .bind(entry.id)
    .bind(to)
    .bind(&subject)
    .bind(&body)
    .bind(state)
    .bind(due)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|_| ())
    })
}

/// Folds each rule's digest rows whose window ended into one `pending`
/// mail (its subject counts them, its body lists each).
///
/// # Errors
/// The store failed.
pub(crate) async fn fold_digests(db: &Store, now: i64) -> Result<(), sqlx::Error> {
    let due: Vec<String> = {
        let mut c = db.conn().await?;
        sql!(c, |c| sqlx::query_scalar(
            "SELECT DISTINCT rule FROM alert_mail WHERE state = 'digest' AND due_at <= $1"
        )
        .bind(now)
        .fetch_all(&mut *c)
        .await)?
    };
    for rule in due {
        let mut tx = db.write().await?;
        let rows: Vec<(i64, i64, String, String, String)> = sql!(tx, |c| sqlx::query_as(
            "SELECT id, entry_id, recipients, subject, body FROM alert_mail
              WHERE rule = $1 AND state = 'digest' ORDER BY id"
        )
        .bind(&rule)
        .fetch_all(&mut *c)
        .await)?;
        let Some(first) = rows.first() else {
            continue;
        };
        let mut to: Vec<String> = Vec::new();
        let mut body = format!(
            "Jumpgate recorded {} event(s) that alert rule {rule} watches.\n",
            rows.len()
        );
        for (n, (_, _, recipients, subject, text)) in rows.iter().enumerate() {
            for a in serde_json::from_str::<Vec<String>>(recipients).unwrap_or_default() {
                if !to.iter().any(|t| t.eq_ignore_ascii_case(&a)) {
                    to.push(a);
                }
            }
            body.push_str(&format!(
                "\n--- {} of {}: {subject}\n\n{text}\n",
                n + 1,
                rows.len()
            ));
        }
        let subject = format!("[Jumpgate] {rule}: {} alert(s)", rows.len());
        let to = serde_json::to_string(&to).unwrap_or_else(|_| "[]".into());
        let (first_entry, last_id) = (first.1, rows.last().map_or(first.0, |r| r.0));
        sql!(tx, |c| {
            sqlx::query(
            "UPDATE alert_mail SET state = 'digested' WHERE rule = $1 AND state = 'digest' AND id <= $2"
        )
        .bind(&rule)
        .bind(last_id)
        .execute(&mut *c)
        .await
        .map(|_| ())
        })?;
        sql!(tx, |c| {
            sqlx::query(
            "INSERT INTO alert_mail (rule, entry_id, recipients, subject, body, state, due_at, created_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6)"
        )
        .bind(&rule)
        .bind(first_entry)
        .bind(&to)
        .bind(&subject)
        .bind(&body)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ())
        })?;
        tx.commit().await?;
    }
    Ok(())
}

/// Starts the reader and the mail worker on the gateway's tasks, when
/// `[smtp]` is set.
pub(crate) fn start(st: &AppState) {
    let Some(mailer) = mailer(&st.config, &st.db, &st.keys) else {
        return;
    };
    let alerts = Arc::new(Alerts::default());
    let wake = Arc::clone(&alerts.wake);
    st.tasks.spawn(crate::notify::run(
        st.db.clone(),
        Arc::clone(&st.lease),
        alerts,
        st.shutdown.clone(),
    ));
    st.tasks
        .spawn(smtp::run(st.db.clone(), mailer, wake, st.shutdown.clone()));
}

/// The mailer for `[smtp]`, if set.
pub(crate) fn mailer(
    config: &crate::config::Config,
    db: &Store,
    keys: &crate::keys::Keyring,
) -> Option<smtp::Mailer> {
    config
        .smtp
        .clone()
        .map(|c| smtp::Mailer::new(c, db.clone(), keys.clone()))
}

/// Reads one mail of the queue (tests).
#[cfg(test)]
pub(crate) async fn queued(
    e: &mut impl crate::store::Exec,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    sql!(e, |c| sqlx::query_as(
        "SELECT rule, state, subject FROM alert_mail ORDER BY id"
    )
    .fetch_all(&mut *c)
    .await)
}

#[cfg(test)]
mod tests;
