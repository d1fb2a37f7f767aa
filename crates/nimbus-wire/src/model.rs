//! The AWS service models nimbus serves, as data: the trimmed botocore
//! `service-2.json` files under `models/`, embedded in the binary and parsed on
//! first use (so start-up pays nothing for services nobody calls). Everything
//! the codecs need to know about a service's wire form is read from here.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use std::sync::OnceLock;

/// Which wire protocol a request arrived in (and its answer must use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Query,
    Ec2,
    Json10,
    Json11,
    RestXml,
    RestJson,
    RpcV2Cbor,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Query => "query",
            Protocol::Ec2 => "ec2",
            Protocol::Json10 => "json-1.0",
            Protocol::Json11 => "json-1.1",
            Protocol::RestXml => "rest-xml",
            Protocol::RestJson => "rest-json",
            Protocol::RpcV2Cbor => "smithy-rpc-v2-cbor",
        }
    }

    /// Parses the names used by `nimbus wire` and by model metadata (`json` needs the model's jsonVersion).
    pub fn from_name(name: &str, json_version: Option<&str>) -> Option<Protocol> {
        Some(match name {
            "query" => Protocol::Query,
            "ec2" => Protocol::Ec2,
            "json-1.0" => Protocol::Json10,
            "json-1.1" => Protocol::Json11,
            "json" => match json_version {
                Some("1.1") => Protocol::Json11,
                _ => Protocol::Json10,
            },
            "rest-xml" => Protocol::RestXml,
            "rest-json" => Protocol::RestJson,
            "smithy-rpc-v2-cbor" | "rpc-v2-cbor" => Protocol::RpcV2Cbor,
            _ => return None,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub api_version: String,
    pub endpoint_prefix: Option<String>,
    pub protocol: String,
    #[serde(default)]
    pub protocols: Vec<String>,
    pub json_version: Option<String>,
    pub target_prefix: Option<String>,
    pub xml_namespace: Option<String>,
    pub signing_name: Option<String>,
    pub service_id: Option<String>,
    /// Present (as an empty object) on JSON/CBOR services that keep query-protocol error codes.
    pub aws_query_compatible: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpTrait {
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub request_uri: String,
    pub response_code: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub name: String,
    #[serde(default)]
    pub http: HttpTrait,
    pub input: Option<ShapeRef>,
    pub output: Option<ShapeRef>,
    #[serde(default)]
    pub errors: Vec<ShapeRef>,
    /// `none` for operations AWS serves without a signature (AssumeRoleWithWebIdentity).
    pub authtype: Option<String>,
}

impl Operation {
    /// True when AWS answers this operation for an unsigned caller.
    pub fn allows_anonymous(&self) -> bool {
        self.authtype.as_deref() == Some("none")
    }
}

/// A reference to a shape, with the serialization traits that may sit on the reference.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShapeRef {
    pub shape: String,
    /// Where [`ServiceModel::target`] found the shape, so that resolving it again (once per
    /// element written) costs no hashing.
    #[serde(skip)]
    pub(crate) target_index: OnceLock<usize>,
    /// `uri`, `querystring`, `header`, `headers`, `statusCode` for REST protocols.
    pub location: Option<String>,
    pub location_name: Option<String>,
    /// EC2's explicit query key.
    pub query_name: Option<String>,
    #[serde(default)]
    pub flattened: bool,
    #[serde(default)]
    pub xml_attribute: bool,
    pub xml_namespace: Option<Value>,
    /// Query/EC2 outputs: the `<OpResult>` element wrapping the output members.
    pub result_wrapper: Option<String>,
    pub timestamp_format: Option<String>,
    #[serde(default)]
    pub streaming: bool,
    #[serde(default)]
    pub idempotency_token: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorTrait {
    pub code: Option<String>,
    pub http_status_code: Option<u16>,
    #[serde(default)]
    pub sender_fault: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shape {
    #[serde(rename = "type")]
    pub kind: ShapeKind,
    #[serde(default)]
    pub members: IndexMap<String, ShapeRef>,
    #[serde(default)]
    pub required: Vec<String>,
    pub member: Option<ShapeRef>,
    pub key: Option<ShapeRef>,
    pub value: Option<ShapeRef>,
    #[serde(default)]
    pub flattened: bool,
    pub location_name: Option<String>,
    /// REST: the member that is the whole HTTP body.
    /// A namespace the shape declares for itself (S3's Grantee declares `xsi` for its `xsi:type`).
    pub xml_namespace: Option<Value>,
    pub payload: Option<String>,
    pub error: Option<ErrorTrait>,
    #[serde(default)]
    pub exception: bool,
    #[serde(default)]
    pub fault: bool,
    pub timestamp_format: Option<String>,
    #[serde(default)]
    pub streaming: bool,
    #[serde(default)]
    pub union: bool,
    #[serde(rename = "enum")]
    pub enum_values: Option<Vec<String>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShapeKind {
    Structure,
    List,
    Map,
    String,
    Integer,
    Long,
    Float,
    Double,
    Boolean,
    Blob,
    Timestamp,
}

#[derive(Debug, Deserialize)]
pub struct ServiceModel {
    /// The model file's name (`sqs`, `sqs-query`, `s3`, ...), set after parsing.
    #[serde(skip)]
    pub name: String,
    pub metadata: Metadata,
    pub operations: IndexMap<String, Operation>,
    pub shapes: IndexMap<String, Shape>,
}

impl ServiceModel {
    pub fn parse(name: &str, json: &str) -> Result<ServiceModel, String> {
        let mut model: ServiceModel =
            serde_json::from_str(json).map_err(|e| format!("model {name}: {e}"))?;
        model.name = name.to_string();
        Ok(model)
    }

    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }

    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.get(name)
    }

    /// Every protocol this model may be spoken in, most preferred first.
    pub fn protocols(&self) -> Vec<Protocol> {
        let json_version = self.metadata.json_version.as_deref();
        let names: Vec<&str> = if self.metadata.protocols.is_empty() {
            vec![self.metadata.protocol.as_str()]
        } else {
            self.metadata.protocols.iter().map(String::as_str).collect()
        };
        names
            .into_iter()
            .filter_map(|n| Protocol::from_name(n, json_version))
            .collect()
    }

    pub fn is_query_compatible(&self) -> bool {
        self.metadata.aws_query_compatible.is_some()
    }

    /// The name the SigV4 credential scope uses for this service.
    pub fn signing_name(&self) -> &str {
        self.metadata
            .signing_name
            .as_deref()
            .or(self.metadata.endpoint_prefix.as_deref())
            .unwrap_or(&self.name)
    }
}

impl ServiceModel {
    /// The shape a reference points at (`None` only for a broken model).
    pub fn target(&self, r: &ShapeRef) -> Option<&Shape> {
        if let Some(&index) = r.target_index.get() {
            // A reference belongs to one model; the name check keeps a stray one honest.
            if let Some((name, shape)) = self.shapes.get_index(index) {
                if *name == r.shape {
                    return Some(shape);
                }
            }
        }
        let (index, _, shape) = self.shapes.get_full(&r.shape)?;
        let _ = r.target_index.set(index);
        Some(shape)
    }

    /// What nimbus knows about the error named `code`: a modelled error shape (by shape
    /// name, or by its query-compatible `error.code`) or nothing for a plain AWS code.
    ///
    /// JSON models of query-compatible services (SQS) carry no `error` traits, so the
    /// query code and status come from the companion query model when there is one.
    pub fn error_info(&self, code: &str) -> Option<ErrorInfo<'_>> {
        let (shape_name, shape) = match self.shapes.get_key_value(code) {
            Some((n, s)) if s.exception || s.error.is_some() => (n.as_str(), s),
            _ => self.shapes.iter().find_map(|(n, s)| {
                let trait_code = s.error.as_ref().and_then(|e| e.code.as_deref());
                (trait_code == Some(code)).then_some((n.as_str(), s))
            })?,
        };
        let companion = if shape.error.is_none() {
            model(&format!("{}-query", self.name))
                .and_then(|m| m.shapes.get(shape_name))
                .and_then(|s| s.error.as_ref())
        } else {
            None
        };
        let trait_ = shape.error.as_ref().or(companion);
        let code = trait_.and_then(|t| t.code.as_deref()).unwrap_or(shape_name);
        Some(ErrorInfo {
            shape_name,
            shape,
            query_code: code,
            status: trait_.and_then(|t| t.http_status_code),
            sender_fault: match trait_ {
                Some(t) if t.sender_fault => Some(true),
                _ if shape.fault => Some(false),
                Some(t) => t.http_status_code.map(|s| s < 500),
                None => None,
            },
        })
    }
}

/// A modelled error shape, resolved for encoding.
#[derive(Debug, Clone, Copy)]
pub struct ErrorInfo<'a> {
    /// The error shape's name (`QueueDoesNotExist`): what JSON/CBOR `__type` carries.
    pub shape_name: &'a str,
    pub shape: &'a Shape,
    /// The code query-protocol clients see (`AWS.SimpleQueueService.NonExistentQueue`);
    /// the shape name when the model gives none.
    pub query_code: &'a str,
    pub status: Option<u16>,
    /// From the model when it says; otherwise the error's own flag decides.
    pub sender_fault: Option<bool>,
}

impl ShapeRef {
    /// The serialized name this reference carries: its own `locationName`, else the target
    /// shape's (botocore merges shape-level serialization traits into every reference).
    pub fn location_name_in<'a>(&'a self, target: &'a Shape) -> Option<&'a str> {
        self.location_name
            .as_deref()
            .or(target.location_name.as_deref())
    }

    /// Whether the list or map this reference points at is flattened (on the reference or the shape).
    pub fn is_flattened(&self, target: &Shape) -> bool {
        self.flattened || target.flattened
    }

    /// The reference's `timestampFormat`, else the shape's.
    pub fn timestamp_format_in<'a>(&'a self, target: &'a Shape) -> Option<&'a str> {
        self.timestamp_format
            .as_deref()
            .or(target.timestamp_format.as_deref())
    }
}

/// The models compiled into nimbus: (file name, JSON text).
const EMBEDDED: &[(&str, &str)] = &[
    ("sqs", include_str!("../../../models/sqs.json")),
    ("sqs-query", include_str!("../../../models/sqs-query.json")),
    ("sts", include_str!("../../../models/sts.json")),
    (
        "cloudwatch",
        include_str!("../../../models/cloudwatch.json"),
    ),
    ("logs", include_str!("../../../models/logs.json")),
    ("ec2", include_str!("../../../models/ec2.json")),
    ("iam", include_str!("../../../models/iam.json")),
    ("route53", include_str!("../../../models/route53.json")),
    ("s3", include_str!("../../../models/s3.json")),
    ("glacier", include_str!("../../../models/glacier.json")),
];

static PARSED: [OnceLock<Option<ServiceModel>>; EMBEDDED.len()] =
    [const { OnceLock::new() }; EMBEDDED.len()];

/// The embedded model named `name` (e.g. `sqs`), parsed on first use.
pub fn model(name: &str) -> Option<&'static ServiceModel> {
    let index = EMBEDDED.iter().position(|(n, _)| *n == name)?;
    PARSED[index]
        .get_or_init(
            || match ServiceModel::parse(EMBEDDED[index].0, EMBEDDED[index].1) {
                Ok(m) => Some(m),
                Err(e) => {
                    // A broken embedded model is a build defect; report it and serve without it.
                    eprintln!("nimbus: {e}");
                    None
                }
            },
        )
        .as_ref()
}

