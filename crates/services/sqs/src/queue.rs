//! The live state of one queue, mirrored to the store by the handlers.
//!
//! A FIFO queue holds a compact entry per message (its id, group, receive
//! count, times and where it is; bodies and attributes stay in the store and
//! are read when a message is delivered or moved) and the indexes that make
//! each operation cost O(log n): ready messages per message group, the
//! in-flight set ordered by visibility deadline, the delayed set ordered by
//! ready time, and an age index for retention.
//!
//! A standard queue keeps in memory only the messages that are not ready:
//! sent but not yet durable, in flight, or delayed. Its ready messages are
//! the store's: every record at or past a cursor that memory does not hold,
//! read in position order when a receive needs them, plus the positions
//! behind the cursor that became ready again (a visibility timeout ran out).
//! Its count is kept and stored, not recounted ([`Stored`]); retention is a
//! sweep from the front of the store. So a backlog of millions costs nothing
//! in memory until it is received.
//!
//! Time-driven transitions (visibility returns, delays ending, retention,
//! dedup window) happen lazily in [`QueueState::advance`] whenever the queue
//! is touched; long pollers sleep until [`QueueState::next_event`].
//!
//! FIFO delivery follows SQS: within a group, ready messages are delivered in
//! order up to the first message that is in flight (or not yet committed /
//! still delayed); groups take turns in the order they became deliverable.

use crate::attributes::QueueAttrs;
use crate::message::Attr;
use crate::names::QueueKey;
use nimbus_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// FIFO SequenceNumbers are 20-digit decimals: this base plus the position.
pub const SEQUENCE_BASE: u64 = 10_000_000_000_000_000_000;
/// How long a FIFO deduplication id (and a ReceiveRequestAttemptId) holds.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;
/// Records a standard queue's retention sweep expires per touch of the queue:
/// bounds the time one request spends on it.
const SWEEP_STEP: usize = 1000;

/// The immutable part of a message, shared between the queue and responses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MsgData {
    #[serde(rename = "id")]
    pub id: String,
    #[serde(rename = "b")]
    pub body: String,
    #[serde(rename = "mb")]
    pub md5_body: String,
    #[serde(rename = "a", default, skip_serializing_if = "Vec::is_empty")]
    pub attrs: Vec<Attr>,
    #[serde(rename = "ma", default, skip_serializing_if = "Option::is_none")]
    pub md5_attrs: Option<String>,
    #[serde(rename = "sa", default, skip_serializing_if = "Vec::is_empty")]
    pub sys_attrs: Vec<Attr>,
    #[serde(rename = "ms", default, skip_serializing_if = "Option::is_none")]
    pub md5_sys: Option<String>,
    #[serde(
        rename = "g",
        default,
        skip_serializing_if = "Option::is_none",
        with = "shared_str"
    )]
    pub group: Option<Arc<str>>,
    #[serde(rename = "dd", default, skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
    #[serde(rename = "t")]
    pub sent_ms: u64,
    #[serde(rename = "s")]
    pub sender: String,
    #[serde(rename = "dl", default, skip_serializing_if = "Option::is_none")]
    pub dlq_source_arn: Option<String>,
}

impl MsgData {
    pub fn id_bytes(&self) -> [u8; 16] {
        uuid::Uuid::parse_str(&self.id)
            .map(|u| *u.as_bytes())
            .unwrap_or([0; 16])
    }

    pub fn trace_header(&self) -> Option<&str> {
        self.sys_attrs.iter().find_map(|a| match &a.value {
            crate::message::AttrValue::Str(s) if a.name == "AWSTraceHeader" => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Message group ids are shared between a message and its group's index.
mod shared_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) => s.serialize_some(&**x),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(Arc::from))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    /// Sent but not yet durable: invisible, and in a FIFO group it holds back
    /// every later message.
    Pending {
        delay_until: u64,
    },
    Ready,
    Delayed(u64),
    InFlight(u64),
}

/// What the state machine needs of a message's immutable part; the rest
/// (body, attributes, digests) is read from the store when needed.
#[derive(Debug, Clone, PartialEq)]
pub struct MsgHead {
    pub id: [u8; 16],
    pub group: Option<Arc<str>>,
}

impl MsgHead {
    pub fn of(data: &MsgData) -> MsgHead {
        MsgHead {
            id: data.id_bytes(),
            group: data.group.clone(),
        }
    }

    pub fn id_bytes(&self) -> [u8; 16] {
        self.id
    }
}

#[derive(Debug, Clone)]
pub struct Msg {
    pub data: MsgHead,
    pub receive_count: u32,
    pub first_receive_ms: u64,
    /// When the current receive began (visibility may not extend past 12 h from it).
    pub last_receive_ms: u64,
    /// Retention is counted from here.
    pub enqueued_ms: u64,
    pub loc: Loc,
}

/// One delivered message, as the receive handler needs it.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub seq: u64,
    pub data: MsgHead,
    pub receive_count: u32,
    pub first_receive_ms: u64,
    pub enqueued_ms: u64,
    pub visible_at: u64,
    /// The message's record as the store had it, when the receive read it
    /// already (a standard queue's ready messages): the answer needs no second read.
    pub record: Option<Vec<u8>>,
}

/// Where a standard queue's messages are: its records in the store, read in
/// position order, and the figures that let it answer without counting them.
pub struct Stored {
    store: Store,
    /// `{queue-id}/`, the prefix of its keys.
    prefix: String,
    /// Ready messages at or past this position are found by reading the
    /// store; behind it, the ready ones are in `QueueState::ready`.
    cursor: u64,
    /// Messages in the queue (any state), as memory sees them now.
    live: u64,
    /// Of those, sent but not yet durable.
    pending: u64,
    /// Message records in the store as of the last batch submitted for the
    /// queue: what its count record says.
    records: u64,
    /// Records before this position have expired (deleted, or deletes queued).
    sweep_from: u64,
    /// The enqueue time of the record at `sweep_from`, if known; the sweep
    /// reads the store only once this is past the retention period.
    oldest_enq: u64,
    /// Purged records (below `floor`) still in the store, and where the
    /// background deletion of them has got to.
    dead: u64,
    floor: u64,
    dropped_to: u64,
    /// Set by a purge: the records it leaves alive, for the next count record
    /// to derive `dead` from once the batch's own deletions are counted.
    purge_above: Option<u64>,
    /// The count record must be written even if no message record changes.
    dirty: bool,
    /// Ready messages not yet reached by the cursor that have a state record
    /// (received before the queue opened): only these need it read. A message
    /// received since comes back through `QueueState::ready`, which always reads it.
    stateful: BTreeSet<u64>,
    /// FIFO: the record the discovery scan just read for a group's head, so
    /// delivering it needs no second read.
    prefetch: Option<(u64, Vec<u8>)>,
    /// FIFO: groups of messages taken out whose record deletion is not yet
    /// in a batch; their group-order entries go in the batch that deletes the
    /// record (see [`QueueState::seal`]), never before it.
    doomed: HashMap<u64, Arc<str>>,
}

impl Stored {
    fn new(store: Store, id_hex: &str) -> Stored {
        Stored {
            store,
            prefix: format!("{id_hex}/"),
            cursor: 0,
            live: 0,
            pending: 0,
            records: 0,
            sweep_from: 0,
            oldest_enq: u64::MAX,
            dead: 0,
            floor: 0,
            dropped_to: 0,
            purge_above: None,
            dirty: false,
            stateful: BTreeSet::new(),
            prefetch: None,
            doomed: HashMap::new(),
        }
    }

    fn order_prefix(&self, group: &str) -> Vec<u8> {
        order_prefix(&self.prefix, group)
    }

    fn order_key(&self, group: &str, seq: u64) -> Vec<u8> {
        order_key(&self.prefix, group, seq)
    }

    /// Positions of a FIFO group's stored messages from `from` on, in order,
    /// until `f` says stop.
    fn group_positions(&self, group: &str, from: u64, mut f: impl FnMut(u64) -> bool) {
        let prefix = self.order_prefix(group);
        let read = self.store.scan(
            crate::state::FIFO_ORDER,
            &self.order_key(group, from),
            |key, _| {
                let seq = key
                    .strip_prefix(prefix.as_slice())
                    .and_then(|r| std::str::from_utf8(r).ok())
                    .and_then(|r| r.parse::<u64>().ok());
                match seq {
                    Some(seq) if f(seq) => nimbus_store::Step::Next,
                    _ => nimbus_store::Step::Stop,
                }
            },
        );
        if let Err(e) = read {
            tracing::error!(
                "sqs: reading the order of group {group} in {}: {e}",
                self.prefix
            );
        }
    }

    /// The first stored position of a FIFO group that is still alive.
    fn probe(&self, group: &str) -> Option<u64> {
        let mut first = None;
        self.group_positions(group, self.sweep_from, |seq| {
            first = Some(seq);
            false
        });
        first
    }

    fn message_key(&self, seq: u64) -> Vec<u8> {
        format!("{}{:020}", self.prefix, seq).into_bytes()
    }

    fn seq_of(&self, key: &[u8]) -> Option<u64> {
        let rest = key.strip_prefix(self.prefix.as_bytes())?;
        std::str::from_utf8(rest).ok()?.parse().ok()
    }

    /// A message's record as a ready message: its head and receive state.
    fn read(&self, seq: u64) -> Option<Cold> {
        let value = self.record(seq)?;
        self.cold(seq, &value, true, None)
    }

