//! Round trips through nimbus's own signer (sign -> parse_claim -> verify,
//! presign -> verify, chunked encode -> decode), and the time rules: skew,
//! expiry, not-yet-valid.

use super::{epoch, sha, Req};
use crate::{
    check_expiry, compute_checksum, decode_aws_chunked, encode_aws_chunked, for_json_protocol,
    missing_authentication_error, presign_v4, sign_v4, unknown_key_error, ChunkSigning,
    ChunkedDecoder, Claim, SigningParams, Streaming,
};

const SECRET: &str = "nimbus-secret/with+odd=chars";
const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn params<'a>(service: &'a str, region: &'a str, token: Option<&'a str>) -> SigningParams<'a> {
    SigningParams {
        access_key_id: "AKIANIMBUSTEST000001",
        secret_access_key: SECRET,
        session_token: token,
        region,
        service,
        time_epoch_secs: NOW,
    }
}

/// Signs with sign_v4 and returns the request as the server would see it.
fn signed(
    method: &'static str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    p: &SigningParams,
) -> Req {
    let given: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let added = sign_v4(method, path, query, &given, body, p);
    let mut all: Vec<(String, String)> = given;
    all.extend(added);
    let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Req::new(method, path, query, &refs)
}

/// service, region, method, path, query, headers, body
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [u8],
);

