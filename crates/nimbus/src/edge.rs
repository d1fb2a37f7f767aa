//! The edge: every request to the one port passes through here, in order:
//! internal endpoints (`/_nimbus/*`), S3 addressing (virtual-hosted buckets
//! are rewritten to path style; website endpoints and browser-form uploads
//! branch off), signature claim, service and protocol detection,
//! authentication (account mapping; verification under `--auth enforce`),
//! body handling (buffered and unwrapped from aws-chunked, or handed to a
//! streaming service as a stream), then the model-driven codec and the
//! service. The edge knows how AWS clients address services, never what a
//! service means.

pub(crate) mod body;
mod internal;
mod post;
mod s3api;
mod s3host;

pub(crate) use body::{full, HttpBody};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use nimbus_auth::{Claim, HttpParts, Streaming};
use nimbus_core::{
    AwsError, CredentialRegistry, Reply, RequestBody, RequestContext, ResponseBody, Service,
};
use nimbus_wire::{Protocol, ServiceModel, WireRequest, WireResponse};
use s3host::S3Host;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest request body accepted in one piece (SQS allows 256 KiB; this leaves room for batches and other services).
const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Accept any well-formed signature; the access key only selects the account.
    Open,
    /// Verify every signature against known credentials.
    Enforce,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Open => "open",
            AuthMode::Enforce => "enforce",
        }
    }
}

pub struct EdgeConfig {
    pub auth: AuthMode,
    pub default_account: String,
    pub default_region: String,
    pub data_dir: String,
    pub durable: bool,
    /// How EC2 instances run here ("namespace" or "process"), for `nimbus status`.
    pub instance_driver: &'static str,
    /// The root access key: under `--auth enforce` only it may use nimbus's own
    /// endpoints that change state (reset, lifecycle runs).
    pub root_access_key_id: String,
    /// The cloud's clock, whose scale and time `nimbus status` reports.
    pub clock: nimbus_core::clock::CloudClock,
}

/// How a request names its service and protocol, learned from each registered
/// model's metadata ([`nimbus_wire::model::head`]); the full model, which decoding
/// and encoding need, is parsed on the service's first request.
struct Route {
    service: &'static str,
    head: &'static ServiceModel,
}

impl Route {
    /// The service's full model (operations and shapes), parsed on first use.
    fn model(&self) -> Option<&'static ServiceModel> {
        nimbus_wire::model(self.service)
    }
}

pub struct Edge {
    config: EdgeConfig,
    services: BTreeMap<&'static str, Arc<dyn Service>>,
    routes: Vec<Route>,
    credentials: Arc<CredentialRegistry>,
    /// S3 also answers outside its API (website endpoints, browser uploads, CORS preflight).
    s3: Option<Arc<nimbus_s3::S3>>,
    /// Save and load of the whole state (`/_nimbus/state/...`).
    state: Option<Arc<crate::state::Plane>>,
    /// The metrics of the cloud in Prometheus text (`/_nimbus/metrics`).
    metrics_export: Option<Arc<dyn nimbus_core::telemetry::MetricsExport>>,
}

/// A request after the body is read (or set aside for streaming): everything later steps look at.
struct Incoming<'a> {
    method: &'a str,
    /// The path as sent and signed.
    path: &'a str,
    /// The path the codec decodes: path style even for virtual-hosted S3 requests.
    wire_path: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    body: Bytes,
    /// The body as sent when `body` is it inflated (request compression):
    /// what the signature's payload hash covers.
    sent_body: Option<Bytes>,
    form: Vec<(String, String)>,
    /// The body is streamed to the service: signatures cover the claimed payload hash,
    /// which the stream checks at its end.
    streamed: bool,
    remote: Option<SocketAddr>,
}

impl Edge {
    pub fn new(
        config: EdgeConfig,
        services: BTreeMap<&'static str, Arc<dyn Service>>,
        credentials: Arc<CredentialRegistry>,
        s3: Option<Arc<nimbus_s3::S3>>,
    ) -> Edge {
        let routes = services
            .keys()
            .filter_map(|name| {
                nimbus_wire::model::head(name).map(|head| Route {
                    service: name,
                    head,
                })
            })
            .collect();
        Edge {
            config,
            services,
            routes,
            credentials,
            s3,
            state: None,
            metrics_export: None,
        }
    }

