"""EC2, compute: instances that really run (nimbus's namespace driver). What happens
inside an instance, observed from inside it and from the host:

1. user data runs as root at first boot (cloud-init style), its output is on the
   console (GetConsoleOutput through boto3 and the aws CLI) before cloud-init's
   "finished" line, cloud-init's state is in /var/lib/cloud, and a web server it
   starts in the background serves at the private IP and outlives the boot;
2. isolation: the instance's host name, its own PID 1 (nimbus's init) and process
   table, its own network interfaces, a fresh /tmp and an overlay root whose writes
   stay out of the host's file system;
3. the metadata service at 169.254.169.254: IMDSv1 paths against DescribeInstances /
   DescribeKeyPairs / IAM, the raw user data, the instance identity document, the IAM
   paths, instance tags (InstanceMetadataTags), IMDSv2 session tokens (TTL checks,
   invalid and expired tokens, tokens bound to their instance) and HttpTokens=required;
4. instance profile credentials: the aws CLI inside, with no keys anywhere in the
   instance, is the role's assumed-role session named after the instance, reads an
   S3 object the test uploaded and finds its own tags through DescribeTags;
5. instance types as cgroup limits (memory, CPU quota), applied again after
   Stop / ModifyInstanceAttribute(InstanceType) / Start, with the writable layer kept;
6. RebootInstances: the process tree restarts, per-boot scripts run again, the user
   data does not, /tmp is fresh and the disk is kept;
7. two instances in different subnets reach each other's web servers by private IP;
8. a nimbus restart (SIGINT) stops the instances with it and brings them back, and a
   kill -9 leaves no instance process behind; after either, the instance runs again
   at the same address without rerunning its user data. This one runs a nimbus of
   its own in a fresh network namespace (`unshare --net`), since one nimbus per
   network namespace owns the VPC bridge. A clean stop also takes the bridge, its
   lock file and the instance's cgroups away (a kill -9 cannot: the next start adopts
   the bridge it left, and its clean stop removes it).

How the tests look inside: the user data (`boot_script`) installs a per-boot script
that starts `python3 -m http.server 80` on /srv/www and a small command agent on
port 8080 (POST a bash script, get back its exit code and output as JSON), and runs
it once itself; the test process reaches both at the instance's private IP. Security
groups are enforced, so every instance is in a group of the module that admits the
VPC (the host's gateway addresses and the other instances) on ports 80 and 8080.

Runs only against a nimbus whose instances use the namespace driver (Linux, root):
the module skips on a peer emulator (moto) and when /_nimbus/health reports another
driver. Every instance carries TAG_KEY=<unique value> and is terminated by a
finalizer; the module launches five instances (one shared, read-only "web"
instance and four that tests change) plus one in the restart test's own nimbus.
"""
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import types
import urllib.error
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError, WaiterError

from conftest import REGION, aws_cli, make_client, nimbus_bin
from s3_helpers import ON_MOTO

pytestmark = pytest.mark.skipif(ON_MOTO, reason="moto runs no instances")

TAG_KEY = "nimbus-e2e-runtime"       # every instance gets it, with a unique value
FAST = {"Delay": 1, "MaxAttempts": 30}
BOOT_TIMEOUT = 20                      # seconds from running to cloud-init's "finished"
FINISHED = re.compile(r"Cloud-init v\. 24\.1\.3 finished at")
AGENT_PORT = 8080
AGENT_TIMEOUT = 10                     # seconds from "finished" until the agent must answer
GIB = 1024 ** 3
VENV_BIN = os.path.dirname(sys.executable)  # the test venv's aws CLI, also visible inside
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
# the host's own HTTP proxy settings must not apply to private addresses
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --- what runs inside -------------------------------------------------------------------

# The command agent: POST / with a bash script as the body -> {"rc", "out", "err"}.
AGENT = r'''
import http.server, json, subprocess

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        script = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        try:
            p = subprocess.run(["/bin/bash", "-c", script], capture_output=True, text=True, timeout=90)
            result = {"rc": p.returncode, "out": p.stdout, "err": p.stderr}
        except subprocess.TimeoutExpired:
            result = {"rc": -1, "out": "", "err": "timed out"}
        body = json.dumps(result).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
'''

# A metadata client run inside: argv[1] is a JSON list of {method, path, headers};
# prints a JSON list of {status, headers, body}.
IMDS_CLIENT = r'''
import json, sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
out = []
for q in json.loads(sys.argv[1]):
    req = urllib.request.Request("http://169.254.169.254" + q["path"], method=q["method"], headers=q["headers"])
    try:
        with opener.open(req, timeout=10) as r:
            out.append({"status": r.status, "headers": {k.lower(): v for k, v in r.headers.items()},
                        "body": r.read().decode("latin-1")})
    except urllib.error.HTTPError as e:
        out.append({"status": e.code, "headers": {k.lower(): v for k, v in e.headers.items()},
                    "body": e.read().decode("latin-1")})
print(json.dumps(out))
'''


