//! Small helpers every codec shares: scalar coercion between wire text and the
//! value convention (numbers, booleans, timestamps, base64 blobs), and shape
//! resolution that never panics on a broken model.

use crate::model::{ServiceModel, Shape, ShapeKind, ShapeRef};
use crate::timestamp;
use base64::engine::general_purpose::{
    STANDARD, STANDARD_PAD_INDIFFERENT, URL_SAFE_PAD_INDIFFERENT,
};
use base64::Engine;
use nimbus_core::AwsError;
use serde_json::{Number, Value};
use std::borrow::Cow;

/// The shape behind `r`, or an internal error naming the broken model.
pub(crate) fn target<'m>(model: &'m ServiceModel, r: &ShapeRef) -> Result<&'m Shape, AwsError> {
    model
        .target(r)
        .ok_or_else(|| AwsError::internal(format!("model {} has no shape {}", model.name, r.shape)))
}

/// A blob as the value convention stores it: standard base64 with padding. Input that is
/// already canonical is borrowed; whitespace, missing padding or the URL-safe alphabet
/// (which some clients send) are accepted and re-encoded. `None` when it is not base64.
pub(crate) fn canonical_base64(text: &str) -> Option<Cow<'_, str>> {
    let has_space = text.bytes().any(|b| b.is_ascii_whitespace());
    let compact: Cow<str> = if has_space {
        Cow::Owned(text.chars().filter(|c| !c.is_ascii_whitespace()).collect())
    } else {
        Cow::Borrowed(text)
    };
    if !has_space && STANDARD.decode(compact.as_bytes()).is_ok() {
        return Some(Cow::Borrowed(text));
    }
    let bytes = STANDARD_PAD_INDIFFERENT
        .decode(compact.as_bytes())
        .or_else(|_| URL_SAFE_PAD_INDIFFERENT.decode(compact.as_bytes()))
        .ok()?;
    Some(Cow::Owned(STANDARD.encode(bytes)))
}

/// A float as a value: a number when finite, else the strings botocore uses
/// (`NaN`, `Infinity`, `-Infinity`), since JSON numbers cannot hold them.
pub(crate) fn float_value(v: f64) -> Value {
    match Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::from("NaN"),
        None if v > 0.0 => Value::from("Infinity"),
        None => Value::from("-Infinity"),
    }
}

/// Parses a float the way AWS protocols write them, including the special names.
pub(crate) fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => {
            // Rust's parser would also take "inf" and "nan"; AWS never sends those.
            let t = text.trim();
            if t.bytes()
                .any(|b| b.is_ascii_alphabetic() && !matches!(b, b'e' | b'E'))
            {
                return None;
            }
            t.parse().ok()
        }
    }
}

/// An integer from a JSON number that may have been produced as a whole float.
pub(crate) fn integer_of(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

/// Converts wire text (a query parameter, an XML element, a header) to a value of a
/// scalar shape. The error is a short reason for the caller's protocol-specific error.
pub fn scalar_from_text(kind: ShapeKind, text: &str) -> Result<Value, &'static str> {
    Ok(match kind {
        ShapeKind::String => Value::String(text.to_owned()),
        ShapeKind::Integer | ShapeKind::Long => {
            Value::from(text.trim().parse::<i64>().map_err(|_| "not an integer")?)
        }
        ShapeKind::Float | ShapeKind::Double => {
            float_value(parse_float(text).ok_or("not a number")?)
        }
        ShapeKind::Boolean => {
            let t = text.trim();
            if t.eq_ignore_ascii_case("true") {
                Value::Bool(true)
            } else if t.eq_ignore_ascii_case("false") {
                Value::Bool(false)
            } else {
                return Err("not a boolean");
            }
        }
        ShapeKind::Timestamp => {
            timestamp::to_value(timestamp::parse(text).ok_or("not a timestamp")?)
        }
        ShapeKind::Blob => Value::String(canonical_base64(text).ok_or("not base64")?.into_owned()),
        ShapeKind::Structure | ShapeKind::List | ShapeKind::Map => {
            return Err("a value where a structure, list or map belongs")
        }
    })
}

/// The wire text of a scalar value (unescaped). Timestamps use `timestamp_format`;
/// anything a service put in an unexpected form is written as it is rather than lost.
pub fn scalar_to_text<'v>(
    kind: ShapeKind,
    timestamp_format: &str,
    value: &'v Value,
) -> Cow<'v, str> {
    match (kind, value) {
        (_, Value::String(s)) if kind != ShapeKind::Timestamp => Cow::Borrowed(s),
        (ShapeKind::Timestamp, v) => match timestamp::from_value(v) {
            Some(t) => Cow::Owned(timestamp::format(t, timestamp_format)),
            None => match v {
                Value::String(s) => Cow::Borrowed(s),
                _ => Cow::Borrowed(""),
            },
        },
        (ShapeKind::Integer | ShapeKind::Long, Value::Number(n)) => match integer_of(n) {
            Some(i) => Cow::Owned(i.to_string()),
            None => Cow::Owned(n.to_string()),
        },
        (_, Value::Number(n)) => Cow::Owned(n.to_string()),
        (_, Value::Bool(true)) => Cow::Borrowed("true"),
        (_, Value::Bool(false)) => Cow::Borrowed("false"),
        _ => Cow::Borrowed(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_forms() {
        assert_eq!(canonical_base64("aGk=").as_deref(), Some("aGk="));
        assert_eq!(canonical_base64("aGk").as_deref(), Some("aGk="));
        assert_eq!(canonical_base64("aG\nk=").as_deref(), Some("aGk="));
        assert_eq!(canonical_base64("-_8=").as_deref(), Some("+/8="));
        assert_eq!(canonical_base64("!!"), None);
    }

    #[test]
    fn scalars() {
        assert_eq!(
            scalar_from_text(ShapeKind::Integer, "30"),
            Ok(Value::from(30))
        );
        assert_eq!(
            scalar_from_text(ShapeKind::Boolean, "TRUE"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            scalar_from_text(ShapeKind::Double, "NaN"),
            Ok(Value::from("NaN"))
        );
        assert!(scalar_from_text(ShapeKind::Double, "inf").is_err());
        assert_eq!(
            scalar_from_text(ShapeKind::Timestamp, "1970-01-01T00:00:01.5Z"),
            Ok(Value::from(1.5))
        );
        assert_eq!(
            scalar_to_text(ShapeKind::Integer, "iso8601", &Value::from(3.0)),
            "3"
        );
        assert_eq!(
            scalar_to_text(ShapeKind::Timestamp, "iso8601", &Value::from(1)),
            "1970-01-01T00:00:01Z"
        );
    }
}
