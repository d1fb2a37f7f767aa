//! Sending, receiving, deleting and visibility on standard queues.

use super::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn send_receive_delete_with_md5s() {
    let h = Harness::new();
    let url = h.create("m", json!({})).await;
    let sent = h
        .ok(
            "SendMessage",
            json!({
                "QueueUrl": url,
                "MessageBody": "msg",
                "MessageAttributes": {
                    "Help.Me": { "DataType": "String", "StringValue": "Me" },
                    "Hello": { "DataType": "String", "StringValue": "There" },
                    "General": { "DataType": "String", "StringValue": "Kenobi" },
                },
                "MessageSystemAttributes": {
                    "AWSTraceHeader": { "DataType": "String", "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1" }
                }
            }),
        )
        .await;
    // Digests recorded from real SQS for these exact inputs, and one computed
    // independently with the documented algorithm.
    assert_eq!(sent["MD5OfMessageBody"], "6e2baaf3b97dbeef01c0043275f9a0e7");
    assert_eq!(
        sent["MD5OfMessageAttributes"],
        "4c360f3fdafd970e05fae2f149d997f5"
    );
    assert_eq!(
        sent["MD5OfMessageSystemAttributes"],
        "5ae4d5d7636402d80f4eb6d213245a88"
    );
    assert!(sent.get("SequenceNumber").is_none());
    let id = sent["MessageId"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());

    let msgs = h
        .receive(
            &url,
            json!({ "AttributeNames": ["All"], "MessageAttributeNames": ["All"] }),
        )
        .await;
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m["MessageId"], id);
    assert_eq!(m["Body"], "msg");
    assert_eq!(m["MD5OfBody"], "6e2baaf3b97dbeef01c0043275f9a0e7");
    assert_eq!(
        m["MD5OfMessageAttributes"],
        "4c360f3fdafd970e05fae2f149d997f5"
    );
    assert_eq!(
        m["MessageAttributes"]["Hello"],
        json!({ "StringValue": "There", "DataType": "String" })
    );
    let a = &m["Attributes"];
    assert_eq!(a["ApproximateReceiveCount"], "1");
    assert_eq!(a["SenderId"], ACCOUNT);
    assert_eq!(
        a["AWSTraceHeader"],
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    );
    let sent_ts: u64 = a["SentTimestamp"].as_str().unwrap().parse().unwrap();
    let first: u64 = a["ApproximateFirstReceiveTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(first >= sent_ts && sent_ts > 1_600_000_000_000);
    assert!(a.get("SequenceNumber").is_none() && a.get("MessageGroupId").is_none());

    h.ok(
        "DeleteMessage",
        json!({ "QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"] }),
    )
    .await;
    // Deleting again with the same handle is accepted, as SQS does.
    h.ok(
        "DeleteMessage",
        json!({ "QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"] }),
    )
    .await;
    assert_eq!(h.counts(&url).await, (0, 0, 0));
    let v = h.ok("ReceiveMessage", json!({ "QueueUrl": url })).await;
    assert_eq!(v, json!({}));
}