def boot_script(marker, web_text, extra=""):
    """User data: records that it ran (console line with the uid, a counter file),
    writes /srv/www/index.txt, installs the agent and the metadata client, installs a
    per-boot script that starts the web server and the agent in the background, runs
    `extra`, then runs the per-boot script once itself (per-boot scripts installed by
    the user data only run from the next boot on)."""
    return "\n".join([
        "#!/bin/bash",
        f"export PATH={VENV_BIN}:$PATH",
        f'echo "user-data {marker} ran as uid=$(id -u) user=$(id -un)"',
        "echo run >> /var/lib/e2e-user-data-runs",
        "mkdir -p /srv/www /opt/e2e /var/lib/cloud/scripts/per-boot",
        f"printf '%s' '{web_text}' > /srv/www/index.txt",
        "cat > /opt/e2e/agent.py <<'AGENT_EOF'",
        AGENT.strip(),
        "AGENT_EOF",
        "cat > /opt/e2e/imds.py <<'IMDS_EOF'",
        IMDS_CLIENT.strip(),
        "IMDS_EOF",
        "cat > /var/lib/cloud/scripts/per-boot/50-e2e <<'PERBOOT_EOF'",
        "#!/bin/bash",
        f"export PATH={VENV_BIN}:$PATH",
        f'echo "per-boot {marker} eth0 $(cat /sys/class/net/eth0/address)"',
        "echo boot >> /var/lib/e2e-boots",
        "nohup /usr/bin/python3 -m http.server 80 --directory /srv/www >/dev/null 2>&1 &",
        "nohup /usr/bin/python3 /opt/e2e/agent.py >/dev/null 2>&1 &",
        "PERBOOT_EOF",
        "chmod 755 /var/lib/cloud/scripts/per-boot/50-e2e",
        extra,
        "/var/lib/cloud/scripts/per-boot/50-e2e",
        f'echo "user-data {marker} done"',
        "",
    ])


# --- helpers ------------------------------------------------------------------------------

def http_get(url, timeout=3):
    """(status, body) of a GET from the test process; None when nothing answers."""
    try:
        with HTTP.open(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None


def neighbour(ip):
    """The host's ARP entry for an address (for failure messages)."""
    try:
        return subprocess.run(["ip", "neigh", "show", ip], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def poll(fn, ok, timeout=BOOT_TIMEOUT, interval=0.2):
    deadline = time.time() + timeout
    while True:
        r = fn()
        if ok(r) or time.time() > deadline:
            return r
        time.sleep(interval)


def describe(ec2, iid):
    [res] = ec2.describe_instances(InstanceIds=[iid])["Reservations"]
    [i] = res["Instances"]
    return i


def wait(ec2, name, *ids):
    ec2.get_waiter(f"instance_{name}").wait(InstanceIds=list(ids), WaiterConfig=FAST)


def terminate(ec2, ids):
    ids = [i for i in ids if i]
    for iid in ids:
        try:
            ec2.terminate_instances(InstanceIds=[iid])
        except ClientError:
            pass
    if ids:
        try:
            wait(ec2, "terminated", *ids)
        except (WaiterError, ClientError):
            pass


class Box:
    """One launched instance: its API view, its console, its web server and agent."""

    def __init__(self, ec2, resp, marker, web_text, user_data):
        self.ec2, self.resp, self.marker, self.web_text, self.user_data = ec2, resp, marker, web_text, user_data
        [self.launched] = resp["Instances"]
        self.id = self.launched["InstanceId"]

    def describe(self):
        return describe(self.ec2, self.id)

    @property
    def ip(self):
        return self.launched["PrivateIpAddress"]

    def console(self):
        return self.ec2.get_console_output(InstanceId=self.id).get("Output", "")

    def finished(self):
        return len(FINISHED.findall(self.console()))

    def wait_booted(self, boots=1):
        """Until the console shows the `boots`-th "finished" line, then until the agent
        (started by that boot) answers at the private IP: within AGENT_TIMEOUT seconds."""
        out = poll(self.console, lambda c: len(FINISHED.findall(c)) >= boots)
        assert len(FINISHED.findall(out)) >= boots, f"boot {boots} did not finish:\n{out[-3000:]}"
        started = time.time()
        up = poll(lambda: self.try_sh("true", timeout=2), lambda r: r is not None and r["rc"] == 0,
                  timeout=AGENT_TIMEOUT)
        assert up is not None and up["rc"] == 0, (
            f"boot {boots} of {self.id} finished but nothing answers at {self.ip}:{AGENT_PORT} "
            f"for {time.time() - started:.1f} s (host neighbour entry: {neighbour(self.ip)!r})\n{out[-3000:]}")

    def try_sh(self, script, timeout=60):
        req = urllib.request.Request(f"http://{self.ip}:{AGENT_PORT}/", data=script.encode(), method="POST")
        try:
            with HTTP.open(req, timeout=timeout) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def sh(self, script, timeout=60):
        """Runs a bash script inside; returns its stdout (exit code must be 0)."""
        r = self.try_sh(script, timeout)
        assert r is not None, f"the agent of {self.id} at {self.ip} does not answer"
        assert r["rc"] == 0, f"inside {self.id}: {script!r} exited {r['rc']}: {r['err']}{r['out']}"
        return r["out"]

    def rc(self, script):
        r = self.try_sh(script)
        assert r is not None, f"the agent of {self.id} at {self.ip} does not answer"
        return r["rc"]

    def imds(self, *requests):
        """Metadata requests made inside: each (method, path, headers) -> namespace(status, headers, body)."""
        reqs = [{"method": m, "path": p, "headers": h or {}} for m, p, h in requests]
        out = self.sh(f"/usr/bin/python3 /opt/e2e/imds.py {shlex.quote(json.dumps(reqs))}")
        return [types.SimpleNamespace(**r) for r in json.loads(out)]

    def get(self, path, token=None):
        [r] = self.imds(("GET", path, {"X-aws-ec2-metadata-token": token} if token else None))
        return r

    def web(self, path="/index.txt", timeout=3):
        return http_get(f"http://{self.ip}{path}", timeout)

    def limits(self):
        """(memory limit in bytes, CPU quota in us, CPU period in us) as seen inside,
        from cgroup v1 (memory.limit_in_bytes, cpu.cfs_*) or v2 (memory.max, cpu.max)."""
        out = self.sh(
            "if [ -e /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then\n"
            "  echo $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
            " $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)\n"
            "else\n"
            "  echo $(cat /sys/fs/cgroup/memory.max) $(cat /sys/fs/cgroup/cpu.max)\n"
            "fi")
        mem, quota, period = out.split()
        return int(mem), int(quota), int(period)


class Launcher:
    """launch(extra user data, **run_kwargs) -> Box, booted by boot_script with a fresh
    marker; instances are in the module's security group (web and agent ports open to
    the VPC), carry TAG_KEY=<unique value> and are terminated by cleanup()."""

    def __init__(self, ec2, group):
        self.ec2, self.group, self.made = ec2, group, []

    def __call__(self, extra="", web_text=None, tags=None, **kw):
        marker = uniq("m")
        web_text = web_text or uniq("web")
        user_data = boot_script(marker, web_text, extra)
        kw.setdefault("ImageId", self.ec2.describe_images()["Images"][0]["ImageId"])
        kw.setdefault("InstanceType", "t2.micro")
        kw.setdefault("SecurityGroupIds", [self.group.id])
        all_tags = {TAG_KEY: uniq("t"), **(tags or {})}
        resp = self.ec2.run_instances(
            MinCount=1, MaxCount=1, UserData=user_data,
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}], **kw)
        box = Box(self.ec2, resp, marker, web_text, user_data)
        box.tags = all_tags
        self.made.append(box.id)
        return box

    def cleanup(self):
        terminate(self.ec2, self.made)


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def health(endpoint):
    """Skips the module unless the server runs instances with the namespace driver."""
    try:
        with HTTP.open(endpoint + "/_nimbus/health", timeout=5) as r:
            doc = json.loads(r.read())
    except (OSError, ValueError) as e:
        pytest.skip(f"no nimbus health document at {endpoint}: {e}")
    if doc.get("edition") != "nimbus":
        pytest.skip("not a nimbus")
    driver = doc.get("instance_driver")
    if driver is None:  # older health documents: the driver is namespace when root
        driver = "namespace" if sys.platform.startswith("linux") and os.geteuid() == 0 else "process"
    if driver != "namespace":
        pytest.skip(f"instances run with the {driver} driver, not namespace")
    return doc


