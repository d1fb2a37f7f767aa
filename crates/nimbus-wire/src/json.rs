//! The JSON value codec ([`to_wire`], [`from_wire`]) shared by AWS JSON 1.0 /
//! 1.1 and rest-json, and the AWS JSON RPC protocol itself: the operation is
//! named by `X-Amz-Target: {targetPrefix}.{Operation}`, the input is the JSON
//! body (empty means `{}`), the output is the JSON body, errors are
//! `{"__type": "{namespace}#{Shape}", "message": ...}`.
//!
//! Member keys: a member's `locationName` when it has one, else its member
//! name. botocore does exactly this for both `json` and `rest-json` (Smithy's
//! `jsonName` becomes `locationName` in these models), so no flag is needed;
//! members with a REST `location` (header, uri, querystring, statusCode) are
//! never part of a JSON body and are skipped both ways.
//!
//! Query-compatible services (SQS, CloudWatch) also answer errors with
//! `x-amzn-query-error: {query code};{Sender|Receiver}`, which botocore uses as
//! the error code so old `except` clauses keep working.

use crate::model::{Protocol, ServiceModel, Shape, ShapeKind, ShapeRef};
use crate::{timestamp, util, WireRequest, WireResponse};
use nimbus_core::AwsError;
use serde_json::{Map, Value};

/// The JSON form of `value` (a value of the shape `shape_ref` points at). Timestamps
/// use the member's `timestampFormat`, else `default_timestamp_format` (`unixTimestamp`
/// for AWS JSON and rest-json bodies). Nulls and unknown structure keys are dropped.
pub fn to_wire(
    model: &ServiceModel,
    shape_ref: &ShapeRef,
    value: &Value,
    default_timestamp_format: &str,
) -> Value {
    let Some(shape) = model.target(shape_ref) else {
        return Value::Null;
    };
    match (shape.kind, value) {
        (ShapeKind::Structure, Value::Object(obj)) => {
            let mut out = Map::new();
            for (name, v) in obj {
                let Some(mref) = shape.members.get(name) else {
                    continue;
                };
                if v.is_null() || mref.location.is_some() {
                    continue;
                }
                let key = match mref.location_name.as_deref() {
                    Some(l) => l.to_owned(),
                    None => match model.target(mref).and_then(|t| t.location_name.as_deref()) {
                        Some(l) => l.to_owned(),
                        None => name.clone(),
                    },
                };
                out.insert(key, to_wire(model, mref, v, default_timestamp_format));
            }
            Value::Object(out)
        }
        (ShapeKind::List, Value::Array(items)) => match &shape.member {
            Some(member) => Value::Array(
                items
                    .iter()
                    .filter(|v| !v.is_null())
                    .map(|v| to_wire(model, member, v, default_timestamp_format))
                    .collect(),
            ),
            None => Value::Array(Vec::new()),
        },
        (ShapeKind::Map, Value::Object(obj)) => match &shape.value {
            Some(vref) => Value::Object(
                obj.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), to_wire(model, vref, v, default_timestamp_format)))
                    .collect(),
            ),
            None => Value::Object(Map::new()),
        },
        (ShapeKind::Timestamp, v) => {
            let format = shape_ref
                .timestamp_format_in(shape)
                .unwrap_or(default_timestamp_format);
            match timestamp::from_value(v) {
                Some(t) if format.eq_ignore_ascii_case("unixTimestamp") => timestamp::to_value(t),
                Some(t) => Value::String(timestamp::format(t, format)),
                None => v.clone(),
            }
        }
        (ShapeKind::Integer | ShapeKind::Long, Value::Number(n)) => match util::integer_of(n) {
            Some(i) => Value::from(i),
            None => value.clone(),
        },
        _ => value.clone(),
    }
}

fn serialization_error(what: &str) -> AwsError {
    AwsError::new("SerializationException", what.to_string())
}

fn mismatch(name: &str, expected: &str) -> AwsError {
    serialization_error(&format!(
        "Value for member {name} is not valid: expected {expected}."
    ))
}

