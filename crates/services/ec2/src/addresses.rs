//! Elastic IPs: AllocateAddress draws an address from nimbus's pool (a
//! loopback range by default, so no address ever leads off this machine),
//! Associate/Disassociate move it between instances (the instance's
//! PublicIpAddress follows), ReleaseAddress returns it (letting go of its
//! instance first in a default VPC), DescribeAddresses
//! lists them. The records change here; the controller points the forwarder.

use crate::filters::{strings, tags_value, Filters};
use crate::instances::{find_ids, SHUTTING_DOWN, TERMINATED};
use crate::state::{Address, Partition};
use crate::{new_id, tags};
use nimbus_core::{AwsError, RequestContext};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// An address change the forwarder must follow: (public ip, new target or none).
pub type Repoint = (Ipv4Addr, Option<Ipv4Addr>);

fn by_public_ip<'p>(p: &'p Partition, ip: &str) -> Result<&'p Address, AwsError> {
    p.addresses
        .values()
        .find(|a| a.public_ip == ip)
        .ok_or_else(|| {
            AwsError::new(
                "InvalidAddress.NotFound",
                format!("Address '{ip}' not found."),
            )
        })
}

fn by_allocation<'p>(p: &'p Partition, id: &str) -> Result<&'p Address, AwsError> {
    p.addresses.get(id).ok_or_else(|| {
        AwsError::new(
            "InvalidAllocationID.NotFound",
            format!("The allocation ID '{id}' does not exist"),
        )
    })
}

/// The address a call names by AllocationId or PublicIp.
fn named(p: &Partition, input: &Value) -> Result<String, AwsError> {
    if let Some(id) = input.get("AllocationId").and_then(Value::as_str) {
        return Ok(by_allocation(p, id)?.allocation_id.clone());
    }
    if let Some(ip) = input.get("PublicIp").and_then(Value::as_str) {
        return Ok(by_public_ip(p, ip)?.allocation_id.clone());
    }
    Err(AwsError::new(
        "MissingParameter",
        "Either public IP or allocation id must be specified",
    ))
}

pub fn allocate(
    p: &mut Partition,
    ctx: &RequestContext,
    input: &Value,
    pool: (Ipv4Addr, u8),
    taken: &mut HashSet<Ipv4Addr>,
) -> Result<Value, AwsError> {
    let tags = tags::from_specifications(input, "elastic-ip")?;
    let ip = match input.get("Address").and_then(Value::as_str) {
        Some(text) => {
            let ip: Ipv4Addr = text.parse().map_err(|_| {
                AwsError::new(
                    "InvalidParameterValue",
                    format!("Invalid IPv4 address: {text}"),
                )
            })?;
            if !in_pool(ip, pool) || taken.contains(&ip) {
                return Err(AwsError::new(
                    "InvalidAddress.NotFound",
                    format!("The address '{ip}' is not available to allocate"),
                ));
            }
            ip
        }
        None => {
            let base = u32::from(pool.0);
            let size = 1u32 << (32 - u32::from(pool.1));
            (1..size.saturating_sub(1))
                .map(|o| Ipv4Addr::from(base + o))
                .find(|ip| !taken.contains(ip))
                .ok_or_else(|| {
                    AwsError::new(
                        "AddressLimitExceeded",
                        "The maximum number of addresses has been reached.",
                    )
                })?
        }
    };
    taken.insert(ip);
    let id = new_id("eipalloc");
    p.addresses.insert(
        id.clone(),
        Address {
            allocation_id: id.clone(),
            public_ip: ip.to_string(),
            association: None,
            tags,
        },
    );
    Ok(json!({
        "PublicIp": ip.to_string(),
        "AllocationId": id,
        "Domain": "vpc",
        "PublicIpv4Pool": "amazon",
        "NetworkBorderGroup": ctx.region,
    }))
}

fn in_pool(ip: Ipv4Addr, pool: (Ipv4Addr, u8)) -> bool {
    let mask = if pool.1 == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(pool.1))
    };
    u32::from(ip) & mask == u32::from(pool.0) & mask
}