    /// Serves `GET /_nimbus/metrics` from `export`.
    pub fn with_metrics_export(
        mut self,
        export: Arc<dyn nimbus_core::telemetry::MetricsExport>,
    ) -> Edge {
        self.metrics_export = Some(export);
        self
    }

    /// Serves `/_nimbus/state/save` and `/load` through `plane`.
    pub fn with_state(mut self, plane: Arc<crate::state::Plane>) -> Edge {
        self.state = Some(plane);
        self
    }

    /// Answers one request and writes its line in the request log.
    pub async fn handle(
        &self,
        req: Request<hyper::body::Incoming>,
        remote: Option<SocketAddr>,
    ) -> Response<HttpBody> {
        let started = std::time::Instant::now();
        crate::trim::note_request();
        // Both are reference-counted: the log line costs no copy of them.
        let method = req.method().clone();
        let uri = req.uri().clone();
        let (response, note) = crate::log::scoped(self.answer(req, remote)).await;
        crate::log::request(
            &note,
            method.as_str(),
            uri.path(),
            response.status().as_u16(),
            started.elapsed(),
        );
        response
    }

    async fn answer(
        &self,
        req: Request<hyper::body::Incoming>,
        remote: Option<SocketAddr>,
    ) -> Response<HttpBody> {
        let request_id = nimbus_core::new_request_id();
        let (mut parts, body) = req.into_parts();
        // HTTP/2 carries the host in :authority, but every client signs `host`.
        if !parts.headers.contains_key(http::header::HOST) {
            if let Some(authority) = parts
                .uri
                .authority()
                .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
            {
                parts.headers.insert(http::header::HOST, authority);
            }
        }
        let path = parts.uri.path().to_string();
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost:4566")
            .to_string();
        if path.starts_with("/_nimbus/")
            || path.starts_with("/_localstack/")
            || crate::reset::is_moto_request(&parts)
        {
            crate::log::note(|n| n.service = Some("nimbus".into()));
            return self
                .internal(&parts, body, &path, &host, remote, &request_id)
                .await;
        }

        // S3 names buckets in the host too; such requests are decoded in path style.
        let mut wire_path = path.clone();
        if self.s3.is_some() {
            let is_service = |name: &str| {
                self.routes
                    .iter()
                    .any(|r| r.service == name || r.head.signing_name() == name)
            };
            match s3host::parse(&host, &is_service) {
                Some(S3Host::Website(bucket)) => {
                    crate::log::note(|n| {
                        n.service = Some("s3".into());
                        n.operation = Some("Website".into());
                    });
                    return self
                        .website(&parts, &bucket, &path, &host, remote, &request_id, "")
                        .await;
                }
                Some(S3Host::Bucket(bucket)) => wire_path = format!("/{bucket}{path}"),
                None => {}
            }
        }
        if wire_path == "/" && crate::console::wants_first_page(&parts) {
            crate::log::note(|n| n.service = Some("nimbus".into()));
            return crate::console::first_page(&self.health_states(), &self.config);
        }
        let origin = header_str(&parts.headers, "origin").map(str::to_string);
        // Every OPTIONS to S3 is a CORS preflight (S3 has no OPTIONS operation).
        if parts.method == http::Method::OPTIONS && self.s3.is_some() && !is_rpc_request(&parts) {
            crate::log::note(|n| {
                n.service = Some("s3".into());
                n.operation = Some("PreflightRequest".into());
            });
            return self.preflight(&parts.headers, &wire_path, &request_id);
        }
        let mut response = if is_form_upload(&parts) && self.s3.is_some() {
            crate::log::note(|n| {
                n.service = Some("s3".into());
                n.operation = Some("PostObject".into());
            });
            self.post_object(&parts, body, &wire_path, &host, remote, &request_id)
                .await
        } else {
            self.api(&parts, body, &path, &wire_path, host, remote, request_id)
                .await
        };
        if let (Some(s3), Some(origin)) = (&self.s3, origin) {
            if let Some(bucket) = bucket_of(&wire_path) {
                for (name, value) in s3.cors_headers(bucket, Some(&origin), parts.method.as_str()) {
                    if let (Ok(n), Ok(v)) = (
                        http::HeaderName::from_bytes(name.as_bytes()),
                        http::HeaderValue::from_str(&value),
                    ) {
                        response.headers_mut().insert(n, v);
                    }
                }
            }
        }
        response
    }

