//! How queues and messages are named and addressed: queue names, queue URLs
//! (any host, last two path segments are account and name), queue ARNs,
//! receipt handles and move-task handles. Everything here is pure string and
//! byte work so that it can be tested without a queue.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

/// Where a queue lives: the partition key of every queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    pub account: String,
    pub region: String,
    pub name: String,
}

impl QueueKey {
    pub fn arn(&self) -> String {
        format!("arn:aws:sqs:{}:{}:{}", self.region, self.account, self.name)
    }

    pub fn store_key(&self) -> String {
        format!("{}/{}/{}", self.account, self.region, self.name)
    }
}

pub fn queue_url(host: &str, account: &str, name: &str) -> String {
    format!("http://{host}/{account}/{name}")
}

/// Checks a queue name as SQS does: 1-80 characters of `[A-Za-z0-9_-]`, where
/// a FIFO queue's name must end in `.fifo` (the suffix counts toward the 80).
pub fn valid_queue_name(name: &str, fifo: bool) -> bool {
    let base = if fifo {
        match name.strip_suffix(".fifo") {
            Some(b) => b,
            None => return false,
        }
    } else {
        name
    };
    !base.is_empty()
        && name.len() <= 80
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits a queue URL into (account, name). Clients may hold URLs built on
/// another host name (`sqs.us-east-1.amazonaws.com`, `localhost:4566`, ...), so
/// only the last two path segments count; a bare queue name (no `/`) is
/// accepted too and means the caller's own account.
pub fn parse_queue_url(url: &str, default_account: &str) -> Option<(String, String)> {
    let trimmed = url.trim();
    if trimmed.is_empty() {
        return None;
    }
    let path = match trimmed.find("://") {
        Some(i) => {
            let rest = &trimmed[i + 3..];
            match rest.find('/') {
                Some(j) => &rest[j..],
                None => return None,
            }
        }
        None => trimmed,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [] => None,
        [name] => Some((default_account.to_string(), (*name).to_string())),
        [.., account, name] => Some(((*account).to_string(), (*name).to_string())),
    }
}

/// Parses `arn:<partition>:sqs:<region>:<account>:<name>`.
pub fn parse_queue_arn(arn: &str) -> Option<QueueKey> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[1].is_empty() || parts[2] != "sqs" {
        return None;
    }
    if parts[3].is_empty() || parts[4].is_empty() || parts[5].is_empty() {
        return None;
    }
    Some(QueueKey {
        account: parts[4].to_string(),
        region: parts[3].to_string(),
        name: parts[5].to_string(),
    })
}

/// True when `s` has the general ARN shape (six colon-separated parts).
pub fn looks_like_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6 && parts[0] == "arn" && !parts[5].is_empty()
}

/// What a receipt handle names: one particular receive of one message.
///
/// The handle carries the queue incarnation id (so a handle never matches a
/// queue that was deleted and created again), the message's position, the
/// receive count at the time it was handed out (so a newer receive makes it
/// stale) and the message id (so a reused position after a restart never
/// matches another message). The random tail only makes handles opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub queue_id: [u8; 16],
    pub seq: u64,
    pub receive_count: u32,
    pub message_id: [u8; 16],
}

const RECEIPT_VERSION: u8 = 1;
const RECEIPT_LEN: usize = 1 + 16 + 8 + 4 + 16 + 18;

impl Receipt {
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(RECEIPT_LEN);
        bytes.push(RECEIPT_VERSION);
        bytes.extend_from_slice(&self.queue_id);
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(&self.receive_count.to_be_bytes());
        bytes.extend_from_slice(&self.message_id);
        bytes.extend_from_slice(&rand::random::<[u8; 16]>());
        bytes.extend_from_slice(&[0x5a, 0xa5]);
        B64.encode(bytes)
    }

    pub fn decode(handle: &str) -> Option<Receipt> {
        let bytes = B64.decode(handle.trim().as_bytes()).ok()?;
        if bytes.len() != RECEIPT_LEN || bytes[0] != RECEIPT_VERSION {
            return None;
        }
        let mut queue_id = [0u8; 16];
        queue_id.copy_from_slice(&bytes[1..17]);
        let seq = u64::from_be_bytes(bytes[17..25].try_into().ok()?);
        let receive_count = u32::from_be_bytes(bytes[25..29].try_into().ok()?);
        let mut message_id = [0u8; 16];
        message_id.copy_from_slice(&bytes[29..45]);
        Some(Receipt {
            queue_id,
            seq,
            receive_count,
            message_id,
        })
    }
}

