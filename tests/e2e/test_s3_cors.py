"""Bucket CORS: the PutBucketCors/GetBucketCors/DeleteBucketCors API, preflight
OPTIONS requests (answered without authentication, as browsers send them), and the
Access-Control-* headers S3 adds to ordinary requests that carry an Origin.
Header values and error texts are those S3 answers with.
"""
import pytest
import requests

from s3_helpers import *  # noqa: F401,F403  (fixtures s3, bucket and helpers)

VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
NOT_ALLOWED = ("CORSResponse: This CORS request is not allowed. This is usually because the evalution of "
               "Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers "
               "are not whitelisted by the resource's CORS spec.")
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
                "Access-Control-Max-Age", "Access-Control-Expose-Headers", "Access-Control-Allow-Credentials")

RULES = [
    {"AllowedOrigins": ["http://www.example.com"], "AllowedMethods": ["GET", "PUT"],
     "AllowedHeaders": ["x-amz-*", "content-type"], "ExposeHeaders": ["ETag", "x-amz-request-id"],
     "MaxAgeSeconds": 3000},
    {"AllowedOrigins": ["http://*.example.org"], "AllowedMethods": ["DELETE"]},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
]


def preflight(endpoint, bucket, key="obj.txt", origin=None, method=None, req_headers=None):
    h = {}
    if origin is not None:
        h["Origin"] = origin
    if method is not None:
        h["Access-Control-Request-Method"] = method
    if req_headers is not None:
        h["Access-Control-Request-Headers"] = req_headers
    path = f"{endpoint}/{bucket}/{key}" if key else f"{endpoint}/{bucket}"
    return requests.options(path, headers=h)


def assert_forbidden(r, message=NOT_ALLOWED):
    assert r.status_code == 403, r.text
    assert r.headers["Content-Type"].startswith("application/xml")
    assert "<Code>AccessForbidden</Code>" in r.text, r.text
    assert f"<Message>{message}</Message>" in r.text.replace("&apos;", "'"), r.text
    for h in CORS_HEADERS:
        assert h not in r.headers


@pytest.fixture
def cors_bucket(s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj.txt", Body=b"cors body", ContentType="text/plain")
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    return bucket


# --- configuration API -----------------------------------------------------------

def test_put_get_delete_bucket_cors(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=bucket)
    assert err(e) == ("NoSuchCORSConfiguration", 404)
    assert e.value.response["Error"]["Message"] == "The CORS configuration does not exist"
    r = s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    got = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got == RULES
    r = s3.delete_bucket_cors(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=bucket)
    assert err(e) == ("NoSuchCORSConfiguration", 404)
    # Deleting what is not there is fine.
    assert s3.delete_bucket_cors(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_put_bucket_cors_replaces(s3, bucket):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    one = [{"ID": "only", "AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": one})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == one


def test_invalid_method(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
            {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "PATCH"]}]})
    assert err(e) == ("InvalidRequest", 400)
    assert e.value.response["Error"]["Message"] == \
        "Found unsupported HTTP method in CORS config. Unsupported method is PATCH"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=bucket)
    assert err(e) == ("NoSuchCORSConfiguration", 404)


def test_invalid_configs(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": []})
    assert err(e) == ("MalformedXML", 400)
    with pytest.raises(ClientError) as e:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
            {"AllowedOrigins": ["http://*.*.example.com"], "AllowedMethods": ["GET"]}]})
    assert err(e) == ("InvalidRequest", 400)
    assert e.value.response["Error"]["Message"] == \
        'AllowedOrigin "http://*.*.example.com" can not have more than one wildcard.'
    with pytest.raises(ClientError) as e:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
            {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "ExposeHeaders": ["*"]}]})
    assert err(e) == ("InvalidRequest", 400)


# --- preflight -----------------------------------------------------------------------

