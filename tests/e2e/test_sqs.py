"""SQS through real clients (boto3 and the aws CLI) against a live nimbus.

Covers queue lifecycle, attributes, messages (MD5s checked byte for byte with an
independent implementation of the documented algorithm), batches, visibility,
long polling, delays, FIFO ordering / blocking / deduplication, dead-letter
queues and move tasks, purge, tags and permissions.
"""
import hashlib
import json
import struct
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import protocol_client


# --- helpers -----------------------------------------------------------------

def name(prefix="q"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def code(exc):
    return exc.value.response["Error"]["Code"]


def message(exc):
    return exc.value.response["Error"]["Message"]


# SQS answers in the JSON protocol with the query-compatible code in
# x-amzn-query-error; accept either spelling so the suite checks the meaning.
NON_EXISTENT = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


def md5_of_attributes(attrs):
    """The documented SQS digest: sorted names, length-prefixed name, type,
    transport byte (1 string/number, 2 binary) and value."""
    h = hashlib.md5()
    for n in sorted(attrs):
        a = attrs[n]
        for part in (n.encode(), a["DataType"].encode()):
            h.update(struct.pack("!I", len(part)))
            h.update(part)
        if "StringValue" in a:
            v = a["StringValue"].encode()
            h.update(b"\x01")
        else:
            v = a["BinaryValue"]
            h.update(b"\x02")
        h.update(struct.pack("!I", len(v)))
        h.update(v)
    return h.hexdigest()


@pytest.fixture(params=["json", "query", "cbor"])
def sqs(request, endpoint, tmp_path_factory):
    """Every test runs in each protocol SQS clients speak: AWS JSON 1.0 (current SDKs),
    query (older SDKs) and Smithy RPC v2 CBOR."""
    return protocol_client(endpoint, "sqs", request.param, str(tmp_path_factory.getbasetemp()))


@pytest.fixture
def queue(sqs):
    url = sqs.create_queue(QueueName=name())["QueueUrl"]
    yield url
    try:
        sqs.delete_queue(QueueUrl=url)
    except ClientError:
        pass


def create_fifo(sqs, **attrs):
    attributes = {"FifoQueue": "true", **{k: str(v) for k, v in attrs.items()}}
    return sqs.create_queue(QueueName=name("f") + ".fifo", Attributes=attributes)["QueueUrl"]


def counts(sqs, url):
    a = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return (
        int(a["ApproximateNumberOfMessages"]),
        int(a["ApproximateNumberOfMessagesNotVisible"]),
        int(a["ApproximateNumberOfMessagesDelayed"]),
    )


def arn_of(sqs, url):
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def drain(sqs, url, **kw):
    out = []
    while True:
        ms = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, **kw).get("Messages", [])
        if not ms:
            return out
        out.extend(ms)


# --- queues --------------------------------------------------------------------

def test_queue_lifecycle(sqs, endpoint):
    n = name("life")
    url = sqs.create_queue(QueueName=n)["QueueUrl"]
    host = endpoint.split("://", 1)[1]
    assert url.startswith(f"http://{host}/") and url.endswith(f"/{n}")
    account = url.rsplit("/", 2)[1]
    assert sqs.get_queue_url(QueueName=n)["QueueUrl"] == url
    assert sqs.get_queue_url(QueueName=n, QueueOwnerAWSAccountId=account)["QueueUrl"] == url
    assert arn_of(sqs, url) == f"arn:aws:sqs:us-east-1:{account}:{n}"

    prefix = name("page")
    for i in range(5):
        sqs.create_queue(QueueName=f"{prefix}-{i}")
    listed = sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"]
    assert [u.rsplit("/", 1)[1] for u in listed] == [f"{prefix}-{i}" for i in range(5)]
    page1 = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2)
    assert len(page1["QueueUrls"]) == 2 and page1["NextToken"]
    page2 = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=10, NextToken=page1["NextToken"])
    assert len(page2["QueueUrls"]) == 3 and "NextToken" not in page2
    paginated = [u for p in sqs.get_paginator("list_queues").paginate(
        QueueNamePrefix=prefix, PaginationConfig={"PageSize": 2}) for u in p.get("QueueUrls", [])]
    assert paginated == listed
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix=name("none"))

    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(ClientError) as e:
        sqs.get_queue_url(QueueName=n)
    assert code(e) in NON_EXISTENT
    assert message(e) == "The specified queue does not exist."
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=n)
    assert code(e) in {"AWS.SimpleQueueService.QueueDeletedRecently", "QueueDeletedRecently"}
    assert "60 seconds" in message(e)


def test_create_existing_queue(sqs):
    n = name()
    url = sqs.create_queue(QueueName=n, Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    assert sqs.create_queue(QueueName=n, Attributes={"VisibilityTimeout": "45"})["QueueUrl"] == url
    assert sqs.create_queue(QueueName=n)["QueueUrl"] == url
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=n, Attributes={"VisibilityTimeout": "46"})
    assert code(e) in {"QueueAlreadyExists", "QueueNameExists"}
    assert message(e) == (
        "A queue already exists with the same name and a different value for attribute VisibilityTimeout")


def test_queue_names_and_types(sqs):
    for bad in ["has space", "a" * 81, "x.fifo"]:
        with pytest.raises(ClientError) as e:
            sqs.create_queue(QueueName=bad)
        assert code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=name(), Attributes={"FifoQueue": "true"})
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=name(), Attributes={"FifoQueue": "false"})
    assert code(e) == "InvalidAttributeName"
    assert message(e) == "Unknown Attribute FifoQueue."
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=name(), Attributes={"DeduplicationScope": "queue"})
    assert message(e) == "You can specify the DeduplicationScope only when FifoQueue is set to true."