/// The embedded model named `name` with its metadata alone (no operations, no
/// shapes): what routing a request needs (protocols, signing name, target prefix).
/// Parsed on first use from the head of the JSON, so that naming every served
/// service costs microseconds and the full models wait for their service's
/// first request.
pub fn head(name: &str) -> Option<&'static ServiceModel> {
    static HEADS: [OnceLock<Option<ServiceModel>>; EMBEDDED.len()] =
        [const { OnceLock::new() }; EMBEDDED.len()];
    let index = EMBEDDED.iter().position(|(n, _)| *n == name)?;
    HEADS[index]
        .get_or_init(|| {
            let (name, json) = EMBEDDED[index];
            match read_metadata(json) {
                Ok(metadata) => Some(ServiceModel {
                    name: name.to_string(),
                    metadata,
                    operations: IndexMap::new(),
                    shapes: IndexMap::new(),
                }),
                Err(e) => {
                    eprintln!("nimbus: model {name}: {e}");
                    None
                }
            }
        })
        .as_ref()
}

/// The `metadata` member of a model's JSON. The trimmed models open with it
/// (`tools/trim-model.py` sorts their keys), so it is read alone there, without
/// scanning the operations and shapes after it; any other layout is skipped through.
fn read_metadata(json: &str) -> Result<Metadata, serde_json::Error> {
    let first = json
        .trim_start()
        .strip_prefix('{')
        .map(str::trim_start)
        .and_then(|rest| rest.strip_prefix("\"metadata\""))
        .map(str::trim_start)
        .and_then(|rest| rest.strip_prefix(':'));
    if let Some(value) = first {
        let mut values = serde_json::Deserializer::from_str(value).into_iter::<Metadata>();
        if let Some(Ok(metadata)) = values.next() {
            return Ok(metadata);
        }
    }
    #[derive(Deserialize)]
    struct Whole {
        metadata: Metadata,
    }
    serde_json::from_str::<Whole>(json).map(|w| w.metadata)
}