    fn record(&self, seq: u64) -> Option<Vec<u8>> {
        match self
            .store
            .get(crate::state::MESSAGES, &self.message_key(seq))
        {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("sqs: reading message {}{seq}: {e}", self.prefix);
                None
            }
        }
    }

    /// Decodes a record read from the store, with its state record if the
    /// message was received before (`group`: the FIFO group it is read for).
    fn cold(
        &self,
        seq: u64,
        value: &[u8],
        with_state: bool,
        group: Option<&Arc<str>>,
    ) -> Option<Cold> {
        let rec = match serde_json::from_slice::<crate::state::MessageHeadRecord>(value) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("sqs: unreadable message record {}{seq}: {e}", self.prefix);
                return None;
            }
        };
        let (mut rc, mut fr) = (rec.rc, rec.fr);
        let state = match with_state {
            true => self
                .store
                .get(crate::state::MESSAGE_STATE, &self.message_key(seq)),
            false => Ok(None),
        };
        if let Ok(Some(v)) = state {
            if let Ok(s) = serde_json::from_slice::<crate::state::StateRecord>(&v) {
                rc = s.rc;
                fr = s.fr;
            }
        }
        let id = uuid::Uuid::parse_str(&rec.d.id)
            .map(|u| *u.as_bytes())
            .unwrap_or([0; 16]);
        Some(Cold {
            seq,
            delay_until: rec.du,
            msg: Msg {
                data: MsgHead {
                    id,
                    group: group.cloned(),
                },
                receive_count: rc,
                first_receive_ms: fr,
                last_receive_ms: 0,
                enqueued_ms: rec.enq,
                loc: Loc::Ready,
            },
            record: value.to_vec(),
        })
    }
}

/// `{queue-id}/{group}\0`: a FIFO group's entries in `sqs_fifo_order`
/// (`prefix` is `{queue-id}/`; group ids never contain NUL, so no group's
/// range holds another's).
fn order_prefix(prefix: &str, group: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + group.len() + 21);
    k.extend_from_slice(prefix.as_bytes());
    k.extend_from_slice(group.as_bytes());
    k.push(0);
    k
}

fn order_key(prefix: &str, group: &str, seq: u64) -> Vec<u8> {
    let mut k = order_prefix(prefix, group);
    k.extend_from_slice(format!("{seq:020}").as_bytes());
    k
}

/// A ready message read from the store.
struct Cold {
    seq: u64,
    /// End of the delay it was sent with.
    delay_until: u64,
    msg: Msg,
    record: Vec<u8>,
}

/// Lets a duplicate FIFO send wait until the original is durable before it
/// acknowledges the original's MessageId.
#[derive(Debug, Default)]
pub struct CommitTicket {
    state: AtomicU8,
    notify: Notify,
}

impl CommitTicket {
    pub fn committed() -> Arc<CommitTicket> {
        let t = CommitTicket::default();
        t.state.store(1, Ordering::SeqCst);
        Arc::new(t)
    }