def test_queue_attributes(sqs, queue):
    a = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert a["VisibilityTimeout"] == "30"
    assert a["MaximumMessageSize"] == "1048576"
    assert a["MessageRetentionPeriod"] == "345600"
    assert a["DelaySeconds"] == "0"
    assert a["ReceiveMessageWaitTimeSeconds"] == "0"
    assert a["SqsManagedSseEnabled"] == "true"
    assert a["ApproximateNumberOfMessages"] == "0"
    assert int(a["CreatedTimestamp"]) <= time.time() + 5
    assert "FifoQueue" not in a and "RedrivePolicy" not in a

    for k, v in [("VisibilityTimeout", "43201"), ("DelaySeconds", "901"), ("MaximumMessageSize", "1023"),
                 ("MessageRetentionPeriod", "59"), ("ReceiveMessageWaitTimeSeconds", "21")]:
        with pytest.raises(ClientError) as e:
            sqs.set_queue_attributes(QueueUrl=queue, Attributes={k: v})
        assert code(e) == "InvalidAttributeValue"
        assert message(e) == f"Invalid value for the parameter {k}."
    with pytest.raises(ClientError) as e:
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Bogus"])
    assert code(e) == "InvalidAttributeName"
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"QueueArn": "x"})
    assert code(e) == "InvalidAttributeName"

    sqs.set_queue_attributes(QueueUrl=queue, Attributes={
        "VisibilityTimeout": "69", "DelaySeconds": "0", "MaximumMessageSize": "2048",
        "MessageRetentionPeriod": "604800", "ReceiveMessageWaitTimeSeconds": "1"})
    a = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
        "VisibilityTimeout", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds"])
    assert a["Attributes"] == {"VisibilityTimeout": "69", "MaximumMessageSize": "2048",
                               "MessageRetentionPeriod": "604800", "ReceiveMessageWaitTimeSeconds": "1"}

    f = create_fifo(sqs, ContentBasedDeduplication="true")
    a = sqs.get_queue_attributes(QueueUrl=f, AttributeNames=["All"])["Attributes"]
    assert a["FifoQueue"] == "true"
    assert a["ContentBasedDeduplication"] == "true"
    assert a["DeduplicationScope"] == "queue"
    assert a["FifoThroughputLimit"] == "perQueue"
    sqs.set_queue_attributes(QueueUrl=f, Attributes={
        "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"})
    a = sqs.get_queue_attributes(QueueUrl=f, AttributeNames=["FifoThroughputLimit"])["Attributes"]
    assert a == {"FifoThroughputLimit": "perMessageGroupId"}
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=f, Attributes={"FifoQueue": "false"})
    assert code(e) == "InvalidAttributeValue"


def test_queue_url_forms(sqs, queue):
    account, qn = queue.rsplit("/", 2)[1:]
    forms = (queue, f"https://sqs.us-east-1.amazonaws.com/{account}/{qn}",
             f"http://localhost:4566/{account}/{qn}",
             f"http://sqs.us-east-1.localhost.localstack.cloud:4566/{account}/{qn}",
             f"https://queue.amazonaws.com/{account}/{qn}")
    for url in forms:
        sqs.send_message(QueueUrl=url, MessageBody="hi")
    assert counts(sqs, queue)[0] == len(forms)
    foreign = f"http://localhost:4566/{account}/{qn}"
    got = drain(sqs, foreign, VisibilityTimeout=60)
    sqs.delete_message_batch(QueueUrl=forms[3], Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    assert counts(sqs, queue) == (0, 0, 0)
    assert sqs.get_queue_attributes(QueueUrl=foreign, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"] \
        .endswith(f":{account}:{qn}")
    # A URL of another account does not reach this queue.
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=f"http://localhost:4566/111111111111/{qn}", MessageBody="x")
    assert code(e) in NON_EXISTENT


def test_tags(sqs):
    url = sqs.create_queue(QueueName=name(), tags={"team": "a", "env": "dev"})["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "a", "env": "dev"}
    sqs.tag_queue(QueueUrl=url, Tags={"team": "b", "extra": ""})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "b", "env": "dev", "extra": ""}
    sqs.untag_queue(QueueUrl=url, TagKeys=["env", "extra"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "b"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["team"])
    assert "Tags" not in sqs.list_queue_tags(QueueUrl=url)


def test_permissions(sqs, queue):
    arn = arn_of(sqs, queue)
    sqs.add_permission(QueueUrl=queue, Label="share", AWSAccountIds=["111111111111"],
                       Actions=["SendMessage", "ReceiveMessage"])
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"])["Attributes"]["Policy"])
    assert policy["Version"] == "2008-10-17"
    assert policy["Id"] == f"{arn}/SQSDefaultPolicy"
    assert policy["Statement"] == [{
        "Sid": "share", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
        "Action": ["SQS:SendMessage", "SQS:ReceiveMessage"], "Resource": arn}]
    with pytest.raises(ClientError) as e:
        sqs.add_permission(QueueUrl=queue, Label="share", AWSAccountIds=["1"], Actions=["SendMessage"])
    assert message(e) == "Value share for parameter Label is invalid. Reason: Already exists."
    sqs.remove_permission(QueueUrl=queue, Label="share")
    assert "Attributes" not in sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Policy"])
    with pytest.raises(ClientError) as e:
        sqs.remove_permission(QueueUrl=queue, Label="share")
    assert code(e) == "InvalidParameterValue"


def test_purge(sqs, queue):
    for i in range(5):
        sqs.send_message(QueueUrl=queue, MessageBody=str(i))
    sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=2)
    sqs.purge_queue(QueueUrl=queue)
    assert counts(sqs, queue) == (0, 0, 0)
    with pytest.raises(ClientError) as e:
        sqs.purge_queue(QueueUrl=queue)
    assert code(e) in {"AWS.SimpleQueueService.PurgeQueueInProgress", "PurgeQueueInProgress"}
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# --- messages ------------------------------------------------------------------

def test_send_receive_delete_and_md5s(sqs, queue):
    attrs = {
        "Help.Me": {"DataType": "String", "StringValue": "Me"},
        "Hello": {"DataType": "String", "StringValue": "There"},
        "General": {"DataType": "String", "StringValue": "Kenobi"},
        "Num": {"DataType": "Number", "StringValue": "12.5"},
        "Bin": {"DataType": "Binary", "BinaryValue": b"\x00\x01\x02binary"},
        "Custom": {"DataType": "String.custom", "StringValue": "ü ☃"},
    }
    trace = {"AWSTraceHeader": {"DataType": "String",
                                "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"}}
    body = "hello é 😀"
    r = sqs.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=attrs,
                         MessageSystemAttributes=trace)
    assert r["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    assert r["MD5OfMessageAttributes"] == md5_of_attributes(attrs)
    assert r["MD5OfMessageSystemAttributes"] == md5_of_attributes(trace)
    ms = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"],
                             MessageSystemAttributeNames=["All"])["Messages"]
    m = ms[0]
    assert m["MessageId"] == r["MessageId"]
    assert m["Body"] == body
    assert m["MD5OfBody"] == r["MD5OfMessageBody"]
    assert m["MD5OfMessageAttributes"] == md5_of_attributes(attrs)
    assert m["MessageAttributes"]["Bin"]["BinaryValue"] == b"\x00\x01\x02binary"
    assert m["MessageAttributes"]["Custom"] == {"StringValue": "ü ☃", "DataType": "String.custom"}
    a = m["Attributes"]
    assert a["ApproximateReceiveCount"] == "1"
    assert a["AWSTraceHeader"] == trace["AWSTraceHeader"]["StringValue"]
    assert int(a["SentTimestamp"]) <= int(a["ApproximateFirstReceiveTimestamp"])
    assert a["SenderId"]
    # Filters: exact names and prefixes; the digest covers what is returned.
    m = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)  # still in flight
    assert "Messages" not in m
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=ms[0]["ReceiptHandle"], VisibilityTimeout=0)
    m = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["Hel.*", "Num"], VisibilityTimeout=0)["Messages"][0]
    chosen = {k: attrs[k] for k in ("Hello", "Help.Me", "Num")}
    assert set(m["MessageAttributes"]) == set(chosen)
    assert m["MD5OfMessageAttributes"] == md5_of_attributes(chosen)
    m = sqs.receive_message(QueueUrl=queue)["Messages"][0]
    assert "MessageAttributes" not in m and "Attributes" not in m
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])  # again: accepted
    assert counts(sqs, queue) == (0, 0, 0)
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)


