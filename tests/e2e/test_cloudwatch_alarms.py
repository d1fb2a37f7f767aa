"""CloudWatch alarms through real clients against a nimbus whose cloud clock runs
60 times faster (`--clock-scale 60`: a cloud minute is a real second).

Alarms evaluated on pushed data (ALARM, then OK, with AWS's reason text and
history), composite alarms, SetAlarmState, actions that stop a real instance (the
process driver), every action attempt in history, alarms and their acted-on state
across kill -9, and the API's errors, in each protocol CloudWatch clients speak
(CBOR, JSON, query) and through the aws CLI.
"""
import datetime as dt
import json
import re
import time
import uuid

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import REGION, Server, aws_cli, make_client
from s3_helpers import ON_MOTO, moto_gap
from test_cloudwatch import PROTOCOLS, cw_client, model_roots  # noqa: F401 (fixture)

SCALE = 60


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    s = Server("--clock-scale", str(SCALE), "--instance-driver", "process",
               data_dir=str(tmp_path_factory.mktemp("cw-alarms") / "data")).start()
    yield s
    s.stop()


@pytest.fixture(params=list(PROTOCOLS))
def cw(request, fast, model_roots):  # noqa: F811
    """A client of the fast-clock server: for tests that wait on evaluation."""
    return cw_client(fast.endpoint, request.param, model_roots)


@pytest.fixture(params=list(PROTOCOLS))
def api(request, endpoint, model_roots):  # noqa: F811
    """A client of the session server (or of a peer such as moto): for tests
    of the API alone."""
    if ON_MOTO and request.param == "cbor":
        pytest.skip("moto: CloudWatch answers in CBOR that botocore cannot parse")
    return cw_client(endpoint, request.param, model_roots)


def cloud_now(endpoint, scale=SCALE):
    """The cloud's time as nimbus reports it (aware UTC datetime)."""
    doc = requests.get(endpoint + "/_nimbus/health").json()
    assert doc["clock"]["scale"] == scale
    return dt.datetime.fromtimestamp(doc["clock"]["now_ms"] / 1000, dt.timezone.utc)


def minute(t):
    return t.replace(second=0, microsecond=0)


def wait_for_state(cw, name, state, timeout=15):
    deadline = time.time() + timeout
    alarm = None
    while time.time() < deadline:
        found = cw.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        alarms = found["MetricAlarms"] + found["CompositeAlarms"]
        alarm = alarms[0] if alarms else None
        if alarm and alarm["StateValue"] == state:
            return alarm
        time.sleep(0.1)
    raise AssertionError(f"{name} did not reach {state}: {alarm}")


def put_minutes(cw, ns, start, values, **dims):
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Load", "Timestamp": start + dt.timedelta(minutes=i), "Value": v,
         "Dimensions": [{"Name": k, "Value": val} for k, val in dims.items()]}
        for i, v in enumerate(values)])