#[test]
fn sign_then_verify_across_services() {
    let cases: &[Case] = &[
        (
            "sqs",
            "us-east-1",
            "POST",
            "/",
            "",
            &[
                ("Host", "localhost:4566"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            b"Action=ListQueues&Version=2012-11-05",
        ),
        (
            "dynamodb",
            "eu-west-1",
            "POST",
            "/",
            "",
            &[
                ("Host", "localhost:4566"),
                ("X-Amz-Target", "DynamoDB_20120810.ListTables"),
                ("Content-Type", "application/x-amz-json-1.0"),
            ],
            b"{}",
        ),
        (
            "lambda",
            "us-west-2",
            "GET",
            "/2015-03-31/functions/my%20fn/configuration",
            "Qualifier=%24LATEST",
            &[("Host", "localhost:4566")],
            b"",
        ),
        (
            "s3",
            "us-east-1",
            "PUT",
            "/bkt/dir/a%20b%2Bc%3Dd.txt",
            "",
            &[("Host", "localhost:4566"), ("Content-Type", "text/plain")],
            b"hello",
        ),
        (
            "s3",
            "us-east-1",
            "GET",
            "/bkt",
            "list-type=2&prefix=a%20b%2F&delimiter=%2F",
            &[("Host", "localhost:4566")],
            b"",
        ),
        (
            "s3",
            "ap-south-1",
            "PUT",
            "/obj",
            "partNumber=1&uploadId=abc",
            &[
                ("Host", "bkt.s3.localhost:4566"),
                ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ],
            b"part data",
        ),
    ];
    for (service, region, method, path, query, headers, body) in cases {
        for token in [None, Some("FwoGZXIvYXdzE+token/==")] {
            let p = params(service, region, token);
            let req = signed(method, path, query, headers, body, &p);
            let hint = Some(*service);
            let claim = req
                .check(&[], hint, &sha(body), SECRET, NOW)
                .unwrap_or_else(|e| panic!("{service} {path}: {e}"));
            let Claim::V4 {
                region: r,
                service: s,
                session_token,
                access_key_id,
                ..
            } = &claim
            else {
                panic!("not V4");
            };
            assert_eq!(
                (r.as_str(), s.as_str(), access_key_id.as_str()),
                (*region, *service, "AKIANIMBUSTEST000001")
            );
            assert_eq!(session_token.as_deref(), token);
            // Without a hint the credential scope decides; same result.
            req.check(&[], None, &sha(body), SECRET, NOW).unwrap();

            // Wrong secret: SignatureDoesNotMatch with the service's message.
            let err = req.check(&[], hint, &sha(body), "wrong", NOW).unwrap_err();
            assert_eq!(
                (err.code.as_str(), err.status),
                ("SignatureDoesNotMatch", 403)
            );
            if *service == "s3" {
                assert_eq!(err.message, crate::errors::MISMATCH_S3);
                assert!(err.fields.iter().any(|(k, _)| k == "CanonicalRequest"));
            } else {
                assert_eq!(err.message, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.");
            }
        }
    }
}

#[test]
fn body_hash_is_signed_for_non_s3() {
    let p = params("sqs", "us-east-1", None);
    let body = b"Action=SendMessage&MessageBody=hi";
    let req = signed("POST", "/", "", &[("Host", "h")], body, &p);
    req.check(&[], None, &sha(body), SECRET, NOW).unwrap();
    let err = req
        .check(
            &[],
            None,
            &sha(b"Action=SendMessage&MessageBody=ho"),
            SECRET,
            NOW,
        )
        .unwrap_err();
    assert_eq!(err.code, "SignatureDoesNotMatch");
    // An empty body may be passed as "" (the hash of nothing).
    let req = signed("GET", "/", "Action=ListQueues", &[("Host", "h")], b"", &p);
    req.check(&[], None, "", SECRET, NOW).unwrap();
}

#[test]
fn skew_is_rejected() {
    for (service, code, status) in [
        ("s3", "RequestTimeTooSkewed", 403),
        ("sqs", "SignatureDoesNotMatch", 403),
    ] {
        let p = params(service, "us-east-1", None);
        let req = signed("GET", "/", "", &[("Host", "h")], b"", &p);
        // 14 minutes either way is fine.
        req.check(&[], Some(service), "", SECRET, NOW + 840)
            .unwrap();
        req.check(&[], Some(service), "", SECRET, NOW - 840)
            .unwrap();
        let late = req
            .check(&[], Some(service), "", SECRET, NOW + 960)
            .unwrap_err();
        assert_eq!((late.code.as_str(), late.status), (code, status));
        let early = req
            .check(&[], Some(service), "", SECRET, NOW - 960)
            .unwrap_err();
        assert_eq!(early.code, code);
        if service == "sqs" {
            assert_eq!(late.message, "Signature expired: 20260101T000000Z is now earlier than 20260101T000100Z (20260101T001600Z - 15 min.)");
            assert_eq!(early.message, "Signature not yet current: 20260101T000000Z is still later than 20251231T235900Z (20251231T234400Z + 15 min.)");
        } else {
            assert!(late
                .fields
                .iter()
                .any(|(k, v)| k == "RequestTime" && v == "20260101T000000Z"));
            assert!(late
                .fields
                .iter()
                .any(|(k, v)| k == "ServerTime" && v == "2026-01-01T00:16:00Z"));
            assert!(late
                .fields
                .iter()
                .any(|(k, v)| k == "MaxAllowedSkewMilliseconds" && v == "900000"));
        }
    }
}

#[test]
fn presign_then_verify() {
    for (service, host, path, query) in [
        (
            "s3",
            "localhost:4566",
            "/bkt/some%20key%2Bplus.txt",
            "versionId=v%2B1&response-content-type=text%2Fplain",
        ),
        (
            "sts",
            "sts.localhost:4566",
            "/",
            "Action=GetCallerIdentity&Version=2011-06-15",
        ),
    ] {
        for token in [None, Some("tok/+=")] {
            let p = params(service, "us-east-1", token);
            let q = presign_v4("GET", host, path, query, 300, &p);
            assert!(q.contains("X-Amz-Signature="));
            let req = Req::new("GET", path, &q, &[("Host", host)]);
            let hint = Some(service);
            let claim = req.check(&[], hint, "", SECRET, NOW + 299).unwrap();
            assert!(matches!(
                claim,
                Claim::V4 {
                    presigned: true,
                    expires_secs: Some(300),
                    ..
                }
            ));
            assert_eq!(claim.session_token(), token);

            let expired = req.check(&[], hint, "", SECRET, NOW + 301).unwrap_err();
            assert_eq!(
                check_expiry(&claim, NOW + 301, service).unwrap_err(),
                expired
            );
            if service == "s3" {
                assert_eq!(
                    (
                        expired.code.as_str(),
                        expired.status,
                        expired.message.as_str()
                    ),
                    ("AccessDenied", 403, "Request has expired")
                );
            } else {
                assert_eq!(
                    (expired.code.as_str(), expired.status),
                    ("RequestExpired", 400)
                );
            }
            let early = check_expiry(&claim, NOW - 3600, service).unwrap_err();
            assert!(
                early.message.contains("not valid yet") || early.message.contains("not yet valid")
            );
            assert!(check_expiry(&claim, NOW, service).is_ok());

            let wrong = req.check(&[], hint, "", "nope", NOW).unwrap_err();
            assert_eq!(wrong.code, "SignatureDoesNotMatch");
            // Changing a signed parameter breaks it.
            let tampered = Req::new("GET", path, &q.replace("300", "600"), &[("Host", host)]);
            assert_eq!(
                tampered.check(&[], hint, "", SECRET, NOW).unwrap_err().code,
                "SignatureDoesNotMatch"
            );
            // So does another host.
            let moved = Req::new("GET", path, &q, &[("Host", "evil:4566")]);
            assert_eq!(
                moved.check(&[], hint, "", SECRET, NOW).unwrap_err().code,
                "SignatureDoesNotMatch"
            );
        }
    }
}

fn chunk_signing<'a>(amz_date: &'a str, seed: &'a str) -> ChunkSigning<'a> {
    ChunkSigning {
        secret_access_key: SECRET,
        amz_date,
        date: &amz_date[..8],
        region: "us-east-1",
        service: "s3",
        seed_signature: seed,
    }
}

#[test]
fn signed_chunked_upload_round_trip() {
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let p = params("s3", "us-east-1", None);
    let req = signed(
        "PUT",
        "/bkt/big.bin",
        "",
        &[
            ("Host", "localhost:4566"),
            ("Content-Encoding", "aws-chunked"),
            (
                "x-amz-content-sha256",
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            ),
            ("x-amz-decoded-content-length", "200000"),
            ("x-amz-trailer", "x-amz-checksum-crc64nvme"),
        ],
        b"",
        &p,
    );
    let claim = req.check(&[], Some("s3"), "", SECRET, NOW).unwrap();
    let Claim::V4 {
        signature,
        amz_date,
        streaming,
        ..
    } = &claim
    else {
        panic!()
    };
    assert_eq!(*streaming, Streaming::SignedChunksTrailer);
    let signing = chunk_signing(amz_date, signature);
    let crc = compute_checksum("crc64nvme", &payload).unwrap();
    let trailers = vec![("x-amz-checksum-crc64nvme".to_string(), crc.clone())];
    let body = encode_aws_chunked(&payload, 65_536, Some(&signing), &trailers);

    let decoded = decode_aws_chunked(&body, Some(&signing)).unwrap();
    assert_eq!(decoded.payload, payload);
    assert_eq!(decoded.trailers, trailers);

    // Streaming decode, fed in awkward pieces, computing the declared checksum on the fly.
    for piece in [1usize, 2, 3, 7, 1000, 65_537] {
        let mut dec =
            ChunkedDecoder::new(Some(&signing), Some("x-amz-checksum-crc64nvme")).unwrap();
        let mut out = Vec::new();
        for part in body.chunks(piece) {
            dec.push(part, &mut out).unwrap();
        }
        assert_eq!(dec.decoded_len(), 200_000);
        assert_eq!(dec.finish().unwrap(), trailers, "piece {piece}");
        assert_eq!(out, payload);
    }

    // A trailer the request did not announce is refused while streaming.
    let mut dec = ChunkedDecoder::new(Some(&signing), Some("x-amz-checksum-crc32")).unwrap();
    let mut out = Vec::new();
    dec.push(&body, &mut out).unwrap();
    assert_eq!(dec.finish().unwrap_err().code, "MalformedTrailerError");

    // Truncated bodies are incomplete, never a panic.
    for cut in [0, 1, 10, 100, body.len() / 2, body.len() - 200] {
        let err = decode_aws_chunked(&body[..cut], Some(&signing)).unwrap_err();
        assert!(
            err.code == "IncompleteBody" || err.code == "SignatureDoesNotMatch",
            "{cut}: {err}"
        );
    }
}

#[test]
fn unsigned_trailer_checksums() {
    let payload = b"the quick brown fox".repeat(100);
    for alg in ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"] {
        let name = format!("x-amz-checksum-{alg}");
        let good = compute_checksum(alg, &payload).unwrap();
        let body = encode_aws_chunked(&payload, 500, None, &[(name.clone(), good.clone())]);
        let decoded = decode_aws_chunked(&body, None).unwrap();
        assert_eq!(decoded.payload, payload);
        assert_eq!(decoded.trailers, vec![(name.clone(), good)]);

        let wrong = compute_checksum(alg, b"other").unwrap();
        let body = encode_aws_chunked(&payload, 500, None, &[(name.clone(), wrong)]);
        let err = decode_aws_chunked(&body, None).unwrap_err();
        let label = alg.to_uppercase();
        assert_eq!((err.code.as_str(), err.status), ("BadDigest", 400));
        assert_eq!(
            err.message,
            format!("The {label} you specified did not match the calculated checksum.")
        );

        let body = encode_aws_chunked(&payload, 500, None, &[(name.clone(), "!!notbase64".into())]);
        assert_eq!(
            decode_aws_chunked(&body, None).unwrap_err().code,
            "InvalidRequest"
        );
    }
    // No trailers at all, and an empty payload.
    let body = encode_aws_chunked(b"", 10, None, &[]);
    assert_eq!(body, b"0\r\n\r\n");
    assert!(decode_aws_chunked(&body, None).unwrap().payload.is_empty());
}

#[test]
fn signed_chunks_need_signatures() {
    let signing = chunk_signing("20260101T000000Z", "seed");
    let err = decode_aws_chunked(b"3\r\nabc\r\n0\r\n\r\n", Some(&signing)).unwrap_err();
    assert_eq!(err.code, "SignatureDoesNotMatch");
    // A signed trailer section without its signature is refused.
    let body = encode_aws_chunked(b"abc", 10, Some(&signing), &[]);
    let text = String::from_utf8(body)
        .unwrap()
        .replace("\r\n\r\n", "\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n");
    assert_eq!(
        decode_aws_chunked(text.as_bytes(), Some(&signing))
            .unwrap_err()
            .code,
        "SignatureDoesNotMatch"
    );
}

#[test]
fn error_helpers() {
    let e = unknown_key_error("s3");
    assert_eq!(
        (e.code.as_str(), e.status, e.message.as_str()),
        (
            "InvalidAccessKeyId",
            403,
            "The AWS Access Key Id you provided does not exist in our records."
        )
    );
    let e = unknown_key_error("sqs");
    assert_eq!(
        (e.code.as_str(), e.status, e.message.as_str()),
        (
            "InvalidClientTokenId",
            403,
            "The security token included in the request is invalid."
        )
    );
    let e = for_json_protocol(unknown_key_error("dynamodb"));
    assert_eq!(
        (e.code.as_str(), e.status),
        ("UnrecognizedClientException", 400)
    );
    let e = for_json_protocol(crate::errors::signature_mismatch("lambda"));
    assert_eq!(
        (e.code.as_str(), e.status),
        ("InvalidSignatureException", 400)
    );
    assert_eq!(
        for_json_protocol(nimbus_core::AwsError::new("X", "y")).code,
        "X"
    );
    assert_eq!(missing_authentication_error("s3").code, "AccessDenied");
    assert_eq!(
        missing_authentication_error("sts").code,
        "MissingAuthenticationToken"
    );
}

#[test]
fn anonymous_requests() {
    let req = Req::new("GET", "/bkt/key", "versionId=1", &[("Host", "localhost")]);
    let claim = req.claim(&[], Some("s3"));
    assert!(matches!(claim, Claim::Anonymous));
    assert_eq!(claim.access_key_id(), None);
    assert!(crate::verify(&claim, &req.parts(), &[], "", "x", NOW).is_ok());
    assert!(check_expiry(&claim, NOW, "s3").is_ok());
    // A stray Signature parameter on a non-S3 request is not a claim.
    let req = Req::new("GET", "/", "Signature=abc", &[("Host", "localhost")]);
    assert!(matches!(req.claim(&[], Some("sns")), Claim::Anonymous));
    let _ = epoch("20260101T000000Z");
}

#[test]
fn extreme_clocks_do_not_panic() {
    let p = params("sqs", "us-east-1", None);
    let req = signed("GET", "/", "", &[("Host", "h")], b"", &p);
    let q = presign_v4("GET", "h", "/", "", 60, &params("s3", "us-east-1", None));
    let presigned = Req::new("GET", "/", &q, &[("Host", "h")]);
    for now in [i64::MIN, -1, 0, i64::MAX] {
        assert!(req.check(&[], None, "", SECRET, now).is_err());
        assert!(presigned.check(&[], Some("s3"), "", SECRET, now).is_err());
    }
}

#[test]
fn content_sha256_after_the_fact() {
    let body_sha = sha(b"body");
    assert!(crate::check_content_sha256(&body_sha, &body_sha).is_ok());
    assert!(crate::check_content_sha256("UNSIGNED-PAYLOAD", &body_sha).is_ok());
    assert!(crate::check_content_sha256("STREAMING-UNSIGNED-PAYLOAD-TRAILER", &body_sha).is_ok());
    let err = crate::check_content_sha256(&sha(b"other"), &body_sha).unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.status),
        ("XAmzContentSHA256Mismatch", 400)
    );
}

