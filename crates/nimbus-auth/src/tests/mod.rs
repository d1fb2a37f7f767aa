//! Tests against published vectors (the AWS SigV4 test suite, the S3
//! documentation's SigV4, chunked and SigV2 examples), against requests
//! captured from botocore, and round trips, expiry, skew and malformed input.

mod aws_suite;
mod botocore;
mod malformed;
mod post_policy;
mod roundtrip;
mod s3_docs;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{parse_claim, verify, Claim, HttpParts};

/// A request as the edge would hand it over.
pub(crate) struct Req {
    pub method: &'static str,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
}

impl Req {
    pub fn new(method: &'static str, path: &str, query: &str, headers: &[(&str, &str)]) -> Self {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        Req {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers: map,
        }
    }

    pub fn parts(&self) -> HttpParts<'_> {
        HttpParts {
            method: self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
        }
    }

    pub fn claim(&self, form: &[(String, String)], hint: Option<&str>) -> Claim {
        parse_claim(&self.parts(), form, hint).unwrap()
    }

    /// parse_claim then verify with the given body hash.
    pub fn check(
        &self,
        form: &[(String, String)],
        hint: Option<&str>,
        body_sha: &str,
        secret: &str,
        now: i64,
    ) -> Result<Claim, nimbus_core::AwsError> {
        let claim = parse_claim(&self.parts(), form, hint)?;
        verify(&claim, &self.parts(), form, body_sha, secret, now)?;
        Ok(claim)
    }
}

pub(crate) fn epoch(amz_date: &str) -> i64 {
    crate::clock::parse_amz_date(amz_date).unwrap()
}

pub(crate) fn sha(body: &[u8]) -> String {
    crate::crypto::sha256_hex(body)
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