def unique(prefix="alarm"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_an_alarm_crosses_its_threshold_and_comes_back(cw, fast):
    ns, name = f"App/{uuid.uuid4().hex[:8]}", unique()
    cw.put_metric_alarm(AlarmName=name, Namespace=ns, MetricName="Load", Statistic="Average",
                        Period=60, EvaluationPeriods=3, Threshold=75.0,
                        ComparisonOperator="GreaterThanThreshold")
    created = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert created["StateValue"] == "INSUFFICIENT_DATA"
    assert created["StateReason"] == "Unchecked: Initial alarm creation"
    assert created["AlarmArn"].endswith(f":alarm:{name}")

    # Breaching data for the last three cloud minutes and the next ten.
    start = minute(cloud_now(fast.endpoint)) - dt.timedelta(minutes=3)
    put_minutes(cw, ns, start, [81.2] * 13)
    alarm = wait_for_state(cw, name, "ALARM")
    assert re.fullmatch(
        r"Threshold Crossed: 3 datapoints \[81\.2 \(\d\d/\d\d/\d\d \d\d:\d\d:00\), "
        r"81\.2 \(.*?\), 81\.2 \(.*?\)\] were greater than the threshold \(75\.0\)\.",
        alarm["StateReason"]), alarm["StateReason"]
    data = json.loads(alarm["StateReasonData"])
    assert data["recentDatapoints"] == [81.2, 81.2, 81.2]
    assert data["statistic"] == "Average" and data["period"] == 60 and data["threshold"] == 75.0

    # Calm data after the breach: back to OK.
    put_minutes(cw, ns, start + dt.timedelta(minutes=13), [10.0] * 20)
    ok = wait_for_state(cw, name, "OK", timeout=30)
    assert "were not greater than the threshold (75.0)" in ok["StateReason"] or \
        "was not greater than" in ok["StateReason"], ok["StateReason"]

    history = cw.describe_alarm_history(AlarmName=name)["AlarmHistoryItems"]
    summaries = [h["HistorySummary"] for h in history]
    assert summaries[:2] == ["Alarm updated from ALARM to OK",
                             "Alarm updated from INSUFFICIENT_DATA to ALARM"]
    assert summaries[-1] == f'Alarm "{name}" created'
    assert all(h["AlarmName"] == name and h["AlarmType"] == "MetricAlarm" for h in history)
    update = json.loads(history[1]["HistoryData"])
    assert update["oldState"]["stateValue"] == "INSUFFICIENT_DATA"
    assert update["newState"]["stateValue"] == "ALARM"
    assert update["newState"]["stateReasonData"]["recentDatapoints"] == [81.2, 81.2, 81.2]


def test_a_breach_alarms_within_seconds_at_scale_60(cw, fast):
    """A 3-period, 60-second alarm: the third breaching minute ends three cloud
    minutes (three real seconds) after the breach starts; allow for the
    evaluation's delay within the minute and for a loaded machine."""
    ns, name = f"App/{uuid.uuid4().hex[:8]}", unique()
    cw.put_metric_alarm(AlarmName=name, Namespace=ns, MetricName="Load", Statistic="Maximum",
                        Period=60, EvaluationPeriods=3, Threshold=1.0,
                        ComparisonOperator="GreaterThanOrEqualToThreshold",
                        TreatMissingData="notBreaching")
    wait_for_state(cw, name, "OK")
    begun = time.time()
    breach = minute(cloud_now(fast.endpoint)) + dt.timedelta(minutes=1)
    put_minutes(cw, ns, breach, [5.0] * 30)
    wait_for_state(cw, name, "ALARM", timeout=15)
    assert time.time() - begun < 12


def test_m_out_of_n_and_missing_data_through_the_server(cw, fast):
    ns = f"App/{uuid.uuid4().hex[:8]}"
    start = minute(cloud_now(fast.endpoint)) - dt.timedelta(minutes=5)
    # 2 of the last 3 minutes breach; the last one does not.
    put_minutes(cw, ns, start, [1.0, 1.0, 1.0, 90.0, 90.0, 1.0] + [1.0] * 30)
    two_of_three = unique("m-of-n")
    cw.put_metric_alarm(AlarmName=two_of_three, Namespace=ns, MetricName="Load",
                        Statistic="Average", Period=60, EvaluationPeriods=3, DatapointsToAlarm=2,
                        Threshold=50.0, ComparisonOperator="GreaterThanThreshold")
    missing = unique("missing")
    cw.put_metric_alarm(AlarmName=missing, Namespace=f"{ns}/none", MetricName="Load",
                        Statistic="Average", Period=60, EvaluationPeriods=2, Threshold=1.0,
                        ComparisonOperator="GreaterThanThreshold", TreatMissingData="breaching")
    # Evaluated at the next cloud minute: minutes -3..-1 hold 90, 90, 1.
    alarm = wait_for_state(cw, two_of_three, "ALARM")
    assert alarm["StateReason"].startswith("Threshold Crossed: 2 out of the last 3 datapoints")
    assert "(minimum 2 datapoints for OK -> ALARM transition)" in alarm["StateReason"]
    breaching = wait_for_state(cw, missing, "ALARM")
    assert "no datapoints were received for 2 periods and 2 missing datapoints were treated as [Breaching]" \
        in breaching["StateReason"], breaching["StateReason"]


@moto_gap("PutCompositeAlarm answers 500")
def test_composite_alarms_and_set_alarm_state(api):
    cw = api
    a, b, top = unique("a"), unique("b"), unique("top")
    for name in (a, b):
        cw.put_metric_alarm(AlarmName=name, Namespace="App/composite", MetricName="Load",
                            Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1.0,
                            ComparisonOperator="GreaterThanThreshold", TreatMissingData="ignore")
    cw.put_composite_alarm(AlarmName=top, AlarmRule=f'ALARM("{a}") AND NOT ALARM({b})',
                           AlarmDescription="a without b")
    comp = wait_for_state(cw, top, "OK")
    assert comp["AlarmRule"] == f'ALARM("{a}") AND NOT ALARM({b})'
    assert comp["StateReason"].endswith("was created and its alarm rule evaluates to OK")
    cw.set_alarm_state(AlarmName=a, StateValue="ALARM", StateReason="by hand",
                       StateReasonData='{"why":"test"}')
    comp = wait_for_state(cw, top, "ALARM")
    assert f":alarm:{a} transitioned to ALARM at " in comp["StateReason"]
    triggering = json.loads(comp["StateReasonData"])["triggeringAlarms"]
    assert triggering[0]["arn"].endswith(f":alarm:{a}") and triggering[0]["state"]["value"] == "ALARM"
    cw.set_alarm_state(AlarmName=b, StateValue="ALARM", StateReason="both")
    wait_for_state(cw, top, "OK")
    children = cw.describe_alarms(ChildrenOfAlarmName=top)["MetricAlarms"]
    assert sorted(c["AlarmName"] for c in children) == sorted([a, b])
    parents = cw.describe_alarms(ParentsOfAlarmName=a)["CompositeAlarms"]
    assert [p["AlarmName"] for p in parents] == [top]
    only_metric = cw.describe_alarms(AlarmNamePrefix=top)
    assert only_metric["CompositeAlarms"] == [] and only_metric["MetricAlarms"] == []
    with pytest.raises(ClientError) as e:
        cw.put_composite_alarm(AlarmName=unique("bad"), AlarmRule="ALARM(nowhere)")
    assert e.value.response["Error"]["Code"] == "ValidationError"
    assert e.value.response["Error"]["Message"] == \
        "Could not save the composite alarm as alarms [nowhere] in the alarm rule do not exist"
    cw.delete_alarms(AlarmNames=[top, a, b])
    gone = cw.describe_alarms(AlarmNames=[top, a, b], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    assert (gone["MetricAlarms"], gone["CompositeAlarms"]) == ([], [])
    # History outlives the alarm.
    assert cw.describe_alarm_history(AlarmName=a)["AlarmHistoryItems"]


@moto_gap("PutMetricAlarm checks neither DatapointsToAlarm, Period nor TreatMissingData")
def test_errors_by_code_and_status(api):
    cw = api
    base = dict(AlarmName=unique(), Namespace="App/e", MetricName="Load", Statistic="Average",
                Period=60, EvaluationPeriods=2, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")
    cases = [
        (dict(base, DatapointsToAlarm=3), "ValidationError",
         "DatapointsToAlarm must be less than or equal to EvaluationPeriods"),
        (dict(base, Period=45), "ValidationError", "Period must be 10, 20, 30 or a multiple of 60"),
        ({**{k: v for k, v in base.items() if k != "Statistic"}, "ExtendedStatistic": "x99"},
         "InvalidParameterValue", "The value x99 for parameter ExtendedStatistic is not supported."),
        (dict(base, TreatMissingData="never"), "ValidationError",
         "Option never is not supported. Supported options for parameter TreatMissingData are "
         "missing, ignore, breaching and notBreaching."),
    ]
    for args, code, message in cases:
        with pytest.raises(ClientError) as e:
            cw.put_metric_alarm(**args)
        assert (e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]) == (code, message)
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert cw.describe_alarms(AlarmNames=[base["AlarmName"]])["MetricAlarms"] == []
    with pytest.raises(ClientError) as e:
        cw.set_alarm_state(AlarmName=unique("none"), StateValue="OK", StateReason="r")
    assert e.value.response["Error"]["Code"] == "ResourceNotFound"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    cw.put_metric_alarm(**base)
    with pytest.raises(ClientError) as e:
        cw.set_alarm_state(AlarmName=base["AlarmName"], StateValue="OK", StateReason="r",
                           StateReasonData="{not json")
    assert e.value.response["Error"]["Code"] == "InvalidFormat"
    with pytest.raises(ClientError) as e:
        cw.describe_alarms(NextToken="%%%")
    assert e.value.response["Error"]["Code"] == "InvalidNextToken"
    cw.delete_alarms(AlarmNames=[base["AlarmName"]])


def test_tags_filters_and_pages(api):
    cw = api
    prefix = unique("page")
    names = [f"{prefix}-{i}" for i in range(5)]
    for i, name in enumerate(names):
        cw.put_metric_alarm(AlarmName=name, Namespace="App/p", MetricName="Load", Statistic="Average",
                            Period=60, EvaluationPeriods=1, Threshold=float(i),
                            ComparisonOperator="GreaterThanThreshold",
                            AlarmActions=[f"arn:aws:sns:{REGION}:000000000000:{prefix}-{i}"],
                            Tags=[{"Key": "n", "Value": str(i)}])
    seen, token = [], None
    while True:
        kw = {"AlarmNamePrefix": prefix, "MaxRecords": 2}
        if token:
            kw["NextToken"] = token
        page = cw.describe_alarms(**kw)
        seen += [a["AlarmName"] for a in page["MetricAlarms"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == names
    by_action = cw.describe_alarms(ActionPrefix=f"arn:aws:sns:{REGION}:000000000000:{prefix}-3")
    assert [a["AlarmName"] for a in by_action["MetricAlarms"]] == [names[3]]
    arn = cw.describe_alarms(AlarmNames=[names[0]])["MetricAlarms"][0]["AlarmArn"]
    assert cw.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "n", "Value": "0"}]
    cw.tag_resource(ResourceARN=arn, Tags=[{"Key": "team", "Value": "web"}])
    cw.untag_resource(ResourceARN=arn, TagKeys=["n"])
    assert cw.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "team", "Value": "web"}]
    for_metric = cw.describe_alarms_for_metric(MetricName="Load", Namespace="App/p",
                                               Statistic="Average", Period=60)
    assert {a["AlarmName"] for a in for_metric["MetricAlarms"]} >= set(names)
    cw.delete_alarms(AlarmNames=names)


