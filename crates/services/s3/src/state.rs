//! What S3 keeps: bucket records (with every bucket-level configuration as
//! the decoded model value), object versions, multipart uploads and their
//! parts, and how each is laid out in the store.
//!
//! Store tables (keys are bytes, values JSON unless said otherwise):
//! - `s3_buckets`: bucket name → [`BucketRecord`].
//! - `s3_objects`: `bucket \0 key \0 seq (u64 BE)` → `u32 LE json length`,
//!   then the [`ObjectMeta`] JSON. Records written before `s3_bodies` existed
//!   carry an inline body after the JSON; they are read as they are, and a
//!   rewrite moves the body to `s3_bodies`.
//! - `s3_bodies`: the same key → the body of an object kept inline (up to
//!   [`INLINE_MAX`] bytes). Small bodies ride in the group-committed log with
//!   their record, so writing them costs no fsync of their own; apart from the
//!   records, a listing reads a few hundred bytes per key, not the bodies.
//! - `s3_uploads`: `bucket \0 upload id` → [`Upload`].
//! - `s3_parts`: `upload id \0 part number (u32 BE)` → [`Part`].
//! - `s3_meta`: `seq_floor` → u64 BE, below which no later start hands out
//!   an [`ObjectMeta::seq`] (see [`start_seq`]).
//!
//! Every record carries the format version through the store's own version.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const BUCKETS: &str = "s3_buckets";
pub const OBJECTS: &str = "s3_objects";
pub const BODIES: &str = "s3_bodies";
pub const UPLOADS: &str = "s3_uploads";
pub const PARTS: &str = "s3_parts";
pub const META: &str = "s3_meta";
const SEQ_FLOOR: &[u8] = b"seq_floor";
/// Seqs a start may hand out before the next start's floor.
const SEQ_BLOCK: u64 = 1 << 40;

/// The first seq of this start: after every seq of earlier starts, without
/// reading their records. A start reserves [`SEQ_BLOCK`] seqs by storing the
/// next floor; the reservation is queued before any write of this start, so
/// it is in the log ahead of every record that uses one of its seqs.
pub fn start_seq(store: &nimbus_store::Store) -> Result<u64, nimbus_store::StoreError> {
    let floor = store
        .get(META, SEQ_FLOOR)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes);
    let start = floor.max(nimbus_core::now_millis() * 1000);
    let mut batch = nimbus_store::Batch::new();
    batch.put(
        META,
        SEQ_FLOOR.to_vec(),
        (start + SEQ_BLOCK).to_be_bytes().to_vec(),
    );
    // Not awaited: being first in the log is what matters, not being durable now.
    drop(store.submit(batch));
    Ok(start)
}

/// Bodies up to this size are kept with their record (in the log and in redb)
/// instead of in a file of their own.
pub const INLINE_MAX: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketRecord {
    pub name: String,
    pub owner: String,
    pub region: String,
    pub created_ms: u64,
    #[serde(default)]
    pub config: BucketConfig,
    /// The LocationConstraint as created when it is a legacy name of the region
    /// (`EU` for eu-west-1), which GetBucketLocation reports as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
}

/// Bucket-level settings, each as the model value its Put operation received.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BucketConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The ACL grants (list of Grant values); `None` = the owner's full control only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<Value>,
    /// "Enabled" or "Suspended"; `None` = never versioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Value>,
    /// ObjectOwnership: BucketOwnerEnforced (the default since 2023), BucketOwnerPreferred, ObjectWriter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<String>,
    /// `None` = deleted (never set keeps the default that CreateBucket wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<Value>,
}

/// Where an object's body is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum BodyRef {
    /// Kept with the record (see [`INLINE_MAX`]).
    Inline,
    /// Files in order (one, or one per part of a multipart object) with their sizes.
    Files(Vec<(String, u64)>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: String,
    /// "null" for objects written while versioning was never enabled or suspended.
    pub version_id: String,
    /// Global write order; orders versions and names the store record.
    pub seq: u64,
    #[serde(default)]
    pub delete_marker: bool,
    pub size: u64,
    /// With quotes, as S3 sends it.
    pub etag: String,
    pub last_modified_ms: u64,
    pub owner: String,
    /// Standard headers by model member name (ContentType, CacheControl, Expires, ...).
    #[serde(default)]
    pub headers: SmallMap,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default = "standard")]
    pub storage_class: String,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Value>,
    /// ServerSideEncryption, SSEKMSKeyId, BucketKeyEnabled as sent.
    #[serde(default)]
    pub sse: SmallMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_redirect: Option<String>,
    /// (algorithm member suffix such as "CRC32", base64 value, "FULL_OBJECT" | "COMPOSITE").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<(String, String, String)>,
    /// Part sizes of a multipart object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<u64>>,
    pub body: BodyRef,
    /// Archived objects: Some(epoch ms until which a restored copy is readable), or Some(0) while none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_until_ms: Option<u64>,
    #[serde(skip)]
    pub inline: Bytes,
}

/// A few named values kept as a list. An object carries one to three standard headers
/// and encryption settings, and a listing decodes a thousand objects: a `BTreeMap`
/// node costs about a kilobyte, a list of two pairs a fraction of that. Written as a
/// JSON object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SmallMap(Vec<(String, Value)>);

impl SmallMap {
    pub fn new() -> Self {
        SmallMap(Vec::new())
    }

