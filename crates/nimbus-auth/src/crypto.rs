//! The primitives under every signature: HMAC-SHA256 and HMAC-SHA1, SHA-256
//! in hex, a constant-time comparison, and the SigV4 signing-key chain with
//! its cache (deriving a key costs four HMACs, and a busy server verifies
//! thousands of requests per second with the same few keys).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

const BLOCK: usize = 64;

// HMAC pads keys up to the hash's block size and hashes longer ones first;
// doing that here gives the block-sized key that `KeyInit::new` takes, so the
// MAC can be built without a fallible constructor.
fn block_key<D: Digest>(key: &[u8]) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        let digest = D::digest(key);
        let n = digest.len().min(BLOCK);
        block[..n].copy_from_slice(&digest[..n]);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    block
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new(&block_key::<Sha256>(key).into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub(crate) fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut mac = Hmac::<Sha1>::new(&block_key::<Sha1>(key).into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Compares two byte strings in time that depends only on their lengths, so a
/// caller probing signatures learns nothing from response timing.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// Bounded so that a flood of made-up scopes cannot grow memory; clearing the
// whole map when full is crude but keeps the common case (few keys) fast.
const CACHE_LIMIT: usize = 4096;

static SIGNING_KEYS: LazyLock<Mutex<HashMap<String, [u8; 32]>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The SigV4 signing key: HMAC chain over `AWS4`+secret, date, region, service
/// and `aws4_request`, cached per (secret, date, region, service).
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    // NUL cannot occur in any of the parts as they come off the wire, so the
    // joined key is unambiguous.
    let cache_key = format!("{secret}\0{date}\0{region}\0{service}");
    {
        // A poisoned lock only means another thread panicked mid-insert of a
        // plain value; the map is still usable.
        let cache = SIGNING_KEYS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = cache.get(&cache_key) {
            return *key;
        }
    }
    let k_secret = format!("AWS4{secret}");
    let k_date = hmac_sha256(k_secret.as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    let key = hmac_sha256(&k_service, b"aws4_request");
    let mut cache = SIGNING_KEYS.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(cache_key, key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_and_rfc2202() {
        // RFC 4231 test case 2 and RFC 2202 test case 2 ("Jefe").
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        // RFC 4231 test case 6: a key longer than the block size.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signing_key_matches_aws_example() {
        // From the AWS SigV4 documentation ("Examples of how to derive a signing key").
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
        // Cached path returns the same.
        assert_eq!(
            key,
            signing_key(
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                "20120215",
                "us-east-1",
                "iam"
            )
        );
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
