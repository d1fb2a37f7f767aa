"""Save and load of the whole cloud: `nimbus state save FILE` streams one archive of
everything while nimbus keeps serving, `nimbus state load FILE` puts it back into a
running nimbus (which restarts in place on it), `serve --load FILE` starts from one.

Populates S3, SQS (a message in flight, with its receive count), IAM, EC2 (rules, a
key pair, an instance with files on its disk, process driver), saves, resets, loads,
and checks every part through boto3 and the files. Then: writes acknowledged before
a save began are in it while writes go on during the save; corrupt, truncated and
newer archives are refused without touching the running state; a load on a fresh
data directory; under --auth enforce only the root key may save or load, and a load
whose body does not match its signed hash changes nothing. Runs servers of its own.
"""
import glob
import io
import json
import os
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import Server, make_client, nimbus_bin

BUCKET = "state-bucket"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})

pytestmark = pytest.mark.skipif(bool(os.environ.get("NIMBUS_E2E_ENDPOINT")),
                                reason="runs nimbus servers of its own")


def health(endpoint):
    with urllib.request.urlopen(endpoint + "/_nimbus/health", timeout=5) as r:
        return json.loads(r.read())


def state(verb, endpoint, path, key="test", secret="test"):
    """Runs `nimbus state VERB PATH` against `endpoint`; returns the finished process."""
    env = dict(os.environ, NIMBUS_ROOT_ACCESS_KEY_ID=key, NIMBUS_ROOT_SECRET_ACCESS_KEY=secret)
    return subprocess.run([nimbus_bin(), "state", verb, str(path), "--endpoint", endpoint],
                          capture_output=True, text=True, env=env, timeout=180)


def reset(endpoint):
    p = subprocess.run([nimbus_bin(), "reset", "--endpoint", endpoint], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def wait_state(ec2, iid, want, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        [r] = ec2.describe_instances(InstanceIds=[iid])["Reservations"]
        if r["Instances"][0]["State"]["Name"] == want:
            return
        time.sleep(0.2)
    raise AssertionError(f"{iid} never became {want}")


def wait_file(pattern, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        found = glob.glob(pattern)
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"nothing matches {pattern}")


@pytest.fixture
def node(tmp_path):
    server = Server("--instance-driver", "process", data_dir=str(tmp_path / "data")).start()
    yield server
    server.stop()


def populate(endpoint):
    s3, sqs, iam, ec2 = (make_client(endpoint, n) for n in ("s3", "sqs", "iam", "ec2"))
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="small.txt", Body=b"hello", Metadata={"colour": "blue"})
    big = os.urandom(3 * 1024 * 1024 + 17)
    s3.put_object(Bucket=BUCKET, Key="big.bin", Body=big)
    s3.put_bucket_tagging(Bucket=BUCKET, Tagging={"TagSet": [{"Key": "env", "Value": "dev"}]})
    url = sqs.create_queue(QueueName="state-queue", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    [taken] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=4)["Messages"]
    iam.create_role(RoleName="state-role", AssumeRolePolicyDocument=TRUST)
    group = ec2.create_security_group(GroupName="state-sg", Description="kept by a save")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpProtocol="tcp", FromPort=8080, ToPort=8080,
                                         CidrIp="10.1.0.0/16")
    ec2.create_key_pair(KeyName="state-key")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    user_data = "#!/bin/sh\necho before-save > \"$HOME/disk.txt\"\nexec sleep 100000\n"
    iid = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, UserData=user_data)["Instances"][0]["InstanceId"]
    return {"big": big, "url": url, "taken": taken, "group": group, "iid": iid}