#[tokio::test]
async fn attribute_filters_and_types() {
    let h = Harness::new();
    let url = h.create("f", json!({ "VisibilityTimeout": "0" })).await;
    let sent = h
        .ok(
            "SendMessage",
            json!({
                "QueueUrl": url, "MessageBody": "msg",
                "MessageAttributes": {
                    "Help.Me": { "DataType": "String", "StringValue": "Me" },
                    "Hello": { "DataType": "String", "StringValue": "There" },
                    "General": { "DataType": "String", "StringValue": "Kenobi" },
                }
            }),
        )
        .await;
    assert_eq!(
        sent["MD5OfMessageAttributes"],
        "4c360f3fdafd970e05fae2f149d997f5"
    );
    type Case<'a> = (Value, Option<Vec<&'a str>>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (json!([]), None, None),
        (
            json!(["All"]),
            Some(vec!["General", "Hello", "Help.Me"]),
            Some("4c360f3fdafd970e05fae2f149d997f5"),
        ),
        (
            json!(["*"]),
            Some(vec!["General", "Hello", "Help.Me"]),
            Some("4c360f3fdafd970e05fae2f149d997f5"),
        ),
        (
            json!([".*"]),
            Some(vec!["General", "Hello", "Help.Me"]),
            Some("4c360f3fdafd970e05fae2f149d997f5"),
        ),
        (json!(["Foo", "Help"]), None, None),
        (
            json!(["Hello", "General"]),
            Some(vec!["General", "Hello"]),
            Some("fca026605781cb4126a1e9044df24232"),
        ),
        (
            json!(["Foo", "Hello"]),
            Some(vec!["Hello"]),
            Some("a311262e065454b75da111d535b8dacd"),
        ),
        (
            json!(["Hel.*"]),
            Some(vec!["Hello", "Help.Me"]),
            Some("83fee93c1bcd8b9a5a923ffacdc636c7"),
        ),
    ];
    for (filter, names, md5) in cases {
        let msgs = h
            .receive(&url, json!({ "MessageAttributeNames": filter }))
            .await;
        let m = &msgs[0];
        match names {
            None => {
                assert!(m.get("MessageAttributes").is_none(), "{filter}");
                assert!(m.get("MD5OfMessageAttributes").is_none(), "{filter}");
            }
            Some(names) => {
                let got: Vec<&str> = m["MessageAttributes"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                assert_eq!(got, names, "{filter}");
                assert_eq!(m["MD5OfMessageAttributes"].as_str(), md5, "{filter}");
            }
        }
        assert!(m.get("Attributes").is_none());
    }
    // System attribute selection: single names, and both parameters merged.
    let msgs = h
        .receive(
            &url,
            json!({ "AttributeNames": ["SenderId", "SequenceNumber"] }),
        )
        .await;
    assert_eq!(msgs[0]["Attributes"], json!({ "SenderId": ACCOUNT }));
    let msgs = h
        .receive(
            &url,
            json!({ "MessageSystemAttributeNames": ["ApproximateReceiveCount"], "AttributeNames": ["SentTimestamp"] }),
        )
        .await;
    let keys: Vec<&String> = msgs[0]["Attributes"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["SentTimestamp", "ApproximateReceiveCount"]);

    // Numbers and binaries round-trip; the digest covers the decoded bytes.
    let url2 = h.create("types", json!({})).await;
    let sent = h
        .ok(
            "SendMessage",
            json!({
                "QueueUrl": url2, "MessageBody": "typed",
                "MessageAttributes": {
                    "a": { "DataType": "String", "StringValue": "x" },
                    "n": { "DataType": "Number", "StringValue": "12.5" },
                    "b": { "DataType": "Binary", "BinaryValue": "AAEC" },
                }
            }),
        )
        .await;
    assert_eq!(
        sent["MD5OfMessageAttributes"],
        "10becc3e70d8a505e76ab457fd1dd3d3"
    );
    let m = &h
        .receive(&url2, json!({ "MessageAttributeNames": ["All"] }))
        .await[0];
    assert_eq!(
        m["MessageAttributes"]["b"],
        json!({ "BinaryValue": "AAEC", "DataType": "Binary" })
    );
    assert_eq!(
        m["MessageAttributes"]["n"],
        json!({ "StringValue": "12.5", "DataType": "Number" })
    );
    assert_eq!(
        m["MD5OfMessageAttributes"],
        "10becc3e70d8a505e76ab457fd1dd3d3"
    );
}

