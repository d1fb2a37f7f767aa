//! The AWS Signature Version 4 test suite (aws-sig-v4-test-suite): each
//! request's published signature must verify, and `sign_v4` must reproduce it.
//! Paths are given as the suite writes them (unencoded); since the suite encodes
//! them once and clients encode them before sending, feeding the suite's raw
//! path through nimbus's "encode the received path once more" gives the suite's
//! canonical URI.

use super::{epoch, sha, Req};
use crate::{sign_v4, SigningParams};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const DATE: &str = "20150830T123600Z";
const HOST: &str = "example.amazonaws.com";

struct Vector {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static str,
    /// Headers besides Host and X-Amz-Date.
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    signed: &'static str,
    signature: &'static str,
}

const TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

const SUITE: &[Vector] = &[
    Vector { name: "get-vanilla", method: "GET", path: "/", query: "", headers: &[], body: "", signed: "host;x-amz-date", signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
    Vector { name: "get-vanilla-query-order-key-case", method: "GET", path: "/", query: "Param2=value2&Param1=value1", headers: &[], body: "", signed: "host;x-amz-date", signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500" },
    Vector { name: "get-vanilla-query-order-key", method: "GET", path: "/", query: "Param1=value2&Param1=Value1", headers: &[], body: "", signed: "host;x-amz-date", signature: "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1" },
    Vector { name: "get-vanilla-query-order-value", method: "GET", path: "/", query: "Param1=value2&Param1=value1", headers: &[], body: "", signed: "host;x-amz-date", signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694" },
    Vector { name: "get-vanilla-query-unreserved", method: "GET", path: "/", query: "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", headers: &[], body: "", signed: "host;x-amz-date", signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197" },
    Vector { name: "get-vanilla-utf8-query", method: "GET", path: "/", query: "ሴ=bar", headers: &[], body: "", signed: "host;x-amz-date", signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04" },
    Vector { name: "get-vanilla-empty-query-key", method: "GET", path: "/", query: "Param1=value1", headers: &[], body: "", signed: "host;x-amz-date", signature: "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb" },
    Vector { name: "get-utf8", method: "GET", path: "/ሴ", query: "", headers: &[], body: "", signed: "host;x-amz-date", signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85" },
    Vector { name: "get-space", method: "GET", path: "/example space/", query: "", headers: &[], body: "", signed: "host;x-amz-date", signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741" },
    Vector { name: "get-slashes", method: "GET", path: "//example//", query: "", headers: &[], body: "", signed: "host;x-amz-date", signature: "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84" },
    Vector { name: "get-relative-relative", method: "GET", path: "/example1/example2/../..", query: "", headers: &[], body: "", signed: "host;x-amz-date", signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
    Vector { name: "get-header-value-trim", method: "GET", path: "/", query: "", headers: &[("My-Header1", "value1"), ("My-Header2", "\"a   b   c\"")], body: "", signed: "host;my-header1;my-header2;x-amz-date", signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736" },
    Vector { name: "get-header-key-duplicate", method: "GET", path: "/", query: "", headers: &[("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")], body: "", signed: "host;my-header1;x-amz-date", signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea" },
    Vector { name: "get-header-value-order", method: "GET", path: "/", query: "", headers: &[("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")], body: "", signed: "host;my-header1;x-amz-date", signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01" },
    Vector { name: "post-header-value-case", method: "POST", path: "/", query: "", headers: &[("My-Header1", "VALUE1")], body: "", signed: "host;my-header1;x-amz-date", signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d" },
    Vector { name: "post-sts-header-before", method: "POST", path: "/", query: "", headers: &[("X-Amz-Security-Token", TOKEN)], body: "", signed: "host;x-amz-date;x-amz-security-token", signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead" },
    Vector { name: "post-x-www-form-urlencoded", method: "POST", path: "/", query: "", headers: &[("Content-Type", "application/x-www-form-urlencoded")], body: "Param1=value1", signed: "content-type;host;x-amz-date", signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a" },
    Vector { name: "post-x-www-form-urlencoded-parameters", method: "POST", path: "/", query: "", headers: &[("Content-Type", "application/x-www-form-urlencoded; charset=utf8")], body: "Param1=value1", signed: "content-type;host;x-amz-date", signature: "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe" },
];

fn authorization(v: &Vector) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={}, Signature={}",
        v.signed, v.signature
    )
}

#[test]
fn suite_signatures_verify() {
    for v in SUITE {
        let auth = authorization(v);
        let mut headers: Vec<(&str, &str)> = vec![("Host", HOST), ("X-Amz-Date", DATE)];
        headers.extend_from_slice(v.headers);
        headers.push(("Authorization", &auth));
        let req = Req::new(v.method, v.path, v.query, &headers);
        let result = req.check(&[], None, &sha(v.body.as_bytes()), SECRET, epoch(DATE));
        assert!(result.is_ok(), "{}: {:?}", v.name, result.err());

        // One changed byte in the signature must fail.
        let mut bad = v.signature.to_string();
        bad.replace_range(0..1, if bad.starts_with('0') { "1" } else { "0" });
        let auth = authorization(&Vector {
            signature: Box::leak(bad.into_boxed_str()),
            ..*v
        });
        let mut headers: Vec<(&str, &str)> = vec![("Host", HOST), ("X-Amz-Date", DATE)];
        headers.extend_from_slice(v.headers);
        headers.push(("Authorization", &auth));
        let req = Req::new(v.method, v.path, v.query, &headers);
        let err = req
            .check(&[], None, &sha(v.body.as_bytes()), SECRET, epoch(DATE))
            .unwrap_err();
        assert_eq!(err.code, "SignatureDoesNotMatch", "{}", v.name);
        assert_eq!(err.status, 403);
    }
}

#[test]
fn sign_v4_reproduces_suite() {
    for v in SUITE {
        let mut headers: Vec<(String, String)> = vec![("Host".into(), HOST.into())];
        let mut token = None;
        for (k, val) in v.headers {
            if k.eq_ignore_ascii_case("x-amz-security-token") {
                token = Some(*val);
            } else {
                headers.push((k.to_string(), val.to_string()));
            }
        }
        let params = SigningParams {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: SECRET,
            session_token: token,
            region: "us-east-1",
            service: "service",
            time_epoch_secs: epoch(DATE),
        };
        let added = sign_v4(
            v.method,
            v.path,
            v.query,
            &headers,
            v.body.as_bytes(),
            &params,
        );
        let auth = added
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone());
        assert_eq!(auth, Some(authorization(v)), "{}", v.name);
        assert!(added
            .iter()
            .any(|(k, val)| k == "x-amz-date" && val == DATE));
        assert!(
            !added.iter().any(|(k, _)| k == "x-amz-content-sha256"),
            "not for non-S3"
        );
    }
}
