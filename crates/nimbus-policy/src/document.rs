//! The policy grammar: this module owns reading a JSON document into
//! statements and rejecting what AWS rejects (shape of every element, unknown
//! fields, duplicate Sids, malformed actions, resources and principals), with
//! S3's MalformedPolicy messages.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::condition::{self, Condition};
use crate::pattern::{literal_pattern, Tok};
use crate::{Policy, PolicyError};

/// The policy language version. Only 2012-10-17 has policy variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyVersion {
    V2008_10_17,
    V2012_10_17,
}

impl PolicyVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyVersion::V2008_10_17 => "2008-10-17",
            PolicyVersion::V2012_10_17 => "2012-10-17",
        }
    }
}

/// Which rules apply to `Principal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Attached to a resource: Principal/NotPrincipal required.
    Resource,
    /// Attached to an identity: Principal/NotPrincipal forbidden.
    Identity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    /// `None` in identity policies: the statement is about the attached identity.
    pub(crate) principal: Option<PrincipalClause>,
    pub(crate) action: ActionClause,
    pub(crate) resource: ResourceClause,
    pub(crate) conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ActionClause {
    /// `NotAction` rather than `Action`.
    pub(crate) negated: bool,
    /// As written, lower-cased (action names are case-insensitive).
    pub(crate) raw: Vec<String>,
    pub(crate) patterns: Vec<Vec<Tok>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourceClause {
    /// `NotResource` rather than `Resource`.
    pub(crate) negated: bool,
    /// As written; variables are resolved per request.
    pub(crate) patterns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PrincipalClause {
    /// `NotPrincipal` rather than `Principal`.
    pub(crate) negated: bool,
    /// `"Principal": "*"`.
    pub(crate) everyone: bool,
    pub(crate) aws: Vec<String>,
    pub(crate) service: Vec<String>,
    pub(crate) canonical_user: Vec<String>,
    pub(crate) federated: Vec<String>,
}

fn err(message: &str) -> PolicyError {
    PolicyError::new(message)
}

pub(crate) fn parse(document: &str, kind: Kind) -> Result<Policy, PolicyError> {
    let not_json = || err("Policies must be valid JSON and the first byte must be '{'");
    if !document.trim_start().starts_with('{') {
        return Err(not_json());
    }
    let Ok(Value::Object(top)) = serde_json::from_str::<Value>(document) else {
        return Err(not_json());
    };
    for key in top.keys() {
        if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
            return Err(PolicyError::new(format!("Unknown field {key}")));
        }
    }
    let version = match top.get("Version") {
        None => PolicyVersion::V2008_10_17,
        Some(Value::String(v)) if v == "2012-10-17" => PolicyVersion::V2012_10_17,
        Some(Value::String(v)) if v == "2008-10-17" => PolicyVersion::V2008_10_17,
        Some(_) => return Err(err("The policy must contain a valid version string")),
    };
    let id = match top.get("Id") {
        None => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err(err("Invalid policy syntax.")),
    };
    let raw_statements: Vec<&Map<String, Value>> = match top.get("Statement") {
        None => return Err(err("Missing required field Statement")),
        Some(Value::Object(one)) => vec![one],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(err("Could not parse the policy: Statement is empty!"))
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Object(s) => Ok(s),
                _ => Err(err("Invalid policy syntax.")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(err("Invalid policy syntax.")),
    };
    let mut sids = HashSet::new();
    let mut statements = Vec::with_capacity(raw_statements.len());
    for raw in raw_statements {
        let statement = parse_statement(raw, kind)?;
        if let Some(sid) = &statement.sid {
            if !sids.insert(sid.clone()) {
                return Err(err(
                    "Statement IDs (SID) in a single policy must be unique.",
                ));
            }
        }
        statements.push(statement);
    }
    Ok(Policy {
        version,
        id,
        statements,
    })
}

/// Picks exactly one of `name`/`not_name`; `Ok(None)` when neither is there.
fn one_of<'a>(
    s: &'a Map<String, Value>,
    name: &str,
    not_name: &str,
) -> Result<Option<(bool, &'a Value)>, PolicyError> {
    match (s.get(name), s.get(not_name)) {
        (Some(_), Some(_)) => Err(err("Invalid policy syntax.")),
        (Some(v), None) => Ok(Some((false, v))),
        (None, Some(v)) => Ok(Some((true, v))),
        (None, None) => Ok(None),
    }
}

fn parse_statement(s: &Map<String, Value>, kind: Kind) -> Result<Statement, PolicyError> {
    for key in s.keys() {
        let known = matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        );
        if !known {
            return Err(PolicyError::new(format!("Unknown field {key}")));
        }
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(sid)) => Some(sid.clone()),
        Some(_) => return Err(err("Invalid policy syntax.")),
    };
    let effect = match s.get("Effect") {
        None => return Err(err("Missing required field Effect")),
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(Value::String(e)) => return Err(PolicyError::new(format!("Invalid effect: {e}"))),
        Some(_) => return Err(err("Invalid policy syntax.")),
    };
    let principal = match (one_of(s, "Principal", "NotPrincipal")?, kind) {
        (None, Kind::Resource) => return Err(err("Missing required field Principal")),
        (None, Kind::Identity) => None,
        (Some(_), Kind::Identity) => {
            return Err(err("Policy document should not specify a principal."))
        }
        (Some((negated, v)), Kind::Resource) => Some(parse_principal(negated, v)?),
    };
    let action = match one_of(s, "Action", "NotAction")? {
        None => return Err(err("Missing required field Action")),
        Some((negated, v)) => parse_actions(negated, v)?,
    };
    let resource = match one_of(s, "Resource", "NotResource")? {
        None => return Err(err("Missing required field Resource")),
        Some((negated, v)) => parse_resources(negated, v)?,
    };
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(block) => condition::parse_block(block)?,
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        action,
        resource,
        conditions,
    })
}