def test_preflight_allowed(endpoint, cors_bucket):
    r = preflight(endpoint, cors_bucket, origin="http://www.example.com", method="PUT",
                  req_headers="content-type, x-amz-meta-a")
    assert r.status_code == 200, r.text
    assert r.content == b""
    assert r.headers["Access-Control-Allow-Origin"] == "http://www.example.com"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, PUT"
    assert r.headers["Access-Control-Allow-Headers"] == "content-type, x-amz-meta-a"
    assert r.headers["Access-Control-Max-Age"] == "3000"
    assert r.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Vary"] == VARY


def test_preflight_without_request_headers(endpoint, cors_bucket):
    r = preflight(endpoint, cors_bucket, origin="http://www.example.com", method="GET")
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "http://www.example.com"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, PUT"
    assert "Access-Control-Allow-Headers" not in r.headers


def test_preflight_on_bucket(endpoint, cors_bucket):
    r = preflight(endpoint, cors_bucket, key=None, origin="http://www.example.com", method="GET")
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "http://www.example.com"


def test_preflight_wildcard_origins(endpoint, cors_bucket):
    # "http://*.example.org": one wildcard, the caller's origin is echoed.
    r = preflight(endpoint, cors_bucket, origin="http://app.example.org", method="DELETE")
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "http://app.example.org"
    assert r.headers["Access-Control-Allow-Methods"] == "DELETE"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Access-Control-Max-Age" not in r.headers
    assert_forbidden(preflight(endpoint, cors_bucket, origin="https://app.example.org", method="DELETE"))
    # "*": any origin, answered with "*" and without credentials.
    r = preflight(endpoint, cors_bucket, origin="http://anything.test", method="HEAD")
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Allow-Methods"] == "HEAD"
    assert "Access-Control-Allow-Credentials" not in r.headers
    assert r.headers["Vary"] == VARY


def test_preflight_first_matching_rule_wins(endpoint, s3, bucket):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["http://a.test"], "AllowedMethods": ["GET"], "MaxAgeSeconds": 10},
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "POST"], "MaxAgeSeconds": 20},
    ]})
    r = preflight(endpoint, bucket, origin="http://a.test", method="GET")
    assert r.headers["Access-Control-Allow-Origin"] == "http://a.test"
    assert r.headers["Access-Control-Max-Age"] == "10"
    r = preflight(endpoint, bucket, origin="http://a.test", method="POST")
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert r.headers["Access-Control-Max-Age"] == "20"


def test_preflight_disallowed(endpoint, cors_bucket):
    # Origin no rule names.
    assert_forbidden(preflight(endpoint, cors_bucket, origin="http://evil.test", method="GET"))
    # Method the matching origin's rule does not allow.
    assert_forbidden(preflight(endpoint, cors_bucket, origin="http://www.example.com", method="DELETE"))
    # A requested header outside AllowedHeaders.
    assert_forbidden(preflight(endpoint, cors_bucket, origin="http://www.example.com", method="GET",
                               req_headers="x-custom"))
    # Origins compare exactly (scheme included).
    assert_forbidden(preflight(endpoint, cors_bucket, origin="https://www.example.com", method="GET"))


def test_preflight_allowed_headers_case_insensitive(endpoint, cors_bucket):
    r = preflight(endpoint, cors_bucket, origin="http://www.example.com", method="GET",
                  req_headers="X-Amz-Date, Content-Type")
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Headers"].lower() == "x-amz-date, content-type"


