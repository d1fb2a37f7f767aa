//! EBS volumes and snapshots (CreateVolume, DescribeVolumes, ModifyVolume,
//! DescribeVolumesModifications, DeleteVolume, CreateSnapshot,
//! DescribeSnapshots, DeleteSnapshot) over the sparse files of `disks`, and
//! DescribeImages with the base image (the host's root, which instances will
//! boot from). Attaching volumes comes with instances.

use crate::filters::{listing, strings, tags_value, Filters};
use crate::geography;
use crate::state::{Modification, Partition, Snapshot, Volume};
use nimbus_core::{AwsError, RequestContext};
use serde_json::{json, Value};

fn volume_missing(id: &str) -> AwsError {
    AwsError::new(
        "InvalidVolume.NotFound",
        format!("The volume '{id}' does not exist."),
    )
}

fn snapshot_missing(id: &str) -> AwsError {
    AwsError::new(
        "InvalidSnapshot.NotFound",
        format!("The snapshot '{id}' does not exist."),
    )
}

/// Size limits (GiB) of each volume type.
fn size_range(volume_type: &str) -> Option<(u64, u64)> {
    Some(match volume_type {
        "gp2" | "gp3" => (1, 16384),
        "io1" => (4, 16384),
        "io2" => (4, 65536),
        "st1" | "sc1" => (125, 16384),
        "standard" => (1, 1024),
        _ => return None,
    })
}

/// A validated CreateVolume, ready for its file to be made.
pub struct NewVolume {
    pub volume: Volume,
    pub from_snapshot: Option<String>,
}

pub fn plan_create(
    p: &Partition,
    ctx: &RequestContext,
    input: &Value,
) -> Result<NewVolume, AwsError> {
    let zone = input
        .get("AvailabilityZone")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            AwsError::new(
                "MissingParameter",
                "The request must contain the parameter AvailabilityZone",
            )
        })?;
    if !geography::zones(&ctx.region).iter().any(|(z, _)| z == zone) {
        return Err(AwsError::new(
            "InvalidParameterValue",
            format!("Invalid availability zone: [{zone}]"),
        ));
    }
    let volume_type = input
        .get("VolumeType")
        .and_then(Value::as_str)
        .unwrap_or("gp3");
    let (min, max) = size_range(volume_type).ok_or_else(|| {
        AwsError::new(
            "InvalidParameterValue",
            format!("Value ({volume_type}) for parameter volumeType is invalid."),
        )
    })?;
    let snapshot = match input.get("SnapshotId").and_then(Value::as_str) {
        Some(id) => Some(p.snapshots.get(id).ok_or_else(|| snapshot_missing(id))?),
        None => None,
    };
    let size = match (input.get("Size").and_then(Value::as_i64), snapshot) {
        (Some(s), snap) => {
            if let Some(snap) = snap {
                if (s as u64) < snap.volume_size {
                    return Err(AwsError::new(
                        "InvalidParameterValue",
                        format!(
                            "Volume of size {s}GB is smaller than snapshot '{}', expect size >= {}GB",
                            snap.id, snap.volume_size
                        ),
                    ));
                }
            }
            s
        }
        (None, Some(snap)) => snap.volume_size as i64,
        (None, None) => {
            return Err(AwsError::new(
                "MissingParameter",
                "The request must contain the parameter size or snapshotId",
            ))
        }
    };
    if size < min as i64 || size > max as i64 {
        return Err(AwsError::new(
            "InvalidParameterValue",
            format!("Volume of {size}GiB is too large or too small for {volume_type}; expected {min}-{max}."),
        ));
    }
    let iops = input.get("Iops").and_then(Value::as_i64);
    if matches!(volume_type, "io1" | "io2") && iops.is_none() {
        return Err(AwsError::new(
            "MissingParameter",
            format!("The parameter iops must be specified for {volume_type} volumes."),
        ));
    }
    let (iops, throughput) = performance(
        volume_type,
        size,
        iops,
        input.get("Throughput").and_then(Value::as_i64),
    );
    let tags = crate::tags::from_specifications(input, "volume")?;
    let encrypted = input
        .get("Encrypted")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || snapshot.is_some_and(|s| s.encrypted);
    Ok(NewVolume {
        volume: Volume {
            id: crate::new_id("vol"),
            size_gib: size as u64,
            zone: zone.to_string(),
            volume_type: volume_type.to_string(),
            iops,
            throughput,
            encrypted,
            // Encrypted volumes without a key use the account's aws/ebs key, as on EC2.
            kms_key_id: encrypted.then(|| {
                input
                    .get("KmsKeyId")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        format!(
                            "arn:aws:kms:{}:{}:alias/aws/ebs",
                            ctx.region, ctx.account_id
                        )
                    })
            }),
            snapshot_id: snapshot.map(|s| s.id.clone()),
            created_ms: ctx.now_ms,
            tags,
            attachment: None,
            root: false,
        },
        from_snapshot: snapshot.map(|s| s.id.clone()),
    })
}

