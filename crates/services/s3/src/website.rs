//! Static website hosting: what a bucket's `WebsiteConfiguration` means. This module
//! owns the PutBucketWebsite validation rules, the resolution of one website-endpoint
//! request (whole-bucket redirect, index documents, routing rules, per-object
//! `x-amz-website-redirect-location`, custom error documents) into a
//! [`WebsiteAction`], and the HTML error page the website endpoint answers with. It
//! never touches storage: the caller passes a lookup callback that says whether a key
//! exists and may be read.

use nimbus_core::AwsError;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// AWS accepts at most 50 routing rules per website configuration.
const MAX_ROUTING_RULES: usize = 50;

/// Characters kept as they are when a key goes into a redirect `Location`: the
/// unreserved set plus `/`, which separates the key's "folders" in the URL path.
const LOCATION_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// What the website endpoint does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebsiteAction {
    /// Answer `status` (301, 302, or a routing rule's code) with this `Location`.
    Redirect { status: u16, location: String },
    /// Serve the object at `key` with `status`: 200 for the requested object or an
    /// index document, 404/403 when `key` is the custom error document.
    ServeObject { key: String, status: u16 },
    /// Answer with the HTML error page ([`error_page`]).
    Error {
        status: u16,
        code: String,
        message: String,
        key: Option<String>,
    },
}

/// What the store knows about a key, as the resolver needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The object exists and the anonymous website reader may get it.
    Found {
        /// The object's `x-amz-website-redirect-location` metadata, if any.
        redirect_location: Option<String>,
    },
    Missing,
    Forbidden,
}

/// One request to the website endpoint.
#[derive(Debug, Clone, Copy)]
pub struct WebsiteRequest<'a> {
    /// HTTP method; only GET and HEAD are served.
    pub method: &'a str,
    /// The object key: the URL path without its leading `/`, already percent-decoded.
    pub key: &'a str,
    /// The `Host` the request came to; redirects without their own host name go there.
    pub host: &'a str,
}

fn invalid_argument(message: &str, name: &str, value: &str) -> AwsError {
    AwsError::new("InvalidArgument", message)
        .with_field("ArgumentName", name)
        .with_field("ArgumentValue", value)
}

