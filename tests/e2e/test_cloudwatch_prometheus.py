"""CloudWatch's metrics in Prometheus text at GET /_nimbus/metrics: the latest
minute of each recently published series, one gauge family per metric, labels
for account, region, unit, statistic and dimensions, accepted by promtool (the
checker that ships with Prometheus); and under --auth enforce only for the root
credentials."""
import shutil
import subprocess
import uuid

import pytest
import requests

from conftest import Server, SigV4, make_client


def test_metrics_are_exported_for_prometheus(endpoint):
    cw = make_client(endpoint, "cloudwatch")
    ns = f"Shop{uuid.uuid4().hex[:6]}/Orders"
    family = "shop" + ns[4:10] + "_orders_order_latency"
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "OrderLatency", "Unit": "Milliseconds", "Values": [10.0, 30.0, 20.0],
         "Dimensions": [{"Name": "InstanceId", "Value": "i-0abc"}, {"Name": "Stage", "Value": 'pro"d'}]},
    ])
    r = requests.get(endpoint + "/_nimbus/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = [l for l in r.text.splitlines() if l.startswith(family)]
    by_stat = {}
    for line in lines:
        labels, value, stamp = line.rsplit(" ", 2)
        assert 'instance_id="i-0abc"' in labels and 'stage="pro\\"d"' in labels
        assert 'unit="Milliseconds"' in labels and 'account="' in labels
        stat = labels.split('statistic="')[1].split('"')[0]
        by_stat[stat] = float(value)
        assert int(stamp) % 60_000 == 0
    assert by_stat == {"average": 20.0, "sum": 60.0, "minimum": 10.0, "maximum": 30.0,
                       "sample_count": 3.0}
    assert f"# TYPE {family} gauge" in r.text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    check = subprocess.run([promtool, "check", "metrics"], input=r.text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_under_enforce_only_root_reads_the_export():
    s = Server("--auth", "enforce").start()
    try:
        r = requests.get(s.endpoint + "/_nimbus/metrics")
        assert r.status_code == 403
        r = requests.get(s.endpoint + "/_nimbus/metrics", auth=SigV4("nimbus"))
        assert r.status_code == 200, r.text
    finally:
        s.stop()
