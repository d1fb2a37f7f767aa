//! Delivery of S3 event notifications to SQS: the S3 service names a queue
//! by ARN, and this sink calls the SQS service as the queue's own account
//! would (GetQueueUrl, then SendMessage), so the message is stored and
//! delivered like any other.

use nimbus_core::{RequestContext, Service};
use serde_json::{json, Value};
use std::sync::Arc;

pub struct SqsSink {
    sqs: Arc<dyn Service>,
    default_region: String,
}

impl SqsSink {
    pub fn new(sqs: Arc<dyn Service>, default_region: String) -> Self {
        SqsSink {
            sqs,
            default_region,
        }
    }

    /// (region, account, queue name) of `arn:aws:sqs:REGION:ACCOUNT:NAME`.
    fn parse(&self, arn: &str) -> Option<(String, String, String)> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(_), Some("sqs"), Some(region), Some(account), Some(name)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let region = if region.is_empty() {
            self.default_region.as_str()
        } else {
            region
        };
        Some((region.to_string(), account.to_string(), name.to_string()))
    }
}

async fn queue_url(
    sqs: &dyn Service,
    ctx: &RequestContext,
    account: &str,
    name: &str,
) -> Option<String> {
    sqs.call(
        ctx,
        "GetQueueUrl",
        json!({"QueueName": name, "QueueOwnerAWSAccountId": account}),
    )
    .await
    .ok()
    .and_then(|v| {
        v.get("QueueUrl")
            .and_then(Value::as_str)
            .map(str::to_string)
    })
}

impl nimbus_s3::EventSink for SqsSink {
    fn queue_exists(&self, queue_arn: &str) -> bool {
        use futures_util::FutureExt;
        let Some((region, account, name)) = self.parse(queue_arn) else {
            return false;
        };
        let ctx = RequestContext::for_account(&account, &region);
        // GetQueueUrl answers from memory, so one poll settles it.
        queue_url(self.sqs.as_ref(), &ctx, &account, &name)
            .now_or_never()
            .map(|url| url.is_some())
            .unwrap_or(true)
    }

    fn send(&self, queue_arn: &str, body: String) {
        let Some((region, account, name)) = self.parse(queue_arn) else {
            return;
        };
        let sqs = self.sqs.clone();
        tokio::spawn(async move {
            let ctx = RequestContext::for_account(&account, &region);
            let Some(url) = queue_url(sqs.as_ref(), &ctx, &account, &name).await else {
                tracing::warn!("S3 event for missing queue {name} dropped");
                return;
            };
            if let Err(e) = sqs
                .call(
                    &ctx,
                    "SendMessage",
                    json!({"QueueUrl": url, "MessageBody": body}),
                )
                .await
            {
                tracing::warn!("S3 event delivery to {name} failed: {}", e.message);
            }
        });
    }
}
