//! Queue lifecycle, attributes, tags, permissions, purge and addressing.

use super::*;
use serde_json::json;

#[tokio::test]
async fn create_get_list_delete_and_recreate() {
    let h = Harness::new();
    let url = h.create("orders", json!({})).await;
    assert_eq!(url, "http://localhost:4566/000000000000/orders");
    let v = h.ok("GetQueueUrl", json!({ "QueueName": "orders" })).await;
    assert_eq!(v["QueueUrl"], url);
    let v = h
        .ok(
            "GetQueueUrl",
            json!({ "QueueName": "orders", "QueueOwnerAWSAccountId": ACCOUNT }),
        )
        .await;
    assert_eq!(v["QueueUrl"], url);

    for i in 0..5 {
        h.create(&format!("list-{i}"), json!({})).await;
    }
    let v = h
        .ok("ListQueues", json!({ "QueueNamePrefix": "list-" }))
        .await;
    assert_eq!(v["QueueUrls"].as_array().unwrap().len(), 5);
    assert!(v.get("NextToken").is_none());
    let v = h.ok("ListQueues", json!({})).await;
    assert_eq!(v["QueueUrls"].as_array().unwrap().len(), 6);
    let p1 = h
        .ok(
            "ListQueues",
            json!({ "QueueNamePrefix": "list-", "MaxResults": 2 }),
        )
        .await;
    assert_eq!(
        p1["QueueUrls"],
        json!([
            "http://localhost:4566/000000000000/list-0",
            "http://localhost:4566/000000000000/list-1"
        ])
    );
    let token = p1["NextToken"].as_str().unwrap();
    let p2 = h
        .ok(
            "ListQueues",
            json!({ "QueueNamePrefix": "list-", "MaxResults": 10, "NextToken": token }),
        )
        .await;
    assert_eq!(p2["QueueUrls"].as_array().unwrap().len(), 3);
    assert!(p2.get("NextToken").is_none());
    let v = h
        .ok("ListQueues", json!({ "QueueNamePrefix": "nothing" }))
        .await;
    assert_eq!(v, json!({}));
    let e = h.err("ListQueues", json!({ "MaxResults": 0 })).await;
    assert_eq!(e.code, "InvalidParameterValue");

    h.ok("DeleteQueue", json!({ "QueueUrl": url })).await;
    let e = h.err("GetQueueUrl", json!({ "QueueName": "orders" })).await;
    assert_err(
        &e,
        "QueueDoesNotExist",
        "The specified queue does not exist.",
    );
    let e = h.err("DeleteQueue", json!({ "QueueUrl": url })).await;
    assert_err(
        &e,
        "QueueDoesNotExist",
        "The specified queue does not exist.",
    );
    let e = h.err("CreateQueue", json!({ "QueueName": "orders" })).await;
    assert_err(
        &e,
        "QueueDeletedRecently",
        "You must wait 60 seconds after deleting a queue before you can create another with the same name.",
    );
    h.advance(61_000);
    h.create("orders", json!({})).await;
}

#[tokio::test]
async fn create_existing_queue_compares_attributes() {
    let h = Harness::new();
    let url = h
        .create(
            "q",
            json!({ "VisibilityTimeout": "45", "DelaySeconds": "2" }),
        )
        .await;
    assert_eq!(
        h.create("q", json!({ "VisibilityTimeout": "45" })).await,
        url
    );
    assert_eq!(h.create("q", json!({})).await, url);
    let e = h
        .err(
            "CreateQueue",
            json!({ "QueueName": "q", "Attributes": { "VisibilityTimeout": "45", "DelaySeconds": "0" } }),
        )
        .await;
    assert_err(
        &e,
        "QueueNameExists",
        "A queue already exists with the same name and a different value for attribute DelaySeconds",
    );
    // Nothing changed by the refused call.
    assert_eq!(h.attr(&url, "DelaySeconds").await.as_deref(), Some("2"));

    let f = h
        .create_fifo("f.fifo", json!({ "ContentBasedDeduplication": "true" }))
        .await;
    let e = h
        .err(
            "CreateQueue",
            json!({ "QueueName": "f.fifo", "Attributes": { "FifoQueue": "true", "ContentBasedDeduplication": "false" } }),
        )
        .await;
    assert_eq!(e.code, "QueueNameExists");
    assert!(e.message.ends_with("attribute ContentBasedDeduplication"));
    assert_eq!(
        h.create_fifo("f.fifo", json!({ "ContentBasedDeduplication": "TRUE" }))
            .await,
        f
    );
}

