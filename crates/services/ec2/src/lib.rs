//! Amazon EC2 for nimbus, first slice: regions and availability zones, the
//! default VPC with one default subnet per zone, security groups with
//! ingress and egress rules (by CIDR and by referenced group), and tags on
//! all of them, with AWS's errors. Instances, images, volumes, addresses and
//! key pairs follow (issue 4).
//!
//! This file owns the service object and the dispatch; `network` answers the
//! geography, VPC and subnet calls, `groups` the security groups, `tags` the
//! tag calls, `filters` the `Filter.N` matching they share, and `state` the
//! records and their storage. State lives in memory per account and region and
//! each change rewrites that partition's record before the answer.

mod addresses;
mod controller;
mod disks;
mod filters;
mod geography;
mod groups;
mod images;
mod instance_types;
mod instances;
mod keypairs;
mod metrics;
mod network;
mod state;
mod tags;
mod volumes;

use nimbus_core::{AwsError, BoxFuture, RequestContext, Service};
use nimbus_store::{Batch, Store};
use serde_json::Value;
use state::Partition;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub struct Ec2 {
    /// Background work (state transitions) holds the service through this.
    me: std::sync::Weak<Ec2>,
    store: Store,
    partitions: Mutex<HashMap<(String, String), Partition>>,
    disks: Arc<disks::Disks>,
    machines: controller::Machines,
    /// Frozen image layers, one directory per image (`<ec2>/images/<ami>/layer`).
    images_dir: std::path::PathBuf,
    /// `<data dir>/ec2`.
    root: std::path::PathBuf,
}

pub use controller::{InstanceMeta, ProfileResolver};

impl Ec2 {
    /// Loads every partition; volume and snapshot files live under `root`
    /// (`<data dir>/ec2`), instance directories under `root/instances`. `driver`
    /// chooses the instance driver ("auto", "namespace" or "process").
    pub fn open(
        store: Store,
        root: &Path,
        durable: bool,
        driver: &str,
    ) -> Result<Arc<Ec2>, String> {
        let mut partitions = HashMap::new();
        let records = store
            .scan_prefix(state::PARTITIONS, b"")
            .map_err(|e| format!("cannot load EC2 state: {e}"))?;
        for (key, value) in records {
            let text = String::from_utf8_lossy(&key).into_owned();
            let Some((account, region)) = text.split_once('\0') else {
                continue;
            };
            match serde_json::from_slice::<Partition>(&value) {
                Ok(p) => {
                    partitions.insert((account.to_string(), region.to_string()), p);
                }
                Err(e) => tracing::warn!("skipping an unreadable EC2 partition: {e}"),
            }
        }
        for p in partitions.values_mut() {
            images::reroot_layers(p, &root.join("images"));
        }
        let referenced = volumes::referenced_files(&partitions.values().collect::<Vec<_>>());
        let disks = Arc::new(disks::Disks::open(root, durable, &referenced)?);
        let metadata_key = controller::metadata_key(&root.join("metadata.key"), durable)?;
        let (machines, exits) =
            controller::Machines::open(&root.join("instances"), driver, &partitions, metadata_key)?;
        let ec2 = Arc::new_cyclic(|me| Ec2 {
            me: me.clone(),
            store,
            partitions: Mutex::new(partitions),
            disks,
            machines,
            images_dir: root.join("images"),
            root: root.to_path_buf(),
        });
        ec2.clone().watch_exits(exits);
        Ok(ec2)
    }

    fn metadata_key_path(&self) -> std::path::PathBuf {
        self.root.join("metadata.key")
    }

    /// Runs blocking file work (volume and snapshot files) off the async threads.
    async fn on_disk(
        &self,
        work: impl FnOnce(&disks::Disks) -> std::io::Result<()> + Send + 'static,
    ) -> Result<(), AwsError> {
        let disks = self.disks.clone();
        tokio::task::spawn_blocking(move || work(&disks))
            .await
            .map_err(|e| AwsError::internal(e.to_string()))?
            .map_err(|e| {
                tracing::error!("EC2 disk file operation failed: {e}");
                AwsError::new("InternalError", format!("volume storage failed: {e}"))
                    .with_status(500)
            })
    }

