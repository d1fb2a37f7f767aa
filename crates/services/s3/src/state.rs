//! What S3 keeps: bucket records (with every bucket-level configuration as
//! the decoded model value), object versions, multipart uploads and their
//! parts, and how each is laid out in the store.
//!
//! Store tables (keys are bytes, values JSON unless said otherwise):
//! - `s3_buckets`: bucket name → [`BucketRecord`].
//! - `s3_objects`: `bucket \0 key \0 seq (u64 BE)` → the version's record
//!   (see [`ObjectMeta::encode`]): a binary summary of what listings read, then
//!   the JSON of the rest. Records of two earlier layouts are read as they
//!   are (the JSON of the whole [`ObjectMeta`] after its `u32 LE` length, and
//!   those written before `s3_bodies` existed with the inline body after it);
//!   a write of a version rewrites its record in the current layout and moves
//!   such a body to `s3_bodies`.
//! - `s3_bodies`: the same key → the body of an object kept inline (up to
//!   [`INLINE_MAX`] bytes). Small bodies ride in the group-committed log with
//!   their record, so writing them costs no fsync of their own; apart from the
//!   records, a listing reads a few hundred bytes per key, not the bodies.
//! - `s3_uploads`: `bucket \0 upload id` → [`Upload`].
//! - `s3_parts`: `upload id \0 part number (u32 BE)` → [`Part`].
//! - `s3_meta`: `seq_floor` → u64 BE, below which no later start hands out
//!   an [`ObjectMeta::seq`] (see [`start_seq`]).
//!
//! An object record carries its layout in its first bytes (see
//! [`RECORD_V2`]); the other tables' records are JSON, whose fields are added
//! with defaults.

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

    /// The `s3_objects` record: [`RECORD_V2`], the summary (see [`Summary`]),
    /// then the JSON of the other fields ([`Rest`]). An inline body goes to `s3_bodies`.
    pub fn encode(&self) -> Vec<u8> {
        let rest = serde_json::to_vec(&RestOut {
            key: &self.key,
            headers: &self.headers,
            metadata: &self.metadata,
            acl: &self.acl,
            sse: &self.sse,
            website_redirect: &self.website_redirect,
            parts: &self.parts,
            body: &self.body,
        })
        .unwrap_or_default();
        let mut out = Vec::with_capacity(96 + rest.len());
        out.extend_from_slice(&RECORD_V2);
        Summary {
            seq: self.seq,
            size: self.size,
            last_modified_ms: self.last_modified_ms,
            delete_marker: self.delete_marker,
            restored_until_ms: self.restored_until_ms,
            storage_class: &self.storage_class,
            version_id: &self.version_id,
            etag: &self.etag,
            owner: &self.owner,
            checksum: self
                .checksum
                .as_ref()
                .map(|(a, v, k)| (a.as_str(), v.as_str(), k.as_str())),
            tags: &self.tags,
        }
        .write(&mut out);
        out.extend_from_slice(&rest);
        out
    }

    /// Reads a record of any layout back; `with_body` copies the inline body
    /// that a record of the first layout carries after its JSON.
    pub fn decode(bytes: &[u8], with_body: bool) -> Option<ObjectMeta> {
        let Some(record) = bytes.strip_prefix(&RECORD_V2) else {
            let (json, body) = earlier_layout(bytes)?;
            let mut meta: ObjectMeta = serde_json::from_slice(json).ok()?;
            if with_body {
                meta.inline = Bytes::copy_from_slice(body);
            }
            return Some(meta);
        };
        let mut reader = Reader(record);
        let s = ObjectSummary::read(&mut reader)?;
        let rest: Rest = serde_json::from_slice(reader.0).ok()?;
        Some(ObjectMeta {
            key: rest.key,
            version_id: s.version_id,
            seq: s.seq,
            delete_marker: s.delete_marker,
            size: s.size,
            etag: s.etag,
            last_modified_ms: s.last_modified_ms,
            owner: s.owner,
            headers: rest.headers,
            metadata: rest.metadata,
            storage_class: s.storage_class,
            tags: s.tags,
            acl: rest.acl,
            sse: rest.sse,
            website_redirect: rest.website_redirect,
            checksum: s.checksum,
            parts: rest.parts,
            body: rest.body,
            restored_until_ms: s.restored_until_ms,
            inline: Bytes::new(),
        })
    }
}

