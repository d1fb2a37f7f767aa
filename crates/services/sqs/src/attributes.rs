//! Queue attributes: their defaults, how CreateQueue / SetQueueAttributes
//! values are validated (ranges, enumerations, JSON policies) and applied all
//! or nothing, and how GetQueueAttributes renders them back as strings.
//!
//! Limits follow current SQS: MaximumMessageSize 1,024..=1,048,576 bytes with a
//! default of 1,048,576 (SQS raised the ceiling from 256 KiB to 1 MiB in 2025).

use crate::errors;
use crate::names;
use nimbus_core::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const MAX_MESSAGE_SIZE: u32 = 1_048_576;
pub const MIN_MESSAGE_SIZE: u32 = 1_024;
pub const MAX_VISIBILITY_TIMEOUT: u32 = 43_200;
pub const MAX_DELAY_SECONDS: u32 = 900;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedrivePolicy {
    pub dead_letter_target_arn: String,
    pub max_receive_count: u32,
}

impl RedrivePolicy {
    pub fn render(&self) -> String {
        serde_json::json!({
            "deadLetterTargetArn": self.dead_letter_target_arn,
            "maxReceiveCount": self.max_receive_count,
        })
        .to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedriveAllowPolicy {
    pub permission: String,
    pub source_queue_arns: Vec<String>,
}

impl RedriveAllowPolicy {
    pub fn render(&self) -> String {
        if self.permission == "byQueue" {
            serde_json::json!({
                "redrivePermission": self.permission,
                "sourceQueueArns": self.source_queue_arns,
            })
            .to_string()
        } else {
            serde_json::json!({ "redrivePermission": self.permission }).to_string()
        }
    }

    /// Whether a queue with ARN `source` may name this queue as its dead-letter queue.
    pub fn allows(&self, source: &str) -> bool {
        match self.permission.as_str() {
            "denyAll" => false,
            "byQueue" => self.source_queue_arns.iter().any(|a| a == source),
            _ => true,
        }
    }
}

/// The settable attributes of a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueAttrs {
    pub delay_seconds: u32,
    pub maximum_message_size: u32,
    pub message_retention_period: u32,
    pub receive_message_wait_time_seconds: u32,
    pub visibility_timeout: u32,
    pub policy: Option<String>,
    pub redrive_policy: Option<RedrivePolicy>,
    pub redrive_allow_policy: Option<RedriveAllowPolicy>,
    pub content_based_deduplication: bool,
    pub deduplication_scope: String,
    pub fifo_throughput_limit: String,
    pub kms_master_key_id: Option<String>,
    pub kms_data_key_reuse_period_seconds: u32,
    pub sqs_managed_sse_enabled: bool,
}

impl Default for QueueAttrs {
    fn default() -> Self {
        QueueAttrs {
            delay_seconds: 0,
            maximum_message_size: MAX_MESSAGE_SIZE,
            message_retention_period: 345_600,
            receive_message_wait_time_seconds: 0,
            visibility_timeout: 30,
            policy: None,
            redrive_policy: None,
            redrive_allow_policy: None,
            content_based_deduplication: false,
            deduplication_scope: "queue".into(),
            fifo_throughput_limit: "perQueue".into(),
            kms_master_key_id: None,
            kms_data_key_reuse_period_seconds: 300,
            sqs_managed_sse_enabled: true,
        }
    }
}

/// Attributes that only SQS sets; naming them in a write is an unknown attribute.
const READ_ONLY: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
];

/// Every name GetQueueAttributes understands (besides `All`).
pub const READABLE: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
    "ContentBasedDeduplication",
    "CreatedTimestamp",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "LastModifiedTimestamp",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "Policy",
    "QueueArn",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
];

/// The attribute map of a request, in the order the client sent it (the
/// first offending attribute is the one SQS names in its errors).
pub fn attribute_pairs(map: Option<&serde_json::Map<String, Value>>) -> Vec<(String, String)> {
    let Some(map) = map else {
        return Vec::new();
    };
    map.iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect()
}

