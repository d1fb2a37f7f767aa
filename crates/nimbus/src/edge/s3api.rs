//! The edge's S3-specific paths: operations whose request body is streamed
//! to the service instead of buffered (PutObject, UploadPart), website
//! endpoints, and CORS preflight requests. They differ from the common path
//! only in how the body travels and who answers; signatures, accounts and
//! the codec are the same.

use super::body::{self, Framing, HttpBody, HttpSource};
use super::{generic_error, header_str, to_http, Edge, Incoming, Route};
use bytes::Bytes;
use http::{Response, StatusCode};
use nimbus_auth::Claim;
use nimbus_core::{AwsError, RequestBody, RequestContext};
use nimbus_wire::{Protocol, WireRequest};
use std::net::SocketAddr;

impl Edge {
    /// For a request whose service takes the body as a stream: its claim, route and operation.
    /// `None` when the request is buffered as usual.
    pub(super) fn streaming_operation(
        &self,
        req: &Incoming,
        host: &str,
    ) -> Option<Result<(Claim, &Route, String), AwsError>> {
        let parts = nimbus_auth::HttpParts {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers,
        };
        let claim = match nimbus_auth::parse_claim(&parts, &[], Some("s3")) {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let (route, protocol) = self.route(req, &claim, host).ok()?;
        let service = self.services.get(route.service)?;
        if protocol != Protocol::RestXml && protocol != Protocol::RestJson {
            return None;
        }
        let model = nimbus_wire::model_for(route.service, protocol)?;
        let wire = WireRequest {
            method: req.method,
            path: req.wire_path,
            query: req.query,
            headers: req.headers,
            body: &[],
        };
        let (operation, _) = nimbus_wire::decode(model, protocol, &wire).ok()?;
        service
            .streams_request(&operation)
            .then_some(Ok((claim, route, operation)))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn dispatch_streaming(
        &self,
        req: Incoming<'_>,
        claim: Claim,
        route: &Route,
        operation: String,
        body: hyper::body::Incoming,
        host: String,
        request_id: String,
    ) -> Response<HttpBody> {
        let protocol = Protocol::RestXml;
        let Some(model) = nimbus_wire::model_for(route.service, protocol) else {
            return to_http(
                generic_error(&AwsError::internal("model missing"), &request_id),
                None,
            );
        };
        let fail = |e: &AwsError| {
            crate::log::note_error(&e.code);
            to_http(
                nimbus_wire::encode_error(model, protocol, e, &request_id),
                None,
            )
        };
        crate::log::note(|n| {
            n.service = Some(route.service.to_string());
            n.operation = Some(operation.clone());
        });
        let now_ms = nimbus_core::now_millis();
        let ctx = match self.authenticate(&req, &claim, route, host, now_ms, request_id.clone()) {
            Ok(ctx) => ctx,
            Err(e) => return fail(&e),
        };
        crate::log::note(|n| {
            n.account = Some(ctx.account_id.clone());
            n.region = Some(ctx.region.clone());
        });
        let framing = match self.framing(&req, &claim) {
            Ok(f) => f,
            Err(e) => return fail(&e),
        };
        let wire = WireRequest {
            method: req.method,
            path: req.wire_path,
            query: req.query,
            headers: req.headers,
            body: &[],
        };
        let (_, input) = match nimbus_wire::decode(model, protocol, &wire) {
            Ok(decoded) => decoded,
            Err(e) => return fail(&e),
        };
        let declared = framing.decoded_length;
        let mut request_body = RequestBody::new(Box::new(HttpSource::new(body, framing)), declared);
        request_body.announced_trailers = header_str(req.headers, "x-amz-trailer")
            .unwrap_or("")
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        let Some(service) = self.services.get(route.service) else {
            return fail(&AwsError::internal("service vanished"));
        };
        match service
            .call_streaming(&ctx, &operation, input, request_body)
            .await
        {
            Ok(reply) => {
                let (wire, body) =
                    super::encode_reply(model, protocol, &operation, reply, &request_id);
                to_http(wire, body)
            }
            Err(e) => fail(&e),
        }
    }

    /// How the body is framed: aws-chunked (with chunk signatures verified under enforce) or plain.
    fn framing(&self, req: &Incoming, claim: &Claim) -> Result<Framing, AwsError> {
        let content_length =
            header_str(req.headers, "content-length").and_then(|v| v.parse::<u64>().ok());
        let decoded_length = header_str(req.headers, "x-amz-decoded-content-length")
            .and_then(|v| v.parse::<u64>().ok());
        let content_sha256 = header_str(req.headers, "x-amz-content-sha256").map(str::to_string);
        if !super::is_streaming(claim) {
            return Ok(Framing {
                chunked: None,
                content_sha256,
                decoded_length: content_length,
            });
        }
        let secret = self.chunk_secret(claim);
        let signing = super::chunk_signing(claim, secret.as_deref());
        let decoder = nimbus_auth::ChunkedDecoder::new(
            signing.as_ref(),
            header_str(req.headers, "x-amz-trailer"),
        )?;
        Ok(Framing {
            chunked: Some(decoder),
            content_sha256: None,
            decoded_length,
        })
    }

    /// A request to a bucket's website endpoint: always anonymous, answered with HTML errors.
    /// `mount` is the path prefix the site is served under (the path form), which
    /// same-site redirects must keep.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn website(
        &self,
        parts: &http::request::Parts,
        bucket: &str,
        path: &str,
        host: &str,
        remote: Option<SocketAddr>,
        request_id: &str,
        mount: &str,
    ) -> Response<HttpBody> {
        let Some(s3) = &self.s3 else {
            return super::json_response(StatusCode::NOT_FOUND, "{}");
        };
        let mut ctx =
            RequestContext::for_account(&self.config.default_account, &self.config.default_region);
        ctx.request_id = request_id.to_string();
        ctx.host = host.to_string();
        ctx.source_ip = remote.map(|a| a.ip());
        ctx.user_agent = header_str(&parts.headers, "user-agent").map(str::to_string);
        ctx.referer = header_str(&parts.headers, "referer").map(str::to_string);
        let answer = s3.website(&ctx, bucket, parts.method.as_str(), path).await;
        let mut builder = Response::builder().status(answer.status);
        for (name, value) in &answer.headers {
            if name.eq_ignore_ascii_case("location") && !mount.is_empty() {
                builder = builder.header(name.as_str(), mounted_location(value, host, mount));
            } else {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        builder = builder.header("x-amz-request-id", request_id);
        let body = match answer.body {
            nimbus_s3::WebsiteBody::Html(html) => body::full(Bytes::from(html)),
            nimbus_s3::WebsiteBody::Object(b) => body::response_body(b),
        };
        builder
            .body(body)
            .unwrap_or_else(|_| super::json_response(StatusCode::INTERNAL_SERVER_ERROR, "{}"))
    }

    /// A CORS preflight (OPTIONS with Origin) to a bucket or object.
    pub(super) fn preflight(
        &self,
        headers: &http::HeaderMap,
        wire_path: &str,
        request_id: &str,
    ) -> Response<HttpBody> {
        let Some(s3) = &self.s3 else {
            return super::json_response(StatusCode::NOT_FOUND, "{}");
        };
        let model = nimbus_wire::model_for("s3", Protocol::RestXml);
        let error = |e: &AwsError| match model {
            Some(m) => to_http(
                nimbus_wire::encode_error(m, Protocol::RestXml, e, request_id),
                None,
            ),
            None => super::json_response(StatusCode::FORBIDDEN, "{}"),
        };
        let Some(bucket) = super::bucket_of(wire_path) else {
            return error(&AwsError::new(
                "BadRequest",
                "Insufficient information. Origin request header needed.",
            ));
        };
        let requested: Vec<String> = header_str(headers, "access-control-request-headers")
            .unwrap_or("")
            .split(',')
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect();
        match s3.preflight(
            bucket,
            header_str(headers, "origin"),
            header_str(headers, "access-control-request-method"),
            &requested,
            wire_path.trim_start_matches('/').contains('/')
                && !wire_path.trim_start_matches('/').ends_with('/'),
        ) {
            Ok(cors) => {
                let mut builder = Response::builder().status(200);
                for (name, value) in &cors {
                    builder = builder.header(name.as_str(), value.as_str());
                }
                builder
                    .header("x-amz-request-id", request_id)
                    .body(body::full(Bytes::new()))
                    .unwrap_or_else(|_| {
                        super::json_response(StatusCode::INTERNAL_SERVER_ERROR, "{}")
                    })
            }
            Err(e) => error(&e),
        }
    }
}

/// A website answer's `Location` as seen through the path form: a same-site
/// target (a relative path, or an absolute URL on the request's own host, as
/// routing rules without `HostName` give) keeps the `mount` prefix.
fn mounted_location(value: &str, host: &str, mount: &str) -> String {
    if value.starts_with('/') {
        return format!("{mount}{value}");
    }
    for scheme in ["http://", "https://"] {
        if let Some(path) = value
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix(host))
            .filter(|path| path.starts_with('/'))
        {
            return format!("{scheme}{host}{mount}{path}");
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::mounted_location;

    #[test]
    fn same_site_locations_keep_the_mount() {
        let m = "/_nimbus/website/b";
        assert_eq!(
            mounted_location("/docs/", "h:1", m),
            "/_nimbus/website/b/docs/"
        );
        assert_eq!(
            mounted_location("http://h:1/new/k", "h:1", m),
            "http://h:1/_nimbus/website/b/new/k"
        );
        // Another host (a rule's HostName) and look-alike hosts are left alone.
        assert_eq!(
            mounted_location("https://e.org/k", "h:1", m),
            "https://e.org/k"
        );
        assert_eq!(mounted_location("http://h:10/k", "h:1", m), "http://h:10/k");
    }
}
