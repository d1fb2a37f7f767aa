"""S3 event notifications delivered to SQS queues, as AWS sends them: the s3:TestEvent
written when a configuration is saved, event records (version 2.1) for Put, Copy,
CompleteMultipartUpload and Delete, key filters, form-encoded keys, validation of
destinations, and the configuration round trip.
"""
import json
import re
import uuid

import pytest

from conftest import make_client
from s3_helpers import *  # noqa: F401,F403  (fixtures s3, bucket and helpers)


@pytest.fixture
def sqs(endpoint):
    return make_client(endpoint, "sqs")


def new_queue(sqs):
    url = sqs.create_queue(QueueName=f"s3-events-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def receive(sqs, url, wait=2, expect=None):
    """Messages (parsed bodies) until `expect` arrived or a wait came back empty; deletes them."""
    out = []
    while True:
        ms = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get("Messages", [])
        if not ms:
            return out
        for m in ms:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if expect is not None and len(out) >= expect:
            return out


def nothing_more(sqs, url):
    return "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)


@pytest.fixture
def wired(s3, sqs, bucket):
    """A bucket whose created events (uploads/*.jpg) go to one queue and removed events
    (any key) to another; the test events are consumed and returned."""
    created_url, created_arn = new_queue(sqs)
    removed_url, removed_arn = new_queue(sqs)
    config = {
        "QueueConfigurations": [
            {"Id": "created", "QueueArn": created_arn, "Events": ["s3:ObjectCreated:*"],
             "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"},
                                                {"Name": "suffix", "Value": ".jpg"}]}}},
            {"Id": "removed", "QueueArn": removed_arn, "Events": ["s3:ObjectRemoved:*"]},
        ]
    }
    r = s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    tests = {"created": receive(sqs, created_url, expect=1), "removed": receive(sqs, removed_url, expect=1)}
    yield {"bucket": bucket, "created": created_url, "removed": removed_url,
           "created_arn": created_arn, "removed_arn": removed_arn, "tests": tests,
           "request_id": r["ResponseMetadata"]["RequestId"]}
    for url in (created_url, removed_url):
        sqs.delete_queue(QueueUrl=url)


