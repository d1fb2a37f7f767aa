//! AWS Security Token Service: who am I (GetCallerIdentity, GetAccessKeyInfo)
//! and temporary credentials (GetSessionToken, AssumeRole, GetFederationToken).
//! Issued credentials are recorded in the store, so they outlive a restart as
//! they would on AWS, and in the shared [`CredentialRegistry`], where the edge
//! finds them to map a request to its account and, under `--auth enforce`, to
//! verify its signature.

use nimbus_core::{
    AwsError, BoxFuture, CredentialRecord, CredentialRegistry, RequestContext, Service, ALNUM,
    UPPER_ALNUM,
};
use nimbus_store::{Batch, Store};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

const TABLE: &str = "sts_credentials";

pub struct Sts {
    store: Store,
    registry: Arc<CredentialRegistry>,
}

impl Sts {
    /// Loads every unexpired credential STS issued earlier into `registry`.
    pub fn open(store: Store, registry: Arc<CredentialRegistry>) -> Result<Sts, String> {
        let now = nimbus_core::now_millis();
        for (_, bytes) in store.scan_prefix(TABLE, b"").map_err(|e| e.to_string())? {
            match serde_json::from_slice::<CredentialRecord>(&bytes) {
                Ok(record) if record.expires_at_ms.is_none_or(|t| t > now) => {
                    registry.insert(record)
                }
                Ok(_) => {}
                Err(e) => return Err(format!("sts: unreadable credential record: {e}")),
            }
        }
        Ok(Sts { store, registry })
    }

    async fn issue(&self, record: CredentialRecord) -> Result<Value, AwsError> {
        let mut batch = Batch::new();
        let bytes = serde_json::to_vec(&record).map_err(|e| AwsError::internal(e.to_string()))?;
        batch.put(TABLE, record.access_key_id.as_bytes(), bytes);
        self.store
            .commit(batch)
            .await
            .map_err(|e| AwsError::internal(e.to_string()))?;
        let credentials = json!({
            "AccessKeyId": record.access_key_id,
            "SecretAccessKey": record.secret_access_key,
            "SessionToken": record.session_token,
            "Expiration": record.expires_at_ms.unwrap_or(0) / 1000,
        });
        self.registry.insert(record);
        Ok(credentials)
    }

