"""Patterns 29 (job observer, the alarm half) and 33 (monitoring integration, the metrics
half) run as a user runs them, against a nimbus of their own whose cloud clock runs 60
times faster (a cloud minute per second), with the process instance driver and raw metrics
kept 30 days."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT, Server


@pytest.fixture(scope="module")
def fast():
    s = Server("--clock-scale", "60", "--instance-driver", "process",
               "--metrics-retention", "30d").start()
    yield s
    s.stop()


def run(pattern, endpoint):
    env = dict(os.environ, NIMBUS_ENDPOINT=endpoint,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    p = subprocess.run([os.path.join(ROOT, "patterns", pattern, "run.sh")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_pattern_29_a_queue_depth_alarm_goes_and_comes_back(fast):
    out = run("29-job-observer", fast.endpoint)
    assert "pattern 29: all observations hold" in out
    assert "ok    jobs are waiting: the alarm is in ALARM" in out
    assert "ok    history shows OK -> ALARM -> OK" in out


def test_pattern_33_metrics_retention_and_export(fast):
    out = run("33-monitoring-integration", fast.endpoint)
    assert "pattern 33: all observations hold" in out
    assert "NumberOfMessagesSent of p33-" in out and "over the last hour: 7.0" in out
    assert "raw 1-second data is kept too" in out
    assert "list-metrics shows the queue's 9 AWS/SQS metrics" in out
