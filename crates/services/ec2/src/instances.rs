//! Instances as the EC2 API sees them: RunInstances' validation and
//! placement (subnet, private address, groups, root volume), the state
//! machine of Start/Stop/Reboot/Terminate with AWS's state-change answers,
//! DescribeInstances / DescribeInstanceStatus with filters and pages,
//! instance attributes, and the views other parts need (the metadata service,
//! the runtime's launch spec). The records change here; the machines behind
//! them are started and stopped by `controller`.

use crate::filters::{listing, page, strings, tags_value, Filters};
use crate::state::{Instance, MetadataOptions, Partition, Volume, VolumeAttachment};
use crate::{instance_types, new_id, tags};
use base64::Engine as _;
use nimbus_core::{AwsError, RequestContext};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::Ipv4Addr;

pub const PENDING: &str = "pending";
pub const RUNNING: &str = "running";
pub const STOPPING: &str = "stopping";
pub const STOPPED: &str = "stopped";
pub const SHUTTING_DOWN: &str = "shutting-down";
pub const TERMINATED: &str = "terminated";
pub const ROOT_DEVICE: &str = "/dev/xvda";
const MAX_PER_CALL: i64 = 100;
const USER_DATA_LIMIT: usize = 16 * 1024;

pub fn state_code(state: &str) -> i64 {
    match state {
        PENDING => 0,
        RUNNING => 16,
        SHUTTING_DOWN => 32,
        TERMINATED => 48,
        STOPPING => 64,
        _ => 80,
    }
}

fn state_value(state: &str) -> Value {
    json!({"Code": state_code(state), "Name": state})
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidParameterValue", message)
}

/// `prefix-` and 8 or 17 lowercase hex digits: EC2's id forms.
pub fn well_formed(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// The named instances, or EC2's error for malformed or unknown ids.
pub fn find_ids(p: &Partition, ids: &[String]) -> Result<(), AwsError> {
    for id in ids {
        if !well_formed(id, "i") {
            return Err(AwsError::new(
                "InvalidInstanceID.Malformed",
                format!("Invalid id: \"{id}\""),
            ));
        }
    }
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !p.instances.contains_key(id.as_str()))
        .map(String::as_str)
        .collect();
    match missing.len() {
        0 => Ok(()),
        1 => Err(AwsError::new(
            "InvalidInstanceID.NotFound",
            format!("The instance ID '{}' does not exist", missing[0]),
        )),
        _ => Err(AwsError::new(
            "InvalidInstanceID.NotFound",
            format!("The instance IDs '{}' do not exist", missing.join(", ")),
        )),
    }
}

fn instance_ids(input: &Value) -> Result<Vec<String>, AwsError> {
    let ids = strings(input, "InstanceIds");
    if ids.is_empty() {
        return Err(AwsError::new(
            "MissingParameter",
            "The request must contain the parameter InstanceId",
        ));
    }
    Ok(ids)
}

/// Host name of a private address in EC2's form.
pub fn host_name(ip: &str) -> String {
    format!("ip-{}", ip.replace('.', "-"))
}

pub fn private_dns(ip: &str, region: &str) -> String {
    if region == "us-east-1" {
        format!("{}.ec2.internal", host_name(ip))
    } else {
        format!("{}.{region}.compute.internal", host_name(ip))
    }
}

/// The public DNS name EC2 gives a public address.
pub fn public_dns(ip: &str, region: &str) -> String {
    let dashed = ip.replace('.', "-");
    if region == "us-east-1" {
        format!("ec2-{dashed}.compute-1.amazonaws.com")
    } else {
        format!("ec2-{dashed}.{region}.compute.amazonaws.com")
    }
}

pub fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = cidr.split_once('/')?;
    Some((ip.parse().ok()?, len.parse().ok()?))
}

/// The first free address of a subnet (AWS keeps the first four and the last).
fn allocate_ip(cidr: &str, taken: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let (base, len) = parse_cidr(cidr)?;
    let size = 1u32 << (32 - u32::from(len));
    let base = u32::from(base);
    (4..size.saturating_sub(1))
        .map(|offset| Ipv4Addr::from(base + offset))
        .find(|ip| !taken.contains(ip))
}

fn in_cidr(ip: Ipv4Addr, cidr: &str) -> bool {
    parse_cidr(cidr).is_some_and(|(base, len)| {
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        };
        u32::from(ip) & mask == u32::from(base) & mask
    })
}

/// What RunInstances decided, before any machine starts.
pub struct Launch {
    pub instances: Vec<Instance>,
    pub volumes: Vec<Volume>,
    pub reservation_id: String,
}

/// The instance profile a RunInstances names, as IAM resolved it (arn, id).
pub type Profile = Option<(String, String)>;

