//! State survives closing and reopening the store: queues with their
//! attributes and tags, messages, in-flight deadlines, receive counts, FIFO
//! order, deduplication ids, sequence numbers, deletions and move tasks.

use super::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn queues_and_messages_survive_reopen() {
    let h = Harness::new();
    let url = h
        .ok(
            "CreateQueue",
            json!({ "QueueName": "keep", "Attributes": { "VisibilityTimeout": "100", "DelaySeconds": "0" }, "tags": { "k": "v" } }),
        )
        .await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let created = h.attr(&url, "CreatedTimestamp").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(h.send(&url, &format!("m{i}")).await["MessageId"].clone());
    }
    h.ok(
        "SendMessage",
        json!({ "QueueUrl": url, "MessageBody": "attrs", "MessageAttributes": { "b": { "DataType": "Binary", "BinaryValue": "AAEC" } } }),
    )
    .await;
    let inflight = h.receive(&url, json!({ "MaxNumberOfMessages": 2 })).await;
    assert_eq!(inflight.len(), 2);
    let gone = h.create("gone", json!({})).await;
    h.ok("DeleteQueue", json!({ "QueueUrl": gone })).await;
    h.ok("AddPermission", json!({ "QueueUrl": url, "Label": "l", "AWSAccountIds": ["1"], "Actions": ["SendMessage"] }))
        .await;

    let h = h.reopen().await;
    assert_eq!(h.counts(&url).await, (4, 2, 0));
    assert_eq!(
        h.attr(&url, "VisibilityTimeout").await.as_deref(),
        Some("100")
    );
    assert_eq!(h.attr(&url, "CreatedTimestamp").await, created);
    assert!(h
        .attr(&url, "Policy")
        .await
        .unwrap()
        .contains("SQS:SendMessage"));
    assert_eq!(
        h.ok("ListQueueTags", json!({ "QueueUrl": url })).await,
        json!({ "Tags": { "k": "v" } })
    );
    let e = h.err("GetQueueUrl", json!({ "QueueName": "gone" })).await;
    assert_eq!(e.code, "QueueDoesNotExist");
    let e = h.err("CreateQueue", json!({ "QueueName": "gone" })).await;
    assert_eq!(e.code, "QueueDeletedRecently");

    // Handles issued before the restart still work.
    h.ok(
        "ChangeMessageVisibility",
        json!({ "QueueUrl": url, "ReceiptHandle": inflight[0]["ReceiptHandle"], "VisibilityTimeout": 0 }),
    )
    .await;
    h.ok(
        "DeleteMessage",
        json!({ "QueueUrl": url, "ReceiptHandle": inflight[1]["ReceiptHandle"] }),
    )
    .await;
    let ms = h
        .receive(&url, json!({ "MaxNumberOfMessages": 10, "AttributeNames": ["ApproximateReceiveCount"], "MessageAttributeNames": ["All"] }))
        .await;
    assert_eq!(ms.len(), 5);
    let again = ms
        .iter()
        .find(|m| m["MessageId"] == inflight[0]["MessageId"])
        .unwrap();
    assert_eq!(again["Attributes"]["ApproximateReceiveCount"], "2");
    let with_attrs = ms.iter().find(|m| m["Body"] == "attrs").unwrap();
    assert_eq!(with_attrs["MessageAttributes"]["b"]["BinaryValue"], "AAEC");
    let got: std::collections::HashSet<String> = ms
        .iter()
        .map(|m| m["MessageId"].as_str().unwrap().to_string())
        .collect();
    for id in ids.iter().filter(|id| **id != inflight[1]["MessageId"]) {
        assert!(got.contains(id.as_str().unwrap()));
    }
}

#[tokio::test]
async fn in_flight_messages_stay_hidden_until_their_deadline() {
    let h = Harness::new();
    let url = h.create("vis", json!({})).await;
    h.send(&url, "hidden").await;
    h.receive(&url, json!({ "VisibilityTimeout": 2 })).await;
    let h = h.reopen().await;
    assert_eq!(h.counts(&url).await, (0, 1, 0));
    assert!(h.receive(&url, json!({})).await.is_empty());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(h.bodies(&url, json!({})).await, ["hidden"]);
}

