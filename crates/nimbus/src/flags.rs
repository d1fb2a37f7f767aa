//! Checks of `nimbus serve`'s settings, as clap value parsers: a flag and its
//! `NIMBUS_*` variable go through the same parser, so a bad value in either is
//! refused before anything is opened, with clap's message naming the flag and
//! the value, and exit status 2. Each parser returns the value as the rest of
//! serve uses it.

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// `--account-id`: 12 digits, as AWS account ids are.
pub fn account_id(s: &str) -> Result<String, String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err("an account id is exactly 12 digits (e.g. 000000000000)".into())
    }
}

/// `--region`: a region name (`us-east-1`, `us-gov-west-1`, `cn-north-1`,
/// `us-isob-east-1`): two letters, optionally `gov` or `iso...`, a direction
/// word, a number.
pub fn region(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split('-').collect();
    let letters = |p: &str, min: usize| p.len() >= min && p.bytes().all(|b| b.is_ascii_lowercase());
    let ok = match parts.as_slice() {
        [country, word, number] => {
            country.len() == 2 && letters(country, 2) && letters(word, 1) && is_number(number)
        }
        [country, partition, word, number] => {
            country.len() == 2
                && letters(country, 2)
                && (*partition == "gov" || (partition.starts_with("iso") && letters(partition, 3)))
                && letters(word, 1)
                && is_number(number)
        }
        _ => false,
    };
    if ok {
        Ok(s.to_string())
    } else {
        Err("not a region name (e.g. us-east-1, eu-central-2, us-gov-west-1)".into())
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `--elastic-ip-cidr`: an IPv4 block of at least 4 addresses (`a.b.c.d/len`, len ≤ 30).
pub fn ipv4_cidr(s: &str) -> Result<String, String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or("not a CIDR block (e.g. 127.100.0.0/16)")?;
    addr.parse::<Ipv4Addr>()
        .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
    match len.parse::<u8>() {
        Ok(n) if n <= 30 => Ok(s.to_string()),
        Ok(n) if n <= 32 => Err(format!("/{n} holds fewer than 4 addresses")),
        _ => Err(format!("{len:?} is not a prefix length (0-30)")),
    }
}

/// Credentials: anything but empty.
pub fn non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_string())
    }
}

/// `--host`: an IP address or a host name (resolved when binding).
pub fn host(s: &str) -> Result<String, String> {
    let name_ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
        });
    if s.parse::<std::net::IpAddr>().is_ok() || name_ok {
        Ok(s.to_string())
    } else {
        Err("not an IP address or host name".into())
    }
}

/// `--log-level`: a level (error, warn, info, debug, trace, off) or a tracing
/// filter with targets (`nimbus=debug,warn`). A bare word that is no level is
/// refused: tracing would take it for a target name and log nothing.
pub fn log_level(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    let bare = !s.contains(['=', ',', '[', ':']);
    if bare {
        return s
            .parse::<tracing::level_filters::LevelFilter>()
            .map(|_| s.to_string())
            .map_err(|_| {
                "not a level (error, warn, info, debug, trace, off) or a filter such as nimbus=debug"
                    .into()
            });
    }
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not a tracing filter: {e}"))
}

/// `--init`: an existing directory (its `ready.d` may be missing or empty).
pub fn init_dir(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if path.is_dir() {
        Ok(path)
    } else {
        Err("not a directory".into())
    }
}

/// `--cache-size`: a size in bytes, or with a unit (64MiB, 512MB, 1GiB).
pub fn byte_size(s: &str) -> Result<usize, String> {
    nimbus_core::parse_byte_size(s)
        .and_then(|n| usize::try_from(n).map_err(|_| format!("{s:?}: too large")))
}