def test_message_validation(sqs, queue):
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=queue, MessageBody="bad \x01")
    assert code(e) == "InvalidMessageContents"
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=queue, MessageBody="")
    assert code(e) in {"MissingParameter", "MissingRequiredParameterException"}
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"MaximumMessageSize": "1024"})
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=queue, MessageBody="x" * 1025)
    assert code(e) == "InvalidParameterValue"
    assert message(e) == "One or more parameters are invalid. Reason: Message must be shorter than 1024 bytes."
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=queue, MessageBody="x", DelaySeconds=901)
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=queue, MessageBody="x",
                         MessageAttributes={"e": {"DataType": "String", "StringValue": ""}})
    assert message(e) == "Message (user) attribute 'e' must contain a non-empty value of type 'String'."
    with pytest.raises(ClientError) as e:
        sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=11)
    assert message(e) == ("Value 11 for parameter MaxNumberOfMessages is invalid. "
                          "Reason: Must be between 1 and 10, if provided.")
    with pytest.raises(ClientError) as e:
        sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=21)
    assert code(e) == "InvalidParameterValue"
    assert counts(sqs, queue) == (0, 0, 0)


def test_batches(sqs, queue):
    entries = [{"Id": f"m{i}", "MessageBody": f"body-{i}"} for i in range(9)]
    entries.append({"Id": "bad", "MessageBody": "\x01"})
    r = sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    assert [s["Id"] for s in r["Successful"]] == [f"m{i}" for i in range(9)]
    assert r["Successful"][3]["MD5OfMessageBody"] == hashlib.md5(b"body-3").hexdigest()
    assert len(r["Failed"]) == 1 and r["Failed"][0]["Id"] == "bad"
    assert r["Failed"][0]["Code"] == "InvalidMessageContents" and r["Failed"][0]["SenderFault"] is True

    for entries, codes in [
        ([], {"AWS.SimpleQueueService.EmptyBatchRequest", "EmptyBatchRequest"}),
        ([{"Id": str(i), "MessageBody": "x"} for i in range(11)],
         {"AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "TooManyEntriesInBatchRequest"}),
        ([{"Id": "a:b", "MessageBody": "x"}],
         {"AWS.SimpleQueueService.InvalidBatchEntryId", "InvalidBatchEntryId"}),
        ([{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}],
         {"AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "BatchEntryIdsNotDistinct"}),
        ([{"Id": "a", "MessageBody": "x" * 600_000}, {"Id": "b", "MessageBody": "x" * 448_577}],
         {"AWS.SimpleQueueService.BatchRequestTooLong", "BatchRequestTooLong"}),
    ]:
        with pytest.raises(ClientError) as e:
            sqs.send_message_batch(QueueUrl=queue, Entries=entries)
        assert code(e) in codes, code(e)

    ms = drain(sqs, queue, VisibilityTimeout=60)
    assert sorted(m["Body"] for m in ms) == sorted(f"body-{i}" for i in range(9))
    r = sqs.change_message_visibility_batch(QueueUrl=queue, Entries=[
        {"Id": "a", "ReceiptHandle": ms[0]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "b", "ReceiptHandle": "garbage", "VisibilityTimeout": 0}])
    assert [s["Id"] for s in r["Successful"]] == ["a"]
    assert r["Failed"][0]["Id"] == "b" and r["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    r = sqs.delete_message_batch(QueueUrl=queue, Entries=[
        {"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(ms[1:])]
        + [{"Id": "bad", "ReceiptHandle": "garbage"}])
    assert len(r["Successful"]) == 8
    assert r["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    assert counts(sqs, queue) == (1, 0, 0)


def test_visibility_timeout_and_receive_count(sqs, queue):
    sqs.send_message(QueueUrl=queue, MessageBody="v")
    first = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=1)["Messages"][0]
    assert counts(sqs, queue) == (0, 1, 0)
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    time.sleep(1.2)
    again = sqs.receive_message(QueueUrl=queue, MessageSystemAttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert again["MessageId"] == first["MessageId"]
    assert again["ReceiptHandle"] != first["ReceiptHandle"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=0)
    with pytest.raises(ClientError) as e:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=5)
    assert code(e) in {"AWS.SimpleQueueService.MessageNotInflight", "MessageNotInflight"}
    with pytest.raises(ClientError) as e:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle="garbage", VisibilityTimeout=5)
    assert code(e) == "ReceiptHandleIsInvalid"
    with pytest.raises(ClientError) as e:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle="garbage")
    assert code(e) == "ReceiptHandleIsInvalid"
    assert message(e) == 'The input receipt handle "garbage" is not a valid receipt handle.'
    # An older handle of a message still present deletes it.
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"])
    assert counts(sqs, queue) == (0, 0, 0)


def test_long_polling_returns_early(sqs, queue):
    t0 = time.time()
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)
    assert time.time() - t0 >= 0.9

    def later():
        time.sleep(0.5)
        sqs.send_message(QueueUrl=queue, MessageBody="wake")

    threading.Thread(target=later).start()
    t0 = time.time()
    ms = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=10)["Messages"]
    took = time.time() - t0
    assert ms[0]["Body"] == "wake"
    assert 0.4 < took < 3, took


def test_delays(sqs):
    url = sqs.create_queue(QueueName=name(), Attributes={"DelaySeconds": "1"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="queue-delay")
    sqs.send_message(QueueUrl=url, MessageBody="now", DelaySeconds=0)
    assert counts(sqs, url) == (1, 0, 1)
    assert [m["Body"] for m in drain(sqs, url)] == ["now"]
    time.sleep(1.2)
    assert [m["Body"] for m in drain(sqs, url)] == ["queue-delay"]


# --- FIFO ----------------------------------------------------------------------

def test_fifo_requirements(sqs):
    f = create_fifo(sqs)
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=f, MessageBody="x")
    assert code(e) in {"MissingParameter", "MissingRequiredParameterException"}
    assert message(e) == "The request must contain the parameter MessageGroupId."
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=f, MessageBody="x", MessageGroupId="g")
    assert message(e) == ("The queue should either have ContentBasedDeduplication enabled or "
                          "MessageDeduplicationId provided explicitly")
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=f, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="d",
                         DelaySeconds=2)
    assert code(e) == "InvalidParameterValue"


