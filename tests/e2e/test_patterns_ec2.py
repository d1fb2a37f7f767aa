"""Patterns 1, 2, 3, 5, 8, 30, 31 and 39 (patterns/<n>-*/run.sh) run against the session server.

Each run.sh is the user's walk-through with instances that really run: it prints every
observation of the pattern as it checks it and exits non-zero if one fails. The tests run
it as a user would (stock `aws` CLI from this venv first on PATH, test credentials,
NIMBUS_ENDPOINT at the server), assert it passed and said the key lines, and then check
the main observation again on their own with boto3 and plain HTTP to the instances.

The scripts run with --keep, so what they made is still there for that second look; every
script lists what it made as "made: KIND ID" lines, and the `made` fixture removes those
afterwards, whether the test passed or not.

Runs only against a nimbus whose instances use the namespace driver (Linux, root): the
module skips when /_nimbus/health reports another driver, and when NIMBUS_E2E_ENDPOINT
points at a server of someone else's.
"""
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError, WaiterError

from conftest import REGION, ROOT, make_client

PATTERNS = os.path.join(ROOT, "patterns")
# the host's own HTTP proxy settings must not apply to instance or Elastic IP addresses
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
FAST = {"Delay": 1, "MaxAttempts": 60}

pytestmark = pytest.mark.skipif(bool(os.environ.get("NIMBUS_E2E_ENDPOINT")),
                                reason="the EC2 patterns need the session's own nimbus (NIMBUS_E2E_ENDPOINT is set)")


@pytest.fixture(scope="module", autouse=True)
def namespace_driver(endpoint):
    """Skips the module unless the server's instances really run (namespace driver)."""
    try:
        with HTTP.open(endpoint + "/_nimbus/health", timeout=5) as r:
            doc = json.loads(r.read())
    except (OSError, ValueError) as e:
        pytest.skip(f"no nimbus health document at {endpoint}: {e}")
    if doc.get("instance_driver") != "namespace":
        pytest.skip(f"instances do not really run here (instance_driver {doc.get('instance_driver')!r})")
    return doc


@pytest.fixture(scope="module")
def ec2(endpoint):
    return make_client(endpoint, "ec2")


@pytest.fixture(scope="module")
def s3(endpoint):
    return make_client(endpoint, "s3")


@pytest.fixture(scope="module")
def iam(endpoint):
    return make_client(endpoint, "iam")


@pytest.fixture(scope="module")
def sqs(endpoint):
    return make_client(endpoint, "sqs")


# --- running a script ---------------------------------------------------------------------

