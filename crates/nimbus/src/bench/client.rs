//! The benchmark's HTTP client: one hyper 1 keep-alive pool (HTTP/1.1 only)
//! and requests signed with nimbus's own SigV4 code.
//!
//! It is deliberately thin: a request is a prebuilt body, a handful of
//! headers, one signature and one round trip, so that the CPU spent per
//! request in this process stays small next to the server's (the AWS SDKs
//! spend 150-190 µs per small request, which would blur the measurement).

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One AWS endpoint as given on the command line (`name=url` or `url`).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
    /// `host[:port]`, exactly as sent in the `host` header (and signed).
    pub authority: String,
    pub scheme: String,
}

impl Endpoint {
    /// Parses `name=http://host:port` or `http://host:port`; an unnamed
    /// endpoint is named by its `host:port`.
    pub fn parse(spec: &str) -> Result<Endpoint, String> {
        let (name, url) = match spec.split_once('=') {
            Some((n, u)) if !n.contains("://") && !n.is_empty() => (Some(n.to_string()), u),
            _ => (None, spec),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("endpoint {spec:?}: not a URL: {e}"))?;
        let scheme = uri.scheme_str().unwrap_or("");
        if scheme != "http" {
            // The client has no TLS on purpose: benchmarks run on loopback and
            // TLS would measure rustls, not the server.
            return Err(format!(
                "endpoint {spec:?}: only http:// URLs are supported"
            ));
        }
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| format!("endpoint {spec:?}: no host"))?;
        if !matches!(uri.path(), "" | "/") {
            return Err(format!(
                "endpoint {spec:?}: a path is not supported (use http://host:port)"
            ));
        }
        Ok(Endpoint {
            name: name.unwrap_or_else(|| authority.clone()),
            url: format!("http://{authority}"),
            authority,
            scheme: scheme.to_string(),
        })
    }
}

/// Credentials and region used to sign every request.
#[derive(Debug, Clone)]
pub struct Signer {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// A completed round trip: status and whole body (bodies are small here).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body for an error message: trimmed and cut to a readable length.
    pub fn body_excerpt(&self) -> String {
        excerpt(&String::from_utf8_lossy(&self.body), 400)
    }
}

/// Cuts `s` to at most `max` characters on one line.
pub fn excerpt(s: &str, max: usize) -> String {
    let one_line: String = s
        .trim()
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    }
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A keep-alive pool able to hold `max_idle` connections per host, so that
/// `concurrency` workers each keep their own connection open.
pub fn http_client(max_idle: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    // Without TCP_NODELAY, Nagle plus delayed ACKs add ~40 ms to small writes.
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector)
}

/// Sends one request and reads the whole answer, within `timeout`.
pub async fn send(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Reply, String> {
    let round_trip = async {
        let resp = client.request(req).await.map_err(describe_client_error)?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading response body: {e}"))?
            .to_bytes();
        Ok(Reply { status, body })
    };
    match tokio::time::timeout(timeout, round_trip).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs_f64())),
    }
}

/// hyper-util's error only says "client error (Connect)"; the cause says why.
fn describe_client_error(e: hyper_util::client::legacy::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Builds a signed AWS JSON 1.0 request (`POST /` with `X-Amz-Target`), the
/// protocol current SDKs use for SQS (with `x-amzn-query-mode: true`, which
/// query-compatible services use to pick query-style error codes).
pub fn json10_request(
    ep: &Endpoint,
    signer: &Signer,
    service: &str,
    target: &str,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let headers = vec![
        ("host".to_string(), ep.authority.clone()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.0".to_string(),
        ),
        ("x-amz-target".to_string(), target.to_string()),
        ("x-amzn-query-mode".to_string(), "true".to_string()),
    ];
    signed_request(ep, signer, service, Method::POST, "/", "", headers, body)
}

/// Signs and assembles a request; `headers` must hold `host`.
#[allow(clippy::too_many_arguments)]
pub fn signed_request(
    ep: &Endpoint,
    signer: &Signer,
    service: &str,
    method: Method,
    path: &str,
    query: &str,
    mut headers: Vec<(String, String)>,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let params = nimbus_auth::SigningParams {
        access_key_id: &signer.access_key,
        secret_access_key: &signer.secret_key,
        session_token: None,
        region: &signer.region,
        service,
        time_epoch_secs: now,
    };
    let extra = nimbus_auth::sign_v4(method.as_str(), path, query, &headers, &body, &params);
    headers.extend(extra);
    let uri = if query.is_empty() {
        format!("{}://{}{}", ep.scheme, ep.authority, path)
    } else {
        format!("{}://{}{}?{}", ep.scheme, ep.authority, path, query)
    };
    let mut builder = Request::builder().method(method).uri(uri);
    for (k, v) in &headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(Full::new(body))
        .map_err(|e| format!("building request: {e}"))
}

/// A plain, unsigned GET (for nimbus's own health endpoint).
pub fn get_request(authority: &str, path: &str) -> Result<Request<Full<Bytes>>, String> {
    Request::builder()
        .method(Method::GET)
        .uri(format!("http://{authority}{path}"))
        .header("host", authority)
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("building request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        let e = Endpoint::parse("nimbus=http://127.0.0.1:4566").unwrap();
        assert_eq!(
            (e.name.as_str(), e.authority.as_str(), e.url.as_str()),
            ("nimbus", "127.0.0.1:4566", "http://127.0.0.1:4566")
        );
        let e = Endpoint::parse("http://localhost:4599/").unwrap();
        assert_eq!(
            (e.name.as_str(), e.authority.as_str()),
            ("localhost:4599", "localhost:4599")
        );
        assert!(Endpoint::parse("https://x:1").is_err());
        assert!(Endpoint::parse("peer=http://x:1/some/path").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }

    #[test]
    fn excerpt_cuts_and_flattens() {
        assert_eq!(excerpt("  a\nb  ", 10), "a b");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