def test_fifo_order_blocking_and_sequence_numbers(sqs):
    f = create_fifo(sqs, ContentBasedDeduplication="true")
    seqs = []
    for body, g in [("a1", "A"), ("a2", "A"), ("b1", "B"), ("a3", "A"), ("b2", "B")]:
        r = sqs.send_message(QueueUrl=f, MessageBody=body, MessageGroupId=g)
        assert len(r["SequenceNumber"]) == 20
        seqs.append(int(r["SequenceNumber"]))
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    first = sqs.receive_message(QueueUrl=f, MessageSystemAttributeNames=["All"])["Messages"][0]
    assert first["Body"] == "a1"
    assert first["Attributes"]["MessageGroupId"] == "A"
    assert first["Attributes"]["MessageDeduplicationId"] == hashlib.sha256(b"a1").hexdigest()
    assert int(first["Attributes"]["SequenceNumber"]) == seqs[0]
    # Group A is blocked while a1 is in flight.
    assert [m["Body"] for m in drain(sqs, f)] == ["b1", "b2"]
    assert "Messages" not in sqs.receive_message(QueueUrl=f, MaxNumberOfMessages=10)
    sqs.delete_message(QueueUrl=f, ReceiptHandle=first["ReceiptHandle"])
    assert [m["Body"] for m in drain(sqs, f)] == ["a2", "a3"]


def test_fifo_deduplication(sqs):
    f = create_fifo(sqs)
    a = sqs.send_message(QueueUrl=f, MessageBody="one", MessageGroupId="g", MessageDeduplicationId="d1")
    b = sqs.send_message(QueueUrl=f, MessageBody="two", MessageGroupId="g", MessageDeduplicationId="d1")
    assert a["MessageId"] == b["MessageId"]
    assert counts(sqs, f) == (1, 0, 0)
    cbd = create_fifo(sqs, ContentBasedDeduplication="true")
    for _ in range(3):
        sqs.send_message(QueueUrl=cbd, MessageBody="same", MessageGroupId="g")
    assert counts(sqs, cbd) == (1, 0, 0)
    hp = create_fifo(sqs, DeduplicationScope="messageGroup", FifoThroughputLimit="perMessageGroupId")
    sqs.send_message(QueueUrl=hp, MessageBody="x", MessageGroupId="g1", MessageDeduplicationId="d")
    sqs.send_message(QueueUrl=hp, MessageBody="x", MessageGroupId="g2", MessageDeduplicationId="d")
    assert counts(sqs, hp) == (2, 0, 0)


def test_fifo_receive_request_attempt_id(sqs):
    f = create_fifo(sqs, ContentBasedDeduplication="true")
    for i in range(3):
        sqs.send_message(QueueUrl=f, MessageBody=f"m{i}", MessageGroupId="g")
    a = sqs.receive_message(QueueUrl=f, MaxNumberOfMessages=2, ReceiveRequestAttemptId="attempt-1")["Messages"]
    b = sqs.receive_message(QueueUrl=f, MaxNumberOfMessages=2, ReceiveRequestAttemptId="attempt-1")["Messages"]
    assert [m["ReceiptHandle"] for m in a] == [m["ReceiptHandle"] for m in b]


# --- dead-letter queues --------------------------------------------------------

