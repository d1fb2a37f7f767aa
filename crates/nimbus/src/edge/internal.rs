//! nimbus's own endpoints beside the AWS APIs: the health document (also at
//! LocalStack's path), init hooks' progress (LocalStack's `/_localstack/init`),
//! the README, the website endpoint in path form, S3 lifecycle runs and the
//! reset of all state (also at the paths LocalStack's and moto's test fixtures
//! call). Those that change state are POSTs, and under `--auth
//! enforce` only the root credentials may call them (sign as for any service,
//! e.g. `curl --aws-sigv4 aws:amz:us-east-1:nimbus --user KEY:SECRET`).

use super::body::HttpBody;
use super::{form_params, json_response, query_param, AuthMode, Edge};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use nimbus_auth::HttpParts;
use nimbus_core::AwsError;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

/// Internal requests carry at most a small form.
const MAX_INTERNAL_BODY: usize = 64 * 1024;

impl Edge {
    /// The cloud's metrics for Prometheus. They hold every account's data, so
    /// under `--auth enforce` only the root credentials may read them.
    async fn metrics_text(&self, parts: &http::request::Parts) -> Response<HttpBody> {
        crate::log::note(|n| n.operation = Some("PrometheusMetrics".into()));
        if let Err(e) = self.require_root(parts, &[]) {
            crate::log::note_error(&e.code);
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::FORBIDDEN);
            return internal_error(status, &e.code, &e.message);
        }
        let Some(export) = &self.metrics_export else {
            return not_found();
        };
        match export.prometheus_text().await {
            Ok(text) => {
                let mut r = json_response(StatusCode::OK, &text);
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                r
            }
            Err(e) => internal_error(StatusCode::INTERNAL_SERVER_ERROR, &e.code, &e.message),
        }
    }

    pub(super) async fn internal(
        &self,
        parts: &http::request::Parts,
        body: hyper::body::Incoming,
        path: &str,
        host: &str,
        remote: Option<SocketAddr>,
        request_id: &str,
    ) -> Response<HttpBody> {
        // Website endpoint in path form, for clients without wildcard DNS: /_nimbus/website/BUCKET/KEY.
        if let Some(rest) = path.strip_prefix("/_nimbus/website/") {
            let (bucket, key_path) = match rest.split_once('/') {
                Some((b, k)) => (b.to_string(), format!("/{k}")),
                None => (rest.to_string(), "/".to_string()),
            };
            let mount = format!("/_nimbus/website/{bucket}");
            crate::log::note(|n| {
                n.service = Some("s3".into());
                n.operation = Some("Website".into());
            });
            return self
                .website(parts, &bucket, &key_path, host, remote, request_id, &mount)
                .await;
        }
        if parts.method == Method::GET && path == "/_nimbus/metrics" {
            return self.metrics_text(parts).await;
        }
        if parts.method != Method::POST {
            return match path {
                "/_nimbus/health" | "/_localstack/health" => {
                    // Polled by every wait-for-ready loop: kept out of the request log.
                    crate::log::note(|n| n.quiet = true);
                    let body = crate::health::document(
                        &self.health_states(),
                        &self.config.data_dir,
                        self.config.durable,
                        self.config.auth.as_str(),
                        self.config.instance_driver,
                        &self.config.clock,
                    );
                    json_response(StatusCode::OK, &body)
                }
                _ if path.starts_with("/_localstack/init") => {
                    match crate::init::localstack_answer(&path["/_localstack/init".len()..]) {
                        Some(body) => json_response(StatusCode::OK, &body),
                        None => not_found(),
                    }
                }
                "/_nimbus/docs" => {
                    let mut r = json_response(StatusCode::OK, crate::console::README);
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/markdown; charset=utf-8"),
                    );
                    r
                }
                _ => not_found(),
            };
        }
        if let (Some(plane), "/_nimbus/state/save" | "/_nimbus/state/load") =
            (&self.state, path.trim_end_matches('/'))
        {
            return self.state_endpoint(plane, parts, body, path).await;
        }
        let body = match Limited::new(body, MAX_INTERNAL_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return internal_error(
                    StatusCode::BAD_REQUEST,
                    "IncompleteBody",
                    "The request body is incomplete or too large.",
                )
            }
        };
        if let Err(e) = self.require_root(parts, &body) {
            crate::log::note_error(&e.code);
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::FORBIDDEN);
            return internal_error(status, &e.code, &e.message);
        }
        if crate::reset::is_reset_path(path) {
            crate::log::note(|n| n.operation = Some("Reset".into()));
            let (status, body) =
                crate::reset::http_answer(crate::reset::reset_all(&self.services).await);
            return json_response(status, &body);
        }
        match path {
            // Runs S3 lifecycle rules now, or as of `?at=EPOCH_SECONDS` (for tests of day-based rules).
            "/_nimbus/s3/lifecycle" => {
                crate::log::note(|n| n.operation = Some("RunLifecycle".into()));
                let at = parts
                    .uri
                    .query()
                    .and_then(|q| query_param(q, "at"))
                    .and_then(|t| t.parse::<u64>().ok())
                    .map(|secs| secs.saturating_mul(1000))
                    .unwrap_or_else(nimbus_core::now_millis);
                if let Some(s3) = &self.s3 {
                    s3.run_lifecycle(at).await;
                }
                json_response(StatusCode::OK, "{\"ran\":true}")
            }
            _ => not_found(),
        }
    }

    /// Every service's state, for the health document and the first page.
    pub(super) fn health_states(&self) -> Vec<(&'static str, &'static str)> {
        self.services
            .iter()
            .map(|(name, s)| (*name, s.state().as_str()))
            .collect()
    }

    /// Save and load of the whole state. Their bodies are archives, too large to
    /// collect first: a load's signature covers its claimed payload hash, which the
    /// streamed body must then match (a save's body is empty).
    async fn state_endpoint(
        &self,
        plane: &crate::state::Plane,
        parts: &http::request::Parts,
        body: hyper::body::Incoming,
        path: &str,
    ) -> Response<HttpBody> {
        let load = path.trim_end_matches('/') == "/_nimbus/state/load";
        crate::log::note(|n| {
            n.operation = Some(if load { "LoadState" } else { "SaveState" }.into())
        });
        let claimed = parts
            .headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let enforce = self.config.auth == AuthMode::Enforce;
        let checked = match (&claimed, load) {
            (Some(hash), true) if hash.len() == 64 => self.require_root_hash(parts, &[], hash),
            (_, true) if enforce => Err(AwsError::new(
                "MissingContentSha256",
                "A state load must sign its body's SHA-256 in x-amz-content-sha256.",
            )
            .with_status(400)),
            (_, true) => Ok(()),
            (_, false) => self.require_root(parts, &[]),
        };
        if let Err(e) = checked {
            crate::log::note_error(&e.code);
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::FORBIDDEN);
            return internal_error(status, &e.code, &e.message);
        }
        let result = if load {
            let signed = if enforce { claimed } else { None };
            plane
                .load(body, signed)
                .await
                .map(|answer| json_response(StatusCode::OK, &answer.to_string()))
        } else {
            drop(body);
            plane.save().await
        };
        result.unwrap_or_else(|(status, message)| {
            let code = if status == StatusCode::BAD_REQUEST {
                "InvalidStateArchive"
            } else {
                "InternalError"
            };
            crate::log::note_error(code);
            internal_error(status, code, &message)
        })
    }

    /// Under `--auth enforce`, nimbus's own state-changing endpoints answer only a
    /// request signed with the root credentials (any SigV4 scope; the body is signed).
    fn require_root(&self, parts: &http::request::Parts, body: &[u8]) -> Result<(), AwsError> {
        self.require_root_hash(parts, body, &hex::encode(Sha256::digest(body)))
    }

    /// [`Self::require_root`] with the payload hash given: the body's own, or for a
    /// streamed body the hash it claims (checked against the body as it arrives).
    fn require_root_hash(
        &self,
        parts: &http::request::Parts,
        form_body: &[u8],
        payload_sha256: &str,
    ) -> Result<(), AwsError> {
        if self.config.auth != AuthMode::Enforce {
            return Ok(());
        }
        let body = form_body;
        let form = form_params(&parts.headers, body);
        let http_parts = HttpParts {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
        };
        let claim = nimbus_auth::parse_claim(&http_parts, &form, Some("nimbus"))?;
        let Some(key) = claim.access_key_id() else {
            return Err(nimbus_auth::missing_authentication_error("nimbus"));
        };
        if key != self.config.root_access_key_id {
            return Err(AwsError::access_denied(
                "Only the root credentials may call nimbus's own endpoints under --auth enforce.",
            ));
        }
        let record = self
            .credentials
            .get(key)
            .ok_or_else(|| nimbus_auth::unknown_key_error("nimbus"))?;
        let now_secs = (nimbus_core::now_millis() / 1000) as i64;
        nimbus_auth::check_expiry(&claim, now_secs, "nimbus")?;
        nimbus_auth::verify(
            &claim,
            &http_parts,
            &form,
            payload_sha256,
            &record.secret_access_key,
            now_secs,
        )
    }
}

fn not_found() -> Response<HttpBody> {
    json_response(StatusCode::NOT_FOUND, "{\"error\":\"not found\"}")
}

fn internal_error(status: StatusCode, code: &str, message: &str) -> Response<HttpBody> {
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    json_response(status, &body)
}
