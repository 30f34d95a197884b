//! Short-lived SSH user certificates (issue #16): at `jg login` the client
//! sends a public key and gets an OpenSSH user certificate for it, signed
//! by the user CA (`user_ca`). Principal: the user's name. Valid from a
//! minute ago (clocks differ) until the login token expires or `[ssh]
//! certificate_lifetime` (12 h by default) has passed, whichever is
//! sooner. Its key id names the user, the login (a prefix of the token's
//! hash) and the serial. Every issued certificate is recorded with the
//! login token's hash: the front door accepts a certificate only while
//! that login is live, so logging out, a revoked session, a locked or
//! deleted account refuse it too.
//!
//! A certificate permits a terminal (`permit-pty`) and port forwarding
//! (`permit-port-forwarding`) unless its holder asked for less (`jg
//! ssh-cert --no-pty --no-port-forwarding`), and may carry the critical
//! options `source-address` and `force-command`. The front door honours
//! them as `sshd` does ([`Rules`]): a PTY request or a `direct-tcpip`
//! channel the certificate does not permit is refused, a login from
//! outside `source-address` is refused, `force-command` runs instead of
//! whatever was asked, and a certificate with a critical option the front
//! door does not know is refused whole. Agent and X11 forwarding are
//! never offered, whatever the certificate says.

use std::net::IpAddr;
use std::time::Duration;

use jumpgate_api_types::ssh::{IssueSshCert, SshCert};
use jumpgate_net::allow::{Cidr, parse_cidrs};
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::{Certificate, HashAlg, PrivateKey, PublicKey};

use super::SshError;
use crate::identity::{self, Credential, UserRecord};
use crate::ids::{self, UserId, random_bytes};
use crate::store::{AuditAction, AuditEvent, Store, sql};

/// The bounds of `[ssh] certificate_lifetime` (the longest a certificate
/// is valid, whatever the login's lifetime; 12 h by default).
pub(crate) const LIFETIME_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(7 * 86400));
/// The longest `force-command` taken.
const MAX_FORCE_COMMAND: usize = 1024;
/// The most `source-address` ranges taken.
const MAX_SOURCE_ADDRESSES: usize = 32;
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

/// What a certificate request restricts, checked: the extensions left
/// out and the critical options, as they go into the certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Asked {
    no_pty: bool,
    no_port_forwarding: bool,
    source_address: Option<String>,
    force_command: Option<String>,
}

impl Asked {
    /// Checks a request's restrictions.
    ///
    /// # Errors
    /// A source address that is not a range, too many of them, an empty,
    /// too long or multi-line forced command.
    pub(crate) fn of(req: &IssueSshCert) -> Result<Self, SshError> {
        let bad = SshError::BadKey;
        let source_address = if req.source_address.is_empty() {
            None
        } else {
            if req.source_address.len() > MAX_SOURCE_ADDRESSES {
                return Err(bad(format!(
                    "at most {MAX_SOURCE_ADDRESSES} source addresses"
                )));
            }
            let list: Vec<Cidr> = req
                .source_address
                .iter()
                .flat_map(|s| s.split(','))
                .map(|s| s.trim().parse::<Cidr>())
                .collect::<Result<_, _>>()
                .map_err(|e| bad(format!("source address: {e}")))?;
            Some(
                list.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            )
        };
        let force_command = match &req.force_command {
            None => None,
            Some(c) if c.trim().is_empty() => {
                return Err(bad("force command: empty".into()));
            }
            Some(c) if c.len() > MAX_FORCE_COMMAND => {
                return Err(bad(format!(
                    "force command: at most {MAX_FORCE_COMMAND} bytes"
                )));
            }
            Some(c) if c.chars().any(char::is_control) => {
                return Err(bad("force command: one line, no control characters".into()));
            }
            Some(c) => Some(c.clone()),
        };
        Ok(Self {
            no_pty: req.no_pty,
            no_port_forwarding: req.no_port_forwarding,
            source_address,
            force_command,
        })
    }

    /// The audit entry's words for them (empty: none).
    fn describe(&self) -> String {
        let mut w = Vec::new();
        if self.no_pty {
            w.push("no-pty".to_owned());
        }
        if self.no_port_forwarding {
            w.push("no-port-forwarding".to_owned());
        }
        if let Some(s) = &self.source_address {
            w.push(format!("source-address={s}"));
        }
        if self.force_command.is_some() {
            w.push("force-command".to_owned());
        }
        w.join(" ")
    }
}