@moto_gap("DisableAlarmActions answers 500")
def test_alarm_actions_switch_off_and_on(api):
    cw = api
    prefix = unique("switch")
    names = [f"{prefix}-{i}" for i in range(3)]
    for name in names:
        cw.put_metric_alarm(AlarmName=name, Namespace="App/p", MetricName="Load", Statistic="Average",
                            Period=60, EvaluationPeriods=1, Threshold=1.0,
                            ComparisonOperator="GreaterThanThreshold")
    cw.disable_alarm_actions(AlarmNames=names[:2])
    enabled = {a["AlarmName"]: a["ActionsEnabled"]
               for a in cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]}
    assert enabled == {n: i >= 2 for i, n in enumerate(names)}
    cw.enable_alarm_actions(AlarmNames=names[:1])
    assert cw.describe_alarms(AlarmNames=[names[0]])["MetricAlarms"][0]["ActionsEnabled"] is True
    cw.delete_alarms(AlarmNames=names)


def ec2_state(ec2, iid):
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_an_alarm_stops_its_instance_once_even_across_kill_9(fast, model_roots):  # noqa: F811
    ec2 = make_client(fast.endpoint, "ec2")
    cw = cw_client(fast.endpoint, "json", model_roots)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    iid = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                            UserData="#!/bin/sh\nsleep 600\n")["Instances"][0]["InstanceId"]
    deadline = time.time() + 20
    while ec2_state(ec2, iid) != "running" and time.time() < deadline:
        time.sleep(0.1)
    name = unique("stop")
    stop = f"arn:aws:automate:{REGION}:ec2:stop"
    cw.put_metric_alarm(AlarmName=name, Namespace="AWS/EC2", MetricName="CPUUtilization",
                        Dimensions=[{"Name": "InstanceId", "Value": iid}], Statistic="Average",
                        Period=60, EvaluationPeriods=1, Threshold=90.0,
                        ComparisonOperator="GreaterThanThreshold", AlarmActions=[stop],
                        # No CPU data is pushed: the state set by hand stays.
                        TreatMissingData="ignore",
                        OKActions=[f"arn:aws:sns:{REGION}:000000000000:ops"])
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="CPU pinned")
    deadline = time.time() + 20
    while ec2_state(ec2, iid) not in ("stopped",) and time.time() < deadline:
        time.sleep(0.1)
    assert ec2_state(ec2, iid) == "stopped"
    actions = cw.describe_alarm_history(AlarmName=name, HistoryItemType="Action")["AlarmHistoryItems"]
    assert [a["HistorySummary"] for a in actions] == [f"Successfully executed action {stop}"]
    assert json.loads(actions[0]["HistoryData"])["actionState"] == "Succeeded"

    # kill -9 and restart: the acted-on ALARM is not acted on again.
    ec2.start_instances(InstanceIds=[iid])
    fast.kill9()
    fast.start()
    ec2 = make_client(fast.endpoint, "ec2")
    cw = cw_client(fast.endpoint, "json", model_roots)
    alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM" and alarm["StateReason"] == "CPU pinned"
    time.sleep(2)
    actions = cw.describe_alarm_history(AlarmName=name, HistoryItemType="Action")["AlarmHistoryItems"]
    assert len(actions) == 1
    # An SNS action cannot be delivered here, and history says so.
    cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="calm")
    deadline = time.time() + 10
    while time.time() < deadline:
        actions = cw.describe_alarm_history(AlarmName=name, HistoryItemType="Action")["AlarmHistoryItems"]
        if len(actions) == 2:
            break
        time.sleep(0.1)
    assert actions[0]["HistorySummary"] == f"Failed to execute action arn:aws:sns:{REGION}:000000000000:ops"
    assert "SNS" in json.loads(actions[0]["HistoryData"])["error"]
    ec2.terminate_instances(InstanceIds=[iid])


