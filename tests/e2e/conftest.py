"""Shared fixtures: a live `nimbus serve` per test session, and real clients for it.

The binary is $NIMBUS_BIN, or target/release/nimbus, or target/debug/nimbus.
Each server runs with --ephemeral on a free loopback port, so suites never share state
with a developer's own nimbus.

NIMBUS_E2E_ENDPOINT=http://host:port runs the suites against a server that is already
running (a nimbus, or a peer emulator such as moto) instead; tests that must start,
kill or restart a nimbus of their own then skip.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
import botocore.config
import botocore.credentials
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REGION = "us-east-1"


def nimbus_bin():
    if os.environ.get("NIMBUS_BIN"):
        return os.environ["NIMBUS_BIN"]
    for kind in ("release", "debug"):
        p = os.path.join(ROOT, "target", kind, "nimbus")
        if os.path.exists(p):
            return p
    raise RuntimeError("build nimbus first (cargo build --release) or set NIMBUS_BIN")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `nimbus serve` process; start/kill/restart for crash tests."""

    def __init__(self, *extra_args, data_dir=None, env=None):
        self.port = free_port()
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.log_path = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        if os.environ.get("NIMBUS_E2E_ENDPOINT"):
            pytest.skip("starts a nimbus of its own; NIMBUS_E2E_ENDPOINT is set")
        args = [nimbus_bin(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--data-dir", self.data_dir] if self.data_dir else ["--ephemeral"]
        args += self.extra_args
        fd, self.log_path = tempfile.mkstemp(prefix="nimbus-e2e-", suffix=".log")
        self.proc = subprocess.Popen(args, stdout=fd, stderr=fd, env=self.env)
        os.close(fd)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nimbus exited: {open(self.log_path).read()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/_nimbus/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("nimbus did not answer /_nimbus/health")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self):
        return open(self.log_path).read() if self.log_path else ""


class ExternalServer:
    """$NIMBUS_E2E_ENDPOINT: an already running server (nimbus or a peer such as moto).
    Only .endpoint is real; anything that would kill or restart it skips the test."""

    def __init__(self, endpoint):
        self.endpoint = endpoint.rstrip("/")

    def _skip(self, *_a, **_k):
        pytest.skip("needs a nimbus process of its own; NIMBUS_E2E_ENDPOINT is set")

    start = kill9 = stop = log = _skip


@pytest.fixture(scope="session")
def server():
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        yield ExternalServer(os.environ["NIMBUS_E2E_ENDPOINT"])
        return
    s = Server().start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def endpoint(server):
    return server.endpoint


def make_client(endpoint, service, access_key="test", secret_key="test", token=None, **cfg):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=token,
        config=botocore.config.Config(retries={"max_attempts": 1}, **cfg),
    )


_PROTOCOL_MODELS = {}


def protocol_client(endpoint, service, protocol, tmp_root, **kw):
    """A botocore client that speaks `protocol` to `service`, as an SDK of that era does.

    "query" uses models/<service>-query.json (the API as botocore described it in query
    form); "cbor" uses the current model switched to Smithy RPC v2 CBOR, which is what
    SDKs that moved to CBOR send. Either way botocore itself serializes, signs and parses.
    """
    import botocore.session
    session = botocore.session.get_session()
    if protocol != "json":
        key = (service, protocol)
        if key not in _PROTOCOL_MODELS:
            src = os.path.join(ROOT, "models", f"{service}-query.json" if protocol == "query" else f"{service}.json")
            with open(src) as f:
                model = json.load(f)
            if protocol == "cbor":
                model["metadata"]["protocol"] = "smithy-rpc-v2-cbor"
                model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
            version = model["metadata"]["apiVersion"]
            root = os.path.join(tmp_root, protocol)
            os.makedirs(os.path.join(root, service, version), exist_ok=True)
            with open(os.path.join(root, service, version, "service-2.json"), "w") as f:
                json.dump(model, f)
            _PROTOCOL_MODELS[key] = root
        session.get_component("data_loader").search_paths.insert(0, _PROTOCOL_MODELS[key])
    return session.create_client(
        service, endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=kw.pop("access_key", "test"), aws_secret_access_key=kw.pop("secret_key", "test"),
        config=botocore.config.Config(retries={"max_attempts": 1}, **kw))


class SigV4:
    """A `requests` auth that signs each request with botocore's SigV4 signer, as an SDK
    would (nimbus treats unsigned requests as anonymous callers)."""

    def __init__(self, service, access_key="test", secret_key="test", region=REGION):
        self.service, self.region = service, region
        self.credentials = botocore.credentials.Credentials(access_key, secret_key)

    def __call__(self, r):
        import botocore.auth
        import botocore.awsrequest
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        headers = {k: v for k, v in r.headers.items() if k.lower() not in ("user-agent", "connection")}
        req = botocore.awsrequest.AWSRequest(method=r.method, url=r.url, data=body, headers=headers)
        botocore.auth.SigV4Auth(self.credentials, self.service, self.region).add_auth(req)
        for k, v in req.headers.items():
            r.headers[k] = v
        return r


@pytest.fixture
def client(endpoint):
    """client("sqs") -> a boto3 client for the session server."""
    return lambda service, **kw: make_client(endpoint, service, **kw)


def aws_cli(endpoint, *args, env=None, check=True):
    """Runs the real `aws` CLI (from the test venv) against nimbus; returns parsed JSON or text."""
    aws = shutil.which("aws", path=os.path.dirname(sys.executable)) or "aws"
    e = dict(os.environ)
    e.update({
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    })
    e.update(env or {})
    p = subprocess.run([aws, "--endpoint-url", endpoint, "--output", "json", *args],
                       capture_output=True, text=True, env=e)
    if check and p.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    if not check:
        return p
    out = p.stdout.strip()
    return json.loads(out) if out.startswith(("{", "[")) else out


@pytest.fixture
def aws(endpoint):
    return lambda *args, **kw: aws_cli(endpoint, *args, **kw)
