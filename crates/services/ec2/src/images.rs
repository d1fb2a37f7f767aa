//! Machine images: the base image (the host's root, one per region, never
//! stored) and the images CreateImage makes from instances, each the frozen
//! writable layer of its source instance (which already holds what that
//! instance's own image brought). This file
//! owns their records, DescribeImages, CreateImage's checks and
//! DeregisterImage; freezing the layer itself is the controller's job.

use crate::filters::{strings, tags_value, Filters};
use crate::instances::{find_ids, RUNNING, STOPPED};
use crate::state::{Image, Partition};
use crate::{new_id, tags};
use nimbus_core::{AwsError, RequestContext};
use serde_json::{json, Value};

const BASE_NAME: &str = "nimbus/host-root";

/// The image every instance boots from until users make their own: the host's root.
pub fn base_image_id(region: &str) -> String {
    // Stable across releases and restarts: derived from the region by a fixed hash.
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("nimbus-base-image:{region}"));
    format!("ami-{}", &hex::encode(digest)[..17])
}

fn not_found(ids: &[&str]) -> AwsError {
    AwsError::new(
        "InvalidAMIID.NotFound",
        format!("The image id '[{}]' does not exist", ids.join(", ")),
    )
}

/// The layers an instance of `image_id` stacks (empty for the base image), or
/// RunInstances' error for an image that cannot be launched.
pub fn layers_for_launch(
    p: &Partition,
    ctx: &RequestContext,
    image_id: &str,
) -> Result<Vec<String>, AwsError> {
    if image_id == base_image_id(&ctx.region) {
        return Ok(Vec::new());
    }
    match p.images.get(image_id) {
        Some(img) if img.state == "available" => Ok(img.layers.clone()),
        Some(img) => Err(AwsError::new(
            "InvalidAMIID.Unavailable",
            format!("Image {image_id} is not available (state: {})", img.state),
        )),
        None => Err(not_found(&[image_id])),
    }
}

/// What every image here shares: an x86_64, EBS-backed, HVM Linux machine image.
fn common(id: &str, name: &str, description: &str, state: &str, root_gib: u64) -> Value {
    json!({
        "ImageId": id,
        "Name": name,
        "Description": description,
        "State": state,
        "Architecture": "x86_64",
        "ImageType": "machine",
        "RootDeviceType": "ebs",
        "RootDeviceName": "/dev/xvda",
        "VirtualizationType": "hvm",
        "Hypervisor": "xen",
        "EnaSupport": true,
        "PlatformDetails": "Linux/UNIX",
        "UsageOperation": "RunInstances",
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": root_gib, "VolumeType": "gp3", "DeleteOnTermination": true}}],
    })
}

fn base_value(region: &str) -> Value {
    let mut v = common(
        &base_image_id(region),
        BASE_NAME,
        "The host's root file system, read-only; each instance writes to its own layer",
        "available",
        8,
    );
    v["Public"] = json!(true);
    v["OwnerId"] = json!("amazon");
    v["ImageOwnerAlias"] = json!("amazon");
    v["CreationDate"] = json!("2026-01-01T00:00:00.000Z");
    v
}

fn image_value(img: &Image, owner: &str, region: &str) -> Value {
    let mut v = common(
        &img.id,
        &img.name,
        &img.description,
        &img.state,
        img.root_size_gib,
    );
    v["Public"] = json!(false);
    v["OwnerId"] = json!(owner);
    v["ImageLocation"] = json!(format!("{owner}/{}", img.name));
    v["SourceInstanceId"] = json!(img.source_instance);
    v["CreationDate"] = json!(nimbus_core::timestamp::format(
        img.created_ms as f64 / 1000.0,
        "iso8601"
    ));
    v["Tags"] = tags_value(&img.tags);
    v["SourceImageRegion"] = json!(region);
    v
}

pub fn describe(p: &Partition, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let base = base_image_id(&ctx.region);
    let ids = strings(input, "ImageIds");
    if let Some(bad) = ids
        .iter()
        .find(|i| !crate::instances::well_formed(i, "ami"))
    {
        return Err(AwsError::new(
            "InvalidAMIID.Malformed",
            format!("Invalid id: \"{bad}\" (expecting \"ami-...\")"),
        ));
    }
    let unknown: Vec<&str> = ids
        .iter()
        .filter(|i| **i != base && !p.images.contains_key(i.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(not_found(&unknown));
    }
    let owners = strings(input, "Owners");
    let filters = Filters::from_input(input);
    let wanted = |id: &str| ids.is_empty() || ids.iter().any(|i| i == id);
    let mut images = Vec::new();
    let owner_listed = |owner: &str, alias: Option<&str>| {
        owners.is_empty()
            || owners.iter().any(|o| {
                o == owner || Some(o.as_str()) == alias || (o == "self" && owner == ctx.account_id)
            })
    };
    if wanted(&base) && owner_listed("amazon", Some("amazon")) {
        let ok = filters.matches(&[], |f| match f {
            "image-id" => Some(vec![base.clone()]),
            "name" => Some(vec![BASE_NAME.to_string()]),
            "state" => Some(vec!["available".into()]),
            "architecture" => Some(vec!["x86_64".into()]),
            "is-public" => Some(vec!["true".into()]),
            "owner-alias" => Some(vec!["amazon".into()]),
            "owner-id" => Some(vec!["amazon".into()]),
            "root-device-type" => Some(vec!["ebs".into()]),
            "virtualization-type" => Some(vec!["hvm".into()]),
            "platform-details" => Some(vec!["Linux/UNIX".into()]),
            "image-type" => Some(vec!["machine".into()]),
            _ => None,
        })?;
        if ok {
            images.push(base_value(&ctx.region));
        }
    }
    for img in p.images.values() {
        if !wanted(&img.id) || !owner_listed(&ctx.account_id, None) {
            continue;
        }
        let ok = filters.matches(&img.tags, |f| match f {
            "image-id" => Some(vec![img.id.clone()]),
            "name" => Some(vec![img.name.clone()]),
            "description" => Some(vec![img.description.clone()]),
            "state" => Some(vec![img.state.clone()]),
            "architecture" => Some(vec!["x86_64".into()]),
            "is-public" => Some(vec!["false".into()]),
            "owner-id" => Some(vec![ctx.account_id.clone()]),
            "owner-alias" => Some(Vec::new()),
            "root-device-type" => Some(vec!["ebs".into()]),
            "virtualization-type" => Some(vec!["hvm".into()]),
            "platform-details" => Some(vec!["Linux/UNIX".into()]),
            "image-type" => Some(vec!["machine".into()]),
            "source-instance-id" => Some(vec![img.source_instance.clone()]),
            _ => None,
        })?;
        if ok {
            images.push(image_value(img, &ctx.account_id, &ctx.region));
        }
    }
    Ok(json!({"Images": images}))
}

/// A CreateImage to carry out: the new image (state pending) and whether the
/// instance must go down while its layer is frozen.
pub struct Plan {
    pub image: Image,
    pub instance_id: String,
    pub reboot: bool,
}

fn valid_name(name: &str) -> bool {
    (3..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c))
}