    /// Runs `change` on the caller's partition (made with its default VPC on first use)
    /// and, when it reports a change, stores the partition before answering.
    async fn with_partition<T>(
        &self,
        ctx: &RequestContext,
        change: impl FnOnce(&mut Partition, &RequestContext) -> Result<(T, bool), AwsError>,
    ) -> Result<T, AwsError> {
        let key = (ctx.account_id.clone(), ctx.region.clone());
        let commit = {
            let mut partitions = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = !partitions.contains_key(&key);
            let partition = partitions
                .entry(key.clone())
                .or_insert_with(|| network::new_partition(&ctx.region));
            let (out, changed) = change(partition, ctx)?;
            let commit = if changed || fresh {
                let mut batch = Batch::new();
                let encoded = serde_json::to_vec(&*partition)
                    .map_err(|e| AwsError::internal(e.to_string()))?;
                batch.put(
                    state::PARTITIONS,
                    state::partition_key(&key.0, &key.1),
                    encoded,
                );
                Some(self.store.submit(batch))
            } else {
                None
            };
            (out, commit)
        };
        if let Some(wait) = commit.1 {
            wait.await.map_err(|e| {
                tracing::error!("EC2 store commit failed: {e}");
                AwsError::new("InternalError", "An internal error has occurred").with_status(500)
            })?;
        }
        Ok(commit.0)
    }
}

/// Reads a partition without changing it.
fn read<T>(
    f: impl FnOnce(&Partition, &RequestContext) -> Result<T, AwsError>,
) -> impl FnOnce(&mut Partition, &RequestContext) -> Result<(T, bool), AwsError> {
    move |p, ctx| f(p, ctx).map(|out| (out, false))
}

/// Changes a partition.
fn write<T>(
    f: impl FnOnce(&mut Partition, &RequestContext) -> Result<T, AwsError>,
) -> impl FnOnce(&mut Partition, &RequestContext) -> Result<(T, bool), AwsError> {
    move |p, ctx| f(p, ctx).map(|out| (out, true))
}

