//! Bucket lifecycle rules: what a `BucketLifecycleConfiguration` says should happen to
//! an object and when. This module owns PutBucketLifecycleConfiguration validation,
//! filter matching (prefix, tags, object size, `And`), the due dates AWS computes
//! (creation or noncurrent time plus N days, rounded up to the next midnight UTC; or a
//! fixed date), the choice of the one action due for a version, the abort rule for
//! incomplete multipart uploads and the `x-amz-expiration` header. The caller (a
//! background sweep, GET/HEAD) supplies the facts about each version.

use nimbus_core::timestamp;
use nimbus_core::AwsError;
use serde_json::Value;
use std::collections::HashSet;

const DAY: i64 = 86_400;
const MAX_RULES: usize = 1000;
const STORAGE_CLASSES: [&str; 6] = [
    "GLACIER",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
];

/// What S3 knows about one object version when it evaluates lifecycle rules.
#[derive(Debug, Clone, Copy)]
pub struct ObjectFacts<'a> {
    pub key: &'a str,
    pub size: u64,
    pub tags: &'a [(String, String)],
    pub last_modified_secs: i64,
    pub is_current: bool,
    pub is_delete_marker: bool,
    /// When a newer version took this one's place; `None` for the current version.
    pub noncurrent_since_secs: Option<i64>,
    pub storage_class: &'a str,
    /// How many noncurrent versions of the key are newer than this one.
    pub newer_noncurrent_versions: usize,
    /// The current version is a delete marker and no other version of the key exists.
    pub only_version_is_delete_marker: bool,
}

/// The one lifecycle action due for a version now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleAction {
    /// Expire the current version (delete it, or add a delete marker when versioned).
    Expire,
    /// Remove an expired object delete marker.
    ExpireDeleteMarker,
    /// Permanently delete this noncurrent version.
    DeleteNoncurrent,
    Transition {
        storage_class: String,
    },
    None,
}