def one_record(sqs, url):
    msgs = receive(sqs, url, expect=1)
    assert len(msgs) == 1, msgs
    assert nothing_more(sqs, url)
    recs = msgs[0]["Records"]
    assert len(recs) == 1
    return recs[0]


ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def check_common(rec, bucket, event_name, config_id):
    assert rec["eventVersion"] == "2.1"
    assert rec["eventSource"] == "aws:s3"
    assert rec["awsRegion"] == REGION
    assert ISO_MS.fullmatch(rec["eventTime"]), rec["eventTime"]
    assert rec["eventName"] == event_name
    assert set(rec["userIdentity"]) == {"principalId"}
    assert "sourceIPAddress" in rec["requestParameters"]
    assert set(rec["responseElements"]) == {"x-amz-request-id", "x-amz-id-2"}
    s3part = rec["s3"]
    assert s3part["s3SchemaVersion"] == "1.0"
    assert s3part["configurationId"] == config_id
    assert s3part["bucket"]["name"] == bucket
    assert s3part["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
    assert "principalId" in s3part["bucket"]["ownerIdentity"]
    assert re.fullmatch(r"[0-9A-F]+", s3part["object"]["sequencer"])
    return s3part["object"]


# --- the test event --------------------------------------------------------------------------

def test_test_event_is_sent_first(wired):
    for name in ("created", "removed"):
        msgs = wired["tests"][name]
        assert len(msgs) == 1, msgs
        t = msgs[0]
        assert set(t) == {"Service", "Event", "Time", "Bucket", "RequestId", "HostId"}
        assert t["Service"] == "Amazon S3"
        assert t["Event"] == "s3:TestEvent"
        assert t["Bucket"] == wired["bucket"]
        assert ISO_MS.fullmatch(t["Time"]), t["Time"]
        assert t["RequestId"] and t["HostId"]


# --- created events ----------------------------------------------------------------------------

def test_put_event_record(s3, sqs, wired):
    b = wired["bucket"]
    body = b"\xff\xd8jpeg" * 100
    p = s3.put_object(Bucket=b, Key="uploads/a.jpg", Body=body)
    rec = one_record(sqs, wired["created"])
    obj = check_common(rec, b, "ObjectCreated:Put", "created")
    assert obj["key"] == "uploads/a.jpg"
    assert obj["size"] == len(body)
    assert obj["eTag"] == md5_hex(body)
    assert "versionId" not in obj  # unversioned bucket
    assert rec["responseElements"]["x-amz-request-id"] == p["ResponseMetadata"]["RequestId"]
    # Nothing went to the removed queue.
    assert nothing_more(sqs, wired["removed"])


def test_filtered_out_keys_send_nothing(s3, sqs, wired):
    b = wired["bucket"]
    s3.put_object(Bucket=b, Key="other.txt", Body=b"x")
    s3.put_object(Bucket=b, Key="uploads/a.png", Body=b"x")
    s3.put_object(Bucket=b, Key="downloads/a.jpg", Body=b"x")
    assert nothing_more(sqs, wired["created"])


def test_sequencer_grows_per_key(s3, sqs, wired):
    b = wired["bucket"]
    s3.put_object(Bucket=b, Key="uploads/s.jpg", Body=b"1")
    first = one_record(sqs, wired["created"])["s3"]["object"]["sequencer"]
    s3.put_object(Bucket=b, Key="uploads/s.jpg", Body=b"2")
    second = one_record(sqs, wired["created"])["s3"]["object"]["sequencer"]
    assert int(second, 16) > int(first, 16)


def test_copy_event(s3, sqs, wired):
    b = wired["bucket"]
    s3.put_object(Bucket=b, Key="src.bin", Body=b"copy me")
    assert nothing_more(sqs, wired["created"])
    s3.copy_object(Bucket=b, Key="uploads/copy.jpg", CopySource={"Bucket": b, "Key": "src.bin"})
    obj = check_common(one_record(sqs, wired["created"]), b, "ObjectCreated:Copy", "created")
    assert obj["key"] == "uploads/copy.jpg"
    assert obj["size"] == 7 and obj["eTag"] == md5_hex(b"copy me")


def test_complete_multipart_upload_event(s3, sqs, wired):
    b = wired["bucket"]
    key = "uploads/big.jpg"
    uid = s3.create_multipart_upload(Bucket=b, Key=key)["UploadId"]
    part = b"m" * 1000
    etag = s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=1, Body=part)["ETag"]
    assert nothing_more(sqs, wired["created"])  # parts send nothing
    done = s3.complete_multipart_upload(Bucket=b, Key=key, UploadId=uid,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    obj = check_common(one_record(sqs, wired["created"]), b, "ObjectCreated:CompleteMultipartUpload", "created")
    assert obj["key"] == key and obj["size"] == 1000
    assert obj["eTag"] == done["ETag"].strip('"')
    assert obj["eTag"].endswith("-1")


# --- removed events ----------------------------------------------------------------------------

def test_delete_event(s3, sqs, wired):
    b = wired["bucket"]
    s3.put_object(Bucket=b, Key="docs/x.txt", Body=b"x")
    s3.delete_object(Bucket=b, Key="docs/x.txt")
    obj = check_common(one_record(sqs, wired["removed"]), b, "ObjectRemoved:Delete", "removed")
    assert obj["key"] == "docs/x.txt"
    assert "size" not in obj and "eTag" not in obj


def test_delete_objects_sends_one_event_per_key(s3, sqs, wired):
    b = wired["bucket"]
    for k in ("d/1", "d/2"):
        s3.put_object(Bucket=b, Key=k, Body=b"x")
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "d/1"}, {"Key": "d/2"}]})
    msgs = receive(sqs, wired["removed"], expect=2)
    recs = [r for m in msgs for r in m["Records"]]
    assert sorted(r["s3"]["object"]["key"] for r in recs) == ["d/1", "d/2"]
    assert {r["eventName"] for r in recs} == {"ObjectRemoved:Delete"}


