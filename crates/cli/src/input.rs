//! Secrets and codes typed by the user: passwords from a file, stdin or a
//! no-echo prompt, and TOTP/recovery codes from a flag or a prompt.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};

use crate::args::Code;
use crate::term;

/// The first line of `path`, or of stdin for `-`.
pub(crate) fn read_password_file(path: &Path) -> anyhow::Result<String> {
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

pub(crate) fn first_line(text: &str) -> &str {
    let line = text.split('\n').next().unwrap_or_default();
    line.strip_suffix('\r').unwrap_or(line)
}

/// An existing password: from `file`, else prompted once without echo.
pub(crate) async fn password(file: Option<&Path>, prompt: &str) -> anyhow::Result<String> {
    let pw = match file {
        Some(p) => read_password_file(p)?,
        None => term::read_password(prompt).await?,
    };
    if pw.is_empty() {
        bail!("empty password");
    }
    Ok(pw)
}

/// A password being chosen: from `file`, else prompted twice without echo.
pub(crate) async fn new_password(file: Option<&Path>, prompt: &str) -> anyhow::Result<String> {
    if file.is_some() {
        return password(file, prompt).await;
    }
    let first = term::read_password(prompt).await?;
    let again = term::read_password("Repeat the password: ").await?;
    confirmed(first, &again)
}

/// `first` if both entries agree and it is not empty.
pub(crate) fn confirmed(first: String, again: &str) -> anyhow::Result<String> {
    if first.is_empty() {
        bail!("empty password");
    }
    if first != again {
        bail!("the two passwords differ");
    }
    Ok(first)
}

/// A TOTP or recovery code: the flag's value, else one line of stdin
/// (prompted when it is a terminal).
pub(crate) async fn code(flag: Option<Code>, prompt: &str) -> anyhow::Result<String> {
    let raw = match flag {
        Some(c) => c.0,
        None => term::read_line(prompt)
            .await?
            .context("no code given: pass --code CODE")?,
    };
    normalize_code(&raw)
}

/// Codes without whitespace: apps show `123 456`, and recovery codes are
/// pasted with line breaks. The gateway does the rest of the checking.
pub(crate) fn normalize_code(raw: &str) -> anyhow::Result<String> {
    let code: String = raw.split_whitespace().collect();
    if code.is_empty() {
        bail!("empty code");
    }
    Ok(code)
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

    #[tokio::test]
    async fn empty_password_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "\nsecond line\n").unwrap();
        let err = password(Some(&p), "x").await.unwrap_err();
        assert_eq!(err.to_string(), "empty password");
        std::fs::write(&p, "ok\n").unwrap();
        assert_eq!(new_password(Some(&p), "x").await.unwrap(), "ok");
    }

    #[test]
    fn new_passwords_must_be_typed_twice_the_same() {
        assert_eq!(confirmed("a b".into(), "a b").unwrap(), "a b");
        assert_eq!(
            confirmed("abc".into(), "abd").unwrap_err().to_string(),
            "the two passwords differ"
        );
        assert!(confirmed(String::new(), "").is_err());
    }

    #[test]
    fn codes_lose_their_whitespace() {
        assert_eq!(normalize_code(" 123 456\n").unwrap(), "123456");
        assert_eq!(
            normalize_code("7KQ2-M9XW-\n3FHD").unwrap(),
            "7KQ2-M9XW-3FHD"
        );
        assert!(normalize_code(" \n").is_err());
    }
}
