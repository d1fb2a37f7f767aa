//! Response side: an output value or an error to status, headers and body.
//! Output members bound to headers, header-prefix maps and the status code
//! are lifted out; the rest is the payload member or one XML/JSON document.
//! Errors take the modelled status and code when the error is a shape of the
//! model, in S3's bare `<Error>` form, the `<ErrorResponse>` form of the
//! other rest-xml services, or rest-json's `x-amzn-ErrorType` + JSON body.

use base64::Engine;
use nimbus_core::AwsError;
use serde_json::{Map, Value};

use super::plan::{Binding, Kind, OpPlan, Payload, Scalar, ServicePlan};
use crate::model::{Protocol, ServiceModel};
use crate::{json, util, xml, WireResponse};

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
/// rest-json bodies carry timestamps as epoch seconds unless the model says otherwise.
const JSON_TIMESTAMPS: &str = "unixTimestamp";

pub(super) fn encode_output(
    model: &ServiceModel,
    protocol: Protocol,
    plan: &ServicePlan,
    operation: &str,
    output: &Value,
    request_id: &str,
) -> WireResponse {
    let Some(op) = plan.op(operation) else {
        let error = AwsError::internal(format!("{} has no operation {operation}", model.name));
        return encode_error(model, protocol, plan, &error, request_id);
    };
    match encode_op_output(model, protocol, plan, op, output, request_id) {
        Ok(response) => response,
        Err(error) => encode_error(model, protocol, plan, &error, request_id),
    }
}

fn encode_op_output(
    model: &ServiceModel,
    protocol: Protocol,
    plan: &ServicePlan,
    op: &OpPlan,
    output: &Value,
    request_id: &str,
) -> Result<WireResponse, AwsError> {
    let mut response = WireResponse {
        status: op.response_code,
        headers: Vec::new(),
        body: Vec::new(),
    };
    request_id_headers(plan, protocol, request_id, &mut response.headers);
    let (Some(out), Some(values)) = (&op.output, output.as_object()) else {
        return Ok(response);
    };

    for binding in &out.headers {
        if let Some(text) = values
            .get(&binding.member)
            .and_then(|v| header_text(binding, v))
        {
            response.headers.push((binding.key.clone(), text));
        }
    }
    for binding in &out.header_maps {
        let Some(Value::Object(entries)) = values.get(&binding.member) else {
            continue;
        };
        let scalar = match binding.kind {
            Kind::Map { value, .. } => value,
            _ => Scalar::String,
        };
        for (key, value) in entries {
            if let Some(text) = scalar_header_text(scalar, value) {
                response
                    .headers
                    .push((format!("{}{key}", binding.key), text));
            }
        }
    }
    if let Some(code) = out
        .status_member
        .as_ref()
        .and_then(|m| values.get(m))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..=599).contains(c))
    {
        response.status = code;
    }

    match &out.payload {
        Payload::Members { any: false } => {}
        Payload::Members { any: true } => {
            if protocol == Protocol::RestXml {
                if let Some((root, reference)) = &out.document {
                    let mut body = String::with_capacity(256);
                    body.push_str(XML_DECLARATION);
                    // S3's GetBucketLocation: the document element itself holds the one member's text.
                    if let Some(Value::String(text)) = values
                        .get(root.as_str())
                        .filter(|_| plan.s3 && values.len() == 1)
                    {
                        body.push('<');
                        body.push_str(root);
                        body.push_str(" xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
                        xml::escape_text(text, &mut body);
                        body.push_str("</");
                        body.push_str(root);
                        body.push('>');
                        set_body(&mut response, body.into_bytes(), "application/xml");
                        return Ok(response);
                    }
                    // Written even when no body member is present: AWS answers the empty
                    // document, not an empty body.
                    xml::write_member(model, reference, root, output, &mut body);
                    set_body(&mut response, body.into_bytes(), "application/xml");
                }
            } else {
                let reference = model.operation(&op.name).and_then(|o| o.output.as_ref());
                if let Some(reference) = reference {
                    // The shared JSON codec leaves out members with a REST location.
                    let wire = json::to_wire(model, reference, output, JSON_TIMESTAMPS);
                    let body =
                        serde_json::to_vec(&wire).map_err(|e| AwsError::internal(e.to_string()))?;
                    set_body(&mut response, body, "application/json");
                }
            }
        }
        Payload::Blob { member, .. } => match values.get(member) {
            Some(Value::String(encoded)) => {
                response.body = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| {
                        AwsError::internal(format!("{} output {member} is not base64", op.name))
                    })?;
            }
            Some(_) => {
                return Err(AwsError::internal(format!(
                    "{} output {member} is not a base64 string",
                    op.name
                )))
            }
            None => {}
        },
        Payload::Text { member } => {
            if let Some(value) = values.get(member) {
                response.body = match value {
                    Value::String(text) => text.clone().into_bytes(),
                    other => other.to_string().into_bytes(),
                };
            }
        }
        Payload::Structure { member, .. } => {
            if let Some(value) = values.get(member).filter(|v| !v.is_null()) {
                if protocol == Protocol::RestXml {
                    if let Some((root, reference)) = &out.document {
                        let mut body = String::with_capacity(256);
                        body.push_str(XML_DECLARATION);
                        xml::write_member(model, reference, root, value, &mut body);
                        set_body(&mut response, body.into_bytes(), "application/xml");
                    }
                } else if let Some(reference) = model
                    .operation(&op.name)
                    .and_then(|o| o.output.as_ref())
                    .and_then(|r| model.shape(&r.shape))
                    .and_then(|s| s.members.get(member))
                {
                    let wire = json::to_wire(model, reference, value, JSON_TIMESTAMPS);
                    let body =
                        serde_json::to_vec(&wire).map_err(|e| AwsError::internal(e.to_string()))?;
                    set_body(&mut response, body, "application/json");
                }
            }
        }
    }
    Ok(response)
}

