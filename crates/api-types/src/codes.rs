//! Machine-readable codes of the API's answers: [`ErrorCode`] (every
//! [`crate::ErrorBody`]) and [`OAuthErrorCode`] (the RFC 6749 token
//! endpoint). Both are open enums: a code this build does not know (from a
//! newer gateway) decodes as `Other` and keeps its text.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An open enum of wire strings: the known variants, `ALL`, `as_str`,
/// parsing (unknown text → `Other`), `Display` and serde as a string.
macro_rules! wire_codes {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A code this build does not know (a newer gateway's), as sent.
            Other(String),
        }

        impl $name {
            /// Every known code, in declaration order.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )* ];

            /// The code as it travels on the wire.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )*
                    Self::Other(s) => s,
                }
            }

            /// The code named `s`; unknown text gives `Other`.
            #[must_use]
            pub fn from_wire(s: &str) -> Self {
                match s {
                    $( $text => Self::$variant, )*
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Ok(Self::from_wire(&s))
            }
        }
    };
}

wire_codes! {
    /// The `error` of an [`crate::ErrorBody`]: what went wrong, for programs
    /// (the `message` is for people). The wire strings are frozen by a test.
    pub enum ErrorCode {
        /// Malformed or invalid input.
        BadRequest = "bad_request",
        /// No valid credentials (or a wrong password at login).
        Unauthorized = "unauthorized",
        /// The account has MFA: send a TOTP or recovery code.
        MfaRequired = "mfa_required",
        /// Too many attempts from this address or for this account.
        RateLimited = "rate_limited",
        /// Not allowed (a missing permission, outside the caller's groups).
        Forbidden = "forbidden",
        /// A read-scoped token asked to change something.
        InsufficientScope = "insufficient_scope",
        /// The caller's role requires MFA, which is not enrolled yet.
        MfaEnrollmentRequired = "mfa_enrollment_required",
        /// The caller's password expired.
        PasswordChangeRequired = "password_change_required",
        /// A cookie request failed the cross-site checks (CSRF token, Origin).
        Csrf = "csrf",
        /// The thing named does not exist (or is not visible to the caller).
        NotFound = "not_found",
        /// No route has this path.
        NoRoute = "no_route",
        /// The route does not serve this method.
        MethodNotAllowed = "method_not_allowed",
        /// The body is too large.
        TooLarge = "too_large",
        /// The body's media type is not the one the route takes.
        UnsupportedMediaType = "unsupported_media_type",
        /// The state does not allow it (exists already, in use, deleted...).
        Conflict = "conflict",
        /// No endpoint of that name (or the endpoint was removed).
        UnknownEndpoint = "unknown_endpoint",
        /// The endpoint's agent is not connected.
        EndpointOffline = "endpoint_offline",
        /// The session route needs an HTTP upgrade or a WebSocket.
        UpgradeRequired = "upgrade_required",
        /// The gateway is shutting down.
        ShuttingDown = "shutting_down",
        /// No live session with that id.
        UnknownSession = "unknown_session",
        /// No recording with that id.
        UnknownRecording = "unknown_recording",
        /// The recording failed its integrity check.
        RecordingDamaged = "recording_damaged",
        /// The enrollment token is unknown, spent or expired.
        InvalidEnrollmentToken = "invalid_enrollment_token",
        /// Another endpoint has that name.
        NameTaken = "name_taken",
        /// The vault's purge protection forbids it.
        PurgeProtected = "purge_protected",
        /// No console file at that path.
        NoAsset = "no_asset",
        /// The gateway failed; the details are in its log.
        Internal = "internal",
        /// A support session key that is unknown, used or expired (the
        /// portal gives one answer for all three).
        InvalidSessionKey = "invalid_session_key",
        /// No support queue of that name.
        UnknownQueue = "unknown_queue",
        /// No support session with that id (or not visible to the caller).
        UnknownSupportSession = "unknown_support_session",
        /// The queue holds as many waiting customers as it takes.
        QueueFull = "queue_full",
        /// Another technician accepted the support session first.
        AlreadyTaken = "already_taken",
        /// The customer has not allowed that right.
        RightNotGranted = "right_not_granted",
        /// The customer's support client is not connected.
        CustomerOffline = "customer_offline",
        /// The EPM policy does not validate: the body also carries
        /// `problems`, each `{field, message}` (`rules[2].action`).
        InvalidPolicy = "invalid_policy",
        /// The upload is not an acceptable Debian package, or its
        /// signature is missing, unknown or wrong (the message names what).
        InvalidPackage = "invalid_package",
        /// No uploaded package with that id (or name and version).
        UnknownPackage = "unknown_package",
        /// No report of that name (`GET /api/v1/reports` lists them).
        UnknownReport = "unknown_report",
        /// The analytics store cannot be read right now.
        AnalyticsUnavailable = "analytics_unavailable",
        /// No mail server is configured (`[smtp]`), or it refused or
        /// could not be reached (the message says which, never a password).
        SmtpFailed = "smtp_failed",
        /// No alert rule of that name.
        UnknownAlertRule = "unknown_alert_rule",
    }
}

