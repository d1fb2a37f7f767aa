//! A REST service's plan: everything the codec needs from the model, worked
//! out once per model instead of on every request. It holds the routing table
//! (per HTTP method, URI templates ordered from most to least specific, each
//! with its operations ordered by how many query/header conditions they
//! demand) and, per operation, where each input and output member lives on
//! the wire (label, query key, header name, header prefix, status code,
//! payload or body) together with its scalar kind.
//!
//! The plan owns its strings and never borrows from the model, so it can be
//! cached beside a model of any lifetime (see `super::plan_for`).

use std::borrow::Cow;
use std::collections::HashMap;

use http::{HeaderMap, HeaderName};
use nimbus_core::AwsError;

#[cfg(test)]
use super::route::Segment;
use super::route::{parse_query_literals, PathPattern, QueryPair};
use crate::model::{ServiceModel, Shape, ShapeKind, ShapeRef};

/// Timestamp text forms a REST member may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TsFormat {
    Iso8601,
    Rfc822,
    Unix,
}

impl TsFormat {
    fn from_model(name: Option<&str>, default: TsFormat) -> TsFormat {
        match name {
            Some("iso8601") => TsFormat::Iso8601,
            Some("rfc822") => TsFormat::Rfc822,
            Some("unixTimestamp") => TsFormat::Unix,
            _ => default,
        }
    }

    /// The name `crate::timestamp::format` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            TsFormat::Iso8601 => "iso8601",
            TsFormat::Rfc822 => "rfc822",
            TsFormat::Unix => "unixTimestamp",
        }
    }
}

/// The kind of a value carried as text (label, query value, header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    String,
    Integer,
    Float,
    Boolean,
    Timestamp(TsFormat),
    /// Base64 text on the wire and in the value alike.
    Blob,
    /// A structure, list or map where only text can go: a model nimbus cannot bind; kept as a
    /// string so that nothing is lost.
    Unsupported,
}

