"""Shared pieces of the S3 e2e suites (test_s3_*.py).

Fixtures: `s3` (a boto3 client, path-style addressing, us-east-1), `s3_in(region)`
(a client for another region), `bucket` (a fresh, uniquely named bucket that is
emptied and deleted afterwards). Import them into a test module with
`from s3_helpers import *`.

The suite is written for nimbus but can be pointed at a peer emulator with
NIMBUS_E2E_ENDPOINT=http://...; on moto (NIMBUS_E2E_PEER=moto, or detected through
moto's /moto-api/) the checks moto does not implement are skipped (they are marked
`moto_gap`, each with its reason) and stay strict for nimbus.
"""
import base64
import hashlib
import os
import urllib.request
import uuid
import zlib

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import REGION

__all__ = [
    "ON_MOTO", "moto_gap", "bucket_name", "code", "status", "err", "make_s3",
    "empty_and_delete", "s3", "s3_in", "bucket", "md5_hex", "b64", "crc32_b64",
    "crc32c_b64", "crc64nvme_b64", "sha1_b64", "sha256_b64", "ClientError", "REGION",
]

def _detect_peer():
    """$NIMBUS_E2E_PEER, or "moto" if $NIMBUS_E2E_ENDPOINT answers moto's own API."""
    if os.environ.get("NIMBUS_E2E_PEER"):
        return os.environ["NIMBUS_E2E_PEER"].lower()
    endpoint = os.environ.get("NIMBUS_E2E_ENDPOINT")
    if endpoint:
        try:
            with urllib.request.urlopen(endpoint.rstrip("/") + "/moto-api/", timeout=3) as r:
                if r.status == 200 and b"moto" in r.read(65536).lower():
                    return "moto"
        except (OSError, ValueError):
            pass
    return ""


PEER = _detect_peer()
ON_MOTO = PEER == "moto"


def moto_gap(reason):
    """Skip on moto (it does not implement this); strict everywhere else."""
    return pytest.mark.skipif(ON_MOTO, reason=f"moto: {reason}")


def bucket_name(prefix="b"):
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def code(exc):
    """Error code of a pytest.raises(ClientError) excinfo (or a ClientError)."""
    e = getattr(exc, "value", exc)
    return e.response["Error"]["Code"]


def status(exc):
    e = getattr(exc, "value", exc)
    return e.response["ResponseMetadata"]["HTTPStatusCode"]


def err(exc):
    e = getattr(exc, "value", exc)
    return code(e), status(e)


def make_s3(endpoint, region=REGION, **cfg):
    s3cfg = dict(cfg.pop("s3", {}))
    s3cfg.setdefault("addressing_style", "path")
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=region,
        aws_access_key_id="test", aws_secret_access_key="test",
        config=botocore.config.Config(retries={"max_attempts": 1}, s3=s3cfg, **cfg))


def _delete_many(s3, name, objs):
    for i in range(0, len(objs), 1000):
        chunk = objs[i:i + 1000]
        try:
            s3.delete_objects(Bucket=name, Delete={"Objects": chunk, "Quiet": True})
        except ClientError:  # e.g. a key XML 1.0 cannot carry: one by one instead
            for o in chunk:
                s3.delete_object(Bucket=name, **o)


def empty_and_delete(s3, name):
    """Best-effort teardown: versions, delete markers, uploads, then the bucket."""
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
            _delete_many(s3, name, [{"Key": v["Key"], "VersionId": v["VersionId"]}
                                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            _delete_many(s3, name, [{"Key": o["Key"]} for o in page.get("Contents", [])])
        for u in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=u["Key"], UploadId=u["UploadId"])
        s3.delete_bucket(Bucket=name)
    except ClientError:
        pass


@pytest.fixture(scope="session")
def s3(endpoint):
    return make_s3(endpoint)


@pytest.fixture
def s3_in(endpoint):
    """s3_in("eu-west-1") -> a client whose requests are signed for that region."""
    return lambda region, **cfg: make_s3(endpoint, region, **cfg)


@pytest.fixture
def bucket(s3):
    name = bucket_name()
    r = s3.create_bucket(Bucket=name)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    yield name
    empty_and_delete(s3, name)


# --- independent checksum implementations ------------------------------------

def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def b64(raw):
    return base64.b64encode(raw).decode()


def crc32_b64(data):
    return b64((zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big"))


def _crc_table(poly, width):
    mask = (1 << width) - 1
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c & mask)
    return table


_CRC32C = _crc_table(0x82F63B78, 32)                # Castagnoli, reflected
_CRC64NVME = _crc_table(0x9A6C9329AC4BC9B5, 64)     # NVMe (Rocksoft), reflected


def _crc_reflected(data, table, width):
    mask = (1 << width) - 1
    c = mask
    for byte in data:
        c = table[(c ^ byte) & 0xFF] ^ (c >> 8)
    return c ^ mask


def crc32c_b64(data):
    return b64(_crc_reflected(data, _CRC32C, 32).to_bytes(4, "big"))


def crc64nvme_b64(data):
    return b64(_crc_reflected(data, _CRC64NVME, 64).to_bytes(8, "big"))


def sha1_b64(data):
    return b64(hashlib.sha1(data).digest())


def sha256_b64(data):
    return b64(hashlib.sha256(data).digest())


# Check values of the algorithms above (the standard "123456789" vectors).
assert _crc_reflected(b"123456789", _CRC32C, 32) == 0xE3069283
assert _crc_reflected(b"123456789", _CRC64NVME, 64) == 0xAE8B14860A799888