@moto_gap("DescribeAlarmHistory with HistoryItemType answers 500")
def test_the_cli_speaks_alarms(endpoint):
    name = unique("cli")
    aws_cli(endpoint, "cloudwatch", "put-metric-alarm", "--alarm-name", name, "--namespace", "App/cli",
            "--metric-name", "Load", "--statistic", "Average", "--period", "60", "--evaluation-periods", "1",
            "--threshold", "5", "--comparison-operator", "GreaterThanThreshold",
            "--treat-missing-data", "ignore")
    aws_cli(endpoint, "cloudwatch", "set-alarm-state", "--alarm-name", name, "--state-value", "ALARM",
            "--state-reason", "cli")
    out = aws_cli(endpoint, "cloudwatch", "describe-alarms", "--alarm-names", name)
    assert out["MetricAlarms"][0]["StateValue"] == "ALARM"
    out = aws_cli(endpoint, "cloudwatch", "describe-alarm-history", "--alarm-name", name,
                  "--history-item-type", "StateUpdate")
    assert out["AlarmHistoryItems"][0]["HistorySummary"] == "Alarm updated from INSUFFICIENT_DATA to ALARM"
    aws_cli(endpoint, "cloudwatch", "delete-alarms", "--alarm-names", name)


# --- the user guide's tables through the server ---------------------------------------

