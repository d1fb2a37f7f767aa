//! The `Condition` element: this module owns the catalogue of condition
//! operators (with their `IfExists` suffix and `ForAnyValue:`/`ForAllValues:`
//! set prefixes), parsing one operator block, and evaluating a condition
//! against the request context with AWS's rules for missing keys.

use serde_json::Value;

use crate::context::Ctx;
use crate::date::parse_date;
use crate::ip::{parse_ip, Cidr};
use crate::pattern::{arn_match, glob, render, resolve, Tok};
use crate::PolicyError;

/// How two values are compared, before negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    /// ArnEquals and ArnLike behave alike in AWS: both take wildcards.
    Arn,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds(self, request: f64, policy: f64) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

/// How the request's (possibly several) values combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetQualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

/// Operator names and what they mean: (name, kind, negated).
const OPERATORS: &[(&str, Kind, bool)] = &[
    ("StringEquals", Kind::StringEquals, false),
    ("StringNotEquals", Kind::StringEquals, true),
    (
        "StringEqualsIgnoreCase",
        Kind::StringEqualsIgnoreCase,
        false,
    ),
    (
        "StringNotEqualsIgnoreCase",
        Kind::StringEqualsIgnoreCase,
        true,
    ),
    ("StringLike", Kind::StringLike, false),
    ("StringNotLike", Kind::StringLike, true),
    ("NumericEquals", Kind::Numeric(Cmp::Eq), false),
    ("NumericNotEquals", Kind::Numeric(Cmp::Eq), true),
    ("NumericLessThan", Kind::Numeric(Cmp::Lt), false),
    ("NumericLessThanEquals", Kind::Numeric(Cmp::Le), false),
    ("NumericGreaterThan", Kind::Numeric(Cmp::Gt), false),
    ("NumericGreaterThanEquals", Kind::Numeric(Cmp::Ge), false),
    ("DateEquals", Kind::Date(Cmp::Eq), false),
    ("DateNotEquals", Kind::Date(Cmp::Eq), true),
    ("DateLessThan", Kind::Date(Cmp::Lt), false),
    ("DateLessThanEquals", Kind::Date(Cmp::Le), false),
    ("DateGreaterThan", Kind::Date(Cmp::Gt), false),
    ("DateGreaterThanEquals", Kind::Date(Cmp::Ge), false),
    ("Bool", Kind::Bool, false),
    ("BinaryEquals", Kind::Binary, false),
    ("IpAddress", Kind::Ip, false),
    ("NotIpAddress", Kind::Ip, true),
    ("ArnEquals", Kind::Arn, false),
    ("ArnLike", Kind::Arn, false),
    ("ArnNotEquals", Kind::Arn, true),
    ("ArnNotLike", Kind::Arn, true),
    ("Null", Kind::Null, false),
];

/// One key under one operator, e.g. `"IpAddress": {"aws:SourceIp": [..]}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub(crate) qualifier: SetQualifier,
    pub(crate) kind: Kind,
    pub(crate) negated: bool,
    pub(crate) if_exists: bool,
    pub(crate) key: String,
    pub(crate) values: Vec<String>,
}

/// Parses the whole `Condition` object into one entry per operator and key.
pub(crate) fn parse_block(block: &Value) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(operators) = block else {
        return Err(PolicyError::new("Invalid policy syntax."));
    };
    let mut out = Vec::new();
    for (name, body) in operators {
        let (qualifier, kind, negated, if_exists) = parse_operator(name)?;
        let Value::Object(keys) = body else {
            return Err(PolicyError::new("Invalid policy syntax."));
        };
        if keys.is_empty() {
            return Err(PolicyError::new("Invalid policy syntax."));
        }
        for (key, raw) in keys {
            if !valid_key(key) {
                return Err(PolicyError::new("Policy has an invalid condition key"));
            }
            let values = condition_values(raw)?;
            check_values(kind, &values)?;
            out.push(Condition {
                qualifier,
                kind,
                negated,
                if_exists,
                key: key.clone(),
                values,
            });
        }
    }
    Ok(out)
}

fn parse_operator(name: &str) -> Result<(SetQualifier, Kind, bool, bool), PolicyError> {
    let invalid = || PolicyError::new(format!("Invalid Condition operator : {name}"));
    let (qualifier, rest) = if let Some(rest) = strip_prefix_ci(name, "ForAnyValue:") {
        (SetQualifier::ForAnyValue, rest)
    } else if let Some(rest) = strip_prefix_ci(name, "ForAllValues:") {
        (SetQualifier::ForAllValues, rest)
    } else {
        (SetQualifier::None, name)
    };
    let (base, if_exists) = match strip_suffix_ci(rest, "IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    let (_, kind, negated) = OPERATORS
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(base))
        .ok_or_else(invalid)?;
    // Null asks about presence itself, so neither modifier means anything.
    if *kind == Kind::Null && (if_exists || qualifier != SetQualifier::None) {
        return Err(invalid());
    }
    Ok((qualifier, *kind, *negated, if_exists))
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

fn strip_suffix_ci<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = text.len().checked_sub(suffix.len())?;
    let tail = text.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix)
        .then(|| text.get(..cut))
        .flatten()
}

