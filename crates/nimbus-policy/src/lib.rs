//! IAM policy documents for nimbus: this crate owns turning policy JSON into a
//! validated [`Policy`], deciding what that policy says about one request
//! ([`Policy::evaluate`]), and judging whether it opens a resource to the world
//! ([`Policy::is_public`], S3's Block Public Access definition). It knows
//! nothing about HTTP or any one service: callers describe the request with a
//! [`Request`] (principal, action, resource ARN and condition context) and map
//! [`PolicyError`] onto their own error codes (S3: `MalformedPolicy`).
//!
//! ```
//! use std::collections::BTreeMap;
//! use nimbus_policy::{Decision, Policy, Principal, Request};
//!
//! let policy = Policy::parse(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
//!     "Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#)
//!     .unwrap(); // ok: a doc example; the literal is a valid policy
//! let context = BTreeMap::new();
//! let request = Request {
//!     principal: Principal::Anonymous,
//!     action: "s3:GetObject",
//!     resource: "arn:aws:s3:::b/key",
//!     context: &context,
//! };
//! assert_eq!(policy.evaluate(&request), Decision::Allow);
//! assert!(policy.is_public());
//! ```

mod condition;
mod context;
mod date;
mod document;
mod evaluate;
mod ip;
mod pattern;
mod public;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

pub use document::PolicyVersion;

/// Why a policy document was rejected. `message` is the text AWS puts in the
/// error's Message where we know it (S3's `MalformedPolicy` texts).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyError {
    pub message: String,
}

impl PolicyError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        PolicyError {
            message: message.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PolicyError {}

/// The outcome of evaluating one policy for one request. Combining it with
/// other policies (identity policies, ACLs, the default deny) is the caller's
/// job, which is why "no statement applied" is kept apart from `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some Allow statement applied and no Deny statement did.
    Allow,
    /// Some Deny statement applied: an explicit deny, which nothing overrides.
    Deny,
    /// No statement applied to this request.
    NotApplicable,
}

/// Who is making the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    /// An unsigned request.
    Anonymous,
    /// An IAM identity: a user, a role session (`arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`)
    /// or an account root, with the 12-digit account it belongs to.
    Aws { arn: &'a str, account: &'a str },
    /// An AWS service principal such as `cloudfront.amazonaws.com`.
    Service(&'a str),
}

/// One request as a policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: Principal<'a>,
    /// The action, e.g. `s3:GetObject`.
    pub action: &'a str,
    /// The resource ARN, e.g. `arn:aws:s3:::bucket/key`.
    pub resource: &'a str,
    /// Condition context: key (matched case-insensitively, e.g. `aws:SourceIp`)
    /// to its values (several for multivalued keys). `aws:PrincipalAccount`,
    /// `aws:PrincipalArn`, `aws:PrincipalServiceName` and `aws:username` are
    /// derived from `principal` when absent here.
    pub context: &'a BTreeMap<String, Vec<String>>,
}

/// A parsed, validated policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) version: PolicyVersion,
    pub(crate) id: Option<String>,
    pub(crate) statements: Vec<document::Statement>,
}

impl Policy {
    /// Parses and validates a resource policy (bucket policy, queue policy):
    /// every statement must name a `Principal` or `NotPrincipal` and a
    /// `Resource` or `NotResource`.
    pub fn parse(document: &str) -> Result<Policy, PolicyError> {
        document::parse(document, document::Kind::Resource)
    }

    /// Parses and validates an identity policy (attached to a user, group or
    /// role): `Principal`/`NotPrincipal` are not allowed; a statement without
    /// them applies to whoever the policy is attached to.
    pub fn parse_identity(document: &str) -> Result<Policy, PolicyError> {
        document::parse(document, document::Kind::Identity)
    }

    /// Evaluates the policy for one request. An applicable Deny wins over
    /// any Allow; with no applicable statement the answer is `NotApplicable`.
    pub fn evaluate(&self, request: &Request<'_>) -> Decision {
        evaluate::evaluate(self, request)
    }

    /// True when some Allow statement grants access to everyone (`"*"`,
    /// `{"AWS": "*"}` or a `NotPrincipal`) without a condition that pins it
    /// to fixed sources, per S3's meaning of "public".
    pub fn is_public(&self) -> bool {
        public::is_public(self)
    }

    /// The document's `Version` (absent means 2008-10-17, as in AWS).
    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    /// The document's optional `Id`.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Number of statements.
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }

    /// Every `Resource`/`NotResource` entry as written, so a service can
    /// check that a bucket policy only names its own bucket.
    pub fn resources(&self) -> impl Iterator<Item = &str> + '_ {
        self.statements
            .iter()
            .flat_map(|s| s.resource.patterns.iter().map(String::as_str))
    }

    /// Every `Action`/`NotAction` entry, lower-cased.
    pub fn actions(&self) -> impl Iterator<Item = &str> + '_ {
        self.statements
            .iter()
            .flat_map(|s| s.action.raw.iter().map(String::as_str))
    }
}