pub fn associate(p: &mut Partition, input: &Value) -> Result<(Value, Vec<Repoint>), AwsError> {
    let allocation = named(p, input)?;
    let instance_id = match (
        input.get("InstanceId").and_then(Value::as_str),
        input.get("NetworkInterfaceId").and_then(Value::as_str),
    ) {
        (Some(id), _) => id.to_string(),
        (None, Some(eni)) => p
            .instances
            .values()
            .find(|i| i.eni_id == eni && i.state != TERMINATED)
            .map(|i| i.id.clone())
            .ok_or_else(|| {
                AwsError::new(
                    "InvalidNetworkInterfaceID.NotFound",
                    format!("The networkInterface ID '{eni}' does not exist"),
                )
            })?,
        (None, None) => {
            return Err(AwsError::new(
                "MissingParameter",
                "Either instance ID or network interface id must be specified",
            ))
        }
    };
    find_ids(p, std::slice::from_ref(&instance_id))?;
    let instance = &p.instances[&instance_id];
    if instance.state == TERMINATED || instance.state == SHUTTING_DOWN {
        return Err(AwsError::new(
            "IncorrectInstanceState",
            format!("The instance '{instance_id}' is not in a valid state for this operation."),
        ));
    }
    let private_ip = instance.private_ip.clone();
    let allow = input
        .get("AllowReassociation")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let current = p.addresses[&allocation].association.clone();
    if let Some((_, other)) = &current {
        if *other != instance_id && !allow {
            return Err(AwsError::new(
                "Resource.AlreadyAssociated",
                format!(
                    "resource {allocation} is already associated with associate-id {}",
                    current.as_ref().map(|c| c.0.as_str()).unwrap_or("")
                ),
            ));
        }
    }
    let mut repoints = Vec::new();
    // The instance's previous address (if another) lets go, as its one public IP moves.
    let previous: Vec<String> = p
        .addresses
        .values()
        .filter(|a| a.allocation_id != allocation)
        .filter(|a| {
            a.association
                .as_ref()
                .is_some_and(|(_, i)| *i == instance_id)
        })
        .map(|a| a.allocation_id.clone())
        .collect();
    for id in previous {
        if let Some(a) = p.addresses.get_mut(&id) {
            a.association = None;
            if let Ok(ip) = a.public_ip.parse() {
                repoints.push((ip, None));
            }
        }
    }
    // The instance the address leaves (if any) no longer has a public IP.
    if let Some((_, other)) = &current {
        if let Some(i) = p.instances.get_mut(other) {
            i.public_ip = None;
        }
    }
    let association_id = new_id("eipassoc");
    let public_ip = p.addresses[&allocation].public_ip.clone();
    if let Some(a) = p.addresses.get_mut(&allocation) {
        a.association = Some((association_id.clone(), instance_id.clone()));
    }
    if let Some(i) = p.instances.get_mut(&instance_id) {
        i.public_ip = Some(public_ip.clone());
    }
    if let (Ok(ip), Ok(target)) = (public_ip.parse(), private_ip.parse()) {
        repoints.push((ip, Some(target)));
    }
    Ok((json!({ "AssociationId": association_id }), repoints))
}

/// Lets an address go of its instance; returns the repoint.
fn release_association(p: &mut Partition, allocation: &str) -> Option<Repoint> {
    let a = p.addresses.get_mut(allocation)?;
    let (_, instance) = a.association.take()?;
    if let Some(i) = p.instances.get_mut(&instance) {
        i.public_ip = None;
    }
    a.public_ip.parse().ok().map(|ip| (ip, None))
}

pub fn disassociate(p: &mut Partition, input: &Value) -> Result<(Value, Vec<Repoint>), AwsError> {
    let allocation = match input.get("AssociationId").and_then(Value::as_str) {
        Some(assoc) => p
            .addresses
            .values()
            .find(|a| a.association.as_ref().is_some_and(|(id, _)| id == assoc))
            .map(|a| a.allocation_id.clone())
            .ok_or_else(|| {
                AwsError::new(
                    "InvalidAssociationID.NotFound",
                    format!("The association ID '{assoc}' does not exist"),
                )
            })?,
        None => named(p, input)?,
    };
    Ok((
        json!({}),
        release_association(p, &allocation).into_iter().collect(),
    ))
}

