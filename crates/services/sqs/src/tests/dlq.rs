//! Dead-letter queues: redrive policies, redrive on receive, source listing,
//! and move tasks back to the source or to another queue.

use super::*;
use serde_json::json;
use std::time::Duration;

async fn dlq_pair(h: &Harness, max: u32) -> (String, String, String) {
    let dlq = h.create("dead", json!({})).await;
    let dlq_arn = h.arn(&dlq).await;
    let policy = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max }).to_string();
    let src = h.create("source", json!({ "RedrivePolicy": policy })).await;
    (src, dlq, dlq_arn)
}

#[tokio::test]
async fn redrive_policy_validation() {
    let h = Harness::new();
    let dlq = h.create("dlq", json!({})).await;
    let dlq_arn = h.arn(&dlq).await;
    let src = h.create("src", json!({})).await;
    let set = |p: String| json!({ "QueueUrl": src, "Attributes": { "RedrivePolicy": p } });

    let p = json!({ "deadLetterTargetArn": dlq_arn }).to_string();
    let e = h.err("SetQueueAttributes", set(p.clone())).await;
    assert_err(
        &e,
        "InvalidParameterValue",
        &format!("Value {p} for parameter RedrivePolicy is invalid. Reason: Redrive policy does not contain mandatory attribute: maxReceiveCount."),
    );
    let e = h
        .err(
            "SetQueueAttributes",
            set(json!({ "maxReceiveCount": "42" }).to_string()),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    let e = h
        .err(
            "SetQueueAttributes",
            set(
                json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": "invalid" }).to_string(),
            ),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    let e = h
        .err(
            "CreateQueue",
            json!({ "QueueName": "x", "Attributes": { "RedrivePolicy": json!({ "deadLetterTargetArn": "dummy", "maxReceiveCount": 42 }).to_string() } }),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    let missing = json!({ "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:nope", "maxReceiveCount": 2 }).to_string();
    let e = h.err("SetQueueAttributes", set(missing.clone())).await;
    assert_err(
        &e,
        "InvalidParameterValue",
        &format!("Value {missing} for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist."),
    );
    let fifo = h.create_fifo("fdlq.fifo", json!({})).await;
    let fifo_arn = h.arn(&fifo).await;
    let e = h
        .err(
            "SetQueueAttributes",
            set(json!({ "deadLetterTargetArn": fifo_arn, "maxReceiveCount": 2 }).to_string()),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    assert!(e
        .message
        .ends_with("Dead-letter queue must be same type of queue as the source."));

    // Accepted with a string count; reported normalized.
    h.ok(
        "SetQueueAttributes",
        set(json!({ "maxReceiveCount": "42", "deadLetterTargetArn": dlq_arn }).to_string()),
    )
    .await;
    assert_eq!(
        h.attr(&src, "RedrivePolicy").await.unwrap(),
        format!("{{\"deadLetterTargetArn\":\"{dlq_arn}\",\"maxReceiveCount\":42}}")
    );
    let v = h
        .ok("ListDeadLetterSourceQueues", json!({ "QueueUrl": dlq }))
        .await;
    assert_eq!(v["queueUrls"], json!([src]));
    let v = h
        .ok("ListDeadLetterSourceQueues", json!({ "QueueUrl": src }))
        .await;
    assert_eq!(v, json!({ "queueUrls": [] }));
    h.ok("SetQueueAttributes", set(String::new())).await;
    assert_eq!(h.attr(&src, "RedrivePolicy").await, None);

    // RedriveAllowPolicy on the dead-letter queue is enforced.
    let allow = |p: Value| json!({ "QueueUrl": dlq, "Attributes": { "RedriveAllowPolicy": p.to_string() } });
    h.ok(
        "SetQueueAttributes",
        allow(json!({ "redrivePermission": "denyAll" })),
    )
    .await;
    let good = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3 }).to_string();
    let e = h.err("SetQueueAttributes", set(good.clone())).await;
    assert_eq!(e.code, "InvalidParameterValue");
    let src_arn = h.arn(&src).await;
    h.ok(
        "SetQueueAttributes",
        allow(json!({ "redrivePermission": "byQueue", "sourceQueueArns": [src_arn] })),
    )
    .await;
    assert_eq!(
        h.attr(&dlq, "RedriveAllowPolicy").await.unwrap(),
        format!("{{\"redrivePermission\":\"byQueue\",\"sourceQueueArns\":[\"{src_arn}\"]}}")
    );
    h.ok("SetQueueAttributes", set(good.clone())).await;
    let other = h.create("other", json!({})).await;
    let e = h
        .err(
            "SetQueueAttributes",
            json!({ "QueueUrl": other, "Attributes": { "RedrivePolicy": good } }),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    let e = h
        .err(
            "SetQueueAttributes",
            allow(json!({ "redrivePermission": "byQueue" })),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    let eleven: Vec<String> = (0..11)
        .map(|i| format!("arn:aws:sqs:us-east-1:000000000000:q{i}"))
        .collect();
    let e = h
        .err(
            "SetQueueAttributes",
            allow(json!({ "redrivePermission": "byQueue", "sourceQueueArns": eleven })),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
}

#[tokio::test]
async fn messages_move_to_the_dead_letter_queue() {
    let h = Harness::new();
    let (src, dlq, _) = dlq_pair(&h, 1).await;
    let src_arn = h.arn(&src).await;
    h.ok(
        "SendMessage",
        json!({ "QueueUrl": src, "MessageBody": "message-1",
                "MessageAttributes": { "MyAttribute": { "DataType": "String", "StringValue": "foobar" } } }),
    )
    .await;
    h.send(&src, "message-2").await;
    let first = h
        .receive(
            &src,
            json!({ "MaxNumberOfMessages": 10, "VisibilityTimeout": 0 }),
        )
        .await;
    assert_eq!(first.len(), 2);
    // Second receive would exceed maxReceiveCount: both go to the DLQ instead.
    assert!(h
        .receive(&src, json!({ "MaxNumberOfMessages": 10 }))
        .await
        .is_empty());
    assert_eq!(h.counts(&src).await, (0, 0, 0));
    assert_eq!(h.counts(&dlq).await, (2, 0, 0));
    let ms = h
        .receive(&dlq, json!({ "MaxNumberOfMessages": 10, "AttributeNames": ["All"], "MessageAttributeNames": ["All"] }))
        .await;
    assert_eq!(ms.len(), 2);
    let m = ms.iter().find(|m| m["Body"] == "message-1").unwrap();
    assert_eq!(
        m["MessageId"],
        first.iter().find(|x| x["Body"] == "message-1").unwrap()["MessageId"]
    );
    assert_eq!(m["Attributes"]["ApproximateReceiveCount"], "2");
    assert_eq!(
        m["Attributes"]["DeadLetterQueueSourceArn"],
        src_arn.as_str()
    );
    assert_eq!(
        m["MD5OfMessageAttributes"],
        "adb59cd4678ea5a855436b949cd07ab6"
    );
}

#[tokio::test]
async fn fifo_dead_letter_queue_keeps_groups() {
    let h = Harness::new();
    let dlq = h.create_fifo("dead.fifo", json!({})).await;
    let dlq_arn = h.arn(&dlq).await;
    let policy = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1 }).to_string();
    let src = h
        .create_fifo(
            "src.fifo",
            json!({ "ContentBasedDeduplication": "true", "RedrivePolicy": policy }),
        )
        .await;
    h.ok(
        "SendMessage",
        json!({ "QueueUrl": src, "MessageBody": "a", "MessageGroupId": "g" }),
    )
    .await;
    h.ok(
        "SendMessage",
        json!({ "QueueUrl": src, "MessageBody": "b", "MessageGroupId": "g" }),
    )
    .await;
    assert_eq!(
        h.receive(
            &src,
            json!({ "MaxNumberOfMessages": 10, "VisibilityTimeout": 0 })
        )
        .await
        .len(),
        2
    );
    assert!(h
        .receive(&src, json!({ "MaxNumberOfMessages": 10 }))
        .await
        .is_empty());
    let ms = h
        .receive(
            &dlq,
            json!({ "MaxNumberOfMessages": 10, "AttributeNames": ["MessageGroupId"] }),
        )
        .await;
    let bodies: Vec<&str> = ms.iter().map(|m| m["Body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["a", "b"]);
    assert_eq!(ms[0]["Attributes"]["MessageGroupId"], "g");
}

async fn fill_dlq(h: &Harness, src: &str, dlq: &str, n: usize) {
    for i in 0..n {
        h.send(src, &format!("message-{i}")).await;
    }
    for _ in 0..2 {
        while !h
            .receive(
                src,
                json!({ "MaxNumberOfMessages": 10, "VisibilityTimeout": 0 }),
            )
            .await
            .is_empty()
        {}
    }
    assert_eq!(h.counts(dlq).await.0, n as u64);
}

async fn wait_status(h: &Harness, arn: &str, status: &str) -> Value {
    for _ in 0..300 {
        let v = h
            .ok(
                "ListMessageMoveTasks",
                json!({ "SourceArn": arn, "MaxResults": 10 }),
            )
            .await;
        if v["Results"][0]["Status"] == status {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("move task never reached {status}");
}

#[tokio::test]
async fn move_task_back_to_sources() {
    let h = Harness::new();
    let (src, dlq, dlq_arn) = dlq_pair(&h, 1).await;
    fill_dlq(&h, &src, &dlq, 3).await;
    let v = h
        .ok("StartMessageMoveTask", json!({ "SourceArn": dlq_arn }))
        .await;
    let handle = v["TaskHandle"].as_str().unwrap();
    let (task_id, source) = crate::names::decode_task_handle(handle).unwrap();
    assert!(uuid::Uuid::parse_str(&task_id).is_ok());
    assert_eq!(source, dlq_arn);
    let v = wait_status(&h, &dlq_arn, "COMPLETED").await;
    let r = &v["Results"][0];
    assert_eq!(r["ApproximateNumberOfMessagesMoved"], 3);
    assert_eq!(r["ApproximateNumberOfMessagesToMove"], 3);
    assert_eq!(r["SourceArn"], dlq_arn.as_str());
    assert!(r.get("TaskHandle").is_none());
    assert!(r.get("DestinationArn").is_none());
    assert!(r["StartedTimestamp"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(h.counts(&dlq).await, (0, 0, 0));
    let ms = h
        .receive(
            &src,
            json!({ "MaxNumberOfMessages": 10, "AttributeNames": ["All"] }),
        )
        .await;
    assert_eq!(ms.len(), 3);
    // A redriven message starts over.
    assert_eq!(ms[0]["Attributes"]["ApproximateReceiveCount"], "1");
    assert!(ms[0]["Attributes"]
        .get("DeadLetterQueueSourceArn")
        .is_none());
}

#[tokio::test]
async fn move_task_to_destination_rate_limited_and_cancelled() {
    let h = Harness::new();
    let (src, dlq, dlq_arn) = dlq_pair(&h, 1).await;
    let dest = h.create("dest", json!({})).await;
    let dest_arn = h.arn(&dest).await;
    fill_dlq(&h, &src, &dlq, 6).await;
    let v = h
        .ok(
            "StartMessageMoveTask",
            json!({ "SourceArn": dlq_arn, "DestinationArn": dest_arn, "MaxNumberOfMessagesPerSecond": 2 }),
        )
        .await;
    let handle = v["TaskHandle"].as_str().unwrap().to_string();
    let e = h
        .err(
            "StartMessageMoveTask",
            json!({ "SourceArn": dlq_arn, "DestinationArn": dest_arn }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "There is already a task running. Only one active task is allowed for a source queue arn at a given time.",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = h
        .ok("ListMessageMoveTasks", json!({ "SourceArn": dlq_arn }))
        .await;
    let r = &v["Results"][0];
    assert_eq!(r["Status"], "RUNNING");
    assert_eq!(r["TaskHandle"], handle.as_str());
    assert_eq!(r["DestinationArn"], dest_arn.as_str());
    assert_eq!(r["MaxNumberOfMessagesPerSecond"], 2);
    assert_eq!(r["ApproximateNumberOfMessagesToMove"], 6);
    let v = h
        .ok("CancelMessageMoveTask", json!({ "TaskHandle": handle }))
        .await;
    let moved = v["ApproximateNumberOfMessagesMoved"].as_u64().unwrap();
    assert!((1..6).contains(&moved), "moved {moved}");
    let v = wait_status(&h, &dlq_arn, "CANCELLED").await;
    let moved_after = v["Results"][0]["ApproximateNumberOfMessagesMoved"]
        .as_u64()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(h.counts(&dest).await.0, moved_after);
    assert_eq!(h.counts(&dlq).await.0, 6 - moved_after);
    let e = h
        .err("CancelMessageMoveTask", json!({ "TaskHandle": handle }))
        .await;
    assert_eq!(e.code, "InvalidParameterValue");

    // A new task may start once the previous one is over; it finishes the job.
    h.ok(
        "StartMessageMoveTask",
        json!({ "SourceArn": dlq_arn, "DestinationArn": dest_arn }),
    )
    .await;
    let v = wait_status(&h, &dlq_arn, "COMPLETED").await;
    assert_eq!(v["Results"].as_array().unwrap().len(), 2);
    assert_eq!(h.counts(&dest).await.0, 6);
}

#[tokio::test]
async fn move_task_errors() {
    let h = Harness::new();
    let (src, _dlq, dlq_arn) = dlq_pair(&h, 1).await;
    let src_arn = h.arn(&src).await;
    let e = h
        .err("StartMessageMoveTask", json!({ "SourceArn": src_arn }))
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Source queue must be configured as a Dead Letter Queue.",
    );
    let e = h
        .err(
            "StartMessageMoveTask",
            json!({ "SourceArn": "arn:aws:sqs:us-east-1:000000000000:missing" }),
        )
        .await;
    assert_err(
        &e,
        "ResourceNotFoundException",
        "The resource that you specified for the SourceArn parameter doesn't exist.",
    );
    assert_eq!(e.status, 404);
    let e = h
        .err(
            "StartMessageMoveTask",
            json!({ "SourceArn": dlq_arn, "DestinationArn": format!("{src_arn}doesntexist") }),
        )
        .await;
    assert_err(
        &e,
        "ResourceNotFoundException",
        "The resource that you specified for the DestinationArn parameter doesn't exist.",
    );
    let e = h
        .err("StartMessageMoveTask", json!({ "SourceArn": "not-an-arn" }))
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    let e = h
        .err(
            "StartMessageMoveTask",
            json!({ "SourceArn": dlq_arn, "MaxNumberOfMessagesPerSecond": 501 }),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    let e = h
        .err("CancelMessageMoveTask", json!({ "TaskHandle": "foobared" }))
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Value for parameter TaskHandle is invalid.",
    );
    let bogus = crate::names::encode_task_handle(
        "10f57157-fc38-4da9-a113-4de7e12d05dd",
        "arn:aws:sqs:us-east-1:878966065785:test-queue-doesnt-exist-123456",
    );
    let e = h
        .err("CancelMessageMoveTask", json!({ "TaskHandle": bogus }))
        .await;
    assert_err(
        &e,
        "ResourceNotFoundException",
        "The resource that you specified for the SourceArn parameter doesn't exist.",
    );
    let bogus = crate::names::encode_task_handle("10f57157-fc38-4da9-a113-4de7e12d05aa", &src_arn);
    let e = h
        .err("CancelMessageMoveTask", json!({ "TaskHandle": bogus }))
        .await;
    assert_err(&e, "ResourceNotFoundException", "Task does not exist.");
    let v = h
        .ok("ListMessageMoveTasks", json!({ "SourceArn": dlq_arn }))
        .await;
    assert_eq!(v, json!({ "Results": [] }));
    let e = h
        .err(
            "ListMessageMoveTasks",
            json!({ "SourceArn": "arn:aws:sqs:us-east-1:000000000000:missing" }),
        )
        .await;
    assert_eq!(e.code, "ResourceNotFoundException");
}

/// A standard dead-letter queue keeps a message's original enqueue time for
/// retention; a FIFO one restarts it.
#[tokio::test]
async fn dead_letter_retention_clock() {
    let h = Harness::new();
    let dlq = h
        .create("dead-ret", json!({ "MessageRetentionPeriod": "120" }))
        .await;
    let policy =
        json!({ "deadLetterTargetArn": h.arn(&dlq).await, "maxReceiveCount": 1 }).to_string();
    let src = h
        .create("src-ret", json!({ "RedrivePolicy": policy }))
        .await;
    h.send(&src, "m").await;
    h.receive(&src, json!({ "VisibilityTimeout": 0 })).await;
    h.advance(100_000);
    assert!(h.receive(&src, json!({})).await.is_empty());
    assert_eq!(h.counts(&dlq).await, (1, 0, 0));
    h.advance(20_001);
    assert_eq!(h.counts(&dlq).await, (0, 0, 0));

    let fdlq = h
        .create_fifo("dead-ret.fifo", json!({ "MessageRetentionPeriod": "120" }))
        .await;
    let policy =
        json!({ "deadLetterTargetArn": h.arn(&fdlq).await, "maxReceiveCount": 1 }).to_string();
    let fsrc = h
        .create_fifo("src-ret.fifo", json!({ "RedrivePolicy": policy }))
        .await;
    h.send_fifo(&fsrc, "f", "g", "d").await;
    h.receive(&fsrc, json!({ "VisibilityTimeout": 0 })).await;
    h.advance(100_000);
    assert!(h.receive(&fsrc, json!({})).await.is_empty());
    assert_eq!(h.counts(&fdlq).await, (1, 0, 0));
    h.advance(20_001);
    assert_eq!(h.counts(&fdlq).await, (1, 0, 0));
    h.advance(100_000);
    assert_eq!(h.counts(&fdlq).await, (0, 0, 0));
}
