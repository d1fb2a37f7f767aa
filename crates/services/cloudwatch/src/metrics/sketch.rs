//! The value distribution a rolled-up slot keeps once its raw values are
//! gone: a logarithmic histogram whose bucket `i` holds the values in
//! `(γ^(i-1), γ^i]` with γ = 1.01, plus one bucket for zero. Estimating a
//! bucket's values by `2γ^i/(γ+1)` is off by at most 0.5% of the value
//! (CloudWatch's own percentiles over aggregated data are approximate
//! too). A bucket also remembers its value while every value in it is the
//! same whole number, which keeps integer-valued metrics (counts, sizes
//! below 100) exact; statistics clamp estimates to the period's exact
//! minimum and maximum, which keeps constant metrics exact. Negative values
//! are not sketched: CloudWatch does not compute percentile statistics over
//! data with negative values, so a slot that has any drops its sketch.
//!
//! Indexes fit an `i16` for every value CloudWatch accepts (up to 2^360).

use super::codec::{is_small_integer, put_count_column, put_varint, put_zigzag, Reader};

const GAMMA: f64 = 1.01;
/// The zero bucket's index: below every other.
const ZERO_INDEX: i32 = i32::MIN;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    index: i32,
    count: f64,
    /// The one whole number seen in this bucket, or NaN once two differ
    /// (or for a fraction, which an estimate serves as well).
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
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Adds `count` occurrences of `value` (which must not be negative).
    pub fn add(&mut self, value: f64, count: f64) {
        let exact = if is_small_integer(value) {
            // -0.0 is kept as 0.0: the encoding stores whole numbers as integers.
            value + 0.0
        } else {
            f64::NAN
        };
        self.add_bucket(Bucket {
            index: index_of(value),
            count,
            exact,
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

    /// Appends the encoding, in columns: the bucket count; a byte saying
    /// whether the first bucket is the zero bucket; the other buckets'
    /// indexes (zig-zag for the first, then varint steps); the counts (a
    /// count column: nothing but its kind byte when all are 1); a bitmap of
    /// the buckets with an exact value; those values as zig-zag varints.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        let n = self.buckets.len();
        put_varint(buf, n as u64);
        if n == 0 {
            return;
        }
        let has_zero = self.buckets[0].index == ZERO_INDEX;
        buf.push(u8::from(has_zero));
        let mut prev: Option<i32> = None;
        for b in &self.buckets[usize::from(has_zero)..] {
            match prev {
                None => put_zigzag(buf, i64::from(b.index)),
                Some(p) => put_varint(buf, (i64::from(b.index) - i64::from(p)) as u64),
            }
            prev = Some(b.index);
        }
        let counts: Vec<f64> = self.buckets.iter().map(|b| b.count).collect();
        put_count_column(buf, &counts);
        let mut bitmap = vec![0u8; n.div_ceil(8)];
        for (i, b) in self.buckets.iter().enumerate() {
            if !b.exact.is_nan() {
                bitmap[i / 8] |= 1 << (i % 8);
            }
        }
        buf.extend_from_slice(&bitmap);
        for b in &self.buckets {
            if !b.exact.is_nan() {
                put_zigzag(buf, b.exact as i64);
            }
        }
    }

    pub fn decode(r: &mut Reader) -> Result<Sketch, String> {
        let n = r.count(1)?;
        if n == 0 {
            return Ok(Sketch::default());
        }
        let has_zero = match r.u8()? {
            0 => false,
            1 => true,
            other => return Err(format!("bad zero-bucket flag {other}")),
        };
        let mut indexes = Vec::with_capacity(n);
        if has_zero {
            indexes.push(ZERO_INDEX);
        }
        let mut prev: Option<i32> = None;
        while indexes.len() < n {
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
            indexes.push(index);
        }
        let counts = r.count_column(n)?;
        let bitmap = r.bytes(n.div_ceil(8))?.to_vec();
        let mut buckets = Vec::with_capacity(n);
        for (i, (index, count)) in indexes.into_iter().zip(counts).enumerate() {
            let exact = if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                r.zigzag()? as f64
            } else {
                f64::NAN
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
            entries[..5],
            [(0.0, 2.0), (1.0, 2.0), (2.0, 4.0), (3.0, 2.0), (99.0, 2.0)]
        );
        // A fraction or a number too large for an integer is estimated.
        assert!((entries[5].0 / 1e300 - 1.0).abs() < 0.005);
        let mut f = Sketch::default();
        f.add(0.25, 1.0);
        let (v, _) = f.entries().next().unwrap();
        assert!(v != 0.25 && (v / 0.25 - 1.0).abs() < 0.005);
    }

    #[test]
    fn encoding_round_trips() {
        let mut s = Sketch::default();
        for (v, c) in [
            (0.0, 3.0),
            (0.5, 1.0),
            (0.5000001, 1.0),
            (7.0, 2.5),
            (1e-100, 1.0),
            (1e108, 4.0),
        ] {
            s.add(v, c);
        }
        let mut other = Sketch::default();
        other.add(7.0, 1.0);
        s.merge(&other);
        let mut buf = Vec::new();
        s.encode(&mut buf);
        let back = Sketch::decode(&mut Reader::new(&buf)).unwrap();
        let a: Vec<(u64, u64)> = s
            .entries()
            .map(|(v, c)| (v.to_bits(), c.to_bits()))
            .collect();
        let b: Vec<(u64, u64)> = back
            .entries()
            .map(|(v, c)| (v.to_bits(), c.to_bits()))
            .collect();
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
