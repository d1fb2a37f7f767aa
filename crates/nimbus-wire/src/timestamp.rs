//! Timestamps on the wire. Inside nimbus a timestamp is a number of epoch
//! seconds (see [`to_value`]); on the wire it is ISO 8601 (query, ec2, XML
//! bodies), an RFC 822 / HTTP date (REST headers) or epoch seconds (JSON,
//! CBOR). The civil-date arithmetic is done by hand (Howard Hinnant's
//! algorithms) because it is a handful of integer operations on every request
//! that carries a date, and needs no allocation beyond the output string.

use serde_json::Value;
use std::fmt::Write;

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
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

/// Rounds to whole milliseconds: the precision AWS timestamps carry.
fn to_millis(epoch_secs: f64) -> i64 {
    if epoch_secs.is_finite() {
        (epoch_secs * 1000.0).round() as i64
    } else {
        0
    }
}

/// Formats epoch seconds as `iso8601` (`2024-01-02T03:04:05Z`, with `.mmm` only when
/// there are milliseconds), `rfc822` (`Tue, 02 Jan 2024 03:04:05 GMT`) or
/// `unixTimestamp` (`1704164645` or `1704164645.5`). The name is matched without regard
/// to case, as botocore does; an unknown name gives ISO 8601.
pub fn format(epoch_secs: f64, format: &str) -> String {
    let mut out = String::with_capacity(32);
    write_formatted(epoch_secs, format, &mut out);
    out
}

/// [`format`] into an existing buffer (the XML writers use this to avoid a temporary).
pub fn write_formatted(epoch_secs: f64, format: &str, out: &mut String) {
    let millis = to_millis(epoch_secs);
    if format.eq_ignore_ascii_case("unixTimestamp") {
        write_epoch(millis, out);
        return;
    }
    let secs = millis.div_euclid(1000);
    let frac = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hh, mm, ss) = (tod / 3600, tod % 3600 / 60, tod % 60);
    // Writing into a String cannot fail; the results are ignored for that reason.
    if format.eq_ignore_ascii_case("rfc822") {
        let weekday = DAY_NAMES[(days + 4).rem_euclid(7) as usize];
        let month_name = MONTH_NAMES[(month - 1) as usize];
        let _ = write!(
            out,
            "{weekday}, {day:02} {month_name} {year:04} {hh:02}:{mm:02}:{ss:02} GMT"
        );
    } else {
        let _ = write!(out, "{year:04}-{month:02}-{day:02}T{hh:02}:{mm:02}:{ss:02}");
        if frac != 0 {
            let _ = write!(out, ".{frac:03}");
        }
        out.push('Z');
    }
}

fn write_epoch(millis: i64, out: &mut String) {
    if millis % 1000 == 0 {
        let _ = write!(out, "{}", millis / 1000);
    } else {
        // f64's shortest round-trip form of a millisecond value is exact enough and has
        // no trailing zeros.
        let _ = write!(out, "{}", millis as f64 / 1000.0);
    }
}

/// Epoch seconds as the value convention has them: an integer when whole, else a float
/// rounded to milliseconds.
pub fn to_value(epoch_secs: f64) -> Value {
    let millis = to_millis(epoch_secs);
    if millis % 1000 == 0 {
        Value::from(millis / 1000)
    } else {
        Value::from(millis as f64 / 1000.0)
    }
}

/// Epoch seconds from a value: a number, or a string in any form [`parse`] accepts.
pub fn from_value(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse(s),
        _ => None,
    }
}

/// Parses ISO 8601 (with or without fractional seconds and offset, extended or basic
/// form), RFC 822 / HTTP dates (`Tue, 02 Jan 2024 03:04:05 GMT`, optional weekday,
/// `GMT`/`UTC`/`Z`/`+hhmm` zones), asctime dates, and epoch seconds (`1704164645.5`).
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    let first = *text.as_bytes().first()?;
    if first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.' {
        if text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        {
            if let Ok(v) = text.parse::<f64>() {
                return v.is_finite().then_some(v);
            }
        }
        if first.is_ascii_digit() {
            if let Some(v) = parse_iso8601(text) {
                return Some(v);
            }
        }
    }
    parse_http_date(text)
}

