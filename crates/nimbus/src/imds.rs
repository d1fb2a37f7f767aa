//! The instance metadata service (IMDS): what an EC2 instance reads at
//! http://169.254.169.254/. This module owns its HTTP answers, IMDSv2 session
//! tokens (PUT /latest/api/token, required when the instance's HttpTokens is
//! "required") and the instance profile's temporary credentials, which it
//! gets from IAM (the profile's role) and STS (AssumeRole) and caches until
//! shortly before they expire. The caller is recognised by its source address
//! (namespace driver) or by the first path segment (process driver, where
//! instances share the host's loopback): a per-instance secret that only the
//! instance's environment holds, so that another local user who reads instance
//! ids in `ps` gets nothing from the port.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use nimbus_core::{RequestContext, Service};
use nimbus_ec2::{Ec2, InstanceMeta};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// Credentials are handed out again until this close to their expiry.
const REFRESH_MARGIN_MS: u64 = 5 * 60 * 1000;
const CREDENTIAL_SECONDS: i64 = 6 * 3600;

pub struct Imds {
    ec2: Arc<Ec2>,
    iam: Arc<dyn Service>,
    sts: Arc<dyn Service>,
    /// token -> (instance id, expiry ms)
    tokens: Mutex<HashMap<String, (String, u64)>>,
    /// instance id -> (role name, credential document, expiry ms)
    credentials: Mutex<HashMap<String, (String, Value, u64)>>,
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Answer {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn text(body: impl Into<String>) -> Answer {
    answer(StatusCode::OK, "text/plain", body.into())
}

/// AWS answers unknown paths and refused tokens with small HTML pages.
fn error_page(status: StatusCode) -> Answer {
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = status.as_u16();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>{code} - {reason}</title>\n </head>\n <body>\n  <h1>{code} - {reason}</h1>\n </body>\n</html>\n"
    );
    answer(status, "text/html", body)
}

fn lines(items: &[&str]) -> Answer {
    text(items.join("\n"))
}

impl Imds {
    pub fn new(ec2: Arc<Ec2>, iam: Arc<dyn Service>, sts: Arc<dyn Service>) -> Imds {
        Imds {
            ec2,
            iam,
            sts,
            tokens: Mutex::new(HashMap::new()),
            credentials: Mutex::new(HashMap::new()),
        }
    }

    /// One request. `by_path`: the instance's metadata secret is the first path
    /// segment (process driver); otherwise the caller's address names the instance.
    pub async fn handle<B>(&self, req: Request<B>, remote: SocketAddr, by_path: bool) -> Answer {
        let path = req.uri().path().to_string();
        let (instance, path) = if by_path {
            let trimmed = path.trim_start_matches('/');
            let (secret, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
            // Tools join the endpoint and the path with or without a slash between.
            (
                self.ec2.metadata_by_secret(secret),
                format!("/{}", rest.trim_start_matches('/')),
            )
        } else {
            (self.ec2.metadata_by_ip(&remote.ip().to_string()), path)
        };
        let Some(instance) = instance else {
            return error_page(StatusCode::NOT_FOUND);
        };
        if instance.http_endpoint == "disabled" {
            return error_page(StatusCode::FORBIDDEN);
        }
        let headers = req.headers();
        if req.method() == hyper::Method::PUT && path == "/latest/api/token" {
            // A token request that came through a proxy is refused, as on EC2.
            if headers.contains_key("x-forwarded-for") {
                return error_page(StatusCode::FORBIDDEN);
            }
            let ttl = headers
                .get(TTL_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let Some(ttl) = ttl.filter(|t| (1..=21600).contains(t)) else {
                return error_page(StatusCode::BAD_REQUEST);
            };
            let token = format!(
                "AQAEA{}==",
                nimbus_core::random_string(nimbus_core::UPPER_ALNUM, 51)
            );
            let now = nimbus_core::now_millis();
            let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            tokens.retain(|_, (_, expiry)| *expiry > now);
            tokens.insert(
                token.clone(),
                (instance.instance_id.clone(), now + ttl * 1000),
            );
            let mut r = text(token);
            if let Ok(v) = ttl.to_string().parse() {
                r.headers_mut().insert(TTL_HEADER, v);
            }
            return r;
        }
        if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
            return error_page(StatusCode::METHOD_NOT_ALLOWED);
        }
        match headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
            Some(token) => {
                let now = nimbus_core::now_millis();
                let valid = self
                    .tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(token)
                    .is_some_and(|(id, expiry)| *id == instance.instance_id && *expiry > now);
                if !valid {
                    return error_page(StatusCode::UNAUTHORIZED);
                }
            }
            None if instance.http_tokens == "required" => {
                return error_page(StatusCode::UNAUTHORIZED)
            }
            None => {}
        }
        self.get(&instance, &path).await
    }