/// Validates a RunInstances and places its instances. `taken`: every private
/// address in use on this host. Changes nothing; `record_launch` does.
pub fn plan_run(
    p: &Partition,
    ctx: &RequestContext,
    input: &Value,
    taken: &HashSet<Ipv4Addr>,
    profile: Profile,
) -> Result<Launch, AwsError> {
    let min = input.get("MinCount").and_then(Value::as_i64).unwrap_or(1);
    let max = input.get("MaxCount").and_then(Value::as_i64).unwrap_or(min);
    if min < 1 {
        return Err(invalid(format!(
            "Value ({min}) for parameter minCount is invalid. Expected a positive integer."
        )));
    }
    if max < min {
        return Err(invalid(format!(
            "Value ({max}) for parameter maxCount is invalid. Expected a value greater than or equal to minCount ({min})."
        )));
    }
    if min > MAX_PER_CALL {
        return Err(AwsError::new(
            "InstanceLimitExceeded",
            format!("You have requested more instances ({min}) than your current instance limit of {MAX_PER_CALL} allows for the specified instance type."),
        ));
    }
    let count = max.min(MAX_PER_CALL) as usize;

    let image_id = input.get("ImageId").and_then(Value::as_str).unwrap_or("");
    if image_id.is_empty() {
        return Err(AwsError::new(
            "MissingParameter",
            "The request must contain the parameter ImageId",
        ));
    }
    if !well_formed(image_id, "ami") {
        return Err(AwsError::new(
            "InvalidAMIID.Malformed",
            format!("Invalid id: \"{image_id}\" (expecting \"ami-...\")"),
        ));
    }
    let image_layers = crate::images::layers_for_launch(p, ctx, image_id)?;
    let instance_type = input
        .get("InstanceType")
        .and_then(Value::as_str)
        .unwrap_or("t2.micro")
        .to_string();
    if instance_types::limits(&instance_type).is_none() {
        return Err(invalid(format!(
            "Invalid value '{instance_type}' for InstanceType."
        )));
    }
    let key_name = input
        .get("KeyName")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(k) = &key_name {
        if !p.key_pairs.contains_key(k) {
            return Err(AwsError::new(
                "InvalidKeyPair.NotFound",
                format!("The key pair '{k}' does not exist"),
            ));
        }
    }

    // Subnet: named, or the default subnet of the named zone, or the first default one.
    let zone = input
        .pointer("/Placement/AvailabilityZone")
        .and_then(Value::as_str);
    let subnet = match input.get("SubnetId").and_then(Value::as_str) {
        Some(id) => p.subnets.get(id).ok_or_else(|| {
            AwsError::new(
                "InvalidSubnetID.NotFound",
                format!("The subnet ID '{id}' does not exist"),
            )
        })?,
        None => {
            let mut defaults: Vec<_> = p.subnets.values().filter(|s| s.default_for_az).collect();
            defaults.sort_by(|a, b| a.zone.cmp(&b.zone));
            match zone {
                Some(z) => defaults.into_iter().find(|s| s.zone == z).ok_or_else(|| {
                    invalid(format!("Invalid availability zone: [{z}]"))
                })?,
                None => defaults.into_iter().next().ok_or_else(|| {
                    AwsError::new(
                        "VPCIdNotSpecified",
                        "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.",
                    )
                })?,
            }
        }
    };
    if let Some(z) = zone {
        if z != subnet.zone {
            return Err(invalid(format!(
                "The specified subnet {} is in {}, not in {z}.",
                subnet.id, subnet.zone
            )));
        }
    }

    // Security groups by id, or by name in the subnet's VPC; the default group otherwise.
    let mut group_ids: Vec<String> = Vec::new();
    for id in strings(input, "SecurityGroupIds") {
        match p.groups.get(&id) {
            Some(g) if g.vpc_id == subnet.vpc_id => group_ids.push(id),
            Some(_) => {
                return Err(invalid(format!(
                    "Security group {id} and subnet {} belong to different networks.",
                    subnet.id
                )))
            }
            None => {
                return Err(AwsError::new(
                    "InvalidGroup.NotFound",
                    format!("The security group '{id}' does not exist"),
                ))
            }
        }
    }
    for name in strings(input, "SecurityGroups") {
        let found = p
            .groups
            .values()
            .find(|g| g.name == name && g.vpc_id == subnet.vpc_id)
            .ok_or_else(|| {
                AwsError::new(
                    "InvalidGroup.NotFound",
                    format!(
                        "The security group '{name}' does not exist in VPC '{}'",
                        subnet.vpc_id
                    ),
                )
            })?;
        group_ids.push(found.id.clone());
    }
    if group_ids.is_empty() {
        let default = p
            .groups
            .values()
            .find(|g| g.vpc_id == subnet.vpc_id && g.name == "default")
            .ok_or_else(|| AwsError::internal("the VPC has no default security group"))?;
        group_ids.push(default.id.clone());
    }
    group_ids.dedup();

    let user_data = match input.get("UserData").and_then(Value::as_str) {
        Some(text) if !text.is_empty() => Some(checked_user_data(text)?),
        _ => None,
    };
    const TAGGABLE: &[&str] = &["instance", "volume", "network-interface"];
    let instance_tags = tags::from_specifications_among(input, "instance", TAGGABLE)?;
    let volume_tags = tags::from_specifications_among(input, "volume", TAGGABLE)?;
    let metadata = metadata_options(input.get("MetadataOptions"))?;
    let monitoring = input
        .pointer("/Monitoring/Enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let shutdown_behavior = match input
        .get("InstanceInitiatedShutdownBehavior")
        .and_then(Value::as_str)
    {
        None | Some("stop") => "stop",
        Some("terminate") => "terminate",
        Some(other) => {
            return Err(invalid(format!(
                "Value ({other}) for parameter instanceInitiatedShutdownBehavior is invalid."
            )))
        }
    };

    // The root volume: the image's 8 GiB gp3 unless a mapping for the root says otherwise.
    let mut root_size = 8;
    let mut root_type = "gp3".to_string();
    let mut root_delete = true;
    // Extra EBS volumes: (device, size GiB, type, snapshot, delete on termination).
    let mut extra: Vec<(String, u64, String, Option<String>, bool)> = Vec::new();
    if let Some(maps) = input.get("BlockDeviceMappings").and_then(Value::as_array) {
        for m in maps {
            let device = m.get("DeviceName").and_then(Value::as_str).unwrap_or("");
            if device != ROOT_DEVICE && device != "/dev/sda1" {
                let Some(ebs) = m.get("Ebs") else {
                    continue; // ephemeral (instance store) and NoDevice mappings: nothing to make
                };
                if extra.iter().any(|e| device_key(&e.0) == device_key(device)) {
                    return Err(invalid(format!(
                        "The device '{device}' is used in more than one block-device mapping"
                    )));
                }
                let snapshot = ebs
                    .get("SnapshotId")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let from_snapshot = match &snapshot {
                    Some(id) => Some(p.snapshots.get(id).ok_or_else(|| {
                        AwsError::new(
                            "InvalidSnapshot.NotFound",
                            format!("The snapshot '{id}' does not exist."),
                        )
                    })?),
                    None => None,
                };
                let size = match (
                    ebs.get("VolumeSize").and_then(Value::as_i64),
                    from_snapshot,
                ) {
                    (Some(s), _) if (1..=16384).contains(&s) => s as u64,
                    (Some(s), _) => {
                        return Err(invalid(format!(
                            "Volume of {s}GiB is not in the supported range for device {device}"
                        )))
                    }
                    (None, Some(snap)) => snap.volume_size,
                    (None, None) => {
                        return Err(AwsError::new(
                            "MissingParameter",
                            format!("The request must contain the parameter size or snapshotId for device {device}"),
                        ))
                    }
                };
                extra.push((
                    device.to_string(),
                    size,
                    ebs.get("VolumeType")
                        .and_then(Value::as_str)
                        .unwrap_or("gp3")
                        .to_string(),
                    snapshot,
                    ebs.get("DeleteOnTermination")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                ));
                continue;
            }
            {
                if let Some(ebs) = m.get("Ebs") {
                    if let Some(size) = ebs.get("VolumeSize").and_then(Value::as_i64) {
                        if !(8..=16384).contains(&size) {
                            return Err(invalid(format!(
                                "Volume of size {size}GB is smaller than snapshot, expect size >= 8GB"
                            )));
                        }
                        root_size = size as u64;
                    }
                    if let Some(t) = ebs.get("VolumeType").and_then(Value::as_str) {
                        root_type = t.to_string();
                    }
                    if let Some(d) = ebs.get("DeleteOnTermination").and_then(Value::as_bool) {
                        root_delete = d;
                    }
                }
            }
        }
    }

    let private_ip = match input.get("PrivateIpAddress").and_then(Value::as_str) {
        Some(text) => {
            let ip: Ipv4Addr = text
                .parse()
                .map_err(|_| invalid(format!("Invalid private IP address: {text}")))?;
            if !in_cidr(ip, &subnet.cidr) {
                return Err(AwsError::new(
                    "InvalidParameterValue",
                    format!("Address {ip} does not fall within the subnet's address range"),
                ));
            }
            if taken.contains(&ip) {
                return Err(AwsError::new(
                    "InvalidIPAddress.InUse",
                    format!("Address {ip} is in use."),
                ));
            }
            if count > 1 {
                return Err(AwsError::new(
                    "InvalidParameterCombination",
                    "Cannot specify an IP address when launching more than one instance",
                ));
            }
            Some(ip)
        }
        None => None,
    };

    let now = nimbus_core::now_millis();
    let reservation_id = new_id("r");
    let mut taken = taken.clone();
    let mut instances = Vec::with_capacity(count);
    let mut volumes = Vec::with_capacity(count);
    for index in 0..count {
        let ip = match private_ip {
            Some(ip) => ip,
            None => allocate_ip(&subnet.cidr, &taken).ok_or_else(|| {
                AwsError::new(
                    "InsufficientFreeAddressesInSubnet",
                    format!("There are not enough free addresses in subnet '{}' to satisfy the requested number of instances.", subnet.id),
                )
            })?,
        };
        if (index as i64) >= min
            && private_ip.is_none()
            && allocate_ip(&subnet.cidr, &taken).is_none()
        {
            break;
        }
        taken.insert(ip);
        let id = new_id("i");
        let volume_id = new_id("vol");
        volumes.push(Volume {
            id: volume_id.clone(),
            size_gib: root_size,
            zone: subnet.zone.clone(),
            volume_type: root_type.clone(),
            iops: (root_type == "gp3").then_some(3000),
            throughput: (root_type == "gp3").then_some(125),
            encrypted: false,
            kms_key_id: None,
            snapshot_id: None,
            created_ms: now,
            tags: volume_tags.clone(),
            attachment: Some(VolumeAttachment {
                instance_id: id.clone(),
                device: ROOT_DEVICE.into(),
                attached_ms: now,
                delete_on_termination: root_delete,
            }),
            root: true,
        });
        for (device, size, volume_type, snapshot, delete) in &extra {
            volumes.push(Volume {
                id: new_id("vol"),
                size_gib: *size,
                zone: subnet.zone.clone(),
                volume_type: volume_type.clone(),
                iops: (volume_type == "gp3").then_some(3000),
                throughput: (volume_type == "gp3").then_some(125),
                encrypted: false,
                kms_key_id: None,
                snapshot_id: snapshot.clone(),
                created_ms: now,
                tags: volume_tags.clone(),
                attachment: Some(VolumeAttachment {
                    instance_id: id.clone(),
                    device: device.clone(),
                    attached_ms: now,
                    delete_on_termination: *delete,
                }),
                root: false,
            });
        }
        instances.push(Instance {
            id,
            reservation_id: reservation_id.clone(),
            image_id: image_id.to_string(),
            instance_type: instance_type.clone(),
            key_name: key_name.clone(),
            subnet_id: subnet.id.clone(),
            vpc_id: subnet.vpc_id.clone(),
            zone: subnet.zone.clone(),
            private_ip: ip.to_string(),
            public_ip: None,
            mac: mac_address(),
            eni_id: new_id("eni"),
            group_ids: group_ids.clone(),
            state: PENDING.into(),
            transition_reason: String::new(),
            state_reason: None,
            launch_ms: now,
            launch_index: index as u32,
            user_data: user_data.clone(),
            iam_profile: profile.clone(),
            root_volume_id: volume_id,
            tags: instance_tags.clone(),
            client_token: input
                .get("ClientToken")
                .and_then(Value::as_str)
                .map(str::to_string),
            metadata: metadata.clone(),
            shutdown_behavior: shutdown_behavior.into(),
            owner: ctx.account_id.clone(),
            region: ctx.region.clone(),
            ended_ms: None,
            image_layers: image_layers.clone(),
            monitoring,
        });
    }
    Ok(Launch {
        instances,
        volumes,
        reservation_id,
    })
}

/// User data as given (base64), checked for encoding and EC2's 16 KiB limit, in
/// canonical base64.
fn checked_user_data(text: &str) -> Result<String, AwsError> {
    let decoded = decode_user_data(text)?;
    if decoded.len() > USER_DATA_LIMIT {
        return Err(invalid(format!(
            "User data is limited to {USER_DATA_LIMIT} bytes"
        )));
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(decoded))
}

fn decode_user_data(text: &str) -> Result<Vec<u8>, AwsError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| {
            AwsError::new(
                "InvalidUserData.Malformed",
                "Invalid BASE64 encoding of user data.",
            )
        })
}