def run_pattern(folder, endpoint, made, timeout=240, **env_extra):
    """Runs patterns/<folder>/run.sh --keep as a user would; adds its "made:" lines to
    `made` (before any assertion, and also when it times out, so the fixture removes
    them either way) and returns its stdout. `env_extra` sets variables of the script."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "NIMBUS_ENDPOINT": endpoint,
        **env_extra,
    })
    try:
        p = subprocess.run(["bash", os.path.join(PATTERNS, folder, "run.sh"), "--keep"],
                           capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        made.extend(re.findall(r"^  made: (\S+) (\S+)$", stdout, re.M))
        raise AssertionError(f"{folder}/run.sh still ran after {timeout} s:\n{stdout}") from None
    out = p.stdout + p.stderr
    made.extend(re.findall(r"^  made: (\S+) (\S+)$", p.stdout, re.M))
    assert p.returncode == 0, f"{folder}/run.sh exited {p.returncode}:\n{out}"
    assert "FAIL" not in p.stdout, out
    return p.stdout


def ok_lines(out):
    return [line.strip()[len("ok"):].strip() for line in out.splitlines() if line.strip().startswith("ok ")]


def has_ok(out, start):
    return any(o.startswith(start) for o in ok_lines(out))


def value(out, label):
    """The rest of the line `label: ...` the script printed."""
    m = re.search(rf"^{re.escape(label)}: (.+)$", out, re.M)
    assert m, f"no '{label}:' line in:\n{out}"
    return m.group(1).strip()


def http_get(url, timeout=5):
    """(status, body) of a GET from the test process; None when nothing answers."""
    try:
        with HTTP.open(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None


def status_fields(body):
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


def instance(ec2, iid):
    [res] = ec2.describe_instances(InstanceIds=[iid])["Reservations"]
    [i] = res["Instances"]
    return i


# --- what the scripts made goes away afterwards ---------------------------------------------

def quietly(fn, **kw):
    try:
        fn(**kw)
    except ClientError:
        pass


@pytest.fixture
def made(ec2, s3, iam, sqs):
    """What run.sh --keep listed as made ("made: KIND ID"), removed after the test."""
    items = []
    yield items
    of = lambda kind: [i for k, i in items if k == kind]  # noqa: E731
    for alloc in of("address"):
        try:
            [a] = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"]
            if a.get("AssociationId"):
                ec2.disassociate_address(AssociationId=a["AssociationId"])
        except (ClientError, ValueError):
            pass
        quietly(ec2.release_address, AllocationId=alloc)
    if of("instance"):
        quietly(ec2.terminate_instances, InstanceIds=of("instance"))
        try:
            ec2.get_waiter("instance_terminated").wait(InstanceIds=of("instance"), WaiterConfig=FAST)
        except (WaiterError, ClientError):
            pass
    for vol in of("volume"):
        quietly(ec2.delete_volume, VolumeId=vol)
    for img in of("image"):
        quietly(ec2.deregister_image, ImageId=img)
    for snap in of("snapshot"):
        quietly(ec2.delete_snapshot, SnapshotId=snap)
    for gid in reversed(of("security-group")):
        quietly(ec2.delete_security_group, GroupId=gid)
    for name in of("key-pair"):
        quietly(ec2.delete_key_pair, KeyName=name)
    for url in of("queue"):
        quietly(sqs.delete_queue, QueueUrl=url)
    for bucket in of("bucket"):
        try:
            for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=o["Key"])
            s3.delete_bucket(Bucket=bucket)
        except ClientError:
            pass
    for profile in of("instance-profile"):
        for role in of("role"):
            quietly(iam.remove_role_from_instance_profile, InstanceProfileName=profile, RoleName=role)
        quietly(iam.delete_instance_profile, InstanceProfileName=profile)
    for role in of("role"):
        try:
            for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
                quietly(iam.delete_role_policy, RoleName=role, PolicyName=name)
        except ClientError:
            pass
        quietly(iam.delete_role, RoleName=role)


# --- the patterns -------------------------------------------------------------------------------

def test_pattern_01_snapshot(endpoint, ec2, made):
    out = run_pattern("01-snapshot", endpoint, made)
    assert "pattern 1: all observations hold" in out
    assert has_ok(out, "file A is on the original volume: A: written before the snapshot")
    assert has_ok(out, "CreateSnapshot answers State pending")
    assert has_ok(out, "aws ec2 wait snapshot-completed: State completed, Progress 100%")
    assert has_ok(out, "file B is on the original volume: B: written after the snapshot")
    assert has_ok(out, "A (written before the snapshot) is in the restored volume")
    assert has_ok(out, "B (written after the snapshot) is not in the restored volume: GET /B.txt -> 404")

    writer_id, writer_ip = value(out, "writer instance").split()
    reader_id, reader_ip = value(out, "reader instance").split()
    original, snap, restored = value(out, "original volume"), value(out, "snapshot"), value(out, "restored volume")
    [s] = ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"]
    assert (s["State"], s["VolumeId"]) == ("completed", original)
    [v] = ec2.describe_volumes(VolumeIds=[restored])["Volumes"]
    assert v["SnapshotId"] == snap
    assert [(a["InstanceId"], a["Device"]) for a in v["Attachments"]] == [(reader_id, "/dev/sdf")]
    # the restored volume, as the reader serves it: A, and no B
    a_orig = http_get(f"http://{writer_ip}/A.txt")
    a_restored = http_get(f"http://{reader_ip}/A.txt")
    assert a_orig is not None and a_orig[0] == 200 and a_orig[1].startswith("A: written before the snapshot")
    assert a_restored == a_orig
    assert http_get(f"http://{reader_ip}/B.txt")[0] == 404
    b_orig = http_get(f"http://{writer_ip}/B.txt")
    assert b_orig[0] == 200 and b_orig[1].startswith("B: written after the snapshot")


def test_pattern_02_stamp(endpoint, ec2, made):
    out = run_pattern("02-stamp", endpoint, made)
    assert "pattern 2: all observations hold" in out
    image = value(out, "image")
    source_id, source_ip = value(out, "source instance").split()
    clones = [line.split() for line in re.findall(r"^from the image: (.+)$", out, re.M)]
    [(plain_id, plain_ip)] = [line.split() for line in re.findall(r"^from the base image: (.+)$", out, re.M)]
    assert len(clones) == 2
    for cid, _ in clones:
        assert has_ok(out, f"{cid} (from {image}) serves the change")
        assert f"{cid} console: stamp-check " in out and "page present, boot script present" in out
    assert has_ok(out, f"{plain_id} (from the base image) console: stamp-check ")
    assert "page absent, boot script absent" in out

    [img] = ec2.describe_images(ImageIds=[image])["Images"]
    assert img["State"] == "available"
    for cid, _ in clones:
        assert instance(ec2, cid)["ImageId"] == image
    assert instance(ec2, plain_id)["ImageId"] != image
    page = http_get(f"http://{source_ip}/")
    assert page is not None and page[0] == 200 and "stamped by p02-" in page[1]
    for _, ip in clones:
        assert http_get(f"http://{ip}/") == page
    assert http_get(f"http://{plain_ip}/", timeout=2) is None


def test_pattern_03_scale_up(endpoint, ec2, made):
    out = run_pattern("03-scale-up", endpoint, made)
    assert "pattern 3: all observations hold" in out
    oks = ok_lines(out)
    assert oks.count("metadata service: instance-type t2.micro") == 1
    assert oks.count("metadata service: instance-type t2.small") == 1
    assert "memory limit inside: 1073741824 bytes (1024 MiB)" in oks
    assert "memory limit inside: 2147483648 bytes (2048 MiB)" in oks
    assert "DescribeInstances: InstanceType t2.small" in oks
    assert oks.count("boots seen by the instance: 2") == 1

    iid, ip = value(out, "instance").split()
    i = instance(ec2, iid)
    assert (i["InstanceType"], i["State"]["Name"], i["PrivateIpAddress"]) == ("t2.small", "running", ip)
    r = http_get(f"http://{ip}/status.txt")
    assert r is not None and r[0] == 200
    st = status_fields(r[1])
    assert (st["instance-type"], st["memory-limit"], st["boots"]) == ("t2.small", "2147483648", "2")
    assert st["data"].startswith("data-p03-")


def test_pattern_05_on_demand_disk(endpoint, ec2, made):
    out = run_pattern("05-on-demand-disk", endpoint, made)
    assert "pattern 5: all observations hold" in out
    second_id, second_ip = value(out, "second instance").split()
    snap, bigger = value(out, "snapshot"), value(out, "bigger volume")
    assert has_ok(out, f"{second_id}: /dev/sdf is 2147483648 bytes (2 GiB)")
    assert has_ok(out, f"{second_id}: after resize2fs the file system is ")
    assert has_ok(out, f"{second_id}: the data survived the snapshot and the resize")
    assert has_ok(out, "DescribeVolumesModifications: completed gp2 gp3 100")

    [v] = ec2.describe_volumes(VolumeIds=[bigger])["Volumes"]
    assert (v["Size"], v["VolumeType"], v["SnapshotId"], v["State"]) == (2, "gp3", snap, "in-use")
    assert [a["InstanceId"] for a in v["Attachments"]] == [second_id]
    [m] = ec2.describe_volumes_modifications(VolumeIds=[bigger])["VolumesModifications"]
    assert (m["ModificationState"], m["OriginalVolumeType"], m["TargetVolumeType"]) == ("completed", "gp2", "gp3")
    r = http_get(f"http://{second_ip}/status.txt")
    assert r is not None and r[0] == 200
    st = status_fields(r[1])
    assert st["device-bytes"] == str(2 * 1024 ** 3)
    assert int(st["fs-bytes-before-resize"]) <= 1024 ** 3 < int(st["fs-bytes"]) <= 2 * 1024 ** 3
    assert st["data-check"] == "OK" and "blob.bin" in st["files"]


def test_pattern_08_floating_ip(endpoint, ec2, made):
    out = run_pattern("08-floating-ip", endpoint, made)
    assert "pattern 8: all observations hold" in out
    a_id, _ = value(out, "instance A").split()
    b_id, _ = value(out, "instance B").split()
    eip, alloc = re.fullmatch(r"(\S+) \((\S+)\)", value(out, "elastic IP")).groups()
    answers = re.findall(rf"^  ok    http://{re.escape(eip)}/ answers from (A|B): \"served by (\S+)\"", out, re.M)
    assert answers == [("A", a_id), ("B", b_id), ("A", a_id)], out

    [addr] = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"]
    assert (addr["PublicIp"], addr["InstanceId"]) == (eip, a_id)
    assert http_get(f"http://{eip}/") == (200, f"served by {a_id}\n")
    ec2.associate_address(AllocationId=alloc, InstanceId=b_id)
    assert http_get(f"http://{eip}/") == (200, f"served by {b_id}\n")


def test_pattern_30_bootstrap(endpoint, ec2, s3, made):
    out = run_pattern("30-bootstrap", endpoint, made)
    assert "pattern 30: all observations hold" in out
    bucket = value(out, "bucket")
    w1_id, _ = value(out, "first instance").split()
    w2_id, w2_ip = value(out, "second instance").split()
    assert has_ok(out, f"{w1_id} serves the page from the bucket: ")
    assert has_ok(out, "the running instance still serves what it fetched at boot: version 1")
    assert has_ok(out, f"{w2_id}, launched with the same user data, serves the new page: ")
    m = re.search(r"console: bootstrap: fetched \S+ as (arn:aws:sts::\d{12}:assumed-role/(\S+)/(\S+))$", out, re.M)
    assert m and m.group(3) == w1_id, out

    body = s3.get_object(Bucket=bucket, Key="site/index.html")["Body"].read().decode()
    assert "version 2" in body
    assert http_get(f"http://{w2_ip}/index.html") == (200, body)
    i = instance(ec2, w2_id)
    assert i["IamInstanceProfile"]["Arn"].endswith(f":instance-profile/{m.group(2)}")
    assert instance(ec2, w1_id)["State"]["Name"] in ("shutting-down", "terminated")


def test_pattern_31_cloud_dependency_injection(endpoint, ec2, made):
    out = run_pattern("31-cloud-dependency-injection", endpoint, made)
    assert "pattern 31: all observations hold" in out
    web_id, web_ip = value(out, "web instance").split()
    wrk_id, wrk_ip = value(out, "worker instance").split()
    assert has_ok(out, "both have the very same user data")
    assert has_ok(out, f"console of {web_id}: bootstrap: {web_id} has Role=web")
    assert has_ok(out, f"console of {wrk_id}: bootstrap: {wrk_id} has Role=worker")

    for iid, role in ((web_id, "web"), (wrk_id, "worker")):
        tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [iid]},
                                          {"Name": "key", "Values": ["Role"]}])["Tags"]
        assert [t["Value"] for t in tags] == [role]
    ud = [ec2.describe_instance_attribute(InstanceId=i, Attribute="userData")["UserData"]["Value"]
          for i in (web_id, wrk_id)]
    assert ud[0] == ud[1]
    assert http_get(f"http://{web_ip}/") == (200, f"<h1>web server</h1><p>{web_id}</p>\n")
    assert http_get(f"http://{web_ip}/status.json")[0] == 404
    r = http_get(f"http://{wrk_ip}/status.json")
    assert r is not None and r[0] == 200
    st = json.loads(r[1])
    assert (st["role"], st["instance"]) == ("worker", wrk_id) and st["jobs_done"] >= 1


def test_pattern_39_functional_firewall(endpoint, ec2, made):
    out = run_pattern("39-functional-firewall", endpoint, made)
    assert "pattern 39: all observations hold" in out
    db_id, db_ip = value(out, "db instance").split()
    web_id, web_ip = value(out, "web instance").split()
    oth_id, oth_ip = value(out, "other instance").split()
    web_sg, db_sg, other_sg = re.fullmatch(r"web (\S+), db (\S+), other (\S+)", value(out, "groups")).groups()
    assert has_ok(out, f"web ({web_ip}) -> db {db_ip}:3306: connected: db {db_id} greets {web_ip}")
    assert has_ok(out, f"other ({oth_ip}) -> db {db_ip}:3306: failed: ")
    assert has_ok(out, f"this machine -> db {db_ip}:3306: failed: ")
    assert has_ok(out, f"other -> db:3306 now: connected: db {db_id} greets {oth_ip}")
    assert has_ok(out, "other -> db:3306 after the revoke: failed: ")

    [g] = ec2.describe_security_groups(GroupIds=[db_sg])["SecurityGroups"]
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], [x["GroupId"] for x in p["UserIdGroupPairs"]], p["IpRanges"])
            for p in g["IpPermissions"]] == [("tcp", 3306, 3306, [web_sg], [])]
    assert instance(ec2, db_id)["SecurityGroups"][0]["GroupId"] == db_sg
    # from this process: refused or dropped, never connected
    with pytest.raises(OSError):
        socket.create_connection((db_ip, 3306), timeout=2).close()
    probe = lambda ip: http_get(f"http://{ip}/probe?host={db_ip}&port=3306", timeout=8)  # noqa: E731
    assert probe(web_ip) == (200, f"connected: db {db_id} greets {web_ip}")
    r = probe(oth_ip)
    assert r is not None and r[0] == 200 and r[1].startswith("failed: "), r
