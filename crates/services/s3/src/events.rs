//! Bucket event notifications: what a `NotificationConfiguration` subscribes to and
//! what S3 sends. This module owns PutBucketNotificationConfiguration validation
//! (destinations, event names, key filters, ambiguity between rules), the choice of
//! destination queues for one event on one key, and the JSON messages S3 delivers:
//! the event record (version 2.1) and the `s3:TestEvent` sent when a configuration is
//! saved. Only SQS queues can be delivered to in nimbus, so topic and Lambda
//! destinations fail validation the way an unreachable destination does in AWS.

use nimbus_core::timestamp;
use nimbus_core::AwsError;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

/// The event names a configuration may subscribe to (S3's `Event` enum).
const EVENTS: [&str; 27] = [
    "s3:ReducedRedundancyLostObject",
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
    "s3:ObjectRestore:*",
    "s3:ObjectRestore:Post",
    "s3:ObjectRestore:Completed",
    "s3:ObjectRestore:Delete",
    "s3:Replication:*",
    "s3:Replication:OperationFailedReplication",
    "s3:Replication:OperationNotTracked",
    "s3:Replication:OperationMissedThreshold",
    "s3:Replication:OperationReplicatedAfterThreshold",
    "s3:LifecycleTransition",
    "s3:IntelligentTiering",
    "s3:ObjectAcl:Put",
    "s3:LifecycleExpiration:*",
    "s3:LifecycleExpiration:Delete",
    "s3:LifecycleExpiration:DeleteMarkerCreated",
    "s3:ObjectTagging:*",
    "s3:ObjectTagging:Put",
    "s3:ObjectTagging:Delete",
];

/// The destination kinds of a configuration: list member and ARN member.
const KINDS: [(&str, &str); 3] = [
    ("QueueConfigurations", "QueueArn"),
    ("TopicConfigurations", "TopicArn"),
    ("LambdaFunctionConfigurations", "LambdaFunctionArn"),
];

/// Key characters S3 leaves as they are in an event's `object.key`: the form encoding
/// it applies keeps letters, digits, `-_.*` and the `/` between "folders".
const KEY_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'*')
    .remove(b'/')
    .remove(b' ');

/// One queue an event goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub queue_arn: String,
    pub configuration_id: String,
}

/// What happened, as the event record reports it.
#[derive(Debug, Clone)]
pub struct EventFacts<'a> {
    /// Without the `s3:` prefix, e.g. `ObjectCreated:Put`.
    pub event_name: &'a str,
    pub event_time_ms: u64,
    pub region: &'a str,
    pub bucket: &'a str,
    /// The bucket owner.
    pub account_id: &'a str,
    /// Who made the request.
    pub principal_id: &'a str,
    pub source_ip: &'a str,
    pub request_id: &'a str,
    /// The key as stored (not encoded).
    pub key: &'a str,
    pub size: Option<u64>,
    pub etag: Option<&'a str>,
    pub version_id: Option<&'a str>,
    /// Orders events for one key: a hex string that grows with each change.
    pub sequencer: String,
}

fn invalid_argument(message: &str, name: &str, value: &str) -> AwsError {
    AwsError::new("InvalidArgument", message)
        .with_field("ArgumentName", name)
        .with_field("ArgumentValue", value)
}

fn list<'a>(v: &'a Value, name: &str) -> &'a [Value] {
    v.get(name)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn events_of(c: &Value) -> Vec<&str> {
    match c.get("Events") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => Vec::new(),
    }
}

/// The (prefix, suffix) a configuration's key filter asks for; "" when absent. Rule
/// names compare without case, as S3 accepts `Prefix` as well as `prefix`.
fn key_filter(c: &Value) -> (&str, &str) {
    let rules = c
        .get("Filter")
        .and_then(|f| f.get("Key"))
        .map(|k| list(k, "FilterRules"))
        .unwrap_or(&[]);
    let (mut prefix, mut suffix) = ("", "");
    for r in rules {
        let name = r.get("Name").and_then(Value::as_str).unwrap_or("");
        let value = r.get("Value").and_then(Value::as_str).unwrap_or("");
        if name.eq_ignore_ascii_case("prefix") {
            prefix = value;
        } else if name.eq_ignore_ascii_case("suffix") {
            suffix = value;
        }
    }
    (prefix, suffix)
}