/// Tampering a signed request must not pass: what a request changes is what was signed.
#[test]
fn tampered_requests_are_refused() {
    // A non-S3 body swapped under a header that still claims the old body's hash.
    let p = params("sts", "us-east-1", None);
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let claimed = sha(body);
    let req = signed(
        "POST",
        "/",
        "",
        &[
            ("Host", "localhost:4566"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("x-amz-content-sha256", claimed.as_str()),
        ],
        body,
        &p,
    );
    req.check(&[], Some("sts"), &sha(body), SECRET, NOW)
        .unwrap();
    let swapped = b"Action=GetSessionToken&Version=2011-06-15";
    let err = req
        .check(&[], Some("sts"), &sha(swapped), SECRET, NOW)
        .unwrap_err();
    assert_eq!(err.code, "SignatureDoesNotMatch");

    // An x-amz-* header added after signing (S3: AccessDenied naming it).
    let p = params("s3", "us-east-1", None);
    let mut req = signed(
        "PUT",
        "/bkt/copy",
        "",
        &[("Host", "localhost:4566")],
        b"",
        &p,
    );
    req.check(&[], Some("s3"), &sha(b""), SECRET, NOW).unwrap();
    req.headers.insert(
        "x-amz-copy-source",
        http::HeaderValue::from_static("/bkt/private"),
    );
    let err = req
        .check(&[], Some("s3"), &sha(b""), SECRET, NOW)
        .unwrap_err();
    assert_eq!((err.code.as_str(), err.status), ("AccessDenied", 403));
    assert!(err
        .fields
        .iter()
        .any(|(k, v)| k == "HeadersNotSigned" && v == "x-amz-copy-source"));

    // The same for a query-API service: IncompleteSignature.
    let p = params("sqs", "us-east-1", None);
    let mut req = signed("POST", "/", "", &[("Host", "localhost:4566")], b"", &p);
    req.headers
        .insert("x-amz-target", http::HeaderValue::from_static("x.Y"));
    let err = req
        .check(&[], Some("sqs"), &sha(b""), SECRET, NOW)
        .unwrap_err();
    assert_eq!(err.code, "IncompleteSignature");
}

#[test]
fn host_must_be_signed() {
    let p = params("sqs", "us-east-1", None);
    // Signed with no host header at all; the server sees one.
    let mut req = signed("GET", "/", "Action=ListQueues", &[], b"", &p);
    req.headers
        .insert("host", http::HeaderValue::from_static("localhost:4566"));
    let err = req
        .check(&[], Some("sqs"), &sha(b""), SECRET, NOW)
        .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.message.as_str()),
        (
            "IncompleteSignature",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    );
}
