//! The time formats that signatures carry, parsed and written without a
//! calendar library: the ISO 8601 basic form of SigV4 (`20130524T000000Z`),
//! the HTTP `Date` form of SigV2 (`Tue, 27 Mar 2007 19:36:42 +0000`) and the
//! extended ISO 8601 form of the query API (`2011-10-03T15:19:30Z`).
//! Everything is seconds since the Unix epoch, UTC.

/// How far a header-signed request's time may be from the server's clock.
pub(crate) const MAX_SKEW_SECS: i64 = 15 * 60;

/// Presigned URLs may not live longer than a week (SigV4 rule).
pub(crate) const MAX_PRESIGN_EXPIRES_SECS: u64 = 7 * 24 * 3600;

// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm),
// written out because it is short and cannot fail.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

fn to_epoch(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<i64> {
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    Some(
        days_from_civil(year, month, day) * 86_400
            + i64::from(hour) * 3600
            + i64::from(minute) * 60
            + i64::from(second),
    )
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

fn split(epoch: i64) -> Parts {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Parts {
        year,
        month,
        day,
        hour: (secs / 3600) as u32,
        minute: (secs % 3600 / 60) as u32,
        second: (secs % 60) as u32,
    }
}

/// `20130524T000000Z`
pub(crate) fn format_amz_date(epoch: i64) -> String {
    let p = split(epoch);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second
    )
}

/// `2013-05-24T00:00:00Z`, the form S3 uses in error fields.
pub(crate) fn format_iso8601(epoch: i64) -> String {
    let p = split(epoch);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second
    )
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses the SigV4 basic form `yyyyMMdd'T'HHmmss'Z'`, strictly.
pub(crate) fn parse_amz_date(s: &str) -> Option<i64> {
    if s.len() != 16 || !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    if b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    to_epoch(
        i64::from(digits(s.get(0..4)?)?),
        digits(s.get(4..6)?)?,
        digits(s.get(6..8)?)?,
        digits(s.get(9..11)?)?,
        digits(s.get(11..13)?)?,
        digits(s.get(13..15)?)?,
    )
}

fn month_from_name(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let lower = name.to_ascii_lowercase();
    let idx = MONTHS.iter().position(|m| *m == lower)?;
    u32::try_from(idx + 1).ok()
}

fn parse_hms(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split(':');
    let h = digits(it.next()?)?;
    let m = digits(it.next()?)?;
    let sec = digits(it.next()?)?;
    if it.next().is_some() {
        return None;
    }
    Some((h, m, sec))
}

// Offset of a zone like `GMT`, `UTC`, `Z` or `+0200` in seconds east of UTC.
fn zone_offset(zone: &str) -> Option<i64> {
    match zone.to_ascii_uppercase().as_str() {
        "GMT" | "UTC" | "UT" | "Z" => return Some(0),
        _ => {}
    }
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, zone.get(1..)?),
        b'-' => (-1, zone.get(1..)?),
        _ => return None,
    };
    let rest = rest.replace(':', "");
    if rest.len() != 4 {
        return None;
    }
    let hh = i64::from(digits(rest.get(0..2)?)?);
    let mm = i64::from(digits(rest.get(2..4)?)?);
    Some(sign * (hh * 3600 + mm * 60))
}

/// Parses an HTTP date (RFC 1123, e.g. `Tue, 27 Mar 2007 19:36:42 +0000` or
/// `... GMT`); the weekday is optional and not checked.
pub(crate) fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let rest = match s.split_once(',') {
        Some((_, rest)) => rest,
        None => s,
    };
    let mut it = rest.split_whitespace();
    let day = digits(it.next()?)?;
    let month = month_from_name(it.next()?)?;
    let year_text = it.next()?;
    let mut year = i64::from(digits(year_text)?);
    if year_text.len() == 2 {
        // Two-digit years of RFC 850 heritage: 70-99 are 19xx.
        year += if year >= 70 { 1900 } else { 2000 };
    }
    let (h, m, sec) = parse_hms(it.next()?)?;
    let offset = match it.next() {
        Some(zone) => zone_offset(zone)?,
        None => 0,
    };
    if it.next().is_some() {
        return None;
    }
    Some(to_epoch(year, month, day, h, m, sec)? - offset)
}

/// Parses ISO 8601 as the query API writes it: `2011-10-03T15:19:30Z`, with
/// optional fractional seconds and an optional `+hh:mm` offset. The SigV4 basic
/// form is accepted too.
pub(crate) fn parse_iso8601(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(t) = parse_amz_date(s) {
        return Some(t);
    }
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let year = i64::from(digits(d.next()?)?);
    let month = digits(d.next()?)?;
    let day = digits(d.next()?)?;
    if d.next().is_some() {
        return None;
    }
    // Split the time from its zone: `Z`, `+hh:mm`, `-hh:mm` or nothing (UTC).
    let (clock, offset) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(pos) = time.rfind(['+', '-']) {
        (time.get(..pos)?, zone_offset(time.get(pos..)?)?)
    } else {
        (time, 0)
    };
    let clock = match clock.split_once('.') {
        Some((whole, frac)) if digits(frac).is_some() || frac.is_empty() => whole,
        Some(_) => return None,
        None => clock,
    };
    let (h, m, sec) = parse_hms(clock)?;
    Some(to_epoch(year, month, day, h, m, sec)? - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_dates() {
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(1_369_353_600));
        assert_eq!(format_amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(format_iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_amz_date(951_782_400), "20000229T000000Z");
        for t in [
            0_i64,
            1,
            86_399,
            951_868_799,
            1_700_000_000,
            4_102_444_800,
            -86_401,
        ] {
            assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t));
        }
    }

    #[test]
    fn rejects_bad_dates() {
        for bad in [
            "",
            "20130524T000000",
            "20130524 000000Z",
            "20131324T000000Z",
            "20130230T000000Z",
            "20130524T250000Z",
            "2013052aT000000Z",
            "２０１３0524T000000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_http_dates() {
        let t = parse_http_date("Tue, 27 Mar 2007 19:36:42 +0000");
        assert_eq!(t, Some(1_175_024_202));
        assert_eq!(parse_http_date("Tue, 27 Mar 2007 19:36:42 GMT"), t);
        assert_eq!(parse_http_date("Tue, 27 Mar 2007 21:36:42 +0200"), t);
        assert_eq!(parse_http_date("27 Mar 2007 19:36:42"), t);
        assert_eq!(parse_http_date("Tue, 27 Foo 2007 19:36:42 GMT"), None);
        assert_eq!(parse_http_date("garbage"), None);
    }

    #[test]
    fn parses_iso8601() {
        let t = Some(1_317_655_170);
        assert_eq!(parse_iso8601("2011-10-03T15:19:30Z"), t);
        assert_eq!(parse_iso8601("2011-10-03T15:19:30.123Z"), t);
        assert_eq!(parse_iso8601("2011-10-03T17:19:30+02:00"), t);
        assert_eq!(parse_iso8601("20111003T151930Z"), t);
        assert_eq!(parse_iso8601("2011-10-03"), None);
        assert_eq!(parse_iso8601("2011-10-03T15:19:30.xZ"), None);
    }
}