fn metadata_options(input: Option<&Value>) -> Result<MetadataOptions, AwsError> {
    let mut m = MetadataOptions::default();
    let Some(input) = input else {
        return Ok(m);
    };
    if let Some(t) = input.get("HttpTokens").and_then(Value::as_str) {
        if t != "optional" && t != "required" {
            return Err(invalid(format!(
                "Value ({t}) for parameter HttpTokens is invalid."
            )));
        }
        m.http_tokens = t.into();
    }
    if let Some(e) = input.get("HttpEndpoint").and_then(Value::as_str) {
        m.http_endpoint = e.into();
    }
    if let Some(t) = input.get("InstanceMetadataTags").and_then(Value::as_str) {
        m.instance_metadata_tags = t.into();
    }
    if let Some(h) = input.get("HttpPutResponseHopLimit").and_then(Value::as_i64) {
        if !(1..=64).contains(&h) {
            return Err(invalid(format!(
                "Value ({h}) for parameter HttpPutResponseHopLimit is invalid."
            )));
        }
        m.hop_limit = h;
    }
    Ok(m)
}

/// A locally administered unicast MAC, as EC2's ENIs have.
fn mac_address() -> String {
    let digits = nimbus_core::random_string(b"0123456789abcdef", 10);
    let mut out = String::from("02");
    for pair in digits.as_bytes().chunks(2) {
        out.push(':');
        out.push_str(std::str::from_utf8(pair).unwrap_or("00"));
    }
    out
}

