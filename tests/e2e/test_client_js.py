"""The AWS SDK for JavaScript v3 (latest @aws-sdk/client-s3, lib-storage,
s3-request-presigner, client-sqs from npm, installed by scripts/test into
tests/e2e/js/node_modules) with its default checksum behaviour: js/clients.mjs
runs a lib-storage multipart upload, PutObject with a Buffer and with a stream
(aws-chunked with a CRC32 trailer), a presigned GET fetched with fetch(), and an
SQS round trip; this test checks the JSON it prints. Runs against `--auth open`
and `--auth enforce`.
"""
import base64
import json
import os
import shutil
import subprocess
import zlib

import pytest

from client_helpers import *  # noqa: F401,F403

JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")


def crc32_b64(data):
    return base64.b64encode((zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")).decode()


@pytest.fixture
def node():
    exe = shutil.which("node")
    if not exe:
        pytest.skip("node is not installed")
    for pkg in ("client-s3", "client-sqs", "lib-storage", "s3-request-presigner"):
        if not os.path.isdir(os.path.join(JS, "node_modules", "@aws-sdk", pkg)):
            pytest.skip(f"@aws-sdk/{pkg} is not installed (scripts/test runs npm install in tests/e2e/js)")
    return exe


def test_js_sdk_v3(node, auth_server):
    p = subprocess.run([node, os.path.join(JS, "clients.mjs"), auth_server.endpoint],
                       capture_output=True, text=True, timeout=180, cwd=JS)
    assert p.stdout.strip(), p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert "error" not in out, f"{out}\n{p.stderr}"
    assert p.returncode == 0, p.stderr

    mp = out["multipart"]
    assert mp["got_sha256"] == mp["sent_sha256"]
    assert mp["length"] == 12 * 1024 * 1024
    assert mp["etag"].strip('"').endswith("-3")
    assert mp["content_type"] == "application/x-test"
    # Each part carried its CRC32; the object's checksum is S3's composite of them.
    assert mp["checksum_crc32"] == mp["composite_crc32"] and mp["checksum_type"] == "COMPOSITE"
    assert all(p["crc32"] for p in out["sent"]["UploadPartCommand"])

    put = out["put"]
    assert put["small_crc32"] == crc32_b64(b"hello from the JavaScript SDK\n")
    assert put["stream_got_sha256"] == put["stream_sent_sha256"]
    assert put["stream_crc32"] == put["stream_expected_crc32"] == put["stream_get_crc32"]
    # The stream went aws-chunked with the CRC32 in a trailer, the SDK's default.
    streamed = out["sent"]["PutObjectCommand"][1]
    assert streamed == {"content_sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "content_encoding": "aws-chunked",
                        "trailer": "x-amz-checksum-crc32", "crc32": None}

    assert out["presigned"] == {"status": 200, "body": "hello from the JavaScript SDK\n",
                                "url_has_signature": True}
    assert out["keys"] == ["big.bin", "small.txt", "stream.bin"]
    assert out["deleted"] == ["small.txt", "stream.bin"]
    assert out["sent"]["DeleteObjectsCommand"][0]["crc32"]
    assert out["bucket_deleted"] is True

    sqs = out["sqs"]
    assert sqs["queue_url"].endswith("/js-" + sqs["queue_url"].rsplit("/js-", 1)[1])
    assert sqs["received_id"] == sqs["message_id"]
    assert sqs["body"] == "hello queue" and sqs["attribute"] == "greeting"
    assert (sqs["visible_after_delete"], sqs["in_flight_after_delete"]) == ("0", "0")
