//! Malformed claims get the AWS error a client would get from AWS, and no
//! input, however broken, makes the crate panic.

use http::{HeaderMap, HeaderValue};

use super::{form, Req};
use crate::{decode_aws_chunked, parse_claim, verify, ChunkSigning, ChunkedDecoder, HttpParts};

fn err_of(req: &Req, hint: Option<&str>) -> nimbus_core::AwsError {
    parse_claim(&req.parts(), &[], hint).unwrap_err()
}

const GOOD_CRED: &str = "AKIDEXAMPLE/20150830/us-east-1";

#[test]
fn broken_authorization_headers() {
    let date = ("X-Amz-Date", "20150830T123600Z");
    // Non-S3: IncompleteSignature 400 naming what is missing.
    let req = Req::new(
        "POST",
        "/",
        "",
        &[
            ("Host", "h"),
            date,
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request",
            ),
        ],
    );
    let e = err_of(&req, None);
    assert_eq!((e.code.as_str(), e.status), ("IncompleteSignature", 400));
    assert!(
        e.message
            .contains("Authorization header requires 'Signature' parameter."),
        "{}",
        e.message
    );
    assert!(e
        .message
        .contains("Authorization header requires 'SignedHeaders' parameter."));

    // S3: AuthorizationHeaderMalformed.
    let req = Req::new(
        "GET",
        "/",
        "",
        &[
            ("Host", "h"),
            date,
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request",
            ),
        ],
    );
    assert_eq!(
        err_of(&req, Some("s3")).code,
        "AuthorizationHeaderMalformed"
    );
    assert_eq!(
        err_of(&req, None).code,
        "AuthorizationHeaderMalformed",
        "scope says s3"
    );

    for (auth, hint, code) in [
        ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/sts/aws4_request, SignedHeaders=host, Signature=ab".to_string(), None, "IncompleteSignature"),
        ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab".to_string().replace("/us-east-1/s3", "/s3"), Some("s3"), "AuthorizationHeaderMalformed"),
        (format!("AWS4-HMAC-SHA256 Credential={GOOD_CRED}/sts/aws5_request, SignedHeaders=host, Signature=ab"), None, "SignatureDoesNotMatch"),
        ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150831/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=ab".to_string(), None, "SignatureDoesNotMatch"),
        ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150831/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab".to_string(), Some("s3"), "AuthorizationHeaderMalformed"),
        (format!("AWS4-HMAC-SHA256 Credential={GOOD_CRED}/sts/aws4_request, SignedHeaders=;, Signature=ab"), None, "IncompleteSignature"),
        ("Bearer abc".to_string(), Some("s3"), "InvalidArgument"),
        ("Bearer abc".to_string(), None, "IncompleteSignature"),
        ("AWS4-ECDSA-P256-SHA256 Credential=AKID/20150830/s3/aws4_request".to_string(), None, "InvalidArgument"),
        ("AWS AKIDONLY".to_string(), Some("s3"), "InvalidArgument"),
        ("AWS :sig".to_string(), Some("s3"), "InvalidArgument"),
        ("".to_string(), Some("s3"), "InvalidArgument"),
    ] {
        let req = Req::new("GET", "/", "", &[("Host", "h"), date, ("Authorization", &auth)]);
        let e = err_of(&req, hint);
        assert_eq!(e.code, code, "{auth}: {e}");
        assert!(e.status == 400 || e.status == 403);
    }

    // Missing or bad dates.
    let auth = format!("AWS4-HMAC-SHA256 Credential={GOOD_CRED}/sqs/aws4_request, SignedHeaders=host, Signature=ab");
    let req = Req::new("GET", "/", "", &[("Host", "h"), ("Authorization", &auth)]);
    let e = err_of(&req, None);
    assert_eq!(e.code, "IncompleteSignature");
    assert!(e.message.contains("'X-Amz-Date' or a 'Date' header"));
    let req = Req::new(
        "GET",
        "/",
        "",
        &[
            ("Host", "h"),
            ("X-Amz-Date", "yesterday"),
            ("Authorization", &auth),
        ],
    );
    assert_eq!(err_of(&req, None).code, "IncompleteSignature");
    let auth = auth.replace("/sqs/", "/s3/");
    let req = Req::new("GET", "/", "", &[("Host", "h"), ("Authorization", &auth)]);
    let e = err_of(&req, None);
    assert_eq!((e.code.as_str(), e.status), ("AccessDenied", 403));
    // The Date header is accepted in place of x-amz-date.
    let req = Req::new(
        "GET",
        "/",
        "",
        &[
            ("Host", "h"),
            ("Date", "Sun, 30 Aug 2015 12:36:00 GMT"),
            ("Authorization", &auth),
        ],
    );
    let claim = parse_claim(&req.parts(), &[], None).unwrap();
    assert!(
        matches!(claim, crate::Claim::V4 { ref amz_date, .. } if amz_date == "20150830T123600Z")
    );

    // S3 checks the x-amz-content-sha256 value.
    let req = Req::new(
        "GET",
        "/",
        "",
        &[
            ("Host", "h"),
            date,
            ("x-amz-content-sha256", "abc"),
            ("Authorization", &auth),
        ],
    );
    let e = err_of(&req, Some("s3"));
    assert_eq!(e.code, "InvalidArgument");
    assert!(e
        .fields
        .iter()
        .any(|(k, v)| k == "ArgumentName" && v == "x-amz-content-sha256"));
}