pub fn volume_value(v: &Volume) -> Value {
    let mut out = json!({
        "VolumeId": v.id,
        "Size": v.size_gib,
        "AvailabilityZone": v.zone,
        "State": if v.attachment.is_some() { "in-use" } else { "available" },
        "VolumeType": v.volume_type,
        "Encrypted": v.encrypted,
        "CreateTime": v.created_ms as f64 / 1000.0,
        "Attachments": attachments_value(v),
        "MultiAttachEnabled": false,
        "SnapshotId": v.snapshot_id.clone().unwrap_or_default(),
        "Tags": tags_value(&v.tags),
    });
    if let Some(i) = v.iops {
        out["Iops"] = json!(i);
    }
    if let Some(t) = v.throughput {
        out["Throughput"] = json!(t);
    }
    if let Some(k) = &v.kms_key_id {
        out["KmsKeyId"] = json!(k);
    }
    out
}

fn attachments_value(v: &Volume) -> Value {
    match &v.attachment {
        Some(a) => json!([{
            "VolumeId": v.id,
            "InstanceId": a.instance_id,
            "Device": a.device,
            "State": "attached",
            "AttachTime": a.attached_ms as f64 / 1000.0,
            "DeleteOnTermination": a.delete_on_termination,
        }]),
        None => json!([]),
    }
}

pub fn record_volume(p: &mut Partition, v: Volume) -> Value {
    let mut out = volume_value(&v);
    // The create answer says "creating", as EC2's does; the volume is ready at once.
    out["State"] = json!("creating");
    p.volumes.insert(v.id.clone(), v);
    out
}

pub fn describe_volumes(p: &Partition, input: &Value) -> Result<Value, AwsError> {
    let ids = strings(input, "VolumeIds");
    for id in &ids {
        if !p.volumes.contains_key(id) {
            return Err(volume_missing(id));
        }
    }
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for v in p.volumes.values() {
        if !ids.is_empty() && !ids.contains(&v.id) {
            continue;
        }
        let ok = filters.matches(&v.tags, |f| match f {
            "volume-id" => Some(vec![v.id.clone()]),
            "status" => Some(vec![if v.attachment.is_some() {
                "in-use"
            } else {
                "available"
            }
            .into()]),
            "size" => Some(vec![v.size_gib.to_string()]),
            "availability-zone" => Some(vec![v.zone.clone()]),
            "volume-type" => Some(vec![v.volume_type.clone()]),
            "encrypted" => Some(vec![v.encrypted.to_string()]),
            "snapshot-id" => Some(v.snapshot_id.iter().cloned().collect()),
            "attachment.status" => Some(v.attachment.iter().map(|_| "attached".into()).collect()),
            "attachment.instance-id" => {
                Some(v.attachment.iter().map(|a| a.instance_id.clone()).collect())
            }
            "attachment.device" => Some(v.attachment.iter().map(|a| a.device.clone()).collect()),
            "attachment.delete-on-termination" => Some(
                v.attachment
                    .iter()
                    .map(|a| a.delete_on_termination.to_string())
                    .collect(),
            ),
            _ => None,
        })?;
        if ok {
            out.push(volume_value(v));
        }
    }
    listing("Volumes", out, input, Some(500))
}

