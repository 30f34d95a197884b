//! Sending alert mail: the `[smtp]` connection (`lettre` over rustls with
//! aws-lc-rs; STARTTLS required, implicit TLS, or plain text to a loopback
//! host only) and the worker that drains the mail queue (`alert_mail`)
//! with backoff ([`crate::notify::retry_after`]: 1 s doubling to 10 min,
//! at most [`MAX_ATTEMPTS`] tries).
//!
//! The SMTP password is a vault secret read when the connection is first
//! made (its read audited as `vault-read` by `(alerts)`) and again after
//! the server refuses it (a rotated password is picked up).

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use super::rules::AlertError;
use crate::config::{SmtpConfig, SmtpSecurity};
use crate::keys::Keyring;
use crate::store::{Store, sql};

/// Who reads the SMTP password from the vault (its audit entry's actor).
pub(crate) const ACTOR: &str = "(alerts)";
/// Retries of a mail before it is `dead`.
const MAX_ATTEMPTS: i64 = 12;
/// How often the worker looks at the queue when nothing woke it.
const POLL: Duration = Duration::from_secs(1);
/// Mails sent per round.
const ROUND: i64 = 50;
const TIMEOUT: Duration = Duration::from_secs(30);

/// The connection to the mail server, made on first use and kept (pooled).
#[derive(Clone)]
pub(crate) struct Mailer {
    config: SmtpConfig,
    db: Store,
    keys: Keyring,
    transport: Arc<Mutex<Option<AsyncSmtpTransport<Tokio1Executor>>>>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.config.host)
            .field("port", &self.config.port)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    pub(crate) fn new(config: SmtpConfig, db: Store, keys: Keyring) -> Self {
        Self {
            config,
            db,
            keys,
            transport: Arc::default(),
        }
    }

    async fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, AlertError> {
        let mut t = self.transport.lock().await;
        if let Some(t) = &*t {
            return Ok(t.clone());
        }
        let c = &self.config;
        let tls = || -> Result<TlsParameters, AlertError> {
            let mut b = TlsParameters::builder(c.host.clone());
            if let Some(f) = &c.ca_file {
                let pem = std::fs::read(f).map_err(|e| {
                    AlertError::Smtp(format!("cannot read smtp.ca_file {}: {e}", f.display()))
                })?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| AlertError::Smtp(format!("smtp.ca_file {}: {e}", f.display())))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| AlertError::Smtp(format!("TLS settings: {e}")))
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host)
            .port(c.port)
            .timeout(Some(TIMEOUT))
            .tls(match c.security {
                SmtpSecurity::StartTls => Tls::Required(tls()?),
                SmtpSecurity::Tls => Tls::Wrapper(tls()?),
                SmtpSecurity::None => Tls::None,
            });
        if let Some((user, secret)) = &c.auth {
            let (_, value) =
                crate::vault::get_as(&self.db, &self.keys, secret, None, ACTOR, "smtp password")
                    .await
                    .map_err(|e| AlertError::Smtp(format!("smtp.password_secret: {e}")))?;
            let pw = std::str::from_utf8(&value)
                .map_err(|_| AlertError::Smtp("smtp.password_secret: not UTF-8 text".into()))?;
            let pw = pw.strip_suffix('\n').unwrap_or(pw);
            b = b.credentials(Credentials::new(user.clone(), pw.to_owned()));
        }
        let built = b.build();
        *t = Some(built.clone());
        Ok(built)
    }

    /// Sends one plain-text mail to `to`; answers the server's reply.
    ///
    /// # Errors
    /// A bad address, no connection, or the server refused (the message
    /// never holds the password).
    pub(crate) async fn send(
        &self,
        to: &[String],
        subject: &str,
        body: &str,
    ) -> Result<String, AlertError> {
        let from: Mailbox = self
            .config
            .sender
            .parse()
            .map_err(|e| AlertError::Smtp(format!("smtp.sender: {e}")))?;
        let mut m = Message::builder()
            .from(from)
            .subject(super::templates::one_line(subject))
            .header(ContentType::TEXT_PLAIN);
        for a in to {
            m = m.to(a
                .parse()
                .map_err(|e| AlertError::Smtp(format!("`{a}`: {e}")))?);
        }
        let msg = m
            .body(body.to_owned())
            .map_err(|e| AlertError::Smtp(format!("cannot build the mail: {e}")))?;
        let t = self.transport().await?;
        match t.send(msg).await {
            Ok(r) => Ok(format!(
                "{} {}",
                r.code(),
                r.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => {
                // The next try connects (and reads the password) again.
                *self.transport.lock().await = None;
                Err(AlertError::Smtp(format!(
                    "mail server {}:{}: {e}",
                    self.config.host, self.config.port
                )))
            }
        }
    }
}

/// A queued mail due for sending.
type Due = (i64, String, String, String, i64);

/// The worker: folds due digests, sends due mail, until `stop`. Woken by
/// `wake` when entries were queued.
pub(crate) async fn run(db: Store, mailer: Mailer, wake: Arc<Notify>, stop: CancellationToken) {
    loop {
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if let Err(e) = round(&db, &mailer).await {
            tracing::warn!(error = %e, "alert mail: cannot read the queue; retrying");
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = &mut woken => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One pass over the queue: due digests folded into mails, due mails sent.
///
/// # Errors
/// The store failed.
pub(crate) async fn round(db: &Store, mailer: &Mailer) -> Result<(), sqlx::Error> {
    let now = crate::ids::now_ms();
    super::fold_digests(db, now).await?;
    let due: Vec<Due> = {
        let mut c = db.conn().await?;
        sql!(c, |c| sqlx::query_as(
            "SELECT id, recipients, subject, body, attempts FROM alert_mail
              WHERE state = 'pending' AND due_at <= $1 ORDER BY id LIMIT $2"
        )
        .bind(now)
        .bind(ROUND)
        .fetch_all(&mut *c)
        .await)?
    };
    for (id, recipients, subject, body, attempts) in due {
        let to: Vec<String> = serde_json::from_str(&recipients).unwrap_or_default();
        let result = mailer.send(&to, &subject, &body).await;
        let done = crate::ids::now_ms();
        let mut tx = db.write().await?;
        match result {
            Ok(_) => {
                sql!(tx, |c| sqlx::query(
                    "UPDATE alert_mail SET state = 'sent', sent_at = $1, attempts = attempts + 1,
                            last_error = NULL WHERE id = $2"
                )
                .bind(done)
                .bind(id)
                .execute(&mut *c)
                .await
                .map(|_| ()))?;
            }
            Err(e) => {
                let attempts = attempts + 1;
                let dead = attempts >= MAX_ATTEMPTS;
                // The schedule webhooks use too: 1 s, doubling, 10 min at most.
                let wait = i64::try_from(crate::notify::retry_after(attempts).as_millis())
                    .unwrap_or(i64::MAX);
                if dead {
                    tracing::error!(mail = id, error = %e, "alert mail given up after its retries");
                } else {
                    tracing::warn!(mail = id, attempts, error = %e, "alert mail not sent; will retry");
                }
                sql!(tx, |c| sqlx::query(
                    "UPDATE alert_mail SET state = $1, due_at = $2, attempts = $3, last_error = $4
                      WHERE id = $5"
                )
                .bind(if dead { "dead" } else { "pending" })
                .bind(done + wait)
                .bind(attempts)
                .bind(e.to_string())
                .bind(id)
                .execute(&mut *c)
                .await
                .map(|_| ()))?;
            }
        }
        tx.commit().await?;
    }
    Ok(())
}
