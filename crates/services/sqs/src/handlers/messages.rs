//! Message operations: SendMessage(Batch), ReceiveMessage (with long polling
//! and dead-letter redrive), DeleteMessage(Batch) and
//! ChangeMessageVisibility(Batch).
//!
//! Sends are validated outside the queue lock, enter the queue as pending
//! (invisible, and holding back later messages of their FIFO group), are made
//! durable, and only then become deliverable and acknowledged. The commit and
//! that last step run in their own task so that a client hanging up cannot
//! leave a message pending forever. Receives change the receive count and the
//! visibility deadline in memory, write them, and answer once durable.

use super::check_batch_ids;
use crate::attributes::{MAX_DELAY_SECONDS, MAX_VISIBILITY_TIMEOUT};
use crate::errors;
use crate::input::{opt_int, parse};
use crate::message::{self, AttrFilter, AttrIn};
use crate::names::{self, Receipt};
use crate::queue::{
    Attempt, CommitTicket, DedupEntry, Delivered, Msg, MsgData, MsgHead, Queue, QueueState,
    VisibilityError, DEDUP_WINDOW_MS,
};
use crate::state;
use crate::Inner;
use nimbus_core::{AwsError, RequestContext};
use nimbus_store::Batch;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// A batch request may carry at most this many bytes of messages.
const MAX_BATCH_BYTES: usize = 1_048_576;
/// FIFO positions are reserved durably in blocks of this size.
const RESERVE_BLOCK: u64 = 4096;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct SendEntry {
    queue_url: Option<String>,
    id: Option<String>,
    message_body: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    delay_seconds: Option<i64>,
    message_attributes: Option<BTreeMap<String, AttrIn>>,
    message_system_attributes: Option<BTreeMap<String, AttrIn>>,
    message_deduplication_id: Option<String>,
    message_group_id: Option<String>,
}

impl SendEntry {
    /// The bytes this entry counts toward the batch limit.
    fn size(&self) -> usize {
        let attrs = |m: &Option<BTreeMap<String, AttrIn>>| -> usize {
            m.as_ref()
                .map(|m| {
                    m.iter()
                        .map(|(k, a)| {
                            k.len()
                                + a.data_type.as_ref().map_or(0, String::len)
                                + a.string_value.as_ref().map_or(0, String::len)
                                + a.binary_value.as_ref().map_or(0, |b| {
                                    names::b64_decode(b).map_or(b.len(), |v| v.len())
                                })
                        })
                        .sum()
                })
                .unwrap_or(0)
        };
        self.message_body.as_ref().map_or(0, String::len) + attrs(&self.message_attributes)
    }
}

/// What sending needs to know about the queue, read once under its lock.
struct QueueView {
    fifo: bool,
    max_size: usize,
    delay_s: u32,
    content_dedup: bool,
    dedup_by_group: bool,
}

fn view_of(q: &Queue) -> QueueView {
    let st = q.lock();
    QueueView {
        fifo: q.fifo,
        max_size: st.attrs.maximum_message_size as usize,
        delay_s: st.attrs.delay_seconds,
        content_dedup: st.attrs.content_based_deduplication,
        dedup_by_group: q.dedup_by_group,
    }
}

/// A validated message, ready to enter its queue.
struct Prepared {
    data: Arc<MsgData>,
    record: Vec<u8>,
    enq: u64,
    delay_until: u64,
    dedup_key: Option<String>,
    /// Body and attributes, as SQS measures a message (SentMessageSize).
    size: usize,
}