/// A validated ModifyVolume: the new size (if growing) and the recorded modification.
pub fn plan_modify(
    p: &Partition,
    ctx: &RequestContext,
    input: &Value,
) -> Result<(Modification, Option<u64>), AwsError> {
    let id = input
        .get("VolumeId")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            AwsError::new(
                "MissingParameter",
                "The request must contain the parameter VolumeId",
            )
        })?;
    let v = p.volumes.get(id).ok_or_else(|| volume_missing(id))?;
    let target_size = input
        .get("Size")
        .and_then(Value::as_i64)
        .map(|s| s as u64)
        .unwrap_or(v.size_gib);
    if target_size < v.size_gib {
        return Err(AwsError::new(
            "InvalidParameterValue",
            format!(
                "New size cannot be smaller than existing size of {}GiB.",
                v.size_gib
            ),
        ));
    }
    let target_type = input
        .get("VolumeType")
        .and_then(Value::as_str)
        .unwrap_or(&v.volume_type)
        .to_string();
    if let Some((_, max)) = size_range(&target_type) {
        if target_size > max {
            return Err(AwsError::new(
                "InvalidParameterValue",
                format!("Volume of {target_size}GiB is too large for {target_type}; expected at most {max}."),
            ));
        }
    } else {
        return Err(AwsError::new(
            "InvalidParameterValue",
            format!("Value ({target_type}) for parameter volumeType is invalid."),
        ));
    }
    // A type change without figures takes the new type's own (gp2 -> gp3: 3000 IOPS).
    let same_type = target_type == v.volume_type;
    let (target_iops, target_throughput) = performance(
        &target_type,
        target_size as i64,
        input
            .get("Iops")
            .and_then(Value::as_i64)
            .or(if same_type && target_type != "gp2" {
                v.iops
            } else {
                None
            }),
        input
            .get("Throughput")
            .and_then(Value::as_i64)
            .or(if same_type { v.throughput } else { None }),
    );
    let modification = Modification {
        volume_id: id.to_string(),
        original_size: v.size_gib,
        target_size,
        original_type: v.volume_type.clone(),
        target_type,
        original_iops: v.iops,
        target_iops,
        original_throughput: v.throughput,
        target_throughput,
        started_ms: ctx.now_ms,
    };
    let grow = (target_size > v.size_gib).then_some(target_size);
    Ok((modification, grow))
}

/// IOPS and throughput of a volume type at a size, given what the caller asked for:
/// gp3's baseline is 3000 IOPS and 125 MiB/s, gp2 earns 3 IOPS per GiB (100..16000),
/// io1/io2 have what was provisioned, the others neither.
fn performance(
    volume_type: &str,
    size: i64,
    iops: Option<i64>,
    throughput: Option<i64>,
) -> (Option<i64>, Option<i64>) {
    match volume_type {
        "gp3" => (Some(iops.unwrap_or(3000)), Some(throughput.unwrap_or(125))),
        "gp2" => (Some((size * 3).clamp(100, 16000)), None),
        "io1" | "io2" => (iops, None),
        _ => (None, None),
    }
}

fn modification_value(m: &Modification) -> Value {
    let mut out = json!({
        "VolumeId": m.volume_id,
        "ModificationState": "completed",
        "OriginalSize": m.original_size,
        "TargetSize": m.target_size,
        "OriginalVolumeType": m.original_type,
        "TargetVolumeType": m.target_type,
        "Progress": 100,
        "StartTime": m.started_ms as f64 / 1000.0,
        "EndTime": m.started_ms as f64 / 1000.0,
    });
    if let Some(i) = m.original_iops {
        out["OriginalIops"] = json!(i);
    }
    if let Some(i) = m.target_iops {
        out["TargetIops"] = json!(i);
    }
    if let Some(t) = m.original_throughput {
        out["OriginalThroughput"] = json!(t);
    }
    if let Some(t) = m.target_throughput {
        out["TargetThroughput"] = json!(t);
    }
    out
}

