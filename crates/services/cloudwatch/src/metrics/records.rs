//! The store tables of the metrics library, their keys, and the encodings
//! of every record but the block segments (which `blocks` owns). The
//! layout is described in the module doc of `metrics`.

use super::blocks::Tier;
use super::codec::{put_count_column, put_varint, Reader};
use super::ingest::{Payload, SetStats};

pub const SERIES: &str = "cw_series";
pub const BLOCKS: &str = "cw_blocks";
pub const INGEST: &str = "cw_ingest";
pub const META: &str = "cw_meta";

/// The version the series, log and meta records start with.
pub const RECORD_VERSION: u8 = 1;

pub const NEXT_SERIES_ID: &[u8] = b"next_series_id";

/// A series' record in `cw_series`, under its series key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesRecord {
    pub id: u64,
    pub created_ms: u64,
    /// When data was last published (to the minute: refreshed by a flush
    /// once it moved on by a minute or more).
    pub last_put_ms: u64,
}

impl SeriesRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(25);
        buf.push(RECORD_VERSION);
        buf.extend_from_slice(&self.id.to_le_bytes());
        buf.extend_from_slice(&self.created_ms.to_le_bytes());
        buf.extend_from_slice(&self.last_put_ms.to_le_bytes());
        buf
    }

    pub fn decode(bytes: &[u8]) -> Result<SeriesRecord, String> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != RECORD_VERSION {
            return Err(format!("series record format {version} is not understood"));
        }
        Ok(SeriesRecord {
            id: r.u64_le()?,
            created_ms: r.u64_le()?,
            last_put_ms: r.u64_le()?,
        })
    }
}

pub fn encode_counter(v: u64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(9);
    buf.push(RECORD_VERSION);
    buf.extend_from_slice(&v.to_le_bytes());
    buf
}

pub fn decode_counter(bytes: &[u8]) -> Result<u64, String> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != RECORD_VERSION {
        return Err(format!("counter format {version} is not understood"));
    }
    r.u64_le()
}

/// Length of a block key without its segment number.
pub const BLOCK_PREFIX_LEN: usize = 17;

/// `[tier][block start, seconds, u64 BE][series id, u64 BE]`: time first,
/// so that one block of every series lies together (flushes write
/// neighbours) and expiry takes a tier's oldest blocks from its start.
pub fn block_prefix(tier: Tier, block_start_s: u64, series: u64) -> [u8; BLOCK_PREFIX_LEN] {
    let mut key = [0u8; BLOCK_PREFIX_LEN];
    key[0] = tier.code();
    key[1..9].copy_from_slice(&block_start_s.to_be_bytes());
    key[9..17].copy_from_slice(&series.to_be_bytes());
    key
}

/// A segment's key: the block prefix and the number of the newest flush
/// it holds (u32 BE).
pub fn block_key(tier: Tier, block_start_s: u64, series: u64, flush: u32) -> Vec<u8> {
    let mut key = block_prefix(tier, block_start_s, series).to_vec();
    key.extend_from_slice(&flush.to_be_bytes());
    key
}

/// The parts of a segment key: tier, block start, series, flush number.
pub fn decode_block_key(key: &[u8]) -> Option<(Tier, u64, u64, u32)> {
    if key.len() != BLOCK_PREFIX_LEN + 4 {
        return None;
    }
    let tier = Tier::from_code(key[0])?;
    let start = u64::from_be_bytes(key[1..9].try_into().ok()?);
    let series = u64::from_be_bytes(key[9..17].try_into().ok()?);
    let flush = u32::from_be_bytes(key[17..21].try_into().ok()?);
    Some((tier, start, series, flush))
}

pub fn log_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub fn decode_log_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// One validated datum as the ingest log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub series: u64,
    pub time_s: u64,
    pub high_resolution: bool,
    pub payload: Payload,
}

/// One PutMetricData call, kept until a flush has stored its data.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// The time of the call, which decides the tiers its data entered.
    pub put_ms: u64,
    pub entries: Vec<LogEntry>,
}

const ENTRY_HIGH_RESOLUTION: u8 = 1;
const ENTRY_SET: u8 = 2;