impl Scalar {
    /// The model kind the shared text coercions (`crate::util`) take.
    pub fn shape_kind(self) -> ShapeKind {
        match self {
            Scalar::String | Scalar::Unsupported => ShapeKind::String,
            Scalar::Integer => ShapeKind::Long,
            Scalar::Float => ShapeKind::Double,
            Scalar::Boolean => ShapeKind::Boolean,
            Scalar::Timestamp(_) => ShapeKind::Timestamp,
            Scalar::Blob => ShapeKind::Blob,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Scalar(Scalar),
    List(Scalar),
    /// `headers` prefix maps and `querystring` maps; `lists` when each value is a list.
    Map {
        value: Scalar,
        lists: bool,
    },
}

/// One member bound to a place in the HTTP message.
#[derive(Debug, Clone)]
pub(super) struct Binding {
    pub member: String,
    /// Label name, query key, header name (as the model spells it) or lower-cased header prefix.
    pub key: String,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub(super) enum Payload {
    /// No `payload` trait: the members without a location form the body; `any` says whether
    /// there are such members at all.
    Members { any: bool },
    /// A blob payload: the raw body, base64 in the value; a streaming one is always present
    /// (an empty body is an empty object, not a missing one).
    Blob { member: String, streaming: bool },
    /// A string payload: the raw body as text.
    Text { member: String },
    /// A structure payload: an XML document whose root element is `root`, or a JSON object.
    Structure { member: String, root: String },
}

#[derive(Debug)]
pub(super) struct InputPlan {
    pub shape: String,
    /// Aligned with the matched template's labels.
    pub labels: Vec<Binding>,
    pub query: Vec<Binding>,
    /// A map member taking every query parameter no other member or literal claims.
    pub query_map: Option<Binding>,
    /// Keys of the template's literal query conditions (`tagging`, `list-type`).
    pub literal_query_keys: Vec<String>,
    /// Header members by header name: a request carries a handful of the dozens of headers
    /// an S3 input may bind, so decoding walks the request's headers and looks each up here.
    pub headers: HashMap<HeaderName, Binding>,
    pub header_maps: Vec<Binding>,
    pub payload: Payload,
}

#[derive(Debug)]
pub(super) struct OutputPlan {
    pub headers: Vec<Binding>,
    pub header_maps: Vec<Binding>,
    pub status_member: Option<String>,
    pub payload: Payload,
    /// For a members body or a structure payload: the document element's name and a reference
    /// to write it with, carrying the service namespace when the model leaves it out (AWS
    /// answers `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`).
    pub document: Option<(String, ShapeRef)>,
}

#[derive(Debug)]
pub(super) struct OpPlan {
    pub name: String,
    pub response_code: u16,
    pub input: Option<InputPlan>,
    pub output: Option<OutputPlan>,
}

/// One operation reachable under a URI template, with the conditions that select it.
#[derive(Debug)]
struct Route {
    op: usize,
    query_literals: Vec<(String, Option<String>)>,
    required_query: Vec<String>,
    required_headers: Vec<HeaderName>,
}

impl Route {
    fn conditions(&self) -> usize {
        self.query_literals.len() + self.required_query.len() + self.required_headers.len()
    }

    fn accepts(&self, query: &[QueryPair<'_>], headers: &HeaderMap) -> bool {
        self.query_literals.iter().all(|(key, value)| {
            query.iter().any(|(k, v)| {
                k.as_ref() == key && value.as_deref().is_none_or(|want| v.as_ref() == want)
            })
        }) && self
            .required_query
            .iter()
            .all(|key| query.iter().any(|(k, _)| k.as_ref() == key))
            && self
                .required_headers
                .iter()
                .all(|name| headers.contains_key(name))
    }
}

/// All operations sharing one path template under one method.
#[derive(Debug)]
struct PathGroup {
    pattern: PathPattern,
    /// Most conditions first, so the first accepting route is the most specific.
    routes: Vec<Route>,
}

#[derive(Debug)]
struct MethodTable {
    method: String,
    /// Most specific template first.
    groups: Vec<PathGroup>,
}

/// The operation a request resolved to, with its label values in template order.
pub(super) struct Resolved<'p> {
    pub op: &'p OpPlan,
    pub labels: Vec<String>,
}

#[derive(Debug)]
pub(super) struct ServicePlan {
    model_name: String,
    operation_count: usize,
    ops: Vec<OpPlan>,
    op_index: HashMap<String, usize>,
    methods: Vec<MethodTable>,
    /// The service's XML namespace, from any `xmlNamespace` in the model (botocore's models
    /// put it on inputs only, but AWS answers in the same namespace).
    pub namespace: Option<String>,
    /// S3 answers errors as a bare `<Error>` and sends `x-amz-id-2`.
    pub s3: bool,
}

impl ServicePlan {
    /// Whether this plan was built from `model` (guards the address-keyed cache).
    pub fn fits(&self, model: &ServiceModel) -> bool {
        self.model_name == model.name && self.operation_count == model.operations.len()
    }

    pub fn op(&self, name: &str) -> Option<&OpPlan> {
        self.op_index.get(name).map(|&i| &self.ops[i])
    }

    pub fn build(model: &ServiceModel) -> ServicePlan {
        let s3 = model.metadata.service_id.as_deref() == Some("S3")
            || (model.metadata.endpoint_prefix.as_deref() == Some("s3")
                && model.metadata.service_id.is_none());
        let namespace = model
            .metadata
            .xml_namespace
            .clone()
            .or_else(|| find_namespace(model));
        let mut ops = Vec::with_capacity(model.operations.len());
        let mut op_index = HashMap::with_capacity(model.operations.len());
        let mut methods: Vec<MethodTable> = Vec::new();
        for (name, operation) in &model.operations {
            let index = ops.len();
            let (path, query) = operation
                .http
                .request_uri
                .split_once('?')
                .unwrap_or((operation.http.request_uri.as_str(), ""));
            let pattern = PathPattern::parse(path);
            let query_literals = parse_query_literals(query);
            let input = operation
                .input
                .as_ref()
                .and_then(|r| input_plan(model, r, &pattern, &query_literals));
            let route = Route {
                op: index,
                query_literals,
                required_query: required_located(model, operation.input.as_ref(), "querystring")
                    .map(str::to_string)
                    .collect(),
                required_headers: required_located(model, operation.input.as_ref(), "header")
                    .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                    .collect(),
            };
            let output = operation
                .output
                .as_ref()
                .and_then(|r| output_plan(model, r, s3, namespace.as_deref()));
            ops.push(OpPlan {
                name: name.clone(),
                response_code: operation.http.response_code.unwrap_or(200),
                input,
                output,
            });
            op_index.insert(name.clone(), index);

            let method = operation.http.method.to_ascii_uppercase();
            let table = match methods.iter().position(|t| t.method == method) {
                Some(i) => &mut methods[i],
                None => {
                    methods.push(MethodTable {
                        method,
                        groups: Vec::new(),
                    });
                    let last = methods.len() - 1;
                    &mut methods[last]
                }
            };
            match table.groups.iter_mut().find(|g| g.pattern == pattern) {
                Some(group) => group.routes.push(route),
                None => table.groups.push(PathGroup {
                    pattern,
                    routes: vec![route],
                }),
            }
        }
        for table in &mut methods {
            // Stable sorts: among equals the model's order decides.
            table
                .groups
                .sort_by_cached_key(|g| std::cmp::Reverse(g.pattern.specificity()));
            for group in &mut table.groups {
                group
                    .routes
                    .sort_by_key(|r| std::cmp::Reverse(r.conditions()));
            }
        }
        ServicePlan {
            model_name: model.name.clone(),
            operation_count: model.operations.len(),
            ops,
            op_index,
            methods,
            namespace,
            s3,
        }
    }

    /// Finds the operation for a request: the most specific template matching the path, and in
    /// it the operation with the most conditions that the query and headers satisfy. A path
    /// differing from a template only by a trailing slash still matches when nothing matches
    /// exactly. No match: 405 `MethodNotAllowed` when another method serves the path, else 404
    /// `UnknownOperation` (the edge may answer S3's own codes from these).
    pub fn resolve(
        &self,
        method: &str,
        path: &mut Vec<Cow<'_, str>>,
        query: &[QueryPair<'_>],
        headers: &HeaderMap,
    ) -> Result<Resolved<'_>, AwsError> {
        let table = self
            .methods
            .iter()
            .find(|t| t.method.eq_ignore_ascii_case(method));
        let mut path_known = false;
        if let Some(table) = table {
            match self.resolve_in(table, path, query, headers) {
                Ok(found) => return Ok(found),
                Err(matched) => path_known |= matched,
            }
            match with_other_trailing_slash(path, |p| self.resolve_in(table, p, query, headers)) {
                Some(Ok(found)) => return Ok(found),
                Some(Err(matched)) => path_known |= matched,
                None => {}
            }
        }
        // A template of this method matched but no operation's query/header conditions did:
        // the method is fine, the request names an operation the model lacks.
        let mut scratch = Vec::new();
        let elsewhere = !path_known
            && self
                .methods
                .iter()
                .filter(|t| !t.method.eq_ignore_ascii_case(method))
                .any(|t| {
                    t.groups.iter().any(|g| {
                        scratch.clear();
                        g.pattern.matches(path, &mut scratch)
                    })
                });
        if elsewhere {
            Err(AwsError::new(
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            )
            .with_status(405)
            .with_field("Method", method))
        } else {
            Err(AwsError::new(
                "UnknownOperation",
                format!(
                    "No {} operation matches {method} /{}.",
                    self.model_name,
                    join_path(path)
                ),
            )
            .with_status(404))
        }
    }

    fn resolve_in<'p>(
        &'p self,
        table: &'p MethodTable,
        path: &[Cow<'_, str>],
        query: &[QueryPair<'_>],
        headers: &HeaderMap,
    ) -> Result<Resolved<'p>, bool> {
        let mut labels = Vec::new();
        let mut path_matched = false;
        for group in &table.groups {
            labels.clear();
            if !group.pattern.matches(path, &mut labels) {
                continue;
            }
            path_matched = true;
            if let Some(route) = group.routes.iter().find(|r| r.accepts(query, headers)) {
                return Ok(Resolved {
                    op: &self.ops[route.op],
                    labels,
                });
            }
        }
        Err(path_matched)
    }
}

/// Runs `f` on the path with its trailing slash removed, or with one added; `None` when the
/// path has no other form (`/`).
fn with_other_trailing_slash<T>(
    path: &mut Vec<Cow<'_, str>>,
    f: impl FnOnce(&[Cow<'_, str>]) -> T,
) -> Option<T> {
    if path.len() > 1 && path.last().is_some_and(|s| s.is_empty()) {
        let removed = path.pop();
        let found = f(path);
        if let Some(segment) = removed {
            path.push(segment);
        }
        Some(found)
    } else if path.last().is_some_and(|s| !s.is_empty()) {
        path.push(Cow::Borrowed(""));
        let found = f(path);
        path.pop();
        Some(found)
    } else {
        None
    }
}

fn join_path(path: &[Cow<'_, str>]) -> String {
    path.iter()
        .map(|s| s.as_ref())
        .collect::<Vec<_>>()
        .join("/")
}

/// Wire names of the input's required members at `location`: an operation that needs them
/// is chosen only when the request carries them (UploadPart needs `uploadId`, CopyObject
/// `x-amz-copy-source`, both share PutObject's template).
fn required_located<'m>(
    model: &'m ServiceModel,
    input: Option<&ShapeRef>,
    location: &'m str,
) -> impl Iterator<Item = &'m str> {
    let shape = input.and_then(|r| model.shape(&r.shape));
    shape.into_iter().flat_map(move |shape| {
        shape.required.iter().filter_map(move |name| {
            let member = shape.members.get(name)?;
            (member.location.as_deref() == Some(location))
                .then(|| member.location_name.as_deref().unwrap_or(name))
        })
    })
}

fn find_namespace(model: &ServiceModel) -> Option<String> {
    let uri = |r: &ShapeRef| {
        r.xml_namespace
            .as_ref()
            .and_then(|ns| ns.get("uri"))
            .and_then(|u| u.as_str())
            .map(str::to_string)
    };
    for operation in model.operations.values() {
        if let Some(found) = operation.input.as_ref().and_then(uri) {
            return Some(found);
        }
        let shape = operation.input.as_ref().and_then(|r| model.shape(&r.shape));
        if let Some(found) = shape.and_then(|s| s.members.values().find_map(uri)) {
            return Some(found);
        }
    }
    None
}

fn scalar_of(shape: &Shape, reference: &ShapeRef, ts_default: TsFormat) -> Scalar {
    match shape.kind {
        ShapeKind::String => Scalar::String,
        ShapeKind::Integer | ShapeKind::Long => Scalar::Integer,
        ShapeKind::Float | ShapeKind::Double => Scalar::Float,
        ShapeKind::Boolean => Scalar::Boolean,
        ShapeKind::Blob => Scalar::Blob,
        ShapeKind::Timestamp => Scalar::Timestamp(TsFormat::from_model(
            reference
                .timestamp_format
                .as_deref()
                .or(shape.timestamp_format.as_deref()),
            ts_default,
        )),
        ShapeKind::Structure | ShapeKind::List | ShapeKind::Map => Scalar::Unsupported,
    }
}

fn scalar_of_ref(
    model: &ServiceModel,
    reference: Option<&ShapeRef>,
    ts_default: TsFormat,
) -> Scalar {
    reference
        .and_then(|r| model.shape(&r.shape).map(|s| scalar_of(s, r, ts_default)))
        .unwrap_or(Scalar::String)
}

fn kind_of(model: &ServiceModel, reference: &ShapeRef, ts_default: TsFormat) -> Kind {
    let Some(shape) = model.shape(&reference.shape) else {
        return Kind::Scalar(Scalar::String);
    };
    match shape.kind {
        ShapeKind::List => Kind::List(scalar_of_ref(model, shape.member.as_ref(), ts_default)),
        ShapeKind::Map => {
            let value = shape.value.as_ref();
            let value_shape = value.and_then(|r| model.shape(&r.shape));
            match value_shape {
                Some(list) if list.kind == ShapeKind::List => Kind::Map {
                    value: scalar_of_ref(model, list.member.as_ref(), ts_default),
                    lists: true,
                },
                _ => Kind::Map {
                    value: scalar_of_ref(model, value, ts_default),
                    lists: false,
                },
            }
        }
        _ => Kind::Scalar(scalar_of(shape, reference, ts_default)),
    }
}

fn binding(
    model: &ServiceModel,
    member: &str,
    reference: &ShapeRef,
    ts_default: TsFormat,
) -> Binding {
    Binding {
        member: member.to_string(),
        key: reference
            .location_name
            .clone()
            .unwrap_or_else(|| member.to_string()),
        kind: kind_of(model, reference, ts_default),
    }
}

fn payload_of(model: &ServiceModel, shape: &Shape) -> Payload {
    let Some(member) = shape.payload.as_ref() else {
        return Payload::Members {
            any: shape.members.values().any(|m| m.location.is_none()),
        };
    };
    let Some(reference) = shape.members.get(member) else {
        return Payload::Members { any: false };
    };
    match model.shape(&reference.shape).map(|s| s.kind) {
        Some(ShapeKind::Blob) => Payload::Blob {
            member: member.clone(),
            streaming: reference.streaming
                || model.shape(&reference.shape).is_some_and(|s| s.streaming),
        },
        Some(ShapeKind::String) => Payload::Text {
            member: member.clone(),
        },
        _ => Payload::Structure {
            member: member.clone(),
            root: reference
                .location_name
                .clone()
                .or_else(|| {
                    model
                        .shape(&reference.shape)
                        .and_then(|s| s.location_name.clone())
                })
                .unwrap_or_else(|| reference.shape.clone()),
        },
    }
}

fn input_plan(
    model: &ServiceModel,
    reference: &ShapeRef,
    pattern: &PathPattern,
    query_literals: &[(String, Option<String>)],
) -> Option<InputPlan> {
    let shape = model.shape(&reference.shape)?;
    let mut plan = InputPlan {
        shape: reference.shape.clone(),
        labels: Vec::with_capacity(pattern.labels.len()),
        query: Vec::new(),
        query_map: None,
        literal_query_keys: query_literals.iter().map(|(k, _)| k.clone()).collect(),
        headers: HashMap::new(),
        header_maps: Vec::new(),
        payload: payload_of(model, shape),
    };
    let mut uri_members = Vec::new();
    for (name, member) in &shape.members {
        match member.location.as_deref() {
            Some("uri") => uri_members.push(binding(model, name, member, TsFormat::Iso8601)),
            Some("querystring") => {
                let bound = binding(model, name, member, TsFormat::Iso8601);
                if matches!(bound.kind, Kind::Map { .. }) {
                    plan.query_map = Some(bound);
                } else {
                    plan.query.push(bound);
                }
            }
            Some("header") => {
                let bound = binding(model, name, member, TsFormat::Rfc822);
                if let Ok(header) = HeaderName::from_bytes(bound.key.as_bytes()) {
                    plan.headers.insert(header, bound);
                }
            }
            Some("headers") => {
                let mut bound = binding(model, name, member, TsFormat::Rfc822);
                bound.key.make_ascii_lowercase();
                plan.header_maps.push(bound);
            }
            _ => {}
        }
    }
    for label in &pattern.labels {
        let found = uri_members.iter().position(|b| &b.key == label);
        plan.labels.push(match found {
            Some(i) => uri_members.swap_remove(i),
            // A template label with no member is a model defect; bind it under its own name.
            None => Binding {
                member: label.clone(),
                key: label.clone(),
                kind: Kind::Scalar(Scalar::String),
            },
        });
    }
    Some(plan)
}

/// botocore's S3 model lacks the `@xmlName` that Smithy's S3 model puts on output structures,
/// so the document elements AWS really sends are listed here (clients built on strict XML
/// binding, unlike botocore, check them).
const S3_OUTPUT_ROOTS: &[(&str, &str)] = &[
    (
        "CompleteMultipartUploadOutput",
        "CompleteMultipartUploadResult",
    ),
    (
        "CreateMultipartUploadOutput",
        "InitiateMultipartUploadResult",
    ),
    ("DeleteObjectsOutput", "DeleteResult"),
    (
        "GetBucketAccelerateConfigurationOutput",
        "AccelerateConfiguration",
    ),
    ("GetBucketAclOutput", "AccessControlPolicy"),
    ("GetBucketCorsOutput", "CORSConfiguration"),
    (
        "GetBucketLifecycleConfigurationOutput",
        "LifecycleConfiguration",
    ),
    ("GetBucketLifecycleOutput", "LifecycleConfiguration"),
    ("GetBucketLocationOutput", "LocationConstraint"),
    ("GetBucketLoggingOutput", "BucketLoggingStatus"),
    (
        "GetBucketRequestPaymentOutput",
        "RequestPaymentConfiguration",
    ),
    ("GetBucketTaggingOutput", "Tagging"),
    ("GetBucketVersioningOutput", "VersioningConfiguration"),
    ("GetBucketWebsiteOutput", "WebsiteConfiguration"),
    ("GetObjectAclOutput", "AccessControlPolicy"),
    ("GetObjectAttributesOutput", "GetObjectAttributesResponse"),
    ("GetObjectTaggingOutput", "Tagging"),
    (
        "ListBucketAnalyticsConfigurationsOutput",
        "ListBucketAnalyticsConfigurationResult",
    ),
    (
        "ListBucketInventoryConfigurationsOutput",
        "ListInventoryConfigurationsResult",
    ),
    (
        "ListBucketMetricsConfigurationsOutput",
        "ListMetricsConfigurationsResult",
    ),
    ("ListBucketsOutput", "ListAllMyBucketsResult"),
    (
        "ListDirectoryBucketsOutput",
        "ListAllMyDirectoryBucketsResult",
    ),
    ("ListMultipartUploadsOutput", "ListMultipartUploadsResult"),
    ("ListObjectVersionsOutput", "ListVersionsResult"),
    ("ListObjectsOutput", "ListBucketResult"),
    ("ListObjectsV2Output", "ListBucketResult"),
    ("ListPartsOutput", "ListPartsResult"),
];

fn output_plan(
    model: &ServiceModel,
    reference: &ShapeRef,
    s3: bool,
    namespace: Option<&str>,
) -> Option<OutputPlan> {
    let shape = model.shape(&reference.shape)?;
    let payload = payload_of(model, shape);
    let namespace_of = |r: &ShapeRef| {
        r.xml_namespace
            .clone()
            .or_else(|| namespace.map(|uri| serde_json::json!({ "uri": uri })))
    };
    let document = match &payload {
        Payload::Members { any: true } => {
            let root = reference
                .location_name
                .clone()
                .or_else(|| shape.location_name.clone())
                .or_else(|| {
                    s3.then(|| S3_OUTPUT_ROOTS.iter().find(|(s, _)| *s == reference.shape))
                        .flatten()
                        .map(|(_, root)| (*root).to_string())
                })
                .unwrap_or_else(|| reference.shape.clone());
            Some((
                root,
                ShapeRef {
                    shape: reference.shape.clone(),
                    xml_namespace: namespace_of(reference),
                    ..ShapeRef::default()
                },
            ))
        }
        Payload::Structure { member, root } => shape.members.get(member).map(|m| {
            (
                root.clone(),
                ShapeRef {
                    shape: m.shape.clone(),
                    xml_namespace: namespace_of(m),
                    flattened: m.flattened,
                    ..ShapeRef::default()
                },
            )
        }),
        _ => None,
    };
    let mut plan = OutputPlan {
        headers: Vec::new(),
        header_maps: Vec::new(),
        status_member: None,
        payload,
        document,
    };
    for (name, member) in &shape.members {
        match member.location.as_deref() {
            Some("header") => plan
                .headers
                .push(binding(model, name, member, TsFormat::Rfc822)),
            Some("headers") => {
                plan.header_maps
                    .push(binding(model, name, member, TsFormat::Rfc822))
            }
            Some("statusCode") => plan.status_member = Some(name.clone()),
            _ => {}
        }
    }
    Some(plan)
}

#[cfg(test)]
pub(super) fn describe_routes(plan: &ServicePlan) -> Vec<(String, String, Vec<String>)> {
    plan.methods
        .iter()
        .flat_map(|t| {
            t.groups.iter().map(|g| {
                (
                    t.method.clone(),
                    format!(
                        "{:?}",
                        g.pattern.segments.iter().map(seg_text).collect::<Vec<_>>()
                    ),
                    g.routes
                        .iter()
                        .map(|r| plan.ops[r.op].name.clone())
                        .collect(),
                )
            })
        })
        .collect()
}

#[cfg(test)]
fn seg_text(s: &Segment) -> String {
    match s {
        Segment::Literal(l) => l.clone(),
        Segment::Label { name, .. } => format!("{{{name}}}"),
        Segment::Greedy { name } => format!("{{{name}+}}"),
    }
}
