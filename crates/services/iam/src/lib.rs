//! AWS IAM for nimbus, the part EC2 instances need: roles (with their trust
//! policies) and instance profiles that carry one role each. IAM is global:
//! state is per account, not per region. Each role and profile is a record in
//! `iam_roles` / `iam_profiles` (`account \0 name`), written before the
//! answer. Roles keep inline policies (Put/Get/List/DeleteRolePolicy), which
//! are not evaluated yet: until identity policies are, every signed caller of
//! an account acts as the account.

use nimbus_core::{AwsError, BoxFuture, RequestContext, Service};
use nimbus_store::{Batch, Store};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

const ROLES: &str = "iam_roles";
const PROFILES: &str = "iam_profiles";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Role {
    name: String,
    id: String,
    path: String,
    trust_policy: String,
    description: Option<String>,
    max_session_duration: i64,
    created_ms: u64,
    #[serde(default)]
    tags: Vec<(String, String)>,
    /// Inline policies by name (kept and returned; not yet evaluated).
    #[serde(default)]
    policies: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    name: String,
    id: String,
    path: String,
    created_ms: u64,
    /// At most one role, as AWS allows.
    role: Option<String>,
}

#[derive(Debug, Default)]
struct Account {
    roles: BTreeMap<String, Role>,
    profiles: BTreeMap<String, Profile>,
}

pub struct Iam {
    store: Store,
    accounts: Mutex<HashMap<String, Account>>,
}

fn key(account: &str, name: &str) -> Vec<u8> {
    let mut k = account.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

fn split_key(k: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(k);
    text.split_once('\0').map(|(a, _)| a.to_string())
}

fn no_such(kind: &str, name: &str) -> AwsError {
    AwsError::new(
        "NoSuchEntityException",
        format!("The {kind} with name {name} cannot be found."),
    )
    .with_status(404)
}

fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        nimbus_core::random_string(nimbus_core::UPPER_ALNUM, 17)
    )
}

fn required<'a>(input: &'a Value, member: &str) -> Result<&'a str, AwsError> {
    input
        .get(member)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AwsError::new(
                "ValidationError",
                format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"),
            )
        })
}

fn path_of(input: &Value) -> Result<String, AwsError> {
    let path = input.get("Path").and_then(Value::as_str).unwrap_or("/");
    if !path.starts_with('/') || !path.ends_with('/') {
        return Err(AwsError::new(
            "ValidationError",
            "The specified value for path is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters.",
        ));
    }
    Ok(path.to_string())
}

impl Iam {
    pub fn open(store: Store) -> Result<Iam, String> {
        let err = |e: nimbus_store::StoreError| format!("cannot load IAM state: {e}");
        let mut accounts: HashMap<String, Account> = HashMap::new();
        for (k, v) in store.scan_prefix(ROLES, b"").map_err(err)? {
            if let (Some(account), Ok(role)) = (split_key(&k), serde_json::from_slice::<Role>(&v)) {
                accounts
                    .entry(account)
                    .or_default()
                    .roles
                    .insert(role.name.clone(), role);
            }
        }
        for (k, v) in store.scan_prefix(PROFILES, b"").map_err(err)? {
            if let (Some(account), Ok(p)) = (split_key(&k), serde_json::from_slice::<Profile>(&v)) {
                accounts
                    .entry(account)
                    .or_default()
                    .profiles
                    .insert(p.name.clone(), p);
            }
        }
        Ok(Iam {
            store,
            accounts: Mutex::new(accounts),
        })
    }

    /// Runs `f` on the caller's account and commits the batch it fills before answering.
    async fn with_account(
        &self,
        ctx: &RequestContext,
        f: impl FnOnce(&mut Account, &mut Batch) -> Result<Value, AwsError>,
    ) -> Result<Value, AwsError> {
        let (out, commit) = {
            let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
            let account = accounts.entry(ctx.account_id.clone()).or_default();
            let mut batch = Batch::new();
            let out = f(account, &mut batch)?;
            (out, self.store.submit(batch))
        };
        commit.await.map_err(|e| {
            tracing::error!("IAM store commit failed: {e}");
            AwsError::new(
                "ServiceFailure",
                "Request processing has failed due to an internal error.",
            )
            .with_status(500)
        })?;
        Ok(out)
    }
}

/// A policy document must be JSON with a Statement (IAM's own first checks).
fn check_policy(document: &str) -> Result<(), AwsError> {
    let parsed: Value = serde_json::from_str(document).map_err(|_| {
        AwsError::new(
            "MalformedPolicyDocumentException",
            "This policy contains invalid Json",
        )
    })?;
    if parsed.get("Statement").is_none() {
        return Err(AwsError::new(
            "MalformedPolicyDocumentException",
            "Syntax errors in policy.",
        ));
    }
    Ok(())
}

