//! The benchmark's HTTP client: one hyper 1 keep-alive pool (HTTP/1.1 only)
//! and requests signed with nimbus's own SigV4 code.
//!
//! It is deliberately thin: a request is a prebuilt body, a handful of
//! headers, one signature and one round trip, so that the CPU spent per
//! request in this process stays small next to the server's (the AWS SDKs
//! spend 150-190 µs per small request, which would blur the measurement).
//!
//! S3 requests use a second pool whose body type, [`RepeatBody`], streams a
//! large object out of one shared buffer, and their answers can be read as a
//! stream that is counted and dropped chunk by chunk ([`send_counting`]).

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
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

/// The pool S3 requests go through: bodies may be streamed.
pub type S3Client = Client<HttpConnector, RepeatBody>;

/// A request body of `len` bytes made of `chunk` sent over and over (the last
/// piece cut short). Each frame is a cheap reference-counted clone of the one
/// buffer, so a 64 MiB PUT costs no 64 MiB allocation; a small body is simply
/// `chunk` once. The exact length is known up front, so hyper sends a
/// `content-length` rather than chunked encoding, as SDKs do for PutObject.
#[derive(Debug, Clone)]
pub struct RepeatBody {
    chunk: Bytes,
    remaining: u64,
}

impl RepeatBody {
    /// `bytes` sent once.
    pub fn once(bytes: Bytes) -> RepeatBody {
        let remaining = bytes.len() as u64;
        RepeatBody {
            chunk: bytes,
            remaining,
        }
    }

    pub fn empty() -> RepeatBody {
        RepeatBody::once(Bytes::new())
    }

    /// `chunk` repeated until `len` bytes are sent; an empty chunk gives an
    /// empty body whatever `len` says, rather than a body that never ends.
    pub fn repeat(chunk: Bytes, len: u64) -> RepeatBody {
        let remaining = if chunk.is_empty() { 0 } else { len };
        RepeatBody { chunk, remaining }
    }

    pub fn len(&self) -> u64 {
        self.remaining
    }
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = (self.chunk.len() as u64).min(self.remaining) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A keep-alive pool able to hold `max_idle` connections per host, so that
/// `concurrency` workers each keep their own connection open.
pub fn http_client<B>(max_idle: usize) -> Client<HttpConnector, B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connector = HttpConnector::new();
    // Without TCP_NODELAY, Nagle plus delayed ACKs add ~40 ms to small writes.
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector)
}

/// Sends one request and reads the whole answer, within `timeout`.
pub async fn send<B>(
    client: &Client<HttpConnector, B>,
    req: Request<B>,
    timeout: Duration,
) -> Result<Reply, String>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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

/// How much of an error answer [`send_counting`] keeps for the report.
const KEPT_ERROR_BODY: usize = 4096;

/// A round trip whose body was counted, not kept: `body` holds the start of
/// an error answer only (2xx bodies are dropped chunk by chunk).
#[derive(Debug)]
pub struct Counted {
    pub status: u16,
    pub body_bytes: u64,
    pub reply: Reply,
}

