//! `jg ssh-cert` (and `jg login`): a key pair of jg's own in the state
//! directory (`ssh/id_ed25519`, made once) and a short-lived OpenSSH user
//! certificate for it (`ssh/id_ed25519-cert.pub`), signed by the gateway's
//! user CA and valid no longer than the login. `jg ssh-config` points
//! `IdentityFile` and `CertificateFile` at them, so plain `ssh ENDPOINT`
//! logs in with no key registered; logging out ends the certificate too.
//!
//! `jg ssh-cert --no-pty --no-port-forwarding --source-address RANGE
//! --force-command CMD` gets one that permits less (for a script or a
//! hand-over): the gateway's front door honours it as `sshd` would.

use std::path::{Path, PathBuf};

use anyhow::Context;
use jumpgate_api_types::ssh::{IssueSshCert, SshCert};
use jumpgate_client::Client;
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;

/// The private key file in the state directory `dir`.
pub(crate) fn key_file(dir: &Path) -> PathBuf {
    dir.join("ssh").join("id_ed25519")
}

/// The certificate file beside it (OpenSSH's naming: `KEY-cert.pub`).
pub(crate) fn cert_file(dir: &Path) -> PathBuf {
    dir.join("ssh").join("id_ed25519-cert.pub")
}

/// The key pair's public half in OpenSSH's one-line form, made (and
/// written, private key 0600) if there is none.
fn key_pair(dir: &Path) -> anyhow::Result<String> {
    let key = key_file(dir);
    let public = key.with_extension("pub");
    if key.exists() {
        let text =
            std::fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?;
        let private = PrivateKey::from_openssh(text.trim())
            .with_context(|| format!("{} is not an OpenSSH private key", key.display()))?;
        return private
            .public_key()
            .to_openssh()
            .context("encoding the public key");
    }
    let mut seed = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seed).context("no random numbers")?;
    let mut private = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    private.set_comment("jumpgate (jg login)");
    let pem = private
        .to_openssh(LineEnding::LF)
        .context("encoding the private key")?;
    let line = private
        .public_key()
        .to_openssh()
        .context("encoding the public key")?;
    let ssh = key.parent().unwrap_or(dir);
    jumpgate_net::fs::create_private_dir(ssh)
        .with_context(|| format!("creating {}", ssh.display()))?;
    jumpgate_net::fs::write_atomic(&key, pem.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", key.display()))?;
    jumpgate_net::fs::write_atomic(&public, format!("{line}\n").as_bytes(), 0o644)
        .with_context(|| format!("writing {}", public.display()))?;
    Ok(line)
}

/// `jg ssh-cert`'s options: what the certificate permits less of.
#[derive(Clone, Debug, Default, clap::Args)]
pub(crate) struct SshCertArgs {
    /// No terminal: leave out `permit-pty` (commands still run).
    #[arg(long)]
    no_pty: bool,
    /// No port forwarding (`ssh -L`, `-W`): leave out
    /// `permit-port-forwarding`.
    #[arg(long)]
    no_port_forwarding: bool,
    /// Only from these addresses (critical option `source-address`):
    /// ranges such as 10.0.0.0/8 or 192.0.2.7, comma-separated or the
    /// option repeated.
    #[arg(long, value_name = "RANGES")]
    source_address: Vec<String>,
    /// Every session runs CMD instead of what is asked (critical option
    /// `force-command`; the command asked is in SSH_ORIGINAL_COMMAND).
    #[arg(long, value_name = "CMD")]
    force_command: Option<String>,
}

/// Gets a new certificate for jg's key pair (made if needed), restricted
/// as `args` asks, and writes it.
pub(crate) async fn refresh(
    client: &Client,
    dir: &Path,
    args: &SshCertArgs,
) -> anyhow::Result<SshCert> {
    let public = key_pair(dir)?;
    let req = IssueSshCert {
        public_key: public,
        no_pty: args.no_pty,
        no_port_forwarding: args.no_port_forwarding,
        source_address: args.source_address.clone(),
        force_command: args.force_command.clone(),
    };
    let cert = client
        .issue_ssh_cert_with(&req)
        .await
        .context("getting an SSH certificate")?;
    let path = cert_file(dir);
    jumpgate_net::fs::write_atomic(&path, format!("{}\n", cert.certificate).as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(cert)
}

/// `jg ssh-cert`.
pub(crate) async fn run(client: &Client, dir: &Path, args: &SshCertArgs) -> anyhow::Result<()> {
    let cert = refresh(client, dir, args).await?;
    outln!(
        "SSH certificate for {} until {} in {} ({})",
        cert.principal,
        cert.valid_before,
        cert_file(dir).display(),
        cert.key_id
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_pair_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = key_pair(dir.path()).unwrap();
        assert!(first.starts_with("ssh-ed25519 AAAA"), "{first}");
        let again = key_pair(dir.path()).unwrap();
        assert_eq!(
            first.split_whitespace().nth(1),
            again.split_whitespace().nth(1)
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_file(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
