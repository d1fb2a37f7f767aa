//! Tests of the service through `CloudWatch::call`, on a real store in a
//! temporary directory: inputs shaped as the codec hands them over (member
//! names, timestamps as epoch seconds), statistics checked against values
//! computed here independently, ListMetrics' filters and pages, errors by
//! code, message and status, and data surviving a reopening.

mod alarms;
mod metric_data;
mod metrics;

use crate::metrics::MetricsOptions;
use crate::CloudWatch;
use nimbus_core::clock::CloudClock;
use nimbus_core::{AwsError, RequestContext, Service};
use nimbus_store::{Store, StoreOptions};
use serde_json::Value;
use std::path::Path;

pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "us-east-1";

pub struct Harness {
    pub cw: CloudWatch,
    pub dir: tempfile::TempDir,
    options: MetricsOptions,
}

fn open_store(path: &Path) -> Store {
    Store::open_with(
        path,
        StoreOptions {
            durable: false,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_options(MetricsOptions::default())
    }

    pub fn with_options(options: MetricsOptions) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir.path().join("state.redb"));
        let cw = CloudWatch::open(store, REGION, CloudClock::real(), options.clone()).unwrap();
        Harness { cw, dir, options }
    }

    /// Closes the service and its store as a stopping nimbus does (without
    /// a flush unless the test made one), then opens both again.
    pub fn reopen(self) -> Harness {
        let Harness { cw, dir, options } = self;
        let offset = cw
            .clock_offset_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let store = cw.store.clone();
        drop(cw);
        store.close();
        let store = open_store(&dir.path().join("state.redb"));
        let cw = CloudWatch::open(store, REGION, CloudClock::real(), options.clone()).unwrap();
        cw.advance_clock(offset);
        Harness { cw, dir, options }
    }

    pub async fn call_as(&self, account: &str, op: &str, input: Value) -> Result<Value, AwsError> {
        let ctx = RequestContext::for_account(account, REGION);
        self.cw.call(&ctx, op, input).await
    }

    pub async fn call(&self, op: &str, input: Value) -> Result<Value, AwsError> {
        self.call_as(ACCOUNT, op, input).await
    }

    pub async fn ok(&self, op: &str, input: Value) -> Value {
        match self.call(op, input).await {
            Ok(v) => v,
            Err(e) => panic!("{op} failed: {e}"),
        }
    }

    pub async fn err(&self, op: &str, input: Value) -> AwsError {
        match self.call(op, input).await {
            Ok(v) => panic!("{op} should have failed, got {v}"),
            Err(e) => e,
        }
    }

    pub fn advance(&self, ms: u64) {
        self.cw.advance_clock(ms);
    }

    /// The service's time now (epoch ms).
    pub fn now_ms(&self) -> u64 {
        self.cw.now(nimbus_core::now_millis())
    }
}

pub fn assert_err(e: &AwsError, code: &str, message: &str) {
    assert_eq!(e.code, code, "unexpected error {e}");
    assert_eq!(e.message, message, "unexpected message for {code}");
    assert_eq!(e.status, 400, "status of {code}");
}