/// An earlier RunInstances with the same client token, answered again (idempotency).
pub fn replay(p: &Partition, ctx: &RequestContext, input: &Value) -> Option<Value> {
    let token = input.get("ClientToken").and_then(Value::as_str)?;
    let mut same: Vec<&Instance> = p
        .instances
        .values()
        .filter(|i| i.client_token.as_deref() == Some(token))
        .collect();
    if same.is_empty() {
        return None;
    }
    same.sort_by_key(|i| i.launch_index);
    Some(reservation_value(
        &same[0].reservation_id,
        &ctx.account_id,
        same.iter().map(|i| instance_value(p, i)).collect(),
    ))
}

pub fn record_launch(p: &mut Partition, ctx: &RequestContext, launch: Launch) -> Value {
    for v in launch.volumes {
        p.volumes.insert(v.id.clone(), v);
    }
    let values: Vec<Value> = launch
        .instances
        .iter()
        .map(|i| instance_value(p, i))
        .collect();
    for i in launch.instances {
        p.instances.insert(i.id.clone(), i);
    }
    reservation_value(&launch.reservation_id, &ctx.account_id, values)
}

fn reservation_value(id: &str, owner: &str, instances: Vec<Value>) -> Value {
    json!({"ReservationId": id, "OwnerId": owner, "Groups": [], "Instances": instances})
}

