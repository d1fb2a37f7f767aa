//! Smithy RPC v2 CBOR: `POST /service/{Service}/operation/{Operation}` with
//! `Smithy-Protocol: rpc-v2-cbor`; the input and output are CBOR maps keyed by
//! member name (an empty body means no members); timestamps are tag 1 over
//! epoch seconds (integer or float), blobs byte strings. Errors are a map
//! `{"__type": "{namespace}#{Shape}", "message": ..}` plus, for
//! query-compatible services, the `x-amzn-query-error` header.
//!
//! The body is first read into a generic `ciborium::Value` (clients differ in
//! how they size integers and floats, and may use indefinite lengths), then
//! walked by shape, moving strings and bytes rather than copying them.

use crate::json::{error_namespace, query_error_header, resolve_error};
use crate::model::{ServiceModel, ShapeKind, ShapeRef};
use crate::{timestamp, util, WireRequest, WireResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ciborium::Value as Cbor;
use nimbus_core::AwsError;
use serde_json::{Map, Value};

const CONTENT_TYPE: &str = "application/cbor";

fn serialization_error(message: String) -> AwsError {
    AwsError::new("SerializationException", message)
}

fn mismatch(name: &str, expected: &str) -> AwsError {
    serialization_error(format!(
        "Value for member {name} is not valid: expected {expected}."
    ))
}

/// The operation named by the request path, checked against the model.
fn operation<'m>(model: &'m ServiceModel, req: &WireRequest) -> Result<&'m str, AwsError> {
    let unknown = || {
        AwsError::new(
            "UnknownOperationException",
            format!("No operation is routed at {}.", req.path),
        )
        .with_status(404)
    };
    // Smithy allows a path prefix before `/service/`; the segments after it are fixed.
    let rest = req
        .path
        .rfind("/service/")
        .map(|i| &req.path[i + "/service/".len()..])
        .ok_or_else(unknown)?;
    let (_service, rest) = rest.split_once('/').ok_or_else(unknown)?;
    let op = rest.strip_prefix("operation/").ok_or_else(unknown)?;
    model
        .operations
        .get_key_value(op)
        .map(|(n, _)| n.as_str())
        .ok_or_else(unknown)
}

/// Decodes an RPC v2 CBOR request.
pub(crate) fn decode(model: &ServiceModel, req: &WireRequest) -> Result<(String, Value), AwsError> {
    let op_name = operation(model, req)?;
    let wire = if req.body.is_empty() {
        Cbor::Map(Vec::new())
    } else {
        ciborium::de::from_reader::<Cbor, _>(req.body)
            .map_err(|e| serialization_error(format!("The request body is not valid CBOR: {e}")))?
    };
    if !wire.is_map() {
        return Err(serialization_error(
            "The request body must be a CBOR map.".to_owned(),
        ));
    }
    let input = match model
        .operations
        .get(op_name)
        .and_then(|op| op.input.as_ref())
    {
        Some(iref) => from_cbor(model, iref, wire, &iref.shape)?,
        None => Value::Object(Map::new()),
    };
    Ok((op_name.to_owned(), input))
}

fn cbor_f64(value: &Cbor) -> Option<f64> {
    match value {
        Cbor::Float(f) => Some(*f),
        Cbor::Integer(i) => Some(i128::from(*i) as f64),
        _ => None,
    }
}