#[tokio::test]
async fn message_validation() {
    let h = Harness::new();
    let url = h.create("v", json!({})).await;
    let e = h.err("SendMessage", json!({ "QueueUrl": url })).await;
    assert_err(
        &e,
        "MissingParameter",
        "The request must contain the parameter MessageBody.",
    );
    let e = h
        .err("SendMessage", json!({ "QueueUrl": url, "MessageBody": "" }))
        .await;
    assert_eq!(e.code, "MissingParameter");
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "bad \u{1} char" }),
        )
        .await;
    assert_err(
        &e,
        "InvalidMessageContents",
        "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
    );
    h.send(&url, "tab\tnewline\ncr\r emoji 😀 cjk 漢字").await;
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x".repeat(1_048_577) }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "One or more parameters are invalid. Reason: Message must be shorter than 1048576 bytes.",
    );
    h.send(&url, &"x".repeat(1_048_576)).await;
    h.ok(
        "SetQueueAttributes",
        json!({ "QueueUrl": url, "Attributes": { "MaximumMessageSize": "1024" } }),
    )
    .await;
    // Attributes count toward the limit: 1000 + name + type + value > 1024.
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x".repeat(1000),
                    "MessageAttributes": { "attr": { "DataType": "String", "StringValue": "y".repeat(30) } } }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "One or more parameters are invalid. Reason: Message must be shorter than 1024 bytes.",
    );
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x",
                    "MessageAttributes": { "ErrorDetails": { "DataType": "String", "StringValue": "" } } }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Message (user) attribute 'ErrorDetails' must contain a non-empty value of type 'String'.",
    );
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x",
                    "MessageAttributes": { "n": { "DataType": "Number", "StringValue": "abc" } } }),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x",
                    "MessageAttributes": { "n": { "DataType": "Blob", "StringValue": "abc" } } }),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    let eleven: serde_json::Map<String, Value> = (0..11)
        .map(|i| {
            (
                format!("a{i}"),
                json!({ "DataType": "String", "StringValue": "v" }),
            )
        })
        .collect();
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x", "MessageAttributes": eleven }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Number of message attributes [11] exceeds the allowed maximum [10].",
    );
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x", "DelaySeconds": 901 }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Value 901 for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900.",
    );
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x", "MessageDeduplicationId": "d" }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Value d for parameter MessageDeduplicationId is invalid. Reason: The request includes a parameter that is not valid for this queue type.",
    );
    let e = h
        .err(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": "x", "MessageGroupId": "group 123" }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Value group 123 for parameter MessageGroupId is invalid. Reason: MessageGroupId can only include alphanumeric and punctuation characters. 1 to 128 in length.",
    );
    // Nothing above was enqueued except the two valid messages.
    assert_eq!(h.counts(&url).await, (2, 0, 0));

    // Standard queues accept a MessageGroupId (fair queues) and report it.
    let fair = h.create("fair", json!({})).await;
    h.ok(
        "SendMessage",
        json!({ "QueueUrl": fair, "MessageBody": "m", "MessageGroupId": "test" }),
    )
    .await;
    let m = &h.receive(&fair, json!({ "AttributeNames": ["All"] })).await[0];
    assert_eq!(m["Attributes"]["MessageGroupId"], "test");

    let e = h
        .err(
            "ReceiveMessage",
            json!({ "QueueUrl": url, "MaxNumberOfMessages": 11 }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Value 11 for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.",
    );
    let e = h
        .err(
            "ReceiveMessage",
            json!({ "QueueUrl": url, "WaitTimeSeconds": 21 }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Value 21 for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.",
    );
    let e = h
        .err(
            "ReceiveMessage",
            json!({ "QueueUrl": url, "WaitTimeSeconds": -1 }),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    let e = h
        .err(
            "ReceiveMessage",
            json!({ "QueueUrl": url, "VisibilityTimeout": 43201 }),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
}

#[tokio::test]
async fn send_message_batch() {
    let h = Harness::new();
    let url = h.create("b", json!({})).await;
    let e = h
        .err(
            "SendMessageBatch",
            json!({ "QueueUrl": url, "Entries": [] }),
        )
        .await;
    assert_err(
        &e,
        "EmptyBatchRequest",
        "There should be at least one SendMessageBatchRequestEntry in the request.",
    );
    let twenty: Vec<Value> = (0..20)
        .map(|i| json!({ "Id": format!("{i}"), "MessageBody": "x" }))
        .collect();
    let e = h
        .err(
            "SendMessageBatch",
            json!({ "QueueUrl": url, "Entries": twenty }),
        )
        .await;
    assert_err(
        &e,
        "TooManyEntriesInBatchRequest",
        "Maximum number of entries per request are 10. You have sent 20.",
    );
    for bad in ["", "invalid:id", &"a".repeat(81)] {
        let e = h
            .err(
                "SendMessageBatch",
                json!({ "QueueUrl": url, "Entries": [{ "Id": bad, "MessageBody": "x" }] }),
            )
            .await;
        assert_err(
            &e,
            "InvalidBatchEntryId",
            "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
        );
    }
    let e = h
        .err(
            "SendMessageBatch",
            json!({ "QueueUrl": url, "Entries": [{ "Id": "a", "MessageBody": "x" }, { "Id": "a", "MessageBody": "y" }] }),
        )
        .await;
    assert_err(&e, "BatchEntryIdsNotDistinct", "Id a repeated.");
    let e = h
        .err(
            "SendMessageBatch",
            json!({ "QueueUrl": url, "Entries": [
                { "Id": "a", "MessageBody": "x".repeat(600_000) },
                { "Id": "b", "MessageBody": "x".repeat(448_577) }
            ] }),
        )
        .await;
    assert_err(
        &e,
        "BatchRequestTooLong",
        "Batch requests cannot be longer than 1048576 bytes. You have sent 1048577 bytes.",
    );
    assert_eq!(h.counts(&url).await, (0, 0, 0));

    let mut entries: Vec<Value> = (0..9)
        .map(|i| json!({ "Id": format!("m{i}"), "MessageBody": format!("{i}") }))
        .collect();
    entries.push(json!({ "Id": "bad", "MessageBody": "\u{1}" }));
    let v = h
        .ok(
            "SendMessageBatch",
            json!({ "QueueUrl": url, "Entries": entries }),
        )
        .await;
    assert_eq!(v["Successful"].as_array().unwrap().len(), 9);
    assert_eq!(v["Successful"][0]["Id"], "m0");
    assert_eq!(
        v["Successful"][0]["MD5OfMessageBody"],
        "cfcd208495d565ef66e7dff9f98764da"
    );
    assert_eq!(v["Failed"].as_array().unwrap().len(), 1);
    assert_eq!(v["Failed"][0]["Id"], "bad");
    assert_eq!(v["Failed"][0]["Code"], "InvalidMessageContents");
    assert_eq!(v["Failed"][0]["SenderFault"], true);
    assert_eq!(h.counts(&url).await, (9, 0, 0));

    // An entry over the queue's size limit fails alone.
    h.ok(
        "SetQueueAttributes",
        json!({ "QueueUrl": url, "Attributes": { "MaximumMessageSize": "1024" } }),
    )
    .await;
    let v = h
        .ok(
            "SendMessageBatch",
            json!({ "QueueUrl": url, "Entries": [{ "Id": "big", "MessageBody": "x".repeat(1025) }, { "Id": "small", "MessageBody": "a" }] }),
        )
        .await;
    assert_eq!(v["Failed"][0]["Code"], "InvalidParameterValue");
    assert_eq!(
        v["Failed"][0]["Message"],
        "One or more parameters cannot be validated. Reason: Message must be shorter than 1024 bytes."
    );
    assert_eq!(v["Successful"][0]["Id"], "small");
    assert_eq!(
        v["Successful"][0]["MD5OfMessageBody"],
        "0cc175b9c0f1b6a831c399e269772661"
    );
}

#[tokio::test]
async fn visibility_timeout_and_receive_counts() {
    let h = Harness::new();
    let url = h.create("vis", json!({ "VisibilityTimeout": "10" })).await;
    h.send(&url, "one").await;
    let first = h
        .receive(
            &url,
            json!({ "AttributeNames": ["ApproximateReceiveCount"] }),
        )
        .await;
    assert_eq!(first.len(), 1);
    assert_eq!(h.counts(&url).await, (0, 1, 0));
    assert!(h.receive(&url, json!({})).await.is_empty());
    h.advance(9_000);
    assert!(h.receive(&url, json!({})).await.is_empty());
    h.advance(1_001);
    assert_eq!(h.counts(&url).await, (1, 0, 0));
    let second = h
        .receive(
            &url,
            json!({ "AttributeNames": ["ApproximateReceiveCount"], "VisibilityTimeout": 100 }),
        )
        .await;
    assert_eq!(second[0]["Attributes"]["ApproximateReceiveCount"], "2");
    assert_ne!(second[0]["ReceiptHandle"], first[0]["ReceiptHandle"]);
    h.advance(50_000);
    assert!(h.receive(&url, json!({})).await.is_empty());
    // The old handle of a message still present deletes it (standard queues).
    h.ok(
        "DeleteMessage",
        json!({ "QueueUrl": url, "ReceiptHandle": first[0]["ReceiptHandle"] }),
    )
    .await;
    assert_eq!(h.counts(&url).await, (0, 0, 0));

    // VisibilityTimeout 0 leaves the message visible.
    h.send(&url, "two").await;
    assert_eq!(
        h.receive(&url, json!({ "VisibilityTimeout": 0 }))
            .await
            .len(),
        1
    );
    assert_eq!(
        h.receive(&url, json!({ "VisibilityTimeout": 0 }))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn change_message_visibility() {
    let h = Harness::new();
    let url = h.create("cmv", json!({ "VisibilityTimeout": "5" })).await;
    h.send(&url, "a").await;
    let m = h.receive(&url, json!({})).await.remove(0);
    let rh = m["ReceiptHandle"].as_str().unwrap().to_string();
    h.ok(
        "ChangeMessageVisibility",
        json!({ "QueueUrl": url, "ReceiptHandle": rh, "VisibilityTimeout": 60 }),
    )
    .await;
    h.advance(30_000);
    assert_eq!(h.counts(&url).await, (0, 1, 0));
    h.ok(
        "ChangeMessageVisibility",
        json!({ "QueueUrl": url, "ReceiptHandle": rh, "VisibilityTimeout": 0 }),
    )
    .await;
    assert_eq!(h.counts(&url).await, (1, 0, 0));
    let e = h
        .err(
            "ChangeMessageVisibility",
            json!({ "QueueUrl": url, "ReceiptHandle": rh, "VisibilityTimeout": 10 }),
        )
        .await;
    assert_err(
        &e,
        "MessageNotInflight",
        "The message referred to isn't in flight.",
    );

    let m = h.receive(&url, json!({})).await.remove(0);
    let rh2 = m["ReceiptHandle"].as_str().unwrap().to_string();
    let e = h
        .err(
            "ChangeMessageVisibility",
            json!({ "QueueUrl": url, "ReceiptHandle": rh2, "VisibilityTimeout": 43201 }),
        )
        .await;
    assert_eq!(e.code, "InvalidParameterValue");
    h.advance(1_000);
    let e = h
        .err(
            "ChangeMessageVisibility",
            json!({ "QueueUrl": url, "ReceiptHandle": rh2, "VisibilityTimeout": 43200 }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Value 43200 for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [43200 seconds]",
    );
    let e = h
        .err(
            "ChangeMessageVisibility",
            json!({ "QueueUrl": url, "ReceiptHandle": "garbage", "VisibilityTimeout": 1 }),
        )
        .await;
    assert_err(
        &e,
        "ReceiptHandleIsInvalid",
        "The input receipt handle \"garbage\" is not a valid receipt handle.",
    );
    let e = h
        .err(
            "ChangeMessageVisibility",
            json!({ "QueueUrl": url, "ReceiptHandle": rh2 }),
        )
        .await;
    assert_err(
        &e,
        "MissingParameter",
        "The request must contain the parameter VisibilityTimeout.",
    );
    h.ok(
        "DeleteMessage",
        json!({ "QueueUrl": url, "ReceiptHandle": rh2 }),
    )
    .await;
    let e = h
        .err(
            "ChangeMessageVisibility",
            json!({ "QueueUrl": url, "ReceiptHandle": rh2, "VisibilityTimeout": 1 }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        &format!("Value {rh2} for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change."),
    );

    // Batch: each entry on its own.
    h.send(&url, "b1").await;
    h.send(&url, "b2").await;
    let ms = h.receive(&url, json!({ "MaxNumberOfMessages": 10 })).await;
    assert_eq!(ms.len(), 2);
    let v = h
        .ok(
            "ChangeMessageVisibilityBatch",
            json!({ "QueueUrl": url, "Entries": [
                { "Id": "ok", "ReceiptHandle": ms[0]["ReceiptHandle"], "VisibilityTimeout": 0 },
                { "Id": "bad", "ReceiptHandle": "nope", "VisibilityTimeout": 0 },
                { "Id": "ok2", "ReceiptHandle": ms[1]["ReceiptHandle"], "VisibilityTimeout": 100 }
            ] }),
        )
        .await;
    assert_eq!(v["Successful"], json!([{ "Id": "ok" }, { "Id": "ok2" }]));
    assert_eq!(v["Failed"][0]["Id"], "bad");
    assert_eq!(v["Failed"][0]["Code"], "ReceiptHandleIsInvalid");
    assert_eq!(h.counts(&url).await, (1, 1, 0));
    let e = h
        .err(
            "ChangeMessageVisibilityBatch",
            json!({ "QueueUrl": url, "Entries": [] }),
        )
        .await;
    assert_err(
        &e,
        "EmptyBatchRequest",
        "There should be at least one ChangeMessageVisibilityBatchRequestEntry in the request.",
    );
}

#[tokio::test]
async fn delete_message_errors_and_batch() {
    let h = Harness::new();
    let url = h.create("d", json!({})).await;
    let other = h.create("other", json!({})).await;
    let e = h
        .err(
            "DeleteMessage",
            json!({ "QueueUrl": url, "ReceiptHandle": "garbage" }),
        )
        .await;
    assert_err(
        &e,
        "ReceiptHandleIsInvalid",
        "The input receipt handle \"garbage\" is not a valid receipt handle.",
    );
    h.send(&other, "x").await;
    let m = h.receive(&other, json!({})).await.remove(0);
    let e = h
        .err(
            "DeleteMessage",
            json!({ "QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"] }),
        )
        .await;
    assert_eq!(e.code, "ReceiptHandleIsInvalid");
    assert_eq!(h.counts(&other).await, (0, 1, 0));

    for i in 0..3 {
        h.send(&url, &format!("m{i}")).await;
    }
    let ms = h.receive(&url, json!({ "MaxNumberOfMessages": 10 })).await;
    assert_eq!(ms.len(), 3);
    let v = h
        .ok(
            "DeleteMessageBatch",
            json!({ "QueueUrl": url, "Entries": [
                { "Id": "a", "ReceiptHandle": ms[0]["ReceiptHandle"] },
                { "Id": "b", "ReceiptHandle": "garbage" },
                { "Id": "c", "ReceiptHandle": ms[2]["ReceiptHandle"] }
            ] }),
        )
        .await;
    assert_eq!(v["Successful"], json!([{ "Id": "a" }, { "Id": "c" }]));
    assert_eq!(
        v["Failed"],
        json!([{ "Id": "b", "SenderFault": true, "Code": "ReceiptHandleIsInvalid", "Message": "The input receipt handle \"garbage\" is not a valid receipt handle." }])
    );
    assert_eq!(h.counts(&url).await, (0, 1, 0));
    let e = h
        .err(
            "DeleteMessageBatch",
            json!({ "QueueUrl": url, "Entries": [{ "Id": "x", "ReceiptHandle": "a" }, { "Id": "x", "ReceiptHandle": "b" }] }),
        )
        .await;
    assert_eq!(e.code, "BatchEntryIdsNotDistinct");
    let e = h
        .err(
            "DeleteMessageBatch",
            json!({ "QueueUrl": url, "Entries": [] }),
        )
        .await;
    assert_err(
        &e,
        "EmptyBatchRequest",
        "There should be at least one DeleteMessageBatchRequestEntry in the request.",
    );
}

#[tokio::test]
async fn delay_queues_and_message_delays() {
    let h = Harness::new();
    let url = h.create("delay", json!({ "DelaySeconds": "5" })).await;
    h.send(&url, "queue-delay").await;
    h.ok(
        "SendMessage",
        json!({ "QueueUrl": url, "MessageBody": "no-delay", "DelaySeconds": 0 }),
    )
    .await;
    h.ok(
        "SendMessage",
        json!({ "QueueUrl": url, "MessageBody": "long", "DelaySeconds": 20 }),
    )
    .await;
    assert_eq!(h.counts(&url).await, (1, 0, 2));
    assert_eq!(
        h.bodies(
            &url,
            json!({ "MaxNumberOfMessages": 10, "VisibilityTimeout": 0 })
        )
        .await,
        ["no-delay"]
    );
    h.advance(5_000);
    assert_eq!(h.counts(&url).await, (2, 0, 1));
    h.advance(15_000);
    assert_eq!(h.counts(&url).await, (3, 0, 0));
}

#[tokio::test]
async fn retention_expires_messages() {
    let h = Harness::new();
    let url = h
        .create("ret", json!({ "MessageRetentionPeriod": "60" }))
        .await;
    h.send(&url, "old").await;
    h.advance(30_000);
    h.send(&url, "new").await;
    h.advance(30_001);
    assert_eq!(h.counts(&url).await, (1, 0, 0));
    assert_eq!(
        h.bodies(&url, json!({ "MaxNumberOfMessages": 10 })).await,
        ["new"]
    );
    h.advance(31_000);
    assert_eq!(h.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn long_polling_returns_as_soon_as_a_message_arrives() {
    let h = std::sync::Arc::new(Harness::new());
    let url = h.create("lp", json!({})).await;
    let start = Instant::now();
    let v = h
        .ok(
            "ReceiveMessage",
            json!({ "QueueUrl": url, "WaitTimeSeconds": 1 }),
        )
        .await;
    assert_eq!(v, json!({}));
    assert!(start.elapsed() >= Duration::from_millis(950));

    let h2 = h.clone();
    let url2 = url.clone();
    let waiter = tokio::spawn(async move {
        let start = Instant::now();
        let ms = h2.receive(&url2, json!({ "WaitTimeSeconds": 20 })).await;
        (ms, start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.send(&url, "wake up").await;
    let (ms, took) = waiter.await.unwrap();
    assert_eq!(ms[0]["Body"], "wake up");
    assert!(took < Duration::from_secs(3), "took {took:?}");

    // The queue's ReceiveMessageWaitTimeSeconds is the default wait.
    h.ok(
        "SetQueueAttributes",
        json!({ "QueueUrl": url, "Attributes": { "ReceiveMessageWaitTimeSeconds": "1" } }),
    )
    .await;
    let start = Instant::now();
    assert!(h.receive(&url, json!({})).await.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(950));

    // A message whose visibility runs out wakes a waiting receiver.
    h.send(&url, "again").await;
    h.receive(&url, json!({ "VisibilityTimeout": 1 })).await;
    let start = Instant::now();
    let ms = h.receive(&url, json!({ "WaitTimeSeconds": 10 })).await;
    assert_eq!(ms[0]["Body"], "again");
    assert!(start.elapsed() < Duration::from_secs(3));

    // Deleting the queue releases its long pollers.
    let h3 = h.clone();
    let url3 = url.clone();
    let waiter = tokio::spawn(async move {
        h3.call(
            "ReceiveMessage",
            json!({ "QueueUrl": url3, "WaitTimeSeconds": 20 }),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.ok("DeleteQueue", json!({ "QueueUrl": url })).await;
    let r = tokio::time::timeout(Duration::from_secs(3), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(r.is_err() || r.unwrap() == json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_and_receivers() {
    let h = std::sync::Arc::new(Harness::new());
    let url = h.create("conc", json!({})).await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let h = h.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..50 {
                let v = h.send(&url, &format!("{t}-{i}")).await;
                ids.push(v["MessageId"].as_str().unwrap().to_string());
            }
            ids
        }));
    }
    let mut sent = std::collections::HashSet::new();
    for t in tasks {
        sent.extend(t.await.unwrap());
    }
    assert_eq!(sent.len(), 800);
    assert_eq!(h.counts(&url).await, (800, 0, 0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let h = h.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let ms = h.receive(&url, json!({ "MaxNumberOfMessages": 10 })).await;
                if ms.is_empty() {
                    break;
                }
                let entries: Vec<Value> = ms
                    .iter()
                    .enumerate()
                    .map(|(i, m)| json!({ "Id": format!("e{i}"), "ReceiptHandle": m["ReceiptHandle"] }))
                    .collect();
                let v = h
                    .ok("DeleteMessageBatch", json!({ "QueueUrl": url, "Entries": entries }))
                    .await;
                assert!(v["Failed"].as_array().unwrap().is_empty());
                got.extend(ms.iter().map(|m| m["MessageId"].as_str().unwrap().to_string()));
            }
            got
        }));
    }
    let mut received = Vec::new();
    for t in tasks {
        received.extend(t.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = received.iter().cloned().collect();
    assert_eq!(received.len(), 800, "no message delivered twice");
    assert_eq!(unique, sent);
    assert_eq!(h.counts(&url).await, (0, 0, 0));
}

/// Process CPU time (user + system) from /proc, for the throughput check below.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// `cargo test -p nimbus-sqs --release -- --ignored --nocapture throughput`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput() {
    let h = std::sync::Arc::new(Harness::new());
    let url = h.create("bench", json!({})).await;
    let n_tasks = 16;
    let per_task = 2000;
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n_tasks {
        let h = h.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                h.ok(
                    "SendMessage",
                    json!({ "QueueUrl": url, "MessageBody": format!("hello world {i}") }),
                )
                .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = (n_tasks * per_task) as f64;
    let wall = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    println!(
        "send: {:.0}/s, {:.1} us CPU per send (incl. store writer)",
        n / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n
    );
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n_tasks {
        let h = h.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            loop {
                let ms = h.receive(&url, json!({ "MaxNumberOfMessages": 10 })).await;
                if ms.is_empty() {
                    break got;
                }
                got += ms.len();
                let entries: Vec<Value> = ms
                    .iter()
                    .enumerate()
                    .map(|(i, m)| json!({ "Id": format!("e{i}"), "ReceiptHandle": m["ReceiptHandle"] }))
                    .collect();
                h.ok("DeleteMessageBatch", json!({ "QueueUrl": url, "Entries": entries })).await;
            }
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let wall = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    println!(
        "receive+delete: {:.0} msgs/s, {:.1} us CPU per message",
        total as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / total as f64
    );
    assert_eq!(total, n_tasks * per_task);
}

#[tokio::test]
async fn shortening_retention_applies_to_queued_messages() {
    let h = Harness::new();
    let url = h.create("ret-short", json!({})).await;
    h.send(&url, "queued").await;
    h.advance(90_000);
    assert_eq!(h.counts(&url).await, (1, 0, 0));
    h.ok(
        "SetQueueAttributes",
        json!({ "QueueUrl": url, "Attributes": { "MessageRetentionPeriod": "60" } }),
    )
    .await;
    assert_eq!(h.counts(&url).await, (0, 0, 0));
    assert!(h.bodies(&url, json!({})).await.is_empty());
}

/// A standard queue refuses receives past its in-flight quota with OverLimit;
/// a FIFO queue returns nothing (the quota is lowered here from SQS's 120,000).
#[tokio::test]
async fn in_flight_quota() {
    let h = Harness::new();
    h.sqs
        .inner
        .inflight_limit
        .store(3, std::sync::atomic::Ordering::Relaxed);
    let url = h.create("busy", json!({})).await;
    for i in 0..5 {
        h.send(&url, &format!("m{i}")).await;
    }
    let got = h.receive(&url, json!({ "MaxNumberOfMessages": 10 })).await;
    assert_eq!(got.len(), 3);
    let e = h.err("ReceiveMessage", json!({ "QueueUrl": url })).await;
    assert_eq!(e.code, "OverLimit");
    assert_eq!(e.status, 403);
    h.ok(
        "DeleteMessage",
        json!({ "QueueUrl": url, "ReceiptHandle": got[0]["ReceiptHandle"] }),
    )
    .await;
    assert_eq!(
        h.receive(&url, json!({ "MaxNumberOfMessages": 10 }))
            .await
            .len(),
        1
    );

    let fifo = h.create_fifo("busy.fifo", json!({})).await;
    for i in 0..5 {
        h.send_fifo(&fifo, &format!("f{i}"), &format!("g{i}"), &format!("d{i}"))
            .await;
    }
    assert_eq!(
        h.receive(&fifo, json!({ "MaxNumberOfMessages": 10 }))
            .await
            .len(),
        3
    );
    assert!(h
        .receive(&fifo, json!({ "MaxNumberOfMessages": 10 }))
        .await
        .is_empty());
}
