"""CloudWatch GetMetricData and metric math through real clients against a live nimbus.

Like test_cloudwatch.py, every API test runs in each protocol CloudWatch clients speak
(Smithy RPC v2 CBOR, AWS JSON 1.0 with x-amzn-query-mode, and query), through botocore's
own client built from its bundled model with the protocol switched; the aws CLI and a
raw query-protocol POST cover the rest.

Covers metric results and expressions (alignment of series, functions over arrays, FILL,
IF, RATE, scalars, dynamic labels) checked against values computed here, ScanBy,
MaxDatapoints pages with NextToken (and botocore's paginator), and the errors.
"""
import datetime as dt
import json
import uuid
import xml.etree.ElementTree as ET

import botocore.config
import botocore.session
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import REGION, SigV4

from test_cloudwatch import NS_XML, PROTOCOLS, cw, cw_client, model_roots  # noqa: F401 (fixtures)


def namespace():
    return f"Math/{uuid.uuid4().hex[:10]}"


def minute_ago(minutes):
    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    return now - dt.timedelta(minutes=minutes)


# Minute offsets and values of the two metrics every test publishes.
A = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 5.0}
B = {1: 10.0, 3: 30.0, 5: 50.0}


def publish(client, ns, t0):
    data = [{"MetricName": "A", "Timestamp": t0 + dt.timedelta(minutes=k), "Value": v, "Unit": "Count"}
            for k, v in A.items()]
    data += [{"MetricName": "B", "Timestamp": t0 + dt.timedelta(minutes=k), "Value": v, "Unit": "Count"}
             for k, v in B.items()]
    client.put_metric_data(Namespace=ns, MetricData=data)


def stat(id_, ns, name, statistic="Sum", **extra):
    return {"Id": id_, "MetricStat": {"Metric": {"Namespace": ns, "MetricName": name},
                                      "Period": 60, "Stat": statistic}, **extra}


def expr(id_, expression, **extra):
    return {"Id": id_, "Expression": expression, **extra}


