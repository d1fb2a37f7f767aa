//! S3's daily storage metrics (namespace `AWS/S3`): this module owns the
//! [`MetricSource`] that, once per cloud day, measures every bucket and
//! publishes what AWS publishes daily for it, stamped 00:00 UTC of the day:
//!
//! - BucketSizeBytes (Bytes), dimensions BucketName and StorageType
//!   (StandardStorage, StandardIAStorage, GlacierStorage, ...): the sizes of
//!   every version (current and noncurrent) in that storage class, plus the
//!   parts of incomplete multipart uploads (StandardStorage). StandardStorage
//!   is published for every bucket, zero included; other types when used.
//! - NumberOfObjects (Count), dimensions BucketName and
//!   StorageType=AllStorageTypes: every version, delete markers included,
//!   plus the parts of incomplete multipart uploads, as AWS counts them.
//!
//! Cost: no counter on the request path; at the end of each cloud day each
//! bucket's object records are read once, in key order, in steps of
//! [`STEP_KEYS`] keys on a blocking thread (memory: a few counters per
//! storage class, never the objects). That is one read of every object
//! record per day (every 86 s under `--clock-scale 1000`).

use crate::catalog::KeyStep;
use crate::state::ObjectSummary;
use crate::{Bucket, Inner};
use nimbus_core::telemetry::{
    CollectionWindow, MetricSource, Publication, PublishedDatum, PublishedValue,
};
use nimbus_core::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;

const NAMESPACE: &str = "AWS/S3";
const DAY_MS: u64 = 86_400_000;
/// Keys one blocking step reads before it yields (10,000; fewer in tests,
/// which then cross a step boundary with a small bucket).
pub const STEP_KEYS: usize = if cfg!(test) { 100 } else { 10_000 };

/// CloudWatch's StorageType of an S3 storage class.
fn storage_type(class: &str) -> &'static str {
    match class {
        "STANDARD_IA" => "StandardIAStorage",
        "ONEZONE_IA" => "OneZoneIAStorage",
        "REDUCED_REDUNDANCY" => "ReducedRedundancyStorage",
        "INTELLIGENT_TIERING" => "IntelligentTieringFAStorage",
        "GLACIER" => "GlacierStorage",
        "GLACIER_IR" => "GlacierInstantRetrievalStorage",
        "DEEP_ARCHIVE" => "DeepArchiveStorage",
        "EXPRESS_ONEZONE" => "ExpressOneZone",
        _ => "StandardStorage",
    }
}

/// What a bucket holds.
#[derive(Debug, Default, Clone, PartialEq)]
struct Totals {
    objects: u64,
    bytes: BTreeMap<&'static str, u64>,
}

impl Totals {
    fn add_version(&mut self, v: &ObjectSummary) {
        self.objects += 1;
        if !v.delete_marker {
            *self
                .bytes
                .entry(storage_type(&v.storage_class))
                .or_default() += v.size;
        }
    }

    fn data(&self, bucket: &str, timestamp_ms: u64) -> Vec<PublishedDatum> {
        let datum = |metric: &str, storage: &str, unit: &'static str, v: u64| PublishedDatum {
            metric_name: metric.to_string(),
            dimensions: vec![
                ("BucketName".to_string(), bucket.to_string()),
                ("StorageType".to_string(), storage.to_string()),
            ],
            unit,
            timestamp_ms,
            value: PublishedValue::Value(v as f64),
        };
        let mut bytes = self.bytes.clone();
        bytes.entry("StandardStorage").or_default();
        let mut out: Vec<PublishedDatum> = bytes
            .into_iter()
            .map(|(storage, v)| datum("BucketSizeBytes", storage, "Bytes", v))
            .collect();
        out.push(datum(
            "NumberOfObjects",
            "AllStorageTypes",
            "Count",
            self.objects,
        ));
        out
    }
}

/// Reads up to [`STEP_KEYS`] keys of `bucket` from `from` on into `totals`;
/// where to go on, None at the end.
fn step(bucket: &Bucket, from: &str, totals: &mut Totals) -> Result<Option<String>, String> {
    let mut keys = 0usize;
    let mut next = None;
    bucket
        .scan_keys(from, |key, versions| {
            if keys == STEP_KEYS {
                next = Some(key.to_string());
                return KeyStep::Stop;
            }
            keys += 1;
            for v in versions.iter() {
                totals.add_version(v);
            }
            KeyStep::Next
        })
        .map_err(|e| e.message)?;
    Ok(next)
}

/// A bucket's totals, read in bounded blocking steps.
async fn measure(bucket: Arc<Bucket>) -> Result<Totals, String> {
    let mut totals = Totals::default();
    let mut from = Some(String::new());
    while let Some(at) = from.take() {
        let b = Arc::clone(&bucket);
        let (t, next) = tokio::task::spawn_blocking(move || {
            let r = step(&b, &at, &mut totals);
            (totals, r)
        })
        .await
        .map_err(|e| e.to_string())?;
        totals = t;
        from = next?;
    }
    let uploads = bucket.uploads.lock().unwrap_or_else(|p| p.into_inner());
    for u in uploads.values() {
        for part in u.parts.values() {
            totals.objects += 1;
            *totals.bytes.entry("StandardStorage").or_default() += part.size;
        }
    }
    Ok(totals)
}

/// The AWS/S3 source of one S3 service.
pub struct S3Metrics {
    pub(crate) inner: Arc<Inner>,
}

impl S3Metrics {
    async fn collect_all(&self, window: CollectionWindow) -> Vec<Publication> {
        if !window.ends_period(DAY_MS) {
            return Vec::new();
        }
        let day = window.end_ms.saturating_sub(DAY_MS);
        let mut by_partition: BTreeMap<(String, String), Vec<PublishedDatum>> = BTreeMap::new();
        for bucket in self.inner.all_buckets() {
            let record = bucket.record();
            match measure(Arc::clone(&bucket)).await {
                Ok(totals) => by_partition
                    .entry((record.owner, record.region))
                    .or_default()
                    .extend(totals.data(&bucket.name, day)),
                Err(e) => tracing::warn!("s3: measuring bucket {} failed: {e}", bucket.name),
            }
        }
        by_partition
            .into_iter()
            .map(|((account, region), data)| Publication {
                account,
                region,
                namespace: NAMESPACE.to_string(),
                data,
            })
            .collect()
    }
}

impl MetricSource for S3Metrics {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn collect(&self, window: CollectionWindow) -> BoxFuture<'_, Vec<Publication>> {
        Box::pin(self.collect_all(window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_classes_map_to_cloudwatch_storage_types() {
        assert_eq!(storage_type("STANDARD"), "StandardStorage");
        assert_eq!(storage_type("STANDARD_IA"), "StandardIAStorage");
        assert_eq!(storage_type("GLACIER"), "GlacierStorage");
        assert_eq!(storage_type("DEEP_ARCHIVE"), "DeepArchiveStorage");
    }

    #[test]
    fn an_empty_bucket_publishes_zeros() {
        let data = Totals::default().data("b", 86_400_000);
        assert_eq!(data.len(), 2);
        assert_eq!(data[0].metric_name, "BucketSizeBytes");
        assert_eq!(
            data[0].dimensions,
            vec![
                ("BucketName".to_string(), "b".to_string()),
                ("StorageType".to_string(), "StandardStorage".to_string())
            ]
        );
        assert_eq!(data[0].value, PublishedValue::Value(0.0));
        assert_eq!(data[1].metric_name, "NumberOfObjects");
        assert_eq!(data[1].dimensions[1].1, "AllStorageTypes");
    }
}
