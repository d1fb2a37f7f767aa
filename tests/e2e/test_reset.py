"""Reset, as test suites use it between tests: `POST /_nimbus/reset` (also at
LocalStack's `/_localstack/state/reset` and moto's `/moto-api/reset`) and
`nimbus reset` remove every resource of every service, durably, and nimbus keeps
serving as on first use. Populates S3, SQS, IAM, STS and EC2 (an instance with a
running process, under the process driver), resets, and checks the API answers,
the processes and the files; then that nothing comes back after a restart or a
kill -9 right after the reset answered. Runs nimbus servers of its own.
"""
import json
import os
import subprocess
import time
import urllib.request
import uuid

import pytest

from conftest import Server, make_client, nimbus_bin

BUCKET = "reset-bucket"
QUEUE = "reset-queue"
ROLE = "reset-role"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("starts a nimbus of its own")
    data = str(tmp_path_factory.mktemp("reset-data"))
    server = Server("--instance-driver", "process", data_dir=data).start()
    yield server
    server.stop()


def clients(endpoint):
    return {name: make_client(endpoint, name) for name in ("s3", "sqs", "iam", "sts", "ec2", "cloudwatch")}


def pids_with(marker):
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def files_under(path):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs) if os.path.isdir(path) else []


def populate(endpoint):
    """One of everything; returns what the checks need."""
    c = clients(endpoint)
    s3, sqs, iam, sts, ec2 = c["s3"], c["sqs"], c["iam"], c["sts"], c["ec2"]
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="small.txt", Body=b"hello")
    s3.put_object(Bucket=BUCKET, Key="large.bin", Body=os.urandom(64 * 1024))  # a body file
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="pending.bin")["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key="pending.bin", UploadId=upload, PartNumber=1, Body=os.urandom(8192))
    url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"message {n}")
    role_arn = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    iam.create_instance_profile(InstanceProfileName=ROLE)
    iam.add_role_to_instance_profile(InstanceProfileName=ROLE, RoleName=ROLE)
    creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="before-reset")["Credentials"]
    ec2.create_key_pair(KeyName="reset-key")
    group = ec2.create_security_group(GroupName="reset-group", Description="d")["GroupId"]
    zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    volume = ec2.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    marker = f"nimbus-reset-{uuid.uuid4().hex[:10]}"
    image = ec2.describe_images()["Images"][0]["ImageId"]
    iid = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, SecurityGroupIds=[group],
        UserData=f"#!/bin/bash\n(exec -a {marker} sleep 600) &\n",
    )["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    deadline = time.time() + 20
    while not pids_with(marker) and time.time() < deadline:
        time.sleep(0.1)
    assert pids_with(marker), "the instance's user data should be running"
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=alloc, InstanceId=iid)
    made_image = ec2.create_image(InstanceId=iid, Name="reset-image", NoReboot=True)["ImageId"]
    c["cloudwatch"].put_metric_data(Namespace="Reset", MetricData=[{"MetricName": "m", "Value": 1.0}])
    # Everything is really there before the reset.
    assert [m["MetricName"] for m in c["cloudwatch"].list_metrics(Namespace="Reset")["Metrics"]] == ["m"]
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [BUCKET]
    assert sqs.list_queues()["QueueUrls"] == [url]
    assert ec2.describe_addresses()["Addresses"]
    who = make_client(endpoint, "sts", access_key=creds["AccessKeyId"], secret_key=creds["SecretAccessKey"],
                      token=creds["SessionToken"]).get_caller_identity()
    assert "assumed-role/reset-role/before-reset" in who["Arn"]
    return {"marker": marker, "instance": iid, "image": made_image, "creds": creds, "base_image": image}