/// Move-task handles are, as in SQS, base64 of a small JSON document naming
/// the task and its source queue.
pub fn encode_task_handle(task_id: &str, source_arn: &str) -> String {
    let doc = serde_json::json!({ "taskId": task_id, "sourceArn": source_arn });
    B64.encode(doc.to_string())
}

pub fn decode_task_handle(handle: &str) -> Option<(String, String)> {
    let bytes = B64.decode(handle.trim().as_bytes()).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let task = doc.get("taskId")?.as_str()?.to_string();
    let source = doc.get("sourceArn")?.as_str()?.to_string();
    Some((task, source))
}

/// Batch entry ids: `[A-Za-z0-9_-]{1,80}`.
pub fn valid_batch_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 80
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// MessageGroupId, MessageDeduplicationId and ReceiveRequestAttemptId: 1-128
/// characters of alphanumerics and ASCII punctuation.
pub fn valid_fifo_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// A random (version 4) UUID from the thread-local generator, which spares a
/// system call per id on the send path.
pub fn new_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

pub fn b64_encode(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    B64.decode(s.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names() {
        assert!(valid_queue_name("a", false));
        assert!(valid_queue_name(&"a".repeat(80), false));
        assert!(!valid_queue_name(&"a".repeat(81), false));
        assert!(!valid_queue_name("a.fifo", false));
        assert!(!valid_queue_name("", false));
        assert!(!valid_queue_name("a b", false));
        assert!(valid_queue_name("my-queue_1.fifo", true));
        assert!(valid_queue_name(&format!("{}.fifo", "a".repeat(75)), true));
        assert!(!valid_queue_name(&format!("{}.fifo", "a".repeat(76)), true));
        assert!(!valid_queue_name(".fifo", true));
        assert!(!valid_queue_name("q", true));
    }

    #[test]
    fn urls() {
        let d = "000000000000";
        assert_eq!(
            parse_queue_url("http://localhost:4566/123456789012/q1", d),
            Some(("123456789012".into(), "q1".into()))
        );
        assert_eq!(
            parse_queue_url(
                "https://sqs.us-east-1.amazonaws.com/123456789012/q1.fifo",
                d
            ),
            Some(("123456789012".into(), "q1.fifo".into()))
        );
        assert_eq!(
            parse_queue_url("http://127.0.0.1:4566/queue/us-east-1/123456789012/q1", d),
            Some(("123456789012".into(), "q1".into()))
        );
        assert_eq!(parse_queue_url("q1", d), Some((d.into(), "q1".into())));
        assert_eq!(parse_queue_url("http://localhost:4566", d), None);
        assert_eq!(parse_queue_url("", d), None);
    }

    #[test]
    fn arns() {
        let k = parse_queue_arn("arn:aws:sqs:eu-west-1:123456789012:dlq").unwrap();
        assert_eq!(k.region, "eu-west-1");
        assert_eq!(k.account, "123456789012");
        assert_eq!(k.name, "dlq");
        assert_eq!(k.arn(), "arn:aws:sqs:eu-west-1:123456789012:dlq");
        assert!(parse_queue_arn("dummy").is_none());
        assert!(parse_queue_arn("arn:aws:sns:eu-west-1:1:t").is_none());
    }

    #[test]
    fn receipts_round_trip() {
        let r = Receipt {
            queue_id: [7; 16],
            seq: 42,
            receive_count: 3,
            message_id: [9; 16],
        };
        let h = r.encode();
        assert_ne!(h, r.encode(), "handles are unique per issue");
        assert_eq!(Receipt::decode(&h), Some(r));
        assert_eq!(Receipt::decode("garbage"), None);
        assert_eq!(Receipt::decode(""), None);
    }

    #[test]
    fn task_handles_round_trip() {
        let h = encode_task_handle("t-1", "arn:aws:sqs:us-east-1:1:q");
        assert_eq!(
            decode_task_handle(&h),
            Some(("t-1".into(), "arn:aws:sqs:us-east-1:1:q".into()))
        );
        assert_eq!(decode_task_handle("foobared"), None);
    }
}