@pytest.fixture(scope="module")
def ec2(endpoint):
    return make_client(endpoint, "ec2")


@pytest.fixture(scope="module")
def iam(endpoint):
    return make_client(endpoint, "iam")


@pytest.fixture(scope="module")
def account(endpoint):
    return make_client(endpoint, "sts").get_caller_identity()["Account"]


@pytest.fixture(scope="module")
def group(ec2, health):
    """A security group in the default VPC that lets the VPC (the host's gateway
    addresses and other instances) reach the web server (80) and the agent (8080);
    security groups are enforced, and the default group admits only its own members."""
    [vpc] = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    name = uniq("nimbus-e2e-runtime")
    gid = ec2.create_security_group(GroupName=name, Description="nimbus e2e runtime: web and agent",
                                    VpcId=vpc["VpcId"])["GroupId"]
    try:
        ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
             "IpRanges": [{"CidrIp": vpc["CidrBlock"], "Description": "the VPC and the host"}]}
            for port in (80, AGENT_PORT)])
        yield types.SimpleNamespace(id=gid, name=name, vpc=vpc["VpcId"])
    finally:
        try:  # the instances are terminated by now (their fixtures end first)
            ec2.delete_security_group(GroupId=gid)
        except ClientError:
            pass


@pytest.fixture
def launch(ec2, group):
    launcher = Launcher(ec2, group)
    yield launcher
    launcher.cleanup()


@pytest.fixture(scope="module")
def web(ec2, iam, group):
    """The shared, read-only instance: t3.micro, a key pair, an instance profile (role
    + profile made through IAM), instance tags in the metadata, tags Name and Role.
    Booted (the agent answers) before any test uses it; terminated at the end."""
    key_name = uniq("kp")
    role, profile = uniq("role"), uniq("prof")
    launcher = Launcher(ec2, group)
    made = []
    try:
        ec2.create_key_pair(KeyName=key_name)
        made.append("key")
        [kp] = ec2.describe_key_pairs(KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"]
        role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))["Role"]["Arn"]
        made.append("role")
        prof = iam.create_instance_profile(InstanceProfileName=profile)["InstanceProfile"]
        made.append("profile")
        iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
        made.append("link")
        tags = {"Name": uniq("web"), "Role": uniq("webserver")}
        box = launcher(tags=tags, InstanceType="t3.micro", KeyName=key_name,
                       IamInstanceProfile={"Name": profile},
                       MetadataOptions={"InstanceMetadataTags": "enabled"})
        wait(ec2, "running", box.id)
        box.wait_booted()
        yield types.SimpleNamespace(
            box=box, group=group.name, key_name=key_name, public_key=kp["PublicKey"], role=role, role_arn=role_arn,
            profile=profile, profile_arn=prof["Arn"], profile_id=prof["InstanceProfileId"])
    finally:
        launcher.cleanup()
        for step, fn, kw in [
            ("link", iam.remove_role_from_instance_profile, {"InstanceProfileName": profile, "RoleName": role}),
            ("profile", iam.delete_instance_profile, {"InstanceProfileName": profile}),
            ("role", iam.delete_role, {"RoleName": role}),
            ("key", ec2.delete_key_pair, {"KeyName": key_name}),
        ]:
            if step in made:
                try:
                    fn(**kw)
                except ClientError:
                    pass


# --- 1. user data, console, a web server ----------------------------------------------------

