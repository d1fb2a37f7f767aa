"""s3cmd (the Debian package) against nimbus with its default configuration, only
the endpoint and keys set: bucket creation signed for the legacy `US` location
and for `EU`, put/get/ls/la/info/del/rb, sync both ways, and a multipart put.
Runs against `--auth open` and `--auth enforce` (s3cmd signs SigV4 itself).
"""
import hashlib
import os
import subprocess
import uuid

import pytest

from client_helpers import *  # noqa: F401,F403
from s3_helpers import make_s3

MiB = 1024 * 1024


class S3cmd:
    def __init__(self, server, tmp):
        self.exe = need("s3cmd", "s3cmd")
        self.endpoint = server.endpoint
        self.config = os.path.join(tmp, "s3cfg")
        host = server.endpoint.split("//", 1)[1]
        # The documented minimal configuration for an S3-compatible endpoint; a
        # host_bucket without %(bucket)s means path-style requests.
        with open(self.config, "w") as f:
            f.write(f"[default]\naccess_key = test\nsecret_key = test\n"
                    f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\n")

    def __call__(self, *args, check=True):
        p = subprocess.run([self.exe, "-c", self.config, "--no-progress", *args],
                           capture_output=True, text=True, timeout=120,
                           env=client_env(os.path.dirname(self.config)))
        if check and p.returncode != 0:
            raise AssertionError(f"s3cmd {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p


@pytest.fixture
def s3cmd(auth_server, tmp_path):
    return S3cmd(auth_server, str(tmp_path))


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_s3cmd_objects(s3cmd, auth_server, tmp_path):
    s3 = make_s3(auth_server.endpoint)
    name = f"s3cmd-{uuid.uuid4().hex[:12]}"
    assert f"Bucket 's3://{name}/' created" in s3cmd("mb", f"s3://{name}").stdout
    # `US` is S3's legacy name for us-east-1: no constraint is stored.
    assert s3.get_bucket_location(Bucket=name).get("LocationConstraint") is None

    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello from s3cmd\n" * 100)
    s3cmd("put", str(src), f"s3://{name}/docs/hello.txt")
    assert s3.get_object(Bucket=name, Key="docs/hello.txt")["Body"].read() == src.read_bytes()

    out = tmp_path / "back.txt"
    s3cmd("get", f"s3://{name}/docs/hello.txt", str(out))
    assert out.read_bytes() == src.read_bytes()

    ls = s3cmd("ls", f"s3://{name}").stdout
    assert f"DIR  s3://{name}/docs/" in ls
    ls = s3cmd("ls", "-r", f"s3://{name}").stdout.split()
    assert ls[-2:] == ["1700", f"s3://{name}/docs/hello.txt"]
    assert f"s3://{name}" in s3cmd("ls").stdout.split()
    # `la` lists every bucket's contents.
    assert f"s3://{name}/docs/" in s3cmd("la").stdout.split()
    assert f"s3://{name}/docs/hello.txt" in s3cmd("la", "-r").stdout.split()

    info = s3cmd("info", f"s3://{name}/docs/hello.txt").stdout
    assert "File size: 1700" in info
    assert hashlib.md5(src.read_bytes()).hexdigest() in info
    binfo = s3cmd("info", f"s3://{name}").stdout
    assert "Location:" in binfo and "us-east-1" in binfo

    s3cmd("del", f"s3://{name}/docs/hello.txt")
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0
    assert f"Bucket 's3://{name}/' removed" in s3cmd("rb", f"s3://{name}").stdout
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_s3cmd_eu_bucket_location(s3cmd, auth_server, tmp_path):
    s3 = make_s3(auth_server.endpoint)
    name = f"s3cmd-eu-{uuid.uuid4().hex[:12]}"
    s3cmd("mb", "--bucket-location=EU", f"s3://{name}")
    # S3 reports the constraint a bucket was created with: `EU` stays `EU`
    # (GetBucketLocation's documented values include EU, which is eu-west-1).
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "EU"
    # s3cmd itself shows the legacy name as the region it stands for.
    assert "Location:  eu-west-1" in s3cmd("info", f"s3://{name}").stdout
    # Later requests are signed for eu-west-1, the region s3cmd learnt.
    src = tmp_path / "eu.txt"
    src.write_bytes(b"stored in eu-west-1\n")
    s3cmd("put", str(src), f"s3://{name}/eu.txt")
    back = tmp_path / "eu.back"
    s3cmd("get", f"s3://{name}/eu.txt", str(back))
    assert back.read_bytes() == src.read_bytes()
    s3cmd("del", f"s3://{name}/eu.txt")
    s3cmd("rb", f"s3://{name}")


def test_s3cmd_sync_and_multipart(s3cmd, auth_server, tmp_path):
    s3 = make_s3(auth_server.endpoint)
    name = f"s3cmd-sync-{uuid.uuid4().hex[:12]}"
    s3cmd("mb", f"s3://{name}")
    up = tmp_path / "up"
    files = make_tree(str(up))
    s3cmd("sync", str(up) + "/", f"s3://{name}/tree/")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]}
    assert keys == {f"tree/{k}" for k in files}
    # A second sync finds nothing to do; a changed file is uploaded again.
    (up / "a.txt").write_bytes(b"alpha changed\n")
    files["a.txt"] = b"alpha changed\n"
    s3cmd("sync", str(up) + "/", f"s3://{name}/tree/")
    assert s3.get_object(Bucket=name, Key="tree/a.txt")["Body"].read() == b"alpha changed\n"

    down = tmp_path / "down"
    s3cmd("sync", f"s3://{name}/tree/", str(down) + "/")
    assert same_tree(str(up), str(down))

    big = tmp_path / "big.bin"
    data = os.urandom(12 * MiB)
    big.write_bytes(data)
    s3cmd("put", "--multipart-chunk-size-mb=5", str(big), f"s3://{name}/big.bin")
    head = s3.head_object(Bucket=name, Key="big.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-3"')  # 5 + 5 + 2 MiB
    back = tmp_path / "big.back"
    s3cmd("get", f"s3://{name}/big.bin", str(back))
    assert sha(back.read_bytes()) == sha(data)
    info = s3cmd("info", f"s3://{name}/big.bin").stdout
    assert f"File size: {len(data)}" in info

    s3cmd("del", "--recursive", "--force", f"s3://{name}/")
    s3cmd("rb", f"s3://{name}")


def test_s3cmd_signature_v2(s3cmd, auth_server, tmp_path):
    """`--signature-v2` (s3cmd's option for older S3-compatible servers): SigV2
    header signatures over bucket creation, sync with s3cmd's metadata, and get."""
    s3 = make_s3(auth_server.endpoint)
    name = f"s3cmd-v2-{uuid.uuid4().hex[:12]}"
    s3cmd("--signature-v2", "mb", f"s3://{name}")
    up = tmp_path / "up"
    files = make_tree(str(up))
    s3cmd("--signature-v2", "sync", str(up) + "/", f"s3://{name}/t/")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]}
    assert keys == {f"t/{k}" for k in files}
    head = s3.head_object(Bucket=name, Key="t/a.txt")
    assert "s3cmd-attrs" in head["Metadata"]
    down = tmp_path / "down"
    s3cmd("--signature-v2", "sync", f"s3://{name}/t/", str(down) + "/")
    assert same_tree(str(up), str(down))
    s3cmd("--signature-v2", "del", "--recursive", "--force", f"s3://{name}/")
    s3cmd("--signature-v2", "rb", f"s3://{name}")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
