"""The metrics nobody has to push: AWS/SQS, AWS/EC2 and AWS/S3 datapoints that nimbus's
collectors publish into its CloudWatch on the cloud's clock, read back through boto3.

Runs nimbus servers of its own with a fast cloud clock:
- `--clock-scale 60` (a cloud minute is a real second; instances with the process
  driver, which any host can run and which shares no bridge with other nimbus):
  a queue's metrics follow its sends and receives; an instance in a busy loop reports
  CPUUtilization near 100% of its one vCPU and an idle one near 0, detailed monitoring
  every minute, basic monitoring as five-minute statistics, the instance type and
  image aggregates; MonitorInstances / UnmonitorInstances switch between the two.
- `--clock-scale 1000` (a cloud day in 86.4 s): S3's daily storage metrics. Started
  by the module's first test, so the day runs while the other tests do.
"""
import datetime as dt
import json
import os
import time
import urllib.request
import uuid

import pytest

from conftest import Server, make_client

MINUTE = dt.timedelta(minutes=1)


def cloud_now(endpoint):
    """The server's cloud time (what CloudWatch's timestamps follow)."""
    with urllib.request.urlopen(endpoint + "/_nimbus/health", timeout=5) as r:
        ms = json.load(r)["clock"]["now_ms"]
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