pub fn plan_create(
    p: &Partition,
    ctx: &RequestContext,
    input: &Value,
    layer_root: &std::path::Path,
) -> Result<Plan, AwsError> {
    let instance_id = input
        .get("InstanceId")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    find_ids(p, std::slice::from_ref(&instance_id))?;
    let instance = &p.instances[&instance_id];
    if instance.state != RUNNING && instance.state != STOPPED {
        return Err(AwsError::new(
            "IncorrectInstanceState",
            format!(
                "The instance '{instance_id}' is not in a state from which it can be imaged ({}).",
                instance.state
            ),
        ));
    }
    let name = input.get("Name").and_then(Value::as_str).unwrap_or("");
    if !valid_name(name) {
        return Err(AwsError::new(
            "InvalidAMIName.Malformed",
            format!("AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_' ({name})"),
        ));
    }
    if let Some(dup) = p.images.values().find(|i| i.name == name) {
        return Err(AwsError::new(
            "InvalidAMIName.Duplicate",
            format!("AMI name {name} is already in use by AMI {}", dup.id),
        ));
    }
    let id = new_id("ami");
    // The instance's writable layer already holds its own image's files (it was
    // seeded from them), so the new image is that one layer.
    let layers = vec![layer_root.join(&id).join("layer").display().to_string()];
    let root_size_gib = p
        .volumes
        .get(&instance.root_volume_id)
        .map(|v| v.size_gib)
        .unwrap_or(8);
    let no_reboot = input
        .get("NoReboot")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Plan {
        image: Image {
            id,
            name: name.to_string(),
            description: input
                .get("Description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            layers,
            source_instance: instance_id.clone(),
            created_ms: ctx.now_ms,
            tags: tags::from_specifications_among(input, "image", &["image", "snapshot"])?,
            state: "pending".into(),
            root_size_gib,
        },
        reboot: instance.state == RUNNING && !no_reboot,
        instance_id,
    })
}

/// DeregisterImage: the record goes; the layer stays while instances stack it
/// (returned: whether the layer can be removed now).
pub fn deregister(
    p: &mut Partition,
    ctx: &RequestContext,
    input: &Value,
) -> Result<(String, bool), AwsError> {
    let id = input.get("ImageId").and_then(Value::as_str).unwrap_or("");
    if id == base_image_id(&ctx.region) {
        return Err(AwsError::new(
            "AuthFailure",
            format!("Not authorized for image:{id}"),
        ));
    }
    let image = p.images.remove(id).ok_or_else(|| not_found(&[id]))?;
    let own_layer = image.layers.first().cloned().unwrap_or_default();
    Ok((id.to_string(), !layer_in_use(p, &own_layer)))
}

/// Whether an instance (not terminated) or another image stacks `layer`.
pub fn layer_in_use(p: &Partition, layer: &str) -> bool {
    p.instances
        .values()
        .filter(|i| i.state != crate::instances::TERMINATED)
        .any(|i| i.image_layers.iter().any(|l| l == layer))
        || p.images
            .values()
            .any(|img| img.layers.iter().any(|l| l == layer))
}

/// Points image layers recorded under another data directory (a state saved
/// elsewhere and loaded here) at this one's `images` directory, where the load
/// put them: layers are recorded as paths, and only the base image's (`/`)
/// lies outside the data directory.
pub(crate) fn reroot_layers(p: &mut crate::state::Partition, images_dir: &std::path::Path) {
    let reroot = |layer: &mut String| {
        let path = std::path::Path::new(layer.as_str());
        if path.starts_with(images_dir) || path.exists() {
            return;
        }
        // <somewhere>/ec2/images/<ami>/layer -> <images_dir>/<ami>/layer
        let mut parts = path.components().rev();
        let (Some(last), Some(ami), Some(images)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if last.as_os_str() == "layer" && images.as_os_str() == "images" {
            *layer = images_dir
                .join(ami.as_os_str())
                .join("layer")
                .display()
                .to_string();
        }
    };
    for image in p.images.values_mut() {
        image.layers.iter_mut().for_each(reroot);
    }
    for instance in p.instances.values_mut() {
        instance.image_layers.iter_mut().for_each(reroot);
    }
}
