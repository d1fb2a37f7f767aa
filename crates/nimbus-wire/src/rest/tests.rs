//! Hand-written requests and answers for S3 and Route 53 (rest-xml) and Glacier
//! (rest-json), shaped like what botocore sends and parses.

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use super::{decode, encode_error, encode_output};
use crate::model::{model, Protocol, ServiceModel};
use crate::{WireRequest, WireResponse};
use nimbus_core::AwsError;

fn s3() -> &'static ServiceModel {
    model("s3").expect("s3 model")
}

fn route53() -> &'static ServiceModel {
    model("route53").expect("route53 model")
}

fn glacier() -> &'static ServiceModel {
    model("glacier").expect("glacier model")
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

fn call(
    model: &ServiceModel,
    method: &str,
    path: &str,
    query: &str,
    header_pairs: &[(&str, &str)],
    body: &[u8],
) -> Result<(String, Value), AwsError> {
    let map = headers(header_pairs);
    let protocol = model.protocols()[0];
    decode(
        model,
        protocol,
        &WireRequest {
            method,
            path,
            query,
            headers: &map,
            body,
        },
    )
}

fn op_of(
    model: &ServiceModel,
    method: &str,
    path: &str,
    query: &str,
    h: &[(&str, &str)],
) -> String {
    match call(model, method, path, query, h, b"") {
        Ok((op, _)) => op,
        Err(e) => format!("error {} {}", e.status, e.code),
    }
}

fn header<'r>(response: &'r WireResponse, name: &str) -> Option<&'r str> {
    response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn body_text(response: &WireResponse) -> &str {
    std::str::from_utf8(&response.body).expect("utf-8 body")
}

#[test]
fn s3_put_object_binds_headers_metadata_and_body() {
    let (op, input) = call(
        s3(),
        "PUT",
        "/my-bucket/dir/my%20key%2B1.txt",
        "",
        &[
            ("content-type", "text/plain"),
            ("content-length", "5"),
            ("x-amz-meta-color", "blue"),
            ("X-Amz-Meta-Owner", "Zoë"),
            ("x-amz-tagging", "a=b&c=d"),
            ("x-amz-server-side-encryption-bucket-key-enabled", "TRUE"),
            (
                "x-amz-object-lock-retain-until-date",
                "2030-01-02T03:04:05Z",
            ),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ],
        b"hello",
    )
    .expect("decodes");
    assert_eq!(op, "PutObject");
    assert_eq!(
        input,
        json!({
            "Body": "aGVsbG8=",
            "Bucket": "my-bucket",
            "Key": "dir/my key+1.txt",
            "ContentType": "text/plain",
            "ContentLength": 5,
            "Metadata": {"color": "blue", "owner": "Zoë"},
            "Tagging": "a=b&c=d",
            "BucketKeyEnabled": true,
            "ObjectLockRetainUntilDate": 1893553445,
        })
    );
}

#[test]
fn s3_put_object_with_empty_body_still_has_a_body() {
    let (op, input) = call(s3(), "PUT", "/b/k", "", &[], b"").expect("decodes");
    assert_eq!(op, "PutObject");
    assert_eq!(input["Body"], json!(""));
}

#[test]
fn s3_get_object_with_conditional_headers_and_query() {
    let (op, input) = call(
        s3(),
        "GET",
        "/b/a//b/",
        "versionId=v1&response-content-type=text%2Fplain&partNumber=2",
        &[
            ("range", "bytes=0-9"),
            ("if-none-match", "\"abc\""),
            ("if-modified-since", "Thu, 01 Jan 1970 00:01:40 GMT"),
        ],
        b"",
    )
    .expect("decodes");
    assert_eq!(op, "GetObject");
    assert_eq!(
        input,
        json!({
            "Bucket": "b",
            "Key": "a//b/",
            "VersionId": "v1",
            "ResponseContentType": "text/plain",
            "PartNumber": 2,
            "Range": "bytes=0-9",
            "IfNoneMatch": "\"abc\"",
            "IfModifiedSince": 100,
        })
    );
}

