//! Credentials known to this cloud: the root key from the configuration and
//! every temporary credential STS has issued. The signature checker reads it,
//! STS writes it; neither knows the other.

use std::collections::HashMap;
use std::sync::RwLock;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CredentialRecord {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub account_id: String,
    /// ARN of the principal these credentials act as.
    pub arn: String,
    /// Unique id as GetCallerIdentity reports it (`AROA...:session` for role sessions).
    pub user_id: String,
    /// Epoch milliseconds after which the credentials are refused; `None` never expires.
    pub expires_at_ms: Option<u64>,
}

#[derive(Default)]
pub struct CredentialRegistry {
    by_access_key: RwLock<HashMap<String, CredentialRecord>>,
}

impl CredentialRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, record: CredentialRecord) {
        if let Ok(mut map) = self.by_access_key.write() {
            map.insert(record.access_key_id.clone(), record);
        }
    }

    pub fn get(&self, access_key_id: &str) -> Option<CredentialRecord> {
        self.by_access_key
            .read()
            .ok()
            .and_then(|map| map.get(access_key_id).cloned())
    }

    /// Forgets a credential (reset removes the ones STS issued).
    pub fn remove(&self, access_key_id: &str) {
        if let Ok(mut map) = self.by_access_key.write() {
            map.remove(access_key_id);
        }
    }
}
