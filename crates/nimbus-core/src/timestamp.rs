//! Timestamps: the one calendar of nimbus and every text form a time takes.
//! Inside nimbus a timestamp is a number of epoch seconds (see [`to_value`]); on
//! the wire it is ISO 8601 (query, ec2, XML bodies), an RFC 822 / HTTP date (REST
//! headers) or epoch seconds (JSON, CBOR), and a signature carries the ISO 8601
//! basic form (`20130524T000000Z`, see [`format_amz_date`]). Two readings of a
//! parsed date exist: the lenient one the wire codecs use ([`parse`],
//! [`DateTimeParts::epoch_secs`]) and the strict one signatures use
//! ([`DateTimeParts::strict_epoch_secs`], [`parse_amz_date`]). The civil-date
//! arithmetic is done by hand (Howard Hinnant's algorithms) because it is a
//! handful of integer operations on every request that carries a date, and needs
//! no allocation beyond the output string.

use serde_json::Value;
use std::fmt::Write;

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1 to 12).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

/// The number of days in `month` (1 to 12) of `year`; 0 for any other month.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Epoch seconds of a UTC date and time that exists: a real calendar day and a time
/// from 00:00:00 to 23:59:59 (no leap second). `None` for anything else.
pub fn epoch_from_civil(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<i64> {
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

/// Whole epoch seconds broken into UTC calendar fields.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
}

impl Civil {
    fn of(epoch_secs: i64) -> Self {
        let tod = epoch_secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(epoch_secs.div_euclid(86_400));
        Civil {
            year,
            month,
            day,
            hour: tod / 3600,
            minute: tod % 3600 / 60,
            second: tod % 60,
        }
    }

    /// ISO 8601 without fraction or zone: extended (`2024-01-02T03:04:05`) or basic
    /// (`20240102T030405`) form.
    fn write_iso8601(&self, basic: bool, out: &mut String) {
        // Digits by hand: this runs once per timestamp of every listing entry, and
        // `write!` costs several times more.
        let (ds, ts) = if basic { ("", "") } else { ("-", ":") };
        if (0..=9999).contains(&self.year) {
            push_digits(out, self.year as u32, 4);
        } else {
            let _ = write!(out, "{:04}", self.year);
        }
        out.push_str(ds);
        push_digits(out, self.month, 2);
        out.push_str(ds);
        push_digits(out, self.day, 2);
        out.push('T');
        push_digits(out, self.hour as u32, 2);
        out.push_str(ts);
        push_digits(out, self.minute as u32, 2);
        out.push_str(ts);
        push_digits(out, self.second as u32, 2);
    }
}

/// `value` zero-padded to `width` digits (values wider than `width` keep all their digits).
fn push_digits(out: &mut String, value: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut v = value;
    let mut i = buf.len();
    while v > 0 || buf.len() - i < width {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if i == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

fn format_whole_secs(epoch_secs: i64, basic: bool) -> String {
    let mut out = String::with_capacity(20);
    Civil::of(epoch_secs).write_iso8601(basic, &mut out);
    out.push('Z');
    out
}

/// Whole epoch seconds as ISO 8601 extended form, `2013-05-24T00:00:00Z`.
pub fn format_iso8601_secs(epoch_secs: i64) -> String {
    format_whole_secs(epoch_secs, false)
}

/// Whole epoch seconds as the ISO 8601 basic form that SigV4 signs (`X-Amz-Date`),
/// `20130524T000000Z`.
pub fn format_amz_date(epoch_secs: i64) -> String {
    format_whole_secs(epoch_secs, true)
}

/// Parses the SigV4 basic form `yyyyMMdd'T'HHmmss'Z'` strictly: exactly those 16
/// characters, a date that exists and a time up to 23:59:59.
pub fn parse_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    parse_iso8601_parts(text)?.strict_epoch_secs()
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
    let civil = Civil::of(secs);
    // Writing into a String cannot fail; the results are ignored for that reason.
    if format.eq_ignore_ascii_case("rfc822") {
        let weekday = DAY_NAMES[(secs.div_euclid(86_400) + 4).rem_euclid(7) as usize];
        let month_name = MONTH_NAMES[(civil.month - 1) as usize];
        let _ = write!(
            out,
            "{weekday}, {:02} {month_name} {:04} {:02}:{:02}:{:02} GMT",
            civil.day, civil.year, civil.hour, civil.minute, civil.second
        );
    } else {
        civil.write_iso8601(false, out);
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
            if let Some(v) = parse_iso8601_parts(text).and_then(|p| p.epoch_secs()) {
                return Some(v);
            }
        }
    }
    parse_http_date_parts(text).and_then(|p| p.epoch_secs())
}

/// A date and time as a text wrote it, before it is checked and becomes epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DateTimeParts {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    /// 0 when the text has no time.
    pub hour: u32,
    /// 0 when the text has no time.
    pub minute: u32,
    /// `None` when the text has no seconds (or no time at all).
    pub second: Option<u32>,
    /// Fractional seconds, from 0 up to (not including) 1.
    pub fraction: f64,
    /// The zone's offset east of UTC, in seconds.
    pub offset_secs: i64,
}