pub fn record_modify(p: &mut Partition, m: Modification) -> Result<Value, AwsError> {
    let v = p
        .volumes
        .get_mut(&m.volume_id)
        .ok_or_else(|| volume_missing(&m.volume_id))?;
    v.size_gib = m.target_size;
    v.volume_type = m.target_type.clone();
    v.iops = m.target_iops;
    v.throughput = m.target_throughput;
    let out = json!({"VolumeModification": modification_value(&m)});
    p.modifications.retain(|old| old.volume_id != m.volume_id);
    p.modifications.push(m);
    Ok(out)
}

pub fn describe_modifications(p: &Partition, input: &Value) -> Result<Value, AwsError> {
    let ids = strings(input, "VolumeIds");
    for id in &ids {
        if !p.volumes.contains_key(id) {
            return Err(volume_missing(id));
        }
    }
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for m in &p.modifications {
        if !ids.is_empty() && !ids.contains(&m.volume_id) {
            continue;
        }
        let ok = filters.matches(&[], |f| match f {
            "volume-id" => Some(vec![m.volume_id.clone()]),
            "modification-state" => Some(vec!["completed".into()]),
            "target-size" => Some(vec![m.target_size.to_string()]),
            "target-volume-type" => Some(vec![m.target_type.clone()]),
            _ => None,
        })?;
        if ok {
            out.push(modification_value(m));
        }
    }
    Ok(json!({"VolumesModifications": out}))
}

pub fn delete_volume(p: &mut Partition, input: &Value) -> Result<String, AwsError> {
    let id = input.get("VolumeId").and_then(Value::as_str).unwrap_or("");
    let volume = p.volumes.get(id).ok_or_else(|| volume_missing(id))?;
    if let Some(a) = &volume.attachment {
        return Err(AwsError::new(
            "VolumeInUse",
            format!("Volume {id} is currently attached to {}", a.instance_id),
        ));
    }
    p.volumes.remove(id);
    p.modifications.retain(|m| m.volume_id != id);
    Ok(id.to_string())
}

pub fn plan_snapshot(
    p: &Partition,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Snapshot, AwsError> {
    let volume_id = input
        .get("VolumeId")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            AwsError::new(
                "MissingParameter",
                "The request must contain the parameter VolumeId",
            )
        })?;
    let v = p
        .volumes
        .get(volume_id)
        .ok_or_else(|| volume_missing(volume_id))?;
    Ok(Snapshot {
        id: crate::new_id("snap"),
        volume_id: volume_id.to_string(),
        volume_size: v.size_gib,
        description: input
            .get("Description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        encrypted: v.encrypted,
        created_ms: ctx.now_ms,
        tags: crate::tags::from_specifications(input, "snapshot")?,
    })
}

fn snapshot_value(s: &Snapshot, owner: &str) -> Value {
    json!({
        "SnapshotId": s.id,
        "VolumeId": s.volume_id,
        "VolumeSize": s.volume_size,
        "Description": s.description,
        "State": "completed",
        "Progress": "100%",
        "StartTime": s.created_ms as f64 / 1000.0,
        "OwnerId": owner,
        "Encrypted": s.encrypted,
        "StorageTier": "standard",
        "Tags": tags_value(&s.tags),
    })
}

pub fn record_snapshot(p: &mut Partition, ctx: &RequestContext, s: Snapshot) -> Value {
    let mut out = snapshot_value(&s, &ctx.account_id);
    // As EC2 answers CreateSnapshot; the copy is already complete.
    out["State"] = json!("pending");
    out["Progress"] = json!("");
    p.snapshots.insert(s.id.clone(), s);
    out
}

