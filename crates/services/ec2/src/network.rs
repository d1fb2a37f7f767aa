//! Regions, availability zones, VPCs and subnets. A partition starts with the
//! default VPC (172.31.0.0/16), one default subnet per zone (a /20 each, as
//! AWS carves them) and the VPC's default security group.

use crate::filters::{listing, strings, tags_value, Filters};
use crate::geography;
use crate::groups;
use crate::state::{Partition, Subnet, Vpc};
use nimbus_core::{AwsError, RequestContext};
use serde_json::{json, Value};

pub fn new_partition(region: &str) -> Partition {
    let mut p = Partition::default();
    let vpc_id = crate::new_id("vpc");
    p.vpcs.insert(
        vpc_id.clone(),
        Vpc {
            id: vpc_id.clone(),
            cidr: "172.31.0.0/16".into(),
            is_default: true,
            dhcp_options_id: crate::new_id("dopt"),
            tags: Vec::new(),
        },
    );
    for (i, (zone, zone_id)) in geography::zones(region).into_iter().enumerate() {
        let id = crate::new_id("subnet");
        p.subnets.insert(
            id.clone(),
            Subnet {
                id,
                vpc_id: vpc_id.clone(),
                cidr: format!("172.31.{}.0/20", i * 16),
                zone,
                zone_id,
                default_for_az: true,
                map_public_ip: true,
                tags: Vec::new(),
            },
        );
    }
    let group = groups::default_group(&vpc_id);
    p.groups.insert(group.id.clone(), group);
    p
}

pub fn describe_regions(input: &Value) -> Result<Value, AwsError> {
    let names = strings(input, "RegionNames");
    for name in &names {
        if !geography::is_region(name) {
            return Err(AwsError::new(
                "InvalidParameterValue",
                format!("Invalid region: {name}"),
            ));
        }
    }
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for region in geography::regions() {
        if !names.is_empty() && !names.iter().any(|n| n == region) {
            continue;
        }
        let endpoint = format!("ec2.{region}.amazonaws.com");
        let ok = filters.matches(&[], |f| match f {
            "region-name" => Some(vec![region.to_string()]),
            "endpoint" => Some(vec![endpoint.clone()]),
            "opt-in-status" => Some(vec!["opt-in-not-required".to_string()]),
            _ => None,
        })?;
        if ok {
            out.push(json!({
                "RegionName": region,
                "Endpoint": endpoint,
                "OptInStatus": "opt-in-not-required",
            }));
        }
    }
    Ok(json!({"Regions": out}))
}

pub fn describe_availability_zones(ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let names = strings(input, "ZoneNames");
    let ids = strings(input, "ZoneIds");
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for (zone, zone_id) in geography::zones(&ctx.region) {
        if !names.is_empty() && !names.contains(&zone) || !ids.is_empty() && !ids.contains(&zone_id)
        {
            continue;
        }
        let ok = filters.matches(&[], |f| match f {
            "zone-name" => Some(vec![zone.clone()]),
            "zone-id" => Some(vec![zone_id.clone()]),
            "region-name" => Some(vec![ctx.region.clone()]),
            "state" => Some(vec!["available".to_string()]),
            "zone-type" => Some(vec!["availability-zone".to_string()]),
            "group-name" | "opt-in-status" => Some(vec![if f == "group-name" {
                ctx.region.clone()
            } else {
                "opt-in-not-required".into()
            }]),
            _ => None,
        })?;
        if ok {
            out.push(json!({
                "ZoneName": zone,
                "ZoneId": zone_id,
                "State": "available",
                "RegionName": ctx.region,
                "ZoneType": "availability-zone",
                "OptInStatus": "opt-in-not-required",
                "GroupName": ctx.region,
                "NetworkBorderGroup": ctx.region,
                "Messages": [],
            }));
        }
    }
    for name in names.iter().chain(ids.iter()) {
        if !out
            .iter()
            .any(|z| z["ZoneName"] == json!(name) || z["ZoneId"] == json!(name))
        {
            return Err(AwsError::new(
                "InvalidParameterValue",
                format!("The zone '{name}' does not exist."),
            ));
        }
    }
    Ok(json!({"AvailabilityZones": out}))
}