fn malformed_xml() -> AwsError {
    AwsError::new(
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

fn str_member<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// A member that is present and not JSON null (the codec may emit either for absence).
fn present(v: &Value, name: &str) -> bool {
    v.get(name).is_some_and(|m| !m.is_null())
}

fn check_protocol(p: Option<&str>) -> Result<(), AwsError> {
    match p {
        None | Some("http") | Some("https") => Ok(()),
        Some(other) => Err(invalid_argument(
            "Invalid protocol, protocol can be http or https. If not defined the protocol will be selected automatically.",
            "Protocol",
            other,
        )),
    }
}

/// Validates a PutBucketWebsite `WebsiteConfiguration`.
pub fn validate(config: &Value) -> Result<(), AwsError> {
    if !config.is_object() {
        return Err(malformed_xml());
    }
    if let Some(all) = config.get("RedirectAllRequestsTo").filter(|v| !v.is_null()) {
        // A whole-bucket redirect answers every request, so nothing else could apply.
        if ["IndexDocument", "ErrorDocument", "RoutingRules"]
            .iter()
            .any(|m| present(config, m))
        {
            return Err(AwsError::new(
                "InvalidArgument",
                "RedirectAllRequestsTo cannot be provided in conjunction with other Routing Rules.",
            )
            .with_field("ArgumentName", "RedirectAllRequestsTo"));
        }
        match str_member(all, "HostName") {
            Some(h) if !h.is_empty() => {}
            _ => return Err(malformed_xml()),
        }
        return check_protocol(str_member(all, "Protocol"));
    }
    let Some(index) = config.get("IndexDocument").filter(|v| !v.is_null()) else {
        return Err(invalid_argument(
            "A value for IndexDocument Suffix must be provided if RedirectAllRequestsTo is empty",
            "IndexDocument",
            "",
        ));
    };
    let Some(suffix) = str_member(index, "Suffix") else {
        return Err(malformed_xml());
    };
    if suffix.is_empty() || suffix.contains('/') {
        return Err(invalid_argument(
            "The IndexDocument Suffix is not well formed",
            "IndexDocument",
            suffix,
        ));
    }
    if let Some(err) = config.get("ErrorDocument").filter(|v| !v.is_null()) {
        match str_member(err, "Key") {
            Some(k) if !k.is_empty() => {}
            Some(k) => {
                return Err(invalid_argument(
                    "The ErrorDocument Key is not well formed",
                    "ErrorDocument",
                    k,
                ))
            }
            None => return Err(malformed_xml()),
        }
    }
    if let Some(rules) = config.get("RoutingRules").filter(|v| !v.is_null()) {
        let Some(rules) = rules.as_array() else {
            return Err(malformed_xml());
        };
        if rules.len() > MAX_ROUTING_RULES {
            return Err(invalid_argument(
                "The number of routing rules must not exceed the allowed limit of 50.",
                "RoutingRules",
                &rules.len().to_string(),
            ));
        }
        for rule in rules {
            validate_routing_rule(rule)?;
        }
    }
    Ok(())
}

fn validate_routing_rule(rule: &Value) -> Result<(), AwsError> {
    if let Some(cond) = rule.get("Condition").filter(|v| !v.is_null()) {
        if !present(cond, "KeyPrefixEquals") && !present(cond, "HttpErrorCodeReturnedEquals") {
            return Err(invalid_argument(
                "Condition cannot be empty. To redirect all requests without a condition, the condition element shouldn't be present.",
                "Condition",
                "",
            ));
        }
        if let Some(code) = str_member(cond, "HttpErrorCodeReturnedEquals") {
            // Only errors can trigger an error-code rule: 4XX and 5XX.
            let ok = code.len() == 3 && code.parse::<u16>().is_ok_and(|c| (400..600).contains(&c));
            if !ok {
                return Err(invalid_argument(
                    &format!(
                        "The provided HTTP error code ({code}) is not valid. Valid codes are 4XX or 5XX."
                    ),
                    "HttpErrorCodeReturnedEquals",
                    code,
                ));
            }
        }
    }
    let Some(redirect) = rule.get("Redirect").filter(|v| v.is_object()) else {
        return Err(malformed_xml());
    };
    if ![
        "HostName",
        "HttpRedirectCode",
        "Protocol",
        "ReplaceKeyPrefixWith",
        "ReplaceKeyWith",
    ]
    .iter()
    .any(|m| present(redirect, m))
    {
        return Err(invalid_argument(
            "Redirect element must contain at least one of the following elements: HostName, HttpRedirectCode, Protocol, ReplaceKeyPrefixWith or ReplaceKeyWith",
            "Redirect",
            "",
        ));
    }
    if present(redirect, "ReplaceKeyPrefixWith") && present(redirect, "ReplaceKeyWith") {
        return Err(AwsError::new(
            "InvalidRequest",
            "You can only define ReplaceKeyPrefix or ReplaceKey but not both.",
        ));
    }
    if let Some(code) = str_member(redirect, "HttpRedirectCode") {
        // 300 (Multiple Choices) is not a redirect a browser can follow on its own.
        let ok = code.len() == 3 && code.parse::<u16>().is_ok_and(|c| (301..400).contains(&c));
        if !ok {
            return Err(invalid_argument(
                &format!(
                    "The provided HTTP redirect code ({code}) is not valid. Valid codes are 3XX except 300."
                ),
                "HttpRedirectCode",
                code,
            ));
        }
    }
    check_protocol(str_member(redirect, "Protocol"))
}

/// `Location` for `protocol://host/key`, the key percent-encoded as a URL path.
fn location(protocol: &str, host: &str, key: &str) -> String {
    format!(
        "{protocol}://{host}/{}",
        utf8_percent_encode(key, LOCATION_KEEP)
    )
}

/// The redirect a routing rule's `Redirect` element asks for, for `key`.
/// `matched_prefix` is the rule's `KeyPrefixEquals` ("" when it has none).
fn rule_redirect(redirect: &Value, key: &str, matched_prefix: &str, host: &str) -> WebsiteAction {
    let new_key = if let Some(k) = str_member(redirect, "ReplaceKeyWith") {
        k.to_string()
    } else if let Some(p) = str_member(redirect, "ReplaceKeyPrefixWith") {
        format!("{p}{}", key.strip_prefix(matched_prefix).unwrap_or(key))
    } else {
        key.to_string()
    };
    // Website endpoints are plain HTTP, so that is the protocol the request came in on.
    let protocol = str_member(redirect, "Protocol").unwrap_or("http");
    let host = str_member(redirect, "HostName").unwrap_or(host);
    let status = str_member(redirect, "HttpRedirectCode")
        .and_then(|c| c.parse::<u16>().ok())
        .unwrap_or(301);
    WebsiteAction::Redirect {
        status,
        location: location(protocol, host, &new_key),
    }
}

/// The first routing rule that applies to `key`: before the lookup (`error` None)
/// only rules without an error-code condition count; after a failed lookup only
/// rules whose `HttpErrorCodeReturnedEquals` is that status.
fn routing_redirect(
    config: &Value,
    key: &str,
    host: &str,
    error: Option<u16>,
) -> Option<WebsiteAction> {
    let rules = config.get("RoutingRules")?.as_array()?;
    for rule in rules {
        let cond = rule.get("Condition").filter(|v| !v.is_null());
        let prefix = cond
            .and_then(|c| str_member(c, "KeyPrefixEquals"))
            .unwrap_or("");
        let code = cond.and_then(|c| str_member(c, "HttpErrorCodeReturnedEquals"));
        let code_ok = match (code, error) {
            (None, None) => true,
            (Some(c), Some(status)) => c.parse::<u16>().ok() == Some(status),
            _ => false,
        };
        if code_ok && key.starts_with(prefix) {
            if let Some(redirect) = rule.get("Redirect").filter(|v| v.is_object()) {
                return Some(rule_redirect(redirect, key, prefix, host));
            }
        }
    }
    None
}

/// Resolves one website-endpoint request. HEAD resolves exactly like GET; the caller
/// leaves the body out.
pub fn resolve(
    config: &Value,
    request: &WebsiteRequest,
    lookup: &dyn Fn(&str) -> Lookup,
) -> WebsiteAction {
    let key = request.key;
    if !request.method.eq_ignore_ascii_case("GET") && !request.method.eq_ignore_ascii_case("HEAD") {
        return WebsiteAction::Error {
            status: 405,
            code: "MethodNotAllowed".into(),
            message: "The specified method is not allowed against this resource.".into(),
            key: None,
        };
    }
    if let Some(all) = config
        .get("RedirectAllRequestsTo")
        .filter(|v| v.is_object())
    {
        let host = str_member(all, "HostName").unwrap_or(request.host);
        let protocol = str_member(all, "Protocol").unwrap_or("http");
        return WebsiteAction::Redirect {
            status: 301,
            location: location(protocol, host, key),
        };
    }
    if let Some(redirect) = routing_redirect(config, key, request.host, None) {
        return redirect;
    }
    let suffix = config
        .get("IndexDocument")
        .and_then(|i| str_member(i, "Suffix"))
        .unwrap_or("index.html");
    let target = if key.is_empty() || key.ends_with('/') {
        format!("{key}{suffix}")
    } else {
        key.to_string()
    };
    let (status, code, message) = match lookup(&target) {
        Lookup::Found {
            redirect_location: Some(loc),
        } if !loc.is_empty() => {
            return WebsiteAction::Redirect {
                status: 301,
                location: loc,
            }
        }
        Lookup::Found { .. } => {
            return WebsiteAction::ServeObject {
                key: target,
                status: 200,
            }
        }
        Lookup::Missing => {
            // "photos" with "photos/index.html" present: S3 sends the browser to the
            // folder form so relative links in the index page resolve.
            if target == key && matches!(lookup(&format!("{key}/{suffix}")), Lookup::Found { .. }) {
                return WebsiteAction::Redirect {
                    status: 302,
                    location: format!("/{}/", utf8_percent_encode(key, LOCATION_KEEP)),
                };
            }
            (404, "NoSuchKey", "The specified key does not exist.")
        }
        Lookup::Forbidden => (403, "AccessDenied", "Access Denied"),
    };
    if let Some(redirect) = routing_redirect(config, key, request.host, Some(status)) {
        return redirect;
    }
    if let Some(error_key) = config
        .get("ErrorDocument")
        .and_then(|e| str_member(e, "Key"))
        .filter(|k| !k.is_empty())
    {
        if matches!(lookup(error_key), Lookup::Found { .. }) {
            return WebsiteAction::ServeObject {
                key: error_key.to_string(),
                status,
            };
        }
    }
    WebsiteAction::Error {
        status,
        code: code.into(),
        message: message.into(),
        key: (status == 404).then_some(target),
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The HTML error page a website endpoint returns. Every value is HTML-escaped
/// because the key comes straight from the request URL. The HostId is derived from
/// the request id (nimbus has no separate host id) so one request always shows one.
pub fn error_page(
    status: u16,
    code: &str,
    message: &str,
    key: Option<&str>,
    request_id: &str,
) -> String {
    use md5::{Digest, Md5};
    let title = format!("{status} {}", reason_phrase(status));
    let host_id = hex::encode(Md5::digest(request_id.as_bytes()));
    let mut out = format!(
        "<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<ul>\n<li>Code: {}</li>\n<li>Message: {}</li>\n",
        escape_html(code),
        escape_html(message)
    );
    if let Some(key) = key {
        out.push_str(&format!("<li>Key: {}</li>\n", escape_html(key)));
    }
    out.push_str(&format!(
        "<li>RequestId: {}</li>\n<li>HostId: {}</li>\n</ul>\n<hr/>\n</body>\n</html>\n",
        escape_html(request_id),
        host_id
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn site() -> Value {
        json!({"IndexDocument": {"Suffix": "index.html"}, "ErrorDocument": {"Key": "error.html"}})
    }

    fn store(keys: &'static [&'static str]) -> impl Fn(&str) -> Lookup {
        move |k: &str| {
            if k == "secret" {
                Lookup::Forbidden
            } else if k == "moved" {
                Lookup::Found {
                    redirect_location: Some("/elsewhere".into()),
                }
            } else if keys.contains(&k) {
                Lookup::Found {
                    redirect_location: None,
                }
            } else {
                Lookup::Missing
            }
        }
    }

    fn get<'a>(key: &'a str) -> WebsiteRequest<'a> {
        WebsiteRequest {
            method: "GET",
            key,
            host: "b.s3-website.localhost",
        }
    }

    #[test]
    fn validation_table() {
        let cases: Vec<(Value, Option<&str>)> = vec![
            (site(), None),
            (json!({"IndexDocument": {"Suffix": "index.html"}}), None),
            (
                json!({"RedirectAllRequestsTo": {"HostName": "example.com"}}),
                None,
            ),
            (
                json!({"RedirectAllRequestsTo": {"HostName": "e.com", "Protocol": "https"}}),
                None,
            ),
            (
                json!({"RedirectAllRequestsTo": {"HostName": "e.com", "Protocol": "ftp"}}),
                Some("InvalidArgument"),
            ),
            (
                json!({"RedirectAllRequestsTo": {"HostName": "e.com"}, "IndexDocument": {"Suffix": "i"}}),
                Some("InvalidArgument"),
            ),
            (json!({"RedirectAllRequestsTo": {}}), Some("MalformedXML")),
            (json!({}), Some("InvalidArgument")),
            (
                json!({"IndexDocument": {"Suffix": ""}}),
                Some("InvalidArgument"),
            ),
            (
                json!({"IndexDocument": {"Suffix": "a/b.html"}}),
                Some("InvalidArgument"),
            ),
            (json!({"IndexDocument": {}}), Some("MalformedXML")),
            (
                json!({"IndexDocument": {"Suffix": "i"}, "ErrorDocument": {}}),
                Some("MalformedXML"),
            ),
            (
                json!({"IndexDocument": {"Suffix": "i"}, "RoutingRules": [{"Condition": {"KeyPrefixEquals": "a"}}]}),
                Some("MalformedXML"),
            ),
            (
                json!({"IndexDocument": {"Suffix": "i"}, "RoutingRules": [{"Condition": {}, "Redirect": {"HostName": "x"}}]}),
                Some("InvalidArgument"),
            ),
            (
                json!({"IndexDocument": {"Suffix": "i"}, "RoutingRules": [{"Redirect": {"ReplaceKeyWith": "a", "ReplaceKeyPrefixWith": "b"}}]}),
                Some("InvalidRequest"),
            ),
            (
                json!({"IndexDocument": {"Suffix": "i"}, "RoutingRules": [{"Redirect": {"HttpRedirectCode": "300"}}]}),
                Some("InvalidArgument"),
            ),
            (
                json!({"IndexDocument": {"Suffix": "i"}, "RoutingRules": [{"Condition": {"HttpErrorCodeReturnedEquals": "200"}, "Redirect": {"HostName": "x"}}]}),
                Some("InvalidArgument"),
            ),
            (
                json!({"IndexDocument": {"Suffix": "i"}, "RoutingRules": [{"Condition": {"HttpErrorCodeReturnedEquals": "404"}, "Redirect": {"HttpRedirectCode": "302"}}]}),
                None,
            ),
            (
                json!({"IndexDocument": {"Suffix": "i"}, "RoutingRules": [{"Redirect": {}}]}),
                Some("InvalidArgument"),
            ),
        ];
        for (config, want) in cases {
            let got = validate(&config).err().map(|e| e.code);
            assert_eq!(got.as_deref(), want, "{config}");
        }
        let err = validate(&json!({"IndexDocument": {"Suffix": "a/"}})).unwrap_err();
        assert_eq!(err.message, "The IndexDocument Suffix is not well formed");
    }

    #[test]
    fn resolution_table() {
        let lookup = store(&["index.html", "a.txt", "photos/index.html", "error.html"]);
        let serve = |k: &str, s| WebsiteAction::ServeObject {
            key: k.into(),
            status: s,
        };
        let redirect = |s, l: &str| WebsiteAction::Redirect {
            status: s,
            location: l.into(),
        };
        let cases = [
            ("", serve("index.html", 200)),
            ("a.txt", serve("a.txt", 200)),
            ("photos/", serve("photos/index.html", 200)),
            ("photos", redirect(302, "/photos/")),
            ("moved", redirect(301, "/elsewhere")),
            ("nope", serve("error.html", 404)),
            ("secret", serve("error.html", 403)),
        ];
        for (key, want) in cases {
            assert_eq!(resolve(&site(), &get(key), &lookup), want, "{key}");
        }
        // Without an error document the error itself is answered.
        let plain = json!({"IndexDocument": {"Suffix": "index.html"}});
        assert_eq!(
            resolve(&plain, &get("docs/"), &lookup),
            WebsiteAction::Error {
                status: 404,
                code: "NoSuchKey".into(),
                message: "The specified key does not exist.".into(),
                key: Some("docs/index.html".into())
            }
        );
        match resolve(&plain, &get("secret"), &lookup) {
            WebsiteAction::Error { status, code, .. } => {
                assert_eq!((status, code.as_str()), (403, "AccessDenied"))
            }
            other => panic!("{other:?}"),
        }
        // The error document itself missing: the original error stands.
        let nolookup = store(&[]);
        assert!(matches!(
            resolve(&site(), &get("x"), &nolookup),
            WebsiteAction::Error { status: 404, .. }
        ));
        let put = WebsiteRequest {
            method: "PUT",
            ..get("a.txt")
        };
        assert!(matches!(
            resolve(&site(), &put, &lookup),
            WebsiteAction::Error { status: 405, .. }
        ));
    }

    #[test]
    fn redirects_and_routing_rules() {
        let lookup = store(&["index.html"]);
        let all =
            json!({"RedirectAllRequestsTo": {"HostName": "example.com", "Protocol": "https"}});
        assert_eq!(
            resolve(&all, &get("a b/c.txt"), &lookup),
            WebsiteAction::Redirect {
                status: 301,
                location: "https://example.com/a%20b/c.txt".into()
            }
        );
        let config = json!({
            "IndexDocument": {"Suffix": "index.html"},
            "RoutingRules": [
                {"Condition": {"KeyPrefixEquals": "docs/"}, "Redirect": {"ReplaceKeyPrefixWith": "documents/"}},
                {"Condition": {"KeyPrefixEquals": "images/"}, "Redirect": {"ReplaceKeyWith": "folderdeleted.html", "HttpRedirectCode": "302"}},
                {"Condition": {"HttpErrorCodeReturnedEquals": "404"}, "Redirect": {"HostName": "ec2.example.com", "ReplaceKeyPrefixWith": "report-404/"}},
                {"Condition": {"KeyPrefixEquals": "x/", "HttpErrorCodeReturnedEquals": "403"}, "Redirect": {"Protocol": "https"}}
            ]
        });
        let cases = [
            (
                "docs/a.html",
                301,
                "http://b.s3-website.localhost/documents/a.html",
            ),
            (
                "images/p.jpg",
                302,
                "http://b.s3-website.localhost/folderdeleted.html",
            ),
            ("missing", 301, "http://ec2.example.com/report-404/missing"),
        ];
        for (key, status, loc) in cases {
            assert_eq!(
                resolve(&config, &get(key), &lookup),
                WebsiteAction::Redirect {
                    status,
                    location: loc.into()
                },
                "{key}"
            );
        }
        // An existing object is served: error-code rules only follow errors.
        assert_eq!(
            resolve(&config, &get(""), &lookup),
            WebsiteAction::ServeObject {
                key: "index.html".into(),
                status: 200
            }
        );
    }

    #[test]
    fn error_page_escapes() {
        let page = error_page(
            404,
            "NoSuchKey",
            "The specified key does not exist.",
            Some("<a>&"),
            "RID",
        );
        assert!(page.starts_with("<html>\n<head><title>404 Not Found</title></head>"));
        assert!(page.contains("<h1>404 Not Found</h1>"));
        assert!(page.contains("<li>Code: NoSuchKey</li>"));
        assert!(page.contains("<li>Key: &lt;a&gt;&amp;</li>"));
        assert!(page.contains("<li>RequestId: RID</li>"));
        assert!(page.contains("<li>HostId: "));
        assert!(page.contains("<hr/>"));
        let page = error_page(403, "AccessDenied", "Access Denied", None, "R");
        assert!(page.contains("403 Forbidden") && !page.contains("Key:"));
    }
}
