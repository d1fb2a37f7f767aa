//! What EC2 keeps per account and region: the VPCs (the default one is
//! made on first use, as AWS accounts have one from the start), subnets,
//! security groups with their rules, and tags on each. A partition is stored
//! as one JSON record in `ec2_partitions` (`account \0 region`): it is small
//! and changes rarely, so rewriting it whole keeps every change atomic.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const PARTITIONS: &str = "ec2_partitions";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Partition {
    pub vpcs: BTreeMap<String, Vpc>,
    pub subnets: BTreeMap<String, Subnet>,
    pub groups: BTreeMap<String, SecurityGroup>,
    /// By key name.
    #[serde(default)]
    pub key_pairs: BTreeMap<String, KeyPair>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Volume>,
    #[serde(default)]
    pub snapshots: BTreeMap<String, Snapshot>,
    /// The latest modification of each volume.
    #[serde(default)]
    pub modifications: Vec<Modification>,
    #[serde(default)]
    pub instances: BTreeMap<String, Instance>,
    /// Images made by CreateImage (the base image is not stored).
    #[serde(default)]
    pub images: BTreeMap<String, Image>,
    /// Elastic IPs by allocation id.
    #[serde(default)]
    pub addresses: BTreeMap<String, Address>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Address {
    pub allocation_id: String,
    pub public_ip: String,
    /// (association id, instance id) while associated.
    pub association: Option<(String, String)>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub reservation_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub key_name: Option<String>,
    pub subnet_id: String,
    pub vpc_id: String,
    pub zone: String,
    pub private_ip: String,
    #[serde(default)]
    pub public_ip: Option<String>,
    pub mac: String,
    pub eni_id: String,
    pub group_ids: Vec<String>,
    /// EC2's state name: pending, running, stopping, stopped, shutting-down, terminated.
    pub state: String,
    pub transition_reason: String,
    /// (code, message) of the last state change, when it has one.
    pub state_reason: Option<(String, String)>,
    pub launch_ms: u64,
    pub launch_index: u32,
    /// Base64, as the API carries it.
    pub user_data: Option<String>,
    /// The instance profile (arn, id).
    pub iam_profile: Option<(String, String)>,
    pub root_volume_id: String,
    pub tags: Vec<(String, String)>,
    pub client_token: Option<String>,
    pub metadata: MetadataOptions,
    /// "stop" or "terminate": what a shutdown from inside does.
    pub shutdown_behavior: String,
    pub owner: String,
    pub region: String,
    /// When it was terminated (terminated instances stay visible for a while).
    pub ended_ms: Option<u64>,
    /// The image's layer at launch, which seeds the instance's writable layer on its
    /// first start (kept here: the image may be deregistered before that).
    #[serde(default)]
    pub image_layers: Vec<String>,
    /// Detailed monitoring (CloudWatch data every minute rather than every
    /// five): RunInstances' Monitoring.Enabled, Monitor/UnmonitorInstances.
    #[serde(default)]
    pub monitoring: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataOptions {
    /// "optional" (IMDSv1 and v2) or "required" (v2 only).
    pub http_tokens: String,
    pub http_endpoint: String,
    pub instance_metadata_tags: String,
    pub hop_limit: i64,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        MetadataOptions {
            http_tokens: "optional".into(),
            http_endpoint: "enabled".into(),
            instance_metadata_tags: "disabled".into(),
            hop_limit: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The frozen writable layer under `<ec2>/images/<id>/layer` (one; images are
    /// seeded into instances, not stacked).
    pub layers: Vec<String>,
    pub source_instance: String,
    pub created_ms: u64,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// "pending" while its layer is being frozen, then "available" (or "failed").
    pub state: String,
    pub root_size_gib: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeAttachment {
    pub instance_id: String,
    pub device: String,
    pub attached_ms: u64,
    pub delete_on_termination: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub id: String,
    pub size_gib: u64,
    pub zone: String,
    pub volume_type: String,
    pub iops: Option<i64>,
    pub throughput: Option<i64>,
    pub encrypted: bool,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    pub snapshot_id: Option<String>,
    pub created_ms: u64,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    #[serde(default)]
    pub attachment: Option<VolumeAttachment>,
    /// An instance's root volume: its data is the instance's writable layer, not a file.
    #[serde(default)]
    pub root: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub volume_id: String,
    pub volume_size: u64,
    pub description: String,
    pub encrypted: bool,
    pub created_ms: u64,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Modification {
    pub volume_id: String,
    pub original_size: u64,
    pub target_size: u64,
    pub original_type: String,
    pub target_type: String,
    pub original_iops: Option<i64>,
    pub target_iops: Option<i64>,
    pub original_throughput: Option<i64>,
    pub target_throughput: Option<i64>,
    pub started_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyPair {
    pub id: String,
    pub name: String,
    pub key_type: String,
    pub fingerprint: String,
    /// OpenSSH form (`ssh-ed25519 AAAA...`); the private half is never kept.
    pub public_key: String,
    pub created_ms: u64,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vpc {
    pub id: String,
    pub cidr: String,
    pub is_default: bool,
    pub dhcp_options_id: String,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub cidr: String,
    pub zone: String,
    pub zone_id: String,
    pub default_for_az: bool,
    pub map_public_ip: bool,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub vpc_id: String,
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

/// One rule as AWS's SecurityGroupRule API sees it: one source or destination each.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rule {
    pub id: String,
    pub egress: bool,
    /// "tcp", "udp", "icmp", "icmpv6" or "-1" (all).
    pub protocol: String,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub target: Target,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Target {
    Cidr(String),
    Cidr6(String),
    Group { id: String, owner: String },
    PrefixList(String),
}

impl Rule {
    /// Same permission, whatever its id and description: what makes a rule a duplicate.
    pub fn same(&self, other: &Rule) -> bool {
        self.egress == other.egress
            && self.protocol == other.protocol
            && self.from_port == other.from_port
            && self.to_port == other.to_port
            && self.target == other.target
    }
}

pub fn partition_key(account: &str, region: &str) -> Vec<u8> {
    let mut k = account.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(region.as_bytes());
    k
}
