//! The time tiers and what one series holds in one tier's time block:
//! raw data (every value with its count, every statistic set, at the
//! second or minute it was published for) or roll-up slots (per minute,
//! five minutes or hour: count, sum, minimum, maximum and a sketch of the
//! values). Blocks merge (several stored segments and the pending data of
//! a block are one block) and encode into a segment record.
//!
//! Segment record (all integers LE or varint, floats in the columns of
//! `codec`), starting with the format version and the kind:
//! - raw (`1`): value count; their second offsets in the block, ascending,
//!   as varint steps; the values as an XOR column; the counts as a count
//!   column; set count; the sets' offsets; their sample counts (count
//!   column); sums, minimums and maximums (XOR columns).
//! - roll-up (`2`): slot count; slot indexes as varint steps; sample counts
//!   (count column); minimums (XOR column); one kind byte per slot (low
//!   bits: how its values are kept, `0` a sketch follows, `1` none:
//!   percentiles unavailable, `2` one value, the minimum, so no sketch is
//!   stored; bit 2: its sum and maximum are stored, else every sample was
//!   the minimum); the sums and maximums of the slots with bit 2 (XOR
//!   columns); then the sketches of the slots marked `0`. A value published
//!   once a minute so costs its minute slot about 5 bytes.

use super::codec::{put_count_column, put_varint, put_xor_column, Reader};
use super::ingest::{Payload, SetStats};
use super::sketch::Sketch;
use std::collections::BTreeMap;

/// The version every segment record starts with.
pub const SEGMENT_VERSION: u8 = 1;
const KIND_RAW: u8 = 1;
const KIND_ROLLUP: u8 = 2;

const VALUES_SKETCH: u8 = 0;
const VALUES_NONE: u8 = 1;
const VALUES_SINGLE: u8 = 2;
/// Set in a slot's kind byte when its sum and maximum are stored; else the
/// maximum is the minimum and the sum the minimum times the count.
const SPREAD_STORED: u8 = 4;