#[test]
fn s3_list_objects_v2_query() {
    let (op, input) = call(
        s3(),
        "GET",
        "/b",
        "list-type=2&prefix=a%2Fb+c&max-keys=10&fetch-owner=true&continuation-token=t%3D%3D&encoding-type=url",
        &[],
        b"",
    )
    .expect("decodes");
    assert_eq!(op, "ListObjectsV2");
    assert_eq!(
        input,
        json!({
            "Bucket": "b",
            "Prefix": "a/b c",
            "MaxKeys": 10,
            "FetchOwner": true,
            "ContinuationToken": "t==",
            "EncodingType": "url",
        })
    );
    let bad = call(s3(), "GET", "/b", "list-type=2&max-keys=ten", &[], b"").expect_err("bad");
    assert_eq!((bad.code.as_str(), bad.status), ("InvalidArgument", 400));
}

#[test]
fn s3_routing_prefers_the_most_specific_operation() {
    let m = s3();
    assert_eq!(op_of(m, "GET", "/", "", &[]), "ListBuckets");
    assert_eq!(op_of(m, "GET", "/b", "tagging", &[]), "GetBucketTagging");
    assert_eq!(op_of(m, "GET", "/b", "tagging=", &[]), "GetBucketTagging");
    assert_eq!(op_of(m, "GET", "/b", "list-type=2", &[]), "ListObjectsV2");
    // A trailing slash on a bucket path is the bucket.
    assert_eq!(op_of(m, "GET", "/b/", "list-type=2", &[]), "ListObjectsV2");
    assert_eq!(op_of(m, "PUT", "/b", "tagging", &[]), "PutBucketTagging");
    assert_eq!(op_of(m, "PUT", "/b", "", &[]), "CreateBucket");
    assert_eq!(op_of(m, "PUT", "/b/", "", &[]), "CreateBucket");
    assert_eq!(op_of(m, "HEAD", "/b", "", &[]), "HeadBucket");
    assert_eq!(op_of(m, "HEAD", "/b/k", "", &[]), "HeadObject");
    assert_eq!(op_of(m, "DELETE", "/b", "", &[]), "DeleteBucket");
    assert_eq!(op_of(m, "POST", "/b", "delete", &[]), "DeleteObjects");
    assert_eq!(op_of(m, "GET", "/b/k", "tagging", &[]), "GetObjectTagging");
    assert_eq!(op_of(m, "GET", "/b/k", "", &[]), "GetObject");
    assert_eq!(
        op_of(m, "PUT", "/b/k", "partNumber=1&uploadId=u", &[]),
        "UploadPart"
    );
    assert_eq!(op_of(m, "GET", "/b", "location", &[]), "GetBucketLocation");
    // Nothing for POST /b without ?delete, nor for this method on this path at all.
    assert_eq!(
        op_of(m, "POST", "/b", "", &[]),
        "error 404 UnknownOperation"
    );
    assert_eq!(
        op_of(m, "DELETE", "/", "", &[]),
        "error 405 MethodNotAllowed"
    );
    assert_eq!(
        op_of(m, "PATCH", "/b/k", "", &[]),
        "error 405 MethodNotAllowed"
    );
    // A bare GET of a bucket is the v1 listing.
    assert_eq!(op_of(m, "GET", "/b", "", &[]), "ListObjects");
}