    async fn assume_role(&self, ctx: &RequestContext, input: Value) -> Result<Value, AwsError> {
        let req: AssumeRoleInput = parse(input)?;
        let role_arn = req.role_arn.ok_or_else(|| missing("roleArn"))?;
        let session = req
            .role_session_name
            .ok_or_else(|| missing("roleSessionName"))?;
        validate_session_name(&session, "roleSessionName")?;
        let duration = duration(req.duration_seconds, 3600, 900, 43200, "durationSeconds")?;
        let (account, role_path_name) = parse_role_arn(&role_arn)?;
        let role_name = role_path_name.rsplit('/').next().unwrap_or(role_path_name);
        let role_id = stable_id("AROA", &role_arn);
        let arn = format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session}");
        let user_id = format!("{role_id}:{session}");
        let record = new_record(ctx, account, &arn, &user_id, duration);
        let credentials = self.issue(record).await?;
        Ok(json!({
            "Credentials": credentials,
            "AssumedRoleUser": {"AssumedRoleId": user_id, "Arn": arn},
            "PackedPolicySize": 0,
        }))
    }

    async fn get_session_token(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, AwsError> {
        let req: DurationInput = parse(input)?;
        if ctx.caller_arn.contains(":assumed-role/") {
            return Err(AwsError::access_denied(
                "Cannot call GetSessionToken with session credentials",
            ));
        }
        let duration = duration(req.duration_seconds, 43200, 900, 129600, "durationSeconds")?;
        let record = new_record(
            ctx,
            &ctx.account_id,
            &ctx.caller_arn,
            &ctx.caller_user_id,
            duration,
        );
        let credentials = self.issue(record).await?;
        Ok(json!({ "Credentials": credentials }))
    }

    async fn get_federation_token(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, AwsError> {
        let req: FederationInput = parse(input)?;
        let name = req.name.ok_or_else(|| missing("name"))?;
        validate_session_name(&name, "name")?;
        let duration = duration(req.duration_seconds, 43200, 900, 129600, "durationSeconds")?;
        let account = &ctx.account_id;
        let arn = format!("arn:aws:sts::{account}:federated-user/{name}");
        let user_id = format!("{account}:{name}");
        let record = new_record(ctx, account, &arn, &user_id, duration);
        let credentials = self.issue(record).await?;
        Ok(json!({
            "Credentials": credentials,
            "FederatedUser": {"FederatedUserId": user_id, "Arn": arn},
            "PackedPolicySize": 0,
        }))
    }

    fn get_access_key_info(&self, input: Value) -> Result<Value, AwsError> {
        let key = input
            .get("AccessKeyId")
            .and_then(Value::as_str)
            .ok_or_else(|| missing("accessKeyId"))?;
        let account = match self.registry.get(key) {
            Some(record) => record.account_id,
            None => account_for_key(key).unwrap_or(nimbus_core::DEFAULT_ACCOUNT_ID.to_string()),
        };
        Ok(json!({ "Account": account }))
    }
}

impl Service for Sts {
    fn name(&self) -> &'static str {
        "sts"
    }

    fn call<'a>(
        &'a self,
        ctx: &'a RequestContext,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, AwsError>> {
        Box::pin(async move {
            match operation {
                "GetCallerIdentity" => Ok(json!({
                    "UserId": ctx.caller_user_id,
                    "Account": ctx.account_id,
                    "Arn": ctx.caller_arn,
                })),
                "AssumeRole" => self.assume_role(ctx, input).await,
                "GetSessionToken" => self.get_session_token(ctx, input).await,
                "GetFederationToken" => self.get_federation_token(ctx, input).await,
                "GetAccessKeyInfo" => self.get_access_key_info(input),
                other => Err(AwsError::operation_not_implemented("sts", "STS", other)),
            }
        })
    }

    /// Forgets every credential STS issued (the root key is not STS's and stays).
    fn reset(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            let stored = self
                .store
                .keys_of_tables(&[TABLE])
                .await
                .map_err(|e| AwsError::internal(e.to_string()))?;
            let mut batch = Batch::new();
            for key in stored.into_iter().flat_map(|(_, keys)| keys) {
                self.registry.remove(&String::from_utf8_lossy(&key));
                batch.delete(TABLE, key);
            }
            self.store
                .commit(batch)
                .await
                .map_err(|e| AwsError::internal(e.to_string()))
        })
    }
}

/// The account an access key names by itself: a key of exactly 12 digits is that
/// account id (the convention of other local AWS tools), anything else names none.
pub fn account_for_key(access_key_id: &str) -> Option<String> {
    (access_key_id.len() == 12 && access_key_id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| access_key_id.to_string())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleInput {
    role_arn: Option<String>,
    role_session_name: Option<String>,
    duration_seconds: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DurationInput {
    duration_seconds: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FederationInput {
    name: Option<String>,
    duration_seconds: Option<i64>,
}

fn parse<T: for<'de> Deserialize<'de>>(input: Value) -> Result<T, AwsError> {
    serde_json::from_value(input).map_err(|e| validation(format!("Invalid request: {e}")))
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new("ValidationError", message)
}

/// STS words a missing required member as a failed constraint on the member's camel-case name.
fn missing(member: &str) -> AwsError {
    validation(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

fn duration(
    given: Option<i64>,
    default: i64,
    min: i64,
    max: i64,
    member: &str,
) -> Result<u64, AwsError> {
    let seconds = given.unwrap_or(default);
    if seconds < min {
        return Err(validation(format!(
            "1 validation error detected: Value '{seconds}' at '{member}' failed to satisfy constraint: Member must have value greater than or equal to {min}"
        )));
    }
    if seconds > max {
        return Err(validation(format!(
            "1 validation error detected: Value '{seconds}' at '{member}' failed to satisfy constraint: Member must have value less than or equal to {max}"
        )));
    }
    Ok(seconds as u64)
}

fn validate_session_name(name: &str, member: &str) -> Result<(), AwsError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if !(2..=64).contains(&name.len()) || !ok_chars {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
        )));
    }
    Ok(())
}

/// Splits `arn:aws:iam::123456789012:role/path/name` into the account and `path/name`.
fn parse_role_arn(arn: &str) -> Result<(&str, &str), AwsError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", account, resource]
            if account.len() == 12 && resource.starts_with("role/") && resource.len() > 5 =>
        {
            Ok((account, &resource[5..]))
        }
        _ => Err(validation(format!("{arn} is invalid"))),
    }
}