def test_dead_letter_queue_and_move_task(sqs):
    dlq = sqs.create_queue(QueueName=name("dlq"))["QueueUrl"]
    dlq_arn = arn_of(sqs, dlq)
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"})
    src = sqs.create_queue(QueueName=name("src"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
    src_arn = arn_of(sqs, src)
    rp = sqs.get_queue_attributes(QueueUrl=src, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
    assert json.loads(rp) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [src]

    for i in range(3):
        sqs.send_message(QueueUrl=src, MessageBody=f"m{i}")
    assert len(drain(sqs, src, VisibilityTimeout=0)) == 3
    assert drain(sqs, src) == []
    assert counts(sqs, dlq) == (3, 0, 0)
    m = sqs.receive_message(QueueUrl=dlq, MessageSystemAttributeNames=["All"], VisibilityTimeout=0)["Messages"][0]
    assert m["Attributes"]["DeadLetterQueueSourceArn"] == src_arn
    assert m["Attributes"]["ApproximateReceiveCount"] == "2"

    with pytest.raises(ClientError) as e:
        sqs.start_message_move_task(SourceArn=src_arn)
    assert message(e) == "Source queue must be configured as a Dead Letter Queue."
    with pytest.raises(ClientError) as e:
        sqs.start_message_move_task(SourceArn=dlq_arn + "-missing")
    assert code(e) == "ResourceNotFoundException"
    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert handle
    for _ in range(100):
        r = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]
        if r["Status"] == "COMPLETED":
            break
        time.sleep(0.05)
    assert r["Status"] == "COMPLETED"
    assert r["ApproximateNumberOfMessagesMoved"] == 3
    assert r["ApproximateNumberOfMessagesToMove"] == 3
    assert counts(sqs, dlq)[0] == 0
    assert sorted(m["Body"] for m in drain(sqs, src, VisibilityTimeout=30)) == ["m0", "m1", "m2"]
    with pytest.raises(ClientError) as e:
        sqs.cancel_message_move_task(TaskHandle="foobared")
    assert message(e) == "Value for parameter TaskHandle is invalid."


def test_move_task_rate_and_cancel(sqs):
    dlq = sqs.create_queue(QueueName=name("dlq"))["QueueUrl"]
    dlq_arn = arn_of(sqs, dlq)
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
    src = sqs.create_queue(QueueName=name("src"), Attributes={"RedrivePolicy": policy})["QueueUrl"]
    dest = sqs.create_queue(QueueName=name("dest"))["QueueUrl"]
    for i in range(6):
        sqs.send_message(QueueUrl=src, MessageBody=f"m{i}")
    drain(sqs, src, VisibilityTimeout=0)
    drain(sqs, src)
    assert counts(sqs, dlq)[0] == 6
    handle = sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=arn_of(sqs, dest),
                                         MaxNumberOfMessagesPerSecond=2)["TaskHandle"]
    with pytest.raises(ClientError) as e:
        sqs.start_message_move_task(SourceArn=dlq_arn)
    assert code(e) == "InvalidParameterValue"
    time.sleep(0.3)
    running = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]
    assert running["Status"] == "RUNNING" and running["TaskHandle"] == handle
    assert running["MaxNumberOfMessagesPerSecond"] == 2
    moved = sqs.cancel_message_move_task(TaskHandle=handle)["ApproximateNumberOfMessagesMoved"]
    assert 1 <= moved < 6
    time.sleep(1.2)
    final = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0]
    assert final["Status"] == "CANCELLED"
    assert counts(sqs, dest)[0] == final["ApproximateNumberOfMessagesMoved"]
    assert counts(sqs, dlq)[0] == 6 - final["ApproximateNumberOfMessagesMoved"]


# --- the aws CLI ---------------------------------------------------------------

def test_aws_cli(aws):
    n = name("cli")
    url = aws("sqs", "create-queue", "--queue-name", n, "--attributes", "VisibilityTimeout=40")["QueueUrl"]
    assert url.endswith("/" + n)
    assert aws("sqs", "get-queue-url", "--queue-name", n)["QueueUrl"] == url
    assert url in aws("sqs", "list-queues", "--queue-name-prefix", n)["QueueUrls"]
    attrs = aws("sqs", "get-queue-attributes", "--queue-url", url, "--attribute-names", "All")["Attributes"]
    assert attrs["VisibilityTimeout"] == "40"
    sent = aws("sqs", "send-message", "--queue-url", url, "--message-body", "from the cli",
               "--message-attributes", '{"k":{"DataType":"String","StringValue":"v"}}')
    assert sent["MD5OfMessageBody"] == hashlib.md5(b"from the cli").hexdigest()
    assert sent["MD5OfMessageAttributes"] == md5_of_attributes({"k": {"DataType": "String", "StringValue": "v"}})
    aws("sqs", "send-message-batch", "--queue-url", url, "--entries",
        json.dumps([{"Id": "1", "MessageBody": "b1"}, {"Id": "2", "MessageBody": "b2"}]))
    got = aws("sqs", "receive-message", "--queue-url", url, "--max-number-of-messages", "10",
              "--message-attribute-names", "All", "--attribute-names", "All")["Messages"]
    assert sorted(m["Body"] for m in got) == ["b1", "b2", "from the cli"]
    for m in got:
        aws("sqs", "delete-message", "--queue-url", url, "--receipt-handle", m["ReceiptHandle"])
    attrs = aws("sqs", "get-queue-attributes", "--queue-url", url, "--attribute-names",
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")["Attributes"]
    assert attrs == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    aws("sqs", "tag-queue", "--queue-url", url, "--tags", "team=x")
    assert aws("sqs", "list-queue-tags", "--queue-url", url)["Tags"] == {"team": "x"}
    aws("sqs", "purge-queue", "--queue-url", url)
    aws("sqs", "delete-queue", "--queue-url", url)
    p = aws("sqs", "get-queue-url", "--queue-name", n, check=False)
    assert p.returncode != 0
    assert "NonExistentQueue" in p.stderr or "QueueDoesNotExist" in p.stderr


# --- acceptance gaps: limits, system attributes, redrive permissions, errors ---

def status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_retention_attribute_bounds(sqs):
    # Expiry itself is covered with the service clock in the crate's Rust tests
    # (tests/messages.rs retention_expires_messages, tests/persistence.rs).
    url = sqs.create_queue(QueueName=name(), Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MessageRetentionPeriod"])["Attributes"]
    assert a == {"MessageRetentionPeriod": "60"}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"MessageRetentionPeriod": "1209600"})
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MessageRetentionPeriod"])["Attributes"]
    assert a == {"MessageRetentionPeriod": "1209600"}
    for bad in ("59", "1209601", "abc"):
        with pytest.raises(ClientError) as e:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"MessageRetentionPeriod": bad})
        assert code(e) == "InvalidAttributeValue"
        assert message(e) == "Invalid value for the parameter MessageRetentionPeriod."
        assert status(e) == 400
        with pytest.raises(ClientError) as e:
            sqs.create_queue(QueueName=name(), Attributes={"MessageRetentionPeriod": bad})
        assert code(e) == "InvalidAttributeValue"
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MessageRetentionPeriod"])["Attributes"]
    assert a == {"MessageRetentionPeriod": "1209600"}


