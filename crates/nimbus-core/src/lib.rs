//! The shared vocabulary of nimbus. Every other crate speaks in these types:
//! [`AwsError`] for anything a client must see as an AWS error, [`RequestContext`]
//! for who is calling where, the [`Service`] trait that each AWS service
//! implements (typed JSON values in, typed JSON values out, never HTTP), the
//! [`CredentialRegistry`] that the signature checker and STS share, the
//! cloud-wide clock and id helpers ([`clock`]: the scalable clock of the
//! infrastructure timers), [`telemetry`]: how services publish CloudWatch
//! metrics, and [`timestamp`]: the calendar and every text form of a time
//! (wire formats and signature dates alike).

pub mod body;
pub mod checksum;
pub mod clock;
mod credentials;
mod error;
pub mod save;
mod service;
pub mod telemetry;
pub mod timestamp;

pub use body::{BodySource, FileSlice, Reply, RequestBody, ResponseBody};
pub use credentials::{CredentialRecord, CredentialRegistry};
pub use error::AwsError;
pub use save::{DeferredRemovals, FileHold};
pub use service::{BoxFuture, RequestContext, Service, ServiceState};

use std::time::{SystemTime, UNIX_EPOCH};

/// The account used when an access key does not name one (see `--account-id`).
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

/// Milliseconds since the Unix epoch: the one wall clock of the cloud.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A request id in the form AWS uses (a random UUID).
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `n` random characters from `alphabet`; used for access keys, receipt handles and resource ids.
pub fn random_string(alphabet: &[u8], n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// Matches `text` against a pattern where `*` stands for any run of characters and
/// `?` for one (the wildcards of EC2 filters and of S3 policy checks). Case-sensitive.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

pub const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[cfg(test)]
mod tests {
    #[test]
    fn wildcards() {
        for (p, t, want) in [
            ("*", "", true),
            ("web-*", "web-1", true),
            ("web-?", "web-12", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b", "ab", true),
            ("abc", "abd", false),
            ("t3.*", "t3.micro", true),
            ("t3.*", "t3a.micro", false),
        ] {
            assert_eq!(super::wildcard_match(p, t), want, "{p} vs {t}");
        }
    }
}

/// Parses a byte size (bench sizes, `--cache-size`): a plain number, or one with a unit (KiB, MiB, GiB and
/// K, M, G are powers of 1024; KB, MB, GB powers of 1000, as `dd` reads them).
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: not a size (e.g. 1024, 64MiB, 1GB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit (use KiB, MiB, GiB, KB, MB or GB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: too large"))
}

#[cfg(test)]
mod size_tests {
    use super::parse_byte_size;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_byte_size("1KiB"), Ok(1024));
        assert_eq!(parse_byte_size(" 2 MB "), Ok(2_000_000));
        assert_eq!(parse_byte_size("3g"), Ok(3 << 30));
        assert_eq!(parse_byte_size("512"), Ok(512));
        assert!(parse_byte_size("MiB").is_err());
        assert!(parse_byte_size("1 parsec").is_err());
        assert!(parse_byte_size("99999999999999GiB").is_err());
    }
}