    /// An AWS API request: buffered, or streamed when the service takes this operation's body as a stream.
    #[allow(clippy::too_many_arguments)]
    async fn api(
        &self,
        parts: &http::request::Parts,
        body: hyper::body::Incoming,
        path: &str,
        wire_path: &str,
        host: String,
        remote: Option<SocketAddr>,
        request_id: String,
    ) -> Response<HttpBody> {
        let mut incoming = Incoming {
            method: parts.method.as_str(),
            path,
            wire_path,
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body: Bytes::new(),
            sent_body: None,
            form: Vec::new(),
            streamed: false,
            remote,
        };
        if parts.method == http::Method::PUT {
            if let Some(found) = self.streaming_operation(&incoming, &host) {
                let (claim, route, operation) = match found {
                    Ok(found) => found,
                    Err(e) => return to_http(generic_error(&e, &request_id), None),
                };
                incoming.streamed = true;
                return self
                    .dispatch_streaming(incoming, claim, route, operation, body, host, request_id)
                    .await;
            }
        }
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                let err = AwsError::new("RequestEntityTooLarge", "The request body is too large.")
                    .with_status(413);
                return to_http(generic_error(&err, &request_id), None);
            }
            // A body shorter than its Content-Length, or broken chunked framing.
            Err(_) => {
                let err =
                    AwsError::new("IncompleteBody", "The request body terminated unexpectedly");
                return to_http(generic_error(&err, &request_id), None);
            }
        };
        // SDKs gzip large bodies of some RPC calls (the model's request
        // compression, e.g. PutMetricData): the signature covers the bytes as
        // sent; everything after reads them inflated.
        let body = if is_compressed_rpc(parts) {
            match inflate(&body) {
                Ok(inflated) => {
                    incoming.sent_body = Some(body);
                    inflated
                }
                Err(e) => return to_http(generic_error(&e, &request_id), None),
            }
        } else {
            body
        };
        incoming.form = if is_aws_chunked(&parts.headers) {
            Vec::new()
        } else {
            form_params(&parts.headers, &body)
        };
        incoming.body = body;
        let (wire, reply_body) = self.dispatch(incoming, host, request_id).await;
        to_http(wire, reply_body)
    }

    async fn dispatch(
        &self,
        mut req: Incoming<'_>,
        host: String,
        request_id: String,
    ) -> (WireResponse, Option<Reply>) {
        let plain = |w: WireResponse| (w, None);
        let http_parts = HttpParts {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers,
        };
        let claim = match nimbus_auth::parse_claim(&http_parts, &req.form, None) {
            Ok(claim) => claim,
            Err(e) => return plain(generic_error(&e, &request_id)),
        };
        // aws-chunked bodies are unwrapped first: what they carry may be the form that names the action.
        match self.decode_streaming(&req, &claim) {
            Ok(Some(body)) => {
                req.body = body;
                req.form = form_params(req.headers, &req.body);
            }
            Ok(None) => {}
            Err(e) => return plain(generic_error(&e, &request_id)),
        }
        let (route, protocol) = match self.route(&req, &claim, &host) {
            Ok(found) => found,
            Err(unrouted) => {
                if let Unrouted::Unserved(_, protocol) = &unrouted {
                    let operation = requested_operation(&req, *protocol);
                    let region = claim.region().map(str::to_string);
                    crate::log::note(|n| {
                        n.operation = operation;
                        n.region = region;
                    });
                }
                return plain(unrouted.answer(&request_id));
            }
        };
        crate::log::note(|n| n.service = Some(route.service.to_string()));
        let Some(model) = nimbus_wire::model_for(route.service, protocol) else {
            let e = AwsError::new(
                "UnsupportedProtocol",
                format!("{} does not speak {}", route.service, protocol.name()),
            );
            return plain(generic_error(&e, &request_id));
        };
        // JSON-era services name signature errors differently; query-compatible ones keep the query codes.
        let json_names = is_json_family(protocol) && !model.is_query_compatible();
        let fail = |e: &AwsError| {
            crate::log::note_error(&e.code);
            plain(nimbus_wire::encode_error(model, protocol, e, &request_id))
        };

        let now_ms = nimbus_core::now_millis();
        let ctx = match self.authenticate(&req, &claim, route, host, now_ms, request_id.clone()) {
            Ok(ctx) => ctx,
            Err(e) if json_names => return fail(&nimbus_auth::for_json_protocol(e)),
            Err(e) => return fail(&e),
        };
        crate::log::note(|n| {
            n.account = Some(match ctx.access_key_id {
                Some(_) => ctx.account_id.clone(),
                None => "anonymous".to_string(),
            });
            n.region = Some(ctx.region.clone());
        });
        let wire = WireRequest {
            method: req.method,
            path: req.wire_path,
            query: req.query,
            headers: req.headers,
            body: &req.body,
        };
        let (operation, mut input) = match nimbus_wire::decode(model, protocol, &wire) {
            Ok(decoded) => decoded,
            Err(e) => {
                // An operation AWS has but nimbus does not (yet) is named as such.
                let asked = requested_operation(&req, protocol);
                let known = asked.as_deref().and_then(|op| {
                    nimbus_wire::catalog::by_name(route.service)
                        .filter(|entry| entry.has_operation(op) && model.operation(op).is_none())
                        .map(|entry| (entry, op))
                });
                return match known {
                    Some((entry, op)) => {
                        crate::log::note(|n| n.operation = Some(op.to_string()));
                        fail(&AwsError::operation_not_implemented(
                            &entry.name,
                            entry.service_id(),
                            op,
                        ))
                    }
                    None => fail(&e),
                };
            }
        };
        crate::log::note(|n| n.operation = Some(operation.clone()));
        let Some(service) = self.services.get(route.service) else {
            return fail(&AwsError::internal("service vanished"));
        };
        // Unsigned callers are refused unless the service judges them itself (S3's
        // policies) or AWS serves the operation without a signature.
        if ctx.access_key_id.is_none()
            && !service.admits_anonymous()
            && !model
                .operation(&operation)
                .is_some_and(|op| op.allows_anonymous())
        {
            let e = nimbus_auth::missing_authentication_error(model.signing_name());
            return fail(&if json_names {
                nimbus_auth::for_json_protocol(e)
            } else {
                e
            });
        }
        if protocol == Protocol::Query {
            address_by_queue_path(model, &operation, req.path, &ctx.host, &mut input);
        }
        match service
            .call_streaming(&ctx, &operation, input, RequestBody::empty())
            .await
        {
            Ok(reply) => encode_reply(model, protocol, &operation, reply, &request_id),
            Err(e) => fail(&e),
        }
    }

    /// Picks the service and protocol the way AWS endpoints tell them apart: the
    /// Smithy RPC v2 path, `X-Amz-Target`, the query `Action`, the SigV4 scope, the host name.
    /// A request for a service nimbus does not serve is recognised by the same evidence
    /// against the catalogue of every AWS service.
    fn route(
        &self,
        req: &Incoming,
        claim: &Claim,
        host: &str,
    ) -> Result<(&Route, Protocol), Unrouted> {
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let scope_service = match claim {
            Claim::V4 { service, .. } => Some(service.as_str()),
            _ => None,
        };
        let by_signing_name = |name: &str| {
            self.routes
                .iter()
                .find(|r| r.head.signing_name() == name || r.service == name)
        };
        let host_label = host.split(['.', ':']).next().unwrap_or("");
        let by_host = || by_signing_name(host_label);
        // The service a scope or host names, when nimbus does not serve it.
        let unserved = |api_version: Option<&str>| {
            scope_service
                .or(Some(host_label))
                .filter(|name| by_signing_name(name).is_none())
                .and_then(|name| nimbus_wire::catalog::by_signing_name(name, api_version))
        };

        if header("smithy-protocol") == Some("rpc-v2-cbor") {
            let service_name = req
                .path
                .strip_prefix("/service/")
                .and_then(|rest| rest.split('/').next())
                .unwrap_or("");
            if let Some(route) = self
                .routes
                .iter()
                .find(|r| target_prefix(r.head) == Some(service_name))
                .or_else(|| scope_service.and_then(by_signing_name))
            {
                return Ok((route, Protocol::RpcV2Cbor));
            }
            return Err(
                match nimbus_wire::catalog::by_target_prefix(service_name)
                    .or_else(|| unserved(None))
                {
                    Some(entry) => Unrouted::Unserved(entry, Protocol::RpcV2Cbor),
                    None => Unrouted::Error(unknown_service(service_name)),
                },
            );
        }

        if let Some(target) = header("x-amz-target") {
            let prefix = target.split('.').next().unwrap_or("");
            let protocol_of = |model: &ServiceModel| match header("content-type") {
                Some(ct) if ct.contains("x-amz-json-1.1") => Protocol::Json11,
                Some(ct) if ct.contains("x-amz-json-1.0") => Protocol::Json10,
                _ => json_protocol(model),
            };
            if let Some(route) = self
                .routes
                .iter()
                .find(|r| target_prefix(r.head) == Some(prefix))
            {
                return Ok((route, protocol_of(route.head)));
            }
            return Err(match nimbus_wire::catalog::by_target_prefix(prefix) {
                Some(entry) => Unrouted::Unserved(entry, protocol_of(&entry.model)),
                None => Unrouted::Error(unknown_service(prefix)),
            });
        }

        let param = |name: &str| {
            req.form
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| query_param(req.query, name))
        };
        if let Some(action) = param("Action") {
            let route = scope_service
                .and_then(by_signing_name)
                .or_else(by_host)
                .or_else(|| {
                    if scope_service.is_some() {
                        return None;
                    }
                    // Unsigned or SigV2 query calls: the one registered service with that action.
                    let mut owners = self
                        .routes
                        .iter()
                        .filter(|r| r.model().is_some_and(|m| m.operation(&action).is_some()));
                    let first = owners.next();
                    first.filter(|_| owners.next().is_none())
                });
            let Some(route) = route else {
                return Err(match unserved(param("Version").as_deref()) {
                    Some(entry) => Unrouted::Unserved(entry, query_protocol(&entry.model)),
                    None => Unrouted::Error(AwsError::new(
                        "InvalidAction",
                        format!("Could not find a service for the action {action}."),
                    )),
                });
            };
            return Ok((route, query_protocol(route.head)));
        }

        // Everything else is S3's, which clients address by path or bucket host name,
        // unless the signature names a REST service nimbus does not serve.
        let route = match scope_service {
            Some(name) => by_signing_name(name),
            None => by_host().or_else(|| by_signing_name("s3")),
        };
        let Some(route) = route else {
            return Err(match unserved(None) {
                Some(entry) => {
                    let protocol = entry
                        .model
                        .protocols()
                        .into_iter()
                        .next()
                        .unwrap_or(Protocol::RestJson);
                    Unrouted::Unserved(entry, protocol)
                }
                None => Unrouted::Error(unknown_service(scope_service.unwrap_or("s3"))),
            });
        };
        let protocol = route
            .head
            .protocols()
            .into_iter()
            .find(|p| matches!(p, Protocol::RestXml | Protocol::RestJson))
            .ok_or_else(|| {
                Unrouted::Error(AwsError::new(
                    "MissingAction",
                    "The request must contain the parameter Action or the header X-Amz-Target.",
                ))
            })?;
        Ok((route, protocol))
    }

    /// Maps the caller to an account and principal; under `--auth enforce` also verifies the signature.
    fn authenticate(
        &self,
        req: &Incoming,
        claim: &Claim,
        route: &Route,
        host: String,
        now_ms: u64,
        request_id: String,
    ) -> Result<RequestContext, AwsError> {
        let signing_name = route.head.signing_name();
        let now_secs = (now_ms / 1000) as i64;
        nimbus_auth::check_expiry(claim, now_secs, signing_name)?;
        let (access_key, session_token, region) = match claim {
            Claim::Anonymous => (None, None, None),
            Claim::V4 {
                access_key_id,
                session_token,
                region,
                ..
            } => (
                Some(access_key_id.as_str()),
                session_token.as_deref(),
                Some(region.as_str()),
            ),
            Claim::V2 {
                access_key_id,
                session_token,
                ..
            } => (Some(access_key_id.as_str()), session_token.as_deref(), None),
        };
        let region = region
            .filter(|r| !r.is_empty())
            .unwrap_or(&self.config.default_region)
            .to_string();
        let mut ctx = RequestContext::for_account(&self.config.default_account, &region);
        ctx.request_id = request_id;
        ctx.host = host;
        ctx.now_ms = now_ms;
        ctx.source_ip = req.remote.map(|a| a.ip());
        ctx.user_agent = header_str(req.headers, "user-agent").map(str::to_string);
        ctx.referer = header_str(req.headers, "referer").map(str::to_string);
        // Unsigned callers are anonymous in every mode; `dispatch` decides what they may do.
        let Some(access_key) = access_key else {
            return Ok(ctx);
        };
        ctx.access_key_id = Some(access_key.to_string());
        let record = self.credentials.get(access_key);
        if self.config.auth == AuthMode::Enforce {
            let record = record
                .as_ref()
                .ok_or_else(|| nimbus_auth::unknown_key_error(signing_name))?;
            match (&record.session_token, session_token) {
                (Some(issued), sent) if Some(issued.as_str()) != sent => {
                    return Err(nimbus_auth::unknown_key_error(signing_name))
                }
                (None, Some(_)) => return Err(nimbus_auth::token_without_session(signing_name)),
                _ => {}
            }
            if record.expires_at_ms.is_some_and(|t| t <= now_ms) {
                return Err(AwsError::new(
                    "ExpiredToken",
                    "The security token included in the request is expired",
                )
                .with_status(403));
            }
            let http_parts = HttpParts {
                method: req.method,
                path: req.path,
                query: req.query,
                headers: req.headers,
            };
            // A streamed body is hashed as it arrives; the signature covers the claimed hash.
            let payload_hash = if req.streamed {
                String::new()
            } else {
                hex::encode(Sha256::digest(req.sent_body.as_ref().unwrap_or(&req.body)))
            };
            nimbus_auth::verify(
                claim,
                &http_parts,
                &req.form,
                &payload_hash,
                &record.secret_access_key,
                now_secs,
            )?;
        }
        match record {
            Some(record) => {
                ctx.account_id = record.account_id;
                ctx.caller_arn = record.arn;
                ctx.caller_user_id = record.user_id;
            }
            None => {
                if let Some(account) = nimbus_sts::account_for_key(access_key) {
                    ctx.caller_arn = format!("arn:aws:iam::{account}:root");
                    ctx.caller_user_id = account.clone();
                    ctx.account_id = account;
                }
            }
        }
        Ok(ctx)
    }

    /// Unwraps an `aws-chunked` body, verifying chunk signatures under `--auth enforce`.
    fn decode_streaming(&self, req: &Incoming, claim: &Claim) -> Result<Option<Bytes>, AwsError> {
        if !is_streaming(claim) {
            return Ok(None);
        }
        let secret = self.chunk_secret(claim);
        let signing = chunk_signing(claim, secret.as_deref());
        let decoded = nimbus_auth::decode_aws_chunked(&req.body, signing.as_ref())?;
        let declared = req
            .headers
            .get("x-amz-decoded-content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n != decoded.payload.len()) {
            return Err(AwsError::new(
                "IncompleteBody",
                "The request body terminated unexpectedly",
            ));
        }
        Ok(Some(Bytes::from(decoded.payload)))
    }
}

