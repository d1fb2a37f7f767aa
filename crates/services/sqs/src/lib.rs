//! Amazon SQS for nimbus: standard and FIFO queues, visibility timeouts, long
//! polling, delay queues, dead-letter queues and redrive (move tasks),
//! permissions and tags, with every acknowledged change durable in the store.
//!
//! This file owns the service object: [`Sqs::open`] loads every queue from
//! the store (each queue reads its messages at its first use), and the [`Service`] implementation dispatches the
//! 23 operations of the model to the handlers. Layout of the crate:
//!
//! - `handlers/` — one function per operation (queues, messages, move tasks)
//! - `queue` — the in-memory state machine of one queue and its indexes
//! - `state` — record formats and store tables
//! - `attributes`, `message`, `names`, `errors` — validation and vocabulary
//!
//! Live state is kept in memory as compact entries (per-queue locks, held
//! only for short, await-free sections; bodies and attributes stay in the
//! store and are read on delivery) and every change is written as a small record before
//! the answer leaves: the store group-commits concurrent writers into one
//! fsync, so durability does not serialize requests.

mod attributes;
mod cleanup;
mod errors;
mod handlers;
mod input;
mod message;
mod metrics;
mod names;
mod queue;
mod seqmap;
mod state;

#[cfg(test)]
mod tests;

use handlers::move_tasks::MoveTask;
use names::QueueKey;
use nimbus_core::{AwsError, BoxFuture, RequestContext, Service};
use nimbus_store::{Batch, Store};
use queue::{Loc, Msg, MsgHead, Queue, QueueState};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

type Partition = (String, String);

/// SQS's quota of in-flight messages per queue, standard and FIFO.
const MAX_IN_FLIGHT: usize = 120_000;

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
    /// Deletions left over at shutdown (deleted queues' records, purged
    /// messages), resumed with the move tasks.
    resume_cleanup: Mutex<(Vec<String>, Vec<Arc<Queue>>)>,
    /// Shifts the service clock; only tests move it.
    clock_offset: AtomicU64,
    /// Background deletions stop at their next batch (tests stop the service
    /// as a crash would).
    pub halted: AtomicBool,
    /// Most messages a queue may have in flight (SQS: about 120,000); tests lower it.
    pub inflight_limit: std::sync::atomic::AtomicUsize,
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
        let q = self.queue(&key).ok_or_else(errors::queue_does_not_exist)?;
        q.counters.touch();
        Ok(q)
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
    pub async fn commit(&self, batch: Batch) -> Result<(), AwsError> {
        self.submit(batch).await
    }

    /// Queues `batch` (with any deletions found at startup) at once; the
    /// future resolves when it is durable.
    pub fn submit(
        &self,
        mut batch: Batch,
    ) -> impl std::future::Future<Output = Result<(), AwsError>> + Send + 'static {
        if self.has_orphans.swap(false, Ordering::AcqRel) {
            let mut o = lock(&self.orphans);
            for (t, k) in o.drain(..) {
                batch.delete(t, k);
            }
        }
        let done = self.store.submit(batch);
        async move { done.await.map_err(errors::store_failed) }
    }

    /// Queues a batch that changes `q`'s messages, under `q`'s lock (held as
    /// `st`): the deletions its state has decided ride along, and a standard
    /// queue's count record (and a FIFO queue's group order) goes with it. Submitting under the lock keeps the
    /// store's order of the queue's batches the order memory made them in,
    /// which is what makes the stored count exact and lets a receive read
    /// ready messages from the store without meeting one being deleted.
    pub fn submit_for(
        &self,
        q: &Queue,
        st: &mut QueueState,
        mut batch: Batch,
    ) -> impl std::future::Future<Output = Result<(), AwsError>> + Send + 'static {
        Self::collect_expired(q, st, &mut batch);
        st.seal(&mut batch);
        self.submit(batch)
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
        let (dropped, purged) = std::mem::take(&mut *lock(&self.resume_cleanup));
        for id in dropped {
            cleanup::spawn_drop(self.clone(), id);
        }
        for q in purged {
            cleanup::spawn_purge_drain(self.clone(), q);
        }
    }
}

impl Sqs {
    /// Opens the service on `store`, loading every queue and move task (each
    /// queue reads its messages and dedup ids at its first use). Running
    /// move tasks resume.
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
            resume_cleanup: Mutex::new((Vec::new(), Vec::new())),
            clock_offset: AtomicU64::new(0),
            halted: AtomicBool::new(false),
            inflight_limit: std::sync::atomic::AtomicUsize::new(MAX_IN_FLIGHT),
        });
        load(&inner).map_err(|e| format!("sqs: loading state failed: {e}"))?;
        if tokio::runtime::Handle::try_current().is_ok() {
            inner.resume_tasks();
        }
        Ok(Sqs { inner })
    }

    /// The AWS/SQS metrics of every queue, for CloudWatch to collect.
    pub fn metric_source(&self) -> Arc<dyn nimbus_core::telemetry::MetricSource> {
        Arc::new(metrics::SqsMetrics {
            inner: self.inner.clone(),
        })
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
        self.inner.halted.store(true, Ordering::SeqCst);
    }
}

