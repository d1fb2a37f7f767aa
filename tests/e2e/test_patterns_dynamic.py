"""Patterns 15 (clone server) and 20 (write proxy) (patterns/<n>-*/run.sh) run against the
session server, as tests/e2e/test_patterns_ec2.py runs the other instance patterns.

Each test runs the walk-through with --keep as a user would (stock `aws` CLI first on
PATH, test credentials, NIMBUS_ENDPOINT at the server), asserts it passed and said its
Observe lines, and then checks the main observations again on its own: boto3 for the
resources, plain HTTP to the instances' private IPs, ssh, and for pattern 20 the
instance's writable layer in the server's data directory. The `made` fixture removes what
the script made (its "made: KIND ID" lines), whether the test passed or not.

Pattern 15 runs with P15_PERIOD=5: the clones' cron job still starts every minute, and
copies every 5 s within it, so that the test waits for one cron start rather than two.

Runs only against a nimbus whose instances use the namespace driver (Linux, root), and
only against the session's own server (it reads the server's data directory).
"""
import base64
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from test_patterns_ec2 import HTTP, has_ok, http_get, instance, value

# an access key where it should not be: a key id (AKIA... long-term, ASIA... a session's)
# or an entry of an aws credentials file
KEY_RE = re.compile(rb"(AKIA|ASIA)[A-Z0-9]{16}|aws_secret_access_key|aws_session_token")

# the shared machinery of the EC2 pattern tests: running a script, the module's skip
# conditions (namespace_driver is the server's health document) and the clean-up
from test_patterns_ec2 import (  # noqa: F401  (fixtures are used by name)
    ec2, s3, iam, sqs, made, namespace_driver, pytestmark, run_pattern,
)


