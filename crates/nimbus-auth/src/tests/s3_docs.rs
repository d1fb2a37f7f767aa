//! The examples of the Amazon S3 API reference: SigV4 header signing, the
//! presigned URL, chunked upload signatures (with and without a signed
//! trailer) and SigV2 (REST authentication).

use super::{epoch, sha, Req};
use crate::{
    decode_aws_chunked, encode_aws_chunked, presign_v4, sign_v2_s3, ChunkSigning, Claim,
    SigningParams, Streaming, V2Form,
};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DATE: &str = "20130524T000000Z";
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const BUCKET_HOST: &str = "examplebucket.s3.amazonaws.com";

fn auth(signed: &str, signature: &str) -> String {
    format!("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders={signed},Signature={signature}")
}

#[test]
fn get_object() {
    let a = auth(
        "host;range;x-amz-content-sha256;x-amz-date",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    );
    let req = Req::new(
        "GET",
        "/test.txt",
        "",
        &[
            ("Host", BUCKET_HOST),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY),
            ("x-amz-date", DATE),
            ("Authorization", &a),
        ],
    );
    let claim = req.check(&[], Some("s3"), "", SECRET, epoch(DATE)).unwrap();
    assert!(
        matches!(claim, Claim::V4 { ref service, presigned: false, streaming: Streaming::None, .. } if service == "s3")
    );
}

#[test]
fn put_object() {
    let body = b"Welcome to Amazon S3.";
    let content_sha = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    assert_eq!(sha(body), content_sha);
    let a = auth(
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    );
    let req = Req::new(
        "PUT",
        "/test%24file.text",
        "",
        &[
            ("Host", BUCKET_HOST),
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", content_sha),
            ("Authorization", &a),
        ],
    );
    req.check(&[], Some("s3"), &sha(body), SECRET, epoch(DATE))
        .unwrap();

    // The same request with a body that does not match the signed hash.
    let err = req
        .check(&[], Some("s3"), &sha(b"other"), SECRET, epoch(DATE))
        .unwrap_err();
    assert_eq!(err.code, "XAmzContentSHA256Mismatch");
}

#[test]
fn get_bucket_lifecycle_and_list() {
    let a = auth(
        "host;x-amz-content-sha256;x-amz-date",
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    );
    let req = Req::new(
        "GET",
        "/",
        "lifecycle",
        &[
            ("Host", BUCKET_HOST),
            ("x-amz-date", DATE),
            ("x-amz-content-sha256", EMPTY),
            ("Authorization", &a),
        ],
    );
    req.check(&[], Some("s3"), "", SECRET, epoch(DATE)).unwrap();

    let a = auth(
        "host;x-amz-content-sha256;x-amz-date",
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    );
    let req = Req::new(
        "GET",
        "/",
        "max-keys=2&prefix=J",
        &[
            ("Host", BUCKET_HOST),
            ("x-amz-date", DATE),
            ("x-amz-content-sha256", EMPTY),
            ("Authorization", &a),
        ],
    );
    req.check(&[], Some("s3"), "", SECRET, epoch(DATE)).unwrap();
}

const PRESIGNED_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

#[test]
fn presigned_url() {
    let req = Req::new(
        "GET",
        "/test.txt",
        PRESIGNED_QUERY,
        &[("Host", BUCKET_HOST)],
    );
    // Valid for a day from its date, whatever the skew.
    let claim = req
        .check(&[], Some("s3"), "", SECRET, epoch(DATE) + 86_000)
        .unwrap();
    assert!(matches!(
        claim,
        Claim::V4 {
            presigned: true,
            expires_secs: Some(86400),
            ..
        }
    ));

    let err = req
        .check(&[], Some("s3"), "", SECRET, epoch(DATE) + 86_401)
        .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.status, err.message.as_str()),
        ("AccessDenied", 403, "Request has expired")
    );
    assert!(err
        .fields
        .iter()
        .any(|(k, v)| k == "X-Amz-Expires" && v == "86400"));
    assert!(err
        .fields
        .iter()
        .any(|(k, v)| k == "Expires" && v == "2013-05-25T00:00:00Z"));

    let params = SigningParams {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: SECRET,
        session_token: None,
        region: "us-east-1",
        service: "s3",
        time_epoch_secs: epoch(DATE),
    };
    assert_eq!(
        presign_v4("GET", BUCKET_HOST, "/test.txt", "", 86400, &params),
        PRESIGNED_QUERY
    );
}

fn chunk_signing<'a>(seed: &'a str) -> ChunkSigning<'a> {
    ChunkSigning {
        secret_access_key: SECRET,
        amz_date: DATE,
        date: "20130524",
        region: "us-east-1",
        service: "s3",
        seed_signature: seed,
    }
}