/// `service:name`, as every AWS condition key is.
fn valid_key(key: &str) -> bool {
    match key.split_once(':') {
        Some((service, name)) => {
            !service.is_empty()
                && !name.is_empty()
                && service
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !key.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// A value or array of values; numbers and booleans are kept as their text
/// (`"Bool": {"aws:SecureTransport": false}` is common).
fn condition_values(raw: &Value) -> Result<Vec<String>, PolicyError> {
    fn one(v: &Value) -> Result<String, PolicyError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(PolicyError::new("Invalid policy syntax.")),
        }
    }
    match raw {
        Value::Array(items) => items.iter().map(one).collect(),
        v => Ok(vec![one(v)?]),
    }
}

/// Values whose form is fixed by the operator are checked at parse time so a
/// typo surfaces as MalformedPolicy instead of a statement that never matches.
fn check_values(kind: Kind, values: &[String]) -> Result<(), PolicyError> {
    let ok = |v: &String| match kind {
        Kind::Ip => Cidr::parse(v).is_some(),
        Kind::Bool | Kind::Null => {
            v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
        }
        _ => true,
    };
    match values.iter().find(|v| !ok(v)) {
        Some(bad) => Err(PolicyError::new(format!("Invalid Condition value : {bad}"))),
        None => Ok(()),
    }
}

impl Condition {
    /// Whether this condition holds for the request. `vars` is true when
    /// policy variables are in force (Version 2012-10-17).
    pub(crate) fn holds(&self, ctx: &Ctx<'_, '_>, vars: bool) -> bool {
        let request = ctx.values(&self.key);
        if self.kind == Kind::Null {
            let present = !request.is_empty();
            return self.values.iter().any(|v| {
                if v.eq_ignore_ascii_case("true") {
                    !present
                } else {
                    present
                }
            });
        }
        if request.is_empty() {
            // AWS: a missing key matches no value. IfExists turns that into
            // "true"; ForAllValues holds vacuously over an empty set; for a
            // plain negated operator "matches none of the values" is true.
            return self.if_exists
                || self.qualifier == SetQualifier::ForAllValues
                || (self.negated && self.qualifier == SetQualifier::None);
        }
        let var_ctx = vars.then_some(ctx);
        // Values naming an unknown variable can match nothing, so they drop out.
        let patterns: Vec<Vec<Tok>> = self
            .values
            .iter()
            .filter_map(|v| match self.kind {
                Kind::StringEquals
                | Kind::StringEqualsIgnoreCase
                | Kind::StringLike
                | Kind::Arn => resolve(v, var_ctx),
                _ => resolve(v, None),
            })
            .collect();
        let satisfied = |r: &&str| patterns.iter().any(|p| self.matches(r, p)) != self.negated;
        match self.qualifier {
            SetQualifier::ForAnyValue => request.iter().any(satisfied),
            SetQualifier::ForAllValues => request.iter().all(satisfied),
            // A plain operator over a multivalued key: positive operators need
            // one match; negated ones need no value to match.
            SetQualifier::None if self.negated => request.iter().all(satisfied),
            SetQualifier::None => request.iter().any(satisfied),
        }
    }

    /// The positive comparison of one request value with one policy value.
    fn matches(&self, request: &str, policy: &[Tok]) -> bool {
        match self.kind {
            Kind::StringEquals | Kind::Binary => render(policy) == request,
            Kind::StringEqualsIgnoreCase => render(policy).to_lowercase() == request.to_lowercase(),
            Kind::StringLike => glob(policy, request),
            Kind::Arn => arn_match(policy, request),
            Kind::Numeric(cmp) => {
                match (
                    request.trim().parse::<f64>(),
                    render(policy).trim().parse::<f64>(),
                ) {
                    (Ok(r), Ok(p)) => cmp.holds(r, p),
                    _ => false,
                }
            }
            Kind::Date(cmp) => match (parse_date(request), parse_date(&render(policy))) {
                (Some(r), Some(p)) => cmp.holds(r, p),
                _ => false,
            },
            Kind::Bool => {
                let p = render(policy);
                (p.eq_ignore_ascii_case("true") || p.eq_ignore_ascii_case("false"))
                    && p.eq_ignore_ascii_case(request.trim())
            }
            Kind::Ip => match (Cidr::parse(&render(policy)), parse_ip(request)) {
                (Some(net), Some(ip)) => net.contains(ip),
                _ => false,
            },
            Kind::Null => false,
        }
    }
}
