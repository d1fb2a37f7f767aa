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
        }
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
        let key = self.message_key(seq);
        let value = match self.store.get(crate::state::MESSAGES, &key) {
            Ok(v) => v?,
            Err(e) => {
                tracing::error!("sqs: reading message {seq}: {e}");
                return None;
            }
        };
        self.cold(seq, &value, true)
    }

    /// Decodes a record read from the store, with its state record if the
    /// message was received before.
    fn cold(&self, seq: u64, value: &[u8], with_state: bool) -> Option<Cold> {
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
            msg: Msg {
                data: MsgHead { id, group: None },
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

/// A ready message of a standard queue, read from the store.
struct Cold {
    seq: u64,
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

#[derive(Debug, Default)]
struct Group {
    ready: BTreeSet<u64>,
    inflight: BTreeSet<u64>,
    blocked: BTreeSet<u64>,
    ticket: Option<u64>,
}

impl Group {
    fn available(&self) -> bool {
        match self.ready.first() {
            None => false,
            Some(&head) => {
                head < self.inflight.first().copied().unwrap_or(u64::MAX)
                    && head < self.blocked.first().copied().unwrap_or(u64::MAX)
            }
        }
    }

    fn limit(&self) -> u64 {
        self.inflight
            .first()
            .copied()
            .unwrap_or(u64::MAX)
            .min(self.blocked.first().copied().unwrap_or(u64::MAX))
    }

    fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.inflight.is_empty() && self.blocked.is_empty()
    }
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
    by_age: BTreeSet<(u64, u64)>,
    ready: BTreeSet<u64>,
    groups: HashMap<Arc<str>, Group>,
    avail: BTreeMap<u64, Arc<str>>,
    next_ticket: u64,
    ready_count: usize,
    inflight: BTreeSet<(u64, u64)>,
    delayed: BTreeSet<(u64, u64)>,
    dedup: HashMap<String, DedupEntry>,
    dedup_order: VecDeque<(u64, String)>,
    attempts: HashMap<String, Attempt>,
    attempts_order: VecDeque<(u64, String)>,
    /// Store deletions decided lazily (expired messages, expired dedup ids);
    /// they ride along with the queue's next write.
    pub pending_deletes: Vec<(&'static str, Vec<u8>)>,
    /// Message keys of expired messages, for the handler to turn into deletes.
    expired: Vec<u64>,
    expired_dedup: Vec<String>,
    /// A standard queue's store (always set for standard queues, see [`Stored`]).
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
            by_age: BTreeSet::new(),
            ready: BTreeSet::new(),
            groups: HashMap::new(),
            avail: BTreeMap::new(),
            next_ticket: 0,
            ready_count: 0,
            inflight: BTreeSet::new(),
            delayed: BTreeSet::new(),
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            attempts: HashMap::new(),
            attempts_order: VecDeque::new(),
            pending_deletes: Vec::new(),
            expired: Vec::new(),
            expired_dedup: Vec::new(),
            stored: None,
        }
    }

    /// Gives a standard queue its store: its ready messages live there.
    pub fn attach(&mut self, store: Store, id_hex: &str) {
        if !self.fifo {
            self.stored = Some(Stored::new(store, id_hex));
        }
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

    pub fn counts(&self) -> (usize, usize, usize) {
        let hidden = self.inflight.len() + self.delayed.len();
        let visible = match &self.stored {
            None => self.ready_count,
            Some(s) => (s.live.saturating_sub(s.pending) as usize).saturating_sub(hidden),
        };
        (visible, self.inflight.len(), self.delayed.len())
    }

    /// The count record a batch for this standard queue must carry: its
    /// stored count moved by the message records the batch puts (only new
    /// messages) and deletes (only existing ones). `None` when the batch
    /// changes no message of the queue, or for FIFO queues.
    pub fn count_record(&mut self, batch: &nimbus_store::Batch) -> Option<Vec<u8>> {
        let next = self.next_seq;
        let s = self.stored.as_mut()?;
        let (puts, deletes) = batch.count_keys(crate::state::MESSAGES, s.prefix.as_bytes());
        if puts == 0 && deletes == 0 && !s.dirty && s.purge_above.is_none() {
            return None;
        }
        s.records = (s.records + puts).saturating_sub(deletes);
        s.dirty = false;
        if let Some(above) = s.purge_above.take() {
            s.dead = s.records.saturating_sub(above);
        }
        Some(crate::state::to_json(&crate::state::CountRecord {
            v: crate::state::RECORD_VERSION,
            n: s.records,
            next,
            dead: s.dead,
            floor: s.floor,
        }))
    }

    /// A batch carrying `puts` new message records failed: the store never
    /// had them.
    pub fn unsubmit(&mut self, puts: u64) {
        if let Some(s) = self.stored.as_mut() {
            s.records = s.records.saturating_sub(puts);
        }
    }

    /// Opens a standard queue on its stored count and hidden messages (see
    /// `crate::load_messages`).
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
        s.oldest_enq = 0;
        s.stateful = stateful;
        for (seq, msg) in hidden {
            if seq < c.floor {
                continue;
            }
            let loc = msg.loc;
            self.msgs.insert(seq, msg);
            self.index(seq, loc, None);
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
                } else {
                    self.ready_count = self.ready_count.saturating_sub(1);
                }
            }
            Loc::Delayed(t) => {
                self.delayed.remove(&(t, seq));
            }
            Loc::InFlight(t) => {
                self.inflight.remove(&(t, seq));
            }
        }
        if self.fifo {
            if let Some(g) = group {
                let grp = self.group_mut(g);
                match loc {
                    Loc::Pending { .. } | Loc::Delayed(_) => {
                        grp.blocked.remove(&seq);
                    }
                    Loc::Ready => {
                        grp.ready.remove(&seq);
                    }
                    Loc::InFlight(_) => {
                        grp.inflight.remove(&seq);
                    }
                }
            }
        }
    }

    fn index(&mut self, seq: u64, loc: Loc, group: Option<&Arc<str>>) {
        match loc {
            Loc::Pending { .. } => {}
            Loc::Ready => {
                if !self.fifo {
                    self.ready.insert(seq);
                } else {
                    self.ready_count += 1;
                }
            }
            Loc::Delayed(t) => {
                self.delayed.insert((t, seq));
            }
            Loc::InFlight(t) => {
                self.inflight.insert((t, seq));
            }
        }
        if self.fifo {
            if let Some(g) = group {
                let grp = self.group_mut(g);
                match loc {
                    Loc::Pending { .. } | Loc::Delayed(_) => {
                        grp.blocked.insert(seq);
                    }
                    Loc::Ready => {
                        grp.ready.insert(seq);
                    }
                    Loc::InFlight(_) => {
                        grp.inflight.insert(seq);
                    }
                }
            }
        }
    }

    /// Puts a group in (or takes it out of) the turn order after a change.
    /// A group that becomes deliverable queues up behind the others.
    fn reindex_group(&mut self, g: &Arc<str>) {
        let Some(grp) = self.groups.get(g) else {
            return;
        };
        let available = grp.available();
        let ticket = grp.ticket;
        let empty = grp.is_empty();
        match (available, ticket) {
            (true, None) => {
                let t = self.next_ticket;
                self.next_ticket += 1;
                self.avail.insert(t, g.clone());
                if let Some(grp) = self.groups.get_mut(g) {
                    grp.ticket = Some(t);
                }
            }
            (false, Some(t)) => {
                self.avail.remove(&t);
                if let Some(grp) = self.groups.get_mut(g) {
                    grp.ticket = None;
                }
            }
            _ => {}
        }
        if empty && !available {
            self.groups.remove(g);
        }
    }

    fn set_loc(&mut self, seq: u64, loc: Loc) {
        if loc == Loc::Ready && self.stored.is_some() {
            self.surface(seq);
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

    /// Removes a message entirely and returns it (for a standard queue, also
    /// one memory does not hold: it is read from the store).
    pub fn remove(&mut self, seq: u64) -> Option<Msg> {
        if self.stored.is_some() {
            return self.remove_stored(seq);
        }
        let msg = self.msgs.remove(seq)?;
        let group = if self.fifo {
            msg.data.group.clone()
        } else {
            None
        };
        self.unindex(seq, msg.loc, group.as_ref());
        self.by_age.remove(&(msg.enqueued_ms, seq));
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
        match self.stored.as_mut() {
            None => {
                self.by_age.insert((enqueued_ms, seq));
            }
            Some(s) => {
                s.live += 1;
                s.pending += 1;
                if s.oldest_enq == u64::MAX {
                    s.oldest_enq = enqueued_ms;
                }
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

    /// Rebuilds a message from the store at startup.
    pub fn restore(&mut self, seq: u64, msg: Msg) {
        let loc = msg.loc;
        let group = if self.fifo {
            msg.data.group.clone()
        } else {
            None
        };
        self.by_age.insert((msg.enqueued_ms, seq));
        self.msgs.insert(seq, msg);
        self.index(seq, loc, group.as_ref());
        if let Some(g) = group {
            self.reindex_group(&g);
        }
        self.next_seq = self.next_seq.max(seq + 1);
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
        if self.stored.is_some() {
            self.sweep(now, retention_ms);
        }
        while let Some(&(enq, seq)) = self.by_age.first() {
            if enq.saturating_add(retention_ms) > now {
                break;
            }
            if matches!(self.msgs.get(seq).map(|m| m.loc), Some(Loc::Pending { .. })) {
                break;
            }
            self.remove(seq);
            self.expired.push(seq);
        }
        while let Some((exp, _)) = self.dedup_order.front() {
            if *exp > now {
                break;
            }
            if let Some((exp, key)) = self.dedup_order.pop_front() {
                if self.dedup.get(&key).map(|e| e.expires_ms) == Some(exp) {
                    self.dedup.remove(&key);
                    self.expired_dedup.push(key);
                }
            }
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

    /// Retention for a standard queue: expires records from the front of the
    /// store, in position order, up to the first one still within the
    /// period (at most [`SWEEP_STEP`] per call). A message moved in from
    /// another queue keeps its older enqueue time: it is never delivered
    /// after its period, but leaves the count only when the sweep reaches it.
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
            let enq = match serde_json::from_slice::<crate::state::MessageHeadRecord>(value) {
                Ok(r) => r.enq,
                Err(_) => 0,
            };
            if enq.saturating_add(retention_ms) > now {
                next_oldest = enq;
                return nimbus_store::Step::Stop;
            }
            expired.push(seq);
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
        let last = expired.last().copied();
        for seq in expired {
            if self.remove_stored_known(seq) {
                self.expired.push(seq);
            }
        }
        if let Some(s) = self.stored.as_mut() {
            if let Some(l) = last {
                s.sweep_from = l + 1;
            }
            // Held back by a pending send or the step limit: look again next time.
            s.oldest_enq = if held_back { 0 } else { next_oldest };
        }
    }

    /// Takes a standard queue's message out without reading its record
    /// (the caller has read it); false if it is already gone.
    fn remove_stored_known(&mut self, seq: u64) -> bool {
        if let Some(m) = self.msgs.remove(seq) {
            self.unindex(seq, m.loc, None);
        } else {
            self.ready.remove(&seq);
        }
        if let Some(s) = self.stored.as_mut() {
            s.live = s.live.saturating_sub(1);
        }
        true
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
                        if let Some(c) = s.cold(seq, value, s.stateful.contains(&seq)) {
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
                    if self.remove_stored_known(c.seq) {
                        self.expired.push(c.seq);
                    }
                } else {
                    out.push(c);
                }
            }
        }
        out
    }

    /// PurgeQueue on a standard queue: every message below a floor (the first
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
                self.unindex(seq, m.loc, None);
            }
        }
        self.ready = self.ready.split_off(&floor);
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
        let floor = s.floor;
        let read = s.store.scan(
            crate::state::MESSAGES,
            &s.message_key(s.dropped_to),
            |key, _| match s.seq_of(key) {
                Some(seq) if seq < floor => {
                    seqs.push(seq);
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
        self.msgs.insert(c.seq, msg);
        self.index(c.seq, Loc::InFlight(visible_at), None);
        out
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
                        self.remove_stored_known(c.seq);
                        dead.push((c.seq, c.msg));
                    } else {
                        out.push(self.deliver_cold(c, now, visibility_ms));
                    }
                }
            }
            return (out, dead);
        }
        while out.len() < max {
            let Some((&ticket, g)) = self.avail.first_key_value() else {
                break;
            };
            let g = g.clone();
            // Messages before the group's first in-flight (or not yet
            // deliverable) message may go out together, in order.
            let limit = self.groups.get(&g).map_or(0, Group::limit);
            while out.len() < max {
                let Some(grp) = self.groups.get(&g) else {
                    break;
                };
                let Some(&head) = grp.ready.first() else {
                    break;
                };
                if head >= limit {
                    break;
                }
                if self.over_limit(head, max_receive_count) {
                    if let Some(m) = self.remove(head) {
                        dead.push((head, m));
                    }
                    continue;
                }
                match self.deliver(head, now, visibility_ms) {
                    Some(d) => out.push(d),
                    None => break,
                }
            }
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
        if self.stored.is_some() {
            let found = self.next_ready(now, max);
            let mut out = Vec::with_capacity(found.len());
            for c in found {
                self.remove_stored_known(c.seq);
                out.push((c.seq, c.msg));
            }
            return out;
        }
        let mut out = Vec::new();
        while out.len() < max {
            let seq = if self.fifo {
                let Some((_, g)) = self.avail.first_key_value() else {
                    break;
                };
                match self
                    .groups
                    .get(g)
                    .and_then(|grp| grp.ready.first().copied())
                {
                    Some(s) => s,
                    None => break,
                }
            } else {
                match self.ready.first() {
                    Some(s) => *s,
                    None => break,
                }
            };
            match self.remove(seq) {
                Some(m) => out.push((seq, m)),
                None => break,
            }
        }
        out
    }

    /// Puts back messages that [`QueueState::take_ready`] took but could not move.
    pub fn put_back(&mut self, items: Vec<(u64, Msg)>) {
        if let Some(s) = self.stored.as_mut() {
            // Taken from behind the cursor: ready there again.
            s.live += items.len() as u64;
            self.ready.extend(items.into_iter().map(|(seq, _)| seq));
            return;
        }
        for (seq, mut m) in items {
            m.loc = Loc::Ready;
            self.restore(seq, m);
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

    /// Removes every committed message (PurgeQueue); returns their positions.
    pub fn purge(&mut self) -> Vec<u64> {
        if self.stored.is_some() {
            self.purge_stored();
            return Vec::new();
        }
        let seqs: Vec<u64> = self
            .msgs
            .iter()
            .filter(|(_, m)| !matches!(m.loc, Loc::Pending { .. }))
            .map(|(s, _)| s)
            .collect();
        for s in &seqs {
            self.remove(*s);
        }
        seqs
    }

    pub fn dedup_get(&self, key: &str, now: u64) -> Option<DedupEntry> {
        self.dedup.get(key).filter(|e| e.expires_ms > now).cloned()
    }

    pub fn dedup_insert(&mut self, key: String, entry: DedupEntry) {
        self.dedup_order.push_back((entry.expires_ms, key.clone()));
        self.dedup.insert(key, entry);
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
        }
    }

    /// A queue opened from the store: its messages are read at its first use.
    pub fn with_stored_messages(self, store: nimbus_store::Store) -> Queue {
        *self.unread.lock().unwrap_or_else(|e| e.into_inner()) = Some(store);
        self
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

    /// Sends as the handlers do: pending, its record written, then settled.
    fn send_delayed(q: &mut QueueState, id: u8, group: Option<&str>, delay_until: u64) -> u64 {
        let s = q.insert_pending(data(id, group), 0, 0, 1000, delay_until);
        if let Some((store, key)) = q
            .stored
            .as_ref()
            .map(|st| (st.store.clone(), st.message_key(s)))
        {
            let uuid = uuid::Uuid::from_bytes([id; 16]);
            let mut batch = nimbus_store::Batch::new();
            batch.put(
                crate::state::MESSAGES,
                key,
                format!(r#"{{"v":1,"d":{{"id":"{uuid}"}},"enq":1000,"du":{delay_until}}}"#),
            );
            q.count_record(&batch);
            store.commit_blocking(batch).unwrap();
        }
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
        let mut q = QueueState::new(QueueAttrs::default(), true, 0);
        let a = q.insert_pending(data(1, Some("g")), 0, 0, 1000, 0);
        let b = q.insert_pending(data(2, Some("g")), 0, 0, 1000, 0);
        q.finish_pending(b, 1000);
        // m2 is durable but m1 ahead of it is not: nothing may be delivered yet.
        assert!(q.receive(1000, 10, 1000, None).0.is_empty());
        q.finish_pending(a, 1000);
        assert_eq!(bodies(&q.receive(1000, 10, 1000, None).0), ["m1", "m2"]);
    }

    #[test]
    fn fifo_group_blocking_and_turns() {
        let mut q = QueueState::new(QueueAttrs::default(), true, 0);
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
        let mut q = QueueState::new(QueueAttrs::default(), true, 0);
        send(&mut q, 1, Some("g"));
        let (d, _) = q.receive(1000, 1, 1000, None);
        let id = d[0].data.id_bytes();
        q.advance(2000);
        assert!(q.delete(d[0].seq, 1, &id, 2000).is_err());
        let (d, _) = q.receive(2000, 1, 1000, None);
        assert!(q.delete(d[0].seq, 2, &id, 2000).unwrap().is_some());
        assert_eq!(q.delete(d[0].seq, 2, &id, 2000), Ok(None));
    }
}
