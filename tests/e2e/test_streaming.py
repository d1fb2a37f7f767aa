"""aws-chunked request bodies as SDKs stream them: signed chunks (verified under
--auth enforce) and unsigned payloads with trailing checksums. The edge unwraps
them for every service, so a plain STS form POST carries them here."""
import base64
import datetime
import hashlib
import hmac
import urllib.parse
import zlib

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
import requests

from conftest import Server

KEY, SECRET, REGION = "AKIAROOTEXAMPLE00001", "root-secret", "us-east-1"
FORM = urllib.parse.urlencode({"Action": "GetCallerIdentity", "Version": "2011-06-15"}).encode()
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


@pytest.fixture(scope="module")
def enforced():
    s = Server("--auth", "enforce", "--root-access-key-id", KEY, "--root-secret-access-key", SECRET).start()
    yield s
    s.stop()


def hmac256(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256)


def seed_request(endpoint, content_sha, extra_headers, secret):
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "aws-chunked",
               "X-Amz-Content-SHA256": content_sha, "X-Amz-Decoded-Content-Length": str(len(FORM))}
    headers.update(extra_headers)
    req = botocore.awsrequest.AWSRequest(method="POST", url=endpoint + "/", data=b"", headers=headers)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(KEY, secret), "sts", REGION).add_auth(req)
    return dict(req.prepare().headers)


def signed_chunks(headers, secret, chunk_size=16, tamper=False):
    amz_date = headers["X-Amz-Date"]
    date = amz_date[:8]
    scope = f"{date}/{REGION}/sts/aws4_request"
    seed = headers["Authorization"].split("Signature=")[1]
    key = ("AWS4" + secret).encode()
    for part in (date, REGION, "sts", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    body, prev = b"", seed
    pieces = [FORM[i:i + chunk_size] for i in range(0, len(FORM), chunk_size)] + [b""]
    for data in pieces:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA,
                         hashlib.sha256(data).hexdigest()])
        prev = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        sent = data.replace(b"Caller", b"Callex") if tamper else data
        body += f"{len(data):x};chunk-signature={prev}\r\n".encode() + sent + b"\r\n"
    return body


@pytest.mark.parametrize("tamper,status", [(False, 200), (True, 403)])
def test_signed_chunks_verified(enforced, tamper, status):
    headers = seed_request(enforced.endpoint, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", {}, SECRET)
    body = signed_chunks(headers, SECRET, tamper=tamper)
    r = requests.post(enforced.endpoint + "/", headers=headers, data=body)
    assert r.status_code == status, r.text
    if status == 200:
        assert "<Account>000000000000</Account>" in r.text
    else:
        assert "SignatureDoesNotMatch" in r.text


def trailer_body(checksum):
    return (f"{len(FORM):x}\r\n".encode() + FORM + b"\r\n0\r\n"
            + f"x-amz-checksum-crc32:{checksum}\r\n\r\n".encode())


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_unsigned_payload_with_trailing_checksum(endpoint, enforced):
    extra = {"X-Amz-Trailer": "x-amz-checksum-crc32"}
    headers = seed_request(endpoint, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", extra, SECRET)
    r = requests.post(endpoint + "/", headers=headers, data=trailer_body(crc32_b64(FORM)))
    assert r.status_code == 200, r.text
    assert "<GetCallerIdentityResult>" in r.text
    r = requests.post(endpoint + "/", headers=headers, data=trailer_body(crc32_b64(b"other")))
    assert r.status_code == 400, r.text
    assert "BadDigest" in r.text or "InvalidRequest" in r.text
    # Outside S3 the signature must cover the body: under enforce an unsigned payload is refused.
    headers = seed_request(enforced.endpoint, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", extra, SECRET)
    r = requests.post(enforced.endpoint + "/", headers=headers, data=trailer_body(crc32_b64(FORM)))
    assert r.status_code == 403 and "SignatureDoesNotMatch" in r.text, r.text