/// A tiny cursor over ASCII bytes for the date grammars.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Exactly `n` digits as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let slice = self.bytes.get(self.pos..self.pos + n)?;
        let mut v = 0u32;
        for &b in slice {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(b - b'0');
        }
        self.pos += n;
        Some(v)
    }

    /// One or more digits (at most 9).
    fn some_digits(&mut self) -> Option<u32> {
        let start = self.pos;
        let mut v = 0u32;
        while let Some(b) = self.peek() {
            if !b.is_ascii_digit() || self.pos - start >= 9 {
                break;
            }
            v = v * 10 + u32::from(b - b'0');
            self.pos += 1;
        }
        (self.pos > start).then_some(v)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn word(&mut self) -> &[u8] {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.pos += 1;
        }
        &self.bytes[start..self.pos]
    }

    fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

fn epoch_of(year: i64, month: u32, day: u32, hh: u32, mm: u32, ss: u32) -> Option<f64> {
    // Leap second 60 is accepted and folded into the next second, as most parsers do.
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hh > 24 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + i64::from(hh) * 3600 + i64::from(mm) * 60 + i64::from(ss)) as f64)
}

fn parse_iso8601(text: &str) -> Option<f64> {
    let mut c = Cursor {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let year = c.digits(4)?;
    // Extended form has dashes and colons; basic form (`20240102T030405Z`) has none.
    let extended = c.eat(b'-');
    let month = c.digits(2)?;
    if extended && !c.eat(b'-') {
        return None;
    }
    let day = c.digits(2)?;
    let (mut hh, mut mm, mut ss, mut frac) = (0, 0, 0, 0.0);
    if c.eat(b'T') || c.eat(b't') || c.eat(b' ') {
        hh = c.digits(2)?;
        if extended && !c.eat(b':') {
            return None;
        }
        mm = c.digits(2)?;
        if (extended && c.eat(b':')) || (!extended && c.peek().is_some_and(|b| b.is_ascii_digit()))
        {
            ss = c.digits(2)?;
            if c.eat(b'.') || c.eat(b',') {
                let start = c.pos;
                while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                    c.pos += 1;
                }
                let digits = text.get(start..c.pos)?;
                if digits.is_empty() {
                    return None;
                }
                frac = format!("0.{digits}").parse::<f64>().ok()?;
            }
        }
    }
    let mut offset_secs = 0i64;
    match c.peek() {
        None => {}
        Some(b'Z' | b'z') => c.pos += 1,
        Some(sign @ (b'+' | b'-')) => {
            c.pos += 1;
            let oh = c.digits(2)?;
            c.eat(b':');
            let om = if c.done() { 0 } else { c.digits(2)? };
            let off = i64::from(oh) * 3600 + i64::from(om) * 60;
            offset_secs = if sign == b'+' { off } else { -off };
        }
        Some(_) => return None,
    }
    if !c.done() {
        return None;
    }
    let base = epoch_of(i64::from(year), month, day, hh, mm, ss)?;
    Some(base - offset_secs as f64 + frac)
}

fn month_number(name: &[u8]) -> Option<u32> {
    MONTH_NAMES
        .iter()
        .position(|m| m.as_bytes().eq_ignore_ascii_case(name))
        .map(|i| i as u32 + 1)
}

fn parse_zone(c: &mut Cursor) -> Option<i64> {
    c.skip_spaces();
    match c.peek() {
        None => Some(0),
        Some(sign @ (b'+' | b'-')) => {
            c.pos += 1;
            let oh = c.digits(2)?;
            c.eat(b':');
            let om = c.digits(2)?;
            let off = i64::from(oh) * 3600 + i64::from(om) * 60;
            Some(if sign == b'+' { off } else { -off })
        }
        Some(_) => {
            let zone = c.word();
            [&b"GMT"[..], b"UTC", b"UT", b"Z"]
                .iter()
                .any(|z| z.eq_ignore_ascii_case(zone))
                .then_some(0)
        }
    }
}

fn parse_time(c: &mut Cursor) -> Option<(u32, u32, u32)> {
    let hh = c.digits(2)?;
    if !c.eat(b':') {
        return None;
    }
    let mm = c.digits(2)?;
    let ss = if c.eat(b':') { c.digits(2)? } else { 0 };
    Some((hh, mm, ss))
}

