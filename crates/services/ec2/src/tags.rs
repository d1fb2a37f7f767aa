//! Tags on EC2 resources: CreateTags, DeleteTags, DescribeTags, and the
//! TagSpecifications that create calls carry. A resource's kind is read from
//! its id prefix, as EC2 does.

use crate::filters::{listing, Filters};
use crate::state::Partition;
use nimbus_core::AwsError;
use serde_json::{json, Value};

fn pairs(list: Option<&Value>) -> Vec<(String, Option<String>)> {
    list.and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .map(|t| {
                    (
                        t.get("Key")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        t.get("Value").and_then(Value::as_str).map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn check_key(key: &str) -> Result<(), AwsError> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(AwsError::new(
            "InvalidParameterValue",
            format!("Tag key '{key}' must be between 1 and 128 characters"),
        ));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(AwsError::new(
            "InvalidParameterValue",
            "Tag keys starting with 'aws:' are reserved for internal use",
        ));
    }
    Ok(())
}

/// Tags from `TagSpecifications` entries for `resource_type`.
pub fn from_specifications(
    input: &Value,
    resource_type: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    from_specifications_among(input, resource_type, &[resource_type])
}

/// Tags for `resource_type` from a call whose specifications may name any of `allowed`
/// (RunInstances tags instances, volumes and network interfaces at once).
pub fn from_specifications_among(
    input: &Value,
    resource_type: &str,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, AwsError> {
    let mut out = Vec::new();
    for spec in input
        .get("TagSpecifications")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = spec
            .get("ResourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !allowed.contains(&kind) {
            return Err(AwsError::new(
                "InvalidParameterValue",
                format!("'{kind}' is not a valid taggable resource type for this operation."),
            ));
        }
        for (k, v) in pairs(spec.get("Tags")) {
            check_key(&k)?;
            if kind == resource_type {
                out.push((k, v.unwrap_or_default()));
            }
        }
    }
    Ok(out)
}

fn resource_type(id: &str) -> &'static str {
    match id.split('-').next() {
        Some("vpc") => "vpc",
        Some("subnet") => "subnet",
        Some("sg") => "security-group",
        Some("key") => "key-pair",
        Some("vol") => "volume",
        Some("snap") => "snapshot",
        Some("i") => "instance",
        Some("eipalloc") => "elastic-ip",
        Some("ami") => "image",
        _ => "unknown",
    }
}

fn tags_of<'p>(p: &'p mut Partition, id: &str) -> Result<&'p mut Vec<(String, String)>, AwsError> {
    let missing = |code: &str, what: &str| {
        AwsError::new(code, format!("The {what} ID '{id}' does not exist"))
    };
    match resource_type(id) {
        "vpc" => p
            .vpcs
            .get_mut(id)
            .map(|v| &mut v.tags)
            .ok_or_else(|| missing("InvalidVpcID.NotFound", "vpc")),
        "subnet" => p
            .subnets
            .get_mut(id)
            .map(|s| &mut s.tags)
            .ok_or_else(|| missing("InvalidSubnetID.NotFound", "subnet")),
        "security-group" => p.groups.get_mut(id).map(|g| &mut g.tags).ok_or_else(|| {
            AwsError::new(
                "InvalidGroup.NotFound",
                format!("The security group '{id}' does not exist"),
            )
        }),
        "volume" => p.volumes.get_mut(id).map(|v| &mut v.tags).ok_or_else(|| {
            AwsError::new(
                "InvalidVolume.NotFound",
                format!("The volume '{id}' does not exist."),
            )
        }),
        "snapshot" => p.snapshots.get_mut(id).map(|s| &mut s.tags).ok_or_else(|| {
            AwsError::new(
                "InvalidSnapshot.NotFound",
                format!("The snapshot '{id}' does not exist."),
            )
        }),
        "instance" => p
            .instances
            .get_mut(id)
            .map(|i| &mut i.tags)
            .ok_or_else(|| missing("InvalidInstanceID.NotFound", "instance")),
        "elastic-ip" => p.addresses.get_mut(id).map(|a| &mut a.tags).ok_or_else(|| {
            AwsError::new(
                "InvalidAllocationID.NotFound",
                format!("The allocation ID '{id}' does not exist"),
            )
        }),
        "image" => p.images.get_mut(id).map(|i| &mut i.tags).ok_or_else(|| {
            AwsError::new(
                "InvalidAMIID.NotFound",
                format!("The image id '[{id}]' does not exist"),
            )
        }),
        "key-pair" => p
            .key_pairs
            .values_mut()
            .find(|k| k.id == id)
            .map(|k| &mut k.tags)
            .ok_or_else(|| {
                AwsError::new(
                    "InvalidKeyPairId.NotFound",
                    format!("The key pair ID '{id}' does not exist"),
                )
            }),
        _ => Err(AwsError::new(
            "InvalidID",
            format!("The ID '{id}' is not valid"),
        )),
    }
}