#[test]
fn broken_presigned_parameters() {
    let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2FSVC%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=abc";
    for (svc, hint, code) in [
        ("s3", Some("s3"), "AuthorizationQueryParametersError"),
        ("sts", None, "IncompleteSignature"),
    ] {
        let good = base.replace("SVC", svc);
        assert!(parse_claim(
            &Req::new("GET", "/", &good, &[("Host", "h")]).parts(),
            &[],
            hint
        )
        .is_ok());
        for broken in [
            good.replace("&X-Amz-Date=20150830T123600Z", ""),
            good.replace(
                "X-Amz-Algorithm=AWS4-HMAC-SHA256",
                "X-Amz-Algorithm=AWS4-HMAC-SHA1",
            ),
            good.replace("X-Amz-Expires=60", "X-Amz-Expires=604801"),
            good.replace("X-Amz-Expires=60", "X-Amz-Expires=-1"),
            good.replace("X-Amz-Expires=60", "X-Amz-Expires=soon"),
            good.replace("X-Amz-Date=20150830T123600Z", "X-Amz-Date=2015-08-30"),
            good.replace("X-Amz-Date=20150830T123600Z", "X-Amz-Date=20150831T123600Z"),
            good.replace("AKIDEXAMPLE%2F20150830", "AKIDEXAMPLE"),
            good.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders="),
        ] {
            let e = err_of(&Req::new("GET", "/", &broken, &[("Host", "h")]), hint);
            assert_eq!(e.code, code, "{broken}: {e}");
            assert_eq!(e.status, 400);
        }
    }
    let e = err_of(
        &Req::new("GET", "/", "X-Amz-Signature=abc", &[("Host", "h")]),
        Some("s3"),
    );
    assert_eq!(e.message, "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.");

    // Two mechanisms at once, S3: InvalidArgument.
    let req = Req::new(
        "GET",
        "/",
        &base.replace("SVC", "s3"),
        &[("Host", "h"), ("Authorization", "AWS a:b")],
    );
    assert_eq!(err_of(&req, Some("s3")).code, "InvalidArgument");

    // S3 SigV2 query without Expires.
    let req = Req::new(
        "GET",
        "/b/k",
        "AWSAccessKeyId=a&Signature=b",
        &[("Host", "h")],
    );
    let e = err_of(&req, Some("s3"));
    assert_eq!((e.code.as_str(), e.status), ("AccessDenied", 403));
    let req = Req::new(
        "GET",
        "/b/k",
        "AWSAccessKeyId=a&Signature=b&Expires=tomorrow",
        &[("Host", "h")],
    );
    assert_eq!(err_of(&req, Some("s3")).code, "AccessDenied");
}

#[test]
fn broken_query_api_v2() {
    let ok = [
        ("AWSAccessKeyId", "a"),
        ("SignatureVersion", "2"),
        ("SignatureMethod", "HmacSHA256"),
        ("Timestamp", "2026-01-01T00:00:00Z"),
        ("Signature", "x"),
    ];
    let req = Req::new("POST", "/", "", &[("Host", "h")]);
    assert!(parse_claim(&req.parts(), &form(&ok), None).is_ok());
    for (i, replacement, code) in [
        (1, ("SignatureVersion", "1"), "InvalidParameterValue"),
        (2, ("SignatureMethod", "HmacMD5"), "InvalidParameterValue"),
        (3, ("Timestamp", "noon"), "InvalidParameterValue"),
        (3, ("Expires", "later"), "InvalidParameterValue"),
        (3, ("Other", "x"), "MissingParameter"),
        (0, ("Other", "x"), "MissingParameter"),
    ] {
        let mut params = ok;
        params[i] = replacement;
        let e = parse_claim(&req.parts(), &form(&params), None).unwrap_err();
        assert_eq!(e.code, code, "{replacement:?}");
    }
    // A SigV2 claim with an unknown SignatureMethod never verifies.
    let claim = crate::Claim::V2 {
        access_key_id: "a".into(),
        signature: "x".into(),
        presigned: false,
        expires_epoch: None,
        session_token: None,
        form: crate::V2Form::QueryApi,
    };
    assert!(verify(&claim, &req.parts(), &[], "", "s", 0).is_err());
}