/// The first bytes of an object record of the current layout. The earlier
/// layouts start with the JSON's length as `u32 LE`; read that way these
/// bytes say almost 4 GiB, which no such record is. The first byte is the
/// layout's number (2; the earlier ones have none).
pub const RECORD_V2: [u8; 4] = [2, 0xff, 0xff, 0xff];

/// An earlier layout's JSON and what follows it (an inline body, or nothing).
fn earlier_layout(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    Some((bytes.get(4..4 + len)?, bytes.get(4 + len..)?))
}

/// The fields of a version that listings and lifecycle runs read, at the
/// front of its record, written by hand rather than through serde: a page of
/// a thousand keys decodes a thousand of these, and fields in a fixed order
/// need no names, escapes or number parsing. No binary serde format is a
/// dependency (bincode and postcard are not in the tree; ciborium is, but
/// CBOR names every field like JSON), and the layout is small enough to keep
/// in view here. Integers are LEB128 varints, strings a varint length and
/// their UTF-8 bytes:
///
/// ```text
/// seq, size, last_modified_ms          varints
/// flags                                one byte: 1 delete marker,
///                                      2 restored_until_ms follows, 4 checksum follows
/// restored_until_ms                    varint, if flag 2
/// storage_class, version_id, etag, owner   strings
/// algorithm, value, type               strings, if flag 4
/// tag count, then key and value of each    varint, strings
/// ```
struct Summary<'a> {
    seq: u64,
    size: u64,
    last_modified_ms: u64,
    delete_marker: bool,
    restored_until_ms: Option<u64>,
    storage_class: &'a str,
    version_id: &'a str,
    etag: &'a str,
    owner: &'a str,
    checksum: Option<(&'a str, &'a str, &'a str)>,
    tags: &'a [(String, String)],
}

const DELETE_MARKER: u8 = 1;
const RESTORED: u8 = 2;
const CHECKSUM: u8 = 4;

impl Summary<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        put_varint(out, self.seq);
        put_varint(out, self.size);
        put_varint(out, self.last_modified_ms);
        let mut flags = 0;
        if self.delete_marker {
            flags |= DELETE_MARKER;
        }
        if self.restored_until_ms.is_some() {
            flags |= RESTORED;
        }
        if self.checksum.is_some() {
            flags |= CHECKSUM;
        }
        out.push(flags);
        if let Some(until) = self.restored_until_ms {
            put_varint(out, until);
        }
        for s in [self.storage_class, self.version_id, self.etag, self.owner] {
            put_str(out, s);
        }
        if let Some((alg, value, kind)) = self.checksum {
            for s in [alg, value, kind] {
                put_str(out, s);
            }
        }
        put_varint(out, self.tags.len() as u64);
        for (k, v) in self.tags {
            put_str(out, k);
            put_str(out, v);
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The unread part of a record.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(n);
            }
        }
        None
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(s).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.str().map(str::to_string)
    }
}

/// The fields of a record after its summary, as JSON (written from [`RestOut`]).
#[derive(Deserialize)]
struct Rest {
    key: String,
    #[serde(default)]
    headers: SmallMap,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    acl: Option<Value>,
    #[serde(default)]
    sse: SmallMap,
    #[serde(default)]
    website_redirect: Option<String>,
    #[serde(default)]
    parts: Option<Vec<u64>>,
    body: BodyRef,
}

#[derive(Serialize)]
struct RestOut<'a> {
    key: &'a str,
    #[serde(skip_serializing_if = "SmallMap::is_empty")]
    headers: &'a SmallMap,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acl: &'a Option<Value>,
    #[serde(skip_serializing_if = "SmallMap::is_empty")]
    sse: &'a SmallMap,
    #[serde(skip_serializing_if = "Option::is_none")]
    website_redirect: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: &'a Option<Vec<u64>>,
    body: &'a BodyRef,
}

