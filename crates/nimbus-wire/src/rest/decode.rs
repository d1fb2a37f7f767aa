//! Request side: from a routed HTTP request to the input value. Labels, query
//! parameters, headers and header-prefix maps are read by the bindings the
//! plan worked out; the body is the payload member (raw bytes, text, or one
//! XML/JSON document) or, without a payload trait, a document of the members
//! that have no location.

use std::borrow::Cow;

use base64::Engine;
use http::HeaderValue;
use nimbus_core::AwsError;
use serde_json::{Map, Value};

use super::plan::{Binding, InputPlan, Kind, Payload, Scalar, ServicePlan, TsFormat};
use super::route::{parse_query, split_path, QueryPair};
use crate::model::{Protocol, ServiceModel};
use crate::{json, util, xml, WireRequest};

pub(super) fn decode(
    model: &ServiceModel,
    protocol: Protocol,
    plan: &ServicePlan,
    req: &WireRequest<'_>,
) -> Result<(String, Value), AwsError> {
    let mut path = split_path(req.path)?;
    let query = parse_query(req.query);
    let resolved = plan.resolve(req.method, &mut path, &query, req.headers)?;
    let op = resolved.op;
    let mut out = Map::new();
    let Some(input) = &op.input else {
        return Ok((op.name.clone(), Value::Object(out)));
    };
    let errors = Errors { plan, protocol };

    // The body first, so that members bound to the URI or headers win over a stray element of
    // the same name in a document.
    decode_body(
        model, protocol, &op.name, input, req.body, &errors, &mut out,
    )?;

    for (binding, text) in input.labels.iter().zip(resolved.labels) {
        let value = match binding.kind {
            Kind::Scalar(Scalar::String) => Value::String(text),
            Kind::Scalar(scalar) => errors.scalar(binding, scalar, &text)?,
            _ => Value::String(text),
        };
        out.insert(binding.member.clone(), value);
    }

    bind_query(input, &query, &errors, &mut out)?;
    bind_headers(input, req.headers, &errors, &mut out)?;
    Ok((op.name.clone(), Value::Object(out)))
}

/// Builds the protocol's errors for bad input.
struct Errors<'p> {
    plan: &'p ServicePlan,
    protocol: Protocol,
}

impl Errors<'_> {
    fn bad_value(&self, binding: &Binding, text: &str) -> AwsError {
        let code = match (self.protocol, self.plan.s3) {
            (Protocol::RestXml, true) => "InvalidArgument",
            (Protocol::RestXml, false) => "InvalidInput",
            _ => "SerializationException",
        };
        AwsError::new(
            code,
            format!(
                "Invalid value '{text}' for {} ({}).",
                binding.key, binding.member
            ),
        )
    }

    fn malformed_json(&self, detail: &str) -> AwsError {
        AwsError::new(
            "SerializationException",
            format!("The request body is not valid JSON: {detail}"),
        )
    }

    fn scalar(&self, binding: &Binding, scalar: Scalar, text: &str) -> Result<Value, AwsError> {
        scalar_value(scalar, text).ok_or_else(|| self.bad_value(binding, text))
    }
}

/// A text form's value by the value convention (the shared coercions: floats may be
/// `NaN`/`Infinity` strings, blobs are canonical base64); `None` when the text does not parse.
fn scalar_value(scalar: Scalar, text: &str) -> Option<Value> {
    util::scalar_from_text(scalar.shape_kind(), text).ok()
}

