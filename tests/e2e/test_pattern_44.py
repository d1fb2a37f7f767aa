"""Pattern 44 (patterns/44-temporary-development-environments/run.sh): a whole
environment comes up, is used, is saved, thrown away with `nimbus reset` and loaded
back with `nimbus state load`.

run.sh resets the WHOLE nimbus it talks to, so this test never runs it against the
session's server: it starts a nimbus of its own, as root, in a private network
namespace (`unshare --net`; that nimbus owns a bridge of its own there, as in
test_ec2_crash.py). Inside, it runs run.sh once without the reset flag (refused, nothing
made) and once with --yes-reset --keep, and then looks at what the load brought back on
its own with boto3 and HTTP to the instances: the objects' bytes, the messages' receive
counts and attributes, the instances running and serving the files their user data
wrote before the save, the security group rules, the instance profile. The namespace
and everything in it go away with the test.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import ROOT, nimbus_bin

RUN_SH = os.path.join(ROOT, "patterns", "44-temporary-development-environments", "run.sh")

SCRIPT = r'''
import hashlib, json, os, re, signal, socket, subprocess, sys, time, traceback, urllib.request
import boto3, botocore.config

nimbus, data_dir, run_sh = sys.argv[1], sys.argv[2], sys.argv[3]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health():
    with HTTP.open(endpoint + "/_nimbus/health", timeout=2) as r:
        return json.loads(r.read())


def get(url, timeout=5):
    try:
        with HTTP.open(url, timeout=timeout) as r:
            return r.status, r.read()
    except OSError as e:
        return None, str(e).encode()


port = free_port()
endpoint = f"http://127.0.0.1:{port}"
log = open(data_dir + ".log", "ab")
proc = subprocess.Popen([nimbus, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", data_dir],
                        stdout=log, stderr=log)
result = {}
try:
    for _ in range(500):
        try:
            first = health()
            break
        except OSError:
            time.sleep(0.02)
    else:
        raise RuntimeError("nimbus did not start")
    result["driver"] = first.get("instance_driver")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NIMBUS_"))}
    env.update(PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               NIMBUS_ENDPOINT=endpoint, NIMBUS_BIN=nimbus)
    cfg = botocore.config.Config(retries={"max_attempts": 2}, read_timeout=20, connect_timeout=3)
    c = lambda name: boto3.client(name, endpoint_url=endpoint, region_name="us-east-1",
                                  aws_access_key_id="test", aws_secret_access_key="test", config=cfg)
    s3, sqs, ec2, iam = c("s3"), c("sqs"), c("ec2"), c("iam")

    # Without the flag: refused before anything is made.
    p = subprocess.run(["bash", run_sh], capture_output=True, text=True, env=env, timeout=60)
    result["refused"] = {"rc": p.returncode, "out": p.stdout, "err": p.stderr,
                         "buckets": [b["Name"] for b in s3.list_buckets()["Buckets"]]}

    t0 = time.time()
    p = subprocess.run(["bash", run_sh, "--yes-reset", "--keep"], capture_output=True, text=True, env=env, timeout=200)
    result["run"] = {"rc": p.returncode, "out": p.stdout, "err": p.stderr, "seconds": round(time.time() - t0, 1)}
    out = p.stdout
    result["pid_same"] = proc.poll() is None
    result["restarted"] = health()["started_ms"] != first["started_ms"]

    made = re.findall(r"^  made: (\S+) (\S+)$", out, re.M)
    kind = lambda k: [i for kk, i in made if kk == k]
    got = {}
    # S3: every object, its bytes (their sha256 as run.sh printed them when it uploaded them)
    [bucket] = kind("bucket")
    got["objects"] = {}
    for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        got["objects"][o["Key"]] = f"{len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()}"
    got["metadata"] = s3.head_object(Bucket=bucket, Key="notes/today.txt")["Metadata"]
    # SQS: counts, then every message with its receive count (received with a visibility of 0)
    got["queues"] = {}
    for url in kind("queue"):
        name = url.rsplit("/", 1)[1]
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=1,
                                   AttributeNames=["ApproximateReceiveCount"], MessageAttributeNames=["All"]).get("Messages", [])
        got["queues"][name] = {
            "visible": a["ApproximateNumberOfMessages"], "in_flight": a["ApproximateNumberOfMessagesNotVisible"],
            "visibility_timeout": a["VisibilityTimeout"],
            "messages": {m["Body"]: [m["Attributes"]["ApproximateReceiveCount"],
                                     m.get("MessageAttributes", {}).get("kind", {}).get("StringValue")] for m in msgs}}
    # EC2: the groups' rules, the instances (state, profile, what they serve)
    got["groups"] = {}
    for g in ec2.describe_security_groups(GroupIds=kind("security-group"))["SecurityGroups"]:
        got["groups"][g["GroupId"]] = {"name": g["GroupName"], "rules": sorted(
            [r["IpProtocol"], r["FromPort"], r["ToPort"], [x["CidrIp"] for x in r.get("IpRanges", [])],
             [x["GroupId"] for x in r.get("UserIdGroupPairs", [])]] for r in g["IpPermissions"])}
    got["instances"] = {}
    for r in ec2.describe_instances(InstanceIds=kind("instance"))["Reservations"]:
        for i in r["Instances"]:
            served = {}
            for f in ("token.txt", "blob.sha256", "boots.log", "app.json"):
                status, body = get(f"http://{i['PrivateIpAddress']}/{f}")
                served[f] = body.decode(errors="replace") if status == 200 else None
            status, blob = get(f"http://{i['PrivateIpAddress']}/blob.bin")
            served["blob.bin sha256"] = hashlib.sha256(blob).hexdigest() if status == 200 else None
            got["instances"][i["InstanceId"]] = {
                "state": i["State"]["Name"], "groups": [g["GroupId"] for g in i["SecurityGroups"]],
                "profile": i.get("IamInstanceProfile", {}).get("Arn", ""), "served": served}
    [profile] = kind("instance-profile")
    got["profile_roles"] = [r["RoleName"] for r in iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"]]
    result["got"] = got
except Exception:
    result["error"] = traceback.format_exc()
finally:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
print(json.dumps(result))
'''


def line(out, pattern):
    m = re.search(pattern, out, re.M)
    assert m, f"no line matching {pattern!r} in:\n{out}"
    return m.groups()


def test_pattern_44_temporary_development_environments(tmp_path):
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("starts a nimbus of its own")
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a private network namespace")
    script = tmp_path / "p44.py"
    script.write_text(SCRIPT)
    data_dir = tempfile.mkdtemp(prefix="nimbus-e2e-p44-")
    try:
        p = subprocess.run(["unshare", "--net", "--", sys.executable, str(script), nimbus_bin(), data_dir, RUN_SH],
                           capture_output=True, text=True, timeout=300)
        log = open(data_dir + ".log").read() if os.path.exists(data_dir + ".log") else ""
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if os.path.exists(data_dir + ".log"):
            os.remove(data_dir + ".log")
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    if r.get("driver") != "namespace":
        pytest.skip(f"instances do not really run here (instance_driver {r.get('driver')!r})")
    assert "error" not in r, r["error"] + "\n" + r.get("run", {}).get("out", "") + "\nnimbus log:\n" + log[-4000:]

    # Without --yes-reset (or NIMBUS_ALLOW_RESET=1) the script refuses, says why, makes nothing.
    refused = r["refused"]
    assert refused["rc"] == 2, refused
    assert "refusing to run" in refused["err"] and "RESETS" in refused["err"] and "--yes-reset" in refused["err"]
    assert refused["out"] == "" and refused["buckets"] == []

    run = r["run"]
    out = run["out"]
    assert run["rc"] == 0, f"run.sh exited {run['rc']}:\n{out}\n{run['err']}\nnimbus log:\n{log[-4000:]}"
    assert "FAIL" not in out, out
    assert "pattern 44: all observations hold" in out
    # The observations, as the script printed them.
    for words in (r"^  ok    up in [\d.]+ s: role \+ instance profile, bucket with 3 objects, 2 queues with 8 messages",
                  r"^  ok    saved \S+ \(\d+ bytes\) in [\d.]+ s$",
                  r"^  ok    the archive holds both instances' writable layers",
                  r"^  ok    after the reset nothing of it is left",
                  r"^  ok    loaded \S+ \(\d+ records, \d+ files\) in [\d.]+ s; nimbus restarted on it$",
                  r"^  ok    jobs: 4 visible, 1 still in flight",
                  r"^  ok    jobs received now \(body, receive count\): ",
                  r"^  ok    both instances are running again$",
                  r"^  ok    web i-\S+ \(\S+\) serves its disk as saved: token \S+, blob sha256 \S+, booted twice$",
                  r"^  ok    worker i-\S+ \(\S+\) serves its disk as saved: token \S+, blob sha256 \S+, booted twice$",
                  r"^  ok    the worker group is enforced: from this machine worker:80 -> 200, worker:9000 -> dropped$",
                  r"^  ok    the worker group is enforced again: from this machine worker:80 -> 200, worker:9000 -> dropped$",
                  r"^  ok    web works as its role again after its second boot: arn:aws:sts::\d+:assumed-role/",
                  r"^  ok    job-\d: still hidden at -[\d.]+ s, visible at [-+][\d.]+ s from the end of its \d+ s timeout$",
                  r"^  ok    job-\d received again: receive count 2 "):
        line(out, f"({words})")
    *_, size = map(float, line(
        out, r"^timings: up ([\d.]+) s, save ([\d.]+) s, reset ([\d.]+) s, load ([\d.]+) s; archive (\d+) bytes$"))
    assert size > 300_000  # at least the blob object
    # The same process (restarted in place by exec), started anew on the loaded state.
    assert r["pid_same"] and r["restarted"]

    got = r["got"]
    # Every object, byte for byte as uploaded before the save; metadata too.
    uploaded = dict(re.findall(r"^object: (\S+) (\d+ bytes, sha256 [0-9a-f]{64})$", out, re.M))
    assert len(uploaded) == 3 and got["objects"] == uploaded
    assert got["metadata"] == {"owner": "dev", "ticket": "DEV-44"}
    # Every message with its receive count: before the save `taken` was received once (in
    # flight), `retried` once (given back), the others never; after the load run.sh
    # received the four visible ones with visibility 0 (+1), then, once `taken`'s timeout
    # had run out, all five (+1); the receive above is one more.
    (taken,) = line(out, r"^        (job-\d) is taken, in flight")
    (retried,) = line(out, r"^        (job-\d) was taken and given back")
    assert taken != retried
    queues = got["queues"]
    jobs = next(q for n, q in queues.items() if n.endswith("-jobs"))
    events = next(q for n, q in queues.items() if n.endswith("-events"))
    assert (jobs["visible"], jobs["in_flight"], jobs["visibility_timeout"]) == ("5", "0", "30")
    want = {f"job-{n}": ["3", None] for n in range(1, 6)}
    want[retried] = ["4", None]
    assert jobs["messages"] == want
    assert (events["visible"], events["in_flight"]) == ("3", "0")
    assert events["messages"] == {f"event-{n}": ["2", f"build-{n}"] for n in (1, 2, 3)}
    # The groups' rules.
    web_sg = next(g for g, v in got["groups"].items() if v["name"].endswith("-web"))
    worker_sg = next(g for g, v in got["groups"].items() if v["name"].endswith("-worker"))
    assert got["groups"][web_sg]["rules"] == [["tcp", 22, 22, ["10.0.0.0/8"], []], ["tcp", 80, 80, ["0.0.0.0/0"], []]]
    assert got["groups"][worker_sg]["rules"] == [["tcp", 80, 80, ["0.0.0.0/0"], []], ["tcp", 9000, 9000, [], [web_sg]]]
    # The instances: running, in their groups, serving the files their user data wrote
    # before the save (the token they drew then), booted twice (launch, load).
    web_id, = line(out, r"^web instance: (i-\S+) ")
    worker_id, = line(out, r"^worker instance: (i-\S+) ")
    for name, iid, sg in (("web", web_id, web_sg), ("worker", worker_id, worker_sg)):
        token, blob = line(out, rf"^        {name}'s disk: token (\S+), blob sha256 ([0-9a-f]{{64}})$")
        i = got["instances"][iid]
        assert (i["state"], i["groups"]) == ("running", [sg]), i
        served = i["served"]
        assert (served["token.txt"], served["blob.sha256"], served["blob.bin sha256"]) == (token + "\n", blob + "\n", blob), i
        assert len(served["boots.log"].splitlines()) == 2, served["boots.log"]
    assert got["instances"][web_id]["profile"].endswith("/" + line(out, r"^  made: instance-profile (\S+)$")[0])
    assert json.loads(got["instances"][web_id]["served"]["app.json"])["environment"] in out
    assert got["profile_roles"] == [line(out, r"^  made: role (\S+)$")[0]]