def test_versioned_delete_creates_marker_event(s3, sqs, wired):
    b = wired["bucket"]
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v = s3.put_object(Bucket=b, Key="uploads/v.jpg", Body=b"v")["VersionId"]
    created = check_common(one_record(sqs, wired["created"]), b, "ObjectCreated:Put", "created")
    assert created["versionId"] == v
    marker = s3.delete_object(Bucket=b, Key="uploads/v.jpg")["VersionId"]
    obj = check_common(one_record(sqs, wired["removed"]), b, "ObjectRemoved:DeleteMarkerCreated", "removed")
    assert obj["versionId"] == marker
    s3.delete_object(Bucket=b, Key="uploads/v.jpg", VersionId=v)
    obj = check_common(one_record(sqs, wired["removed"]), b, "ObjectRemoved:Delete", "removed")
    assert obj["versionId"] == v


# --- keys ---------------------------------------------------------------------------------------

def test_keys_are_form_encoded(s3, sqs, wired):
    b = wired["bucket"]
    s3.put_object(Bucket=b, Key="uploads/my holiday photo.jpg", Body=b"x")
    obj = one_record(sqs, wired["created"])["s3"]["object"]
    assert obj["key"] == "uploads/my+holiday+photo.jpg"
    s3.put_object(Bucket=b, Key="uploads/a+b=c&d.jpg", Body=b"x")
    obj = one_record(sqs, wired["created"])["s3"]["object"]
    assert obj["key"] == "uploads/a%2Bb%3Dc%26d.jpg"


# --- configuration ------------------------------------------------------------------------------

def test_missing_queue_is_rejected(s3, bucket):
    arn = f"arn:aws:sqs:{REGION}:000000000000:no-such-queue-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    assert err(e) == ("InvalidArgument", 400)
    assert e.value.response["Error"]["Message"] == "Unable to validate the following destination configurations"
    # Nothing was stored.
    r = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert "QueueConfigurations" not in r


def test_unknown_event_is_rejected(s3, sqs, bucket):
    url, arn = new_queue(sqs)
    try:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:Bogus"]}]})
        assert err(e) == ("InvalidArgument", 400)
    finally:
        sqs.delete_queue(QueueUrl=url)


def test_notification_configuration_round_trip(s3, sqs, wired):
    b = wired["bucket"]
    r = s3.get_bucket_notification_configuration(Bucket=b)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    qs = r["QueueConfigurations"]
    assert [q["Id"] for q in qs] == ["created", "removed"]
    assert qs[0]["QueueArn"] == wired["created_arn"]
    assert qs[0]["Events"] == ["s3:ObjectCreated:*"]
    # S3 stores filter rule names capitalized.
    assert qs[0]["Filter"] == {"Key": {"FilterRules": [{"Name": "Prefix", "Value": "uploads/"},
                                                       {"Name": "Suffix", "Value": ".jpg"}]}}
    assert qs[1]["QueueArn"] == wired["removed_arn"]
    assert qs[1]["Events"] == ["s3:ObjectRemoved:*"]
    assert "Filter" not in qs[1]
    assert "TopicConfigurations" not in r and "LambdaFunctionConfigurations" not in r

    # An Id is generated for a configuration saved without one.
    s3.put_bucket_notification_configuration(Bucket=b, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": wired["created_arn"], "Events": ["s3:ObjectCreated:Put"]}]})
    qs = s3.get_bucket_notification_configuration(Bucket=b)["QueueConfigurations"]
    assert len(qs) == 1 and qs[0]["Id"] and qs[0]["Events"] == ["s3:ObjectCreated:Put"]

    # An empty configuration turns notifications off.
    s3.put_bucket_notification_configuration(Bucket=b, NotificationConfiguration={})
    r = s3.get_bucket_notification_configuration(Bucket=b)
    assert "QueueConfigurations" not in r
    receive(sqs, wired["created"], wait=1)  # the test event of the second configuration
    s3.put_object(Bucket=b, Key="uploads/after.jpg", Body=b"x")
    assert nothing_more(sqs, wired["created"])


def test_empty_notification_configuration_by_default(s3, bucket):
    r = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert not any(k in r for k in ("QueueConfigurations", "TopicConfigurations",
                                    "LambdaFunctionConfigurations", "EventBridgeConfiguration"))