# "Evaluating an alarm" in the CloudWatch user guide: periods of 5 minutes, threshold 10
# (GreaterThanThreshold), 3 evaluation periods; "0" is a datapoint within the threshold,
# "X" one breaching it, "-" a period without data, the newest on the right. The cells are
# the state per TreatMissingData (missing, ignore, breaching, notBreaching); "keep" is
# "retain current state" (here the initial INSUFFICIENT_DATA).
GUIDE_TABLE = [
    (3, "0 - X - X", ["OK", "OK", "OK", "OK"]),
    (3, "- - - - 0", ["OK", "OK", "OK", "OK"]),
    (3, "- - - - -", ["INSUFFICIENT_DATA", "keep", "ALARM", "OK"]),
    (3, "0 X X - X", ["ALARM", "ALARM", "ALARM", "ALARM"]),
    (3, "- - X - -", ["ALARM", "keep", "ALARM", "OK"]),
    (2, "0 - X - X", ["ALARM", "ALARM", "ALARM", "ALARM"]),
    (2, "0 0 X 0 X", ["ALARM", "ALARM", "ALARM", "ALARM"]),
    (2, "0 - X - -", ["OK", "OK", "ALARM", "OK"]),
    (2, "- - - - 0", ["OK", "OK", "ALARM", "OK"]),
    (2, "- - - X -", ["ALARM", "keep", "ALARM", "OK"]),
]
TREATMENTS = ["missing", "ignore", "breaching", "notBreaching"]
TABLE_SCALE = 10


