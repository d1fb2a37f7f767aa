//! Queue-level operations: CreateQueue, GetQueueUrl, ListQueues, DeleteQueue,
//! GetQueueAttributes, SetQueueAttributes, PurgeQueue, TagQueue, UntagQueue,
//! ListQueueTags, AddPermission, RemovePermission, ListDeadLetterSourceQueues.
//!
//! Metadata writes take the queue's `meta` lock across their commit so that
//! the record on disk is always the latest; message state is untouched
//! except by PurgeQueue and DeleteQueue.

use super::{decode_token, encode_token, max_results, queue_record};
use crate::attributes::{self, QueueAttrs, RedrivePolicy};
use crate::errors;
use crate::input::{opt_int, parse, required};
use crate::names::{self, QueueKey};
use crate::queue::{Queue, QueueState};
use crate::state;
use crate::Inner;
use nimbus_core::{AwsError, RequestContext};
use nimbus_store::Batch;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How long a deleted queue's name stays unavailable.
const RECREATE_DELAY_MS: u64 = 60_000;
/// PurgeQueue may run once per this period.
const PURGE_PERIOD_MS: u64 = 60_000;
const MAX_TAGS: usize = 50;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateQueueIn {
    queue_name: Option<String>,
    attributes: Option<Map<String, Value>>,
    #[serde(rename = "tags", alias = "Tags")]
    tags: Option<BTreeMap<String, String>>,
}

fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(AwsError::invalid_parameter(
                "Tag keys must be between 1 and 128 characters in length.",
            ));
        }
        if v.chars().count() > 256 {
            return Err(AwsError::invalid_parameter(
                "Tag values must be less than 256 characters in length.",
            ));
        }
    }
    Ok(())
}

/// Checks that a redrive policy names an existing dead-letter queue of the
/// same type that allows `source_arn` to use it.
fn check_redrive_target(
    inner: &Inner,
    raw: &str,
    policy: &RedrivePolicy,
    source_fifo: bool,
    source_arn: &str,
) -> Result<(), AwsError> {
    let reason = |r: &str| errors::invalid_value(raw, "RedrivePolicy", r);
    let Some(dlq) = inner.queue_by_arn(&policy.dead_letter_target_arn) else {
        return Err(reason("Dead letter target does not exist."));
    };
    if dlq.fifo != source_fifo {
        return Err(reason(
            "Dead-letter queue must be same type of queue as the source.",
        ));
    }
    let allow = dlq.lock().attrs.redrive_allow_policy.clone();
    if let Some(allow) = allow {
        if !allow.allows(source_arn) {
            return Err(reason(
                "Dead-letter target owner does not allow this queue to use it as a dead-letter queue.",
            ));
        }
    }
    Ok(())
}

fn raw_value<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

pub async fn create_queue(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: CreateQueueIn = parse(input)?;
    let name = required(&req.queue_name, "QueueName")?.to_string();
    let pairs = attributes::attribute_pairs(req.attributes.as_ref());
    let fifo = pairs
        .iter()
        .any(|(k, v)| k == "FifoQueue" && v.eq_ignore_ascii_case("true"));
    if !names::valid_queue_name(&name, fifo) {
        return Err(errors::invalid_queue_name(fifo));
    }
    let wanted = attributes::apply(&QueueAttrs::default(), fifo, true, &pairs)?;
    let tags = req.tags.unwrap_or_default();
    check_tags(&tags)?;
    if tags.len() > MAX_TAGS {
        return Err(AwsError::invalid_parameter(format!(
            "Too many tags added for queue {name}."
        )));
    }
    let key = QueueKey {
        account: ctx.account_id.clone(),
        region: inner.region(ctx),
        name: name.clone(),
    };

    if let Some(existing) = inner.queue(&key) {
        return answer_existing(&existing, ctx, &pairs);
    }
    let now = inner.now();
    {
        let mut deleted = crate::lock(&inner.deleted);
        deleted.retain(|_, at| *at + RECREATE_DELAY_MS > now);
        if deleted.contains_key(&key) {
            return Err(errors::queue_deleted_recently());
        }
    }
    if let Some(p) = &wanted.redrive_policy {
        check_redrive_target(
            inner,
            raw_value(&pairs, "RedrivePolicy"),
            p,
            fifo,
            &key.arn(),
        )?;
    }

    let now_s = now / 1000;
    let dedup_by_group = wanted.deduplication_scope == "messageGroup";
    let mut st = QueueState::new(wanted, fifo, now_s);
    st.tags = tags;
    let id = *uuid::Uuid::new_v4().as_bytes();
    let q = Arc::new(Queue::new(
        key.clone(),
        id,
        fifo,
        now_s,
        dedup_by_group,
        st,
        &inner.store,
    ));

    // Register first (atomically against a concurrent CreateQueue of the
    // same name), then make it durable.
    {
        let mut map = inner.queues.write().unwrap_or_else(|e| e.into_inner());
        let part = map
            .entry((key.account.clone(), key.region.clone()))
            .or_default();
        if let Some(existing) = part.get(&name).cloned() {
            drop(map);
            return answer_existing(&existing, ctx, &pairs);
        }
        part.insert(name.clone(), q.clone());
    }
    let _meta = q.meta.lock().await;
    let mut batch = Batch::new();
    batch.put(
        state::QUEUES,
        key.store_key().into_bytes(),
        queue_record(&q, &q.lock()),
    );
    batch.delete(state::DELETED_QUEUES, key.store_key().into_bytes());
    if let Err(e) = inner.commit(batch).await {
        inner.remove_queue(&q);
        return Err(e);
    }
    Ok(json!({ "QueueUrl": q.url(&ctx.host) }))
}

