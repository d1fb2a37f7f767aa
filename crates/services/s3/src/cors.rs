//! Cross-origin resource sharing for buckets: what a `CORSConfiguration` allows. This
//! module owns PutBucketCors validation, the answer to an `OPTIONS` preflight (the
//! headers, or S3's exact refusal), and the `Access-Control-*` headers S3 adds to an
//! ordinary request whose `Origin` a rule allows. Rules are evaluated in order and the
//! first one that matches wins, as S3 documents.

use nimbus_core::AwsError;
use serde_json::Value;

/// S3 accepts at most 100 rules in one CORS configuration.
const MAX_RULES: usize = 100;
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];
/// What a browser is told may vary the response, so caches keep CORS answers apart.
const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

fn malformed_xml() -> AwsError {
    AwsError::new(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

/// The strings of a list member; a lone string counts as a one-element list.
fn strings<'a>(v: &'a Value, name: &str) -> Vec<&'a str> {
    match v.get(name) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => Vec::new(),
    }
}

fn rules(config: &Value) -> &[Value] {
    config
        .get("CORSRules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Validates a PutBucketCors `CORSConfiguration`.
pub fn validate(config: &Value) -> Result<(), AwsError> {
    let rules = rules(config);
    if rules.is_empty() {
        return Err(malformed_xml());
    }
    if rules.len() > MAX_RULES {
        return Err(AwsError::new(
            "InvalidRequest",
            format!(
                "The CORS configuration must not have more than {MAX_RULES} rules. Found {}.",
                rules.len()
            ),
        ));
    }
    for rule in rules {
        let methods = strings(rule, "AllowedMethods");
        let origins = strings(rule, "AllowedOrigins");
        if methods.is_empty() || origins.is_empty() {
            return Err(malformed_xml());
        }
        // Method names are case-sensitive in S3: "get" is refused like "PATCH".
        if let Some(bad) = methods.iter().find(|m| !METHODS.contains(m)) {
            return Err(AwsError::new(
                "InvalidRequest",
                format!(
                    "Found unsupported HTTP method in CORS config. Unsupported method is {bad}"
                ),
            ));
        }
        for origin in &origins {
            if origin.matches('*').count() > 1 {
                return Err(AwsError::new(
                    "InvalidRequest",
                    format!("AllowedOrigin \"{origin}\" can not have more than one wildcard."),
                ));
            }
        }
        for header in strings(rule, "AllowedHeaders") {
            if header.matches('*').count() > 1 {
                return Err(AwsError::new(
                    "InvalidRequest",
                    format!("AllowedHeader \"{header}\" can not have more than one wildcard."),
                ));
            }
        }
        for header in strings(rule, "ExposeHeaders") {
            if header.contains('*') {
                return Err(AwsError::new(
                    "InvalidRequest",
                    format!("ExposeHeader \"{header}\" contains wildcard. We currently do not support wildcard for ExposeHeader."),
                ));
            }
        }
        if rule
            .get("ID")
            .and_then(Value::as_str)
            .is_some_and(|id| id.len() > 255)
        {
            return Err(AwsError::new(
                "InvalidArgument",
                "ID length should not exceed allowed limit of 255",
            ));
        }
        if rule
            .get("MaxAgeSeconds")
            .is_some_and(|v| !v.is_null() && v.as_i64().is_none_or(|n| n < 0))
        {
            return Err(malformed_xml());
        }
    }
    Ok(())
}

/// Whether `value` matches a pattern with at most one `*` (any run of characters).
/// `case_insensitive` is for header names; origins compare exactly.
fn wildcard_match(pattern: &str, value: &str, case_insensitive: bool) -> bool {
    let (pattern, value) = if case_insensitive {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_string(), value.to_string())
    };
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

/// The origin pattern of `rule` that `origin` matches, if any.
fn matching_origin<'a>(rule: &'a Value, origin: &str) -> Option<&'a str> {
    strings(rule, "AllowedOrigins")
        .into_iter()
        .find(|p| wildcard_match(p, origin, false))
}

/// The headers common to a preflight answer and an actual response.
fn rule_headers(rule: &Value, origin_pattern: &str, origin: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // A rule open to every origin answers "*"; otherwise the caller's own origin is
    // echoed, and only then may credentials be sent (browsers refuse "*" with them).
    let allow_origin = if origin_pattern == "*" { "*" } else { origin };
    out.push(("Access-Control-Allow-Origin".into(), allow_origin.into()));
    out.push((
        "Access-Control-Allow-Methods".into(),
        strings(rule, "AllowedMethods").join(", "),
    ));
    out
}

