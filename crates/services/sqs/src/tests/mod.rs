//! End-to-end tests of the service through `Sqs::call`, on a real store in a
//! temporary directory: every operation, its errors (code, message, status),
//! the MD5s SDKs verify, FIFO ordering and deduplication, long polling,
//! delays, dead-letter redrive, move tasks, and state surviving a reopen.

mod dlq;
mod fifo;
mod messages;
mod metrics;
mod persistence;
mod queues;

use crate::Sqs;
use nimbus_core::{AwsError, RequestContext, Service};
use nimbus_store::Store;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub const ACCOUNT: &str = "000000000000";
pub const REGION: &str = "us-east-1";

pub struct Harness {
    pub sqs: Sqs,
    pub dir: tempfile::TempDir,
}

fn open_store(path: &Path) -> Store {
    // The previous store's writer thread lets go of the file once its last
    // handle is dropped; retry briefly.
    for _ in 0..500 {
        if let Ok(s) = Store::open(path) {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("store did not reopen");
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir.path().join("state.redb"));
        let sqs = Sqs::open(store, REGION).unwrap();
        Harness { sqs, dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("state.redb")
    }

    /// Drops the service and its store, then opens both again on the same file.
    pub async fn reopen(self) -> Harness {
        let Harness { sqs, dir } = self;
        sqs.stop_background_for_tests();
        drop(sqs);
        // Let detached commit tasks finish and release their handles.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let store = open_store(&dir.path().join("state.redb"));
        let sqs = Sqs::open(store, REGION).unwrap();
        Harness { sqs, dir }
    }

    pub fn ctx(&self) -> RequestContext {
        RequestContext::for_account(ACCOUNT, REGION)
    }

    pub async fn call(&self, op: &str, input: Value) -> Result<Value, AwsError> {
        let ctx = self.ctx();
        self.sqs.call(&ctx, op, input).await
    }

    pub async fn call_as(
        &self,
        ctx: &RequestContext,
        op: &str,
        input: Value,
    ) -> Result<Value, AwsError> {
        self.sqs.call(ctx, op, input).await
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

    pub async fn create(&self, name: &str, attrs: Value) -> String {
        let v = self
            .ok(
                "CreateQueue",
                json!({ "QueueName": name, "Attributes": attrs }),
            )
            .await;
        v["QueueUrl"].as_str().unwrap().to_string()
    }

    pub async fn create_fifo(&self, name: &str, attrs: Value) -> String {
        let mut a = attrs.as_object().cloned().unwrap_or_default();
        a.insert("FifoQueue".into(), json!("true"));
        self.create(name, Value::Object(a)).await
    }

    pub async fn send(&self, url: &str, body: &str) -> Value {
        self.ok(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": body }),
        )
        .await
    }

    pub async fn send_fifo(&self, url: &str, body: &str, group: &str, dedup: &str) -> Value {
        self.ok(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": body, "MessageGroupId": group, "MessageDeduplicationId": dedup }),
        )
        .await
    }

    /// ReceiveMessage with the given extra parameters; returns the messages.
    pub async fn receive(&self, url: &str, extra: Value) -> Vec<Value> {
        let mut input = extra.as_object().cloned().unwrap_or_default();
        input.insert("QueueUrl".into(), json!(url));
        let v = self.ok("ReceiveMessage", Value::Object(input)).await;
        v.get("Messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    pub async fn bodies(&self, url: &str, extra: Value) -> Vec<String> {
        self.receive(url, extra)
            .await
            .iter()
            .map(|m| m["Body"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn attr(&self, url: &str, name: &str) -> Option<String> {
        let v = self
            .ok(
                "GetQueueAttributes",
                json!({ "QueueUrl": url, "AttributeNames": [name] }),
            )
            .await;
        v["Attributes"][name].as_str().map(str::to_string)
    }

    /// (visible, not visible, delayed)
    pub async fn counts(&self, url: &str) -> (u64, u64, u64) {
        let v = self
            .ok(
                "GetQueueAttributes",
                json!({ "QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"] }),
            )
            .await;
        let n = |k: &str| v["Attributes"][k].as_str().unwrap().parse::<u64>().unwrap();
        (
            n("ApproximateNumberOfMessages"),
            n("ApproximateNumberOfMessagesNotVisible"),
            n("ApproximateNumberOfMessagesDelayed"),
        )
    }

    pub async fn arn(&self, url: &str) -> String {
        self.attr(url, "QueueArn").await.unwrap()
    }

    pub fn advance(&self, ms: u64) {
        self.sqs.advance_clock(ms);
    }
}

pub fn assert_err(e: &AwsError, code: &str, message: &str) {
    assert_eq!(e.code, code, "unexpected error {e}");
    assert_eq!(e.message, message, "unexpected message for {code}");
}