fn group_refs(p: &Partition, ids: &[String]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| {
                let name = p.groups.get(id).map(|g| g.name.clone()).unwrap_or_default();
                json!({"GroupId": id, "GroupName": name})
            })
            .collect(),
    )
}

pub fn instance_value(p: &Partition, i: &Instance) -> Value {
    let (vcpus, _) = instance_types::limits(&i.instance_type).unwrap_or((1, 1024));
    let groups = group_refs(p, &i.group_ids);
    let dns = private_dns(&i.private_ip, &i.region);
    let live = i.state != TERMINATED;
    let mut out = json!({
        "InstanceId": i.id,
        "ImageId": i.image_id,
        "State": state_value(&i.state),
        "PrivateDnsName": if live { dns.clone() } else { String::new() },
        "PublicDnsName": "",
        "StateTransitionReason": i.transition_reason,
        "AmiLaunchIndex": i.launch_index,
        "ProductCodes": [],
        "InstanceType": i.instance_type,
        "LaunchTime": i.launch_ms as f64 / 1000.0,
        "Placement": {"AvailabilityZone": i.zone, "GroupName": "", "Tenancy": "default"},
        "Monitoring": {"State": if i.monitoring { "enabled" } else { "disabled" }},
        "Architecture": "x86_64",
        "RootDeviceType": "ebs",
        "RootDeviceName": ROOT_DEVICE,
        "VirtualizationType": "hvm",
        "Hypervisor": "xen",
        "Tags": tags_value(&i.tags),
        "SecurityGroups": groups,
        "EbsOptimized": false,
        "EnaSupport": true,
        "SourceDestCheck": true,
        "PlatformDetails": "Linux/UNIX",
        "UsageOperation": "RunInstances",
        "CpuOptions": {"CoreCount": vcpus.div_ceil(2).max(1), "ThreadsPerCore": if vcpus > 1 { 2 } else { 1 }},
        "MetadataOptions": {
            "State": "applied",
            "HttpTokens": i.metadata.http_tokens,
            "HttpPutResponseHopLimit": i.metadata.hop_limit,
            "HttpEndpoint": i.metadata.http_endpoint,
            "HttpProtocolIpv6": "disabled",
            "InstanceMetadataTags": i.metadata.instance_metadata_tags,
        },
        "BlockDeviceMappings": [],
        "NetworkInterfaces": [],
    });
    if let Some(k) = &i.key_name {
        out["KeyName"] = json!(k);
    }
    if let Some(t) = &i.client_token {
        out["ClientToken"] = json!(t);
    }
    if let Some((code, message)) = &i.state_reason {
        out["StateReason"] = json!({"Code": code, "Message": message});
    }
    if let Some((arn, id)) = &i.iam_profile {
        out["IamInstanceProfile"] = json!({"Arn": arn, "Id": id});
    }
    if live {
        out["SubnetId"] = json!(i.subnet_id);
        out["VpcId"] = json!(i.vpc_id);
        out["PrivateIpAddress"] = json!(i.private_ip);
        if let Some(public) = &i.public_ip {
            out["PublicIpAddress"] = json!(public);
            out["PublicDnsName"] = json!(public_dns(public, &i.region));
        }
        out["NetworkInterfaces"] = json!([{
            "NetworkInterfaceId": i.eni_id,
            "SubnetId": i.subnet_id,
            "VpcId": i.vpc_id,
            "Description": "",
            "OwnerId": i.owner,
            "Status": "in-use",
            "MacAddress": i.mac,
            "PrivateIpAddress": i.private_ip,
            "PrivateDnsName": dns,
            "SourceDestCheck": true,
            "Groups": group_refs(p, &i.group_ids),
            "InterfaceType": "interface",
            "Attachment": {
                "AttachmentId": format!("eni-attach-{}", &i.eni_id[4..]),
                "AttachTime": i.launch_ms as f64 / 1000.0,
                "DeleteOnTermination": true,
                "DeviceIndex": 0,
                "NetworkCardIndex": 0,
                "Status": "attached",
            },
            "PrivateIpAddresses": [{"Primary": true, "PrivateIpAddress": i.private_ip, "PrivateDnsName": dns}],
            "Ipv6Addresses": [],
        }]);
        if let Some(public) = &i.public_ip {
            let association = json!({
                "PublicIp": public,
                "PublicDnsName": public_dns(public, &i.region),
                "IpOwnerId": i.owner,
            });
            out["NetworkInterfaces"][0]["Association"] = association.clone();
            out["NetworkInterfaces"][0]["PrivateIpAddresses"][0]["Association"] = association;
        }
        let mut mappings = Vec::new();
        for v in p.volumes.values() {
            if let Some(a) = v.attachment.as_ref().filter(|a| a.instance_id == i.id) {
                mappings.push(json!({
                    "DeviceName": a.device,
                    "Ebs": {
                        "AttachTime": a.attached_ms as f64 / 1000.0,
                        "DeleteOnTermination": a.delete_on_termination,
                        "Status": "attached",
                        "VolumeId": v.id,
                    }
                }));
            }
        }
        out["BlockDeviceMappings"] = Value::Array(mappings);
    }
    out
}