fn malformed_xml() -> AwsError {
    AwsError::new(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

fn invalid_argument(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidArgument", message)
}

/// A member that is present and not null (the codec may write either for absence).
fn member<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get(name).filter(|m| !m.is_null())
}

fn int(v: &Value, name: &str) -> Option<i64> {
    member(v, name).and_then(Value::as_i64)
}

fn rules(config: &Value) -> &[Value] {
    config
        .get("Rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn list<'a>(v: &'a Value, name: &str) -> &'a [Value] {
    member(v, name)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Epoch seconds of a `Date` member (the codec gives numbers; strings are accepted).
fn date(v: &Value, name: &str) -> Option<i64> {
    member(v, name)
        .and_then(timestamp::from_value)
        .map(|d| d.floor() as i64)
}

/// The filter's tags and whether it uses any, for the rules that forbid tag filters.
fn filter_has_tags(rule: &Value) -> bool {
    member(rule, "Filter").is_some_and(|f| {
        member(f, "Tag").is_some() || member(f, "And").is_some_and(|a| !list(a, "Tags").is_empty())
    })
}

/// Validates a PutBucketLifecycleConfiguration `LifecycleConfiguration`.
pub fn validate(config: &Value) -> Result<(), AwsError> {
    let rules = rules(config);
    if rules.is_empty() {
        return Err(malformed_xml());
    }
    if rules.len() > MAX_RULES {
        return Err(invalid_argument(
            "Lifecycle configuration must not have more than 1000 rules",
        ));
    }
    let mut ids = HashSet::new();
    for rule in rules {
        validate_rule(rule)?;
        if let Some(id) = member(rule, "ID").and_then(Value::as_str) {
            if !ids.insert(id) {
                return Err(invalid_argument(
                    "Rule ID must be unique. Found same ID for more than one rule",
                ));
            }
        }
    }
    Ok(())
}

fn validate_filter(filter: &Value) -> Result<(), AwsError> {
    let forms = [
        "Prefix",
        "Tag",
        "And",
        "ObjectSizeGreaterThan",
        "ObjectSizeLessThan",
    ];
    // A filter names exactly one condition (or none: the whole bucket); several
    // conditions must be combined under And.
    if forms.iter().filter(|f| member(filter, f).is_some()).count() > 1 {
        return Err(malformed_xml());
    }
    if let Some(tag) = member(filter, "Tag") {
        if member(tag, "Key").and_then(Value::as_str).is_none() {
            return Err(malformed_xml());
        }
    }
    let (gt, lt) = match member(filter, "And") {
        Some(and) => {
            for tag in list(and, "Tags") {
                if member(tag, "Key").and_then(Value::as_str).is_none() {
                    return Err(malformed_xml());
                }
            }
            (
                int(and, "ObjectSizeGreaterThan"),
                int(and, "ObjectSizeLessThan"),
            )
        }
        None => (
            int(filter, "ObjectSizeGreaterThan"),
            int(filter, "ObjectSizeLessThan"),
        ),
    };
    if gt.is_some_and(|n| n < 0) || lt.is_some_and(|n| n <= 0) {
        return Err(invalid_argument(
            "'ObjectSizeGreaterThan' and 'ObjectSizeLessThan' must be non-negative",
        ));
    }
    if let (Some(gt), Some(lt)) = (gt, lt) {
        if gt >= lt {
            return Err(invalid_argument(
                "'ObjectSizeGreaterThan' must be less than 'ObjectSizeLessThan'",
            ));
        }
    }
    Ok(())
}

fn validate_date(v: &Value, name: &str) -> Result<Option<i64>, AwsError> {
    if member(v, name).is_none() {
        return Ok(None);
    }
    let Some(d) = date(v, name) else {
        return Err(malformed_xml());
    };
    if d.rem_euclid(DAY) != 0 {
        return Err(invalid_argument("'Date' must be at midnight GMT"));
    }
    Ok(Some(d))
}

fn validate_rule(rule: &Value) -> Result<(), AwsError> {
    match member(rule, "Status").and_then(Value::as_str) {
        Some("Enabled") | Some("Disabled") => {}
        _ => return Err(malformed_xml()),
    }
    if member(rule, "ID")
        .and_then(Value::as_str)
        .is_some_and(|id| id.chars().count() > 255)
    {
        return Err(invalid_argument(
            "ID length should not exceed allowed limit of 255",
        ));
    }
    // The rule's scope is either the legacy top-level Prefix or a Filter, never both
    // and never neither.
    match (member(rule, "Filter"), member(rule, "Prefix")) {
        (Some(_), Some(_)) | (None, None) => return Err(malformed_xml()),
        (Some(filter), None) => validate_filter(filter)?,
        (None, Some(_)) => {}
    }
    let actions = [
        "Expiration",
        "Transitions",
        "NoncurrentVersionExpiration",
        "NoncurrentVersionTransitions",
        "AbortIncompleteMultipartUpload",
    ];
    if !actions.iter().any(|a| member(rule, a).is_some()) {
        return Err(AwsError::new(
            "InvalidRequest",
            "At least one action needs to be specified in a rule",
        ));
    }
    let tags = filter_has_tags(rule);
    let mut expiration_days = None;
    if let Some(exp) = member(rule, "Expiration") {
        let days = int(exp, "Days");
        let date_set = validate_date(exp, "Date")?;
        let marker = member(exp, "ExpiredObjectDeleteMarker").is_some();
        if marker && (days.is_some() || date_set.is_some()) {
            return Err(invalid_argument(
                "ExpiredObjectDeleteMarker cannot be specified with expiration days or date.",
            ));
        }
        if marker && tags {
            return Err(invalid_argument(
                "ExpiredObjectDeleteMarker cannot be specified with a tag-based filter.",
            ));
        }
        match (days, date_set, marker) {
            (None, None, false) => return Err(malformed_xml()),
            (Some(_), Some(_), _) => return Err(malformed_xml()),
            _ => {}
        }
        if member(exp, "Days").is_some() && days.is_none_or(|d| d <= 0) {
            return Err(invalid_argument(
                "'Days' for Expiration action must be a positive integer",
            ));
        }
        expiration_days = days;
    }
    let mut seen = HashSet::new();
    let (mut any_days, mut any_date) = (false, false);
    for t in list(rule, "Transitions") {
        let class = validate_class(t)?;
        if !seen.insert(class) {
            return Err(AwsError::new(
                "InvalidRequest",
                "'StorageClass' must be different for 'Transition' actions in same 'Rule'",
            ));
        }
        let days = int(t, "Days");
        let date_set = validate_date(t, "Date")?;
        match (member(t, "Days").is_some(), date_set.is_some()) {
            (true, true) | (false, false) => return Err(malformed_xml()),
            (true, false) => any_days = true,
            (false, true) => any_date = true,
        }
        if member(t, "Days").is_some() {
            let Some(days) = days.filter(|d| *d >= 0) else {
                return Err(invalid_argument(
                    "'Days' in Transition action must be nonnegative",
                ));
            };
            check_ia_minimum(class, days, "Days", "Transition")?;
            if expiration_days.is_some_and(|e| e <= days) {
                return Err(invalid_argument(format!(
                    "'Days' in the Expiration action must be greater than 'Days' in the Transition action for StorageClass '{class}'"
                )));
            }
        }
    }
    if any_days && any_date {
        return Err(invalid_argument(
            "Found mixed 'Date' and 'Days' based Transition actions in lifecycle rule",
        ));
    }
    if let Some(nve) = member(rule, "NoncurrentVersionExpiration") {
        if int(nve, "NoncurrentDays").is_none_or(|d| d <= 0) {
            return Err(invalid_argument(
                "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
            ));
        }
        check_newer_versions(nve)?;
    }
    let mut seen = HashSet::new();
    for t in list(rule, "NoncurrentVersionTransitions") {
        let class = validate_class(t)?;
        if !seen.insert(class) {
            return Err(AwsError::new(
                "InvalidRequest",
                "'StorageClass' must be different for 'NoncurrentVersionTransition' actions in same 'Rule'",
            ));
        }
        let Some(days) = int(t, "NoncurrentDays").filter(|d| *d >= 0) else {
            return Err(invalid_argument(
                "'NoncurrentDays' in NoncurrentVersionTransition action must be nonnegative",
            ));
        };
        check_ia_minimum(class, days, "NoncurrentDays", "NoncurrentVersionTransition")?;
        check_newer_versions(t)?;
    }
    if let Some(abort) = member(rule, "AbortIncompleteMultipartUpload") {
        if tags {
            return Err(invalid_argument(
                "AbortIncompleteMultipartUpload cannot be specified with Tags.",
            ));
        }
        if int(abort, "DaysAfterInitiation").is_none_or(|d| d <= 0) {
            return Err(invalid_argument(
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
            ));
        }
    }
    Ok(())
}

fn validate_class(t: &Value) -> Result<&str, AwsError> {
    match member(t, "StorageClass").and_then(Value::as_str) {
        Some(c) if STORAGE_CLASSES.contains(&c) => Ok(c),
        Some(_) => Err(AwsError::new(
            "InvalidStorageClass",
            "The storage class you specified is not valid",
        )),
        None => Err(malformed_xml()),
    }
}

/// The infrequent-access classes bill a 30-day minimum, so S3 refuses moving objects
/// there sooner.
fn check_ia_minimum(class: &str, days: i64, field: &str, action: &str) -> Result<(), AwsError> {
    if matches!(class, "STANDARD_IA" | "ONEZONE_IA") && days < 30 {
        return Err(invalid_argument(format!(
            "'{field}' in {action} action must be greater than or equal to 30 for storageClass '{class}'"
        )));
    }
    Ok(())
}

fn check_newer_versions(v: &Value) -> Result<(), AwsError> {
    if member(v, "NewerNoncurrentVersions").is_some()
        && int(v, "NewerNoncurrentVersions").is_none_or(|n| !(1..=100).contains(&n))
    {
        return Err(invalid_argument(
            "'NewerNoncurrentVersions' must be between 1 and 100",
        ));
    }
    Ok(())
}

fn tag_matches(tag: &Value, tags: &[(String, String)]) -> bool {
    let key = tag.get("Key").and_then(Value::as_str).unwrap_or("");
    let value = tag.get("Value").and_then(Value::as_str).unwrap_or("");
    tags.iter().any(|(k, v)| k == key && v == value)
}

fn size_matches(v: &Value, size: u64) -> bool {
    let size = i128::from(size);
    int(v, "ObjectSizeGreaterThan").is_none_or(|n| size > i128::from(n))
        && int(v, "ObjectSizeLessThan").is_none_or(|n| size < i128::from(n))
}

/// Whether an enabled rule's scope covers the object. `size`/`tags` are `None` where
/// the caller cannot know them (multipart uploads), and then such conditions fail.
fn rule_applies(
    rule: &Value,
    key: &str,
    size: Option<u64>,
    tags: Option<&[(String, String)]>,
) -> bool {
    if member(rule, "Status").and_then(Value::as_str) != Some("Enabled") {
        return false;
    }
    let Some(filter) = member(rule, "Filter") else {
        let prefix = member(rule, "Prefix").and_then(Value::as_str).unwrap_or("");
        return key.starts_with(prefix);
    };
    let prefix_ok =
        |v: &Value| key.starts_with(member(v, "Prefix").and_then(Value::as_str).unwrap_or(""));
    let has_size = |v: &Value| {
        member(v, "ObjectSizeGreaterThan").is_some() || member(v, "ObjectSizeLessThan").is_some()
    };
    let sizes_ok = |v: &Value| !has_size(v) || size.is_some_and(|s| size_matches(v, s));
    if let Some(and) = member(filter, "And") {
        let tag_list = list(and, "Tags");
        return prefix_ok(and)
            && sizes_ok(and)
            && (tag_list.is_empty()
                || tags.is_some_and(|t| tag_list.iter().all(|tag| tag_matches(tag, t))));
    }
    if let Some(tag) = member(filter, "Tag") {
        return tags.is_some_and(|t| tag_matches(tag, t));
    }
    prefix_ok(filter) && sizes_ok(filter)
}

/// `start + days`, rounded up to the next midnight UTC: how S3 dates Days actions.
fn days_due(start: i64, days: i64) -> i64 {
    let t = start.saturating_add(days.saturating_mul(DAY));
    let midnight = t.div_euclid(DAY) * DAY;
    if midnight == t {
        t
    } else {
        midnight + DAY
    }
}

/// Coldness order of S3's transition waterfall: objects only move down it.
fn tier(class: &str) -> u8 {
    match class {
        "STANDARD_IA" => 1,
        "INTELLIGENT_TIERING" => 2,
        "ONEZONE_IA" => 3,
        "GLACIER_IR" => 4,
        "GLACIER" => 5,
        "DEEP_ARCHIVE" => 6,
        _ => 0,
    }
}

/// When a rule's expiration of this version is due, for the `Expiration` (current) or
/// `NoncurrentVersionExpiration` action. `None` when the rule has no such action or the
/// `NewerNoncurrentVersions` count keeps the version.
fn expiration_due(rule: &Value, obj: &ObjectFacts) -> Option<i64> {
    if obj.is_current {
        let exp = member(rule, "Expiration")?;
        if let Some(d) = date(exp, "Date") {
            return Some(d);
        }
        return int(exp, "Days").map(|n| days_due(obj.last_modified_secs, n));
    }
    let nve = member(rule, "NoncurrentVersionExpiration")?;
    let since = obj.noncurrent_since_secs?;
    let keep = int(nve, "NewerNoncurrentVersions").unwrap_or(0);
    if (obj.newer_noncurrent_versions as i64) < keep {
        return None;
    }
    int(nve, "NoncurrentDays").map(|n| days_due(since, n))
}

/// The action due for this version at `now_secs`. Expiration wins over transition;
/// among due transitions the one due most recently wins (the colder on a tie).
pub fn due_action(config: &Value, obj: &ObjectFacts, now_secs: i64) -> LifecycleAction {
    let mut transition: Option<(i64, &str)> = None;
    let mut marker_expired = false;
    for rule in rules(config) {
        if !rule_applies(rule, obj.key, Some(obj.size), Some(obj.tags)) {
            continue;
        }
        if obj.is_current && obj.is_delete_marker {
            // A delete marker with nothing behind it serves no purpose once a rule
            // asks for it to go.
            let flagged = member(rule, "Expiration")
                .and_then(|e| member(e, "ExpiredObjectDeleteMarker"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            marker_expired |= flagged && obj.only_version_is_delete_marker;
            continue;
        }
        if expiration_due(rule, obj).is_some_and(|due| due <= now_secs) {
            return if obj.is_current {
                LifecycleAction::Expire
            } else {
                LifecycleAction::DeleteNoncurrent
            };
        }
        if obj.is_delete_marker {
            continue;
        }
        let (entries, day_field) = if obj.is_current {
            (list(rule, "Transitions"), "Days")
        } else {
            (list(rule, "NoncurrentVersionTransitions"), "NoncurrentDays")
        };
        for t in entries {
            let Some(class) = member(t, "StorageClass").and_then(Value::as_str) else {
                continue;
            };
            let due = if obj.is_current {
                date(t, "Date")
                    .or_else(|| int(t, day_field).map(|n| days_due(obj.last_modified_secs, n)))
            } else {
                let keep = int(t, "NewerNoncurrentVersions").unwrap_or(0);
                if (obj.newer_noncurrent_versions as i64) < keep {
                    None
                } else {
                    obj.noncurrent_since_secs
                        .and_then(|s| int(t, day_field).map(|n| days_due(s, n)))
                }
            };
            let Some(due) = due.filter(|d| *d <= now_secs) else {
                continue;
            };
            if tier(class) <= tier(obj.storage_class) {
                continue;
            }
            let better = match transition {
                None => true,
                Some((d, c)) => due > d || (due == d && tier(class) > tier(c)),
            };
            if better {
                transition = Some((due, class));
            }
        }
    }
    if marker_expired {
        return LifecycleAction::ExpireDeleteMarker;
    }
    match transition {
        Some((_, class)) => LifecycleAction::Transition {
            storage_class: class.to_string(),
        },
        None => LifecycleAction::None,
    }
}

/// Whether an incomplete multipart upload of `key` started at `initiated_secs` is due
/// to be aborted. Only prefix scopes can apply: AWS refuses tag filters on this action
/// and an upload has no size yet.
pub fn abort_multipart_due(config: &Value, key: &str, initiated_secs: i64, now_secs: i64) -> bool {
    rules(config).iter().any(|rule| {
        rule_applies(rule, key, None, None)
            && member(rule, "AbortIncompleteMultipartUpload")
                .and_then(|a| int(a, "DaysAfterInitiation"))
                .is_some_and(|n| days_due(initiated_secs, n) <= now_secs)
    })
}

/// The `x-amz-expiration` header for a version: the earliest expiration any enabled,
/// matching rule sets, with that rule's ID. None for delete markers and versions that
/// no rule expires.
pub fn expiration_header(config: &Value, obj: &ObjectFacts) -> Option<String> {
    if obj.is_delete_marker {
        return None;
    }
    let mut best: Option<(i64, &str)> = None;
    for rule in rules(config) {
        if !rule_applies(rule, obj.key, Some(obj.size), Some(obj.tags)) {
            continue;
        }
        let Some(due) = expiration_due(rule, obj) else {
            continue;
        };
        if best.is_none_or(|(d, _)| due < d) {
            let id = member(rule, "ID").and_then(Value::as_str).unwrap_or("");
            best = Some((due, id));
        }
    }
    best.map(|(due, id)| {
        format!(
            "expiry-date=\"{}\", rule-id=\"{}\"",
            timestamp::format(due as f64, "rfc822"),
            id
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_704_164_645; // 2024-01-02T03:04:05Z
    const MIDNIGHT_JAN3: i64 = 1_704_240_000;

    fn facts<'a>(key: &'a str, tags: &'a [(String, String)]) -> ObjectFacts<'a> {
        ObjectFacts {
            key,
            size: 1000,
            tags,
            last_modified_secs: T0,
            is_current: true,
            is_delete_marker: false,
            noncurrent_since_secs: None,
            storage_class: "STANDARD",
            newer_noncurrent_versions: 0,
            only_version_is_delete_marker: false,
        }
    }

    fn rule(extra: Value) -> Value {
        let mut r = json!({"ID": "r", "Status": "Enabled", "Filter": {}});
        if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                r.insert(k.clone(), v.clone());
            }
        }
        json!({"Rules": [r]})
    }

    #[test]
    fn validation_table() {
        let cases: Vec<(Value, Option<&str>)> = vec![
            (rule(json!({"Expiration": {"Days": 30}})), None),
            (
                rule(json!({"Expiration": {"Days": 0}})),
                Some("InvalidArgument"),
            ),
            (rule(json!({"Expiration": {"Date": MIDNIGHT_JAN3}})), None),
            (
                rule(json!({"Expiration": {"Date": "2024-01-03T00:00:00Z"}})),
                None,
            ),
            (
                rule(json!({"Expiration": {"Date": T0}})),
                Some("InvalidArgument"),
            ),
            (
                rule(json!({"Expiration": {"Days": 1, "ExpiredObjectDeleteMarker": true}})),
                Some("InvalidArgument"),
            ),
            (
                rule(json!({"Expiration": {"ExpiredObjectDeleteMarker": true}})),
                None,
            ),
            (
                rule(
                    json!({"Expiration": {"ExpiredObjectDeleteMarker": true}, "Filter": {"Tag": {"Key": "a", "Value": "b"}}}),
                ),
                Some("InvalidArgument"),
            ),
            (rule(json!({"Expiration": {}})), Some("MalformedXML")),
            (rule(json!({})), Some("InvalidRequest")),
            (
                rule(json!({"Status": "On", "Expiration": {"Days": 1}})),
                Some("MalformedXML"),
            ),
            (
                rule(json!({"ID": "x".repeat(256), "Expiration": {"Days": 1}})),
                Some("InvalidArgument"),
            ),
            (
                rule(json!({"Prefix": "a/", "Expiration": {"Days": 1}})),
                Some("MalformedXML"),
            ),
            (
                json!({"Rules": [{"Status": "Enabled", "Prefix": "a/", "Expiration": {"Days": 1}}]}),
                None,
            ),
            (
                json!({"Rules": [{"Status": "Enabled", "Expiration": {"Days": 1}}]}),
                Some("MalformedXML"),
            ),
            (
                rule(
                    json!({"Filter": {"Prefix": "a", "Tag": {"Key": "k", "Value": "v"}}, "Expiration": {"Days": 1}}),
                ),
                Some("MalformedXML"),
            ),
            (
                rule(
                    json!({"Filter": {"And": {"Prefix": "a", "Tags": [{"Key": "k", "Value": "v"}], "ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 100}}, "Expiration": {"Days": 1}}),
                ),
                None,
            ),
            (
                rule(
                    json!({"Filter": {"And": {"ObjectSizeGreaterThan": 100, "ObjectSizeLessThan": 10}}, "Expiration": {"Days": 1}}),
                ),
                Some("InvalidArgument"),
            ),
            (
                rule(
                    json!({"Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}, {"Days": 90, "StorageClass": "GLACIER"}]}),
                ),
                None,
            ),
            (
                rule(json!({"Transitions": [{"Days": 10, "StorageClass": "STANDARD_IA"}]})),
                Some("InvalidArgument"),
            ),
            (
                rule(json!({"Transitions": [{"Days": 0, "StorageClass": "GLACIER"}]})),
                None,
            ),
            (
                rule(json!({"Transitions": [{"Days": 1, "StorageClass": "SUPER_COLD"}]})),
                Some("InvalidStorageClass"),
            ),
            (
                rule(
                    json!({"Transitions": [{"Days": 1, "StorageClass": "GLACIER"}, {"Days": 5, "StorageClass": "GLACIER"}]}),
                ),
                Some("InvalidRequest"),
            ),
            (
                rule(
                    json!({"Transitions": [{"Days": 1, "StorageClass": "GLACIER"}, {"Date": MIDNIGHT_JAN3, "StorageClass": "DEEP_ARCHIVE"}]}),
                ),
                Some("InvalidArgument"),
            ),
            (
                rule(
                    json!({"Transitions": [{"Days": 60, "StorageClass": "GLACIER"}], "Expiration": {"Days": 30}}),
                ),
                Some("InvalidArgument"),
            ),
            (
                rule(json!({"NoncurrentVersionExpiration": {"NoncurrentDays": 0}})),
                Some("InvalidArgument"),
            ),
            (
                rule(
                    json!({"NoncurrentVersionExpiration": {"NoncurrentDays": 5, "NewerNoncurrentVersions": 101}}),
                ),
                Some("InvalidArgument"),
            ),
            (
                rule(
                    json!({"NoncurrentVersionTransitions": [{"NoncurrentDays": 29, "StorageClass": "ONEZONE_IA"}]}),
                ),
                Some("InvalidArgument"),
            ),
            (
                rule(json!({"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}})),
                None,
            ),
            (
                rule(
                    json!({"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}, "Filter": {"Tag": {"Key": "a", "Value": "b"}}}),
                ),
                Some("InvalidArgument"),
            ),
            (json!({"Rules": []}), Some("MalformedXML")),
        ];
        for (c, want) in cases {
            assert_eq!(validate(&c).err().map(|e| e.code).as_deref(), want, "{c}");
        }
        let dup = json!({"Rules": [
            {"ID": "a", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}},
            {"ID": "a", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 2}}
        ]});
        assert_eq!(validate(&dup).unwrap_err().code, "InvalidArgument");
    }

    #[test]
    fn days_round_up_to_midnight() {
        assert_eq!(days_due(T0, 1), MIDNIGHT_JAN3 + DAY);
        assert_eq!(days_due(MIDNIGHT_JAN3, 1), MIDNIGHT_JAN3 + DAY);
        let c = rule(json!({"Expiration": {"Days": 1}}));
        let f = facts("a", &[]);
        assert_eq!(
            due_action(&c, &f, MIDNIGHT_JAN3 + DAY - 1),
            LifecycleAction::None
        );
        assert_eq!(
            due_action(&c, &f, MIDNIGHT_JAN3 + DAY),
            LifecycleAction::Expire
        );
    }

    #[test]
    fn filters_table() {
        let tags = vec![("env".to_string(), "dev".to_string())];
        let cases = [
            (json!({"Prefix": "logs/"}), "logs/a", true),
            (json!({"Prefix": "logs/"}), "img/a", false),
            (json!({"Tag": {"Key": "env", "Value": "dev"}}), "x", true),
            (json!({"Tag": {"Key": "env", "Value": "prod"}}), "x", false),
            (json!({"ObjectSizeGreaterThan": 999}), "x", true),
            (json!({"ObjectSizeGreaterThan": 1000}), "x", false),
            (json!({"ObjectSizeLessThan": 1001}), "x", true),
            (
                json!({"And": {"Prefix": "l", "Tags": [{"Key": "env", "Value": "dev"}], "ObjectSizeLessThan": 5000}}),
                "lx",
                true,
            ),
            (
                json!({"And": {"Prefix": "l", "Tags": [{"Key": "env", "Value": "dev"}, {"Key": "b", "Value": "c"}]}}),
                "lx",
                false,
            ),
            (json!({}), "anything", true),
        ];
        for (filter, key, want) in cases {
            let c = rule(json!({"Filter": filter, "Expiration": {"Days": 1}}));
            let got = due_action(&c, &facts(key, &tags), T0 + 10 * DAY) == LifecycleAction::Expire;
            assert_eq!(got, want, "{filter} {key}");
        }
        let disabled =
            json!({"Rules": [{"Status": "Disabled", "Filter": {}, "Expiration": {"Days": 1}}]});
        assert_eq!(
            due_action(&disabled, &facts("a", &[]), T0 + 10 * DAY),
            LifecycleAction::None
        );
    }

    #[test]
    fn actions_table() {
        let c = json!({"Rules": [
            {"ID": "t", "Status": "Enabled", "Filter": {}, "Transitions": [
                {"Days": 30, "StorageClass": "STANDARD_IA"}, {"Days": 90, "StorageClass": "GLACIER"}],
             "NoncurrentVersionTransitions": [{"NoncurrentDays": 30, "StorageClass": "GLACIER"}],
             "NoncurrentVersionExpiration": {"NoncurrentDays": 60, "NewerNoncurrentVersions": 2}},
            {"ID": "e", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 100}},
            {"ID": "m", "Status": "Enabled", "Filter": {"Prefix": "dm/"}, "Expiration": {"ExpiredObjectDeleteMarker": true}}
        ]});
        let tr = |c: &str| LifecycleAction::Transition {
            storage_class: c.into(),
        };
        let cur = facts("k", &[]);
        let tmp = facts("tmp/k", &[]);
        let glacier = ObjectFacts {
            storage_class: "GLACIER",
            ..cur
        };
        let nc = |newer| ObjectFacts {
            is_current: false,
            noncurrent_since_secs: Some(T0),
            newer_noncurrent_versions: newer,
            ..cur
        };
        let marker = |only| ObjectFacts {
            key: "dm/x",
            is_delete_marker: true,
            only_version_is_delete_marker: only,
            ..cur
        };
        let cases = [
            (cur, 10, LifecycleAction::None),
            (cur, 31, tr("STANDARD_IA")),
            (cur, 91, tr("GLACIER")),
            (glacier, 91, LifecycleAction::None),
            (tmp, 91, tr("GLACIER")),
            (tmp, 101, LifecycleAction::Expire),
            (nc(0), 31, tr("GLACIER")),
            (nc(0), 61, tr("GLACIER")),
            (nc(2), 61, LifecycleAction::DeleteNoncurrent),
            (marker(true), 1, LifecycleAction::ExpireDeleteMarker),
            (marker(false), 1, LifecycleAction::None),
        ];
        for (i, (obj, days, want)) in cases.into_iter().enumerate() {
            assert_eq!(due_action(&c, &obj, T0 + days * DAY), want, "case {i}");
        }
    }

    #[test]
    fn multipart_and_header() {
        let c = json!({"Rules": [
            {"ID": "abort", "Status": "Enabled", "Filter": {"Prefix": "up/"}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
            {"ID": "picture-deletion-rule", "Status": "Enabled", "Filter": {"Prefix": "pics/"}, "Expiration": {"Date": 1_356_220_800}},
            {"ID": "later", "Status": "Enabled", "Filter": {"Prefix": "pics/"}, "Expiration": {"Days": 100000}}
        ]});
        assert!(!abort_multipart_due(&c, "up/a", T0, T0 + 7 * DAY));
        assert!(abort_multipart_due(&c, "up/a", T0, MIDNIGHT_JAN3 + 7 * DAY));
        assert!(!abort_multipart_due(&c, "down/a", T0, T0 + 70 * DAY));
        assert_eq!(
            expiration_header(&c, &facts("pics/a.jpg", &[])).as_deref(),
            Some(
                "expiry-date=\"Sun, 23 Dec 2012 00:00:00 GMT\", rule-id=\"picture-deletion-rule\""
            )
        );
        assert_eq!(expiration_header(&c, &facts("other", &[])), None);
    }
}
