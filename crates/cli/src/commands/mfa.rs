//! `jg mfa enroll|confirm|disable|recovery-codes`: your own second factor.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use jumpgate_api_types::{RecoveryCodes, TotpEnrollment};
use jumpgate_client::Client;

use crate::args::Code;
use crate::input;

#[derive(Debug, Subcommand)]
pub(crate) enum MfaCommand {
    /// Set up TOTP: shows a secret for your authenticator app, then asks
    /// for a code from the app and prints your recovery codes.
    Enroll {
        /// The app's current code (default: asked for once the secret is
        /// shown; read from stdin when it is not a terminal).
        #[arg(long, value_name = "CODE")]
        code: Option<Code>,
        /// Also write the QR code (SVG) to FILE; it holds the secret.
        #[arg(long, value_name = "FILE")]
        qr_file: Option<PathBuf>,
    },
    /// Finish an enrollment started by `jg mfa enroll` without a code.
    Confirm {
        #[arg(long, value_name = "CODE")]
        code: Option<Code>,
    },
    /// Turn MFA off (a TOTP or recovery code proves it is you).
    Disable {
        #[arg(long, value_name = "CODE")]
        code: Option<Code>,
    },
    /// Replace your recovery codes; the old ones stop working.
    RecoveryCodes {
        #[arg(long, value_name = "CODE")]
        code: Option<Code>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

const CODE_PROMPT: &str = "Code from your app: ";
const EITHER_PROMPT: &str = "TOTP or recovery code: ";

pub(crate) async fn run(client: &Client, cmd: MfaCommand) -> anyhow::Result<()> {
    match cmd {
        MfaCommand::Enroll { code, qr_file } => {
            let e = client
                .begin_totp()
                .await
                .context("starting MFA enrollment")?;
            out!("{}", render_enrollment(&e))?;
            if let Some(path) = &qr_file {
                write_private(path, e.qr_svg.as_bytes())
                    .with_context(|| format!("writing the QR code to {}", path.display()))?;
                outln!("QR code written to {}", path.display())?;
            }
            let code = input::code(code, CODE_PROMPT)
                .await
                .context("the enrollment is pending: finish it with jg mfa confirm --code CODE")?;
            confirm(client, &code).await
        }
        MfaCommand::Confirm { code } => {
            let code = input::code(code, CODE_PROMPT).await?;
            confirm(client, &code).await
        }
        MfaCommand::Disable { code } => {
            let code = input::code(code, EITHER_PROMPT).await?;
            client.disable_mfa(&code).await.context("disabling MFA")?;
            outln!("MFA disabled")?;
            Ok(())
        }
        MfaCommand::RecoveryCodes { code, json } => {
            let code = input::code(code, EITHER_PROMPT).await?;
            let codes = client
                .new_recovery_codes(&code)
                .await
                .context("replacing the recovery codes")?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&codes)?)?;
            } else {
                out!("{}", render_codes(&codes))?;
                outln!("Your previous recovery codes no longer work.")?;
            }
            Ok(())
        }
    }
}

async fn confirm(client: &Client, code: &str) -> anyhow::Result<()> {
    let codes = client
        .confirm_totp(code)
        .await
        .context("confirming MFA enrollment")?;
    outln!("MFA is now enabled.")?;
    out!("{}", render_codes(&codes))?;
    Ok(())
}

/// The secret and URL to type or paste into an authenticator app.
fn render_enrollment(e: &TotpEnrollment) -> String {
    format!(
        "Add this account to your authenticator app (scan the URL as a QR code, \
         or type the secret):\n  Secret:  {}\n  URL:     {}\n",
        group4(&e.secret),
        e.otpauth_url
    )
}

/// `ABCDEFGHIJ` → `ABCD EFGH IJ`, easier to type.
fn group4(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Numbered codes and how to treat them.
fn render_codes(codes: &RecoveryCodes) -> String {
    let mut out = String::from(
        "Recovery codes (each works once in place of a TOTP code). \
         They are shown only once: store them somewhere safe now.\n",
    );
    let width = codes.codes.len().to_string().len();
    for (i, c) in codes.codes.iter().enumerate() {
        out.push_str(&format!("  {:>width$}. {c}\n", i + 1));
    }
    out
}

/// Writes `bytes` to a new or truncated file readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` above only applies to a file it creates.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_grouped_in_fours() {
        assert_eq!(
            group4("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
            "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"
        );
        assert_eq!(group4("ABCDEF"), "ABCD EF");
        assert_eq!(group4(""), "");
        let e = TotpEnrollment {
            secret: "ABCDEFGH".into(),
            otpauth_url: "otpauth://totp/x?secret=ABCDEFGH".into(),
            qr_svg: "<svg/>".into(),
        };
        let out = render_enrollment(&e);
        assert!(out.contains("  Secret:  ABCD EFGH\n"), "{out}");
        assert!(
            out.contains("  URL:     otpauth://totp/x?secret=ABCDEFGH\n"),
            "{out}"
        );
    }

    #[test]
    fn recovery_codes_are_numbered_and_shown_once() {
        let codes = RecoveryCodes {
            codes: (1..=10).map(|i| format!("CODE-{i:04}")).collect(),
        };
        let out = render_codes(&codes);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].contains("shown only once"), "{out}");
        assert_eq!(lines[1], "   1. CODE-0001");
        assert_eq!(lines[10], "  10. CODE-0010");
        assert_eq!(lines.len(), 11);
    }

    #[test]
    fn qr_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("qr.svg");
        std::fs::write(&p, "old and longer").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"<svg/>").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "<svg/>");
        let q = dir.path().join("new.svg");
        write_private(&q, b"x").unwrap();
        for f in [&p, &q] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
    }
}
