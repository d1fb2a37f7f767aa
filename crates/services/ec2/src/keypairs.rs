//! Key pairs: CreateKeyPair makes a real key (RSA 2048 as a PKCS#1 PEM, or
//! Ed25519 as an OpenSSH private key) and keeps only its public half;
//! ImportKeyPair takes an OpenSSH public key. Fingerprints are computed the
//! way EC2 documents them: SHA-1 of the PKCS#8 private key for RSA keys it
//! created, MD5 of the DER public key for imported RSA keys, base64 SHA-256
//! of the public key for Ed25519. The public key is what instances will be
//! given (issue 4), served in OpenSSH form.

use crate::filters::{strings, tags_value, Filters};
use crate::state::{KeyPair, Partition};
use base64::Engine as _;
use nimbus_core::{AwsError, RequestContext};
use serde_json::{json, Value};

/// A key made for CreateKeyPair, before it is recorded.
pub struct Created {
    pub key_type: String,
    pub material: String,
    pub public_openssh: String,
    pub fingerprint: String,
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn crypto_error(e: impl std::fmt::Display) -> AwsError {
    AwsError::new("InternalError", format!("key generation failed: {e}")).with_status(500)
}

/// Generates the key CreateKeyPair asks for (slow for RSA: run it off the request thread).
pub fn generate(input: &Value) -> Result<Created, AwsError> {
    use sha1::Digest as _;
    let key_type = input
        .get("KeyType")
        .and_then(Value::as_str)
        .unwrap_or("rsa");
    let format = input
        .get("KeyFormat")
        .and_then(Value::as_str)
        .unwrap_or("pem");
    if format != "pem" {
        return Err(AwsError::new(
            "InvalidParameterValue",
            format!("nimbus hands out keys in pem format only, not '{format}'"),
        ));
    }
    let mut rng = rsa::rand_core::OsRng;
    match key_type {
        "rsa" => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(crypto_error)?;
            let pem = key
                .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                .map_err(crypto_error)?;
            let der = key.to_pkcs8_der().map_err(crypto_error)?;
            let fingerprint = colon_hex(&sha1::Sha1::digest(der.as_bytes()));
            let pair = ssh_key::private::RsaKeypair::try_from(&key).map_err(crypto_error)?;
            let public = ssh_key::PrivateKey::from(pair)
                .public_key()
                .to_openssh()
                .map_err(crypto_error)?;
            Ok(Created {
                key_type: "rsa".into(),
                material: pem.to_string(),
                public_openssh: public,
                fingerprint,
            })
        }
        "ed25519" => {
            let private = ssh_key::PrivateKey::random(&mut rng, ssh_key::Algorithm::Ed25519)
                .map_err(crypto_error)?;
            let material = private
                .to_openssh(ssh_key::LineEnding::LF)
                .map_err(crypto_error)?
                .to_string();
            let public = private.public_key();
            Ok(Created {
                key_type: "ed25519".into(),
                material,
                public_openssh: public.to_openssh().map_err(crypto_error)?,
                fingerprint: sha256_fingerprint(public)?,
            })
        }
        other => Err(AwsError::new(
            "InvalidParameterValue",
            format!(
                "Value ({other}) for parameter keyType is invalid. Valid values are: rsa, ed25519"
            ),
        )),
    }
}

fn sha256_fingerprint(public: &ssh_key::PublicKey) -> Result<String, AwsError> {
    use sha2::Digest as _;
    let blob = public.to_bytes().map_err(crypto_error)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&blob)))
}

