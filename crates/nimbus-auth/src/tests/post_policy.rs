//! Browser-form (POST Object) policies: the AWS documentation's SigV4 example,
//! a SigV2 vector computed independently with Python's hmac/hashlib, every
//! condition kind passing and failing, and the S3 errors for malformed forms.

use nimbus_core::AwsError;

use super::form;
use crate::{
    check_content_length, read_post_form, sign_post_policy_v2, sign_post_policy_v4,
    substitute_filename, verify_post_policy, CheckedPost, PostForm, PostSignature,
};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const AKID: &str = "AKIAIOSFODNN7EXAMPLE";

/// "Example: Browser-Based Upload using HTTP POST (Using AWS Signature Version 4)"
/// from the S3 API reference: the policy as the page shows it (CRLF line ends)
/// and the signature it gives for the example secret.
const DOC_V4_POLICY: &str = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
const DOC_V4_SIGNATURE: &str = "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e";

/// The policy of "Browser-Based Uploads Using POST (AWS Signature Version 2)".
const DOC_V2_POLICY_JSON: &str = "{ \"expiration\": \"2007-12-01T12:00:00.000Z\",\n  \"conditions\": [\n    {\"bucket\": \"johnsmith\"},\n    [\"starts-with\", \"$key\", \"user/eric/\"],\n    {\"acl\": \"public-read\"},\n    {\"success_action_redirect\": \"http://johnsmith.s3.amazonaws.com/successful_upload.html\"},\n    [\"starts-with\", \"$Content-Type\", \"image/\"],\n    {\"x-amz-meta-uuid\": \"14365123651274\"},\n    [\"starts-with\", \"$x-amz-meta-tag\", \"\"]\n  ]\n}\n";
/// Computed with Python: base64.b64encode(policy) and
/// base64.b64encode(hmac.new(SECRET, policy_b64, hashlib.sha1).digest()).
const DOC_V2_POLICY_B64: &str = "eyAiZXhwaXJhdGlvbiI6ICIyMDA3LTEyLTAxVDEyOjAwOjAwLjAwMFoiLAogICJjb25kaXRpb25zIjogWwogICAgeyJidWNrZXQiOiAiam9obnNtaXRoIn0sCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci9lcmljLyJdLAogICAgeyJhY2wiOiAicHVibGljLXJlYWQifSwKICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL2pvaG5zbWl0aC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwKICAgIFsic3RhcnRzLXdpdGgiLCAiJENvbnRlbnQtVHlwZSIsICJpbWFnZS8iXSwKICAgIHsieC1hbXotbWV0YS11dWlkIjogIjE0MzY1MTIzNjUxMjc0In0sCiAgICBbInN0YXJ0cy13aXRoIiwgIiR4LWFtei1tZXRhLXRhZyIsICIiXQogIF0KfQo=";
const DOC_V2_SIGNATURE: &str = "gp42sMsv4L5xLO0OjT+56V64o+A=";

/// 2015-12-29T12:00:00Z, between the V4 example's date and its expiration.
const NOW_2015: i64 = 1_451_390_400;
/// 2007-11-30T00:00:00Z, before the V2 example's expiration.
const NOW_2007: i64 = 1_196_380_800;
/// 2030-01-01T00:00:00Z.
const FAR_EXPIRATION: &str = "2030-01-01T00:00:00.000Z";
const NOW: i64 = 1_704_164_645;

fn doc_v4_fields() -> Vec<(String, String)> {
    form(&[
        ("key", "user/user1/${filename}"),
        ("acl", "public-read"),
        (
            "success_action_redirect",
            "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html",
        ),
        ("Content-Type", "image/jpeg"),
        ("x-amz-meta-uuid", "14365123651274"),
        ("x-amz-server-side-encryption", "AES256"),
        (
            "X-Amz-Credential",
            "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
        ),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Date", "20151229T000000Z"),
        ("x-amz-meta-tag", ""),
        ("Policy", DOC_V4_POLICY),
        ("X-Amz-Signature", DOC_V4_SIGNATURE),
    ])
}

