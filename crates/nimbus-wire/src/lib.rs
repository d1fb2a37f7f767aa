//! The wire layer: one codec, driven by the AWS service models, for every
//! protocol nimbus speaks. It turns an HTTP request into (operation, input
//! value) and an output value or [`nimbus_core::AwsError`] into an HTTP
//! response, and knows nothing of what any service means.
//!
//! The value convention every service relies on: a decoded input, and an output
//! to encode, is a [`serde_json::Value`] in which a structure is an object keyed
//! by the model's member names (never `locationName`), a list an array, a map an
//! object, strings and enums strings, integers and floats numbers, booleans
//! bools, blobs standard base64 strings and timestamps epoch seconds (an integer
//! when whole, else a float with millisecond precision). Absent members are
//! absent, never null. Decoding coerces by shape (`"30"` becomes `30`).
//!
//! Protocols: [`query`] (query and ec2), [`json`] (AWS JSON 1.0 / 1.1),
//! [`cbor`] (Smithy RPC v2 CBOR) and [`rest`] (rest-xml and rest-json); [`xml`]
//! and [`json`] also hold the value codecs the protocols share.

pub mod catalog;
pub mod cbor;
pub mod json;
pub mod model;
pub mod query;
pub mod rest;
pub mod tool;
mod util;
pub mod xml;

pub use model::{model, model_for, Protocol, ServiceModel};
/// Timestamps on the wire (ISO 8601, RFC 822, epoch seconds); the one implementation
/// lives in nimbus-core, shared with the signature checker.
pub use nimbus_core::timestamp;

use nimbus_core::AwsError;
use serde_json::Value;

/// An HTTP request as the wire layer sees it.
#[derive(Debug, Clone, Copy)]
pub struct WireRequest<'a> {
    pub method: &'a str,
    /// Raw, still percent-encoded, without the query string.
    pub path: &'a str,
    /// Raw query string, without the `?`.
    pub query: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

impl WireRequest<'_> {
    /// A header's value when present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP response ready for the edge to send.
