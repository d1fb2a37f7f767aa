"""Crash test of EC2 state: kill -9 nimbus while clients launch, stop and terminate
instances; restart on the same data directory; every acknowledged change must be
there (launched instances exist, acknowledged terminations end terminated,
acknowledged stops end stopped) and every instance whose state is running runs
again. Runs in a private network namespace (its nimbus owns a bridge of its own).
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
import json, os, signal, socket, subprocess, sys, threading, time, traceback
import boto3, botocore.config

nimbus, data_dir = sys.argv[1], sys.argv[2]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
endpoint = f"http://127.0.0.1:{port}"
log = open(data_dir + ".log", "ab")


def start():
    p = subprocess.Popen([nimbus, "serve", "--port", str(port), "--data-dir", data_dir],
                         stdout=log, stderr=log)
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return p
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nimbus did not start")


cfg = botocore.config.Config(retries={"max_attempts": 1}, read_timeout=10, connect_timeout=2)
def ec2():
    return boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test", config=cfg)


result = {}
proc = start()
try:
    image = ec2().describe_images()["Images"][0]["ImageId"]
    launched, stopped, terminated = [], [], []
    lock = threading.Lock()
    stop_at = time.time() + 3.0

    def worker(n):
        c = ec2()
        i = 0
        while time.time() < stop_at:
            try:
                iid = c.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                      UserData="#!/bin/sh\necho up\n")["Instances"][0]["InstanceId"]
                with lock:
                    launched.append(iid)
                i += 1
                if i % 3 == 0:
                    c.terminate_instances(InstanceIds=[iid])
                    with lock:
                        terminated.append(iid)
                elif i % 3 == 1:
                    c.stop_instances(InstanceIds=[iid])
                    with lock:
                        stopped.append(iid)
            except Exception:
                return  # nimbus is gone

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for t in threads:
        t.join()
    proc = start()
    c = ec2()
    deadline = time.time() + 30
    while True:
        seen = {}
        for page in c.get_paginator("describe_instances").paginate():
            for r in page["Reservations"]:
                for i in r["Instances"]:
                    seen[i["InstanceId"]] = i["State"]["Name"]
        settled = all(s in ("running", "stopped", "terminated") for s in seen.values())
        if settled or time.time() > deadline:
            break
        time.sleep(0.2)
    result.update(launched=launched, stopped=stopped, terminated=terminated, seen=seen)
    running = [i for i, s in seen.items() if s == "running"]
    # Every running instance really runs: its console shows a finished boot.
    booted = {}
    for iid in running:
        for _ in range(100):
            out = c.get_console_output(InstanceId=iid).get("Output", "")
            if "finished at" in out:
                booted[iid] = True
                break
            time.sleep(0.1)
    result["booted"] = booted
    # An init forks for each boot step; a child between fork and exec still reads as
    # "__instance-init", so the count settles for a moment before it is taken.
    for _ in range(50):
        procs = subprocess.run(["pgrep", "-f", "__instance-init " + data_dir], capture_output=True, text=True).stdout.split()
        if len(procs) == 2 * len(running):
            break
        time.sleep(0.1)
    result["init_processes"] = len(procs)
except Exception:
    result["error"] = traceback.format_exc()
finally:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
print(json.dumps(result))
'''


def test_kill9_under_load_keeps_every_acknowledged_change(tmp_path):
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("starts a nimbus of its own")
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a private network namespace")
    script = tmp_path / "crash.py"
    script.write_text(SCRIPT)
    data_dir = tempfile.mkdtemp(prefix="nimbus-e2e-ec2-crash-")
    try:
        p = subprocess.run(["unshare", "--net", "--", sys.executable, str(script), nimbus_bin(), data_dir],
                           capture_output=True, text=True, timeout=240)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if os.path.exists(data_dir + ".log"):
            os.remove(data_dir + ".log")
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert "error" not in r, r["error"]
    assert len(r["launched"]) >= 5, "the load should have launched instances before the kill"
    seen = r["seen"]
    missing = [i for i in r["launched"] if i not in seen]
    assert not missing, f"acknowledged launches lost: {missing}"
    for iid in r["terminated"]:
        assert seen[iid] == "terminated", (iid, seen[iid])
    for iid in r["stopped"]:
        assert seen[iid] == "stopped", (iid, seen[iid])
    running = [i for i, s in seen.items() if s == "running"]
    assert running, "some launched instances should be running after the restart"
    assert sorted(r["booted"]) == sorted(running)
    assert r["init_processes"] == 2 * len(running)