def test_save_reset_load_brings_everything_back(node, tmp_path):
    ep = node.endpoint
    s3, sqs, iam, ec2 = (make_client(ep, n) for n in ("s3", "sqs", "iam", "ec2"))
    made = populate(ep)
    iid = made["iid"]
    wait_state(ec2, iid, "running")
    # The process driver's instance disk is its directory's root/ (HOME is root/root).
    disk = wait_file(os.path.join(node.data_dir, "ec2/instances", iid, "root/root/disk.txt"))

    archive = tmp_path / "env.tar"
    p = state("save", ep, archive)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"saved {archive}")
    names = tarfile.open(archive).getnames()
    assert names[0] == "nimbus-state.json" and names[-1] == "nimbus-state.end.json"
    assert any(n.startswith("store/") for n in names)
    assert any(n.startswith("files/s3/objects/") for n in names)
    assert f"files/ec2/instances/{iid}/root/root/disk.txt" in names
    # Written after the save: must not come back.
    with open(os.path.join(os.path.dirname(disk), "after.txt"), "w") as f:
        f.write("after the save")
    s3.put_object(Bucket=BUCKET, Key="after-save.txt", Body=b"later")

    reset(ep)
    assert s3.list_buckets()["Buckets"] == []
    started = health(ep)["started_ms"]

    p = state("load", ep, archive)
    assert p.returncode == 0, p.stderr
    assert "nimbus restarted on it" in p.stdout
    assert health(ep)["started_ms"] != started
    assert "restarting on the loaded state" in node.log()

    # S3: objects, bytes, metadata, tags; not what came after the save.
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == ["big.bin", "small.txt"]
    small = s3.get_object(Bucket=BUCKET, Key="small.txt")
    assert small["Body"].read() == b"hello" and small["Metadata"] == {"colour": "blue"}
    assert s3.get_object(Bucket=BUCKET, Key="big.bin")["Body"].read() == made["big"]
    assert s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"] == [{"Key": "env", "Value": "dev"}]
    # SQS: two visible, one in flight, which comes back with its receive count.
    attrs = sqs.get_queue_attributes(QueueUrl=made["url"], AttributeNames=["All"])["Attributes"]
    assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == ("2", "1")
    assert attrs["VisibilityTimeout"] == "30"
    seen = {}
    end = time.time() + 20
    while len(seen) < 3 and time.time() < end:
        for m in sqs.receive_message(QueueUrl=made["url"], MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     AttributeNames=["ApproximateReceiveCount"]).get("Messages", []):
            seen[m["Body"]] = m["Attributes"]["ApproximateReceiveCount"]
    assert seen[made["taken"]["Body"]] == "2", seen
    assert sorted(seen) == ["m0", "m1", "m2"]
    # IAM and EC2 rules and keys.
    assert iam.get_role(RoleName="state-role")["Role"]["RoleName"] == "state-role"
    [g] = ec2.describe_security_groups(GroupIds=[made["group"]])["SecurityGroups"]
    assert [(r["FromPort"], r["IpRanges"][0]["CidrIp"]) for r in g["IpPermissions"]] == [(8080, "10.1.0.0/16")]
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == ["state-key"]
    # The instance runs again, its disk as of the save.
    wait_state(ec2, iid, "running")
    assert open(disk).read() == "before-save\n"
    assert not os.path.exists(os.path.join(os.path.dirname(disk), "after.txt"))