fn filter_fields(p: &Partition, i: &Instance, name: &str) -> Option<Vec<String>> {
    let one = |s: &str| Some(vec![s.to_string()]);
    match name {
        "instance-id" => one(&i.id),
        "instance-state-name" => one(&i.state),
        "instance-state-code" => Some(vec![state_code(&i.state).to_string()]),
        "instance-type" => one(&i.instance_type),
        "image-id" => one(&i.image_id),
        "subnet-id" => one(&i.subnet_id),
        "vpc-id" => one(&i.vpc_id),
        "availability-zone" => one(&i.zone),
        "private-ip-address" | "network-interface.addresses.private-ip-address" => {
            one(&i.private_ip)
        }
        "private-dns-name" => one(&private_dns(&i.private_ip, &i.region)),
        "ip-address" => Some(i.public_ip.iter().cloned().collect()),
        "key-name" => Some(i.key_name.iter().cloned().collect()),
        "reservation-id" => one(&i.reservation_id),
        "owner-id" => one(&i.owner),
        "launch-index" | "ami-launch-index" => Some(vec![i.launch_index.to_string()]),
        "architecture" => one("x86_64"),
        "root-device-type" => one("ebs"),
        "root-device-name" => one(ROOT_DEVICE),
        "virtualization-type" => one("hvm"),
        "hypervisor" => one("xen"),
        "tenancy" => one("default"),
        "monitoring-state" => one(if i.monitoring { "enabled" } else { "disabled" }),
        "client-token" => Some(i.client_token.iter().cloned().collect()),
        "iam-instance-profile.arn" => Some(i.iam_profile.iter().map(|p| p.0.clone()).collect()),
        "instance.group-id" | "group-id" | "network-interface.group-id" => {
            Some(i.group_ids.clone())
        }
        "instance.group-name" | "group-name" | "network-interface.group-name" => Some(
            i.group_ids
                .iter()
                .filter_map(|g| p.groups.get(g).map(|g| g.name.clone()))
                .collect(),
        ),
        "network-interface.network-interface-id" => one(&i.eni_id),
        "metadata-options.http-tokens" => one(&i.metadata.http_tokens),
        "block-device-mapping.volume-id" => one(&i.root_volume_id),
        "block-device-mapping.device-name" => one(ROOT_DEVICE),
        _ => None,
    }
}

/// Instances in a stable order (launch time, then launch index).
fn ordered(p: &Partition) -> Vec<&Instance> {
    let mut all: Vec<&Instance> = p.instances.values().collect();
    all.sort_by(|a, b| {
        (a.launch_ms, &a.reservation_id, a.launch_index).cmp(&(
            b.launch_ms,
            &b.reservation_id,
            b.launch_index,
        ))
    });
    all
}

pub fn describe(p: &Partition, input: &Value) -> Result<Value, AwsError> {
    let ids = strings(input, "InstanceIds");
    if !ids.is_empty() && input.get("MaxResults").is_some() {
        return Err(AwsError::new(
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults",
        ));
    }
    find_ids(p, &ids)?;
    let filters = Filters::from_input(input);
    let mut chosen = Vec::new();
    for i in ordered(p) {
        if !ids.is_empty() && !ids.contains(&i.id) {
            continue;
        }
        if filters.matches(&i.tags, |f| filter_fields(p, i, f))? {
            chosen.push(i);
        }
    }
    let (items, next) = page(chosen, input)?;
    // Consecutive instances of one reservation share its entry.
    let mut reservations: Vec<Value> = Vec::new();
    let mut last: Option<&str> = None;
    for i in items {
        if last != Some(i.reservation_id.as_str()) {
            reservations.push(reservation_value(&i.reservation_id, &i.owner, Vec::new()));
            last = Some(i.reservation_id.as_str());
        }
        if let Some(Value::Array(list)) =
            reservations.last_mut().and_then(|r| r.get_mut("Instances"))
        {
            list.push(instance_value(p, i));
        }
    }
    let mut out = json!({"Reservations": reservations});
    if let Some(t) = next {
        out["NextToken"] = json!(t);
    }
    Ok(out)
}