/// S3's operations that share PutObject's template are told apart by required members.
#[test]
fn required_query_and_header_members_select_operations() {
    let text = r#"{
      "metadata": {"apiVersion": "2006-03-01", "protocol": "rest-xml", "serviceId": "S3", "endpointPrefix": "s3"},
      "operations": {
        "CopyObject": {"name": "CopyObject", "http": {"method": "PUT", "requestUri": "/{Bucket}/{Key+}"}, "input": {"shape": "CopyIn"}},
        "ListObjects": {"name": "ListObjects", "http": {"method": "GET", "requestUri": "/{Bucket}"}, "input": {"shape": "BucketIn"}},
        "ListObjectsV2": {"name": "ListObjectsV2", "http": {"method": "GET", "requestUri": "/{Bucket}?list-type=2"}, "input": {"shape": "BucketIn"}},
        "PutObject": {"name": "PutObject", "http": {"method": "PUT", "requestUri": "/{Bucket}/{Key+}"}, "input": {"shape": "ObjIn"}},
        "UploadPart": {"name": "UploadPart", "http": {"method": "PUT", "requestUri": "/{Bucket}/{Key+}"}, "input": {"shape": "PartIn"}},
        "UploadPartCopy": {"name": "UploadPartCopy", "http": {"method": "PUT", "requestUri": "/{Bucket}/{Key+}"}, "input": {"shape": "PartCopyIn"}},
        "Under": {"name": "Under", "http": {"method": "GET", "requestUri": "/{Bucket}/special/{Key+}/end"}, "input": {"shape": "ObjIn"}}
      },
      "shapes": {
        "S": {"type": "string"},
        "I": {"type": "integer"},
        "BucketIn": {"type": "structure", "required": ["Bucket"], "members": {
          "Bucket": {"shape": "S", "location": "uri", "locationName": "Bucket"},
          "Extra": {"shape": "M", "location": "querystring"}}},
        "M": {"type": "map", "key": {"shape": "S"}, "value": {"shape": "S"}},
        "ObjIn": {"type": "structure", "required": ["Bucket", "Key"], "members": {
          "Bucket": {"shape": "S", "location": "uri", "locationName": "Bucket"},
          "Key": {"shape": "S", "location": "uri", "locationName": "Key"}}},
        "CopyIn": {"type": "structure", "required": ["Bucket", "Key", "CopySource"], "members": {
          "Bucket": {"shape": "S", "location": "uri", "locationName": "Bucket"},
          "Key": {"shape": "S", "location": "uri", "locationName": "Key"},
          "CopySource": {"shape": "S", "location": "header", "locationName": "x-amz-copy-source"}}},
        "PartIn": {"type": "structure", "required": ["Bucket", "Key", "PartNumber", "UploadId"], "members": {
          "Bucket": {"shape": "S", "location": "uri", "locationName": "Bucket"},
          "Key": {"shape": "S", "location": "uri", "locationName": "Key"},
          "PartNumber": {"shape": "I", "location": "querystring", "locationName": "partNumber"},
          "UploadId": {"shape": "S", "location": "querystring", "locationName": "uploadId"}}},
        "PartCopyIn": {"type": "structure", "required": ["Bucket", "Key", "PartNumber", "UploadId", "CopySource"], "members": {
          "Bucket": {"shape": "S", "location": "uri", "locationName": "Bucket"},
          "Key": {"shape": "S", "location": "uri", "locationName": "Key"},
          "CopySource": {"shape": "S", "location": "header", "locationName": "x-amz-copy-source"},
          "PartNumber": {"shape": "I", "location": "querystring", "locationName": "partNumber"},
          "UploadId": {"shape": "S", "location": "querystring", "locationName": "uploadId"}}}
      }
    }"#;
    let m = ServiceModel::parse("s3-routing-test", text).expect("model");
    let copy = [("x-amz-copy-source", "/src/key")];
    assert_eq!(op_of(&m, "PUT", "/b/k", "", &[]), "PutObject");
    assert_eq!(op_of(&m, "PUT", "/b/k", "", &copy), "CopyObject");
    assert_eq!(
        op_of(&m, "PUT", "/b/k", "partNumber=1&uploadId=u", &[]),
        "UploadPart"
    );
    assert_eq!(
        op_of(&m, "PUT", "/b/k", "partNumber=1&uploadId=u", &copy),
        "UploadPartCopy"
    );
    assert_eq!(op_of(&m, "PUT", "/b/k", "uploadId=u", &[]), "PutObject");
    assert_eq!(op_of(&m, "GET", "/b", "list-type=2", &[]), "ListObjectsV2");
    assert_eq!(op_of(&m, "GET", "/b", "list-type=1", &[]), "ListObjects");
    assert_eq!(op_of(&m, "GET", "/b/special/x/y/end", "", &[]), "Under");

    let (_, input) =
        call(&m, "PUT", "/b/k", "partNumber=3&uploadId=u", &copy, b"").expect("decodes");
    assert_eq!(
        input,
        json!({"Bucket": "b", "Key": "k", "CopySource": "/src/key", "PartNumber": 3, "UploadId": "u"})
    );
    let (_, input) = call(&m, "GET", "/b/special/x/y/end", "", &[], b"").expect("decodes");
    assert_eq!(input, json!({"Bucket": "b", "Key": "x/y"}));
    // A querystring map takes what no member or template literal claims.
    let (_, input) = call(&m, "GET", "/b", "list-type=1&a=1&b=2&a=3", &[], b"").expect("decodes");
    assert_eq!(
        input,
        json!({"Bucket": "b", "Extra": {"list-type": "1", "a": "1", "b": "2"}})
    );
    let (_, input) = call(&m, "GET", "/b", "list-type=2&a=1", &[], b"").expect("decodes");
    assert_eq!(input, json!({"Bucket": "b", "Extra": {"a": "1"}}));
}

