"""Pattern 45 (patterns/45-continuous-integration): ci.sh, the job a CI system runs.

ci.sh starts `nimbus serve --ephemeral` on a free port, waits for `Ready.`, runs its test
suite (aws CLI checks of S3, SQS and EC2, leaving one instance running), stops nimbus and
checks that nothing is left. These tests run it with NIMBUS_BIN as a CI system would,
assert its Observe lines (start to ready under a second, every test passed, nothing left),
and then look again on their own: no process of that nimbus or its instance, no network
device (no `nimbus0`), no mount, the temporary directory gone, no lock file in /run, no
cgroup of the instance.

Both EC2 drivers: as a normal user (the process driver; when the tests run as root, as
`nobody`) and as root (the namespace driver, which makes a bridge, veths, cgroups and
overlay mounts: the case a clean stop must undo). Each run has a network namespace and
a mount namespace of its own, with fresh /tmp, /var/tmp, /dev/shm and /run, so that its
bridge is its own and what is left is its alone (other nimbus on this machine make files
there too). Without root: one run as the current user, with its own checks.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, nimbus_bin

CI = os.path.join(ROOT, "patterns", "45-continuous-integration", "ci.sh")
NOBODY = 65534

# Runs inside the private namespaces (or, without root, as is): prepares them, runs
# ci.sh, then gathers what is left, as JSON on its last line.
INNER = r'''
import json, os, shutil, subprocess, sys, tempfile
ci, nimbus, mode, aws_dir, shim = sys.argv[1:6]
isolated = mode != "current"
# A directory that holds what the run needs (a checkout or venv under /tmp or /var/tmp)
# stays shared; its leftovers are still compared, before against after.
needed = [ci, nimbus, aws_dir, sys.prefix]
shared = []
if isolated:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for d in ("/tmp", "/var/tmp", "/dev/shm", "/run"):
        if any(p == d or p.startswith(d + "/") for p in needed if p):
            shared.append(d)
            continue
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", d], check=True)
shim_dir = None
if shim:
    # An aws that nobody can run (see aws_for_nobody), in /tmp.
    shim_dir = aws_dir = tempfile.mkdtemp(prefix="aws-shim-", dir="/tmp")
    os.chmod(aws_dir, 0o755)
    with open(aws_dir + "/aws", "w") as f:
        f.write(shim)
    os.chmod(aws_dir + "/aws", 0o755)


def links():
    with open("/proc/net/dev") as f:
        return sorted(l.split(":")[0].strip() for l in f.readlines()[2:])


def mounts():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a, b = line.split(" - ")
            out.append(" ".join([a.split()[4]] + b.split()[:2]))
    return sorted(out)


def ns(pid, kind):
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def processes():
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        out.append({"pid": int(p), "cmd": cmd, "net": ns(p, "net"), "mnt": ns(p, "mnt")})
    return out


def listing(dirs):
    found = []
    for d in dirs:
        try:
            found += [os.path.join(d, e) for e in os.listdir(d)]
        except OSError:
            pass
    return sorted(found)


env = {"PATH": aws_dir + ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "NIMBUS_BIN": nimbus,
       "HOME": os.environ.get("HOME", "/"), "LANG": "C.UTF-8"}
argv = ["bash", ci]
if mode == "nobody":
    env["HOME"] = "/nonexistent"
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + argv
before = {"links": links(), "mounts": mounts(), "dirs": listing(["/tmp", "/var/tmp", "/dev/shm", "/run"])}
p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
result = {
    "rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr[-3000:], "before": before,
    "links": links(), "mounts": mounts(), "dirs": listing(["/tmp", "/var/tmp", "/dev/shm", "/run"]),
    "isolated": isolated, "my_net": ns("self", "net"), "my_mnt": ns("self", "mnt"), "processes": processes(),
    "cgroups": listing(["/sys/fs/cgroup/nimbus"] + [os.path.join("/sys/fs/cgroup", c, "nimbus")
                                                   for c in ("cpu", "cpuacct", "memory", "freezer", "unified")]),
}
if isolated and os.geteuid() == 0 and subprocess.run(["sh", "-c", "command -v nft"], capture_output=True).returncode == 0:
    result["nft"] = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
result["shared"] = shared
if shim_dir:
    shutil.rmtree(shim_dir, ignore_errors=True)
print(json.dumps(result))
'''

def can_run_as_nobody(*argv, env=None):
    # Through a shell, as ci.sh runs it: setpriv's own exec of a script may get further
    # than nobody's later execs do (the venv's interpreter under /root).
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           "sh", "-c", '"$@"', "sh", *argv],
                          capture_output=True, env=env).returncode == 0


def aws_for_nobody():
    """(directory of an aws CLI nobody can run, or None; else the text of a wrapper to
    make): this venv's own, or its awscli package on the system's python of the same
    version when the venv's interpreter is out of nobody's reach (under /root)."""
    venv_aws = shutil.which("aws")
    if venv_aws and can_run_as_nobody(venv_aws, "--version"):
        return os.path.dirname(venv_aws), ""
    import awscli
    site = os.path.dirname(os.path.dirname(awscli.__file__))
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    python = shutil.which(f"python{ver}", path="/usr/bin:/usr/local/bin")
    if not python or not can_run_as_nobody(python, "-m", "awscli", "--version",
                                           env={"PYTHONPATH": site, "PATH": "/usr/bin:/bin"}):
        pytest.skip("no aws CLI that the user nobody can run")
    return "", f'#!/bin/sh\nPYTHONPATH={site} exec {python} -m awscli "$@"\n'


def run(mode):
    aws_dir, shim = os.path.dirname(shutil.which("aws")), ""
    if mode == "nobody":
        aws_dir, shim = aws_for_nobody()
        if not can_run_as_nobody("test", "-x", nimbus_bin()) or not can_run_as_nobody("test", "-r", CI):
            pytest.skip("the user nobody cannot run NIMBUS_BIN or ci.sh")
    # Inside, /tmp is fresh: the script and everything it needs come on the command line.
    inner = [sys.executable, "-c", INNER, CI, nimbus_bin(), mode, aws_dir, shim]
    if mode != "current":
        inner = ["unshare", "--net", "--mount", "--"] + inner
    p = subprocess.run(inner, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def check(r, driver):
    out = r["stdout"]
    assert r["rc"] == 0, out + r["stderr"]
    assert "FAIL" not in out, out
    # The Observe lines, as ci.sh prints them.
    m = re.search(r"^  ok    start to ready: (\d+) ms$", out, re.M)
    assert m and int(m.group(1)) < 1000, out
    assert f"EC2 instance driver: {driver}" in out, out
    for test in ("ec2", "s3", "sqs"):
        assert re.search(rf"^  ok    tests/{test}\.sh \(\d+ ms\)$", out, re.M), out
    # Before the stop the instance and its daemon ran: the process check below means something.
    assert re.search(r"^  ok    before the stop: nimbus \(pid \d+\) runs, and [1-9]\d* processes of its instance",
                     out, re.M), out
    for line in ("ok    nimbus stopped in", "ok    no process:", "ok    no file: the data directory",
                 "ok    no file outside the temporary directory", "ok    no network device:",
                 "ok    no mount:"):
        assert line in out, out
    assert "all passed: start to ready" in out, out

    # And again, independently of ci.sh.
    work = re.search(r"^temporary directory: (\S+)$", out, re.M).group(1)
    data = re.search(r", data in (\S+) \(ephemeral\)\. Ready\.$", out, re.M).group(1)
    assert data.startswith(work + "/"), (data, work)
    instance = re.search(r"^        (i-[0-9a-f]+): running, its console shows: user data of (\S+) ran", out, re.M)
    assert instance, out
    iid, run_tag = instance.groups()
    # No process: none in this run's network or mount namespace (nimbus served there), and
    # none anywhere naming its directory or its instance's daemon.
    left = [p for p in r["processes"]
            if (r["isolated"] and (p["net"] == r["my_net"] or p["mnt"] == r["my_mnt"]))
            or work in p["cmd"] or f"daemon-{run_tag}" in p["cmd"]]
    assert not left, left
    # No network device: nimbus0 and the instance's veth are gone.
    assert r["links"] == r["before"]["links"], (r["before"]["links"], r["links"])
    assert "nimbus0" not in r["links"]
    assert not any(l.startswith("nbh") for l in r["links"]), r["links"]
    # No mount, and the temporary directory is gone.
    assert r["mounts"] == r["before"]["mounts"], set(r["mounts"]) ^ set(r["before"]["mounts"])
    assert not any(work in m for m in r["mounts"])
    assert work not in r["dirs"] and not os.path.exists(work)
    # No file outside it: nothing new in /tmp, /var/tmp, /dev/shm, /run (the bridge's lock
    # file /run/nimbus-bridge-*.lock included); isolated runs only, those are shared otherwise.
    # A directory left shared (it holds the checkout) may see other processes' files: there
    # only what names nimbus counts.
    if r["isolated"]:
        changed = set(r["dirs"]) ^ set(r["before"]["dirs"])
        changed = {f for f in changed
                   if os.path.dirname(f) not in r["shared"] or "nimbus" in os.path.basename(f)}
        assert not changed, changed
    # No cgroup of the instance (namespace driver): its group in every hierarchy is gone.
    assert not [c for c in r["cgroups"] if c.endswith("/" + iid)], r["cgroups"]
    if "nft" in r:
        assert "nimbus" not in r["nft"], r["nft"]
    return out


@pytest.fixture(autouse=True)
def own_nimbus():
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("ci.sh starts a nimbus of its own")
    if not shutil.which("aws"):
        pytest.skip("needs the aws CLI")


def isolated_root():
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        pytest.skip("needs root, unshare and setpriv for private network and mount namespaces")


def test_ci_as_a_normal_user_with_the_process_driver():
    if os.geteuid() == 0:
        isolated_root()
        r = run("nobody")
        assert "(uid 65534)" in r["stdout"], r["stdout"]
    else:
        r = run("current")
    check(r, "process")


def test_ci_as_root_with_the_namespace_driver_leaves_no_bridge():
    isolated_root()
    r = run("root")
    out = check(r, "namespace")
    assert "user: root (uid 0)" in out
    # Its instance's cgroup is gone (none was made where no cgroup hierarchy is
    # mounted, as under `ip netns exec`, which mounts a sysfs of its own).
    assert "ok    no cgroup:" in out or "no cgroup hierarchy is mounted here" in out, out