pub fn describe_status(p: &Partition, input: &Value) -> Result<Value, AwsError> {
    let ids = strings(input, "InstanceIds");
    if !ids.is_empty() && input.get("MaxResults").is_some() {
        return Err(AwsError::new(
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults",
        ));
    }
    find_ids(p, &ids)?;
    let all = input
        .get("IncludeAllInstances")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for i in ordered(p) {
        if !ids.is_empty() && !ids.contains(&i.id) {
            continue;
        }
        if !all && i.state != RUNNING {
            continue;
        }
        let status = if i.state == RUNNING {
            "ok"
        } else {
            "not-applicable"
        };
        let ok = filters.matches(&[], |f| match f {
            "instance-state-name" => Some(vec![i.state.clone()]),
            "instance-state-code" => Some(vec![state_code(&i.state).to_string()]),
            "availability-zone" => Some(vec![i.zone.clone()]),
            "instance-status.status" | "system-status.status" => Some(vec![status.into()]),
            "instance-status.reachability" | "system-status.reachability" => {
                Some(vec![if status == "ok" { "passed" } else { status }.into()])
            }
            _ => None,
        })?;
        if !ok {
            continue;
        }
        let details = if status == "ok" {
            json!([{"Name": "reachability", "Status": "passed"}])
        } else {
            json!([])
        };
        out.push(json!({
            "InstanceId": i.id,
            "AvailabilityZone": i.zone,
            "InstanceState": state_value(&i.state),
            "InstanceStatus": {"Status": status, "Details": details},
            "SystemStatus": {"Status": status, "Details": details},
        }));
    }
    listing("InstanceStatuses", out, input, None)
}

/// One state change: the answer's entry for an instance.
fn change(id: &str, previous: &str, current: &str) -> Value {
    json!({"InstanceId": id, "PreviousState": state_value(previous), "CurrentState": state_value(current)})
}

fn not_in_state(id: &str, what: &str) -> AwsError {
    AwsError::new(
        "IncorrectInstanceState",
        format!("The instance '{id}' is not in a state from which it can be {what}."),
    )
}

fn user_initiated(now_ms: u64) -> String {
    let when = nimbus_core::timestamp::format_iso8601_secs((now_ms / 1000) as i64)
        .replace('T', " ")
        .replace('Z', " GMT");
    format!("User initiated ({when})")
}

/// Moves the instances whose state `from` accepts to `to` (a user-initiated
/// shutdown when `shutdown`, else clearing the reason); the answer's entries.
fn transition(
    p: &mut Partition,
    ids: &[String],
    from: impl Fn(&str) -> bool,
    to: &str,
    shutdown: bool,
) -> Vec<Value> {
    let now = nimbus_core::now_millis();
    let mut out = Vec::new();
    for id in ids {
        if let Some(i) = p.instances.get_mut(id) {
            let previous = i.state.clone();
            if from(&previous) {
                i.state = to.into();
                if shutdown {
                    i.transition_reason = user_initiated(now);
                    i.state_reason = Some((
                        "Client.UserInitiatedShutdown".into(),
                        "Client.UserInitiatedShutdown: User initiated shutdown".into(),
                    ));
                } else {
                    i.transition_reason = String::new();
                    i.state_reason = None;
                }
            }
            out.push(change(id, &previous, &i.state));
        }
    }
    out
}

pub fn stop(p: &mut Partition, input: &Value) -> Result<Value, AwsError> {
    let ids = instance_ids(input)?;
    find_ids(p, &ids)?;
    for id in &ids {
        let state = &p.instances[id].state;
        if state == TERMINATED || state == SHUTTING_DOWN {
            return Err(not_in_state(id, "stopped"));
        }
    }
    let out = transition(p, &ids, |s| s == PENDING || s == RUNNING, STOPPING, true);
    Ok(json!({"StoppingInstances": out}))
}

pub fn start(p: &mut Partition, input: &Value) -> Result<Value, AwsError> {
    let ids = instance_ids(input)?;
    find_ids(p, &ids)?;
    for id in &ids {
        let state = &p.instances[id].state;
        if state != STOPPED && state != RUNNING && state != PENDING {
            return Err(not_in_state(id, "started"));
        }
    }
    let out = transition(p, &ids, |s| s == STOPPED, PENDING, false);
    Ok(json!({"StartingInstances": out}))
}

pub fn terminate(p: &mut Partition, input: &Value) -> Result<Value, AwsError> {
    let ids = instance_ids(input)?;
    find_ids(p, &ids)?;
    let out = transition(p, &ids, |s| s != TERMINATED, SHUTTING_DOWN, true);
    Ok(json!({"TerminatingInstances": out}))
}

/// RebootInstances succeeds for any instance of the caller (EC2 ignores requests for
/// terminated ones); only running instances actually reboot.
pub fn check_reboot(p: &Partition, input: &Value) -> Result<Vec<String>, AwsError> {
    let ids = instance_ids(input)?;
    find_ids(p, &ids)?;
    Ok(ids
        .into_iter()
        .filter(|id| p.instances[id].state == RUNNING)
        .collect())
}

fn one_instance<'p>(p: &'p Partition, input: &Value) -> Result<&'p Instance, AwsError> {
    let id = input
        .get("InstanceId")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    find_ids(p, std::slice::from_ref(&id))?;
    p.instances
        .get(&id)
        .ok_or_else(|| AwsError::internal("instance vanished"))
}

