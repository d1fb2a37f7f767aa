"""SQS durability under kill -9: every acknowledged message survives, in-flight
messages stay hidden until their visibility timeout and then come back, FIFO
order and deduplication hold across a restart.

Each test runs its own `nimbus serve` on a fixed data directory (not the shared
ephemeral session server) so it can be killed and started again.
"""
import os
import threading
import time
import uuid

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from conftest import Server, make_client


@pytest.fixture
def server_dir(tmp_path):
    s = Server(data_dir=str(tmp_path / "data"))
    s.start()
    yield s
    s.stop()


def sqs_for(server):
    # A fresh client per server start: pooled connections die with the process.
    return make_client(server.endpoint, "sqs")


def restart(server):
    server.kill9()
    server.start()
    return sqs_for(server)


def drain(sqs, url, **kw):
    out = []
    while True:
        ms = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, **kw).get("Messages", [])
        if not ms:
            return out
        out.extend(ms)


def drain_deleting(sqs, url, **kw):
    """Receives and deletes until empty (a FIFO group stays blocked while its
    messages are in flight, so draining one must delete as it goes)."""
    out = []
    while True:
        ms = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, **kw).get("Messages", [])
        if not ms:
            return out
        out.extend(ms)
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(ms)])


def test_acknowledged_sends_survive_kill9_under_load(server_dir):
    sqs = sqs_for(server_dir)
    url = sqs.create_queue(QueueName="crash-load")["QueueUrl"]
    fifo = sqs.create_queue(QueueName="crash-load.fifo",
                            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    acked, acked_fifo = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(t):
        c = sqs_for(server_dir)
        i = 0
        while not stop.is_set():
            body = f"{t}-{i}"
            try:
                if i % 4 == 3:
                    r = c.send_message_batch(QueueUrl=url, Entries=[
                        {"Id": f"e{k}", "MessageBody": f"{body}-{k}"} for k in range(5)])
                    with lock:
                        acked.extend(s["MessageId"] for s in r.get("Successful", []))
                elif i % 4 == 2:
                    r = c.send_message(QueueUrl=fifo, MessageBody=body, MessageGroupId=f"g{t}")
                    with lock:
                        acked_fifo.append((f"g{t}", i, r["MessageId"]))
                else:
                    r = c.send_message(QueueUrl=url, MessageBody=body)
                    with lock:
                        acked.append(r["MessageId"])
            except (ClientError, BotoCoreError, OSError):
                return  # the server died under us: this send was not acknowledged
            i += 1

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    time.sleep(2.0)
    server_dir.kill9()
    stop.set()
    for th in threads:
        th.join(timeout=30)
    assert len(acked) > 100, "the load barely ran"

    server_dir.start()
    sqs = sqs_for(server_dir)
    got = {m["MessageId"] for m in drain(sqs, url, VisibilityTimeout=300)}
    missing = set(acked) - got
    assert not missing, f"{len(missing)} acknowledged messages lost of {len(acked)}"

    # FIFO: every acknowledged message is there, and each group is in send order.
    fifo_msgs = drain_deleting(sqs, fifo, MessageSystemAttributeNames=["MessageGroupId"])
    received_ids = {m["MessageId"] for m in fifo_msgs}
    assert {mid for _, _, mid in acked_fifo} <= received_ids
    by_group = {}
    for m in fifo_msgs:
        g = m["Attributes"]["MessageGroupId"]
        by_group.setdefault(g, []).append(int(m["Body"].split("-")[1]))
    for g, seq in by_group.items():
        assert seq == sorted(seq), f"group {g} out of order: {seq}"


def test_in_flight_messages_reappear_after_restart(server_dir):
    sqs = sqs_for(server_dir)
    url = sqs.create_queue(QueueName="crash-inflight")["QueueUrl"]
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    taken = drain(sqs, url, VisibilityTimeout=4)
    assert len(taken) == 5
    deadline = time.time() + 4
    sqs = restart(server_dir)
    if time.time() < deadline - 0.5:
        assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert a["ApproximateNumberOfMessagesNotVisible"] == "5"
    time.sleep(max(0, deadline - time.time()) + 0.3)
    back = drain(sqs, url, MessageSystemAttributeNames=["ApproximateReceiveCount"])
    assert sorted(m["Body"] for m in back) == [f"m{i}" for i in range(5)]
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "2" for m in back)
    # Receipt handles issued before the crash keep working for deletion.
    for m in taken:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                               "ApproximateNumberOfMessagesNotVisible"])
    assert a["Attributes"] == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_fifo_order_and_dedup_across_restart(server_dir):
    sqs = sqs_for(server_dir)
    url = sqs.create_queue(QueueName="crash-order.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sent = {}
    last_seq = 0
    for i in range(30):
        g = f"g{i % 3}"
        r = sqs.send_message(QueueUrl=url, MessageBody=f"{g}:{i}", MessageGroupId=g,
                             MessageDeduplicationId=f"d{i}")
        sent[f"d{i}"] = r["MessageId"]
        assert int(r["SequenceNumber"]) > last_seq
        last_seq = int(r["SequenceNumber"])
    # Consume the head of g0 and leave the next g0 message in flight.
    first = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["MessageGroupId"])["Messages"][0]
    assert first["Body"] == "g0:0"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    # The next receive takes the head of some group in flight across the crash.
    second = sqs.receive_message(QueueUrl=url, VisibilityTimeout=3)["Messages"][0]
    assert second["Body"] in {"g0:3", "g1:1", "g2:2"}
    deadline = time.time() + 3

    sqs = restart(server_dir)
    if time.time() < deadline - 0.5:
        # The group of the in-flight message stays blocked across the crash;
        # another group still delivers from its head, in order. (SQS may fill
        # a receive from one group only.)
        blocked = second["Body"].split(":")[0]
        peek = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
        assert peek and all(not m["Body"].startswith(blocked + ":") for m in peek)
        seen = {}
        for m in peek:
            g, i = m["Body"].split(":")
            seen.setdefault(g, []).append(int(i))
        heads = {"g0": 3, "g1": 1, "g2": 2}
        for g, got in seen.items():
            assert got == list(range(heads[g], heads[g] + 3 * len(got), 3)), (g, got)
    # The deduplication window survives: same id, same MessageId, nothing new.
    r = sqs.send_message(QueueUrl=url, MessageBody="dup", MessageGroupId="g1", MessageDeduplicationId="d4")
    assert r["MessageId"] == sent["d4"]
    r = sqs.send_message(QueueUrl=url, MessageBody="g2:new", MessageGroupId="g2", MessageDeduplicationId="dnew")
    assert int(r["SequenceNumber"]) > last_seq
    time.sleep(3.3)
    got = drain_deleting(sqs, url)
    bodies = [m["Body"] for m in got]
    assert "dup" not in bodies
    by_group = {}
    for b in bodies:
        g, i = b.split(":")
        by_group.setdefault(g, []).append(i)
    assert by_group["g0"] == [str(i) for i in range(3, 30, 3)]
    assert by_group["g1"] == [str(i) for i in range(1, 30, 3)]
    assert by_group["g2"] == [str(i) for i in range(2, 30, 3)] + ["new"]


def test_queue_state_survives_restart(server_dir):
    sqs = sqs_for(server_dir)
    url = sqs.create_queue(QueueName="crash-meta", Attributes={"VisibilityTimeout": "77", "DelaySeconds": "0"},
                           tags={"k": "v"})["QueueUrl"]
    gone = sqs.create_queue(QueueName="crash-gone")["QueueUrl"]
    sqs.delete_queue(QueueUrl=gone)
    sqs.send_message(QueueUrl=url, MessageBody="kept", DelaySeconds=2)
    sqs = restart(server_dir)
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"] == {
        "VisibilityTimeout": "77"}
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"k": "v"}
    with pytest.raises(ClientError):
        sqs.get_queue_url(QueueName="crash-gone")
    time.sleep(2.2)
    assert [m["Body"] for m in drain(sqs, url)] == ["kept"]