def test_user_data_runs_as_root_with_console_output(ec2, endpoint, web):
    box = web.box
    out = box.console()
    ran = f"user-data {box.marker} ran as uid=0 user=root"
    done = f"user-data {box.marker} done"
    assert ran in out, out[-3000:]
    assert out.count(ran) == 1
    # cloud-init reports "finished" only after the user data script has exited
    finished = FINISHED.search(out)
    assert finished and out.index(ran) < out.index(done) < finished.start(), out[-3000:]
    r = ec2.get_console_output(InstanceId=box.id)
    assert r["InstanceId"] == box.id
    # the aws CLI decodes the same console
    cli = aws_cli(endpoint, "ec2", "get-console-output", "--instance-id", box.id)
    assert cli["InstanceId"] == box.id
    assert ran in cli["Output"] and FINISHED.search(cli["Output"])


def test_cloud_init_state_inside(web):
    box = web.box
    base = f"/var/lib/cloud/instances/{box.id}"
    assert box.sh(f"cat {base}/user-data.txt") == box.user_data
    assert box.rc(f"test -f {base}/sem/config_scripts_user") == 0
    assert box.sh("readlink /var/lib/cloud/instance").strip() == base
    assert box.rc("test -f /var/lib/cloud/instance/boot-finished") == 0
    assert box.sh("cat /var/lib/e2e-user-data-runs") == "run\n"


def test_web_server_started_by_user_data_serves_private_ip(web):
    box = web.box
    assert box.web() == (200, box.web_text)
    assert box.web("/no-such-file")[0] == 404
    # the server outlived the boot: cloud-init has finished and it still runs, adopted by PID 1
    assert box.finished() == 1
    procs = [line.split(None, 2) for line in box.sh("ps -eo pid=,ppid=,args=").splitlines()]
    servers = [p for p in procs if "python3 -m http.server 80" in p[2]]
    assert len(servers) == 1, procs
    assert servers[0][1] == "1", servers  # orphaned by the exited user data, reaped by init
    assert box.web() == (200, box.web_text)


# --- 2. isolation -----------------------------------------------------------------------------

def test_hostname_is_private_dns_name(web):
    box = web.box
    dns = box.describe()["PrivateDnsName"]
    short = dns.split(".")[0]
    assert short == "ip-" + box.ip.replace(".", "-")
    assert box.sh("hostname").strip() == short
    assert box.sh("cat /etc/hostname").strip() == short
    assert box.sh("hostname -f").strip() == dns  # /etc/hosts names the private address


def test_own_pid_namespace(web):
    box = web.box
    cmdline = box.sh("tr '\\0' '\\n' < /proc/1/cmdline").split("\n")
    assert os.path.basename(cmdline[0]) == "nimbus" and cmdline[1] == "__instance-init", cmdline
    with open("/proc/1/cmdline", "rb") as f:
        host_init = f.read().split(b"\0")[0].decode()
    assert cmdline[0] != host_init
    procs = [line.split(None, 1) for line in box.sh("ps -eo pid=,args=").splitlines()]
    assert 1 in {int(p[0]) for p in procs}
    assert len(procs) < 15, procs  # init, the web server, the agent, this shell and ps
    # nothing of the host: not this test process, not the nimbus serving it
    assert not [p for p in procs if "pytest" in p[1] or "nimbus serve" in p[1]], procs
    assert len(box.sh("ls -d /proc/[0-9]*").split()) < 15


def test_fresh_tmp_and_private_root(web, health):
    box = web.box
    name = uniq("nimbus-e2e-host")
    host_file = os.path.join("/tmp", name)
    with open(host_file, "w") as f:
        f.write("host side")
    inside = uniq("nimbus-e2e-inside")
    try:
        assert box.sh("stat -f -c %T /tmp").strip() == "tmpfs"
        assert box.rc(f"test -e /tmp/{name}") == 1
        assert name not in box.sh("ls -A /tmp")
        # and the other way round: the instance's /tmp and its root are its own
        box.sh(f"echo inside > /tmp/{inside} && echo inside > /etc/{inside}")
        assert box.sh(f"cat /etc/{inside}") == "inside\n"
        assert not os.path.exists(f"/tmp/{inside}")
        assert not os.path.exists(f"/etc/{inside}")
        assert box.sh("stat -f -c %T /").strip() == "overlayfs"
        # the server's data directory is out of sight
        if health.get("data_dir"):
            assert box.rc(f"test -e {health['data_dir']}") == 1
    finally:
        os.remove(host_file)
        box.try_sh(f"rm -f /tmp/{inside} /etc/{inside}")


def test_own_network_interfaces(web):
    box = web.box
    assert sorted(box.sh("ls /sys/class/net").split()) == ["eth0", "lo"]
    addrs = box.sh("ip -4 -o addr show | awk '{print $2, $4}'").split("\n")
    assert sorted(a for a in addrs if a) == sorted(["lo 127.0.0.1/8", f"eth0 {box.ip}/20"])


def test_eth0_has_the_network_interface_mac(web):
    # On EC2 eth0's hardware address is the network interface's MacAddress, the one the
    # metadata service keys network/interfaces/macs/<mac>/ by (cloud-init and
    # ec2-net-utils look eth0's address up there), and it stays the same across
    # reboots and stop / start, so neighbours' ARP entries for the private IP stay valid.
    box = web.box
    api_mac = box.describe()["NetworkInterfaces"][0]["MacAddress"]
    assert box.get("/latest/meta-data/mac").body == api_mac
    assert box.sh("cat /sys/class/net/eth0/address").strip() == api_mac


# --- 3. the metadata service --------------------------------------------------------------

