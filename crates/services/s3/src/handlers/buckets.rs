//! Bucket life cycle: CreateBucket, HeadBucket, ListBuckets, DeleteBucket,
//! GetBucketLocation, with S3's naming rules and its answers for names that
//! exist already.

use crate::access::{self, Ask};
use crate::input::{int_of, required, str_of};
use crate::state::{self, BucketConfig, BucketRecord};
use crate::{errors, Bucket, Inner};
use nimbus_core::{AwsError, RequestContext};
use nimbus_store::Batch;
use serde_json::{json, Value};
use std::sync::Arc;

/// S3's bucket naming rules (general purpose buckets).
pub fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if !(3..=63).contains(&bytes.len()) {
        return false;
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-';
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !bytes.iter().all(|b| allowed(*b)) || !edge(bytes.first()) || !edge(bytes.last()) {
        return false;
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return false;
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return false;
    }
    let reserved_prefix = ["xn--", "sthree-", "amzn-s3-demo-"];
    let reserved_suffix = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    !reserved_prefix.iter().any(|p| name.starts_with(p))
        && !reserved_suffix.iter().any(|s| name.ends_with(s))
}

fn invalid_bucket_name(name: &str) -> AwsError {
    AwsError::new("InvalidBucketName", "The specified bucket is not valid.")
        .with_field("BucketName", name)
}

/// Block Public Access as a new bucket gets it on AWS (all four on).
pub fn default_public_access_block() -> Value {
    json!({
        "BlockPublicAcls": true,
        "IgnorePublicAcls": true,
        "BlockPublicPolicy": true,
        "RestrictPublicBuckets": true,
    })
}

pub async fn create_bucket(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let name = required(input, "Bucket")?;
    if !valid_bucket_name(name) {
        return Err(invalid_bucket_name(name));
    }
    let constraint = input
        .pointer("/CreateBucketConfiguration/LocationConstraint")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    let region = match constraint {
        Some("us-east-1") => {
            return Err(AwsError::new(
                "InvalidLocationConstraint",
                "The specified location-constraint is not valid",
            )
            .with_field("LocationConstraint", "us-east-1"))
        }
        Some("EU") => "eu-west-1".to_string(),
        Some(c) => {
            if ctx.region != "us-east-1" && c != ctx.region {
                return Err(AwsError::new(
                    "IllegalLocationConstraintException",
                    format!("The {c} location constraint is incompatible for the region specific endpoint this request was sent to."),
                ));
            }
            c.to_string()
        }
        None => {
            if ctx.region != "us-east-1" {
                return Err(AwsError::new(
                    "IllegalLocationConstraintException",
                    "The unspecified location constraint is incompatible for the region specific endpoint this request was sent to.",
                ));
            }
            "us-east-1".to_string()
        }
    };
    let ownership = str_of(input, "ObjectOwnership").unwrap_or("BucketOwnerEnforced");
    if !matches!(
        ownership,
        "BucketOwnerEnforced" | "BucketOwnerPreferred" | "ObjectWriter"
    ) {
        return Err(errors::invalid_argument(
            "Invalid x-amz-object-ownership header",
            "x-amz-object-ownership",
            ownership,
        ));
    }
    let acl = match str_of(input, "ACL") {
        Some(canned) => {
            let grants = access::canned_grants(canned)?;
            if ownership == "BucketOwnerEnforced"
                && canned != "private"
                && canned != "bucket-owner-full-control"
            {
                return Err(AwsError::new(
                    "InvalidBucketAclWithObjectOwnership",
                    "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
                ));
            }
            Some(grants).filter(|g| g.as_array().is_some_and(|a| !a.is_empty()))
        }
        None => None,
    };
    let record = BucketRecord {
        name: name.to_string(),
        owner: ctx.account_id.clone(),
        region: region.clone(),
        created_ms: ctx.now_ms,
        constraint: constraint.filter(|c| *c == "EU").map(str::to_string),
        config: BucketConfig {
            acl,
            ownership: Some(ownership.to_string()),
            public_access_block: Some(default_public_access_block()),
            ..BucketConfig::default()
        },
    };
    let encoded = serde_json::to_vec(&record).map_err(|e| errors::internal(e.to_string()))?;
    let commit = {
        let mut buckets = inner.buckets.write().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = buckets.get(name) {
            let existing = existing.record();
            if existing.owner != ctx.account_id {
                return Err(AwsError::new(
                    "BucketAlreadyExists",
                    "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
                )
                .with_status(409)
                .with_field("BucketName", name));
            }
            // us-east-1 answers a repeated create by the owner with success (legacy behaviour).
            if existing.region == "us-east-1" && region == "us-east-1" {
                return Ok(json!({"Location": format!("/{name}")}));
            }
            return Err(AwsError::new(
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
            )
            .with_status(409)
            .with_field("BucketName", name));
        }
        buckets.insert(
            name.to_string(),
            Arc::new(Bucket::new(record, inner.store.clone())),
        );
        let mut batch = Batch::new();
        batch.put(state::BUCKETS, name.as_bytes(), encoded);
        inner.store.submit(batch)
    };
    commit.await.map_err(errors::store_failed)?;
    let location = if region == "us-east-1" {
        format!("/{name}")
    } else {
        format!("http://{name}.s3.{}/", ctx.host)
    };
    Ok(json!({"Location": location}))
}