#[tokio::test]
async fn queue_names_are_validated() {
    let h = Harness::new();
    let standard =
        "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length";
    let fifo = "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length";
    for bad in ["has space", "dot.name", "x.fifo", &"a".repeat(81), "ümlaut"] {
        let e = h.err("CreateQueue", json!({ "QueueName": bad })).await;
        assert_err(&e, "InvalidParameterValue", standard);
    }
    let e = h
        .err(
            "CreateQueue",
            json!({ "QueueName": "nofifo", "Attributes": { "FifoQueue": "true" } }),
        )
        .await;
    assert_err(&e, "InvalidParameterValue", fifo);
    let e = h.err("CreateQueue", json!({})).await;
    assert_err(
        &e,
        "MissingParameter",
        "The request must contain the parameter QueueName.",
    );
    h.create(&"a".repeat(80), json!({})).await;
    h.create_fifo(&format!("{}.fifo", "b".repeat(75)), json!({}))
        .await;
    assert!(
        h.ok("ListQueues", json!({})).await["QueueUrls"]
            .as_array()
            .unwrap()
            .len()
            == 2
    );
}

#[tokio::test]
async fn fifo_only_attributes_are_refused_on_standard_queues() {
    let h = Harness::new();
    let cases = [
        ("FifoQueue", "false", "Unknown Attribute FifoQueue."),
        (
            "ContentBasedDeduplication",
            "false",
            "Unknown Attribute ContentBasedDeduplication.",
        ),
        (
            "DeduplicationScope",
            "queue",
            "You can specify the DeduplicationScope only when FifoQueue is set to true.",
        ),
        (
            "FifoThroughputLimit",
            "perQueue",
            "You can specify the FifoThroughputLimit only when FifoQueue is set to true.",
        ),
    ];
    for (k, v, msg) in cases {
        let e = h
            .err(
                "CreateQueue",
                json!({ "QueueName": "s", "Attributes": { k: v } }),
            )
            .await;
        assert_err(&e, "InvalidAttributeName", msg);
    }
    let url = h.create("s", json!({})).await;
    let e = h
        .err(
            "SetQueueAttributes",
            json!({ "QueueUrl": url, "Attributes": { "FifoQueue": "true" } }),
        )
        .await;
    assert_err(&e, "InvalidAttributeName", "Unknown Attribute FifoQueue.");
    let f = h.create_fifo("f.fifo", json!({})).await;
    h.ok(
        "SetQueueAttributes",
        json!({ "QueueUrl": f, "Attributes": { "FifoQueue": "true" } }),
    )
    .await;
    let e = h
        .err(
            "SetQueueAttributes",
            json!({ "QueueUrl": f, "Attributes": { "FifoQueue": "false" } }),
        )
        .await;
    assert_err(
        &e,
        "InvalidAttributeValue",
        "Invalid value for the parameter FifoQueue. Reason: Modifying queue type is not supported.",
    );
}

