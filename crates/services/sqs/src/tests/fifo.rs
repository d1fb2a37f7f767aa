//! FIFO queues: groups, ordering, blocking, deduplication, sequence numbers.

use super::*;
use serde_json::json;

#[tokio::test]
async fn fifo_send_requirements() {
    let h = Harness::new();
    let url = h.create_fifo("req.fifo", json!({})).await;
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x" }),
        )
        .await;
    assert_err(
        &e,
        "MissingParameter",
        "The request must contain the parameter MessageGroupId.",
    );
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x", "MessageGroupId": "g" }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
    );
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "d", "DelaySeconds": 2 }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Value 2 for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type.",
    );
    h.ok(
        "SendMessage",
        json!({ "QueueUrl": url, "MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": "d", "DelaySeconds": 0 }),
    )
    .await;
    let long = "a".repeat(129);
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": long }),
        )
        .await;
    assert_eq!(
        e.message,
        format!("Value {long} for parameter MessageDeduplicationId is invalid. Reason: MessageDeduplicationId can only include alphanumeric and punctuation characters. 1 to 128 in length.")
    );
    // Batches are refused as a whole when an entry lacks group or dedup id.
    let e = h
        .err(
            "SendMessageBatch",
            json!({ "QueueUrl": url, "Entries": [{ "Id": "a", "MessageBody": "x", "MessageDeduplicationId": "1" }] }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "The request must contain the parameter MessageGroupId.",
    );
    let e = h
        .err(
            "SendMessageBatch",
            json!({ "QueueUrl": url, "Entries": [{ "Id": "a", "MessageBody": "x", "MessageGroupId": "g" }] }),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
}

#[tokio::test]
async fn fifo_order_within_groups_and_blocking() {
    let h = Harness::new();
    let url = h
        .create_fifo("order.fifo", json!({ "ContentBasedDeduplication": "true" }))
        .await;
    let mut seqs = Vec::new();
    for (body, g) in [
        ("g1-m1", "1"),
        ("g1-m2", "1"),
        ("g2-m1", "2"),
        ("g2-m2", "2"),
        ("g1-m3", "1"),
    ] {
        let v = h
            .ok(
                "SendMessage",
                json!({ "QueueUrl": url, "MessageBody": body, "MessageGroupId": g }),
            )
            .await;
        let s = v["SequenceNumber"].as_str().unwrap().to_string();
        assert_eq!(s.len(), 20);
        seqs.push(s);
    }
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(seqs, sorted, "sequence numbers increase");

    // One message of group 1: the rest of group 1 is held back while it is in flight.
    let m1 = h
        .receive(&url, json!({ "AttributeNames": ["All"] }))
        .await
        .remove(0);
    assert_eq!(m1["Body"], "g1-m1");
    assert_eq!(m1["Attributes"]["MessageGroupId"], "1");
    assert_eq!(m1["Attributes"]["SequenceNumber"], seqs[0].as_str());
    assert_eq!(
        m1["Attributes"]["MessageDeduplicationId"],
        sha256_hex("g1-m1").as_str()
    );
    assert_eq!(
        h.bodies(&url, json!({ "MaxNumberOfMessages": 10 })).await,
        ["g2-m1", "g2-m2"]
    );
    assert!(h
        .receive(&url, json!({ "MaxNumberOfMessages": 10 }))
        .await
        .is_empty());
    assert_eq!(h.counts(&url).await, (2, 3, 0));
    h.ok(
        "DeleteMessage",
        json!({ "QueueUrl": url, "ReceiptHandle": m1["ReceiptHandle"] }),
    )
    .await;
    assert_eq!(
        h.bodies(&url, json!({ "MaxNumberOfMessages": 10 })).await,
        ["g1-m2", "g1-m3"]
    );

    // After the visibility timeout, group 2 comes back in order.
    h.advance(31_000);
    let all = h.bodies(&url, json!({ "MaxNumberOfMessages": 10 })).await;
    assert_eq!(all.len(), 4);
    let g2: Vec<&String> = all.iter().filter(|b| b.starts_with("g2")).collect();
    let g1: Vec<&String> = all.iter().filter(|b| b.starts_with("g1")).collect();
    assert_eq!(g2, ["g2-m1", "g2-m2"]);
    assert_eq!(g1, ["g1-m2", "g1-m3"]);
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

#[tokio::test]
async fn fifo_visibility_extension_holds_later_messages() {
    let h = Harness::new();
    let url = h
        .create_fifo("ext.fifo", json!({ "VisibilityTimeout": "1" }))
        .await;
    for b in ["foo", "bar", "baz"] {
        h.send_fifo(&url, b, "1", b).await;
    }
    let ms = h.receive(&url, json!({ "MaxNumberOfMessages": 5 })).await;
    assert_eq!(ms.len(), 3);
    h.ok(
        "ChangeMessageVisibility",
        json!({ "QueueUrl": url, "ReceiptHandle": ms[1]["ReceiptHandle"], "VisibilityTimeout": 4 }),
    )
    .await;
    h.advance(2_500);
    // "foo" is visible again; "bar" is still in flight and holds back "baz".
    assert_eq!(
        h.bodies(&url, json!({ "MaxNumberOfMessages": 5 })).await,
        ["foo"]
    );
}

#[tokio::test]
async fn fifo_deduplication_window() {
    let h = Harness::new();
    let url = h.create_fifo("dedup.fifo", json!({})).await;
    let a = h.send_fifo(&url, "first", "g", "same").await;
    let b = h.send_fifo(&url, "second", "g", "same").await;
    assert_eq!(a["MessageId"], b["MessageId"]);
    assert_eq!(a["SequenceNumber"], b["SequenceNumber"]);
    assert_eq!(b["MD5OfMessageBody"], message_md5("second"));
    // Another group with the same id is a duplicate too (queue scope).
    let c = h.send_fifo(&url, "third", "other", "same").await;
    assert_eq!(a["MessageId"], c["MessageId"]);
    assert_eq!(h.counts(&url).await, (1, 0, 0));
    // Deleting the message does not end the window.
    let m = h.receive(&url, json!({})).await.remove(0);
    h.ok(
        "DeleteMessage",
        json!({ "QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"] }),
    )
    .await;
    h.send_fifo(&url, "again", "g", "same").await;
    assert_eq!(h.counts(&url).await, (0, 0, 0));
    h.advance(5 * 60 * 1000 + 1);
    let d = h.send_fifo(&url, "after window", "g", "same").await;
    assert_ne!(d["MessageId"], a["MessageId"]);
    assert_eq!(h.bodies(&url, json!({})).await, ["after window"]);

    // Batch entries deduplicate against each other as well.
    let v = h
        .ok(
            "SendMessageBatch",
            json!({ "QueueUrl": url, "Entries": [
                { "Id": "a", "MessageBody": "x", "MessageGroupId": "b", "MessageDeduplicationId": "bd" },
                { "Id": "b", "MessageBody": "y", "MessageGroupId": "b", "MessageDeduplicationId": "bd" }
            ] }),
        )
        .await;
    assert_eq!(
        v["Successful"][0]["MessageId"],
        v["Successful"][1]["MessageId"]
    );
}

fn message_md5(s: &str) -> String {
    crate::message::md5_hex(s.as_bytes())
}

#[tokio::test]
async fn fifo_content_based_and_group_scoped_dedup() {
    let h = Harness::new();
    let url = h
        .create_fifo("cbd.fifo", json!({ "ContentBasedDeduplication": "true" }))
        .await;
    for _ in 0..3 {
        h.ok(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "{\"foo\":\"bar\"}", "MessageGroupId": "g" }),
        )
        .await;
    }
    assert_eq!(h.counts(&url).await, (1, 0, 0));
    // An explicit id overrides the content hash.
    h.ok(
        "SendMessage",
        json!({ "QueueUrl": url, "MessageBody": "{\"foo\":\"bar\"}", "MessageGroupId": "g", "MessageDeduplicationId": "x" }),
    )
    .await;
    assert_eq!(h.counts(&url).await, (2, 0, 0));

    let hp = h
        .create_fifo(
            "hp.fifo",
            json!({ "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId" }),
        )
        .await;
    h.send_fifo(&hp, "Test1", "g1", "same").await;
    h.send_fifo(&hp, "Test2", "g2", "same").await;
    h.send_fifo(&hp, "Test3", "g2", "same").await;
    assert_eq!(h.counts(&hp).await, (2, 0, 0));
}