fn answer_existing(
    q: &Arc<Queue>,
    ctx: &RequestContext,
    pairs: &[(String, String)],
) -> Result<Value, AwsError> {
    let current = q.lock().attrs.clone();
    let wanted = attributes::apply(&current, q.fifo, true, pairs)?;
    if let Some(attr) = attributes::first_difference(&current, &wanted, q.fifo, pairs) {
        return Err(errors::queue_name_exists(&attr));
    }
    Ok(json!({ "QueueUrl": q.url(&ctx.host) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetQueueUrlIn {
    queue_name: Option<String>,
    #[serde(rename = "QueueOwnerAWSAccountId")]
    owner: Option<String>,
}

pub fn get_queue_url(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: GetQueueUrlIn = parse(input)?;
    let name = required(&req.queue_name, "QueueName")?;
    let key = QueueKey {
        account: req
            .owner
            .filter(|o| !o.is_empty())
            .unwrap_or_else(|| ctx.account_id.clone()),
        region: inner.region(ctx),
        name: name.to_string(),
    };
    let q = inner.queue(&key).ok_or_else(errors::queue_does_not_exist)?;
    Ok(json!({ "QueueUrl": q.url(&ctx.host) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListQueuesIn {
    queue_name_prefix: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// One page of queue URLs in name order; the token is the last name shown.
fn page_of(
    queues: Vec<Arc<Queue>>,
    host: &str,
    max: Option<usize>,
    after: Option<String>,
) -> (Vec<Value>, Option<String>) {
    let limit = max.unwrap_or(1000);
    let mut rest = queues.into_iter().filter(|q| {
        after
            .as_ref()
            .is_none_or(|a| q.key.name.as_str() > a.as_str())
    });
    let page: Vec<Arc<Queue>> = rest.by_ref().take(limit).collect();
    let more = rest.next().is_some();
    let token = match (max, more, page.last()) {
        (Some(_), true, Some(last)) => Some(encode_token(&last.key.name)),
        _ => None,
    };
    (
        page.iter().map(|q| Value::String(q.url(host))).collect(),
        token,
    )
}

pub fn list_queues(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: ListQueuesIn = parse(input)?;
    let max = max_results(req.max_results)?;
    let after = decode_token(req.next_token.as_deref())?;
    let prefix = req.queue_name_prefix.unwrap_or_default();
    let queues: Vec<Arc<Queue>> = inner
        .partition(&ctx.account_id, &inner.region(ctx))
        .into_iter()
        .filter(|q| q.key.name.starts_with(&prefix))
        .collect();
    let (urls, token) = page_of(queues, &ctx.host, max, after);
    let mut out = Map::new();
    if !urls.is_empty() {
        out.insert("QueueUrls".into(), Value::Array(urls));
    }
    if let Some(t) = token {
        out.insert("NextToken".into(), Value::String(t));
    }
    Ok(Value::Object(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueueUrlIn {
    queue_url: Option<String>,
}

pub async fn delete_queue(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: QueueUrlIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let _meta = q.meta.lock().await;
    if !inner.remove_queue(&q) {
        return Err(errors::queue_does_not_exist());
    }
    q.deleted.store(true, Ordering::SeqCst);
    let now = inner.now();
    let mut batch = Batch::new();
    // Its messages go in the background, in bounded batches; the marker
    // finds them again after a crash.
    batch.put(state::DROPPED, q.id_hex.clone().into_bytes(), Vec::new());
    batch.delete(state::QUEUES, q.key.store_key().into_bytes());
    batch.delete(state::SEQUENCE, q.id_hex.clone().into_bytes());
    batch.put(
        state::DELETED_QUEUES,
        q.key.store_key().into_bytes(),
        now.to_string().into_bytes(),
    );
    crate::lock(&inner.deleted).insert(q.key.clone(), now);
    // Long pollers on this queue answer now.
    q.notify.notify_waiters();
    inner.commit(batch).await?;
    crate::cleanup::spawn_drop(inner.clone(), q.id_hex.clone());
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetAttributesIn {
    queue_url: Option<String>,
    attribute_names: Option<Vec<String>>,
}

pub async fn get_queue_attributes(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: GetAttributesIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let names = req.attribute_names.unwrap_or_default();
    for n in &names {
        if n != "All" && !attributes::READABLE.contains(&n.as_str()) {
            return Err(errors::unknown_attribute(n));
        }
    }
    if names.is_empty() {
        return Ok(json!({}));
    }
    let all = names.iter().any(|n| n == "All");
    let now = inner.now();
    let mut out = Map::new();
    {
        let mut st = q.lock();
        st.advance(now);
        if st.has_expired() {
            // Expired messages leave the store with a write of their own.
            let done = inner.submit_for(&q, &mut st, Batch::new());
            tokio::spawn(async move {
                if let Err(e) = done.await {
                    tracing::error!("sqs: deleting expired messages: {}", e.message);
                }
            });
        }
        let (visible, not_visible, delayed) = st.counts();
        let wanted = |n: &str| all || names.iter().any(|x| x == n);
        for &n in attributes::READABLE {
            if !wanted(n) {
                continue;
            }
            let v = match n {
                "ApproximateNumberOfMessages" => Some(visible.to_string()),
                "ApproximateNumberOfMessagesNotVisible" => Some(not_visible.to_string()),
                "ApproximateNumberOfMessagesDelayed" => Some(delayed.to_string()),
                "CreatedTimestamp" => Some(q.created_s.to_string()),
                "LastModifiedTimestamp" => Some(st.last_modified_s.to_string()),
                "QueueArn" => Some(q.arn.clone()),
                other => attributes::render(&st.attrs, q.fifo, other),
            };
            if let Some(v) = v {
                out.insert(n.to_string(), Value::String(v));
            }
        }
    }
    if out.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Attributes": out }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SetAttributesIn {
    queue_url: Option<String>,
    attributes: Option<Map<String, Value>>,
}

pub async fn set_queue_attributes(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: SetAttributesIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let pairs = attributes::attribute_pairs(req.attributes.as_ref());
    if pairs.is_empty() {
        return Ok(json!({}));
    }
    let _meta = q.meta.lock().await;
    let current = q.lock().attrs.clone();
    let next = attributes::apply(&current, q.fifo, false, &pairs)?;
    if let Some(p) = &next.redrive_policy {
        if pairs.iter().any(|(k, _)| k == "RedrivePolicy") {
            check_redrive_target(inner, raw_value(&pairs, "RedrivePolicy"), p, q.fifo, &q.arn)?;
        }
    }
    let now = inner.now();
    let mut batch = Batch::new();
    let done = {
        let mut st = q.lock();
        st.attrs = next;
        st.last_modified_s = now / 1000;
        batch.put(
            state::QUEUES,
            q.key.store_key().into_bytes(),
            queue_record(&q, &st),
        );
        inner.submit_for(&q, &mut st, batch)
    };
    done.await?;
    // A shorter delay or retention may change what long pollers can see.
    q.notify.notify_waiters();
    Ok(json!({}))
}

pub async fn purge_queue(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: QueueUrlIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let _meta = q.meta.lock().await;
    let now = inner.now();
    let mut batch = Batch::new();
    let done = {
        let mut st = q.lock();
        if let Some(at) = st.purged_at_ms {
            if at + PURGE_PERIOD_MS > now {
                return Err(errors::purge_in_progress(&q.key.name));
            }
        }
        st.purged_at_ms = Some(now);
        // Records go in the background, in bounded batches (`cleanup`).
        st.purge();
        batch.put(
            state::QUEUES,
            q.key.store_key().into_bytes(),
            queue_record(&q, &st),
        );
        let done = inner.submit_for(&q, &mut st, batch);
        (done, st.has_purged())
    };
    let (done, purged) = done;
    done.await?;
    if purged {
        crate::cleanup::spawn_purge_drain(inner.clone(), q.clone());
    }
    Ok(json!({}))
}

/// Applies a metadata change under the queue's locks and stores the record.
async fn update_meta(
    inner: &Arc<Inner>,
    q: &Arc<Queue>,
    change: impl FnOnce(&mut QueueState) -> Result<(), AwsError>,
) -> Result<(), AwsError> {
    let _meta = q.meta.lock().await;
    let mut batch = Batch::new();
    {
        let mut st = q.lock();
        change(&mut st)?;
        batch.put(
            state::QUEUES,
            q.key.store_key().into_bytes(),
            queue_record(q, &st),
        );
    }
    inner.commit(batch).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagQueueIn {
    queue_url: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

pub async fn tag_queue(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: TagQueueIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let tags = req.tags.ok_or_else(|| errors::missing("Tags"))?;
    check_tags(&tags)?;
    let name = q.key.name.clone();
    update_meta(inner, &q, |st| {
        let mut next = st.tags.clone();
        next.extend(tags);
        if next.len() > MAX_TAGS {
            return Err(AwsError::invalid_parameter(format!(
                "Too many tags added for queue {name}."
            )));
        }
        st.tags = next;
        Ok(())
    })
    .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagQueueIn {
    queue_url: Option<String>,
    tag_keys: Option<Vec<String>>,
}

pub async fn untag_queue(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: UntagQueueIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let keys = req.tag_keys.ok_or_else(|| errors::missing("TagKeys"))?;
    if keys.iter().any(|k| k.is_empty() || k.chars().count() > 128) {
        return Err(AwsError::invalid_parameter(
            "Tag keys must be between 1 and 128 characters in length.",
        ));
    }
    update_meta(inner, &q, |st| {
        for k in &keys {
            st.tags.remove(k);
        }
        Ok(())
    })
    .await?;
    Ok(json!({}))
}

pub fn list_queue_tags(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: QueueUrlIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let tags = q.lock().tags.clone();
    if tags.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Tags": tags }))
}

/// Actions a queue owner may share through AddPermission.
const SHAREABLE_ACTIONS: &[&str] = &[
    "*",
    "ChangeMessageVisibility",
    "DeleteMessage",
    "GetQueueAttributes",
    "GetQueueUrl",
    "ListDeadLetterSourceQueues",
    "PurgeQueue",
    "ReceiveMessage",
    "SendMessage",
    "ListQueueTags",
    "ChangeMessageVisibilityBatch",
    "DeleteMessageBatch",
    "SendMessageBatch",
];

/// Actions that exist but only the owner may perform.
const OWNER_ONLY_ACTIONS: &[&str] = &[
    "AddPermission",
    "CreateQueue",
    "DeleteQueue",
    "ListQueues",
    "RemovePermission",
    "SetQueueAttributes",
    "TagQueue",
    "UntagQueue",
    "StartMessageMoveTask",
    "CancelMessageMoveTask",
    "ListMessageMoveTasks",
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddPermissionIn {
    queue_url: Option<String>,
    label: Option<String>,
    #[serde(rename = "AWSAccountIds")]
    account_ids: Option<Vec<String>>,
    actions: Option<Vec<String>>,
}

fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 80
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn default_policy(arn: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("Version".into(), json!("2008-10-17"));
    m.insert("Id".into(), json!(format!("{arn}/SQSDefaultPolicy")));
    m.insert("Statement".into(), json!([]));
    m
}

fn policy_doc(attrs: &QueueAttrs, arn: &str) -> Map<String, Value> {
    match attrs.policy.as_deref().map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(m))) => m,
        _ => default_policy(arn),
    }
}

/// The statements of a policy document, taken out of it (a single statement
/// object is legal policy grammar and becomes a one-element list).
fn take_statements(doc: &mut Map<String, Value>) -> Vec<Value> {
    match doc.shift_remove("Statement") {
        Some(Value::Array(a)) => a,
        Some(Value::Null) | None => Vec::new(),
        Some(single) => vec![single],
    }
}

pub async fn add_permission(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: AddPermissionIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let label = required(&req.label, "Label")?.to_string();
    let accounts = req
        .account_ids
        .ok_or_else(|| errors::missing("AWSAccountIds"))?;
    let actions = req.actions.ok_or_else(|| errors::missing("Actions"))?;
    if actions.is_empty() {
        return Err(errors::missing("Actions"));
    }
    if accounts.is_empty() {
        return Err(errors::invalid_value(
            "[]",
            "PrincipalId",
            "Unable to verify.",
        ));
    }
    if actions.len() > 7 {
        return Err(errors::over_limit(format!(
            "{} Actions were found, maximum allowed is 7.",
            actions.len()
        )));
    }
    for a in &actions {
        if OWNER_ONLY_ACTIONS.contains(&a.as_str()) {
            return Err(errors::invalid_value(
                format!("SQS:{a}"),
                "ActionName",
                "Only the queue owner is allowed to invoke this action.",
            ));
        }
        if !SHAREABLE_ACTIONS.contains(&a.as_str()) {
            return Err(errors::invalid_value(
                format!("SQS:{a}"),
                "ActionName",
                "Please refer to the appropriate WSDL for a list of valid actions.",
            ));
        }
    }
    if !valid_label(&label) {
        return Err(errors::invalid_value(
            &label,
            "Label",
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length.",
        ));
    }
    let arn = q.arn.clone();
    let principals: Vec<Value> = accounts
        .iter()
        .map(|a| json!(format!("arn:aws:iam::{a}:root")))
        .collect();
    let action_values: Vec<Value> = actions.iter().map(|a| json!(format!("SQS:{a}"))).collect();
    update_meta(inner, &q, |st| {
        let mut doc = policy_doc(&st.attrs, &arn);
        let mut list = take_statements(&mut doc);
        if list
            .iter()
            .any(|s| s.get("Sid").and_then(Value::as_str) == Some(label.as_str()))
        {
            return Err(errors::invalid_value(&label, "Label", "Already exists."));
        }
        let mut stmt = Map::new();
        stmt.insert("Sid".into(), json!(label));
        stmt.insert("Effect".into(), json!("Allow"));
        stmt.insert(
            "Principal".into(),
            json!({ "AWS": if principals.len() == 1 { principals[0].clone() } else { Value::Array(principals) } }),
        );
        stmt.insert(
            "Action".into(),
            if action_values.len() == 1 {
                action_values[0].clone()
            } else {
                Value::Array(action_values)
            },
        );
        stmt.insert("Resource".into(), json!(arn));
        list.push(Value::Object(stmt));
        doc.insert("Statement".into(), Value::Array(list));
        st.attrs.policy = Some(Value::Object(doc).to_string());
        Ok(())
    })
    .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RemovePermissionIn {
    queue_url: Option<String>,
    label: Option<String>,
}

pub async fn remove_permission(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: RemovePermissionIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let label = required(&req.label, "Label")?.to_string();
    let arn = q.arn.clone();
    update_meta(inner, &q, |st| {
        let mut doc = policy_doc(&st.attrs, &arn);
        let mut list = take_statements(&mut doc);
        let before = list.len();
        list.retain(|s| s.get("Sid").and_then(Value::as_str) != Some(label.as_str()));
        if list.len() == before {
            return Err(errors::invalid_value(&label, "Label", "can't find label."));
        }
        st.attrs.policy = if list.is_empty() {
            None
        } else {
            doc.insert("Statement".into(), Value::Array(list));
            Some(Value::Object(doc).to_string())
        };
        Ok(())
    })
    .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListSourcesIn {
    queue_url: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub fn list_dead_letter_source_queues(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: ListSourcesIn = parse(input)?;
    let dlq = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let max = max_results(req.max_results)?;
    let after = decode_token(req.next_token.as_deref())?;
    let sources: Vec<Arc<Queue>> = inner
        .partition(&dlq.key.account, &dlq.key.region)
        .into_iter()
        .filter(|q| {
            q.lock()
                .attrs
                .redrive_policy
                .as_ref()
                .is_some_and(|p| p.dead_letter_target_arn == dlq.arn)
        })
        .collect();
    let (urls, token) = page_of(sources, &ctx.host, max, after);
    let mut out = Map::new();
    out.insert("queueUrls".into(), Value::Array(urls));
    if let Some(t) = token {
        out.insert("NextToken".into(), Value::String(t));
    }
    Ok(Value::Object(out))
}