#[tokio::test]
async fn get_queue_attributes_defaults() {
    let h = Harness::new();
    let url = h.create("q", json!({})).await;
    let v = h
        .ok(
            "GetQueueAttributes",
            json!({ "QueueUrl": url, "AttributeNames": ["All"] }),
        )
        .await;
    let a = v["Attributes"].as_object().unwrap();
    let keys: Vec<&str> = a.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateNumberOfMessagesNotVisible",
            "CreatedTimestamp",
            "DelaySeconds",
            "LastModifiedTimestamp",
            "MaximumMessageSize",
            "MessageRetentionPeriod",
            "QueueArn",
            "ReceiveMessageWaitTimeSeconds",
            "SqsManagedSseEnabled",
            "VisibilityTimeout"
        ]
    );
    assert_eq!(a["MaximumMessageSize"], "1048576");
    assert_eq!(a["MessageRetentionPeriod"], "345600");
    assert_eq!(a["VisibilityTimeout"], "30");
    assert_eq!(a["SqsManagedSseEnabled"], "true");
    assert_eq!(a["QueueArn"], "arn:aws:sqs:us-east-1:000000000000:q");
    let created: u64 = a["CreatedTimestamp"].as_str().unwrap().parse().unwrap();
    assert!(
        created > 1_600_000_000 && created < 100_000_000_000,
        "seconds, not ms"
    );

    let f = h.create_fifo("f.fifo", json!({})).await;
    let v = h
        .ok(
            "GetQueueAttributes",
            json!({ "QueueUrl": f, "AttributeNames": ["All"] }),
        )
        .await;
    let a = &v["Attributes"];
    assert_eq!(a["FifoQueue"], "true");
    assert_eq!(a["ContentBasedDeduplication"], "false");
    assert_eq!(a["DeduplicationScope"], "queue");
    assert_eq!(a["FifoThroughputLimit"], "perQueue");

    let v = h
        .ok(
            "GetQueueAttributes",
            json!({ "QueueUrl": url, "AttributeNames": ["VisibilityTimeout", "Policy", "FifoQueue"] }),
        )
        .await;
    assert_eq!(v, json!({ "Attributes": { "VisibilityTimeout": "30" } }));
    let v = h.ok("GetQueueAttributes", json!({ "QueueUrl": url })).await;
    assert_eq!(v, json!({}));
    let e = h
        .err(
            "GetQueueAttributes",
            json!({ "QueueUrl": url, "AttributeNames": ["Bogus"] }),
        )
        .await;
    assert_err(&e, "InvalidAttributeName", "Unknown Attribute Bogus.");
}