fn prepare(
    e: SendEntry,
    view: &QueueView,
    ctx: &RequestContext,
    now: u64,
    in_batch: bool,
) -> Result<Prepared, AwsError> {
    let body = match e.message_body {
        Some(b) if !b.is_empty() => b,
        _ => return Err(errors::missing("MessageBody")),
    };
    let attrs = message::parse_attributes(e.message_attributes)?;
    let sys_attrs = message::parse_system_attributes(e.message_system_attributes)?;
    let size = body.len() + attrs.iter().map(|a| a.size()).sum::<usize>();
    if size > view.max_size {
        let verb = if in_batch {
            "cannot be validated"
        } else {
            "are invalid"
        };
        return Err(AwsError::invalid_parameter(format!(
            "One or more parameters {verb}. Reason: Message must be shorter than {} bytes.",
            view.max_size
        )));
    }
    if !message::valid_text(&body) {
        return Err(errors::invalid_message_contents());
    }
    if let Some(d) = e.delay_seconds {
        if d < 0 || d > MAX_DELAY_SECONDS as i64 {
            return Err(errors::invalid_value(
                d,
                "DelaySeconds",
                "DelaySeconds must be >= 0 and <= 900.",
            ));
        }
        if view.fifo && d > 0 {
            return Err(errors::invalid_value(
                d,
                "DelaySeconds",
                "The request include parameter that is not valid for this queue type.",
            ));
        }
    }
    if let Some(g) = &e.message_group_id {
        if !names::valid_fifo_token(g) {
            return Err(errors::invalid_value(
                g,
                "MessageGroupId",
                "MessageGroupId can only include alphanumeric and punctuation characters. 1 to 128 in length.",
            ));
        }
    } else if view.fifo {
        return Err(errors::missing("MessageGroupId"));
    }
    if let Some(d) = &e.message_deduplication_id {
        if !names::valid_fifo_token(d) {
            return Err(errors::invalid_value(
                d,
                "MessageDeduplicationId",
                "MessageDeduplicationId can only include alphanumeric and punctuation characters. 1 to 128 in length.",
            ));
        }
        if !view.fifo {
            return Err(errors::invalid_value(
                d,
                "MessageDeduplicationId",
                "The request includes a parameter that is not valid for this queue type.",
            ));
        }
    }
    let dedup_id = if view.fifo {
        match e.message_deduplication_id {
            Some(d) => Some(d),
            None if view.content_dedup => Some(hex::encode(Sha256::digest(body.as_bytes()))),
            None => {
                return Err(AwsError::invalid_parameter(
                    "The queue should either have ContentBasedDeduplication enabled or \
                     MessageDeduplicationId provided explicitly",
                ))
            }
        }
    } else {
        None
    };
    let group: Option<Arc<str>> = e.message_group_id.map(Arc::from);
    let dedup_key = dedup_id
        .as_ref()
        .map(|d| match (&group, view.dedup_by_group) {
            (Some(g), true) => format!("{g}\u{1}{d}"),
            _ => d.clone(),
        });
    let delay_s = if view.fifo {
        view.delay_s as u64
    } else {
        e.delay_seconds.map_or(view.delay_s as u64, |d| d as u64)
    };
    let delay_until = if delay_s > 0 { now + delay_s * 1000 } else { 0 };
    let md5_attrs = (!attrs.is_empty()).then(|| message::md5_of_attributes(&attrs));
    let md5_sys = (!sys_attrs.is_empty()).then(|| message::md5_of_attributes(&sys_attrs));
    let data = Arc::new(MsgData {
        id: names::new_uuid().to_string(),
        md5_body: message::md5_hex(body.as_bytes()),
        body,
        attrs,
        md5_attrs,
        sys_attrs,
        md5_sys,
        group,
        dedup_id,
        sent_ms: now,
        sender: ctx.caller_user_id.clone(),
        dlq_source_arn: None,
    });
    let record = state::to_json(&state::MessageRecordOut {
        v: state::RECORD_VERSION,
        d: &data,
        enq: now,
        du: delay_until,
        rc: 0,
        fr: 0,
    });
    Ok(Prepared {
        data,
        record,
        enq: now,
        delay_until,
        dedup_key,
        size,
    })
}

/// What a send answers for one message.
struct Sent {
    data: Arc<MsgData>,
    message_id: String,
    seq: u64,
}