fn parse_int(name: &str, v: &str, min: u32, max: u32) -> Result<u32, AwsError> {
    let t = v.trim();
    let n: i64 = t
        .parse()
        .map_err(|_| errors::invalid_attribute_value(name))?;
    if n < min as i64 || n > max as i64 {
        return Err(errors::invalid_attribute_value(name));
    }
    Ok(n as u32)
}

fn parse_bool(name: &str, v: &str) -> Result<bool, AwsError> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(errors::invalid_attribute_value(name))
    }
}

fn redrive_error(raw: &str, reason: &str) -> AwsError {
    errors::invalid_value(raw, "RedrivePolicy", reason)
}

pub fn parse_redrive_policy(raw: &str) -> Result<Option<RedrivePolicy>, AwsError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let doc: Value = serde_json::from_str(raw)
        .map_err(|_| redrive_error(raw, "Redrive policy is not a valid JSON map."))?;
    let Value::Object(map) = doc else {
        return Err(redrive_error(
            raw,
            "Redrive policy is not a valid JSON map.",
        ));
    };
    if map.is_empty() {
        return Ok(None);
    }
    let arn = match map.get("deadLetterTargetArn") {
        None | Some(Value::Null) => {
            return Err(redrive_error(
                raw,
                "Redrive policy does not contain mandatory attribute: deadLetterTargetArn.",
            ))
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let count_value = match map.get("maxReceiveCount") {
        None | Some(Value::Null) => {
            return Err(redrive_error(
                raw,
                "Redrive policy does not contain mandatory attribute: maxReceiveCount.",
            ))
        }
        Some(v) => v,
    };
    let count_text = match count_value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let count = count_text
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| {
            redrive_error(
                raw,
                &format!(
                    "Invalid value for maxReceiveCount: {count_text}, valid values are from 1 to 1000 both inclusive."
                ),
            )
        })?;
    if names::parse_queue_arn(&arn).is_none() {
        return Err(redrive_error(raw, "Invalid value for deadLetterTargetArn."));
    }
    Ok(Some(RedrivePolicy {
        dead_letter_target_arn: arn,
        max_receive_count: count as u32,
    }))
}

fn allow_error(raw: &str, reason: &str) -> AwsError {
    errors::invalid_value(raw, "RedriveAllowPolicy", reason)
}

pub fn parse_redrive_allow_policy(raw: &str) -> Result<Option<RedriveAllowPolicy>, AwsError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let doc: Value = serde_json::from_str(raw)
        .map_err(|_| allow_error(raw, "Redrive allow policy is not a valid JSON map."))?;
    let Value::Object(map) = doc else {
        return Err(allow_error(
            raw,
            "Redrive allow policy is not a valid JSON map.",
        ));
    };
    let permission = match map.get("redrivePermission") {
        Some(Value::String(s)) if ["allowAll", "denyAll", "byQueue"].contains(&s.as_str()) => {
            s.clone()
        }
        Some(_) => return Err(allow_error(
            raw,
            "Invalid value for redrivePermission. Valid values are allowAll, denyAll and byQueue.",
        )),
        None => {
            return Err(allow_error(
                raw,
                "Redrive allow policy does not contain mandatory attribute: redrivePermission.",
            ))
        }
    };
    let arns: Option<Vec<String>> = match map.get("sourceQueueArns") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                match i.as_str() {
                    Some(s) if names::parse_queue_arn(s).is_some() => out.push(s.to_string()),
                    _ => {
                        return Err(allow_error(raw, "Invalid value for sourceQueueArns."));
                    }
                }
            }
            Some(out)
        }
        Some(_) => return Err(allow_error(raw, "Invalid value for sourceQueueArns.")),
    };
    let source_queue_arns = if permission == "byQueue" {
        match arns {
            Some(a) if !a.is_empty() && a.len() <= 10 => a,
            Some(a) if a.len() > 10 => {
                return Err(allow_error(
                    raw,
                    "Amazon SQS supports a maximum of 10 source queue ARNs. To allow more than 10 source queues to specify dead-letter queues, set the redrivePermission parameter to allowAll.",
                ))
            }
            _ => {
                return Err(allow_error(
                    raw,
                    "sourceQueueArns is required when redrivePermission is byQueue.",
                ))
            }
        }
    } else {
        if arns.is_some() {
            return Err(allow_error(
                raw,
                "sourceQueueArns can be specified only when redrivePermission is byQueue.",
            ));
        }
        Vec::new()
    };
    Ok(Some(RedriveAllowPolicy {
        permission,
        source_queue_arns,
    }))
}

