"""SQS through the query protocol, as older SDKs and raw HTTP clients speak it.

A botocore client built from models/sqs-query.json (SQS as botocore described it
in query form) signs, serializes and parses exactly as those SDKs did; raw HTTP
form posts check the XML that scripts read without any SDK."""
import os
import shutil
import xml.etree.ElementTree as ET

import botocore.config
import botocore.exceptions
import botocore.session
import pytest
import requests

from conftest import REGION, ROOT, SigV4

# Raw query requests, signed as SDKs sign them (unsigned callers are anonymous).
SIGNED = SigV4("sqs")

NS = {"q": "http://queue.amazonaws.com/doc/2012-11-05/"}


@pytest.fixture(scope="module")
def query_sqs(endpoint, tmp_path_factory):
    data = tmp_path_factory.mktemp("models")
    target = data / "sqs" / "2012-11-05"
    target.mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "models", "sqs-query.json"), target / "service-2.json")
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(data))
    client = session.create_client(
        "sqs", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test",
        aws_secret_access_key="test", config=botocore.config.Config(retries={"max_attempts": 1}))
    assert client.meta.service_model.protocol == "query"
    return client


def test_query_client_full_cycle(query_sqs):
    url = query_sqs.create_queue(QueueName="q-cycle", Attributes={"VisibilityTimeout": "5"},
                                 tags={"team": "core"})["QueueUrl"]
    assert url.endswith("/000000000000/q-cycle")
    sent = query_sqs.send_message(
        QueueUrl=url, MessageBody="hello query",
        MessageAttributes={"n": {"DataType": "Number", "StringValue": "42"},
                           "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}})
    assert sent["MD5OfMessageBody"] == "d4f9edf5355d2d3dc7f13a9026acc678"
    batch = query_sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "one"}, {"Id": "b", "MessageBody": "two"}])
    assert sorted(e["Id"] for e in batch["Successful"]) == ["a", "b"]
    attrs = query_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "3"
    assert attrs["VisibilityTimeout"] == "5"
    got = query_sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                    MessageAttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    assert sorted(m["Body"] for m in got) == ["hello query", "one", "two"]
    first = next(m for m in got if m["Body"] == "hello query")
    assert first["MessageAttributes"]["n"]["StringValue"] == "42"
    assert first["MessageAttributes"]["b"]["BinaryValue"] == b"\x00\x01"
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert first["MessageId"] == sent["MessageId"]
    deleted = query_sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    assert len(deleted["Successful"]) == 3
    assert query_sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "core"}
    assert url in query_sqs.list_queues(QueueNamePrefix="q-cyc")["QueueUrls"]
    query_sqs.delete_queue(QueueUrl=url)