pub fn describe_snapshots(
    p: &Partition,
    ctx: &RequestContext,
    input: &Value,
) -> Result<Value, AwsError> {
    let ids = strings(input, "SnapshotIds");
    for id in &ids {
        if !p.snapshots.contains_key(id) {
            return Err(snapshot_missing(id));
        }
    }
    let owners = strings(input, "OwnerIds");
    if !owners.is_empty() && !owners.iter().any(|o| o == "self" || *o == ctx.account_id) {
        return Ok(json!({"Snapshots": []}));
    }
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for s in p.snapshots.values() {
        if !ids.is_empty() && !ids.contains(&s.id) {
            continue;
        }
        let ok = filters.matches(&s.tags, |f| match f {
            "snapshot-id" => Some(vec![s.id.clone()]),
            "volume-id" => Some(vec![s.volume_id.clone()]),
            "status" => Some(vec!["completed".into()]),
            "volume-size" => Some(vec![s.volume_size.to_string()]),
            "owner-id" => Some(vec![ctx.account_id.clone()]),
            "description" => Some(vec![s.description.clone()]),
            "encrypted" => Some(vec![s.encrypted.to_string()]),
            _ => None,
        })?;
        if ok {
            out.push(snapshot_value(s, &ctx.account_id));
        }
    }
    listing("Snapshots", out, input, Some(1000))
}

pub fn delete_snapshot(p: &mut Partition, input: &Value) -> Result<String, AwsError> {
    let id = input
        .get("SnapshotId")
        .and_then(Value::as_str)
        .unwrap_or("");
    p.snapshots.remove(id).ok_or_else(|| snapshot_missing(id))?;
    Ok(id.to_string())
}

/// Every volume and snapshot id any partition names (files of others are swept at start).
pub fn referenced_files(partitions: &[&Partition]) -> std::collections::HashSet<String> {
    partitions
        .iter()
        .flat_map(|p| p.volumes.keys().chain(p.snapshots.keys()).cloned())
        .collect()
}

/// Device names EBS volumes may take on attach (the root's /dev/xvda and /dev/sda1 excepted).
fn valid_device(name: &str) -> bool {
    let Some(base) = name.strip_prefix("/dev/").or(Some(name)) else {
        return false;
    };
    let letters = base.strip_prefix("xvd").or_else(|| base.strip_prefix("sd"));
    match letters {
        Some(rest) => {
            let (alpha, digits) = rest.split_at(
                rest.find(|c: char| c.is_ascii_digit())
                    .unwrap_or(rest.len()),
            );
            (1..=2).contains(&alpha.len())
                && alpha
                    .bytes()
                    .all(|b| (b'b'..=b'z').contains(&b) || (alpha.len() == 2 && b == b'a'))
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.len() <= 2
        }
        None => false,
    }
}

/// A checked AttachVolume: what to record once the device exists.
pub struct AttachPlan {
    pub volume_id: String,
    pub instance_id: String,
    pub device: String,
    /// Whether the instance is up (the device must appear inside now).
    pub live: bool,
}