/// Opens one queue's messages, deduplication ids and sequence reservation
/// into its state: called by [`Queue::lock`] the first time a queue opened
/// from the store is used. A queue with a count record reads only what it
/// keeps in memory ([`open_counted`]); one of an older release is read once
/// and given its count record and group order ([`open_legacy`]). Records
/// that belong to no message (a state record without its message, expired
/// ids) are deleted with the queue's next write.
pub(crate) fn load_messages(q: &Queue, store: &Store, st: &mut QueueState) {
    let now = nimbus_core::now_millis();
    let counted = match store.get(state::COUNTS, q.id_hex.as_bytes()) {
        Ok(Some(v)) => match serde_json::from_slice::<state::CountRecord>(&v) {
            Ok(c) if c.v <= state::RECORD_VERSION => Some(c),
            _ => {
                tracing::error!("sqs: unreadable count record of {}; counting", q.arn);
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::error!("sqs: reading the count of {}: {e}", q.arn);
            None
        }
    };
    match counted {
        Some(c) => open_counted(q, store, st, c, now),
        None => open_legacy(q, store, st, now),
    }
    if q.fifo {
        load_sequence(q, store, st);
    }
    st.advance(now);
    // Messages that expired while nimbus was down go with the next write.
    let expired = Inner::expired_ops(q, st);
    st.pending_deletes.extend(expired);
}

/// Reads every message record of a queue without a count record (one of an
/// older release, or never written to) once, and writes what its later
/// first uses read instead: the count record, state records for hidden
/// messages with what memory keeps of them, and a FIFO queue's group order.
fn open_legacy(q: &Queue, store: &Store, st: &mut QueueState, now: u64) {
    let prefix = format!("{}/", q.id_hex).into_bytes();
    let mut count = 0u64;
    let mut next = 0u64;
    let mut hidden: Vec<(u64, Msg)> = Vec::new();
    let mut stateful = std::collections::BTreeSet::new();
    let mut order: Vec<Vec<u8>> = Vec::new();
    let seq_of = |key: &[u8]| state::split_key(key).and_then(|(_, seq)| seq.parse::<u64>().ok());
    let mut states: HashMap<u64, state::StateRecord> = HashMap::new();
    let read = store.scan(state::MESSAGE_STATE, &prefix, |key, value| {
        if !key.starts_with(&prefix) {
            return nimbus_store::Step::Stop;
        }
        match (
            seq_of(key),
            serde_json::from_slice::<state::StateRecord>(value),
        ) {
            (Some(seq), Ok(r)) => {
                states.insert(seq, r);
            }
            _ => st
                .pending_deletes
                .push((state::MESSAGE_STATE, key.to_vec())),
        }
        nimbus_store::Step::Next
    });
    let mut groups: HashMap<String, Arc<str>> = HashMap::new();
    let read = read.and_then(|()| {
        store.scan(state::MESSAGES, &prefix, |key, value| {
            if !key.starts_with(&prefix) {
                return nimbus_store::Step::Stop;
            }
            let Some(seq) = seq_of(key) else {
                st.pending_deletes.push((state::MESSAGES, key.to_vec()));
                return nimbus_store::Step::Next;
            };
            let rec = match serde_json::from_slice::<state::MessageHeadRecord>(value) {
                Ok(r) if r.v > state::RECORD_VERSION => {
                    tracing::error!(
                        "sqs: message record {}/{seq} has format {}, newer than this nimbus understands; left alone",
                        q.id_hex, r.v
                    );
                    return nimbus_store::Step::Next;
                }
                Ok(r) => r,
                Err(err) => {
                    tracing::error!("sqs: unreadable message record {}/{seq}: {err}", q.id_hex);
                    return nimbus_store::Step::Next;
                }
            };
            count += 1;
            next = seq + 1;
            let (rc, fr, lr, vis) = match states.remove(&seq) {
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
            if loc == Loc::Ready {
                if rc > 0 {
                    stateful.insert(seq);
                }
            } else {
                let mut id = [0u8; 16];
                if let Ok(u) = uuid::Uuid::parse_str(&rec.d.id) {
                    id = *u.as_bytes();
                }
                // One allocation per group, shared by its messages.
                let group = rec.d.group.as_ref().map(|g| match groups.get(g.as_str()) {
                    Some(shared) => Arc::clone(shared),
                    None => {
                        let shared: Arc<str> = Arc::from(g.as_str());
                        groups.insert(g.clone(), shared.clone());
                        shared
                    }
                });
                hidden.push((
                    seq,
                    Msg {
                        data: MsgHead { id, group },
                        receive_count: rc,
                        first_receive_ms: fr,
                        last_receive_ms: lr,
                        enqueued_ms: rec.enq,
                        loc,
                    },
                ));
            }
            if let (true, Some(g)) = (q.fifo, &rec.d.group) {
                order.push(q.order_key(g, seq));
            }
            nimbus_store::Step::Next
        })
    });
    if let Err(e) = read {
        // The queue then works on what was read; the error is the store's.
        tracing::error!("sqs: reading the messages of {} failed: {e}", q.arn);
    }
    for seq in states.into_keys() {
        st.pending_deletes
            .push((state::MESSAGE_STATE, q.message_key(seq)));
    }
    // The group order goes first, in bounded batches, and the count record
    // last: until it is durable, the next start simply does this again.
    for chunk in order.chunks(10_000) {
        let mut batch = Batch::new();
        for k in chunk {
            batch.put(state::FIFO_ORDER, k.clone(), Vec::new());
        }
        drop(store.submit(batch));
    }
    let mut batch = Batch::new();
    for (seq, m) in &hidden {
        let (until, delayed) = match m.loc {
            Loc::Delayed(t) => (t, true),
            Loc::InFlight(t) => (t, false),
            _ => continue,
        };
        // Written with what a first use needs (older state records lack
        // it, and a delay had none).
        batch.put(
            state::MESSAGE_STATE,
            q.message_key(*seq),
            state::to_json(&state::StateRecord::of(m, until, delayed)),
        );
    }
    let c = state::CountRecord {
        v: state::RECORD_VERSION,
        n: count,
        next,
        dead: 0,
        floor: 0,
    };
    batch.put(
        state::COUNTS,
        q.id_hex.clone().into_bytes(),
        state::to_json(&c),
    );
    drop(store.submit(batch));
    st.open_stored(&c, hidden, stateful);
}

/// A FIFO queue's sequence reservation (its deduplication ids stay in the
/// store: a send looks one up there).
fn load_sequence(q: &Queue, store: &Store, st: &mut QueueState) {
    let reserved = match store.get(state::SEQUENCE, q.id_hex.as_bytes()) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("sqs: reading the sequence of {} failed: {e}", q.arn);
            None
        }
    };
    if let Some(n) = reserved
        .as_deref()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse::<u64>().ok())
    {
        st.ensure_next_seq_at_least(n);
        st.seq_reserved = n;
    }
}

