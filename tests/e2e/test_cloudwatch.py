"""CloudWatch metrics through real clients (boto3 and the aws CLI) against a live nimbus.

Every API test runs in each protocol CloudWatch clients speak: Smithy RPC v2 CBOR
(what current botocore and other SDKs send), AWS JSON 1.0 with x-amzn-query-mode
(the model is query-compatible) and the query protocol (older SDKs, raw HTTP). The
client is botocore's own, built from its bundled CloudWatch model with the
protocol switched, so botocore serializes, signs and parses each request.

Covers PutMetricData, GetMetricStatistics (statistics and percentiles checked
against values computed here), ListMetrics (filters, RecentlyActive, pages of
500), CloudWatch's errors by code and status, raw query XML, data across a clean
restart and a kill -9, and `--metrics-retention`.
"""
import copy
import datetime as dt
import json
import math
import os
import uuid
import xml.etree.ElementTree as ET

import botocore.config
import botocore.session
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import REGION, Server, SigV4

PROTOCOLS = {"cbor": "smithy-rpc-v2-cbor", "json": "json", "query": "query"}
NS_XML = {"m": "http://monitoring.amazonaws.com/doc/2010-08-01/"}


# --- clients and helpers --------------------------------------------------------

@pytest.fixture(scope="module")
def model_roots(tmp_path_factory):
    """One data directory per protocol holding botocore's CloudWatch model switched to it."""
    session = botocore.session.get_session()
    model = session.get_component("data_loader").load_service_model("cloudwatch", "service-2")
    version = model["metadata"]["apiVersion"]
    roots = {}
    for name, protocol in PROTOCOLS.items():
        m = copy.deepcopy(model)
        m["metadata"]["protocol"] = protocol
        m["metadata"]["protocols"] = [protocol]
        root = tmp_path_factory.mktemp(f"cw-{name}")
        target = root / "cloudwatch" / version
        target.mkdir(parents=True)
        (target / "service-2.json").write_text(json.dumps(m))
        roots[name] = str(root)
    return roots


def cw_client(endpoint, protocol, model_roots):
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, model_roots[protocol])
    client = session.create_client(
        "cloudwatch", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test",
        aws_secret_access_key="test", config=botocore.config.Config(retries={"max_attempts": 1}))
    assert client.meta.service_model.protocol == PROTOCOLS[protocol]
    return client


@pytest.fixture(params=list(PROTOCOLS))
def cw(request, endpoint, model_roots):
    return cw_client(endpoint, request.param, model_roots)


def namespace(prefix="App"):
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


def code(exc):
    return exc.value.response["Error"]["Code"]


def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def minute_ago(minutes):
    """A whole minute `minutes` before now, as an aware UTC datetime."""
    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    return now - dt.timedelta(minutes=minutes)


