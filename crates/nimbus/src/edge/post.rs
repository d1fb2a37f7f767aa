//! Browser uploads (S3 POST Object): a multipart/form-data body whose fields
//! carry the key, the signed policy and the object's settings, followed by
//! the file. The fields before the file are read into memory (bounded), the
//! policy and signature are checked by `nimbus_auth::post_policy`, and the
//! file part is streamed to S3 with the policy's content-length-range
//! enforced as it arrives. The answer follows `success_action_redirect` /
//! `success_action_status` as S3 does.

use super::body::{self, HttpBody};
use super::{header_str, to_http, AuthMode, Edge};
use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use nimbus_auth::post_policy::{self, PostForm, PostSignature};
use nimbus_core::{AwsError, BodySource, BoxFuture, RequestBody, RequestContext};
use nimbus_wire::Protocol;
use std::net::SocketAddr;

/// Bound on the text fields of a form (S3 allows 20 KB of form fields besides the file).
const MAX_FIELDS_BYTES: usize = 64 * 1024;

impl Edge {
    pub(super) async fn post_object(
        &self,
        parts: &http::request::Parts,
        body: hyper::body::Incoming,
        wire_path: &str,
        host: &str,
        remote: Option<SocketAddr>,
        request_id: &str,
    ) -> Response<HttpBody> {
        let fail = |e: &AwsError| match nimbus_wire::model_for("s3", Protocol::RestXml) {
            Some(m) => to_http(
                nimbus_wire::encode_error(m, Protocol::RestXml, e, request_id),
                None,
            ),
            None => super::json_response(http::StatusCode::BAD_REQUEST, "{}"),
        };
        match self
            .post_inner(parts, body, wire_path, host, remote, request_id)
            .await
        {
            Ok(r) => r,
            Err(e) => fail(&e),
        }
    }