fn doc_v2_fields() -> Vec<(String, String)> {
    form(&[
        ("key", "user/eric/${filename}"),
        ("acl", "public-read"),
        (
            "success_action_redirect",
            "http://johnsmith.s3.amazonaws.com/successful_upload.html",
        ),
        ("Content-Type", "image/jpeg"),
        ("x-amz-meta-uuid", "14365123651274"),
        ("x-amz-meta-tag", "Some,Tag,For,Picture"),
        ("AWSAccessKeyId", AKID),
        ("Policy", DOC_V2_POLICY_B64),
        ("Signature", DOC_V2_SIGNATURE),
    ])
}

fn post<'a>(fields: &'a [(String, String)], bucket: &'a str) -> PostForm<'a> {
    PostForm {
        fields,
        bucket,
        file_name: Some("photo.jpg"),
    }
}

/// Both steps, with the given secret.
fn run(form: &PostForm, secret: Option<&str>, now: i64) -> Result<CheckedPost, AwsError> {
    let checked = read_post_form(form)?;
    verify_post_policy(form, &checked, secret, now)?;
    Ok(checked)
}

/// A SigV2 form for bucket `b` whose policy has the given conditions
/// (JSON array members) and the given extra fields; `key` is always covered
/// by `["starts-with", "$key", ""]` unless `conditions` mention it.
fn v2_form(conditions: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let json = format!("{{\"expiration\": \"{FAR_EXPIRATION}\", \"conditions\": [{conditions}]}}");
    let (policy, signature) = sign_post_policy_v2(&json, SECRET);
    let mut fields = form(extra);
    fields.push(("AWSAccessKeyId".to_string(), AKID.to_string()));
    fields.push(("policy".to_string(), policy));
    fields.push(("signature".to_string(), signature));
    fields
}

fn expect_denied(result: Result<CheckedPost, AwsError>, message: &str) {
    let err = result.expect_err(message);
    assert_eq!(err.code, "AccessDenied", "{err}");
    assert_eq!(err.status, 403);
    assert_eq!(err.message, message);
}

fn condition_failed(shown: &str) -> String {
    format!("Invalid according to Policy: Policy Condition failed: {shown}")
}

fn policy_error(result: Result<CheckedPost, AwsError>, message: &str) {
    let err = result.expect_err(message);
    assert_eq!(err.code, "InvalidPolicyDocument", "{err}");
    assert_eq!(err.status, 400);
    assert_eq!(err.message, message);
}

fn field<'e>(err: &'e AwsError, name: &str) -> Option<&'e str> {
    err.fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn aws_v4_doc_example_verifies() {
    let fields = doc_v4_fields();
    let form = post(&fields, "sigv4examplebucket");
    let checked = run(&form, Some(SECRET), NOW_2015).unwrap();
    assert_eq!(checked.key, "user/user1/photo.jpg");
    assert_eq!(
        checked.signature,
        PostSignature::V4 {
            access_key_id: AKID.to_string(),
            date: "20151229".to_string(),
            region: "us-east-1".to_string(),
            amz_date: "20151229T000000Z".to_string(),
        }
    );
    assert_eq!(checked.signature.access_key_id(), Some(AKID));
    assert_eq!(checked.content_length_range, None);
    assert_eq!(checked.session_token, None);
}

#[test]
fn sign_v4_reproduces_doc_signature() {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD
        .decode(DOC_V4_POLICY)
        .unwrap();
    let json = String::from_utf8(json).unwrap();
    let (policy, signature) = sign_post_policy_v4(&json, SECRET, "20151229", "us-east-1");
    assert_eq!(policy, DOC_V4_POLICY);
    assert_eq!(signature, DOC_V4_SIGNATURE);
}

#[test]
fn v4_wrong_secret_is_signature_mismatch() {
    let fields = doc_v4_fields();
    let err = run(
        &post(&fields, "sigv4examplebucket"),
        Some("other"),
        NOW_2015,
    )
    .unwrap_err();
    assert_eq!(err.code, "SignatureDoesNotMatch");
    assert_eq!(err.status, 403);
    assert_eq!(
        err.message,
        "The request signature we calculated does not match the signature you provided. Check your key and signing method."
    );
    assert_eq!(field(&err, "AWSAccessKeyId"), Some(AKID));
    assert_eq!(field(&err, "StringToSign"), Some(DOC_V4_POLICY));
    assert_eq!(field(&err, "SignatureProvided"), Some(DOC_V4_SIGNATURE));
}