wire_codes! {
    /// The `error` of an [`crate::OAuthError`] (RFC 6749 §5.2).
    pub enum OAuthErrorCode {
        InvalidRequest = "invalid_request",
        InvalidClient = "invalid_client",
        InvalidScope = "invalid_scope",
        UnsupportedGrantType = "unsupported_grant_type",
        /// RFC 6749 §4.1.2.1: the server failed.
        ServerError = "server_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire strings are a contract with every client (`jg`, the
    /// console, scripts): a renamed variant must not change them.
    #[test]
    fn error_codes_on_the_wire_are_frozen() {
        let frozen = [
            "bad_request",
            "unauthorized",
            "mfa_required",
            "rate_limited",
            "forbidden",
            "insufficient_scope",
            "mfa_enrollment_required",
            "password_change_required",
            "csrf",
            "not_found",
            "no_route",
            "method_not_allowed",
            "too_large",
            "unsupported_media_type",
            "conflict",
            "unknown_endpoint",
            "endpoint_offline",
            "upgrade_required",
            "shutting_down",
            "unknown_session",
            "unknown_recording",
            "recording_damaged",
            "invalid_enrollment_token",
            "name_taken",
            "purge_protected",
            "no_asset",
            "internal",
            "invalid_session_key",
            "unknown_queue",
            "unknown_support_session",
            "queue_full",
            "already_taken",
            "right_not_granted",
            "customer_offline",
            "invalid_policy",
            "invalid_package",
            "unknown_package",
            "unknown_report",
            "analytics_unavailable",
            "smtp_failed",
            "unknown_alert_rule",
        ];
        let names: Vec<&str> = ErrorCode::ALL.iter().map(ErrorCode::as_str).collect();
        assert_eq!(names, frozen);
        let oauth: Vec<&str> = OAuthErrorCode::ALL
            .iter()
            .map(OAuthErrorCode::as_str)
            .collect();
        assert_eq!(
            oauth,
            [
                "invalid_request",
                "invalid_client",
                "invalid_scope",
                "unsupported_grant_type",
                "server_error"
            ]
        );
    }

    #[test]
    fn codes_travel_as_strings_and_unknown_ones_survive() {
        for c in ErrorCode::ALL {
            let json = format!("\"{}\"", c.as_str());
            assert_eq!(serde_json::to_string(c).unwrap(), json);
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), *c);
        }
        let body: crate::ErrorBody =
            serde_json::from_str(r#"{"error":"quota_exceeded","message":"m"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::Other("quota_exceeded".into()));
        assert_eq!(body.error.as_str(), "quota_exceeded");
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":"quota_exceeded","message":"m"}"#
        );
        assert_eq!(
            ErrorCode::from_wire("endpoint_offline"),
            ErrorCode::EndpointOffline
        );
        assert!(serde_json::from_str::<ErrorCode>("3").is_err());
    }
}
