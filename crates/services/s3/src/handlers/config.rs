//! Bucket settings: tagging, ownership controls, Block Public Access,
//! policy, ACL, website, versioning, lifecycle, CORS, notifications,
//! encryption. Each is kept as the model value its Put received, validated
//! by the rules of its feature, and returned as is by its Get.

use crate::access::{self, Ask};
use crate::input::{required, str_of};
use crate::state::{self, BucketConfig, BucketRecord};
use crate::{cors, errors, events, lifecycle, website, Inner};
use nimbus_core::{AwsError, RequestContext};
use nimbus_store::Batch;
use serde_json::{json, Value};

/// The bucket settings served here; the model also routes S3's other operations,
/// which are answered as not implemented before any bucket is looked at.
pub const OPERATIONS: &[&str] = &[
    "DeleteBucketCors",
    "DeleteBucketEncryption",
    "DeleteBucketLifecycle",
    "DeleteBucketOwnershipControls",
    "DeleteBucketPolicy",
    "DeleteBucketTagging",
    "DeleteBucketWebsite",
    "DeletePublicAccessBlock",
    "GetBucketAccelerateConfiguration",
    "GetBucketAcl",
    "GetBucketCors",
    "GetBucketEncryption",
    "GetBucketLifecycleConfiguration",
    "GetBucketNotificationConfiguration",
    "GetBucketOwnershipControls",
    "GetBucketPolicy",
    "GetBucketPolicyStatus",
    "GetBucketRequestPayment",
    "GetBucketTagging",
    "GetBucketVersioning",
    "GetBucketWebsite",
    "GetPublicAccessBlock",
    "PutBucketAcl",
    "PutBucketCors",
    "PutBucketEncryption",
    "PutBucketLifecycleConfiguration",
    "PutBucketNotificationConfiguration",
    "PutBucketOwnershipControls",
    "PutBucketPolicy",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutBucketWebsite",
    "PutPublicAccessBlock",
];