#[test]
fn s3_delete_objects_xml_payload() {
    let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a.txt</Key></Object><Object><Key>b &amp; c</Key><VersionId>v2</VersionId></Object><Quiet>true</Quiet></Delete>"#;
    let (op, input) = call(
        s3(),
        "POST",
        "/b",
        "delete",
        &[
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("x-amz-bypass-governance-retention", "true"),
        ],
        body,
    )
    .expect("decodes");
    assert_eq!(op, "DeleteObjects");
    assert_eq!(
        input,
        json!({
            "Bucket": "b",
            "BypassGovernanceRetention": true,
            "Delete": {
                "Objects": [{"Key": "a.txt"}, {"Key": "b & c", "VersionId": "v2"}],
                "Quiet": true,
            },
        })
    );
    let bad = call(s3(), "POST", "/b", "delete", &[], b"<Delete><Object>").expect_err("malformed");
    assert_eq!((bad.code.as_str(), bad.status), ("MalformedXML", 400));
}

#[test]
fn s3_put_bucket_tagging_xml_payload() {
    let body = br#"<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>env</Key><Value>prod</Value></Tag><Tag><Key>team</Key><Value></Value></Tag></TagSet></Tagging>"#;
    let (op, input) = call(
        s3(),
        "PUT",
        "/b",
        "tagging",
        &[("content-md5", "abc=")],
        body,
    )
    .expect("decodes");
    assert_eq!(op, "PutBucketTagging");
    assert_eq!(
        input,
        json!({
            "Bucket": "b",
            "ContentMD5": "abc=",
            "Tagging": {"TagSet": [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": ""}]},
        })
    );
    // CreateBucket's configuration is optional: an empty body leaves it out.
    let (op, input) =
        call(s3(), "PUT", "/b", "", &[("x-amz-acl", "private")], b"").expect("decodes");
    assert_eq!(op, "CreateBucket");
    assert_eq!(input, json!({"Bucket": "b", "ACL": "private"}));
    let body = br#"<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>"#;
    let (_, input) = call(s3(), "PUT", "/b", "", &[], body).expect("decodes");
    assert_eq!(
        input,
        json!({"Bucket": "b", "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}})
    );
}

#[test]
fn route53_change_resource_record_sets_xml_body() {
    let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Comment>c</Comment><Changes><Change><Action>UPSERT</Action><ResourceRecordSet><Name>www.example.com.</Name><Type>A</Type><TTL>300</TTL><ResourceRecords><ResourceRecord><Value>10.0.0.1</Value></ResourceRecord><ResourceRecord><Value>10.0.0.2</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"#;
    let (op, input) = call(
        route53(),
        "POST",
        "/2013-04-01/hostedzone/Z123/rrset/",
        "",
        &[],
        body,
    )
    .expect("decodes");
    assert_eq!(op, "ChangeResourceRecordSets");
    assert_eq!(
        input,
        json!({
            "HostedZoneId": "Z123",
            "ChangeBatch": {
                "Comment": "c",
                "Changes": [{
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": "www.example.com.",
                        "Type": "A",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": "10.0.0.1"}, {"Value": "10.0.0.2"}],
                    },
                }],
            },
        })
    );
    let (op, input) = call(
        route53(),
        "GET",
        "/2013-04-01/hostedzone/Z123/rrset",
        "maxitems=10&name=www.example.com.&type=A",
        &[],
        b"",
    )
    .expect("decodes");
    assert_eq!(op, "ListResourceRecordSets");
    assert_eq!(
        input,
        json!({"HostedZoneId": "Z123", "MaxItems": "10", "StartRecordName": "www.example.com.", "StartRecordType": "A"})
    );
    assert_eq!(
        op_of(route53(), "GET", "/2013-04-01/hostedzone/Z1", "", &[]),
        "GetHostedZone"
    );
    assert_eq!(
        op_of(route53(), "DELETE", "/2013-04-01/hostedzone/Z1", "", &[]),
        "DeleteHostedZone"
    );
    assert_eq!(
        op_of(route53(), "GET", "/2013-04-01/hostedzone", "", &[]),
        "ListHostedZones"
    );
    assert_eq!(
        op_of(route53(), "DELETE", "/2013-04-01/hostedzone", "", &[]),
        "error 405 MethodNotAllowed"
    );
    assert_eq!(
        op_of(route53(), "GET", "/2013-04-01/nothing", "", &[]),
        "error 404 UnknownOperation"
    );
    let bad = call(route53(), "POST", "/2013-04-01/hostedzone", "", &[], b"<x").expect_err("bad");
    assert_eq!(bad.status, 400);
}

#[test]
fn glacier_rest_json_requests() {
    let (op, input) = call(glacier(), "PUT", "/-/vaults/my-vault", "", &[], b"").expect("decodes");
    assert_eq!(op, "CreateVault");
    assert_eq!(input, json!({"accountId": "-", "vaultName": "my-vault"}));
    let (op, input) = call(
        glacier(),
        "GET",
        "/-/vaults",
        "limit=10&marker=m1",
        &[],
        b"",
    )
    .expect("decodes");
    assert_eq!(op, "ListVaults");
    assert_eq!(
        input,
        json!({"accountId": "-", "limit": "10", "marker": "m1"})
    );
    let (op, input) = call(
        glacier(),
        "POST",
        "/-/vaults/v/tags",
        "operation=add",
        &[("content-type", "application/json")],
        br#"{"Tags": {"a": "1", "b": "2"}}"#,
    )
    .expect("decodes");
    assert_eq!(op, "AddTagsToVault");
    assert_eq!(
        input,
        json!({"accountId": "-", "vaultName": "v", "Tags": {"a": "1", "b": "2"}})
    );
    let bad = call(
        glacier(),
        "POST",
        "/-/vaults/v/tags",
        "operation=add",
        &[],
        b"{",
    )
    .expect_err("bad");
    assert_eq!(
        (bad.code.as_str(), bad.status),
        ("SerializationException", 400)
    );
    assert_eq!(
        op_of(glacier(), "GET", "/-/vaults/v/tags", "", &[]),
        "ListTagsForVault"
    );
    assert_eq!(
        op_of(glacier(), "POST", "/-/vaults/v/tags", "", &[]),
        "error 404 UnknownOperation"
    );
}

#[test]
fn s3_outputs_headers_and_blob_payload() {
    let response = encode_output(
        s3(),
        Protocol::RestXml,
        "GetObject",
        &json!({
            "Body": "aGVsbG8=",
            "ContentType": "text/plain",
            "ContentLength": 5,
            "ETag": "\"5d41402abc4b2a76b9719d911017c592\"",
            "LastModified": 1700000000,
            "Metadata": {"color": "blue"},
            "DeleteMarker": false,
            "TagCount": 2,
        }),
        "req-1",
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    assert_eq!(header(&response, "Content-Type"), Some("text/plain"));
    assert_eq!(header(&response, "Content-Length"), Some("5"));
    assert_eq!(
        header(&response, "Last-Modified"),
        Some("Tue, 14 Nov 2023 22:13:20 GMT")
    );
    assert_eq!(header(&response, "x-amz-meta-color"), Some("blue"));
    assert_eq!(header(&response, "x-amz-delete-marker"), Some("false"));
    assert_eq!(header(&response, "x-amz-tagging-count"), Some("2"));
    assert_eq!(header(&response, "x-amz-request-id"), Some("req-1"));
    assert!(header(&response, "x-amz-id-2").is_some());

    let response = encode_output(
        s3(),
        Protocol::RestXml,
        "PutObject",
        &json!({"ETag": "\"e\"", "VersionId": "v1"}),
        "r",
    );
    assert_eq!((response.status, response.body.len()), (200, 0));
    assert_eq!(header(&response, "ETag"), Some("\"e\""));
    assert_eq!(header(&response, "x-amz-version-id"), Some("v1"));
    assert_eq!(header(&response, "Content-Type"), None);

    let response = encode_output(s3(), Protocol::RestXml, "DeleteBucket", &json!({}), "r");
    assert_eq!((response.status, response.body.len()), (204, 0));
}

#[test]
fn s3_xml_outputs_use_aws_document_elements() {
    let response = encode_output(
        s3(),
        Protocol::RestXml,
        "ListObjectsV2",
        &json!({
            "Name": "b",
            "Prefix": "",
            "KeyCount": 1,
            "MaxKeys": 1000,
            "IsTruncated": false,
            "Contents": [{"Key": "a<b", "Size": 3, "LastModified": 1700000000, "ETag": "\"e\""}],
        }),
        "r",
    );
    assert_eq!(header(&response, "Content-Type"), Some("application/xml"));
    let text = body_text(&response);
    assert!(
        text.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "<Contents><ETag>\"e\"</ETag><Key>a&lt;b</Key><LastModified>2023-11-14T22:13:20"
        ),
        "{text}"
    );
    assert!(text.contains("<Size>3</Size>"), "{text}");
    assert!(text.contains("<IsTruncated>false</IsTruncated>"), "{text}");
    assert!(text.ends_with("</ListBucketResult>"), "{text}");

    let response = encode_output(
        s3(),
        Protocol::RestXml,
        "GetBucketTagging",
        &json!({"TagSet": [{"Key": "k", "Value": "v"}]}),
        "r",
    );
    assert_eq!(
        body_text(&response),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Tagging xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"
    );

    let response = encode_output(s3(), Protocol::RestXml, "ListBuckets", &json!({}), "r");
    assert_eq!(
        body_text(&response),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"></ListAllMyBucketsResult>"
    );

    let response = encode_output(
        s3(),
        Protocol::RestXml,
        "HeadBucket",
        &json!({"BucketRegion": "us-east-1"}),
        "r",
    );
    assert_eq!(header(&response, "x-amz-bucket-region"), Some("us-east-1"));
    assert!(response.body.is_empty());
}

#[test]
fn route53_and_glacier_outputs() {
    let response = encode_output(
        route53(),
        Protocol::RestXml,
        "CreateHostedZone",
        &json!({
            "Location": "https://route53.amazonaws.com/2013-04-01/hostedzone/Z1",
            "HostedZone": {"Id": "/hostedzone/Z1", "Name": "example.com.", "CallerReference": "c"},
            "ChangeInfo": {"Id": "/change/C1", "Status": "INSYNC", "SubmittedAt": 0},
            "DelegationSet": {"NameServers": ["ns1.nimbus.local"]},
        }),
        "r53",
    );
    assert_eq!(response.status, 201);
    assert_eq!(
        header(&response, "Location"),
        Some("https://route53.amazonaws.com/2013-04-01/hostedzone/Z1")
    );
    assert_eq!(header(&response, "x-amzn-RequestId"), Some("r53"));
    let text = body_text(&response);
    assert!(
        text.contains(
            "<CreateHostedZoneResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">"
        ),
        "{text}"
    );
    assert!(
        text.contains("<NameServers><NameServer>ns1.nimbus.local</NameServer></NameServers>"),
        "{text}"
    );
    assert!(text.contains("<SubmittedAt>1970-01-01T00:00:00"), "{text}");
    assert!(!text.contains("<Location>"), "{text}");

    let response = encode_output(
        glacier(),
        Protocol::RestJson,
        "CreateVault",
        &json!({"location": "/123/vaults/v"}),
        "g1",
    );
    assert_eq!(response.status, 201);
    assert_eq!(header(&response, "Location"), Some("/123/vaults/v"));
    assert_eq!(header(&response, "x-amzn-RequestId"), Some("g1"));
    assert!(response.body.is_empty());

    let response = encode_output(
        glacier(),
        Protocol::RestJson,
        "ListVaults",
        &json!({"VaultList": [{"VaultName": "v", "NumberOfArchives": 0, "SizeInBytes": 0}]}),
        "g2",
    );
    assert_eq!(header(&response, "Content-Type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&response.body).expect("json");
    assert_eq!(
        body,
        json!({"VaultList": [{"VaultName": "v", "NumberOfArchives": 0, "SizeInBytes": 0}]})
    );
}

#[test]
fn errors_by_protocol_and_model() {
    let error =
        AwsError::new("NoSuchKey", "The specified key does not exist.").with_field("Key", "a&b");
    let response = encode_error(s3(), Protocol::RestXml, &error, "rid");
    assert_eq!(response.status, 404);
    assert_eq!(header(&response, "Content-Type"), Some("application/xml"));
    assert_eq!(header(&response, "x-amz-request-id"), Some("rid"));
    let text = body_text(&response);
    assert!(
        text.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>a&amp;b</Key><RequestId>rid</RequestId><HostId>"
        ),
        "{text}"
    );

    // An error outside the model keeps its own status.
    let error = AwsError::new(
        "BucketNotEmpty",
        "The bucket you tried to delete is not empty",
    )
    .with_status(409);
    assert_eq!(
        encode_error(s3(), Protocol::RestXml, &error, "r").status,
        409
    );

    let error = AwsError::new("NoSuchHostedZone", "No hosted zone found with ID: Z1");
    let response = encode_error(route53(), Protocol::RestXml, &error, "rid");
    assert_eq!(response.status, 404);
    assert_eq!(
        body_text(&response),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>Sender</Type><Code>NoSuchHostedZone</Code><Message>No hosted zone found with ID: Z1</Message></Error><RequestId>rid</RequestId></ErrorResponse>"
    );
    let error = AwsError::internal("boom");
    let text = body_text(&encode_error(route53(), Protocol::RestXml, &error, "r")).to_string();
    assert!(
        text.contains("<Type>Receiver</Type><Code>InternalFailure</Code>"),
        "{text}"
    );

    let error =
        AwsError::new("ResourceNotFoundException", "Vault not found").with_field("type", "Client");
    let response = encode_error(glacier(), Protocol::RestJson, &error, "g");
    assert_eq!(response.status, 404);
    assert_eq!(
        header(&response, "x-amzn-ErrorType"),
        Some("ResourceNotFoundException")
    );
    assert_eq!(header(&response, "x-amzn-RequestId"), Some("g"));
    assert_eq!(header(&response, "Content-Type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&response.body).expect("json");
    assert_eq!(
        body,
        json!({"code": "ResourceNotFoundException", "message": "Vault not found", "type": "Client"})
    );
}

#[test]
fn unknown_operation_output_is_an_internal_error() {
    let response = encode_output(s3(), Protocol::RestXml, "NoSuchOperation", &json!({}), "r");
    assert_eq!(response.status, 500);
}

#[test]
fn plans_are_cached_per_model() {
    let a = super::plan_for(s3());
    let b = super::plan_for(s3());
    assert!(std::ptr::eq(a, b));
    assert!(!std::ptr::eq(a, super::plan_for(route53())));
    let routes = super::plan::describe_routes(a);
    assert!(routes
        .iter()
        .any(|(m, _, ops)| m == "GET" && ops.iter().any(|o| o == "GetBucketTagging")));
}