impl Edge {
    /// The secret that verifies chunk signatures: only under `--auth enforce`, only for
    /// bodies with signed chunks.
    fn chunk_secret(&self, claim: &Claim) -> Option<String> {
        let Claim::V4 {
            streaming,
            access_key_id,
            ..
        } = claim
        else {
            return None;
        };
        let signed = matches!(
            streaming,
            Streaming::SignedChunks | Streaming::SignedChunksTrailer
        );
        (self.config.auth == AuthMode::Enforce && signed)
            .then(|| self.credentials.get(access_key_id))
            .flatten()
            .map(|r| r.secret_access_key)
    }
}

/// True when the body is aws-chunked (`x-amz-content-sha256: STREAMING-...`).
fn is_streaming(claim: &Claim) -> bool {
    matches!(claim, Claim::V4 { streaming, .. } if *streaming != Streaming::None)
}

/// What verifies chunk signatures against the seed signature, given the secret.
fn chunk_signing<'a>(
    claim: &'a Claim,
    secret: Option<&'a str>,
) -> Option<nimbus_auth::ChunkSigning<'a>> {
    let Claim::V4 {
        amz_date,
        date,
        region,
        service,
        signature,
        ..
    } = claim
    else {
        return None;
    };
    secret.map(|secret| nimbus_auth::ChunkSigning {
        secret_access_key: secret,
        amz_date,
        date,
        region,
        service,
        seed_signature: signature,
    })
}

