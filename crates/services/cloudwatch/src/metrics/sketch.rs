//! The value distribution a rolled-up slot keeps once its raw values are
//! gone: a logarithmic histogram whose bucket `i` holds the values in
//! `(γ^(i-1), γ^i]` with γ = 1.01, plus one bucket for zero. Estimating a
//! bucket's values by `2γ^i/(γ+1)` is off by at most 0.5% of the value
//! (CloudWatch's own percentiles over aggregated data are approximate
//! too). A bucket also remembers its value while every value in it is the
//! same, which makes integer-valued metrics (counts, sizes below 100) and
//! constant ones exact. Negative values are not sketched: CloudWatch does
//! not compute percentile statistics over data with negative values, so a
//! slot that has any drops its sketch (see `store::Slot`).
//!
//! Indexes fit an `i16` for every value CloudWatch accepts (up to 2^360).

use super::codec::{is_small_integer, put_varint, put_zigzag, Reader};

const GAMMA: f64 = 1.01;
/// The zero bucket's index: below every other.
const ZERO_INDEX: i32 = i32::MIN;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    index: i32,
    count: f64,
    /// The one value seen in this bucket, or NaN once two differ.
    exact: f64,
}

impl PartialEq for Bucket {
    fn eq(&self, other: &Self) -> bool {
        let same_exact = (self.exact.is_nan() && other.exact.is_nan()) || self.exact == other.exact;
        self.index == other.index && self.count == other.count && same_exact
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    /// Sorted by index.
    buckets: Vec<Bucket>,
}

fn index_of(v: f64) -> i32 {
    if v <= 0.0 {
        ZERO_INDEX
    } else {
        (v.ln() / GAMMA.ln()).ceil() as i32
    }
}

impl Sketch {
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Adds `count` occurrences of `value` (which must not be negative).
    pub fn add(&mut self, value: f64, count: f64) {
        self.add_bucket(Bucket {
            index: index_of(value),
            count,
            exact: value,
        });
    }

    fn add_bucket(&mut self, b: Bucket) {
        match self.buckets.binary_search_by_key(&b.index, |x| x.index) {
            Ok(at) => {
                let mine = &mut self.buckets[at];
                mine.count += b.count;
                // NaN never compares equal, so a mixed bucket stays mixed.
                if mine.exact != b.exact {
                    mine.exact = f64::NAN;
                }
            }
            Err(at) => self.buckets.insert(at, b),
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
            return;
        }
        for b in &other.buckets {
            self.add_bucket(*b);
        }
    }

    /// The distribution as (value, count) in increasing value order, each
    /// bucket's value estimated unless it is known exactly.
    pub fn entries(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.buckets.iter().map(|b| {
            let value = if !b.exact.is_nan() {
                b.exact
            } else if b.index == ZERO_INDEX {
                0.0
            } else {
                2.0 * GAMMA.powi(b.index) / (GAMMA + 1.0)
            };
            (value, b.count)
        })
    }

    /// Appends the encoding: a bucket count, then per bucket a header byte
    /// (bit 0: count is 1; bit 1: count is a varint, else an `f64`; bit 2:
    /// the exact value follows; bit 3: it is a zig-zag varint, else an
    /// `f64`; bit 4: the zero bucket), the index (zig-zag for the first
    /// non-zero bucket, then the varint step from the previous), the count
    /// and the exact value.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        put_varint(buf, self.buckets.len() as u64);
        let mut prev: Option<i32> = None;
        for b in &self.buckets {
            let mut head = 0u8;
            if b.count == 1.0 {
                head |= 1;
            } else if b.count >= 0.0 && is_small_integer(b.count) {
                head |= 2;
            }
            if !b.exact.is_nan() {
                head |= 4;
                if is_small_integer(b.exact) && !(b.exact == 0.0 && b.exact.is_sign_negative()) {
                    head |= 8;
                }
            }
            if b.index == ZERO_INDEX {
                head |= 16;
            }
            buf.push(head);
            if b.index != ZERO_INDEX {
                match prev {
                    None => put_zigzag(buf, i64::from(b.index)),
                    Some(p) => put_varint(buf, (i64::from(b.index) - i64::from(p)) as u64),
                }
                prev = Some(b.index);
            }
            if head & 1 == 0 {
                if head & 2 != 0 {
                    put_varint(buf, b.count as u64);
                } else {
                    buf.extend_from_slice(&b.count.to_le_bytes());
                }
            }
            if head & 4 != 0 {
                if head & 8 != 0 {
                    put_zigzag(buf, b.exact as i64);
                } else {
                    buf.extend_from_slice(&b.exact.to_le_bytes());
                }
            }
        }
    }