/// The resolutions data is kept at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// Values as published, at their own resolution (second or minute).
    Raw,
    Minute,
    FiveMinute,
    Hour,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Raw, Tier::Minute, Tier::FiveMinute, Tier::Hour];
    pub const ROLLUPS: [Tier; 3] = [Tier::Minute, Tier::FiveMinute, Tier::Hour];

    pub fn code(self) -> u8 {
        match self {
            Tier::Raw => 0,
            Tier::Minute => 1,
            Tier::FiveMinute => 2,
            Tier::Hour => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Seconds per slot (raw data keeps whole seconds).
    pub fn slot_s(self) -> u64 {
        match self {
            Tier::Raw => 1,
            Tier::Minute => 60,
            Tier::FiveMinute => 300,
            Tier::Hour => 3600,
        }
    }

    /// Seconds per block: one record (segment run) per series per block.
    /// Sized so that a block holds at most a few thousand slots and a
    /// query over a tier's whole retention reads a few dozen blocks.
    pub fn block_s(self) -> u64 {
        match self {
            Tier::Raw => 3600,
            Tier::Minute => 86_400,
            Tier::FiveMinute => 7 * 86_400,
            Tier::Hour => 30 * 86_400,
        }
    }

    pub fn block_start(self, time_s: u64) -> u64 {
        time_s / self.block_s() * self.block_s()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawValue {
    /// Seconds from the block's start.
    pub offset: u32,
    pub value: f64,
    pub count: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawSet {
    pub offset: u32,
    pub stats: SetStats,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawBlock {
    pub values: Vec<RawValue>,
    pub sets: Vec<RawSet>,
}

/// One roll-up slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// The values' sketch; None once a statistic set or a negative value
    /// made the percentile family unavailable for the slot.
    pub sketch: Option<Sketch>,
}

impl Slot {
    fn empty() -> Slot {
        Slot {
            count: 0.0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sketch: Some(Sketch::default()),
        }
    }

    fn add_value(&mut self, value: f64, count: f64) {
        self.count += count;
        self.sum += value * count;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if value < 0.0 {
            self.sketch = None;
        } else if let Some(s) = &mut self.sketch {
            s.add(value, count);
        }
    }

    fn add_set(&mut self, set: &SetStats) {
        self.count += set.count;
        self.sum += set.sum;
        self.min = self.min.min(set.min);
        self.max = self.max.max(set.max);
        self.sketch = None;
    }

    pub fn merge(&mut self, other: &Slot) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        match (&mut self.sketch, &other.sketch) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            _ => self.sketch = None,
        }
    }

    /// Whether every sample had the same value, so the minimum and count
    /// give the maximum and sum (compared bit for bit: nothing is lost).
    fn is_uniform(&self) -> bool {
        self.max.to_bits() == self.min.to_bits()
            && (self.min * self.count).to_bits() == self.sum.to_bits()
    }

    /// Whether the sketch says nothing the aggregates do not: one value.
    fn is_single_value(&self) -> bool {
        self.min == self.max && self.sketch.as_ref().is_some_and(|s| s.bucket_count() == 1)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupBlock {
    /// Slot index within the block → slot.
    pub slots: BTreeMap<u32, Slot>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Raw(RawBlock),
    Rollup(RollupBlock),
}

impl Block {
    pub fn new(tier: Tier) -> Block {
        match tier {
            Tier::Raw => Block::Raw(RawBlock::default()),
            _ => Block::Rollup(RollupBlock::default()),
        }
    }

    /// Adds a sample at `offset_s` seconds into the block; returns how many
    /// new in-memory entries it took (what the pending budget counts).
    pub fn add(&mut self, tier: Tier, offset_s: u32, payload: &Payload) -> usize {
        match self {
            Block::Raw(raw) => match payload {
                Payload::Values(pairs) => {
                    raw.values
                        .extend(pairs.iter().map(|&(value, count)| RawValue {
                            offset: offset_s,
                            value,
                            count,
                        }));
                    pairs.len()
                }
                Payload::Set(stats) => {
                    raw.sets.push(RawSet {
                        offset: offset_s,
                        stats: *stats,
                    });
                    1
                }
            },
            Block::Rollup(rollup) => {
                let index = offset_s / tier.slot_s() as u32;
                let mut added = 0;
                let slot = rollup.slots.entry(index).or_insert_with(|| {
                    added = 1;
                    Slot::empty()
                });
                match payload {
                    Payload::Values(pairs) => {
                        for &(v, c) in pairs {
                            slot.add_value(v, c);
                        }
                    }
                    Payload::Set(stats) => slot.add_set(stats),
                }
                added
            }
        }
    }

    pub fn merge(&mut self, other: Block) {
        match (self, other) {
            (Block::Raw(mine), Block::Raw(theirs)) => {
                mine.values.extend(theirs.values);
                mine.sets.extend(theirs.sets);
            }
            (Block::Rollup(mine), Block::Rollup(theirs)) => {
                for (index, slot) in theirs.slots {
                    match mine.slots.get_mut(&index) {
                        Some(existing) => existing.merge(&slot),
                        None => {
                            mine.slots.insert(index, slot);
                        }
                    }
                }
            }
            // Tiers never mix under one key; keep what is there.
            _ => {}
        }
    }

    /// In-memory entries (the pending budget's unit).
    pub fn entries(&self) -> usize {
        match self {
            Block::Raw(raw) => raw.values.len() + raw.sets.len(),
            Block::Rollup(rollup) => rollup.slots.len(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(16 + self.entries() * 4);
        buf.push(SEGMENT_VERSION);
        match self {
            Block::Raw(raw) => {
                buf.push(KIND_RAW);
                let mut values = raw.values.clone();
                values.sort_by_key(|v| v.offset);
                put_varint(&mut buf, values.len() as u64);
                put_offsets(&mut buf, values.iter().map(|v| v.offset));
                put_xor_column(&mut buf, values.iter().map(|v| v.value));
                let counts: Vec<f64> = values.iter().map(|v| v.count).collect();
                put_count_column(&mut buf, &counts);
                let mut sets = raw.sets.clone();
                sets.sort_by_key(|s| s.offset);
                put_varint(&mut buf, sets.len() as u64);
                put_offsets(&mut buf, sets.iter().map(|s| s.offset));
                let counts: Vec<f64> = sets.iter().map(|s| s.stats.count).collect();
                put_count_column(&mut buf, &counts);
                put_xor_column(&mut buf, sets.iter().map(|s| s.stats.sum));
                put_xor_column(&mut buf, sets.iter().map(|s| s.stats.min));
                put_xor_column(&mut buf, sets.iter().map(|s| s.stats.max));
            }
            Block::Rollup(rollup) => {
                buf.push(KIND_ROLLUP);
                let slots = &rollup.slots;
                put_varint(&mut buf, slots.len() as u64);
                put_offsets(&mut buf, slots.keys().copied());
                let counts: Vec<f64> = slots.values().map(|s| s.count).collect();
                put_count_column(&mut buf, &counts);
                put_xor_column(&mut buf, slots.values().map(|s| s.min));
                for s in slots.values() {
                    let values = match &s.sketch {
                        None => VALUES_NONE,
                        Some(_) if s.is_single_value() => VALUES_SINGLE,
                        Some(_) => VALUES_SKETCH,
                    };
                    let spread = if s.is_uniform() { 0 } else { SPREAD_STORED };
                    buf.push(values | spread);
                }
                let spread = || slots.values().filter(|s| !s.is_uniform());
                put_xor_column(&mut buf, spread().map(|s| s.sum));
                put_xor_column(&mut buf, spread().map(|s| s.max));
                for s in slots.values() {
                    if let Some(sketch) = &s.sketch {
                        if !s.is_single_value() {
                            sketch.encode(&mut buf);
                        }
                    }
                }
            }
        }
        buf
    }

    /// Decodes a segment of `tier`, checking every offset lies in the block.
    pub fn decode(tier: Tier, bytes: &[u8]) -> Result<Block, String> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != SEGMENT_VERSION {
            return Err(format!("segment format {version} is not understood"));
        }
        let kind = r.u8()?;
        let limit = (tier.block_s() / tier.slot_s()) as u32;
        let block = match (kind, tier) {
            (KIND_RAW, Tier::Raw) => {
                let n = r.count(2)?;
                let offsets = take_offsets(&mut r, n, limit)?;
                let values = r.xor_column(n)?;
                let counts = r.count_column(n)?;
                let raw_values = (0..n)
                    .map(|i| RawValue {
                        offset: offsets[i],
                        value: values[i],
                        count: counts[i],
                    })
                    .collect();
                let m = r.count(4)?;
                let offsets = take_offsets(&mut r, m, limit)?;
                let counts = r.count_column(m)?;
                let sums = r.xor_column(m)?;
                let mins = r.xor_column(m)?;
                let maxs = r.xor_column(m)?;
                let sets = (0..m)
                    .map(|i| RawSet {
                        offset: offsets[i],
                        stats: SetStats {
                            count: counts[i],
                            sum: sums[i],
                            min: mins[i],
                            max: maxs[i],
                        },
                    })
                    .collect();
                Block::Raw(RawBlock {
                    values: raw_values,
                    sets,
                })
            }
            (KIND_ROLLUP, Tier::Minute | Tier::FiveMinute | Tier::Hour) => {
                // Each slot takes at least an index step, a minimum and a kind byte.
                let n = r.count(3)?;
                let indexes = take_offsets(&mut r, n, limit)?;
                let counts = r.count_column(n)?;
                let mins = r.xor_column(n)?;
                let kinds = r.bytes(n)?.to_vec();
                let spread = kinds.iter().filter(|&&k| k & SPREAD_STORED != 0).count();
                let mut sums = r.xor_column(spread)?.into_iter();
                let mut maxs = r.xor_column(spread)?.into_iter();
                let mut slots = BTreeMap::new();
                for i in 0..n {
                    let (sum, max) = if kinds[i] & SPREAD_STORED != 0 {
                        match (sums.next(), maxs.next()) {
                            (Some(sum), Some(max)) => (sum, max),
                            _ => return Err("missing slot sums".into()),
                        }
                    } else {
                        (mins[i] * counts[i], mins[i])
                    };
                    let sketch = match kinds[i] & !SPREAD_STORED {
                        VALUES_NONE => None,
                        VALUES_SINGLE => {
                            let mut s = Sketch::default();
                            s.add(mins[i], counts[i]);
                            Some(s)
                        }
                        VALUES_SKETCH => Some(Sketch::decode(&mut r)?),
                        other => return Err(format!("unknown slot value kind {other}")),
                    };
                    slots.insert(
                        indexes[i],
                        Slot {
                            count: counts[i],
                            sum,
                            min: mins[i],
                            max,
                            sketch,
                        },
                    );
                }
                Block::Rollup(RollupBlock { slots })
            }
            (kind, tier) => return Err(format!("segment kind {kind} in tier {tier:?}")),
        };
        if !r.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(block)
    }
}

fn put_offsets(buf: &mut Vec<u8>, offsets: impl Iterator<Item = u32>) {
    let mut prev = 0u32;
    for o in offsets {
        put_varint(buf, u64::from(o - prev));
        prev = o;
    }
}

fn take_offsets(r: &mut Reader, n: usize, limit: u32) -> Result<Vec<u32>, String> {
    let mut out = Vec::with_capacity(n);
    let mut at = 0u64;
    for _ in 0..n {
        at += r.varint()?;
        if at >= u64::from(limit) {
            return Err("offset beyond its block".into());
        }
        out.push(at as u32);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(count: f64, sum: f64, min: f64, max: f64) -> Payload {
        Payload::Set(SetStats {
            count,
            sum,
            min,
            max,
        })
    }

    #[test]
    fn raw_blocks_round_trip() {
        let mut b = Block::new(Tier::Raw);
        b.add(
            Tier::Raw,
            59,
            &Payload::Values(vec![(1.5, 1.0), (2.0, 3.0)]),
        );
        b.add(Tier::Raw, 0, &Payload::Values(vec![(-7.25, 0.5)]));
        b.add(Tier::Raw, 3599, &set(10.0, 55.0, 1.0, 10.0));
        let bytes = b.encode();
        let back = Block::decode(Tier::Raw, &bytes).unwrap();
        let Block::Raw(raw) = back else { panic!() };
        assert_eq!(raw.values.len(), 3);
        assert_eq!(raw.values[0].offset, 0);
        assert_eq!(raw.values[0].value, -7.25);
        assert_eq!(raw.values[0].count, 0.5);
        assert_eq!(raw.sets[0].stats.sum, 55.0);
        for cut in 0..bytes.len() {
            assert!(Block::decode(Tier::Raw, &bytes[..cut]).is_err(), "{cut}");
        }
        assert!(Block::decode(Tier::Minute, &bytes).is_err());
    }

    #[test]
    fn rollup_slots_merge_and_round_trip() {
        let mut b = Block::new(Tier::Minute);
        assert_eq!(
            b.add(Tier::Minute, 60, &Payload::Values(vec![(5.0, 1.0)])),
            1
        );
        assert_eq!(
            b.add(Tier::Minute, 61, &Payload::Values(vec![(7.0, 2.0)])),
            0
        );
        b.add(Tier::Minute, 120, &Payload::Values(vec![(3.0, 4.0)]));
        b.add(Tier::Minute, 180, &set(2.0, 3.0, 1.0, 2.0));
        b.add(Tier::Minute, 240, &Payload::Values(vec![(-1.0, 1.0)]));
        let mut other = Block::new(Tier::Minute);
        other.add(Tier::Minute, 70, &Payload::Values(vec![(9.0, 1.0)]));
        b.merge(other);
        let Block::Rollup(r) = &b else { panic!() };
        let s = &r.slots[&1];
        assert_eq!((s.count, s.sum, s.min, s.max), (4.0, 28.0, 5.0, 9.0));
        assert!(r.slots[&3].sketch.is_none());
        assert!(r.slots[&4].sketch.is_none());
        let bytes = b.encode();
        let back = Block::decode(Tier::Minute, &bytes).unwrap();
        assert_eq!(back, b);
        // Many slots of one repeated value take about 3 bytes each.
        let mut flat = Block::new(Tier::Minute);
        for k in 0..1440 {
            flat.add(Tier::Minute, k * 60, &Payload::Values(vec![(1.0, 1.0)]));
        }
        let bytes = flat.encode();
        assert!(bytes.len() < 3 * 1440 + 16, "{}", bytes.len());
        assert_eq!(Block::decode(Tier::Minute, &bytes).unwrap(), flat);
        // A single repeated value costs no sketch bytes.
        let mut single = Block::new(Tier::Hour);
        single.add(Tier::Hour, 0, &Payload::Values(vec![(3.0, 4.0)]));
        let bytes = single.encode();
        assert!(bytes.len() <= 10, "{}", bytes.len());
        assert_eq!(Block::decode(Tier::Hour, &bytes).unwrap(), single);
    }

    #[test]
    fn offsets_beyond_the_block_are_refused() {
        let mut b = Block::new(Tier::Raw);
        b.add(Tier::Raw, 3600, &Payload::Values(vec![(1.0, 1.0)]));
        assert!(Block::decode(Tier::Raw, &b.encode()).is_err());
    }
}
