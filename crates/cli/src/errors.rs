//! Errors that `main` reports in their own words, and the mapping from an
//! error chain to the line printed on stderr and the exit code.

use std::fmt;

use jumpgate_api_types::ErrorCode;
use jumpgate_client::ClientError;
use jumpgate_proto::session::Refusal;

/// No usable state file.
#[derive(Debug)]
pub(crate) struct NotLoggedIn;

impl fmt::Display for NotLoggedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not logged in")
    }
}

impl std::error::Error for NotLoggedIn {}

/// The gateway ended the session (`Closed`).
#[derive(Debug)]
pub(crate) struct GatewayClosed {
    pub(crate) reason: String,
}

impl fmt::Display for GatewayClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session closed by the gateway: {}", self.reason)
    }
}

impl std::error::Error for GatewayClosed {}

/// The agent answered `Refused`.
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) Refusal);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Refused {}

/// The user pressed Ctrl-C (or sent SIGTERM) during an operation that cleans
/// up after itself instead of dying on the signal.
#[derive(Debug)]
pub(crate) struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// The account uses MFA, no code was given, and none can be prompted for.
#[derive(Debug)]
pub(crate) struct MfaCodeNeeded;

impl fmt::Display for MfaCodeNeeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("this account uses MFA: pass --totp CODE")
    }
}

impl std::error::Error for MfaCodeNeeded {}

/// Exit code for errors.
pub(crate) const EXIT_ERROR: i32 = 1;
/// Exit code after Ctrl-C, as a shell reports it.
pub(crate) const EXIT_INTERRUPTED: i32 = 130;

/// The stderr line and exit code for a failed command. `is_login`: a 401 on
/// `login` means bad credentials, not an expired session.
pub(crate) fn report(err: &anyhow::Error, is_login: bool) -> (String, i32) {
    for cause in err.chain() {
        // Nobody reads our output any more: nothing to say, and nobody to
        // say it to on stdout (stderr may well be a terminal, but `jg audit
        // | head` ending is not an error to report).
        if cause.is::<crate::out::StdoutClosed>() {
            return (String::new(), crate::out::EXIT_STDOUT_CLOSED);
        }
        if let Some(closed) = cause.downcast_ref::<GatewayClosed>() {
            return (format!("jg: {closed}"), EXIT_ERROR);
        }
        if cause.is::<Interrupted>() {
            return ("jg: interrupted".to_owned(), EXIT_INTERRUPTED);
        }
        if let Some(line) = api_line(cause) {
            return (line, EXIT_ERROR);
        }
        let unauthorized = cause.is::<NotLoggedIn>()
            || cause
                .downcast_ref::<ClientError>()
                .and_then(ClientError::api_code)
                == Some(&ErrorCode::Unauthorized);
        if unauthorized && !is_login {
            return (
                "jg: not logged in (or session expired): run jg login".to_owned(),
                EXIT_ERROR,
            );
        }
    }
    (format!("jg: error: {}", chain_text(err)), EXIT_ERROR)
}

/// The line for API errors that say what to do rather than what failed.
fn api_line(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    let Some(ClientError::Api { code, message, .. }) = cause.downcast_ref::<ClientError>() else {
        return None;
    };
    match code {
        ErrorCode::MfaEnrollmentRequired => {
            Some("jg: error: your role requires MFA: run jg mfa enroll".to_owned())
        }
        ErrorCode::PasswordChangeRequired => {
            Some("jg: error: your password expired: run jg passwd".to_owned())
        }
        // The gateway names what is missing (permission, scope).
        ErrorCode::Forbidden | ErrorCode::InsufficientScope => {
            Some(format!("jg: error: {message}"))
        }
        _ => None,
    }
}

