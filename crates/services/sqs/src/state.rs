//! SQS's records in the store and how they are read back at startup.
//!
//! Layout (all values JSON, each carrying a format version `v`):
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `sqs_queues` | `{account}/{region}/{name}` | [`QueueRecord`]: id, type, attributes, tags |
//! | `sqs_messages` | `{queue-id}/{seq:020}` | [`MessageRecord`]: the message as sent |
//! | `sqs_message_state` | `{queue-id}/{seq:020}` | [`StateRecord`]: receive count, visibility deadline (or end of delay) |
//! | `sqs_fifo_order` | `{queue-id}/{group}\0{seq:020}` | empty: a FIFO group's messages in order |
//! | `sqs_counts` | `{queue-id}` | [`CountRecord`]: a queue's stored message count and next position |
//! | `sqs_dropped` | `{queue-id}` | a deleted queue whose records are still being deleted |
//! | `sqs_dedup` | `{queue-id}/{dedup-key}` | [`DedupRecord`]: FIFO deduplication id within its window |
//! | `sqs_sequence` | `{queue-id}` | highest reserved position (FIFO sequence numbers never go back) |
//! | `sqs_deleted_queues` | `{account}/{region}/{name}` | deletion time (QueueDeletedRecently) |
//! | `sqs_move_tasks` | `{task-id}` | [`MoveTaskRecord`] |
//!
//! A message's body is written once; each receive rewrites only its small
//! state record. A queue reads its ready messages from the store when it
//! delivers them: a standard queue from `sqs_messages` in position order, a
//! FIFO queue group by group through `sqs_fifo_order`. What it keeps in
//! memory (messages in flight or delayed) is rebuilt at its first use from
//! the state records whose deadline is still ahead (a delayed send writes one
//! too), and its count comes from `sqs_counts`, written with every batch that
//! adds or removes one of its messages. Queues of older releases (no count
//! record) are read once at their first use, then get their count record and
//! group order. `queue-id` is random per queue incarnation, so records of a
//! deleted queue can never be mistaken for a new queue of the same name.

use crate::attributes::QueueAttrs;
use crate::queue::MsgData;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const QUEUES: &str = "sqs_queues";
pub const MESSAGES: &str = "sqs_messages";
pub const MESSAGE_STATE: &str = "sqs_message_state";
pub const DEDUP: &str = "sqs_dedup";
pub const COUNTS: &str = "sqs_counts";
pub const FIFO_ORDER: &str = "sqs_fifo_order";
pub const DROPPED: &str = "sqs_dropped";
pub const SEQUENCE: &str = "sqs_sequence";
pub const DELETED_QUEUES: &str = "sqs_deleted_queues";
pub const MOVE_TASKS: &str = "sqs_move_tasks";

pub const RECORD_VERSION: u32 = 1;

fn v1() -> u32 {
    RECORD_VERSION
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub id: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub fifo: bool,
    pub created_s: u64,
    pub last_modified_s: u64,
    #[serde(default)]
    pub dedup_by_group: bool,
    pub attrs: QueueAttrs,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub purged_at_ms: Option<u64>,
}

/// A message as written by SendMessage (or by a move into another queue).
#[derive(Debug, Serialize)]
pub struct MessageRecordOut<'a> {
    pub v: u32,
    pub d: &'a MsgData,
    pub enq: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub du: u64,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub rc: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub fr: u64,
}

/// What a delivery or a move reads of a message record: the message as sent.
#[derive(Debug, Deserialize)]
pub struct MessageRecord {
    pub d: MsgData,
}

/// What a receive (or a visibility change) changed about a message; for a
/// standard queue also written by a delayed send. Carries what memory keeps of
/// a hidden message, so a standard queue's first use reads no message record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub rc: u32,
    pub fr: u64,
    pub lr: u64,
    /// Hidden until then (visibility deadline, or end of delay when `d`).
    pub vis: u64,
    /// The message id's 16 bytes, hex (absent in records of older releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub enq: u64,
    /// Delayed rather than in flight.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub d: bool,
}

impl StateRecord {
    /// The record of a message hidden until `vis` (delayed when `delayed`).
    pub fn of(m: &crate::queue::Msg, vis: u64, delayed: bool) -> StateRecord {
        StateRecord {
            v: RECORD_VERSION,
            rc: m.receive_count,
            fr: m.first_receive_ms,
            lr: m.last_receive_ms,
            vis,
            id: Some(hex::encode(m.data.id)),
            enq: m.enqueued_ms,
            d: delayed,
        }
    }
}

/// A standard queue's message records as of the batch that wrote this, and
/// the next position it hands out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountRecord {
    #[serde(default = "v1")]
    pub v: u32,
    /// Message records in the store.
    pub n: u64,
    pub next: u64,
    /// Of those, purged ones (below `floor`) not yet deleted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dead: u64,
    /// Every record below this position was purged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub floor: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DedupRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub id: String,
    pub seq: u64,
    pub exp: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveTaskRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub id: String,
    pub account: String,
    pub region: String,
    pub source_arn: String,
    pub destination_arn: Option<String>,
    pub rate: Option<u32>,
    pub status: String,
    pub started_ms: u64,
    pub to_move: u64,
    pub moved: u64,
    pub failure: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// What a queue's first use reads of each message record: the message's
/// id and group and its state fields, not its body and attributes.
#[derive(Debug, Deserialize)]
pub struct MessageHeadRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub d: MsgDataHead,
    pub enq: u64,
    #[serde(default)]
    pub du: u64,
    #[serde(default)]
    pub rc: u32,
    #[serde(default)]
    pub fr: u64,
}

/// The fields of [`MsgData`] a queue keeps in memory (same names as there).
#[derive(Debug, Deserialize)]
pub struct MsgDataHead {
    pub id: String,
    #[serde(rename = "g", default)]
    pub group: Option<String>,
}

/// A message's immutable part as stored: queues keep only a compact entry per
/// message in memory, and read this when they deliver or move it. Sees
/// writes not yet durable too (the store's overlay), so a message can be
/// delivered the moment its send settles.
pub fn read_message(
    store: &nimbus_store::Store,
    q: &crate::queue::Queue,
    seq: u64,
) -> Option<MsgData> {
    let value = match store.get(MESSAGES, &q.message_key(seq)) {
        Ok(v) => v?,
        Err(e) => {
            tracing::error!("sqs: reading message {seq} of {}: {e}", q.arn);
            return None;
        }
    };
    match serde_json::from_slice::<MessageRecord>(&value) {
        Ok(r) => Some(r.d),
        Err(e) => {
            tracing::error!("sqs: unreadable message record {seq} of {}: {e}", q.arn);
            None
        }
    }
}

/// A message's immutable part from its record's bytes.
pub fn decode_message(value: &[u8]) -> Option<MsgData> {
    match serde_json::from_slice::<MessageRecord>(value) {
        Ok(r) => Some(r.d),
        Err(e) => {
            tracing::error!("sqs: unreadable message record: {e}");
            None
        }
    }
}

pub fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail; an empty value would be
    // rejected at load and is logged there.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Splits `{queue-id}/{rest}` keys.
pub fn split_key(key: &[u8]) -> Option<(&str, &str)> {
    let s = std::str::from_utf8(key).ok()?;
    s.split_once('/')
}