def percentile(values, p):
    """Nearest rank, as CloudWatch's guide defines pNN: the smallest value with at
    least p% of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def expand(values, counts):
    return [v for v, c in zip(values, counts) for _ in range(int(c))]


def by_time(points):
    return sorted(points, key=lambda p: (p["Timestamp"], p.get("Unit", "")))


def listed(page):
    """Metrics of a ListMetrics answer as `name[a=1,b=2]`, sorted."""
    return sorted(
        m["MetricName"] + "[" + ",".join(f"{d['Name']}={d['Value']}" for d in m.get("Dimensions", [])) + "]"
        for m in page["Metrics"])


# --- PutMetricData and GetMetricStatistics ----------------------------------------

def test_statistics_match_values_computed_here(cw):
    ns = namespace()
    t0 = minute_ago(10)
    first = ([3.0, 1.0, 4.0, 1.5, 5.0], [1, 2, 1, 1, 3])
    second = [10.0 * i for i in range(1, 11)]
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Latency", "Timestamp": t0 + dt.timedelta(seconds=5), "Unit": "Milliseconds",
         "Values": first[0], "Counts": [float(c) for c in first[1]]},
        {"MetricName": "Latency", "Timestamp": t0 + dt.timedelta(seconds=30), "Unit": "Milliseconds",
         "Value": 9.0},
        {"MetricName": "Latency", "Timestamp": t0 + dt.timedelta(seconds=60), "Unit": "Milliseconds",
         "Values": second},
    ])
    minute0 = expand(*first) + [9.0]
    expected = [(t0, minute0), (t0 + dt.timedelta(minutes=1), second)]

    basic = cw.get_metric_statistics(
        Namespace=ns, MetricName="Latency", StartTime=t0, EndTime=t0 + dt.timedelta(minutes=2),
        Period=60, Statistics=["SampleCount", "Average", "Sum", "Minimum", "Maximum"])
    assert basic["Label"] == "Latency"
    points = by_time(basic["Datapoints"])
    assert len(points) == 2
    for point, (at, values) in zip(points, expected):
        assert point["Timestamp"] == at
        assert point["Unit"] == "Milliseconds"
        assert point["SampleCount"] == len(values)
        assert point["Sum"] == pytest.approx(sum(values))
        assert point["Average"] == pytest.approx(sum(values) / len(values))
        assert point["Minimum"] == min(values)
        assert point["Maximum"] == max(values)

    extended = cw.get_metric_statistics(
        Namespace=ns, MetricName="Latency", StartTime=t0, EndTime=t0 + dt.timedelta(minutes=2),
        Period=60, ExtendedStatistics=["p90", "p50", "p99.9"])
    points = by_time(extended["Datapoints"])
    assert len(points) == 2
    for point, (at, values) in zip(points, expected):
        assert point["Timestamp"] == at
        assert "Sum" not in point
        for name, p in (("p90", 90), ("p50", 50), ("p99.9", 99.9)):
            assert point["ExtendedStatistics"][name] == pytest.approx(percentile(values, p)), name

    # One period over both minutes; nothing before the data or for another metric.
    both = cw.get_metric_statistics(
        Namespace=ns, MetricName="Latency", StartTime=t0, EndTime=t0 + dt.timedelta(minutes=2),
        Period=120, Statistics=["SampleCount"])["Datapoints"]
    assert [p["SampleCount"] for p in both] == [len(minute0) + len(second)]
    assert cw.get_metric_statistics(
        Namespace=ns, MetricName="Latency", StartTime=t0 - dt.timedelta(minutes=5), EndTime=t0,
        Period=60, Statistics=["Sum"])["Datapoints"] == []
    assert cw.get_metric_statistics(
        Namespace=ns, MetricName="Other", StartTime=t0, EndTime=t0 + dt.timedelta(minutes=2),
        Period=60, Statistics=["Sum"])["Datapoints"] == []


def test_high_resolution_data_in_second_periods(cw):
    ns = namespace()
    t0 = minute_ago(5)
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Hits", "Timestamp": t0 + dt.timedelta(seconds=i), "Value": float(i),
         "StorageResolution": 1, "Unit": "Count"} for i in range(30)])
    points = by_time(cw.get_metric_statistics(
        Namespace=ns, MetricName="Hits", StartTime=t0, EndTime=t0 + dt.timedelta(seconds=30),
        Period=10, Statistics=["Sum", "SampleCount"])["Datapoints"])
    assert [(p["Timestamp"], p["Sum"], p["SampleCount"]) for p in points] == [
        (t0 + dt.timedelta(seconds=10 * k), float(sum(range(10 * k, 10 * k + 10))), 10.0)
        for k in range(3)]
    ones = cw.get_metric_statistics(
        Namespace=ns, MetricName="Hits", StartTime=t0, EndTime=t0 + dt.timedelta(seconds=3),
        Period=1, Statistics=["Maximum"])["Datapoints"]
    assert sorted(p["Maximum"] for p in ones) == [0.0, 1.0, 2.0]


def test_statistic_sets_have_no_percentiles(cw):
    ns = namespace()
    t0 = minute_ago(5)
    cw.put_metric_data(Namespace=ns, MetricData=[{
        "MetricName": "Size", "Timestamp": t0,
        "StatisticValues": {"SampleCount": 4, "Sum": 10, "Minimum": 1, "Maximum": 4}}])
    span = dict(Namespace=ns, MetricName="Size", StartTime=t0, EndTime=t0 + dt.timedelta(minutes=1), Period=60)
    [point] = cw.get_metric_statistics(**span, Statistics=["Average", "Minimum", "Maximum"])["Datapoints"]
    assert (point["Average"], point["Minimum"], point["Maximum"], point["Unit"]) == (2.5, 1.0, 4.0, "None")
    [point] = cw.get_metric_statistics(**span, ExtendedStatistics=["p90"])["Datapoints"]
    assert "ExtendedStatistics" not in point or point["ExtendedStatistics"] == {}


def test_dimension_order_names_the_same_metric(cw):
    ns = namespace()
    t0 = minute_ago(5)
    ab = [{"Name": "A", "Value": "1"}, {"Name": "B", "Value": "2"}]
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Req", "Timestamp": t0, "Value": 7.0, "Dimensions": ab[::-1]}])
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Req", "Timestamp": t0, "Value": 3.0, "Dimensions": ab}])
    span = dict(Namespace=ns, MetricName="Req", StartTime=t0, EndTime=t0 + dt.timedelta(minutes=1),
                Period=60, Statistics=["Sum"])
    for dims in (ab, ab[::-1]):
        assert [p["Sum"] for p in cw.get_metric_statistics(**span, Dimensions=dims)["Datapoints"]] == [10.0]
    for dims in (ab[:1], []):
        assert cw.get_metric_statistics(**span, Dimensions=dims)["Datapoints"] == []
    assert listed(cw.list_metrics(Namespace=ns)) == ["Req[A=1,B=2]"]


def test_units_are_kept_apart(cw):
    ns = namespace()
    t0 = minute_ago(5)
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Work", "Timestamp": t0, "Value": 2.0, "Unit": "Count"},
        {"MetricName": "Work", "Timestamp": t0, "Value": 5.0, "Unit": "Seconds"}])
    span = dict(Namespace=ns, MetricName="Work", StartTime=t0, EndTime=t0 + dt.timedelta(minutes=1),
                Period=60, Statistics=["Sum"])
    points = cw.get_metric_statistics(**span)["Datapoints"]
    assert sorted((p["Unit"], p["Sum"]) for p in points) == [("Count", 2.0), ("Seconds", 5.0)]
    assert [p["Sum"] for p in cw.get_metric_statistics(**span, Unit="Seconds")["Datapoints"]] == [5.0]
    assert cw.get_metric_statistics(**span, Unit="Bytes")["Datapoints"] == []
    assert listed(cw.list_metrics(Namespace=ns)) == ["Work[]"]


# --- ListMetrics ---------------------------------------------------------------------

def test_list_metrics_filters(cw):
    ns, other = namespace(), namespace("Other")
    d = lambda **kv: [{"Name": k, "Value": v} for k, v in kv.items()]  # noqa: E731
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Latency", "Value": 1.0, "Dimensions": d(Host="a", Stage="prod")},
        {"MetricName": "Latency", "Value": 1.0, "Dimensions": d(Host="b")},
        {"MetricName": "Errors", "Value": 1.0, "Dimensions": d(Host="a")},
        {"MetricName": "Errors", "Value": 1.0}])
    cw.put_metric_data(Namespace=other, MetricData=[
        {"MetricName": "Latency", "Value": 1.0, "Dimensions": d(Host="a")}])
    cases = [
        ({}, ["Errors[Host=a]", "Errors[]", "Latency[Host=a,Stage=prod]", "Latency[Host=b]"]),
        ({"MetricName": "Latency"}, ["Latency[Host=a,Stage=prod]", "Latency[Host=b]"]),
        ({"Dimensions": [{"Name": "Host"}]}, ["Errors[Host=a]", "Latency[Host=a,Stage=prod]", "Latency[Host=b]"]),
        ({"Dimensions": [{"Name": "Host", "Value": "a"}]}, ["Errors[Host=a]", "Latency[Host=a,Stage=prod]"]),
        ({"Dimensions": [{"Name": "Stage"}, {"Name": "Host", "Value": "a"}]}, ["Latency[Host=a,Stage=prod]"]),
        ({"Dimensions": [{"Name": "Host", "Value": "c"}]}, []),
        ({"MetricName": "Latenc"}, []),
        ({"RecentlyActive": "PT3H"}, ["Errors[Host=a]", "Errors[]", "Latency[Host=a,Stage=prod]", "Latency[Host=b]"]),
    ]
    for filters, want in cases:
        page = cw.list_metrics(Namespace=ns, **filters)
        assert listed(page) == want, filters
        assert "NextToken" not in page
        assert all(m["Namespace"] == ns for m in page["Metrics"])
    # Without a namespace the name filter spans namespaces.
    both = cw.list_metrics(MetricName="Latency")["Metrics"]
    assert {m["Namespace"] for m in both} >= {ns, other}
    # A namespace matches exactly, never as a prefix.
    assert cw.list_metrics(Namespace=ns[:-1])["Metrics"] == []


def test_list_metrics_pages_of_500(cw):
    ns = namespace("Page")
    names = [f"m{i:04}" for i in range(1203)]
    data = [{"MetricName": n, "Value": float(i)} for i, n in enumerate(names)]
    # A second unit for metrics on both sides of the first page's end.
    data += [{"MetricName": names[i], "Value": 1.0, "Unit": "Seconds"} for i in (499, 500, 1202)]
    for start in range(0, len(data), 1000):
        cw.put_metric_data(Namespace=ns, MetricData=data[start:start + 1000])
    sizes, seen = [], []
    for page in cw.get_paginator("list_metrics").paginate(Namespace=ns):
        sizes.append(len(page["Metrics"]))
        seen += [m["MetricName"] for m in page["Metrics"]]
    assert sizes == [500, 500, 203]
    assert sorted(seen) == names, "every metric once"
    first = cw.list_metrics(Namespace=ns)
    assert len(first["Metrics"]) == 500 and first["NextToken"]


# --- errors ------------------------------------------------------------------------

def test_put_metric_data_errors(cw):
    ns = namespace()
    now = dt.datetime.now(dt.timezone.utc)
    cases = [
        (dict(Namespace="AWS/EC2", MetricData=[{"MetricName": "m", "Value": 1.0}]),
         "InvalidParameterValue", "The value AWS/EC2 for parameter Namespace is invalid."),
        (dict(Namespace=ns, MetricData=[{"MetricName": "m", "Value": float("nan")}]),
         "InvalidParameterValue", "The value NaN for parameter MetricData.member.1.Value is invalid."),
        (dict(Namespace=ns, MetricData=[{"MetricName": "m", "Value": 1.0, "StatisticValues": {
            "SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}]),
         "InvalidParameterCombination",
         "The parameters MetricData.member.1.Value and MetricData.member.1.StatisticValues are "
         "mutually exclusive and you have specified both."),
        (dict(Namespace=ns, MetricData=[{"MetricName": "m", "Value": 1.0, "StorageResolution": 5}]),
         "InvalidParameterValue",
         "The parameter MetricData.member.1.StorageResolution must be a value in the set [ 1, 60 ]."),
        (dict(Namespace=ns, MetricData=[{"MetricName": "m", "Value": 1.0,
                                          "Timestamp": now - dt.timedelta(days=15)}]),
         "InvalidParameterValue",
         "The parameter MetricData.member.1.Timestamp must specify a time within the past two weeks."),
        (dict(Namespace=ns, MetricData=[{"MetricName": "m", "Value": 1.0,
                                          "Timestamp": now + dt.timedelta(hours=3)}]),
         "InvalidParameterValue",
         "The parameter MetricData.member.1.Timestamp must specify a time no more than two hours in the future."),
        (dict(Namespace=ns, MetricData=[{"MetricName": "m"}]),
         "InvalidParameterCombination",
         "At least one of the parameters MetricData.member.1.Value and "
         "MetricData.member.1.StatisticValues must be specified."),
    ]
    for kwargs, want_code, want_message in cases:
        with pytest.raises(ClientError) as e:
            cw.put_metric_data(**kwargs)
        assert (code(e), status(e)) == (want_code, 400), kwargs
        assert e.value.response["Error"]["Message"] == want_message
    with pytest.raises(ClientError) as e:
        cw.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "m", "Value": 1.0}] * 1001)
    assert (code(e), status(e)) == ("InvalidParameterValue", 400)
    # Nothing of a refused request is stored.
    assert cw.list_metrics(Namespace=ns)["Metrics"] == []


def test_get_metric_statistics_errors(cw):
    t0 = minute_ago(10)
    base = dict(Namespace=namespace(), MetricName="m", StartTime=t0,
                EndTime=t0 + dt.timedelta(minutes=10), Period=60, Statistics=["Sum"])
    cases = [
        (dict(Period=45), "InvalidParameterValue",
         "The parameter Period must be 1, 5, 10, 20, 30, or a multiple of 60."),
        (dict(EndTime=t0), "InvalidParameterValue",
         "The parameter StartTime must be less than the parameter EndTime."),
        (dict(StartTime=t0 - dt.timedelta(days=2), EndTime=t0), "InvalidParameterCombination",
         "You have requested up to 2880 datapoints, which exceeds the limit of 1440. You may reduce "
         "the datapoints requested by increasing Period, or decreasing the time range."),
        (dict(Statistics=None, ExtendedStatistics=["p101"]), "InvalidParameterValue",
         "The value p101 for parameter ExtendedStatistics is not supported."),
        (dict(Statistics=None), "MissingParameter", None),
    ]
    for change, want_code, want_message in cases:
        kwargs = {k: v for k, v in {**base, **change}.items() if v is not None}
        with pytest.raises(ClientError) as e:
            cw.get_metric_statistics(**kwargs)
        assert (code(e), status(e)) == (want_code, 400), change
        if want_message:
            assert e.value.response["Error"]["Message"] == want_message


def test_list_metrics_errors(cw):
    with pytest.raises(ClientError) as e:
        cw.list_metrics(NextToken="not-a-token")
    assert (code(e), status(e)) == ("InvalidParameterValue", 400)


def test_operations_not_yet_served_say_so(cw):
    with pytest.raises(ClientError) as e:
        cw.put_dashboard(DashboardName="d", DashboardBody="{}")
    assert status(e) == 501
    assert "PutDashboard" in e.value.response["Error"]["Message"]


# --- raw query protocol ------------------------------------------------------------

SIGNED = SigV4("monitoring")


def test_raw_query_form_posts(endpoint):
    ns = namespace()
    r = requests.post(endpoint + "/", auth=SIGNED, data={
        "Action": "PutMetricData", "Version": "2010-08-01", "Namespace": ns,
        "MetricData.member.1.MetricName": "Raw", "MetricData.member.1.Value": "2.5",
        "MetricData.member.1.Dimensions.member.1.Name": "Host",
        "MetricData.member.1.Dimensions.member.1.Value": "h1"})
    assert r.status_code == 200, r.text
    assert ET.fromstring(r.text).tag == "{%s}PutMetricDataResponse" % NS_XML["m"]
    r = requests.post(endpoint + "/", auth=SIGNED, data={
        "Action": "ListMetrics", "Version": "2010-08-01", "Namespace": ns})
    assert r.status_code == 200, r.text
    doc = ET.fromstring(r.text)
    members = doc.findall("m:ListMetricsResult/m:Metrics/m:member", NS_XML)
    assert [m.findtext("m:MetricName", namespaces=NS_XML) for m in members] == ["Raw"]
    assert members[0].findtext("m:Dimensions/m:member/m:Value", namespaces=NS_XML) == "h1"
    start = minute_ago(5).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = requests.post(endpoint + "/", auth=SIGNED, data={
        "Action": "GetMetricStatistics", "Version": "2010-08-01", "Namespace": ns, "MetricName": "Raw",
        "Dimensions.member.1.Name": "Host", "Dimensions.member.1.Value": "h1",
        "StartTime": start, "EndTime": end, "Period": "60", "Statistics.member.1": "Sum"})
    assert r.status_code == 200, r.text
    point = ET.fromstring(r.text).find("m:GetMetricStatisticsResult/m:Datapoints/m:member", NS_XML)
    assert float(point.findtext("m:Sum", namespaces=NS_XML)) == 2.5
    assert point.findtext("m:Unit", namespaces=NS_XML) == "None"
    r = requests.post(endpoint + "/", auth=SIGNED, data={
        "Action": "PutMetricData", "Version": "2010-08-01", "Namespace": ns,
        "MetricData.member.1.MetricName": "Raw", "MetricData.member.1.Value": "1",
        "MetricData.member.1.StorageResolution": "7"})
    assert r.status_code == 400
    assert ET.fromstring(r.text).findtext("m:Error/m:Code", namespaces=NS_XML) == "InvalidParameterValue"


# --- the aws CLI -------------------------------------------------------------------

def test_aws_cli(aws):
    ns = namespace("Cli")
    t0 = minute_ago(5)
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    aws("cloudwatch", "put-metric-data", "--namespace", ns, "--metric-name", "Jobs",
        "--value", "4", "--unit", "Count", "--timestamp", iso(t0), "--dimensions", "Queue=a")
    aws("cloudwatch", "put-metric-data", "--namespace", ns, "--metric-data", json.dumps([
        {"MetricName": "Jobs", "Timestamp": iso(t0), "Unit": "Count", "Values": [1, 2, 3],
         "Counts": [1, 1, 2], "Dimensions": [{"Name": "Queue", "Value": "a"}]}]))
    out = aws("cloudwatch", "get-metric-statistics", "--namespace", ns, "--metric-name", "Jobs",
              "--dimensions", "Name=Queue,Value=a", "--start-time", iso(t0),
              "--end-time", iso(t0 + dt.timedelta(minutes=1)), "--period", "60",
              "--statistics", "Sum", "SampleCount", "Maximum")
    [point] = out["Datapoints"]
    values = [4, 1, 2, 3, 3]
    assert (point["Sum"], point["SampleCount"], point["Maximum"]) == (sum(values), len(values), max(values))
    out = aws("cloudwatch", "get-metric-statistics", "--namespace", ns, "--metric-name", "Jobs",
              "--dimensions", "Name=Queue,Value=a", "--start-time", iso(t0),
              "--end-time", iso(t0 + dt.timedelta(minutes=1)), "--period", "60",
              "--extended-statistics", "p50")
    assert out["Datapoints"][0]["ExtendedStatistics"]["p50"] == percentile(values, 50)
    out = aws("cloudwatch", "list-metrics", "--namespace", ns, "--dimensions", "Name=Queue")
    assert [(m["MetricName"], m["Dimensions"]) for m in out["Metrics"]] == [
        ("Jobs", [{"Name": "Queue", "Value": "a"}])]
    p = aws("cloudwatch", "put-metric-data", "--namespace", "AWS/EC2", "--metric-name", "x",
            "--value", "1", check=False)
    assert p.returncode != 0 and "InvalidParameterValue" in p.stderr


# --- durability and settings -------------------------------------------------------

def sums(client, ns, t0):
    out = client.get_metric_statistics(
        Namespace=ns, MetricName="Kept", StartTime=t0, EndTime=t0 + dt.timedelta(minutes=3),
        Period=60, Statistics=["Sum"])["Datapoints"]
    return [(p["Timestamp"], p["Sum"]) for p in by_time(out)]


def test_data_survives_restart_and_kill9(tmp_path, model_roots):
    s = Server(data_dir=str(tmp_path / "data"))
    s.start()
    try:
        ns, t0 = namespace(), minute_ago(10)
        client = cw_client(s.endpoint, "cbor", model_roots)
        client.put_metric_data(Namespace=ns, MetricData=[
            {"MetricName": "Kept", "Timestamp": t0, "Value": 1.5},
            {"MetricName": "Kept", "Timestamp": t0 + dt.timedelta(minutes=1), "Values": [2.0, 3.0]}])
        want = [(t0, 1.5), (t0 + dt.timedelta(minutes=1), 5.0)]
        assert sums(client, ns, t0) == want
        s.stop()
        s.start()
        client = cw_client(s.endpoint, "cbor", model_roots)
        assert sums(client, ns, t0) == want
        # Acknowledged but never flushed: replayed from the ingest log after kill -9.
        client.put_metric_data(Namespace=ns, MetricData=[
            {"MetricName": "Kept", "Timestamp": t0 + dt.timedelta(minutes=2), "Value": 4.0}])
        s.kill9()
        s.start()
        client = cw_client(s.endpoint, "json", model_roots)
        assert sums(client, ns, t0) == want + [(t0 + dt.timedelta(minutes=2), 4.0)]
        assert [m["MetricName"] for m in client.list_metrics(Namespace=ns)["Metrics"]] == ["Kept"]
    finally:
        s.stop()


def test_metrics_retention_setting(model_roots):
    s = Server("--metrics-retention", "30d")
    s.start()
    try:
        client = cw_client(s.endpoint, "cbor", model_roots)
        ns, t0 = namespace(), minute_ago(3)
        client.put_metric_data(Namespace=ns, MetricData=[
            {"MetricName": "Kept", "Timestamp": t0 + dt.timedelta(seconds=i), "Value": 1.0,
             "StorageResolution": 1} for i in range(5)])
        points = client.get_metric_statistics(
            Namespace=ns, MetricName="Kept", StartTime=t0, EndTime=t0 + dt.timedelta(seconds=5),
            Period=1, Statistics=["Sum"])["Datapoints"]
        assert len(points) == 5
    finally:
        s.stop()