/// Puts prepared messages into `q` durably. Duplicates (FIFO dedup window)
/// answer with the original message once the original is durable.
async fn enqueue(
    inner: &Arc<Inner>,
    q: &Arc<Queue>,
    prepared: Vec<Prepared>,
    now: u64,
) -> Result<Vec<Sent>, AwsError> {
    let mut batch = Batch::new();
    let mut out: Vec<Sent> = Vec::with_capacity(prepared.len());
    let mut fresh: Vec<(u64, Option<String>)> = Vec::new();
    // Sizes of the messages this send stores (duplicates are not sent again).
    let mut sizes: Vec<usize> = Vec::new();
    let mut originals: Vec<Arc<CommitTicket>> = Vec::new();
    let ticket = Arc::new(CommitTicket::default());
    let mut reservation = None;
    let mut submitted = None;
    {
        let mut st = q.lock();
        if q.is_deleted() {
            return Err(errors::queue_does_not_exist());
        }
        st.advance(now);
        let keys: Vec<&str> = prepared
            .iter()
            .filter_map(|p| p.dedup_key.as_deref())
            .collect();
        let mut known = st.dedup_lookup(&keys, now).into_iter();
        let mut prepared_keys: Vec<Option<DedupEntry>> = Vec::with_capacity(prepared.len());
        for p in &prepared {
            prepared_keys.push(match &p.dedup_key {
                Some(_) => known.next().flatten(),
                None => None,
            });
        }
        for (p, known) in prepared.into_iter().zip(prepared_keys) {
            if let Some(k) = &p.dedup_key {
                // A repeat within this request is in memory by now.
                if let Some(e) = st.dedup_pending(k, now).or(known) {
                    originals.push(e.ticket.clone());
                    out.push(Sent {
                        data: p.data,
                        message_id: e.message_id,
                        seq: e.seq,
                    });
                    continue;
                }
            }
            sizes.push(p.size);
            let head = MsgHead::of(&p.data);
            let seq = st.insert_pending(head.clone(), 0, 0, p.enq, p.delay_until);
            batch.put(state::MESSAGES, q.message_key(seq), p.record);
            if p.delay_until > 0 {
                let m = Msg {
                    data: head,
                    receive_count: 0,
                    first_receive_ms: 0,
                    last_receive_ms: 0,
                    enqueued_ms: p.enq,
                    loc: crate::queue::Loc::Delayed(p.delay_until),
                };
                // Hidden until its delay ends, also across a restart.
                batch.put(
                    state::MESSAGE_STATE,
                    q.message_key(seq),
                    state::to_json(&state::StateRecord::of(&m, p.delay_until, true)),
                );
            }
            if let Some(k) = &p.dedup_key {
                let expires = now + DEDUP_WINDOW_MS;
                st.dedup_insert(
                    k.clone(),
                    DedupEntry {
                        message_id: p.data.id.clone(),
                        seq,
                        expires_ms: expires,
                        ticket: ticket.clone(),
                    },
                );
                batch.put(
                    state::DEDUP,
                    q.dedup_key(k),
                    state::to_json(&state::DedupRecord {
                        v: state::RECORD_VERSION,
                        id: p.data.id.clone(),
                        seq,
                        exp: expires,
                    }),
                );
            }
            fresh.push((seq, p.dedup_key.clone()));
            out.push(Sent {
                message_id: p.data.id.clone(),
                data: p.data,
                seq,
            });
        }
        if q.fifo {
            if let Some(max) = fresh.iter().map(|(s, _)| *s).max() {
                if max >= st.seq_reserved {
                    let target = max + 1 + RESERVE_BLOCK;
                    batch.put(
                        state::SEQUENCE,
                        q.id_hex.clone().into_bytes(),
                        target.to_string().into_bytes(),
                    );
                    reservation = Some(target);
                }
            }
        }
        Inner::collect_expired(q, &mut st, &mut batch);
        if !batch.is_empty() {
            submitted = Some(inner.submit_for(q, &mut st, batch));
        }
    }
    if let Some(done) = submitted {
        let inner2 = inner.clone();
        let q2 = q.clone();
        let t2 = ticket.clone();
        // Runs to completion even if this request is abandoned, so pending
        // messages always settle.
        let settled = tokio::spawn(async move {
            let r = done.await;
            let now = inner2.now();
            {
                let mut st = q2.lock();
                if r.is_err() {
                    st.unsubmit(fresh.len() as u64);
                }
                for (seq, key) in &fresh {
                    if r.is_ok() {
                        st.finish_pending(*seq, now);
                        if let Some(k) = key {
                            st.dedup_settled(k, *seq);
                        }
                    } else {
                        st.remove(*seq);
                        if let Some(k) = key {
                            st.dedup_remove_if(k, *seq);
                        }
                    }
                }
                if let (Ok(()), Some(t)) = (&r, reservation) {
                    st.seq_reserved = st.seq_reserved.max(t);
                }
            }
            t2.finish(r.is_ok());
            if r.is_ok() {
                q2.notify.notify_waiters();
                if q2.is_deleted() {
                    // The queue went away while this write was in flight.
                    let ids = [q2.id_hex.clone()];
                    if let Err(e) = crate::cleanup::drop_queues(&inner2, &ids).await {
                        tracing::error!("sqs: deleting late records of {}: {}", q2.arn, e.message);
                    }
                }
            }
            r
        });
        settled
            .await
            .map_err(|e| AwsError::internal(format!("send task failed: {e}")))??;
        for size in sizes {
            q.counters.sent(size);
        }
    }
    for t in originals {
        if !t.wait().await {
            return Err(AwsError::internal(
                "The original message of this duplicate could not be stored; try again.",
            ));
        }
    }
    Ok(out)
}