/// `outer: cause: root`, like `{:#}`, except that a cause already quoted at
/// the end of its parent's message (`"...: {source}"` errors) is not repeated.
pub(crate) fn chain_text(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut previous = String::new();
    for cause in err.chain() {
        // TLS failures in words (not rustls's internals or manual links);
        // what lies below them is rustls's own text.
        let explained = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| jumpgate_net::tls::explain(io));
        let text = explained.clone().unwrap_or_else(|| cause.to_string());
        if !previous.is_empty() && previous.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        if explained.is_some() {
            break;
        }
        previous = text;
    }
    out
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    fn api(code: &str) -> anyhow::Error {
        anyhow::Error::new(ClientError::Api {
            status: 401,
            code: ErrorCode::from_wire(code),
            message: "bad token".to_owned(),
        })
        .context("listing endpoints")
    }

    #[test]
    fn unauthorized_means_not_logged_in_except_for_login() {
        let (line, code) = report(&api("unauthorized"), false);
        assert_eq!(line, "jg: not logged in (or session expired): run jg login");
        assert_eq!(code, 1);
        let (line, _) = report(&anyhow::Error::new(NotLoggedIn), false);
        assert_eq!(line, "jg: not logged in (or session expired): run jg login");

        let (line, code) = report(&api("unauthorized"), true);
        assert_eq!(
            line,
            "jg: error: listing endpoints: bad token (401, unauthorized)"
        );
        assert_eq!(code, 1);
    }

    #[test]
    fn tls_failures_below_an_http_error_are_told_without_links() {
        let eof = std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: https://docs.rs/rustls/latest/x",
        );
        let err = anyhow::Error::new(eof).context("listing endpoints");
        let (line, _) = report(&err, false);
        assert_eq!(
            line,
            "jg: error: listing endpoints: the connection was closed abruptly (no TLS close)"
        );
    }

    #[test]
    fn other_errors_print_their_causes() {
        let (line, code) = report(&api("endpoint_offline"), false);
        assert_eq!(
            line,
            "jg: error: listing endpoints: bad token (401, endpoint_offline)"
        );
        assert_eq!(code, 1);
    }

    fn api_with(status: u16, code: &str, message: &str) -> anyhow::Error {
        anyhow::Error::new(ClientError::Api {
            status,
            code: ErrorCode::from_wire(code),
            message: message.to_owned(),
        })
        .context("deleting user bob")
    }

    #[test]
    fn restricted_sessions_say_what_to_run() {
        for login in [false, true] {
            assert_eq!(
                report(&api_with(403, "mfa_enrollment_required", "x"), login),
                (
                    "jg: error: your role requires MFA: run jg mfa enroll".to_owned(),
                    1
                )
            );
            assert_eq!(
                report(&api_with(403, "password_change_required", "x"), login).0,
                "jg: error: your password expired: run jg passwd"
            );
        }
    }

    #[test]
    fn forbidden_prints_the_gateway_message() {
        let msg = "your role lacks the manage-users permission";
        assert_eq!(
            report(&api_with(403, "forbidden", msg), false).0,
            format!("jg: error: {msg}")
        );
        let msg = "this API client lacks the write scope";
        assert_eq!(
            report(&api_with(403, "insufficient_scope", msg), false).0,
            format!("jg: error: {msg}")
        );
        // Other codes keep the full chain.
        assert_eq!(
            report(&api_with(409, "conflict", "exists"), false).0,
            "jg: error: deleting user bob: exists (409, conflict)"
        );
    }

    #[test]
    fn mfa_code_needed_has_its_own_words() {
        assert_eq!(
            report(&anyhow::Error::new(MfaCodeNeeded), true),
            (
                "jg: error: this account uses MFA: pass --totp CODE".to_owned(),
                1
            )
        );
    }

    #[test]
    fn causes_repeated_by_their_parent_are_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = anyhow::Error::new(ClientError::Connect {
            server: "https://gw:1".into(),
            cause: io,
        })
        .context("login failed");
        assert_eq!(
            report(&err, true).0,
            "jg: error: login failed: cannot reach the gateway at https://gw:1: connection refused"
        );
    }

    #[test]
    fn gateway_closed_and_interrupt_have_their_own_lines() {
        let err = Err::<(), _>(GatewayClosed {
            reason: "terminated by admin".into(),
        })
        .context("shell on web-01")
        .unwrap_err();
        assert_eq!(
            report(&err, false),
            (
                "jg: session closed by the gateway: terminated by admin".to_owned(),
                1
            )
        );
        assert_eq!(
            report(&anyhow::Error::new(Interrupted), false),
            ("jg: interrupted".to_owned(), 130)
        );
    }
}
