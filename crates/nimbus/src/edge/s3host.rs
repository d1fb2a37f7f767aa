//! How S3 clients name a bucket in the host: virtual-hosted style
//! (`BUCKET.s3.localhost`, `BUCKET.s3.REGION.localhost`, `BUCKET.localhost`
//! as botocore builds it from an endpoint of `http://localhost:4566`, and the
//! amazonaws.com forms) and website endpoints (`BUCKET.s3-website.localhost`,
//! `BUCKET.s3-website-REGION.localhost`, `BUCKET.s3-website.REGION.localhost`).
//! The edge rewrites virtual-hosted requests to path style before decoding.

#[derive(Debug, PartialEq, Eq)]
pub enum S3Host {
    /// The bucket is named by the host; the path is the key.
    Bucket(String),
    /// A website endpoint request for this bucket.
    Website(String),
}

/// Domains under which nimbus answers for S3 host names.
const SUFFIXES: [&str; 3] = ["localhost", "amazonaws.com", "localhost.localstack.cloud"];

/// Reads the bucket from `host` (port allowed). `is_service` says whether a
/// single label in front of `localhost` names another service (`sqs.localhost`),
/// which is then not a bucket.
pub fn parse(host: &str, is_service: &dyn Fn(&str) -> bool) -> Option<S3Host> {
    let name = strip_port(host).to_ascii_lowercase();
    let name = name.trim_end_matches('.');
    let suffix = SUFFIXES
        .iter()
        .filter(|s| name.ends_with(&format!(".{s}")))
        .max_by_key(|s| s.len())?;
    let front = &name[..name.len() - suffix.len() - 1];
    let labels: Vec<&str> = front.split('.').collect();
    // Find the first label naming the S3 endpoint; everything before it is the bucket.
    for (i, label) in labels.iter().enumerate() {
        let rest_is_region = labels
            .get(i + 1..)
            .is_some_and(|rest| rest.len() <= 1 && rest.iter().all(|r| looks_like_region(r)));
        let bucket = labels.get(..i).map(|b| b.join(".")).unwrap_or_default();
        if bucket.is_empty() {
            continue;
        }
        if (*label == "s3" || label.starts_with("s3.")) && rest_is_region {
            return Some(S3Host::Bucket(bucket));
        }
        if (*label == "s3-website"
            || label
                .strip_prefix("s3-website-")
                .is_some_and(looks_like_region))
            && rest_is_region
        {
            return Some(S3Host::Website(bucket));
        }
    }
    // `BUCKET.localhost`: what botocore builds for virtual addressing with a localhost endpoint.
    if *suffix == "localhost"
        && !labels
            .iter()
            .any(|l| *l == "s3" || l.starts_with("s3-website"))
    {
        let first = labels.first().copied().unwrap_or("");
        if labels.len() == 1 && is_service(first) {
            return None;
        }
        // `sqs.us-east-1.localhost` and the like name services, not buckets.
        if labels.len() == 2 && is_service(first) && looks_like_region(labels[1]) {
            return None;
        }
        return Some(S3Host::Bucket(front.to_string()));
    }
    None
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host;
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn looks_like_region(label: &str) -> bool {
    let parts: Vec<&str> = label.split('-').collect();
    parts.len() >= 3
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(name: &str) -> bool {
        matches!(name, "sqs" | "sts" | "s3")
    }

    #[test]
    fn host_forms() {
        let b = |s: &str| Some(S3Host::Bucket(s.to_string()));
        let w = |s: &str| Some(S3Host::Website(s.to_string()));
        let cases = [
            ("localhost:4566", None),
            ("127.0.0.1:4566", None),
            ("my-bucket.localhost:4566", b("my-bucket")),
            ("my.dotted.bucket.localhost", b("my.dotted.bucket")),
            ("my-bucket.s3.localhost:4566", b("my-bucket")),
            ("my-bucket.s3.us-west-2.localhost", b("my-bucket")),
            ("my-bucket.s3.amazonaws.com", b("my-bucket")),
            ("my-bucket.s3.eu-west-1.amazonaws.com", b("my-bucket")),
            ("my-bucket.s3-website.localhost:4566", w("my-bucket")),
            ("my-bucket.s3-website-us-east-1.localhost", w("my-bucket")),
            ("my-bucket.s3-website.eu-west-1.localhost", w("my-bucket")),
            (
                "my-bucket.s3-website-us-east-1.amazonaws.com",
                w("my-bucket"),
            ),
            ("sqs.localhost:4566", None),
            ("sqs.us-east-1.localhost", None),
            ("s3.localhost:4566", None),
            ("s3.amazonaws.com", None),
            ("sqs.us-east-1.amazonaws.com", None),
            ("example.com", None),
        ];
        for (host, want) in cases {
            assert_eq!(parse(host, &services), want, "{host}");
        }
    }
}
