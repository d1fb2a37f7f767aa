"""The data directory: private to nimbus's user whatever umask it starts with, and a
start that names the cause when the directory cannot be used (permission denied, not a
directory, read-only file system) instead of blaming another nimbus, which only the
lock held by another nimbus does. Runs nimbus processes of its own.
"""
import os
import shutil
import stat
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import Server, free_port, make_client, nimbus_bin

FINISHED = "Cloud-init v. 24.1.3 finished at"


@pytest.fixture(autouse=True)
def own_nimbus():
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("starts nimbus processes of its own")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def start_with_umask(server, umask):
    old = os.umask(umask)
    try:
        return server.start()
    finally:
        os.umask(old)


def start_error(*args, data_dir, user=None, timeout=20):
    """A `nimbus serve` that must not start: (exit status, output)."""
    cmd = [nimbus_bin(), "serve", "--host", "127.0.0.1", "--port", str(free_port()), "--data-dir", data_dir, *args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def test_files_are_private_with_umask_022(tmp_path):
    data = tmp_path / "data"
    server = start_with_umask(Server("--instance-driver", "process", data_dir=str(data)), 0o022)
    try:
        s3 = make_client(server.endpoint, "s3")
        bucket = f"private-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        body = os.urandom(64 * 1024)  # large enough to be a file of its own
        s3.put_object(Bucket=bucket, Key="big", Body=body)
        sqs = make_client(server.endpoint, "sqs")
        url = sqs.create_queue(QueueName=f"private-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="secret message")
        ec2 = make_client(server.endpoint, "ec2")
        vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
        # An instance writes its own files with the usual 022, not nimbus's 077.
        image = ec2.describe_images()["Images"][0]["ImageId"]
        iid = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                UserData="#!/bin/bash\necho hello > made-by-instance\nmkdir -p made-dir\n")["Instances"][0]["InstanceId"]
        deadline = time.time() + 30
        while FINISHED not in ec2.get_console_output(InstanceId=iid).get("Output", ""):
            assert time.time() < deadline, "the instance did not boot"
            time.sleep(0.1)

        # An object file: the one holding the object's bytes.
        objects = [os.path.join(d, f) for d, _, fs in os.walk(data / "s3") for f in fs
                   if os.path.getsize(os.path.join(d, f)) == len(body)]
        assert objects, "the object should be a file of its own"
        volumes = [os.path.join(d, f) for d, _, fs in os.walk(data / "ec2" / "volumes") for f in fs if vol in f]
        assert volumes, "the volume should be a file"
        instance = data / "ec2" / "instances" / iid
        assert mode(data) == 0o700
        for path in [data / "state.redb", data / "state.wal", *objects, *volumes, instance / "boot.json",
                     data / "ec2" / "metadata.key"]:
            assert mode(path) & 0o077 == 0, f"{path} is {oct(mode(path))}"
        assert mode(instance) == 0o700
        # Everything nimbus made, outside what the instance writes in its own root.
        for d, dirs, files in os.walk(data):
            if os.path.dirname(d) == str(data / "ec2" / "instances"):
                dirs[:] = [x for x in dirs if x not in ("root", "upper", "work")]
            for p in [d, *(os.path.join(d, f) for f in files)]:
                assert mode(p) & 0o077 == 0, f"{p} is {oct(mode(p))}"
        assert (instance / "root" / "made-by-instance").read_text() == "hello\n"
        assert mode(instance / "root" / "made-by-instance") == 0o644
        assert mode(instance / "root" / "made-dir") == 0o755
        ec2.terminate_instances(InstanceIds=[iid])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    finally:
        server.stop()


def test_an_open_data_dir_is_made_private(tmp_path):
    data = tmp_path / "open"
    data.mkdir()
    os.chmod(data, 0o755)
    server = start_with_umask(Server(data_dir=str(data)), 0o022)
    try:
        assert mode(data) == 0o700
        assert "readable by other users (mode 755); now 0700" in server.log()
    finally:
        server.stop()


def test_ephemeral_dir_is_private():
    server = start_with_umask(Server(), 0o022)
    try:
        line = server.log().splitlines()[0]
        data = line.split(" data in ", 1)[1].split(" (ephemeral)", 1)[0]
        assert mode(data) == 0o700
        assert mode(os.path.join(data, "state.redb")) & 0o077 == 0
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to run as nobody")
def test_unwritable_data_dir_says_permission_denied():
    # A directory nobody may not write: root's, 0755, under a path nobody can walk.
    top = tempfile.mkdtemp(prefix="nimbus-perm-")
    try:
        os.chmod(top, 0o755)
        data = os.path.join(top, "data")
        os.mkdir(data)
        os.chmod(data, 0o755)
        # The binary where nobody may run it.
        binary = os.path.join(top, "nimbus")
        shutil.copy(nimbus_bin(), binary)
        os.chmod(binary, 0o755)
        for target in (data, os.path.join(data, "sub")):
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", binary, "serve",
                   "--host", "127.0.0.1", "--port", str(free_port()), "--data-dir", target]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            out = p.stdout + p.stderr
            assert p.returncode == 2, out
            assert f"nimbus: permission denied writing {target}\n" in out
            assert "another nimbus" not in out
        assert os.listdir(data) == []
    finally:
        shutil.rmtree(top)


def test_data_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("not a directory")
    status, out = start_error(data_dir=str(f))
    assert status == 2  # refused with the flags
    assert f"invalid value '{f}' for '--data-dir <DATA_DIR>': is a file, not a directory" in out
    status, out = start_error(data_dir=str(f / "below"))
    assert status == 2
    assert f"nimbus: {f / 'below'} is not a directory" in out


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only file system needs root")
def test_read_only_data_dir(tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        status, out = start_error(data_dir=str(mnt))
        assert status == 2
        assert f"nimbus: read-only file system: cannot write {mnt}\n" in out
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_second_nimbus_on_one_data_dir_says_another_nimbus(tmp_path):
    data = str(tmp_path / "shared")
    first = Server(data_dir=data).start()
    try:
        status, out = start_error(data_dir=data)
        assert status == 1
        assert f"nimbus: cannot open the store in {data}: another nimbus is using it\n" in out
        assert "permission denied" not in out
    finally:
        first.stop()
    # Once the first has gone, the directory is usable again.
    again = Server(data_dir=data).start()
    again.stop()