impl LogRecord {
    /// Version, call time (varint), entry count, then per entry: series id,
    /// time (varints), flags (bit 0 high resolution, bit 1 statistic set),
    /// and either four `f64` (count, sum, min, max) or a value count, the
    /// values as `f64` and a count column.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(16 + self.entries.len() * 24);
        buf.push(RECORD_VERSION);
        put_varint(&mut buf, self.put_ms);
        put_varint(&mut buf, self.entries.len() as u64);
        for e in &self.entries {
            put_varint(&mut buf, e.series);
            put_varint(&mut buf, e.time_s);
            let mut flags = 0;
            if e.high_resolution {
                flags |= ENTRY_HIGH_RESOLUTION;
            }
            match &e.payload {
                Payload::Set(s) => {
                    buf.push(flags | ENTRY_SET);
                    for v in [s.count, s.sum, s.min, s.max] {
                        buf.extend_from_slice(&v.to_le_bytes());
                    }
                }
                Payload::Values(pairs) => {
                    buf.push(flags);
                    put_varint(&mut buf, pairs.len() as u64);
                    for (v, _) in pairs {
                        buf.extend_from_slice(&v.to_le_bytes());
                    }
                    let counts: Vec<f64> = pairs.iter().map(|p| p.1).collect();
                    put_count_column(&mut buf, &counts);
                }
            }
        }
        buf
    }

    pub fn decode(bytes: &[u8]) -> Result<LogRecord, String> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != RECORD_VERSION {
            return Err(format!("ingest log format {version} is not understood"));
        }
        let put_ms = r.varint()?;
        let n = r.count(3)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let series = r.varint()?;
            let time_s = r.varint()?;
            let flags = r.u8()?;
            let payload = if flags & ENTRY_SET != 0 {
                Payload::Set(SetStats {
                    count: r.f64_le()?,
                    sum: r.f64_le()?,
                    min: r.f64_le()?,
                    max: r.f64_le()?,
                })
            } else {
                let m = r.count(8)?;
                let values: Vec<f64> = (0..m).map(|_| r.f64_le()).collect::<Result<_, _>>()?;
                let counts = r.count_column(m)?;
                Payload::Values(values.into_iter().zip(counts).collect())
            };
            entries.push(LogEntry {
                series,
                time_s,
                high_resolution: flags & ENTRY_HIGH_RESOLUTION != 0,
                payload,
            });
        }
        if !r.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(LogRecord { put_ms, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let s = SeriesRecord {
            id: 7,
            created_ms: 1,
            last_put_ms: u64::MAX,
        };
        assert_eq!(SeriesRecord::decode(&s.encode()).unwrap(), s);
        assert!(SeriesRecord::decode(&[2]).is_err());
        assert_eq!(decode_counter(&encode_counter(42)).unwrap(), 42);

        let log = LogRecord {
            put_ms: 1_700_000_000_000,
            entries: vec![
                LogEntry {
                    series: 1,
                    time_s: 1_700_000_000,
                    high_resolution: true,
                    payload: Payload::Values(vec![(1.5, 1.0), (-2.0, 3.0)]),
                },
                LogEntry {
                    series: 2,
                    time_s: 1_699_999_940,
                    high_resolution: false,
                    payload: Payload::Set(SetStats {
                        count: 10.0,
                        sum: 55.0,
                        min: 1.0,
                        max: 10.0,
                    }),
                },
            ],
        };
        let bytes = log.encode();
        assert_eq!(LogRecord::decode(&bytes).unwrap(), log);
        for cut in 0..bytes.len() {
            assert!(LogRecord::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn block_keys_sort_by_tier_then_time() {
        let a = block_key(Tier::Raw, 3600, 9, 1);
        let b = block_key(Tier::Raw, 7200, 1, 1);
        let c = block_key(Tier::Minute, 0, 0, 1);
        assert!(a < b && b < c);
        assert_eq!(decode_block_key(&b), Some((Tier::Raw, 7200, 1, 1)));
        assert!(a.starts_with(&block_prefix(Tier::Raw, 3600, 9)));
    }
}
