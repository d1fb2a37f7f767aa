//! Health: the JSON document served at `/_nimbus/health` (and, for tools that
//! wait for a local AWS endpoint there, at `/_localstack/health`), and the
//! `nimbus status` command that reads it from a running server (with the small
//! HTTP client `nimbus reset` shares).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// When this start of nimbus began serving (ms since the epoch): tells a client
/// that a restart in place (after a state load) has happened.
static STARTED_MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

pub fn mark_started() {
    let _ = STARTED_MS.set(nimbus_core::now_millis());
}

/// `{"version", "edition", "services": {name: state}, ...}`: LocalStack's shape, which
/// existing wait-for-ready scripts parse, plus nimbus's own fields.
pub fn document(
    services: &[(&str, &str)],
    data_dir: &str,
    durable: bool,
    auth: &str,
    instance_driver: &str,
    clock: &nimbus_core::clock::CloudClock,
) -> String {
    let cloud_now_ms = clock.now_ms();
    let services: serde_json::Map<String, serde_json::Value> = services
        .iter()
        .map(|(name, state)| (name.to_string(), serde_json::Value::from(*state)))
        .collect();
    serde_json::json!({
        "version": VERSION,
        "edition": "nimbus",
        "services": services,
        "data_dir": data_dir,
        "durable": durable,
        "auth": auth,
        "instance_driver": instance_driver,
        "init": crate::init::health(),
        // The cloud's clock (`--clock-scale`): what CloudWatch's timestamps follow.
        "clock": {
            "scale": clock.scale(),
            "now_ms": cloud_now_ms,
            "now": nimbus_core::timestamp::format_iso8601_secs((cloud_now_ms / 1000) as i64),
        },
        "started_ms": STARTED_MS.get().copied().unwrap_or(0),
    })
    .to_string()
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Endpoint of the nimbus to ask.
    #[arg(long, default_value = "http://127.0.0.1:4566", env = "NIMBUS_ENDPOINT")]
    endpoint: String,
}

/// Prints the health document of a running nimbus; exit code 1 when none answers.
pub fn status(args: StatusArgs) -> i32 {
    match http_call(&args.endpoint, "GET", "/_nimbus/health", None) {
        Ok(body) => {
            let pretty = serde_json::from_str::<serde_json::Value>(&body)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or(body);
            println!("{pretty}");
            0
        }
        Err(e) => {
            eprintln!("nimbus status: no nimbus answers at {}: {e}", args.endpoint);
            1
        }
    }
}

/// A plain HTTP/1.0 request without a body: status and reset need nothing more,
/// and this keeps the client trivial. Answers other than 200 are errors.
/// A plain HTTP/1.0 call; `credentials` (access key, secret) sign it with SigV4, as
/// nimbus's state-changing endpoints require under `--auth enforce`.
pub(crate) fn http_call(
    endpoint: &str,
    method: &str,
    path: &str,
    credentials: Option<(&str, &str)>,
) -> Result<String, String> {
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or("only http:// endpoints are supported")?
        .trim_end_matches('/');
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut stream = TcpStream::connect(&addr).map_err(|e| e.to_string())?;
    // A reset waits for every instance to stop; a health answer is immediate.
    let wait = if method == "GET" { 5 } else { 60 };
    stream
        .set_read_timeout(Some(Duration::from_secs(wait)))
        .map_err(|e| e.to_string())?;
    let mut headers = vec![("host".to_string(), authority.to_string())];
    if let Some((key, secret)) = credentials {
        let params = nimbus_auth::SigningParams {
            access_key_id: key,
            secret_access_key: secret,
            session_token: None,
            region: "us-east-1",
            service: "nimbus",
            time_epoch_secs: (nimbus_core::now_millis() / 1000) as i64,
        };
        let added = nimbus_auth::sign_v4(method, path, "", &headers, b"", &params);
        headers.extend(added);
    }
    let head: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\n{head}Content-Length: 0\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        let status = head.lines().next().unwrap_or("");
        return Err(format!("{status} {}", body.trim()));
    }
    Ok(body.to_string())
}

/// How a command reaches a running nimbus as its root user (`reset`, `state`).
#[derive(clap::Args)]
pub struct RootClientArgs {
    /// Endpoint of the running nimbus.
    #[arg(long, default_value = "http://127.0.0.1:4566", env = "NIMBUS_ENDPOINT")]
    pub endpoint: String,
    /// Root access key id to sign with (what `serve --auth enforce` requires).
    #[arg(long, default_value = "test", env = "NIMBUS_ROOT_ACCESS_KEY_ID")]
    pub root_access_key_id: String,
    /// Root secret access key to sign with.
    #[arg(
        long,
        default_value = "test",
        env = "NIMBUS_ROOT_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub root_secret_access_key: String,
}
