//! `jg login` and `jg logout`.

use std::path::Path;

use anyhow::{Context, bail};
use jumpgate_api_types::{ErrorCode, LoginResponse};
use jumpgate_client::ClientError;

use super::Ctx;
use crate::args::Code;
use crate::errors::MfaCodeNeeded;
use crate::state::{self, State};
use crate::{input, term};

pub(crate) async fn login(
    ctx: &Ctx,
    user: &str,
    password_file: Option<&Path>,
    totp: Option<Code>,
) -> anyhow::Result<()> {
    // A broken state file must not prevent logging in again.
    let previous = state::load(&ctx.state_dir).ok().flatten();
    let server = match (&ctx.server, &previous) {
        (Some(s), _) => s.clone(),
        (None, Some(p)) => p
            .server
            .parse()
            .context("the saved server is invalid: pass --server")?,
        (None, None) => bail!("no gateway given: pass --server https://HOST:PORT"),
    };
    let fp = match (ctx.ca_fingerprint, &previous) {
        (Some(fp), _) => Some(fp),
        // The saved pin belongs to the saved server only.
        (None, Some(p)) if p.server == server.to_string() => {
            p.ca_fingerprint.as_deref().and_then(|f| f.parse().ok())
        }
        _ => None,
    };
    let password = input::password(password_file, &format!("Password for {user}: ")).await?;
    let totp = totp.map(|c| input::normalize_code(&c.0)).transpose()?;
    let client = ctx.client(server.clone(), fp)?;
    let failed = || format!("login to {server} failed");
    let answer = match client.login(user, &password, totp.as_deref()).await {
        Ok(a) => a,
        Err(e) => match on_login_error(&e, totp.is_some(), term::stdin_is_tty()) {
            Next::Fail => return Err(anyhow::Error::new(e).context(failed())),
            Next::NeedTotpFlag => return Err(MfaCodeNeeded.into()),
            Next::PromptForCode => {
                let code = input::code(None, "TOTP or recovery code: ").await?;
                client
                    .login(user, &password, Some(&code))
                    .await
                    .with_context(failed)?
            }
        },
    };
    let st = State {
        server: server.to_string(),
        ca_fingerprint: fp.map(|f| f.to_string()),
        username: answer.username.clone(),
        token: answer.token.clone(),
        expires_at: answer.expires_at.clone(),
        role: answer.role.clone(),
    };
    state::save(&ctx.state_dir, &st)?;
    outln!(
        "Logged in as {} ({}) until {}",
        answer.username,
        answer.role,
        answer.expires_at
    )?;
    let warned = warnings(&answer);
    for w in &warned {
        eprintln!("{w}");
    }
    // A certificate for the SSH front door, as long as this login; a
    // restricted login (warned above) may not have one yet.
    if warned.is_empty() {
        let authed = client.with_token(answer.token.clone());
        match super::ssh_cert::refresh(
            &authed,
            &ctx.state_dir,
            &super::ssh_cert::SshCertArgs::default(),
        )
        .await
        {
            Ok(c) => outln!("SSH certificate until {}", c.valid_before)?,
            Err(e) => eprintln!("jg: no SSH certificate ({e:#}): run jg ssh-cert later"),
        }
    }
    Ok(())
}

/// What to do when a login attempt fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Report the gateway's answer (including a wrong code).
    Fail,
    /// Ask for a code on the terminal and try once more.
    PromptForCode,
    /// The account needs a code and there is no terminal to ask on.
    NeedTotpFlag,
}

fn on_login_error(err: &ClientError, totp_given: bool, stdin_tty: bool) -> Next {
    match (err.api_code(), totp_given, stdin_tty) {
        (Some(ErrorCode::MfaRequired), false, true) => Next::PromptForCode,
        (Some(ErrorCode::MfaRequired), false, false) => Next::NeedTotpFlag,
        _ => Next::Fail,
    }
}

/// Lines for a session that may only fix the account.
fn warnings(answer: &LoginResponse) -> Vec<&'static str> {
    let mut out = Vec::new();
    if answer.mfa_enrollment_required {
        out.push("jg: your role requires MFA: run jg mfa enroll before anything else");
    }
    if answer.password_change_required {
        out.push("jg: your password expired: run jg passwd before anything else");
    }
    out
}

pub(crate) async fn logout(ctx: &Ctx) -> anyhow::Result<()> {
    let client = match ctx.authed_client() {
        Ok(c) => c,
        Err(e) if e.is::<crate::errors::NotLoggedIn>() => {
            outln!("Not logged in")?;
            return Ok(());
        }
        Err(e) => {
            // Unreadable state: nothing to revoke with, forget it anyway.
            state::remove(&ctx.state_dir)?;
            outln!("Logged out (the saved session was unusable: {e:#})")?;
            return Ok(());
        }
    };
    let revoked = client.logout().await;
    state::remove(&ctx.state_dir)?;
    // The gateway refuses it now anyway; do not leave it lying about.
    let _ = std::fs::remove_file(super::ssh_cert::cert_file(&ctx.state_dir));
    match revoked {
        Ok(()) => outln!("Logged out")?,
        Err(e) if e.api_code() == Some(&ErrorCode::Unauthorized) => {
            outln!("Logged out (the session had already expired)")?;
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context("logged out locally, but the gateway could not revoke the session"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str) -> ClientError {
        ClientError::Api {
            status: 401,
            code: ErrorCode::from_wire(code),
            message: "m".to_owned(),
        }
    }

    #[test]
    fn mfa_required_prompts_only_without_a_code_and_on_a_terminal() {
        let mfa = api("mfa_required");
        assert_eq!(on_login_error(&mfa, false, true), Next::PromptForCode);
        assert_eq!(on_login_error(&mfa, false, false), Next::NeedTotpFlag);
        // A code was given and refused: the gateway's answer stands.
        assert_eq!(on_login_error(&mfa, true, true), Next::Fail);
        assert_eq!(on_login_error(&mfa, true, false), Next::Fail);
        for other in [api("unauthorized"), api("rate_limited")] {
            assert_eq!(on_login_error(&other, false, true), Next::Fail);
        }
        let io = std::io::Error::other("down");
        let connect = ClientError::Connect {
            server: "s".into(),
            cause: io,
        };
        assert_eq!(on_login_error(&connect, false, true), Next::Fail);
    }

    #[test]
    fn restricted_logins_warn() {
        let mut a = LoginResponse {
            token: "t".into(),
            expires_at: "x".into(),
            username: "u".into(),
            role: "admin".into(),
            mfa_enrollment_required: false,
            password_change_required: false,
            csrf_token: None,
        };
        assert!(warnings(&a).is_empty());
        a.mfa_enrollment_required = true;
        assert_eq!(
            warnings(&a),
            ["jg: your role requires MFA: run jg mfa enroll before anything else"]
        );
        a.password_change_required = true;
        assert_eq!(warnings(&a).len(), 2);
        assert!(warnings(&a)[1].contains("run jg passwd"));
    }
}