#[test]
fn v4_signature_hex_is_case_insensitive() {
    let mut fields = doc_v4_fields();
    for (k, v) in &mut fields {
        if k == "X-Amz-Signature" {
            *v = v.to_ascii_uppercase();
        }
    }
    run(&post(&fields, "sigv4examplebucket"), Some(SECRET), NOW_2015).unwrap();
}

#[test]
fn v4_scope_region_is_part_of_the_key() {
    let mut fields = doc_v4_fields();
    for (k, v) in &mut fields {
        if k == "X-Amz-Credential" {
            *v = "AKIAIOSFODNN7EXAMPLE/20151229/eu-west-1/s3/aws4_request".to_string();
        }
    }
    let err = run(&post(&fields, "sigv4examplebucket"), Some(SECRET), NOW_2015).unwrap_err();
    // The policy's own x-amz-credential condition would fail too, but the
    // signature is checked first.
    assert_eq!(err.code, "SignatureDoesNotMatch");
}

#[test]
fn v2_vector_computed_with_python() {
    assert_eq!(
        sign_post_policy_v2(DOC_V2_POLICY_JSON, SECRET),
        (DOC_V2_POLICY_B64.to_string(), DOC_V2_SIGNATURE.to_string())
    );
    let fields = doc_v2_fields();
    let checked = run(&post(&fields, "johnsmith"), Some(SECRET), NOW_2007).unwrap();
    assert_eq!(checked.key, "user/eric/photo.jpg");
    assert_eq!(
        checked.signature,
        PostSignature::V2 {
            access_key_id: AKID.to_string()
        }
    );
}

#[test]
fn v2_wrong_signature_is_signature_mismatch() {
    let mut fields = doc_v2_fields();
    for (k, v) in &mut fields {
        if k == "Signature" {
            // base64 is case-sensitive, unlike SigV4's hex.
            *v = DOC_V2_SIGNATURE.to_ascii_lowercase();
        }
    }
    let err = run(&post(&fields, "johnsmith"), Some(SECRET), NOW_2007).unwrap_err();
    assert_eq!(err.code, "SignatureDoesNotMatch");
    assert_eq!(err.status, 403);
    assert_eq!(field(&err, "StringToSign"), Some(DOC_V2_POLICY_B64));
}