/// Query-era SQS clients send a queue's requests to the queue URL itself instead of
/// passing `QueueUrl`; the path `/{account}/{queue}` then names the queue.
fn address_by_queue_path(
    model: &ServiceModel,
    operation: &str,
    path: &str,
    host: &str,
    input: &mut serde_json::Value,
) {
    let takes_queue_url = model
        .operation(operation)
        .and_then(|op| op.input.as_ref())
        .and_then(|input| model.shape(&input.shape))
        .is_some_and(|shape| shape.members.contains_key("QueueUrl"));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if !takes_queue_url || segments.len() != 2 || segments.iter().any(|s| s.is_empty()) {
        return;
    }
    if let Some(fields) = input.as_object_mut() {
        fields
            .entry("QueueUrl")
            .or_insert_with(|| format!("http://{host}{path}").into());
    }
}

fn is_json_family(protocol: Protocol) -> bool {
    matches!(
        protocol,
        Protocol::Json10 | Protocol::Json11 | Protocol::RpcV2Cbor | Protocol::RestJson
    )
}

fn target_prefix(model: &ServiceModel) -> Option<&str> {
    model.metadata.target_prefix.as_deref()
}

/// The form an `Action` request takes for this service: ec2 for EC2, else query.
fn query_protocol(model: &ServiceModel) -> Protocol {
    if model.protocols().contains(&Protocol::Ec2) {
        Protocol::Ec2
    } else {
        Protocol::Query
    }
}

