//! S3's meaning of a "public" policy (Block Public Access,
//! GetBucketPolicyStatus): this module owns deciding whether some Allow
//! statement reaches everyone without a condition that pins the grant to
//! fixed callers or sources.

use crate::condition::{Condition, Kind, SetQualifier};
use crate::document::Effect;
use crate::ip::Cidr;
use crate::Policy;

/// Keys that, compared with fixed values, limit a grant to known callers
/// (S3's list, plus the principal-scoping keys AWS added later).
const LIMITING_KEYS: &[&str] = &[
    "aws:SourceArn",
    "aws:SourceVpc",
    "aws:SourceVpce",
    "aws:SourceOwner",
    "aws:SourceAccount",
    "aws:PrincipalAccount",
    "aws:PrincipalArn",
    "aws:PrincipalOrgID",
    "aws:userid",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:DataAccessPointArn",
    "s3:DataAccessPointAccount",
];

pub(crate) fn is_public(policy: &Policy) -> bool {
    policy.statements.iter().any(|s| {
        let to_everyone = match &s.principal {
            None => false,
            // "Everyone except ..." is still everyone else.
            Some(p) if p.negated => true,
            Some(p) => p.everyone || p.aws.iter().any(|a| a == "*"),
        };
        s.effect == Effect::Allow && to_everyone && !s.conditions.iter().any(limits_access)
    })
}

/// Whether one condition confines the statement to fixed values of a key
/// that identifies the caller or its network.
fn limits_access(c: &Condition) -> bool {
    // A condition that can hold while the key is absent (IfExists, the vacuous
    // ForAllValues) or that excludes rather than includes limits nothing.
    if c.if_exists || c.negated || c.qualifier == SetQualifier::ForAllValues || c.values.is_empty()
    {
        return false;
    }
    // Fixed means no wildcard and no policy variable.
    let fixed = c
        .values
        .iter()
        .all(|v| !v.contains(['*', '?']) && !v.contains("${"));
    if c.key.eq_ignore_ascii_case("aws:SourceIp") {
        // Nimbus's line for a "set of CIDRs": blocks wider than a /8 (IPv4)
        // or /32 (IPv6) reach too much of the internet to count.
        return c.kind == Kind::Ip
            && c.values.iter().all(|v| {
                Cidr::parse(v).is_some_and(|n| n.prefix >= if n.addr.is_ipv4() { 8 } else { 32 })
            });
    }
    let limiting_key = LIMITING_KEYS.iter().any(|k| k.eq_ignore_ascii_case(&c.key));
    let equality = matches!(
        c.kind,
        Kind::StringEquals | Kind::StringEqualsIgnoreCase | Kind::StringLike | Kind::Arn
    );
    limiting_key && equality && fixed
}