pub fn vpc_value(vpc: &Vpc, owner: &str) -> Value {
    json!({
        "VpcId": vpc.id,
        "CidrBlock": vpc.cidr,
        "State": "available",
        "DhcpOptionsId": vpc.dhcp_options_id,
        "InstanceTenancy": "default",
        "IsDefault": vpc.is_default,
        "OwnerId": owner,
        "CidrBlockAssociationSet": [{
            "AssociationId": format!("vpc-cidr-assoc-{}", vpc.id.trim_start_matches("vpc-")),
            "CidrBlock": vpc.cidr,
            "CidrBlockState": {"State": "associated"},
        }],
        "Tags": tags_value(&vpc.tags),
    })
}

pub fn describe_vpcs(
    p: &Partition,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let ids = strings(input, "VpcIds");
    for id in &ids {
        if !p.vpcs.contains_key(id) {
            return Err(AwsError::new(
                "InvalidVpcID.NotFound",
                format!("The vpc ID '{id}' does not exist"),
            ));
        }
    }
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for vpc in p.vpcs.values() {
        if !ids.is_empty() && !ids.contains(&vpc.id) {
            continue;
        }
        let ok = filters.matches(&vpc.tags, |f| match f {
            "vpc-id" => Some(vec![vpc.id.clone()]),
            "cidr" | "cidr-block-association.cidr-block" => Some(vec![vpc.cidr.clone()]),
            "is-default" | "isDefault" => Some(vec![vpc.is_default.to_string()]),
            "state" => Some(vec!["available".to_string()]),
            "owner-id" => Some(vec![ctx.account_id.clone()]),
            "dhcp-options-id" => Some(vec![vpc.dhcp_options_id.clone()]),
            _ => None,
        })?;
        if ok {
            out.push(vpc_value(vpc, &ctx.account_id));
        }
    }
    listing("Vpcs", out, input, None)
}

/// Addresses AWS leaves free in a subnet: all but the network, broadcast and three reserved.
fn available_addresses(cidr: &str) -> u64 {
    let bits = cidr
        .split('/')
        .nth(1)
        .and_then(|b| b.parse::<u32>().ok())
        .unwrap_or(32)
        .min(32);
    (1u64 << (32 - bits)).saturating_sub(5)
}

pub fn subnet_value(s: &Subnet, owner: &str, region: &str) -> Value {
    json!({
        "SubnetId": s.id,
        "SubnetArn": format!("arn:aws:ec2:{region}:{owner}:subnet/{}", s.id),
        "VpcId": s.vpc_id,
        "CidrBlock": s.cidr,
        "AvailabilityZone": s.zone,
        "AvailabilityZoneId": s.zone_id,
        "AvailableIpAddressCount": available_addresses(&s.cidr),
        "DefaultForAz": s.default_for_az,
        "MapPublicIpOnLaunch": s.map_public_ip,
        "State": "available",
        "OwnerId": owner,
        "AssignIpv6AddressOnCreation": false,
        "Ipv6CidrBlockAssociationSet": [],
        "Tags": tags_value(&s.tags),
    })
}

pub fn describe_subnets(
    p: &Partition,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let ids = strings(input, "SubnetIds");
    for id in &ids {
        if !p.subnets.contains_key(id) {
            return Err(AwsError::new(
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{id}' does not exist"),
            ));
        }
    }
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for s in p.subnets.values() {
        if !ids.is_empty() && !ids.contains(&s.id) {
            continue;
        }
        let ok = filters.matches(&s.tags, |f| match f {
            "subnet-id" => Some(vec![s.id.clone()]),
            "vpc-id" => Some(vec![s.vpc_id.clone()]),
            "availability-zone" | "availabilityZone" => Some(vec![s.zone.clone()]),
            "availability-zone-id" => Some(vec![s.zone_id.clone()]),
            "cidr-block" | "cidr" | "cidrBlock" => Some(vec![s.cidr.clone()]),
            "default-for-az" | "defaultForAz" => Some(vec![s.default_for_az.to_string()]),
            "map-public-ip-on-launch" => Some(vec![s.map_public_ip.to_string()]),
            "state" => Some(vec!["available".to_string()]),
            "owner-id" => Some(vec![ctx.account_id.clone()]),
            _ => None,
        })?;
        if ok {
            out.push(subnet_value(s, &ctx.account_id, &ctx.region));
        }
    }
    // Zone order, as AWS lists default subnets.
    out.sort_by(|a, b| {
        a["AvailabilityZone"]
            .as_str()
            .cmp(&b["AvailabilityZone"].as_str())
    });
    listing("Subnets", out, input, None)
}
