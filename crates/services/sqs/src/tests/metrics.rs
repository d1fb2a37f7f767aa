//! The AWS/SQS metrics as CloudWatch collects them: counters of sends,
//! receives, deletes and empty receives, the size statistics, the gauges of a
//! standard and a FIFO queue, the age of the oldest message, and which queues
//! publish (active ones only).

use super::Harness;
use nimbus_core::telemetry::{CollectionWindow, Publication, PublishedValue};
use serde_json::json;

fn window(minute: u64) -> CollectionWindow {
    CollectionWindow {
        start_ms: minute * 60_000,
        end_ms: (minute + 1) * 60_000,
    }
}

/// The value of `metric` for `queue` in a collection (None: not published).
fn value(pubs: &[Publication], queue: &str, metric: &str) -> Option<PublishedValue> {
    pubs.iter()
        .flat_map(|p| &p.data)
        .find(|d| {
            d.metric_name == metric
                && d.dimensions == vec![("QueueName".to_string(), queue.to_string())]
        })
        .map(|d| d.value)
}

fn single(pubs: &[Publication], queue: &str, metric: &str) -> f64 {
    match value(pubs, queue, metric) {
        Some(PublishedValue::Value(v)) => v,
        other => panic!("{metric} of {queue}: {other:?}"),
    }
}

#[tokio::test]
async fn a_standard_queue_publishes_its_minute() {
    let h = Harness::new();
    let url = h.create("jobs", json!({})).await;
    let source = h.sqs.metric_source();
    for body in ["a", "bb", "ccc", "dddd", "eeeee"] {
        h.send(&url, body).await;
    }
    let got = h.receive(&url, json!({"MaxNumberOfMessages": 2})).await;
    assert_eq!(got.len(), 2);
    let handle = got[0]["ReceiptHandle"].as_str().unwrap();
    h.ok(
        "DeleteMessage",
        json!({"QueueUrl": url, "ReceiptHandle": handle}),
    )
    .await;
    let delayed = h
        .ok(
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": "later", "DelaySeconds": 60}),
        )
        .await;
    assert!(delayed["MessageId"].is_string());
    h.advance(5_000);

    let pubs = source.collect(window(100)).await;
    assert_eq!(pubs.len(), 1);
    assert_eq!(pubs[0].namespace, "AWS/SQS");
    assert_eq!(pubs[0].account, super::ACCOUNT);
    assert!(pubs[0].data.iter().all(|d| d.timestamp_ms == 6_000_000));
    assert_eq!(single(&pubs, "jobs", "NumberOfMessagesSent"), 6.0);
    assert_eq!(single(&pubs, "jobs", "NumberOfMessagesReceived"), 2.0);
    assert_eq!(single(&pubs, "jobs", "NumberOfMessagesDeleted"), 1.0);
    assert_eq!(single(&pubs, "jobs", "NumberOfEmptyReceives"), 0.0);
    assert_eq!(
        single(&pubs, "jobs", "ApproximateNumberOfMessagesVisible"),
        3.0
    );
    assert_eq!(
        single(&pubs, "jobs", "ApproximateNumberOfMessagesNotVisible"),
        1.0
    );
    assert_eq!(
        single(&pubs, "jobs", "ApproximateNumberOfMessagesDelayed"),
        1.0
    );
    assert!(single(&pubs, "jobs", "ApproximateAgeOfOldestMessage") >= 5.0);
    assert_eq!(
        value(&pubs, "jobs", "SentMessageSize"),
        Some(PublishedValue::Statistics {
            sample_count: 6.0,
            sum: 20.0,
            minimum: 1.0,
            maximum: 5.0,
        })
    );

    // The next minute: the counters start again, an empty receive counts,
    // and a minute with no send has no size datapoint.
    assert!(h.receive(&url, json!({"VisibilityTimeout": 0})).await.len() == 1);
    h.ok(
        "ReceiveMessage",
        json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 30}),
    )
    .await;
    let empty = h.ok("ReceiveMessage", json!({"QueueUrl": url})).await;
    assert!(empty.get("Messages").is_none());
    let pubs = source.collect(window(101)).await;
    assert_eq!(single(&pubs, "jobs", "NumberOfMessagesSent"), 0.0);
    assert_eq!(single(&pubs, "jobs", "NumberOfMessagesReceived"), 4.0);
    assert_eq!(single(&pubs, "jobs", "NumberOfEmptyReceives"), 1.0);
    assert_eq!(value(&pubs, "jobs", "SentMessageSize"), None);
}

