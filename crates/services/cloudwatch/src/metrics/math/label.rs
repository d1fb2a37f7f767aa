//! Dynamic labels: the `${...}` parts of a query's Label filled in from
//! the series it labels, and the `LabelOptions.Timezone` offset that
//! time-valued parts are shown in.
//!
//! Filled in: `${LABEL}` (the series' own label: the metric name, or the
//! label a series had before an expression took it), `${AVG}`, `${MAX}`,
//! `${MIN}`, `${SUM}`, `${FIRST}`, `${LAST}`, `${DATAPOINT_COUNT}` (over
//! the points returned), and `${FIRST_TIME}`, `${LAST_TIME}`,
//! `${MIN_TIME}`, `${MAX_TIME}` as `2024-05-06T13:45:00+0130` in the
//! requested offset. A part nimbus does not know is left as written.

/// Reads a `LabelOptions.Timezone` value (`+HHMM` / `-HHMM`) into minutes.
pub fn parse_timezone(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    if b.len() != 5 || !b[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = i32::from(b[1] - b'0') * 10 + i32::from(b[2] - b'0');
    let minutes = i32::from(b[3] - b'0') * 10 + i32::from(b[4] - b'0');
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 60 + minutes))
}

/// A number as labels show it: the shortest form that reads back the same.
fn number(x: f64) -> String {
    format!("{x}")
}

fn time(t_ms: i64, offset_min: i32) -> String {
    let shifted = t_ms.div_euclid(1000) + i64::from(offset_min) * 60;
    let iso = nimbus_core::timestamp::format_iso8601_secs(shifted);
    let bare = iso.strip_suffix('Z').unwrap_or(&iso);
    let sign = if offset_min < 0 { '-' } else { '+' };
    let m = offset_min.unsigned_abs();
    format!("{bare}{sign}{:02}{:02}", m / 60, m % 60)
}

/// `template` with its dynamic parts filled in for a series labelled
/// `own_label` holding `points` (ascending by time).
pub fn render(template: &str, own_label: &str, points: &[(i64, f64)], offset_min: i32) -> String {
    if !template.contains("${") {
        return template.to_string();
    }
    let values = || points.iter().map(|p| p.1);
    let extreme = |max: bool| {
        points.iter().copied().reduce(|a, b| {
            let better = if max { b.1 > a.1 } else { b.1 < a.1 };
            if better {
                b
            } else {
                a
            }
        })
    };
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("${") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        let filled = match name {
            "LABEL" => Some(own_label.to_string()),
            "AVG" => {
                (!points.is_empty()).then(|| number(values().sum::<f64>() / points.len() as f64))
            }
            "SUM" => (!points.is_empty()).then(|| number(values().sum())),
            "MAX" => extreme(true).map(|p| number(p.1)),
            "MIN" => extreme(false).map(|p| number(p.1)),
            "FIRST" => points.first().map(|p| number(p.1)),
            "LAST" => points.last().map(|p| number(p.1)),
            "DATAPOINT_COUNT" => Some(points.len().to_string()),
            "FIRST_TIME" => points.first().map(|p| time(p.0, offset_min)),
            "LAST_TIME" => points.last().map(|p| time(p.0, offset_min)),
            "MAX_TIME" => extreme(true).map(|p| time(p.0, offset_min)),
            "MIN_TIME" => extreme(false).map(|p| time(p.0, offset_min)),
            _ => None,
        };
        match filled {
            Some(text) => out.push_str(&text),
            // A statistic of no points shows as nothing; an unknown part stays.
            None if is_known(name) => {}
            None => out.push_str(&rest[open..open + 2 + close + 1]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

fn is_known(name: &str) -> bool {
    matches!(
        name,
        "AVG"
            | "SUM"
            | "MAX"
            | "MIN"
            | "FIRST"
            | "LAST"
            | "FIRST_TIME"
            | "LAST_TIME"
            | "MAX_TIME"
            | "MIN_TIME"
    )
}