impl Service for Ec2 {
    fn name(&self) -> &'static str {
        "ec2"
    }

    fn call<'a>(
        &'a self,
        ctx: &'a RequestContext,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, AwsError>> {
        Box::pin(async move {
            let i = &input;
            match operation {
                "DescribeRegions" => network::describe_regions(i),
                "DescribeAvailabilityZones" => network::describe_availability_zones(ctx, i),
                "DescribeVpcs" => {
                    self.with_partition(ctx, read(|p, c| network::describe_vpcs(p, c, i)))
                        .await
                }
                "DescribeSubnets" => {
                    self.with_partition(ctx, read(|p, c| network::describe_subnets(p, c, i)))
                        .await
                }
                "CreateSecurityGroup" => {
                    self.with_partition(ctx, write(|p, c| groups::create(p, c, i)))
                        .await
                }
                "DeleteSecurityGroup" => {
                    self.with_partition(ctx, write(|p, c| groups::delete(p, c, i)))
                        .await
                }
                "DescribeSecurityGroups" => {
                    self.with_partition(ctx, read(|p, c| groups::describe(p, c, i)))
                        .await
                }
                "DescribeSecurityGroupRules" => {
                    self.with_partition(ctx, read(|p, c| groups::describe_rules(p, c, i)))
                        .await
                }
                "AuthorizeSecurityGroupIngress" => {
                    let out = self
                        .with_partition(ctx, write(|p, c| groups::authorize(p, c, i, false)))
                        .await?;
                    self.refresh_firewalls((ctx.account_id.clone(), ctx.region.clone()));
                    Ok(out)
                }
                "AuthorizeSecurityGroupEgress" => {
                    self.with_partition(ctx, write(|p, c| groups::authorize(p, c, i, true)))
                        .await
                }
                "RevokeSecurityGroupIngress" => {
                    let out = self
                        .with_partition(ctx, write(|p, c| groups::revoke(p, c, i, false)))
                        .await?;
                    self.refresh_firewalls((ctx.account_id.clone(), ctx.region.clone()));
                    Ok(out)
                }
                "RevokeSecurityGroupEgress" => {
                    self.with_partition(ctx, write(|p, c| groups::revoke(p, c, i, true)))
                        .await
                }
                "CreateKeyPair" => {
                    let spec = input.clone();
                    // RSA generation takes tens of milliseconds: keep it off the async threads.
                    let created = tokio::task::spawn_blocking(move || keypairs::generate(&spec))
                        .await
                        .map_err(|e| AwsError::internal(e.to_string()))??;
                    self.with_partition(
                        ctx,
                        write(|p, c| keypairs::record_created(p, c, i, created)),
                    )
                    .await
                }
                "ImportKeyPair" => {
                    self.with_partition(ctx, write(|p, c| keypairs::import(p, c, i)))
                        .await
                }
                "DescribeKeyPairs" => {
                    self.with_partition(ctx, read(|p, _| keypairs::describe(p, i)))
                        .await
                }
                "DeleteKeyPair" => {
                    self.with_partition(ctx, write(|p, _| keypairs::delete(p, i)))
                        .await
                }
                "DescribeInstanceTypes" => instance_types::describe(i),
                "RunInstances" => self.run_instances(ctx, i).await,
                "DescribeInstances" => {
                    self.with_partition(ctx, read(|p, _| instances::describe(p, i)))
                        .await
                }
                "DescribeInstanceStatus" => {
                    self.with_partition(ctx, read(|p, _| instances::describe_status(p, i)))
                        .await
                }
                "StopInstances" => {
                    let out = self
                        .with_partition(ctx, write(|p, _| instances::stop(p, i)))
                        .await?;
                    self.reconcile_answer(ctx, &out, "StoppingInstances");
                    Ok(out)
                }
                "StartInstances" => {
                    let out = self
                        .with_partition(ctx, write(|p, _| instances::start(p, i)))
                        .await?;
                    self.reconcile_answer(ctx, &out, "StartingInstances");
                    Ok(out)
                }
                "TerminateInstances" => {
                    let out = self
                        .with_partition(ctx, write(|p, _| instances::terminate(p, i)))
                        .await?;
                    self.reconcile_answer(ctx, &out, "TerminatingInstances");
                    Ok(out)
                }
                "RebootInstances" => {
                    let ids = self
                        .with_partition(ctx, read(|p, _| instances::check_reboot(p, i)))
                        .await?;
                    for id in ids {
                        self.reboot(ctx, id);
                    }
                    Ok(serde_json::json!({}))
                }
                "ModifyInstanceAttribute" => {
                    let out = self
                        .with_partition(ctx, write(|p, _| instances::modify_attribute(p, i)))
                        .await?;
                    self.refresh_firewalls((ctx.account_id.clone(), ctx.region.clone()));
                    Ok(out)
                }
                "MonitorInstances" => {
                    self.with_partition(ctx, write(|p, _| instances::set_monitoring(p, i, true)))
                        .await
                }
                "UnmonitorInstances" => {
                    self.with_partition(ctx, write(|p, _| instances::set_monitoring(p, i, false)))
                        .await
                }
                "DescribeInstanceAttribute" => {
                    self.with_partition(ctx, read(|p, _| instances::describe_attribute(p, i)))
                        .await
                }
                "GetConsoleOutput" => {
                    let id = self
                        .with_partition(ctx, read(|p, _| instances::check_console(p, i)))
                        .await?;
                    Ok(self.console_output(&id))
                }
                "DescribeImages" => {
                    self.with_partition(ctx, read(|p, c| images::describe(p, c, i)))
                        .await
                }
                "CreateImage" => self.create_image(ctx, i).await,
                "AttachVolume" => self.attach_volume(ctx, i).await,
                "DetachVolume" => self.detach_volume(ctx, i).await,
                "AllocateAddress" => {
                    self.with_partition(
                        ctx,
                        write(|p, c| {
                            let pool = self.machines.address_pool();
                            addresses::allocate(p, c, i, pool, &mut self.machines.allocated())
                        }),
                    )
                    .await
                }
                "DescribeAddresses" => {
                    self.with_partition(ctx, read(|p, c| addresses::describe(p, c, i)))
                        .await
                }
                "AssociateAddress" => {
                    let (out, repoints) = self
                        .with_partition(ctx, write(|p, _| addresses::associate(p, i)))
                        .await?;
                    self.repoint(repoints);
                    Ok(out)
                }
                "DisassociateAddress" => {
                    let (out, repoints) = self
                        .with_partition(ctx, write(|p, _| addresses::disassociate(p, i)))
                        .await?;
                    self.repoint(repoints);
                    Ok(out)
                }
                "ReleaseAddress" => {
                    let ip = self
                        .with_partition(ctx, write(|p, _| addresses::release(p, i)))
                        .await?;
                    self.machines.allocated().remove(&ip);
                    self.machines.forwarder().remove(ip);
                    Ok(serde_json::json!({}))
                }
                "DeregisterImage" => {
                    self.with_partition(ctx, write(|p, c| images::deregister(p, c, i)))
                        .await?;
                    self.sweep_layers().await;
                    Ok(serde_json::json!({"Return": true}))
                }
                "CreateVolume" => {
                    let plan = self
                        .with_partition(ctx, read(|p, c| volumes::plan_create(p, c, i)))
                        .await?;
                    let (id, size, from) = (
                        plan.volume.id.clone(),
                        plan.volume.size_gib,
                        plan.from_snapshot.clone(),
                    );
                    self.on_disk(move |d| d.create_volume(&id, size, from.as_deref()))
                        .await?;
                    let id = plan.volume.id.clone();
                    let recorded = self
                        .with_partition(
                            ctx,
                            write(|p, _| Ok(volumes::record_volume(p, plan.volume))),
                        )
                        .await;
                    if recorded.is_err() {
                        self.disks.remove_volume(&id);
                    }
                    recorded
                }
                "DescribeVolumes" => {
                    self.with_partition(ctx, read(|p, _| volumes::describe_volumes(p, i)))
                        .await
                }
                "DescribeVolumesModifications" => {
                    self.with_partition(ctx, read(|p, _| volumes::describe_modifications(p, i)))
                        .await
                }
                "ModifyVolume" => {
                    let (modification, grow) = self
                        .with_partition(ctx, read(|p, c| volumes::plan_modify(p, c, i)))
                        .await?;
                    if let Some(size) = grow {
                        let id = modification.volume_id.clone();
                        self.on_disk(move |d| d.grow_volume(&id, size)).await?;
                    }
                    self.with_partition(ctx, write(|p, _| volumes::record_modify(p, modification)))
                        .await
                }
                "DeleteVolume" => {
                    let id = self
                        .with_partition(ctx, write(|p, _| volumes::delete_volume(p, i)))
                        .await?;
                    self.disks.remove_volume(&id);
                    Ok(serde_json::json!({}))
                }
                "CreateSnapshot" => {
                    let snapshot = self
                        .with_partition(ctx, read(|p, c| volumes::plan_snapshot(p, c, i)))
                        .await?;
                    let (volume, id, size) = (
                        snapshot.volume_id.clone(),
                        snapshot.id.clone(),
                        snapshot.volume_size,
                    );
                    self.on_disk(move |d| d.snapshot(&volume, &id, size))
                        .await?;
                    let id = snapshot.id.clone();
                    let recorded = self
                        .with_partition(
                            ctx,
                            write(|p, c| Ok(volumes::record_snapshot(p, c, snapshot))),
                        )
                        .await;
                    if recorded.is_err() {
                        self.disks.remove_snapshot(&id);
                    }
                    recorded
                }
                "DescribeSnapshots" => {
                    self.with_partition(ctx, read(|p, c| volumes::describe_snapshots(p, c, i)))
                        .await
                }
                "DeleteSnapshot" => {
                    let id = self
                        .with_partition(ctx, write(|p, _| volumes::delete_snapshot(p, i)))
                        .await?;
                    self.disks.remove_snapshot(&id);
                    Ok(serde_json::json!({}))
                }
                "CreateTags" => {
                    self.with_partition(ctx, write(|p, _| tags::create(p, i)))
                        .await
                }
                "DeleteTags" => {
                    self.with_partition(ctx, write(|p, _| tags::delete(p, i)))
                        .await
                }
                "DescribeTags" => {
                    self.with_partition(ctx, read(|p, _| tags::describe(p, i)))
                        .await
                }
                other => Err(AwsError::operation_not_implemented("ec2", "EC2", other)),
            }
        })
    }

    fn reset(&self) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(self.remove_everything())
    }

    fn hold_files(&self) -> BoxFuture<'_, Result<nimbus_core::FileHold, AwsError>> {
        Box::pin(async move {
            let me = self
                .me
                .upgrade()
                .ok_or_else(|| AwsError::internal("EC2 is shutting down"))?;
            // Freezing waits on the kernel, and sync(2) on the disks: off the async workers.
            tokio::task::spawn_blocking(move || me.hold_files())
                .await
                .map_err(|e| AwsError::internal(e.to_string()))
        })
    }
}

/// A new resource id in EC2's form: prefix, dash, 17 hex digits.
pub(crate) fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        nimbus_core::random_string(b"0123456789abcdef", 17)
    )
}