    async fn get(&self, m: &InstanceMeta, path: &str) -> Answer {
        let path = path.trim_end_matches('/');
        match path {
            "" => lines(&["latest"]),
            "/latest" => lines(&["dynamic", "meta-data", "user-data"]),
            "/latest/user-data" => match &m.user_data {
                Some(data) => answer(StatusCode::OK, "application/octet-stream", data.clone()),
                None => error_page(StatusCode::NOT_FOUND),
            },
            "/latest/dynamic" => lines(&["instance-identity/"]),
            "/latest/dynamic/instance-identity" => lines(&["document", "pkcs7", "signature"]),
            "/latest/dynamic/instance-identity/document" => answer(
                StatusCode::OK,
                "text/plain",
                serde_json::to_string_pretty(&identity_document(m)).unwrap_or_default(),
            ),
            "/latest/dynamic/instance-identity/signature"
            | "/latest/dynamic/instance-identity/pkcs7" => {
                // Not a real AWS signature (nimbus holds no AWS key); present so tools that
                // fetch it do not fail.
                use base64::Engine as _;
                text(
                    base64::engine::general_purpose::STANDARD
                        .encode(identity_document(m).to_string()),
                )
            }
            _ => match path.strip_prefix("/latest/meta-data") {
                Some(rest) => self.meta_data(m, rest.trim_start_matches('/')).await,
                None => error_page(StatusCode::NOT_FOUND),
            },
        }
    }