fn bind_query(
    input: &InputPlan,
    query: &[QueryPair<'_>],
    errors: &Errors<'_>,
    out: &mut Map<String, Value>,
) -> Result<(), AwsError> {
    if query.is_empty() {
        return Ok(());
    }
    for binding in &input.query {
        let mut values = query
            .iter()
            .filter(|(k, _)| k.as_ref() == binding.key)
            .map(|(_, v)| v.as_ref());
        let value = match binding.kind {
            Kind::List(scalar) => {
                let items = values
                    .map(|v| errors.scalar(binding, scalar, v))
                    .collect::<Result<Vec<_>, _>>()?;
                if items.is_empty() {
                    continue;
                }
                Value::Array(items)
            }
            Kind::Scalar(scalar) => match values.next() {
                Some(v) => errors.scalar(binding, scalar, v)?,
                None => continue,
            },
            Kind::Map { .. } => continue,
        };
        out.insert(binding.member.clone(), value);
    }
    if let Some(binding) = &input.query_map {
        let Kind::Map {
            value: scalar,
            lists,
        } = binding.kind
        else {
            return Ok(());
        };
        let mut map = Map::new();
        for (key, text) in query {
            let key = key.as_ref();
            if input.query.iter().any(|b| b.key == key)
                || input.literal_query_keys.iter().any(|k| k == key)
            {
                continue;
            }
            let value = errors.scalar(binding, scalar, text)?;
            if lists {
                match map
                    .entry(key.to_string())
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    Value::Array(items) => items.push(value),
                    other => *other = Value::Array(vec![value]),
                }
            } else {
                // Like botocore's dict update: the first value of a repeated key stays.
                map.entry(key.to_string()).or_insert(value);
            }
        }
        if !map.is_empty() {
            out.insert(binding.member.clone(), Value::Object(map));
        }
    }
    Ok(())
}

/// A header value as text: UTF-8 when it is, else ISO-8859-1 (HTTP's historical charset), so
/// that no byte is lost.
fn header_text(value: &HeaderValue) -> Cow<'_, str> {
    match std::str::from_utf8(value.as_bytes()) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(value.as_bytes().iter().map(|&b| char::from(b)).collect()),
    }
}

fn bind_headers(
    input: &InputPlan,
    headers: &http::HeaderMap,
    errors: &Errors<'_>,
    out: &mut Map<String, Value>,
) -> Result<(), AwsError> {
    if headers.is_empty() {
        return Ok(());
    }
    for name in headers.keys() {
        let Some(binding) = input.headers.get(name) else {
            continue;
        };
        let mut all = headers.get_all(name).iter();
        let Some(first) = all.next() else {
            continue;
        };
        // Repeated headers are one comma-separated list (RFC 9110 section 5.3).
        let mut text = header_text(first);
        for more in all {
            let joined = text.to_mut();
            joined.push_str(", ");
            joined.push_str(&header_text(more));
        }
        let value = match binding.kind {
            Kind::List(scalar) => Value::Array(
                split_header_list(&text, scalar)
                    .into_iter()
                    .map(|item| errors.scalar(binding, scalar, &item))
                    .collect::<Result<_, _>>()?,
            ),
            Kind::Scalar(Scalar::String) => Value::String(text.into_owned()),
            Kind::Scalar(scalar) => errors.scalar(binding, scalar, &text)?,
            Kind::Map { .. } => continue,
        };
        out.insert(binding.member.clone(), value);
    }
    for binding in &input.header_maps {
        let Kind::Map { value: scalar, .. } = binding.kind else {
            continue;
        };
        let mut map = Map::new();
        for (name, value) in headers {
            let Some(key) = name.as_str().strip_prefix(binding.key.as_str()) else {
                continue;
            };
            if key.is_empty() {
                continue;
            }
            let text = header_text(value);
            match map.get_mut(key) {
                Some(Value::String(existing)) => {
                    existing.push_str(", ");
                    existing.push_str(&text);
                }
                _ => {
                    map.insert(key.to_string(), errors.scalar(binding, scalar, &text)?);
                }
            }
        }
        if !map.is_empty() {
            out.insert(binding.member.clone(), Value::Object(map));
        }
    }
    Ok(())
}

/// Splits a header list: items are comma-separated, may be quoted (`"a,b"`, with `\"`
/// escapes, as botocore writes strings holding commas or quotes), and HTTP dates, which hold
/// a comma themselves, are rejoined with their weekday.
fn split_header_list(text: &str, scalar: Scalar) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => quoted = false,
            '"' if current.trim().is_empty() => {
                current.clear();
                quoted = true;
                was_quoted = true;
            }
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ',' if !quoted => {
                items.push(finish_item(&mut current, was_quoted));
                was_quoted = false;
            }
            // Whitespace between a closing quote and the next comma is not part of the item.
            c if was_quoted && !quoted && c.is_whitespace() => {}
            _ => current.push(c),
        }
    }
    items.push(finish_item(&mut current, was_quoted));
    if items.len() == 1 && items[0].is_empty() {
        items.clear();
    }
    if scalar == Scalar::Timestamp(TsFormat::Rfc822) {
        let mut dates = Vec::with_capacity(items.len() / 2 + 1);
        let mut iter = items.into_iter().peekable();
        while let Some(item) = iter.next() {
            let is_weekday = item.len() == 3 && item.bytes().all(|b| b.is_ascii_alphabetic());
            match iter.peek() {
                Some(_) if is_weekday => {
                    let rest = iter.next().unwrap_or_default();
                    dates.push(format!("{item}, {rest}"));
                }
                _ => dates.push(item),
            }
        }
        return dates;
    }
    items
}

