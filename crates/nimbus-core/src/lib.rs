//! The shared vocabulary of nimbus. Every other crate speaks in these types:
//! [`AwsError`] for anything a client must see as an AWS error, [`RequestContext`]
//! for who is calling where, the [`Service`] trait that each AWS service
//! implements (typed JSON values in, typed JSON values out, never HTTP), the
//! [`CredentialRegistry`] that the signature checker and STS share, the
//! cloud-wide clock and id helpers, and [`timestamp`]: the calendar and every
//! text form of a time (wire formats and signature dates alike).

pub mod body;
pub mod checksum;
mod credentials;
mod error;
mod service;
pub mod timestamp;

pub use body::{BodySource, FileSlice, Reply, RequestBody, ResponseBody};
pub use credentials::{CredentialRecord, CredentialRegistry};
pub use error::AwsError;
pub use service::{BoxFuture, RequestContext, Service, ServiceState};

use std::time::{SystemTime, UNIX_EPOCH};

/// The account used when an access key does not name one (see `--account-id`).
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

/// Milliseconds since the Unix epoch: the one wall clock of the cloud.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A request id in the form AWS uses (a random UUID).
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `n` random characters from `alphabet`; used for access keys, receipt handles and resource ids.
pub fn random_string(alphabet: &[u8], n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

pub const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
