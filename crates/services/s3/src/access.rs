//! Who may do what to a bucket or object, decided as S3 does: an explicit
//! Deny in the bucket policy refuses; the bucket owner's account is allowed;
//! otherwise an Allow in the bucket policy or an ACL grant is needed.
//! Block Public Access settings then narrow this: RestrictPublicBuckets makes
//! a public policy count only for the owner's account, IgnorePublicAcls
//! disregards grants to everyone, and the Block* settings refuse new public
//! policies and ACLs. Buckets default to ACLs disabled (BucketOwnerEnforced)
//! and all four Block Public Access settings on, as new buckets on AWS do
//! since April 2023.
//!
//! IAM identity policies do not exist in nimbus yet: every signed caller of
//! the owner's account acts as the account.

use crate::errors;
use crate::state::BucketRecord;
use nimbus_core::{AwsError, RequestContext};
use nimbus_policy::{Decision, Policy, Principal, Request};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// The 64-hex canonical user id S3 shows for an account.
pub fn canonical_id(account: &str) -> String {
    hex::encode(Sha256::digest(format!("nimbus-canonical-user:{account}")))
}

pub fn owner_value(account: &str) -> Value {
    json!({"ID": canonical_id(account), "DisplayName": account})
}

/// The grants a canned ACL stands for, besides the owner's FULL_CONTROL.
pub fn canned_grants(acl: &str) -> Result<Value, AwsError> {
    let group = |uri: &str, permission: &str| json!({"Grantee": {"Type": "Group", "URI": uri}, "Permission": permission});
    Ok(Value::Array(match acl {
        "private"
        | "bucket-owner-read"
        | "bucket-owner-full-control"
        | "aws-exec-read"
        | "log-delivery-write" => Vec::new(),
        "public-read" => vec![group(ALL_USERS, "READ")],
        "public-read-write" => vec![group(ALL_USERS, "READ"), group(ALL_USERS, "WRITE")],
        "authenticated-read" => vec![group(AUTHENTICATED_USERS, "READ")],
        other => {
            return Err(errors::invalid_argument(
                format!("{other} is not a valid canned ACL"),
                "x-amz-acl",
                other,
            ))
        }
    }))
}

/// The full grant list S3 reports: the owner's FULL_CONTROL first, then the stored grants.
pub fn full_grants(owner: &str, grants: Option<&Value>) -> Value {
    let mut all = vec![json!({
        "Grantee": {"Type": "CanonicalUser", "ID": canonical_id(owner), "DisplayName": owner},
        "Permission": "FULL_CONTROL",
    })];
    if let Some(Value::Array(extra)) = grants {
        all.extend(extra.iter().cloned());
    }
    Value::Array(all)
}

pub fn grants_are_public(grants: Option<&Value>) -> bool {
    grants.and_then(Value::as_array).is_some_and(|list| {
        list.iter().any(|g| {
            matches!(
                g.pointer("/Grantee/URI").and_then(Value::as_str),
                Some(ALL_USERS) | Some(AUTHENTICATED_USERS)
            )
        })
    })
}

/// The Block Public Access setting `name` of a bucket (absent configuration: off).
pub fn blocks(bucket: &BucketRecord, name: &str) -> bool {
    bucket
        .config
        .public_access_block
        .as_ref()
        .and_then(|c| c.get(name))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

pub fn acls_enabled(bucket: &BucketRecord) -> bool {
    bucket.config.ownership.as_deref() != Some("BucketOwnerEnforced")
}

/// What is being asked.
pub struct Ask<'a> {
    pub action: &'a str,
    pub key: Option<&'a str>,
    /// The object's own ACL grants, for object reads.
    pub object_grants: Option<&'a Value>,
    /// Extra condition keys (`s3:prefix`, `s3:x-amz-acl`, ...).
    pub extra: &'a [(&'a str, &'a str)],
}

/// Refuses with AccessDenied unless `ctx` may do `ask` on `bucket`.
pub fn check(ctx: &RequestContext, bucket: &BucketRecord, ask: &Ask) -> Result<(), AwsError> {
    if allowed(ctx, bucket, ask) {
        Ok(())
    } else {
        Err(errors::access_denied())
    }
}