fn json_protocol(model: &ServiceModel) -> Protocol {
    match model.metadata.json_version.as_deref() {
        Some("1.1") => Protocol::Json11,
        _ => Protocol::Json10,
    }
}

fn unknown_service(name: &str) -> AwsError {
    AwsError::new(
        "UnknownService",
        format!("nimbus does not know the service '{name}'."),
    )
    .with_status(400)
}

/// Why a request reached no service: a plain error (answered in the generic query
/// form), or a service nimbus does not serve, answered in that service's own protocol.
enum Unrouted {
    Error(AwsError),
    Unserved(&'static nimbus_wire::catalog::CatalogEntry, Protocol),
}

impl Unrouted {
    fn answer(self, request_id: &str) -> WireResponse {
        match self {
            Unrouted::Error(e) => generic_error(&e, request_id),
            Unrouted::Unserved(entry, protocol) => {
                crate::log::note(|n| n.service = Some(entry.name.clone()));
                let e = AwsError::service_not_implemented(&entry.name, entry.service_id());
                crate::log::note_error(&e.code);
                nimbus_wire::encode_error(&entry.model, protocol, &e, request_id)
            }
        }
    }
}

/// The operation a request names, read the way its protocol carries it (before decoding).
fn requested_operation(req: &Incoming, protocol: Protocol) -> Option<String> {
    match protocol {
        Protocol::Query | Protocol::Ec2 => req
            .form
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.clone())
            .or_else(|| query_param(req.query, "Action")),
        Protocol::Json10 | Protocol::Json11 => header_str(req.headers, "x-amz-target")
            .and_then(|t| t.split_once('.'))
            .map(|(_, op)| op.to_string()),
        Protocol::RpcV2Cbor => req.path.rsplit('/').next().map(str::to_string),
        Protocol::RestXml | Protocol::RestJson => None,
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn is_aws_chunked(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"))
}

/// The parameters of a url-encoded form body (query-protocol POSTs), else none.
/// A gzip-compressed RPC call (query, JSON or CBOR protocol). REST calls
/// are left alone: for S3 a Content-Encoding is the object's own metadata.
fn is_compressed_rpc(parts: &http::request::Parts) -> bool {
    let h = &parts.headers;
    let gzip = h
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("gzip"));
    if !gzip || parts.method != http::Method::POST {
        return false;
    }
    let form = h
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    h.contains_key("x-amz-target")
        || h.contains_key("smithy-protocol")
        || (form && parts.uri.path() == "/")
}

/// Inflates a gzip request body, refusing one that inflates past the
/// largest body accepted.
fn inflate(body: &[u8]) -> Result<Bytes, AwsError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(MAX_BODY));
    let read = flate2::read::GzDecoder::new(body)
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut out);
    match read {
        Ok(n) if n > MAX_BODY => Err(AwsError::new(
            "RequestEntityTooLarge",
            "The request body is too large.",
        )
        .with_status(413)),
        Ok(_) => Ok(Bytes::from(out)),
        Err(_) => Err(AwsError::new(
            "InvalidRequest",
            "The request body is not valid gzip data, as its Content-Encoding says.",
        )),
    }
}