#[test]
fn open_mode_skips_signature_but_not_policy() {
    let mut fields = doc_v2_fields();
    for (k, v) in &mut fields {
        if k == "Signature" {
            *v = "garbage".to_string();
        }
    }
    run(&post(&fields, "johnsmith"), None, NOW_2007).unwrap();
    // Expiration and conditions still apply.
    expect_denied(
        run(&post(&fields, "johnsmith"), None, NOW),
        "Invalid according to Policy: Policy expired.",
    );
    expect_denied(
        run(&post(&fields, "otherbucket"), None, NOW_2007),
        &condition_failed(r#"["eq", "$bucket", "johnsmith"]"#),
    );
}

#[test]
fn expired_policy_is_denied() {
    let fields = doc_v4_fields();
    // One second past 2015-12-30T12:00:00Z.
    expect_denied(
        run(
            &post(&fields, "sigv4examplebucket"),
            Some(SECRET),
            1_451_476_801,
        ),
        "Invalid according to Policy: Policy expired.",
    );
}

#[test]
fn missing_key_is_invalid_argument() {
    for fields in [
        form(&[("acl", "private")]),
        form(&[("key", ""), ("acl", "private")]),
    ] {
        let err = read_post_form(&post(&fields, "b")).unwrap_err();
        assert_eq!(err.code, "InvalidArgument");
        assert_eq!(err.status, 400);
        assert_eq!(
            err.message,
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields."
        );
        assert_eq!(field(&err, "ArgumentName"), Some("key"));
    }
}

#[test]
fn anonymous_form_has_no_policy() {
    let fields = form(&[("key", "uploads/${filename}"), ("acl", "public-read")]);
    let form = post(&fields, "b");
    let checked = run(&form, Some(SECRET), NOW).unwrap();
    assert_eq!(checked.signature, PostSignature::Anonymous);
    assert_eq!(checked.signature.access_key_id(), None);
    assert_eq!(checked.key, "uploads/photo.jpg");
}

#[test]
fn missing_signature_fields_are_invalid_argument() {
    let (policy, signature) = sign_post_policy_v2("{}", SECRET);
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        // A policy with nobody claiming to have signed it.
        (form(&[("key", "k"), ("policy", &policy)]), "AWSAccessKeyId"),
        // A key id and a signature without the policy they sign.
        (
            form(&[
                ("key", "k"),
                ("AWSAccessKeyId", AKID),
                ("signature", &signature),
            ]),
            "policy",
        ),
        (
            form(&[("key", "k"), ("AWSAccessKeyId", AKID), ("policy", &policy)]),
            "Signature",
        ),
        (
            form(&[("key", "k"), ("signature", &signature), ("policy", &policy)]),
            "AWSAccessKeyId",
        ),
        (
            form(&[
                ("key", "k"),
                ("policy", &policy),
                ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
                ("x-amz-date", "20151229T000000Z"),
                ("x-amz-signature", DOC_V4_SIGNATURE),
            ]),
            "X-Amz-Credential",
        ),
        (
            form(&[
                ("key", "k"),
                ("policy", &policy),
                ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
                (
                    "x-amz-credential",
                    "AKID/20151229/us-east-1/s3/aws4_request",
                ),
                ("x-amz-signature", DOC_V4_SIGNATURE),
            ]),
            "X-Amz-Date",
        ),
        (
            form(&[
                ("key", "k"),
                ("policy", &policy),
                ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
                (
                    "x-amz-credential",
                    "AKID/20151229/us-east-1/s3/aws4_request",
                ),
                ("x-amz-date", "20151229T000000Z"),
            ]),
            "X-Amz-Signature",
        ),
    ];
    for (fields, name) in cases {
        let err = read_post_form(&post(&fields, "b")).unwrap_err();
        assert_eq!(err.code, "InvalidArgument", "{name}");
        assert_eq!(
            err.message,
            format!(
                "Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."
            )
        );
    }
}

#[test]
fn v4_algorithm_and_credential_are_checked() {
    let with = |name: &str, value: &str| {
        let mut fields = doc_v4_fields();
        for (k, v) in &mut fields {
            if k == name {
                *v = value.to_string();
            }
        }
        read_post_form(&post(&fields, "sigv4examplebucket")).unwrap_err()
    };
    let err = with("X-Amz-Algorithm", "AWS4-HMAC-SHA1");
    assert_eq!(err.code, "InvalidArgument");
    assert_eq!(
        err.message,
        "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""
    );
    for bad in [
        "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3",
        "AKIAIOSFODNN7EXAMPLE/2015122/us-east-1/s3/aws4_request",
        "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws5_request",
        "/20151229/us-east-1/s3/aws4_request",
    ] {
        let err = with("X-Amz-Credential", bad);
        assert_eq!(err.code, "InvalidArgument", "{bad}");
        assert!(err.message.contains("mal-formed"), "{bad}: {}", err.message);
        assert_eq!(field(&err, "ArgumentValue"), Some(bad));
    }
    let err = with(
        "X-Amz-Credential",
        "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/ec2/aws4_request",
    );
    assert!(
        err.message.contains("incorrect service \"ec2\""),
        "{}",
        err.message
    );
}