impl DateTimeParts {
    /// Epoch seconds, read leniently as [`parse`] does: missing seconds are 0, any day
    /// from 1 to 31 counts (one past the month's end rolls over), hour 24 and leap
    /// second 60 are folded into what follows, and the fraction is kept.
    pub fn epoch_secs(&self) -> Option<f64> {
        let (year, month, day) = (self.year, self.month, self.day);
        let (hh, mm, ss) = (self.hour, self.minute, self.second.unwrap_or(0));
        // Leap second 60 is accepted and folded into the next second, as most parsers do.
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hh > 24 || mm > 59 || ss > 60 {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let base =
            (days * 86_400 + i64::from(hh) * 3600 + i64::from(mm) * 60 + i64::from(ss)) as f64;
        Some(base - self.offset_secs as f64 + self.fraction)
    }

    /// Whole epoch seconds, read strictly as signatures need: the seconds must be
    /// written, the date must exist ([`epoch_from_civil`]) and the fraction is dropped.
    pub fn strict_epoch_secs(&self) -> Option<i64> {
        let second = self.second?;
        let t = epoch_from_civil(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            second,
        )?;
        Some(t - self.offset_secs)
    }
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

/// Parses ISO 8601: extended (`2024-01-02T03:04:05.250+01:00`) or basic
/// (`20240102T030405Z`) form, a `T`, `t` or space before the time, optional seconds,
/// fraction (`.` or `,`) and zone (`Z`, `+hh`, `+hhmm`, `+hh:mm`), or a date alone.
/// Fields are two digits, the year four. Callers trim the text first.
pub fn parse_iso8601_parts(text: &str) -> Option<DateTimeParts> {
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
    let (mut hh, mut mm, mut ss, mut frac) = (0, 0, None, 0.0);
    if c.eat(b'T') || c.eat(b't') || c.eat(b' ') {
        hh = c.digits(2)?;
        if extended && !c.eat(b':') {
            return None;
        }
        mm = c.digits(2)?;
        if (extended && c.eat(b':')) || (!extended && c.peek().is_some_and(|b| b.is_ascii_digit()))
        {
            ss = Some(c.digits(2)?);
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
    Some(DateTimeParts {
        year: i64::from(year),
        month,
        day,
        hour: hh,
        minute: mm,
        second: ss,
        fraction: frac,
        offset_secs,
    })
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

/// `hh:mm` with optional `:ss`.
fn parse_time(c: &mut Cursor) -> Option<(u32, u32, Option<u32>)> {
    let hh = c.digits(2)?;
    if !c.eat(b':') {
        return None;
    }
    let mm = c.digits(2)?;
    let ss = if c.eat(b':') {
        Some(c.digits(2)?)
    } else {
        None
    };
    Some((hh, mm, ss))
}

/// Parses an HTTP date: RFC 822/1123 (`Tue, 02 Jan 2024 03:04:05 GMT`), RFC 850
/// (`Tuesday, 02-Jan-24 ...`) or asctime (`Tue Jan  2 03:04:05 2024`). The weekday is
/// optional and not checked, seconds are optional, the zone is `GMT`, `UTC`, `UT`, `Z`,
/// `+hhmm` or `+hh:mm` (none means UTC), and a two-digit year below 50 is 20xx, else
/// 19xx. Callers trim the text first.
pub fn parse_http_date_parts(text: &str) -> Option<DateTimeParts> {
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
        return Some(http_parts(
            i64::from(year),
            month,
            day,
            (hh, mm, ss),
            offset,
        ));
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
    Some(http_parts(year, month, day, (hh, mm, ss), offset))
}

fn http_parts(
    year: i64,
    month: u32,
    day: u32,
    (hour, minute, second): (u32, u32, Option<u32>),
    offset_secs: i64,
) -> DateTimeParts {
    DateTimeParts {
        year,
        month,
        day,
        hour,
        minute,
        second,
        fraction: 0.0,
        offset_secs,
    }
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
    fn calendar() {
        for days in [-719_468, -1, 0, 11_016, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!(d <= days_in_month(y, m));
        }
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2023, 13), 0);
        assert_eq!(epoch_from_civil(2024, 1, 2, 3, 4, 5), Some(1_704_164_645));
        for (y, mo, d, h, mi, s) in [
            (2023, 2, 29, 0, 0, 0),
            (2024, 4, 31, 0, 0, 0),
            (2024, 1, 2, 24, 0, 0),
            (2024, 1, 2, 23, 59, 60),
            (2024, 0, 2, 0, 0, 0),
        ] {
            assert_eq!(epoch_from_civil(y, mo, d, h, mi, s), None);
        }
    }

    #[test]
    fn amz_dates() {
        assert_eq!(format_amz_date(1_704_164_645), "20240102T030405Z");
        assert_eq!(format_amz_date(-1), "19691231T235959Z");
        assert_eq!(format_iso8601_secs(1_704_164_645), "2024-01-02T03:04:05Z");
        assert_eq!(parse_amz_date("20240102T030405Z"), Some(1_704_164_645));
        // The lenient grammar takes these; the SigV4 form does not.
        for bad in [
            "20240102T030405",
            "20240102t030405Z",
            "20240102T0304Z",
            "20240230T000000Z",
            "20240102T030460Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn strict_and_lenient_readings() {
        let parts = |s| parse_iso8601_parts(s).expect(s);
        // Feb 30 rolls over leniently and is refused strictly.
        let feb30 = parts("2023-02-30T00:00:00Z");
        assert_eq!(feb30.epoch_secs(), parse("2023-03-02T00:00:00Z"));
        assert_eq!(feb30.strict_epoch_secs(), None);
        // Missing seconds are 0 leniently and refused strictly.
        let no_secs = parts("2024-01-02T03:04Z");
        assert_eq!(no_secs.second, None);
        assert_eq!(no_secs.epoch_secs(), Some(1_704_164_640.0));
        assert_eq!(no_secs.strict_epoch_secs(), None);
        // Strict drops the fraction and applies the offset.
        let p = parts("2024-01-02T04:04:05.75+01:00");
        assert_eq!(p.strict_epoch_secs(), Some(1_704_164_645));
        assert_eq!(p.epoch_secs(), Some(1_704_164_645.75));
        let http = parse_http_date_parts("Tue, 02 Jan 2024 03:04:05 GMT");
        assert_eq!(
            http.and_then(|p| p.strict_epoch_secs()),
            Some(1_704_164_645)
        );
    }

    #[test]
    fn values() {
        assert_eq!(to_value(5.0), Value::from(5));
        assert_eq!(to_value(5.1234), Value::from(5.123));
        assert_eq!(from_value(&Value::from("1970-01-01T00:00:10Z")), Some(10.0));
    }
}
