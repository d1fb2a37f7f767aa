//! How services publish their own CloudWatch metrics (AWS/EC2, AWS/SQS,
//! AWS/S3, and later AWS/ELB, AWS/AutoScaling, ...) without HTTP and without
//! depending on the CloudWatch crate.
//!
//! Two directions, both in the cloud's time ([`crate::clock::CloudClock`]):
//! - *pull*: a service implements [`MetricSource`]; CloudWatch asks every
//!   registered source once per cloud minute for the data of the minute that
//!   just ended. A source with coarser data (EC2's basic monitoring every five
//!   minutes, S3's daily storage figures) answers only when its period ends.
//! - *push*: a service holding an [`Arc<dyn MetricPublisher>`] publishes when
//!   something happens (a health check, a scaling activity).

use crate::{AwsError, BoxFuture};

/// One datapoint as a service publishes it: CloudWatch's `MetricDatum`
/// without the parts only users send (storage resolution 60, no counts).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedDatum {
    pub metric_name: String,
    /// (name, value) pairs, in the order AWS lists them.
    pub dimensions: Vec<(String, String)>,
    /// A CloudWatch unit name (`Percent`, `Bytes`, `Count`, `Seconds`, ...).
    pub unit: &'static str,
    /// Epoch milliseconds of the datapoint (the start of the period it covers).
    pub timestamp_ms: u64,
    pub value: PublishedValue,
}

/// A single value, or the statistics of several samples (what AWS publishes
/// for a period sampled more than once, such as EC2 basic monitoring).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PublishedValue {
    Value(f64),
    Statistics {
        sample_count: f64,
        sum: f64,
        minimum: f64,
        maximum: f64,
    },
}

/// Data of one namespace in one account and region.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub account: String,
    pub region: String,
    pub namespace: String,
    pub data: Vec<PublishedDatum>,
}

/// The minute of cloud time a collection covers: `[start_ms, end_ms)`, both
/// on minute boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionWindow {
    pub start_ms: u64,
    pub end_ms: u64,
}

impl CollectionWindow {
    /// Whether this window ends a period of `period_ms` (a five-minute or a
    /// daily boundary), i.e. a coarser source should publish now.
    pub fn ends_period(&self, period_ms: u64) -> bool {
        period_ms > 0 && self.end_ms.is_multiple_of(period_ms)
    }
}

/// A service whose metrics CloudWatch collects every cloud minute.
pub trait MetricSource: Send + Sync {
    /// A short name for logs (`sqs`, `ec2`).
    fn name(&self) -> &'static str;

    /// The data of `window`, which has just ended. Called once per window in
    /// order; a window missed while nimbus was stopped is not asked for.
    fn collect(&self, window: CollectionWindow) -> BoxFuture<'_, Vec<Publication>>;
}

/// The cloud's metrics as Prometheus text (`GET /_nimbus/metrics`),
/// implemented by CloudWatch; the edge serves it without knowing more.
pub trait MetricsExport: Send + Sync {
    fn prometheus_text(&self) -> BoxFuture<'_, Result<String, AwsError>>;
}

/// Where event-driven metrics go (implemented by CloudWatch).
pub trait MetricPublisher: Send + Sync {
    fn publish(&self, publications: Vec<Publication>) -> BoxFuture<'_, Result<(), AwsError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_know_the_periods_they_end() {
        let w = CollectionWindow {
            start_ms: 240_000,
            end_ms: 300_000,
        };
        assert!(w.ends_period(60_000));
        assert!(w.ends_period(300_000));
        assert!(!w.ends_period(86_400_000));
        assert!(!w.ends_period(0));
    }
}
