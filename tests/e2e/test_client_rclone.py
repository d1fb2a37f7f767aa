"""rclone (the Debian package) against nimbus through an S3 remote of provider
`Other` (endpoint and keys only): sync a folder tree up and down, `rclone check`,
a multipart upload (a file above --s3-upload-cutoff in small chunks), lsf,
delete. Runs against `--auth open` and `--auth enforce`.
"""
import hashlib
import os
import subprocess
import uuid

import pytest

from client_helpers import *  # noqa: F401,F403
from s3_helpers import make_s3

MiB = 1024 * 1024


@pytest.fixture
def rclone(auth_server, tmp_path):
    exe = need("rclone", "rclone")
    config = tmp_path / "rclone.conf"
    config.write_text(
        "[nimbus]\ntype = s3\nprovider = Other\nenv_auth = false\n"
        f"access_key_id = test\nsecret_access_key = test\nendpoint = {auth_server.endpoint}\n")

    def run(*args, check=True):
        p = subprocess.run([exe, "--config", str(config), "--retries", "1",
                            "--low-level-retries", "1", *args],
                           capture_output=True, text=True, timeout=180, env=client_env(tmp_path))
        if check and p.returncode != 0:
            raise AssertionError(f"rclone {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p
    return run


def test_rclone_sync_check_multipart(rclone, auth_server, tmp_path):
    s3 = make_s3(auth_server.endpoint)
    name = f"rclone-{uuid.uuid4().hex[:12]}"
    rclone("mkdir", f"nimbus:{name}")
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    up = tmp_path / "up"
    files = make_tree(str(up))
    rclone("sync", str(up), f"nimbus:{name}/tree")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]}
    assert keys == {f"tree/{k}" for k in files}
    for rel, data in files.items():
        assert s3.get_object(Bucket=name, Key=f"tree/{rel}")["Body"].read() == data
    rclone("check", str(up), f"nimbus:{name}/tree")

    lsf = rclone("lsf", "-R", "--files-only", f"nimbus:{name}/tree").stdout.splitlines()
    assert sorted(lsf) == sorted(files)

    # A file removed locally is removed remotely by the next sync; check then agrees.
    os.remove(up / "a.txt")
    rclone("sync", str(up), f"nimbus:{name}/tree")
    assert "tree/a.txt" not in {o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]}
    rclone("check", str(up), f"nimbus:{name}/tree")

    down = tmp_path / "down"
    rclone("sync", f"nimbus:{name}/tree", str(down))
    assert same_tree(str(up), str(down))

    # Above the cutoff rclone uploads in parts of --s3-chunk-size, and records the
    # whole file's MD5 in metadata for later checks.
    big = tmp_path / "big" / "big.bin"
    big.parent.mkdir()
    data = os.urandom(12 * MiB)
    big.write_bytes(data)
    rclone("copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", str(big.parent), f"nimbus:{name}/big")
    head = s3.head_object(Bucket=name, Key="big/big.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-3"')
    assert head["Metadata"].get("md5chksum")
    rclone("check", str(big.parent), f"nimbus:{name}/big")
    got = s3.get_object(Bucket=name, Key="big/big.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()

    rclone("delete", f"nimbus:{name}/tree")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", [])] == ["big/big.bin"]
    rclone("purge", f"nimbus:{name}")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_rclone_v2_auth(rclone, auth_server, tmp_path):
    """`--s3-v2-auth` (for old S3-compatible servers): SigV2 signatures over a
    multipart upload, whose `?uploads=` rclone signs as the bare sub-resource."""
    s3 = make_s3(auth_server.endpoint)
    name = f"rclone-v2-{uuid.uuid4().hex[:12]}"
    rclone("--s3-v2-auth", "mkdir", f"nimbus:{name}")
    src = tmp_path / "src"
    files = make_tree(str(src))
    data = os.urandom(7 * MiB)
    (src / "big.bin").write_bytes(data)
    rclone("--s3-v2-auth", "copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M",
           str(src), f"nimbus:{name}")
    assert s3.head_object(Bucket=name, Key="big.bin")["ETag"].endswith('-2"')
    assert s3.get_object(Bucket=name, Key="big.bin")["Body"].read() == data
    rclone("--s3-v2-auth", "check", str(src), f"nimbus:{name}")
    listed = rclone("--s3-v2-auth", "lsf", "-R", "--files-only", f"nimbus:{name}").stdout.split("\n")
    assert sorted(filter(None, listed)) == sorted([*files, "big.bin"])
    rclone("--s3-v2-auth", "purge", f"nimbus:{name}")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
