"""Key pairs for real: CreateKeyPair's private key logs in over ssh to an instance
that runs an ssh server (the public key is installed for root and served by the
metadata service), and a different key is refused. Needs the namespace driver and
openssh-server on the host (the host's root is the base image); skips otherwise.
"""
import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid

import pytest

SSHD = "/usr/sbin/sshd"
FINISHED = "Cloud-init v. 24.1.3 finished at"


@pytest.fixture
def ec2(endpoint, client):
    try:
        with urllib.request.urlopen(endpoint + "/_nimbus/health", timeout=5) as r:
            driver = json.load(r).get("instance_driver")
    except (OSError, ValueError):
        driver = None
    if driver != "namespace":
        pytest.skip("needs instances of the namespace driver")
    if not os.path.exists(SSHD) or not shutil.which("ssh"):
        pytest.skip("needs openssh-server and ssh on the host")
    return client("ec2")


def wait_console(ec2, iid, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = ec2.get_console_output(InstanceId=iid).get("Output", "")
        if FINISHED in out:
            return out
        time.sleep(0.2)
    raise AssertionError(f"{iid} did not finish booting")


def ssh(key_path, ip, command):
    return subprocess.run(
        ["ssh", "-i", key_path, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "IdentitiesOnly=yes",
         f"root@{ip}", command],
        capture_output=True, text=True, timeout=30)


def test_ssh_with_created_key(ec2, tmp_path):
    name = f"ssh-{uuid.uuid4().hex[:10]}"
    key = ec2.create_key_pair(KeyName=name, KeyType="ed25519")
    other = ec2.create_key_pair(KeyName=name + "-other", KeyType="ed25519")
    group = ec2.create_security_group(GroupName=name, Description="ssh from anywhere")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    paths = {}
    for label, k in (("good", key), ("bad", other)):
        p = tmp_path / label
        p.write_text(k["KeyMaterial"])
        p.chmod(0o600)
        paths[label] = str(p)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    iid = None
    try:
        iid = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, KeyName=name, SecurityGroupIds=[group],
            UserData="#!/bin/bash\nmkdir -p /run/sshd\nssh-keygen -A >/dev/null 2>&1\n/usr/sbin/sshd\n",
        )["Instances"][0]["InstanceId"]
        wait_console(ec2, iid)
        ip = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["PrivateIpAddress"]
        r = ssh(paths["good"], ip, "hostname; curl -s http://169.254.169.254/latest/meta-data/public-keys/0/openssh-key")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "ip-" + ip.replace(".", "-")
        public = ec2.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"][0]["PublicKey"]
        assert lines[1].split()[:2] == public.split()[:2]
        refused = ssh(paths["bad"], ip, "true")
        assert refused.returncode != 0 and "Permission denied" in refused.stderr
    finally:
        if iid:
            ec2.terminate_instances(InstanceIds=[iid])
            ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        ec2.delete_key_pair(KeyName=name)
        ec2.delete_key_pair(KeyName=name + "-other")
        ec2.delete_security_group(GroupId=group)