fn url_encoded(document: &str) -> String {
    percent_encoding::utf8_percent_encode(document, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn no_such_policy(role: &str, policy: &str) -> AwsError {
    AwsError::new(
        "NoSuchEntityException",
        format!("The role policy with name {policy} cannot be found."),
    )
    .with_status(404)
    .with_message(format!(
        "The role policy with name {policy} cannot be found for role {role}."
    ))
}

fn role_value(r: &Role, account: &str) -> Value {
    let mut v = json!({
        "RoleName": r.name,
        "RoleId": r.id,
        "Path": r.path,
        "Arn": format!("arn:aws:iam::{account}:role{}{}", r.path, r.name),
        "CreateDate": r.created_ms / 1000,
        // IAM sends policy documents URL-encoded; SDKs decode them.
        "AssumeRolePolicyDocument": url_encoded(&r.trust_policy),
        "MaxSessionDuration": r.max_session_duration,
    });
    if let Some(d) = &r.description {
        v["Description"] = json!(d);
    }
    if !r.tags.is_empty() {
        v["Tags"] = Value::Array(
            r.tags
                .iter()
                .map(|(k, val)| json!({"Key": k, "Value": val}))
                .collect(),
        );
    }
    v
}

fn profile_value(p: &Profile, a: &Account, account: &str) -> Value {
    let roles: Vec<Value> = p
        .role
        .as_ref()
        .and_then(|r| a.roles.get(r))
        .map(|r| vec![role_value(r, account)])
        .unwrap_or_default();
    json!({
        "InstanceProfileName": p.name,
        "InstanceProfileId": p.id,
        "Path": p.path,
        "Arn": format!("arn:aws:iam::{account}:instance-profile{}{}", p.path, p.name),
        "CreateDate": p.created_ms / 1000,
        "Roles": roles,
    })
}

fn put<T: Serialize>(
    batch: &mut Batch,
    table: &str,
    account: &str,
    name: &str,
    record: &T,
) -> Result<(), AwsError> {
    let encoded = serde_json::to_vec(record).map_err(|e| AwsError::internal(e.to_string()))?;
    batch.put(table, key(account, name), encoded);
    Ok(())
}

/// IAM's `MaxItems` / `Marker` paging (the marker is the index of the next item).
fn paginate(items: Vec<Value>, input: &Value, member: &str) -> Result<Value, AwsError> {
    let start = match input.get("Marker").and_then(Value::as_str) {
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| AwsError::new("ValidationError", "Invalid Marker provided."))?,
        None => 0,
    };
    let max = input.get("MaxItems").and_then(Value::as_i64).unwrap_or(100);
    if !(1..=1000).contains(&max) {
        return Err(AwsError::new(
            "ValidationError",
            format!("1 validation error detected: Value '{max}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"),
        ));
    }
    let end = (start + max as usize).min(items.len());
    let page: Vec<Value> = items
        .iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .cloned()
        .collect();
    let mut out = json!({member: page, "IsTruncated": end < items.len()});
    if end < items.len() {
        out["Marker"] = json!(end.to_string());
    }
    Ok(out)
}

impl Service for Iam {
    fn name(&self) -> &'static str {
        "iam"
    }

    fn call<'a>(
        &'a self,
        ctx: &'a RequestContext,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, AwsError>> {
        Box::pin(async move {
            let acct = ctx.account_id.clone();
            let i = &input;
            match operation {
                "CreateRole" => {
                    self.with_account(ctx, |a, b| {
                        let name = required(i, "RoleName")?;
                        let policy = required(i, "AssumeRolePolicyDocument")?;
                        check_policy(policy)?;
                        if a.roles.contains_key(name) {
                            return Err(AwsError::new(
                                "EntityAlreadyExistsException",
                                format!("Role with name {name} already exists."),
                            ));
                        }
                        let role = Role {
                            policies: BTreeMap::new(),
                            name: name.to_string(),
                            id: new_id("AROA"),
                            path: path_of(i)?,
                            trust_policy: policy.to_string(),
                            description: i
                                .get("Description")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            max_session_duration: i
                                .get("MaxSessionDuration")
                                .and_then(Value::as_i64)
                                .unwrap_or(3600),
                            created_ms: ctx.now_ms,
                            tags: i
                                .get("Tags")
                                .and_then(Value::as_array)
                                .map(|t| {
                                    t.iter()
                                        .map(|x| {
                                            (
                                                x.get("Key")
                                                    .and_then(Value::as_str)
                                                    .unwrap_or("")
                                                    .to_string(),
                                                x.get("Value")
                                                    .and_then(Value::as_str)
                                                    .unwrap_or("")
                                                    .to_string(),
                                            )
                                        })
                                        .collect()
                                })
                                .unwrap_or_default(),
                        };
                        put(b, ROLES, &acct, name, &role)?;
                        let out = json!({"Role": role_value(&role, &acct)});
                        a.roles.insert(name.to_string(), role);
                        Ok(out)
                    })
                    .await
                }
                "GetRole" => {
                    self.with_account(ctx, |a, _| {
                        let name = required(i, "RoleName")?;
                        let role = a.roles.get(name).ok_or_else(|| no_such("role", name))?;
                        Ok(json!({"Role": role_value(role, &acct)}))
                    })
                    .await
                }
                "ListRoles" => {
                    self.with_account(ctx, |a, _| {
                        let prefix = i.get("PathPrefix").and_then(Value::as_str).unwrap_or("/");
                        let roles: Vec<Value> = a
                            .roles
                            .values()
                            .filter(|r| r.path.starts_with(prefix))
                            .map(|r| role_value(r, &acct))
                            .collect();
                        paginate(roles, i, "Roles")
                    })
                    .await
                }
                "DeleteRole" => {
                    self.with_account(ctx, |a, b| {
                        let name = required(i, "RoleName")?;
                        if !a.roles.contains_key(name) {
                            return Err(no_such("role", name));
                        }
                        if a.roles.get(name).is_some_and(|r| !r.policies.is_empty()) {
                            return Err(AwsError::new(
                                "DeleteConflictException",
                                "Cannot delete entity, must delete policies first.",
                            )
                            .with_status(409));
                        }
                        if a.profiles.values().any(|p| p.role.as_deref() == Some(name)) {
                            return Err(AwsError::new(
                            "DeleteConflictException",
                            "Cannot delete entity, must remove roles from instance profile first.",
                        ));
                        }
                        a.roles.remove(name);
                        b.delete(ROLES, key(&acct, name));
                        Ok(json!({}))
                    })
                    .await
                }
                "PutRolePolicy" => {
                    self.with_account(ctx, |a, b| {
                        let role = required(i, "RoleName")?;
                        let name = required(i, "PolicyName")?;
                        let document = required(i, "PolicyDocument")?;
                        check_policy(document)?;
                        let r = a.roles.get_mut(role).ok_or_else(|| no_such("role", role))?;
                        let mut changed = r.clone();
                        changed
                            .policies
                            .insert(name.to_string(), document.to_string());
                        put(b, ROLES, &acct, role, &changed)?;
                        *r = changed;
                        Ok(json!({}))
                    })
                    .await
                }
                "GetRolePolicy" => {
                    self.with_account(ctx, |a, _| {
                        let role = required(i, "RoleName")?;
                        let name = required(i, "PolicyName")?;
                        let r = a.roles.get(role).ok_or_else(|| no_such("role", role))?;
                        let document = r
                            .policies
                            .get(name)
                            .ok_or_else(|| no_such_policy(role, name))?;
                        Ok(json!({
                            "RoleName": role,
                            "PolicyName": name,
                            "PolicyDocument": url_encoded(document),
                        }))
                    })
                    .await
                }
                "ListRolePolicies" => {
                    self.with_account(ctx, |a, _| {
                        let role = required(i, "RoleName")?;
                        let r = a.roles.get(role).ok_or_else(|| no_such("role", role))?;
                        let names: Vec<Value> = r.policies.keys().map(|n| json!(n)).collect();
                        paginate(names, i, "PolicyNames")
                    })
                    .await
                }
                "DeleteRolePolicy" => {
                    self.with_account(ctx, |a, b| {
                        let role = required(i, "RoleName")?;
                        let name = required(i, "PolicyName")?;
                        let r = a.roles.get_mut(role).ok_or_else(|| no_such("role", role))?;
                        if !r.policies.contains_key(name) {
                            return Err(no_such_policy(role, name));
                        }
                        let mut changed = r.clone();
                        changed.policies.remove(name);
                        put(b, ROLES, &acct, role, &changed)?;
                        *r = changed;
                        Ok(json!({}))
                    })
                    .await
                }
                "CreateInstanceProfile" => {
                    self.with_account(ctx, |a, b| {
                        let name = required(i, "InstanceProfileName")?;
                        if a.profiles.contains_key(name) {
                            return Err(AwsError::new(
                                "EntityAlreadyExistsException",
                                format!("Instance Profile {name} already exists."),
                            ));
                        }
                        let p = Profile {
                            name: name.to_string(),
                            id: new_id("AIPA"),
                            path: path_of(i)?,
                            created_ms: ctx.now_ms,
                            role: None,
                        };
                        put(b, PROFILES, &acct, name, &p)?;
                        let out = json!({"InstanceProfile": profile_value(&p, a, &acct)});
                        a.profiles.insert(name.to_string(), p);
                        Ok(out)
                    })
                    .await
                }
                "GetInstanceProfile" => {
                    self.with_account(ctx, |a, _| {
                        let name = required(i, "InstanceProfileName")?;
                        let p = a
                            .profiles
                            .get(name)
                            .ok_or_else(|| no_such("instance profile", name))?;
                        Ok(json!({"InstanceProfile": profile_value(p, a, &acct)}))
                    })
                    .await
                }
                "ListInstanceProfiles" => {
                    self.with_account(ctx, |a, _| {
                        let prefix = i.get("PathPrefix").and_then(Value::as_str).unwrap_or("/");
                        let list: Vec<Value> = a
                            .profiles
                            .values()
                            .filter(|p| p.path.starts_with(prefix))
                            .map(|p| profile_value(p, a, &acct))
                            .collect();
                        paginate(list, i, "InstanceProfiles")
                    })
                    .await
                }
                "ListInstanceProfilesForRole" => {
                    self.with_account(ctx, |a, _| {
                        let role = required(i, "RoleName")?;
                        if !a.roles.contains_key(role) {
                            return Err(no_such("role", role));
                        }
                        let list: Vec<Value> = a
                            .profiles
                            .values()
                            .filter(|p| p.role.as_deref() == Some(role))
                            .map(|p| profile_value(p, a, &acct))
                            .collect();
                        paginate(list, i, "InstanceProfiles")
                    })
                    .await
                }
                "AddRoleToInstanceProfile" => {
                    self.with_account(ctx, |a, b| {
                        let name = required(i, "InstanceProfileName")?;
                        let role = required(i, "RoleName")?;
                        if !a.roles.contains_key(role) {
                            return Err(no_such("role", role));
                        }
                        let p = a
                            .profiles
                            .get_mut(name)
                            .ok_or_else(|| no_such("instance profile", name))?;
                        if p.role.is_some() {
                            return Err(AwsError::new(
                                "LimitExceededException",
                                "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1",
                            ));
                        }
                        p.role = Some(role.to_string());
                        put(b, PROFILES, &acct, name, p)?;
                        Ok(json!({}))
                    })
                    .await
                }
                "RemoveRoleFromInstanceProfile" => {
                    self.with_account(ctx, |a, b| {
                        let name = required(i, "InstanceProfileName")?;
                        let role = required(i, "RoleName")?;
                        let p = a
                            .profiles
                            .get_mut(name)
                            .ok_or_else(|| no_such("instance profile", name))?;
                        if p.role.as_deref() != Some(role) {
                            return Err(no_such("role", role));
                        }
                        p.role = None;
                        put(b, PROFILES, &acct, name, p)?;
                        Ok(json!({}))
                    })
                    .await
                }
                "DeleteInstanceProfile" => {
                    self.with_account(ctx, |a, b| {
                        let name = required(i, "InstanceProfileName")?;
                        let p = a
                            .profiles
                            .get(name)
                            .ok_or_else(|| no_such("instance profile", name))?;
                        if p.role.is_some() {
                            return Err(AwsError::new(
                            "DeleteConflictException",
                            "Cannot delete entity, must remove roles from instance profile first.",
                        ));
                        }
                        a.profiles.remove(name);
                        b.delete(PROFILES, key(&acct, name));
                        Ok(json!({}))
                    })
                    .await
                }
                other => Err(AwsError::operation_not_implemented("iam", "IAM", other)),
            }
        })
    }

    /// Every role and instance profile of every account goes.
    fn reset(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            let failed = |e: String| {
                tracing::error!("IAM reset failed: {e}");
                AwsError::internal(e)
            };
            // Read before the swap: what the store holds beyond memory (unreadable records).
            let stored = self
                .store
                .keys_of_tables(&[ROLES, PROFILES])
                .await
                .map_err(|e| failed(e.to_string()))?;
            // Queued under the lock, so a role created right after the reset is written after it.
            let commit = {
                let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
                let mut batch = Batch::new();
                for (account, a) in accounts.drain() {
                    for name in a.roles.keys() {
                        batch.delete(ROLES, key(&account, name));
                    }
                    for name in a.profiles.keys() {
                        batch.delete(PROFILES, key(&account, name));
                    }
                }
                for (table, keys) in stored {
                    for k in keys {
                        batch.delete(table, k);
                    }
                }
                self.store.submit(batch)
            };
            commit.await.map_err(|e| failed(e.to_string()))
        })
    }
}