/// Reads a JSON value of the shape `shape_ref` points at into the value convention
/// (numbers checked, timestamps to epoch seconds, blobs to canonical base64). Unknown
/// keys and nulls are ignored; a value of the wrong JSON type is a
/// `SerializationException`.
pub fn from_wire(
    model: &ServiceModel,
    shape_ref: &ShapeRef,
    wire: &Value,
) -> Result<Value, AwsError> {
    from_wire_owned(model, shape_ref, wire.clone(), &shape_ref.shape)
}

/// [`from_wire`] consuming its input, so strings move instead of being copied.
pub(crate) fn from_wire_owned(
    model: &ServiceModel,
    shape_ref: &ShapeRef,
    wire: Value,
    name: &str,
) -> Result<Value, AwsError> {
    let shape = util::target(model, shape_ref)?;
    Ok(match shape.kind {
        ShapeKind::Structure => {
            let Value::Object(obj) = wire else {
                return Err(mismatch(name, "an object"));
            };
            let mut out = Map::new();
            for (key, v) in obj {
                if v.is_null() {
                    continue;
                }
                let Some((member, mref)) = member_for_key(model, shape, &key) else {
                    continue;
                };
                out.insert(member.to_owned(), from_wire_owned(model, mref, v, member)?);
            }
            Value::Object(out)
        }
        ShapeKind::List => {
            let Value::Array(items) = wire else {
                return Err(mismatch(name, "a list"));
            };
            let member = shape
                .member
                .as_ref()
                .ok_or_else(|| mismatch(name, "a list"))?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if !item.is_null() {
                    out.push(from_wire_owned(model, member, item, name)?);
                }
            }
            Value::Array(out)
        }
        ShapeKind::Map => {
            let Value::Object(obj) = wire else {
                return Err(mismatch(name, "a map"));
            };
            let vref = shape
                .value
                .as_ref()
                .ok_or_else(|| mismatch(name, "a map"))?;
            let mut out = Map::new();
            for (k, v) in obj {
                if !v.is_null() {
                    out.insert(k, from_wire_owned(model, vref, v, name)?);
                }
            }
            Value::Object(out)
        }
        ShapeKind::String => match wire {
            Value::String(_) => wire,
            _ => return Err(mismatch(name, "a string")),
        },
        ShapeKind::Integer | ShapeKind::Long => match &wire {
            Value::Number(n) => {
                Value::from(util::integer_of(n).ok_or_else(|| mismatch(name, "an integer"))?)
            }
            _ => return Err(mismatch(name, "an integer")),
        },
        ShapeKind::Float | ShapeKind::Double => match &wire {
            Value::Number(_) => wire,
            Value::String(s) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => wire,
            _ => return Err(mismatch(name, "a number")),
        },
        ShapeKind::Boolean => match wire {
            Value::Bool(_) => wire,
            _ => return Err(mismatch(name, "a boolean")),
        },
        ShapeKind::Timestamp => match timestamp::from_value(&wire) {
            Some(t) => timestamp::to_value(t),
            None => return Err(mismatch(name, "a timestamp")),
        },
        ShapeKind::Blob => match &wire {
            Value::String(s) => match util::canonical_base64(s) {
                Some(std::borrow::Cow::Borrowed(_)) => wire,
                Some(std::borrow::Cow::Owned(c)) => Value::String(c),
                None => return Err(mismatch(name, "base64-encoded data")),
            },
            _ => return Err(mismatch(name, "base64-encoded data")),
        },
    })
}

/// The member a JSON key names: by member name when that member has no other
/// serialized name, else by `locationName` (rare in JSON models, so searched).
fn member_for_key<'m>(
    model: &'m ServiceModel,
    shape: &'m Shape,
    key: &str,
) -> Option<(&'m str, &'m ShapeRef)> {
    let serialized = |mref: &'m ShapeRef| {
        mref.location_name
            .as_deref()
            .or_else(|| model.target(mref).and_then(|t| t.location_name.as_deref()))
    };
    if let Some((name, mref)) = shape.members.get_key_value(key) {
        if mref.location.is_none() && serialized(mref).is_none_or(|l| l == key) {
            return Some((name.as_str(), mref));
        }
    }
    shape
        .members
        .iter()
        .find(|(_, mref)| mref.location.is_none() && serialized(mref) == Some(key))
        .map(|(n, r)| (n.as_str(), r))
}