def test_size_limits(sqs, queue):
    # The default MaximumMessageSize (1 MiB) bounds body plus attributes.
    big = "x" * 1_048_576
    r = sqs.send_message(QueueUrl=queue, MessageBody=big)
    assert r["MD5OfMessageBody"] == hashlib.md5(big.encode()).hexdigest()
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=queue, MessageBody=big + "x")
    assert code(e) == "InvalidParameterValue" and status(e) == 400
    assert message(e) == ("One or more parameters are invalid. Reason: Message must be shorter than "
                          "1048576 bytes.")
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"MaximumMessageSize": "1024"})
    sqs.send_message(QueueUrl=queue, MessageBody="y" * 1024)
    # Attribute names, types and values count towards the limit.
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=queue, MessageBody="y" * 1000,
                         MessageAttributes={"attr": {"DataType": "String", "StringValue": "z" * 30}})
    assert code(e) == "InvalidParameterValue"
    # A multibyte body is measured in UTF-8 bytes, not characters.
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=queue, MessageBody="é" * 513)
    assert code(e) == "InvalidParameterValue"
    # In a batch the oversized entry fails alone.
    r = sqs.send_message_batch(QueueUrl=queue, Entries=[
        {"Id": "ok", "MessageBody": "small"}, {"Id": "big", "MessageBody": "y" * 1025}])
    assert [s["Id"] for s in r["Successful"]] == ["ok"]
    assert r["Failed"][0]["Id"] == "big" and r["Failed"][0]["SenderFault"] is True
    assert r["Failed"][0]["Code"] == "InvalidParameterValue"
    # Ten entries is the batch limit for every batch operation.
    for op, entries in [
        (sqs.send_message_batch, [{"Id": str(i), "MessageBody": "x"} for i in range(11)]),
        (sqs.delete_message_batch, [{"Id": str(i), "ReceiptHandle": "h"} for i in range(11)]),
        (sqs.change_message_visibility_batch,
         [{"Id": str(i), "ReceiptHandle": "h", "VisibilityTimeout": 1} for i in range(11)]),
    ]:
        with pytest.raises(ClientError) as e:
            op(QueueUrl=queue, Entries=entries)
        assert code(e) in {"AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "TooManyEntriesInBatchRequest"}
        assert status(e) == 400
    assert counts(sqs, queue) == (3, 0, 0)


def test_system_attributes_and_digests(sqs, queue):
    trace = {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc;Parent=def;Sampled=0"}}
    r = sqs.send_message_batch(QueueUrl=queue, Entries=[
        {"Id": "t", "MessageBody": "traced", "MessageSystemAttributes": trace},
        {"Id": "p", "MessageBody": "plain"}])
    by_id = {s["Id"]: s for s in r["Successful"]}
    assert by_id["t"]["MD5OfMessageSystemAttributes"] == md5_of_attributes(trace)
    assert "MD5OfMessageSystemAttributes" not in by_id["p"]
    assert "MD5OfMessageAttributes" not in by_id["p"]
    got = {m["Body"]: m for m in drain(sqs, queue, MessageSystemAttributeNames=["AWSTraceHeader", "SenderId"])}
    assert got["traced"]["Attributes"]["AWSTraceHeader"] == "Root=1-abc;Parent=def;Sampled=0"
    assert set(got["traced"]["Attributes"]) == {"AWSTraceHeader", "SenderId"}
    assert "AWSTraceHeader" not in got["plain"]["Attributes"]
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=queue, MessageBody="x", MessageSystemAttributes={
            "Bogus": {"DataType": "String", "StringValue": "v"}})
    assert code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=queue, MessageBody="x", MessageSystemAttributes={
            "AWSTraceHeader": {"DataType": "Number", "StringValue": "1"}})
    assert code(e) == "InvalidParameterValue"