pub async fn call(
    inner: &Inner,
    ctx: &RequestContext,
    operation: &str,
    input: &Value,
) -> Result<Value, AwsError> {
    if !OPERATIONS.contains(&operation) {
        return Err(AwsError::operation_not_implemented("s3", "S3", operation));
    }
    let name = required(input, "Bucket")?;
    let bucket = inner.bucket(name)?;
    let record = bucket.record();
    access::check(
        ctx,
        &record,
        &Ask {
            action: &action_for(operation),
            key: None,
            object_grants: None,
            extra: &[],
        },
    )?;
    let config = &record.config;
    let missing = |code: &str, message: &str| Err(errors::not_found(code, message, name));
    match operation {
        "GetBucketTagging" => match &config.tags {
            Some(tags) => Ok(json!({"TagSet": tags})),
            None => missing("NoSuchTagSet", "The TagSet does not exist"),
        },
        "GetBucketOwnershipControls" => match &config.ownership {
            Some(o) => Ok(json!({"OwnershipControls": {"Rules": [{"ObjectOwnership": o}]}})),
            None => missing(
                "OwnershipControlsNotFoundError",
                "The bucket ownership controls were not found",
            ),
        },
        "GetPublicAccessBlock" => match &config.public_access_block {
            Some(c) => Ok(json!({"PublicAccessBlockConfiguration": c})),
            None => missing(
                "NoSuchPublicAccessBlockConfiguration",
                "The public access block configuration was not found",
            ),
        },
        "GetBucketPolicy" => match &config.policy {
            Some(p) => Ok(json!({"Policy": p})),
            None => missing("NoSuchBucketPolicy", "The bucket policy does not exist"),
        },
        "GetBucketPolicyStatus" => match &config.policy {
            Some(p) => {
                let public = nimbus_policy::Policy::parse(p).is_ok_and(|p| p.is_public());
                Ok(json!({"PolicyStatus": {"IsPublic": public}}))
            }
            None => missing("NoSuchBucketPolicy", "The bucket policy does not exist"),
        },
        "GetBucketAcl" => Ok(json!({
            "Owner": access::owner_value(&record.owner),
            "Grants": access::full_grants(&record.owner, config.acl.as_ref()),
        })),
        "GetBucketWebsite" => match &config.website {
            Some(w) => Ok(w.clone()),
            None => missing(
                "NoSuchWebsiteConfiguration",
                "The specified bucket does not have a website configuration",
            ),
        },
        "GetBucketVersioning" => Ok(match &config.versioning {
            Some(status) => json!({"Status": status}),
            None => json!({}),
        }),
        "GetBucketLifecycleConfiguration" => match &config.lifecycle {
            Some(l) => Ok(json!({
                "Rules": l.get("Rules").cloned().unwrap_or(json!([])),
                "TransitionDefaultMinimumObjectSize": min_transition_size(l),
            })),
            None => missing(
                "NoSuchLifecycleConfiguration",
                "The lifecycle configuration does not exist",
            ),
        },
        "GetBucketCors" => match &config.cors {
            Some(c) => Ok(json!({"CORSRules": c.get("CORSRules").cloned().unwrap_or(json!([]))})),
            None => missing(
                "NoSuchCORSConfiguration",
                "The CORS configuration does not exist",
            ),
        },
        "GetBucketNotificationConfiguration" => {
            Ok(config.notification.clone().unwrap_or_else(|| json!({})))
        }
        "GetBucketEncryption" => Ok(json!({
            "ServerSideEncryptionConfiguration": config.encryption.clone().unwrap_or_else(default_encryption)
        })),
        "GetBucketAccelerateConfiguration" => Ok(json!({})),
        "GetBucketRequestPayment" => Ok(json!({"Payer": "BucketOwner"})),
        _ => {
            let updated = updated_config(inner, ctx, operation, input, &record)?;
            save(inner, &bucket, name, updated).await?;
            if operation == "PutBucketNotificationConfiguration" {
                send_test_events(inner, ctx, name, input);
            }
            if operation == "PutBucketLifecycleConfiguration" {
                let size = bucket
                    .record()
                    .config
                    .lifecycle
                    .as_ref()
                    .map(|l| min_transition_size(l).to_string());
                return Ok(json!({"TransitionDefaultMinimumObjectSize": size}));
            }
            Ok(json!({}))
        }
    }
}

/// The IAM action name of a bucket-settings operation.
fn action_for(operation: &str) -> String {
    let name = match operation {
        "GetBucketLifecycleConfiguration" => "GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => "PutLifecycleConfiguration",
        "GetBucketCors" => "GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "PutBucketCORS",
        "GetBucketNotificationConfiguration" => "GetBucketNotification",
        "PutBucketNotificationConfiguration" => "PutBucketNotification",
        "GetBucketEncryption" => "GetEncryptionConfiguration",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "PutEncryptionConfiguration",
        "GetPublicAccessBlock" => "GetBucketPublicAccessBlock",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "PutBucketPublicAccessBlock",
        "DeleteBucketTagging" => "PutBucketTagging",
        "DeleteBucketOwnershipControls" => "PutBucketOwnershipControls",
        "DeleteBucketWebsite" => "DeleteBucketWebsite",
        other => other,
    };
    format!("s3:{name}")
}

/// Objects smaller than this do not transition unless the configuration says otherwise
/// (S3's default since September 2024).
pub fn min_transition_size(lifecycle: &Value) -> &str {
    lifecycle
        .get("TransitionDefaultMinimumObjectSize")
        .and_then(Value::as_str)
        .unwrap_or("all_storage_classes_128K")
}

fn default_encryption() -> Value {
    json!({"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
        "BucketKeyEnabled": false,
    }]})
}

