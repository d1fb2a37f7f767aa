//! The changes that redb does not hold yet, shared by the callers that add
//! them, the readers that must see them and the writer that moves them into
//! redb at a checkpoint.
//!
//! A batch enters the overlay when it is submitted, before its WAL frame is
//! written, so a caller that orders its writes under a lock of its own (as a
//! service does per key) reads its previous write back at once, exactly as
//! when services kept their state in memory. Each key keeps its versions in
//! submission order: a checkpoint may apply only versions whose frames are
//! durable, while reads take the newest. Versions leave once redb holds them;
//! the epoch counts those departures, so a reader that opened its redb view
//! before one knows to open a newer view (see `Store::scan`).

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

/// One value of a key as submitted: `None` deletes it.
type Value = Option<Bytes>;

/// A key's versions not yet in redb, oldest first, each with its submission seq.
type Versions = Vec<(u64, Value)>;

/// One table's changes ready for redb: each key with its newest applicable value.
pub(crate) type TableChanges = Vec<(Vec<u8>, Value)>;

#[derive(Default)]
pub(crate) struct Overlay {
    tables: HashMap<String, BTreeMap<Vec<u8>, Versions>>,
    next_seq: u64,
    epoch: u64,
}

/// What an overlay lookup found: the key's newest change, or nothing pending.
pub(crate) enum Pending<'a> {
    Put(&'a [u8]),
    Deleted,
    None,
}

impl Overlay {
    /// Adds a batch's changes under the next submission seq and returns it.
    pub fn add(&mut self, ops: impl IntoIterator<Item = (String, Vec<u8>, Value)>) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        for (table, key, value) in ops {
            let versions = match self.tables.get_mut(&table) {
                Some(keys) => keys.entry(key).or_default(),
                None => self
                    .tables
                    .entry(table)
                    .or_default()
                    .entry(key)
                    .or_default(),
            };
            versions.push((seq, value));
        }
        seq
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn get(&self, table: &str, key: &[u8]) -> Pending<'_> {
        let newest = self
            .tables
            .get(table)
            .and_then(|keys| keys.get(key))
            .and_then(|versions| versions.last());
        match newest {
            Some((_, Some(value))) => Pending::Put(value),
            Some((_, None)) => Pending::Deleted,
            None => Pending::None,
        }
    }

    /// Up to `limit` keys of `table` from `from` on, each with its newest
    /// value, and whether they are all the overlay holds there.
    pub fn chunk(
        &self,
        table: &str,
        from: &Bound<Vec<u8>>,
        limit: usize,
    ) -> (Vec<(Vec<u8>, Value)>, bool) {
        let Some(keys) = self.tables.get(table) else {
            return (Vec::new(), true);
        };
        let start = match from {
            Bound::Included(k) => Bound::Included(k.as_slice()),
            Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        let mut range = keys.range::<[u8], _>((start, Bound::Unbounded));
        for (key, versions) in range.by_ref().take(limit) {
            if let Some((_, value)) = versions.last() {
                out.push((key.clone(), value.clone()));
            }
        }
        let complete = range.next().is_none();
        (out, complete)
    }

    /// For every key with a version submitted at or before `upto`, the newest
    /// such version: what a checkpoint writes when frames up to `upto` are durable.
    pub fn changes_upto(&self, upto: u64) -> Vec<(String, TableChanges)> {
        let mut out = Vec::new();
        for (name, keys) in &self.tables {
            let changes: TableChanges = keys
                .iter()
                .filter_map(|(key, versions)| {
                    versions
                        .iter()
                        .rev()
                        .find(|(seq, _)| *seq <= upto)
                        .map(|(_, value)| (key.clone(), value.clone()))
                })
                .collect();
            if !changes.is_empty() {
                out.push((name.clone(), changes));
            }
        }
        out
    }

    /// Drops the versions up to `upto` of the keys in `applied`, which redb
    /// now holds, and starts a new epoch.
    pub fn retire(&mut self, applied: &[(String, TableChanges)], upto: u64) {
        for (name, changes) in applied {
            let Some(keys) = self.tables.get_mut(name) else {
                continue;
            };
            for (key, _) in changes {
                if let Some(versions) = keys.get_mut(key) {
                    versions.retain(|(seq, _)| *seq > upto);
                    if versions.is_empty() {
                        keys.remove(key);
                    }
                }
            }
            if keys.is_empty() {
                self.tables.remove(name);
            }
        }
        self.epoch += 1;
    }

    /// Forgets every version submitted after `upto`: their frames failed to
    /// reach the log, so they must not be read as if they had.
    pub fn discard_after(&mut self, upto: u64) {
        for keys in self.tables.values_mut() {
            keys.retain(|_, versions| {
                versions.retain(|(seq, _)| *seq <= upto);
                !versions.is_empty()
            });
        }
        self.tables.retain(|_, keys| !keys.is_empty());
        self.epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(table: &str, key: &str, value: &str) -> (String, Vec<u8>, Value) {
        (
            table.into(),
            key.as_bytes().to_vec(),
            Some(Bytes::copy_from_slice(value.as_bytes())),
        )
    }

    #[test]
    fn a_checkpoint_takes_only_durable_versions_and_keeps_newer_ones() {
        let mut o = Overlay::default();
        let first = o.add([put("t", "k", "1"), put("t", "a", "x")]);
        let second = o.add([put("t", "k", "2")]);
        assert!(matches!(o.get("t", "k".as_bytes()), Pending::Put(b"2")));
        let changes = o.changes_upto(first);
        assert_eq!(changes.len(), 1);
        let values: Vec<_> = changes[0]
            .1
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(
            values,
            vec![
                (b"a".to_vec(), Some(Bytes::from_static(b"x"))),
                (b"k".to_vec(), Some(Bytes::from_static(b"1")))
            ]
        );
        let epoch = o.epoch();
        o.retire(&changes, first);
        assert_ne!(o.epoch(), epoch);
        assert!(matches!(o.get("t", b"a"), Pending::None));
        assert!(matches!(o.get("t", b"k"), Pending::Put(b"2")));
        o.discard_after(first);
        assert!(matches!(o.get("t", b"k"), Pending::None));
        assert!(second > first);
    }

    #[test]
    fn chunks_page_through_a_table_in_key_order() {
        let mut o = Overlay::default();
        o.add((0..5).map(|i| put("t", &format!("k{i}"), "v")));
        o.add([("t".into(), b"k2".to_vec(), None)]);
        let (first, complete) = o.chunk("t", &Bound::Unbounded, 3);
        assert!(!complete);
        assert_eq!(first.len(), 3);
        assert_eq!(first[2], (b"k2".to_vec(), None));
        let (rest, complete) = o.chunk("t", &Bound::Excluded(b"k2".to_vec()), 3);
        assert!(complete);
        assert_eq!(
            rest.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            vec![b"k3".to_vec(), b"k4".to_vec()]
        );
        assert_eq!(o.chunk("none", &Bound::Unbounded, 3), (Vec::new(), true));
    }
}
