//! A bucket's objects as the handlers see them: read from the store when
//! asked, never held whole in memory. A bucket of a million objects costs
//! what an empty one does; what stays resident is the store's page cache.
//!
//! Reads ([`Bucket::versions`], [`Bucket::scan_keys`]) see every write
//! queued before them (the store's overlay). Writes take [`Bucket::edit`],
//! which holds the bucket's write lock while a handler reads the versions of
//! the keys it changes, decides, and queues its batch, so that two writes to
//! one key never decide on the same old state and reach the log in the order
//! they were decided. The versions an [`Objects`] hands out are its own copy:
//! changing them is how a handler keeps track of what its batch will do.

use crate::errors;
use crate::state::{self, BodyRef, ObjectMeta, ObjectSummary};
use crate::{Bucket, Versions};
use bytes::Bytes;
use nimbus_core::AwsError;
use nimbus_store::{Batch, Step};
use std::collections::BTreeMap;
use std::sync::{Arc, MutexGuard};

/// What a [`Bucket::scan_keys`] visitor asks for next.
pub enum KeyStep {
    Next,
    Stop,
    /// Go on at the first key at or after this one.
    SkipTo(String),
}

impl Bucket {
    /// The versions of `key`, oldest first (the last is current), without
    /// their inline bodies (see [`Bucket::with_body`]).
    pub fn versions(&self, key: &str) -> Result<Versions, AwsError> {
        let prefix = key_prefix(&self.name, key);
        let mut versions = Vec::new();
        let mut bad = None;
        self.store
            .scan(state::OBJECTS, &prefix, |k, v| {
                if !k.starts_with(&prefix) {
                    return Step::Stop;
                }
                match ObjectMeta::decode(v, false) {
                    Some(meta) => versions.push(Arc::new(meta)),
                    None => bad = Some(k.to_vec()),
                }
                Step::Next
            })
            .map_err(errors::store_failed)?;
        if let Some(k) = bad {
            tracing::warn!(
                "skipping an unreadable object record {:?}",
                String::from_utf8_lossy(&k)
            );
        }
        Ok(versions)
    }

    /// `meta` with its inline body, for the reads that send or copy it.
    pub fn with_body(&self, meta: Arc<ObjectMeta>) -> Result<Arc<ObjectMeta>, AwsError> {
        if meta.body != BodyRef::Inline || meta.size == 0 || !meta.inline.is_empty() {
            return Ok(meta);
        }
        let mut loaded = (*meta).clone();
        loaded.inline = self.inline_body(&meta)?;
        Ok(Arc::new(loaded))
    }

    fn inline_body(&self, meta: &ObjectMeta) -> Result<Bytes, AwsError> {
        let key = state::object_key(&self.name, &meta.key, meta.seq);
        let stored = |table| self.store.get(table, &key).map_err(errors::store_failed);
        if let Some(body) = stored(state::BODIES)? {
            return Ok(Bytes::from(body));
        }
        // A record of the earlier layout carries its body after its JSON.
        Ok(stored(state::OBJECTS)?
            .and_then(|record| ObjectMeta::decode(&record, true))
            .map(|m| m.inline)
            .unwrap_or_default())
    }

    /// Adds the writing of `meta`'s records to `batch`: the metadata, and the
    /// inline body when it is loaded or still inside a record of the earlier
    /// layout (which this write replaces).
    pub fn put_record(&self, batch: &mut Batch, meta: &ObjectMeta) -> Result<(), AwsError> {
        let key = state::object_key(&self.name, &meta.key, meta.seq);
        if meta.body == BodyRef::Inline && meta.size > 0 {
            if !meta.inline.is_empty() {
                batch.put(state::BODIES, key.clone(), meta.inline.to_vec());
            } else {
                let moved = self
                    .store
                    .get(state::BODIES, &key)
                    .map_err(errors::store_failed)?
                    .is_none();
                if moved {
                    batch.put(state::BODIES, key.clone(), self.inline_body(meta)?.to_vec());
                }
            }
        }
        batch.put(state::OBJECTS, key, meta.encode());
        Ok(())
    }

    /// Adds the deletion of a version's records to `batch`.
    pub fn delete_record(&self, batch: &mut Batch, key: &str, seq: u64) {
        let key = state::object_key(&self.name, key, seq);
        batch.delete(state::BODIES, key.clone());
        batch.delete(state::OBJECTS, key);
    }

