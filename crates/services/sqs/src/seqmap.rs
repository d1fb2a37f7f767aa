//! A map from message positions to entries, laid out for a queue: positions
//! are handed out in increasing order and mostly leave from the front, so the
//! entries sit in sorted runs of up to [`RUN`] consecutive slots, each run one
//! allocation, found through a small ordered index of runs.
//!
//! Why not a `HashMap` or a `BTreeMap`: a queue holds millions of entries,
//! and both waste much of their memory on exactly this pattern. A hash map
//! doubles its table (at two million entries it has room for four), and a
//! B-tree filled in ascending order leaves its nodes half full. Here appends
//! fill each run completely, and a run that empties below a quarter of its
//! capacity gives the rest back.

use std::collections::BTreeMap;

/// Entries per run: large enough that the index of runs is small, small
/// enough that inserting or removing inside a run moves little.
const RUN: usize = 64;

pub struct SeqMap<V> {
    /// Runs by a lower bound of their positions (their first position when
    /// they were made), each sorted and above every position of the run before.
    runs: BTreeMap<u64, Vec<(u64, V)>>,
}

impl<V> Default for SeqMap<V> {
    fn default() -> Self {
        SeqMap {
            runs: BTreeMap::new(),
        }
    }
}

impl<V> SeqMap<V> {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.runs.values().map(Vec::len).sum()
    }

    /// The run that holds `seq` if any run can: the last one starting at or before it.
    fn run_of(&self, seq: u64) -> Option<(u64, &Vec<(u64, V)>)> {
        self.runs.range(..=seq).next_back().map(|(k, r)| (*k, r))
    }

    pub fn get(&self, seq: u64) -> Option<&V> {
        let (_, run) = self.run_of(seq)?;
        let at = run.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        Some(&run[at].1)
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut V> {
        let (_, run) = self.runs.range_mut(..=seq).next_back()?;
        let at = run.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        Some(&mut run[at].1)
    }

    /// Inserts or replaces the entry at `seq`; returns the one it replaced.
    pub fn insert(&mut self, seq: u64, value: V) -> Option<V> {
        let Some(key) = self.run_of(seq).map(|(k, _)| k) else {
            return self.insert_before_all(seq, value);
        };
        let run = self.runs.get_mut(&key)?;
        let at = match run.binary_search_by_key(&seq, |(s, _)| *s) {
            Ok(at) => return Some(std::mem::replace(&mut run[at].1, value)),
            Err(at) => at,
        };
        if run.len() < RUN {
            run.insert(at, (seq, value));
        } else if at == run.len() {
            // Appending past a full run: the usual case, a run of its own.
            let mut fresh = Vec::with_capacity(RUN);
            fresh.push((seq, value));
            self.runs.insert(seq, fresh);
        } else {
            // A full run splits in two and the entry goes into its half; the
            // right half is found by its first position.
            let mut right = run.split_off(RUN / 2);
            if at < RUN / 2 {
                run.insert(at, (seq, value));
            } else {
                right.insert(at - RUN / 2, (seq, value));
            }
            let right_key = right[0].0;
            self.runs.insert(right_key, right);
        }
        None
    }

    fn insert_before_all(&mut self, seq: u64, value: V) -> Option<V> {
        let first = self.runs.first_key_value().map(|(k, r)| (*k, r.len()));
        match first {
            Some((key, len)) if len < RUN => {
                if let Some(mut run) = self.runs.remove(&key) {
                    run.insert(0, (seq, value));
                    self.runs.insert(seq, run);
                }
            }
            _ => {
                let mut fresh = Vec::with_capacity(RUN);
                fresh.push((seq, value));
                self.runs.insert(seq, fresh);
            }
        }
        None
    }

    pub fn remove(&mut self, seq: u64) -> Option<V> {
        let (key, run) = self.runs.range_mut(..=seq).next_back()?;
        let at = run.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        let (_, value) = run.remove(at);
        if run.is_empty() {
            let key = *key;
            self.runs.remove(&key);
        } else if run.len() * 4 < run.capacity() {
            run.shrink_to(run.len() * 2);
        }
        Some(value)
    }

    /// Every entry, in position order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> + '_ {
        self.runs
            .values()
            .flat_map(|run| run.iter().map(|(s, v)| (*s, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Random inserts, replacements and removals agree with a BTreeMap.
    #[test]
    fn behaves_as_an_ordered_map() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut map = SeqMap::default();
        let mut model = BTreeMap::new();
        let mut next = 1000u64;
        for round in 0..60_000u32 {
            match rng.random_range(0..10) {
                // Mostly appends, as a queue does.
                0..=4 => {
                    next += 1;
                    assert_eq!(map.insert(next, round), model.insert(next, round));
                }
                // Anywhere, including below every position (put back, restore).
                5 => {
                    let seq = rng.random_range(0..next + 10);
                    assert_eq!(map.insert(seq, round), model.insert(seq, round));
                }
                6..=8 => {
                    // Mostly from the front.
                    let seq = match model.keys().next() {
                        Some(first) if rng.random_bool(0.7) => *first,
                        _ => rng.random_range(0..next + 10),
                    };
                    assert_eq!(map.remove(seq), model.remove(&seq));
                }
                _ => {
                    let seq = rng.random_range(0..next + 10);
                    assert_eq!(map.get(seq), model.get(&seq));
                    if let Some(v) = map.get_mut(seq) {
                        *v += 1;
                        *model.get_mut(&seq).expect("in the model too") += 1;
                    }
                }
            }
            assert_eq!(map.len(), model.len());
        }
        assert!(map
            .iter()
            .map(|(k, v)| (k, *v))
            .eq(model.iter().map(|(k, v)| (*k, *v))));
        assert!(map.iter().map(|(s, _)| s).eq(model.keys().copied()));
    }

    #[test]
    fn appends_fill_their_runs() {
        let mut map = SeqMap::default();
        for seq in 0..10_000u64 {
            map.insert(seq, ());
        }
        assert_eq!(map.runs.len(), 10_000usize.div_ceil(RUN));
        assert!(map.runs.values().all(|r| r.capacity() == RUN));
    }
}
