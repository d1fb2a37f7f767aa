"""restic (the Debian package) with an S3 repository on nimbus
(`s3:http://127.0.0.1:PORT/BUCKET`): init (restic creates the bucket), backup a
folder twice, check (with and without --read-data), snapshots, forget --prune,
restore into a new folder, and the restored bytes compared. Runs against `--auth open` and
`--auth enforce`.
"""
import json
import os
import subprocess
import uuid

import pytest

from client_helpers import *  # noqa: F401,F403
from s3_helpers import make_s3


@pytest.fixture
def restic(auth_server, tmp_path):
    exe = need("restic", "restic")
    repo = f"s3:{auth_server.endpoint}/restic-{uuid.uuid4().hex[:12]}"
    env = client_env(tmp_path, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                     RESTIC_REPOSITORY=repo, RESTIC_PASSWORD="correct horse battery staple",
                     RESTIC_CACHE_DIR=str(tmp_path / "cache"))

    def run(*args, check=True):
        p = subprocess.run([exe, *args],
                           capture_output=True, text=True, timeout=300, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"restic {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p
    run.bucket = repo.rsplit("/", 1)[1]
    return run


def test_restic_backup_check_restore(restic, auth_server, tmp_path):
    s3 = make_s3(auth_server.endpoint)
    restic("init")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=restic.bucket)["Contents"]}
    assert "config" in keys and any(k.startswith("keys/") for k in keys)

    src = tmp_path / "src"
    files = make_tree(str(src))
    restic("backup", "--host", "nimbus-e2e", str(src))
    restic("check")
    restic("check", "--read-data")

    snaps = json.loads(restic("snapshots", "--json").stdout)
    assert len(snaps) == 1 and snaps[0]["hostname"] == "nimbus-e2e"
    assert snaps[0]["paths"] == [str(src)]

    # A second backup of a changed tree makes a second snapshot sharing the data.
    (src / "a.txt").write_bytes(b"alpha, second snapshot\n")
    restic("backup", "--host", "nimbus-e2e", str(src))
    assert len(json.loads(restic("snapshots", "--json").stdout)) == 2
    restic("check", "--read-data")

    # Forgetting the first snapshot and pruning deletes what only it used.
    before = {o["Key"] for o in s3.list_objects_v2(Bucket=restic.bucket)["Contents"]}
    restic("forget", "--keep-last", "1", "--prune")
    after = {o["Key"] for o in s3.list_objects_v2(Bucket=restic.bucket)["Contents"]}
    assert len([k for k in after if k.startswith("snapshots/")]) == 1
    assert before - after
    restic("check", "--read-data")
    assert len(json.loads(restic("snapshots", "--json").stdout)) == 1

    target = tmp_path / "restored"
    restic("restore", "latest", "--target", str(target))
    restored = os.path.join(str(target), str(src).lstrip("/"))
    assert same_tree(str(src), restored)
    with open(os.path.join(restored, "big/random.bin"), "rb") as f:
        assert f.read() == files["big/random.bin"]