#[tokio::test]
async fn a_fifo_queue_counts_stored_sends_not_duplicates() {
    let h = Harness::new();
    let url = h.create_fifo("orders.fifo", json!({})).await;
    let source = h.sqs.metric_source();
    h.send_fifo(&url, "one", "g1", "d1").await;
    h.send_fifo(&url, "one", "g1", "d1").await;
    h.send_fifo(&url, "two", "g2", "d2").await;
    let got = h.receive(&url, json!({"MaxNumberOfMessages": 1})).await;
    assert_eq!(got.len(), 1);
    let pubs = source.collect(window(7)).await;
    assert_eq!(single(&pubs, "orders.fifo", "NumberOfMessagesSent"), 2.0);
    assert_eq!(
        single(&pubs, "orders.fifo", "NumberOfMessagesReceived"),
        1.0
    );
    assert_eq!(
        single(&pubs, "orders.fifo", "ApproximateNumberOfMessagesVisible"),
        1.0
    );
    assert_eq!(
        single(
            &pubs,
            "orders.fifo",
            "ApproximateNumberOfMessagesNotVisible"
        ),
        1.0
    );
}

#[tokio::test]
async fn only_active_queues_publish_and_for_six_hours() {
    let h = Harness::new();
    let url = h.create("idle", json!({})).await;
    let source = h.sqs.metric_source();
    // Created: active now, and still publishing zeros six hours on.
    assert!(value(
        &source.collect(window(0)).await,
        "idle",
        "NumberOfMessagesSent"
    )
    .is_some());
    assert!(value(
        &source.collect(window(360)).await,
        "idle",
        "NumberOfMessagesSent"
    )
    .is_some());
    assert!(value(
        &source.collect(window(361)).await,
        "idle",
        "NumberOfMessagesSent"
    )
    .is_none());
    // Any call on it makes it active again.
    h.ok(
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["All"]}),
    )
    .await;
    assert!(value(
        &source.collect(window(400)).await,
        "idle",
        "NumberOfMessagesSent"
    )
    .is_some());
    // A queue that holds messages stays active without calls.
    h.send(&url, "x").await;
    assert!(value(
        &source.collect(window(401)).await,
        "idle",
        "NumberOfMessagesSent"
    )
    .is_some());
    assert!(value(
        &source.collect(window(2000)).await,
        "idle",
        "NumberOfMessagesSent"
    )
    .is_some());
}

#[tokio::test]
async fn a_queue_not_used_since_a_restart_publishes_only_when_it_holds_messages() {
    let h = Harness::new();
    let empty = h.create("empty", json!({})).await;
    let full = h.create("full", json!({})).await;
    h.send(&full, "kept").await;
    assert!(!empty.is_empty());
    let h = h.reopen().await;
    let source = h.sqs.metric_source();
    let pubs = source.collect(window(5)).await;
    assert!(value(&pubs, "empty", "NumberOfMessagesSent").is_none());
    assert_eq!(
        single(&pubs, "full", "ApproximateNumberOfMessagesVisible"),
        1.0
    );
}

/// What one collection costs: `cargo test --release -p nimbus-sqs
/// collection_cost -- --ignored --nocapture` prints the time per queue.
#[tokio::test]
#[ignore]
async fn collection_cost() {
    let h = Harness::new();
    let n = 2000;
    for i in 0..n {
        let url = h.create(&format!("q{i}"), json!({})).await;
        if i % 2 == 0 {
            h.send(&url, "x").await;
        }
    }
    let source = h.sqs.metric_source();
    for m in 0..3 {
        let t = std::time::Instant::now();
        let pubs = source.collect(window(m)).await;
        let took = t.elapsed();
        let data: usize = pubs.iter().map(|p| p.data.len()).sum();
        println!(
            "{n} queues: {took:?} per collection, {:.1} us per queue, {data} datapoints",
            took.as_secs_f64() * 1e6 / n as f64
        );
    }
}