/// Opens a queue from its count record and the state records of its hidden
/// messages (in flight or delayed): reads nothing per ready message. A FIFO
/// queue reads the record of each hidden message too, for its group.
fn open_counted(q: &Queue, store: &Store, st: &mut QueueState, c: state::CountRecord, now: u64) {
    let prefix = format!("{}/", q.id_hex);
    let mut hidden = Vec::new();
    let mut stateful = std::collections::BTreeSet::new();
    let read = store.scan(state::MESSAGE_STATE, prefix.as_bytes(), |key, value| {
        let Some(rest) = key.strip_prefix(prefix.as_bytes()) else {
            return nimbus_store::Step::Stop;
        };
        let seq = std::str::from_utf8(rest)
            .ok()
            .and_then(|r| r.parse::<u64>().ok());
        let rec = serde_json::from_slice::<state::StateRecord>(value).ok();
        if let (Some(seq), Some(r)) = (seq, rec) {
            if r.vis > now {
                hidden.push((seq, r));
            } else if r.rc > 0 {
                stateful.insert(seq);
            }
        }
        nimbus_store::Step::Next
    });
    if let Err(e) = read {
        tracing::error!("sqs: reading the hidden messages of {}: {e}", q.arn);
    }
    let mut groups: HashMap<String, Arc<str>> = HashMap::new();
    let hidden = hidden
        .into_iter()
        .filter_map(|(seq, r)| {
            let mut id = [0u8; 16];
            let mut enq = r.enq;
            let mut group = None;
            let known = match r.id.as_deref().map(hex::decode) {
                Some(Ok(b)) if b.len() == 16 => {
                    id.copy_from_slice(&b);
                    true
                }
                _ => false,
            };
            // A record of an older release, or a FIFO message's group: the
            // message's own record has it.
            if q.fifo || !known {
                let value = store.get(state::MESSAGES, &q.message_key(seq)).ok()??;
                let head = serde_json::from_slice::<state::MessageHeadRecord>(&value).ok()?;
                id = *uuid::Uuid::parse_str(&head.d.id).ok()?.as_bytes();
                enq = head.enq;
                group = head.d.group.map(|g| {
                    groups
                        .entry(g.clone())
                        .or_insert_with(|| Arc::from(g))
                        .clone()
                });
            }
            let msg = Msg {
                data: MsgHead { id, group },
                receive_count: r.rc,
                first_receive_ms: r.fr,
                last_receive_ms: r.lr,
                enqueued_ms: enq,
                loc: if r.d {
                    Loc::Delayed(r.vis)
                } else {
                    Loc::InFlight(r.vis)
                },
            };
            Some((seq, msg))
        })
        .collect();
    st.open_stored(&c, hidden, stateful);
}

