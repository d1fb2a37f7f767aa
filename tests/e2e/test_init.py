"""Init hooks, as LocalStack's: `nimbus serve --init DIR` (or NIMBUS_INIT_DIR) runs
the executable files of DIR/ready.d in name order once nimbus is ready, with
AWS_ENDPOINT_URL, the root credentials and the region set. A failing script is
logged and shown in the health document, never fatal; non-executable files are
skipped. Runs nimbus servers of its own.
"""
import json
import os
import shutil
import sys
import time
import urllib.request

import pytest

from conftest import Server, make_client


def write(path, text, executable=True):
    path.write_text(text)
    mode = 0o755 if executable else 0o644
    os.chmod(path, mode)


@pytest.fixture
def init_dir(tmp_path):
    ready = tmp_path / "init" / "ready.d"
    ready.mkdir(parents=True)
    venv_bin = os.path.dirname(sys.executable)
    assert shutil.which("aws", path=venv_bin), "the venv's aws CLI"
    write(ready / "01-make-bucket.sh", f"""#!/bin/sh
set -e
export PATH="{venv_bin}:$PATH" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
echo "endpoint $AWS_ENDPOINT_URL region $AWS_DEFAULT_REGION key $AWS_ACCESS_KEY_ID"
aws s3 mb s3://from-init-hook
aws s3api put-object --bucket from-init-hook --key env.txt --body "$0" \\
    --metadata endpoint=$AWS_ENDPOINT_URL,region=$AWS_DEFAULT_REGION >/dev/null
""")
    write(ready / "02-fail.sh", "#!/bin/sh\necho 'about to fail' >&2\nexit 3\n")
    write(ready / "03-not-executable.sh", "#!/bin/sh\ntouch \"$0.ran\"\n", executable=False)
    write(ready / "04-after-failure.sh", "#!/bin/sh\ntouch \"$0.ran\"\n")
    return tmp_path / "init"


def health(endpoint):
    with urllib.request.urlopen(endpoint + "/_nimbus/health", timeout=5) as r:
        return json.load(r)


def wait_completed(endpoint, timeout=60):
    deadline = time.time() + timeout
    doc = health(endpoint)
    while not doc["init"]["completed"] and time.time() < deadline:
        time.sleep(0.2)
        doc = health(endpoint)
    assert doc["init"]["completed"], doc
    return doc


@pytest.mark.parametrize("by", ["flag", "env"])
def test_ready_hooks_run_in_order_and_failures_show_in_health(init_dir, by):
    if by == "flag":
        server = Server("--init", str(init_dir), "--log-level", "info", "--region", "eu-west-1",
                        "--root-access-key-id", "AKIDINIT", "--root-secret-access-key", "initsecret")
    else:
        server = Server("--log-level", "info", "--region", "eu-west-1", env={
            "NIMBUS_INIT_DIR": str(init_dir), "NIMBUS_ROOT_ACCESS_KEY_ID": "AKIDINIT",
            "NIMBUS_ROOT_SECRET_ACCESS_KEY": "initsecret"})
    server.start()
    try:
        doc = wait_completed(server.endpoint)
        ready = doc["init"]["ready"]
        assert [s["script"] for s in ready] == ["01-make-bucket.sh", "02-fail.sh", "04-after-failure.sh"]
        assert ready[0]["status"] == "ok" and ready[0]["exit_code"] == 0
        assert ready[1]["status"] == "failed" and ready[1]["exit_code"] == 3
        assert ready[2]["status"] == "ok", "a failure does not stop the scripts after it"
        assert (init_dir / "ready.d" / "04-after-failure.sh.ran").exists()
        assert not (init_dir / "ready.d" / "03-not-executable.sh.ran").exists()
        # The bucket the hook made exists, made against this nimbus with its settings.
        s3 = make_client(server.endpoint, "s3")
        assert "from-init-hook" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        meta = s3.head_object(Bucket="from-init-hook", Key="env.txt")["Metadata"]
        assert meta == {"endpoint": server.endpoint, "region": "eu-west-1"}
        # LocalStack's view of the same.
        with urllib.request.urlopen(server.endpoint + "/_localstack/init/ready", timeout=5) as r:
            ls = json.load(r)
        assert ls["completed"] is True
        assert [(s["name"], s["state"]) for s in ls["scripts"]] == [
            ("01-make-bucket.sh", "SUCCESSFUL"), ("02-fail.sh", "ERROR"), ("04-after-failure.sh", "SUCCESSFUL")]
        with urllib.request.urlopen(server.endpoint + "/_localstack/init", timeout=5) as r:
            assert json.load(r)["completed"]["READY"] is True
        # Output and failures are logged with the script's name; nimbus still serves.
        log = server.log()
        assert "01-make-bucket.sh: endpoint " + server.endpoint in log
        assert "02-fail.sh: about to fail" in log
        assert "02-fail.sh failed with exit code 3" in log
        assert "03-not-executable.sh: not executable" in log
        s3.create_bucket(Bucket="after-init")
        assert server.proc.poll() is None
    finally:
        server.stop()


def test_without_init_health_says_completed(endpoint):
    doc = health(endpoint)
    assert doc["init"] == {"ready": [], "completed": True}


def test_slow_hook_does_not_block_requests(tmp_path):
    ready = tmp_path / "ready.d"
    ready.mkdir()
    write(ready / "01-slow.sh", "#!/bin/sh\nsleep 30\n")
    server = Server("--init", str(tmp_path)).start()
    try:
        doc = health(server.endpoint)
        assert doc["init"]["completed"] is False
        assert doc["init"]["ready"][0]["status"] in ("pending", "running")
        make_client(server.endpoint, "sqs").create_queue(QueueName="while-init-runs")
    finally:
        server.stop()
