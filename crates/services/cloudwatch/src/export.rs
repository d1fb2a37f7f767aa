//! CloudWatch's metrics in the Prometheus text format (served at
//! `GET /_nimbus/metrics`), so that a stock Prometheus can scrape what runs
//! in nimbus (pattern 33, monitoring integration).
//!
//! One family per CloudWatch metric: `aws_sqs_number_of_messages_sent` for
//! `AWS/SQS NumberOfMessagesSent`, `app_orders_latency` for `App/Orders
//! Latency`. A sample per series and statistic of the latest minute with
//! data in the last ten minutes, labelled with the account, region, unit,
//! statistic and the metric's dimensions (in snake case), and stamped with
//! that minute's start. Only series published to in the last three hours are
//! exported, at most [`MAX_SERIES`] per scrape (a scrape costs one statistics
//! read per series).

use crate::metrics::{Metrics, MetricsError, Statistic, StatisticsRequest};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Series one scrape exports at most.
pub const MAX_SERIES: usize = 10_000;
const ACTIVE_MS: u64 = 3 * 3_600_000;
const LOOK_BACK_MS: i64 = 10 * 60_000;
const STATISTICS: [(Statistic, &str); 5] = [
    (Statistic::Average, "average"),
    (Statistic::Sum, "sum"),
    (Statistic::Minimum, "minimum"),
    (Statistic::Maximum, "maximum"),
    (Statistic::SampleCount, "sample_count"),
];
/// Labels nimbus sets itself; a dimension of the same name gets `dim_`.
const OWN_LABELS: [&str; 4] = ["account", "region", "unit", "statistic"];

/// `CamelCase/Words-and.dots` as a Prometheus name part: `camel_case_words_and_dots`.
pub fn snake(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_alphanumeric() {
            let boundary = c.is_ascii_uppercase()
                && i > 0
                && (chars[i - 1].is_ascii_lowercase()
                    || chars[i - 1].is_ascii_digit()
                    || (chars[i - 1].is_ascii_uppercase()
                        && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase())));
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The export's text at `now_ms` (cloud time).
pub fn prometheus_text(metrics: &Metrics, now_ms: u64) -> Result<String, MetricsError> {
    // family name -> (help, sample lines)
    let mut families: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut after: Option<Vec<u8>> = None;
    let mut exported = 0usize;
    'pages: loop {
        let (page, next) = metrics.list_series_in(&[], after.as_deref(), 512)?;
        for info in page {
            if exported == MAX_SERIES {
                break 'pages;
            }
            if info.last_put_ms.saturating_add(ACTIVE_MS) < now_ms {
                continue;
            }
            let name = &info.name;
            let stats: Vec<Statistic> = STATISTICS.iter().map(|(s, _)| *s).collect();
            let end = (now_ms as i64) / 60_000 * 60_000 + 60_000;
            let request = StatisticsRequest {
                account: &name.account,
                region: &name.region,
                metric: &name.identity,
                unit: Some(name.unit),
                start_ms: end - LOOK_BACK_MS,
                end_ms: end,
                period_s: 60,
                statistics: &stats,
            };
            let points = metrics.statistics(&request, now_ms, 11)?;
            let Some(latest) = points.iter().max_by_key(|p| p.timestamp_ms) else {
                continue;
            };
            exported += 1;
            let family = format!(
                "{}_{}",
                snake(&name.identity.namespace),
                snake(&name.identity.metric_name)
            );
            let entry = families.entry(family.clone()).or_insert_with(|| {
                (
                    format!(
                        "CloudWatch {} {}, per minute",
                        name.identity.namespace, name.identity.metric_name
                    ),
                    Vec::new(),
                )
            });
            let mut labels = String::new();
            labels.push_str("account=\"");
            escape_label(&name.account, &mut labels);
            labels.push_str("\",region=\"");
            escape_label(&name.region, &mut labels);
            let _ = write!(labels, "\",unit=\"{}\"", name.unit.as_str());
            let mut seen: Vec<String> = Vec::new();
            for d in name.identity.dimensions() {
                let mut label = snake(&d.name);
                if OWN_LABELS.contains(&label.as_str()) || label.starts_with("__") {
                    label = format!("dim_{label}");
                }
                // Two dimensions that snake to one label: keep the first.
                if seen.contains(&label) {
                    continue;
                }
                let _ = write!(labels, ",{label}=\"");
                escape_label(&d.value, &mut labels);
                labels.push('"');
                seen.push(label);
            }
            for ((_, stat_name), value) in STATISTICS.iter().zip(&latest.values) {
                let Some(value) = value.filter(|v| v.is_finite()) else {
                    continue;
                };
                entry.1.push(format!(
                    "{family}{{{labels},statistic=\"{stat_name}\"}} {value} {}",
                    latest.timestamp_ms
                ));
            }
        }
        match next {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    let mut out = String::new();
    for (family, (help, samples)) in families {
        let _ = writeln!(out, "# HELP {family} {}", escape_help(&help));
        let _ = writeln!(out, "# TYPE {family} gauge");
        for s in samples {
            out.push_str(&s);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_prometheus_names() {
        assert_eq!(snake("AWS/SQS"), "aws_sqs");
        assert_eq!(snake("NumberOfMessagesSent"), "number_of_messages_sent");
        assert_eq!(snake("CPUUtilization"), "cpu_utilization");
        assert_eq!(snake("App/Orders-v2.latency"), "app_orders_v2_latency");
        assert_eq!(snake("9lives"), "_9lives");
        assert_eq!(snake("///"), "_");
        assert_eq!(snake("InstanceId"), "instance_id");
    }
}