/// Whether two subscribed event names can both fire for one event: equal, or one is
/// the `:*` wildcard of the other's category.
fn events_overlap(a: &str, b: &str) -> bool {
    let covers = |w: &str, e: &str| w.strip_suffix('*').is_some_and(|stem| e.starts_with(stem));
    a == b || covers(a, b) || covers(b, a)
}

/// Validates a PutBucketNotificationConfiguration body. `queue_exists` says whether an
/// SQS queue ARN names a queue S3 could deliver to.
pub fn validate(config: &Value, queue_exists: &dyn Fn(&str) -> bool) -> Result<(), AwsError> {
    // (events, prefix, suffix) of every configuration seen, for the ambiguity check.
    let mut seen: Vec<(Vec<&str>, &str, &str)> = Vec::new();
    for (kind, arn_member) in KINDS {
        for c in list(config, kind) {
            let arn = c.get(arn_member).and_then(Value::as_str).unwrap_or("");
            let events = events_of(c);
            if arn.is_empty() || events.is_empty() {
                return Err(AwsError::new(
                    "MalformedXML",
                    "The XML you provided was not well-formed or did not validate against our published schema",
                ));
            }
            if let Some(bad) = events.iter().find(|e| !EVENTS.contains(e)) {
                return Err(invalid_argument(
                    "The event is not supported for notifications",
                    "Event",
                    bad,
                ));
            }
            if c.get("Id")
                .and_then(Value::as_str)
                .is_some_and(|id| id.len() > 1024)
            {
                return Err(invalid_argument(
                    "The configuration ID is too long",
                    "Id",
                    "",
                ));
            }
            validate_filter(c)?;
            let deliverable = kind == "QueueConfigurations" && queue_exists(arn);
            if !deliverable {
                let what = match kind {
                    "QueueConfigurations" => "queue",
                    "TopicConfigurations" => "topic",
                    _ => "function",
                };
                return Err(invalid_argument(
                    "Unable to validate the following destination configurations",
                    arn,
                    &format!("Permissions on the destination {what} do not allow S3 to publish notifications from this bucket"),
                ));
            }
            let (prefix, suffix) = key_filter(c);
            for (other_events, p, s) in &seen {
                let same_event = events
                    .iter()
                    .any(|e| other_events.iter().any(|o| events_overlap(e, o)));
                let prefixes = prefix.starts_with(p) || p.starts_with(prefix);
                let suffixes = suffix.ends_with(s) || s.ends_with(suffix);
                if same_event && prefixes && suffixes {
                    return Err(invalid_argument(
                        "Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules if the prefixes are overlapping for the same event type.",
                        "Event",
                        events.first().copied().unwrap_or(""),
                    ));
                }
            }
            seen.push((events, prefix, suffix));
        }
    }
    Ok(())
}

fn validate_filter(c: &Value) -> Result<(), AwsError> {
    let Some(key) = c.get("Filter").and_then(|f| f.get("Key")) else {
        return Ok(());
    };
    let (mut prefixes, mut suffixes) = (0, 0);
    for r in list(key, "FilterRules") {
        let name = r.get("Name").and_then(Value::as_str).unwrap_or("");
        let value = r.get("Value").and_then(Value::as_str).unwrap_or("");
        if name.eq_ignore_ascii_case("prefix") {
            prefixes += 1;
        } else if name.eq_ignore_ascii_case("suffix") {
            suffixes += 1;
        } else {
            return Err(invalid_argument(
                "filter rule name must be either prefix or suffix",
                "FilterRule",
                name,
            ));
        }
        if value.len() > 1024 {
            return Err(invalid_argument(
                "The filter rule value is too long",
                "FilterRule",
                name,
            ));
        }
    }
    if prefixes > 1 || suffixes > 1 {
        let which = if prefixes > 1 { "prefix" } else { "suffix" };
        return Err(invalid_argument(
            &format!("Cannot specify more than one {which} rule in a filter."),
            "FilterRule",
            which,
        ));
    }
    Ok(())
}

