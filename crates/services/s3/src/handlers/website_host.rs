//! The website endpoint of a bucket (`BUCKET.s3-website.localhost`, or
//! `/_nimbus/website/BUCKET/...` for clients without wildcard DNS): the
//! rules in `website` decide, this module looks objects up as an anonymous
//! reader would and turns the decision into an answer with HTML error pages.

use crate::access::{self, Ask};
use crate::handlers::objects::{body_slices, object_headers};
use crate::website::{self, Lookup, WebsiteAction, WebsiteRequest};
use crate::Inner;
use bytes::Bytes;
use nimbus_core::{RequestContext, ResponseBody};
use serde_json::Value;

/// What the edge sends back.
pub struct WebsiteAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: WebsiteBody,
}

pub enum WebsiteBody {
    Html(String),
    Object(ResponseBody),
}

fn error(
    status: u16,
    code: &str,
    message: &str,
    key: Option<&str>,
    request_id: &str,
) -> WebsiteAnswer {
    WebsiteAnswer {
        status,
        headers: error_headers(code, message, key),
        body: WebsiteBody::Html(website::error_page(status, code, message, key, request_id)),
    }
}

/// Bucket-level errors name the bucket on the page, as S3's do.
fn bucket_error(
    status: u16,
    code: &str,
    message: &str,
    bucket: &str,
    request_id: &str,
) -> WebsiteAnswer {
    let mut answer = error(status, code, message, None, request_id);
    if let WebsiteBody::Html(page) = &mut answer.body {
        let line = format!(
            "<li>BucketName: {}</li>\n<li>RequestId:",
            html_escape(bucket)
        );
        *page = page.replacen("<li>RequestId:", &line, 1);
    }
    answer
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// S3 website errors also travel as headers, even when an error document is served.
fn error_headers(code: &str, message: &str, key: Option<&str>) -> Vec<(String, String)> {
    let mut headers = vec![
        (
            "Content-Type".to_string(),
            "text/html; charset=utf-8".to_string(),
        ),
        ("x-amz-error-code".to_string(), code.to_string()),
        ("x-amz-error-message".to_string(), message.to_string()),
    ];
    if let Some(key) = key {
        headers.push(("x-amz-error-detail-Key".to_string(), key.to_string()));
    }
    headers
}

pub async fn serve(
    inner: &Inner,
    ctx: &RequestContext,
    bucket_name: &str,
    method: &str,
    path: &str,
) -> WebsiteAnswer {
    let bucket = match inner.bucket(bucket_name) {
        Ok(b) => b,
        Err(_) => {
            return bucket_error(
                404,
                "NoSuchBucket",
                "The specified bucket does not exist",
                bucket_name,
                &ctx.request_id,
            )
        }
    };
    let record = bucket.record();
    let Some(config) = record.config.website.clone() else {
        return bucket_error(
            404,
            "NoSuchWebsiteConfiguration",
            "The specified bucket does not have a website configuration",
            bucket_name,
            &ctx.request_id,
        );
    };
    let key = percent_encoding::percent_decode_str(path.trim_start_matches('/'))
        .decode_utf8_lossy()
        .into_owned();
    let may_list = access::allowed(
        ctx,
        &record,
        &Ask {
            action: "s3:ListBucket",
            key: None,
            object_grants: None,
            extra: &[],
        },
    );
    let lookup = |k: &str| -> Lookup {
        // A store failure reads as a missing object here; the GET that
        // follows reports it.
        let current = bucket
            .versions(k)
            .ok()
            .and_then(|v| v.last().cloned())
            .filter(|m| !m.delete_marker);
        match current {
            Some(meta) => {
                let readable = access::allowed(
                    ctx,
                    &record,
                    &Ask {
                        action: "s3:GetObject",
                        key: Some(k),
                        object_grants: meta.acl.as_ref(),
                        extra: &[],
                    },
                );
                if readable {
                    Lookup::Found {
                        redirect_location: meta.website_redirect.clone(),
                    }
                } else {
                    Lookup::Forbidden
                }
            }
            // Without s3:ListBucket a reader cannot tell missing from forbidden.
            None if may_list => Lookup::Missing,
            None => Lookup::Forbidden,
        }
    };
    let host = ctx.host.clone();
    let action = website::resolve(
        &config,
        &WebsiteRequest {
            method,
            key: &key,
            host: &host,
        },
        &lookup,
    );
    match action {
        WebsiteAction::Redirect { status, location } => WebsiteAnswer {
            status,
            headers: vec![("Location".into(), location)],
            body: WebsiteBody::Html(String::new()),
        },
        WebsiteAction::Error {
            status,
            code,
            message,
            key,
        } => error(status, &code, &message, key.as_deref(), &ctx.request_id),
        WebsiteAction::ServeObject {
            key: object_key,
            status,
        } => {
            let meta = match bucket.versions(&object_key) {
                Ok(versions) => versions.last().cloned(),
                Err(e) => {
                    return error(
                        e.status,
                        &e.code,
                        &e.message,
                        Some(&object_key),
                        &ctx.request_id,
                    )
                }
            };
            let Some(meta) = meta.filter(|m| !m.delete_marker) else {
                return error(
                    404,
                    "NoSuchKey",
                    "The specified key does not exist.",
                    Some(&object_key),
                    &ctx.request_id,
                );
            };
            // An error document is served with the error's headers.
            let mut headers = match status {
                404 => error_headers("NoSuchKey", "The specified key does not exist.", Some(&key)),
                403 => error_headers("AccessDenied", "Access Denied", None),
                _ => Vec::new(),
            };
            headers.retain(|(name, _)| name != "Content-Type");
            for (name, value) in object_headers(&record, &meta, ctx.now_ms) {
                let header = match name.as_str() {
                    "ContentType" => "Content-Type",
                    "ETag" => "ETag",
                    "CacheControl" => "Cache-Control",
                    "ContentEncoding" => "Content-Encoding",
                    "ContentDisposition" => "Content-Disposition",
                    "ContentLanguage" => "Content-Language",
                    "LastModified" => {
                        if let Some(secs) = value.as_f64() {
                            headers.push((
                                "Last-Modified".to_string(),
                                nimbus_core::timestamp::format(secs, "rfc822"),
                            ));
                        }
                        continue;
                    }
                    _ => continue,
                };
                if let Value::String(text) = value {
                    headers.push((header.to_string(), text));
                }
            }
            headers.push(("Content-Length".into(), meta.size.to_string()));
            let body = if method.eq_ignore_ascii_case("HEAD") {
                ResponseBody::Bytes(Bytes::new())
            } else {
                let loaded = bucket.with_body(meta.clone());
                match loaded.and_then(|meta| body_slices(inner, &meta, 0, meta.size)) {
                    Ok(b) => b,
                    Err(e) => return error(500, &e.code, &e.message, None, &ctx.request_id),
                }
            };
            WebsiteAnswer {
                status,
                headers,
                body: WebsiteBody::Object(body),
            }
        }
    }
}