/// Checks one write of attributes against a queue and returns the attributes
/// as they would be after it. Nothing is changed on error. At CreateQueue
/// (`_creating`) `FifoQueue` has already decided the queue type; the rules are
/// the same for both operations.
pub fn apply(
    current: &QueueAttrs,
    fifo: bool,
    _creating: bool,
    pairs: &[(String, String)],
) -> Result<QueueAttrs, AwsError> {
    let mut next = current.clone();
    let mut sse_given: Option<bool> = None;
    for (name, value) in pairs {
        let n = name.as_str();
        let v = value.as_str();
        match n {
            "DelaySeconds" => next.delay_seconds = parse_int(n, v, 0, MAX_DELAY_SECONDS)?,
            "MaximumMessageSize" => {
                next.maximum_message_size = parse_int(n, v, MIN_MESSAGE_SIZE, MAX_MESSAGE_SIZE)?
            }
            "MessageRetentionPeriod" => {
                next.message_retention_period = parse_int(n, v, 60, 1_209_600)?
            }
            "ReceiveMessageWaitTimeSeconds" => {
                next.receive_message_wait_time_seconds = parse_int(n, v, 0, 20)?
            }
            "VisibilityTimeout" => {
                next.visibility_timeout = parse_int(n, v, 0, MAX_VISIBILITY_TIMEOUT)?
            }
            "Policy" => {
                if v.trim().is_empty() {
                    next.policy = None;
                } else {
                    match serde_json::from_str::<Value>(v) {
                        Ok(Value::Object(_)) => next.policy = Some(v.to_string()),
                        _ => return Err(errors::invalid_attribute_value(n)),
                    }
                }
            }
            "RedrivePolicy" => next.redrive_policy = parse_redrive_policy(v)?,
            "RedriveAllowPolicy" => next.redrive_allow_policy = parse_redrive_allow_policy(v)?,
            "KmsMasterKeyId" => {
                next.kms_master_key_id = if v.is_empty() {
                    None
                } else {
                    // Choosing a KMS key switches the queue from SQS-managed SSE to SSE-KMS.
                    next.sqs_managed_sse_enabled = false;
                    Some(v.to_string())
                }
            }
            "KmsDataKeyReusePeriodSeconds" => {
                next.kms_data_key_reuse_period_seconds = parse_int(n, v, 60, 86_400)?
            }
            "SqsManagedSseEnabled" => {
                let b = parse_bool(n, v)?;
                sse_given = Some(b);
                next.sqs_managed_sse_enabled = b;
            }
            "FifoQueue" => {
                // On a standard queue (including `FifoQueue=false` at creation)
                // SQS does not know the attribute at all.
                if !fifo {
                    return Err(errors::unknown_attribute(n));
                }
                if !parse_bool(n, v)? {
                    return Err(errors::invalid_attribute_value_reason(
                        n,
                        "Modifying queue type is not supported.",
                    ));
                }
            }
            "ContentBasedDeduplication" => {
                if !fifo {
                    return Err(errors::unknown_attribute(n));
                }
                next.content_based_deduplication = parse_bool(n, v)?;
            }
            "DeduplicationScope" => {
                if !fifo {
                    return Err(errors::fifo_only_attribute(n));
                }
                if v != "queue" && v != "messageGroup" {
                    return Err(errors::invalid_attribute_value(n));
                }
                next.deduplication_scope = v.to_string();
            }
            "FifoThroughputLimit" => {
                if !fifo {
                    return Err(errors::fifo_only_attribute(n));
                }
                if v != "perQueue" && v != "perMessageGroupId" {
                    return Err(errors::invalid_attribute_value(n));
                }
                next.fifo_throughput_limit = v.to_string();
            }
            _ if READ_ONLY.contains(&n) => return Err(errors::unknown_attribute(n)),
            _ => return Err(errors::unknown_attribute(n)),
        }
    }
    if next.kms_master_key_id.is_some() && sse_given == Some(true) {
        return Err(AwsError::new(
            "InvalidAttributeName",
            "You can use one type of server-side encryption (SSE) at one time. You can either \
             enable KMS SSE or SQS SSE.",
        ));
    }
    if sse_given == Some(true) {
        next.kms_master_key_id = None;
    }
    if fifo
        && next.fifo_throughput_limit == "perMessageGroupId"
        && next.deduplication_scope != "messageGroup"
    {
        return Err(errors::invalid_attribute_value_reason(
            "FifoThroughputLimit",
            "The perMessageGroupId value is allowed only when the value for DeduplicationScope is messageGroup.",
        ));
    }
    Ok(next)
}