fn load(inner: &Arc<Inner>) -> Result<(), String> {
    let store = &inner.store;
    let now = inner.now();
    let e = |e: nimbus_store::StoreError| e.to_string();

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
        // Messages, deduplication ids and sequence reservations are read when
        // the queue is first used (`load_messages`), not here: a start does
        // not read what the queues hold.
        let q = Queue::new(
            key,
            id,
            rec.fifo,
            rec.created_s,
            rec.dedup_by_group,
            st,
            store,
        )
        .with_stored_messages(store.clone());
        inner.insert_queue(Arc::new(q));
    }

    let mut orphans: Vec<(&'static str, Vec<u8>)> = Vec::new();

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

    // Deletions cut short by the last stop: one small record per queue.
    for (key, _) in store.scan_prefix(state::DROPPED, b"").map_err(e)? {
        lock(&inner.resume_cleanup)
            .0
            .push(String::from_utf8_lossy(&key).into_owned());
    }
    let by_id: HashMap<String, Arc<Queue>> = inner
        .queues
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .flat_map(|m| m.values())
        .map(|q| (q.id_hex.clone(), q.clone()))
        .collect();
    for (key, value) in store.scan_prefix(state::COUNTS, b"").map_err(e)? {
        let purged = serde_json::from_slice::<state::CountRecord>(&value).is_ok_and(|c| c.dead > 0);
        if let Some(q) = by_id
            .get(String::from_utf8_lossy(&key).as_ref())
            .filter(|_| purged)
        {
            lock(&inner.resume_cleanup).1.push(q.clone());
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
/// The queues' records are deleted in one batch queued under the queue map's
/// lock (a queue made right after the reset is written after it), each queue
/// leaving a `sqs_dropped` marker; their messages then go in bounded batches
/// (`cleanup`), before the reset answers.
async fn reset(inner: &Arc<Inner>) -> Result<(), AwsError> {
    let tables = [
        state::QUEUES,
        state::COUNTS,
        state::SEQUENCE,
        state::DELETED_QUEUES,
        state::MOVE_TASKS,
        state::DROPPED,
    ];
    let stored = inner
        .store
        .keys_of_tables(&tables)
        .await
        .map_err(errors::store_failed)?;
    let (commit, taken, mut ids) = {
        let mut queues = inner.queues.write().unwrap_or_else(|e| e.into_inner());
        let taken: Vec<Arc<Queue>> = std::mem::take(&mut *queues)
            .into_values()
            .flat_map(BTreeMap::into_values)
            .collect();
        let mut ids: Vec<String> = taken.iter().map(|q| q.id_hex.clone()).collect();
        let mut batch = Batch::new();
        for (table, keys) in stored {
            for k in keys {
                if table == state::DROPPED {
                    // Deleted queues whose records are still going: they go now.
                    ids.push(String::from_utf8_lossy(&k).into_owned());
                } else {
                    batch.delete(table, k);
                }
            }
        }
        for q in &taken {
            batch.delete(state::QUEUES, q.key.store_key().into_bytes());
            batch.put(state::DROPPED, q.id_hex.clone().into_bytes(), Vec::new());
        }
        for (key, _) in lock(&inner.deleted).drain() {
            batch.delete(state::DELETED_QUEUES, key.store_key().into_bytes());
        }
        for (id, task) in lock(&inner.tasks).drain() {
            task.halt();
            batch.delete(state::MOVE_TASKS, id.into_bytes());
        }
        lock(&inner.resume).clear();
        *lock(&inner.resume_cleanup) = (Vec::new(), Vec::new());
        lock(&inner.orphans).clear();
        inner.has_orphans.store(false, Ordering::Release);
        (inner.store.submit(batch), taken, ids)
    };
    commit.await.map_err(errors::store_failed)?;
    for q in &taken {
        q.deleted.store(true, Ordering::SeqCst);
        // Long pollers on these queues answer now.
        q.notify.notify_waiters();
    }
    ids.sort();
    ids.dedup();
    cleanup::drop_queues(inner, &ids).await?;
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
            if !lock(&inner.resume).is_empty() || {
                let c = lock(&inner.resume_cleanup);
                !c.0.is_empty() || !c.1.is_empty()
            } {
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
