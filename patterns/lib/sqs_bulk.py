#!/usr/bin/env python3
"""Many SQS messages from one process, for the pattern walk-throughs (patterns/NN-*/run.sh).

The aws CLI starts a Python interpreter for every call (most of a CPU second); sending or
reading a hundred messages 10 at a time that way costs more than everything else a
walk-through does. This does the same calls (SendMessageBatch, ReceiveMessage,
ChangeMessageVisibilityBatch) with boto3 in one process.

  sqs_bulk.py send QUEUE_URL [--endpoint-url URL] < LINES
      one message per line "BODY [NAME=VALUE ...]" (a body without blanks; NAME=VALUE
      become String message attributes), 10 per SendMessageBatch; prints
      "LINE MESSAGE_ID" per message (lines counted from 0)
  sqs_bulk.py peek QUEUE_URL COUNT [--endpoint-url URL]
      receives every message of the queue (up to COUNT; each once, as one is invisible
      while in flight), then makes them all visible again (ChangeMessageVisibilityBatch
      0): a look that leaves the queue as it was. Prints
      "MESSAGE_ID SENT_TIMESTAMP RECEIVE_COUNT BODY" per message.

Credentials and region come from the environment, as for the aws CLI. Exits 1 if a call
fails or an entry of a batch is refused.
"""
import argparse
import sys

import boto3


def batches(items, n=10):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def send(sqs, url, lines):
    entries = []
    for i, line in enumerate(lines):
        body, *attrs = line.split()
        e = {"Id": str(i), "MessageBody": body}
        if attrs:
            e["MessageAttributes"] = {k: {"DataType": "String", "StringValue": v}
                                      for k, v in (a.split("=", 1) for a in attrs)}
        entries.append(e)
    failed = 0
    for chunk in batches(entries):
        r = sqs.send_message_batch(QueueUrl=url, Entries=chunk)
        for ok in r.get("Successful", []):
            print(ok["Id"], ok["MessageId"])
        for bad in r.get("Failed", []):
            print(f"sqs_bulk: message {bad['Id']} refused: {bad.get('Code')} {bad.get('Message')}", file=sys.stderr)
            failed += 1
    return failed == 0


def peek(sqs, url, count):
    got = {}
    empty = 0
    while len(got) < count and empty < 2:
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"])
        msgs = r.get("Messages", [])
        empty = 0 if msgs else empty + 1
        for m in msgs:
            got.setdefault(m["MessageId"], m)
    failed = 0
    for chunk in batches(list(got.values())):
        r = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for i, m in enumerate(chunk)])
        failed += len(r.get("Failed", []))
    for m in got.values():
        a = m["Attributes"]
        print(m["MessageId"], a["SentTimestamp"], a["ApproximateReceiveCount"], m["Body"])
    if failed:
        print(f"sqs_bulk: {failed} message(s) not made visible again", file=sys.stderr)
    return failed == 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["send", "peek"])
    p.add_argument("queue_url")
    p.add_argument("count", type=int, nargs="?", default=0)
    p.add_argument("--endpoint-url")
    a = p.parse_args()
    sqs = boto3.client("sqs", endpoint_url=a.endpoint_url)
    if a.command == "send":
        done = send(sqs, a.queue_url, [line for line in sys.stdin.read().splitlines() if line.strip()])
    else:
        done = peek(sqs, a.queue_url, a.count)
    sys.exit(0 if done else 1)


if __name__ == "__main__":
    main()