/// What a listing (and a lifecycle run) reads of a version: the summary at
/// the front of its record, without the headers, metadata, ACL and body,
/// which a page of a thousand versions would otherwise build and drop.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// Reads the summary of a record of any layout (see [`ObjectMeta::encode`]);
    /// one of the current layout without touching its JSON.
    pub fn decode(bytes: &[u8]) -> Option<ObjectSummary> {
        match bytes.strip_prefix(&RECORD_V2) {
            Some(record) => ObjectSummary::read(&mut Reader(record)),
            None => serde_json::from_slice(earlier_layout(bytes)?.0).ok(),
        }
    }

    /// The fields [`Summary::write`] wrote, in its order.
    fn read(r: &mut Reader) -> Option<ObjectSummary> {
        let seq = r.varint()?;
        let size = r.varint()?;
        let last_modified_ms = r.varint()?;
        let flags = r.byte()?;
        let restored_until_ms = if flags & RESTORED != 0 {
            Some(r.varint()?)
        } else {
            None
        };
        let storage_class = r.string()?;
        let version_id = r.string()?;
        let etag = r.string()?;
        let owner = r.string()?;
        let checksum = if flags & CHECKSUM != 0 {
            Some((r.string()?, r.string()?, r.string()?))
        } else {
            None
        };
        let count = r.varint()?;
        // Each tag takes two bytes at least: a count beyond that is a bad record.
        if count > r.0.len() as u64 / 2 {
            return None;
        }
        let mut tags = Vec::with_capacity(count as usize);
        for _ in 0..count {
            tags.push((r.string()?, r.string()?));
        }
        Some(ObjectSummary {
            version_id,
            seq,
            delete_marker: flags & DELETE_MARKER != 0,
            size,
            etag,
            last_modified_ms,
            owner,
            storage_class,
            tags,
            checksum,
            restored_until_ms,
        })
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

    fn meta() -> ObjectMeta {
        ObjectMeta {
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
        }
    }

    /// A record of the layout before [`RECORD_V2`]: the JSON's length and the JSON.
    fn first_layout(json: &str) -> Vec<u8> {
        let mut out = (json.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(json.as_bytes());
        out
    }

    /// Everything a record keeps of `meta`, comparable.
    fn fields(meta: &ObjectMeta) -> Value {
        serde_json::to_value(meta).expect("serialize")
    }

    #[test]
    fn records_round_trip_with_inline_bodies() {
        let meta = meta();
        // The first layout: the body after the JSON.
        let json = serde_json::to_string(&meta).expect("json");
        let mut earlier = first_layout(&json);
        earlier.extend_from_slice(&meta.inline);
        let back = ObjectMeta::decode(&earlier, true).expect("decode");
        assert_eq!(back.inline, Bytes::from_static(b"abc"));
        assert!(ObjectMeta::decode(&earlier, false)
            .expect("decode")
            .inline
            .is_empty());
        assert!(ObjectMeta::decode(&meta.encode(), true)
            .expect("decode")
            .inline
            .is_empty());
        assert_eq!((back.seq, back.tags.clone()), (7, meta.tags.clone()));
        assert!(ObjectMeta::decode(b"\x01\x00", true).is_none());
    }

    /// Records written by the release before the summary, taken as main wrote
    /// them (field order and all), read the same as the current layout.
    #[test]
    fn earlier_and_current_layouts_decode_alike() {
        let plain = concat!(
            r#"{"key":"photos/2024/ä b.jpg","version_id":"null","seq":1796670649755000,"#,
            r#""delete_marker":false,"size":1024,"etag":"\"0f343b0931126a20f133d67c2b018a3b\"","#,
            r#""last_modified_ms":1796670649755,"owner":"000000000000","#,
            r#""headers":{"ContentType":"image/jpeg","CacheControl":"max-age=60"},"#,
            r#""metadata":{"camera":"x100","ünï":"cödé"},"storage_class":"STANDARD","#,
            r#""tags":[["team","blue"],["stage","prod"]],"sse":{"ServerSideEncryption":"AES256"},"#,
            r#""body":"Inline"}"#
        );
        let rich = concat!(
            r#"{"key":"big","version_id":"3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY","seq":42,"#,
            r#""delete_marker":false,"size":10485760,"etag":"\"9b2cf535f27731c974343645a3985328-2\"","#,
            r#""last_modified_ms":1700000000123,"owner":"111122223333","headers":{},"metadata":{},"#,
            r#""storage_class":"GLACIER","tags":[],"#,
            r#""acl":[{"Grantee":{"Type":"Group","URI":"http://acs.amazonaws.com/groups/global/AllUsers"},"Permission":"READ"}],"#,
            r#""sse":{},"website_redirect":"/elsewhere","#,
            r#""checksum":["CRC32","AAAAAA==","COMPOSITE"],"parts":[5242880,5242880],"#,
            r#""body":{"Files":[["ab/cdef",5242880],["ab/cdeg",5242880]]},"restored_until_ms":0}"#
        );
        let marker = concat!(
            r#"{"key":"gone","version_id":"v1","seq":43,"delete_marker":true,"size":0,"#,
            r#""etag":"","last_modified_ms":5,"owner":"000000000000","headers":{},"#,
            r#""metadata":{},"storage_class":"STANDARD","tags":[],"sse":{},"body":"Inline"}"#
        );
        // A record from before storage classes, markers and tags were kept: their defaults.
        let oldest = concat!(
            r#"{"key":"o","version_id":"null","seq":1,"size":0,"etag":"\"d41d8cd98f00b204e9800998ecf8427e\"","#,
            r#""last_modified_ms":2,"owner":"000000000000","body":"Inline"}"#
        );
        for json in [plain, rich, marker, oldest] {
            let earlier = first_layout(json);
            let old = ObjectMeta::decode(&earlier, false).expect("earlier layout");
            let current = old.encode();
            assert_eq!(current[..4], RECORD_V2);
            let new = ObjectMeta::decode(&current, false).expect("current layout");
            assert_eq!(fields(&new), fields(&old), "{json}");
            let summary = ObjectSummary::decode(&earlier).expect("earlier summary");
            assert_eq!(
                ObjectSummary::decode(&current).expect("current summary"),
                summary
            );
            assert_eq!(
                (summary.seq, &summary.etag, &summary.storage_class),
                (old.seq, &old.etag, &old.storage_class)
            );
            assert_eq!(
                (&summary.tags, &summary.checksum, summary.restored_until_ms),
                (&old.tags, &old.checksum, old.restored_until_ms)
            );
            // With the body of the layout before `s3_bodies` after the JSON.
            let mut with_body = earlier.clone();
            with_body.extend_from_slice(b"body");
            let old = ObjectMeta::decode(&with_body, true).expect("body layout");
            assert_eq!(fields(&old), fields(&new));
            assert_eq!(old.inline, Bytes::from_static(b"body"));
            assert_eq!(ObjectSummary::decode(&with_body), Some(summary));
        }
        assert_eq!(
            ObjectMeta::decode(&first_layout(oldest), false)
                .expect("oldest")
                .storage_class,
            "STANDARD"
        );
        // The summary and the JSON of the rest take a third less than the
        // whole JSON did (304 bytes against 451 for this object).
        let (earlier, current) = (
            first_layout(plain).len(),
            ObjectMeta::decode(&first_layout(plain), false)
                .expect("plain")
                .encode()
                .len(),
        );
        assert!(current * 10 < earlier * 7, "{current} of {earlier} bytes");
    }

    #[test]
    fn cut_or_damaged_records_are_refused() {
        let mut meta = meta();
        meta.checksum = Some(("SHA256".into(), "x".into(), "FULL_OBJECT".into()));
        meta.restored_until_ms = Some(9);
        let record = meta.encode();
        // Every cut of the summary is refused (the JSON is what comes after it).
        let json_at = record.len()
            - serde_json::to_vec(&RestOut {
                key: &meta.key,
                headers: &meta.headers,
                metadata: &meta.metadata,
                acl: &meta.acl,
                sse: &meta.sse,
                website_redirect: &meta.website_redirect,
                parts: &meta.parts,
                body: &meta.body,
            })
            .expect("json")
            .len();
        for end in 0..record.len() {
            assert!(ObjectMeta::decode(&record[..end], false).is_none(), "{end}");
            if end < json_at {
                assert!(ObjectSummary::decode(&record[..end]).is_none(), "{end}");
            }
        }
        assert_eq!(
            ObjectSummary::decode(&record).expect("whole").checksum,
            meta.checksum
        );
        // A tag count beyond what the record holds.
        let mut huge = RECORD_V2.to_vec();
        Summary {
            seq: 1,
            size: 0,
            last_modified_ms: 0,
            delete_marker: false,
            restored_until_ms: None,
            storage_class: "STANDARD",
            version_id: "null",
            etag: "",
            owner: "",
            checksum: None,
            tags: &[],
        }
        .write(&mut huge);
        huge.pop();
        put_varint(&mut huge, u64::MAX);
        assert!(ObjectSummary::decode(&huge).is_none());
    }

    #[test]
    fn varints_round_trip() {
        for n in [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            let mut r = Reader(&out);
            assert_eq!(r.varint(), Some(n));
            assert!(r.0.is_empty());
        }
        // Eleven continuation bytes are no u64.
        assert_eq!(Reader(&[0x80; 11]).varint(), None);
    }
}
