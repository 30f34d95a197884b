//! Identity and access: the caller (`/me`), users, roles, groups, endpoint
//! administration, API clients and the site's security settings.
//!
//! Names in paths are percent-encoded; bodies with a single string field
//! take that string, the others the API type.

use jumpgate_api_types as api;

use crate::{Client, ClientError, percent_encode};

/// `/api/v1/{collection}/{name}{tail}`, with `name` percent-encoded.
fn named(collection: &str, name: &str, tail: &str) -> String {
    format!("/api/v1/{collection}/{}{tail}", percent_encode(name))
}

impl Client {
    // --- the caller -------------------------------------------------------

    pub async fn me(&self) -> Result<api::Me, ClientError> {
        self.get_json("/api/v1/me").await
    }

    /// Changes the caller's password. The gateway then revokes all of the
    /// caller's sessions, this one included.
    pub async fn change_password(&self, req: &api::ChangePassword) -> Result<(), ClientError> {
        self.post_json_no_content("/api/v1/me/password", req).await
    }

    /// Starts TOTP enrollment; pending until [`Client::confirm_totp`].
    pub async fn begin_totp(&self) -> Result<api::TotpEnrollment, ClientError> {
        self.post_empty("/api/v1/me/mfa/totp").await
    }

    /// Confirms TOTP enrollment with a code from the app: MFA is then on.
    pub async fn confirm_totp(&self, code: &str) -> Result<api::RecoveryCodes, ClientError> {
        self.post_json("/api/v1/me/mfa/totp/confirm", &totp(code))
            .await
    }

    /// Turns the caller's MFA off; `code` is a TOTP or recovery code.
    pub async fn disable_mfa(&self, code: &str) -> Result<(), ClientError> {
        self.delete_json("/api/v1/me/mfa", &totp(code)).await
    }

    /// A new set of recovery codes; the old ones stop working.
    pub async fn new_recovery_codes(&self, code: &str) -> Result<api::RecoveryCodes, ClientError> {
        self.post_json("/api/v1/me/mfa/recovery-codes", &totp(code))
            .await
    }

    // --- users ------------------------------------------------------------

    pub async fn users(&self) -> Result<Vec<api::User>, ClientError> {
        self.get_json("/api/v1/users").await
    }

    pub async fn user(&self, name: &str) -> Result<api::User, ClientError> {
        self.get_json(&named("users", name, "")).await
    }

    pub async fn create_user(&self, req: &api::CreateUser) -> Result<api::User, ClientError> {
        self.post_json("/api/v1/users", req).await
    }

    pub async fn update_user(
        &self,
        name: &str,
        req: &api::UpdateUser,
    ) -> Result<api::User, ClientError> {
        self.patch_json(&named("users", name, ""), req).await
    }