/// Whether a configuration's events include `event` (`s3:` prefixed).
fn subscribed(c: &Value, event: &str) -> bool {
    events_of(c).iter().any(|e| {
        *e == event
            || e.strip_suffix('*')
                .is_some_and(|stem| stem.ends_with(':') && event.starts_with(stem))
    })
}

/// The queues an event on `key` goes to, in configuration order. `event_name` may be
/// given with or without the `s3:` prefix.
pub fn targets(config: &Value, event_name: &str, key: &str) -> Vec<Target> {
    let event = if event_name.starts_with("s3:") {
        event_name.to_string()
    } else {
        format!("s3:{event_name}")
    };
    list(config, "QueueConfigurations")
        .iter()
        .filter(|c| subscribed(c, &event))
        .filter(|c| {
            let (prefix, suffix) = key_filter(c);
            key.starts_with(prefix) && key.ends_with(suffix)
        })
        .filter_map(|c| {
            Some(Target {
                queue_arn: c.get("QueueArn")?.as_str()?.to_string(),
                configuration_id: c
                    .get("Id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            })
        })
        .collect()
}

/// The configuration as S3 stores it: an `Id` given to every destination that lacks one
/// (the Id is what events report) and filter rule names as `Prefix` / `Suffix`.
pub fn with_generated_ids(config: &Value) -> Value {
    let mut out = config.clone();
    for (kind, _) in KINDS {
        if let Some(items) = out.get_mut(kind).and_then(Value::as_array_mut) {
            for item in items.iter_mut() {
                if let Some(obj) = item.as_object_mut() {
                    let missing = obj
                        .get("Id")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty);
                    if missing {
                        obj.insert("Id".into(), Value::from(uuid::Uuid::new_v4().to_string()));
                    }
                    // S3 stores filter rule names capitalised, whatever case they were sent in.
                    if let Some(rules) = obj
                        .get_mut("Filter")
                        .and_then(|f| f.pointer_mut("/Key/FilterRules"))
                        .and_then(Value::as_array_mut)
                    {
                        for rule in rules {
                            let name = rule
                                .get("Name")
                                .and_then(Value::as_str)
                                .map(str::to_ascii_lowercase);
                            let fixed = match name.as_deref() {
                                Some("prefix") => "Prefix",
                                Some("suffix") => "Suffix",
                                _ => continue,
                            };
                            rule["Name"] = Value::from(fixed);
                        }
                    }
                }
            }
        }
    }
    out
}

/// ISO 8601 with exactly three fraction digits, as every event time has.
fn event_time(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let whole = timestamp::format_iso8601_secs(secs);
    let stem = whole.strip_suffix('Z').unwrap_or(&whole);
    format!("{stem}.{:03}Z", ms % 1000)
}

/// The object key as S3 writes it into an event: form-encoded, spaces as `+`.
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_KEEP)
        .to_string()
        .replace(' ', "+")
}

/// A stand-in for `x-amz-id-2`, derived from the request id so it is stable per request.
fn host_id(request_id: &str) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(format!("host-{request_id}").as_bytes()))
}

/// The JSON body S3 delivers for one event to one configuration.
pub fn event_message(facts: &EventFacts, configuration_id: &str) -> String {
    let name = facts
        .event_name
        .strip_prefix("s3:")
        .unwrap_or(facts.event_name);
    let mut object = serde_json::Map::new();
    object.insert("key".into(), Value::from(encode_key(facts.key)));
    if let Some(size) = facts.size {
        object.insert("size".into(), Value::from(size));
    }
    if let Some(etag) = facts.etag {
        // Records carry the ETag without the quotes HTTP headers put around it.
        object.insert("eTag".into(), Value::from(etag.trim_matches('"')));
    }
    if let Some(v) = facts.version_id {
        object.insert("versionId".into(), Value::from(v));
    }
    object.insert("sequencer".into(), Value::from(facts.sequencer.as_str()));
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": facts.region,
        "eventTime": event_time(facts.event_time_ms),
        "eventName": name,
        "userIdentity": {"principalId": facts.principal_id},
        "requestParameters": {"sourceIPAddress": facts.source_ip},
        "responseElements": {
            "x-amz-request-id": facts.request_id,
            "x-amz-id-2": host_id(facts.request_id)
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": facts.bucket,
                "ownerIdentity": {"principalId": facts.account_id},
                "arn": format!("arn:aws:s3:::{}", facts.bucket)
            },
            "object": Value::Object(object)
        }
    }]})
    .to_string()
}

