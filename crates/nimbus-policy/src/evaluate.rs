//! Policy evaluation: this module owns deciding whether a statement applies
//! to a request (principal, action, resource, conditions) and combining the
//! statements of one policy: an applicable Deny beats any Allow.

use crate::context::Ctx;
use crate::document::{is_account_id, Effect, PrincipalClause, Statement};
use crate::pattern::{arn_match, glob, resolve};
use crate::{Decision, Policy, PolicyVersion, Principal, Request};

pub(crate) fn evaluate(policy: &Policy, request: &Request<'_>) -> Decision {
    let ctx = Ctx::new(request);
    let vars = policy.version == PolicyVersion::V2012_10_17;
    let mut allowed = false;
    for statement in &policy.statements {
        if applies(statement, request, &ctx, vars) {
            match statement.effect {
                // Nothing can override an explicit deny, so stop looking.
                Effect::Deny => return Decision::Deny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::NotApplicable
    }
}

fn applies(s: &Statement, request: &Request<'_>, ctx: &Ctx<'_, '_>, vars: bool) -> bool {
    let principal_ok = match &s.principal {
        None => true,
        Some(p) => principal_matches(p, &request.principal) != p.negated,
    };
    principal_ok
        && action_matches(s, request.action)
        && resource_matches(s, request.resource, ctx, vars)
        && s.conditions.iter().all(|c| c.holds(ctx, vars))
}

fn action_matches(s: &Statement, action: &str) -> bool {
    // Service prefix and action name are both case-insensitive; the patterns
    // were lower-cased at parse time.
    let action = action.to_ascii_lowercase();
    let hit = s.action.patterns.iter().any(|p| glob(p, &action));
    hit != s.action.negated
}

fn resource_matches(s: &Statement, resource: &str, ctx: &Ctx<'_, '_>, vars: bool) -> bool {
    let var_ctx = vars.then_some(ctx);
    let hit = s
        .resource
        .patterns
        .iter()
        .any(|p| match resolve(p, var_ctx) {
            Some(toks) => arn_match(&toks, resource),
            // An unresolvable variable matches nothing.
            None => false,
        });
    hit != s.resource.negated
}

/// Whether the request's principal is one of those listed (before applying
/// `NotPrincipal`).
pub(crate) fn principal_matches(p: &PrincipalClause, who: &Principal<'_>) -> bool {
    if p.everyone || p.aws.iter().any(|a| a == "*") {
        return true;
    }
    match *who {
        Principal::Anonymous => false,
        Principal::Service(name) => p.service.iter().any(|s| s.eq_ignore_ascii_case(name)),
        Principal::Aws { arn, account } => p.aws.iter().any(|a| aws_matches(a, arn, account)),
    }
}

/// One `"AWS"` entry against an IAM identity.
fn aws_matches(entry: &str, arn: &str, account: &str) -> bool {
    // An account (by id or root ARN) stands for every identity in it.
    if is_account_id(entry) {
        return entry == account;
    }
    if let Some(acct) = root_account(entry) {
        return acct == account;
    }
    if entry == arn {
        return true;
    }
    // A role grants to each of its sessions: the session ARN
    // arn:P:sts::ACCT:assumed-role/ROLE/SESSION belongs to
    // arn:P:iam::ACCT:role/[PATH/]ROLE (the session ARN carries no path).
    match (session_role(arn), role_of(entry)) {
        (Some((p1, a1, role1)), Some((p2, a2, role2))) => p1 == p2 && a1 == a2 && role1 == role2,
        _ => false,
    }
}

/// `arn:P:iam::ACCT:root` → ACCT.
fn root_account(entry: &str) -> Option<&str> {
    let parts: Vec<&str> = entry.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", account, "root"] => Some(account),
        _ => None,
    }
}

/// `arn:P:sts::ACCT:assumed-role/ROLE/SESSION` → (P, ACCT, ROLE).
fn session_role(arn: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "sts", "", account, resource] => {
            let rest = resource.strip_prefix("assumed-role/")?;
            let (role, _session) = rest.split_once('/')?;
            Some((partition, account, role))
        }
        _ => None,
    }
}

/// `arn:P:iam::ACCT:role/PATH/ROLE` → (P, ACCT, ROLE).
fn role_of(entry: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = entry.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource] => {
            let path_and_name = resource.strip_prefix("role/")?;
            Some((partition, account, path_and_name.rsplit('/').next()?))
        }
        _ => None,
    }
}