/// A string or a non-empty array of strings.
fn strings(v: &Value, message: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err(err(message)),
            })
            .collect(),
        _ => Err(err(message)),
    }
}

fn parse_actions(negated: bool, v: &Value) -> Result<ActionClause, PolicyError> {
    const INVALID: &str = "Policy has invalid action";
    let raw: Vec<String> = strings(v, INVALID)?
        .into_iter()
        .map(|a| a.to_ascii_lowercase())
        .collect();
    for action in &raw {
        if !valid_action(action) {
            return Err(err(INVALID));
        }
    }
    let patterns = raw.iter().map(|a| literal_pattern(a)).collect();
    Ok(ActionClause {
        negated,
        raw,
        patterns,
    })
}

/// `*` or `service:action`, where the action part may hold wildcards.
fn valid_action(action: &str) -> bool {
    if action == "*" {
        return true;
    }
    let Some((service, name)) = action.split_once(':') else {
        return false;
    };
    !service.is_empty()
        && !name.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'?' | b'-' | b'_'))
}

fn parse_resources(negated: bool, v: &Value) -> Result<ResourceClause, PolicyError> {
    const INVALID: &str = "Policy has invalid resource";
    let patterns = strings(v, INVALID)?;
    for resource in &patterns {
        if !valid_resource(resource) {
            return Err(err(INVALID));
        }
    }
    Ok(ResourceClause { negated, patterns })
}

/// `*` or an ARN with all six components and a named partition and service.
fn valid_resource(resource: &str) -> bool {
    if resource == "*" {
        return true;
    }
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, service, _, _, _] if !partition.is_empty() && !service.is_empty()
    )
}

fn parse_principal(negated: bool, v: &Value) -> Result<PrincipalClause, PolicyError> {
    let invalid = || err("Invalid principal in policy");
    let mut clause = PrincipalClause {
        negated,
        everyone: false,
        aws: Vec::new(),
        service: Vec::new(),
        canonical_user: Vec::new(),
        federated: Vec::new(),
    };
    match v {
        Value::String(s) if s == "*" => clause.everyone = true,
        Value::Object(map) if !map.is_empty() => {
            for (key, value) in map {
                let list = strings(value, "Invalid principal in policy")?;
                if list.iter().any(|p| p.is_empty()) {
                    return Err(invalid());
                }
                match key.as_str() {
                    "AWS" => {
                        if !list.iter().all(|p| valid_aws_principal(p)) {
                            return Err(invalid());
                        }
                        clause.aws.extend(list);
                    }
                    "Service" => clause.service.extend(list),
                    "CanonicalUser" => clause.canonical_user.extend(list),
                    "Federated" => clause.federated.extend(list),
                    _ => return Err(invalid()),
                }
            }
        }
        _ => return Err(invalid()),
    }
    Ok(clause)
}

/// `*`, a 12-digit account id, or an IAM/STS ARN naming an account.
fn valid_aws_principal(p: &str) -> bool {
    if p == "*" || is_account_id(p) {
        return true;
    }
    let parts: Vec<&str> = p.splitn(6, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, "iam" | "sts", "", account, resource]
            if !partition.is_empty() && is_account_id(account) && !resource.is_empty()
    )
}

pub(crate) fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}
