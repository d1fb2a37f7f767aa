//! The request context as conditions and policy variables read it: this
//! module owns the case-insensitive key lookup and the few keys nimbus
//! derives from the principal when the caller did not supply them.

use crate::{Principal, Request};

/// A view of one request for condition evaluation.
pub(crate) struct Ctx<'a, 'r> {
    pub(crate) request: &'a Request<'r>,
}

impl<'a, 'r> Ctx<'a, 'r> {
    pub(crate) fn new(request: &'a Request<'r>) -> Self {
        Ctx { request }
    }

    /// The values of `key` (AWS condition keys are case-insensitive). An
    /// empty result means the key is absent from the request.
    pub(crate) fn values(&self, key: &str) -> Vec<&'a str> {
        let found = self
            .request
            .context
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key));
        if let Some((_, values)) = found {
            return values.iter().map(String::as_str).collect();
        }
        self.derived(key).into_iter().collect()
    }

    /// Keys that follow from the principal alone, so callers need not repeat
    /// them in the context map.
    fn derived(&self, key: &str) -> Option<&'r str> {
        let key = key.to_ascii_lowercase();
        match (key.as_str(), self.request.principal) {
            ("aws:principalaccount", Principal::Aws { account, .. }) => Some(account),
            ("aws:principalarn", Principal::Aws { arn, .. }) => Some(arn),
            ("aws:username", Principal::Aws { arn, .. }) => {
                // Only IAM users have a user name; it is the ARN's last path segment.
                let resource = arn.splitn(6, ':').nth(5)?;
                let rest = resource.strip_prefix("user/")?;
                rest.rsplit('/').next()
            }
            ("aws:principalservicename", Principal::Service(name)) => Some(name),
            _ => None,
        }
    }
}