#[tokio::test]
async fn set_queue_attributes_validates_and_applies() {
    let h = Harness::new();
    let url = h.create("q", json!({})).await;
    let bad = [
        ("VisibilityTimeout", "43201"),
        ("VisibilityTimeout", "-1"),
        ("DelaySeconds", "901"),
        ("MaximumMessageSize", "1023"),
        ("MaximumMessageSize", "1048577"),
        ("MessageRetentionPeriod", "59"),
        ("MessageRetentionPeriod", "1209601"),
        ("ReceiveMessageWaitTimeSeconds", "21"),
        ("KmsDataKeyReusePeriodSeconds", "59"),
        ("SqsManagedSseEnabled", "maybe"),
        ("Policy", "not json"),
    ];
    for (k, v) in bad {
        let e = h
            .err(
                "SetQueueAttributes",
                json!({ "QueueUrl": url, "Attributes": { "DelaySeconds": "5", k: v } }),
            )
            .await;
        assert_err(
            &e,
            "InvalidAttributeValue",
            &format!("Invalid value for the parameter {k}."),
        );
    }
    // All or nothing: the valid DelaySeconds above was not applied.
    assert_eq!(h.attr(&url, "DelaySeconds").await.as_deref(), Some("0"));
    for name in [
        "QueueArn",
        "ApproximateNumberOfMessages",
        "CreatedTimestamp",
        "Nope",
    ] {
        let e = h
            .err(
                "SetQueueAttributes",
                json!({ "QueueUrl": url, "Attributes": { name: "1" } }),
            )
            .await;
        assert_err(
            &e,
            "InvalidAttributeName",
            &format!("Unknown Attribute {name}."),
        );
    }
    h.ok(
        "SetQueueAttributes",
        json!({ "QueueUrl": url, "Attributes": {
            "VisibilityTimeout": "69", "DelaySeconds": "420", "MaximumMessageSize": "2048",
            "MessageRetentionPeriod": "604800", "ReceiveMessageWaitTimeSeconds": "10",
            "Policy": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
        } }),
    )
    .await;
    let v = h
        .ok(
            "GetQueueAttributes",
            json!({ "QueueUrl": url, "AttributeNames": ["All"] }),
        )
        .await;
    let a = &v["Attributes"];
    assert_eq!(a["VisibilityTimeout"], "69");
    assert_eq!(a["DelaySeconds"], "420");
    assert_eq!(a["MaximumMessageSize"], "2048");
    assert_eq!(a["MessageRetentionPeriod"], "604800");
    assert_eq!(a["ReceiveMessageWaitTimeSeconds"], "10");
    assert_eq!(a["Policy"], "{\"Version\":\"2012-10-17\",\"Statement\":[]}");
    h.ok(
        "SetQueueAttributes",
        json!({ "QueueUrl": url, "Attributes": { "Policy": "" } }),
    )
    .await;
    assert_eq!(h.attr(&url, "Policy").await, None);

    // SSE: a KMS key replaces SQS-managed encryption; both at once is refused.
    h.ok(
        "SetQueueAttributes",
        json!({ "QueueUrl": url, "Attributes": { "KmsMasterKeyId": "testKeyId", "KmsDataKeyReusePeriodSeconds": "6000" } }),
    )
    .await;
    let v = h
        .ok(
            "GetQueueAttributes",
            json!({ "QueueUrl": url, "AttributeNames": ["KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled"] }),
        )
        .await;
    assert_eq!(
        v,
        json!({ "Attributes": { "KmsDataKeyReusePeriodSeconds": "6000", "KmsMasterKeyId": "testKeyId", "SqsManagedSseEnabled": "false" } })
    );
    let e = h
        .err(
            "SetQueueAttributes",
            json!({ "QueueUrl": url, "Attributes": { "KmsMasterKeyId": "k", "SqsManagedSseEnabled": "true" } }),
        )
        .await;
    assert_eq!(e.code, "InvalidAttributeName");
    h.ok(
        "SetQueueAttributes",
        json!({ "QueueUrl": url, "Attributes": { "KmsMasterKeyId": "", "KmsDataKeyReusePeriodSeconds": "300" } }),
    )
    .await;
    assert_eq!(h.attr(&url, "KmsMasterKeyId").await, None);

    let f = h.create_fifo("f.fifo", json!({})).await;
    h.ok(
        "SetQueueAttributes",
        json!({ "QueueUrl": f, "Attributes": { "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId", "ContentBasedDeduplication": "True" } }),
    )
    .await;
    assert_eq!(
        h.attr(&f, "FifoThroughputLimit").await.as_deref(),
        Some("perMessageGroupId")
    );
    assert_eq!(
        h.attr(&f, "ContentBasedDeduplication").await.as_deref(),
        Some("true")
    );
    let e = h
        .err(
            "SetQueueAttributes",
            json!({ "QueueUrl": f, "Attributes": { "DeduplicationScope": "everything" } }),
        )
        .await;
    assert_eq!(e.code, "InvalidAttributeValue");
}

#[tokio::test]
async fn tags_on_create_and_tag_untag_list() {
    let h = Harness::new();
    let url = h
        .ok(
            "CreateQueue",
            json!({ "QueueName": "t", "tags": { "team": "a", "env": "dev" } }),
        )
        .await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let v = h.ok("ListQueueTags", json!({ "QueueUrl": url })).await;
    assert_eq!(v, json!({ "Tags": { "env": "dev", "team": "a" } }));
    h.ok(
        "TagQueue",
        json!({ "QueueUrl": url, "Tags": { "team": "b", "tag3": "" } }),
    )
    .await;
    let v = h.ok("ListQueueTags", json!({ "QueueUrl": url })).await;
    assert_eq!(
        v,
        json!({ "Tags": { "env": "dev", "tag3": "", "team": "b" } })
    );
    h.ok(
        "UntagQueue",
        json!({ "QueueUrl": url, "TagKeys": ["env", "tag3", "absent"] }),
    )
    .await;
    let v = h.ok("ListQueueTags", json!({ "QueueUrl": url })).await;
    assert_eq!(v, json!({ "Tags": { "team": "b" } }));
    h.ok(
        "UntagQueue",
        json!({ "QueueUrl": url, "TagKeys": ["team"] }),
    )
    .await;
    assert_eq!(
        h.ok("ListQueueTags", json!({ "QueueUrl": url })).await,
        json!({})
    );
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let e = h
        .err("TagQueue", json!({ "QueueUrl": url, "Tags": many }))
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Too many tags added for queue t.",
    );
    let e = h.err("TagQueue", json!({ "QueueUrl": url })).await;
    assert_eq!(e.code, "MissingParameter");
}

