//! The contract between the edge and every AWS service. A service receives the
//! decoded input of one operation as a JSON value shaped by its model (member
//! names as keys; blobs as base64 strings; timestamps as epoch seconds) and
//! answers with its output in the same form, or an [`AwsError`].

use crate::{AwsError, Reply, RequestBody};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who is calling, where, and how the call reached us.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub account_id: String,
    pub region: String,
    /// Access key the request was signed with; `None` for anonymous requests.
    pub access_key_id: Option<String>,
    /// ARN of the calling principal (root, user or assumed-role session).
    pub caller_arn: String,
    /// Unique id of the caller as GetCallerIdentity reports it.
    pub caller_user_id: String,
    /// `Host` header as sent (e.g. `localhost:4566`), for URLs that clients must reach again.
    pub host: String,
    /// Epoch milliseconds at which the request arrived.
    pub now_ms: u64,
    /// The client's address, for policy conditions such as `aws:SourceIp`.
    pub source_ip: Option<std::net::IpAddr>,
    /// `User-Agent` and `Referer` as sent, for the policy keys of those names.
    pub user_agent: Option<String>,
    pub referer: Option<String>,
}

impl RequestContext {
    /// A context for the default account, for tests and internal calls.
    pub fn for_account(account_id: &str, region: &str) -> Self {
        RequestContext {
            request_id: crate::new_request_id(),
            account_id: account_id.to_string(),
            region: region.to_string(),
            access_key_id: None,
            caller_arn: format!("arn:aws:iam::{account_id}:root"),
            caller_user_id: account_id.to_string(),
            host: "localhost:4566".to_string(),
            now_ms: crate::now_millis(),
            source_ip: None,
            user_agent: None,
            referer: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Running,
    Available,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Running => "running",
            ServiceState::Available => "available",
        }
    }
}

pub trait Service: Send + Sync + 'static {
    /// The model name of the service (`sqs`, `sts`, ...), as in botocore's data folder.
    fn name(&self) -> &'static str;

    /// Runs one operation. `operation` is the model's operation name (`SendMessage`).
    fn call<'a>(
        &'a self,
        ctx: &'a RequestContext,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, AwsError>>;

    /// Runs one operation whose request or response body may be too large for memory
    /// (S3 objects). The default serves buffered services: the body was decoded into `input`.
    fn call_streaming<'a>(
        &'a self,
        ctx: &'a RequestContext,
        operation: &'a str,
        input: Value,
        body: RequestBody,
    ) -> BoxFuture<'a, Result<Reply, AwsError>> {
        drop(body);
        Box::pin(async move { self.call(ctx, operation, input).await.map(Reply::new) })
    }

    /// True when `operation` takes its request body as a stream (see [`Service::call_streaming`]):
    /// the edge then hands the body over unread instead of decoding it into the input.
    fn streams_request(&self, _operation: &str) -> bool {
        false
    }

    /// True when the service itself decides what unsigned callers may do (S3, by bucket
    /// policies and ACLs); otherwise the edge refuses them, except for the operations
    /// the model marks as served without a signature.
    fn admits_anonymous(&self) -> bool {
        false
    }

    /// Removes every resource of every account and region, durably (records and
    /// files), and stops whatever runs for them; the service keeps serving and
    /// behaves as on first use. `POST /_nimbus/reset` calls it on every service.
    fn reset(&self) -> BoxFuture<'_, Result<(), AwsError>>;

    fn state(&self) -> ServiceState {
        ServiceState::Running
    }

    /// For a save of the whole cloud: the files this service keeps beside the
    /// store, held steady until the hold drops (see [`crate::save`]). Services
    /// whose whole state is in the store keep the default.
    fn hold_files(&self) -> BoxFuture<'_, Result<crate::FileHold, AwsError>> {
        Box::pin(async { Ok(crate::FileHold::default()) })
    }
}
