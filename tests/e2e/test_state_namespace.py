"""A state load restarts nimbus in place (it execs itself on the loaded state): as root
with the namespace driver, the stop before the exec takes the `nimbus0` bridge and its
lock file away like any clean stop, and the new process must make them again for the
instances that boot again. Runs a nimbus of its own in a fresh network namespace
(`unshare --net`), since one nimbus per network namespace owns the bridge.

Checks: an instance serves HTTP at its private address; `nimbus state save` then
`nimbus state load`; nimbus restarted (same process, new start time); the instance is
running and serving again at the same address over a bridge made by the new process;
a SIGTERM then leaves no bridge, veth, lock file, cgroup or instance process.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import nimbus_bin

SCRIPT = r'''
import json, os, signal, socket, subprocess, sys, time, traceback, urllib.request
import boto3, botocore.config

nimbus, data_dir, mark = sys.argv[1], sys.argv[2], sys.argv[3]
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
result = {}
proc = None


def get(url, timeout=2):
    try:
        with HTTP.open(url, timeout=timeout) as r:
            return r.read().decode()
    except (OSError, ValueError):
        return None


def poll(fn, ok, timeout=30, interval=0.2):
    deadline = time.time() + timeout
    while True:
        r = fn()
        if ok(r) or time.time() > deadline:
            return r
        time.sleep(interval)


def host_side(iid):
    with open("/proc/net/dev") as f:
        links = sorted(l.split(":")[0].strip() for l in f.readlines()[2:])
    netns = os.stat("/proc/self/ns/net").st_ino
    cgroups = [d for d in [f"/sys/fs/cgroup/nimbus/{iid}"] + [f"/sys/fs/cgroup/{c}/nimbus/{iid}"
               for c in ("cpu", "cpuacct", "memory", "freezer")] if os.path.isdir(d)]
    with open("/proc/self/mountinfo") as f:
        # none under `ip netns exec`, which mounts a sysfs of its own over /sys
        cgroupfs = any(l.split(" - ")[1].startswith(("cgroup ", "cgroup2 ")) for l in f)
    return {"links": links, "lock": os.path.exists(f"/run/nimbus-bridge-{netns}.lock"), "cgroups": cgroups,
            "cgroupfs": cgroupfs}


def instance_processes():
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except (OSError, ValueError):
            continue
        if "__instance-init" in args and any(data_dir in a for a in args):
            found.append(" ".join(args).strip())
    return found


def health():
    return json.loads(get(endpoint + "/_nimbus/health", 1) or "null")


USER_DATA = """#!/bin/bash
mkdir -p /srv/www /var/lib/cloud/scripts/per-boot
printf '%s' 'MARK' > /srv/www/index.txt
cat > /var/lib/cloud/scripts/per-boot/50-web <<'WEB'
#!/bin/bash
nohup /usr/bin/python3 -m http.server 80 --directory /srv/www >/dev/null 2>&1 &
WEB
chmod 755 /var/lib/cloud/scripts/per-boot/50-web
/var/lib/cloud/scripts/per-boot/50-web
""".replace("MARK", mark)

try:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    log = open(data_dir + ".log", "ab")
    proc = subprocess.Popen([nimbus, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", data_dir,
                             "--instance-driver", "namespace"], stdout=log, stderr=log)
    first = poll(health, lambda h: h is not None, timeout=15)
    ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                       aws_secret_access_key="test", config=botocore.config.Config(retries={"max_attempts": 2}))
    image = ec2.describe_images()["Images"][0]["ImageId"]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    sg = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc["VpcId"])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": vpc["CidrBlock"]}]}])
    r = ec2.run_instances(ImageId=image, InstanceType="t2.micro", MinCount=1, MaxCount=1,
                          SecurityGroupIds=[sg], UserData=USER_DATA)
    iid, ip = r["Instances"][0]["InstanceId"], r["Instances"][0]["PrivateIpAddress"]
    result["served_before"] = poll(lambda: get(f"http://{ip}/index.txt"), lambda b: b == mark)
    result["host_before"] = host_side(iid)

    archive = data_dir + ".tar"
    env = dict(os.environ, NIMBUS_ROOT_ACCESS_KEY_ID="test", NIMBUS_ROOT_SECRET_ACCESS_KEY="test")
    for verb in ("save", "load"):
        p = subprocess.run([nimbus, "state", verb, archive, "--endpoint", endpoint],
                           capture_output=True, text=True, env=env, timeout=120)
        result[verb] = [p.returncode, p.stdout + p.stderr]
    second = poll(health, lambda h: h is not None and h["started_ms"] != first["started_ms"], timeout=30)
    result["restarted"] = second is not None and second["started_ms"] != first["started_ms"]
    result["same_process"] = proc.poll() is None

    def state():
        return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]

    result["state_after_load"] = poll(state, lambda s: s == "running")
    result["served_after_load"] = poll(lambda: get(f"http://{ip}/index.txt"), lambda b: b == mark)
    result["host_after_load"] = host_side(iid)

    proc.send_signal(signal.SIGTERM)
    result["rc"] = proc.wait(timeout=30)
    result["host_after_stop"] = host_side(iid)
    result["processes_after_stop"] = poll(instance_processes, lambda p: not p, timeout=5)
except Exception:
    result["error"] = traceback.format_exc()
    try:
        result["log"] = open(data_dir + ".log", errors="replace").read()[-4000:]
    except OSError:
        pass
finally:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
print(json.dumps(result))
'''


def test_restart_in_place_makes_the_bridge_again_and_a_stop_removes_it(tmp_path):
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("starts a nimbus of its own")
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip for a private network namespace")
    script = tmp_path / "load.py"
    script.write_text(SCRIPT)
    data_dir = tempfile.mkdtemp(prefix="nimbus-e2e-state-ns-")
    mark = os.urandom(6).hex()
    try:
        p = subprocess.run(["unshare", "--net", "--", sys.executable, str(script), nimbus_bin(), data_dir, mark],
                           capture_output=True, text=True, timeout=240)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        for extra in (".log", ".tar"):
            if os.path.exists(data_dir + extra):
                os.remove(data_dir + extra)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert "error" not in r, f"{r['error']}\nnimbus log:\n{r.get('log', '')}"
    assert r["served_before"] == mark
    before = r["host_before"]
    assert "nimbus0" in before["links"] and before["lock"], before
    assert before["cgroups"] or not before["cgroupfs"], before
    assert r["save"][0] == 0 and r["load"][0] == 0, (r["save"], r["load"])
    assert "nimbus restarted on it" in r["load"][1], r["load"]
    assert r["restarted"] and r["same_process"]
    # The new process image made the bridge again: the instance serves at its address.
    assert r["state_after_load"] == "running"
    assert r["served_after_load"] == mark
    after = r["host_after_load"]
    assert "nimbus0" in after["links"] and after["lock"], after
    assert after["cgroups"] or not after["cgroupfs"], after
    # A clean stop leaves nothing on the host.
    assert r["rc"] == 0
    stopped = r["host_after_stop"]
    assert (stopped["links"], stopped["lock"], stopped["cgroups"]) == (["lo"], False, []), stopped
    assert r["processes_after_stop"] == []