fn rule_tail_headers(rule: &Value, allow_origin_star: bool, out: &mut Vec<(String, String)>) {
    if let Some(age) = rule.get("MaxAgeSeconds").and_then(Value::as_i64) {
        out.push(("Access-Control-Max-Age".into(), age.to_string()));
    }
    let expose = strings(rule, "ExposeHeaders");
    if !expose.is_empty() {
        out.push(("Access-Control-Expose-Headers".into(), expose.join(", ")));
    }
    if !allow_origin_star {
        out.push(("Access-Control-Allow-Credentials".into(), "true".into()));
    }
    out.push(("Vary".into(), VARY.into()));
}

/// The response headers for an `OPTIONS` preflight, or the error S3 answers with.
/// `request_headers` are the `Access-Control-Request-Headers` values; comma-separated
/// entries are split here.
pub fn preflight(
    config: Option<&Value>,
    origin: Option<&str>,
    request_method: Option<&str>,
    request_headers: &[String],
    resource_type: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    let forbidden = |message: &str| {
        AwsError::new("AccessForbidden", message)
            .with_status(403)
            .with_field(
                "Method",
                request_method
                    .filter(|m| !m.is_empty())
                    .unwrap_or("OPTIONS"),
            )
            .with_field("ResourceType", resource_type)
    };
    let Some(origin) = origin.filter(|o| !o.is_empty()) else {
        return Err(AwsError::new(
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        ));
    };
    let Some(config) = config else {
        // Without a configuration the refusal is about the bucket, even when a key was addressed.
        return Err(
            forbidden("CORSResponse: CORS is not enabled for this bucket.")
                .with_field_replaced("ResourceType", "BUCKET"),
        );
    };
    let Some(method) = request_method.filter(|m| !m.is_empty()) else {
        return Err(AwsError::new(
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        ));
    };
    let requested: Vec<&str> = request_headers
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    for rule in rules(config) {
        let Some(pattern) = matching_origin(rule, origin) else {
            continue;
        };
        if !strings(rule, "AllowedMethods").contains(&method) {
            continue;
        }
        let allowed = strings(rule, "AllowedHeaders");
        if !requested
            .iter()
            .all(|h| allowed.iter().any(|p| wildcard_match(p, h, true)))
        {
            continue;
        }
        let mut out = rule_headers(rule, pattern, origin);
        if !requested.is_empty() {
            out.push(("Access-Control-Allow-Headers".into(), requested.join(", ")));
        }
        rule_tail_headers(rule, pattern == "*", &mut out);
        return Ok(out);
    }
    // "evalution" is S3's own spelling; clients compare this text.
    Err(forbidden(
        "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
    ))
}

