"""Presigned S3 URLs used with plain HTTP (`requests`): SigV4 from boto3 and from
`aws s3 presign`, a SigV2 query-string URL built by hand, presigned PUT, and
expiry (enforced by nimbus even in its default "open" auth mode, which accepts
any well-formed signature).
"""
import base64
import hashlib
import hmac
import time
import urllib.parse

import pytest
import requests

from s3_helpers import *  # noqa: F401,F403  (fixtures s3, s3_in, bucket and helpers)

EXPIRY = "does not enforce presigned URL expiry"


@pytest.fixture
def obj(s3, bucket):
    s3.put_object(Bucket=bucket, Key="dir/file name+1.txt", Body=b"presigned body", ContentType="text/plain")
    return bucket, "dir/file name+1.txt"


@pytest.fixture
def s3v4(endpoint):
    return make_s3(endpoint, signature_version="s3v4")


def assert_expired(r):
    assert r.status_code == 403, r.text
    assert "<Code>AccessDenied</Code>" in r.text
    assert "Request has expired" in r.text
    assert r.headers["Content-Type"].startswith("application/xml")


# --- SigV4 ----------------------------------------------------------------------

def test_presigned_get_sigv4(s3v4, obj):
    bucket, key = obj
    url = s3v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert q["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert q["X-Amz-Expires"] == ["300"]
    assert q["X-Amz-Credential"][0].startswith("test/")
    r = requests.get(url)
    assert r.status_code == 200, r.text
    assert r.content == b"presigned body"
    assert r.headers["ETag"] == f'"{md5_hex(b"presigned body")}"'
    assert r.headers["Content-Type"] == "text/plain"


@moto_gap("ignores response-* overrides")
def test_presigned_get_response_overrides(s3v4, obj):
    bucket, key = obj
    url = s3v4.generate_presigned_url("get_object", Params={
        "Bucket": bucket, "Key": key,
        "ResponseContentType": "application/x-override",
        "ResponseContentDisposition": 'attachment; filename="x.txt"',
        "ResponseCacheControl": "no-store",
    }, ExpiresIn=300)
    r = requests.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/x-override"
    assert r.headers["Content-Disposition"] == 'attachment; filename="x.txt"'
    assert r.headers["Cache-Control"] == "no-store"


def test_presigned_head_and_missing_key(s3v4, obj):
    bucket, key = obj
    url = s3v4.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    r = requests.head(url)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(b"presigned body"))
    url = s3v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "nope"}, ExpiresIn=300)
    r = requests.get(url)
    assert r.status_code == 404
    assert "<Code>NoSuchKey</Code>" in r.text


@moto_gap(EXPIRY)
def test_presigned_get_sigv4_expired(s3v4, obj):
    bucket, key = obj
    url = s3v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=1)
    time.sleep(2)
    assert_expired(requests.get(url))


@moto_gap("does not validate X-Amz-Expires")
def test_presigned_sigv4_expires_over_a_week(s3v4, obj):
    bucket, key = obj
    url = s3v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                      ExpiresIn=604801)
    r = requests.get(url)
    assert r.status_code == 400
    assert "<Code>AuthorizationQueryParametersError</Code>" in r.text


def test_presigned_put(s3v4, s3, bucket):
    url = s3v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up/loaded.bin"},
                                      ExpiresIn=300)
    data = bytes(range(256)) * 40
    r = requests.put(url, data=data)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == f'"{md5_hex(data)}"'
    g = s3.get_object(Bucket=bucket, Key="up/loaded.bin")
    assert g["Body"].read() == data
    assert g["ContentLength"] == len(data)


def test_cli_presign(aws, obj):
    bucket, key = obj
    url = aws("s3", "presign", f"s3://{bucket}/{key}", "--expires-in", "600")
    assert url.startswith("http://127.0.0.1:")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    # CLI v1 signs with SigV2 query parameters unless configured for s3v4; accept both.
    if "X-Amz-Signature" in q:
        assert q["X-Amz-Expires"] == ["600"]
    else:
        assert q["AWSAccessKeyId"] == ["test"] and q["Signature"]
        assert abs(int(q["Expires"][0]) - (time.time() + 600)) < 60
    r = requests.get(url)
    assert r.status_code == 200, r.text
    assert r.content == b"presigned body"


# --- SigV2 query string (legacy) -------------------------------------------------

def sigv2_url(endpoint, bucket, key, expires, secret="test", access_key="test"):
    resource = f"/{bucket}/{urllib.parse.quote(key)}"
    string_to_sign = f"GET\n\n\n{expires}\n{resource}"
    sig = base64.b64encode(hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()).decode()
    query = urllib.parse.urlencode({"AWSAccessKeyId": access_key, "Expires": str(expires), "Signature": sig})
    return f"{endpoint}{resource}?{query}"


def test_presigned_get_sigv2(endpoint, obj):
    bucket, key = obj
    r = requests.get(sigv2_url(endpoint, bucket, key, int(time.time()) + 300))
    assert r.status_code == 200, r.text
    assert r.content == b"presigned body"


@moto_gap(EXPIRY)
def test_presigned_get_sigv2_expired(endpoint, obj):
    bucket, key = obj
    url = sigv2_url(endpoint, bucket, key, int(time.time()) + 1)
    assert requests.get(url).status_code == 200
    time.sleep(2.1)
    assert_expired(requests.get(url))
    # Long past, too.
    assert_expired(requests.get(sigv2_url(endpoint, bucket, key, int(time.time()) - 3600)))


def test_cli_presign_sigv4(aws, obj, tmp_path):
    bucket, key = obj
    cfg = tmp_path / "config"
    cfg.write_text("[default]\ns3 =\n    signature_version = s3v4\n")
    url = aws("s3", "presign", f"s3://{bucket}/{key}", "--expires-in", "600",
              env={"AWS_CONFIG_FILE": str(cfg)})
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert q["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and q["X-Amz-Expires"] == ["600"]
    r = requests.get(url)
    assert r.status_code == 200, r.text
    assert r.content == b"presigned body"