#[tokio::test]
async fn permissions_are_kept_in_the_policy() {
    let h = Harness::new();
    let url = h.create("p", json!({})).await;
    let arn = h.arn(&url).await;
    h.ok(
        "AddPermission",
        json!({ "QueueUrl": url, "Label": "crossaccount", "AWSAccountIds": ["111111111111", "222222222222"], "Actions": ["ReceiveMessage"] }),
    )
    .await;
    let policy: Value = serde_json::from_str(&h.attr(&url, "Policy").await.unwrap()).unwrap();
    assert_eq!(
        policy,
        json!({
            "Version": "2008-10-17",
            "Id": format!("{arn}/SQSDefaultPolicy"),
            "Statement": [{
                "Sid": "crossaccount",
                "Effect": "Allow",
                "Principal": { "AWS": ["arn:aws:iam::111111111111:root", "arn:aws:iam::222222222222:root"] },
                "Action": "SQS:ReceiveMessage",
                "Resource": arn,
            }]
        })
    );
    let e = h
        .err(
            "AddPermission",
            json!({ "QueueUrl": url, "Label": "crossaccount", "AWSAccountIds": ["111111111111"], "Actions": ["SendMessage"] }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Value crossaccount for parameter Label is invalid. Reason: Already exists.",
    );
    h.ok(
        "AddPermission",
        json!({ "QueueUrl": url, "Label": "two", "AWSAccountIds": ["111111111111"], "Actions": ["SendMessage", "DeleteMessage"] }),
    )
    .await;
    let policy: Value = serde_json::from_str(&h.attr(&url, "Policy").await.unwrap()).unwrap();
    assert_eq!(
        policy["Statement"][1]["Action"],
        json!(["SQS:SendMessage", "SQS:DeleteMessage"])
    );
    assert_eq!(
        policy["Statement"][1]["Principal"]["AWS"],
        "arn:aws:iam::111111111111:root"
    );

    let e = h
        .err(
            "AddPermission",
            json!({ "QueueUrl": url, "Label": "x", "AWSAccountIds": ["1"], "Actions": ["SendMessage","ReceiveMessage","DeleteMessage","GetQueueUrl","GetQueueAttributes","PurgeQueue","ChangeMessageVisibility","ListQueueTags"] }),
        )
        .await;
    assert_err(
        &e,
        "OverLimit",
        "8 Actions were found, maximum allowed is 7.",
    );
    let e = h
        .err(
            "AddPermission",
            json!({ "QueueUrl": url, "Label": "x", "AWSAccountIds": ["1"], "Actions": ["CreateQueue"] }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Value SQS:CreateQueue for parameter ActionName is invalid. Reason: Only the queue owner is allowed to invoke this action.",
    );
    let e = h
        .err(
            "AddPermission",
            json!({ "QueueUrl": url, "Label": "x", "AWSAccountIds": ["1"] }),
        )
        .await;
    assert_err(
        &e,
        "MissingParameter",
        "The request must contain the parameter Actions.",
    );

    h.ok(
        "RemovePermission",
        json!({ "QueueUrl": url, "Label": "crossaccount" }),
    )
    .await;
    let policy: Value = serde_json::from_str(&h.attr(&url, "Policy").await.unwrap()).unwrap();
    assert_eq!(policy["Statement"].as_array().unwrap().len(), 1);
    let e = h
        .err(
            "RemovePermission",
            json!({ "QueueUrl": url, "Label": "crossaccount" }),
        )
        .await;
    assert_err(
        &e,
        "InvalidParameterValue",
        "Value crossaccount for parameter Label is invalid. Reason: can't find label.",
    );
    h.ok(
        "RemovePermission",
        json!({ "QueueUrl": url, "Label": "two" }),
    )
    .await;
    assert_eq!(h.attr(&url, "Policy").await, None);
}

#[tokio::test]
async fn purge_removes_everything_once_a_minute() {
    let h = Harness::new();
    let url = h.create("p", json!({})).await;
    for i in 0..5 {
        h.send(&url, &format!("m{i}")).await;
    }
    h.receive(&url, json!({ "MaxNumberOfMessages": 2 })).await;
    assert_eq!(h.counts(&url).await, (3, 2, 0));
    h.ok("PurgeQueue", json!({ "QueueUrl": url })).await;
    assert_eq!(h.counts(&url).await, (0, 0, 0));
    let e = h.err("PurgeQueue", json!({ "QueueUrl": url })).await;
    assert_err(
        &e,
        "PurgeQueueInProgress",
        "Only one PurgeQueue operation on p is allowed every 60 seconds.",
    );
    assert_eq!(e.status, 403);
    h.advance(60_001);
    h.send(&url, "after").await;
    h.ok("PurgeQueue", json!({ "QueueUrl": url })).await;
    assert_eq!(h.counts(&url).await, (0, 0, 0));
}

#[tokio::test]
async fn queue_urls_from_any_host_and_bare_names() {
    let h = Harness::new();
    h.create("addr", json!({})).await;
    for url in [
        "http://localhost:4566/000000000000/addr",
        "http://127.0.0.1:4566/000000000000/addr",
        "https://sqs.us-east-1.amazonaws.com/000000000000/addr",
        "addr",
    ] {
        h.ok(
            "GetQueueAttributes",
            json!({ "QueueUrl": url, "AttributeNames": ["QueueArn"] }),
        )
        .await;
    }
    let mut ctx = h.ctx();
    ctx.host = "127.0.0.1:9999".into();
    let v = h
        .call_as(&ctx, "GetQueueUrl", json!({ "QueueName": "addr" }))
        .await
        .unwrap();
    assert_eq!(v["QueueUrl"], "http://127.0.0.1:9999/000000000000/addr");
    for url in [
        "http://localhost:4566/111111111111/addr",
        "nope",
        "http://localhost:4566",
    ] {
        let e = h
            .err(
                "GetQueueAttributes",
                json!({ "QueueUrl": url, "AttributeNames": ["All"] }),
            )
            .await;
        assert_eq!(e.code, "QueueDoesNotExist", "{url}");
    }
    let e = h.err("GetQueueAttributes", json!({})).await;
    assert_err(
        &e,
        "MissingParameter",
        "The request must contain the parameter QueueUrl.",
    );

    // Queues are partitioned by account and region.
    let other = RequestContext::for_account("111111111111", "eu-west-1");
    let v = h.call_as(&other, "ListQueues", json!({})).await.unwrap();
    assert_eq!(v, json!({}));
    h.call_as(&other, "CreateQueue", json!({ "QueueName": "addr" }))
        .await
        .unwrap();
    let v = h.call_as(&other, "ListQueues", json!({})).await.unwrap();
    assert_eq!(
        v["QueueUrls"],
        json!(["http://localhost:4566/111111111111/addr"])
    );
    assert_eq!(
        h.ok("ListQueues", json!({})).await["QueueUrls"],
        json!(["http://localhost:4566/000000000000/addr"])
    );
}

#[tokio::test]
async fn unknown_operation_is_invalid_action() {
    let h = Harness::new();
    let e = h.err("FlushEverything", json!({})).await;
    assert_eq!(e.code, "InvalidAction");
    assert_eq!(e.status, 400);
    assert_eq!(h.sqs.name(), "sqs");
}