pub fn head_bucket(inner: &Inner, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let record = bucket.record();
    access::check(
        ctx,
        &record,
        &Ask {
            action: "s3:ListBucket",
            key: None,
            object_grants: None,
            extra: &[],
        },
    )?;
    Ok(json!({"BucketRegion": record.region, "AccessPointAlias": false}))
}

pub fn list_buckets(inner: &Inner, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let prefix = str_of(input, "Prefix").unwrap_or("");
    let region = str_of(input, "BucketRegion");
    let start = str_of(input, "ContinuationToken").unwrap_or("");
    let max = int_of(input, "MaxBuckets")
        .unwrap_or(10_000)
        .clamp(1, 10_000) as usize;
    let buckets = inner.buckets.read().unwrap_or_else(|p| p.into_inner());
    let mut listed = Vec::new();
    let mut next = None;
    for (name, bucket) in
        buckets.range::<str, _>((std::ops::Bound::Excluded(start), std::ops::Bound::Unbounded))
    {
        let record = bucket.record();
        if record.owner != ctx.account_id
            || !name.starts_with(prefix)
            || region.is_some_and(|r| r != record.region)
        {
            continue;
        }
        if listed.len() == max {
            next = listed.last().and_then(|b: &Value| b.get("Name")).cloned();
            break;
        }
        listed.push(json!({
            "Name": name,
            "CreationDate": record.created_ms / 1000,
            "BucketRegion": record.region,
            "BucketArn": format!("arn:aws:s3:::{name}"),
        }));
    }
    let mut out = json!({
        "Buckets": listed,
        "Owner": access::owner_value(&ctx.account_id),
    });
    if let Some(token) = next {
        out["ContinuationToken"] = token;
    }
    if !prefix.is_empty() {
        out["Prefix"] = json!(prefix);
    }
    Ok(out)
}

pub async fn delete_bucket(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let name = required(input, "Bucket")?;
    let bucket = inner.bucket(name)?;
    let record = bucket.record();
    access::check(
        ctx,
        &record,
        &Ask {
            action: "s3:DeleteBucket",
            key: None,
            object_grants: None,
            extra: &[],
        },
    )?;
    let commit = {
        // Held so that no object is written between the check and the removal.
        let _objects = bucket.edit();
        let mut buckets = inner.buckets.write().unwrap_or_else(|p| p.into_inner());
        if bucket.has_objects()? {
            return Err(AwsError::new(
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty",
            )
            .with_status(409)
            .with_field("BucketName", name));
        }
        buckets.remove(name);
        let mut batch = Batch::new();
        batch.delete(state::BUCKETS, name.as_bytes());
        // Incomplete uploads go with the bucket.
        let uploads =
            std::mem::take(&mut *bucket.uploads.lock().unwrap_or_else(|p| p.into_inner()));
        let mut files = Vec::new();
        for (id, upload) in uploads {
            batch.delete(state::UPLOADS, state::upload_key(name, &id));
            for (number, part) in upload.parts {
                batch.delete(state::PARTS, state::part_key(&id, number));
                files.push(part.file);
            }
        }
        (inner.store.submit(batch), files)
    };
    commit.0.await.map_err(errors::store_failed)?;
    inner.blobs.remove(&commit.1);
    Ok(json!({}))
}

pub fn get_bucket_location(
    inner: &Inner,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let bucket = inner.bucket(required(input, "Bucket")?)?;
    let record = bucket.record();
    access::check(
        ctx,
        &record,
        &Ask {
            action: "s3:GetBucketLocation",
            key: None,
            object_grants: None,
            extra: &[],
        },
    )?;
    // us-east-1 is reported as an empty constraint; a bucket created with the
    // legacy `EU` keeps that name (GetBucketLocation's documented values include EU).
    if let Some(constraint) = record.constraint {
        Ok(json!({"LocationConstraint": constraint}))
    } else if record.region == "us-east-1" {
        Ok(json!({}))
    } else {
        Ok(json!({"LocationConstraint": record.region}))
    }
}