    pub fn finish(&self, ok: bool) {
        self.state.store(if ok { 1 } else { 2 }, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Waits for the outcome; true when the original send became durable.
    pub async fn wait(&self) -> bool {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.state.load(Ordering::SeqCst) {
                0 => notified.await,
                s => return s == 1,
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct DedupEntry {
    pub message_id: String,
    pub seq: u64,
    pub expires_ms: u64,
    pub ticket: Arc<CommitTicket>,
}

/// A remembered FIFO receive, replayed for a retried ReceiveRequestAttemptId.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub expires_ms: u64,
    pub items: Vec<(u64, u32)>,
    pub response: Vec<serde_json::Value>,
}

/// A FIFO message group that memory knows of: its messages in memory, by
/// where they are, and where its ready messages in the store begin.
#[derive(Debug, Default)]
struct Group {
    /// Ready messages in memory (all before `unloaded`).
    ready: BTreeSet<u64>,
    inflight: BTreeSet<u64>,
    /// Sent but not yet durable, or delayed.
    blocked: BTreeSet<u64>,
    /// Every message of the group that is in the store and not in memory is
    /// ready and at or after this position (`None`: there are none).
    unloaded: Option<u64>,
    /// Its place in the turn order while it has something deliverable.
    ticket: Option<Ticket>,
}

/// Groups take turns in the order they became deliverable, told by
/// position: a group found in the store by its first message's, a group that
/// became deliverable again by the next position to be handed out then
/// (the second number only breaks ties).
type Ticket = (u64, u64);

impl Group {
    /// The first message that could be delivered: ready in memory, or the
    /// first one the store holds.
    fn head(&self) -> Option<u64> {
        match (self.ready.first().copied(), self.unloaded) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn available(&self) -> bool {
        self.head().is_some_and(|h| h < self.limit())
    }

    /// Messages at or after this position wait for an earlier one.
    fn limit(&self) -> u64 {
        self.inflight
            .first()
            .copied()
            .unwrap_or(u64::MAX)
            .min(self.blocked.first().copied().unwrap_or(u64::MAX))
    }

    fn holds_nothing(&self) -> bool {
        self.ready.is_empty() && self.inflight.is_empty() && self.blocked.is_empty()
    }
}

/// What a FIFO group delivers next: a message in memory, or one read from the store.
enum Turn {
    Held(u64),
    Read(Cold),
}

/// Why a receipt handle could not change a message's visibility.
#[derive(Debug, PartialEq, Eq)]
pub enum VisibilityError {
    Gone,
    NotInFlight,
    TooLong,
}

pub struct QueueState {
    pub attrs: QueueAttrs,
    pub tags: BTreeMap<String, String>,
    pub last_modified_s: u64,
    pub purged_at_ms: Option<u64>,
    fifo: bool,
    next_seq: u64,
    /// Positions below this are covered by a durable reservation record, so
    /// FIFO sequence numbers never go backwards across a restart.
    pub seq_reserved: u64,
    msgs: crate::seqmap::SeqMap<Msg>,
    /// A standard queue's ready positions behind its cursor.
    ready: BTreeSet<u64>,
    /// FIFO groups memory knows of; the others are found by the discovery
    /// scan from the cursor (see [`QueueState::discover`]).
    groups: HashMap<Arc<str>, Group>,
    avail: BTreeMap<Ticket, Arc<str>>,
    next_ticket: u64,
    inflight: BTreeSet<(u64, u64)>,
    delayed: BTreeSet<(u64, u64)>,
    /// Deduplication ids of sends not yet durable; the others are only in
    /// the store (`sqs_dedup`), where a send looks them up.
    dedup: HashMap<String, DedupEntry>,
    /// The sweep of expired `sqs_dedup` records: where the pass under way
    /// goes on from, when it began and the earliest expiry it left; and when
    /// the next pass is due (no record can expire before).
    dedup_sweep: Option<Vec<u8>>,
    dedup_pass: (u64, u64),
    dedup_sweep_at: u64,
    attempts: HashMap<String, Attempt>,
    attempts_order: VecDeque<(u64, String)>,
    /// Store deletions decided lazily (expired messages, expired dedup ids);
    /// they ride along with the queue's next write.
    pub pending_deletes: Vec<(&'static str, Vec<u8>)>,
    /// Message keys of expired messages, for the handler to turn into deletes.
    expired: Vec<u64>,
    expired_dedup: Vec<String>,
    /// Where the queue's messages are (set for every queue the service
    /// makes, see [`Stored`]).
    stored: Option<Stored>,
}

impl QueueState {
    pub fn new(attrs: QueueAttrs, fifo: bool, now_s: u64) -> QueueState {
        QueueState {
            attrs,
            tags: BTreeMap::new(),
            last_modified_s: now_s,
            purged_at_ms: None,
            fifo,
            next_seq: 1,
            seq_reserved: 0,
            msgs: crate::seqmap::SeqMap::default(),
            ready: BTreeSet::new(),
            groups: HashMap::new(),
            avail: BTreeMap::new(),
            next_ticket: 0,
            inflight: BTreeSet::new(),
            delayed: BTreeSet::new(),
            dedup: HashMap::new(),
            dedup_sweep: None,
            dedup_pass: (0, u64::MAX),
            dedup_sweep_at: 0,
            attempts: HashMap::new(),
            attempts_order: VecDeque::new(),
            pending_deletes: Vec::new(),
            expired: Vec::new(),
            expired_dedup: Vec::new(),
            stored: None,
        }
    }

    /// Gives the queue its store: its ready messages live there.
    pub fn attach(&mut self, store: Store, id_hex: &str) {
        self.stored = Some(Stored::new(store, id_hex));
    }

    pub fn ensure_next_seq_at_least(&mut self, n: u64) {
        self.next_seq = self.next_seq.max(n);
    }

    pub fn get(&self, seq: u64) -> Option<&Msg> {
        self.msgs.get(seq)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    #[cfg(test)]
    pub fn dedup_in_memory(&self) -> usize {
        self.dedup.len()
    }

    pub fn counts(&self) -> (usize, usize, usize) {
        let hidden = self.inflight.len() + self.delayed.len();
        let visible = match &self.stored {
            None => 0,
            Some(s) => (s.live.saturating_sub(s.pending) as usize).saturating_sub(hidden),
        };
        (visible, self.inflight.len(), self.delayed.len())
    }

    /// When the queue's oldest stored message was enqueued (its first record
    /// past the purge floor and the retention sweep): one store read. A
    /// message moved in with an older enqueue time further on is not seen.
    pub fn oldest_enqueued_ms(&self) -> Option<u64> {
        let s = self.stored.as_ref()?;
        let from = s.message_key(s.sweep_from.max(s.floor));
        let mut enq = None;
        let read = s.store.scan(crate::state::MESSAGES, &from, |key, value| {
            if s.seq_of(key).is_some() {
                enq = serde_json::from_slice::<crate::state::MessageHeadRecord>(value)
                    .ok()
                    .map(|r| r.enq);
            }
            nimbus_store::Step::Stop
        });
        if let Err(e) = read {
            tracing::warn!("sqs: reading the oldest message of {}: {e}", s.prefix);
        }
        enq
    }

    /// Adds what a batch changing this queue's messages must carry besides:
    /// for a FIFO queue, the group-order entries of the message records it
    /// puts and deletes; for every queue, its count record, moved by the
    /// message records the batch puts (only new messages) and deletes (only
    /// existing ones). Nothing when the batch changes no message.
    pub fn seal(&mut self, batch: &mut nimbus_store::Batch) {
        let next = self.next_seq;
        let Some(s) = self.stored.as_mut() else {
            return;
        };
        if self.fifo {
            let mut puts = Vec::new();
            let mut deletes = Vec::new();
            let prefix = s.prefix.clone();
            batch.for_each_key(crate::state::MESSAGES, prefix.as_bytes(), |key, put| {
                let Some(seq) = s.seq_of(key) else {
                    return;
                };
                if put {
                    if let Some(g) = self.msgs.get(seq).and_then(|m| m.data.group.as_ref()) {
                        puts.push(s.order_key(g, seq));
                    }
                } else if let Some(g) = s.doomed.remove(&seq) {
                    deletes.push(s.order_key(&g, seq));
                }
            });
            for k in puts {
                batch.put(crate::state::FIFO_ORDER, k, Vec::new());
            }
            for k in deletes {
                batch.delete(crate::state::FIFO_ORDER, k);
            }
        }
        let (puts, deletes) = batch.count_keys(crate::state::MESSAGES, s.prefix.as_bytes());
        if puts == 0 && deletes == 0 && !s.dirty && s.purge_above.is_none() {
            return;
        }
        s.records = (s.records + puts).saturating_sub(deletes);
        s.dirty = false;
        if let Some(above) = s.purge_above.take() {
            s.dead = s.records.saturating_sub(above);
        }
        let count = crate::state::to_json(&crate::state::CountRecord {
            v: crate::state::RECORD_VERSION,
            n: s.records,
            next,
            dead: s.dead,
            floor: s.floor,
        });
        let key = s.prefix.trim_end_matches('/').as_bytes().to_vec();
        batch.put(crate::state::COUNTS, key, count);
    }

    /// A batch carrying `puts` new message records failed: the store never
    /// had them.
    pub fn unsubmit(&mut self, puts: u64) {
        if let Some(s) = self.stored.as_mut() {
            s.records = s.records.saturating_sub(puts);
        }
    }

    /// Opens a queue on its stored count and hidden messages (see
    /// `crate::load_messages`); each FIFO group with a hidden message learns
    /// where its stored messages begin.
    pub fn open_stored(
        &mut self,
        c: &crate::state::CountRecord,
        hidden: Vec<(u64, Msg)>,
        stateful: BTreeSet<u64>,
    ) {
        self.next_seq = self.next_seq.max(c.next);
        let Some(s) = self.stored.as_mut() else {
            return;
        };
        s.records = c.n;
        s.live = c.n.saturating_sub(c.dead);
        s.dead = c.dead;
        s.floor = c.floor;
        s.sweep_from = c.floor;
        s.cursor = s.cursor.max(c.floor);
        s.oldest_enq = 0;
        s.stateful = stateful;
        for (seq, msg) in hidden {
            if seq < c.floor {
                continue;
            }
            let loc = msg.loc;
            let group = msg.data.group.clone();
            self.msgs.insert(seq, msg);
            self.index(seq, loc, group.as_ref());
        }
        let names: Vec<Arc<str>> = self.groups.keys().cloned().collect();
        for g in names {
            let first = self.stored.as_ref().and_then(|s| s.probe(&g));
            if let Some(grp) = self.groups.get_mut(&g) {
                grp.unloaded = first;
            }
            self.reindex_group(&g);
        }
    }

    fn group_mut(&mut self, g: &Arc<str>) -> &mut Group {
        self.groups.entry(g.clone()).or_default()
    }

    /// Takes `seq` out of whatever index its location puts it in.
    fn unindex(&mut self, seq: u64, loc: Loc, group: Option<&Arc<str>>) {
        match loc {
            Loc::Pending { .. } => {}
            Loc::Ready => {
                if !self.fifo {
                    self.ready.remove(&seq);
                }
            }
            Loc::Delayed(t) => {
                self.delayed.remove(&(t, seq));
            }
            Loc::InFlight(t) => {
                self.inflight.remove(&(t, seq));
            }
        }
        if let (true, Some(g)) = (self.fifo, group) {
            if let Some(grp) = self.groups.get_mut(g) {
                match loc {
                    Loc::Pending { .. } | Loc::Delayed(_) => grp.blocked.remove(&seq),
                    Loc::Ready => grp.ready.remove(&seq),
                    Loc::InFlight(_) => grp.inflight.remove(&seq),
                };
            }
        }
    }

    fn index(&mut self, seq: u64, loc: Loc, group: Option<&Arc<str>>) {
        match loc {
            Loc::Pending { .. } => {}
            Loc::Ready => {
                if !self.fifo {
                    self.ready.insert(seq);
                }
            }
            Loc::Delayed(t) => {
                self.delayed.insert((t, seq));
            }
            Loc::InFlight(t) => {
                self.inflight.insert((t, seq));
            }
        }
        if let (true, Some(g)) = (self.fifo, group) {
            let grp = self.group_mut(g);
            match loc {
                Loc::Pending { .. } | Loc::Delayed(_) => grp.blocked.insert(seq),
                Loc::Ready => grp.ready.insert(seq),
                Loc::InFlight(_) => grp.inflight.insert(seq),
            };
        }
    }

    /// Puts a group in (or takes it out of) the turn order after a change: a
    /// group that becomes deliverable queues up behind every message sent so
    /// far. A group with nothing in memory whose stored messages the
    /// discovery scan will meet anyway is forgotten, so memory holds no group
    /// per stored message.
    fn reindex_group(&mut self, g: &Arc<str>) {
        let cursor = self.stored.as_ref().map_or(0, |s| s.cursor);
        let Some(grp) = self.groups.get_mut(g) else {
            return;
        };
        let forget = grp.holds_nothing() && grp.unloaded.is_none_or(|u| u >= cursor);
        let available = !forget && grp.available();
        match (available, grp.ticket) {
            (true, None) => {
                let t = (self.next_seq, self.next_ticket);
                self.next_ticket += 1;
                grp.ticket = Some(t);
                self.avail.insert(t, g.clone());
            }
            (false, Some(t)) => {
                grp.ticket = None;
                self.avail.remove(&t);
            }
            _ => {}
        }
        if forget {
            self.groups.remove(g);
        }
    }

    fn set_loc(&mut self, seq: u64, loc: Loc) {
        if loc == Loc::Ready && self.stored.is_some() {
            if self.fifo {
                self.fifo_ready(seq);
            } else {
                self.surface(seq);
            }
            return;
        }
        let Some(msg) = self.msgs.get_mut(seq) else {
            return;
        };
        let old = msg.loc;
        msg.loc = loc;
        let group = if self.fifo {
            msg.data.group.clone()
        } else {
            None
        };
        self.unindex(seq, old, group.as_ref());
        self.index(seq, loc, group.as_ref());
        if let Some(g) = group {
            self.reindex_group(&g);
        }
    }

    /// A standard queue's message becomes ready: memory lets go of it (the
    /// store has it), keeping only its position if the cursor is past it.
    fn surface(&mut self, seq: u64) {
        let Some(msg) = self.msgs.remove(seq) else {
            return;
        };
        self.unindex(seq, msg.loc, None);
        let Some(s) = self.stored.as_mut() else {
            return;
        };
        if matches!(msg.loc, Loc::Pending { .. }) {
            s.pending = s.pending.saturating_sub(1);
        }
        if seq < s.cursor {
            self.ready.insert(seq);
        } else if msg.receive_count > 0 {
            // Ahead of the cursor (in flight when the queue opened): its
            // receive count is in its state record.
            s.stateful.insert(seq);
        }
    }

    /// A FIFO message becomes ready. Memory keeps it only when it is back
    /// from flight ahead of its group's stored messages; otherwise memory
    /// lets go of it and the group's stored messages begin no later than it.
    fn fifo_ready(&mut self, seq: u64) {
        let Some(msg) = self.msgs.get_mut(seq) else {
            return;
        };
        let old = msg.loc;
        let Some(g) = msg.data.group.clone() else {
            return;
        };
        let unloaded = self.groups.get(&g).and_then(|grp| grp.unloaded);
        let fresh = matches!(old, Loc::Pending { .. } | Loc::Delayed(_));
        if !fresh && unloaded.is_none_or(|u| seq < u) {
            msg.loc = Loc::Ready;
            self.unindex(seq, old, Some(&g));
            self.index(seq, Loc::Ready, Some(&g));
            self.reindex_group(&g);
            return;
        }
        let Some(msg) = self.msgs.remove(seq) else {
            return;
        };
        self.unindex(seq, old, Some(&g));
        if let Some(s) = self.stored.as_mut() {
            if matches!(old, Loc::Pending { .. }) {
                s.pending = s.pending.saturating_sub(1);
            }
            if msg.receive_count > 0 {
                s.stateful.insert(seq);
            }
        }
        if let Some(grp) = self.groups.get_mut(&g) {
            grp.unloaded = Some(unloaded.map_or(seq, |u| u.min(seq)));
        }
        self.reindex_group(&g);
    }

    /// Memory starts to know a FIFO group: its messages so far, if any, are
    /// in the store at or after the cursor (the discovery scan has not met
    /// them), which is where reading its group order will start. Reading
    /// nothing here keeps a send to a group memory forgot free of reads.
    fn know_group(&mut self, g: &Arc<str>) {
        let first = self.stored.as_ref().map(|s| s.cursor.max(s.sweep_from));
        self.groups.insert(
            g.clone(),
            Group {
                unloaded: first,
                ..Group::default()
            },
        );
    }

    /// Memory learns that a FIFO group's message at `seq` is in the store
    /// only (put back after a failed move).
    fn note_stored(&mut self, g: &Arc<str>, seq: u64) {
        let cursor = self.stored.as_ref().map_or(0, |s| s.cursor);
        if !self.groups.contains_key(g) {
            if seq >= cursor {
                // The discovery scan meets it.
                return;
            }
            self.know_group(g);
        }
        if let Some(grp) = self.groups.get_mut(g) {
            grp.unloaded = Some(grp.unloaded.map_or(seq, |u| u.min(seq)));
        }
        self.reindex_group(g);
    }

    /// Removes a message entirely and returns it (for a standard queue, also
    /// one memory does not hold: it is read from the store; a FIFO queue
    /// removes only messages in memory).
    pub fn remove(&mut self, seq: u64) -> Option<Msg> {
        if !self.fifo {
            return self.remove_stored(seq);
        }
        let msg = self.msgs.remove(seq)?;
        let group = msg.data.group.clone();
        self.unindex(seq, msg.loc, group.as_ref());
        if let Some(s) = self.stored.as_mut() {
            s.live = s.live.saturating_sub(1);
            if matches!(msg.loc, Loc::Pending { .. }) {
                // Never durable: no group-order entry either.
                s.pending = s.pending.saturating_sub(1);
            } else if let Some(g) = &group {
                s.doomed.insert(seq, g.clone());
            }
        }
        if let Some(g) = group {
            self.reindex_group(&g);
        }
        Some(msg)
    }

    fn remove_stored(&mut self, seq: u64) -> Option<Msg> {
        let msg = match self.msgs.remove(seq) {
            Some(m) => {
                self.unindex(seq, m.loc, None);
                m
            }
            None => {
                let s = self.stored.as_ref()?;
                if seq < s.sweep_from {
                    return None;
                }
                let cold = s.read(seq)?;
                self.ready.remove(&seq);
                cold.msg
            }
        };
        if let Some(s) = self.stored.as_mut() {
            s.live = s.live.saturating_sub(1);
            if matches!(msg.loc, Loc::Pending { .. }) {
                s.pending = s.pending.saturating_sub(1);
            }
        }
        Some(msg)
    }

    /// Adds a just-sent (or just-moved) message, invisible until
    /// [`QueueState::finish_pending`]. Returns its position.
    pub fn insert_pending(
        &mut self,
        data: MsgHead,
        receive_count: u32,
        first_receive_ms: u64,
        enqueued_ms: u64,
        delay_until: u64,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let loc = Loc::Pending { delay_until };
        let group = if self.fifo { data.group.clone() } else { None };
        if let Some(g) = &group {
            if !self.groups.contains_key(g) {
                self.know_group(g);
            }
        }
        self.msgs.insert(
            seq,
            Msg {
                data,
                receive_count,
                first_receive_ms,
                last_receive_ms: 0,
                enqueued_ms,
                loc,
            },
        );
        if let Some(s) = self.stored.as_mut() {
            s.live += 1;
            s.pending += 1;
            if s.oldest_enq == u64::MAX {
                s.oldest_enq = enqueued_ms;
            }
        }
        self.index(seq, loc, group.as_ref());
        if let Some(g) = group {
            self.reindex_group(&g);
        }
        seq
    }

    /// The write of a pending message is durable: make it deliverable (or
    /// delayed). Returns true when it became ready now.
    pub fn finish_pending(&mut self, seq: u64, now: u64) -> bool {
        let Some(msg) = self.msgs.get(seq) else {
            return false;
        };
        let Loc::Pending { delay_until } = msg.loc else {
            return false;
        };
        if delay_until > now {
            if let Some(s) = self.stored.as_mut() {
                s.pending = s.pending.saturating_sub(1);
            }
            self.set_loc(seq, Loc::Delayed(delay_until));
            false
        } else {
            self.set_loc(seq, Loc::Ready);
            true
        }
    }

    /// Applies every transition that is due at `now`: visibility timeouts that
    /// ran out, delays that ended, messages past retention, dedup ids and
    /// receive attempts past their window. Expired records are queued for
    /// deletion with the queue's next write.
    pub fn advance(&mut self, now: u64) {
        while let Some(&(t, seq)) = self.inflight.first() {
            if t > now {
                break;
            }
            self.set_loc(seq, Loc::Ready);
        }
        while let Some(&(t, seq)) = self.delayed.first() {
            if t > now {
                break;
            }
            self.set_loc(seq, Loc::Ready);
        }
        let retention_ms = self.attrs.message_retention_period as u64 * 1000;
        self.sweep(now, retention_ms);
        if self.fifo && (self.dedup_sweep.is_some() || now >= self.dedup_sweep_at) {
            self.sweep_dedup(now);
        }
        while let Some((exp, _)) = self.attempts_order.front() {
            if *exp > now {
                break;
            }
            if let Some((exp, key)) = self.attempts_order.pop_front() {
                if self.attempts.get(&key).map(|a| a.expires_ms) == Some(exp) {
                    self.attempts.remove(&key);
                }
            }
        }
    }

    /// Retention: expires records from the front of the store, in position
    /// order, up to the first one still within the period (at most
    /// [`SWEEP_STEP`] per call). A message moved in from another queue keeps
    /// its older enqueue time: it is never delivered after its period, but
    /// leaves the count only when the sweep reaches it.
    fn sweep(&mut self, now: u64, retention_ms: u64) {
        let Some(s) = self.stored.as_ref() else {
            return;
        };
        if s.oldest_enq.saturating_add(retention_ms) > now {
            return;
        }
        let mut expired = Vec::new();
        let mut next_oldest = u64::MAX;
        let mut held_back = false;
        let from = s.message_key(s.sweep_from);
        let read = s.store.scan(crate::state::MESSAGES, &from, |key, value| {
            let Some(seq) = s.seq_of(key) else {
                return nimbus_store::Step::Stop;
            };
            if matches!(self.msgs.get(seq).map(|m| m.loc), Some(Loc::Pending { .. })) {
                held_back = true;
                return nimbus_store::Step::Stop;
            }
            let (enq, group) =
                match serde_json::from_slice::<crate::state::MessageHeadRecord>(value) {
                    Ok(r) => (r.enq, r.d.group),
                    Err(_) => (0, None),
                };
            if enq.saturating_add(retention_ms) > now {
                next_oldest = enq;
                return nimbus_store::Step::Stop;
            }
            expired.push((seq, group));
            if expired.len() >= SWEEP_STEP {
                held_back = true;
                return nimbus_store::Step::Stop;
            }
            nimbus_store::Step::Next
        });
        if let Err(e) = read {
            tracing::error!("sqs: retention sweep of {}: {e}", s.prefix);
            return;
        }
        let last = expired.last().map(|(seq, _)| *seq);
        for (seq, group) in expired {
            let group = group.map(|g| self.shared_group(g));
            self.take_out(seq, group);
            self.expired.push(seq);
        }
        if let Some(s) = self.stored.as_mut() {
            if let Some(l) = last {
                s.sweep_from = l + 1;
            }
            // Held back by a pending send or the step limit: look again next time.
            s.oldest_enq = if held_back { 0 } else { next_oldest };
        }
    }

    /// A group id as memory shares it (one allocation per known group).
    fn shared_group(&self, g: String) -> Arc<str> {
        match self.groups.get_key_value(g.as_str()) {
            Some((k, _)) => k.clone(),
            None => Arc::from(g),
        }
    }

    /// Takes a message out without reading its record (the caller has read
    /// it, and gives a FIFO message's group).
    fn take_out(&mut self, seq: u64, group: Option<Arc<str>>) {
        let mut pending = false;
        if let Some(m) = self.msgs.remove(seq) {
            pending = matches!(m.loc, Loc::Pending { .. });
            self.unindex(seq, m.loc, group.as_ref());
        } else if !self.fifo {
            self.ready.remove(&seq);
        }
        if let Some(s) = self.stored.as_mut() {
            s.live = s.live.saturating_sub(1);
            if pending {
                s.pending = s.pending.saturating_sub(1);
            }
            s.stateful.remove(&seq);
            if let (true, Some(g)) = (self.fifo, &group) {
                s.doomed.insert(seq, g.clone());
            }
        }
        if let (true, Some(g)) = (self.fifo, group) {
            self.reindex_group(&g);
        }
    }

    /// Up to `n` ready messages of a standard queue, taken out of its ready
    /// positions or found by reading the store from the cursor on (which
    /// moves past them). Expired ones found on the way are dropped.
    fn next_ready(&mut self, now: u64, n: usize) -> Vec<Cold> {
        let retention_ms = self.attrs.message_retention_period as u64 * 1000;
        let mut out: Vec<Cold> = Vec::new();
        while out.len() < n {
            let Some(s) = self.stored.as_ref() else {
                break;
            };
            let found: Vec<Cold> = if let Some(seq) = self.ready.pop_first() {
                s.read(seq).into_iter().collect()
            } else {
                let from = s.cursor.max(s.sweep_from);
                let want = n - out.len();
                let mut found = Vec::new();
                let mut last = None;
                let read = s.store.scan(
                    crate::state::MESSAGES,
                    &s.message_key(from),
                    |key, value| {
                        let Some(seq) = s.seq_of(key) else {
                            return nimbus_store::Step::Stop;
                        };
                        last = Some(seq);
                        if self.msgs.get(seq).is_some() {
                            return nimbus_store::Step::Next;
                        }
                        if let Some(c) = s.cold(seq, value, s.stateful.contains(&seq), None) {
                            found.push(c);
                        }
                        if found.len() >= want {
                            nimbus_store::Step::Stop
                        } else {
                            nimbus_store::Step::Next
                        }
                    },
                );
                if let Err(e) = read {
                    tracing::error!("sqs: reading the messages of {}: {e}", s.prefix);
                }
                let end = found.len() < want;
                let next_seq = self.next_seq;
                if let Some(s) = self.stored.as_mut() {
                    s.cursor = match (end, last) {
                        // Everything up to the newest position has been seen.
                        (true, _) => next_seq.max(from),
                        (false, Some(l)) => l + 1,
                        (false, None) => from,
                    };
                    if s.stateful.first().is_some_and(|&f| f < s.cursor) {
                        s.stateful = s.stateful.split_off(&s.cursor);
                    }
                }
                if found.is_empty() {
                    break;
                }
                found
            };
            for c in found {
                if c.msg.enqueued_ms.saturating_add(retention_ms) <= now {
                    self.take_out(c.seq, None);
                    self.expired.push(c.seq);
                } else {
                    out.push(c);
                }
            }
        }
        out
    }

    /// PurgeQueue: every message below a floor (the first
    /// send not yet durable, or the next position) is gone at once; their
    /// records are deleted in the background ([`QueueState::purged_chunk`]),
    /// the count record carrying how many are left so a restart neither shows
    /// them nor loses track of them.
    fn purge_stored(&mut self) {
        let pending_first = self
            .msgs
            .iter()
            .find(|(_, m)| matches!(m.loc, Loc::Pending { .. }))
            .map(|(seq, _)| seq);
        let floor = pending_first.unwrap_or(self.next_seq);
        let below: Vec<u64> = self
            .msgs
            .iter()
            .filter(|(seq, _)| *seq < floor)
            .map(|(seq, _)| seq)
            .collect();
        for seq in below {
            if let Some(m) = self.msgs.remove(seq) {
                self.unindex(seq, m.loc, m.data.group.as_ref());
            }
        }
        self.ready = self.ready.split_off(&floor);
        if let Some(s) = self.stored.as_mut() {
            s.cursor = s.cursor.max(floor);
            s.prefetch = None;
            s.doomed.retain(|&seq, _| seq >= floor);
        }
        // FIFO groups start over: what is left of each begins at the floor.
        self.avail.clear();
        let names: Vec<Arc<str>> = self.groups.keys().cloned().collect();
        for g in names {
            if let Some(grp) = self.groups.get_mut(&g) {
                grp.ticket = None;
                grp.unloaded = Some(floor);
            }
            self.reindex_group(&g);
        }
        let Some(s) = self.stored.as_mut() else {
            return;
        };
        // What is left: the few records at or past the floor.
        let mut above = 0u64;
        let read = s
            .store
            .scan(crate::state::MESSAGES, &s.message_key(floor), |key, _| {
                if s.seq_of(key).is_none() {
                    return nimbus_store::Step::Stop;
                }
                above += 1;
                nimbus_store::Step::Next
            });
        if let Err(e) = read {
            tracing::error!("sqs: purging {}: {e}", s.prefix);
        }
        s.live = above;
        s.floor = s.floor.max(floor);
        s.sweep_from = s.sweep_from.max(floor);
        s.cursor = s.cursor.max(floor);
        s.purge_above = Some(above);
    }

    /// Up to `limit` positions of purged records still in the store, for the
    /// background deletion; takes them off the purged count. Empty when done.
    pub fn purged_chunk(&mut self, limit: usize) -> Vec<u64> {
        let Some(s) = self.stored.as_mut() else {
            return Vec::new();
        };
        if s.dead == 0 {
            return Vec::new();
        }
        let mut seqs = Vec::new();
        let mut groups = Vec::new();
        let floor = s.floor;
        let fifo = self.fifo;
        let read = s.store.scan(
            crate::state::MESSAGES,
            &s.message_key(s.dropped_to),
            |key, value| match s.seq_of(key) {
                Some(seq) if seq < floor => {
                    seqs.push(seq);
                    if fifo {
                        // Its group-order entry goes with the record.
                        let head = serde_json::from_slice::<crate::state::MessageHeadRecord>(value);
                        if let Some(g) = head.ok().and_then(|h| h.d.group) {
                            groups.push((seq, g));
                        }
                    }
                    if seqs.len() >= limit {
                        nimbus_store::Step::Stop
                    } else {
                        nimbus_store::Step::Next
                    }
                }
                _ => nimbus_store::Step::Stop,
            },
        );
        if let Err(e) = read {
            tracing::error!("sqs: deleting purged messages of {}: {e}", s.prefix);
            return Vec::new();
        }
        for (seq, g) in groups {
            s.doomed.insert(seq, Arc::from(g));
        }
        match seqs.last() {
            Some(&last) => {
                s.dropped_to = last + 1;
                s.dead = s.dead.saturating_sub(seqs.len() as u64);
            }
            // None left below the floor: whatever the count said, none are.
            None => {
                s.dead = 0;
                s.dirty = true;
            }
        }
        seqs
    }

    /// Whether purged records are still waiting for deletion.
    pub fn has_purged(&self) -> bool {
        self.stored.as_ref().is_some_and(|s| s.dead > 0)
    }

    /// Whether store deletions wait to ride along with a write.
    pub fn has_expired(&self) -> bool {
        !self.expired.is_empty()
            || !self.expired_dedup.is_empty()
            || !self.pending_deletes.is_empty()
    }

    /// Messages and dedup ids that [`QueueState::advance`] dropped since the last call.
    pub fn take_expired(&mut self) -> (Vec<u64>, Vec<String>) {
        (
            std::mem::take(&mut self.expired),
            std::mem::take(&mut self.expired_dedup),
        )
    }

    /// The next instant at which something hidden becomes visible.
    pub fn next_event(&self) -> Option<u64> {
        let a = self.inflight.first().map(|&(t, _)| t);
        let b = self.delayed.first().map(|&(t, _)| t);
        match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    /// Delivers a ready message of a standard queue: memory holds it while in flight.
    fn deliver_cold(&mut self, c: Cold, now: u64, visibility_ms: u64) -> Delivered {
        let mut msg = c.msg;
        msg.receive_count += 1;
        if msg.first_receive_ms == 0 {
            msg.first_receive_ms = now;
        }
        msg.last_receive_ms = now;
        let visible_at = now + visibility_ms;
        msg.loc = Loc::InFlight(visible_at);
        let out = Delivered {
            seq: c.seq,
            data: msg.data.clone(),
            receive_count: msg.receive_count,
            first_receive_ms: msg.first_receive_ms,
            enqueued_ms: msg.enqueued_ms,
            visible_at,
            record: Some(c.record),
        };
        let group = msg.data.group.clone();
        self.msgs.insert(c.seq, msg);
        self.index(c.seq, Loc::InFlight(visible_at), group.as_ref());
        if let Some(s) = self.stored.as_mut() {
            s.stateful.remove(&c.seq);
        }
        if let Some(g) = group {
            self.reindex_group(&g);
        }
        out
    }

    /// Finds FIFO groups memory does not know yet, reading the store from
    /// the cursor on up to the position where the first known group's turn
    /// is (so groups keep their order), or to the first send not yet durable.
    /// Each record is passed once; at most [`SWEEP_STEP`] per call. A group
    /// found takes its turn by its first message's position.
    fn discover(&mut self) {
        let target = self.avail.first_key_value().map_or(u64::MAX, |(t, _)| t.0);
        let Some(s) = self.stored.as_ref() else {
            return;
        };
        let from = s.cursor.max(s.sweep_from);
        if from >= target || from >= self.next_seq {
            return;
        }
        let mut next = from;
        let mut seen = 0;
        let mut found: Option<(u64, String, Vec<u8>)> = None;
        let read = s.store.scan(
            crate::state::MESSAGES,
            &s.message_key(from),
            |key, value| {
                let Some(seq) = s.seq_of(key) else {
                    return nimbus_store::Step::Stop;
                };
                if seq >= target {
                    return nimbus_store::Step::Stop;
                }
                if let Some(m) = self.msgs.get(seq) {
                    if matches!(m.loc, Loc::Pending { .. }) {
                        return nimbus_store::Step::Stop;
                    }
                    next = seq + 1;
                    return nimbus_store::Step::Next;
                }
                next = seq + 1;
                seen += 1;
                let head = serde_json::from_slice::<crate::state::MessageHeadRecord>(value);
                match head.ok().and_then(|h| h.d.group) {
                    Some(g) if !self.groups.contains_key(g.as_str()) => {
                        found = Some((seq, g, value.to_vec()));
                        nimbus_store::Step::Stop
                    }
                    _ if seen >= SWEEP_STEP => nimbus_store::Step::Stop,
                    _ => nimbus_store::Step::Next,
                }
            },
        );
        if let Err(e) = read {
            tracing::error!("sqs: reading the messages of {}: {e}", s.prefix);
            return;
        }
        let t = (found.as_ref().map_or(0, |f| f.0), self.next_ticket);
        let Some(s) = self.stored.as_mut() else {
            return;
        };
        s.cursor = s.cursor.max(next);
        if let Some((seq, g, value)) = found {
            s.prefetch = Some((seq, value));
            let g: Arc<str> = Arc::from(g);
            self.next_ticket += 1;
            self.groups.insert(
                g.clone(),
                Group {
                    unloaded: Some(seq),
                    ticket: Some(t),
                    ..Group::default()
                },
            );
            self.avail.insert(t, g);
        }
    }

    /// Reads up to `want` ready messages of FIFO group `g` from the store,
    /// from where its stored messages begin up to `limit` (or to a message
    /// memory holds, which is not ready), and moves that point past them.
    /// Expired ones found on the way are dropped.
    fn load(&mut self, g: &Arc<str>, want: usize, limit: u64, now: u64) -> Vec<Cold> {
        let Some(from) = self.groups.get(g).and_then(|grp| grp.unloaded) else {
            return Vec::new();
        };
        let prefetch = self.stored.as_mut().and_then(|s| s.prefetch.take());
        let Some(s) = self.stored.as_ref() else {
            return Vec::new();
        };
        let mut seqs = Vec::with_capacity(want);
        let mut next = None;
        s.group_positions(g, from.max(s.sweep_from), |seq| {
            if seq >= limit || seqs.len() >= want || self.msgs.get(seq).is_some() {
                next = Some(seq);
                return false;
            }
            seqs.push(seq);
            true
        });
        let mut found = Vec::with_capacity(seqs.len());
        let mut orphans = Vec::new();
        // One store view for the run (the discovery scan's record, if it is
        // the run's first, needs none).
        let prefetched = prefetch.filter(|(p, _)| seqs.first() == Some(p));
        let rest = &seqs[prefetched.is_some() as usize..];
        let keys: Vec<Vec<u8>> = rest.iter().map(|&seq| s.message_key(seq)).collect();
        let values = match s.store.get_many(crate::state::MESSAGES, &keys) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("sqs: reading the messages of {}: {e}", s.prefix);
                return Vec::new();
            }
        };
        let values = prefetched.map(|(_, v)| Some(v)).into_iter().chain(values);
        for (seq, value) in seqs.into_iter().zip(values) {
            match value {
                Some(v) => found.extend(s.cold(seq, &v, s.stateful.contains(&seq), Some(g))),
                // Its record was deleted: the entry is left over.
                None => orphans.push(s.order_key(g, seq)),
            }
        }
        for k in orphans {
            self.pending_deletes.push((crate::state::FIFO_ORDER, k));
        }
        if let Some(grp) = self.groups.get_mut(g) {
            grp.unloaded = next;
        }
        let retention_ms = self.attrs.message_retention_period as u64 * 1000;
        let mut out = Vec::with_capacity(found.len());
        for c in found {
            if c.msg.enqueued_ms.saturating_add(retention_ms) <= now {
                self.take_out(c.seq, Some(g.clone()));
                self.expired.push(c.seq);
            } else if c.delay_until > now {
                // Delayed, but memory did not know (a record of an older
                // release): it holds its group back until the delay ends.
                let mut msg = c.msg;
                msg.loc = Loc::Delayed(c.delay_until);
                self.msgs.insert(c.seq, msg);
                self.index(c.seq, Loc::Delayed(c.delay_until), Some(g));
                if let Some(grp) = self.groups.get_mut(g) {
                    grp.unloaded = Some(c.seq + 1);
                }
                break;
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The FIFO group whose turn it is and what it delivers next, in order:
    /// up to `want` messages before its first one in flight (or not yet
    /// deliverable), from memory first, then from the store.
    fn fifo_turn(&mut self, now: u64, want: usize) -> Option<(Arc<str>, Ticket, Vec<Turn>)> {
        self.discover();
        let (&ticket, g) = self.avail.first_key_value()?;
        let g = g.clone();
        let grp = self.groups.get(&g)?;
        let limit = grp.limit();
        let unloaded = grp.unloaded.unwrap_or(u64::MAX);
        let mut run: Vec<Turn> = grp
            .ready
            .iter()
            .copied()
            .take_while(|&seq| seq < limit && seq < unloaded)
            .take(want)
            .map(Turn::Held)
            .collect();
        if run.len() < want && unloaded < limit {
            let read = self.load(&g, want - run.len(), limit, now);
            run.extend(read.into_iter().map(Turn::Read));
        }
        Some((g, ticket, run))
    }

    fn deliver(&mut self, seq: u64, now: u64, visibility_ms: u64) -> Option<Delivered> {
        let msg = self.msgs.get_mut(seq)?;
        msg.receive_count += 1;
        if msg.first_receive_ms == 0 {
            msg.first_receive_ms = now;
        }
        msg.last_receive_ms = now;
        let out = Delivered {
            seq,
            data: msg.data.clone(),
            receive_count: msg.receive_count,
            first_receive_ms: msg.first_receive_ms,
            enqueued_ms: msg.enqueued_ms,
            visible_at: now + visibility_ms,
            record: None,
        };
        self.set_loc(seq, Loc::InFlight(now + visibility_ms));
        Some(out)
    }

    /// Would receiving `seq` once more exceed the redrive limit?
    fn over_limit(&self, seq: u64, max_receive_count: Option<u32>) -> bool {
        match (max_receive_count, self.msgs.get(seq)) {
            (Some(limit), Some(m)) => m.receive_count >= limit,
            _ => false,
        }
    }

    /// Receives up to `max` messages. Messages whose receive count would pass
    /// `max_receive_count` are taken out instead and returned for the
    /// dead-letter queue.
    pub fn receive(
        &mut self,
        now: u64,
        max: usize,
        visibility_ms: u64,
        max_receive_count: Option<u32>,
    ) -> (Vec<Delivered>, Vec<(u64, Msg)>) {
        let mut out = Vec::new();
        let mut dead = Vec::new();
        if !self.fifo {
            while out.len() < max {
                let found = self.next_ready(now, max - out.len());
                if found.is_empty() {
                    break;
                }
                for c in found {
                    if max_receive_count.is_some_and(|limit| c.msg.receive_count >= limit) {
                        self.take_out(c.seq, None);
                        dead.push((c.seq, c.msg));
                    } else {
                        out.push(self.deliver_cold(c, now, visibility_ms));
                    }
                }
            }
            return (out, dead);
        }
        while out.len() < max {
            let Some((g, ticket, run)) = self.fifo_turn(now, max - out.len()) else {
                break;
            };
            for turn in run {
                match turn {
                    Turn::Held(seq) if self.over_limit(seq, max_receive_count) => {
                        if let Some(m) = self.remove(seq) {
                            dead.push((seq, m));
                        }
                    }
                    Turn::Held(seq) => out.extend(self.deliver(seq, now, visibility_ms)),
                    Turn::Read(c)
                        if max_receive_count.is_some_and(|l| c.msg.receive_count >= l) =>
                    {
                        self.take_out(c.seq, Some(g.clone()));
                        dead.push((c.seq, c.msg));
                    }
                    Turn::Read(c) => out.push(self.deliver_cold(c, now, visibility_ms)),
                }
            }
            self.reindex_group(&g);
            if self.avail.first_key_value().map(|(t, _)| *t) == Some(ticket) {
                // The group is still first in line: only possible when the
                // response is full, or when the group is stuck; stop either way.
                break;
            }
        }
        (out, dead)
    }

    /// Takes up to `max` deliverable messages out of the queue (move tasks).
    pub fn take_ready(&mut self, now: u64, max: usize) -> Vec<(u64, Msg)> {
        let mut out = Vec::new();
        if !self.fifo {
            for c in self.next_ready(now, max) {
                self.take_out(c.seq, None);
                out.push((c.seq, c.msg));
            }
            return out;
        }
        while out.len() < max {
            let Some((g, ticket, run)) = self.fifo_turn(now, max - out.len()) else {
                break;
            };
            let stuck = run.is_empty();
            for turn in run {
                match turn {
                    Turn::Held(seq) => out.extend(self.remove(seq).map(|m| (seq, m))),
                    Turn::Read(c) => {
                        self.take_out(c.seq, Some(g.clone()));
                        out.push((c.seq, c.msg));
                    }
                }
            }
            self.reindex_group(&g);
            if stuck && self.avail.first_key_value().map(|(t, _)| *t) == Some(ticket) {
                break;
            }
        }
        out
    }

    /// Puts back messages that [`QueueState::take_ready`] took but could not
    /// move: their records were never deleted, so they are ready in the store.
    pub fn put_back(&mut self, items: Vec<(u64, Msg)>) {
        let Some(s) = self.stored.as_mut() else {
            return;
        };
        s.live += items.len() as u64;
        if !self.fifo {
            // Taken from behind the cursor: ready there again.
            self.ready.extend(items.into_iter().map(|(seq, _)| seq));
            return;
        }
        for (seq, m) in items {
            if let Some(s) = self.stored.as_mut() {
                s.doomed.remove(&seq);
                if m.receive_count > 0 {
                    s.stateful.insert(seq);
                }
            }
            if let Some(g) = &m.data.group {
                self.note_stored(g, seq);
            }
        }
    }

    pub fn change_visibility(
        &mut self,
        seq: u64,
        receive_count: u32,
        message_id: &[u8; 16],
        now: u64,
        visibility_ms: u64,
    ) -> Result<u64, VisibilityError> {
        let Some(msg) = self.msgs.get(seq) else {
            // A standard queue's ready message is in the store, not in memory.
            let exists = self.stored.as_ref().is_some_and(|s| {
                seq >= s.sweep_from && s.read(seq).is_some_and(|c| &c.msg.data.id == message_id)
            });
            return Err(if exists {
                VisibilityError::NotInFlight
            } else {
                VisibilityError::Gone
            });
        };
        if &msg.data.id_bytes() != message_id {
            return Err(VisibilityError::Gone);
        }
        let in_flight = matches!(msg.loc, Loc::InFlight(t) if t > now);
        if msg.receive_count != receive_count {
            return Err(if in_flight {
                VisibilityError::Gone
            } else {
                VisibilityError::NotInFlight
            });
        }
        if !in_flight {
            return Err(VisibilityError::NotInFlight);
        }
        let deadline = now + visibility_ms;
        if deadline.saturating_sub(msg.last_receive_ms)
            > crate::attributes::MAX_VISIBILITY_TIMEOUT as u64 * 1000
        {
            return Err(VisibilityError::TooLong);
        }
        self.set_loc(seq, Loc::InFlight(deadline));
        Ok(deadline)
    }

    /// Deletes by receipt. `Ok(None)`: the message is already gone (SQS
    /// accepts that). FIFO queues refuse a handle whose receive is over.
    pub fn delete(
        &mut self,
        seq: u64,
        receive_count: u32,
        message_id: &[u8; 16],
        now: u64,
    ) -> Result<Option<Msg>, ()> {
        let Some(msg) = self.msgs.get(seq) else {
            // A standard queue's ready message: delete it if the handle's
            // message is still the one at that position.
            let Some(s) = self.stored.as_ref() else {
                return Ok(None);
            };
            if seq < s.sweep_from || s.read(seq).is_none_or(|c| &c.msg.data.id != message_id) {
                return Ok(None);
            }
            if self.fifo {
                // Ready again: the receive the handle is from is over.
                return Err(());
            }
            return Ok(self.remove_stored(seq));
        };
        if &msg.data.id_bytes() != message_id {
            return Ok(None);
        }
        if self.fifo {
            let current = msg.receive_count == receive_count
                && matches!(msg.loc, Loc::InFlight(t) if t > now);
            if !current {
                return Err(());
            }
        }
        Ok(self.remove(seq))
    }

    /// PurgeQueue: removes every committed message (see [`QueueState::purge_stored`]).
    pub fn purge(&mut self) {
        self.purge_stored();
    }

    /// The sends a request's deduplication ids stand for while their window
    /// lasts (`None` for a new id): those not yet durable from memory, the
    /// others from the store, all read in one view. An id that occurs twice
    /// in the request is answered by [`QueueState::dedup_pending`] for its
    /// second occurrence, once the first is in memory.
    pub fn dedup_lookup(&self, keys: &[&str], now: u64) -> Vec<Option<DedupEntry>> {
        let Some(s) = self.stored.as_ref() else {
            return keys.iter().map(|k| self.dedup_pending(k, now)).collect();
        };
        let stored: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| format!("{}{k}", s.prefix).into_bytes())
            .collect();
        let values = match s.store.get_many(crate::state::DEDUP, &stored) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("sqs: reading deduplication ids of {}: {e}", s.prefix);
                vec![None; keys.len()]
            }
        };
        keys.iter()
            .zip(values)
            .map(|(k, v)| {
                if let Some(e) = self.dedup.get(*k) {
                    return (e.expires_ms > now).then(|| e.clone());
                }
                let r = serde_json::from_slice::<crate::state::DedupRecord>(&v?).ok()?;
                (r.exp > now).then(|| DedupEntry {
                    message_id: r.id,
                    seq: r.seq,
                    expires_ms: r.exp,
                    ticket: CommitTicket::committed(),
                })
            })
            .collect()
    }

    /// A send not yet durable that a deduplication id stands for.
    pub fn dedup_pending(&self, key: &str, now: u64) -> Option<DedupEntry> {
        self.dedup.get(key).filter(|e| e.expires_ms > now).cloned()
    }

    /// One step of a pass over the queue's deduplication records, deleting
    /// the expired ones: at most [`SWEEP_STEP`] records per touch of the
    /// queue until the pass reaches the end. The next pass is due when the
    /// earliest record this one left expires, or a window after this one
    /// began (records written since expire no earlier), so a queue reads
    /// each record about once in its life and memory holds none.
    fn sweep_dedup(&mut self, now: u64) {
        let Some(s) = self.stored.as_ref() else {
            return;
        };
        let prefix = s.prefix.as_bytes();
        if self.dedup_sweep.is_none() {
            self.dedup_pass = (now, u64::MAX);
        }
        let from = self.dedup_sweep.clone().unwrap_or_else(|| prefix.to_vec());
        let mut seen = 0;
        let mut next = None;
        let mut expired = Vec::new();
        let mut earliest = self.dedup_pass.1;
        let read = s.store.scan(crate::state::DEDUP, &from, |key, value| {
            let Some(id) = key.strip_prefix(prefix) else {
                return nimbus_store::Step::Stop;
            };
            if seen >= SWEEP_STEP {
                next = Some(key.to_vec());
                return nimbus_store::Step::Stop;
            }
            seen += 1;
            let exp =
                serde_json::from_slice::<crate::state::DedupRecord>(value).map_or(0, |r| r.exp);
            if exp > now {
                earliest = earliest.min(exp);
                return nimbus_store::Step::Next;
            }
            let id = String::from_utf8_lossy(id).into_owned();
            // An id being sent again right now keeps its record.
            if !self.dedup.contains_key(&id) {
                expired.push(id);
            }
            nimbus_store::Step::Next
        });
        if let Err(e) = read {
            tracing::error!("sqs: sweeping deduplication ids of {}: {e}", s.prefix);
            return;
        }
        self.expired_dedup.extend(expired);
        self.dedup_pass.1 = earliest;
        if next.is_none() {
            self.dedup_sweep_at = earliest.min(self.dedup_pass.0 + DEDUP_WINDOW_MS);
        }
        self.dedup_sweep = next;
    }

    /// A send with a deduplication id, until it is durable ([`QueueState::dedup_settled`]).
    pub fn dedup_insert(&mut self, key: String, entry: DedupEntry) {
        // Its record is written again: a deletion the sweep decided must not follow it.
        self.expired_dedup.retain(|d| d != &key);
        self.dedup.insert(key, entry);
    }

    /// The send is durable: the store has its id from now on.
    pub fn dedup_settled(&mut self, key: &str, seq: u64) {
        self.dedup_remove_if(key, seq);
    }

    pub fn dedup_remove_if(&mut self, key: &str, seq: u64) {
        if self.dedup.get(key).map(|e| e.seq) == Some(seq) {
            self.dedup.remove(key);
        }
    }

    pub fn attempt_get(&self, id: &str, now: u64) -> Option<Vec<serde_json::Value>> {
        let a = self.attempts.get(id).filter(|a| a.expires_ms > now)?;
        let still = a.items.iter().all(|(seq, rc)| {
            self.msgs.get(*seq).is_some_and(|m| {
                m.receive_count == *rc && matches!(m.loc, Loc::InFlight(t) if t > now)
            })
        });
        still.then(|| a.response.clone())
    }

    pub fn attempt_insert(&mut self, id: String, attempt: Attempt) {
        self.attempts_order
            .push_back((attempt.expires_ms, id.clone()));
        self.attempts.insert(id, attempt);
    }
}

/// One queue: its identity and its lock-protected state.
pub struct Queue {
    pub key: QueueKey,
    pub arn: String,
    /// Identity of this incarnation of the queue; prefixes its store records
    /// and is carried in receipt handles.
    pub id: [u8; 16],
    pub id_hex: String,
    pub fifo: bool,
    pub created_s: u64,
    /// Deduplication scope as set at creation: SQS keeps deduplicating the
    /// way the queue was created even when the attribute changes later.
    pub dedup_by_group: bool,
    pub notify: Notify,
    pub deleted: AtomicBool,
    /// A purge's records are being deleted in the background (`cleanup`).
    pub draining: AtomicBool,
    /// Serializes metadata writes (attributes, tags, purge, delete) across
    /// their store commit, so the record on disk is always the latest one.
    pub meta: tokio::sync::Mutex<()>,
    state: Mutex<QueueState>,
    /// Where the queue's messages are until its first use reads them
    /// (`None` once read, and for a queue made by this process).
    unread: Mutex<Option<nimbus_store::Store>>,
    /// What its CloudWatch metrics count (see `crate::metrics`).
    pub counters: crate::metrics::QueueCounters,
}

impl Queue {
    pub fn new(
        key: QueueKey,
        id: [u8; 16],
        fifo: bool,
        created_s: u64,
        dedup_by_group: bool,
        mut state: QueueState,
        store: &Store,
    ) -> Queue {
        let id_hex = hex::encode(id);
        state.attach(store.clone(), &id_hex);
        Queue {
            arn: key.arn(),
            key,
            id,
            id_hex,
            fifo,
            created_s,
            dedup_by_group,
            notify: Notify::new(),
            deleted: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            meta: tokio::sync::Mutex::new(()),
            state: Mutex::new(state),
            unread: Mutex::new(None),
            counters: crate::metrics::QueueCounters::new(true),
        }
    }

    /// A queue opened from the store: its messages are read at its first use.
    pub fn with_stored_messages(self, store: nimbus_store::Store) -> Queue {
        *self.unread.lock().unwrap_or_else(|e| e.into_inner()) = Some(store);
        // Not used since nimbus started: not active for its metrics yet.
        self.counters.untouch();
        self
    }

    /// Whether its messages have been read (its first use happened).
    pub fn is_loaded(&self) -> bool {
        self.unread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// The queue's state. Held only for short, await-free sections (the first
    /// lock of a queue opened from the store reads its messages).
    pub fn lock(&self) -> MutexGuard<'_, QueueState> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let unread = self.unread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(store) = unread {
            // On this worker thread, not in block_in_place: that would retire
            // the thread into the blocking pool, where it exits when idle, and
            // instance processes started from it die with their parent thread
            // (see nimbus_runtime::process::spawn_init).
            crate::load_messages(self, &store, &mut st);
        }
        st
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::SeqCst)
    }

    pub fn message_key(&self, seq: u64) -> Vec<u8> {
        format!("{}/{:020}", self.id_hex, seq).into_bytes()
    }

    /// A FIFO message's entry in its group's order.
    pub fn order_key(&self, group: &str, seq: u64) -> Vec<u8> {
        order_key(&format!("{}/", self.id_hex), group, seq)
    }

    pub fn dedup_key(&self, key: &str) -> Vec<u8> {
        format!("{}/{}", self.id_hex, key).into_bytes()
    }

    pub fn url(&self, host: &str) -> String {
        crate::names::queue_url(host, &self.key.account, &self.key.name)
    }

    pub fn sequence_number(seq: u64) -> String {
        format!("{:020}", SEQUENCE_BASE + seq)
    }
}

impl PartialEq for Msg {
    fn eq(&self, other: &Self) -> bool {
        self.data.id == other.data.id && self.receive_count == other.receive_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(id: u8, group: Option<&str>) -> MsgHead {
        MsgHead {
            id: [id; 16],
            group: group.map(Arc::from),
        }
    }

    /// A standard queue on a store of its own (its ready messages live there).
    fn standard(attrs: QueueAttrs) -> (QueueState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        let mut q = QueueState::new(attrs, false, 0);
        q.attach(store, "q");
        (q, dir)
    }

    /// A FIFO queue on a store of its own.
    fn fifo() -> (QueueState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        let mut q = QueueState::new(QueueAttrs::default(), true, 0);
        q.attach(store, "q");
        (q, dir)
    }

    /// Sends as the handlers do: pending, with its record written.
    fn write_pending(q: &mut QueueState, id: u8, group: Option<&str>, delay_until: u64) -> u64 {
        let s = q.insert_pending(data(id, group), 0, 0, 1000, delay_until);
        let st = q.stored.as_ref().unwrap();
        let (store, key) = (st.store.clone(), st.message_key(s));
        let uuid = uuid::Uuid::from_bytes([id; 16]);
        let g = group.map(|g| format!(r#","g":"{g}""#)).unwrap_or_default();
        let mut batch = nimbus_store::Batch::new();
        batch.put(
            crate::state::MESSAGES,
            key,
            format!(r#"{{"v":1,"d":{{"id":"{uuid}"{g}}},"enq":1000,"du":{delay_until}}}"#),
        );
        q.seal(&mut batch);
        store.commit_blocking(batch).unwrap();
        s
    }

    /// Sends as the handlers do: pending, its record written, then settled.
    fn send_delayed(q: &mut QueueState, id: u8, group: Option<&str>, delay_until: u64) -> u64 {
        let s = write_pending(q, id, group, delay_until);
        q.finish_pending(s, 1000);
        s
    }

    fn send(q: &mut QueueState, id: u8, group: Option<&str>) -> u64 {
        send_delayed(q, id, group, 0)
    }

    /// Receives as the handler does: a standard queue's receive state is
    /// written to the store (memory lets go of it once the message surfaces).
    fn receive(
        q: &mut QueueState,
        now: u64,
        max: usize,
        vt: u64,
        mrc: Option<u32>,
    ) -> (Vec<Delivered>, Vec<(u64, Msg)>) {
        let (d, dead) = q.receive(now, max, vt, mrc);
        if let Some(st) = &q.stored {
            let mut batch = nimbus_store::Batch::new();
            for x in &d {
                batch.put(
                    crate::state::MESSAGE_STATE,
                    st.message_key(x.seq),
                    crate::state::to_json(&crate::state::StateRecord {
                        v: 1,
                        rc: x.receive_count,
                        fr: x.first_receive_ms,
                        lr: now,
                        vis: x.visible_at,
                        id: None,
                        enq: 0,
                        d: false,
                    }),
                );
            }
            st.store.commit_blocking(batch).unwrap();
        }
        (d, dead)
    }

    fn bodies(d: &[Delivered]) -> Vec<String> {
        d.iter().map(|x| format!("m{}", x.data.id[0])).collect()
    }

    #[test]
    fn standard_order_visibility_and_counts() {
        let (mut q, _dir) = standard(QueueAttrs::default());
        send(&mut q, 1, None);
        send(&mut q, 2, None);
        assert_eq!(q.counts(), (2, 0, 0));
        let (d, _) = receive(&mut q, 1000, 1, 30_000, None);
        assert_eq!(bodies(&d), ["m1"]);
        assert_eq!(q.counts(), (1, 1, 0));
        assert_eq!(q.next_event(), Some(31_000));
        q.advance(31_000);
        assert_eq!(q.counts(), (2, 0, 0));
        let (d, _) = receive(&mut q, 31_000, 10, 30_000, None);
        assert_eq!(bodies(&d), ["m1", "m2"]);
        assert_eq!(d[0].receive_count, 2);
        assert_eq!(d[0].first_receive_ms, 1000);
    }

    #[test]
    fn pending_is_invisible_until_finished() {
        let (mut q, _dir) = fifo();
        let a = write_pending(&mut q, 1, Some("g"), 0);
        let b = write_pending(&mut q, 2, Some("g"), 0);
        q.finish_pending(b, 1000);
        // m2 is durable but m1 ahead of it is not: nothing may be delivered yet.
        assert!(q.receive(1000, 10, 1000, None).0.is_empty());
        q.finish_pending(a, 1000);
        assert_eq!(bodies(&q.receive(1000, 10, 1000, None).0), ["m1", "m2"]);
    }

    #[test]
    fn fifo_group_blocking_and_turns() {
        let (mut q, _dir) = fifo();
        send(&mut q, 1, Some("g1"));
        send(&mut q, 2, Some("g1"));
        send(&mut q, 3, Some("g2"));
        let (d, _) = q.receive(1000, 2, 30_000, None);
        assert_eq!(bodies(&d), ["m1", "m2"]);
        // g1 is in flight: only g2 is deliverable.
        let (d2, _) = q.receive(1000, 10, 30_000, None);
        assert_eq!(bodies(&d2), ["m3"]);
        assert!(q.receive(1000, 10, 30_000, None).0.is_empty());
        assert_eq!(q.counts(), (0, 3, 0));
        // m1 comes back while m2 is still in flight: m1 alone is deliverable.
        let id1 = d[0].data.id_bytes();
        q.change_visibility(d[0].seq, 1, &id1, 1000, 0).unwrap();
        q.advance(1000);
        let (d3, _) = q.receive(1000, 10, 30_000, None);
        assert_eq!(bodies(&d3), ["m1"]);
    }

    #[test]
    fn redrive_takes_messages_out() {
        let (mut q, _dir) = standard(QueueAttrs::default());
        send(&mut q, 1, None);
        let (d, dead) = receive(&mut q, 1000, 1, 0, Some(1));
        assert_eq!(d.len(), 1);
        assert!(dead.is_empty());
        q.advance(1000);
        let (d, dead) = receive(&mut q, 1000, 1, 0, Some(1));
        assert!(d.is_empty());
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].1.receive_count, 1);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn retention_and_delay() {
        let attrs = QueueAttrs {
            message_retention_period: 60,
            ..Default::default()
        };
        let (mut q, _dir) = standard(attrs);
        let s = send_delayed(&mut q, 1, None, 5000);
        assert_eq!(q.counts(), (0, 0, 1));
        q.advance(5000);
        assert_eq!(q.counts(), (1, 0, 0));
        q.advance(61_000);
        assert_eq!(q.counts(), (0, 0, 0));
        assert_eq!(q.take_expired().0, vec![s]);
    }

    #[test]
    fn fifo_delete_needs_current_receipt() {
        let (mut q, _dir) = fifo();
        send(&mut q, 1, Some("g"));
        let (d, _) = q.receive(1000, 1, 1000, None);
        let id = d[0].data.id_bytes();
        q.advance(2000);
        assert!(q.delete(d[0].seq, 1, &id, 2000).is_err());
        let (d, _) = q.receive(2000, 1, 1000, None);
        assert!(q.delete(d[0].seq, 2, &id, 2000).unwrap().is_some());
        // The handler deletes the record in the same locked section.
        let st = q.stored.as_ref().unwrap();
        let (store, key) = (st.store.clone(), st.message_key(d[0].seq));
        let mut batch = nimbus_store::Batch::new();
        batch.delete(crate::state::MESSAGES, key);
        q.seal(&mut batch);
        store.commit_blocking(batch).unwrap();
        assert_eq!(q.delete(d[0].seq, 2, &id, 2000), Ok(None));
        assert_eq!(q.counts(), (0, 0, 0));
        // Its group-order entry went with the record.
        let left = store.scan_prefix(crate::state::FIFO_ORDER, b"q/").unwrap();
        assert!(left.is_empty(), "{left:?}");
    }
}