fn name_of(input: &Value) -> Result<&str, AwsError> {
    input
        .get("KeyName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty() && n.chars().count() <= 255)
        .ok_or_else(|| {
            AwsError::new(
                "MissingParameter",
                "The request must contain the parameter KeyName",
            )
        })
}

fn check_new(p: &Partition, name: &str) -> Result<(), AwsError> {
    if p.key_pairs.contains_key(name) {
        return Err(AwsError::new(
            "InvalidKeyPair.Duplicate",
            format!("The keypair '{name}' already exists."),
        ));
    }
    Ok(())
}

pub fn record_created(
    p: &mut Partition,
    ctx: &RequestContext,
    input: &Value,
    created: Created,
) -> Result<Value, AwsError> {
    let name = name_of(input)?;
    check_new(p, name)?;
    let tags = crate::tags::from_specifications(input, "key-pair")?;
    let pair = KeyPair {
        id: crate::new_id("key"),
        name: name.to_string(),
        key_type: created.key_type,
        fingerprint: created.fingerprint,
        public_key: created.public_openssh,
        created_ms: ctx.now_ms,
        tags,
    };
    let mut out = json!({
        "KeyName": pair.name,
        "KeyFingerprint": pair.fingerprint,
        "KeyMaterial": created.material,
        "KeyPairId": pair.id,
    });
    if !pair.tags.is_empty() {
        out["Tags"] = tags_value(&pair.tags);
    }
    p.key_pairs.insert(pair.name.clone(), pair);
    Ok(out)
}

pub fn import(p: &mut Partition, ctx: &RequestContext, input: &Value) -> Result<Value, AwsError> {
    let name = name_of(input)?;
    check_new(p, name)?;
    let invalid = || {
        AwsError::new(
            "InvalidKey.Format",
            "Key is not in valid OpenSSH public key format",
        )
    };
    // Blobs arrive base64-encoded in the value; the bytes are the OpenSSH public key line.
    let material = input
        .get("PublicKeyMaterial")
        .and_then(Value::as_str)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let public = ssh_key::PublicKey::from_openssh(material.trim()).map_err(|_| invalid())?;
    let (key_type, fingerprint) = match public.key_data() {
        ssh_key::public::KeyData::Ed25519(_) => ("ed25519", sha256_fingerprint(&public)?),
        ssh_key::public::KeyData::Rsa(rsa_public) => {
            use md5::Digest as _;
            use rsa::pkcs8::EncodePublicKey;
            let key = rsa::RsaPublicKey::try_from(rsa_public).map_err(|_| invalid())?;
            let der = key.to_public_key_der().map_err(|_| invalid())?;
            ("rsa", colon_hex(&md5::Md5::digest(der.as_bytes())))
        }
        _ => return Err(invalid()),
    };
    let tags = crate::tags::from_specifications(input, "key-pair")?;
    let pair = KeyPair {
        id: crate::new_id("key"),
        name: name.to_string(),
        key_type: key_type.to_string(),
        fingerprint,
        public_key: public.to_openssh().map_err(|_| invalid())?,
        created_ms: ctx.now_ms,
        tags,
    };
    let mut out =
        json!({"KeyName": pair.name, "KeyFingerprint": pair.fingerprint, "KeyPairId": pair.id});
    if !pair.tags.is_empty() {
        out["Tags"] = tags_value(&pair.tags);
    }
    p.key_pairs.insert(pair.name.clone(), pair);
    Ok(out)
}

fn not_found(what: &str) -> AwsError {
    AwsError::new(
        "InvalidKeyPair.NotFound",
        format!("The key pair '{what}' does not exist"),
    )
}

pub fn describe(p: &Partition, input: &Value) -> Result<Value, AwsError> {
    let names = strings(input, "KeyNames");
    let ids = strings(input, "KeyPairIds");
    for n in &names {
        if !p.key_pairs.contains_key(n) {
            return Err(not_found(n));
        }
    }
    for id in &ids {
        if !p.key_pairs.values().any(|k| k.id == *id) {
            return Err(not_found(id));
        }
    }
    let with_public = input
        .get("IncludePublicKey")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let filters = Filters::from_input(input);
    let mut out = Vec::new();
    for k in p.key_pairs.values() {
        if !names.is_empty() && !names.contains(&k.name) || !ids.is_empty() && !ids.contains(&k.id)
        {
            continue;
        }
        let ok = filters.matches(&k.tags, |f| match f {
            "key-name" => Some(vec![k.name.clone()]),
            "key-pair-id" => Some(vec![k.id.clone()]),
            "fingerprint" => Some(vec![k.fingerprint.clone()]),
            "key-type" => Some(vec![k.key_type.clone()]),
            _ => None,
        })?;
        if !ok {
            continue;
        }
        let mut v = json!({
            "KeyPairId": k.id,
            "KeyName": k.name,
            "KeyFingerprint": k.fingerprint,
            "KeyType": k.key_type,
            "CreateTime": k.created_ms / 1000,
            "Tags": tags_value(&k.tags),
        });
        if with_public {
            v["PublicKey"] = json!(k.public_key);
        }
        out.push(v);
    }
    Ok(json!({"KeyPairs": out}))
}

pub fn delete(p: &mut Partition, input: &Value) -> Result<Value, AwsError> {
    let id = input.get("KeyPairId").and_then(Value::as_str);
    let name = input.get("KeyName").and_then(Value::as_str);
    let found = match (id, name) {
        (Some(id), _) => p
            .key_pairs
            .values()
            .find(|k| k.id == id)
            .map(|k| (k.name.clone(), k.id.clone())),
        (None, Some(name)) => p
            .key_pairs
            .get(name)
            .map(|k| (k.name.clone(), k.id.clone())),
        (None, None) => {
            return Err(AwsError::new(
                "MissingParameter",
                "The request must contain the parameter KeyName or KeyPairId",
            ))
        }
    };
    // Deleting a key that does not exist succeeds, as on EC2.
    let mut out = json!({"Return": true});
    if let Some((name, id)) = found {
        p.key_pairs.remove(&name);
        out["KeyPairId"] = json!(id);
    }
    Ok(out)
}
