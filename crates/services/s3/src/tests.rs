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