#[tokio::test]
async fn fifo_order_dedup_and_sequence_survive_reopen() {
    let h = Harness::new();
    let url = h.create_fifo("f.fifo", json!({})).await;
    let mut last_seq = String::new();
    let mut first_id = Value::Null;
    for i in 0..6 {
        let g = if i % 2 == 0 { "even" } else { "odd" };
        let v = h
            .send_fifo(&url, &format!("{g}-{i}"), g, &format!("d{i}"))
            .await;
        if i == 0 {
            first_id = v["MessageId"].clone();
        }
        last_seq = v["SequenceNumber"].as_str().unwrap().to_string();
    }
    // Take one "even" message in flight, then restart.
    let m = h.receive(&url, json!({})).await.remove(0);
    assert_eq!(m["Body"], "even-0");

    let h = h.reopen().await;
    let dup = h.send_fifo(&url, "dup", "even", "d0").await;
    assert_eq!(dup["MessageId"], first_id, "dedup ids persist");
    // "even" is still blocked by its in-flight head; "odd" comes in order.
    assert_eq!(
        h.bodies(&url, json!({ "MaxNumberOfMessages": 10 })).await,
        ["odd-1", "odd-3", "odd-5"]
    );
    h.ok(
        "DeleteMessage",
        json!({ "QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"] }),
    )
    .await;
    assert_eq!(
        h.bodies(&url, json!({ "MaxNumberOfMessages": 10 })).await,
        ["even-2", "even-4"]
    );
    // Sequence numbers keep increasing across restarts, even when the queue
    // was emptied before.
    h.advance(31_000);
    h.ok("PurgeQueue", json!({ "QueueUrl": url })).await;
    let h = h.reopen().await;
    let v = h.send_fifo(&url, "later", "x", "later").await;
    assert!(v["SequenceNumber"].as_str().unwrap() > last_seq.as_str());
}