def wait_for(what, check, timeout):
    """Polls `check` until it returns something true; returns it."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def points(cw, endpoint, ns, metric, dims, period=60, stats=("Sum", "Maximum", "Average", "SampleCount"),
           back=dt.timedelta(hours=1)):
    now = cloud_now(endpoint)
    # Periods count from StartTime: start on a boundary of the period.
    start = now - back
    start -= dt.timedelta(seconds=start.timestamp() % period)
    out = cw.get_metric_statistics(
        Namespace=ns, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dims],
        StartTime=start, EndTime=now + 2 * MINUTE, Period=period, Statistics=list(stats))
    return sorted(out["Datapoints"], key=lambda p: p["Timestamp"])


@pytest.fixture(scope="module")
def fast():
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("starts a nimbus of its own")
    s = Server("--clock-scale", "60", "--instance-driver", "process").start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def day_server():
    """A cloud day in 86.4 s, with a bucket filled at its start."""
    if os.environ.get("NIMBUS_E2E_ENDPOINT"):
        pytest.skip("starts a nimbus of its own")
    s = Server("--clock-scale", "1000", "--instance-driver", "process").start()
    s3 = make_client(s.endpoint, "s3")
    bucket = f"daily-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a", Body=b"x" * 1000)
    s3.put_object(Bucket=bucket, Key="b", Body=b"y" * 234)
    s3.put_object(Bucket=bucket, Key="c", Body=b"z" * 66, StorageClass="STANDARD_IA")
    yield s, bucket
    s.stop()


def test_queue_metrics_follow_sends_and_receives(fast, day_server):
    sqs = make_client(fast.endpoint, "sqs")
    cw = make_client(fast.endpoint, "cloudwatch")
    name = f"collected-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody="m" * (10 + i))
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=600)["Messages"]
    assert len(got) == 2
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    dims = [("QueueName", name)]

    def total(metric):
        return sum(p["Sum"] for p in points(cw, fast.endpoint, "AWS/SQS", metric, dims))

    wait_for("5 sends", lambda: total("NumberOfMessagesSent") == 5, 15)
    wait_for("1 delete", lambda: total("NumberOfMessagesDeleted") == 1, 15)
    # 2, then the 3 still visible.
    wait_for("5 receives", lambda: total("NumberOfMessagesReceived") == 5, 15)
    wait_for("3 visible", lambda: any(
        p["Maximum"] == 3 for p in points(cw, fast.endpoint, "AWS/SQS", "ApproximateNumberOfMessagesVisible", dims)), 15)
    size = points(cw, fast.endpoint, "AWS/SQS", "SentMessageSize", dims,
                  stats=("SampleCount", "Sum", "Minimum", "Maximum"))
    assert sum(p["SampleCount"] for p in size) == 5
    assert sum(p["Sum"] for p in size) == 10 + 11 + 12 + 13 + 14
    assert min(p["Minimum"] for p in size) == 10 and max(p["Maximum"] for p in size) == 14
    assert all(p["Unit"] == "Bytes" for p in size)
    age = points(cw, fast.endpoint, "AWS/SQS", "ApproximateAgeOfOldestMessage", dims)
    assert age and age[-1]["Unit"] == "Seconds"
    listed = {m["MetricName"] for m in cw.list_metrics(
        Namespace="AWS/SQS", Dimensions=[{"Name": "QueueName", "Value": name}])["Metrics"]}
    assert {"ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed", "ApproximateAgeOfOldestMessage",
            "NumberOfMessagesSent", "NumberOfMessagesReceived", "NumberOfMessagesDeleted",
            "NumberOfEmptyReceives", "SentMessageSize"} <= listed
    # Users still may not publish into AWS/ namespaces.
    with pytest.raises(Exception) as e:
        cw.put_metric_data(Namespace="AWS/SQS", MetricData=[{"MetricName": "X", "Value": 1}])
    assert "InvalidParameterValue" in str(e.value)


BUSY = "#!/bin/sh\nwhile :; do :; done &\n"


def launch(ec2, user_data, monitoring):
    image = ec2.describe_images()["Images"][0]["ImageId"]
    spec = {"ImageId": image, "InstanceType": "t2.micro", "MinCount": 1, "MaxCount": 1,
            "Monitoring": {"Enabled": monitoring}}
    if user_data:
        spec["UserData"] = user_data
    return ec2.run_instances(**spec)["Instances"][0]


def monitoring_state(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["Monitoring"]["State"]


def test_instance_metrics_cpu_monitoring_and_aggregates(fast, day_server):
    ec2 = make_client(fast.endpoint, "ec2")
    cw = make_client(fast.endpoint, "cloudwatch")
    # (The AutoScalingGroupName aggregate needs the aws:autoscaling:groupName tag, which
    # only Auto Scaling may set: the crate's tests cover it.)
    busy = launch(ec2, BUSY, True)
    idle = launch(ec2, None, False)
    ids = [busy["InstanceId"], idle["InstanceId"]]
    try:
        assert busy["Monitoring"]["State"] == "enabled"
        assert idle["Monitoring"]["State"] == "disabled"
        ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        b, i = ids

        # Detailed: a datapoint a minute; a busy loop fills its one vCPU (on a
        # shared CI host, some minute gets close to all of it).
        def busy_points():
            ps = points(cw, fast.endpoint, "AWS/EC2", "CPUUtilization", [("InstanceId", b)])
            return ps if len(ps) >= 3 and max(p["Maximum"] for p in ps) >= 80 else None

        ps = wait_for("busy CPU datapoints near 100%", busy_points, 40)
        assert all(p["SampleCount"] == 1 and p["Unit"] == "Percent" for p in ps)
        assert all(p["Maximum"] <= 100 for p in ps)

        # Basic: five-minute statistics of five samples; an idle machine is near 0.
        def idle_points():
            ps = points(cw, fast.endpoint, "AWS/EC2", "CPUUtilization", [("InstanceId", i)], period=300)
            return [p for p in ps if p["SampleCount"] == 5] or None

        ps = wait_for("idle five-minute datapoints", idle_points, 30)
        assert all(p["Timestamp"].minute % 5 == 0 for p in ps)
        assert ps[-1]["Average"] < 10, ps
        checks = points(cw, fast.endpoint, "AWS/EC2", "StatusCheckFailed", [("InstanceId", i)])
        assert checks and all(p["Maximum"] == 0 for p in checks)

        # Aggregates by type and image (detailed monitoring only).
        assert points(cw, fast.endpoint, "AWS/EC2", "CPUUtilization", [("InstanceType", "t2.micro")])
        listed = cw.list_metrics(Namespace="AWS/EC2", MetricName="CPUUtilization",
                                 Dimensions=[{"Name": "ImageId"}])["Metrics"]
        assert listed

        # MonitorInstances: the idle instance publishes every minute from now on.
        answer = ec2.monitor_instances(InstanceIds=[i])["InstanceMonitorings"]
        assert answer == [{"InstanceId": i, "Monitoring": {"State": "pending"}}]
        assert monitoring_state(ec2, i) == "enabled"
        switched = cloud_now(fast.endpoint)

        def minute_points():
            ps = points(cw, fast.endpoint, "AWS/EC2", "CPUUtilization", [("InstanceId", i)])
            return [p for p in ps if p["Timestamp"] >= switched and p["Timestamp"].minute % 5 != 0
                    and p["SampleCount"] == 1] or None

        wait_for("one-minute datapoints after MonitorInstances", minute_points, 30)
        filtered = ec2.describe_instances(Filters=[{"Name": "monitoring-state", "Values": ["enabled"]}])
        found = {x["InstanceId"] for r in filtered["Reservations"] for x in r["Instances"]}
        assert {b, i} <= found
        answer = ec2.unmonitor_instances(InstanceIds=[b, i])["InstanceMonitorings"]
        assert [a["Monitoring"]["State"] for a in answer] == ["disabling", "disabling"]
        assert monitoring_state(ec2, b) == "disabled"
    finally:
        ec2.terminate_instances(InstanceIds=ids)


def test_s3_daily_storage_metrics(day_server):
    server, bucket = day_server
    cw = make_client(server.endpoint, "cloudwatch")

    def daily(storage, metric="BucketSizeBytes"):
        return points(cw, server.endpoint, "AWS/S3", metric,
                      [("BucketName", bucket), ("StorageType", storage)],
                      period=86400, stats=("Maximum",), back=dt.timedelta(days=3))

    ps = wait_for("a day's storage metrics", lambda: daily("StandardStorage"), 120)
    assert ps[-1]["Maximum"] == 1234
    stamp = ps[-1]["Timestamp"]
    assert (stamp.hour, stamp.minute, stamp.second) == (0, 0, 0), stamp
    assert daily("StandardIAStorage")[-1]["Maximum"] == 66
    objects = daily("AllStorageTypes", "NumberOfObjects")
    assert objects[-1]["Maximum"] == 3
    assert objects[-1]["Unit"] == "Count"
