//! The byte-level pieces the stored records are built from: LEB128 varints,
//! zig-zag signed varints, and two column encodings for `f64`s. A value
//! column stores each number XORed with the one before it, as one header
//! byte (leading zero bytes in the high nibble, trailing zero bytes in the
//! low one) and the bytes between: metrics change slowly, so most XORs
//! are short (an unchanged value takes 1 byte, a small integer gauge 2–3).
//! A count column stores nothing when every count is 1, varints when all
//! are whole numbers, raw `f64`s otherwise. Decoding never trusts a length
//! or a count it has not checked against the bytes left.

/// Whole numbers up to this magnitude are exact in an `f64`.
const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0;

pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub fn put_zigzag(buf: &mut Vec<u8>, v: i64) {
    put_varint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Whether `v` is a whole number an `i64` holds exactly.
pub fn is_small_integer(v: f64) -> bool {
    v.fract() == 0.0 && v.abs() < EXACT_INT_LIMIT
}

/// A column of values, XORed with their predecessors (see the module doc).
pub fn put_xor_column(buf: &mut Vec<u8>, values: impl IntoIterator<Item = f64>) {
    let mut prev = 0u64;
    for v in values {
        let bits = v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            buf.push(0x80);
            continue;
        }
        let lead = (x.leading_zeros() / 8) as usize;
        let trail = (x.trailing_zeros() / 8) as usize;
        buf.push(((lead as u8) << 4) | trail as u8);
        let bytes = x.to_be_bytes();
        buf.extend_from_slice(&bytes[lead..8 - trail]);
    }
}

const COUNTS_ALL_ONE: u8 = 0;
const COUNTS_INTEGERS: u8 = 1;
const COUNTS_FLOATS: u8 = 2;

/// A column of counts (see the module doc).
pub fn put_count_column(buf: &mut Vec<u8>, counts: &[f64]) {
    if counts.iter().all(|&c| c == 1.0) {
        buf.push(COUNTS_ALL_ONE);
    } else if counts.iter().all(|&c| c >= 0.0 && is_small_integer(c)) {
        buf.push(COUNTS_INTEGERS);
        for &c in counts {
            put_varint(buf, c as u64);
        }
    } else {
        buf.push(COUNTS_FLOATS);
        for &c in counts {
            buf.extend_from_slice(&c.to_le_bytes());
        }
    }
}

/// Reads what the `put_*` functions wrote, failing on anything short or malformed.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn u8(&mut self) -> Result<u8, String> {
        let (&b, rest) = self.rest.split_first().ok_or("truncated")?;
        self.rest = rest;
        Ok(b)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    pub fn u64_le(&mut self) -> Result<u64, String> {
        let b = self.bytes(8)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(b);
        Ok(u64::from_le_bytes(word))
    }

    pub fn f64_le(&mut self) -> Result<f64, String> {
        Ok(f64::from_bits(self.u64_le()?))
    }

    pub fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    pub fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A count of items that each take at least `min_bytes`, checked
    /// against what is left so that a damaged count cannot make the
    /// decoder allocate more than the record's size.
    pub fn count(&mut self, min_bytes: usize) -> Result<usize, String> {
        let n = self.varint()?;
        if n.saturating_mul(min_bytes as u64) > self.rest.len() as u64 {
            return Err("count exceeds record".into());
        }
        Ok(n as usize)
    }

    pub fn xor_column(&mut self, n: usize) -> Result<Vec<f64>, String> {
        let mut out = Vec::with_capacity(n.min(self.rest.len()));
        let mut prev = 0u64;
        for _ in 0..n {
            let head = self.u8()?;
            let x = if head == 0x80 {
                0
            } else {
                let lead = (head >> 4) as usize;
                let trail = (head & 0x0f) as usize;
                if lead + trail >= 8 {
                    return Err("bad value header".into());
                }
                let mut bytes = [0u8; 8];
                bytes[lead..8 - trail].copy_from_slice(self.bytes(8 - lead - trail)?);
                u64::from_be_bytes(bytes)
            };
            prev ^= x;
            out.push(f64::from_bits(prev));
        }
        Ok(out)
    }

    pub fn count_column(&mut self, n: usize) -> Result<Vec<f64>, String> {
        match self.u8()? {
            COUNTS_ALL_ONE => Ok(vec![1.0; n]),
            COUNTS_INTEGERS => (0..n).map(|_| self.varint().map(|c| c as f64)).collect(),
            COUNTS_FLOATS => (0..n).map(|_| self.f64_le()).collect(),
            other => Err(format!("unknown count column kind {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        let mut buf = Vec::new();
        let values = [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX];
        for v in values {
            put_varint(&mut buf, v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -300] {
            put_zigzag(&mut buf, v);
        }
        let mut r = Reader::new(&buf);
        for v in values {
            assert_eq!(r.varint().unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -300] {
            assert_eq!(r.zigzag().unwrap(), v);
        }
        assert!(r.is_empty());
        assert!(Reader::new(&[0x80, 0x80]).varint().is_err());
    }

    #[test]
    fn xor_columns_round_trip_and_stay_small() {
        let values = [
            0.0,
            -0.0,
            1.0,
            1.0,
            2.0,
            3.5,
            f64::MAX,
            f64::MIN_POSITIVE,
            -123.456,
            1e-300,
        ];
        let mut buf = Vec::new();
        put_xor_column(&mut buf, values);
        let back = Reader::new(&buf).xor_column(values.len()).unwrap();
        let bits: Vec<u64> = back.iter().map(|v| v.to_bits()).collect();
        let want: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, want);
        // A gauge counting up by one costs a few bytes per value.
        let mut buf = Vec::new();
        put_xor_column(&mut buf, (0..1000).map(|i| (1000 + i) as f64));
        assert!(buf.len() < 3 * 1000, "{}", buf.len());
        // Truncation is an error, not a panic.
        assert!(Reader::new(&buf[..buf.len() - 1]).xor_column(1000).is_err());
    }

    #[test]
    fn count_columns_pick_the_smallest_form() {
        for counts in [vec![1.0; 5], vec![1.0, 2.0, 300.0], vec![0.5, 2.0]] {
            let mut buf = Vec::new();
            put_count_column(&mut buf, &counts);
            assert_eq!(
                Reader::new(&buf).count_column(counts.len()).unwrap(),
                counts
            );
        }
        let mut buf = Vec::new();
        put_count_column(&mut buf, &[1.0; 100]);
        assert_eq!(buf.len(), 1);
    }

    #[test]
    fn counts_are_checked_against_the_record() {
        let mut buf = Vec::new();
        put_varint(&mut buf, 1 << 40);
        assert!(Reader::new(&buf).count(1).is_err());
    }
}
