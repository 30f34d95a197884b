//! `jg login` and `jg logout`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};

use super::Ctx;
use crate::state::{self, State};
use crate::term;

pub(crate) async fn login(
    ctx: &Ctx,
    user: &str,
    password_file: Option<&Path>,
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
    let password = match password_file {
        Some(p) => read_password_file(p)?,
        None => term::read_password(&format!("Password for {user}: ")).await?,
    };
    if password.is_empty() {
        bail!("empty password");
    }
    let client = ctx.client(server.clone(), fp)?;
    let answer = client
        .login(user, &password)
        .await
        .with_context(|| format!("login to {server} failed"))?;
    let st = State {
        server: server.to_string(),
        ca_fingerprint: fp.map(|f| f.to_string()),
        username: answer.username.clone(),
        token: answer.token.clone(),
        expires_at: answer.expires_at.clone(),
        role: answer.role.clone(),
    };
    state::save(&ctx.state_dir, &st)?;
    println!(
        "Logged in as {} ({}) until {}",
        answer.username, answer.role, answer.expires_at
    );
    Ok(())
}

/// The first line of `path`, or of stdin for `-`.
fn read_password_file(path: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the password from stdin")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the password file {}", path.display()))?;
    }
    Ok(first_line(&text).to_owned())
}

fn first_line(text: &str) -> &str {
    let line = text.split('\n').next().unwrap_or_default();
    line.strip_suffix('\r').unwrap_or(line)
}

pub(crate) async fn logout(ctx: &Ctx) -> anyhow::Result<()> {
    let client = match ctx.authed_client() {
        Ok(c) => c,
        Err(e) if e.is::<crate::errors::NotLoggedIn>() => {
            println!("Not logged in");
            return Ok(());
        }
        Err(e) => {
            // Unreadable state: nothing to revoke with, forget it anyway.
            state::remove(&ctx.state_dir)?;
            println!("Logged out (the saved session was unusable: {e:#})");
            return Ok(());
        }
    };
    let revoked = client.logout().await;
    state::remove(&ctx.state_dir)?;
    match revoked {
        Ok(()) => println!("Logged out"),
        Err(e) if e.api_code() == Some("unauthorized") => {
            println!("Logged out (the session had already expired)");
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

    #[test]
    fn password_is_the_first_line() {
        assert_eq!(first_line("s3cret\n"), "s3cret");
        assert_eq!(first_line("s3cret\r\nignored\n"), "s3cret");
        assert_eq!(first_line(" spaced pw "), " spaced pw ");
        assert_eq!(first_line(""), "");
    }

    #[test]
    fn password_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "hunter2\n").unwrap();
        assert_eq!(read_password_file(&p).unwrap(), "hunter2");
        let err = read_password_file(&dir.path().join("missing")).unwrap_err();
        assert!(format!("{err:#}").contains("password file"), "{err:#}");
    }
}