pub fn allowed(ctx: &RequestContext, bucket: &BucketRecord, ask: &Ask) -> bool {
    let anonymous = ctx.access_key_id.is_none();
    let is_owner = !anonymous && ctx.account_id == bucket.owner;
    let decision = bucket
        .config
        .policy
        .as_deref()
        .and_then(|text| Policy::parse(text).ok())
        .map(|policy| {
            // RestrictPublicBuckets: a public policy grants nothing outside the owner's account.
            if !is_owner && blocks(bucket, "RestrictPublicBuckets") && policy.is_public() {
                return match evaluate(&policy, ctx, bucket, ask) {
                    Decision::Deny => Decision::Deny,
                    _ => Decision::NotApplicable,
                };
            }
            evaluate(&policy, ctx, bucket, ask)
        })
        .unwrap_or(Decision::NotApplicable);
    match decision {
        Decision::Deny => return false,
        Decision::Allow => return true,
        Decision::NotApplicable => {}
    }
    if is_owner {
        return true;
    }
    acl_allows(ctx, bucket, ask)
}

fn evaluate(policy: &Policy, ctx: &RequestContext, bucket: &BucketRecord, ask: &Ask) -> Decision {
    let resource = match ask.key {
        Some(key) => format!("arn:aws:s3:::{}/{key}", bucket.name),
        None => format!("arn:aws:s3:::{}", bucket.name),
    };
    let mut context: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut put = |k: &str, v: String| context.entry(k.to_string()).or_default().push(v);
    if let Some(ip) = ctx.source_ip {
        put("aws:SourceIp", ip.to_string());
    }
    if let Some(ua) = &ctx.user_agent {
        put("aws:UserAgent", ua.clone());
    }
    if let Some(referer) = &ctx.referer {
        put("aws:Referer", referer.clone());
    }
    put("aws:SecureTransport", "false".to_string());
    put("aws:EpochTime", (ctx.now_ms / 1000).to_string());
    put(
        "aws:CurrentTime",
        nimbus_core::timestamp::format_iso8601_secs((ctx.now_ms / 1000) as i64),
    );
    if ctx.access_key_id.is_some() {
        put("aws:PrincipalAccount", ctx.account_id.clone());
        put("aws:userid", ctx.caller_user_id.clone());
        put("aws:PrincipalArn", ctx.caller_arn.clone());
    }
    for (k, v) in ask.extra {
        put(k, v.to_string());
    }
    let principal = if ctx.access_key_id.is_none() {
        Principal::Anonymous
    } else {
        Principal::Aws {
            arn: &ctx.caller_arn,
            account: &ctx.account_id,
        }
    };
    policy.evaluate(&Request {
        principal,
        action: ask.action,
        resource: &resource,
        context: &context,
    })
}

/// ACL grants for callers outside the owner's account.
fn acl_allows(ctx: &RequestContext, bucket: &BucketRecord, ask: &Ask) -> bool {
    if !acls_enabled(bucket) {
        return false;
    }
    let permission = match ask.action {
        "s3:GetObject"
        | "s3:GetObjectVersion"
        | "s3:ListBucket"
        | "s3:ListBucketVersions"
        | "s3:ListBucketMultipartUploads" => "READ",
        "s3:PutObject" | "s3:DeleteObject" | "s3:DeleteObjectVersion" => "WRITE",
        "s3:GetBucketAcl" | "s3:GetObjectAcl" => "READ_ACP",
        "s3:PutBucketAcl" | "s3:PutObjectAcl" => "WRITE_ACP",
        _ => return false,
    };
    // Object reads are decided by the object's ACL, everything else by the bucket's.
    let grants = if ask.key.is_some() && permission == "READ"
        || permission.ends_with("_ACP") && ask.key.is_some()
    {
        ask.object_grants
    } else {
        bucket.config.acl.as_ref()
    };
    let ignore_public = blocks(bucket, "IgnorePublicAcls");
    let anonymous = ctx.access_key_id.is_none();
    grants.and_then(Value::as_array).is_some_and(|list| {
        list.iter().any(|g| {
            let granted = g.get("Permission").and_then(Value::as_str);
            if granted != Some(permission) && granted != Some("FULL_CONTROL") {
                return false;
            }
            match g.pointer("/Grantee/URI").and_then(Value::as_str) {
                Some(ALL_USERS) => !ignore_public,
                Some(AUTHENTICATED_USERS) => !ignore_public && !anonymous,
                _ => {
                    !anonymous
                        && g.pointer("/Grantee/ID").and_then(Value::as_str)
                            == Some(canonical_id(&ctx.account_id).as_str())
                }
            }
        })
    })
}