/// The string SQS reports for one stored attribute, or None when the queue
/// does not carry it (unset policies, FIFO attributes of a standard queue, KMS
/// attributes without a key). Dynamic attributes (counts, timestamps, ARN)
/// are the caller's business.
pub fn render(attrs: &QueueAttrs, fifo: bool, name: &str) -> Option<String> {
    let kms = attrs.kms_master_key_id.is_some();
    Some(match name {
        "DelaySeconds" => attrs.delay_seconds.to_string(),
        "MaximumMessageSize" => attrs.maximum_message_size.to_string(),
        "MessageRetentionPeriod" => attrs.message_retention_period.to_string(),
        "ReceiveMessageWaitTimeSeconds" => attrs.receive_message_wait_time_seconds.to_string(),
        "VisibilityTimeout" => attrs.visibility_timeout.to_string(),
        "Policy" => attrs.policy.clone()?,
        "RedrivePolicy" => attrs.redrive_policy.as_ref()?.render(),
        "RedriveAllowPolicy" => attrs.redrive_allow_policy.as_ref()?.render(),
        "SqsManagedSseEnabled" => attrs.sqs_managed_sse_enabled.to_string(),
        "KmsMasterKeyId" if kms => attrs.kms_master_key_id.clone()?,
        "KmsDataKeyReusePeriodSeconds" if kms => {
            attrs.kms_data_key_reuse_period_seconds.to_string()
        }
        "FifoQueue" if fifo => "true".to_string(),
        "ContentBasedDeduplication" if fifo => attrs.content_based_deduplication.to_string(),
        "DeduplicationScope" if fifo => attrs.deduplication_scope.clone(),
        "FifoThroughputLimit" if fifo => attrs.fifo_throughput_limit.clone(),
        _ => return None,
    })
}