    pub fn insert(&mut self, name: String, value: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<'a> IntoIterator for &'a SmallMap {
    type Item = (&'a String, &'a Value);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Value)>,
        fn(&'a (String, Value)) -> (&'a String, &'a Value),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for SmallMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SmallMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::<String, Value>::deserialize(deserializer)?;
        Ok(SmallMap(map.into_iter().collect()))
    }
}

fn standard() -> String {
    "STANDARD".to_string()
}

impl ObjectMeta {
    pub fn files(&self) -> &[(String, u64)] {
        match &self.body {
            BodyRef::Files(files) => files,
            BodyRef::Inline => &[],
        }
    }

    pub fn is_archived(&self) -> bool {
        matches!(self.storage_class.as_str(), "GLACIER" | "DEEP_ARCHIVE")
    }

    /// Readable now: not archived, or restored and not yet expired again.
    pub fn is_readable(&self, now_ms: u64) -> bool {
        !self.is_archived() || self.restored_until_ms.is_some_and(|t| t > now_ms)
    }

    /// The `s3_objects` record: the metadata only (an inline body goes to `s3_bodies`).
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(4 + json.len());
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        out
    }

    /// Reads a record back; `with_body` copies the inline body that a record of
    /// the earlier layout carries after its JSON.
    pub fn decode(bytes: &[u8], with_body: bool) -> Option<ObjectMeta> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let json = bytes.get(4..4 + len)?;
        let mut meta: ObjectMeta = serde_json::from_slice(json).ok()?;
        let body = bytes.get(4 + len..)?;
        if with_body {
            meta.inline = Bytes::copy_from_slice(body);
        }
        Some(meta)
    }
}

/// What a listing (and a lifecycle run) reads of a version: its record
/// decoded without the headers, metadata, ACL and body, which a page of a
/// thousand versions would otherwise build and drop.
#[derive(Debug, Clone, Deserialize)]
pub struct ObjectSummary {
    pub version_id: String,
    pub seq: u64,
    #[serde(default)]
    pub delete_marker: bool,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub owner: String,
    #[serde(default = "standard")]
    pub storage_class: String,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    #[serde(default)]
    pub checksum: Option<(String, String, String)>,
    #[serde(default)]
    pub restored_until_ms: Option<u64>,
}

impl ObjectSummary {
    /// Reads the summary of a record (see [`ObjectMeta::encode`]).
    pub fn decode(bytes: &[u8]) -> Option<ObjectSummary> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        serde_json::from_slice(bytes.get(4..4 + len)?).ok()
    }

    pub fn is_archived(&self) -> bool {
        matches!(self.storage_class.as_str(), "GLACIER" | "DEEP_ARCHIVE")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub initiated_ms: u64,
    pub owner: String,
    /// The object's settings from CreateMultipartUpload (headers, metadata, tags, ...);
    /// body, size, etag and checksum are filled at completion.
    pub template: ObjectMeta,
    /// Requested checksum algorithm and type (COMPOSITE or FULL_OBJECT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<(String, String)>,
}

pub fn object_key(bucket: &str, key: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket.len() + key.len() + 10);
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn upload_key(bucket: &str, upload_id: &str) -> Vec<u8> {
    let mut k = bucket.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(upload_id.as_bytes());
    k
}

pub fn part_key(upload_id: &str, number: u32) -> Vec<u8> {
    let mut k = upload_id.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&number.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_maps_read_and_write_the_object_form() {
        // Records written when these were BTreeMaps read back unchanged.
        let mut m: SmallMap = serde_json::from_value(
            json!({"ContentType": "text/plain", "CacheControl": "max-age=1"}),
        )
        .expect("object form");
        assert_eq!(m.get("ContentType"), Some(&json!("text/plain")));
        m.insert("ContentType".into(), json!("text/html"));
        m.insert("Expires".into(), json!(10));
        assert_eq!(
            serde_json::to_value(&m).expect("serialize"),
            json!({"ContentType": "text/html", "CacheControl": "max-age=1", "Expires": 10})
        );
        assert!(m.contains_key("Expires") && !m.contains_key("ContentLanguage"));
    }

    #[test]
    fn records_round_trip_with_inline_bodies() {
        let meta = ObjectMeta {
            key: "k".into(),
            version_id: "null".into(),
            seq: 7,
            delete_marker: false,
            size: 3,
            etag: "\"e\"".into(),
            last_modified_ms: 1,
            owner: "000000000000".into(),
            headers: SmallMap::new(),
            metadata: BTreeMap::new(),
            storage_class: "STANDARD".into(),
            tags: vec![("a".into(), "b".into())],
            acl: None,
            sse: SmallMap::new(),
            website_redirect: None,
            checksum: None,
            parts: None,
            body: BodyRef::Inline,
            restored_until_ms: None,
            inline: Bytes::from_static(b"abc"),
        };
        // The earlier layout: the body after the JSON.
        let mut earlier = meta.encode();
        earlier.extend_from_slice(&meta.inline);
        let back = ObjectMeta::decode(&earlier, true).expect("decode");
        assert_eq!(back.inline, Bytes::from_static(b"abc"));
        assert!(ObjectMeta::decode(&meta.encode(), true)
            .expect("decode")
            .inline
            .is_empty());
        assert_eq!((back.seq, back.tags.clone()), (7, meta.tags.clone()));
        assert!(ObjectMeta::decode(b"\x01\x00", true).is_none());
    }
}