#[test]
fn filename_substitution() {
    assert_eq!(
        substitute_filename("a/${filename}", Some("b.txt")),
        "a/b.txt"
    );
    assert_eq!(
        substitute_filename("a/${filename}", Some("C:\\Program Files\\dir\\file.txt")),
        "a/file.txt"
    );
    assert_eq!(
        substitute_filename("${filename}.${filename}", Some("/home/u/x")),
        "x.x"
    );
    assert_eq!(substitute_filename("a/${filename}", None), "a/");
    assert_eq!(substitute_filename("plain", Some("b")), "plain");

    let fields = form(&[("key", "up/${filename}")]);
    let form = PostForm {
        fields: &fields,
        bucket: "b",
        file_name: Some("..\\..\\evil.txt"),
    };
    assert_eq!(read_post_form(&form).unwrap().key, "up/evil.txt");
    // Nothing left once substituted: as good as no key.
    let fields = self::form(&[("key", "${filename}")]);
    let form = PostForm {
        fields: &fields,
        bucket: "b",
        file_name: None,
    };
    assert_eq!(read_post_form(&form).unwrap_err().code, "InvalidArgument");
}

#[test]
fn filename_conditions_match_raw_or_substituted_value() {
    // A policy written before the file is chosen names the variable itself.
    let fields = v2_form(
        r#"["eq", "$key", "up/${filename}"]"#,
        &[("key", "up/${filename}")],
    );
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
    // Or constrains what will be stored.
    let fields = v2_form(
        r#"["eq", "$key", "up/photo.jpg"]"#,
        &[("key", "up/${filename}")],
    );
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
    let fields = v2_form(
        r#"["starts-with", "$key", "photo"]"#,
        &[("key", "${filename}")],
    );
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
    let fields = v2_form(
        r#"["eq", "$key", "up/other.jpg"]"#,
        &[("key", "up/${filename}")],
    );
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        &condition_failed(r#"["eq", "$key", "up/other.jpg"]"#),
    );
}

#[test]
fn field_names_are_case_insensitive_values_exact() {
    let fields = v2_form(
        r#"{"ACL": "public-read"}, ["starts-with", "$content-type", "image/"], ["eq", "$KEY", "k"]"#,
        &[
            ("Key", "k"),
            ("acl", "public-read"),
            ("CONTENT-TYPE", "image/png"),
        ],
    );
    let mut fields = fields;
    for (k, _) in &mut fields {
        if k == "policy" {
            *k = "POLICY".to_string();
        }
        if k == "AWSAccessKeyId" {
            *k = "awsaccesskeyid".to_string();
        }
    }
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();

    let fields = v2_form(
        r#"{"acl": "public-read"}, {"key": "k"}"#,
        &[("key", "k"), ("acl", "Public-Read")],
    );
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        &condition_failed(r#"["eq", "$acl", "public-read"]"#),
    );
}

#[test]
fn extra_fields_are_denied() {
    let fields = v2_form(
        r#"{"key": "k"}"#,
        &[("key", "k"), ("X-Amz-Meta-Other", "v")],
    );
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        "Invalid according to Policy: Extra input fields: X-Amz-Meta-Other",
    );
    // A bucket field needs a condition like any other.
    let fields = v2_form(r#"{"key": "k"}"#, &[("key", "k"), ("bucket", "b")]);
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        "Invalid according to Policy: Extra input fields: bucket",
    );
    // x-ignore-* and the signature fields need none.
    let fields = v2_form(
        r#"{"key": "k"}"#,
        &[
            ("key", "k"),
            ("x-ignore-submit", "Upload"),
            ("X-Ignore-Other", ""),
        ],
    );
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
    // The session token is an ordinary field for the policy.
    let fields = v2_form(
        r#"{"key": "k"}"#,
        &[("key", "k"), ("x-amz-security-token", "tok")],
    );
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        "Invalid according to Policy: Extra input fields: x-amz-security-token",
    );
}

#[test]
fn session_token_is_returned() {
    let fields = v2_form(
        r#"{"key": "k"}, {"x-amz-security-token": "tok"}"#,
        &[("key", "k"), ("X-Amz-Security-Token", "tok")],
    );
    let checked = run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
    assert_eq!(checked.session_token.as_deref(), Some("tok"));
}

