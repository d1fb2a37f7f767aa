//! Reset: removes every resource of every service at once, as test suites
//! expect between tests, and leaves nimbus serving as on first use. This
//! module owns the orchestration behind `POST /_nimbus/reset` (also answered
//! at `/_localstack/state/reset` and `/moto-api/reset`, the URLs LocalStack and
//! moto fixtures call) and the `nimbus reset` command that calls it. Each
//! service empties its own state and store tables ([`Service::reset`]); here
//! they are called one at a time, EC2 first (its instances use the others'
//! credentials and buckets while they run), and one line is logged.

use http::StatusCode;
use nimbus_core::Service;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Two resets at once would only race each other; the second waits.
static RESETTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Resets every service. `Ok` carries the answer (moto's `{"status": "ok"}` plus
/// the services reset); `Err` names each service that failed (the others are reset).
pub async fn reset_all(
    services: &BTreeMap<&'static str, Arc<dyn Service>>,
) -> Result<Value, String> {
    let _one = RESETTING.lock().await;
    let started = Instant::now();
    let order = services
        .iter()
        .filter(|(name, _)| **name == "ec2")
        .chain(services.iter().filter(|(name, _)| **name != "ec2"));
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for (name, service) in order {
        match service.reset().await {
            Ok(()) => done.push(*name),
            Err(e) => failures.push(format!("{name}: {}", e.message)),
        }
    }
    if !failures.is_empty() {
        let why = failures.join("; ");
        tracing::warn!("reset failed in part: {why}");
        return Err(why);
    }
    tracing::info!(
        "reset: every resource of {} removed in {} ms",
        done.join(", "),
        started.elapsed().as_millis()
    );
    Ok(json!({"status": "ok", "reset": done}))
}

/// The HTTP answer for a reset's result.
pub fn http_answer(result: Result<Value, String>) -> (StatusCode, String) {
    match result {
        Ok(v) => (StatusCode::OK, v.to_string()),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"status": "error", "message": e}).to_string(),
        ),
    }
}

/// True for the paths a reset answers at (with POST).
pub fn is_reset_path(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "/_nimbus/reset" | "/_localstack/state/reset" | "/moto-api/reset"
    )
}

/// moto's internal API (`POST /moto-api/reset`), told apart from S3 requests to a
/// bucket that happens to be named `moto-api`: S3 has no POST to a key without a
/// query string, so only those go to the internal endpoints.
pub fn is_moto_request(parts: &http::request::Parts) -> bool {
    parts.uri.path().starts_with("/moto-api/")
        && parts.method == http::Method::POST
        && parts.uri.query().is_none()
}

#[derive(clap::Args)]
pub struct ResetArgs {
    #[command(flatten)]
    root: crate::health::RootClientArgs,
}

/// `nimbus reset`: asks a running nimbus to remove every resource; exit code 1
/// when none answers or the reset failed.
pub fn command(args: ResetArgs) -> i32 {
    let credentials = (
        args.root.root_access_key_id.as_str(),
        args.root.root_secret_access_key.as_str(),
    );
    match crate::health::http_call(
        &args.root.endpoint,
        "POST",
        "/_nimbus/reset",
        Some(credentials),
    ) {
        Ok(body) => {
            println!("{body}");
            0
        }
        Err(e) => {
            eprintln!("nimbus reset: {}: {e}", args.root.endpoint);
            1
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reset_paths() {
        for p in [
            "/_nimbus/reset",
            "/_localstack/state/reset",
            "/moto-api/reset",
            "/moto-api/reset/",
        ] {
            assert!(super::is_reset_path(p), "{p}");
        }
        for p in [
            "/_nimbus/resets",
            "/moto-api/",
            "/_localstack/state/s3/reset",
        ] {
            assert!(!super::is_reset_path(p), "{p}");
        }
    }

    #[test]
    fn moto_requests_leave_a_moto_api_bucket_alone() {
        let parts = |method: &str, uri: &str| {
            http::Request::builder()
                .method(method)
                .uri(uri)
                .body(())
                .map(|r| r.into_parts().0)
                .expect("request")
        };
        assert!(super::is_moto_request(&parts("POST", "/moto-api/reset")));
        assert!(!super::is_moto_request(&parts("GET", "/moto-api/reset")));
        assert!(!super::is_moto_request(&parts("PUT", "/moto-api/key")));
        assert!(!super::is_moto_request(&parts(
            "POST",
            "/moto-api/key?uploads"
        )));
        assert!(!super::is_moto_request(&parts("POST", "/moto-api")));
    }
}