def test_redrive_allow_policy(sqs):
    deny = sqs.create_queue(QueueName=name("deny"), Attributes={
        "RedriveAllowPolicy": json.dumps({"redrivePermission": "denyAll"})})["QueueUrl"]
    deny_arn = arn_of(sqs, deny)
    a = sqs.get_queue_attributes(QueueUrl=deny, AttributeNames=["RedriveAllowPolicy"])["Attributes"]
    assert json.loads(a["RedriveAllowPolicy"]) == {"redrivePermission": "denyAll"}
    policy = json.dumps({"deadLetterTargetArn": deny_arn, "maxReceiveCount": 3})
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=name("src"), Attributes={"RedrivePolicy": policy})
    assert code(e) == "InvalidParameterValue" and status(e) == 400
    src = sqs.create_queue(QueueName=name("src"))["QueueUrl"]
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=src, Attributes={"RedrivePolicy": policy})
    assert code(e) == "InvalidParameterValue"
    assert "RedrivePolicy" not in sqs.get_queue_attributes(
        QueueUrl=src, AttributeNames=["All"])["Attributes"]

    allowed = sqs.create_queue(QueueName=name("ok"))["QueueUrl"]
    other = sqs.create_queue(QueueName=name("other"))["QueueUrl"]
    by_queue = sqs.create_queue(QueueName=name("byq"), Attributes={"RedriveAllowPolicy": json.dumps(
        {"redrivePermission": "byQueue", "sourceQueueArns": [arn_of(sqs, allowed)]})})["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": arn_of(sqs, by_queue), "maxReceiveCount": 3})
    sqs.set_queue_attributes(QueueUrl=allowed, Attributes={"RedrivePolicy": policy})
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=other, Attributes={"RedrivePolicy": policy})
    assert code(e) == "InvalidParameterValue"
    assert sqs.list_dead_letter_source_queues(QueueUrl=by_queue)["queueUrls"] == [allowed]
    # allowAll (the default) lets anyone in; malformed policies are refused.
    sqs.set_queue_attributes(QueueUrl=by_queue, Attributes={
        "RedriveAllowPolicy": json.dumps({"redrivePermission": "allowAll"})})
    sqs.set_queue_attributes(QueueUrl=other, Attributes={"RedrivePolicy": policy})
    assert sorted(sqs.list_dead_letter_source_queues(QueueUrl=by_queue)["queueUrls"]) == sorted([allowed, other])
    for bad in ({"redrivePermission": "byQueue"}, {"redrivePermission": "nope"},
                {"redrivePermission": "denyAll", "sourceQueueArns": [arn_of(sqs, other)]}):
        with pytest.raises(ClientError) as e:
            sqs.set_queue_attributes(QueueUrl=by_queue, Attributes={"RedriveAllowPolicy": json.dumps(bad)})
        assert code(e) == "InvalidParameterValue"
    # A FIFO source cannot use a standard dead-letter queue.
    with pytest.raises(ClientError) as e:
        create_fifo(sqs, RedrivePolicy=policy)
    assert code(e) == "InvalidParameterValue"


def test_high_throughput_fifo_attributes(sqs):
    hp = create_fifo(sqs, DeduplicationScope="messageGroup", FifoThroughputLimit="perMessageGroupId")
    a = sqs.get_queue_attributes(QueueUrl=hp, AttributeNames=["All"])["Attributes"]
    assert (a["DeduplicationScope"], a["FifoThroughputLimit"]) == ("messageGroup", "perMessageGroupId")
    assert a["ContentBasedDeduplication"] == "false"
    # messageGroup scope with perQueue limit is allowed (normal throughput).
    mixed = create_fifo(sqs, DeduplicationScope="messageGroup", FifoThroughputLimit="perQueue")
    a = sqs.get_queue_attributes(QueueUrl=mixed, AttributeNames=["DeduplicationScope", "FifoThroughputLimit"])
    assert a["Attributes"] == {"DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perQueue"}
    # perMessageGroupId needs messageGroup deduplication.
    with pytest.raises(ClientError) as e:
        create_fifo(sqs, DeduplicationScope="queue", FifoThroughputLimit="perMessageGroupId")
    assert code(e) == "InvalidAttributeValue" and status(e) == 400
    with pytest.raises(ClientError) as e:
        sqs.set_queue_attributes(QueueUrl=hp, Attributes={"DeduplicationScope": "queue"})
    assert code(e) == "InvalidAttributeValue"
    for k, v in [("DeduplicationScope", "group"), ("FifoThroughputLimit", "perGroup")]:
        with pytest.raises(ClientError) as e:
            sqs.set_queue_attributes(QueueUrl=hp, Attributes={k: v})
        assert code(e) == "InvalidAttributeValue"
    a = sqs.get_queue_attributes(QueueUrl=hp, AttributeNames=["DeduplicationScope", "FifoThroughputLimit"])
    assert a["Attributes"] == {"DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"}
    # Both switched back together is normal throughput again.
    sqs.set_queue_attributes(QueueUrl=hp, Attributes={"DeduplicationScope": "queue",
                                                       "FifoThroughputLimit": "perQueue"})
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=name(), Attributes={"FifoThroughputLimit": "perQueue"})
    assert code(e) in {"InvalidAttributeName", "InvalidAttributeValue"}


def test_fifo_dedup_details(sqs):
    # An explicit id wins over content-based deduplication, and a deleted
    # message's id still deduplicates within the window.
    f = create_fifo(sqs, ContentBasedDeduplication="true")
    a = sqs.send_message(QueueUrl=f, MessageBody="same", MessageGroupId="g", MessageDeduplicationId="x1")
    b = sqs.send_message(QueueUrl=f, MessageBody="same", MessageGroupId="g", MessageDeduplicationId="x2")
    c = sqs.send_message(QueueUrl=f, MessageBody="same", MessageGroupId="g")
    assert len({a["MessageId"], b["MessageId"], c["MessageId"]}) == 3
    d = sqs.send_message(QueueUrl=f, MessageBody="other", MessageGroupId="h", MessageDeduplicationId="x1")
    assert d["MessageId"] == a["MessageId"]
    got = []
    for _ in range(3):
        m = sqs.receive_message(QueueUrl=f, MessageSystemAttributeNames=["MessageDeduplicationId"])["Messages"][0]
        got.append(m["Attributes"]["MessageDeduplicationId"])
        sqs.delete_message(QueueUrl=f, ReceiptHandle=m["ReceiptHandle"])
    assert got == ["x1", "x2", hashlib.sha256(b"same").hexdigest()]
    again = sqs.send_message(QueueUrl=f, MessageBody="same", MessageGroupId="g", MessageDeduplicationId="x1")
    assert again["MessageId"] == a["MessageId"]
    assert counts(sqs, f) == (0, 0, 0)
    # A FIFO message whose visibility ran out comes back ahead of its group.
    sqs.send_message(QueueUrl=f, MessageBody="n1", MessageGroupId="n")
    sqs.send_message(QueueUrl=f, MessageBody="n2", MessageGroupId="n")
    m = sqs.receive_message(QueueUrl=f, VisibilityTimeout=1)["Messages"]
    assert [x["Body"] for x in m] == ["n1"]
    assert "Messages" not in sqs.receive_message(QueueUrl=f)
    time.sleep(1.2)
    assert [x["Body"] for x in sqs.receive_message(QueueUrl=f, MaxNumberOfMessages=10)["Messages"]] == ["n1", "n2"]


