"""EC2 with the process driver (`nimbus serve --instance-driver process`), the one used
where namespaces are not available: an instance is a supervised process tree in its own
directory. It must still run its user data once, show it in GetConsoleOutput, give the
metadata service through AWS_EC2_METADATA_SERVICE_ENDPOINT (v1 and v2), and end every
process it started when it stops or terminates. Runs a nimbus of its own.
"""
import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import Server, make_client

FINISHED = "Cloud-init v. 24.1.3 finished at"


@pytest.fixture(scope="module")
def ec2():
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("starts a nimbus of its own")
    server = Server("--instance-driver", "process").start()
    yield make_client(server.endpoint, "ec2")
    server.stop()


def console(ec2, iid, until, timeout=20):
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        text = ec2.get_console_output(InstanceId=iid).get("Output", "")
        if until in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{until!r} not in the console of {iid}: {text}")


def launch(ec2, script):
    image = ec2.describe_images()["Images"][0]["ImageId"]
    r = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, UserData=script)
    return r["Instances"][0]["InstanceId"]


def pids_with(marker):
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_health_reports_process_driver(ec2):
    import json
    import urllib.request
    with urllib.request.urlopen(ec2.meta.endpoint_url + "/_nimbus/health") as r:
        assert json.load(r)["instance_driver"] == "process"


def test_user_data_metadata_and_cleanup(ec2):
    marker = f"nimbus-process-{uuid.uuid4().hex[:10]}"
    script = f"""#!/bin/bash
echo "user data ran as $(id -u)"
E=$AWS_EC2_METADATA_SERVICE_ENDPOINT
echo "v1 id: $(curl -s ${{E}}latest/meta-data/instance-id)"
T=$(curl -s -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" ${{E}}latest/api/token)
echo "v2 ip: $(curl -s -H "X-aws-ec2-metadata-token: $T" ${{E}}latest/meta-data/local-ipv4)"
echo "user-data bytes: $(curl -s ${{E}}latest/user-data | wc -c)"
(exec -a {marker} sleep 600) &
"""
    iid = launch(ec2, script)
    out = console(ec2, iid, FINISHED)
    ip = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["PrivateIpAddress"]
    assert f"user data ran as {os.geteuid()}" in out
    assert f"v1 id: {iid}" in out
    assert f"v2 ip: {ip}" in out
    assert f"user-data bytes: {len(script.encode())}" in out
    assert pids_with(marker), "the user data's background process should keep running"
    ec2.stop_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert not pids_with(marker), "stopping must end every process of the instance"
    ec2.start_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    time.sleep(1)
    # User data runs on the first boot only.
    assert console(ec2, iid, FINISHED).count("user data ran as") == 1
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert not pids_with(marker)


# --- the metadata service's per-instance secret -------------------------------------
# With the process driver every instance's metadata service is one loopback port that
# any local user can reach, and `ps` shows instance ids. The URL an instance gets holds
# a secret (in its environment only); without it the port answers 404 and nothing else.

EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
VENV_BIN = os.path.dirname(sys.executable)  # the test venv's aws CLI, run by the instance
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url):
    """(status, body) of a GET, errors included."""
    try:
        with NO_PROXY.open(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def environ_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)


def endpoint_of(marker):
    """The metadata endpoint in the environment of the instance process named `marker`."""
    deadline = time.time() + 10
    while time.time() < deadline:
        for pid in pids_with(marker):
            try:
                env = environ_of(pid)
            except OSError:
                continue
            if b"AWS_EC2_METADATA_SERVICE_ENDPOINT" in env:
                return env[b"AWS_EC2_METADATA_SERVICE_ENDPOINT"].decode()
        time.sleep(0.1)
    raise AssertionError(f"no process {marker} with a metadata endpoint")


def all_cmdlines():
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    out.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return out


@pytest.fixture
def profile(ec2):
    iam = make_client(ec2.meta.endpoint_url, "iam")
    name = f"imds-{uuid.uuid4().hex[:8]}"
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    yield name
    iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=name)
    iam.delete_instance_profile(InstanceProfileName=name)
    iam.delete_role(RoleName=name)


