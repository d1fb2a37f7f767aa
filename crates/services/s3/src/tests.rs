//! Service-level tests: the S3 object over a temporary store, driven with decoded inputs.

use crate::S3;
use nimbus_core::{RequestContext, Service};
use serde_json::{json, Value};

fn open(dir: &std::path::Path) -> S3 {
    // After a drop the store's writer thread lets go of the file shortly.
    let store = (0..200)
        .find_map(|_| {
            nimbus_store::Store::open(&dir.join("state.redb"))
                .ok()
                .or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    None
                })
        })
        .expect("store");
    S3::open(store, dir, false).expect("s3")
}

async fn call(s3: &S3, region: &str, op: &str, input: Value) -> Result<Value, String> {
    let mut ctx = RequestContext::for_account("000000000000", region);
    ctx.access_key_id = Some("test".to_string());
    s3.call(&ctx, op, input).await.map_err(|e| e.code.clone())
}

/// s3cmd signs with its default `bucket_location = US`, and `--bucket-location=EU`
/// with `EU`: S3 takes both legacy names as the regions they stand for.
#[tokio::test]
async fn legacy_region_names_in_the_signing_scope() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = open(dir.path());
    call(&s3, "US", "CreateBucket", json!({"Bucket": "legacy-us"}))
        .await
        .expect("US is us-east-1: no constraint needed");
    let loc = call(
        &s3,
        "US",
        "GetBucketLocation",
        json!({"Bucket": "legacy-us"}),
    )
    .await
    .expect("location");
    assert_eq!(loc, json!({}));
    let head = call(
        &s3,
        "us-east-1",
        "HeadBucket",
        json!({"Bucket": "legacy-us"}),
    )
    .await
    .expect("head");
    assert_eq!(head["BucketRegion"], "us-east-1");

    let eu = json!({"Bucket": "legacy-eu",
        "CreateBucketConfiguration": {"LocationConstraint": "EU"}});
    call(&s3, "EU", "CreateBucket", eu).await.expect("EU");
    let head = call(&s3, "EU", "HeadBucket", json!({"Bucket": "legacy-eu"}))
        .await
        .expect("head");
    assert_eq!(head["BucketRegion"], "eu-west-1");
    // The constraint is reported as created, as S3 does for EU.
    let loc = call(
        &s3,
        "eu-west-1",
        "GetBucketLocation",
        json!({"Bucket": "legacy-eu"}),
    )
    .await
    .expect("location");
    assert_eq!(loc, json!({"LocationConstraint": "EU"}));

    // A region-specific constraint still has to match the region it is sent to.
    let other = json!({"Bucket": "legacy-other",
        "CreateBucketConfiguration": {"LocationConstraint": "eu-central-1"}});
    assert_eq!(
        call(&s3, "EU", "CreateBucket", other).await,
        Err("IllegalLocationConstraintException".to_string())
    );
    let plain = json!({"Bucket": "legacy-plain",
        "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}});
    call(&s3, "eu-west-1", "CreateBucket", plain)
        .await
        .expect("eu-west-1");
    let loc = call(
        &s3,
        "eu-west-1",
        "GetBucketLocation",
        json!({"Bucket": "legacy-plain"}),
    )
    .await
    .expect("location");
    assert_eq!(loc, json!({"LocationConstraint": "eu-west-1"}));
}

/// The constraint survives a restart (it is part of the bucket's record).
#[tokio::test]
async fn eu_constraint_is_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s3 = open(dir.path());
        let eu = json!({"Bucket": "durable-eu",
            "CreateBucketConfiguration": {"LocationConstraint": "EU"}});
        call(&s3, "us-east-1", "CreateBucket", eu)
            .await
            .expect("EU");
    }
    let s3 = open(dir.path());
    let loc = call(
        &s3,
        "us-east-1",
        "GetBucketLocation",
        json!({"Bucket": "durable-eu"}),
    )
    .await
    .expect("location");
    assert_eq!(loc, json!({"LocationConstraint": "EU"}));
}