#[tokio::test]
async fn fifo_expired_receipt_cannot_delete() {
    let h = Harness::new();
    let url = h
        .create_fifo("exp.fifo", json!({ "VisibilityTimeout": "2" }))
        .await;
    h.send_fifo(&url, "foobar", "g", "d").await;
    let m = h.receive(&url, json!({})).await.remove(0);
    let rh = m["ReceiptHandle"].as_str().unwrap().to_string();
    h.advance(2_500);
    let e = h
        .err(
            "DeleteMessage",
            json!({ "QueueUrl": url, "ReceiptHandle": rh }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        &format!("Value {rh} for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."),
    );
    assert_eq!(h.counts(&url).await, (1, 0, 0));
    // Extending before expiry keeps the handle valid.
    let m = h.receive(&url, json!({})).await.remove(0);
    h.ok(
        "ChangeMessageVisibility",
        json!({ "QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 10 }),
    )
    .await;
    h.advance(2_500);
    h.ok(
        "DeleteMessage",
        json!({ "QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"] }),
    )
    .await;
    assert_eq!(h.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn fifo_receive_request_attempt_id_replays() {
    let h = Harness::new();
    let url = h.create_fifo("att.fifo", json!({})).await;
    for i in 0..4 {
        h.send_fifo(&url, &format!("m{i}"), "g", &format!("d{i}"))
            .await;
    }
    let a = h
        .receive(
            &url,
            json!({ "MaxNumberOfMessages": 2, "ReceiveRequestAttemptId": "try-1" }),
        )
        .await;
    let b = h
        .receive(
            &url,
            json!({ "MaxNumberOfMessages": 2, "ReceiveRequestAttemptId": "try-1" }),
        )
        .await;
    assert_eq!(a, b, "a retried attempt gets the same messages and handles");
    assert_eq!(a.len(), 2);
    h.ok(
        "DeleteMessage",
        json!({ "QueueUrl": url, "ReceiptHandle": a[0]["ReceiptHandle"] }),
    )
    .await;
    h.ok(
        "DeleteMessage",
        json!({ "QueueUrl": url, "ReceiptHandle": a[1]["ReceiptHandle"] }),
    )
    .await;
    let c = h
        .receive(
            &url,
            json!({ "MaxNumberOfMessages": 2, "ReceiveRequestAttemptId": "try-1" }),
        )
        .await;
    assert_eq!(c[0]["Body"], "m2");
}

#[tokio::test]
async fn fifo_queue_delay_applies_to_every_message() {
    let h = Harness::new();
    let url = h
        .create_fifo(
            "d.fifo",
            json!({ "ContentBasedDeduplication": "true", "DelaySeconds": "2" }),
        )
        .await;
    h.ok("SendMessage", json!({ "QueueUrl": url, "MessageBody": "message-1", "MessageGroupId": "1", "DelaySeconds": 0 }))
        .await;
    assert!(h.receive(&url, json!({})).await.is_empty());
    assert_eq!(h.counts(&url).await, (0, 0, 1));
    h.advance(2_001);
    assert_eq!(h.bodies(&url, json!({})).await, ["message-1"]);
}

/// Deduplication ids live in the store once their send is durable (memory
/// holds none), and the sweep of expired ones keeps pace with the sends.
#[tokio::test]
async fn dedup_ids_live_in_the_store_and_their_sweep_keeps_pace() {
    let h = Harness::new();
    let url = h.create_fifo("swept.fifo", json!({})).await;
    let send_batch = |round: usize| {
        let entries: Vec<Value> = (0..10)
            .map(|i| json!({ "Id": i.to_string(), "MessageBody": "x", "MessageGroupId": "g", "MessageDeduplicationId": format!("r{round}-{i}") }))
            .collect();
        h.ok(
            "SendMessageBatch",
            json!({ "QueueUrl": url, "Entries": entries }),
        )
    };
    for round in 0..300 {
        send_batch(round).await;
    }
    let q = h.sqs.inner.queue_by_arn(&h.arn(&url).await).unwrap();
    assert_eq!(q.lock().dedup_in_memory(), 0);
    let dup = h.send_fifo(&url, "again", "g", "r7-3").await;
    assert_eq!(q.lock().counts().0, 3000, "{dup}");
    let dedup_records = |h: &Harness| {
        h.sqs
            .inner
            .store
            .scan_prefix(crate::state::DEDUP, b"")
            .unwrap()
            .len()
    };
    assert_eq!(dedup_records(&h), 3000);
    // Past the window, sends carry on: the old ids' records go as they do.
    h.advance(301_000);
    for round in 300..500 {
        send_batch(round).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(dedup_records(&h), 2000);
    // An expired id is a new send again.
    h.send_fifo(&url, "again", "g", "r7-3").await;
    assert_eq!(q.lock().counts().0, 5001);
}
