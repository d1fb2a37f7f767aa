//! Security groups: create, delete, describe, and authorize / revoke ingress
//! and egress rules by CIDR (IPv4, IPv6), prefix list or referenced group.
//! Rules are kept one source per rule (as DescribeSecurityGroupRules shows
//! them) and grouped back into IpPermissions for DescribeSecurityGroups.

use crate::filters::{listing, strings, tags_value, Filters};
use crate::state::{Partition, Rule, SecurityGroup, Target};
use nimbus_core::{AwsError, RequestContext};
use serde_json::{json, Map, Value};

fn not_found(id: &str) -> AwsError {
    AwsError::new(
        "InvalidGroup.NotFound",
        format!("The security group '{id}' does not exist"),
    )
}

/// A VPC's `default` group: all traffic in from itself, all traffic out.
pub fn default_group(vpc_id: &str) -> SecurityGroup {
    let id = crate::new_id("sg");
    SecurityGroup {
        id: id.clone(),
        name: "default".into(),
        description: "default VPC security group".into(),
        vpc_id: vpc_id.to_string(),
        rules: vec![
            Rule {
                id: crate::new_id("sgr"),
                egress: false,
                protocol: "-1".into(),
                from_port: None,
                to_port: None,
                target: Target::Group {
                    id,
                    owner: String::new(),
                },
                description: None,
            },
            all_out(),
        ],
        tags: Vec::new(),
    }
}

fn all_out() -> Rule {
    Rule {
        id: crate::new_id("sgr"),
        egress: true,
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        target: Target::Cidr("0.0.0.0/0".into()),
        description: None,
    }
}

fn default_vpc(p: &Partition) -> Option<String> {
    p.vpcs.values().find(|v| v.is_default).map(|v| v.id.clone())
}

/// The group an input names by `GroupId`, else by `GroupName` (in the default VPC).
fn find_id(p: &Partition, input: &Value) -> Result<String, AwsError> {
    if let Some(id) = input.get("GroupId").and_then(Value::as_str) {
        return p
            .groups
            .contains_key(id)
            .then(|| id.to_string())
            .ok_or_else(|| not_found(id));
    }
    let Some(name) = input.get("GroupName").and_then(Value::as_str) else {
        return Err(AwsError::new(
            "MissingParameter",
            "The request must contain the parameter groupName or groupId",
        ));
    };
    let vpc = default_vpc(p).unwrap_or_default();
    p.groups
        .values()
        .find(|g| g.name == name && g.vpc_id == vpc)
        .map(|g| g.id.clone())
        .ok_or_else(|| {
            AwsError::new(
                "InvalidGroup.NotFound",
                format!("The security group '{name}' does not exist in default VPC '{vpc}'"),
            )
        })
}

pub fn create(p: &mut Partition, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let name = input
        .get("GroupName")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            AwsError::new(
                "MissingParameter",
                "The request must contain the parameter GroupName",
            )
        })?;
    let description = input
        .get("Description")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            AwsError::new(
                "MissingParameter",
                "The request must contain the parameter GroupDescription",
            )
        })?;
    if name.is_empty() || name.len() > 255 || name.starts_with("sg-") {
        return Err(AwsError::new(
            "InvalidParameterValue",
            format!("Value ({name}) for parameter GroupName is invalid. Group names may not be in the format sg-*"),
        ));
    }
    if name == "default" {
        return Err(AwsError::new(
            "InvalidGroup.Reserved",
            "The security group 'default' is reserved",
        ));
    }
    let vpc_id = match input.get("VpcId").and_then(Value::as_str) {
        Some(v) => {
            if !p.vpcs.contains_key(v) {
                return Err(AwsError::new(
                    "InvalidVpcID.NotFound",
                    format!("The vpc ID '{v}' does not exist"),
                ));
            }
            v.to_string()
        }
        None => default_vpc(p)
            .ok_or_else(|| AwsError::new("VPCIdNotSpecified", "No default VPC for this user"))?,
    };
    if p.groups
        .values()
        .any(|g| g.name == name && g.vpc_id == vpc_id)
    {
        return Err(AwsError::new(
            "InvalidGroup.Duplicate",
            format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
        ));
    }
    let tags = crate::tags::from_specifications(input, "security-group")?;
    let id = crate::new_id("sg");
    p.groups.insert(
        id.clone(),
        SecurityGroup {
            id: id.clone(),
            name: name.to_string(),
            description: description.to_string(),
            vpc_id,
            rules: vec![all_out()],
            tags: tags.clone(),
        },
    );
    let mut out = json!({
        "GroupId": id,
        "SecurityGroupArn": format!("arn:aws:ec2:{}:{}:security-group/{id}", ctx.region, ctx.account_id),
    });
    if !tags.is_empty() {
        out["Tags"] = tags_value(&tags);
    }
    Ok(out)
}