fn resources(input: &Value) -> Vec<String> {
    crate::filters::strings(input, "Resources")
}

pub fn create(p: &mut Partition, input: &Value) -> Result<Value, AwsError> {
    let new = pairs(input.get("Tags"));
    for (k, _) in &new {
        check_key(k)?;
    }
    let ids = resources(input);
    // Check every resource first: a failed call changes nothing.
    for id in &ids {
        tags_of(p, id)?;
    }
    for id in &ids {
        let tags = tags_of(p, id)?;
        for (k, v) in &new {
            let value = v.clone().unwrap_or_default();
            match tags.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = value,
                None => tags.push((k.clone(), value)),
            }
        }
        if tags.len() > 50 {
            return Err(AwsError::new(
                "TagLimitExceeded",
                "The maximum number of tags for a resource (50) has been reached.",
            ));
        }
    }
    Ok(json!({}))
}

pub fn delete(p: &mut Partition, input: &Value) -> Result<Value, AwsError> {
    let doomed = pairs(input.get("Tags"));
    let ids = resources(input);
    for id in &ids {
        tags_of(p, id)?;
    }
    for id in &ids {
        let tags = tags_of(p, id)?;
        if doomed.is_empty() {
            tags.clear();
            continue;
        }
        tags.retain(|(k, v)| {
            !doomed
                .iter()
                .any(|(dk, dv)| dk == k && dv.as_ref().is_none_or(|dv| dv == v))
        });
    }
    Ok(json!({}))
}

pub fn describe(p: &Partition, input: &Value) -> Result<Value, AwsError> {
    let filters = Filters::from_input(input);
    // (resource id, resource type, its tags)
    type Tagged<'a> = (String, &'static str, &'a Vec<(String, String)>);
    let mut all: Vec<Tagged> = Vec::new();
    all.extend(p.vpcs.values().map(|v| (v.id.clone(), "vpc", &v.tags)));
    all.extend(
        p.subnets
            .values()
            .map(|s| (s.id.clone(), "subnet", &s.tags)),
    );
    all.extend(
        p.groups
            .values()
            .map(|g| (g.id.clone(), "security-group", &g.tags)),
    );
    all.extend(
        p.key_pairs
            .values()
            .map(|k| (k.id.clone(), "key-pair", &k.tags)),
    );
    all.extend(
        p.volumes
            .values()
            .map(|v| (v.id.clone(), "volume", &v.tags)),
    );
    all.extend(
        p.snapshots
            .values()
            .map(|s| (s.id.clone(), "snapshot", &s.tags)),
    );
    all.extend(
        p.instances
            .values()
            .map(|i| (i.id.clone(), "instance", &i.tags)),
    );
    all.extend(p.images.values().map(|i| (i.id.clone(), "image", &i.tags)));
    all.extend(
        p.addresses
            .values()
            .map(|a| (a.allocation_id.clone(), "elastic-ip", &a.tags)),
    );
    let mut out = Vec::new();
    for (id, kind, tags) in all {
        for (k, v) in tags {
            let ok = filters.matches(&[], |f| match f {
                "resource-id" => Some(vec![id.clone()]),
                "resource-type" => Some(vec![kind.to_string()]),
                "key" => Some(vec![k.clone()]),
                "value" => Some(vec![v.clone()]),
                _ => None,
            })?;
            if ok {
                out.push(json!({"ResourceId": id, "ResourceType": kind, "Key": k, "Value": v}));
            }
        }
    }
    listing("Tags", out, input, None)
}