fn form_params(headers: &HeaderMap, body: &[u8]) -> Vec<(String, String)> {
    let is_form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Vec::new();
    }
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Errors found before the service is known are written in the query protocol's
/// form, which every query-era client parses; STS's model provides that form.
fn generic_error(err: &AwsError, request_id: &str) -> WireResponse {
    crate::log::note_error(&err.code);
    match nimbus_wire::model("sts") {
        Some(model) => nimbus_wire::encode_error(model, Protocol::Query, err, request_id),
        None => WireResponse {
            status: err.status,
            headers: Vec::new(),
            body: err.to_string().into_bytes(),
        },
    }
}

/// Encodes a service's answer; a streaming service's body replaces the encoded one.
fn encode_reply(
    model: &ServiceModel,
    protocol: Protocol,
    operation: &str,
    reply: Reply,
    request_id: &str,
) -> (WireResponse, Option<Reply>) {
    let mut wire =
        nimbus_wire::encode_output(model, protocol, operation, &reply.output, request_id);
    if let Some(status) = reply.status {
        wire.status = status;
    }
    match reply.body {
        ResponseBody::FromOutput => (wire, None),
        body => (
            wire,
            Some(Reply {
                output: serde_json::Value::Null,
                body,
                status: None,
            }),
        ),
    }
}