def http_put(url, body, timeout=10):
    req = urllib.request.Request(url, data=body.encode(), method="PUT")
    with HTTP.open(req, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_for(fn, timeout, what):
    """fn() until it returns something truthy; (value, seconds it took)."""
    start = time.time()
    while True:
        got = fn()
        if got:
            return got, time.time() - start
        if time.time() - start > timeout:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(0.3)


def status(ip):
    r = http_get(f"http://{ip}/_status")
    assert r is not None and r[0] == 200, r
    return json.loads(r[1])


# --- pattern 15 ----------------------------------------------------------------------------

def test_pattern_15_clone_server(endpoint, ec2, made, tmp_path):
    if not (os.path.exists("/usr/sbin/sshd") and os.path.exists("/usr/sbin/cron") and shutil.which("ssh")):
        pytest.skip("needs openssh-server, cron and ssh on the host (the instances' base image)")
    period = 5
    out = run_pattern("15-clone-server", endpoint, made, timeout=200, P15_PERIOD=str(period))
    assert "pattern 15: all observations hold" in out
    key, fingerprint = value(out, "key pair").split()
    master_id, master_ip = value(out, "master instance").split()
    clones = [line.split() for line in re.findall(r"^clone instance: (.+)$", out, re.M)]
    assert len(clones) == 2
    (c1_id, c1_ip), (c2_id, c2_ip) = clones
    # the Observe lines: private IPs, ssh with the created key, a wrong key refused, cron copies
    assert has_ok(out, f"ssh -i {key}.pem root@{master_ip}: logged in to ip-{master_ip.replace('.', '-')}")
    assert re.search(rf"^  ok    ssh -i \S+-wrong\.pem root@{re.escape(master_ip)} is refused: .*Permission denied", out, re.M)
    assert has_ok(out, f"from clone {c1_id}, ssh root@{master_ip} (the master's private IP) with the key: ip-")
    for cid in (c1_id, c2_id):
        assert has_ok(out, f"{cid} became the clone of {master_ip}")
        assert has_ok(out, f"clone {cid}: cron ran the copy from {master_ip}")
        for f in ("on-master.txt", "via-clone.txt"):
            m = re.search(rf"^  ok    clone {cid} has {f} after ([\d.]+) s \(period {period} s\)$", out, re.M)
            assert m and float(m.group(1)) <= period + 5, out
    assert has_ok(out, f"PUT http://{c1_ip}/via-clone.txt (a clone): {c1_id} passed it on: stored via-clone.txt on {master_id}")

    # boto3: the key pair and the three instances that trust it, told apart by their tags
    [kp] = ec2.describe_key_pairs(KeyNames=[key])["KeyPairs"]
    assert (kp["KeyFingerprint"], kp["KeyType"]) == (fingerprint, "ed25519")
    user_data = set()
    for iid, role in ((master_id, "master"), (c1_id, "clone"), (c2_id, "clone")):
        i = instance(ec2, iid)
        assert (i["KeyName"], i["State"]["Name"]) == (key, "running")
        tags = {t["Key"]: t["Value"] for t in i["Tags"]}
        assert tags["Role"] == role and tags.get("Master") == (master_ip if role == "clone" else None)
        user_data.add(ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]["Value"])
    assert len(user_data) == 1

    # HTTP: a new upload, made here through the second clone, goes to the master and then
    # reaches both clones within the period, by the clones' own periodic copies
    name = f"check-{uuid.uuid4().hex[:8]}.txt"
    body = f"written by the test through {c2_id}\n"
    before = {cid: status(ip)["syncs"] for cid, ip in clones}
    t0 = time.time()
    assert http_put(f"http://{c2_ip}/{name}", body) == (201, f"{c2_id} passed it on: stored {name} on {master_id}\n")
    assert http_get(f"http://{master_ip}/{name}") == (200, body)
    for cid, ip in clones:
        wait_for(lambda: http_get(f"http://{ip}/{name}", timeout=2) == (200, body), period + 15, f"{name} on clone {cid}")
        took = time.time() - t0
        assert took <= period + 5, f"{name} reached {cid} after {took:.1f} s"
        st = status(ip)
        assert (st["role"], st["master"], st["period"], st["last_error"]) == ("clone", master_ip, period, "")
        assert st["syncs"] > before[cid] and name in st["files"]
    st = status(master_ip)
    assert st["role"] == "master" and st["syncs"] == 0 and name in st["files"]

    # ssh: the master's sshd refuses a key it was not given
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    r = subprocess.run(["ssh", "-i", str(stranger), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5",
                        f"root@{master_ip}", "true"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 255 and "Permission denied" in r.stderr, r


# --- pattern 20 ----------------------------------------------------------------------------

def key_hits(root, exact):
    """Files under root holding an access key: (relative path, what matched)."""
    hits = []
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as fh:
                data = fh.read()
            for m in KEY_RE.finditer(data):
                hits.append((os.path.relpath(p, root), m.group().decode()))
            hits += [(os.path.relpath(p, root), v) for v in exact if v.encode() in data]
    return hits


def test_pattern_20_write_proxy(endpoint, namespace_driver, ec2, s3, made):
    out = run_pattern("20-write-proxy", endpoint, made, timeout=200)
    assert "pattern 20: all observations hold" in out
    bucket = value(out, "bucket")
    iid, ip = value(out, "upload instance").split()
    key_id = value(out, "session key id")
    disk = value(out, "instance disk")
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", key_id)
    assert re.search(rf"^  ok    the instance syncs as arn:aws:sts::\d{{12}}:assumed-role/(\S+)/{iid}$", out, re.M), out
    assert has_ok(out, "the aws CLI on the instance takes its credentials from the instance profile: aws configure list says iam-role")
    assert has_ok(out, "the user data (DescribeInstanceAttribute userData, ")
    assert has_ok(out, f"PUT http://{ip}/to-instance.txt: stored to-instance.txt on {iid}")
    assert has_ok(out, f"s3://{bucket}/uploads/to-instance.txt is there after ")
    assert has_ok(out, f"GET http://{ip}/to-bucket.txt after ")
    assert has_ok(out, "the instance's disk (")
    assert has_ok(out, "no file of the instance's disk holds an access key")

    # boto3 and HTTP: both directions again, with new files
    assert s3.get_object(Bucket=bucket, Key="uploads/to-instance.txt")["Body"].read().decode().startswith(
        "uploaded to the instance by p20-")
    up = f"up-{uuid.uuid4().hex[:8]}.txt"
    assert http_put(f"http://{ip}/{up}", "up through the instance\n") == (201, f"stored {up} on {iid}\n")

    def in_bucket():
        try:
            return s3.get_object(Bucket=bucket, Key=f"uploads/{up}")["Body"].read().decode()
        except ClientError:
            return None
    got, _ = wait_for(in_bucket, 30, f"uploads/{up} in the bucket")
    assert got == "up through the instance\n"
    down = f"down-{uuid.uuid4().hex[:8]}.txt"
    s3.put_object(Bucket=bucket, Key=f"uploads/{down}", Body=b"down from the bucket\n")
    wait_for(lambda: http_get(f"http://{ip}/{down}", timeout=2) == (200, "down from the bucket\n"), 30,
             f"{down} on the instance")

    # the instance's credentials are its role's session, from the metadata service
    i = instance(ec2, iid)
    assert i["IamInstanceProfile"]["Arn"].endswith(":instance-profile/" + bucket[:-len("-uploads")] + "-uploader")
    st = status(ip)
    assert st["credential_source"] == "iam-role" and st["caller"].endswith(f"/{iid}")
    assert st["access_key_id"] == key_id and {up, down} <= set(st["files"])
    # no key in the user data, none on the instance's disk (its writable layer)
    ud = base64.b64decode(ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]["Value"])
    assert b"aws s3 sync" in ud and not KEY_RE.search(ud) and key_id.encode() not in ud
    assert disk == os.path.join(namespace_driver["data_dir"], "ec2", "instances", iid, "upper")
    assert os.path.isfile(os.path.join(disk, "srv", "uploads", up))
    assert os.path.isfile(os.path.join(disk, "srv", "uploads", down))
    assert key_hits(disk, [key_id]) == []