/// Reads a CBOR value of the shape `shape_ref` points at into the value convention.
pub fn from_cbor(
    model: &ServiceModel,
    shape_ref: &ShapeRef,
    wire: Cbor,
    name: &str,
) -> Result<Value, AwsError> {
    let shape = util::target(model, shape_ref)?;
    Ok(match (shape.kind, wire) {
        (ShapeKind::Structure, Cbor::Map(entries)) => {
            let mut out = Map::new();
            for (k, v) in entries {
                if v.is_null() {
                    continue;
                }
                let Cbor::Text(key) = k else {
                    return Err(mismatch(name, "text keys"));
                };
                let Some((member, mref)) = shape.members.get_key_value(&key) else {
                    continue;
                };
                if mref.location.is_some() {
                    continue;
                }
                out.insert(key, from_cbor(model, mref, v, member)?);
            }
            Value::Object(out)
        }
        (ShapeKind::List, Cbor::Array(items)) => {
            let member = shape
                .member
                .as_ref()
                .ok_or_else(|| mismatch(name, "a list"))?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if !item.is_null() {
                    out.push(from_cbor(model, member, item, name)?);
                }
            }
            Value::Array(out)
        }
        (ShapeKind::Map, Cbor::Map(entries)) => {
            let vref = shape
                .value
                .as_ref()
                .ok_or_else(|| mismatch(name, "a map"))?;
            let mut out = Map::new();
            for (k, v) in entries {
                let Cbor::Text(key) = k else {
                    return Err(mismatch(name, "text keys"));
                };
                if !v.is_null() {
                    out.insert(key, from_cbor(model, vref, v, name)?);
                }
            }
            Value::Object(out)
        }
        (ShapeKind::String, Cbor::Text(s)) => Value::String(s),
        (ShapeKind::Integer | ShapeKind::Long, Cbor::Integer(i)) => {
            Value::from(i64::try_from(i).map_err(|_| mismatch(name, "a 64-bit integer"))?)
        }
        (ShapeKind::Integer | ShapeKind::Long, Cbor::Float(f))
            if f.fract() == 0.0 && f.abs() < 9.2e18 =>
        {
            Value::from(f as i64)
        }
        (ShapeKind::Float | ShapeKind::Double, v @ (Cbor::Float(_) | Cbor::Integer(_))) => {
            util::float_value(cbor_f64(&v).unwrap_or(f64::NAN))
        }
        (ShapeKind::Boolean, Cbor::Bool(b)) => Value::Bool(b),
        (ShapeKind::Blob, Cbor::Bytes(b)) => Value::String(STANDARD.encode(b)),
        (ShapeKind::Timestamp, Cbor::Tag(1, inner)) => {
            timestamp::to_value(cbor_f64(&inner).ok_or_else(|| mismatch(name, "epoch seconds"))?)
        }
        (ShapeKind::Timestamp, v @ (Cbor::Float(_) | Cbor::Integer(_))) => {
            timestamp::to_value(cbor_f64(&v).unwrap_or(0.0))
        }
        (kind, _) => {
            return Err(mismatch(
                name,
                match kind {
                    ShapeKind::Structure | ShapeKind::Map => "a map",
                    ShapeKind::List => "an array",
                    ShapeKind::String => "a text string",
                    ShapeKind::Integer | ShapeKind::Long => "an integer",
                    ShapeKind::Float | ShapeKind::Double => "a number",
                    ShapeKind::Boolean => "a boolean",
                    ShapeKind::Blob => "a byte string",
                    ShapeKind::Timestamp => "a tag 1 timestamp",
                },
            ))
        }
    })
}

/// The CBOR form of a value of the shape `shape_ref` points at. Nulls and unknown
/// structure keys are dropped; a value the shape cannot hold becomes CBOR null.
pub fn to_cbor(model: &ServiceModel, shape_ref: &ShapeRef, value: &Value) -> Cbor {
    let Some(shape) = model.target(shape_ref) else {
        return Cbor::Null;
    };
    match (shape.kind, value) {
        (ShapeKind::Structure, Value::Object(obj)) => Cbor::Map(
            obj.iter()
                .filter(|(_, v)| !v.is_null())
                .filter_map(|(k, v)| {
                    let mref = shape.members.get(k).filter(|m| m.location.is_none())?;
                    Some((Cbor::Text(k.clone()), to_cbor(model, mref, v)))
                })
                .collect(),
        ),
        (ShapeKind::List, Value::Array(items)) => match &shape.member {
            Some(member) => Cbor::Array(
                items
                    .iter()
                    .filter(|v| !v.is_null())
                    .map(|v| to_cbor(model, member, v))
                    .collect(),
            ),
            None => Cbor::Array(Vec::new()),
        },
        (ShapeKind::Map, Value::Object(obj)) => match &shape.value {
            Some(vref) => Cbor::Map(
                obj.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (Cbor::Text(k.clone()), to_cbor(model, vref, v)))
                    .collect(),
            ),
            None => Cbor::Map(Vec::new()),
        },
        (ShapeKind::String, Value::String(s)) => Cbor::Text(s.clone()),
        (ShapeKind::Integer | ShapeKind::Long, Value::Number(n)) => match util::integer_of(n) {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        (ShapeKind::Float | ShapeKind::Double, Value::Number(n)) => {
            Cbor::Float(n.as_f64().unwrap_or(0.0))
        }
        (ShapeKind::Float | ShapeKind::Double, Value::String(s)) => {
            Cbor::Float(util::parse_float(s).unwrap_or(f64::NAN))
        }
        (ShapeKind::Boolean, Value::Bool(b)) => Cbor::Bool(*b),
        (ShapeKind::Blob, Value::String(s)) => match STANDARD.decode(s) {
            Ok(bytes) => Cbor::Bytes(bytes),
            // Not base64 after all: send the text's bytes rather than nothing.
            Err(_) => Cbor::Bytes(s.as_bytes().to_vec()),
        },
        (ShapeKind::Timestamp, v) => match timestamp::from_value(v) {
            Some(t) => {
                let whole = timestamp::to_value(t);
                let inner = match whole.as_i64() {
                    Some(i) => Cbor::Integer(i.into()),
                    None => Cbor::Float(whole.as_f64().unwrap_or(t)),
                };
                Cbor::Tag(1, Box::new(inner))
            }
            None => Cbor::Null,
        },
        _ => Cbor::Null,
    }
}

fn response(status: u16, body: &Cbor, request_id: &str) -> WireResponse {
    let mut bytes = Vec::with_capacity(128);
    if ciborium::ser::into_writer(body, &mut bytes).is_err() {
        // Writing to a Vec only fails on a serializer bug; an empty map is still valid CBOR.
        bytes = vec![0xa0];
    }
    WireResponse {
        status,
        headers: vec![
            ("Content-Type".to_owned(), CONTENT_TYPE.to_owned()),
            ("Smithy-Protocol".to_owned(), "rpc-v2-cbor".to_owned()),
            ("x-amzn-RequestId".to_owned(), request_id.to_owned()),
        ],
        body: bytes,
    }
}