/// RFC 822/1123 (`Tue, 02 Jan 2024 03:04:05 GMT`), RFC 850 (`Tuesday, 02-Jan-24 ...`)
/// and asctime (`Tue Jan  2 03:04:05 2024`).
fn parse_http_date(text: &str) -> Option<f64> {
    let mut c = Cursor {
        bytes: text.as_bytes(),
        pos: 0,
    };
    c.skip_spaces();
    let first_word = c.word().len();
    if first_word > 0 {
        c.eat(b',');
        c.skip_spaces();
    }
    if c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
        // asctime: month name first, then day, time, year.
        let month = month_number(c.word())?;
        c.skip_spaces();
        let day = c.some_digits()?;
        c.skip_spaces();
        let (hh, mm, ss) = parse_time(&mut c)?;
        c.skip_spaces();
        let year = c.digits(4)?;
        let offset = parse_zone(&mut c)?;
        if !c.done() {
            return None;
        }
        return Some(epoch_of(i64::from(year), month, day, hh, mm, ss)? - offset as f64);
    }
    let day = c.some_digits()?;
    let dashed = c.eat(b'-');
    if !dashed {
        c.skip_spaces();
    }
    let month = month_number(c.word())?;
    if dashed {
        if !c.eat(b'-') {
            return None;
        }
    } else {
        c.skip_spaces();
    }
    let start = c.pos;
    let year_digits = c.some_digits()?;
    let year = match c.pos - start {
        // Two-digit years (RFC 850) follow the usual 50-year window.
        2 => i64::from(year_digits) + if year_digits < 50 { 2000 } else { 1900 },
        4 => i64::from(year_digits),
        _ => return None,
    };
    c.skip_spaces();
    let (hh, mm, ss) = parse_time(&mut c)?;
    let offset = parse_zone(&mut c)?;
    c.skip_spaces();
    if !c.done() {
        return None;
    }
    Some(epoch_of(year, month, day, hh, mm, ss)? - offset as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format(0.0, "iso8601"), "1970-01-01T00:00:00Z");
        assert_eq!(format(1_704_164_645.0, "iso8601"), "2024-01-02T03:04:05Z");
        assert_eq!(
            format(1_704_164_645.25, "iso8601"),
            "2024-01-02T03:04:05.250Z"
        );
        assert_eq!(
            format(1_704_164_645.0, "rfc822"),
            "Tue, 02 Jan 2024 03:04:05 GMT"
        );
        assert_eq!(format(1_704_164_645.0, "unixTimestamp"), "1704164645");
        assert_eq!(format(1_704_164_645.5, "unixtimestamp"), "1704164645.5");
        assert_eq!(format(-1.5, "iso8601"), "1969-12-31T23:59:58.500Z");
        assert_eq!(format(951_782_400.0, "iso8601"), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses() {
        let t = 1_704_164_645.0;
        for s in [
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:05.000Z",
            "2024-01-02T03:04:05+00:00",
            "2024-01-02T05:04:05+02:00",
            "2024-01-01T22:04:05-0500",
            "20240102T030405Z",
            "2024-01-02 03:04:05",
            "Tue, 02 Jan 2024 03:04:05 GMT",
            "02 Jan 2024 03:04:05 GMT",
            "Tue, 02 Jan 2024 04:04:05 +0100",
            "Tuesday, 02-Jan-24 03:04:05 GMT",
            "Tue Jan  2 03:04:05 2024",
            "1704164645",
            "1704164645.0",
        ] {
            assert_eq!(parse(s), Some(t), "{s}");
        }
        assert_eq!(parse("2024-01-02T03:04:05.123456Z"), Some(t + 0.123456));
        assert_eq!(parse("2024-01-02"), Some(1_704_153_600.0));
        for bad in [
            "",
            "nope",
            "2024-13-01T00:00:00Z",
            "2024-01-02T03:04:05Zjunk",
            "NaN",
            "inf",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn values() {
        assert_eq!(to_value(5.0), Value::from(5));
        assert_eq!(to_value(5.1234), Value::from(5.123));
        assert_eq!(from_value(&Value::from("1970-01-01T00:00:10Z")), Some(10.0));
    }
}
