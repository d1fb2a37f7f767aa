"""EC2 with the process driver (`nimbus serve --instance-driver process`), the one used
where namespaces are not available: an instance is a supervised process tree in its own
directory. It must still run its user data once, show it in GetConsoleOutput, give the
metadata service through AWS_EC2_METADATA_SERVICE_ENDPOINT (v1 and v2), and end every
process it started when it stops or terminates. Runs a nimbus of its own.
"""
import base64
import os
import subprocess
import time
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