fn content_type(protocol: Protocol) -> &'static str {
    if protocol == Protocol::Json11 {
        "application/x-amz-json-1.1"
    } else {
        "application/x-amz-json-1.0"
    }
}

/// The operation named by `X-Amz-Target`, checked against the model.
pub(crate) fn target_operation<'m>(
    model: &'m ServiceModel,
    req: &WireRequest,
) -> Result<&'m str, AwsError> {
    let target = req
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            AwsError::new("UnknownOperationException", "Missing X-Amz-Target header.")
        })?;
    let (prefix, op) = target.rsplit_once('.').unwrap_or(("", target));
    let prefix_ok = match model.metadata.target_prefix.as_deref() {
        Some(p) => p == prefix,
        None => true,
    };
    match model.operations.get_key_value(op) {
        Some((name, _)) if prefix_ok => Ok(name.as_str()),
        _ => Err(AwsError::new(
            "UnknownOperationException",
            format!("The operation {target} is not known to this service."),
        )),
    }
}

/// AWS JSON 1.0 / 1.1 request decoding.
pub(crate) fn decode(model: &ServiceModel, req: &WireRequest) -> Result<(String, Value), AwsError> {
    let op_name = target_operation(model, req)?;
    let wire: Value = if req.body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(req.body)
            .map_err(|e| serialization_error(&format!("The request body is not valid JSON: {e}")))?
    };
    if !wire.is_object() {
        return Err(serialization_error(
            "The request body must be a JSON object.",
        ));
    }
    let input = match model
        .operations
        .get(op_name)
        .and_then(|op| op.input.as_ref())
    {
        Some(input) => from_wire_owned(model, input, wire, &input.shape)?,
        None => Value::Object(Map::new()),
    };
    Ok((op_name.to_owned(), input))
}

pub(crate) fn base_headers(content_type: &str, request_id: &str) -> Vec<(String, String)> {
    vec![
        ("Content-Type".to_owned(), content_type.to_owned()),
        ("x-amzn-RequestId".to_owned(), request_id.to_owned()),
    ]
}

/// AWS JSON 1.0 / 1.1 output encoding.
pub(crate) fn encode_output(
    model: &ServiceModel,
    protocol: Protocol,
    operation: &str,
    output: &Value,
    request_id: &str,
) -> WireResponse {
    let wire = match model
        .operations
        .get(operation)
        .and_then(|op| op.output.as_ref())
    {
        Some(oref) => to_wire(model, oref, output, "unixTimestamp"),
        None => Value::Object(Map::new()),
    };
    let body = match wire {
        Value::Object(_) => serde_json::to_vec(&wire).unwrap_or_else(|_| b"{}".to_vec()),
        _ => b"{}".to_vec(),
    };
    WireResponse {
        status: 200,
        headers: base_headers(content_type(protocol), request_id),
        body,
    }
}

/// How an error looks on the wire, whatever the protocol: resolved once from the model.
pub(crate) struct ResolvedError<'a> {
    /// Shape name (or the plain code): what `__type` and rest error codes carry.
    pub type_name: &'a str,
    /// The query-protocol code.
    pub query_code: &'a str,
    pub status: u16,
    pub sender_fault: bool,
}

pub(crate) fn resolve_error<'a>(model: &'a ServiceModel, error: &'a AwsError) -> ResolvedError<'a> {
    match model.error_info(&error.code) {
        Some(info) => ResolvedError {
            type_name: info.shape_name,
            query_code: info.query_code,
            status: info.status.unwrap_or(error.status),
            sender_fault: info.sender_fault.unwrap_or(error.sender_fault),
        },
        None => ResolvedError {
            type_name: &error.code,
            query_code: &error.code,
            status: error.status,
            sender_fault: error.sender_fault,
        },
    }
}

/// The Smithy namespace put before `#` in `__type`. Clients only read what follows
/// `#`; this mirrors the `com.amazonaws.{service}` namespaces AWS uses.
pub(crate) fn error_namespace(model: &ServiceModel) -> String {
    let service = model
        .metadata
        .endpoint_prefix
        .as_deref()
        .unwrap_or(&model.name);
    format!("com.amazonaws.{service}")
}

