//! Requests signed by botocore 1.43 (boto3 clients pointed at a local endpoint,
//! captured just before sending), fixed here as vectors: SigV4 for query,
//! JSON and REST services, S3 (path and virtual-hosted, odd keys, unsigned
//! trailer streaming over HTTPS), SigV2 for S3 (header and presigned) and for
//! the query API, and presigned SigV4 URLs. Generated once with a small Python
//! script; the tests never run Python.

use super::{epoch, form, sha, Req};
use crate::{decode_aws_chunked, Claim, Streaming, V2Form};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

enum Body {
    Bytes(&'static [u8]),
    Repeat(&'static [u8], usize),
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Bytes(b) => b.to_vec(),
            Body::Repeat(b, n) => b.repeat(*n),
        }
    }
}

struct Captured {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static str,
    host: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Body,
}

const CAPTURED: &[Captured] = &[
    Captured { name: "sqs_send", method: "POST", path: "/", query: "", host: "localhost:4566", headers: &[("X-Amz-Target", "AmazonSQS.SendMessage"), ("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-query-mode", "true"), ("X-Amz-Date", "20261126T232436Z"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target;x-amzn-query-mode, Signature=67646897c08829823e7cf2ce990d4626ac38cf9564fcd43deef446e58c17d480"), ("Content-Length", "90")], body: Body::Bytes(b"{\"QueueUrl\": \"http://localhost:4566/000000000000/q1\", \"MessageBody\": \"hello world & more\"}") },
    Captured { name: "sts_gci", method: "POST", path: "/", query: "", host: "localhost:4566", headers: &[("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("X-Amz-Date", "20261126T232436Z"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=52bb5d7e1c126bf5eb2a7f9477cef5da6118331d713ea536d3f6668de9f7ae58"), ("Content-Length", "43")], body: Body::Bytes(b"Action=GetCallerIdentity&Version=2011-06-15") },
    Captured { name: "iam_list", method: "POST", path: "/", query: "", host: "localhost:4566", headers: &[("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("X-Amz-Date", "20261126T232437Z"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=9c80aacdcb53636394a526db1260e44031c5e2bf56b50f2b3f93e7a513aa28df"), ("Content-Length", "56")], body: Body::Bytes(b"Action=ListUsers&Version=2010-05-08&PathPrefix=%2Fa+b%2F") },
    Captured { name: "dynamodb_list", method: "POST", path: "/", query: "", host: "localhost:4566", headers: &[("X-Amz-Target", "DynamoDB_20120810.ListTables"), ("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Date", "20261126T232437Z"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/eu-west-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=4c4a8d26cc1f5b02bab7172210d83f35eb61c20b49984840fcfb2d3a4227e1c9"), ("Content-Length", "2")], body: Body::Bytes(b"{}") },
    Captured { name: "lambda_get", method: "GET", path: "/2015-03-31/functions/my%20fn", query: "", host: "localhost:4566", headers: &[("X-Amz-Date", "20261126T232438Z"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=d531447f22a1fd73e8fee59d5ef25e2ee22ffc663695730d2238d38d9bca5b42")], body: Body::Bytes(b"") },
    Captured { name: "s3_put", method: "PUT", path: "/bkt/dir/a%20b%2Bc%3Dd%26e~f.txt", query: "", host: "localhost:4566", headers: &[("Expect", "100-continue"), ("x-amz-checksum-crc32", "fHUdlQ=="), ("x-amz-sdk-checksum-algorithm", "CRC32"), ("X-Amz-Date", "20261126T232438Z"), ("X-Amz-Content-SHA256", "7e33e86521100a803b5efe45f04621043999624ffac7a4e7f43293915ae67536"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-checksum-crc32;x-amz-content-sha256;x-amz-date;x-amz-sdk-checksum-algorithm, Signature=2c9dc0340a23e8503f794bd60daa3ba33dc5322b397ac0cdaf57de7d04c69756"), ("Content-Length", "12")], body: Body::Bytes(b"hello nimbus") },
    Captured { name: "s3_put_vhost", method: "PUT", path: "/x/y.txt", query: "", host: "bkt.localhost:4566", headers: &[("Expect", "100-continue"), ("x-amz-checksum-crc32", "vc6LVw=="), ("x-amz-sdk-checksum-algorithm", "CRC32"), ("X-Amz-Date", "20261126T232438Z"), ("X-Amz-Content-SHA256", "4c207598af7a20db0e3334dd044399a40e467cb81b37f7ba05a4f76dcbd8fd59"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-checksum-crc32;x-amz-content-sha256;x-amz-date;x-amz-sdk-checksum-algorithm, Signature=4a6538664d8bc243a3fbc51ff03353271507bbe77a8d1cff32176abe582aaffb"), ("Content-Length", "10000")], body: Body::Repeat(b"0123456789", 1000) },
    Captured { name: "s3_get_range", method: "GET", path: "/bkt/k%20%C3%BC", query: "", host: "localhost:4566", headers: &[("Range", "bytes=0-1"), ("x-amz-checksum-mode", "ENABLED"), ("X-Amz-Date", "20261126T232439Z"), ("X-Amz-Content-SHA256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-checksum-mode;x-amz-content-sha256;x-amz-date, Signature=d88b65a06e53848b70cd73a2bf7c400f7c304a2f1df40c000f8cbd8d49b66923")], body: Body::Bytes(b"") },
    Captured { name: "s3_list", method: "GET", path: "/bkt", query: "list-type=2&prefix=a%20b%2F&delimiter=%2F&encoding-type=url", host: "localhost:4566", headers: &[("X-Amz-Date", "20261126T232440Z"), ("X-Amz-Content-SHA256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=4d0e990049f35deb03477afb79a67e0e40b865e07f8ea316a77890374b2e5c27")], body: Body::Bytes(b"") },
    Captured { name: "s3_upload_part_stream", method: "PUT", path: "/bkt/big", query: "uploadId=u-1&partNumber=2", host: "localhost:4566", headers: &[("Expect", "100-continue"), ("x-amz-checksum-crc32", "ra+ypQ=="), ("x-amz-sdk-checksum-algorithm", "CRC32"), ("X-Amz-Date", "20261126T232457Z"), ("X-Amz-Content-SHA256", "bd7475717a88f13dc3864a91c12fb7d155e7cccc8ca9430ef2665db2d2df7f2e"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-checksum-crc32;x-amz-content-sha256;x-amz-date;x-amz-sdk-checksum-algorithm, Signature=a0b7a3bddffccae51315198182c29de53559327420a633f125badcf9179286e4"), ("Content-Length", "100")], body: Body::Bytes(b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz") },
    Captured { name: "s3v2_get_acl", method: "GET", path: "/bkt/photos/puppy.jpg", query: "acl&versionId=v1", host: "localhost:4566", headers: &[("Date", "Thu, 26 Nov 2026 23:24:57 GMT"), ("Authorization", "AWS AKIDEXAMPLE:Fsb3C0tKUU9DGuHX0oN4doMgCBA=")], body: Body::Bytes(b"") },
    Captured { name: "s3v2_put_vhost", method: "PUT", path: "/a%20b.txt", query: "", host: "bkt.localhost:4566", headers: &[("Content-Type", "text/plain"), ("x-amz-meta-k", "v"), ("Expect", "100-continue"), ("x-amz-checksum-crc32", "rfPzYw=="), ("x-amz-sdk-checksum-algorithm", "CRC32"), ("Date", "Thu, 26 Nov 2026 23:24:58 GMT"), ("Authorization", "AWS AKIDEXAMPLE:9mAAYiF3yts9IZfR2UmIr5farOY="), ("Content-Length", "4")], body: Body::Bytes(b"data") },
    Captured { name: "s3_put_stream_https", method: "PUT", path: "/bkt/stream.bin", query: "", host: "localhost:4566", headers: &[("Expect", "100-continue"), ("Transfer-Encoding", "chunked"), ("Content-Encoding", "aws-chunked"), ("X-Amz-Trailer", "x-amz-checksum-crc32"), ("X-Amz-Decoded-Content-Length", "30"), ("x-amz-sdk-checksum-algorithm", "CRC32"), ("X-Amz-Date", "20261126T232509Z"), ("X-Amz-Content-SHA256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/s3/aws4_request, SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-sdk-checksum-algorithm;x-amz-trailer, Signature=ddc7bde63975eb22d988a9caa668691eb2d0fe34eb6c9d6e5e53e8238f17acdd")], body: Body::Bytes(b"1e\r\nabcabcabcabcabcabcabcabcabcabc\r\n0\r\nx-amz-checksum-crc32:SLH8gQ==\r\n\r\n") },
    Captured { name: "s3_put_bytes_https", method: "PUT", path: "/bkt/b.bin", query: "", host: "localhost:4566", headers: &[("Expect", "100-continue"), ("Transfer-Encoding", "chunked"), ("Content-Encoding", "aws-chunked"), ("X-Amz-Trailer", "x-amz-checksum-crc32"), ("X-Amz-Decoded-Content-Length", "3"), ("x-amz-sdk-checksum-algorithm", "CRC32"), ("X-Amz-Date", "20261126T232509Z"), ("X-Amz-Content-SHA256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/s3/aws4_request, SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-sdk-checksum-algorithm;x-amz-trailer, Signature=1a34e2942b22674da72da7935e64307b6d0ef058b880ed902a4b0d227fbb507c")], body: Body::Bytes(b"3\r\nxyz\r\n0\r\nx-amz-checksum-crc32:6466Zw==\r\n\r\n") },
    Captured { name: "s3_put_stream_https_sha256", method: "PUT", path: "/bkt/s.bin", query: "", host: "localhost:4566", headers: &[("x-amz-sdk-checksum-algorithm", "SHA256"), ("Expect", "100-continue"), ("Transfer-Encoding", "chunked"), ("Content-Encoding", "aws-chunked"), ("X-Amz-Trailer", "x-amz-checksum-sha256"), ("X-Amz-Decoded-Content-Length", "5"), ("X-Amz-Date", "20261126T232510Z"), ("X-Amz-Content-SHA256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"), ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/us-east-1/s3/aws4_request, SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-sdk-checksum-algorithm;x-amz-trailer, Signature=4bf2a9eee09fc32352a4753582f4613939d4636be3448167506c3c3fadeea6bc")], body: Body::Bytes(b"5\r\nhello\r\n0\r\nx-amz-checksum-sha256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=\r\n\r\n") },
];

fn request(c: &Captured) -> Req {
    let mut headers = vec![("Host", c.host)];
    headers.extend_from_slice(c.headers);
    Req::new(c.method, c.path, c.query, &headers)
}

fn request_time(c: &Captured) -> i64 {
    let date = c
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-date"));
    match date {
        Some((_, d)) => epoch(d),
        None => {
            let (_, d) = c.headers.iter().find(|(k, _)| *k == "Date").unwrap();
            crate::clock::parse_http_date(d).unwrap()
        }
    }
}

#[test]
fn botocore_requests_verify() {
    for c in CAPTURED {
        let req = request(c);
        let body = c.body.bytes();
        let hint = c.name.starts_with("s3").then_some("s3");
        let now = request_time(c);
        let claim = req.check(&[], hint, &sha(&body), SECRET, now);
        assert!(claim.is_ok(), "{}: {:?}", c.name, claim.err());
        // Wrong secret fails for every one of them.
        let err = req
            .check(&[], hint, &sha(&body), "not-the-secret", now)
            .unwrap_err();
        assert_eq!(err.code, "SignatureDoesNotMatch", "{}", c.name);
        // A tampered path fails too.
        let mut tampered = request(c);
        tampered.path.push('x');
        assert!(
            tampered.check(&[], hint, &sha(&body), SECRET, now).is_err(),
            "{}",
            c.name
        );
    }
}

#[test]
fn botocore_streaming_bodies_decode() {
    for c in CAPTURED.iter().filter(|c| c.name.contains("https")) {
        let req = request(c);
        let claim = req.claim(&[], Some("s3"));
        assert!(
            matches!(
                claim,
                Claim::V4 {
                    streaming: Streaming::UnsignedTrailer,
                    ..
                }
            ),
            "{}",
            c.name
        );
        let decoded = decode_aws_chunked(&c.body.bytes(), None).unwrap();
        let expected_len: usize = c
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-decoded-content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        assert_eq!(decoded.payload.len(), expected_len, "{}", c.name);
        assert_eq!(decoded.trailers.len(), 1);
        assert!(decoded.trailers[0].0.starts_with("x-amz-checksum-"));
    }
}

struct Presigned {
    name: &'static str,
    method: &'static str,
    host: &'static str,
    url_path: &'static str,
    query: &'static str,
    hint: Option<&'static str>,
}

const PRESIGNED: &[Presigned] = &[
    Presigned { name: "s3 v4 path-style", method: "GET", host: "localhost:4566", url_path: "/bkt/a%20b/c%2Bd%3De.txt", query: "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261126%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261126T232511Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=cb6d6f5b08d278b22af4e81e76261495e5e7b5fefbede15baf4a8d53ec4c3d7d", hint: Some("s3") },
    Presigned { name: "s3 v4 virtual-hosted put with token", method: "PUT", host: "bkt.localhost:4566", url_path: "/up.txt", query: "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261126%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261126T232511Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=SESSION%2FTOKEN%2Bx%3D&X-Amz-Signature=b27a7d2095712e72c73b5148d3c0faf623cb2049bd45ed070d65cc722c7eec96", hint: Some("s3") },
    Presigned { name: "sts v4 GetCallerIdentity (botocore signs the model's POST)", method: "POST", host: "localhost:4566", url_path: "/", query: "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261126%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20261126T232458Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=2d7278d3d9744515c23721ed1cf5cdd9832fd015d5a4cf15353125ef0d34f3fc", hint: None },
    Presigned { name: "s3 v2 path-style", method: "GET", host: "localhost:4566", url_path: "/bkt/a%20b/c%2Bd.txt", query: "AWSAccessKeyId=AKIDEXAMPLE&Signature=XJHPlq51TqecGPX%2Bs4BhNAm%2FH5E%3D&Expires=1795736398", hint: Some("s3") },
    Presigned { name: "s3 v2 virtual-hosted with response override", method: "GET", host: "bkt.localhost:4566", url_path: "/k.txt", query: "response-content-type=text%2Fplain&AWSAccessKeyId=AKIDEXAMPLE&Signature=9FxXPq2nwoeA3xJkKOJK9UM6SGY%3D&Expires=1795736398", hint: Some("s3") },
    Presigned { name: "s3 v2 with session token", method: "GET", host: "localhost:4566", url_path: "/bkt/k", query: "AWSAccessKeyId=AKIDEXAMPLE&Signature=TuZOowIBUG2t34v7XimJVleM0a4%3D&x-amz-security-token=SESSION%2FTOKEN%2Bx%3D&Expires=1795736411", hint: Some("s3") },
];

#[test]
fn botocore_presigned_urls_verify() {
    for p in PRESIGNED {
        let req = Req::new(p.method, p.url_path, p.query, &[("Host", p.host)]);
        let claim = req.claim(&[], p.hint);
        // Check within the validity window, then just after it.
        let (now, end) = match &claim {
            Claim::V4 {
                amz_date,
                expires_secs,
                ..
            } => (
                epoch(amz_date) + 10,
                epoch(amz_date) + *expires_secs.as_ref().unwrap() as i64,
            ),
            Claim::V2 { expires_epoch, .. } => (
                expires_epoch.unwrap() as i64 - 800,
                expires_epoch.unwrap() as i64,
            ),
            Claim::Anonymous => panic!("{}: anonymous", p.name),
        };
        let result = req.check(&[], p.hint, "", SECRET, now);
        assert!(result.is_ok(), "{}: {:?}", p.name, result.err());
        let err = req.check(&[], p.hint, "", SECRET, end + 1).unwrap_err();
        assert!(
            err.code == "AccessDenied" || err.code == "RequestExpired",
            "{}: {err}",
            p.name
        );
        let err = req.check(&[], p.hint, "", "bad secret", now).unwrap_err();
        assert_eq!(err.code, "SignatureDoesNotMatch", "{}", p.name);
        if p.name.contains("token") {
            assert_eq!(
                claim.session_token(),
                Some("SESSION/TOKEN+x="),
                "{}",
                p.name
            );
        }
    }
}

#[test]
fn botocore_query_api_sigv2() {
    let now = crate::clock::parse_iso8601("2026-11-26T23:36:27Z").unwrap();
    // GET with the parameters in the query string (form-encoded: `+` is a space).
    let req = Req::new("GET", "/path", "Action=ListQueues&Version=2012-11-05&QueueNamePrefix=a~b+c&AWSAccessKeyId=AKIDEXAMPLE&SignatureVersion=2&SignatureMethod=HmacSHA256&Timestamp=2026-11-26T23%3A36%3A27Z&SecurityToken=TOKEN%2F%2B%3D&Signature=rVywhnrjBqme149Tl%2BXTmWk6MXNdKIByrnVI2AGIvFo%3D", &[("Host", "localhost:4566")]);
    let claim = req.check(&[], None, "", SECRET, now).unwrap();
    assert!(matches!(
        claim,
        Claim::V2 {
            form: V2Form::QueryApi,
            presigned: true,
            ..
        }
    ));
    assert_eq!(claim.session_token(), Some("TOKEN/+="));
    let err = req.check(&[], None, "", SECRET, now + 3600).unwrap_err();
    assert_eq!(err.code, "RequestExpired");

    // POST with the parameters in the form body, which the edge parses.
    let body = form(&[
        ("Action", "DescribeRegions"),
        ("Version", "2016-11-15"),
        ("RegionName.1", "us-east-1"),
        ("Filter.1.Value.1", "a b*c"),
        ("AWSAccessKeyId", "AKIDEXAMPLE"),
        ("SignatureVersion", "2"),
        ("SignatureMethod", "HmacSHA256"),
        ("Timestamp", "2026-11-26T23:36:27Z"),
        ("Signature", "3OrGKFIJZiJNuimzv0FSb5hS3MUbPQV1Lcx7AFEg7m4="),
    ]);
    let req = Req::new(
        "POST",
        "/",
        "",
        &[
            ("Host", "localhost:4566"),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ],
    );
    let claim = req.check(&body, None, "", SECRET, now).unwrap();
    assert!(matches!(
        claim,
        Claim::V2 {
            form: V2Form::QueryApi,
            presigned: false,
            ..
        }
    ));
    let mut tampered = body.clone();
    tampered[3].1 = "a b*d".to_string();
    let err = req.check(&tampered, None, "", SECRET, now).unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.status),
        ("SignatureDoesNotMatch", 403)
    );
}