/// Sends one request and consumes the answer as a stream, counting its bytes
/// without holding them: a 64 MiB GetObject then costs the client no more
/// memory than one read buffer, as a streaming SDK download would.
pub async fn send_counting(
    client: &S3Client,
    req: Request<RepeatBody>,
    timeout: Duration,
) -> Result<Counted, String> {
    let round_trip = async {
        let resp = client.request(req).await.map_err(describe_client_error)?;
        let status = resp.status().as_u16();
        let keep = !(200..300).contains(&status);
        let mut body = resp.into_body();
        let mut count = 0u64;
        let mut kept = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading response body: {e}"))?;
            if let Ok(data) = frame.into_data() {
                count += data.len() as u64;
                if keep && kept.len() < KEPT_ERROR_BODY {
                    let room = KEPT_ERROR_BODY - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
        }
        Ok(Counted {
            status,
            body_bytes: count,
            reply: Reply {
                status,
                body: Bytes::from(kept),
            },
        })
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

/// The `x-amz-content-sha256` value of S3 requests with a body. Hashing the
/// payload would cost the client ~3 ms of CPU per MiB (and a whole pass over
/// a large object before sending it), which would blur what the server costs;
/// the AWS SDKs send `UNSIGNED-PAYLOAD` over HTTPS for the same reason, and
/// every S3 implementation must accept it.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Builds a signed, path-style S3 request (`/bucket/key`; `path` and `query`
/// already percent-encoded). A request with a body is signed with
/// [`UNSIGNED_PAYLOAD`]; one without is signed with the hash of the empty
/// payload, which the signer computes, as SDKs do for GET and HEAD.
pub fn s3_request(
    ep: &Endpoint,
    signer: &Signer,
    method: Method,
    path: &str,
    query: &str,
    body: RepeatBody,
) -> Result<Request<RepeatBody>, String> {
    let mut headers = vec![("host".to_string(), ep.authority.clone())];
    if body.len() > 0 {
        headers.push((
            "x-amz-content-sha256".to_string(),
            UNSIGNED_PAYLOAD.to_string(),
        ));
        headers.push(("content-length".to_string(), body.len().to_string()));
        headers.push((
            "content-type".to_string(),
            "application/octet-stream".to_string(),
        ));
    }
    // The payload hash is given above for bodies, so the signer never reads them.
    let headers = sign(signer, "s3", &method, path, query, headers, b"");
    assemble(ep, method, path, query, &headers, body)
}

/// Adds the SigV4 headers (`x-amz-date`, `authorization`, ...) to `headers`.
fn sign(
    signer: &Signer,
    service: &str,
    method: &Method,
    path: &str,
    query: &str,
    mut headers: Vec<(String, String)>,
    body: &[u8],
) -> Vec<(String, String)> {
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
    let extra = nimbus_auth::sign_v4(method.as_str(), path, query, &headers, body, &params);
    headers.extend(extra);
    headers
}

/// Puts a signed request together.
fn assemble<B>(
    ep: &Endpoint,
    method: Method,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: B,
) -> Result<Request<B>, String> {
    let uri = if query.is_empty() {
        format!("{}://{}{}", ep.scheme, ep.authority, path)
    } else {
        format!("{}://{}{}?{}", ep.scheme, ep.authority, path, query)
    };
    let mut builder = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(body)
        .map_err(|e| format!("building request: {e}"))
}

/// Percent-encodes a query value or key name with SigV4's unreserved set
/// (everything but `A-Z a-z 0-9 - _ . ~`), `/` included.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
    headers: Vec<(String, String)>,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let headers = sign(signer, service, &method, path, query, headers, &body);
    assemble(ep, method, path, query, &headers, Full::new(body))
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

    #[tokio::test]
    async fn repeat_body_streams_one_buffer() {
        let body = RepeatBody::repeat(Bytes::from_static(b"abcd"), 10);
        assert_eq!(body.size_hint().exact(), Some(10));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"abcdabcdab");
        assert_eq!(RepeatBody::repeat(Bytes::new(), 99).len(), 0);
        assert!(RepeatBody::empty().is_end_stream());
    }

    #[test]
    fn s3_requests_are_path_style_and_unsigned() {
        let ep = Endpoint::parse("http://127.0.0.1:4599").unwrap();
        let signer = Signer {
            access_key: "test".into(),
            secret_key: "test".into(),
            region: "us-east-1".into(),
        };
        let put = s3_request(
            &ep,
            &signer,
            Method::PUT,
            "/b/key/000000001",
            "",
            RepeatBody::once(Bytes::from_static(b"x")),
        )
        .unwrap();
        assert_eq!(
            put.uri().to_string(),
            "http://127.0.0.1:4599/b/key/000000001"
        );
        assert_eq!(put.headers()["x-amz-content-sha256"], UNSIGNED_PAYLOAD);
        let auth = put.headers()["authorization"].to_str().unwrap();
        assert!(auth.contains("/us-east-1/s3/aws4_request"), "{auth}");
        assert!(auth.contains("x-amz-content-sha256"), "{auth}");
        let get = s3_request(
            &ep,
            &signer,
            Method::GET,
            "/b",
            "list-type=2",
            RepeatBody::empty(),
        )
        .unwrap();
        // No body: the empty payload's hash, as SDKs send on GET.
        assert_eq!(
            get.headers()["x-amz-content-sha256"],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(uri_encode("key/0 a~"), "key%2F0%20a~");
    }

    #[test]
    fn excerpt_cuts_and_flattens() {
        assert_eq!(excerpt("  a\nb  ", 10), "a b");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