pub fn plan_attach(p: &Partition, input: &Value) -> Result<AttachPlan, AwsError> {
    let volume_id = input.get("VolumeId").and_then(Value::as_str).unwrap_or("");
    let instance_id = input
        .get("InstanceId")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let device = input
        .get("Device")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let volume = p
        .volumes
        .get(volume_id)
        .ok_or_else(|| volume_missing(volume_id))?;
    crate::instances::find_ids(p, std::slice::from_ref(&instance_id))?;
    let instance = &p.instances[&instance_id];
    if !valid_device(&device) {
        return Err(AwsError::new(
            "InvalidParameterValue",
            format!("Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name."),
        ));
    }
    if let Some(a) = &volume.attachment {
        return Err(AwsError::new(
            "VolumeInUse",
            format!(
                "{volume_id} is already attached to an instance ({})",
                a.instance_id
            ),
        ));
    }
    if volume.zone != instance.zone {
        return Err(AwsError::new(
            "InvalidVolume.ZoneMismatch",
            format!("The volume '{volume_id}' is not in the same availability zone as instance '{instance_id}'"),
        ));
    }
    if matches!(instance.state.as_str(), "terminated" | "shutting-down") {
        return Err(AwsError::new(
            "IncorrectInstanceState",
            format!("The instance '{instance_id}' is not 'running' or 'stopped'."),
        ));
    }
    let wanted = crate::instances::device_key(&device);
    let taken = p.volumes.values().any(|v| {
        v.attachment.as_ref().is_some_and(|a| {
            a.instance_id == instance_id && crate::instances::device_key(&a.device) == wanted
        })
    }) || wanted == crate::instances::device_key(crate::instances::ROOT_DEVICE);
    if taken {
        return Err(AwsError::new(
            "InvalidParameterValue",
            format!("Attachment point {device} is already in use"),
        ));
    }
    Ok(AttachPlan {
        volume_id: volume_id.to_string(),
        live: instance.state == "running" || instance.state == "pending",
        instance_id,
        device,
    })
}

pub fn record_attach(p: &mut Partition, plan: &AttachPlan, now_ms: u64) -> Result<Value, AwsError> {
    let volume = p
        .volumes
        .get_mut(&plan.volume_id)
        .ok_or_else(|| volume_missing(&plan.volume_id))?;
    if volume.attachment.is_some() {
        return Err(AwsError::new(
            "VolumeInUse",
            format!("{} is already attached to an instance", plan.volume_id),
        ));
    }
    volume.attachment = Some(crate::state::VolumeAttachment {
        instance_id: plan.instance_id.clone(),
        device: plan.device.clone(),
        attached_ms: now_ms,
        delete_on_termination: false,
    });
    Ok(json!({
        "AttachTime": now_ms as f64 / 1000.0,
        "Device": plan.device,
        "InstanceId": plan.instance_id,
        "State": "attaching",
        "VolumeId": plan.volume_id,
        "DeleteOnTermination": false,
    }))
}

/// DetachVolume: the record lets go; returns the answer and (instance, device).
pub fn detach(p: &mut Partition, input: &Value) -> Result<(Value, String, String), AwsError> {
    let volume_id = input.get("VolumeId").and_then(Value::as_str).unwrap_or("");
    let volume = p
        .volumes
        .get(volume_id)
        .ok_or_else(|| volume_missing(volume_id))?;
    let Some(a) = volume.attachment.clone() else {
        return Err(AwsError::new(
            "IncorrectState",
            format!("Volume '{volume_id}' is in the 'available' state."),
        ));
    };
    if let Some(i) = input.get("InstanceId").and_then(Value::as_str) {
        if i != a.instance_id {
            return Err(AwsError::new(
                "InvalidAttachment.NotFound",
                format!("Volume '{volume_id}' is not attached to instance '{i}'"),
            ));
        }
    }
    if let Some(d) = input.get("Device").and_then(Value::as_str) {
        if crate::instances::device_key(d) != crate::instances::device_key(&a.device) {
            return Err(AwsError::new(
                "InvalidAttachment.NotFound",
                format!("Volume '{volume_id}' is not attached at '{d}'"),
            ));
        }
    }
    let running = p
        .instances
        .get(&a.instance_id)
        .is_some_and(|i| i.state != "stopped" && i.state != "terminated");
    if volume.root && running {
        return Err(AwsError::new(
            "OperationNotPermitted",
            format!(
                "Unable to detach root volume '{volume_id}' from instance '{}'",
                a.instance_id
            ),
        ));
    }
    if let Some(v) = p.volumes.get_mut(volume_id) {
        v.attachment = None;
    }
    Ok((
        json!({
            "AttachTime": a.attached_ms as f64 / 1000.0,
            "Device": a.device,
            "InstanceId": a.instance_id,
            "State": "detaching",
            "VolumeId": volume_id,
            "DeleteOnTermination": a.delete_on_termination,
        }),
        a.instance_id,
        a.device,
    ))
}