fn to_http(wire: WireResponse, body: Option<Reply>) -> Response<HttpBody> {
    let mut builder = Response::builder().status(wire.status);
    for (name, value) in &wire.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = match body {
        Some(reply) => body::response_body(reply.body),
        None => full(Bytes::from(wire.body)),
    };
    builder.body(body).unwrap_or_else(|_| {
        let mut r = Response::new(full(Bytes::from_static(b"invalid response header")));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

fn json_response(status: StatusCode, body: &str) -> Response<HttpBody> {
    let mut r = Response::new(full(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A browser upload: POST of a multipart/form-data body to a bucket.
fn is_form_upload(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::POST
        && header_str(&parts.headers, "content-type")
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// An RPC-style request (query, JSON or CBOR protocols) rather than a REST one.
fn is_rpc_request(parts: &http::request::Parts) -> bool {
    parts.headers.contains_key("x-amz-target")
        || parts.headers.contains_key("smithy-protocol")
        || parts.uri.query().is_some_and(|q| q.contains("Action="))
}

/// The bucket of a path-style S3 path.
fn bucket_of(path: &str) -> Option<&str> {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .filter(|b| !b.is_empty())
}

#[cfg(test)]
mod compression_tests {
    use super::*;
    use std::io::Write;

    fn parts(method: &str, path: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn only_compressed_rpc_calls_are_inflated() {
        let gz = ("content-encoding", "gzip");
        let form = ("content-type", "application/x-www-form-urlencoded");
        assert!(is_compressed_rpc(&parts("POST", "/", &[gz, form])));
        assert!(is_compressed_rpc(&parts(
            "POST",
            "/",
            &[
                gz,
                (
                    "x-amz-target",
                    "GraniteServiceVersion20100801.PutMetricData"
                )
            ]
        )));
        assert!(is_compressed_rpc(&parts(
            "POST",
            "/service/GraniteServiceVersion20100801/operation/PutMetricData",
            &[gz, ("smithy-protocol", "rpc-v2-cbor")]
        )));
        // An S3 object stored gzipped keeps its bytes.
        assert!(!is_compressed_rpc(&parts(
            "PUT",
            "/bucket/key",
            &[gz, form]
        )));
        assert!(!is_compressed_rpc(&parts("POST", "/bucket", &[gz, form])));
        assert!(!is_compressed_rpc(&parts("POST", "/", &[form])));
    }

    #[test]
    fn inflation_is_bounded_and_checked() {
        assert_eq!(
            &inflate(&gzip(b"Action=ListMetrics")).unwrap()[..],
            b"Action=ListMetrics"
        );
        assert_eq!(inflate(b"not gzip").unwrap_err().code, "InvalidRequest");
        let bomb = gzip(&vec![0u8; MAX_BODY + 1]);
        let e = inflate(&bomb).unwrap_err();
        assert_eq!((e.code.as_str(), e.status), ("RequestEntityTooLarge", 413));
    }
}