/// Encodes an RPC v2 CBOR output.
pub(crate) fn encode_output(
    model: &ServiceModel,
    operation: &str,
    output: &Value,
    request_id: &str,
) -> WireResponse {
    let body = match model
        .operations
        .get(operation)
        .and_then(|op| op.output.as_ref())
    {
        Some(oref) => match to_cbor(model, oref, output) {
            m @ Cbor::Map(_) => m,
            _ => Cbor::Map(Vec::new()),
        },
        None => Cbor::Map(Vec::new()),
    };
    response(200, &body, request_id)
}

/// Encodes an RPC v2 CBOR error.
pub(crate) fn encode_error(
    model: &ServiceModel,
    error: &AwsError,
    request_id: &str,
) -> WireResponse {
    let resolved = resolve_error(model, error);
    let mut entries = vec![
        (
            Cbor::Text("__type".to_owned()),
            Cbor::Text(format!("{}#{}", error_namespace(model), resolved.type_name)),
        ),
        (
            Cbor::Text("message".to_owned()),
            Cbor::Text(error.message.clone()),
        ),
    ];
    for (k, v) in &error.fields {
        entries.push((Cbor::Text(k.clone()), Cbor::Text(v.clone())));
    }
    let mut resp = response(resolved.status, &Cbor::Map(entries), request_id);
    resp.headers.extend(query_error_header(model, &resolved));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::model;
    use serde_json::json;

    fn request<'a>(headers: &'a http::HeaderMap, path: &'a str, body: &'a [u8]) -> WireRequest<'a> {
        WireRequest {
            method: "POST",
            path,
            query: "",
            headers,
            body,
        }
    }

    #[test]
    fn put_metric_data() {
        let m = model("cloudwatch").expect("model");
        let headers = http::HeaderMap::new();
        // {"Namespace": "app", "MetricData": [{"MetricName": "m", "Value": 1.5,
        //  "Timestamp": 1(1700000000), "Dimensions": []}]} written by hand, as botocore does.
        let mut body = vec![0xa2];
        body.extend(b"\x69Namespace\x63app");
        body.extend(b"\x6aMetricData\x81\xa4");
        body.extend(b"\x6aMetricName\x61m");
        body.extend(b"\x65Value\xfb");
        body.extend(1.5f64.to_be_bytes());
        body.extend(b"\x69Timestamp\xc1\x1a");
        body.extend(1_700_000_000u32.to_be_bytes());
        body.extend(b"\x6aDimensions\x80");
        let path = "/service/GraniteServiceVersion20100801/operation/PutMetricData";
        let (op, input) = decode(m, &request(&headers, path, &body)).expect("decodes");
        assert_eq!(op, "PutMetricData");
        assert_eq!(
            input,
            json!({"Namespace": "app", "MetricData": [
                {"MetricName": "m", "Value": 1.5, "Timestamp": 1_700_000_000, "Dimensions": []}]})
        );
        let (_, empty) = decode(
            m,
            &request(&headers, "/service/X/operation/ListMetrics", b""),
        )
        .expect("empty body");
        assert_eq!(empty, json!({}));
        let err =
            decode(m, &request(&headers, "/service/X/operation/Nope", b"")).expect_err("unknown");
        assert_eq!(err.code, "UnknownOperationException");
        let err = decode(m, &request(&headers, path, b"\xa1\x69Namespace\x01")).expect_err("type");
        assert_eq!(err.code, "SerializationException");
        let err = decode(m, &request(&headers, path, b"\xa1\x69Names")).expect_err("truncated");
        assert_eq!(err.code, "SerializationException");
    }

    #[test]
    fn output_round_trip() {
        let m = model("cloudwatch").expect("model");
        let out = json!({"MetricDataResults": [{"Id": "a", "Timestamps": [1_700_000_000, 1.5],
                         "Values": [1.0, 2.5], "StatusCode": "Complete"}]});
        let resp = encode_output(m, "GetMetricData", &out, "rid");
        let back: Cbor = ciborium::de::from_reader(resp.body.as_slice()).expect("cbor");
        let oref = m.operations["GetMetricData"]
            .output
            .as_ref()
            .expect("output");
        assert_eq!(from_cbor(m, oref, back, "out").expect("reads"), out);
        // Services may name a modelled error by its query code; the shape name goes in __type.
        let err = encode_error(m, &AwsError::new("LimitExceeded", "too many"), "rid");
        assert_eq!(err.status, 400);
        assert!(err.headers.contains(&(
            "x-amzn-query-error".to_owned(),
            "LimitExceeded;Sender".to_owned()
        )));
        let body: Cbor = ciborium::de::from_reader(err.body.as_slice()).expect("cbor");
        let type_ = body
            .as_map()
            .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some("__type")))
            .and_then(|(_, v)| v.as_text());
        assert_eq!(type_, Some("com.amazonaws.monitoring#LimitExceededFault"));
    }
}