fn set_body(response: &mut WireResponse, body: Vec<u8>, content_type: &str) {
    response.body = body;
    if !response
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        response
            .headers
            .push(("Content-Type".to_string(), content_type.to_string()));
    }
}

/// A header value must not hold line breaks (they would split the header); other control
/// characters are replaced too, as no client could read them back.
fn header_safe(text: std::borrow::Cow<'_, str>) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        text.into_owned()
    }
}

fn scalar_header_text(scalar: Scalar, value: &Value) -> Option<String> {
    if value.is_null() {
        return None;
    }
    let format = match scalar {
        Scalar::Timestamp(format) => format.as_str(),
        _ => "rfc822",
    };
    Some(header_safe(util::scalar_to_text(
        scalar.shape_kind(),
        format,
        value,
    )))
}

fn header_text(binding: &Binding, value: &Value) -> Option<String> {
    match binding.kind {
        Kind::Scalar(scalar) => scalar_header_text(scalar, value),
        Kind::List(scalar) => {
            let items = value.as_array()?;
            if items.is_empty() {
                return None;
            }
            let mut out = String::new();
            for (i, item) in items.iter().filter(|v| !v.is_null()).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let text = scalar_header_text(scalar, item)?;
                // Strings holding the separator are quoted (Smithy's header list rule); HTTP
                // dates hold a comma by their grammar and are never quoted.
                if scalar == Scalar::String && (text.contains(',') || text.contains('"')) {
                    out.push('"');
                    out.push_str(&text.replace('\\', "\\\\").replace('"', "\\\""));
                    out.push('"');
                } else {
                    out.push_str(&text);
                }
            }
            Some(out)
        }
        Kind::Map { .. } => None,
    }
}

fn request_id_headers(
    plan: &ServicePlan,
    protocol: Protocol,
    request_id: &str,
    headers: &mut Vec<(String, String)>,
) {
    if plan.s3 {
        headers.push(("x-amz-request-id".to_string(), request_id.to_string()));
        headers.push(("x-amz-id-2".to_string(), host_id(request_id)));
    } else {
        headers.push(("x-amzn-RequestId".to_string(), request_id.to_string()));
        if protocol == Protocol::RestXml {
            // Older rest-xml clients read this one only.
            headers.push(("x-amz-request-id".to_string(), request_id.to_string()));
        }
    }
}

/// S3's `x-amz-id-2` / `HostId`: opaque to clients; derived from the request id so that the
/// two can be correlated in logs.
fn host_id(request_id: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("nimbus/{request_id}"))
}

fn escape_attr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    xml::escape_attribute(text, &mut out);
    out
}

pub(super) fn encode_error(
    model: &ServiceModel,
    protocol: Protocol,
    plan: &ServicePlan,
    error: &AwsError,
    request_id: &str,
) -> WireResponse {
    let info = model.error_info(&error.code);
    let code = info.map_or(error.code.as_str(), |i| i.query_code);
    let status = info.and_then(|i| i.status).unwrap_or(error.status);
    let sender_fault = match info {
        Some(i) => i.sender_fault.unwrap_or(if i.status.is_some() {
            status < 500
        } else {
            error.sender_fault
        }),
        None => error.sender_fault,
    };
    let mut response = WireResponse {
        status,
        headers: Vec::new(),
        body: Vec::new(),
    };
    request_id_headers(plan, protocol, request_id, &mut response.headers);
    response.headers.extend(error.headers.iter().cloned());

    if protocol == Protocol::RestXml {
        let mut body = String::with_capacity(256);
        body.push_str(XML_DECLARATION);
        if plan.s3 {
            body.push_str("<Error>");
            xml::error_elements(None, code, error, &mut body);
            xml::element("RequestId", request_id, &mut body);
            xml::element("HostId", &host_id(request_id), &mut body);
            body.push_str("</Error>");
        } else {
            body.push_str("<ErrorResponse");
            if let Some(ns) = &plan.namespace {
                body.push_str(" xmlns=\"");
                body.push_str(&escape_attr(ns));
                body.push('"');
            }
            body.push_str("><Error>");
            xml::error_elements(Some(sender_fault), code, error, &mut body);
            body.push_str("</Error>");
            xml::element("RequestId", request_id, &mut body);
            body.push_str("</ErrorResponse>");
        }
        set_body(&mut response, body.into_bytes(), "application/xml");
    } else {
        // botocore takes the code from this header first (and strips any `:...` suffix).
        response
            .headers
            .push(("x-amzn-ErrorType".to_string(), code.to_string()));
        let message_key = match info {
            Some(i)
                if !i.shape.members.contains_key("message")
                    && i.shape.members.contains_key("Message") =>
            {
                "Message"
            }
            _ => "message",
        };
        let mut body = Map::new();
        body.insert("code".to_string(), Value::String(code.to_string()));
        body.insert(
            message_key.to_string(),
            Value::String(error.message.clone()),
        );
        for (name, value) in &error.fields {
            body.insert(name.clone(), Value::String(value.clone()));
        }
        let bytes = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
        set_body(&mut response, bytes, "application/json");
    }
    response
}
