//! Dates for the `Date*` condition operators: this module owns reading the
//! forms AWS accepts (ISO 8601 dates and date-times, with optional fraction
//! and zone offset, or epoch seconds) into seconds since the Unix epoch.

/// Seconds since 1970-01-01T00:00:00Z, or `None` when `text` is no date.
pub(crate) fn parse_date(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Some(n) = epoch_seconds(text) {
        return Some(n);
    }
    let (date, time) = match text.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let year: i64 = number(parts.next()?, 4)?;
    let month: i64 = number(parts.next()?, 2)?;
    let day: i64 = number(parts.next()?, 2)?;
    if parts.next().is_some() || !(1..=12).contains(&month) || day < 1 || day > days_in(year, month)
    {
        return None;
    }
    let mut seconds = (days_from_civil(year, month, day) * 86_400) as f64;
    if let Some(time) = time {
        seconds += parse_time(time)?;
    }
    Some(seconds)
}

/// An integer or decimal count of seconds (e.g. `aws:EpochTime`).
fn epoch_seconds(text: &str) -> Option<f64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    if ok {
        text.parse().ok()
    } else {
        None
    }
}

/// `hh:mm[:ss[.fff]]` then `Z`, `±hh:mm`, `±hhmm` or nothing (UTC).
fn parse_time(time: &str) -> Option<f64> {
    let zone_at = time.find(['Z', 'z', '+', '-']);
    let (clock, zone) = match zone_at {
        Some(i) => time.split_at(i),
        None => (time, ""),
    };
    let mut parts = clock.split(':');
    let hour: i64 = number(parts.next()?, 2)?;
    let minute: i64 = number(parts.next()?, 2)?;
    let second: f64 = match parts.next() {
        Some(s) => {
            let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
            let whole: i64 = number(whole, 2)?;
            let frac = if frac.is_empty() {
                0.0
            } else if frac.bytes().all(|b| b.is_ascii_digit()) {
                format!("0.{frac}").parse().ok()?
            } else {
                return None;
            };
            whole as f64 + frac
        }
        None => 0.0,
    };
    if parts.next().is_some() || hour > 23 || minute > 59 || second >= 61.0 {
        return None;
    }
    let offset = match zone {
        "" | "Z" | "z" => 0,
        z => {
            let (sign, rest) = z.split_at(1);
            let rest = rest.replace(':', "");
            if rest.len() != 4 {
                return None;
            }
            let (h, m) = rest.split_at(2);
            let minutes = number::<i64>(h, 2)? * 60 + number::<i64>(m, 2)?;
            if sign == "-" {
                -minutes * 60
            } else {
                minutes * 60
            }
        }
    };
    Some((hour * 3600 + minute * 60 - offset) as f64 + second)
}

/// Exactly `width` ASCII digits.
fn number<T: std::str::FromStr>(text: &str, width: usize) -> Option<T> {
    (text.len() == width && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn days_in(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (the civil-date
/// algorithm: count whole 400-year eras, then days within the era).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_table() {
        let cases: &[(&str, Option<f64>)] = &[
            ("1970-01-01", Some(0.0)),
            ("1970-01-01T00:00:00Z", Some(0.0)),
            ("2019-07-16T12:00:00Z", Some(1_563_278_400.0)),
            ("2019-07-16T14:00:00+02:00", Some(1_563_278_400.0)),
            ("2019-07-16T07:00:00-0500", Some(1_563_278_400.0)),
            ("2019-07-16T12:00:00.500Z", Some(1_563_278_400.5)),
            ("2019-07-16T12:00Z", Some(1_563_278_400.0)),
            ("2000-02-29", Some(951_782_400.0)),
            ("1563278400", Some(1_563_278_400.0)),
            ("2001-02-29", None),
            ("2019-13-01", None),
            ("2019-07-16T25:00:00Z", None),
            ("yesterday", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_date(text), *want, "{text}");
        }
    }
}