#[test]
fn chunked_upload_signatures() {
    let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    let a = auth("content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class", seed);
    let req = Req::new(
        "PUT",
        "/examplebucket/chunkObject.txt",
        "",
        &[
            ("Host", "s3.amazonaws.com"),
            ("x-amz-date", DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("Authorization", &a),
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            ("Content-Encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("Content-Length", "66824"),
        ],
    );
    let claim = req.check(&[], Some("s3"), "", SECRET, epoch(DATE)).unwrap();
    assert!(matches!(
        claim,
        Claim::V4 {
            streaming: Streaming::SignedChunks,
            ..
        }
    ));

    let payload = vec![b'a'; 66_560];
    let body = encode_aws_chunked(&payload, 65_536, Some(&chunk_signing(seed)), &[]);
    let text = String::from_utf8_lossy(&body);
    for sig in [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ] {
        assert!(
            text.contains(&format!("chunk-signature={sig}\r\n")),
            "{sig}"
        );
    }
    assert_eq!(
        body.len(),
        66_824,
        "Content-Length of the documented request"
    );

    let decoded = decode_aws_chunked(&body, Some(&chunk_signing(seed))).unwrap();
    assert_eq!(decoded.payload, payload);
    assert!(decoded.trailers.is_empty());

    // A flipped data byte breaks the chain.
    let mut tampered = body.clone();
    tampered[200] = b'b';
    let err = decode_aws_chunked(&tampered, Some(&chunk_signing(seed))).unwrap_err();
    assert_eq!(err.code, "SignatureDoesNotMatch");
    // A wrong seed too.
    let err = decode_aws_chunked(&body, Some(&chunk_signing(&"0".repeat(64)))).unwrap_err();
    assert_eq!(err.code, "SignatureDoesNotMatch");
}

#[test]
fn chunked_upload_with_signed_trailer() {
    let seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
    let a = auth("content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer", seed);
    let req = Req::new(
        "PUT",
        "/examplebucket/chunkObject.txt",
        "",
        &[
            ("Host", "s3.amazonaws.com"),
            ("x-amz-date", DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("Authorization", &a),
            (
                "x-amz-content-sha256",
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            ),
            ("Content-Encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("x-amz-trailer", "x-amz-checksum-crc32c"),
        ],
    );
    let claim = req.check(&[], Some("s3"), "", SECRET, epoch(DATE)).unwrap();
    assert!(matches!(
        claim,
        Claim::V4 {
            streaming: Streaming::SignedChunksTrailer,
            ..
        }
    ));

    let payload = vec![b'a'; 66_560];
    let mut body = Vec::new();
    body.extend_from_slice(b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n");
    body.extend_from_slice(&payload[..65_536]);
    body.extend_from_slice(b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n");
    body.extend_from_slice(&payload[65_536..]);
    body.extend_from_slice(b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n");
    body.extend_from_slice(b"x-amz-checksum-crc32c:sOO8/Q==\r\n");
    body.extend_from_slice(b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n");

    let decoded = decode_aws_chunked(&body, Some(&chunk_signing(seed))).unwrap();
    assert_eq!(decoded.payload, payload);
    assert_eq!(
        decoded.trailers,
        vec![("x-amz-checksum-crc32c".to_string(), "sOO8/Q==".to_string())]
    );

    let encoded = encode_aws_chunked(
        &payload,
        65_536,
        Some(&chunk_signing(seed)),
        &decoded.trailers,
    );
    assert_eq!(encoded, body);

    // A blank line before the trailers (as some clients send) is accepted.
    let text = String::from_utf8_lossy(&body).replace("f992\r\nx-amz", "f992\r\n\r\nx-amz");
    decode_aws_chunked(text.as_bytes(), Some(&chunk_signing(seed))).unwrap();

    // Wrong checksum value: the trailer signature no longer matches.
    let text = String::from_utf8_lossy(&body).replace("sOO8/Q==", "AAAAAA==");
    let err = decode_aws_chunked(text.as_bytes(), Some(&chunk_signing(seed))).unwrap_err();
    assert_eq!(err.code, "SignatureDoesNotMatch");
    // Unsigned decoding of the same body reports the bad checksum itself.
    let err = decode_aws_chunked(text.as_bytes(), None).unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.message.as_str()),
        (
            "BadDigest",
            "The CRC32C you specified did not match the calculated checksum."
        )
    );
}

// SigV2 ("Signing and authenticating REST requests").
const V2_HOST: &str = "awsexamplebucket1.s3.us-west-1.amazonaws.com";

#[test]
fn sigv2_string_to_sign_examples() {
    assert_eq!(
        sign_v2_s3(
            SECRET,
            "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg"
        ),
        "qgk2+6Sv9/oM7G3qLEjTH1a1l1g="
    );
    assert_eq!(sign_v2_s3(SECRET, "PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n/awsexamplebucket1/photos/puppy.jpg"), "iqRzw+ileNPu1fhspnRs8nOjjIA=");
    // The documentation prints NpgCjnDzrM+WFzoENXmpNDUsSn8= for this string to sign, but that
    // value was made with the old "johnsmith" example credentials; this one is HMAC-SHA1 of the
    // documented string with the documented secret (checked with Python's hmac module).
    assert_eq!(
        sign_v2_s3(
            SECRET,
            "GET\n\n\n1175139620\n/awsexamplebucket1/photos/puppy.jpg"
        ),
        "1No4mq5ETf02z8aet9voy6gui6E="
    );
}

#[test]
fn sigv2_header_requests() {
    let date = "Tue, 27 Mar 2007 19:36:42 +0000";
    let now = crate::clock::parse_http_date(date).unwrap();
    let req = Req::new(
        "GET",
        "/photos/puppy.jpg",
        "",
        &[
            ("Host", V2_HOST),
            ("Date", date),
            (
                "Authorization",
                "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
            ),
        ],
    );
    let claim = req.check(&[], Some("s3"), "", SECRET, now).unwrap();
    assert!(
        matches!(claim, Claim::V2 { form: V2Form::S3Header, ref access_key_id, .. } if access_key_id == "AKIAIOSFODNN7EXAMPLE")
    );

    let date = "Tue, 27 Mar 2007 21:15:45 +0000";
    let now = crate::clock::parse_http_date(date).unwrap();
    let req = Req::new(
        "PUT",
        "/photos/puppy.jpg",
        "",
        &[
            ("Content-Type", "image/jpeg"),
            ("Content-Length", "94328"),
            ("Host", V2_HOST),
            ("Date", date),
            (
                "Authorization",
                "AWS AKIAIOSFODNN7EXAMPLE:iqRzw+ileNPu1fhspnRs8nOjjIA=",
            ),
        ],
    );
    req.check(&[], Some("s3"), "", SECRET, now).unwrap();

    // Twenty minutes later the same request is too skewed.
    let err = req
        .check(&[], Some("s3"), "", SECRET, now + 1200)
        .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.status),
        ("RequestTimeTooSkewed", 403)
    );
    // And with another secret the signature does not match, S3-style.
    let err = req.check(&[], Some("s3"), "", "other", now).unwrap_err();
    assert_eq!(err.code, "SignatureDoesNotMatch");
    assert_eq!(err.message, "The request signature we calculated does not match the signature you provided. Check your key and signing method.");
    assert!(err
        .fields
        .iter()
        .any(|(k, v)| k == "StringToSign" && v.starts_with("PUT\n\nimage/jpeg\n")));
}

#[test]
fn sigv2_query_request() {
    let req = Req::new("GET", "/photos/puppy.jpg", "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=1No4mq5ETf02z8aet9voy6gui6E%3D&Expires=1175139620", &[("Host", V2_HOST)]);
    let claim = req
        .check(&[], Some("s3"), "", SECRET, 1_175_139_000)
        .unwrap();
    assert!(matches!(
        claim,
        Claim::V2 {
            form: V2Form::S3Query,
            presigned: true,
            expires_epoch: Some(1_175_139_620),
            ..
        }
    ));
    let err = req
        .check(&[], Some("s3"), "", SECRET, 1_175_139_621)
        .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.message.as_str()),
        ("AccessDenied", "Request has expired")
    );
    // Without a hint the parameters alone identify S3's query form.
    req.check(&[], None, "", SECRET, 1_175_139_000).unwrap();
}

/// rclone's SigV2 signer (`--s3-v2-auth`) sends CreateMultipartUpload as
/// `?uploads=` but signs the bare sub-resource `?uploads`, as S3 reads it.
#[test]
fn sigv2_empty_subresource_value_signed_bare() {
    let date = "Tue, 27 Mar 2007 21:15:45 +0000";
    let now = crate::clock::parse_http_date(date).unwrap();
    let sts = format!("POST\n\n\n{date}\n/awsexamplebucket1/big.bin?uploads");
    let auth = format!("AWS AKIAIOSFODNN7EXAMPLE:{}", sign_v2_s3(SECRET, &sts));
    let headers = [
        ("Host", "127.0.0.1:4566"),
        ("Date", date),
        ("Authorization", auth.as_str()),
    ];
    for query in ["uploads=", "uploads"] {
        let req = Req::new("POST", "/awsexamplebucket1/big.bin", query, &headers);
        req.check(&[], Some("s3"), "", SECRET, now).unwrap();
    }
    // botocore's reading of `?uploads=` (with the `=`) still verifies.
    let sts = format!("POST\n\n\n{date}\n/awsexamplebucket1/big.bin?uploads=");
    let auth = format!("AWS AKIAIOSFODNN7EXAMPLE:{}", sign_v2_s3(SECRET, &sts));
    let headers = [
        ("Host", "127.0.0.1:4566"),
        ("Date", date),
        ("Authorization", auth.as_str()),
    ];
    let req = Req::new("POST", "/awsexamplebucket1/big.bin", "uploads=", &headers);
    req.check(&[], Some("s3"), "", SECRET, now).unwrap();
    // A value that is not empty is never dropped.
    let req = Req::new(
        "POST",
        "/awsexamplebucket1/big.bin",
        "uploadId=abc",
        &headers,
    );
    assert_eq!(
        req.check(&[], Some("s3"), "", SECRET, now)
            .unwrap_err()
            .code,
        "SignatureDoesNotMatch"
    );
}