def test_metadata_v1_matches_the_api(ec2, web):
    box = web.box
    i = box.describe()
    [res] = ec2.describe_instances(InstanceIds=[box.id])["Reservations"]
    expected = {
        "/latest/meta-data/instance-id": box.id,
        "/latest/meta-data/ami-id": i["ImageId"],
        "/latest/meta-data/instance-type": "t3.micro",
        "/latest/meta-data/local-ipv4": i["PrivateIpAddress"],
        "/latest/meta-data/local-hostname": i["PrivateDnsName"],
        "/latest/meta-data/hostname": i["PrivateDnsName"],
        "/latest/meta-data/placement/availability-zone": i["Placement"]["AvailabilityZone"],
        "/latest/meta-data/placement/region": REGION,
        "/latest/meta-data/security-groups": "\n".join(g["GroupName"] for g in i["SecurityGroups"]),
        "/latest/meta-data/mac": i["NetworkInterfaces"][0]["MacAddress"],
        "/latest/meta-data/reservation-id": res["ReservationId"],
    }
    got = box.imds(*[("GET", p, None) for p in expected])
    assert {p: (r.status, r.body) for p, r in zip(expected, got)} == {p: (200, v) for p, v in expected.items()}
    assert [g["GroupName"] for g in i["SecurityGroups"]] == [web.group]
    # directory listings
    top = box.get("/latest/meta-data/")
    assert top.status == 200
    assert {"ami-id", "instance-id", "instance-type", "local-ipv4", "placement/", "iam/",
            "public-keys/", "tags/"} <= set(top.body.split("\n"))
    # unknown paths
    for path in (f"/latest/meta-data/{uniq('no-such-key')}", "/latest/nothing-here", "/2009-nope/x"):
        assert box.get(path).status == 404, path


def test_metadata_public_key(web):
    box = web.box
    r = box.get("/latest/meta-data/public-keys/0/openssh-key")
    assert r.status == 200
    fields = r.body.split()
    assert fields[:2] == web.public_key.split()[:2]
    assert fields[-1] == web.key_name
    assert box.get("/latest/meta-data/public-keys/").body == f"0={web.key_name}"
    # and root's authorized_keys holds it
    assert " ".join(web.public_key.split()[:2]) in box.sh("cat /root/.ssh/authorized_keys")


def test_metadata_user_data_and_identity_document(ec2, web, account):
    box = web.box
    ud = box.get("/latest/user-data")
    assert ud.status == 200
    assert ud.body == box.user_data
    i = box.describe()
    doc = box.get("/latest/dynamic/instance-identity/document")
    assert doc.status == 200
    d = json.loads(doc.body)
    assert (d["instanceId"], d["region"], d["privateIp"], d["accountId"], d["availabilityZone"],
            d["imageId"], d["instanceType"]) == (
        box.id, REGION, box.ip, account, i["Placement"]["AvailabilityZone"], i["ImageId"], "t3.micro")


def test_metadata_iam_paths(web):
    box = web.box
    info = box.get("/latest/meta-data/iam/info")
    assert info.status == 200
    doc = json.loads(info.body)
    assert doc["Code"] == "Success"
    assert doc["InstanceProfileArn"] == web.profile_arn
    assert doc["InstanceProfileId"] == web.profile_id
    listing = box.get("/latest/meta-data/iam/security-credentials/")
    assert (listing.status, listing.body) == (200, web.role)
    creds = box.get(f"/latest/meta-data/iam/security-credentials/{web.role}")
    assert creds.status == 200
    c = json.loads(creds.body)
    assert c["Code"] == "Success" and c["Type"] == "AWS-HMAC"
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", c["AccessKeyId"]), c["AccessKeyId"]
    assert c["SecretAccessKey"] and c["Token"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c["Expiration"])
    assert box.get(f"/latest/meta-data/iam/security-credentials/{uniq('other-role')}").status == 404


def test_metadata_instance_tags(web):
    box = web.box
    listing = box.get("/latest/meta-data/tags/instance")
    assert listing.status == 200
    assert set(listing.body.split("\n")) == set(box.tags)
    for k, v in box.tags.items():
        r = box.get(f"/latest/meta-data/tags/instance/{k}")
        assert (r.status, r.body) == (200, v), k
    assert box.get(f"/latest/meta-data/tags/instance/{uniq('nokey')}").status == 404


def test_imdsv2_tokens(web):
    box = web.box
    ttl = "X-aws-ec2-metadata-token-ttl-seconds"
    put, bad_none, bad_zero, bad_big, bad_text, short = box.imds(
        ("PUT", "/latest/api/token", {ttl: "21600"}),
        ("PUT", "/latest/api/token", None),
        ("PUT", "/latest/api/token", {ttl: "0"}),
        ("PUT", "/latest/api/token", {ttl: "21601"}),
        ("PUT", "/latest/api/token", {ttl: "soon"}),
        ("PUT", "/latest/api/token", {ttl: "2"}),
    )
    assert put.status == 200
    token = put.body
    assert token and "\n" not in token
    assert put.headers.get(ttl.lower()) == "21600"
    assert [r.status for r in (bad_none, bad_zero, bad_big, bad_text)] == [400, 400, 400, 400]
    assert short.status == 200
    with_token, invalid, v1, short_ok = box.imds(
        ("GET", "/latest/meta-data/instance-id", {"X-aws-ec2-metadata-token": token}),
        ("GET", "/latest/meta-data/instance-id", {"X-aws-ec2-metadata-token": token[:-3] + "xyz"}),
        ("GET", "/latest/meta-data/instance-id", None),
        ("GET", "/latest/meta-data/instance-id", {"X-aws-ec2-metadata-token": short.body}),
    )
    assert (with_token.status, with_token.body) == (200, box.id)
    assert (short_ok.status, short_ok.body) == (200, box.id)
    assert invalid.status == 401
    assert (v1.status, v1.body) == (200, box.id)  # HttpTokens optional: v1 still answers
    # a token ends with its TTL
    time.sleep(2.5)
    assert box.get("/latest/meta-data/instance-id", token=short.body).status == 401
    assert box.get("/latest/meta-data/instance-id", token=token).status == 200