/// A unique id like AWS's (`AROA` + 17 characters) that stays the same for the same ARN.
fn stable_id(prefix: &str, seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let tail: String = digest
        .iter()
        .take(17)
        .map(|b| UPPER_ALNUM[*b as usize % UPPER_ALNUM.len()] as char)
        .collect();
    format!("{prefix}{tail}")
}

fn new_record(
    ctx: &RequestContext,
    account: &str,
    arn: &str,
    user_id: &str,
    duration_secs: u64,
) -> CredentialRecord {
    // Whole seconds, so that the Expiration clients see is exactly when we refuse the key.
    let expires_at_ms = (ctx.now_ms / 1000 + duration_secs) * 1000;
    CredentialRecord {
        access_key_id: format!("ASIA{}", nimbus_core::random_string(UPPER_ALNUM, 16)),
        secret_access_key: nimbus_core::random_string(ALNUM, 40),
        session_token: Some(format!(
            "FwoGZXIvYXdzE{}",
            nimbus_core::random_string(ALNUM, 300)
        )),
        account_id: account.to_string(),
        arn: arn.to_string(),
        user_id: user_id.to_string(),
        expires_at_ms: Some(expires_at_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts() -> (Sts, Arc<CredentialRegistry>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let registry = Arc::new(CredentialRegistry::new());
        (Sts::open(store, registry.clone()).unwrap(), registry, dir)
    }

    #[tokio::test]
    async fn assume_role_issues_registered_credentials() {
        let (sts, registry, _dir) = sts();
        let ctx = RequestContext::for_account("000000000000", "us-east-1");
        let out = sts
            .call(
                &ctx,
                "AssumeRole",
                json!({"RoleArn": "arn:aws:iam::123456789012:role/app/web", "RoleSessionName": "s1"}),
            )
            .await
            .unwrap();
        assert_eq!(
            out["AssumedRoleUser"]["Arn"],
            "arn:aws:sts::123456789012:assumed-role/web/s1"
        );
        let key = out["Credentials"]["AccessKeyId"].as_str().unwrap();
        assert!(key.starts_with("ASIA") && key.len() == 20);
        let record = registry.get(key).unwrap();
        assert_eq!(record.account_id, "123456789012");
        assert_eq!(
            record.secret_access_key,
            out["Credentials"]["SecretAccessKey"].as_str().unwrap()
        );
    }

    #[tokio::test]
    async fn bad_inputs_are_validation_errors() {
        let (sts, _, _dir) = sts();
        let ctx = RequestContext::for_account("000000000000", "us-east-1");
        for input in [
            json!({"RoleArn": "nope", "RoleSessionName": "s1"}),
            json!({"RoleArn": "arn:aws:iam::123456789012:role/x", "RoleSessionName": "s"}),
            json!({"RoleArn": "arn:aws:iam::123456789012:role/x", "RoleSessionName": "ok", "DurationSeconds": 10}),
            json!({"RoleSessionName": "ok"}),
        ] {
            let err = sts.call(&ctx, "AssumeRole", input).await.unwrap_err();
            assert_eq!(err.code, "ValidationError");
            assert_eq!(err.status, 400);
        }
    }

    #[tokio::test]
    async fn credentials_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let key;
        {
            let store = Store::open(&path).unwrap();
            let sts = Sts::open(store, Arc::new(CredentialRegistry::new())).unwrap();
            let ctx = RequestContext::for_account("000000000000", "us-east-1");
            let out = sts.call(&ctx, "GetSessionToken", json!({})).await.unwrap();
            key = out["Credentials"]["AccessKeyId"]
                .as_str()
                .unwrap()
                .to_string();
        }
        let registry = Arc::new(CredentialRegistry::new());
        let store = (0..200)
            .find_map(|_| {
                Store::open(&path).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    None
                })
            })
            .unwrap();
        Sts::open(store, registry.clone()).unwrap();
        assert_eq!(registry.get(&key).unwrap().account_id, "000000000000");
    }

    #[test]
    fn twelve_digit_keys_name_accounts() {
        assert_eq!(
            account_for_key("123456789012").as_deref(),
            Some("123456789012")
        );
        assert_eq!(account_for_key("AKIA12345678"), None);
        assert_eq!(account_for_key("test"), None);
    }
}