/// Issues a certificate for `public_key` (OpenSSH one-line form) to `user`,
/// bound to the login `login` (a user's token) that expires at
/// `login_expires_ms`, valid `lifetime` at most, restricted as `asked`.
/// Audited `ssh-cert-issue`.
///
/// # Errors
/// A bad public key, a login that is not a user's, the store.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn issue(
    db: &Store,
    ca: &PrivateKey,
    user_id: &UserId,
    username: &str,
    login: &Credential,
    login_expires_ms: i64,
    lifetime: Duration,
    public_key: &str,
    asked: &Asked,
) -> Result<SshCert, SshError> {
    let parsed = super::user_keys::parse(public_key)?;
    let hash = login
        .user_hash()
        .ok_or_else(|| SshError::BadKey("certificates are for users' logins".into()))?;
    let now = now_secs();
    let login_end = u64::try_from(login_expires_ms / 1000).unwrap_or(0);
    let valid_before = login_end.min(now + lifetime.as_secs());
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
    if !asked.no_pty {
        b.extension(PERMIT_PTY, "").map_err(bad)?;
    }
    if !asked.no_port_forwarding {
        b.extension(PERMIT_PORT_FORWARDING, "").map_err(bad)?;
    }
    if let Some(s) = &asked.source_address {
        b.critical_option(SOURCE_ADDRESS, s.as_str()).map_err(bad)?;
    }
    if let Some(c) = &asked.force_command {
        b.critical_option(FORCE_COMMAND, c.as_str()).map_err(bad)?;
    }
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
    let mut detail = format!(
        "serial={serial:016x} fingerprint={} login={} valid_before={}",
        parsed.fingerprint,
        login_ref(hash),
        ids::rfc3339(valid_before_ms)
    );
    let restricted = asked.describe();
    if !restricted.is_empty() {
        detail.push(' ');
        detail.push_str(&restricted);
    }
    w.audit(AuditEvent::new(username, AuditAction::SshCertIssue, username).detail(detail))
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
    #[error("it has the critical option `{0}`, which this gateway does not support")]
    UnknownOption(String),
    #[error("its source-address option is not a list of address ranges")]
    BadSourceAddress,
    #[error("it is not valid from {0} (source-address)")]
    SourceAddress(IpAddr),
    #[error(transparent)]
    Ssh(#[from] SshError),
}

/// The extension that permits a PTY.
const PERMIT_PTY: &str = "permit-pty";
/// The extension that permits `direct-tcpip` channels (`ssh -L`, `-W`).
const PERMIT_PORT_FORWARDING: &str = "permit-port-forwarding";
/// The critical option naming the addresses a login may come from.
const SOURCE_ADDRESS: &str = "source-address";
/// The critical option naming the one command sessions run.
const FORCE_COMMAND: &str = "force-command";

/// What a connection may do: everything for a key or password login; what
/// its certificate says for a certificate login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rules {
    /// A PTY may be asked for (`permit-pty`).
    pub(crate) pty: bool,
    /// `direct-tcpip` channels may be opened (`permit-port-forwarding`).
    pub(crate) port_forwarding: bool,
    /// Every session runs this instead (`force-command`).
    pub(crate) force_command: Option<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            pty: true,
            port_forwarding: true,
            force_command: None,
        }
    }
}

impl Rules {
    /// What `cert` permits a client at `peer`, read as `sshd` reads it:
    /// unknown extensions are ignored, an unknown critical option refuses
    /// the certificate.
    ///
    /// # Errors
    /// An unknown critical option, a bad or unmet `source-address`.
    pub(crate) fn of(cert: &Certificate, peer: IpAddr) -> Result<Self, Refused> {
        let mut force_command = None;
        for (name, value) in cert.critical_options().iter() {
            match name.as_str() {
                SOURCE_ADDRESS => {
                    let ranges = parse_cidrs(value).map_err(|_| Refused::BadSourceAddress)?;
                    if !ranges.iter().any(|r| r.contains(peer)) {
                        return Err(Refused::SourceAddress(peer));
                    }
                }
                FORCE_COMMAND => force_command = Some(value.clone()),
                other => return Err(Refused::UnknownOption(other.chars().take(64).collect())),
            }
        }
        let ext = cert.extensions();
        Ok(Self {
            pty: ext.contains_key(PERMIT_PTY),
            port_forwarding: ext.contains_key(PERMIT_PORT_FORWARDING),
            force_command,
        })
    }
}