fn finish_item(current: &mut String, was_quoted: bool) -> String {
    let item = std::mem::take(current);
    if was_quoted {
        item
    } else {
        item.trim().to_string()
    }
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

fn decode_body(
    model: &ServiceModel,
    protocol: Protocol,
    operation: &str,
    input: &InputPlan,
    body: &[u8],
    errors: &Errors<'_>,
    out: &mut Map<String, Value>,
) -> Result<(), AwsError> {
    match &input.payload {
        Payload::Members { any: false } => {}
        Payload::Members { any: true } => {
            if is_blank(body) {
                return Ok(());
            }
            let Some(shape) = model.shape(&input.shape) else {
                return Ok(());
            };
            let value = if protocol == Protocol::RestXml {
                let root = xml::parse(body)?;
                xml::node_members_to_value(model, shape, &root)?
            } else {
                let wire: Value = serde_json::from_slice(body)
                    .map_err(|e| errors.malformed_json(&e.to_string()))?;
                let Some(reference) = model.operation(operation).and_then(|o| o.input.as_ref())
                else {
                    return Ok(());
                };
                json::from_wire_owned(model, reference, wire, &reference.shape)?
            };
            if let Value::Object(members) = value {
                for (name, value) in members {
                    // Only members without a location belong to the body.
                    if shape
                        .members
                        .get(&name)
                        .is_some_and(|m| m.location.is_none())
                    {
                        out.insert(name, value);
                    }
                }
            }
        }
        Payload::Blob { member, streaming } => {
            if *streaming || !body.is_empty() {
                out.insert(
                    member.clone(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
                );
            }
        }
        Payload::Text { member } => {
            if !body.is_empty() {
                let text = std::str::from_utf8(body).map_err(|_| {
                    AwsError::new(
                        "InvalidRequest",
                        "The request body is not valid UTF-8 text.",
                    )
                })?;
                out.insert(member.clone(), Value::String(text.to_string()));
            }
        }
        Payload::Structure { member, .. } => {
            if is_blank(body) {
                return Ok(());
            }
            let Some(reference) = model
                .shape(&input.shape)
                .and_then(|s| s.members.get(member))
            else {
                return Ok(());
            };
            let value = if protocol == Protocol::RestXml {
                let root = xml::parse(body)?;
                xml::node_to_value(model, reference, &root)?
            } else {
                let wire: Value = serde_json::from_slice(body)
                    .map_err(|e| errors.malformed_json(&e.to_string()))?;
                json::from_wire_owned(model, reference, wire, member)?
            };
            out.insert(member.clone(), value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists_split_with_quotes_and_dates() {
        assert_eq!(
            split_header_list(r#"a, "b,c", "d\"e" ,f"#, Scalar::String),
            vec!["a", "b,c", "d\"e", "f"]
        );
        assert_eq!(
            split_header_list(
                "Mon, 16 Dec 2019 23:48:18 GMT, Tue, 17 Dec 2019 23:48:18 GMT",
                Scalar::Timestamp(TsFormat::Rfc822)
            ),
            vec![
                "Mon, 16 Dec 2019 23:48:18 GMT",
                "Tue, 17 Dec 2019 23:48:18 GMT"
            ]
        );
        assert!(split_header_list("", Scalar::String).is_empty());
    }

    #[test]
    fn scalars_parse_by_kind() {
        assert_eq!(scalar_value(Scalar::Integer, " 42 "), Some(Value::from(42)));
        assert_eq!(
            scalar_value(Scalar::Boolean, "TRUE"),
            Some(Value::Bool(true))
        );
        assert_eq!(scalar_value(Scalar::Boolean, "yes"), None);
        assert_eq!(scalar_value(Scalar::Float, "x1"), None);
        assert_eq!(
            scalar_value(
                Scalar::Timestamp(TsFormat::Rfc822),
                "Thu, 01 Jan 1970 00:01:40 GMT"
            ),
            Some(Value::from(100))
        );
    }
}
