//! JSON bodies of the REST API (`crates/api-types`): what the gateway
//! parses from every request (logins, enrollment, administration, vault)
//! and what `jg` and the console parse from its answers. The first byte
//! picks the type; a body that parses must serialize and parse again.
#![no_main]

use jumpgate_api_types as api;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn check<T: Serialize + DeserializeOwned>(body: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(body) {
        let again = serde_json::to_vec(&v).expect("a parsed body serializes");
        serde_json::from_slice::<T>(&again).expect("a serialized body parses");
    }
}

type Check = fn(&[u8]);

const TYPES: &[Check] = &[
    check::<api::LoginRequest>,
    check::<api::LoginResponse>,
    check::<api::ConsoleSession>,
    check::<api::EndpointDetails>,
    check::<api::EnrollRequest>,
    check::<api::EnrollResponse>,
    check::<api::Endpoint>,
    check::<api::SessionEvent>,
    check::<api::ErrorBody>,
    check::<api::Me>,
    check::<api::ChangePassword>,
    check::<api::TotpEnrollment>,
    check::<api::TotpCode>,
    check::<api::RecoveryCodes>,
    check::<api::User>,
    check::<api::CreateUser>,
    check::<api::UpdateUser>,
    check::<api::SetPassword>,
    check::<api::Role>,
    check::<api::CreateRole>,
    check::<api::UpdateRole>,
    check::<api::Group>,
    check::<api::CreateGroup>,
    check::<api::SetEndpointGroup>,
    check::<api::CreateEnrollToken>,
    check::<api::EnrollToken>,
    check::<api::ApiClient>,
    check::<api::CreateApiClient>,
    check::<api::ApiClientSecret>,
    check::<api::TokenResponse>,
    check::<api::OAuthError>,
    check::<api::SecuritySettings>,
    check::<api::SecurityEvent>,
    check::<api::Recording>,
    check::<api::PutSecret>,
    check::<api::SecretVersionCreated>,
    check::<api::SecretValue>,
    check::<api::SecretInfo>,
    check::<api::SecretVersion>,
    check::<api::VaultSettings>,
    check::<api::SetPurgeProtection>,
    check::<Vec<api::Endpoint>>,
    check::<Vec<api::SessionEvent>>,
    check::<Vec<api::SecurityEvent>>,
    check::<Vec<api::Recording>>,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    TYPES[usize::from(pick) % TYPES.len()](body);
});
