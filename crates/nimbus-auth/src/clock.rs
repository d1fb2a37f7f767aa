//! The time formats that signatures carry: the ISO 8601 basic form of SigV4
//! (`20130524T000000Z`), the HTTP `Date` form of SigV2 (`Tue, 27 Mar 2007
//! 19:36:42 +0000`) and the extended ISO 8601 form of the query API
//! (`2011-10-03T15:19:30Z`), and the time limits of signed requests. The calendar
//! and the grammars are `nimbus_core::timestamp`'s; this module reads them
//! strictly (a date that exists, whole seconds). Everything is seconds since the
//! Unix epoch, UTC.

/// How far a header-signed request's time may be from the server's clock.
pub(crate) const MAX_SKEW_SECS: i64 = 15 * 60;

/// Presigned URLs may not live longer than a week (SigV4 rule).
pub(crate) const MAX_PRESIGN_EXPIRES_SECS: u64 = 7 * 24 * 3600;

pub(crate) use nimbus_core::timestamp::{
    format_amz_date, format_iso8601_secs as format_iso8601, parse_amz_date,
};
use nimbus_core::timestamp::{parse_http_date_parts, parse_iso8601_parts};

/// Parses an HTTP date (RFC 1123, e.g. `Tue, 27 Mar 2007 19:36:42 +0000` or
/// `... GMT`); the weekday is optional and not checked. Strict: the seconds must be
/// there and the date and time must exist.
pub(crate) fn parse_http_date(s: &str) -> Option<i64> {
    parse_http_date_parts(s.trim())?.strict_epoch_secs()
}

/// Parses ISO 8601 as the query API writes it: `2011-10-03T15:19:30Z`, with
/// optional fractional seconds (dropped) and an optional `+hh:mm` offset. The SigV4
/// basic form is accepted too. Strict: a time with seconds is required and the date
/// and time must exist.
pub(crate) fn parse_iso8601(s: &str) -> Option<i64> {
    parse_iso8601_parts(s.trim())?.strict_epoch_secs()
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
