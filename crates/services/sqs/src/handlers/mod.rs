//! One function per SQS operation, grouped by what they act on: `queues`
//! (queue lifecycle, attributes, tags, permissions), `messages` (send,
//! receive, delete, visibility) and `move_tasks` (dead-letter redrive). This
//! file holds what they share: queue records, batch-entry checks and
//! pagination tokens.

pub mod messages;
pub mod move_tasks;
pub mod queues;

use crate::errors;
use crate::names;
use crate::queue::{Queue, QueueState};
use crate::state;
use nimbus_core::AwsError;

/// The durable form of a queue's metadata (taken under its lock).
pub fn queue_record(q: &Queue, st: &QueueState) -> Vec<u8> {
    state::to_json(&state::QueueRecord {
        v: state::RECORD_VERSION,
        id: q.id_hex.clone(),
        account: q.key.account.clone(),
        region: q.key.region.clone(),
        name: q.key.name.clone(),
        fifo: q.fifo,
        created_s: q.created_s,
        last_modified_s: st.last_modified_s,
        dedup_by_group: q.dedup_by_group,
        attrs: st.attrs.clone(),
        tags: st.tags.clone(),
        purged_at_ms: st.purged_at_ms,
    })
}

/// The checks every batch request gets before any entry is looked at:
/// not empty, at most 10 entries, ids well-formed and distinct.
pub fn check_batch_ids<'a>(
    ids: impl ExactSizeIterator<Item = Option<&'a str>>,
    entry_shape: &str,
) -> Result<(), AwsError> {
    let n = ids.len();
    if n == 0 {
        return Err(errors::empty_batch(entry_shape));
    }
    if n > 10 {
        return Err(errors::too_many_entries(n));
    }
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        let id = id.unwrap_or("");
        if !names::valid_batch_id(id) {
            return Err(errors::invalid_batch_entry_id());
        }
        if !seen.insert(id) {
            return Err(errors::batch_ids_not_distinct(id));
        }
    }
    Ok(())
}

/// Validates MaxResults of the paginated list operations.
pub fn max_results(v: Option<i64>) -> Result<Option<usize>, AwsError> {
    match v {
        None => Ok(None),
        Some(n) if (1..=1000).contains(&n) => Ok(Some(n as usize)),
        Some(n) => Err(errors::invalid_value(
            n,
            "MaxResults",
            "MaxResults must be an integer between 1 and 1000.",
        )),
    }
}

/// Decodes a NextToken: the name after which the next page starts.
pub fn decode_token(token: Option<&str>) -> Result<Option<String>, AwsError> {
    match token {
        None | Some("") => Ok(None),
        Some(t) => names::b64_decode(t)
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(|| AwsError::invalid_parameter("Invalid NextToken value.")),
    }
}

pub fn encode_token(last_name: &str) -> String {
    names::b64_encode(last_name.as_bytes())
}