def test_preflight_without_cors_config(endpoint, s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj.txt", Body=b"x")
    r = preflight(endpoint, bucket, origin="http://www.example.com", method="PUT")
    assert_forbidden(r, message="CORSResponse: CORS is not enabled for this bucket.")


def test_preflight_after_delete_bucket_cors(endpoint, s3, cors_bucket):
    assert preflight(endpoint, cors_bucket, origin="http://www.example.com", method="GET").status_code == 200
    s3.delete_bucket_cors(Bucket=cors_bucket)
    r = preflight(endpoint, cors_bucket, origin="http://www.example.com", method="GET")
    assert r.status_code == 403
    assert "<Code>AccessForbidden</Code>" in r.text
    assert "CORS is not enabled for this bucket." in r.text


def test_preflight_without_origin(endpoint, cors_bucket):
    r = preflight(endpoint, cors_bucket, method="GET")
    assert r.status_code == 400, r.text
    assert "<Code>BadRequest</Code>" in r.text
    assert "<Message>Insufficient information. Origin request header needed.</Message>" in r.text


# --- actual requests -----------------------------------------------------------------

def test_get_with_origin_gets_cors_headers(endpoint, s3, cors_bucket):
    url = s3.generate_presigned_url("get_object", Params={"Bucket": cors_bucket, "Key": "obj.txt"})
    r = requests.get(url, headers={"Origin": "http://www.example.com"})
    assert r.status_code == 200, r.text
    assert r.content == b"cors body"
    assert r.headers["Access-Control-Allow-Origin"] == "http://www.example.com"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, PUT"
    assert r.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert r.headers["Access-Control-Max-Age"] == "3000"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Vary"] == VARY
    # Actual responses never carry Allow-Headers.
    assert "Access-Control-Allow-Headers" not in r.headers


def test_get_with_disallowed_origin_or_without_origin(endpoint, s3, cors_bucket):
    url = s3.generate_presigned_url("get_object", Params={"Bucket": cors_bucket, "Key": "obj.txt"})
    for headers in ({"Origin": "http://evil.test"}, {}):
        r = requests.get(url, headers=headers)
        assert r.status_code == 200, r.text
        assert r.content == b"cors body"
        for h in CORS_HEADERS:
            assert h not in r.headers, (headers, h)


def test_head_with_wildcard_origin(endpoint, s3, cors_bucket):
    url = s3.generate_presigned_url("head_object", Params={"Bucket": cors_bucket, "Key": "obj.txt"})
    r = requests.head(url, headers={"Origin": "http://somewhere.test"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Allow-Methods"] == "HEAD"
    assert "Access-Control-Allow-Credentials" not in r.headers


def test_boto3_request_with_origin(s3, cors_bucket):
    def add_origin(request, **_):
        request.headers["Origin"] = "http://www.example.com"

    s3.meta.events.register("before-sign.s3.GetObject", add_origin)
    try:
        r = s3.get_object(Bucket=cors_bucket, Key="obj.txt")
    finally:
        s3.meta.events.unregister("before-sign.s3.GetObject", add_origin)
    h = r["ResponseMetadata"]["HTTPHeaders"]
    assert h["access-control-allow-origin"] == "http://www.example.com"
    assert h["access-control-expose-headers"] == "ETag, x-amz-request-id"


def test_preflight_error_fields(endpoint, s3, cors_bucket):
    # S3's AccessForbidden names the method asked for and what was addressed.
    r = preflight(endpoint, cors_bucket, origin="http://evil.test", method="DELETE")
    assert r.status_code == 403
    assert "<Method>DELETE</Method>" in r.text, r.text
    assert "<ResourceType>OBJECT</ResourceType>" in r.text, r.text
    r = preflight(endpoint, cors_bucket, key=None, origin="http://evil.test", method="GET")
    assert r.status_code == 403
    assert "<Method>GET</Method>" in r.text, r.text
    assert "<ResourceType>BUCKET</ResourceType>" in r.text, r.text
    # Without a CORS configuration the refusal is about the bucket, even for a key.
    s3.delete_bucket_cors(Bucket=cors_bucket)
    r = preflight(endpoint, cors_bucket, origin="http://www.example.com", method="PUT")
    assert r.status_code == 403
    assert "<Method>PUT</Method>" in r.text, r.text
    assert "<ResourceType>BUCKET</ResourceType>" in r.text, r.text


def test_preflight_no_config_without_request_method(endpoint, s3, bucket):
    # Origin but no Access-Control-Request-Method, on a bucket without CORS.
    s3.put_object(Bucket=bucket, Key="obj.txt", Body=b"x")
    r = preflight(endpoint, bucket, origin="http://www.example.com")
    assert_forbidden(r, message="CORSResponse: CORS is not enabled for this bucket.")
    assert "<Method>OPTIONS</Method>" in r.text, r.text
