//! The first page: what a browser pointed at nimbus's endpoint sees. An
//! unsigned `GET /` that asks for HTML gets a small page naming nimbus, its
//! version, the services and their state, with links to the health document
//! and the docs; every other request to `/` (an SDK's signed ListBuckets, an
//! unsigned `curl`) goes to S3 as on AWS.

use crate::edge::{full, AuthMode, EdgeConfig, HttpBody};
use bytes::Bytes;
use http::{Response, StatusCode};

/// A browser's unsigned request for the page (its Accept names HTML first or at all).
pub fn wants_first_page(parts: &http::request::Parts) -> bool {
    let signed_in_query = parts.uri.query().is_some_and(|q| {
        q.contains("X-Amz-Signature=") || q.contains("Signature=") || q.contains("Action=")
    });
    matches!(parts.method, http::Method::GET | http::Method::HEAD)
        && !parts.headers.contains_key(http::header::AUTHORIZATION)
        && !signed_in_query
        && parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// The README this binary was built with, served at `/_nimbus/docs` so the page's
/// link works offline and matches the running version.
pub const README: &str = include_str!("../../../README.md");

pub fn first_page(services: &[(&str, &str)], config: &EdgeConfig) -> Response<HttpBody> {
    let rows: String = services
        .iter()
        .map(|(name, state)| format!("<tr><td>{name}</td><td>{state}</td></tr>"))
        .collect();
    let auth = match config.auth {
        AuthMode::Open => "open (any well-formed signature is accepted)",
        AuthMode::Enforce => "enforce (signatures are verified)",
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nimbus {version}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;color:#222}}
table{{border-collapse:collapse}}td{{padding:.2rem 1rem .2rem 0;border-bottom:1px solid #ddd}}
code{{background:#f4f4f4;padding:0 .2rem}}</style></head>
<body><h1>nimbus {version}</h1>
<p>An AWS-compatible cloud on one machine. Point the <code>aws</code> CLI or an SDK at this
endpoint (<code>--endpoint-url</code>); auth mode: {auth}; instances run with the
<code>{driver}</code> driver.</p>
<h2>Services</h2>
<table><tr><th align="left">service</th><th align="left">state</th></tr>{rows}</table>
<p><a href="/_nimbus/health">Health document</a> (also at <code>/_localstack/health</code>)
&middot; <a href="/_nimbus/docs">Documentation</a> (the README of this build)</p>
</body></html>
"#,
        version = crate::health::VERSION,
        driver = config.instance_driver,
    );
    let mut response = Response::new(full(Bytes::from(html)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}