    pub async fn delete_user(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&named("users", name, "")).await
    }

    /// Sets a user's password; the gateway revokes that user's sessions.
    pub async fn set_user_password(&self, name: &str, password: &str) -> Result<(), ClientError> {
        let body = api::SetPassword {
            password: password.to_owned(),
        };
        self.put_json_no_content(&named("users", name, "/password"), &body)
            .await
    }

    pub async fn revoke_user_sessions(&self, name: &str) -> Result<(), ClientError> {
        self.post_no_content(&named("users", name, "/revoke-sessions"))
            .await
    }

    /// Lifts a lock left by failed logins.
    pub async fn unlock_user(&self, name: &str) -> Result<(), ClientError> {
        self.post_no_content(&named("users", name, "/unlock")).await
    }

    /// Removes a user's MFA (lost authenticator and recovery codes).
    pub async fn reset_user_mfa(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&named("users", name, "/mfa")).await
    }

    // --- roles and groups ---------------------------------------------------

    pub async fn roles(&self) -> Result<Vec<api::Role>, ClientError> {
        self.get_json("/api/v1/roles").await
    }

    pub async fn create_role(&self, req: &api::CreateRole) -> Result<api::Role, ClientError> {
        self.post_json("/api/v1/roles", req).await
    }

    pub async fn update_role(
        &self,
        name: &str,
        req: &api::UpdateRole,
    ) -> Result<api::Role, ClientError> {
        self.patch_json(&named("roles", name, ""), req).await
    }

    pub async fn delete_role(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&named("roles", name, "")).await
    }

    pub async fn groups(&self) -> Result<Vec<api::Group>, ClientError> {
        self.get_json("/api/v1/groups").await
    }

    pub async fn create_group(&self, req: &api::CreateGroup) -> Result<api::Group, ClientError> {
        self.post_json("/api/v1/groups", req).await
    }

    pub async fn group(&self, name: &str) -> Result<api::Group, ClientError> {
        self.get_json(&named("groups", name, "")).await
    }

    /// Changes a group's description and/or consent mode.
    pub async fn update_group(
        &self,
        name: &str,
        req: &api::UpdateGroup,
    ) -> Result<api::Group, ClientError> {
        self.patch_json(&named("groups", name, ""), req).await
    }

    pub async fn delete_group(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&named("groups", name, "")).await
    }

    // --- endpoints ----------------------------------------------------------

    pub async fn set_endpoint_group(
        &self,
        endpoint: &str,
        group: &str,
    ) -> Result<api::Endpoint, ClientError> {
        let body = api::SetEndpointGroup {
            group: group.to_owned(),
        };
        self.put_json(&named("endpoints", endpoint, "/group"), &body)
            .await
    }

    /// Revokes an endpoint: its agent is refused from now on and cut off.
    pub async fn revoke_endpoint(&self, endpoint: &str) -> Result<(), ClientError> {
        self.delete(&named("endpoints", endpoint, "")).await
    }

    /// A one-time token bound to `endpoint`: the agent that enrolls with it
    /// gives the endpoint a new key, and the old key stops working.
    pub async fn create_reenroll_token(
        &self,
        endpoint: &str,
        req: &api::CreateReenrollToken,
    ) -> Result<api::ReenrollToken, ClientError> {
        self.post_json(&named("endpoints", endpoint, "/reenroll"), req)
            .await
    }

    pub async fn create_enroll_token(
        &self,
        req: &api::CreateEnrollToken,
    ) -> Result<api::EnrollToken, ClientError> {
        self.post_json("/api/v1/enroll-tokens", req).await
    }

    // --- API clients ----------------------------------------------------------

    pub async fn api_clients(&self) -> Result<Vec<api::ApiClient>, ClientError> {
        self.get_json("/api/v1/api-clients").await
    }

    /// Creates an API client; its secret is in the answer and nowhere else.
    pub async fn create_api_client(
        &self,
        req: &api::CreateApiClient,
    ) -> Result<api::ApiClientSecret, ClientError> {
        self.post_json("/api/v1/api-clients", req).await
    }

    /// A new secret for an API client; the old one stops working.
    pub async fn rotate_api_client(&self, name: &str) -> Result<api::ApiClientSecret, ClientError> {
        self.post_empty(&named("api-clients", name, "/rotate"))
            .await
    }

    pub async fn delete_api_client(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&named("api-clients", name, "")).await
    }

    // --- the caller's SSH keys (the SSH front door) --------------------------

    /// The caller's SSH public keys.
    pub async fn ssh_keys(&self) -> Result<Vec<api::ssh::SshKey>, ClientError> {
        self.get_json("/api/v1/ssh-keys").await
    }

    /// Registers an SSH public key (OpenSSH's one-line form) for the caller.
    pub async fn add_ssh_key(&self, public_key: &str) -> Result<api::ssh::SshKey, ClientError> {
        let req = api::ssh::AddSshKey {
            public_key: public_key.to_owned(),
        };
        self.post_json("/api/v1/ssh-keys", &req).await
    }

    /// The gateway's SSH host key and front door port.
    pub async fn ssh_host_key(&self) -> Result<api::ssh::SshHostKey, ClientError> {
        self.get_json("/api/v1/ssh/host-key").await
    }

    /// A short-lived SSH user certificate for `public_key`, bound to this
    /// client's login.
    pub async fn issue_ssh_cert(&self, public_key: &str) -> Result<api::ssh::SshCert, ClientError> {
        let req = api::ssh::IssueSshCert {
            public_key: public_key.to_owned(),
            ..Default::default()
        };
        self.issue_ssh_cert_with(&req).await
    }

    /// A short-lived SSH certificate as `req` asks (restrictions included).
    pub async fn issue_ssh_cert_with(
        &self,
        req: &api::ssh::IssueSshCert,
    ) -> Result<api::ssh::SshCert, ClientError> {
        self.post_json("/api/v1/ssh/user-cert", req).await
    }

    /// The public key of the CA that signs users' SSH certificates.
    pub async fn ssh_user_ca(&self) -> Result<api::ssh::SshUserCa, ClientError> {
        self.get_json("/api/v1/ssh/user-ca").await
    }

    /// Removes one of the caller's SSH keys by its id.
    pub async fn remove_ssh_key(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&named("ssh-keys", id, "")).await
    }

    // --- audit log --------------------------------------------------------------

    /// Audit log entries, newest first (`view-audit`). `since` is RFC 3339,
    /// `user` an actor name, `limit` 1..=10000 (the gateway's default: 1000).
    pub async fn audit(
        &self,
        since: Option<&str>,
        user: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<api::SecurityEvent>, ClientError> {
        self.get_json(&audit_path(since, user, limit)).await
    }

    // --- settings ---------------------------------------------------------------

    pub async fn security_settings(&self) -> Result<api::SecuritySettings, ClientError> {
        self.get_json("/api/v1/settings/security").await
    }

    /// Replaces the security settings; answers what the gateway stored.
    pub async fn set_security_settings(
        &self,
        settings: &api::SecuritySettings,
    ) -> Result<api::SecuritySettings, ClientError> {
        self.put_json("/api/v1/settings/security", settings).await
    }
}

/// `/api/v1/events` with the given query parameters, percent-encoded.
fn audit_path(since: Option<&str>, user: Option<&str>, limit: Option<u32>) -> String {
    let limit = limit.map(|n| n.to_string());
    let params: Vec<String> = [
        ("since", since),
        ("user", user),
        ("limit", limit.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}={}", percent_encode(v))))
    .collect();
    if params.is_empty() {
        "/api/v1/events".to_owned()
    } else {
        format!("/api/v1/events?{}", params.join("&"))
    }
}

fn totp(code: &str) -> api::TotpCode {
    api::TotpCode {
        code: code.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn named_paths_encode_the_name_only() {
        assert_eq!(
            super::named("users", "bob", "/password"),
            "/api/v1/users/bob/password"
        );
        assert_eq!(
            super::named("api-clients", "a/b c", "/rotate"),
            "/api/v1/api-clients/a%2Fb%20c/rotate"
        );
    }

    #[test]
    fn audit_query_is_built_from_the_given_parameters() {
        assert_eq!(super::audit_path(None, None, None), "/api/v1/events");
        assert_eq!(
            super::audit_path(None, None, Some(50)),
            "/api/v1/events?limit=50"
        );
        assert_eq!(
            super::audit_path(Some("2026-11-23T10:00:00+02:00"), Some("al ice&x"), Some(1)),
            "/api/v1/events?since=2026-11-23T10%3A00%3A00%2B02%3A00&user=al%20ice%26x&limit=1"
        );
        assert_eq!(
            super::audit_path(None, Some("bob"), None),
            "/api/v1/events?user=bob"
        );
    }
}