/// A duration as people write one: a whole number and a unit (`s`, `m`,
/// `h`, `d` or `w`), or several in a row (`1d12h`); a bare number is seconds.
/// In seconds.
pub fn duration_s(s: &str) -> Result<u64, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| format!("{text:?}: too large"));
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "{text:?}: not a duration (e.g. 3h, 90m, 14d, 2w, 1d12h)"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: too large"))?;
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        let scale: u64 = match &rest[digits..digits + unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            unit => {
                return Err(format!(
                    "{text:?}: unknown unit {unit:?} (use s, m, h, d or w)"
                ))
            }
        };
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?}: too large"))?;
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// `--metrics-retention`: how long raw metric data is kept, from CloudWatch's
/// own 3 hours up to ten years. In seconds.
pub fn metrics_retention(s: &str) -> Result<u64, String> {
    const MIN_S: u64 = 3 * 3600;
    const MAX_S: u64 = 3650 * 86_400;
    let secs = duration_s(s)?;
    if secs < MIN_S {
        Err("must be at least 3h (CloudWatch keeps raw data 3 hours)".into())
    } else if secs > MAX_S {
        Err("must be at most 3650d".into())
    } else {
        Ok(secs)
    }
}

/// `--data-dir`: a path (created if missing).
pub fn data_dir(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else if std::path::Path::new(s).is_file() {
        Err("is a file, not a directory".into())
    } else {
        Ok(PathBuf::from(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(byte_size("4096"), Ok(4096));
        assert_eq!(byte_size("64MiB"), Ok(64 << 20));
        assert_eq!(byte_size("64M"), Ok(64 << 20));
        assert_eq!(byte_size("2 GB"), Ok(2_000_000_000));
        assert!(byte_size("64XB").is_err());
        assert!(byte_size("MiB").is_err());
        assert!(byte_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn durations_and_retention() {
        assert_eq!(duration_s("3h"), Ok(10_800));
        assert_eq!(duration_s("90m"), Ok(5_400));
        assert_eq!(duration_s("2w"), Ok(14 * 86_400));
        assert_eq!(duration_s("1d12h"), Ok(129_600));
        assert_eq!(duration_s("3600"), Ok(3_600));
        for bad in ["", "h", "3x", "3 h", "1.5h", "-3h", "99999999999999999999w"] {
            assert!(duration_s(bad).is_err(), "{bad}");
        }
        assert_eq!(metrics_retention("3h"), Ok(10_800));
        assert_eq!(metrics_retention("90d"), Ok(90 * 86_400));
        assert!(metrics_retention("2h").is_err());
        assert!(metrics_retention("3651d").is_err());
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "ap-southeast-4",
            "us-gov-west-1",
            "cn-north-1",
            "il-central-1",
            "me-south-1",
            "ca-west-1",
            "us-isob-east-1",
            "us-iso-east-1",
            "eu-isoe-west-1",
            "mx-central-1",
        ] {
            assert!(region(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "useast1",
            "US-EAST-1",
            "us-east-1a",
            "usa-east-1",
            "us--1",
            "us-foo-west-1",
            "us-east-1-",
        ] {
            assert!(region(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accounts_cidrs_levels() {
        assert!(account_id("000000000000").is_ok());
        for bad in ["", "12345678901", "1234567890123", "12345678901a"] {
            assert!(account_id(bad).is_err(), "{bad}");
        }
        for ok in ["127.100.0.0/16", "10.0.0.0/30", "0.0.0.0/0"] {
            assert!(ipv4_cidr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.100.0.0",
            "127.100.0.0/31",
            "300.1.1.1/8",
            "1.2.3.4/x",
            "::1/64",
        ] {
            assert!(ipv4_cidr(bad).is_err(), "{bad}");
        }
        for ok in [
            "warn",
            "INFO",
            "off",
            "trace",
            "nimbus=debug",
            "warn,nimbus_s3=trace",
        ] {
            assert!(log_level(ok).is_ok(), "{ok}");
        }
        for bad in ["loud", "warning!", "nimbus=loud", ""] {
            assert!(log_level(bad).is_err(), "{bad}");
        }
        assert!(non_empty("").is_err() && non_empty("test").is_ok());
        for ok in ["127.0.0.1", "::", "localhost", "my-host.example"] {
            assert!(host(ok).is_ok(), "{ok}");
        }
        for bad in ["", "bad host", "-x", "a..b"] {
            assert!(host(bad).is_err(), "{bad}");
        }
    }
}