/// `x-amzn-query-error` for query-compatible models.
pub(crate) fn query_error_header(
    model: &ServiceModel,
    resolved: &ResolvedError,
) -> Option<(String, String)> {
    model.is_query_compatible().then(|| {
        let fault = if resolved.sender_fault {
            "Sender"
        } else {
            "Receiver"
        };
        (
            "x-amzn-query-error".to_owned(),
            format!("{};{fault}", resolved.query_code),
        )
    })
}

/// AWS JSON 1.0 / 1.1 error encoding.
pub(crate) fn encode_error(
    model: &ServiceModel,
    protocol: Protocol,
    error: &AwsError,
    request_id: &str,
) -> WireResponse {
    let resolved = resolve_error(model, error);
    let mut body = Map::new();
    body.insert(
        "__type".to_owned(),
        Value::String(format!("{}#{}", error_namespace(model), resolved.type_name)),
    );
    body.insert("message".to_owned(), Value::String(error.message.clone()));
    for (k, v) in &error.fields {
        body.insert(k.clone(), Value::String(v.clone()));
    }
    let mut headers = base_headers(content_type(protocol), request_id);
    headers.extend(query_error_header(model, &resolved));
    WireResponse {
        status: resolved.status,
        headers,
        body: serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::model;
    use serde_json::json;

    fn request<'a>(headers: &'a http::HeaderMap, body: &'a [u8]) -> WireRequest<'a> {
        WireRequest {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body,
        }
    }

    #[test]
    fn sqs_send_message() {
        let m = model("sqs").expect("model");
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-amz-target",
            http::HeaderValue::from_static("AmazonSQS.SendMessage"),
        );
        let body = br#"{"QueueUrl":"http://q/1/a","MessageBody":"hi","DelaySeconds":5,
            "MessageAttributes":{"k":{"DataType":"Binary","BinaryValue":"AAE="}},"Unknown":1}"#;
        let (op, input) = decode(m, &request(&headers, body)).expect("decodes");
        assert_eq!(op, "SendMessage");
        assert_eq!(
            input,
            json!({"QueueUrl":"http://q/1/a","MessageBody":"hi","DelaySeconds":5,
                   "MessageAttributes":{"k":{"DataType":"Binary","BinaryValue":"AAE="}}})
        );
        let (_, empty) = decode(m, &request(&headers, b"")).expect("empty body");
        assert_eq!(empty, json!({}));
        for bad in [&br#"{"DelaySeconds":"5"}"#[..], b"[1]", b"{nope"] {
            let err = decode(m, &request(&headers, bad)).expect_err("rejects");
            assert_eq!(err.code, "SerializationException");
        }
        headers.insert(
            "x-amz-target",
            http::HeaderValue::from_static("AmazonSQS.Nope"),
        );
        assert_eq!(
            decode(m, &request(&headers, b"{}")).map_err(|e| e.code),
            Err("UnknownOperationException".to_owned())
        );
    }

    #[test]
    fn query_compatible_error() {
        let m = model("sqs").expect("model");
        let err = AwsError::new("QueueDoesNotExist", "The specified queue does not exist.");
        let resp = encode_error(m, Protocol::Json10, &err, "rid");
        assert_eq!(resp.status, 400);
        let body: Value = serde_json::from_slice(&resp.body).expect("json");
        assert_eq!(body["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
        assert!(resp.headers.contains(&(
            "x-amzn-query-error".to_owned(),
            "AWS.SimpleQueueService.NonExistentQueue;Sender".to_owned()
        )));
        let plain = encode_error(m, Protocol::Json10, &AwsError::internal("boom"), "rid");
        assert_eq!(plain.status, 500);
        assert!(plain.headers.contains(&(
            "x-amzn-query-error".to_owned(),
            "InternalFailure;Receiver".to_owned()
        )));
    }

    #[test]
    fn timestamps_and_names() {
        let m = model("logs").expect("model");
        let oref = &m.operations["DescribeLogGroups"].output;
        let oref = oref.as_ref().expect("output");
        let out = json!({"logGroups": [{"logGroupName": "g", "creationTime": 5, "junk": null}]});
        assert_eq!(
            to_wire(m, oref, &out, "unixTimestamp"),
            json!({"logGroups": [{"logGroupName": "g", "creationTime": 5}]})
        );
    }
}