    async fn meta_data(&self, m: &InstanceMeta, key: &str) -> Answer {
        let mac_prefix = format!("network/interfaces/macs/{}", m.mac);
        match key {
            "" => {
                let mut keys = vec![
                    "ami-id",
                    "ami-launch-index",
                    "ami-manifest-path",
                    "block-device-mapping/",
                    "hostname",
                    "iam/",
                    "instance-action",
                    "instance-id",
                    "instance-life-cycle",
                    "instance-type",
                    "local-hostname",
                    "local-ipv4",
                    "mac",
                    "network/",
                    "placement/",
                    "profile",
                    "public-keys/",
                    "reservation-id",
                    "security-groups",
                    "services/",
                ];
                if m.public_ip.is_some() {
                    keys.push("public-hostname");
                    keys.push("public-ipv4");
                }
                if m.tags_enabled {
                    keys.push("tags/");
                }
                keys.sort();
                lines(&keys)
            }
            "ami-id" => text(&m.image_id),
            "ami-launch-index" => text("0"),
            "ami-manifest-path" => text("(unknown)"),
            "block-device-mapping" => lines(&["ami", "root"]),
            "block-device-mapping/ami" => text("/dev/xvda"),
            "block-device-mapping/root" => text("/dev/xvda"),
            "hostname" | "local-hostname" => text(&m.hostname),
            "instance-action" => text("none"),
            "instance-id" => text(&m.instance_id),
            "instance-life-cycle" => text("on-demand"),
            "instance-type" => text(&m.instance_type),
            "local-ipv4" => text(&m.private_ip),
            "mac" => text(&m.mac),
            "profile" => text("default-hvm"),
            "reservation-id" => text(&m.reservation_id),
            "security-groups" => text(m.group_names.join("\n")),
            "public-ipv4" => match &m.public_ip {
                Some(ip) => text(ip),
                None => error_page(StatusCode::NOT_FOUND),
            },
            "public-hostname" => match &m.public_hostname {
                Some(name) => text(name),
                None => error_page(StatusCode::NOT_FOUND),
            },
            "placement" => lines(&["availability-zone", "region"]),
            "placement/availability-zone" => text(&m.zone),
            "placement/region" => text(&m.region),
            "services" => lines(&["domain", "partition"]),
            "services/domain" => text("amazonaws.com"),
            "services/partition" => text("aws"),
            "public-keys" => match &m.key {
                Some((name, _)) => text(format!("0={name}")),
                None => error_page(StatusCode::NOT_FOUND),
            },
            "public-keys/0" => match &m.key {
                Some(_) => text("openssh-key"),
                None => error_page(StatusCode::NOT_FOUND),
            },
            "public-keys/0/openssh-key" => match &m.key {
                Some((name, key)) => text(format!("{key} {name}\n")),
                None => error_page(StatusCode::NOT_FOUND),
            },
            "network" => lines(&["interfaces/"]),
            "network/interfaces" => lines(&["macs/"]),
            "network/interfaces/macs" => text(format!("{}/", m.mac)),
            k if k == mac_prefix => lines(&[
                "device-number",
                "interface-id",
                "local-hostname",
                "local-ipv4s",
                "mac",
                "owner-id",
                "security-group-ids",
                "security-groups",
                "subnet-id",
                "subnet-ipv4-cidr-block",
                "vpc-id",
                "vpc-ipv4-cidr-block",
            ]),
            k if k.starts_with(&format!("{mac_prefix}/")) => match &k[mac_prefix.len() + 1..] {
                "device-number" => text("0"),
                "interface-id" => text(&m.eni_id),
                "local-hostname" => text(&m.hostname),
                "local-ipv4s" => text(&m.private_ip),
                "mac" => text(&m.mac),
                "owner-id" => text(&m.account),
                "security-group-ids" => text(m.group_ids.join("\n")),
                "security-groups" => text(m.group_names.join("\n")),
                "subnet-id" => text(&m.subnet_id),
                "subnet-ipv4-cidr-block" => text(&m.subnet_cidr),
                "vpc-id" => text(&m.vpc_id),
                "vpc-ipv4-cidr-block" => text(&m.vpc_cidr),
                _ => error_page(StatusCode::NOT_FOUND),
            },
            "tags" if m.tags_enabled => lines(&["instance"]),
            "tags/instance" if m.tags_enabled => {
                let keys: Vec<&str> = m.tags.iter().map(|(k, _)| k.as_str()).collect();
                lines(&keys)
            }
            k if m.tags_enabled && k.starts_with("tags/instance/") => {
                let wanted = &k["tags/instance/".len()..];
                match m.tags.iter().find(|(key, _)| key == wanted) {
                    Some((_, v)) => text(v),
                    None => error_page(StatusCode::NOT_FOUND),
                }
            }
            "iam" => match &m.profile {
                Some(_) => lines(&["info", "security-credentials/"]),
                None => error_page(StatusCode::NOT_FOUND),
            },
            "iam/info" => match &m.profile {
                Some((arn, id)) => answer(
                    StatusCode::OK,
                    "text/plain",
                    serde_json::to_string_pretty(&json!({
                        "Code": "Success",
                        "LastUpdated": iso_now(),
                        "InstanceProfileArn": arn,
                        "InstanceProfileId": id,
                    }))
                    .unwrap_or_default(),
                ),
                None => error_page(StatusCode::NOT_FOUND),
            },
            "iam/security-credentials" => match self.credentials_for(m).await {
                Some((role, _)) => text(role),
                None => error_page(StatusCode::NOT_FOUND),
            },
            k if k.starts_with("iam/security-credentials/") => {
                let wanted = &k["iam/security-credentials/".len()..];
                match self.credentials_for(m).await {
                    Some((role, doc)) if role == wanted => answer(
                        StatusCode::OK,
                        "text/plain",
                        serde_json::to_string_pretty(&doc).unwrap_or_default(),
                    ),
                    _ => error_page(StatusCode::NOT_FOUND),
                }
            }
            _ => error_page(StatusCode::NOT_FOUND),
        }
    }