#[test]
fn hand_made_claims_do_not_panic() {
    // Claims are public structs; garbage in them must give errors.
    let req = Req::new("GET", "/", "", &[("Host", "h")]);
    let claim = crate::Claim::V4 {
        access_key_id: String::new(),
        date: "ééé".into(),
        region: String::new(),
        service: "s3".into(),
        signed_headers: vec!["Bad Header".into(), String::new()],
        signature: "zz".into(),
        presigned: true,
        amz_date: "not a date".into(),
        expires_secs: Some(u64::MAX),
        session_token: None,
        streaming: crate::Streaming::None,
    };
    assert!(verify(&claim, &req.parts(), &[], "", "s", i64::MAX).is_err());
    assert!(crate::check_expiry(&claim, i64::MIN, "s3").is_err());
    let claim = crate::Claim::V2 {
        access_key_id: String::new(),
        signature: String::new(),
        presigned: true,
        expires_epoch: Some(0),
        session_token: None,
        form: crate::V2Form::S3Query,
    };
    assert!(crate::check_expiry(&claim, i64::MAX, "s3").is_err());
    assert!(verify(&claim, &req.parts(), &[], "", "s", 0).is_err());
}

#[test]
fn non_utf8_headers_and_paths() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_bytes(b"h\xff").unwrap());
    headers.insert(
        "authorization",
        HeaderValue::from_bytes(b"AWS4-HMAC-SHA256 \xff\xfe").unwrap(),
    );
    headers.insert("x-amz-date", HeaderValue::from_bytes(b"\xff").unwrap());
    let parts = HttpParts {
        method: "GET",
        path: "/%ff%%zz/..",
        query: "%ff=%&=&&a",
        headers: &headers,
    };
    assert!(parse_claim(&parts, &[], None).is_err());
    assert!(parse_claim(&parts, &[], Some("s3")).is_err());
}

/// A tiny deterministic generator, so the fuzz cases are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

#[test]
fn fuzzed_inputs_never_panic() {
    let atoms = [
        "AWS4-HMAC-SHA256",
        "AWS",
        " ",
        ",",
        "=",
        ";",
        ":",
        "/",
        "%",
        "%2",
        "%2F",
        "Credential=",
        "SignedHeaders=",
        "Signature=",
        "AKID",
        "20150830",
        "us-east-1",
        "s3",
        "sts",
        "aws4_request",
        "host",
        "x-amz-date",
        "é",
        "\u{0}",
        "X-Amz-Algorithm=",
        "X-Amz-Credential=",
        "X-Amz-Date=",
        "X-Amz-Expires=",
        "X-Amz-Signature=",
        "X-Amz-SignedHeaders=",
        "&",
        "AWSAccessKeyId=",
        "Expires=",
        "SignatureVersion=2",
        "SignatureMethod=HmacSHA1",
        "Timestamp=",
        "20150830T123600Z",
        "99999999999999999999",
        "-1",
        "..",
        "+",
    ];
    let mut rng = Lcg(42);
    for _ in 0..3000 {
        let mut gen = |n: usize| {
            (0..rng.next() as usize % n)
                .map(|_| rng.pick(&atoms))
                .collect::<String>()
        };
        let auth = gen(12);
        let query = gen(12);
        let path = format!("/{}", gen(5));
        let date = gen(3);
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("h"));
        if let Ok(v) = HeaderValue::from_str(&auth) {
            headers.insert("authorization", v);
        }
        if let Ok(v) = HeaderValue::from_str(&date) {
            headers.insert("x-amz-date", v);
        }
        let parts = HttpParts {
            method: "GET",
            path: &path,
            query: &query,
            headers: &headers,
        };
        let form_params = form(&[
            ("SignatureVersion", "2"),
            ("AWSAccessKeyId", "k"),
            ("Signature", "s"),
        ]);
        for hint in [None, Some("s3"), Some("sqs")] {
            for f in [&[][..], &form_params[..]] {
                if let Ok(claim) = parse_claim(&parts, f, hint) {
                    let _ = verify(&claim, &parts, f, "", "secret", 1_440_938_160);
                    let _ = crate::check_expiry(&claim, 0, hint.unwrap_or(""));
                }
            }
        }
    }

    let pieces: [&[u8]; 12] = [
        b"0",
        b"1",
        b"a",
        b"ffffffffffffffffff",
        b";",
        b"chunk-signature=",
        b"\r\n",
        b"\n",
        b"x-amz-checksum-crc32:",
        b"AAAAAA==",
        b"x-amz-trailer-signature:",
        b"zz",
    ];
    let signing = ChunkSigning {
        secret_access_key: "s",
        amz_date: "20150830T123600Z",
        date: "20150830",
        region: "r",
        service: "s3",
        seed_signature: "x",
    };
    for _ in 0..5000 {
        let n = rng.next() as usize % 16;
        let body: Vec<u8> = (0..n)
            .flat_map(|_| pieces[rng.next() as usize % pieces.len()].to_vec())
            .collect();
        let _ = decode_aws_chunked(&body, None);
        let _ = decode_aws_chunked(&body, Some(&signing));
        if let Ok(mut dec) =
            ChunkedDecoder::new(None, Some("x-amz-checksum-crc32, x-amz-checksum-sha256"))
        {
            let mut out = Vec::new();
            if dec.push(&body, &mut out).is_ok() {
                let _ = dec.finish();
            }
        }
    }
    assert_eq!(
        ChunkedDecoder::new(None, Some("x-amz-checksum-md5"))
            .err()
            .map(|e| e.code),
        Some("InvalidRequest".to_string())
    );
}