/// Checks a certificate (its signature over the key already verified by
/// russh, its possession proven by the client) for `account` connecting
/// from `peer`: signed by `ca`, a user certificate naming the account,
/// within its window, its critical options understood and met, issued
/// here to that account for that key, and the login behind it still live.
/// The login's credential is what the connection's sessions carry; the
/// rules are what the certificate permits them.
pub(crate) async fn check(
    db: &Store,
    ca: &PublicKey,
    cert: &Certificate,
    account: &UserRecord,
    peer: IpAddr,
) -> Result<(Credential, Rules), Refused> {
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
    let rules = Rules::of(cert, peer)?;
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
        Ok(s) if s.user_id() == Some(&account.id) => Ok((credential, rules)),
        _ => Err(Refused::LoginEnded),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    /// A certificate signed by `ca` with these extensions and critical
    /// options.
    fn cert(ca: &PrivateKey, ext: &[&str], crit: &[(&str, &str)]) -> Certificate {
        let now = now_secs();
        let user = key(2);
        let mut b = Builder::new(
            vec![7; 32],
            user.public_key().key_data().clone(),
            now - 60,
            now + 600,
        )
        .unwrap();
        b.cert_type(CertType::User).unwrap();
        b.key_id("t").unwrap();
        b.valid_principal("alice").unwrap();
        for e in ext {
            b.extension(*e, "").unwrap();
        }
        for (n, v) in crit {
            b.critical_option(*n, *v).unwrap();
        }
        b.sign(ca).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rules_follow_the_certificate_as_sshd_reads_it() {
        let ca = key(1);
        let here = ip("127.0.0.1");
        let all = cert(
            &ca,
            &[PERMIT_PTY, PERMIT_PORT_FORWARDING, "permit-X11-forwarding"],
            &[],
        );
        assert_eq!(Rules::of(&all, here).unwrap(), Rules::default());
        let none = cert(&ca, &["permit-user-rc"], &[]);
        let r = Rules::of(&none, here).unwrap();
        assert!(!r.pty && !r.port_forwarding && r.force_command.is_none());
        let forced = cert(&ca, &[PERMIT_PTY], &[(FORCE_COMMAND, "uptime")]);
        let r = Rules::of(&forced, here).unwrap();
        assert!(r.pty && !r.port_forwarding);
        assert_eq!(r.force_command.as_deref(), Some("uptime"));
        // source-address: the peer must be inside one of the ranges.
        let from = cert(&ca, &[], &[(SOURCE_ADDRESS, "10.0.0.0/8,127.0.0.1/32")]);
        assert!(Rules::of(&from, here).is_ok());
        assert!(Rules::of(&from, ip("10.2.3.4")).is_ok());
        assert!(matches!(
            Rules::of(&from, ip("192.0.2.1")),
            Err(Refused::SourceAddress(_))
        ));
        let junk = cert(&ca, &[], &[(SOURCE_ADDRESS, "somewhere")]);
        assert!(matches!(
            Rules::of(&junk, here),
            Err(Refused::BadSourceAddress)
        ));
        // A critical option the gateway does not know refuses it whole.
        let unknown = cert(&ca, &[PERMIT_PTY], &[("verify-required", "")]);
        let err = Rules::of(&unknown, here).unwrap_err().to_string();
        assert!(err.contains("verify-required"), "{err}");
    }

    #[test]
    fn requests_are_checked_and_described() {
        let req = |f: &dyn Fn(&mut IssueSshCert)| {
            let mut r = IssueSshCert {
                public_key: String::new(),
                ..IssueSshCert::default()
            };
            f(&mut r);
            Asked::of(&r)
        };
        assert_eq!(req(&|_| {}).unwrap(), Asked::default());
        let a = req(&|r| {
            r.no_pty = true;
            r.source_address = vec!["10.1.2.3/8, 127.0.0.1".into(), "::1".into()];
            r.force_command = Some("uptime".into());
        })
        .unwrap();
        assert_eq!(
            a.source_address.as_deref(),
            Some("10.0.0.0/8,127.0.0.1,::1")
        );
        assert_eq!(
            a.describe(),
            "no-pty source-address=10.0.0.0/8,127.0.0.1,::1 force-command"
        );
        for bad in [
            req(&|r| r.source_address = vec!["nowhere".into()]),
            req(&|r| r.force_command = Some(" ".into())),
            req(&|r| r.force_command = Some("a\nb".into())),
            req(&|r| r.force_command = Some("x".repeat(2000))),
        ] {
            assert!(matches!(bad, Err(SshError::BadKey(_))), "{bad:?}");
        }
    }
}