#[test]
fn eq_conditions() {
    let fields = v2_form(r#"["eq", "$key", "x"]"#, &[("key", "x")]);
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
    let fields = v2_form(r#"["eq", "$key", "x"]"#, &[("key", "xy")]);
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        &condition_failed(r#"["eq", "$key", "x"]"#),
    );
    // The simple form is shown as the eq it means, with the name as written.
    let fields = v2_form(
        r#"{"key": "k"}, {"X-Amz-Meta-Uuid": "1"}"#,
        &[("key", "k"), ("x-amz-meta-uuid", "2")],
    );
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        &condition_failed(r#"["eq", "$X-Amz-Meta-Uuid", "1"]"#),
    );
    // Quotes in values are escaped as JSON.
    let fields = v2_form(r#"["eq", "$key", "a\"b"]"#, &[("key", "ab")]);
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        &condition_failed(r#"["eq", "$key", "a\"b"]"#),
    );
    // An absent field is empty: fails against a value.
    let fields = v2_form(r#"{"key": "k"}, {"acl": "private"}"#, &[("key", "k")]);
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        &condition_failed(r#"["eq", "$acl", "private"]"#),
    );
}

#[test]
fn starts_with_conditions() {
    let fields = v2_form(
        r#"["starts-with", "$key", "user/eric/"]"#,
        &[("key", "user/eric/a")],
    );
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
    let fields = v2_form(
        r#"["starts-with", "$key", "user/eric/"]"#,
        &[("key", "user/bob/a")],
    );
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        &condition_failed(r#"["starts-with", "$key", "user/eric/"]"#),
    );
    // Empty prefix: anything, including an absent field.
    let fields = v2_form(
        r#"{"key": "k"}, ["starts-with", "$x-amz-meta-tag", ""], ["starts-with", "$success_action_redirect", ""]"#,
        &[("key", "k"), ("x-amz-meta-tag", "whatever")],
    );
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
}

#[test]
fn content_type_starts_with_applies_to_each_listed_type() {
    let cond = r#"{"key": "k"}, ["starts-with", "$Content-Type", "image/"]"#;
    let fields = v2_form(
        cond,
        &[("key", "k"), ("Content-Type", "image/png, image/jpeg")],
    );
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
    let fields = v2_form(
        cond,
        &[("key", "k"), ("Content-Type", "image/png,text/plain")],
    );
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        &condition_failed(r#"["starts-with", "$Content-Type", "image/"]"#),
    );
    // Only Content-Type is a list; other fields compare the whole value.
    let cond = r#"{"key": "k"}, ["starts-with", "$x-amz-meta-tag", "a"]"#;
    let fields = v2_form(cond, &[("key", "k"), ("x-amz-meta-tag", "a1,b2")]);
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
}

#[test]
fn bucket_condition_uses_the_real_bucket() {
    let fields = v2_form(r#"{"bucket": "mine"}, {"key": "k"}"#, &[("key", "k")]);
    run(&post(&fields, "mine"), Some(SECRET), NOW).unwrap();
    expect_denied(
        run(&post(&fields, "theirs"), Some(SECRET), NOW),
        &condition_failed(r#"["eq", "$bucket", "mine"]"#),
    );
    // A bucket form field cannot stand in for the real bucket.
    let fields = v2_form(
        r#"{"bucket": "mine"}, {"key": "k"}"#,
        &[("key", "k"), ("bucket", "mine")],
    );
    assert!(run(&post(&fields, "theirs"), Some(SECRET), NOW).is_err());
    let fields = v2_form(
        r#"["starts-with", "$bucket", "team-"], {"key": "k"}"#,
        &[("key", "k")],
    );
    run(&post(&fields, "team-a"), Some(SECRET), NOW).unwrap();
}

#[test]
fn repeated_fields_must_all_satisfy_the_condition() {
    let fields = v2_form(
        r#"["starts-with", "$key", "k"], {"acl": "private"}"#,
        &[("key", "k"), ("acl", "private"), ("ACL", "public-read")],
    );
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        &condition_failed(r#"["eq", "$acl", "private"]"#),
    );
}

#[test]
fn first_failing_condition_is_reported() {
    let fields = v2_form(
        r#"{"key": "a"}, {"acl": "b"}"#,
        &[("key", "x"), ("acl", "y")],
    );
    expect_denied(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        &condition_failed(r#"["eq", "$key", "a"]"#),
    );
}

#[test]
fn content_length_range_is_returned_and_enforced() {
    let fields = v2_form(
        r#"{"key": "k"}, ["content-length-range", 10, 100]"#,
        &[("key", "k")],
    );
    let checked = run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
    assert_eq!(checked.content_length_range, Some((10, 100)));
    let range = checked.content_length_range;
    check_content_length(range, 10).unwrap();
    check_content_length(range, 100).unwrap();
    check_content_length(None, u64::MAX).unwrap();

    let err = check_content_length(range, 9).unwrap_err();
    assert_eq!(err.code, "EntityTooSmall");
    assert_eq!(err.status, 400);
    assert_eq!(
        err.message,
        "Your proposed upload is smaller than the minimum allowed size"
    );
    assert_eq!(field(&err, "ProposedSize"), Some("9"));
    assert_eq!(field(&err, "MinSizeAllowed"), Some("10"));

    let err = check_content_length(range, 101).unwrap_err();
    assert_eq!(err.code, "EntityTooLarge");
    assert_eq!(err.status, 400);
    assert_eq!(
        err.message,
        "Your proposed upload exceeds the maximum allowed size"
    );
    assert_eq!(field(&err, "ProposedSize"), Some("101"));
    assert_eq!(field(&err, "MaxSizeAllowed"), Some("100"));
}

#[test]
fn repeated_content_length_ranges_intersect() {
    let fields = v2_form(
        r#"{"key": "k"}, ["content-length-range", 10, 100], ["content-length-range", 0, 50]"#,
        &[("key", "k")],
    );
    let checked = run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
    assert_eq!(checked.content_length_range, Some((10, 50)));
}

#[test]
fn unreadable_conditions_fail_as_conditions() {
    for (cond, shown) in [
        (
            r#"["ends-with", "$key", "k"]"#,
            r#"["ends-with", "$key", "k"]"#,
        ),
        (r#"["eq", "key", "k"]"#, r#"["eq", "key", "k"]"#),
        (r#"["eq", "$key"]"#, r#"["eq", "$key"]"#),
        (
            r#"["starts-with", "$key", 5]"#,
            r#"["starts-with", "$key", 5]"#,
        ),
        (
            r#"["content-length-range", "1", "10"]"#,
            r#"["content-length-range", "1", "10"]"#,
        ),
        (
            r#"["content-length-range", -1, 10]"#,
            r#"["content-length-range", -1, 10]"#,
        ),
        (r#"{"key": 5}"#, r#"["eq", "$key", 5]"#),
    ] {
        let fields = v2_form(
            &format!(r#"["starts-with", "$key", ""], {cond}"#),
            &[("key", "k")],
        );
        expect_denied(
            run(&post(&fields, "b"), Some(SECRET), NOW),
            &condition_failed(shown),
        );
    }
}

#[test]
fn malformed_policies_are_invalid_policy_documents() {
    let signed = |json: &str| {
        let (policy, signature) = sign_post_policy_v2(json, SECRET);
        form(&[
            ("key", "k"),
            ("AWSAccessKeyId", AKID),
            ("policy", &policy),
            ("signature", &signature),
        ])
    };
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        (signed("{not json"), "Invalid Policy: Invalid JSON."),
        (signed("[]"), "Invalid Policy: Invalid JSON."),
        (
            signed(r#"{"conditions": []}"#),
            "Invalid Policy: Policy missing expiration.",
        ),
        (
            signed(r#"{"expiration": "2030-01-01", "conditions": []}"#),
            "Invalid Policy: Invalid 'expiration' value: '2030-01-01'",
        ),
        (
            signed(r#"{"expiration": "soon", "conditions": []}"#),
            "Invalid Policy: Invalid 'expiration' value: 'soon'",
        ),
        (
            signed(r#"{"expiration": "2030-01-01T00:00:00Z"}"#),
            "Invalid Policy: Policy missing conditions.",
        ),
        (
            signed(r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": {"key": "k"}}"#),
            "Invalid Policy: Invalid 'conditions' value: must be a List.",
        ),
        (
            signed(r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [{"key": "k", "acl": "x"}]}"#),
            "Invalid Policy: Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.",
        ),
    ];
    for (fields, message) in cases {
        policy_error(run(&post(&fields, "b"), Some(SECRET), NOW), message);
    }
    // Not base64 at all (signed as sent, so the signature passes).
    let policy = "%%%";
    let signature = crate::sign_v2_s3(SECRET, policy);
    let fields = form(&[
        ("key", "k"),
        ("AWSAccessKeyId", AKID),
        ("policy", policy),
        ("signature", &signature),
    ]);
    policy_error(
        run(&post(&fields, "b"), Some(SECRET), NOW),
        "Invalid Policy: Invalid Base64 Encoding.",
    );
}

#[test]
fn expiration_accepts_offsets_and_no_fraction() {
    for (expiration, ok) in [
        ("2024-01-02T03:04:06Z", true),
        ("2024-01-02T03:04:05Z", false),
        ("2024-01-02T04:04:06+01:00", true),
        ("2024-01-02T03:04:04.999Z", false),
    ] {
        let json = format!(r#"{{"expiration": "{expiration}", "conditions": [{{"key": "k"}}]}}"#);
        let (policy, signature) = sign_post_policy_v2(&json, SECRET);
        let fields = form(&[
            ("key", "k"),
            ("AWSAccessKeyId", AKID),
            ("policy", &policy),
            ("signature", &signature),
        ]);
        assert_eq!(
            run(&post(&fields, "b"), Some(SECRET), NOW).is_ok(),
            ok,
            "{expiration}"
        );
    }
}

#[test]
fn dollar_escape_and_wrapped_base64() {
    // S3 documents `\$` for a literal dollar sign.
    let fields = v2_form(r#"{"key": "price\$5"}"#, &[("key", "price$5")]);
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
    // An escaped backslash before a dollar stays a backslash.
    let fields = v2_form(r#"{"key": "a\\$b"}"#, &[("key", "a\\$b")]);
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();

    // Base64 wrapped at 76 columns, signed as sent.
    let json = format!(
        r#"{{"expiration": "{FAR_EXPIRATION}", "conditions": [{{"key": "a-rather-long-key-to-make-the-policy-wrap"}}, ["starts-with", "$x-amz-meta-note", ""]]}}"#
    );
    let (policy, _) = sign_post_policy_v2(&json, SECRET);
    let wrapped: Vec<String> = policy
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let wrapped = wrapped.join("\n");
    assert!(wrapped.contains('\n'));
    let signature = crate::sign_v2_s3(SECRET, &wrapped);
    let fields = form(&[
        ("key", "a-rather-long-key-to-make-the-policy-wrap"),
        ("AWSAccessKeyId", AKID),
        ("policy", &wrapped),
        ("signature", &signature),
    ]);
    run(&post(&fields, "b"), Some(SECRET), NOW).unwrap();
}

#[test]
fn content_length_range_read_leniently_before_verification() {
    // Step 1 reports the range of a readable policy even before the signature
    // is checked, and none for an unreadable one (step 2 reports that).
    let json = format!(
        r#"{{"expiration": "{FAR_EXPIRATION}", "conditions": [["content-length-range", 1, 2]]}}"#
    );
    let (policy, _) = sign_post_policy_v2(&json, SECRET);
    let fields = form(&[
        ("key", "k"),
        ("AWSAccessKeyId", AKID),
        ("policy", &policy),
        ("signature", "bad"),
    ]);
    let checked = read_post_form(&post(&fields, "b")).unwrap();
    assert_eq!(checked.content_length_range, Some((1, 2)));
    let fields = form(&[
        ("key", "k"),
        ("AWSAccessKeyId", AKID),
        ("policy", "e30="),
        ("signature", "bad"),
    ]);
    assert_eq!(
        read_post_form(&post(&fields, "b"))
            .unwrap()
            .content_length_range,
        None
    );
}

#[test]
fn form_field_lookup_is_case_insensitive() {
    let fields = form(&[("Content-Type", "a"), ("content-type", "b")]);
    let f = post(&fields, "b");
    assert_eq!(f.field("CONTENT-TYPE"), Some("a"));
    assert_eq!(f.field("acl"), None);
}
