//! Amazon SQS for nimbus: standard and FIFO queues, visibility timeouts, long
//! polling, delay queues, dead-letter queues and redrive (move tasks),
//! permissions and tags, with every acknowledged change durable in the store.
//!
//! This file owns the service object: [`Sqs::open`] loads every queue and
//! message from the store, and the [`Service`] implementation dispatches the
//! 23 operations of the model to the handlers. Layout of the crate:
//!
//! - `handlers/` — one function per operation (queues, messages, move tasks)
//! - `queue` — the in-memory state machine of one queue and its indexes
//! - `state` — record formats and store tables
//! - `attributes`, `message`, `names`, `errors` — validation and vocabulary
//!
//! Live state is kept in memory (per-queue locks, held only for short,
//! await-free sections) and every change is written as a small record before
//! the answer leaves: the store group-commits concurrent writers into one
//! fsync, so durability does not serialize requests.

mod attributes;
mod errors;
mod handlers;
mod input;
mod message;
mod names;
mod queue;
mod state;

#[cfg(test)]
mod tests;

use handlers::move_tasks::MoveTask;
use names::QueueKey;
use nimbus_core::{AwsError, BoxFuture, RequestContext, Service};
use nimbus_store::{Batch, Store};
use queue::{CommitTicket, DedupEntry, Loc, Msg, Queue, QueueState};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

type Partition = (String, String);
/// A loaded queue and the messages read for it, before they are indexed.
type Loading = (Arc<Queue>, Vec<(u64, Msg)>);