fn updated_config(
    inner: &Inner,
    ctx: &RequestContext,
    operation: &str,
    input: &Value,
    record: &BucketRecord,
) -> Result<BucketConfig, AwsError> {
    let mut config = record.config.clone();
    let member = |name: &str| input.get(name).cloned().ok_or_else(errors::malformed_xml);
    match operation {
        "PutBucketTagging" => {
            let tags = member("Tagging")?
                .get("TagSet")
                .cloned()
                .unwrap_or_else(|| json!([]));
            validate_tags(&tags, 50)?;
            config.tags = Some(tags);
        }
        "DeleteBucketTagging" => config.tags = None,
        "PutBucketOwnershipControls" => {
            let rule = member("OwnershipControls")?
                .pointer("/Rules/0/ObjectOwnership")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(errors::malformed_xml)?;
            if !matches!(
                rule.as_str(),
                "BucketOwnerEnforced" | "BucketOwnerPreferred" | "ObjectWriter"
            ) {
                return Err(errors::malformed_xml());
            }
            if rule == "BucketOwnerEnforced" && access::grants_are_public(config.acl.as_ref()) {
                return Err(errors::invalid_request(
                    "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
                ));
            }
            config.ownership = Some(rule);
        }
        "DeleteBucketOwnershipControls" => config.ownership = None,
        "PutPublicAccessBlock" => {
            let mut c = member("PublicAccessBlockConfiguration")?;
            if let Some(map) = c.as_object_mut() {
                for name in [
                    "BlockPublicAcls",
                    "IgnorePublicAcls",
                    "BlockPublicPolicy",
                    "RestrictPublicBuckets",
                ] {
                    map.entry(name).or_insert(json!(false));
                }
            }
            config.public_access_block = Some(c);
        }
        "DeletePublicAccessBlock" => config.public_access_block = None,
        "PutBucketPolicy" => {
            let text = str_of(input, "Policy").ok_or_else(|| {
                AwsError::new(
                    "MalformedPolicy",
                    "Policies must be valid JSON and the first byte must be '{'",
                )
            })?;
            let policy = nimbus_policy::Policy::parse(text)
                .map_err(|e| AwsError::new("MalformedPolicy", e.message))?;
            check_policy_scope(&policy, &record.name)?;
            if access::blocks(record, "BlockPublicPolicy") && policy.is_public() {
                return Err(errors::access_denied().with_message(
                    "User is not authorized to perform: s3:PutBucketPolicy on resource because public policies are blocked by the BlockPublicPolicy block public access setting.",
                ));
            }
            config.policy = Some(text.to_string());
        }
        "DeleteBucketPolicy" => config.policy = None,
        "PutBucketAcl" => {
            let grants = acl_from_input(input)?;
            if !access::acls_enabled(record) && grants.as_array().is_some_and(|g| !g.is_empty()) {
                return Err(AwsError::new(
                    "AccessControlListNotSupported",
                    "The bucket does not allow ACLs",
                ));
            }
            if access::blocks(record, "BlockPublicAcls") && access::grants_are_public(Some(&grants))
            {
                return Err(errors::access_denied());
            }
            config.acl = Some(grants).filter(|g| g.as_array().is_some_and(|a| !a.is_empty()));
        }
        "PutBucketWebsite" => {
            let w = member("WebsiteConfiguration")?;
            website::validate(&w)?;
            config.website = Some(w);
        }
        "DeleteBucketWebsite" => config.website = None,
        "PutBucketVersioning" => {
            let status = member("VersioningConfiguration")?
                .get("Status")
                .and_then(Value::as_str)
                .map(str::to_string);
            match status.as_deref() {
                Some("Enabled") | Some("Suspended") => config.versioning = status,
                None => {}
                Some(_) => return Err(errors::malformed_xml()),
            }
        }
        "PutBucketLifecycleConfiguration" => {
            let mut l = member("LifecycleConfiguration")?;
            lifecycle::validate(&l)?;
            let size = str_of(input, "TransitionDefaultMinimumObjectSize")
                .unwrap_or("all_storage_classes_128K");
            if !matches!(size, "all_storage_classes_128K" | "varies_by_storage_class") {
                return Err(errors::invalid_argument(
                    "Invalid TransitionDefaultMinimumObjectSize",
                    "x-amz-transition-default-minimum-object-size",
                    size,
                ));
            }
            l["TransitionDefaultMinimumObjectSize"] = json!(size);
            config.lifecycle = Some(l);
        }
        "DeleteBucketLifecycle" => config.lifecycle = None,
        "PutBucketCors" => {
            let c = member("CORSConfiguration")?;
            cors::validate(&c)?;
            config.cors = Some(c);
        }
        "DeleteBucketCors" => config.cors = None,
        "PutBucketNotificationConfiguration" => {
            let n = member("NotificationConfiguration")?;
            let sink = inner.event_sink();
            events::validate(&n, &|arn| {
                sink.as_ref().is_some_and(|s| s.queue_exists(arn))
            })?;
            config.notification = Some(events::with_generated_ids(&n))
                .filter(|n| n.as_object().is_some_and(|m| !m.is_empty()));
        }
        "PutBucketEncryption" => {
            config.encryption = Some(member("ServerSideEncryptionConfiguration")?);
        }
        "DeleteBucketEncryption" => config.encryption = None,
        other => {
            return Err(AwsError::new(
                "NotImplemented",
                format!(
                "A header you provided implies functionality that is not implemented ({other})."
            ),
            )
            .with_status(501))
        }
    }
    let _ = ctx;
    Ok(config)
}