def assert_empty(endpoint, data_dir, seen):
    c = clients(endpoint)
    s3, sqs, iam, ec2 = c["s3"], c["sqs"], c["iam"], c["ec2"]
    assert s3.list_buckets()["Buckets"] == []
    assert sqs.list_queues().get("QueueUrls", []) == []
    assert c["cloudwatch"].list_metrics()["Metrics"] == []
    assert iam.list_roles()["Roles"] == []
    assert iam.list_instance_profiles()["InstanceProfiles"] == []
    assert ec2.describe_instances()["Reservations"] == []
    assert ec2.describe_volumes()["Volumes"] == []
    assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert ec2.describe_addresses()["Addresses"] == []
    assert [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]] == ["default"]
    images = [i["ImageId"] for i in ec2.describe_images()["Images"]]
    assert seen["image"] not in images and seen["base_image"] in images
    # The default VPC is back, as on first use.
    assert [v["IsDefault"] for v in ec2.describe_vpcs()["Vpcs"]] == [True]
    # STS forgot the role session: its key is no longer that principal.
    k = seen["creds"]
    who = make_client(endpoint, "sts", access_key=k["AccessKeyId"], secret_key=k["SecretAccessKey"],
                      token=k["SessionToken"]).get_caller_identity()
    assert "assumed-role" not in who["Arn"]
    # The instance's processes and its files are gone.
    deadline = time.time() + 3
    while pids_with(seen["marker"]) and time.time() < deadline:
        time.sleep(0.1)
    assert not pids_with(seen["marker"]), "reset must end every process of the instance"
    assert not os.path.exists(os.path.join(data_dir, "ec2", "instances", seen["instance"]))
    assert files_under(os.path.join(data_dir, "s3", "objects")) == []
    assert files_under(os.path.join(data_dir, "ec2", "volumes")) == []
    assert files_under(os.path.join(data_dir, "ec2", "snapshots")) == []
    assert files_under(os.path.join(data_dir, "ec2", "images")) == []


def assert_usable(endpoint):
    """Creating again works, with the same names."""
    c = clients(endpoint)
    c["s3"].create_bucket(Bucket=BUCKET)
    c["s3"].put_object(Bucket=BUCKET, Key="again.txt", Body=b"again")
    assert c["s3"].get_object(Bucket=BUCKET, Key="again.txt")["Body"].read() == b"again"
    url = c["sqs"].create_queue(QueueName=QUEUE)["QueueUrl"]
    c["sqs"].send_message(QueueUrl=url, MessageBody="again")
    c["iam"].create_role(RoleName=ROLE, AssumeRolePolicyDocument=TRUST)
    c["ec2"].create_key_pair(KeyName="reset-key")
    assert c["ec2"].allocate_address(Domain="vpc")["PublicIp"]


def post(endpoint, path):
    req = urllib.request.Request(endpoint + path, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.load(r)


def reset_by(how, endpoint):
    if how == "cli":
        p = subprocess.run([nimbus_bin(), "reset", "--endpoint", endpoint], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)
    status, body = post(endpoint, how)
    assert status == 200
    return body


@pytest.mark.parametrize("how", ["/_nimbus/reset", "/_localstack/state/reset", "/moto-api/reset", "cli"])
def test_reset_removes_everything_and_keeps_serving(node, how):
    reset_by("/_nimbus/reset", node.endpoint)  # the previous case's leftovers
    seen = populate(node.endpoint)
    body = reset_by(how, node.endpoint)
    assert body["status"] == "ok"  # moto's answer
    assert sorted(body["reset"]) == ["cloudwatch", "ec2", "iam", "s3", "sqs", "sts"]
    assert_empty(node.endpoint, node.data_dir, seen)
    assert_usable(node.endpoint)


def test_reset_needs_post(node):
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(node.endpoint + "/_nimbus/reset", timeout=10)
    assert e.value.code == 404


def test_reset_is_durable_across_restart_and_kill9(tmp_path):
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("starts a nimbus of its own")
    data = str(tmp_path / "data")
    server = Server("--instance-driver", "process", data_dir=data).start()
    try:
        seen = populate(server.endpoint)
        status, _ = post(server.endpoint, "/_nimbus/reset")
        assert status == 200
        server.kill9()  # right after the answer: the reset must already be on disk
        server.start()
        assert_empty(server.endpoint, data, seen)
        # Nothing comes back late either (instances would resume in the background).
        time.sleep(1.5)
        assert clients(server.endpoint)["ec2"].describe_instances()["Reservations"] == []
        assert not pids_with(seen["marker"])
        # A clean restart after more work keeps the reset too.
        seen = populate(server.endpoint)
        reset_by("cli", server.endpoint)
        server.stop()
        server.start()
        assert_empty(server.endpoint, data, seen)
        assert_usable(server.endpoint)
    finally:
        server.stop()


def test_reset_cli_without_server_fails():
    p = subprocess.run([nimbus_bin(), "reset", "--endpoint", "http://127.0.0.1:9"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "nimbus reset: http://127.0.0.1:9" in p.stderr
