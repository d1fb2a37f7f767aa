//! The catalogue of every AWS service's wire address (`models/catalog.json`, made
//! by `tools/service-catalog.py` from botocore): the CLI name, service id,
//! protocol, target prefix, signing name and API version of each service, and
//! the full operation list of the services nimbus embeds a model of. The edge
//! uses it to recognise a request for a service or operation nimbus does not
//! serve, and to answer it in that service's own protocol. Parsed on first use:
//! only such requests pay for it.

use crate::model::{Metadata, ServiceModel};
use indexmap::IndexMap;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

#[derive(Deserialize)]
struct RawEntry {
    metadata: Metadata,
    #[serde(default)]
    operations: Vec<String>,
}

/// One AWS service as its clients address it.
pub struct CatalogEntry {
    /// The CLI's and botocore's name (`dynamodb`, `elb`, `logs`).
    pub name: String,
    /// Every operation of the service, for services nimbus embeds a model of; else empty.
    pub operations: Vec<String>,
    /// A model with the service's metadata and no operations: enough to encode an error
    /// in the service's protocol.
    pub model: ServiceModel,
}

impl CatalogEntry {
    /// The service's own name for itself (`DynamoDB`, `Elastic Load Balancing`).
    pub fn service_id(&self) -> &str {
        self.model
            .metadata
            .service_id
            .as_deref()
            .unwrap_or(&self.name)
    }

    pub fn has_operation(&self, operation: &str) -> bool {
        self.operations.iter().any(|o| o == operation)
    }
}

fn entries() -> &'static [CatalogEntry] {
    static PARSED: OnceLock<Vec<CatalogEntry>> = OnceLock::new();
    PARSED.get_or_init(|| {
        let raw: BTreeMap<String, RawEntry> =
            match serde_json::from_str(include_str!("../../../models/catalog.json")) {
                Ok(raw) => raw,
                Err(e) => {
                    // A broken embedded catalogue is a build defect; report it and go without.
                    eprintln!("nimbus: models/catalog.json: {e}");
                    BTreeMap::new()
                }
            };
        raw.into_iter()
            .map(|(name, entry)| CatalogEntry {
                model: ServiceModel {
                    name: name.clone(),
                    metadata: entry.metadata,
                    operations: IndexMap::new(),
                    shapes: IndexMap::new(),
                },
                name,
                operations: entry.operations,
            })
            .collect()
    })
}

/// The service named `name` as the CLI names it.
pub fn by_name(name: &str) -> Option<&'static CatalogEntry> {
    entries().iter().find(|e| e.name == name)
}

/// The service whose JSON `X-Amz-Target` starts with `prefix` (`DynamoDB_20120810`).
pub fn by_target_prefix(prefix: &str) -> Option<&'static CatalogEntry> {
    entries()
        .iter()
        .find(|e| e.model.metadata.target_prefix.as_deref() == Some(prefix))
}

/// The service a SigV4 credential scope or a host label names (`elasticloadbalancing`,
/// `logs`). Several services share a signing name (elb and elbv2); a query request's
/// `Version` picks among them, else the CLI name that equals the signing name wins.
pub fn by_signing_name(name: &str, api_version: Option<&str>) -> Option<&'static CatalogEntry> {
    let candidates: Vec<&CatalogEntry> = entries()
        .iter()
        .filter(|e| e.model.signing_name() == name)
        .collect();
    if let Some(version) = api_version {
        if let Some(e) = candidates
            .iter()
            .find(|e| e.model.metadata.api_version == version)
        {
            return Some(e);
        }
    }
    candidates
        .iter()
        .find(|e| e.name == name)
        .or(candidates.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;

    #[test]
    fn names_services_as_the_cli_does() {
        let ddb = by_target_prefix("DynamoDB_20120810").expect("dynamodb");
        assert_eq!(ddb.name, "dynamodb");
        assert_eq!(ddb.service_id(), "DynamoDB");
        assert_eq!(ddb.model.protocols(), vec![Protocol::Json10]);
        assert_eq!(
            by_signing_name("elasticloadbalancing", Some("2012-06-01")).map(|e| e.name.as_str()),
            Some("elb")
        );
        assert_eq!(
            by_signing_name("elasticloadbalancing", Some("2015-12-01")).map(|e| e.name.as_str()),
            Some("elbv2")
        );
        assert_eq!(
            by_signing_name("lambda", None).map(|e| e.name.as_str()),
            Some("lambda")
        );
        assert_eq!(
            by_signing_name("monitoring", None).map(|e| e.name.as_str()),
            Some("cloudwatch")
        );
    }

    #[test]
    fn knows_every_operation_of_embedded_services() {
        let ec2 = by_name("ec2").expect("ec2");
        assert!(ec2.has_operation("CreateVpc"));
        assert!(!ec2.has_operation("CreateVpcs"));
    }
}