pub fn modify_attribute(p: &mut Partition, input: &Value) -> Result<Value, AwsError> {
    let instance = one_instance(p, input)?;
    let id = instance.id.clone();
    let stopped = instance.state == STOPPED;
    // Either the structure member (InstanceType.Value) or Attribute + Value.
    let attribute = input.get("Attribute").and_then(Value::as_str);
    let plain = input.get("Value").and_then(Value::as_str);
    let value_of = |member: &str, attr: &str| -> Option<String> {
        input
            .pointer(&format!("/{member}/Value"))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .or_else(|| {
                (attribute == Some(attr))
                    .then(|| plain.map(str::to_string))
                    .flatten()
            })
    };
    let new_type = value_of("InstanceType", "instanceType");
    let new_user_data = value_of("UserData", "userData");
    let shutdown = value_of(
        "InstanceInitiatedShutdownBehavior",
        "instanceInitiatedShutdownBehavior",
    );
    let groups = strings(input, "Groups");
    if new_type.is_none() && new_user_data.is_none() && shutdown.is_none() && groups.is_empty() {
        if input.get("DisableApiTermination").is_some() || input.get("SourceDestCheck").is_some() {
            return Ok(json!({}));
        }
        return Err(AwsError::new(
            "MissingParameter",
            "The request must contain exactly one attribute to modify",
        ));
    }
    if (new_type.is_some() || new_user_data.is_some()) && !stopped {
        return Err(AwsError::new(
            "IncorrectInstanceState",
            format!("The instance '{id}' is not in the 'stopped' state."),
        ));
    }
    if let Some(t) = &new_type {
        if instance_types::limits(t).is_none() {
            return Err(invalid(format!("Invalid value '{t}' for InstanceType.")));
        }
    }
    let user_data = match &new_user_data {
        Some(text) => Some(checked_user_data(text)?),
        None => None,
    };
    if let Some(s) = &shutdown {
        if s != "stop" && s != "terminate" {
            return Err(invalid(format!(
                "Value ({s}) for parameter instanceInitiatedShutdownBehavior is invalid."
            )));
        }
    }
    for g in &groups {
        if !p.groups.contains_key(g) {
            return Err(AwsError::new(
                "InvalidGroup.NotFound",
                format!("The security group '{g}' does not exist"),
            ));
        }
    }
    if let Some(i) = p.instances.get_mut(&id) {
        if let Some(t) = new_type {
            i.instance_type = t;
        }
        if let Some(u) = user_data {
            i.user_data = (!u.is_empty()).then_some(u);
        }
        if let Some(s) = shutdown {
            i.shutdown_behavior = s;
        }
        if !groups.is_empty() {
            i.group_ids = groups;
        }
    }
    Ok(json!({}))
}

pub fn describe_attribute(p: &Partition, input: &Value) -> Result<Value, AwsError> {
    let i = one_instance(p, input)?;
    let attribute = input.get("Attribute").and_then(Value::as_str).unwrap_or("");
    let mut out = json!({"InstanceId": i.id});
    match attribute {
        "instanceType" => out["InstanceType"] = json!({"Value": i.instance_type}),
        "userData" => {
            out["UserData"] = match &i.user_data {
                Some(u) => json!({"Value": u}),
                None => json!({}),
            }
        }
        "disableApiTermination" => out["DisableApiTermination"] = json!({"Value": false}),
        "disableApiStop" => out["DisableApiStop"] = json!({"Value": false}),
        "instanceInitiatedShutdownBehavior" => {
            out["InstanceInitiatedShutdownBehavior"] = json!({"Value": i.shutdown_behavior})
        }
        "rootDeviceName" => out["RootDeviceName"] = json!({"Value": ROOT_DEVICE}),
        "groupSet" => out["Groups"] = group_refs(p, &i.group_ids),
        "sourceDestCheck" => out["SourceDestCheck"] = json!({"Value": true}),
        "ebsOptimized" => out["EbsOptimized"] = json!({"Value": false}),
        "enaSupport" => out["EnaSupport"] = json!({"Value": true}),
        "blockDeviceMapping" => {
            let v = instance_value(p, i);
            out["BlockDeviceMappings"] = v["BlockDeviceMappings"].clone();
        }
        "kernel" | "ramdisk" | "productCodes" | "sriovNetSupport" => {}
        other => {
            return Err(invalid(format!(
                "Value ({other}) for parameter attribute is invalid. Unknown attribute."
            )))
        }
    }
    Ok(out)
}

/// GetConsoleOutput's instance check (the output itself comes from the runtime).
/// MonitorInstances (`enable`) and UnmonitorInstances: detailed monitoring
/// on or off. EC2 answers with the transition under way ("pending",
/// "disabling"); here it takes effect at the next collection, and
/// DescribeInstances shows the state reached.
pub fn set_monitoring(p: &mut Partition, input: &Value, enable: bool) -> Result<Value, AwsError> {
    let ids = instance_ids(input)?;
    find_ids(p, &ids)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in &ids {
        if let Some(i) = p.instances.get_mut(id) {
            i.monitoring = enable;
        }
        let state = if enable { "pending" } else { "disabling" };
        out.push(json!({"InstanceId": id, "Monitoring": {"State": state}}));
    }
    Ok(json!({"InstanceMonitorings": out}))
}

pub fn check_console(p: &Partition, input: &Value) -> Result<String, AwsError> {
    Ok(one_instance(p, input)?.id.clone())
}

/// A device name without `/dev/` and with Xen's `xvd` read as `sd`: /dev/sdf and
/// /dev/xvdf name one attachment point.
pub fn device_key(device: &str) -> String {
    let base = device.trim_start_matches("/dev/");
    match base.strip_prefix("xvd") {
        Some(rest) => format!("sd{rest}"),
        None => base.to_string(),
    }
}