/// Names of every embedded model.
pub fn model_names() -> impl Iterator<Item = &'static str> {
    EMBEDDED.iter().map(|(n, _)| *n)
}

/// The model to decode and encode `service` in `protocol`: the service's own model when it
/// speaks that protocol, else a companion model `{service}-{protocol}` kept for older clients
/// (SQS's query form lives in `sqs-query`).
pub fn model_for(service: &str, protocol: Protocol) -> Option<&'static ServiceModel> {
    let main = model(service)?;
    let spoken = main.protocols();
    if spoken.contains(&protocol) {
        return Some(main);
    }
    // Smithy's RPC v2 CBOR carries the same shapes as AWS JSON, and SDKs that moved to
    // CBOR send it to JSON services before their models say so.
    if protocol == Protocol::RpcV2Cbor
        && spoken
            .iter()
            .any(|p| matches!(p, Protocol::Json10 | Protocol::Json11))
    {
        return Some(main);
    }
    let companion = match protocol {
        Protocol::Query => model(&format!("{service}-query")),
        _ => None,
    }?;
    companion
        .protocols()
        .contains(&protocol)
        .then_some(companion)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_model_parses() {
        for name in model_names() {
            let m = model(name).unwrap_or_else(|| panic!("{name} does not parse"));
            assert!(!m.operations.is_empty(), "{name}");
            assert!(!m.protocols().is_empty(), "{name}");
        }
    }

    #[test]
    fn heads_carry_the_metadata_of_their_models() {
        for name in model_names() {
            let (head, full) = (head(name).unwrap(), model(name).unwrap());
            assert!(
                head.operations.is_empty() && head.shapes.is_empty(),
                "{name}"
            );
            assert_eq!(head.name, full.name);
            assert_eq!(head.signing_name(), full.signing_name(), "{name}");
            assert_eq!(head.protocols(), full.protocols(), "{name}");
            assert_eq!(
                head.metadata.target_prefix, full.metadata.target_prefix,
                "{name}"
            );
        }
        assert!(head("nonesuch").is_none());
    }

    #[test]
    fn metadata_is_found_wherever_it_stands() {
        let first =
            r#"{"metadata":{"apiVersion":"1","protocol":"json","targetPrefix":"A"},"shapes":{}}"#;
        let later = r#"{"shapes":{"x":{"type":"string"}}, "metadata" : {"apiVersion":"2","protocol":"query"}}"#;
        assert_eq!(
            read_metadata(first).unwrap().target_prefix.as_deref(),
            Some("A")
        );
        assert_eq!(read_metadata(later).unwrap().api_version, "2");
        assert!(read_metadata(r#"{"shapes":{}}"#).is_err());
    }

    #[test]
    fn sqs_query_uses_companion_model() {
        assert_eq!(
            model_for("sqs", Protocol::Json10).map(|m| m.name.as_str()),
            Some("sqs")
        );
        assert_eq!(
            model_for("sqs", Protocol::Query).map(|m| m.name.as_str()),
            Some("sqs-query")
        );
        assert!(model_for("sqs", Protocol::RestXml).is_none());
        assert_eq!(
            model_for("sqs", Protocol::RpcV2Cbor).map(|m| m.name.as_str()),
            Some("sqs")
        );
        assert!(model_for("sts", Protocol::RpcV2Cbor).is_none());
        assert_eq!(
            model_for("cloudwatch", Protocol::RpcV2Cbor).map(|m| m.name.as_str()),
            Some("cloudwatch")
        );
    }
}