def test_metadata_credentials_need_the_instance_secret(ec2, profile):
    marker = f"nimbus-imds-{uuid.uuid4().hex[:10]}"
    script = f"""#!/bin/bash
E=$AWS_EC2_METADATA_SERVICE_ENDPOINT
echo "role: $(curl -s ${{E}}latest/meta-data/iam/security-credentials/)"
echo "caller: $({VENV_BIN}/aws sts get-caller-identity --query Arn --output text 2>&1)"
(exec -a {marker} sleep 600) &
"""
    image = ec2.describe_images()["Images"][0]["ImageId"]
    iid = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, UserData=script,
                            IamInstanceProfile={"Name": profile})["Instances"][0]["InstanceId"]
    try:
        # The instance itself: the SDK/CLI finds its role's credentials, as before.
        out = console(ec2, iid, FINISHED, timeout=60)
        assert f"role: {profile}" in out
        assert f"caller: arn:aws:sts::000000000000:assumed-role/{profile}/{iid}" in out

        endpoint = endpoint_of(marker)
        base, secret = endpoint.rstrip("/").rsplit("/", 1)
        assert base.startswith("http://127.0.0.1:")
        assert len(secret) >= 32 and iid not in endpoint
        # The id is in `ps` for anyone to see; the secret is in no command line.
        cmdlines = all_cmdlines()
        assert any(iid in c for c in cmdlines)
        assert not any(secret in c for c in cmdlines)

        creds = "latest/meta-data/iam/security-credentials/"
        # With the secret (what the instance has): the role and its credentials.
        status, body = http_get(f"{base}/{secret}/{creds}")
        assert (status, body) == (200, profile)
        status, body = http_get(f"{base}/{secret}/{creds}{profile}")
        assert status == 200 and json.loads(body)["AccessKeyId"]
        # From the host with the instance id, no secret or a wrong one: 404 and nothing more.
        wrong = format(int(secret, 16) ^ 1, "x").rjust(len(secret), "0")
        for prefix in (iid, f"{iid}/{'0' * len(secret)}", wrong, secret[:-1], "", f"{secret}x"):
            for path in (creds, f"{creds}{profile}", "latest/meta-data/instance-id", "latest/user-data"):
                status, body = http_get(f"{base}/{prefix}/{path}")
                assert status == 404, (prefix, path, status, body)
                assert "404 - Not Found" in body
                for leaked in (profile, iid, "AccessKeyId", "Token"):
                    assert leaked not in body, (prefix, path, body)
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def test_metadata_secret_survives_a_restart(tmp_path):
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("starts a nimbus of its own")
    server = Server("--instance-driver", "process", data_dir=str(tmp_path / "data")).start()
    marker = f"nimbus-imds-{uuid.uuid4().hex[:10]}"
    # A per-boot script (under the instance's root, the user data's working directory)
    # starts the marked process at every boot; the user data only runs on the first.
    script = f"""#!/bin/bash
mkdir -p var/lib/cloud/scripts/per-boot
printf '#!/bin/bash\\n(exec -a {marker} sleep 600) &\\n' > var/lib/cloud/scripts/per-boot/marker
chmod +x var/lib/cloud/scripts/per-boot/marker
(exec -a {marker} sleep 600) &
"""
    try:
        ec2 = make_client(server.endpoint, "ec2")
        iid = launch(ec2, script)
        console(ec2, iid, FINISHED)
        before = endpoint_of(marker)
        server.stop()
        assert not pids_with(marker)
        server.start()
        # The running instance is brought back with the same secret in its endpoint.
        ec2 = make_client(server.endpoint, "ec2")
        ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        deadline = time.time() + 20
        while not pids_with(marker) and time.time() < deadline:
            time.sleep(0.1)
        after = endpoint_of(marker)
        assert after.rsplit("/", 2)[1] == before.rsplit("/", 2)[1]
        status, body = http_get(f"{after}latest/meta-data/instance-id")
        assert (status, body) == (200, iid)
    finally:
        server.stop()
