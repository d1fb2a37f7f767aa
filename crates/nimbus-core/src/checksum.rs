//! The flexible checksums S3 clients attach to uploads (`x-amz-checksum-*`,
//! as headers or as trailers of an aws-chunked body): CRC32, CRC32C,
//! CRC64NVME, SHA1 and SHA256, each sent as the base64 of its big-endian
//! bytes. CRC64NVME has no crate in the workspace, so its small table-driven
//! implementation lives here.

use base64::Engine as _;
use sha1::Sha1;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    /// Accepts `crc32`, `CRC32` or the header form `x-amz-checksum-crc32`.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.trim().to_ascii_lowercase();
        let bare = lower.strip_prefix("x-amz-checksum-").unwrap_or(&lower);
        match bare {
            "crc32" => Some(Self::Crc32),
            "crc32c" => Some(Self::Crc32c),
            "crc64nvme" => Some(Self::Crc64Nvme),
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            _ => None,
        }
    }

    /// The name S3 uses in messages ("The CRC32 you specified ...").
    pub fn label(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    pub fn digest_len(self) -> usize {
        match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// True when `value` is well-formed base64 of the right length.
    pub fn is_well_formed(self, value: &str) -> bool {
        base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .is_ok_and(|bytes| bytes.len() == self.digest_len())
    }
}

// CRC-64/NVME: reflected, polynomial 0xAD93D23594C93659, init and xorout all
// ones. The table is built at compile time from the reflected polynomial.
const CRC64_NVME_POLY: u64 = 0xAD93_D235_94C9_3659_u64.reverse_bits();

const fn crc64_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ CRC64_NVME_POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC64_TABLE: [u64; 256] = crc64_table();

/// Continues a CRC-64/NVME over `data`; start from 0.
fn crc64nvme_update(crc: u64, data: &[u8]) -> u64 {
    let mut c = !crc;
    for &b in data {
        c = CRC64_TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8);
    }
    !c
}

/// A running checksum of one algorithm.
pub enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64(u64),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    pub fn new(alg: Algorithm) -> Self {
        match alg {
            Algorithm::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => Self::Crc32c(0),
            Algorithm::Crc64Nvme => Self::Crc64(0),
            Algorithm::Sha1 => Self::Sha1(Sha1::new()),
            Algorithm::Sha256 => Self::Sha256(Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(h) => h.update(data),
            Self::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Self::Crc64(c) => *c = crc64nvme_update(*c, data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    pub fn finish_base64(self) -> String {
        let engine = &base64::engine::general_purpose::STANDARD;
        match self {
            Self::Crc32(h) => engine.encode(h.finalize().to_be_bytes()),
            Self::Crc32c(c) => engine.encode(c.to_be_bytes()),
            Self::Crc64(c) => engine.encode(c.to_be_bytes()),
            Self::Sha1(h) => engine.encode(h.finalize()),
            Self::Sha256(h) => engine.encode(h.finalize()),
        }
    }
}

pub fn compute(alg: Algorithm, data: &[u8]) -> String {
    let mut h = Hasher::new(alg);
    h.update(data);
    h.finish_base64()
}

/// The base64 checksum S3 expects in `x-amz-checksum-{name}` for `data`. `name` is
/// `crc32`, `crc32c`, `crc64nvme`, `sha1` or `sha256` (any case, with or without the
/// `x-amz-checksum-` prefix); `None` for any other name.
pub fn compute_checksum(name: &str, data: &[u8]) -> Option<String> {
    Algorithm::from_name(name).map(|alg| compute(alg, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values() {
        // The catalogued check values of each CRC over "123456789".
        assert_eq!(crc64nvme_update(0, b"123456789"), 0xae8b_1486_0a79_9888);
        let mut split = crc64nvme_update(0, b"1234");
        split = crc64nvme_update(split, b"56789");
        assert_eq!(split, 0xae8b_1486_0a79_9888);
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn base64_forms() {
        // Values botocore sent for these bodies.
        assert_eq!(
            compute_checksum("crc32", b"xyz").as_deref(),
            Some("6466Zw==")
        );
        assert_eq!(
            compute_checksum("x-amz-checksum-sha256", b"hello").as_deref(),
            Some("LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")
        );
        assert_eq!(compute_checksum("md5", b"x"), None);
        assert!(Algorithm::Crc32.is_well_formed("6466Zw=="));
        assert!(!Algorithm::Crc32.is_well_formed("6466Zw"));
        assert!(!Algorithm::Sha1.is_well_formed("6466Zw=="));
    }
}