#[tokio::test]
async fn move_tasks_resume_after_reopen() {
    let h = Harness::new();
    let dlq = h.create("dead", json!({})).await;
    let dlq_arn = h.arn(&dlq).await;
    let src = h
        .create(
            "source",
            json!({ "RedrivePolicy": json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1 }).to_string() }),
        )
        .await;
    for i in 0..4 {
        h.send(&src, &format!("m{i}")).await;
    }
    h.receive(
        &src,
        json!({ "MaxNumberOfMessages": 10, "VisibilityTimeout": 0 }),
    )
    .await;
    h.receive(&src, json!({ "MaxNumberOfMessages": 10 })).await;
    assert_eq!(h.counts(&dlq).await.0, 4);
    h.ok(
        "StartMessageMoveTask",
        json!({ "SourceArn": dlq_arn, "MaxNumberOfMessagesPerSecond": 2 }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let h = h.reopen().await;
    let v = h
        .ok("ListMessageMoveTasks", json!({ "SourceArn": dlq_arn }))
        .await;
    assert_eq!(v["Results"][0]["Status"], "RUNNING");
    let mut done = false;
    for _ in 0..100 {
        let v = h
            .ok("ListMessageMoveTasks", json!({ "SourceArn": dlq_arn }))
            .await;
        if v["Results"][0]["Status"] == "COMPLETED" {
            assert_eq!(v["Results"][0]["ApproximateNumberOfMessagesMoved"], 4);
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done);
    assert_eq!(h.counts(&src).await.0, 4);
    assert_eq!(h.counts(&dlq).await.0, 0);
}

#[tokio::test]
async fn expired_messages_are_dropped_at_load() {
    let h = Harness::new();
    let url = h
        .create("ret", json!({ "MessageRetentionPeriod": "60" }))
        .await;
    h.send(&url, "old").await;
    let offset = 61_000;
    let h = h.reopen().await;
    h.advance(offset);
    assert_eq!(h.counts(&url).await, (0, 0, 0));
    // The deletion rides along with the next write.
    h.send(&url, "new").await;
    let path = h.path();
    drop(h.sqs);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let store = super::open_store(&path);
    let msgs = store.scan_prefix(crate::state::MESSAGES, b"").unwrap();
    assert_eq!(msgs.len(), 1);
}

/// A standard queue opens on its stored count and the state records of its
/// hidden messages, without reading its backlog; a queue stored before there were
/// count records is counted once and gets one.
#[tokio::test]
async fn a_standard_queue_opens_on_its_count_and_hidden_index() {
    let h = Harness::new();
    let url = h.create("deep", json!({})).await;
    for i in 0..47 {
        h.send(&url, &format!("m{i:02}")).await;
    }
    for i in 0..3 {
        h.ok(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": format!("late{i}"), "DelaySeconds": 2 }),
        )
        .await;
    }
    let taken = h
        .receive(
            &url,
            json!({ "MaxNumberOfMessages": 5, "VisibilityTimeout": 100 }),
        )
        .await;
    assert_eq!(taken.len(), 5);
    for m in &taken[..2] {
        h.ok(
            "DeleteMessage",
            json!({ "QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"] }),
        )
        .await;
    }
    assert_eq!(h.counts(&url).await, (42, 3, 3));

    let h = h.reopen().await;
    assert_eq!(h.counts(&url).await, (42, 3, 3));
    let store = h.sqs.inner.store.clone();
    let id = h
        .sqs
        .inner
        .queue_by_arn(&h.arn(&url).await)
        .unwrap()
        .id_hex
        .clone();
    let count: crate::state::CountRecord = serde_json::from_slice(
        &store
            .get(crate::state::COUNTS, id.as_bytes())
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(count.n, 48);

    // As a queue of the previous format: no count record, and state records
    // without the message's id (a delay had none).
    let mut batch = nimbus_store::Batch::new();
    batch.delete(crate::state::COUNTS, id.clone().into_bytes());
    for (k, v) in store
        .scan_prefix(crate::state::MESSAGE_STATE, format!("{id}/").as_bytes())
        .unwrap()
    {
        let r: crate::state::StateRecord = serde_json::from_slice(&v).unwrap();
        if r.d {
            batch.delete(crate::state::MESSAGE_STATE, k);
        } else {
            let old = json!({ "v": 1, "rc": r.rc, "fr": r.fr, "lr": r.lr, "vis": r.vis });
            batch.put(crate::state::MESSAGE_STATE, k, old.to_string());
        }
    }
    store.commit(batch).await.unwrap();
    drop(store);
    let h = h.reopen().await;
    assert_eq!(h.counts(&url).await, (42, 3, 3));
    let store = h.sqs.inner.store.clone();
    // Counted once, then stored (the write goes with the first use).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(store
        .get(crate::state::COUNTS, id.as_bytes())
        .unwrap()
        .is_some());
    let states = store
        .scan_prefix(crate::state::MESSAGE_STATE, format!("{id}/").as_bytes())
        .unwrap();
    let rewritten = states
        .iter()
        .filter(|(_, v)| {
            serde_json::from_slice::<crate::state::StateRecord>(v)
                .unwrap()
                .id
                .is_some()
        })
        .count();
    assert_eq!(rewritten, 6);
    drop(store);

    // Every message comes out once: the in-flight ones only after the reopen
    // showed them hidden, the delayed ones once their delay is over.
    let h = h.reopen().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut bodies = Vec::new();
    loop {
        let got = h
            .bodies(
                &url,
                json!({ "MaxNumberOfMessages": 10, "VisibilityTimeout": 100 }),
            )
            .await;
        if got.is_empty() {
            break;
        }
        bodies.extend(got);
    }
    bodies.sort();
    let mut want: Vec<String> = (5..47).map(|i| format!("m{i:02}")).collect();
    want.extend((0..3).map(|i| format!("late{i}")));
    want.sort();
    assert_eq!(bodies, want);
    assert_eq!(h.counts(&url).await, (0, 48, 0));
}

async fn send_many(h: &Harness, url: &str, n: usize) {
    for start in (0..n).step_by(10) {
        let entries: Vec<Value> = (start..(start + 10).min(n))
            .map(|i| json!({ "Id": format!("e{i}"), "MessageBody": format!("m{i}") }))
            .collect();
        h.ok(
            "SendMessageBatch",
            json!({ "QueueUrl": url, "Entries": entries }),
        )
        .await;
    }
}

async fn records_of(h: &Harness, table: &str) -> usize {
    h.sqs.inner.store.scan_prefix(table, b"").unwrap().len()
}

/// A purge of a deep standard queue is instant; its records go in bounded
/// batches in the background, and a restart in between neither shows them
/// nor forgets them. DeleteQueue and a reset do the same with whole queues.
#[tokio::test]
async fn deep_purges_and_deletes_go_in_bounded_batches() {
    let h = Harness::new();
    let url = h.create("deep", json!({})).await;
    send_many(&h, &url, 12_005).await;
    h.receive(
        &url,
        json!({ "MaxNumberOfMessages": 5, "VisibilityTimeout": 100 }),
    )
    .await;
    assert_eq!(h.counts(&url).await, (12_000, 5, 0));
    // The background deletion is held back, as if the process stopped first.
    h.sqs
        .inner
        .halted
        .store(true, std::sync::atomic::Ordering::SeqCst);
    h.ok("PurgeQueue", json!({ "QueueUrl": url })).await;
    assert_eq!(h.counts(&url).await, (0, 0, 0));
    h.send(&url, "after").await;
    assert_eq!(h.counts(&url).await, (1, 0, 0));

    assert!(records_of(&h, crate::state::MESSAGES).await > 12_000);
    // Reopened: the purged records stay gone, and their deletion resumes.
    let h = h.reopen().await;
    assert_eq!(h.counts(&url).await, (1, 0, 0));
    let mut cleared = false;
    for _ in 0..200 {
        h.ok("ListQueues", json!({})).await; // resumes what the stop cut short
        if records_of(&h, crate::state::MESSAGES).await == 1 {
            cleared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cleared, "purged records were not deleted");
    assert_eq!(h.bodies(&url, json!({})).await, ["after"]);
    let h = h.reopen().await;
    assert_eq!(h.counts(&url).await, (0, 1, 0));

    // DeleteQueue of a deep queue.
    let other = h.create("other", json!({})).await;
    send_many(&h, &other, 10_500).await;
    h.ok("DeleteQueue", json!({ "QueueUrl": other })).await;
    let mut cleared = false;
    for _ in 0..200 {
        if records_of(&h, crate::state::MESSAGES).await == 1
            && records_of(&h, crate::state::DROPPED).await == 0
        {
            cleared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cleared, "a deleted queue's records were not deleted");

    // A reset leaves nothing behind.
    let third = h.create("third", json!({})).await;
    send_many(&h, &third, 10_200).await;
    h.sqs.reset().await.unwrap();
    for table in [
        crate::state::QUEUES,
        crate::state::MESSAGES,
        crate::state::MESSAGE_STATE,
        crate::state::COUNTS,
        crate::state::DROPPED,
    ] {
        assert_eq!(records_of(&h, table).await, 0, "{table}");
    }
}

/// Every body a queue delivers until it is empty, deleting as it goes.
async fn drain(h: &Harness, url: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let batch = h
            .receive(
                url,
                json!({ "MaxNumberOfMessages": 10, "VisibilityTimeout": 100 }),
            )
            .await;
        if batch.is_empty() {
            return got;
        }
        for m in batch {
            got.push(m["Body"].as_str().unwrap().to_string());
            h.ok(
                "DeleteMessage",
                json!({ "QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"] }),
            )
            .await;
        }
    }
}

/// A FIFO queue keeps only its hidden messages in memory: its first use
/// after a restart reads the count and the state records, and its groups'
/// messages are read from the store in order as their turns come, also past
/// a group held back by messages in flight. A queue of the previous format
/// (no count record, no group order) is read once and given both.
#[tokio::test]
async fn a_fifo_queue_opens_on_its_count_and_reads_groups_in_turn() {
    let h = Harness::new();
    let url = h
        .create_fifo("deep.fifo", json!({ "ContentBasedDeduplication": "true" }))
        .await;
    for i in 0..30 {
        for g in ["a", "b", "c"] {
            h.ok(
                "SendMessage",
                json!({ "QueueUrl": url, "MessageBody": format!("{g}{i:02}"), "MessageGroupId": g }),
            )
            .await;
        }
    }
    for i in 0..20 {
        h.ok(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": format!("u{i:02}"), "MessageGroupId": format!("u{i:02}") }),
        )
        .await;
    }
    let taken = h
        .receive(
            &url,
            json!({ "MaxNumberOfMessages": 10, "VisibilityTimeout": 100 }),
        )
        .await;
    let bodies: Vec<&str> = taken.iter().map(|m| m["Body"].as_str().unwrap()).collect();
    assert_eq!(
        bodies,
        (0..10).map(|i| format!("a{i:02}")).collect::<Vec<_>>()
    );
    for m in &taken[..4] {
        h.ok(
            "DeleteMessage",
            json!({ "QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"] }),
        )
        .await;
    }
    assert_eq!(h.counts(&url).await, (100, 6, 0));

    let h = h.reopen().await;
    let q = h.sqs.inner.queue_by_arn(&h.arn(&url).await).unwrap();
    assert_eq!(h.counts(&url).await, (100, 6, 0));
    // Only the six in flight are in memory.
    assert_eq!(q.lock().len(), 6);
    // Group a waits for its messages in flight; b's turn is first (its
    // first message was sent first), and it goes out as a run.
    let first = h.bodies(&url, json!({ "MaxNumberOfMessages": 10 })).await;
    assert_eq!(
        first,
        (0..10).map(|i| format!("b{i:02}")).collect::<Vec<_>>()
    );
    assert!(q.lock().len() <= 16, "memory holds what is in flight");

    // The previous format: no count record, no group order.
    let store = h.sqs.inner.store.clone();
    let id = q.id_hex.clone();
    drop(q);
    let mut batch = nimbus_store::Batch::new();
    batch.delete(crate::state::COUNTS, id.clone().into_bytes());
    for (k, _) in store
        .scan_prefix(crate::state::FIFO_ORDER, format!("{id}/").as_bytes())
        .unwrap()
    {
        batch.delete(crate::state::FIFO_ORDER, k);
    }
    store.commit(batch).await.unwrap();
    drop(store);
    let h = h.reopen().await;
    assert_eq!(h.counts(&url).await, (90, 16, 0));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let order = records_of(&h, crate::state::FIFO_ORDER).await;
    assert_eq!(order, 106, "the group order was written");

    // The rest comes out once each, in order within each group, the
    // messages in flight once their visibility ends.
    h.advance(101_000);
    let got = drain(&h, &url).await;
    assert_eq!(got.len(), 106);
    let mut seen = std::collections::HashSet::new();
    for g in ["a", "b", "c"] {
        let of: Vec<&String> = got.iter().filter(|b| b.starts_with(g)).collect();
        let start = if g == "a" { 4 } else { 0 };
        let want: Vec<String> = (start..30).map(|i| format!("{g}{i:02}")).collect();
        assert_eq!(of, want.iter().collect::<Vec<_>>(), "group {g}");
    }
    for b in &got {
        assert!(seen.insert(b.clone()), "{b} delivered twice");
    }
    assert_eq!(h.counts(&url).await, (0, 0, 0));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(records_of(&h, crate::state::MESSAGES).await, 0);
    assert_eq!(records_of(&h, crate::state::FIFO_ORDER).await, 0);

    // A purge takes the group order with the records.
    for i in 0..5 {
        h.ok(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": format!("p{i}"), "MessageGroupId": "p" }),
        )
        .await;
    }
    assert_eq!(records_of(&h, crate::state::FIFO_ORDER).await, 5);
    h.ok("PurgeQueue", json!({ "QueueUrl": url })).await;
    assert_eq!(h.counts(&url).await, (0, 0, 0));
    let mut cleared = false;
    for _ in 0..200 {
        if records_of(&h, crate::state::FIFO_ORDER).await == 0
            && records_of(&h, crate::state::MESSAGES).await == 0
        {
            cleared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cleared, "purged records and their group order deleted");
    h.ok(
        "SendMessage",
        json!({ "QueueUrl": url, "MessageBody": "after", "MessageGroupId": "p" }),
    )
    .await;
    h.advance(301_000);
    assert_eq!(drain(&h, &url).await, ["after"]);
}

/// Deduplication ids from before a restart stay in the store: a send finds
/// them there within their window, and their records are swept after it.
#[tokio::test]
async fn dedup_ids_from_before_a_restart_are_read_then_swept() {
    let h = Harness::new();
    let url = h.create_fifo("d.fifo", json!({})).await;
    let first = h.send_fifo(&url, "one", "g", "dup").await;
    h.send_fifo(&url, "two", "g", "other").await;
    let h = h.reopen().await;
    let again = h.send_fifo(&url, "one again", "g", "dup").await;
    assert_eq!(again["MessageId"], first["MessageId"]);
    let q = h.sqs.inner.queue_by_arn(&h.arn(&url).await).unwrap();
    assert_eq!(q.lock().counts().0, 2);
    assert_eq!(records_of(&h, crate::state::DEDUP).await, 2);
    h.advance(301_000);
    h.send_fifo(&url, "three", "g", "new").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let left: Vec<String> = h
        .sqs
        .inner
        .store
        .scan_prefix(crate::state::DEDUP, b"")
        .unwrap()
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with("/new"), "{left:?}");
}