    async fn post_inner(
        &self,
        parts: &http::request::Parts,
        body: hyper::body::Incoming,
        wire_path: &str,
        host: &str,
        remote: Option<SocketAddr>,
        request_id: &str,
    ) -> Result<Response<HttpBody>, AwsError> {
        let Some(s3) = &self.s3 else {
            return Err(AwsError::new("NotImplemented", "S3 is not running"));
        };
        let bucket = super::bucket_of(wire_path)
            .ok_or_else(|| {
                AwsError::new(
                    "MethodNotAllowed",
                    "The specified method is not allowed against this resource.",
                )
                .with_status(405)
            })?
            .to_string();
        let content_type = header_str(&parts.headers, "content-type").unwrap_or("");
        let boundary = multer::parse_boundary(content_type).map_err(|_| {
            AwsError::new(
                "MalformedPOSTRequest",
                "The body of your POST request is not well-formed multipart/form-data.",
            )
        })?;
        let mut form = multer::Multipart::new(body.into_data_stream(), boundary);
        let malformed = |_| {
            AwsError::new(
                "MalformedPOSTRequest",
                "The body of your POST request is not well-formed multipart/form-data.",
            )
        };
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut total = 0usize;
        let (file, file_name) = loop {
            let Some(field) = form.next_field().await.map_err(malformed)? else {
                return Err(AwsError::new(
                    "InvalidArgument",
                    "POST requires exactly one file upload per request.",
                )
                .with_field("ArgumentName", "file")
                .with_field("ArgumentValue", "0"));
            };
            let name = field.name().unwrap_or("").to_string();
            if name.eq_ignore_ascii_case("file") {
                let file_name = field.file_name().map(str::to_string);
                break (field, file_name);
            }
            let text = field.text().await.map_err(malformed)?;
            total += name.len() + text.len();
            if total > MAX_FIELDS_BYTES {
                return Err(AwsError::new(
                    "MaxPostPreDataLengthExceeded",
                    "Your POST request fields preceeding the upload file was too large.",
                ));
            }
            fields.push((name, text));
        };
        let post_form = PostForm {
            fields: &fields,
            bucket: &bucket,
            file_name: file_name.as_deref(),
        };
        let checked = post_policy::read_post_form(&post_form)?;
        let now_ms = nimbus_core::now_millis();
        let mut ctx =
            RequestContext::for_account(&self.config.default_account, &self.config.default_region);
        ctx.request_id = request_id.to_string();
        ctx.host = host.to_string();
        ctx.now_ms = now_ms;
        ctx.source_ip = remote.map(|a| a.ip());
        ctx.user_agent = header_str(&parts.headers, "user-agent").map(str::to_string);
        ctx.referer = header_str(&parts.headers, "referer").map(str::to_string);
        let secret = match checked.signature.access_key_id() {
            None => None,
            Some(key) => {
                let record = self.credentials.get(key);
                ctx.access_key_id = Some(key.to_string());
                match &record {
                    Some(r) => {
                        ctx.account_id = r.account_id.clone();
                        ctx.caller_arn = r.arn.clone();
                        ctx.caller_user_id = r.user_id.clone();
                    }
                    None => {
                        if let Some(account) = nimbus_sts::account_for_key(key) {
                            ctx.caller_arn = format!("arn:aws:iam::{account}:root");
                            ctx.caller_user_id = account.clone();
                            ctx.account_id = account;
                        }
                    }
                }
                match (self.config.auth, record) {
                    (AuthMode::Enforce, Some(r)) => Some(r.secret_access_key),
                    (AuthMode::Enforce, None) => {
                        return Err(AwsError::new(
                            "InvalidAccessKeyId",
                            "The AWS Access Key Id you provided does not exist in our records.",
                        )
                        .with_status(403)
                        .with_field("AWSAccessKeyId", key))
                    }
                    (AuthMode::Open, _) => None,
                }
            }
        };
        if matches!(checked.signature, PostSignature::Anonymous)
            && self.config.auth == AuthMode::Enforce
        {
            // Anonymous form uploads are allowed only where the bucket lets anyone write; S3 decides that.
        }
        post_policy::verify_post_policy(
            &post_form,
            &checked,
            secret.as_deref(),
            (now_ms / 1000) as i64,
        )?;
        let source = FileSource {
            field: file,
            range: checked.content_length_range,
            received: 0,
        };
        let upload = RequestBody::new(Box::new(source), None);
        let key = checked.key.clone();
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| post_policy::substitute_filename(v, file_name.as_deref()))
        };
        let stored_fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    post_policy::substitute_filename(v, file_name.as_deref()),
                )
            })
            .collect();
        let output = s3
            .post_object(&ctx, &bucket, stored_fields, key.clone(), upload)
            .await?;
        let etag = output
            .get("ETag")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let location = format!("http://{host}/{bucket}/{}", encode_key(&key));
        let mut builder = Response::builder()
            .header("x-amz-request-id", request_id)
            .header("ETag", etag.as_str());
        if let Some(version) = output.get("VersionId").and_then(|v| v.as_str()) {
            builder = builder.header("x-amz-version-id", version);
        }
        let redirect = field("success_action_redirect").or_else(|| field("redirect"));
        if let Some(target) =
            redirect.filter(|t| t.starts_with("http://") || t.starts_with("https://"))
        {
            let sep = if target.contains('?') { '&' } else { '?' };
            let url = format!(
                "{target}{sep}bucket={}&key={}&etag={}",
                encode_query(&bucket),
                encode_query(&key),
                encode_query(&etag)
            );
            return builder
                .status(303)
                .header("Location", url.as_str())
                .body(body::full(Bytes::new()))
                .map_err(|e| AwsError::internal(e.to_string()));
        }
        // Only the non-redirect answers point at the object; a redirect has its own Location.
        builder = builder.header("Location", location.as_str());
        let response = match field("success_action_status").as_deref() {
            Some("200") => builder.status(200).body(body::full(Bytes::new())),
            Some("201") => {
                let xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                    xml_escape(&location),
                    xml_escape(&bucket),
                    xml_escape(&key),
                    xml_escape(&etag)
                );
                builder
                    .status(201)
                    .header("Content-Type", "application/xml")
                    .body(body::full(Bytes::from(xml)))
            }
            _ => builder.status(204).body(body::full(Bytes::new())),
        };
        response.map_err(|e| AwsError::internal(e.to_string()))
    }
}

/// The file part of the form, counted against the policy's content-length-range.
struct FileSource {
    field: multer::Field<'static>,
    range: Option<(u64, u64)>,
    received: u64,
}

impl FileSource {
    async fn next(&mut self) -> Result<Option<Bytes>, AwsError> {
        let chunk = self.field.chunk().await.map_err(|e| {
            AwsError::new(
                "IncompleteBody",
                format!("The request body terminated unexpectedly: {e}"),
            )
        })?;
        match chunk {
            Some(bytes) => {
                self.received += bytes.len() as u64;
                if let Some((_, max)) = self.range {
                    if self.received > max {
                        return Err(post_policy::check_content_length(self.range, self.received)
                            .err()
                            .unwrap_or_else(|| {
                                AwsError::new(
                                    "EntityTooLarge",
                                    "Your proposed upload exceeds the maximum allowed size",
                                )
                            }));
                    }
                }
                Ok(Some(bytes))
            }
            None => {
                post_policy::check_content_length(self.range, self.received)?;
                Ok(None)
            }
        }
    }
}

impl BodySource for FileSource {
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, AwsError>> {
        Box::pin(self.next())
    }
}

fn encode_key(key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(key, KEEP).to_string()
}

fn encode_query(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