    pub fn decode(r: &mut Reader) -> Result<Sketch, String> {
        let n = r.count(1)?;
        let mut buckets = Vec::with_capacity(n);
        let mut prev: Option<i32> = None;
        for _ in 0..n {
            let head = r.u8()?;
            let index = if head & 16 != 0 {
                if prev.is_some() || !buckets.is_empty() {
                    return Err("zero bucket out of order".into());
                }
                ZERO_INDEX
            } else {
                let index = match prev {
                    None => r.zigzag()?,
                    Some(p) => {
                        let step = r.varint()?;
                        if step == 0 {
                            return Err("bucket indexes out of order".into());
                        }
                        i64::from(p).saturating_add(step.min(i64::MAX as u64) as i64)
                    }
                };
                let index = i32::try_from(index).map_err(|_| "bucket index out of range")?;
                if index == ZERO_INDEX {
                    return Err("bucket index out of range".into());
                }
                prev = Some(index);
                index
            };
            let count = if head & 1 != 0 {
                1.0
            } else if head & 2 != 0 {
                r.varint()? as f64
            } else {
                r.f64_le()?
            };
            let exact = if head & 4 == 0 {
                f64::NAN
            } else if head & 8 != 0 {
                r.zigzag()? as f64
            } else {
                r.f64_le()?
            };
            buckets.push(Bucket {
                index,
                count,
                exact,
            });
        }
        Ok(Sketch { buckets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_stay_within_half_a_percent() {
        let mut s = Sketch::default();
        let values: Vec<f64> = (1..2000).map(|i| i as f64 * 0.731).collect();
        for &v in &values {
            s.add(v, 1.0);
            s.add(v * 1.0001, 1.0);
        }
        let total: f64 = s.entries().map(|(_, c)| c).sum();
        assert_eq!(total, 2.0 * values.len() as f64);
        for (estimate, _) in s.entries() {
            // Every estimate lies within 0.5% of some value in its bucket.
            let nearest = values
                .iter()
                .map(|v| ((estimate - v) / v).abs())
                .fold(f64::INFINITY, f64::min);
            assert!(nearest <= 0.0051, "{estimate}: {nearest}");
        }
        let mut prev = f64::NEG_INFINITY;
        for (v, _) in s.entries() {
            assert!(v > prev);
            prev = v;
        }
    }

    #[test]
    fn equal_values_stay_exact() {
        let mut s = Sketch::default();
        for v in [0.0, 1.0, 2.0, 3.0, 2.0, 99.0, 1e300] {
            s.add(v, 2.0);
        }
        let entries: Vec<(f64, f64)> = s.entries().collect();
        assert_eq!(
            entries,
            vec![(0.0, 2.0), (1.0, 2.0), (2.0, 4.0), (3.0, 2.0), (99.0, 2.0), (1e300, 2.0)]
        );
    }

    #[test]
    fn encoding_round_trips() {
        let mut s = Sketch::default();
        for (v, c) in [(0.0, 3.0), (0.5, 1.0), (0.5000001, 1.0), (7.0, 2.5), (1e-100, 1.0), (1e108, 4.0)] {
            s.add(v, c);
        }
        let mut other = Sketch::default();
        other.add(7.0, 1.0);
        s.merge(&other);
        let mut buf = Vec::new();
        s.encode(&mut buf);
        let back = Sketch::decode(&mut Reader::new(&buf)).unwrap();
        let a: Vec<(u64, u64)> = s.entries().map(|(v, c)| (v.to_bits(), c.to_bits())).collect();
        let b: Vec<(u64, u64)> = back.entries().map(|(v, c)| (v.to_bits(), c.to_bits())).collect();
        assert_eq!(a, b);
        for cut in 0..buf.len() {
            assert!(Sketch::decode(&mut Reader::new(&buf[..cut])).is_err());
        }
    }

    #[test]
    fn indexes_fit_the_value_range() {
        let big = 2f64.powi(360);
        assert!(index_of(big) < i32::from(i16::MAX));
        assert!(index_of(1.0 / big) > i32::from(i16::MIN));
    }
}
