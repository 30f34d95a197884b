//! The vault: versioned secrets. Values travel base64-encoded in JSON;
//! these methods take and give raw bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http::Method;
use jumpgate_api_types as api;

use crate::{Client, ClientError, decode, percent_encode};

fn secret(name: &str, tail: &str) -> String {
    format!("/api/v1/vault/secrets/{}{tail}", percent_encode(name))
}

impl Client {
    /// Stores `value` as the next version of `name`.
    pub async fn vault_put(
        &self,
        name: &str,
        value: &[u8],
    ) -> Result<api::SecretVersionCreated, ClientError> {
        let body = api::PutSecret {
            value: B64.encode(value),
        };
        self.put_json(&secret(name, ""), &body).await
    }

    /// The value of `name` (latest version, or `version`): `(version, value)`.
    pub async fn vault_get(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<(u32, Vec<u8>), ClientError> {
        let tail = version.map(|v| format!("?version={v}")).unwrap_or_default();
        let v: api::SecretValue = self.get_json(&secret(name, &tail)).await?;
        let value = B64
            .decode(v.value.as_bytes())
            .map_err(|e| ClientError::Protocol(format!("secret value is not base64: {e}")))?;
        Ok((v.version, value))
    }

    /// Live secrets, or with `deleted` the soft-deleted ones.
    pub async fn vault_list(&self, deleted: bool) -> Result<Vec<api::SecretInfo>, ClientError> {
        let q = if deleted { "?deleted=true" } else { "" };
        self.get_json(&format!("/api/v1/vault/secrets{q}")).await
    }

    pub async fn vault_versions(&self, name: &str) -> Result<Vec<api::SecretVersion>, ClientError> {
        self.get_json(&secret(name, "/versions")).await
    }

    /// Soft-deletes `name` (recoverable until `purge_after`).
    pub async fn vault_delete(&self, name: &str) -> Result<api::SecretInfo, ClientError> {
        let body = self
            .request(Method::DELETE, &secret(name, ""), None)
            .await?;
        decode(&body)
    }

    pub async fn vault_recover(&self, name: &str) -> Result<api::SecretInfo, ClientError> {
        self.post_empty(&secret(name, "/recover")).await
    }

    /// Removes a soft-deleted secret for good.
    pub async fn vault_purge(&self, name: &str) -> Result<(), ClientError> {
        self.post_no_content(&secret(name, "/purge")).await
    }

    pub async fn vault_settings(&self) -> Result<api::VaultSettings, ClientError> {
        self.get_json("/api/v1/vault/settings").await
    }

    /// Enables purge protection for good.
    pub async fn vault_enable_purge_protection(&self) -> Result<api::VaultSettings, ClientError> {
        self.put_json(
            "/api/v1/vault/settings/purge-protection",
            &api::SetPurgeProtection { enabled: true },
        )
        .await
    }
}