def as_minutes(result, t0):
    """A result's points as {minute offset: value}, checking the two lists agree."""
    assert len(result["Timestamps"]) == len(result["Values"])
    return {int((t - t0).total_seconds() // 60): v for t, v in zip(result["Timestamps"], result["Values"])}


def by_id(out, id_):
    [r] = [r for r in out["MetricDataResults"] if r["Id"] == id_]
    return r


def test_metrics_and_expressions_match_values_computed_here(cw):
    ns, t0 = namespace(), minute_ago(20)
    publish(cw, ns, t0)
    out = cw.get_metric_data(
        StartTime=t0, EndTime=t0 + dt.timedelta(minutes=10), ScanBy="TimestampAscending",
        MetricDataQueries=[
            stat("a", ns, "A"),
            stat("b", ns, "B", ReturnData=False),
            expr("sum_ab", "a + b"),
            expr("total", "SUM(METRICS())", Label="Total ${SUM}"),
            expr("ratio", "IF(a != 0, b / a)"),
            expr("linear", "FILL(b, LINEAR)"),
            expr("rate", "RATE(b)"),
            expr("share", "100 * a / SUM(a)"),
            expr("avg_a", "AVG(a)"),
        ])
    assert "NextToken" not in out
    ids = [r["Id"] for r in out["MetricDataResults"]]
    assert ids == ["a", "sum_ab", "total", "ratio", "linear", "rate", "share", "avg_a"]
    assert all(r["StatusCode"] == "Complete" for r in out["MetricDataResults"])

    a = by_id(out, "a")
    assert a["Label"] == "A"
    assert as_minutes(a, t0) == A
    # Ascending timestamps, one a minute.
    assert a["Timestamps"] == sorted(a["Timestamps"])
    assert by_id(out, "sum_ab")["Label"] == "sum_ab"
    assert as_minutes(by_id(out, "sum_ab"), t0) == {k: A[k] + B[k] for k in A.keys() & B.keys()}
    total = {k: A.get(k, 0) + B.get(k, 0) for k in A.keys() | B.keys()}
    assert as_minutes(by_id(out, "total"), t0) == total
    assert by_id(out, "total")["Label"] == f"Total {sum(total.values()):g}"
    assert as_minutes(by_id(out, "ratio"), t0) == {k: B[k] / A[k] for k in A.keys() & B.keys()}
    assert as_minutes(by_id(out, "linear"), t0) == {1: 10.0, 2: 20.0, 3: 30.0, 4: 40.0, 5: 50.0}
    assert as_minutes(by_id(out, "rate"), t0) == {3: 20 / 120, 5: 20 / 120}
    assert as_minutes(by_id(out, "share"), t0) == pytest.approx({k: 100 * v / sum(A.values()) for k, v in A.items()})
    # A scalar is laid out over every period of the range.
    mean = sum(A.values()) / len(A)
    assert as_minutes(by_id(out, "avg_a"), t0) == {k: mean for k in range(10)}


def test_arrays_sort_and_dynamic_labels(cw):
    ns, t0 = namespace(), minute_ago(20)
    publish(cw, ns, t0)
    out = cw.get_metric_data(
        StartTime=t0, EndTime=t0 + dt.timedelta(minutes=10),
        LabelOptions={"Timezone": "+0200"},
        MetricDataQueries=[
            stat("a", ns, "A", ReturnData=False, Label="alpha"),
            stat("b", ns, "B", ReturnData=False, Label="beta"),
            expr("ranked", "SORT(METRICS(), AVG, DESC)", Label="${LABEL} max ${MAX}"),
            expr("first", "FIRST(SORT(METRICS(), MIN, ASC))"),
            expr("when", "b", Label="peak at ${MAX_TIME}"),
        ])
    ranked = [r for r in out["MetricDataResults"] if r["Id"] == "ranked"]
    assert [r["Label"] for r in ranked] == [f"beta max {max(B.values()):g}", f"alpha max {max(A.values()):g}"]
    assert as_minutes(ranked[0], t0) == B
    assert as_minutes(by_id(out, "first"), t0) == A
    peak = t0 + dt.timedelta(minutes=max(B, key=B.get)) + dt.timedelta(hours=2)
    assert by_id(out, "when")["Label"] == "peak at " + peak.strftime("%Y-%m-%dT%H:%M:%S") + "+0200"


def test_pages_of_max_datapoints(cw):
    ns, t0 = namespace(), minute_ago(20)
    publish(cw, ns, t0)
    queries = [stat("a", ns, "A"), stat("b", ns, "B"), expr("e", "a * 10")]
    kwargs = dict(StartTime=t0, EndTime=t0 + dt.timedelta(minutes=10), MetricDataQueries=queries)
    for scan in ("TimestampDescending", "TimestampAscending"):
        gathered, statuses, pages, token = {}, [], 0, None
        while True:
            extra = {"NextToken": token} if token else {}
            out = cw.get_metric_data(**kwargs, ScanBy=scan, MaxDatapoints=4, **extra)
            pages += 1
            assert sum(len(r["Values"]) for r in out["MetricDataResults"]) <= 4
            for r in out["MetricDataResults"]:
                statuses.append(r["StatusCode"])
                gathered.setdefault(r["Id"], []).extend(zip(r["Timestamps"], r["Values"]))
            token = out.get("NextToken")
            if not token:
                break
        assert pages == 4  # 5 + 3 + 5 points, 4 a page
        assert "PartialData" in statuses and statuses[-1] == "Complete"
        for id_, want in (("a", A), ("b", B), ("e", {k: 10 * v for k, v in A.items()})):
            got = gathered[id_]
            times = [t for t, _ in got]
            assert times == sorted(times, reverse=scan == "TimestampDescending")
            assert {int((t - t0).total_seconds() // 60): v for t, v in got} == want
    # botocore's paginator follows the tokens.
    pages = list(cw.get_paginator("get_metric_data").paginate(**kwargs, MaxDatapoints=5))
    assert len(pages) == 3
    assert sum(len(r["Values"]) for p in pages for r in p["MetricDataResults"]) == 13
    # A token belongs to the request it came from.
    first = cw.get_metric_data(**kwargs, MaxDatapoints=1)
    with pytest.raises(ClientError) as e:
        cw.get_metric_data(StartTime=t0, EndTime=t0 + dt.timedelta(minutes=9), MetricDataQueries=queries,
                           NextToken=first["NextToken"])
    assert e.value.response["Error"]["Code"] == "InvalidNextToken"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_division_by_zero_drops_points_with_a_message(cw):
    ns, t0 = namespace(), minute_ago(20)
    cw.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Z", "Timestamp": t0, "Value": 0.0},
        {"MetricName": "Z", "Timestamp": t0 + dt.timedelta(minutes=1), "Value": 4.0}])
    out = cw.get_metric_data(StartTime=t0, EndTime=t0 + dt.timedelta(minutes=5), MetricDataQueries=[
        stat("z", ns, "Z", ReturnData=False), expr("inv", "1 / z")])
    [r] = out["MetricDataResults"]
    assert as_minutes(r, t0) == {1: 0.25}
    assert r["StatusCode"] == "Complete"
    assert r["Messages"][0]["Code"] == "ArithmeticError"


def test_errors(cw):
    ns, t0 = namespace(), minute_ago(20)
    span = dict(StartTime=t0, EndTime=t0 + dt.timedelta(minutes=10))
    cases = [
        ([stat("Bad", ns, "A")], "ValidationError",
         "The value Bad for parameter MetricDataQueries.member.1.Id is not matching the expected pattern "
         "^[a-z][a-zA-Z0-9_]*$."),
        ([stat("a", ns, "A"), stat("a", ns, "B")], "ValidationError",
         "The values for parameter id in MetricDataQueries are not unique."),
        ([stat("a", ns, "A", "Median")], "ValidationError",
         "The value Median for parameter MetricDataQueries.member.1.MetricStat.Stat is not a valid statistic."),
        ([stat("a", ns, "A"), expr("e", "a + nope")], "ValidationError",
         "Error in expression e: Unrecognized metric or expression id nope"),
        ([stat("a", ns, "A"), expr("e", "(a + 1")], "ValidationError",
         "Error in expression e: Missing closing parenthesis"),
        ([stat("a", ns, "A", ReturnData=False)], "ValidationError",
         "At least one of the queries in MetricDataQueries must have ReturnData set to true."),
        ([{"Id": "a", "Expression": "1", **stat("x", ns, "A")}], "ValidationError", None),
    ]
    for queries, want_code, want_message in cases:
        with pytest.raises(ClientError) as e:
            cw.get_metric_data(MetricDataQueries=queries, **span)
        err = e.value.response["Error"]
        assert (err["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (want_code, 400), queries
        if want_message:
            assert err["Message"] == want_message
    with pytest.raises(ClientError) as e:
        cw.get_metric_data(MetricDataQueries=[stat("a", ns, "A")], StartTime=t0, EndTime=t0)
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_aws_cli(aws, endpoint, model_roots):
    ns, t0 = namespace(), minute_ago(20)
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    aws("cloudwatch", "put-metric-data", "--namespace", ns, "--metric-data", json.dumps(
        [{"MetricName": "A", "Timestamp": iso(t0 + dt.timedelta(minutes=k)), "Value": v} for k, v in A.items()]))
    queries = [stat("a", ns, "A", ReturnData=False), expr("double", "a * 2", Label="twice ${LAST}")]
    out = aws("cloudwatch", "get-metric-data", "--metric-data-queries", json.dumps(queries),
              "--start-time", iso(t0), "--end-time", iso(t0 + dt.timedelta(minutes=10)),
              "--scan-by", "TimestampAscending")
    [r] = out["MetricDataResults"]
    assert r["Values"] == [2 * v for _, v in sorted(A.items())]
    assert r["Label"] == f"twice {2 * A[max(A)]:g}"
    # The CLI follows NextToken itself, a page of 2 at a time.
    out = aws("cloudwatch", "get-metric-data", "--metric-data-queries", json.dumps(queries),
              "--start-time", iso(t0), "--end-time", iso(t0 + dt.timedelta(minutes=10)),
              "--page-size", "2")
    values = [v for r in out["MetricDataResults"] for v in r["Values"]]
    assert values == [2 * v for _, v in sorted(A.items(), reverse=True)]
    p = aws("cloudwatch", "get-metric-data", "--metric-data-queries", json.dumps([expr("Bad", "1")]),
            "--start-time", iso(t0), "--end-time", iso(t0 + dt.timedelta(minutes=10)), check=False)
    assert p.returncode != 0 and "ValidationError" in p.stderr


def test_raw_query_form(endpoint, model_roots):
    ns, t0 = namespace(), minute_ago(20)
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, model_roots["json"])
    client = session.create_client("cloudwatch", endpoint_url=endpoint, region_name=REGION,
                                   aws_access_key_id="test", aws_secret_access_key="test")
    publish(client, ns, t0)
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    r = requests.post(endpoint + "/", auth=SigV4("monitoring"), data={
        "Action": "GetMetricData", "Version": "2010-08-01",
        "StartTime": iso(t0), "EndTime": iso(t0 + dt.timedelta(minutes=10)), "ScanBy": "TimestampAscending",
        "MetricDataQueries.member.1.Id": "b",
        "MetricDataQueries.member.1.MetricStat.Metric.Namespace": ns,
        "MetricDataQueries.member.1.MetricStat.Metric.MetricName": "B",
        "MetricDataQueries.member.1.MetricStat.Period": "60",
        "MetricDataQueries.member.1.MetricStat.Stat": "Sum",
        "MetricDataQueries.member.2.Id": "half",
        "MetricDataQueries.member.2.Expression": "b / 2"})
    assert r.status_code == 200, r.text
    doc = ET.fromstring(r.text)
    results = doc.findall("m:GetMetricDataResult/m:MetricDataResults/m:member", NS_XML)
    assert [m.findtext("m:Id", namespaces=NS_XML) for m in results] == ["b", "half"]
    half = results[1]
    values = [float(v.text) for v in half.findall("m:Values/m:member", NS_XML)]
    assert values == [v / 2 for _, v in sorted(B.items())]
    assert half.findtext("m:StatusCode", namespaces=NS_XML) == "Complete"
    assert len(half.findall("m:Timestamps/m:member", NS_XML)) == len(B)