pub fn delete(p: &mut Partition, _ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let id = find_id(p, input)?;
    let group = p.groups.get(&id).ok_or_else(|| not_found(&id))?;
    if group.name == "default" {
        return Err(AwsError::new(
            "CannotDelete",
            format!("the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"),
        ));
    }
    let referenced = p.groups.values().any(|g| {
        g.id != id
            && g.rules
                .iter()
                .any(|r| matches!(&r.target, Target::Group { id: other, .. } if *other == id))
    });
    if referenced {
        return Err(AwsError::new(
            "DependencyViolation",
            format!("resource {id} has a dependent object"),
        ));
    }
    p.groups.remove(&id);
    Ok(json!({"Return": true, "GroupId": id}))
}

fn normalize_protocol(text: &str) -> Result<String, AwsError> {
    let lower = text.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "tcp" | "6" => "tcp".into(),
        "udp" | "17" => "udp".into(),
        "icmp" | "1" => "icmp".into(),
        "icmpv6" | "58" => "icmpv6".into(),
        "-1" | "all" => "-1".into(),
        n if n.parse::<u8>().is_ok() => n.to_string(),
        _ => {
            return Err(AwsError::new(
                "InvalidParameterValue",
                format!("Invalid value '{text}' for IP protocol. Unknown protocol."),
            ))
        }
    })
}

