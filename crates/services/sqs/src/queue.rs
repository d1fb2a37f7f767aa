//! The live state of one queue, held in memory and mirrored to the store by
//! the handlers: a compact entry per message (its id, group, receive count,
//! times and where it is; bodies and attributes stay in the store and are read
//! when a message is delivered or moved) and the indexes that make each
//! operation cost O(log n) — a ready set in send order (per message group for FIFO queues),
//! the in-flight set ordered by visibility deadline, the delayed set ordered
//! by ready time, and an age index for retention. Time-driven transitions
//! (visibility returns, delays ending, retention, dedup window) happen lazily
//! in [`QueueState::advance`] whenever the queue is touched; long pollers
//! sleep until [`QueueState::next_event`].
//!
//! FIFO delivery follows SQS: within a group, ready messages are delivered in
//! order up to the first message that is in flight (or not yet committed /
//! still delayed); groups take turns in the order they became deliverable.

use crate::attributes::QueueAttrs;
use crate::message::Attr;
use crate::names::QueueKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// FIFO SequenceNumbers are 20-digit decimals: this base plus the position.
pub const SEQUENCE_BASE: u64 = 10_000_000_000_000_000_000;
/// How long a FIFO deduplication id (and a ReceiveRequestAttemptId) holds.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;

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
    pub visible_at: u64,
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
        let visible = if self.fifo {
            self.ready_count
        } else {
            self.ready.len()
        };
        (visible, self.inflight.len(), self.delayed.len())
    }

    /// Every message position, for deleting a queue's records.
    pub fn all_seqs(&self) -> Vec<u64> {
        self.msgs.keys().collect()
    }

    pub fn dedup_keys(&self) -> Vec<String> {
        self.dedup.keys().cloned().collect()
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

    /// Removes a message entirely and returns it.
    pub fn remove(&mut self, seq: u64) -> Option<Msg> {
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
        self.by_age.insert((enqueued_ms, seq));
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
            visible_at: now + visibility_ms,
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
                let Some(seq) = self.ready.first().copied() else {
                    break;
                };
                if self.over_limit(seq, max_receive_count) {
                    if let Some(m) = self.remove(seq) {
                        dead.push((seq, m));
                    }
                    continue;
                }
                match self.deliver(seq, now, visibility_ms) {
                    Some(d) => out.push(d),
                    None => {
                        self.ready.remove(&seq);
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
    pub fn take_ready(&mut self, max: usize) -> Vec<(u64, Msg)> {
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
            return Err(VisibilityError::Gone);
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
            return Ok(None);
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
        state: QueueState,
    ) -> Queue {
        Queue {
            arn: key.arn(),
            key,
            id,
            id_hex: hex::encode(id),
            fifo,
            created_s,
            dedup_by_group,
            notify: Notify::new(),
            deleted: AtomicBool::new(false),
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

    /// Adds to `batch` the deletion of every message and deduplication record of
    /// this queue (DeleteQueue, reset).
    pub fn delete_records(&self, st: &QueueState, batch: &mut nimbus_store::Batch) {
        for seq in st.all_seqs() {
            let k = self.message_key(seq);
            batch.delete(crate::state::MESSAGES, k.clone());
            batch.delete(crate::state::MESSAGE_STATE, k);
        }
        for d in st.dedup_keys() {
            batch.delete(crate::state::DEDUP, self.dedup_key(&d));
        }
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

    fn send(q: &mut QueueState, id: u8, group: Option<&str>) -> u64 {
        let s = q.insert_pending(data(id, group), 0, 0, 1000, 0);
        q.finish_pending(s, 1000);
        s
    }

    fn bodies(d: &[Delivered]) -> Vec<String> {
        d.iter().map(|x| format!("m{}", x.data.id[0])).collect()
    }

    #[test]
    fn standard_order_visibility_and_counts() {
        let mut q = QueueState::new(QueueAttrs::default(), false, 0);
        send(&mut q, 1, None);
        send(&mut q, 2, None);
        assert_eq!(q.counts(), (2, 0, 0));
        let (d, _) = q.receive(1000, 1, 30_000, None);
        assert_eq!(bodies(&d), ["m1"]);
        assert_eq!(q.counts(), (1, 1, 0));
        assert_eq!(q.next_event(), Some(31_000));
        q.advance(31_000);
        assert_eq!(q.counts(), (2, 0, 0));
        let (d, _) = q.receive(31_000, 10, 30_000, None);
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
        let mut q = QueueState::new(QueueAttrs::default(), false, 0);
        send(&mut q, 1, None);
        let (d, dead) = q.receive(1000, 1, 0, Some(1));
        assert_eq!(d.len(), 1);
        assert!(dead.is_empty());
        q.advance(1000);
        let (d, dead) = q.receive(1000, 1, 0, Some(1));
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
        let mut q = QueueState::new(attrs, false, 0);
        let s = q.insert_pending(data(1, None), 0, 0, 1000, 5000);
        q.finish_pending(s, 1000);
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