def test_change_visibility_extends_and_limits(sqs, queue):
    sqs.send_message(QueueUrl=queue, MessageBody="v")
    m = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=1)["Messages"][0]
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=3)
    time.sleep(1.2)
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)
    assert counts(sqs, queue) == (0, 1, 0)
    with pytest.raises(ClientError) as e:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=43201)
    assert code(e) == "InvalidParameterValue" and status(e) == 400
    with pytest.raises(ClientError) as e:
        sqs.receive_message(QueueUrl=queue, VisibilityTimeout=43201)
    assert code(e) == "InvalidParameterValue"
    r = sqs.change_message_visibility_batch(QueueUrl=queue, Entries=[
        {"Id": "a", "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 43201}])
    assert r["Failed"][0]["Id"] == "a" and r["Failed"][0]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle="garbage", VisibilityTimeout=1)
    assert code(e) == "ReceiptHandleIsInvalid" and status(e) == 400
    sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    assert counts(sqs, queue) == (1, 0, 0)
    assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["MessageId"] == m["MessageId"]


def test_per_message_delay_and_queue_wait_time(sqs):
    url = sqs.create_queue(QueueName=name(), Attributes={"ReceiveMessageWaitTimeSeconds": "2"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    r = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "d", "MessageBody": "batch-later", "DelaySeconds": 1}])
    assert [s["Id"] for s in r["Successful"]] == ["d"]
    assert counts(sqs, url) == (0, 0, 2)
    # The queue's wait time makes this a long poll that ends when the delay does.
    t0 = time.time()
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    took = time.time() - t0
    assert 0.7 < took < 1.9, took
    if len(got) < 2:  # the batch entry was sent a few milliseconds later
        got += sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert sorted(m["Body"] for m in got) == ["batch-later", "later"]


def test_error_codes_and_statuses(sqs, queue):
    account = queue.rsplit("/", 2)[1]
    missing = f"http://localhost:4566/{account}/{name('missing')}"
    for call in (lambda: sqs.get_queue_url(QueueName=name("missing")),
                 lambda: sqs.send_message(QueueUrl=missing, MessageBody="x"),
                 lambda: sqs.receive_message(QueueUrl=missing),
                 lambda: sqs.delete_queue(QueueUrl=missing),
                 lambda: sqs.list_queue_tags(QueueUrl=missing)):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) in NON_EXISTENT and status(e) == 400
        assert message(e) == "The specified queue does not exist."
    with pytest.raises(ClientError) as e:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle="garbage")
    assert code(e) == "ReceiptHandleIsInvalid" and status(e) == 400
    with pytest.raises(ClientError) as e:
        sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=0)
    assert code(e) == "InvalidParameterValue" and status(e) == 400
    with pytest.raises(ClientError) as e:
        sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["Nope"])
    assert code(e) == "InvalidAttributeName" and status(e) == 400
    assert message(e) == "Unknown Attribute Nope."


def test_json_protocol_query_compatible_codes(client, queue):
    # Current SDKs read the query-compatible code from x-amzn-query-error.
    sqs = client("sqs")
    with pytest.raises(ClientError) as e:
        sqs.get_queue_url(QueueName=name("missing"))
    assert code(e) == "AWS.SimpleQueueService.NonExistentQueue"
    assert status(e) == 400
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-query-error"] == (
        "AWS.SimpleQueueService.NonExistentQueue;Sender")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=name("missing"))


def test_body_characters_round_trip(sqs, queue):
    # Every character SQS allows comes back byte for byte in every protocol
    # (XML must escape CR, or parsers fold CRLF into LF and the MD5 breaks).
    body = "tab\there\r\nCRLF\rCR\nLF <&>\"' ]]> \ue000\ufffd \U0001F600 end "
    attrs = {"crlf": {"DataType": "String", "StringValue": "a\r\nb\rc<&>"}}
    r = sqs.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=attrs)
    assert r["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    m = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"][0]
    assert m["Body"] == body
    assert m["MD5OfBody"] == hashlib.md5(m["Body"].encode()).hexdigest()
    assert m["MessageAttributes"]["crlf"]["StringValue"] == "a\r\nb\rc<&>"
    assert m["MD5OfMessageAttributes"] == md5_of_attributes(attrs)
    for bad in ("\ufffe", "\x00", "\x1f", "\uffff"):
        with pytest.raises(ClientError) as e:
            sqs.send_message(QueueUrl=queue, MessageBody="x" + bad)
        assert code(e) == "InvalidMessageContents"


@pytest.mark.parametrize("protocol", ["json", "query", "cbor"])
def test_queue_url_follows_the_host_called(endpoint, tmp_path_factory, protocol):
    root = str(tmp_path_factory.getbasetemp())
    by_name = protocol_client(endpoint.replace("127.0.0.1", "localhost"), "sqs", protocol, root)
    by_ip = protocol_client(endpoint, "sqs", protocol, root)
    n = name("host")
    url = by_name.create_queue(QueueName=n)["QueueUrl"]
    port = endpoint.rsplit(":", 1)[1]
    assert url == f"http://localhost:{port}/000000000000/{n}"
    assert by_ip.get_queue_url(QueueName=n)["QueueUrl"] == f"http://127.0.0.1:{port}/000000000000/{n}"
    assert by_ip.list_queues(QueueNamePrefix=n)["QueueUrls"] == [f"http://127.0.0.1:{port}/000000000000/{n}"]
    # The URL one host name produced works through the other.
    by_ip.send_message(QueueUrl=url, MessageBody="x")
    assert by_name.receive_message(QueueUrl=by_ip.get_queue_url(QueueName=n)["QueueUrl"])["Messages"][0]["Body"] == "x"
    by_ip.delete_queue(QueueUrl=url)