def test_query_client_errors(query_sqs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        query_sqs.get_queue_url(QueueName="does-not-exist")
    err = e.value.response
    assert err["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_raw_form_post_xml(endpoint):
    r = requests.post(endpoint + "/", auth=SIGNED, data={"Action": "CreateQueue", "QueueName": "raw-q",
                                            "Attribute.1.Name": "DelaySeconds", "Attribute.1.Value": "0",
                                            "Version": "2012-11-05"})
    assert r.status_code == 200, r.text
    root = ET.fromstring(r.text)
    assert root.tag == "{%s}CreateQueueResponse" % NS["q"]
    url = root.find("q:CreateQueueResult/q:QueueUrl", NS).text
    assert root.find("q:ResponseMetadata/q:RequestId", NS).text
    r = requests.post(url, auth=SIGNED, data={"Action": "SendMessage", "MessageBody": "raw body",
                                 "MessageAttribute.1.Name": "k", "MessageAttribute.1.Value.DataType": "String",
                                 "MessageAttribute.1.Value.StringValue": "v"})
    assert r.status_code == 200, r.text
    sent = ET.fromstring(r.text).find("q:SendMessageResult", NS)
    assert sent.find("q:MD5OfMessageBody", NS).text == "3ffbda3801ffe118c011fe4cac001f90"
    r = requests.get(url, auth=SIGNED, params={"Action": "ReceiveMessage", "AttributeName.1": "All",
                                  "MessageAttributeName.1": "All"})
    assert r.status_code == 200, r.text
    msg = ET.fromstring(r.text).find("q:ReceiveMessageResult/q:Message", NS)
    assert msg.find("q:Body", NS).text == "raw body"
    names = [a.find("q:Name", NS).text for a in msg.findall("q:Attribute", NS)]
    assert "SentTimestamp" in names and "ApproximateReceiveCount" in names
    ma = msg.find("q:MessageAttribute", NS)
    assert ma.find("q:Name", NS).text == "k"
    assert ma.find("q:Value/q:StringValue", NS).text == "v"
    r = requests.post(url, auth=SIGNED, data={"Action": "DeleteMessage", "ReceiptHandle": "garbage"})
    assert r.status_code == 400
    err = ET.fromstring(r.text)
    assert err.find("q:Error/q:Code", NS).text == "ReceiptHandleIsInvalid"
    assert err.find("q:Error/q:Type", NS).text == "Sender"


def test_raw_query_errors_batches_and_hosts(endpoint):
    # Errors are XML with the query code, Sender type and HTTP 400.
    r = requests.get(endpoint + "/", auth=SIGNED, params={"Action": "GetQueueUrl", "QueueName": "raw-missing"})
    assert r.status_code == 400
    err = ET.fromstring(r.text)
    assert err.tag == "{%s}ErrorResponse" % NS["q"]
    assert err.find("q:Error/q:Code", NS).text == "AWS.SimpleQueueService.NonExistentQueue"
    assert err.find("q:Error/q:Message", NS).text == "The specified queue does not exist."
    assert err.find("q:Error/q:Type", NS).text == "Sender"
    assert err.find("q:RequestId", NS).text
    r = requests.post(endpoint + "/", auth=SIGNED, data={"Action": "CreateQueue", "QueueName": "raw-b",
                                            "Attribute.1.Name": "VisibilityTimeout", "Attribute.1.Value": "99999"})
    assert r.status_code == 400
    assert ET.fromstring(r.text).find("q:Error/q:Code", NS).text == "InvalidAttributeValue"
    r = requests.post(endpoint + "/", auth=SIGNED, data={"Action": "CreateQueue", "QueueName": "raw-b"})
    url = ET.fromstring(r.text).find("q:CreateQueueResult/q:QueueUrl", NS).text
    assert url == endpoint + "/000000000000/raw-b"
    # QueueUrl as a parameter, with a host name other than the one called.
    other = "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/raw-b"
    r = requests.post(endpoint + "/", auth=SIGNED, data={
        "Action": "SendMessageBatch", "QueueUrl": other,
        "SendMessageBatchRequestEntry.1.Id": "a", "SendMessageBatchRequestEntry.1.MessageBody": "one",
        "SendMessageBatchRequestEntry.2.Id": "b", "SendMessageBatchRequestEntry.2.MessageBody": "two",
        "SendMessageBatchRequestEntry.2.DelaySeconds": "0",
        "SendMessageBatchRequestEntry.3.Id": "c", "SendMessageBatchRequestEntry.3.MessageBody": "\x01"})
    assert r.status_code == 200, r.text
    res = ET.fromstring(r.text).find("q:SendMessageBatchResult", NS)
    ok = {e.find("q:Id", NS).text: e.find("q:MD5OfMessageBody", NS).text
          for e in res.findall("q:SendMessageBatchResultEntry", NS)}
    assert ok == {"a": "f97c5d29941bfb1b2fdab0874906ab82", "b": "b8a9f715dbb64fd5c56e7783c6820a61"}
    failed = res.findall("q:BatchResultErrorEntry", NS)
    assert [f.find("q:Id", NS).text for f in failed] == ["c"]
    assert failed[0].find("q:Code", NS).text == "InvalidMessageContents"
    assert failed[0].find("q:SenderFault", NS).text == "true"
    r = requests.get(url, auth=SIGNED, params={"Action": "GetQueueAttributes", "AttributeName.1": "ApproximateNumberOfMessages",
                                  "AttributeName.2": "VisibilityTimeout"})
    attrs = {a.find("q:Name", NS).text: a.find("q:Value", NS).text
             for a in ET.fromstring(r.text).findall("q:GetQueueAttributesResult/q:Attribute", NS)}
    assert attrs == {"ApproximateNumberOfMessages": "2", "VisibilityTimeout": "30"}
    r = requests.post(url, auth=SIGNED, data={"Action": "ReceiveMessage", "MaxNumberOfMessages": "10",
                                 "VisibilityTimeout": "0"})
    msgs = ET.fromstring(r.text).findall("q:ReceiveMessageResult/q:Message", NS)
    assert sorted(m.find("q:Body", NS).text for m in msgs) == ["one", "two"]
    for m in msgs:
        assert m.find("q:MD5OfBody", NS).text in ok.values()
        assert m.find("q:ReceiptHandle", NS).text and m.find("q:MessageId", NS).text
    r = requests.post(url, auth=SIGNED, data={"Action": "ReceiveMessage", "VisibilityTimeout": "43201"})
    assert r.status_code == 400
    assert ET.fromstring(r.text).find("q:Error/q:Code", NS).text == "InvalidParameterValue"
    r = requests.post(url, auth=SIGNED, data={"Action": "DeleteQueue"})
    assert r.status_code == 200
    r = requests.post(url, auth=SIGNED, data={"Action": "SendMessage", "MessageBody": "late"})
    assert r.status_code == 400
    assert ET.fromstring(r.text).find("q:Error/q:Code", NS).text == "AWS.SimpleQueueService.NonExistentQueue"
