"""A data directory written by the previous release opens in this one with
everything in it (issue 11: "a data directory written by the current main is
migrated on first start, never stranded").

fixtures/previous-release-data.tar.gz was made by nimbus at commit e55e7d4 (main
before issue 11's store changes) and then killed with SIGKILL right after its
last two writes, so its write-ahead log still holds frames to replay:

- S3: bucket old-bucket with small.txt (inline body, text/plain, metadata m=1),
  dir/large.bin (10,240 bytes, a body file), last.txt (the write before the
  kill) and an upload in progress of key "pending" with one 5 MiB part; bucket
  old-versions (versioning on) with two versions of k (v1, v2) and a delete
  marker for "gone".
- SQS: old-queue with six messages ("old message 0".."4" with a Number
  attribute n, and "old message last"), one of them received once; old.fifo with
  "fifo 0".."fifo 2" in group g.
"""
import os
import tarfile

from conftest import Server, make_client
from s3_helpers import make_s3

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "previous-release-data.tar.gz")
V1, V2 = "lrZ0uRzrc0DhaLPmkw.bh4ePIwjnVeLy", "wEVS1O06mj0XFebveTD46k3hrpGJn9oz"


def check_everything(endpoint, first):
    s3 = make_s3(endpoint)
    small = s3.get_object(Bucket="old-bucket", Key="small.txt")
    assert small["Body"].read() == b"small body"
    assert small["ContentType"] == "text/plain" and small["Metadata"] == {"m": "1"}
    assert s3.get_object(Bucket="old-bucket", Key="dir/large.bin")["Body"].read() == bytes(range(256)) * 40
    assert s3.get_object(Bucket="old-bucket", Key="last.txt")["Body"].read() == b"written just before the crash"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="old-bucket")["Contents"]]
    assert listed == ["dir/large.bin", "last.txt", "small.txt"]
    uploads = s3.list_multipart_uploads(Bucket="old-bucket")["Uploads"]
    assert [u["Key"] for u in uploads] == ["pending"]
    parts = s3.list_parts(Bucket="old-bucket", Key="pending", UploadId=uploads[0]["UploadId"])["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * 1024 * 1024)]
    versions = s3.list_object_versions(Bucket="old-versions")
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in versions["Versions"]] == [
        ("k", V2, True), ("k", V1, False)]
    assert [m["Key"] for m in versions["DeleteMarkers"]] == ["gone"]
    assert s3.get_object(Bucket="old-versions", Key="k", VersionId=V1)["Body"].read() == b"v1"

    if first:
        # A rewrite of a record of the earlier layout (its body after its JSON)
        # keeps the body: tagging rewrites the record, the body moves to its table.
        s3.put_object_tagging(Bucket="old-bucket", Key="small.txt",
                              Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})
        assert s3.get_object(Bucket="old-bucket", Key="small.txt")["Body"].read() == b"small body"
    assert s3.get_object_tagging(Bucket="old-bucket", Key="small.txt")["TagSet"] == [
        {"Key": "t", "Value": "1"}]

    sqs = make_client(endpoint, "sqs")
    url = sqs.get_queue_url(QueueName="old-queue")["QueueUrl"]
    if first:
        bodies = {}
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1,
                                      MessageAttributeNames=["All"], AttributeNames=["All"])
            if not got.get("Messages"):
                break
            for m in got["Messages"]:
                bodies[m["Body"]] = m
        assert sorted(bodies) == ["old message 0", "old message 1", "old message 2",
                                  "old message 3", "old message 4", "old message last"]
        assert bodies["old message 3"]["MessageAttributes"]["n"] == {"DataType": "Number", "StringValue": "3"}
        assert sum(int(m["Attributes"]["ApproximateReceiveCount"]) for m in bodies.values()) == 7
        fifo = sqs.get_queue_url(QueueName="old.fifo")["QueueUrl"]
        got = sqs.receive_message(QueueUrl=fifo, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in got] == ["fifo 0", "fifo 1", "fifo 2"]
    else:
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        total = sum(int(attrs[a]) for a in ("ApproximateNumberOfMessages",
                                             "ApproximateNumberOfMessagesNotVisible"))
        assert total == 6


def test_a_data_directory_of_the_previous_release_opens_with_everything(tmp_path):
    with tarfile.open(FIXTURE) as t:
        t.extractall(tmp_path, filter="data")
    server = Server(data_dir=str(tmp_path / "data"))
    server.start()
    try:
        check_everything(server.endpoint, first=True)
        # And again after a restart of this release on the migrated directory.
        server.stop()
        server.start()
        check_everything(server.endpoint, first=False)
    finally:
        server.stop()
