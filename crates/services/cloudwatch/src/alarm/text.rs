//! How CloudWatch writes numbers and times inside state reasons. CloudWatch is
//! a Java service and its reasons show it: every number is a Java `double`
//! printed by `Double.toString` (`50.0`, `0.02`, `1.0E7`), datapoint times in
//! the reason text are `dd/MM/yy HH:mm:ss`, times in `StateReasonData` are
//! `yyyy-MM-dd'T'HH:mm:ss.SSS+0000`, and a composite alarm's reason names the
//! day as `Friday 22 July, 2022 15:57:45 UTC`. All times are UTC.

use nimbus_core::timestamp::civil_from_days;
use std::fmt::Write;

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// `value` as Java's `Double.toString` prints it: the shortest digits that read
/// back as the same double, always with a fraction (`75.0`), and in scientific
/// form (`1.0E7`, `1.5E-4`) outside 10^-3 <= |value| < 10^7.
pub(crate) fn java_double(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_string();
    }
    if (1e-3..1e7).contains(&value.abs()) {
        // Rust's `Display` for f64 is also shortest-round-trip and never uses
        // an exponent; only the ".0" of whole numbers differs.
        let text = value.to_string();
        if text.contains('.') {
            text
        } else {
            text + ".0"
        }
    } else {
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        if mantissa.contains('.') {
            format!("{mantissa}E{exponent}")
        } else {
            format!("{mantissa}.0E{exponent}")
        }
    }
}

/// Epoch milliseconds broken into UTC calendar fields.
struct Utc {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
    weekday: usize,
}

impl Utc {
    fn of(epoch_ms: i64) -> Self {
        let secs = epoch_ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let time_of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Utc {
            year,
            month,
            day,
            hour: time_of_day / 3600,
            minute: time_of_day % 3600 / 60,
            second: time_of_day % 60,
            millis: epoch_ms.rem_euclid(1000),
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as usize,
        }
    }

    fn month_name(&self) -> &'static str {
        MONTH_NAMES
            .get(self.month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("")
    }
}

/// A datapoint's time as the reason text shows it: `12/07/26 10:03:00`.
pub(crate) fn reason_time(epoch_ms: i64) -> String {
    let t = Utc::of(epoch_ms);
    format!(
        "{:02}/{:02}/{:02} {:02}:{:02}:{:02}",
        t.day,
        t.month,
        t.year.rem_euclid(100),
        t.hour,
        t.minute,
        t.second
    )
}

/// A time inside `StateReasonData`: `2026-07-12T10:03:00.000+0000`.
pub(crate) fn data_time(epoch_ms: i64) -> String {
    let t = Utc::of(epoch_ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

/// The time in a composite alarm's reason: `Friday 22 July, 2022 15:57:45 UTC`.
pub(crate) fn composite_reason_time(epoch_ms: i64) -> String {
    let t = Utc::of(epoch_ms);
    format!(
        "{} {:02} {}, {:04} {:02}:{:02}:{:02} UTC",
        DAY_NAMES.get(t.weekday).copied().unwrap_or(""),
        t.day,
        t.month_name(),
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

/// `text` as a JSON string literal, quotes included.
pub(crate) fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// "1 datapoint" / "3 datapoints": English plural by count.
pub(crate) fn counted(count: usize, singular: &str, plural: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{count} {}",
        if count == 1 { singular } else { plural }
    );
    out
}

/// "was" for one, "were" for any other count.
pub(crate) fn was_were(count: usize) -> &'static str {
    if count == 1 {
        "was"
    } else {
        "were"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java_does() {
        // Values seen in real StateReason / StateReasonData texts.
        assert_eq!(java_double(50.0), "50.0");
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(0.02), "0.02");
        assert_eq!(java_double(45628.0), "45628.0");
        assert_eq!(java_double(0.0666851903306472), "0.0666851903306472");
        assert_eq!(java_double(99.50160229693434), "99.50160229693434");
        assert_eq!(java_double(3.4666088898518357), "3.4666088898518357");
        assert_eq!(java_double(0.01758096118768056), "0.01758096118768056");
        // Java's switch to scientific form at 10^7 and below 10^-3.
        assert_eq!(java_double(9_999_999.0), "9999999.0");
        assert_eq!(java_double(10_000_000.0), "1.0E7");
        assert_eq!(java_double(12_345_678.9), "1.23456789E7");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(0.000_15), "1.5E-4");
        assert_eq!(java_double(-2.5e-7), "-2.5E-7");
        assert_eq!(java_double(-75.5), "-75.5");
        assert_eq!(java_double(-0.0), "-0.0");
        assert_eq!(java_double(1e300), "1.0E300");
        assert_eq!(java_double(f64::NAN), "NaN");
        assert_eq!(java_double(f64::INFINITY), "Infinity");
        assert_eq!(java_double(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn times_print_in_each_of_the_three_forms() {
        // 2019-10-02T16:59:00Z, from the user guide's EventBridge example.
        let ms = 1_570_035_540_000;
        assert_eq!(reason_time(ms), "02/10/19 16:59:00");
        assert_eq!(data_time(ms), "2019-10-02T16:59:00.000+0000");
        assert_eq!(data_time(ms + 985), "2019-10-02T16:59:00.985+0000");
        // 2022-07-22T15:57:45.394Z was a Friday.
        assert_eq!(
            composite_reason_time(1_658_505_465_394),
            "Friday 22 July, 2022 15:57:45 UTC"
        );
        // 2022-10-30T20:47:35.671Z was a Sunday.
        assert_eq!(
            composite_reason_time(1_667_162_855_671),
            "Sunday 30 October, 2022 20:47:35 UTC"
        );
        assert_eq!(
            composite_reason_time(0),
            "Thursday 01 January, 1970 00:00:00 UTC"
        );
        assert_eq!(reason_time(0), "01/01/70 00:00:00");
        // Before the epoch the fields still come out right.
        assert_eq!(data_time(-1), "1969-12-31T23:59:59.999+0000");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("Average"), "\"Average\"");
        assert_eq!(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