    /// The instance profile role's name and current credentials, fetched from IAM
    /// and STS when none are cached or they are about to expire.
    async fn credentials_for(&self, m: &InstanceMeta) -> Option<(String, Value)> {
        let (profile_arn, _) = m.profile.as_ref()?;
        let now = nimbus_core::now_millis();
        if let Some((role, doc, expiry)) = self
            .credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&m.instance_id)
        {
            if *expiry > now + REFRESH_MARGIN_MS {
                return Some((role.clone(), doc.clone()));
            }
        }
        let ctx = RequestContext::for_account(&m.account, &m.region);
        let profile_name = profile_arn.rsplit('/').next()?.to_string();
        let profile = self
            .iam
            .call(
                &ctx,
                "GetInstanceProfile",
                json!({"InstanceProfileName": profile_name}),
            )
            .await
            .ok()?;
        let role = profile.pointer("/InstanceProfile/Roles/0")?;
        let role_name = role.get("RoleName")?.as_str()?.to_string();
        let role_arn = role.get("Arn")?.as_str()?.to_string();
        let assumed = self
            .sts
            .call(
                &ctx,
                "AssumeRole",
                json!({
                    "RoleArn": role_arn,
                    "RoleSessionName": m.instance_id,
                    "DurationSeconds": CREDENTIAL_SECONDS,
                }),
            )
            .await
            .map_err(|e| {
                tracing::warn!("instance credentials for {}: {}", m.instance_id, e.message)
            })
            .ok()?;
        let c = assumed.get("Credentials")?;
        let expiry_secs = c.get("Expiration").and_then(Value::as_f64)?;
        let doc = json!({
            "Code": "Success",
            "LastUpdated": iso_now(),
            "Type": "AWS-HMAC",
            "AccessKeyId": c.get("AccessKeyId")?,
            "SecretAccessKey": c.get("SecretAccessKey")?,
            "Token": c.get("SessionToken")?,
            "Expiration": nimbus_core::timestamp::format_iso8601_secs(expiry_secs as i64),
        });
        self.credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                m.instance_id.clone(),
                (
                    role_name.clone(),
                    doc.clone(),
                    (expiry_secs * 1000.0) as u64,
                ),
            );
        Some((role_name, doc))
    }
}

fn iso_now() -> String {
    nimbus_core::timestamp::format_iso8601_secs((nimbus_core::now_millis() / 1000) as i64)
}

fn identity_document(m: &InstanceMeta) -> Value {
    json!({
        "accountId": m.account,
        "architecture": "x86_64",
        "availabilityZone": m.zone,
        "billingProducts": null,
        "devpayProductCodes": null,
        "marketplaceProductCodes": null,
        "imageId": m.image_id,
        "instanceId": m.instance_id,
        "instanceType": m.instance_type,
        "kernelId": null,
        "pendingTime": nimbus_core::timestamp::format_iso8601_secs((m.launch_ms / 1000) as i64),
        "privateIp": m.private_ip,
        "ramdiskId": null,
        "region": m.region,
        "version": "2017-09-30",
    })
}

/// Resolves RunInstances' IamInstanceProfile (a name or an ARN) through IAM.
pub fn profile_resolver(iam: Arc<dyn Service>) -> nimbus_ec2::ProfileResolver {
    Arc::new(move |account: String, given: String| {
        let iam = iam.clone();
        Box::pin(async move {
            let name = given.rsplit('/').next().unwrap_or(&given).to_string();
            let ctx = RequestContext::for_account(&account, "us-east-1");
            let found = iam
                .call(
                    &ctx,
                    "GetInstanceProfile",
                    json!({"InstanceProfileName": name}),
                )
                .await
                .ok()?;
            let profile = found.get("InstanceProfile")?;
            let arn = profile.get("Arn")?.as_str()?.to_string();
            if given.starts_with("arn:") && given != arn {
                return None;
            }
            let id = profile.get("InstanceProfileId")?.as_str()?.to_string();
            Some((arn, id))
        }) as nimbus_core::BoxFuture<'static, Option<(String, String)>>
    })
}