/// The rules an Authorize/Revoke input describes, one per source or destination.
fn rules_of(
    p: &Partition,
    ctx: &RequestContext,
    input: &Value,
    egress: bool,
) -> Result<Vec<Rule>, AwsError> {
    let mut permissions: Vec<Value> = input
        .get("IpPermissions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // The older flat form: one protocol/port range with a CIDR or a source group name.
    if let Some(protocol) = input.get("IpProtocol").and_then(Value::as_str) {
        let mut perm = json!({"IpProtocol": protocol});
        for m in ["FromPort", "ToPort"] {
            if let Some(v) = input.get(m) {
                perm[m] = v.clone();
            }
        }
        if let Some(cidr) = input.get("CidrIp").and_then(Value::as_str) {
            perm["IpRanges"] = json!([{"CidrIp": cidr}]);
        }
        if let Some(name) = input.get("SourceSecurityGroupName").and_then(Value::as_str) {
            perm["UserIdGroupPairs"] = json!([{"GroupName": name}]);
        }
        permissions.push(perm);
    }
    let mut rules = Vec::new();
    for perm in permissions {
        let protocol = normalize_protocol(
            perm.get("IpProtocol")
                .and_then(Value::as_str)
                .unwrap_or("-1"),
        )?;
        let (mut from, mut to) = (
            perm.get("FromPort").and_then(Value::as_i64),
            perm.get("ToPort").and_then(Value::as_i64),
        );
        if protocol == "-1" {
            from = None;
            to = None;
        } else if protocol == "tcp" || protocol == "udp" {
            match (from, to) {
                (Some(f), Some(t)) if (0..=65535).contains(&f) && (0..=65535).contains(&t) && f <= t => {}
                _ => {
                    return Err(AwsError::new(
                        "InvalidParameterValue",
                        "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange",
                    ))
                }
            }
        }
        let mut targets: Vec<(Target, Option<String>)> = Vec::new();
        let list = |m: &str| {
            perm.get(m)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for r in list("IpRanges") {
            let cidr = r.get("CidrIp").and_then(Value::as_str).unwrap_or("");
            if !valid_cidr(cidr, false) {
                return Err(AwsError::new(
                    "InvalidParameterValue",
                    format!("CIDR block {cidr} is malformed"),
                ));
            }
            targets.push((Target::Cidr(cidr.to_string()), description(&r)));
        }
        for r in list("Ipv6Ranges") {
            let cidr = r.get("CidrIpv6").and_then(Value::as_str).unwrap_or("");
            if !valid_cidr(cidr, true) {
                return Err(AwsError::new(
                    "InvalidParameterValue",
                    format!("CIDR block {cidr} is malformed"),
                ));
            }
            targets.push((Target::Cidr6(cidr.to_string()), description(&r)));
        }
        for r in list("PrefixListIds") {
            let id = r
                .get("PrefixListId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            targets.push((Target::PrefixList(id), description(&r)));
        }
        for r in list("UserIdGroupPairs") {
            let id = match (
                r.get("GroupId").and_then(Value::as_str),
                r.get("GroupName").and_then(Value::as_str),
            ) {
                (Some(id), _) => {
                    if !p.groups.contains_key(id) {
                        return Err(not_found(id));
                    }
                    id.to_string()
                }
                (None, Some(name)) => find_id(p, &json!({"GroupName": name}))?,
                (None, None) => {
                    return Err(AwsError::new(
                        "InvalidParameterValue",
                        "A group pair must name a GroupId or GroupName",
                    ))
                }
            };
            let owner = r
                .get("UserId")
                .and_then(Value::as_str)
                .unwrap_or(&ctx.account_id)
                .to_string();
            targets.push((Target::Group { id, owner }, description(&r)));
        }
        if targets.is_empty() {
            return Err(AwsError::new(
                "InvalidParameterValue",
                "The request must contain a CIDR, prefix list or security group as source or destination",
            ));
        }
        for (target, description) in targets {
            rules.push(Rule {
                id: crate::new_id("sgr"),
                egress,
                protocol: protocol.clone(),
                from_port: from,
                to_port: to,
                target,
                description,
            });
        }
    }
    if rules.is_empty() {
        return Err(AwsError::new(
            "MissingParameter",
            "No IpPermissions were specified",
        ));
    }
    Ok(rules)
}

fn description(r: &Value) -> Option<String> {
    r.get("Description")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn valid_cidr(cidr: &str, v6: bool) -> bool {
    let Some((addr, bits)) = cidr.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if v6 {
        addr.parse::<std::net::Ipv6Addr>().is_ok() && bits <= 128
    } else {
        addr.parse::<std::net::Ipv4Addr>().is_ok() && bits <= 32
    }
}

fn describe_target(r: &Rule) -> String {
    let peer = match &r.target {
        Target::Cidr(c) | Target::Cidr6(c) | Target::PrefixList(c) => c.clone(),
        Target::Group { id, owner } => format!("{id}:{owner}"),
    };
    let proto = if r.protocol == "-1" {
        "ALL".to_string()
    } else {
        r.protocol.to_ascii_uppercase()
    };
    format!(
        "peer: {peer}, {proto}, from port: {}, to port: {}, ALLOW",
        r.from_port.map_or("-1".into(), |p| p.to_string()),
        r.to_port.map_or("-1".into(), |p| p.to_string())
    )
}

pub fn authorize(
    p: &mut Partition,
    ctx: &RequestContext,
    input: &Value,
    egress: bool,
) -> Result<Value, AwsError> {
    let id = find_id(p, input)?;
    let mut rules = rules_of(p, ctx, input, egress)?;
    let tags = crate::tags::from_specifications(input, "security-group-rule")?;
    let group = p.groups.get_mut(&id).ok_or_else(|| not_found(&id))?;
    for (i, rule) in rules.iter().enumerate() {
        let twice = rules[..i].iter().any(|r| r.same(rule));
        if twice || group.rules.iter().any(|r| r.same(rule)) {
            return Err(AwsError::new(
                "InvalidPermission.Duplicate",
                format!(
                    "the specified rule \"{}\" already exists",
                    describe_target(rule)
                ),
            ));
        }
    }
    let out: Vec<Value> = rules
        .iter_mut()
        .map(|r| {
            let mut v = rule_value(r, &id, &ctx.account_id);
            if !tags.is_empty() {
                v["Tags"] = tags_value(&tags);
            }
            v
        })
        .collect();
    group.rules.extend(rules);
    Ok(json!({"Return": true, "SecurityGroupRules": out}))
}

pub fn revoke(
    p: &mut Partition,
    ctx: &RequestContext,
    input: &Value,
    egress: bool,
) -> Result<Value, AwsError> {
    let id = find_id(p, input)?;
    let rule_ids = strings(input, "SecurityGroupRuleIds");
    let group = p.groups.get(&id).ok_or_else(|| not_found(&id))?;
    let mut unknown: Vec<Rule> = Vec::new();
    let doomed: Vec<String> = if !rule_ids.is_empty() {
        for rid in &rule_ids {
            if !group
                .rules
                .iter()
                .any(|r| r.id == *rid && r.egress == egress)
            {
                return Err(AwsError::new(
                    "InvalidSecurityGroupRuleId.NotFound",
                    format!("The security group rule ID '{rid}' does not exist"),
                ));
            }
        }
        rule_ids
    } else {
        let wanted = rules_of(p, ctx, input, egress)?;
        let in_default_vpc = p.vpcs.get(&group.vpc_id).is_some_and(|v| v.is_default);
        let mut ids = Vec::new();
        for w in &wanted {
            match group.rules.iter().find(|r| r.same(w)) {
                Some(r) => ids.push(r.id.clone()),
                // In a default VPC, EC2 reports rules it cannot find instead of failing.
                None if in_default_vpc => unknown.push(w.clone()),
                None => {
                    return Err(AwsError::new(
                        "InvalidPermission.NotFound",
                        "The specified rule does not exist in this security group.",
                    ))
                }
            }
        }
        ids
    };
    let group = p.groups.get_mut(&id).ok_or_else(|| not_found(&id))?;
    let revoked: Vec<Value> = group
        .rules
        .iter()
        .filter(|r| doomed.contains(&r.id))
        .map(|r| {
            json!({
                "SecurityGroupRuleId": r.id,
                "GroupId": id,
                "IsEgress": r.egress,
                "IpProtocol": r.protocol,
                "FromPort": r.from_port.unwrap_or(-1),
                "ToPort": r.to_port.unwrap_or(-1),
            })
        })
        .collect();
    group.rules.retain(|r| !doomed.contains(&r.id));
    let mut out = json!({"Return": true, "RevokedSecurityGroupRules": revoked});
    if !unknown.is_empty() {
        out["UnknownIpPermissions"] = permissions(&unknown, egress, &ctx.account_id);
    }
    Ok(out)
}

fn rule_value(r: &Rule, group_id: &str, owner: &str) -> Value {
    let mut v = json!({
        "SecurityGroupRuleId": r.id,
        "GroupId": group_id,
        "GroupOwnerId": owner,
        "IsEgress": r.egress,
        "IpProtocol": r.protocol,
        "FromPort": r.from_port.unwrap_or(-1),
        "ToPort": r.to_port.unwrap_or(-1),
        "SecurityGroupRuleArn": format!("arn:aws:ec2:::security-group-rule/{}", r.id),
        "Tags": [],
    });
    match &r.target {
        Target::Cidr(c) => v["CidrIpv4"] = json!(c),
        Target::Cidr6(c) => v["CidrIpv6"] = json!(c),
        Target::PrefixList(id) => v["PrefixListId"] = json!(id),
        Target::Group { id, owner: o } => {
            let user = if o.is_empty() { owner } else { o.as_str() };
            v["ReferencedGroupInfo"] = json!({"GroupId": id, "UserId": user});
        }
    }
    if let Some(d) = &r.description {
        v["Description"] = json!(d);
    }
    v
}

/// Rules grouped by protocol and port range into IpPermissions.
fn permissions(rules: &[Rule], egress: bool, owner: &str) -> Value {
    // (protocol, from, to, the permission being built)
    type Permission = (String, Option<i64>, Option<i64>, Map<String, Value>);
    let mut out: Vec<Permission> = Vec::new();
    for r in rules.iter().filter(|r| r.egress == egress) {
        let pos = match out
            .iter()
            .position(|(p, f, t, _)| *p == r.protocol && *f == r.from_port && *t == r.to_port)
        {
            Some(pos) => pos,
            None => {
                let mut m = Map::new();
                m.insert("IpProtocol".into(), json!(r.protocol));
                if let (Some(f), Some(t)) = (r.from_port, r.to_port) {
                    m.insert("FromPort".into(), json!(f));
                    m.insert("ToPort".into(), json!(t));
                }
                for list in [
                    "IpRanges",
                    "Ipv6Ranges",
                    "PrefixListIds",
                    "UserIdGroupPairs",
                ] {
                    m.insert(list.into(), json!([]));
                }
                out.push((r.protocol.clone(), r.from_port, r.to_port, m));
                out.len() - 1
            }
        };
        let Some((_, _, _, m)) = out.get_mut(pos) else {
            continue;
        };
        let (list, mut entry) = match &r.target {
            Target::Cidr(c) => ("IpRanges", json!({"CidrIp": c})),
            Target::Cidr6(c) => ("Ipv6Ranges", json!({"CidrIpv6": c})),
            Target::PrefixList(id) => ("PrefixListIds", json!({"PrefixListId": id})),
            Target::Group { id, owner: o } => (
                "UserIdGroupPairs",
                json!({"GroupId": id, "UserId": if o.is_empty() { owner } else { o.as_str() }}),
            ),
        };
        if let Some(d) = &r.description {
            entry["Description"] = json!(d);
        }
        if let Some(Value::Array(items)) = m.get_mut(list) {
            items.push(entry);
        }
    }
    Value::Array(
        out.into_iter()
            .map(|(_, _, _, m)| Value::Object(m))
            .collect(),
    )
}

fn group_value(g: &SecurityGroup, ctx: &RequestContext) -> Value {
    json!({
        "GroupId": g.id,
        "GroupName": g.name,
        "Description": g.description,
        "VpcId": g.vpc_id,
        "OwnerId": ctx.account_id,
        "SecurityGroupArn": format!("arn:aws:ec2:{}:{}:security-group/{}", ctx.region, ctx.account_id, g.id),
        "IpPermissions": permissions(&g.rules, false, &ctx.account_id),
        "IpPermissionsEgress": permissions(&g.rules, true, &ctx.account_id),
        "Tags": tags_value(&g.tags),
    })
}

fn rule_fields(g: &SecurityGroup, egress: bool, f: &str) -> Vec<String> {
    let rules = g.rules.iter().filter(|r| r.egress == egress);
    match f {
        "cidr" => rules
            .filter_map(|r| match &r.target {
                Target::Cidr(c) | Target::Cidr6(c) => Some(c.clone()),
                _ => None,
            })
            .collect(),
        "from-port" => rules
            .map(|r| r.from_port.unwrap_or(-1).to_string())
            .collect(),
        "to-port" => rules.map(|r| r.to_port.unwrap_or(-1).to_string()).collect(),
        "protocol" => rules.map(|r| r.protocol.clone()).collect(),
        "group-id" => rules
            .filter_map(|r| match &r.target {
                Target::Group { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub fn describe(p: &Partition, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let ids = strings(input, "GroupIds");
    let names = strings(input, "GroupNames");
    for id in &ids {
        if !p.groups.contains_key(id) {
            return Err(not_found(id));
        }
    }
    let vpc = default_vpc(p).unwrap_or_default();
    for name in &names {
        if !p
            .groups
            .values()
            .any(|g| g.name == *name && g.vpc_id == vpc)
        {
            return Err(AwsError::new(
                "InvalidGroup.NotFound",
                format!("The security group '{name}' does not exist in default VPC '{vpc}'"),
            ));
        }
    }
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for g in p.groups.values() {
        if !ids.is_empty() && !ids.contains(&g.id) {
            continue;
        }
        if !(names.is_empty() || names.contains(&g.name) && g.vpc_id == vpc) {
            continue;
        }
        let ok = filters.matches(&g.tags, |f| match f {
            "group-id" => Some(vec![g.id.clone()]),
            "group-name" => Some(vec![g.name.clone()]),
            "description" => Some(vec![g.description.clone()]),
            "vpc-id" => Some(vec![g.vpc_id.clone()]),
            "owner-id" => Some(vec![ctx.account_id.clone()]),
            other => other
                .strip_prefix("egress.ip-permission.")
                .map(|rest| rule_fields(g, true, rest))
                .or_else(|| {
                    other
                        .strip_prefix("ip-permission.")
                        .map(|rest| rule_fields(g, false, rest))
                }),
        })?;
        if ok {
            out.push(group_value(g, ctx));
        }
    }
    listing("SecurityGroups", out, input, None)
}

pub fn describe_rules(
    p: &Partition,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let ids = strings(input, "SecurityGroupRuleIds");
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for g in p.groups.values() {
        for r in &g.rules {
            if !ids.is_empty() && !ids.contains(&r.id) {
                continue;
            }
            let ok = filters.matches(&[], |f| match f {
                "group-id" => Some(vec![g.id.clone()]),
                "security-group-rule-id" => Some(vec![r.id.clone()]),
                _ => None,
            })?;
            if ok {
                out.push(rule_value(r, &g.id, &ctx.account_id));
            }
        }
    }
    listing("SecurityGroupRules", out, input, None)
}