fn sent_json(q: &Queue, s: &Sent, id: Option<&str>) -> Value {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("Id".into(), json!(id));
    }
    m.insert("MessageId".into(), json!(s.message_id));
    m.insert("MD5OfMessageBody".into(), json!(s.data.md5_body));
    if let Some(md5) = &s.data.md5_attrs {
        m.insert("MD5OfMessageAttributes".into(), json!(md5));
    }
    if let Some(md5) = &s.data.md5_sys {
        m.insert("MD5OfMessageSystemAttributes".into(), json!(md5));
    }
    if q.fifo {
        m.insert(
            "SequenceNumber".into(),
            json!(Queue::sequence_number(s.seq)),
        );
    }
    Value::Object(m)
}

pub async fn send_message(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let entry: SendEntry = parse(input)?;
    let q = inner.queue_by_url(ctx, entry.queue_url.as_deref())?;
    let now = inner.now();
    let view = view_of(&q);
    let p = prepare(entry, &view, ctx, now, false)?;
    let sent = enqueue(inner, &q, vec![p], now).await?;
    match sent.first() {
        Some(s) => Ok(sent_json(&q, s, None)),
        None => Err(AwsError::internal("message was not enqueued")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendBatchIn {
    queue_url: Option<String>,
    entries: Option<Vec<SendEntry>>,
}

fn failure(id: &str, e: &AwsError) -> Value {
    json!({
        "Id": id,
        "SenderFault": e.sender_fault,
        "Code": e.code,
        "Message": e.message,
    })
}

pub async fn send_message_batch(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: SendBatchIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let entries = req.entries.unwrap_or_default();
    check_batch_ids(
        entries.iter().map(|e| e.id.as_deref()),
        "SendMessageBatchRequestEntry",
    )?;
    let view = view_of(&q);
    if view.fifo {
        if entries.iter().any(|e| e.message_group_id.is_none()) {
            return Err(AwsError::invalid_parameter(
                "The request must contain the parameter MessageGroupId.",
            ));
        }
        if !view.content_dedup && entries.iter().any(|e| e.message_deduplication_id.is_none()) {
            return Err(AwsError::invalid_parameter(
                "The queue should either have ContentBasedDeduplication enabled or \
                 MessageDeduplicationId provided explicitly",
            ));
        }
    }
    let total: usize = entries.iter().map(SendEntry::size).sum();
    if total > MAX_BATCH_BYTES {
        return Err(errors::batch_too_long(MAX_BATCH_BYTES, total));
    }
    let now = inner.now();
    let mut failed = Vec::new();
    let mut ok_ids = Vec::new();
    let mut prepared = Vec::new();
    for e in entries {
        let id = e.id.clone().unwrap_or_default();
        match prepare(e, &view, ctx, now, true) {
            Ok(p) => {
                ok_ids.push(id);
                prepared.push(p);
            }
            Err(err) => failed.push(failure(&id, &err)),
        }
    }
    let sent = if prepared.is_empty() {
        Vec::new()
    } else {
        enqueue(inner, &q, prepared, now).await?
    };
    let successful: Vec<Value> = sent
        .iter()
        .zip(ok_ids.iter())
        .map(|(s, id)| sent_json(&q, s, Some(id)))
        .collect();
    Ok(json!({ "Successful": successful, "Failed": failed }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveIn {
    queue_url: Option<String>,
    attribute_names: Option<Vec<String>>,
    message_system_attribute_names: Option<Vec<String>>,
    message_attribute_names: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_int")]
    max_number_of_messages: Option<i64>,
    #[serde(default, deserialize_with = "opt_int")]
    visibility_timeout: Option<i64>,
    #[serde(default, deserialize_with = "opt_int")]
    wait_time_seconds: Option<i64>,
    receive_request_attempt_id: Option<String>,
}

/// Which message system attributes a receive asked for.
struct SystemSelection {
    all: bool,
    names: HashSet<String>,
}

impl SystemSelection {
    fn wants(&self, n: &str) -> bool {
        self.all || self.names.contains(n)
    }
}

fn message_json(
    q: &Queue,
    d: &Delivered,
    data: &MsgData,
    handle: &str,
    sys: &SystemSelection,
    filter: &AttrFilter,
) -> Value {
    let mut m = Map::new();
    m.insert("MessageId".into(), json!(data.id));
    m.insert("ReceiptHandle".into(), json!(handle));
    m.insert("MD5OfBody".into(), json!(data.md5_body));
    m.insert("Body".into(), json!(data.body));
    let mut a = Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            if sys.wants(k) {
                a.insert(k.to_string(), Value::String(v));
            }
        }
    };
    put("SenderId", Some(data.sender.clone()));
    put("SentTimestamp", Some(data.sent_ms.to_string()));
    put("ApproximateReceiveCount", Some(d.receive_count.to_string()));
    put(
        "ApproximateFirstReceiveTimestamp",
        Some(d.first_receive_ms.to_string()),
    );
    put(
        "SequenceNumber",
        q.fifo.then(|| Queue::sequence_number(d.seq)),
    );
    put("MessageDeduplicationId", data.dedup_id.clone());
    put("MessageGroupId", data.group.as_ref().map(|g| g.to_string()));
    put("AWSTraceHeader", data.trace_header().map(str::to_string));
    put("DeadLetterQueueSourceArn", data.dlq_source_arn.clone());
    if !a.is_empty() {
        m.insert("Attributes".into(), Value::Object(a));
    }
    if !filter.is_empty() && !data.attrs.is_empty() {
        let chosen: Vec<&message::Attr> = data
            .attrs
            .iter()
            .filter(|x| filter.matches(&x.name))
            .collect();
        if !chosen.is_empty() {
            let md5 = if chosen.len() == data.attrs.len() {
                data.md5_attrs
                    .clone()
                    .unwrap_or_else(|| message::md5_of_attributes(chosen.iter().copied()))
            } else {
                message::md5_of_attributes(chosen.iter().copied())
            };
            m.insert("MD5OfMessageAttributes".into(), json!(md5));
            let mut attrs = Map::new();
            for x in chosen {
                attrs.insert(x.name.clone(), x.to_json());
            }
            m.insert("MessageAttributes".into(), Value::Object(attrs));
        }
    }
    Value::Object(m)
}

fn state_record(d: &Delivered, now: u64) -> Vec<u8> {
    let m = Msg {
        data: d.data.clone(),
        receive_count: d.receive_count,
        first_receive_ms: d.first_receive_ms,
        last_receive_ms: now,
        enqueued_ms: d.enqueued_ms,
        loc: crate::queue::Loc::InFlight(d.visible_at),
    };
    state::to_json(&state::StateRecord::of(&m, d.visible_at, false))
}

/// Messages taken out of a queue, with their positions there.
type Taken = Vec<(u64, Msg)>;

/// Moves over-received messages into the dead-letter queue: they join it as
/// pending, in a batch submitted under the dead-letter queue's lock; then a
/// batch under the source's lock deletes them there. The log keeps that
/// order, so a crash between the two can duplicate a message, never lose it.
/// Returns the positions to settle in the DLQ and both commits.
fn stage_dead_letters(
    inner: &Inner,
    source: &Queue,
    dlq: &Queue,
    dead: Taken,
    now: u64,
) -> Result<
    (
        Vec<u64>,
        impl std::future::Future<Output = Result<(), AwsError>>,
    ),
    Taken,
> {
    let mut batch = Batch::new();
    let mut seqs = Vec::with_capacity(dead.len());
    let done_dlq = {
        let mut st = dlq.lock();
        if dlq.is_deleted() {
            return Err(dead);
        }
        for (src_seq, m) in &dead {
            // Bodies and attributes are in the store, not in the queue's memory.
            let Some(mut data) = state::read_message(&inner.store, source, *src_seq) else {
                continue;
            };
            data.dlq_source_arn = Some(source.arn.clone());
            // A FIFO dead-letter queue restarts the retention clock; a standard
            // one keeps the original enqueue time.
            let enq = if dlq.fifo { now } else { m.enqueued_ms };
            let seq = st.insert_pending(
                MsgHead::of(&data),
                m.receive_count,
                m.first_receive_ms,
                enq,
                0,
            );
            batch.put(
                state::MESSAGES,
                dlq.message_key(seq),
                state::to_json(&state::MessageRecordOut {
                    v: state::RECORD_VERSION,
                    d: &data,
                    enq,
                    du: 0,
                    rc: m.receive_count,
                    fr: m.first_receive_ms,
                }),
            );
            seqs.push(seq);
        }
        inner.submit_for(dlq, &mut st, batch)
    };
    let mut batch = Batch::new();
    for (src_seq, _) in &dead {
        let k = source.message_key(*src_seq);
        batch.delete(state::MESSAGES, k.clone());
        batch.delete(state::MESSAGE_STATE, k);
    }
    let done_source = inner.submit_for(source, &mut source.lock(), batch);
    Ok((seqs, async move {
        let r = done_dlq.await;
        let s = done_source.await;
        r.and(s)
    }))
}

pub async fn receive_message(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: ReceiveIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let max = req.max_number_of_messages.unwrap_or(1);
    if !(1..=10).contains(&max) {
        return Err(errors::invalid_value(
            max,
            "MaxNumberOfMessages",
            "Must be between 1 and 10, if provided.",
        ));
    }
    if let Some(w) = req.wait_time_seconds {
        if !(0..=20).contains(&w) {
            return Err(errors::invalid_value(
                w,
                "WaitTimeSeconds",
                "Must be >= 0 and <= 20, if provided.",
            ));
        }
    }
    if let Some(v) = req.visibility_timeout {
        if v < 0 || v > MAX_VISIBILITY_TIMEOUT as i64 {
            return Err(errors::invalid_value(
                v,
                "VisibilityTimeout",
                "Must be >= 0 and <= 43200, if provided.",
            ));
        }
    }
    let attempt_id = if q.fifo {
        match &req.receive_request_attempt_id {
            Some(a) if !names::valid_fifo_token(a) => {
                return Err(errors::invalid_value(
                    a,
                    "ReceiveRequestAttemptId",
                    "ReceiveRequestAttemptId can only include alphanumeric and punctuation characters. 1 to 128 in length.",
                ))
            }
            other => other.clone(),
        }
    } else {
        None
    };
    let mut sys = SystemSelection {
        all: false,
        names: HashSet::new(),
    };
    for n in req
        .attribute_names
        .iter()
        .flatten()
        .chain(req.message_system_attribute_names.iter().flatten())
    {
        if n == "All" {
            sys.all = true;
        }
        sys.names.insert(n.clone());
    }
    let filter = AttrFilter::new(req.message_attribute_names.as_deref().unwrap_or(&[]));
    let (default_wait, default_vt) = {
        let st = q.lock();
        (
            st.attrs.receive_message_wait_time_seconds as i64,
            st.attrs.visibility_timeout as i64,
        )
    };
    let wait_ms = req.wait_time_seconds.unwrap_or(default_wait) as u64 * 1000;
    let vt_ms = req.visibility_timeout.unwrap_or(default_vt) as u64 * 1000;
    let start = inner.now();
    let deadline = start + wait_ms;

    loop {
        let notified = q.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        // Resolve the dead-letter queue outside the source's lock.
        let redrive = q.lock().attrs.redrive_policy.clone();
        let dlq = redrive
            .as_ref()
            .and_then(|p| inner.queue_by_arn(&p.dead_letter_target_arn))
            .filter(|d| !Arc::ptr_eq(d, &q));
        let max_rc = if dlq.is_some() {
            redrive.as_ref().map(|p| p.max_receive_count)
        } else {
            None
        };

        let now = inner.now();
        let (delivered, dead, next_event, done) = {
            let mut st = q.lock();
            if q.is_deleted() {
                return Err(errors::queue_does_not_exist());
            }
            st.advance(now);
            if let Some(a) = &attempt_id {
                if let Some(resp) = st.attempt_get(a, now) {
                    return Ok(json!({ "Messages": resp }));
                }
            }
            // SQS caps a queue's in-flight messages (which also bounds what a
            // standard queue holds in memory): a standard queue says so, a
            // FIFO queue just returns nothing.
            let room = inner
                .inflight_limit
                .load(std::sync::atomic::Ordering::Relaxed)
                .saturating_sub(st.counts().1);
            if room == 0 && !q.fifo {
                return Err(errors::over_limit(
                    "Too many messages have been received without being deleted. Please \
                     delete your received messages or let them timeout before receiving more."
                        .to_string(),
                ));
            }
            let (delivered, dead) = st.receive(now, (max as usize).min(room), vt_ms, max_rc);
            let mut batch = Batch::new();
            for d in &delivered {
                batch.put(
                    state::MESSAGE_STATE,
                    q.message_key(d.seq),
                    state_record(d, now),
                );
            }
            let done = inner.submit_for(&q, &mut st, batch);
            (delivered, dead, st.next_event(), done)
        };

        let mut dead_letters = None;
        if !dead.is_empty() {
            if let Some(dlq) = &dlq {
                match stage_dead_letters(inner, &q, dlq, dead, now) {
                    Ok((seqs, moved)) => dead_letters = Some((dlq.clone(), seqs, moved)),
                    Err(back) => q.lock().put_back(back),
                }
            } else {
                q.lock().put_back(dead);
            }
        }

        let mut response = Vec::with_capacity(delivered.len());
        for d in &delivered {
            let handle = Receipt {
                queue_id: q.id,
                seq: d.seq,
                receive_count: d.receive_count,
                message_id: d.data.id_bytes(),
            }
            .encode();
            // Read under no lock: the record is the store's (its overlay has
            // it even before the send's commit is durable).
            let data = match &d.record {
                Some(r) => state::decode_message(r),
                None => state::read_message(&inner.store, &q, d.seq),
            };
            match data {
                Some(data) => response.push(message_json(&q, d, &data, &handle, &sys, &filter)),
                None => tracing::warn!("sqs: message {} of {} has no record", d.seq, q.arn),
            }
        }

        let inner2 = inner.clone();
        let committed = tokio::spawn(async move {
            let r = done.await;
            if let Some((dlq, seqs, moved)) = dead_letters {
                let m = moved.await;
                let now = inner2.now();
                let mut st = dlq.lock();
                if m.is_err() {
                    st.unsubmit(seqs.len() as u64);
                }
                for s in &seqs {
                    if m.is_ok() {
                        st.finish_pending(*s, now);
                    } else {
                        st.remove(*s);
                    }
                }
                drop(st);
                dlq.notify.notify_waiters();
                m?;
            }
            r
        });
        committed
            .await
            .map_err(|e| AwsError::internal(format!("receive task failed: {e}")))??;

        if !response.is_empty() {
            q.counters.received(response.len());
            if let Some(a) = attempt_id {
                q.lock().attempt_insert(
                    a,
                    Attempt {
                        expires_ms: now + DEDUP_WINDOW_MS,
                        items: delivered.iter().map(|d| (d.seq, d.receive_count)).collect(),
                        response: response.clone(),
                    },
                );
            }
            return Ok(json!({ "Messages": response }));
        }

        let now = inner.now();
        if now >= deadline || q.is_deleted() {
            q.counters.received(0);
            return Ok(json!({}));
        }
        let wake = next_event.map_or(deadline, |t| t.min(deadline)).max(now);
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(Duration::from_millis(wake - now)) => {}
        }
    }
}

/// Decodes a receipt handle and checks it belongs to `q`.
fn receipt_for(q: &Queue, handle: &str) -> Result<Receipt, AwsError> {
    match Receipt::decode(handle) {
        Some(r) if r.queue_id == q.id => Ok(r),
        _ => Err(errors::receipt_handle_invalid(handle)),
    }
}

/// Deletes one message by receipt (under the queue's lock, held as `st`);
/// returns true when something was removed.
fn delete_one(
    q: &Queue,
    st: &mut QueueState,
    handle: &str,
    now: u64,
    batch: &mut Batch,
) -> Result<bool, AwsError> {
    let r = receipt_for(q, handle)?;
    match st.delete(r.seq, r.receive_count, &r.message_id, now) {
        Err(()) => Err(errors::receipt_handle_expired(handle)),
        Ok(None) => Ok(false),
        Ok(Some(_)) => {
            let k = q.message_key(r.seq);
            batch.delete(state::MESSAGES, k.clone());
            batch.delete(state::MESSAGE_STATE, k);
            Ok(true)
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteIn {
    queue_url: Option<String>,
    receipt_handle: Option<String>,
}

pub async fn delete_message(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: DeleteIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let handle = req
        .receipt_handle
        .ok_or_else(|| errors::missing("ReceiptHandle"))?;
    let now = inner.now();
    let mut batch = Batch::new();
    let done = {
        let mut st = q.lock();
        st.advance(now);
        let removed = delete_one(&q, &mut st, &handle, now, &mut batch)?;
        removed.then(|| inner.submit_for(&q, &mut st, batch))
    };
    if let Some(done) = done {
        if q.fifo {
            // The group may be deliverable again.
            q.notify.notify_waiters();
        }
        done.await?;
    }
    q.counters.deleted(1);
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandleEntry {
    id: Option<String>,
    receipt_handle: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    visibility_timeout: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandleBatchIn {
    queue_url: Option<String>,
    entries: Option<Vec<HandleEntry>>,
}

pub async fn delete_message_batch(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: HandleBatchIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let entries = req.entries.unwrap_or_default();
    check_batch_ids(
        entries.iter().map(|e| e.id.as_deref()),
        "DeleteMessageBatchRequestEntry",
    )?;
    let now = inner.now();
    let mut batch = Batch::new();
    let (ok, failed, done) = {
        let mut st = q.lock();
        st.advance(now);
        let (ok, failed, removed) =
            each_entry(&entries, |_, h| delete_one(&q, &mut st, h, now, &mut batch));
        (
            ok,
            failed,
            removed.then(|| inner.submit_for(&q, &mut st, batch)),
        )
    };
    if let Some(done) = done {
        if q.fifo {
            q.notify.notify_waiters();
        }
        done.await?;
    }
    q.counters.deleted(ok.len());
    Ok(json!({ "Successful": ok, "Failed": failed }))
}

/// Runs `one` on each entry of a receipt-handle batch (DeleteMessageBatch,
/// ChangeMessageVisibilityBatch); returns the Successful and Failed lists and
/// whether any entry's call returned true.
fn each_entry(
    entries: &[HandleEntry],
    mut one: impl FnMut(&HandleEntry, &str) -> Result<bool, AwsError>,
) -> (Vec<Value>, Vec<Value>, bool) {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    let mut any = false;
    for e in entries {
        let id = e.id.clone().unwrap_or_default();
        let result = match &e.receipt_handle {
            None => Err(errors::missing("ReceiptHandle")),
            Some(h) => one(e, h),
        };
        match result {
            Ok(r) => {
                any |= r;
                ok.push(json!({ "Id": id }));
            }
            Err(err) => failed.push(failure(&id, &err)),
        }
    }
    (ok, failed, any)
}

fn check_visibility(v: Option<i64>) -> Result<u64, AwsError> {
    let v = v.ok_or_else(|| errors::missing("VisibilityTimeout"))?;
    if v < 0 || v > MAX_VISIBILITY_TIMEOUT as i64 {
        return Err(errors::invalid_value(
            v,
            "VisibilityTimeout",
            "VisibilityTimeout must be an integer between 0 and 43200.",
        ));
    }
    Ok(v as u64)
}

/// Changes one message's visibility (under the queue's lock, held as `st`);
/// returns true when it became visible.
fn change_one(
    q: &Queue,
    st: &mut QueueState,
    handle: &str,
    visibility: Option<i64>,
    now: u64,
    batch: &mut Batch,
) -> Result<bool, AwsError> {
    let v = check_visibility(visibility)?;
    let r = receipt_for(q, handle)?;
    match st.change_visibility(r.seq, r.receive_count, &r.message_id, now, v * 1000) {
        Err(VisibilityError::Gone) => Err(errors::visibility_target_gone(handle)),
        Err(VisibilityError::NotInFlight) => Err(errors::message_not_inflight()),
        Err(VisibilityError::TooLong) => Err(errors::invalid_value(
            v,
            "VisibilityTimeout",
            "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]",
        )),
        Ok(deadline) => {
            if let Some(m) = st.get(r.seq) {
                batch.put(
                    state::MESSAGE_STATE,
                    q.message_key(r.seq),
                    state::to_json(&state::StateRecord::of(m, deadline, false)),
                );
            }
            Ok(v == 0)
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChangeIn {
    queue_url: Option<String>,
    receipt_handle: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    visibility_timeout: Option<i64>,
}

pub async fn change_message_visibility(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: ChangeIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let handle = req
        .receipt_handle
        .ok_or_else(|| errors::missing("ReceiptHandle"))?;
    let now = inner.now();
    let mut batch = Batch::new();
    let (visible, done) = {
        let mut st = q.lock();
        st.advance(now);
        let visible = change_one(
            &q,
            &mut st,
            &handle,
            req.visibility_timeout,
            now,
            &mut batch,
        )?;
        (visible, inner.submit_for(&q, &mut st, batch))
    };
    done.await?;
    if visible {
        q.notify.notify_waiters();
    }
    Ok(json!({}))
}

pub async fn change_message_visibility_batch(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: HandleBatchIn = parse(input)?;
    let q = inner.queue_by_url(ctx, req.queue_url.as_deref())?;
    let entries = req.entries.unwrap_or_default();
    check_batch_ids(
        entries.iter().map(|e| e.id.as_deref()),
        "ChangeMessageVisibilityBatchRequestEntry",
    )?;
    let now = inner.now();
    let mut batch = Batch::new();
    let (ok, failed, visible, done) = {
        let mut st = q.lock();
        st.advance(now);
        let (ok, failed, visible) = each_entry(&entries, |e, h| {
            change_one(&q, &mut st, h, e.visibility_timeout, now, &mut batch)
        });
        (ok, failed, visible, inner.submit_for(&q, &mut st, batch))
    };
    done.await?;
    if visible {
        q.notify.notify_waiters();
    }
    Ok(json!({ "Successful": ok, "Failed": failed }))
}