    /// Whether the bucket holds any object version or delete marker.
    pub fn has_objects(&self) -> Result<bool, AwsError> {
        let prefix = bucket_prefix(&self.name);
        let mut found = false;
        self.store
            .scan(state::OBJECTS, &prefix, |k, _| {
                found = k.starts_with(&prefix);
                Step::Stop
            })
            .map_err(errors::store_failed)?;
        Ok(found)
    }

    /// Calls `visit` with each key from `from` on (at or after it), in key
    /// order, with the summaries of its versions oldest first (whatever
    /// changes a version reads it whole under [`Bucket::edit`]). The
    /// summaries are dropped after the call: `visit` may take their strings.
    pub fn scan_keys(
        &self,
        from: &str,
        mut visit: impl FnMut(&str, &mut [ObjectSummary]) -> KeyStep,
    ) -> Result<(), AwsError> {
        let prefix = bucket_prefix(&self.name);
        let mut start = prefix.clone();
        start.extend_from_slice(from.as_bytes());
        let mut key = String::new();
        let mut versions: Vec<ObjectSummary> = Vec::new();
        let mut stopped = false;
        // A key's versions are consecutive records; the key is visited when
        // the first record of the next key (or the end) shows they are complete.
        let mut flush = |key: &str, versions: &mut Vec<ObjectSummary>| -> Step {
            if versions.is_empty() {
                return Step::Next;
            }
            let step = visit(key, versions);
            versions.clear();
            match step {
                KeyStep::Next => Step::Next,
                KeyStep::Stop => Step::Stop,
                KeyStep::SkipTo(next) => {
                    let mut to = prefix.clone();
                    to.extend_from_slice(next.as_bytes());
                    Step::Seek(to)
                }
            }
        };
        self.store
            .scan(state::OBJECTS, &start, |k, v| {
                let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
                    return Step::Stop;
                };
                // `rest` is `key \0 seq`: the key is all but the last 9 bytes.
                let Some(this) = rest
                    .len()
                    .checked_sub(9)
                    .and_then(|end| std::str::from_utf8(&rest[..end]).ok())
                else {
                    return Step::Next;
                };
                if this != key {
                    match flush(&key, &mut versions) {
                        Step::Next => {}
                        Step::Stop => {
                            stopped = true;
                            return Step::Stop;
                        }
                        Step::Seek(to) if to.as_slice() > k => return Step::Seek(to),
                        // A seek to this record or before it: it is next anyway.
                        Step::Seek(_) => {}
                    }
                    key.clear();
                    key.push_str(this);
                }
                match ObjectSummary::decode(v) {
                    Some(summary) => versions.push(summary),
                    None => tracing::warn!("skipping an unreadable object record of {this:?}"),
                }
                Step::Next
            })
            .map_err(errors::store_failed)?;
        if !stopped {
            flush(&key, &mut versions);
        }
        Ok(())
    }

    /// Starts a change of this bucket's objects (see the module's notes).
    pub fn edit(&self) -> Objects<'_> {
        Objects {
            _writes: self.writes.lock().unwrap_or_else(|p| p.into_inner()),
            bucket: self,
            loaded: BTreeMap::new(),
        }
    }
}

/// The bucket's write lock, with the versions read under it.
pub struct Objects<'a> {
    _writes: MutexGuard<'a, ()>,
    bucket: &'a Bucket,
    loaded: BTreeMap<String, Versions>,
}

impl Objects<'_> {
    /// The versions of `key` (empty when it has none), read once.
    pub fn versions(&mut self, key: &str) -> Result<&mut Versions, AwsError> {
        if !self.loaded.contains_key(key) {
            let versions = self.bucket.versions(key)?;
            self.loaded.insert(key.to_string(), versions);
        }
        self.loaded
            .get_mut(key)
            .ok_or_else(|| AwsError::internal("versions vanished"))
    }

    /// The versions of `key`, or `None` when it has none.
    pub fn get_mut(&mut self, key: &str) -> Result<Option<&mut Versions>, AwsError> {
        let versions = self.versions(key)?;
        Ok(if versions.is_empty() {
            None
        } else {
            Some(versions)
        })
    }

    /// Takes the versions of `key` out of this view (the caller deletes their records).
    pub fn remove(&mut self, key: &str) -> Result<Option<Versions>, AwsError> {
        let versions = std::mem::take(self.versions(key)?);
        Ok(if versions.is_empty() {
            None
        } else {
            Some(versions)
        })
    }
}

fn bucket_prefix(bucket: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket.len() + 1);
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k
}

fn key_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = bucket_prefix(bucket);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k
}
