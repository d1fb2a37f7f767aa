"""`nimbus serve` checks every flag and NIMBUS_* variable before it opens anything:
a bad value ends it at once with exit status 2 and a message on stderr naming the
flag and the value, and no data directory is created. Good values still start.
"""
import os
import subprocess

import pytest

from conftest import Server, nimbus_bin

# (flag, environment variable, bad value, words the message must hold)
BAD = [
    ("--instance-driver", "NIMBUS_INSTANCE_DRIVER", "bogus", ["possible values", "auto", "namespace", "process"]),
    ("--log-level", "NIMBUS_LOG", "loud", ["not a level"]),
    ("--log-level", "NIMBUS_LOG", "nimbus=loud", ["not a tracing filter"]),
    ("--account-id", "NIMBUS_ACCOUNT_ID", "12345", ["12 digits"]),
    ("--account-id", "NIMBUS_ACCOUNT_ID", "12345678901x", ["12 digits"]),
    ("--region", "NIMBUS_REGION", "mars-1", ["not a region name"]),
    ("--region", "NIMBUS_REGION", "US-EAST-1", ["not a region name"]),
    ("--elastic-ip-cidr", "NIMBUS_ELASTIC_IP_CIDR", "10.0.0.0", ["not a CIDR block"]),
    ("--elastic-ip-cidr", "NIMBUS_ELASTIC_IP_CIDR", "300.0.0.0/16", ["not an IPv4 address"]),
    ("--elastic-ip-cidr", "NIMBUS_ELASTIC_IP_CIDR", "10.0.0.0/32", ["fewer than 4 addresses"]),
    ("--root-access-key-id", "NIMBUS_ROOT_ACCESS_KEY_ID", "", ["must not be empty"]),
    ("--root-secret-access-key", "NIMBUS_ROOT_SECRET_ACCESS_KEY", "", ["must not be empty"]),
    ("--port", "NIMBUS_PORT", "70000", []),
    ("--auth", "NIMBUS_AUTH", "maybe", ["possible values"]),
    ("--host", "NIMBUS_HOST", "not a host", ["not an IP address or host name"]),
    ("--init", "NIMBUS_INIT_DIR", "/nonexistent/init", ["not a directory"]),
    ("--metrics-retention", "NIMBUS_METRICS_RETENTION", "2h", ["at least 3h"]),
    ("--metrics-retention", "NIMBUS_METRICS_RETENTION", "soon", ["not a duration"]),
]

# Variables the developer's shell may have set would change what is being tested.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("NIMBUS_") or k == "NIMBUS_BIN"}


def serve(flag, args, env, tmp_path):
    data = tmp_path / "data"
    # A free port in case a bad value were accepted; not when the port is what is tested.
    port = [] if flag == "--port" else ["--port", "0"]
    p = subprocess.run([nimbus_bin(), "serve", *port, "--data-dir", str(data), *args],
                       capture_output=True, text=True, env=dict(CLEAN_ENV, **env), timeout=20)
    return p, data


@pytest.fixture(autouse=True)
def own_process():
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("runs nimbus binaries of its own")


@pytest.mark.parametrize("flag,var,value,words", BAD, ids=[f"{b[0]}={b[2]}" for b in BAD])
def test_bad_flag_exits_2_naming_it(flag, var, value, words, tmp_path):
    p, data = serve(flag, [f"{flag}={value}"], {}, tmp_path)
    assert p.returncode == 2, p.stderr
    assert flag in p.stderr and f"'{value}'" in p.stderr, p.stderr
    for w in words:
        assert w in p.stderr, p.stderr
    assert not data.exists(), "nothing may be opened before the flags are checked"
    assert "Ready." not in p.stdout


@pytest.mark.parametrize("flag,var,value,words", BAD, ids=[f"{b[1]}={b[2]}" for b in BAD])
def test_bad_variable_exits_2_naming_it(flag, var, value, words, tmp_path):
    p, data = serve(flag, [], {var: value}, tmp_path)
    assert p.returncode == 2, p.stderr
    assert flag in p.stderr and f"'{value}'" in p.stderr, p.stderr
    for w in words:
        assert w in p.stderr, p.stderr
    assert not data.exists()


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-2", "ap-southeast-4", "us-gov-west-1",
                                    "cn-north-1", "il-central-1", "me-south-1"])
def test_real_regions_and_good_values_start(region, tmp_path):
    s = Server("--region", region, "--account-id", "123456789012", "--log-level", "nimbus=debug,warn",
               "--elastic-ip-cidr", "127.101.0.0/24", "--instance-driver", "process",
               "--root-access-key-id", "AKIDEXAMPLE")
    s.env = dict(CLEAN_ENV)
    try:
        s.start()
    finally:
        s.stop()


def test_port_zero_is_fine(tmp_path):
    proc = subprocess.Popen([nimbus_bin(), "serve", "--ephemeral", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=CLEAN_ENV)
    try:
        line = proc.stdout.readline()
        assert "Ready." in line and ":0 " not in line, line
    finally:
        proc.terminate()
        proc.wait(timeout=10)