def test_imdsv2_required(ec2, launch, web):
    box = launch(MetadataOptions={"HttpTokens": "required"})
    wait(ec2, "running", box.id)
    box.wait_booted()
    opts = box.describe()["MetadataOptions"]
    assert (opts["HttpTokens"], opts["InstanceMetadataTags"]) == ("required", "disabled")
    # a token of the web instance is no token for this one
    [foreign] = web.box.imds(("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}))
    assert foreign.status == 200
    tokenless, put, wrong = box.imds(
        ("GET", "/latest/meta-data/instance-id", None),
        ("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}),
        ("GET", "/latest/meta-data/instance-id", {"X-aws-ec2-metadata-token": foreign.body}),
    )
    assert tokenless.status == 401
    assert put.status == 200
    assert wrong.status == 401
    ok = box.get("/latest/meta-data/instance-id", token=put.body)
    assert (ok.status, ok.body) == (200, box.id)
    ud = box.get("/latest/user-data", token=put.body)
    assert (ud.status, ud.body) == (200, box.user_data)
    # instance tags are not in its metadata (InstanceMetadataTags disabled)
    assert box.get(f"/latest/meta-data/tags/instance/{TAG_KEY}", token=put.body).status == 404
    # no instance profile: no IAM paths
    assert box.get("/latest/meta-data/iam/info", token=put.body).status == 404


# --- 4. instance profile credentials --------------------------------------------------------

def test_instance_profile_credentials_in_the_aws_cli(endpoint, web, account):
    box = web.box
    # no key is given to the instance: not in its user data, environment or files
    for secret in ("aws_access_key_id", "aws_secret_access_key", "AKIA", "ASIA", "--access-key"):
        assert secret.lower() not in box.user_data.lower()
    assert box.sh("env | grep '^AWS_' || true") == ""
    assert box.rc("test -e /root/.aws/credentials") == 1
    config = box.sh("cat /root/.aws/config")
    port = endpoint.rsplit(":", 1)[1]
    assert f"region = {REGION}" in config
    assert re.search(rf"endpoint_url = http://172\.31\.\d+\.1:{port}\b", config), config
    assert "iam-role" in box.sh("aws configure list")

    ident = json.loads(box.sh("aws sts get-caller-identity --output json"))
    assert ident["Arn"] == f"arn:aws:sts::{account}:assumed-role/{web.role}/{box.id}"
    assert ident["Account"] == account
    assert ident["UserId"].endswith(f":{box.id}")


def test_instance_reads_s3_object(endpoint, web):
    # pattern 30: an instance reads an object with its instance profile
    s3 = make_client(endpoint, "s3")
    bucket, key = uniq("nimbus-e2e-runtime"), "config/app.json"
    body = json.dumps({"token": uniq("payload")})
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
        assert web.box.sh(f"aws s3 cp s3://{bucket}/{key} -") == body
        r = web.box.try_sh(f"aws s3 cp s3://{bucket}/missing-{uuid.uuid4().hex} -")
        assert r["rc"] != 0 and ("404" in r["err"] or "Not Found" in r["err"]), r
    finally:
        for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=o["Key"])
        s3.delete_bucket(Bucket=bucket)


def test_instance_reads_its_own_tags(web):
    # pattern 31: an instance finds its role from its own tags
    box = web.box
    out = box.sh(
        "IID=$(curl -s http://169.254.169.254/latest/meta-data/instance-id)\n"
        "aws ec2 describe-tags --filters Name=resource-id,Values=$IID Name=key,Values=Role "
        "--query 'Tags[0].Value' --output text")
    assert out.strip() == box.tags["Role"]
    tags = json.loads(box.sh(
        f"aws ec2 describe-tags --filters Name=resource-id,Values={box.id} --output json"))["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == box.tags
    assert {(t["ResourceId"], t["ResourceType"]) for t in tags} == {(box.id, "instance")}


# --- 5. instance types ---------------------------------------------------------------------

def test_instance_type_limits(ec2, launch, web):
    # t3.micro: 2 vCPUs, 1 GiB
    assert web.box.limits() == (1 * GIB, 2 * 100000, 100000)

    data = uniq("data")
    box = launch(extra=f"printf '%s' '{data}' > /var/lib/e2e-data", InstanceType="t2.micro")
    wait(ec2, "running", box.id)
    box.wait_booted()
    assert box.limits() == (1 * GIB, 1 * 100000, 100000)  # t2.micro: 1 vCPU, 1 GiB
    box.sh("echo written-later > /root/later.txt")

    ec2.stop_instances(InstanceIds=[box.id])
    wait(ec2, "stopped", box.id)
    assert box.web(timeout=1) is None, "the web server still answers after the stop"
    ec2.modify_instance_attribute(InstanceId=box.id, InstanceType={"Value": "t2.small"})
    ec2.start_instances(InstanceIds=[box.id])
    wait(ec2, "running", box.id)
    box.wait_booted(boots=2)

    i = box.describe()
    assert i["InstanceType"] == "t2.small"
    assert i["PrivateIpAddress"] == box.ip  # the address stays across stop / start
    assert box.limits() == (2 * GIB, 1 * 100000, 100000)  # t2.small: 1 vCPU, 2 GiB
    assert box.get("/latest/meta-data/instance-type").body == "t2.small"
    # the writable layer was kept; the user data did not run again
    assert box.sh("cat /var/lib/e2e-data") == data
    assert box.sh("cat /root/later.txt") == "written-later\n"
    assert box.sh("cat /var/lib/e2e-user-data-runs") == "run\n"
    assert box.sh("cat /var/lib/e2e-boots") == "boot\nboot\n"
    assert box.web() == (200, box.web_text)


# --- 6. reboot -----------------------------------------------------------------------------

def test_reboot_reruns_per_boot_not_user_data(ec2, launch):
    box = launch()
    wait(ec2, "running", box.id)
    box.wait_booted()
    keep, scratch = uniq("keep"), uniq("scratch")
    box.sh(f"echo {keep} > /var/lib/e2e-keep; echo {scratch} > /tmp/scratch\n"
           "nohup sleep 600 </dev/null >/dev/null 2>&1 &")
    assert "sleep 600" in box.sh("ps -eo args=")

    ec2.reboot_instances(InstanceIds=[box.id])
    box.wait_booted(boots=2)

    assert box.describe()["State"]["Name"] == "running"
    out = box.console()
    assert out.count(f"per-boot {box.marker}") == 2, out[-3000:]
    assert out.count(f"user-data {box.marker} ran as") == 1, out[-3000:]
    assert out.count(f"user-data {box.marker} done") == 1
    assert box.sh("cat /var/lib/e2e-user-data-runs") == "run\n"
    assert box.sh("cat /var/lib/e2e-boots") == "boot\nboot\n"
    # the process tree was restarted: the old processes are gone, /tmp is new, the disk stays
    assert "sleep 600" not in box.sh("ps -eo args=")
    assert box.rc("test -e /tmp/scratch") == 1
    assert box.sh("cat /var/lib/e2e-keep") == f"{keep}\n"
    assert box.web() == (200, box.web_text)


# --- 7. instances reach each other ------------------------------------------------------------

def test_two_instances_reach_each_other(ec2, launch, web):
    web_subnet = web.box.describe()["SubnetId"]
    vpc = web.box.describe()["VpcId"]
    # both are in the group that admits the VPC on 80
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                            {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    other = next(s["SubnetId"] for s in sorted(subnets, key=lambda s: s["AvailabilityZone"])
                 if s["SubnetId"] != web_subnet)
    marker_prefix = uniq("peer")
    peer = launch(SubnetId=other,
                  extra=f'echo "{marker_prefix} saw: $(curl -s -m 5 http://{web.box.ip}/index.txt)"')
    wait(ec2, "running", peer.id)
    peer.wait_booted()
    assert peer.describe()["SubnetId"] == other
    by_id = {s["SubnetId"]: s for s in subnets}
    assert ipaddress.ip_address(peer.ip) in ipaddress.ip_network(by_id[other]["CidrBlock"])
    assert ipaddress.ip_address(web.box.ip) not in ipaddress.ip_network(by_id[other]["CidrBlock"])
    # the peer fetched the web instance's page during its boot
    assert f"{marker_prefix} saw: {web.box.web_text}" in peer.console(), peer.console()[-3000:]
    # and the web instance fetches the peer's
    assert web.box.sh(f"curl -s -m 5 http://{peer.ip}/index.txt") == peer.web_text
    assert peer.sh(f"curl -s -m 5 http://{web.box.ip}/index.txt") == web.box.web_text


# --- 8. nimbus restarts --------------------------------------------------------------------

RESTART_SCRIPT = r'''
"""Runs in a fresh network namespace: a nimbus of its own with one instance, through a
graceful restart and a kill -9. Prints one JSON document of what it saw."""
import json, os, signal, socket, subprocess, sys, time, traceback, urllib.error, urllib.request
import boto3, botocore.config

nimbus, data_dir, mark = sys.argv[1], sys.argv[2], sys.argv[3]
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
result = {}
log_path = data_dir + ".log"
proc = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=2):
    try:
        with HTTP.open(url, timeout=timeout) as r:
            return r.read().decode()
    except (OSError, ValueError):
        return None


def poll(fn, ok, timeout=20, interval=0.2):
    deadline = time.time() + timeout
    while True:
        r = fn()
        if ok(r) or time.time() > deadline:
            return r
        time.sleep(interval)


def start():
    global proc
    log = open(log_path, "ab")
    proc = subprocess.Popen([nimbus, "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--data-dir", data_dir, "--instance-driver", "namespace"],
                            stdout=log, stderr=log)
    log.close()
    health = poll(lambda: get(endpoint + "/_nimbus/health", 1), lambda h: h is not None, timeout=15)
    if health is None:
        raise RuntimeError("nimbus did not start")
    return json.loads(health), boto3.client(
        "ec2", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key="test", config=botocore.config.Config(retries={"max_attempts": 1}))


def instance_processes(iid):
    """Host processes of the instance: its init (`nimbus __instance-init DIR` with DIR in
    this data directory) and anything in its cgroup."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
            with open(f"/proc/{pid}/cgroup") as f:
                cgroup = f.read()
        except OSError:
            continue
        if ("__instance-init" in args and any(data_dir in a for a in args)) or iid in cgroup:
            found.append(" ".join(args).strip())
    return found


def host_side(iid):
    """What the namespace driver sets up on the host for instances: this network
    namespace's devices (the nimbus0 bridge, a veth per instance), the bridge's lock
    file, the instance's cgroups."""
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


def state(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]


def served(ip):
    return poll(lambda: get(f"http://{ip}/index.txt"), lambda b: b == mark)


def counts(ip):
    return {"runs": (get(f"http://{ip}/runs.txt") or "").count("run"),
            "boots": (get(f"http://{ip}/boots.txt") or "").count("boot")}


USER_DATA = """#!/bin/bash
mkdir -p /srv/www /var/lib/cloud/scripts/per-boot
echo run >> /srv/www/runs.txt
printf '%s' 'MARK' > /srv/www/index.txt
cat > /var/lib/cloud/scripts/per-boot/50-web <<'EOF'
#!/bin/bash
echo boot >> /srv/www/boots.txt
nohup /usr/bin/python3 -m http.server 80 --directory /srv/www >/dev/null 2>&1 &
EOF
chmod 755 /var/lib/cloud/scripts/per-boot/50-web
/var/lib/cloud/scripts/per-boot/50-web
echo "user-data MARK done"
""".replace("MARK", mark)

iid = None
try:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    health, ec2 = start()
    result["driver"] = health.get("instance_driver")
    result["durable"] = health.get("durable")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    sg = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc["VpcId"])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": vpc["CidrBlock"]}]}])
    r = ec2.run_instances(ImageId=image, InstanceType="t2.micro", MinCount=1, MaxCount=1,
                          SecurityGroupIds=[sg], UserData=USER_DATA)
    iid = r["Instances"][0]["InstanceId"]
    ip = r["Instances"][0]["PrivateIpAddress"]
    result["instance_id"], result["ip"] = iid, ip
    result["served_before"] = served(ip)
    result["processes_while_running"] = instance_processes(iid)
    result["counts_before"] = counts(ip)
    result["host_while_running"] = host_side(iid)

    # graceful stop: the instance stops with nimbus, which takes its bridge away
    proc.send_signal(signal.SIGINT)
    result["graceful_rc"] = proc.wait(timeout=30)
    result["processes_after_graceful_stop"] = instance_processes(iid)
    result["host_after_graceful_stop"] = host_side(iid)
    result["served_while_down"] = get(f"http://{ip}/index.txt")

    # start again on the same data directory: the instance comes back
    health, ec2 = start()
    result["state_after_restart"] = poll(lambda: state(ec2, iid), lambda s: s == "running")
    result["ip_after_restart"] = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0].get("PrivateIpAddress")
    result["served_after_restart"] = served(ip)
    result["counts_after_restart"] = counts(ip)

    # kill -9: nothing of the instance may survive its nimbus
    result["processes_before_kill9"] = instance_processes(iid)
    proc.kill()
    proc.wait(timeout=30)
    result["processes_after_kill9"] = poll(lambda: instance_processes(iid), lambda p: not p, timeout=5)
    result["served_after_kill9"] = get(f"http://{ip}/index.txt")

    # and after the crash the instance comes back once more
    health, ec2 = start()
    result["state_after_crash"] = poll(lambda: state(ec2, iid), lambda s: s == "running")
    result["served_after_crash"] = served(ip)
    result["counts_after_crash"] = counts(ip)
    console = ec2.get_console_output(InstanceId=iid).get("Output", "")
    result["console_user_data_done"] = console.count(f"user-data {mark} done")
    result["console_finished"] = console.count("Cloud-init v. 24.1.3 finished at")

    ec2.terminate_instances(InstanceIds=[iid])
    result["final_state"] = poll(lambda: state(ec2, iid), lambda s: s == "terminated")
    result["instance_dir_after_terminate"] = os.path.exists(os.path.join(data_dir, "ec2", "instances", iid))
    proc.send_signal(signal.SIGINT)
    result["final_rc"] = proc.wait(timeout=30)
    result["processes_at_end"] = instance_processes(iid)
    # the bridge a kill -9 left was adopted by the next start, and goes with its stop
    result["host_at_end"] = host_side(iid)
except Exception:
    result["error"] = traceback.format_exc()
    try:
        result["log"] = open(log_path, errors="replace").read()[-4000:]
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


def test_restart_brings_instances_back(tmp_path):
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("starts a nimbus of its own; NIMBUS_E2E_ENDPOINT is set")
    if not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs unshare and ip (util-linux, iproute2)")
    script = tmp_path / "restart.py"
    script.write_text(RESTART_SCRIPT)
    data_dir = tempfile.mkdtemp(prefix="nimbus-e2e-restart-")
    mark = uniq("restart")
    try:
        p = subprocess.run(["unshare", "--net", "--", sys.executable, str(script), nimbus_bin(), data_dir, mark],
                           capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if os.path.exists(data_dir + ".log"):
            os.remove(data_dir + ".log")
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert "error" not in r, f"{r['error']}\nnimbus log:\n{r.get('log', '')}\nseen: {r}"
    assert (r["driver"], r["durable"]) == ("namespace", True)
    assert r["served_before"] == mark
    assert r["counts_before"] == {"runs": 1, "boots": 1}
    # what the process checks below look for is there while the instance runs:
    # its init outside and inside the PID namespace, and the web server
    for seen in (r["processes_while_running"], r["processes_before_kill9"]):
        assert len([p for p in seen if "__instance-init" in p]) == 2, seen
        assert [p for p in seen if "http.server 80" in p], seen
    # SIGINT: nimbus exits cleanly and its instance with it
    assert r["graceful_rc"] == 0
    assert r["processes_after_graceful_stop"] == []
    assert r["served_while_down"] is None
    # and nothing of it is left on the host: no bridge, no veth, no lock file, no cgroup
    running = r["host_while_running"]
    assert "nimbus0" in running["links"] and running["lock"], running
    assert [l for l in running["links"] if l.startswith("nbh")], running
    assert running["cgroups"] or not running["cgroupfs"], running
    for seen in (r["host_after_graceful_stop"], r["host_at_end"]):
        assert (seen["links"], seen["lock"], seen["cgroups"]) == (["lo"], False, []), seen
    # back after the restart, same address, user data not run again (one more boot)
    assert r["state_after_restart"] == "running"
    assert r["ip_after_restart"] == r["ip"]
    assert r["served_after_restart"] == mark
    assert r["counts_after_restart"] == {"runs": 1, "boots": 2}
    # kill -9: no orphans
    assert r["processes_after_kill9"] == []
    assert r["served_after_kill9"] is None
    # and back after the crash
    assert r["state_after_crash"] == "running"
    assert r["served_after_crash"] == mark
    assert r["counts_after_crash"] == {"runs": 1, "boots": 3}
    assert r["console_user_data_done"] == 1
    assert r["console_finished"] == 3
    assert r["final_state"] == "terminated"
    assert r["instance_dir_after_terminate"] is False
    assert r["final_rc"] == 0
    assert r["processes_at_end"] == []