#[derive(Debug, Clone, PartialEq)]
pub struct WireResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Finds the operation (query/ec2: `Action` in the form body or the query string; json:
/// `X-Amz-Target: Prefix.Op`; cbor: path `/service/{Svc}/operation/{Op}`; rest: the
/// model's HTTP bindings) and decodes its input into the value convention.
pub fn decode(
    model: &ServiceModel,
    protocol: Protocol,
    req: &WireRequest,
) -> Result<(String, Value), AwsError> {
    match protocol {
        Protocol::Query => query::decode(model, false, req),
        Protocol::Ec2 => query::decode(model, true, req),
        Protocol::Json10 | Protocol::Json11 => json::decode(model, req),
        Protocol::RpcV2Cbor => cbor::decode(model, req),
        Protocol::RestXml | Protocol::RestJson => rest::decode(model, protocol, req),
    }
}

/// Encodes a successful `operation`'s output. `request_id` goes in `x-amzn-RequestId`
/// (and in the body where the protocol carries it).
pub fn encode_output(
    model: &ServiceModel,
    protocol: Protocol,
    operation: &str,
    output: &Value,
    request_id: &str,
) -> WireResponse {
    match protocol {
        Protocol::Query => query::encode_output(model, false, operation, output, request_id),
        Protocol::Ec2 => query::encode_output(model, true, operation, output, request_id),
        Protocol::Json10 | Protocol::Json11 => {
            json::encode_output(model, protocol, operation, output, request_id)
        }
        Protocol::RpcV2Cbor => cbor::encode_output(model, operation, output, request_id),
        Protocol::RestXml | Protocol::RestJson => {
            rest::encode_output(model, protocol, operation, output, request_id)
        }
    }
}

/// Encodes an error. When `error.code` names a modelled error shape (or its query code),
/// the model's code, HTTP status and fault win.
pub fn encode_error(
    model: &ServiceModel,
    protocol: Protocol,
    error: &AwsError,
    request_id: &str,
) -> WireResponse {
    match protocol {
        Protocol::Query => query::encode_error(model, false, error, request_id),
        Protocol::Ec2 => query::encode_error(model, true, error, request_id),
        Protocol::Json10 | Protocol::Json11 => {
            json::encode_error(model, protocol, error, request_id)
        }
        Protocol::RpcV2Cbor => cbor::encode_error(model, error, request_id),
        Protocol::RestXml | Protocol::RestJson => {
            rest::encode_error(model, protocol, error, request_id)
        }
    }
}

/// Which protocol an RPC-style request is in, for services that accept several
/// (SQS: JSON 1.0 or query; CloudWatch: CBOR, JSON 1.0 or query). The answer may be a
/// protocol `model` itself does not speak: pass it to [`model_for`] with the service
/// name (SQS's query form lives in the `sqs-query` model). Order of evidence:
/// `Smithy-Protocol: rpc-v2-cbor`; an `application/x-amz-json-1.x` Content-Type (the
/// version decides 1.0 vs 1.1); `X-Amz-Target` (the model's JSON version); a form body
/// or an `Action=` query parameter (ec2 for the EC2 model, else query); else the
/// model's preferred protocol.
pub fn detect_protocol(model: &ServiceModel, req: &WireRequest) -> Protocol {
    if req
        .header("smithy-protocol")
        .is_some_and(|v| v.eq_ignore_ascii_case("rpc-v2-cbor"))
    {
        return Protocol::RpcV2Cbor;
    }
    let content_type = req.header("content-type").unwrap_or("");
    if content_type.starts_with("application/x-amz-json-1.1") {
        return Protocol::Json11;
    }
    if content_type.starts_with("application/x-amz-json-1.0") {
        return Protocol::Json10;
    }
    let preferred = model
        .protocols()
        .first()
        .copied()
        .unwrap_or(Protocol::Query);
    if req.headers.contains_key("x-amz-target") {
        return match model.metadata.json_version.as_deref() {
            Some("1.1") => Protocol::Json11,
            _ => Protocol::Json10,
        };
    }
    let rpc_query = content_type.starts_with("application/x-www-form-urlencoded")
        || req.query.split('&').any(|p| p.starts_with("Action="));
    if rpc_query && !matches!(preferred, Protocol::RestXml | Protocol::RestJson) {
        return if preferred == Protocol::Ec2 {
            Protocol::Ec2
        } else {
            Protocol::Query
        };
    }
    preferred
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request<'a>(headers: &'a http::HeaderMap, query: &'a str) -> WireRequest<'a> {
        WireRequest {
            method: "POST",
            path: "/",
            query,
            headers,
            body: b"",
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn detects_protocols() {
        let sqs = model("sqs").expect("sqs");
        let ec2 = model("ec2").expect("ec2");
        let logs = model("logs").expect("logs");
        let cases = [
            (
                sqs,
                headers(&[("content-type", "application/x-amz-json-1.0")]),
                "",
                Protocol::Json10,
            ),
            (
                logs,
                headers(&[("x-amz-target", "Logs_20140328.CreateLogGroup")]),
                "",
                Protocol::Json11,
            ),
            (
                sqs,
                headers(&[("smithy-protocol", "rpc-v2-cbor")]),
                "",
                Protocol::RpcV2Cbor,
            ),
            (
                sqs,
                headers(&[(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )]),
                "",
                Protocol::Query,
            ),
            (sqs, headers(&[]), "Action=ListQueues", Protocol::Query),
            (ec2, headers(&[]), "Action=DescribeRegions", Protocol::Ec2),
            (
                model("s3").expect("s3"),
                headers(&[]),
                "list-type=2",
                Protocol::RestXml,
            ),
        ];
        for (m, h, q, want) in cases {
            assert_eq!(detect_protocol(m, &request(&h, q)), want, "{} {q}", m.name);
        }
    }

    #[test]
    fn every_rpc_answer_carries_the_request_id() {
        let err = AwsError::new("InvalidParameterValue", "bad").with_field("Field", "x");
        for (name, protocol) in [
            ("sqs", Protocol::Json10),
            ("logs", Protocol::Json11),
            ("sqs-query", Protocol::Query),
            ("ec2", Protocol::Ec2),
            ("cloudwatch", Protocol::RpcV2Cbor),
        ] {
            let m = model(name).expect("model");
            let op = m.operations.keys().next().expect("operation");
            for resp in [
                encode_output(m, protocol, op, &json!({}), "rid-1"),
                encode_error(m, protocol, &err, "rid-1"),
            ] {
                assert!(
                    resp.headers
                        .contains(&("x-amzn-RequestId".to_owned(), "rid-1".to_owned())),
                    "{name}"
                );
            }
            let resp = encode_error(m, protocol, &err, "rid-1");
            assert_eq!(resp.status, 400, "{name}");
            assert!(
                resp.body.windows(5).any(|w| w == b"Field"),
                "{name}: error fields are carried"
            );
        }
    }

    /// Malformed input of every kind must come back as an AwsError, never a panic.
    #[test]
    fn garbage_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds: [&[u8]; 6] = [
            b"Action=SendMessage&MessageAttribute.1.Name=a&MessageAttribute.1.Value.DataType=S",
            br#"{"QueueUrl":"u","Entries":[{"Id":"a","MessageBody":"b","DelaySeconds":1}]}"#,
            b"\xa2\x69Namespace\x63app\x6aMetricData\x81\xa1\x69Timestamp\xc1\x1a\x65\x53\xf1\x00",
            b"<a><b>1</b></a>",
            b"Action=RunInstances&TagSpecification.1.Tag.1.Key=k&MinCount=1",
            b"",
        ];
        let targets = [
            ("sqs", Protocol::Json10, "AmazonSQS.SendMessageBatch"),
            ("sqs-query", Protocol::Query, ""),
            ("cloudwatch", Protocol::RpcV2Cbor, ""),
            ("cloudwatch", Protocol::Query, ""),
            ("ec2", Protocol::Ec2, ""),
            ("logs", Protocol::Json11, "Logs_20140328.PutLogEvents"),
        ];
        for round in 0..3000 {
            let mut body = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 6) {
                let pos = (next() as usize) % (body.len() + 1);
                match next() % 3 {
                    0 if pos < body.len() => body[pos] = next() as u8,
                    1 => body.insert(pos, next() as u8),
                    _ if pos < body.len() => {
                        body.remove(pos);
                    }
                    _ => {}
                }
            }
            let (name, protocol, target) = targets[(next() as usize) % targets.len()];
            let mut h = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(target) {
                h.insert("x-amz-target", v);
            }
            let req = WireRequest {
                method: "POST",
                path: "/service/GraniteServiceVersion20100801/operation/PutMetricData",
                query: "",
                headers: &h,
                body: &body,
            };
            let m = model(name).expect("model");
            // Either outcome is fine; reaching here without a panic is the test.
            let _ = decode(m, protocol, &req);
            let _ = xml::parse(&body);
        }
    }
}