def test_writes_acknowledged_before_a_save_are_in_it(node, tmp_path):
    """A writer keeps putting objects while the save runs; every put answered before
    the save request was sent is in the archive (loaded into a fresh server)."""
    ep = node.endpoint
    s3 = make_client(ep, "s3")
    s3.create_bucket(Bucket=BUCKET)
    acked = []
    stop = threading.Event()

    def writer():
        client = make_client(ep, "s3")
        n = 0
        while not stop.is_set():
            client.put_object(Bucket=BUCKET, Key=f"k{n:06}", Body=f"v{n}".encode())
            acked.append((time.monotonic(), f"k{n:06}"))
            n += 1

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    before_save = time.monotonic()
    archive = tmp_path / "busy.tar"
    p = state("save", ep, archive)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert p.returncode == 0, p.stderr
    must = {k for at, k in acked if at < before_save}
    assert len(must) > 20, "the writers were too slow to test anything"
    assert len(acked) > len(must), "no write happened during the save"

    fresh = Server("--instance-driver", "process", "--load", str(archive)).start()
    try:
        client = make_client(fresh.endpoint, "s3")
        present = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            present.update(o["Key"] for o in page.get("Contents", []))
        assert must <= present, f"{len(must - present)} acknowledged writes are missing"
        some = sorted(must)[len(must) // 2]
        assert client.get_object(Bucket=BUCKET, Key=some)["Body"].read() == f"v{int(some[1:])}".encode()
    finally:
        fresh.stop()


def test_bad_archives_are_refused_and_change_nothing(node, tmp_path):
    ep = node.endpoint
    s3 = make_client(ep, "s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="keep.bin", Body=os.urandom(200_000))
    good = tmp_path / "good.tar"
    assert state("save", ep, good).returncode == 0
    data = good.read_bytes()
    s3.put_object(Bucket=BUCKET, Key="current.txt", Body=b"still here")
    started = health(ep)["started_ms"]

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    corrupt = tmp_path / "corrupt.tar"
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # inside the object's body
    corrupt.write_bytes(bytes(flipped))
    newer = tmp_path / "newer.tar"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        doc = json.dumps({"format": 99, "nimbus": "9.0.0"}).encode()
        info = tarfile.TarInfo("nimbus-state.json")
        info.size = len(doc)
        tar.addfile(info, io.BytesIO(doc))
    newer.write_bytes(buf.getvalue())
    other = tmp_path / "other.tar"
    with tarfile.open(other, "w") as tar:
        tar.add(__file__, arcname="test_state.py")

    for path, words in [(truncated, "corrupt or truncated"), (corrupt, "corrupt or truncated"),
                        (newer, "format 99"), (other, "not a nimbus state archive")]:
        p = state("load", ep, path)
        assert p.returncode == 1, (path, p.stdout)
        assert "InvalidStateArchive" in p.stderr and words in p.stderr, p.stderr
        assert "nothing was loaded" in p.stderr
    assert "newer nimbus" in state("load", ep, newer).stderr
    # The running state is untouched and nimbus did not restart.
    assert health(ep)["started_ms"] == started
    assert s3.get_object(Bucket=BUCKET, Key="current.txt")["Body"].read() == b"still here"
    assert not [n for n in os.listdir(node.data_dir) if n.startswith(".loading-")]
    # serve --load refuses them too, before serving anything.
    for path in (truncated, newer):
        p = subprocess.run([nimbus_bin(), "serve", "--ephemeral", "--port", "0", "--load", str(path)],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and "cannot load" in p.stderr, p.stderr


def test_load_on_a_fresh_data_directory(node, tmp_path):
    ep = node.endpoint
    s3, sqs = make_client(ep, "s3"), make_client(ep, "sqs")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="a.txt", Body=b"A")
    url = sqs.create_queue(QueueName="fresh-q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="kept")
    archive = tmp_path / "a.tar"
    assert state("save", ep, archive).returncode == 0

    fresh_dir = tmp_path / "fresh"
    fresh = Server("--instance-driver", "process", "--load", str(archive), data_dir=str(fresh_dir)).start()
    try:
        assert make_client(fresh.endpoint, "s3").get_object(Bucket=BUCKET, Key="a.txt")["Body"].read() == b"A"
        q = make_client(fresh.endpoint, "sqs")
        [m] = q.receive_message(QueueUrl=q.get_queue_url(QueueName="fresh-q")["QueueUrl"])["Messages"]
        assert m["Body"] == "kept"
    finally:
        fresh.stop()
    # The data directory now has state: loading into it again is refused, not a silent overwrite.
    p = subprocess.run([nimbus_bin(), "serve", "--data-dir", str(fresh_dir), "--port", "0", "--load", str(archive)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "without state" in p.stderr, p.stderr


def test_enforce_needs_the_root_key_and_the_signed_body(tmp_path):
    server = Server("--auth", "enforce", "--root-access-key-id", "ROOTKEY", "--root-secret-access-key", "rootsecret",
                    "--instance-driver", "process").start()
    try:
        ep = server.endpoint
        s3 = make_client(ep, "s3", access_key="ROOTKEY", secret_key="rootsecret")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="x", Body=b"x")
        archive = tmp_path / "e.tar"
        denied = state("save", ep, archive, key="ROOTKEY", secret="wrong")
        assert denied.returncode == 1 and "SignatureDoesNotMatch" in denied.stderr, denied.stderr
        other = state("save", ep, archive, key="test", secret="test")
        assert other.returncode == 1 and ("InvalidClientTokenId" in other.stderr or "AccessDenied" in other.stderr)
        assert not archive.exists()
        assert state("save", ep, archive, key="ROOTKEY", secret="rootsecret").returncode == 0
        s3.put_object(Bucket=BUCKET, Key="y", Body=b"y")
        started = health(ep)["started_ms"]

        # A load signed for one archive whose body was swapped on the way for another
        # (valid) one: refused by the signed hash, nothing changes.
        swapped = tmp_path / "swapped.tar"
        assert state("save", ep, swapped, key="ROOTKEY", secret="rootsecret").returncode == 0
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        import hashlib
        signed_body = archive.read_bytes()
        creds = botocore.credentials.Credentials("ROOTKEY", "rootsecret")
        req = botocore.awsrequest.AWSRequest(method="POST", url=ep + "/_nimbus/state/load", data=signed_body,
                                             headers={"x-amz-content-sha256": hashlib.sha256(signed_body).hexdigest()})
        botocore.auth.SigV4Auth(creds, "nimbus", "us-east-1").add_auth(req)
        prepared = urllib.request.Request(ep + "/_nimbus/state/load", data=swapped.read_bytes(), method="POST",
                                          headers=dict(req.headers.items()))
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(prepared, timeout=30)
        assert e.value.code == 400
        assert "signed x-amz-content-sha256" in e.value.read().decode()
        assert health(ep)["started_ms"] == started
        assert s3.get_object(Bucket=BUCKET, Key="y")["Body"].read() == b"y"

        loaded = state("load", ep, archive, key="ROOTKEY", secret="rootsecret")
        assert loaded.returncode == 0, loaded.stderr
        with pytest.raises(ClientError):
            s3.head_object(Bucket=BUCKET, Key="y")
        assert s3.get_object(Bucket=BUCKET, Key="x")["Body"].read() == b"x"
    finally:
        server.stop()