async fn save(
    inner: &Inner,
    bucket: &crate::Bucket,
    name: &str,
    config: BucketConfig,
) -> Result<(), AwsError> {
    let commit = {
        let mut record = bucket.record.write().unwrap_or_else(|p| p.into_inner());
        record.config = config;
        let encoded = serde_json::to_vec(&*record).map_err(|e| errors::internal(e.to_string()))?;
        let mut batch = Batch::new();
        batch.put(state::BUCKETS, name.as_bytes(), encoded);
        inner.store.submit(batch)
    };
    commit.await.map_err(errors::store_failed)
}

/// The actions S3 knows, for telling a misspelt action from a real one in a bucket policy.
const S3_ACTIONS: &[&str] = &[
    "abortmultipartupload",
    "bypassgovernanceretention",
    "createbucket",
    "deletebucket",
    "deletebucketpolicy",
    "deletebucketwebsite",
    "deleteobject",
    "deleteobjecttagging",
    "deleteobjectversion",
    "deleteobjectversiontagging",
    "getaccelerateconfiguration",
    "getbucketacl",
    "getbucketcors",
    "getbucketlocation",
    "getbucketlogging",
    "getbucketnotification",
    "getbucketobjectlockconfiguration",
    "getbucketownershipcontrols",
    "getbucketpolicy",
    "getbucketpolicystatus",
    "getbucketpublicaccessblock",
    "getbucketrequestpayment",
    "getbuckettagging",
    "getbucketversioning",
    "getbucketwebsite",
    "getencryptionconfiguration",
    "getlifecycleconfiguration",
    "getobject",
    "getobjectacl",
    "getobjectattributes",
    "getobjectlegalhold",
    "getobjectretention",
    "getobjecttagging",
    "getobjectversion",
    "getobjectversionacl",
    "getobjectversionattributes",
    "getobjectversiontagging",
    "getreplicationconfiguration",
    "listallmybuckets",
    "listbucket",
    "listbucketmultipartuploads",
    "listbucketversions",
    "listmultipartuploadparts",
    "putaccelerateconfiguration",
    "putbucketacl",
    "putbucketcors",
    "putbucketlogging",
    "putbucketnotification",
    "putbucketobjectlockconfiguration",
    "putbucketownershipcontrols",
    "putbucketpolicy",
    "putbucketpublicaccessblock",
    "putbucketrequestpayment",
    "putbuckettagging",
    "putbucketversioning",
    "putbucketwebsite",
    "putencryptionconfiguration",
    "putlifecycleconfiguration",
    "putobject",
    "putobjectacl",
    "putobjectlegalhold",
    "putobjectretention",
    "putobjecttagging",
    "putobjectversionacl",
    "putobjectversiontagging",
    "putreplicationconfiguration",
    "replicatedelete",
    "replicateobject",
    "replicatetags",
    "restoreobject",
];