/// The daily storage metrics: every version and incomplete upload part
/// counted, sizes by storage type, published only when a day ends.
#[tokio::test]
async fn daily_storage_metrics_count_versions_markers_and_parts() {
    use nimbus_core::telemetry::{CollectionWindow, PublishedValue};
    use nimbus_core::RequestBody;
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = open(dir.path());
    let mut ctx = RequestContext::for_account("000000000000", "us-east-1");
    ctx.access_key_id = Some("test".to_string());
    call(
        &s3,
        "us-east-1",
        "CreateBucket",
        json!({"Bucket": "photos"}),
    )
    .await
    .expect("bucket");
    call(&s3, "us-east-1", "CreateBucket", json!({"Bucket": "empty"}))
        .await
        .expect("bucket");
    call(
        &s3,
        "us-east-1",
        "PutBucketVersioning",
        json!({"Bucket": "photos", "VersioningConfiguration": {"Status": "Enabled"}}),
    )
    .await
    .expect("versioning");
    let put = |key: &str, body: &'static [u8], class: Option<&str>| {
        let mut input = json!({"Bucket": "photos", "Key": key});
        if let Some(c) = class {
            input["StorageClass"] = json!(c);
        }
        let ctx = ctx.clone();
        let s3 = &s3;
        async move {
            s3.call_streaming(
                &ctx,
                "PutObject",
                input,
                RequestBody::from_bytes(bytes::Bytes::from_static(body)),
            )
            .await
            .expect("put");
        }
    };
    put("a.jpg", b"0123456789", None).await;
    put("a.jpg", b"01234", None).await; // a second version of a.jpg
    put("b.jpg", b"xyz", Some("STANDARD_IA")).await;
    call(
        &s3,
        "us-east-1",
        "DeleteObject",
        json!({"Bucket": "photos", "Key": "b.jpg"}),
    )
    .await
    .expect("delete marker");
    let upload = call(
        &s3,
        "us-east-1",
        "CreateMultipartUpload",
        json!({"Bucket": "photos", "Key": "big"}),
    )
    .await
    .expect("upload");
    s3.call_streaming(
        &ctx,
        "UploadPart",
        json!({"Bucket": "photos", "Key": "big", "UploadId": upload["UploadId"], "PartNumber": 1}),
        RequestBody::from_bytes(bytes::Bytes::from_static(b"partpart")),
    )
    .await
    .expect("part");

    let source = s3.metric_source();
    let day = 20_000 * 86_400_000u64;
    let minute = CollectionWindow {
        start_ms: day + 60_000,
        end_ms: day + 120_000,
    };
    assert!(
        source.collect(minute).await.is_empty(),
        "only when a day ends"
    );
    let pubs = source
        .collect(CollectionWindow {
            start_ms: day + 86_340_000,
            end_ms: day + 86_400_000,
        })
        .await;
    assert_eq!(pubs.len(), 1);
    assert_eq!(pubs[0].namespace, "AWS/S3");
    let value = |bucket: &str, metric: &str, storage: &str| {
        pubs[0]
            .data
            .iter()
            .find(|d| {
                d.metric_name == metric
                    && d.dimensions
                        == vec![
                            ("BucketName".to_string(), bucket.to_string()),
                            ("StorageType".to_string(), storage.to_string()),
                        ]
            })
            .map(|d| {
                assert_eq!(d.timestamp_ms, day, "stamped 00:00 of the day");
                d.value
            })
    };
    // 10 + 5 bytes of a.jpg's versions and the 8-byte part.
    assert_eq!(
        value("photos", "BucketSizeBytes", "StandardStorage"),
        Some(PublishedValue::Value(23.0))
    );
    assert_eq!(
        value("photos", "BucketSizeBytes", "StandardIAStorage"),
        Some(PublishedValue::Value(3.0))
    );
    // Two versions of a.jpg, b.jpg and its delete marker, one part.
    assert_eq!(
        value("photos", "NumberOfObjects", "AllStorageTypes"),
        Some(PublishedValue::Value(5.0))
    );
    assert_eq!(
        value("empty", "NumberOfObjects", "AllStorageTypes"),
        Some(PublishedValue::Value(0.0))
    );
    assert_eq!(
        value("empty", "BucketSizeBytes", "StandardStorage"),
        Some(PublishedValue::Value(0.0))
    );
}

/// A bucket read in several steps counts each key once.
#[tokio::test]
async fn storage_metrics_read_large_buckets_in_steps() {
    use nimbus_core::telemetry::{CollectionWindow, PublishedValue};
    use nimbus_core::RequestBody;
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = open(dir.path());
    let mut ctx = RequestContext::for_account("000000000000", "us-east-1");
    ctx.access_key_id = Some("test".to_string());
    call(&s3, "us-east-1", "CreateBucket", json!({"Bucket": "many"}))
        .await
        .expect("bucket");
    let n = crate::metrics::STEP_KEYS + 7;
    for i in 0..n {
        s3.call_streaming(
            &ctx,
            "PutObject",
            json!({"Bucket": "many", "Key": format!("k{i:06}")}),
            RequestBody::from_bytes(bytes::Bytes::from_static(b"x")),
        )
        .await
        .expect("put");
    }
    let pubs = s3
        .metric_source()
        .collect(CollectionWindow {
            start_ms: 86_400_000 - 60_000,
            end_ms: 86_400_000,
        })
        .await;
    let objects = pubs[0]
        .data
        .iter()
        .find(|d| d.metric_name == "NumberOfObjects")
        .map(|d| d.value);
    assert_eq!(objects, Some(PublishedValue::Value(n as f64)));
}

/// What the daily measure costs per object: `cargo test --release -p nimbus-s3
/// storage_metrics_cost -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn storage_metrics_cost() {
    use nimbus_core::telemetry::CollectionWindow;
    use nimbus_core::RequestBody;
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = open(dir.path());
    let mut ctx = RequestContext::for_account("000000000000", "us-east-1");
    ctx.access_key_id = Some("test".to_string());
    call(&s3, "us-east-1", "CreateBucket", json!({"Bucket": "many"}))
        .await
        .expect("bucket");
    let n = 20_000;
    for i in 0..n {
        s3.call_streaming(
            &ctx,
            "PutObject",
            json!({"Bucket": "many", "Key": format!("photos/2026/{i:08}.jpg")}),
            RequestBody::from_bytes(bytes::Bytes::from_static(b"x")),
        )
        .await
        .expect("put");
    }
    let source = s3.metric_source();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        source
            .collect(CollectionWindow {
                start_ms: 86_400_000 - 60_000,
                end_ms: 86_400_000,
            })
            .await;
        let took = t.elapsed();
        println!(
            "{n} objects: {took:?}, {:.2} us each",
            took.as_secs_f64() * 1e6 / n as f64
        );
    }
}
