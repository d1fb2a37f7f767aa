//! Canonical forms that signatures hash: URI encoding with the AWS unreserved
//! set, the SigV4 canonical URI (normalised and encoded once more for every
//! service but S3), the canonical query string and the canonical header block.
//! Work is done on bytes, because paths and header values need not be UTF-8.

use percent_encoding::percent_decode_str;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// RFC 3986 unreserved characters, the only ones AWS leaves unencoded.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

pub(crate) fn uri_encode_into(input: &[u8], keep_slash: bool, out: &mut String) {
    for &b in input {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

pub(crate) fn uri_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 2);
    uri_encode_into(input, keep_slash, &mut out);
    out
}

/// Percent-decodes; malformed escapes stay as they are, as AWS does.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    percent_decode_str(s).collect()
}

fn decode_component(s: &str, plus_as_space: bool) -> Vec<u8> {
    if plus_as_space && s.contains('+') {
        percent_decode(&s.replace('+', " "))
    } else {
        percent_decode(s)
    }
}

/// Splits a raw query into its raw (still encoded) pieces; `None` marks a piece
/// without `=` (S3's `?acl`), which SigV2 keeps apart from `?acl=`.
pub(crate) fn split_query(raw: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        })
}

/// Decoded query parameters as text, for finding auth parameters. `+` stays a
/// plus: SigV4 clients encode spaces as `%20`, and base64 tokens carry `+`.
pub(crate) fn query_pairs(raw: &str) -> Vec<(String, String)> {
    split_query(raw)
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&percent_decode(k)).into_owned(),
                String::from_utf8_lossy(&percent_decode(v.unwrap_or(""))).into_owned(),
            )
        })
        .collect()
}

/// Query parameters decoded with form rules (`+` is a space), as the SigV2
/// query API reads them.
pub(crate) fn form_query_pairs(raw: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect()
}

/// Joins already-encoded pairs, sorted by name then value, as `n=v&n=v`.
fn join_sorted(mut pairs: Vec<(String, String)>) -> String {
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The SigV4 canonical query string of a raw query: every parameter decoded,
/// re-encoded with the unreserved set, sorted by encoded name then value.
/// `skip_signature` drops `X-Amz-Signature` (presigned requests).
pub(crate) fn canonical_query(raw: &str, plus_as_space: bool, skip_signature: bool) -> String {
    let pairs = split_query(raw)
        .filter_map(|(k, v)| {
            let name = decode_component(k, plus_as_space);
            if skip_signature && name == b"X-Amz-Signature" {
                return None;
            }
            let value = decode_component(v.unwrap_or(""), plus_as_space);
            Some((uri_encode(&name, false), uri_encode(&value, false)))
        })
        .collect();
    join_sorted(pairs)
}

/// The canonical query of decoded pairs (the signing side).
pub(crate) fn canonical_query_of(pairs: &[(String, String)]) -> String {
    join_sorted(
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    uri_encode(k.as_bytes(), false),
                    uri_encode(v.as_bytes(), false),
                )
            })
            .collect(),
    )
}

/// RFC 3986 dot-segment removal plus the collapsing of empty segments that AWS
/// services apply; a trailing slash survives.
pub(crate) fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Canonical URIs to try, best first. S3 signs the path exactly as sent; every
/// other service normalises it and encodes it once more (so `%20` is signed as
/// `%2520`), which is what botocore and the SDKs do. The second candidate
/// covers clients that encode differently (S3: a path sent with sub-delims
/// unescaped; others: a path encoded only once).
pub(crate) fn canonical_uris(path: &str, s3: bool) -> Vec<String> {
    let path = if path.is_empty() { "/" } else { path };
    let (primary, alt) = if s3 {
        (path.to_string(), uri_encode(&percent_decode(path), true))
    } else {
        let norm = normalize_path(path);
        (
            uri_encode(norm.as_bytes(), true),
            uri_encode(&percent_decode(&norm), true),
        )
    };
    if alt == primary {
        vec![primary]
    } else {
        vec![primary, alt]
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

/// Appends a header value trimmed, with runs of whitespace collapsed to one space.
pub(crate) fn push_header_value(value: &[u8], out: &mut Vec<u8>) {
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        if is_space(b) {
            pending_space = started;
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
            started = true;
        }
    }
}

/// The canonical header block (`name:value\n` per signed header, values of a
/// repeated header joined by `,` in the order received).
pub(crate) fn canonical_headers(headers: &http::HeaderMap, signed: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for name in signed {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (i, value) in headers.get_all(name.as_str()).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_header_value(value.as_bytes(), &mut out);
        }
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_unreserved_set() {
        assert_eq!(uri_encode(b"a b/c~d+e=f", false), "a%20b%2Fc~d%2Be%3Df");
        assert_eq!(uri_encode(b"a b/c", true), "a%20b/c");
        assert_eq!(uri_encode("ሴ".as_bytes(), false), "%E1%88%B4");
    }

    #[test]
    fn normalizes_paths_like_aws() {
        assert_eq!(normalize_path("//example//"), "/example/");
        assert_eq!(normalize_path("/./"), "/");
        assert_eq!(normalize_path("/./example"), "/example");
        assert_eq!(normalize_path("/example/.."), "/");
        assert_eq!(normalize_path("/example1/example2/../.."), "/");
        assert_eq!(normalize_path("/../../a"), "/a");
        assert_eq!(normalize_path(""), "/");
    }

    #[test]
    fn canonical_uris_per_service() {
        assert_eq!(canonical_uris("/a%20b", false)[0], "/a%2520b");
        assert_eq!(canonical_uris("/a%20b", true)[0], "/a%20b");
        assert_eq!(canonical_uris("", true), vec!["/".to_string()]);
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        assert_eq!(
            canonical_query("b=2&a=1&a=0&acl&X-Amz-Signature=x", false, true),
            "a=0&a=1&acl=&b=2"
        );
        assert_eq!(canonical_query("p=a+b%2Bc", false, false), "p=a%2Bb%2Bc");
        assert_eq!(canonical_query("p=a+b", true, false), "p=a%20b");
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let mut out = Vec::new();
        push_header_value(b"  a   b \t c  ", &mut out);
        assert_eq!(out, b"a b c");
    }
}