/// The SQS service.
pub struct Sqs {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Store,
    /// Region of requests that carry none (internal calls).
    pub default_region: String,
    /// Queues by (account, region), then by name (sorted, for listing).
    pub queues: RwLock<HashMap<Partition, BTreeMap<String, Arc<Queue>>>>,
    /// When each recently deleted queue name was deleted (epoch ms).
    pub deleted: Mutex<HashMap<QueueKey, u64>>,
    pub tasks: Mutex<HashMap<String, Arc<MoveTask>>>,
    /// Store deletions found at startup (records of queues that no longer
    /// exist); they ride along with the next write.
    orphans: Mutex<Vec<(&'static str, Vec<u8>)>>,
    /// Whether `orphans` may hold anything (spares the hot path its lock).
    has_orphans: AtomicBool,
    /// Move tasks that were running at shutdown, resumed once a runtime exists.
    resume: Mutex<Vec<Arc<MoveTask>>>,
    /// Shifts the service clock; only tests move it.
    clock_offset: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub fn now(&self) -> u64 {
        nimbus_core::now_millis() + self.clock_offset.load(Ordering::Relaxed)
    }

    /// The region a request acts in.
    pub fn region(&self, ctx: &RequestContext) -> String {
        if ctx.region.is_empty() {
            self.default_region.clone()
        } else {
            ctx.region.clone()
        }
    }

    pub fn queue(&self, key: &QueueKey) -> Option<Arc<Queue>> {
        let map = self.queues.read().unwrap_or_else(|e| e.into_inner());
        map.get(&(key.account.clone(), key.region.clone()))
            .and_then(|m| m.get(&key.name))
            .cloned()
    }

    /// The queue a request's QueueUrl names (any host; or a bare name).
    pub fn queue_by_url(
        &self,
        ctx: &RequestContext,
        url: Option<&str>,
    ) -> Result<Arc<Queue>, AwsError> {
        let url = url.ok_or_else(|| errors::missing("QueueUrl"))?;
        let (account, name) = names::parse_queue_url(url, &ctx.account_id)
            .ok_or_else(errors::queue_does_not_exist)?;
        let key = QueueKey {
            account,
            region: self.region(ctx),
            name,
        };
        self.queue(&key).ok_or_else(errors::queue_does_not_exist)
    }

    pub fn queue_by_arn(&self, arn: &str) -> Option<Arc<Queue>> {
        names::parse_queue_arn(arn).and_then(|k| self.queue(&k))
    }

    /// Queues of one account and region, in name order.
    pub fn partition(&self, account: &str, region: &str) -> Vec<Arc<Queue>> {
        let map = self.queues.read().unwrap_or_else(|e| e.into_inner());
        map.get(&(account.to_string(), region.to_string()))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn insert_queue(&self, q: Arc<Queue>) {
        let mut map = self.queues.write().unwrap_or_else(|e| e.into_inner());
        map.entry((q.key.account.clone(), q.key.region.clone()))
            .or_default()
            .insert(q.key.name.clone(), q);
    }

    /// Removes `q` if it is still the registered queue under its name.
    pub fn remove_queue(&self, q: &Arc<Queue>) -> bool {
        let mut map = self.queues.write().unwrap_or_else(|e| e.into_inner());
        let part = (q.key.account.clone(), q.key.region.clone());
        let Some(m) = map.get_mut(&part) else {
            return false;
        };
        match m.get(&q.key.name) {
            Some(cur) if Arc::ptr_eq(cur, q) => {
                m.remove(&q.key.name);
                true
            }
            _ => false,
        }
    }

    /// Makes `batch` durable, together with any deletions found at startup.
    pub async fn commit(&self, mut batch: Batch) -> Result<(), AwsError> {
        if self.has_orphans.swap(false, Ordering::AcqRel) {
            let mut o = lock(&self.orphans);
            for (t, k) in o.drain(..) {
                batch.delete(t, k);
            }
        }
        self.store.commit(batch).await.map_err(errors::store_failed)
    }

    /// Queues the store deletions that [`QueueState::advance`] decided.
    pub fn collect_expired(q: &Queue, st: &mut QueueState, batch: &mut Batch) {
        for (t, k) in Self::expired_ops(q, st) {
            batch.delete(t, k);
        }
    }

    pub fn expired_ops(q: &Queue, st: &mut QueueState) -> Vec<(&'static str, Vec<u8>)> {
        let (seqs, dedups) = st.take_expired();
        let mut ops = Vec::with_capacity(seqs.len() * 2 + dedups.len());
        for s in seqs {
            let k = q.message_key(s);
            ops.push((state::MESSAGES, k.clone()));
            ops.push((state::MESSAGE_STATE, k));
        }
        for d in dedups {
            ops.push((state::DEDUP, q.dedup_key(&d)));
        }
        ops.append(&mut st.pending_deletes);
        ops
    }

    fn resume_tasks(self: &Arc<Self>) {
        let pending: Vec<Arc<MoveTask>> = lock(&self.resume).drain(..).collect();
        for t in pending {
            handlers::move_tasks::spawn(self.clone(), t);
        }
    }
}

impl Sqs {
    /// Opens the service on `store`, loading every queue, message, dedup id
    /// and move task. Running move tasks resume.
    pub fn open(store: Store, default_region: &str) -> Result<Sqs, String> {
        let inner = Arc::new(Inner {
            store,
            default_region: default_region.to_string(),
            queues: RwLock::new(HashMap::new()),
            deleted: Mutex::new(HashMap::new()),
            tasks: Mutex::new(HashMap::new()),
            orphans: Mutex::new(Vec::new()),
            has_orphans: AtomicBool::new(false),
            resume: Mutex::new(Vec::new()),
            clock_offset: AtomicU64::new(0),
        });
        load(&inner).map_err(|e| format!("sqs: loading state failed: {e}"))?;
        if tokio::runtime::Handle::try_current().is_ok() {
            inner.resume_tasks();
        }
        Ok(Sqs { inner })
    }

    /// Moves the service clock forward (tests of timeouts, delays, retention).
    #[cfg(test)]
    pub(crate) fn advance_clock(&self, ms: u64) {
        self.inner.clock_offset.fetch_add(ms, Ordering::Relaxed);
    }

    /// Stops running move tasks without recording anything, as a crash would.
    #[cfg(test)]
    pub(crate) fn stop_background_for_tests(&self) {
        for t in lock(&self.inner.tasks).values() {
            t.halt();
        }
    }
}

fn load(inner: &Arc<Inner>) -> Result<(), String> {
    let store = &inner.store;
    let now = inner.now();
    let e = |e: nimbus_store::StoreError| e.to_string();

    let mut by_id: HashMap<String, Loading> = HashMap::new();
    for (key, value) in store.scan_prefix(state::QUEUES, b"").map_err(e)? {
        let rec: state::QueueRecord = match serde_json::from_slice::<state::QueueRecord>(&value) {
            Ok(r) if r.v > state::RECORD_VERSION => {
                return Err(format!(
                    "queue record format {} is newer than this nimbus understands",
                    r.v
                ));
            }
            Ok(r) => r,
            Err(err) => {
                tracing::error!(
                    "sqs: unreadable queue record {:?}: {err}",
                    String::from_utf8_lossy(&key)
                );
                continue;
            }
        };
        let mut id = [0u8; 16];
        match hex::decode(&rec.id) {
            Ok(b) if b.len() == 16 => id.copy_from_slice(&b),
            _ => {
                tracing::error!("sqs: queue record with a bad id: {}", rec.id);
                continue;
            }
        }
        let mut st = QueueState::new(rec.attrs.clone(), rec.fifo, rec.last_modified_s);
        st.tags = rec.tags.clone();
        st.purged_at_ms = rec.purged_at_ms;
        let key = QueueKey {
            account: rec.account.clone(),
            region: rec.region.clone(),
            name: rec.name.clone(),
        };
        let q = Arc::new(Queue::new(
            key,
            id,
            rec.fifo,
            rec.created_s,
            rec.dedup_by_group,
            st,
        ));
        by_id.insert(q.id_hex.clone(), (q, Vec::new()));
    }

    let mut states: HashMap<(String, u64), state::StateRecord> = HashMap::new();
    let mut orphans: Vec<(&'static str, Vec<u8>)> = Vec::new();
    for (key, value) in store.scan_prefix(state::MESSAGE_STATE, b"").map_err(e)? {
        let parsed = state::split_key(&key)
            .and_then(|(qid, seq)| Some((qid.to_string(), seq.parse::<u64>().ok()?)));
        match (parsed, serde_json::from_slice::<state::StateRecord>(&value)) {
            (Some(k), Ok(r)) if by_id.contains_key(&k.0) => {
                states.insert(k, r);
            }
            _ => orphans.push((state::MESSAGE_STATE, key)),
        }
    }

    for (key, value) in store.scan_prefix(state::MESSAGES, b"").map_err(e)? {
        let parsed = state::split_key(&key)
            .and_then(|(qid, seq)| Some((qid.to_string(), seq.parse::<u64>().ok()?)));
        let Some((qid, seq)) = parsed else {
            orphans.push((state::MESSAGES, key));
            continue;
        };
        let Some((_, list)) = by_id.get_mut(&qid) else {
            orphans.push((state::MESSAGES, key));
            continue;
        };
        let rec = match serde_json::from_slice::<state::MessageRecord>(&value) {
            Ok(r) if r.v > state::RECORD_VERSION => {
                return Err(format!(
                    "message record format {} is newer than this nimbus understands",
                    r.v
                ));
            }
            Ok(r) => r,
            Err(err) => {
                tracing::error!("sqs: unreadable message record {qid}/{seq}: {err}");
                continue;
            }
        };
        let st = states.remove(&(qid, seq));
        let (rc, fr, lr, vis) = match &st {
            Some(s) => (s.rc, s.fr, s.lr, s.vis),
            None => (rec.rc, rec.fr, 0, 0),
        };
        let loc = if vis > now {
            Loc::InFlight(vis)
        } else if rec.du > now {
            Loc::Delayed(rec.du)
        } else {
            Loc::Ready
        };
        list.push((
            seq,
            Msg {
                data: Arc::new(rec.d),
                receive_count: rc,
                first_receive_ms: fr,
                last_receive_ms: lr,
                enqueued_ms: rec.enq,
                loc,
            },
        ));
    }
    for ((qid, seq), _) in states {
        orphans.push((
            state::MESSAGE_STATE,
            format!("{qid}/{seq:020}").into_bytes(),
        ));
    }

    let mut dedups: HashMap<String, Vec<(String, state::DedupRecord)>> = HashMap::new();
    for (key, value) in store.scan_prefix(state::DEDUP, b"").map_err(e)? {
        let parsed = state::split_key(&key).map(|(q, d)| (q.to_string(), d.to_string()));
        match (parsed, serde_json::from_slice::<state::DedupRecord>(&value)) {
            (Some((qid, d)), Ok(r)) if by_id.contains_key(&qid) => {
                if r.exp > now {
                    dedups.entry(qid).or_default().push((d, r));
                } else {
                    orphans.push((state::DEDUP, key));
                }
            }
            _ => orphans.push((state::DEDUP, key)),
        }
    }

    let mut reserved: HashMap<String, u64> = HashMap::new();
    for (key, value) in store.scan_prefix(state::SEQUENCE, b"").map_err(e)? {
        let qid = String::from_utf8_lossy(&key).to_string();
        if !by_id.contains_key(&qid) {
            orphans.push((state::SEQUENCE, key));
            continue;
        }
        if let Some(n) = std::str::from_utf8(&value)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            reserved.insert(qid, n);
        }
    }

    for (qid, (q, mut msgs)) in by_id {
        msgs.sort_by_key(|(s, _)| *s);
        {
            let mut st = q.lock();
            for (seq, m) in msgs {
                st.restore(seq, m);
            }
            if let Some(r) = reserved.get(&qid) {
                st.ensure_next_seq_at_least(*r);
                st.seq_reserved = *r;
            }
            let mut list = dedups.remove(&qid).unwrap_or_default();
            list.sort_by_key(|(_, r)| r.exp);
            for (k, r) in list {
                st.dedup_insert(
                    k,
                    DedupEntry {
                        message_id: r.id,
                        seq: r.seq,
                        expires_ms: r.exp,
                        ticket: CommitTicket::committed(),
                    },
                );
            }
            st.advance(now);
            // Messages that expired while nimbus was down go with the next write.
            orphans.extend(Inner::expired_ops(&q, &mut st));
        }
        inner.insert_queue(q);
    }

    for (key, value) in store.scan_prefix(state::DELETED_QUEUES, b"").map_err(e)? {
        let k = String::from_utf8_lossy(&key).to_string();
        let mut parts = k.splitn(3, '/');
        let (Some(a), Some(r), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
            orphans.push((state::DELETED_QUEUES, key));
            continue;
        };
        let at: u64 = std::str::from_utf8(&value)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if at + 60_000 > now {
            lock(&inner.deleted).insert(
                QueueKey {
                    account: a.to_string(),
                    region: r.to_string(),
                    name: n.to_string(),
                },
                at,
            );
        } else {
            orphans.push((state::DELETED_QUEUES, key));
        }
    }

    for (key, value) in store.scan_prefix(state::MOVE_TASKS, b"").map_err(e)? {
        match serde_json::from_slice::<state::MoveTaskRecord>(&value) {
            Ok(rec) => {
                let running = rec.status == "RUNNING";
                let task = Arc::new(MoveTask::new(rec));
                lock(&inner.tasks).insert(task.id.clone(), task.clone());
                if running {
                    lock(&inner.resume).push(task);
                }
            }
            Err(_) => orphans.push((state::MOVE_TASKS, key)),
        }
    }

    if !orphans.is_empty() {
        lock(&inner.orphans).extend(orphans);
        inner.has_orphans.store(true, Ordering::Release);
    }
    Ok(())
}

/// Every queue goes with its messages, deduplication ids, move tasks and the
/// "deleted recently" marks (a queue of the same name can be made at once).
/// Records are deleted in one batch queued under the queue map's lock (a queue
/// made right after the reset is written after it); the store's keys are read
/// first, so records memory never loaded go too. Messages a running request
/// adds to an old queue meanwhile are orphans, removed at the next start.
async fn reset(inner: &Arc<Inner>) -> Result<(), AwsError> {
    let tables = [
        state::QUEUES,
        state::MESSAGES,
        state::MESSAGE_STATE,
        state::DEDUP,
        state::SEQUENCE,
        state::DELETED_QUEUES,
        state::MOVE_TASKS,
    ];
    let stored = inner
        .store
        .keys_of_tables(&tables)
        .await
        .map_err(errors::store_failed)?;
    let (commit, taken) = {
        let mut queues = inner.queues.write().unwrap_or_else(|e| e.into_inner());
        let taken: Vec<Arc<Queue>> = std::mem::take(&mut *queues)
            .into_values()
            .flat_map(BTreeMap::into_values)
            .collect();
        let mut batch = Batch::new();
        for (table, keys) in stored {
            for k in keys {
                batch.delete(table, k);
            }
        }
        for q in &taken {
            batch.delete(state::QUEUES, q.key.store_key().into_bytes());
            batch.delete(state::SEQUENCE, q.id_hex.clone().into_bytes());
        }
        for (key, _) in lock(&inner.deleted).drain() {
            batch.delete(state::DELETED_QUEUES, key.store_key().into_bytes());
        }
        for (id, task) in lock(&inner.tasks).drain() {
            task.halt();
            batch.delete(state::MOVE_TASKS, id.into_bytes());
        }
        lock(&inner.resume).clear();
        lock(&inner.orphans).clear();
        inner.has_orphans.store(false, Ordering::Release);
        (inner.store.submit(batch), taken)
    };
    commit.await.map_err(errors::store_failed)?;
    let mut batch = Batch::new();
    for q in &taken {
        q.deleted.store(true, Ordering::SeqCst);
        // Long pollers on these queues answer now.
        q.notify.notify_waiters();
        q.delete_records(&q.lock(), &mut batch);
    }
    inner
        .store
        .commit(batch)
        .await
        .map_err(errors::store_failed)?;
    tracing::debug!("sqs reset: {} queues", taken.len());
    Ok(())
}

impl Service for Sqs {
    fn name(&self) -> &'static str {
        "sqs"
    }

    fn call<'a>(
        &'a self,
        ctx: &'a RequestContext,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, AwsError>> {
        Box::pin(async move {
            let inner = &self.inner;
            if !lock(&inner.resume).is_empty() {
                inner.resume_tasks();
            }
            use handlers::{messages as m, move_tasks as t, queues as q};
            match operation {
                "CreateQueue" => q::create_queue(inner, ctx, input).await,
                "GetQueueUrl" => q::get_queue_url(inner, ctx, input),
                "ListQueues" => q::list_queues(inner, ctx, input),
                "DeleteQueue" => q::delete_queue(inner, ctx, input).await,
                "GetQueueAttributes" => q::get_queue_attributes(inner, ctx, input).await,
                "SetQueueAttributes" => q::set_queue_attributes(inner, ctx, input).await,
                "PurgeQueue" => q::purge_queue(inner, ctx, input).await,
                "TagQueue" => q::tag_queue(inner, ctx, input).await,
                "UntagQueue" => q::untag_queue(inner, ctx, input).await,
                "ListQueueTags" => q::list_queue_tags(inner, ctx, input),
                "AddPermission" => q::add_permission(inner, ctx, input).await,
                "RemovePermission" => q::remove_permission(inner, ctx, input).await,
                "ListDeadLetterSourceQueues" => {
                    q::list_dead_letter_source_queues(inner, ctx, input)
                }
                "SendMessage" => m::send_message(inner, ctx, input).await,
                "SendMessageBatch" => m::send_message_batch(inner, ctx, input).await,
                "ReceiveMessage" => m::receive_message(inner, ctx, input).await,
                "DeleteMessage" => m::delete_message(inner, ctx, input).await,
                "DeleteMessageBatch" => m::delete_message_batch(inner, ctx, input).await,
                "ChangeMessageVisibility" => m::change_message_visibility(inner, ctx, input).await,
                "ChangeMessageVisibilityBatch" => {
                    m::change_message_visibility_batch(inner, ctx, input).await
                }
                "StartMessageMoveTask" => t::start_message_move_task(inner, ctx, input).await,
                "CancelMessageMoveTask" => t::cancel_message_move_task(inner, ctx, input).await,
                "ListMessageMoveTasks" => t::list_message_move_tasks(inner, ctx, input),
                other => Err(AwsError::invalid_action(other, "SQS")),
            }
        })
    }

    fn reset(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(reset(&self.inner))
    }
}