/// ReleaseAddress. In a default VPC an associated address is let go of first (as
/// EC2 documents); in any other VPC that is InvalidIPAddress.InUse.
pub fn release(p: &mut Partition, input: &Value) -> Result<Ipv4Addr, AwsError> {
    let allocation = named(p, input)?;
    let address = &p.addresses[&allocation];
    if let Some((_, instance)) = &address.association {
        let default_vpc = p
            .instances
            .get(instance)
            .and_then(|i| p.vpcs.get(&i.vpc_id))
            .is_some_and(|v| v.is_default);
        if !default_vpc {
            return Err(AwsError::new(
                "InvalidIPAddress.InUse",
                format!("Address {} is in use.", address.public_ip),
            ));
        }
        release_association(p, &allocation);
    }
    let address = &p.addresses[&allocation];
    let ip = address
        .public_ip
        .parse()
        .map_err(|_| AwsError::internal("unreadable elastic IP"))?;
    p.addresses.remove(&allocation);
    Ok(ip)
}

/// Addresses of an instance that ends (terminate): they stay allocated, unassociated.
pub fn drop_instance(p: &mut Partition, instance_id: &str) -> Vec<Repoint> {
    let ids: Vec<String> = p
        .addresses
        .values()
        .filter(|a| {
            a.association
                .as_ref()
                .is_some_and(|(_, i)| i == instance_id)
        })
        .map(|a| a.allocation_id.clone())
        .collect();
    ids.iter()
        .filter_map(|id| release_association(p, id))
        .collect()
}

pub fn describe(p: &Partition, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let ips = strings(input, "PublicIps");
    let ids = strings(input, "AllocationIds");
    for ip in &ips {
        by_public_ip(p, ip)?;
    }
    for id in &ids {
        by_allocation(p, id)?;
    }
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for a in p.addresses.values() {
        if !ips.is_empty() && !ips.contains(&a.public_ip) {
            continue;
        }
        if !ids.is_empty() && !ids.contains(&a.allocation_id) {
            continue;
        }
        let instance = a.association.as_ref().and_then(|(_, i)| p.instances.get(i));
        let ok = filters.matches(&a.tags, |f| match f {
            "allocation-id" => Some(vec![a.allocation_id.clone()]),
            "public-ip" => Some(vec![a.public_ip.clone()]),
            "domain" => Some(vec!["vpc".into()]),
            "association-id" => Some(a.association.iter().map(|x| x.0.clone()).collect()),
            "instance-id" => Some(a.association.iter().map(|x| x.1.clone()).collect()),
            "network-interface-id" => Some(instance.iter().map(|i| i.eni_id.clone()).collect()),
            "private-ip-address" => Some(instance.iter().map(|i| i.private_ip.clone()).collect()),
            "network-border-group" => Some(vec![ctx.region.clone()]),
            "public-ipv4-pool" => Some(vec!["amazon".into()]),
            _ => None,
        })?;
        if !ok {
            continue;
        }
        let mut v = json!({
            "PublicIp": a.public_ip,
            "AllocationId": a.allocation_id,
            "Domain": "vpc",
            "PublicIpv4Pool": "amazon",
            "NetworkBorderGroup": ctx.region,
            "Tags": tags_value(&a.tags),
        });
        if let (Some((assoc, instance_id)), Some(i)) = (&a.association, instance) {
            v["AssociationId"] = json!(assoc);
            v["InstanceId"] = json!(instance_id);
            v["NetworkInterfaceId"] = json!(i.eni_id);
            v["NetworkInterfaceOwnerId"] = json!(i.owner);
            v["PrivateIpAddress"] = json!(i.private_ip);
            v["SubnetId"] = json!(i.subnet_id);
        }
        out.push(v);
    }
    Ok(json!({ "Addresses": out }))
}