/// A bucket policy may only name S3 actions that exist and resources of its own bucket.
fn check_policy_scope(policy: &nimbus_policy::Policy, bucket: &str) -> Result<(), AwsError> {
    let malformed = |m: &str| AwsError::new("MalformedPolicy", m);
    for action in policy.actions() {
        let action = action.to_ascii_lowercase();
        if action == "*" {
            continue;
        }
        let Some(name) = action.strip_prefix("s3:") else {
            return Err(malformed("Policy has invalid action"));
        };
        if !S3_ACTIONS
            .iter()
            .any(|known| nimbus_core::wildcard_match(name, known))
        {
            return Err(malformed("Policy has invalid action"));
        }
    }
    for resource in policy.resources() {
        if resource == "*" {
            continue;
        }
        let Some(rest) = resource.strip_prefix("arn:aws:s3:::") else {
            return Err(malformed("Policy has invalid resource"));
        };
        let bucket_part = rest.split('/').next().unwrap_or("");
        if !nimbus_core::wildcard_match(bucket_part, bucket) {
            return Err(malformed("Policy has invalid resource"));
        }
    }
    Ok(())
}

/// Checks a TagSet value: unique keys, S3's length limits, at most `max` tags.
pub fn validate_tags(tags: &Value, max: usize) -> Result<(), AwsError> {
    let list = tags.as_array().ok_or_else(errors::malformed_xml)?;
    if list.len() > max {
        return Err(AwsError::new(
            "BadRequest",
            format!("Object tags cannot be greater than {max}"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for tag in list {
        let key = tag.get("Key").and_then(Value::as_str).unwrap_or("");
        let value = tag.get("Value").and_then(Value::as_str).unwrap_or("");
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(AwsError::new(
                "InvalidTag",
                "The TagKey you have provided is invalid",
            ));
        }
        if !seen.insert(key.to_string()) {
            return Err(AwsError::new(
                "InvalidTag",
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(())
}

/// Grants from a Put*Acl input: the canned `ACL` header, `x-amz-grant-*` headers, or an AccessControlPolicy body.
pub fn acl_from_input(input: &Value) -> Result<Value, AwsError> {
    if let Some(canned) = str_of(input, "ACL") {
        return access::canned_grants(canned);
    }
    let mut grants = Vec::new();
    for (member, permission) in [
        ("GrantRead", "READ"),
        ("GrantWrite", "WRITE"),
        ("GrantReadACP", "READ_ACP"),
        ("GrantWriteACP", "WRITE_ACP"),
        ("GrantFullControl", "FULL_CONTROL"),
    ] {
        for grantee in str_of(input, member).unwrap_or("").split(',') {
            let Some((kind, value)) = grantee.trim().split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            let who = match kind.trim() {
                "uri" => json!({"Type": "Group", "URI": value}),
                "id" => json!({"Type": "CanonicalUser", "ID": value}),
                "emailAddress" => json!({"Type": "AmazonCustomerByEmail", "EmailAddress": value}),
                _ => return Err(errors::invalid_argument("Invalid grantee", member, grantee)),
            };
            grants.push(json!({"Grantee": who, "Permission": permission}));
        }
    }
    if grants.is_empty() {
        if let Some(policy) = input.get("AccessControlPolicy") {
            let list = policy.get("Grants").cloned().unwrap_or_else(|| json!([]));
            // The owner's own FULL_CONTROL grant is implied; keep the others.
            let others: Vec<Value> = list
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter(|g| {
                            !(g.pointer("/Grantee/Type").and_then(Value::as_str)
                                == Some("CanonicalUser")
                                && g.get("Permission").and_then(Value::as_str)
                                    == Some("FULL_CONTROL"))
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            return Ok(Value::Array(others));
        }
    }
    Ok(Value::Array(grants))
}

/// S3 sends an `s3:TestEvent` to each destination when a notification configuration is saved.
fn send_test_events(inner: &Inner, ctx: &RequestContext, bucket: &str, input: &Value) {
    let Some(sink) = inner.event_sink() else {
        return;
    };
    let queues = input
        .pointer("/NotificationConfiguration/QueueConfigurations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for q in queues {
        if let Some(arn) = q.get("QueueArn").and_then(Value::as_str) {
            sink.send(
                arn,
                events::test_event_message(bucket, &ctx.request_id, ctx.now_ms),
            );
        }
    }
}