/// The `s3:TestEvent` message S3 sends to each destination when a configuration is saved.
pub fn test_event_message(bucket: &str, request_id: &str, time_ms: u64) -> String {
    json!({
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": event_time(time_ms),
        "Bucket": bucket,
        "RequestId": request_id,
        "HostId": host_id(request_id)
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q1: &str = "arn:aws:sqs:us-east-1:000000000000:q1";
    const Q2: &str = "arn:aws:sqs:us-east-1:000000000000:q2";

    fn queue(id: &str, arn: &str, events: &[&str], rules: &[(&str, &str)]) -> Value {
        let rules: Vec<Value> = rules
            .iter()
            .map(|(n, v)| json!({"Name": n, "Value": v}))
            .collect();
        json!({"Id": id, "QueueArn": arn, "Events": events, "Filter": {"Key": {"FilterRules": rules}}})
    }

    fn exists(arn: &str) -> bool {
        arn == Q1 || arn == Q2
    }

    #[test]
    fn validation_table() {
        let c = |qs: Vec<Value>| json!({"QueueConfigurations": qs});
        let created = ["s3:ObjectCreated:*"];
        let cases: Vec<(Value, Option<&str>)> = vec![
            (c(vec![queue("a", Q1, &created, &[])]), None),
            (
                c(vec![queue(
                    "a",
                    "arn:aws:sqs:us-east-1:000000000000:nope",
                    &created,
                    &[],
                )]),
                Some("Unable to validate the following destination configurations"),
            ),
            (
                c(vec![queue("a", Q1, &["s3:ObjectCreated:Bogus"], &[])]),
                Some("The event is not supported for notifications"),
            ),
            (
                c(vec![queue("a", Q1, &created, &[("middle", "x")])]),
                Some("filter rule name must be either prefix or suffix"),
            ),
            (
                c(vec![queue(
                    "a",
                    Q1,
                    &created,
                    &[("prefix", "a"), ("prefix", "b")],
                )]),
                Some("Cannot specify more than one prefix rule in a filter."),
            ),
            // Same event, overlapping prefixes and suffixes: ambiguous.
            (
                c(vec![
                    queue("a", Q1, &created, &[("prefix", "img/")]),
                    queue("b", Q2, &["s3:ObjectCreated:Put"], &[("prefix", "img/x")]),
                ]),
                Some("ambiguous"),
            ),
            (
                c(vec![
                    queue("a", Q1, &created, &[("suffix", ".jpg")]),
                    queue("b", Q2, &created, &[("suffix", ".png")]),
                ]),
                None,
            ),
            (
                c(vec![
                    queue("a", Q1, &created, &[("prefix", "a/")]),
                    queue("b", Q2, &created, &[("prefix", "b/")]),
                ]),
                None,
            ),
            (
                c(vec![
                    queue("a", Q1, &created, &[]),
                    queue("b", Q2, &["s3:ObjectRemoved:*"], &[]),
                ]),
                None,
            ),
            (
                json!({"TopicConfigurations": [{"TopicArn": "arn:aws:sns:us-east-1:0:t", "Events": created}]}),
                Some("Unable to validate"),
            ),
            (
                c(vec![json!({"QueueArn": Q1, "Events": []})]),
                Some("not well-formed"),
            ),
            (json!({}), None),
        ];
        for (config, want) in cases {
            let got = validate(&config, &exists).err();
            match (got, want) {
                (None, None) => {}
                (Some(e), Some(w)) => assert!(e.message.contains(w), "{config}: {e:?}"),
                (got, want) => panic!("{config}: {got:?} vs {want:?}"),
            }
        }
        let err = validate(&c(vec![queue("a", "arn:x", &created, &[])]), &exists).unwrap_err();
        assert_eq!(
            err.fields[0],
            ("ArgumentName".to_string(), "arn:x".to_string())
        );
    }

    #[test]
    fn targets_table() {
        let config = json!({"QueueConfigurations": [
            queue("all-created", Q1, &["s3:ObjectCreated:*"], &[]),
            queue("jpg-puts", Q2, &["s3:ObjectCreated:Put"], &[("prefix", "images/"), ("suffix", ".jpg")]),
            queue("removed", Q1, &["s3:ObjectRemoved:Delete"], &[]),
        ]});
        let ids = |event: &str, key: &str| -> Vec<String> {
            targets(&config, event, key)
                .into_iter()
                .map(|t| t.configuration_id)
                .collect()
        };
        assert_eq!(
            ids("ObjectCreated:Put", "images/a.jpg"),
            ["all-created", "jpg-puts"]
        );
        assert_eq!(ids("s3:ObjectCreated:Put", "images/a.png"), ["all-created"]);
        assert_eq!(ids("ObjectCreated:Copy", "images/a.jpg"), ["all-created"]);
        assert_eq!(ids("ObjectRemoved:Delete", "x"), ["removed"]);
        assert!(ids("ObjectRemoved:DeleteMarkerCreated", "x").is_empty());
        assert_eq!(targets(&config, "ObjectCreated:Post", "k")[0].queue_arn, Q1);
    }

    #[test]
    fn messages() {
        let facts = EventFacts {
            event_name: "ObjectCreated:Put",
            event_time_ms: 1_704_164_645_007,
            region: "us-east-1",
            bucket: "bkt",
            account_id: "000000000000",
            principal_id: "AWS:AIDAEXAMPLE",
            source_ip: "127.0.0.1",
            request_id: "RID",
            key: "my photos/a=b.jpg",
            size: Some(1024),
            etag: Some("\"d41d8cd98f00b204e9800998ecf8427e\""),
            version_id: None,
            sequencer: "0055AED6DCD90281E5".into(),
        };
        let msg: Value = serde_json::from_str(&event_message(&facts, "cfg")).unwrap();
        let r = &msg["Records"][0];
        assert_eq!(r["eventVersion"], "2.1");
        assert_eq!(r["eventSource"], "aws:s3");
        assert_eq!(r["eventTime"], "2024-01-02T03:04:05.007Z");
        assert_eq!(r["eventName"], "ObjectCreated:Put");
        assert_eq!(r["requestParameters"]["sourceIPAddress"], "127.0.0.1");
        assert_eq!(r["responseElements"]["x-amz-request-id"], "RID");
        assert_eq!(r["s3"]["configurationId"], "cfg");
        assert_eq!(r["s3"]["bucket"]["arn"], "arn:aws:s3:::bkt");
        assert_eq!(r["s3"]["object"]["key"], "my+photos/a%3Db.jpg");
        assert_eq!(r["s3"]["object"]["size"], 1024);
        assert_eq!(
            r["s3"]["object"]["eTag"],
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert!(r["s3"]["object"].get("versionId").is_none());
        let t: Value =
            serde_json::from_str(&test_event_message("bkt", "RID", 1_704_164_645_000)).unwrap();
        assert_eq!(t["Event"], "s3:TestEvent");
        assert_eq!(t["Service"], "Amazon S3");
        assert_eq!(t["Time"], "2024-01-02T03:04:05.000Z");
        assert_eq!(t["Bucket"], "bkt");
        let filled = with_generated_ids(
            &json!({"QueueConfigurations": [{"QueueArn": Q1, "Events": ["s3:ObjectCreated:*"]}]}),
        );
        assert!(filled["QueueConfigurations"][0]["Id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()));
    }
}