/// CreateQueue on an existing name: the first attribute given whose value
/// differs from the queue's, if any.
pub fn first_difference(
    current: &QueueAttrs,
    wanted: &QueueAttrs,
    fifo: bool,
    pairs: &[(String, String)],
) -> Option<String> {
    for (name, _) in pairs {
        let a = render(current, fifo, name);
        let b = render(wanted, fifo, name);
        let same = match (name.as_str(), &a, &b) {
            ("Policy", Some(x), Some(y)) => {
                serde_json::from_str::<Value>(x).ok() == serde_json::from_str::<Value>(y).ok()
            }
            _ => a == b,
        };
        if !same {
            return Some(name.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn ranges() {
        let d = QueueAttrs::default();
        assert!(apply(&d, false, false, &pairs(&[("VisibilityTimeout", "43200")])).is_ok());
        let e = apply(&d, false, false, &pairs(&[("VisibilityTimeout", "43201")])).unwrap_err();
        assert_eq!(e.code, "InvalidAttributeValue");
        assert_eq!(
            e.message,
            "Invalid value for the parameter VisibilityTimeout."
        );
        assert!(apply(&d, false, false, &pairs(&[("MaximumMessageSize", "1023")])).is_err());
        assert!(apply(
            &d,
            false,
            false,
            &pairs(&[("MessageRetentionPeriod", "59")])
        )
        .is_err());
        assert!(apply(&d, false, false, &pairs(&[("DelaySeconds", "901")])).is_err());
        assert!(apply(
            &d,
            false,
            false,
            &pairs(&[("ReceiveMessageWaitTimeSeconds", "21")])
        )
        .is_err());
        assert!(apply(&d, false, false, &pairs(&[("DelaySeconds", "abc")])).is_err());
    }

    #[test]
    fn fifo_attributes_on_standard_queue() {
        let d = QueueAttrs::default();
        let e = apply(&d, false, true, &pairs(&[("FifoQueue", "false")])).unwrap_err();
        assert_eq!(e.message, "Unknown Attribute FifoQueue.");
        let e = apply(&d, false, true, &pairs(&[("DeduplicationScope", "queue")])).unwrap_err();
        assert_eq!(
            e.message,
            "You can specify the DeduplicationScope only when FifoQueue is set to true."
        );
        let e = apply(&d, true, false, &pairs(&[("FifoQueue", "false")])).unwrap_err();
        assert_eq!(e.code, "InvalidAttributeValue");
    }

    #[test]
    fn redrive_policy_normalized() {
        let p = parse_redrive_policy(
            r#"{"maxReceiveCount":"5","deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:d"}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            p.render(),
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:d","maxReceiveCount":5}"#
        );
        assert!(parse_redrive_policy("").unwrap().is_none());
        assert!(parse_redrive_policy(r#"{"maxReceiveCount":5}"#).is_err());
        assert!(parse_redrive_policy(
            r#"{"maxReceiveCount":0,"deadLetterTargetArn":"arn:aws:sqs:us-east-1:0:d"}"#
        )
        .is_err());
        let e = parse_redrive_policy(r#"{"maxReceiveCount":5,"deadLetterTargetArn":"dummy"}"#)
            .unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
    }

    #[test]
    fn allow_policy() {
        let p = parse_redrive_allow_policy(
            r#"{"redrivePermission":"byQueue","sourceQueueArns":["arn:aws:sqs:us-east-1:0:a"]}"#,
        )
        .unwrap()
        .unwrap();
        assert!(p.allows("arn:aws:sqs:us-east-1:0:a"));
        assert!(!p.allows("arn:aws:sqs:us-east-1:0:b"));
        assert!(parse_redrive_allow_policy(r#"{"redrivePermission":"byQueue"}"#).is_err());
        assert!(parse_redrive_allow_policy(r#"{"redrivePermission":"nope"}"#).is_err());
        let deny = parse_redrive_allow_policy(r#"{"redrivePermission":"denyAll"}"#)
            .unwrap()
            .unwrap();
        assert!(!deny.allows("x"));
    }

    #[test]
    fn kms_switches_sse() {
        let d = QueueAttrs::default();
        let k = apply(&d, false, false, &pairs(&[("KmsMasterKeyId", "k")])).unwrap();
        assert!(!k.sqs_managed_sse_enabled);
        assert_eq!(
            render(&k, false, "KmsDataKeyReusePeriodSeconds").as_deref(),
            Some("300")
        );
        assert_eq!(render(&d, false, "KmsMasterKeyId"), None);
        assert!(apply(
            &d,
            false,
            false,
            &pairs(&[("KmsMasterKeyId", "k"), ("SqsManagedSseEnabled", "true")])
        )
        .is_err());
    }
}