@pytest.fixture(scope="module")
def table_server():
    s = Server("--clock-scale", str(TABLE_SCALE)).start()
    yield s
    s.stop()


def test_the_user_guides_tables_through_the_server(table_server, model_roots):  # noqa: F811
    """Each row's datapoints are placed in the middle of the 5-minute periods that the
    evaluations of cloud minutes M-2 .. M+2 all see in the same slots (the range ends at
    the start of the evaluation's minute and slides by a minute), the alarms are created
    after the data, and every state is read after the evaluation of M+2 and before that of
    M+3. At scale 10 that leaves several real seconds on either side."""
    cw = cw_client(table_server.endpoint, "json", model_roots)
    ns = f"Guide/{uuid.uuid4().hex[:8]}"
    t0 = cloud_now(table_server.endpoint, TABLE_SCALE)
    m = minute(t0) + dt.timedelta(minutes=2)
    data = []
    for row, (_, pattern, _) in enumerate(GUIDE_TABLE):
        marks = pattern.split()
        for i, mark in enumerate(marks):
            if mark == "-":
                continue
            age = len(marks) - 1 - i
            at = m - dt.timedelta(minutes=5 * age + 2, seconds=30)
            data.append({"MetricName": f"Row{row}", "Timestamp": at,
                         "Value": 50.0 if mark == "X" else 2.0})
    cw.put_metric_data(Namespace=ns, MetricData=data)
    names = {}
    for row, (m_of_n, _, _) in enumerate(GUIDE_TABLE):
        for treat in TREATMENTS:
            name = f"{ns.replace('/', '-')}-{row}-{treat}"
            names[(row, treat)] = name
            cw.put_metric_alarm(AlarmName=name, Namespace=ns, MetricName=f"Row{row}", Statistic="Average",
                                Period=300, EvaluationPeriods=3, DatapointsToAlarm=m_of_n, Threshold=10.0,
                                ComparisonOperator="GreaterThanThreshold", TreatMissingData=treat)
    assert cloud_now(table_server.endpoint, TABLE_SCALE) < m + dt.timedelta(minutes=2), \
        "the alarms took too long to create"
    read_at = m + dt.timedelta(minutes=2, seconds=25)
    while cloud_now(table_server.endpoint, TABLE_SCALE) < read_at:
        time.sleep(0.1)
    states = {}
    for page in cw.get_paginator("describe_alarms").paginate(AlarmNamePrefix=ns.replace("/", "-")):
        states.update({a["AlarmName"]: a["StateValue"] for a in page["MetricAlarms"]})
    assert cloud_now(table_server.endpoint, TABLE_SCALE) < m + dt.timedelta(minutes=3, seconds=10), \
        "the states were read too late"
    wrong = []
    for row, (m_of_n, pattern, cells) in enumerate(GUIDE_TABLE):
        for treat, cell in zip(TREATMENTS, cells):
            want = "INSUFFICIENT_DATA" if cell == "keep" else cell
            got = states.get(names[(row, treat)])
            if got != want:
                wrong.append(f"{m_of_n} of 3, '{pattern}', {treat}: {got}, not {want}")
    assert not wrong, "\n".join(wrong)