/// The `Access-Control-*` headers added to an ordinary (non-preflight) response: those
/// of the first rule that allows `origin` and `method`, or none.
pub fn actual_headers(
    config: Option<&Value>,
    origin: Option<&str>,
    method: &str,
) -> Vec<(String, String)> {
    let (Some(config), Some(origin)) = (config, origin.filter(|o| !o.is_empty())) else {
        return Vec::new();
    };
    for rule in rules(config) {
        let Some(pattern) = matching_origin(rule, origin) else {
            continue;
        };
        if !strings(rule, "AllowedMethods").contains(&method) {
            continue;
        }
        let mut out = rule_headers(rule, pattern, origin);
        rule_tail_headers(rule, pattern == "*", &mut out);
        return out;
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Value {
        json!({"CORSRules": [
            {"AllowedOrigins": ["http://www.example1.com"], "AllowedMethods": ["PUT", "POST", "DELETE"],
             "AllowedHeaders": ["*"]},
            {"AllowedOrigins": ["http://*.example2.com"], "AllowedMethods": ["GET"],
             "AllowedHeaders": ["x-amz-*", "Content-Type"], "MaxAgeSeconds": 3000,
             "ExposeHeaders": ["x-amz-server-side-encryption", "x-amz-request-id"]},
            {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]}
        ]})
    }

    fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn validation_table() {
        let rule =
            |o: Value, m: Value| json!({"CORSRules": [{"AllowedOrigins": o, "AllowedMethods": m}]});
        let many: Vec<Value> = (0..101)
            .map(|_| json!({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}))
            .collect();
        let cases: Vec<(Value, Option<&str>)> = vec![
            (config(), None),
            (rule(json!(["*"]), json!(["GET", "HEAD"])), None),
            (rule(json!(["*"]), json!(["PATCH"])), Some("InvalidRequest")),
            (rule(json!(["*"]), json!(["get"])), Some("InvalidRequest")),
            (
                rule(json!(["http://*.*.com"]), json!(["GET"])),
                Some("InvalidRequest"),
            ),
            (rule(json!([]), json!(["GET"])), Some("MalformedXML")),
            (
                json!({"CORSRules": [{"AllowedMethods": ["GET"]}]}),
                Some("MalformedXML"),
            ),
            (
                json!({"CORSRules": [{"AllowedOrigins": ["*"]}]}),
                Some("MalformedXML"),
            ),
            (json!({"CORSRules": []}), Some("MalformedXML")),
            (json!({"CORSRules": many}), Some("InvalidRequest")),
            (
                json!({"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "ExposeHeaders": ["*"]}]}),
                Some("InvalidRequest"),
            ),
        ];
        for (c, want) in cases {
            assert_eq!(validate(&c).err().map(|e| e.code).as_deref(), want, "{c}");
        }
        let err = validate(&rule(json!(["*"]), json!(["PATCH"]))).unwrap_err();
        assert_eq!(
            err.message,
            "Found unsupported HTTP method in CORS config. Unsupported method is PATCH"
        );
    }

    /// (origin, method, request headers, allow-origin or (status, code)).
    type PreflightCase = (
        Option<&'static str>,
        Option<&'static str>,
        Vec<String>,
        Result<&'static str, (u16, &'static str)>,
    );

    #[test]
    fn preflight_table() {
        let c = config();
        let hdrs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: Vec<PreflightCase> = vec![
            (
                Some("http://www.example1.com"),
                Some("PUT"),
                hdrs(&["x-anything"]),
                Ok("http://www.example1.com"),
            ),
            (
                Some("http://a.example2.com"),
                Some("GET"),
                hdrs(&["X-Amz-Date, content-type"]),
                Ok("http://a.example2.com"),
            ),
            (
                Some("http://a.example2.com"),
                Some("GET"),
                hdrs(&["authorization"]),
                Err((403, "AccessForbidden")),
            ),
            (Some("http://other.com"), Some("HEAD"), vec![], Ok("*")),
            (
                Some("http://other.com"),
                Some("PUT"),
                vec![],
                Err((403, "AccessForbidden")),
            ),
            (
                Some("http://www.example1.com"),
                Some("GET"),
                vec![],
                Ok("*"),
            ),
            (None, Some("GET"), vec![], Err((400, "BadRequest"))),
            (Some("http://x"), None, vec![], Err((400, "BadRequest"))),
        ];
        for (origin, method, req, want) in cases {
            let got = preflight(Some(&c), origin, method, &req, "OBJECT");
            match (got, want) {
                (Ok(h), Ok(o)) => assert_eq!(header(&h, "Access-Control-Allow-Origin"), Some(o)),
                (Err(e), Err((s, code))) => assert_eq!((e.status, e.code.as_str()), (s, code)),
                (got, want) => panic!("{origin:?} {method:?}: {got:?} vs {want:?}"),
            }
        }
        let h = preflight(
            Some(&c),
            Some("http://a.example2.com"),
            Some("GET"),
            &hdrs(&["x-amz-date"]),
            "OBJECT",
        )
        .unwrap();
        assert_eq!(header(&h, "Access-Control-Allow-Methods"), Some("GET"));
        assert_eq!(
            header(&h, "Access-Control-Allow-Headers"),
            Some("x-amz-date")
        );
        assert_eq!(header(&h, "Access-Control-Max-Age"), Some("3000"));
        assert_eq!(
            header(&h, "Access-Control-Expose-Headers"),
            Some("x-amz-server-side-encryption, x-amz-request-id")
        );
        assert_eq!(header(&h, "Access-Control-Allow-Credentials"), Some("true"));
        assert_eq!(header(&h, "Vary"), Some(VARY));
        let star = preflight(Some(&c), Some("http://z"), Some("GET"), &[], "BUCKET").unwrap();
        assert_eq!(header(&star, "Access-Control-Allow-Credentials"), None);
        let off = preflight(None, Some("http://z"), Some("GET"), &[], "BUCKET").unwrap_err();
        assert_eq!(
            off.message,
            "CORSResponse: CORS is not enabled for this bucket."
        );
        assert_eq!(off.status, 403);
    }

    #[test]
    fn actual_table() {
        let c = config();
        let cases = [
            (
                Some("http://www.example1.com"),
                "PUT",
                Some("http://www.example1.com"),
            ),
            (
                Some("http://b.example2.com"),
                "GET",
                Some("http://b.example2.com"),
            ),
            (Some("http://example2.com"), "GET", Some("*")),
            (Some("http://nope.com"), "DELETE", None),
            (None, "GET", None),
        ];
        for (origin, method, want) in cases {
            let h = actual_headers(Some(&c), origin, method);
            assert_eq!(
                header(&h, "Access-Control-Allow-Origin"),
                want,
                "{origin:?}"
            );
        }
        assert!(actual_headers(None, Some("http://a"), "GET").is_empty());
    }
}
