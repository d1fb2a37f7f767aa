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

mod filters;
mod geography;
mod groups;
mod instance_types;
mod keypairs;
mod network;
mod state;
mod tags;

use nimbus_core::{AwsError, BoxFuture, RequestContext, Service};
use nimbus_store::{Batch, Store};
use serde_json::Value;
use state::Partition;
use std::collections::HashMap;
use std::sync::Mutex;

pub struct Ec2 {
    store: Store,
    partitions: Mutex<HashMap<(String, String), Partition>>,
}

impl Ec2 {
    pub fn open(store: Store) -> Result<Ec2, String> {
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
        Ok(Ec2 {
            store,
            partitions: Mutex::new(partitions),
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
                    self.with_partition(ctx, write(|p, c| groups::authorize(p, c, i, false)))
                        .await
                }
                "AuthorizeSecurityGroupEgress" => {
                    self.with_partition(ctx, write(|p, c| groups::authorize(p, c, i, true)))
                        .await
                }
                "RevokeSecurityGroupIngress" => {
                    self.with_partition(ctx, write(|p, c| groups::revoke(p, c, i, false)))
                        .await
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
                other => Err(AwsError::new(
                    "InvalidAction",
                    format!("The action {other} is not valid for this web service."),
                )),
            }
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
