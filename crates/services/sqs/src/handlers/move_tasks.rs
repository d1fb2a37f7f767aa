//! Dead-letter redrive: StartMessageMoveTask, CancelMessageMoveTask and
//! ListMessageMoveTasks, and the mover that runs each task.
//!
//! A task takes deliverable messages out of the dead-letter queue in chunks
//! and puts them into the destination (the given queue, or each message's
//! original source queue), at most MaxNumberOfMessagesPerSecond. Each chunk is
//! one store commit that deletes from the source, writes into the
//! destination and updates the task's progress, so a crash never duplicates
//! or loses a message and running tasks resume after a restart.

use crate::errors;
use crate::input::{opt_int, parse, required};
use crate::names;
use crate::queue::{Msg, MsgData, MsgHead, Queue};
use crate::state::{self, MoveTaskRecord};
use crate::Inner;
use nimbus_core::{AwsError, RequestContext};
use nimbus_store::Batch;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Messages moved per commit when no rate is set.
const UNLIMITED_CHUNK: usize = 100;
/// Finished tasks kept per source queue (ListMessageMoveTasks shows up to 10).
const KEEP_FINISHED: usize = 10;

pub struct MoveTask {
    pub id: String,
    info: Mutex<MoveTaskRecord>,
    cancelled: AtomicBool,
    wake: Notify,
}

impl MoveTask {
    pub fn new(rec: MoveTaskRecord) -> MoveTask {
        MoveTask {
            id: rec.id.clone(),
            info: Mutex::new(rec),
            cancelled: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    /// Stops the mover without touching the task's recorded state (reset, tests).
    pub fn halt(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    fn info(&self) -> MoveTaskRecord {
        crate::lock(&self.info).clone()
    }

    fn update(&self, f: impl FnOnce(&mut MoveTaskRecord)) -> MoveTaskRecord {
        let mut g = crate::lock(&self.info);
        f(&mut g);
        g.clone()
    }
}

fn task_put(batch: &mut Batch, rec: &MoveTaskRecord) {
    batch.put(
        state::MOVE_TASKS,
        rec.id.clone().into_bytes(),
        state::to_json(rec),
    );
}

/// Starts running `task` in the background.
pub fn spawn(inner: Arc<Inner>, task: Arc<MoveTask>) {
    tokio::spawn(async move {
        run(&inner, &task).await;
    });
}

async fn finish(inner: &Inner, task: &MoveTask, status: &str, failure: Option<&str>) {
    let rec = task.update(|r| {
        if r.status == "RUNNING" {
            r.status = status.to_string();
            r.failure = failure.map(str::to_string);
        }
    });
    let mut b = Batch::new();
    task_put(&mut b, &rec);
    if let Err(e) = inner.commit(b).await {
        tracing::warn!("sqs: could not record move task {}: {}", task.id, e);
    }
}

async fn run(inner: &Arc<Inner>, task: &Arc<MoveTask>) {
    loop {
        let rec = task.info();
        if rec.status != "RUNNING" || task.cancelled.load(Ordering::SeqCst) {
            // Cancellation already recorded the final state.
            return;
        }
        if rec.moved >= rec.to_move {
            finish(inner, task, "COMPLETED", None).await;
            return;
        }
        let Some(src) = inner
            .queue_by_arn(&rec.source_arn)
            .filter(|q| !q.is_deleted())
        else {
            finish(
                inner,
                task,
                "FAILED",
                Some("AWS.SimpleQueueService.NonExistentQueue"),
            )
            .await;
            return;
        };
        let chunk = rec
            .rate
            .map_or(UNLIMITED_CHUNK, |r| (r as usize).clamp(1, UNLIMITED_CHUNK))
            .min((rec.to_move - rec.moved) as usize)
            .max(1);
        let now = inner.now();
        let taken = {
            let mut st = src.lock();
            st.advance(now);
            st.take_ready(now, chunk)
        };
        if taken.is_empty() {
            finish(inner, task, "COMPLETED", None).await;
            return;
        }
        let n = taken.len();
        match move_chunk(inner, task, &src, &rec, taken, now).await {
            Ok(()) => {}
            Err(reason) => {
                finish(inner, task, "FAILED", Some(&reason)).await;
                return;
            }
        }
        if let Some(rate) = rec.rate {
            let pause = Duration::from_millis(n as u64 * 1000 / rate.max(1) as u64);
            tokio::select! {
                _ = task.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        } else {
            tokio::task::yield_now().await;
        }
    }
}

/// Moves one chunk durably; on failure the messages go back where they were.
async fn move_chunk(
    inner: &Arc<Inner>,
    task: &MoveTask,
    src: &Arc<Queue>,
    rec: &MoveTaskRecord,
    taken: Vec<(u64, Msg)>,
    now: u64,
) -> Result<(), String> {
    // Bodies and attributes are in the store, not in the queue's memory.
    let datas: Vec<Option<MsgData>> = taken
        .iter()
        .map(|(seq, _)| state::read_message(&inner.store, src, *seq))
        .collect();
    let mut dests: HashMap<String, Arc<Queue>> = HashMap::new();
    for data in datas.iter().flatten() {
        let arn = rec
            .destination_arn
            .clone()
            .or_else(|| data.dlq_source_arn.clone())
            .unwrap_or_default();
        if dests.contains_key(&arn) {
            continue;
        }
        match inner.queue_by_arn(&arn).filter(|q| !q.is_deleted()) {
            Some(q) => {
                dests.insert(arn, q);
            }
            None => {
                src.lock().put_back(taken);
                return Err("AWS.SimpleQueueService.NonExistentQueue".to_string());
            }
        }
    }
    // Each destination's messages go in a batch under its lock; then one
    // batch under the source's lock deletes them there and records progress.
    // The log keeps that order: a crash in between duplicates, never loses.
    let mut by_dest: HashMap<String, Vec<(u64, MsgData)>> = HashMap::new();
    for ((seq, _), data) in taken.iter().zip(datas) {
        let Some(mut data) = data else {
            continue;
        };
        let arn = rec
            .destination_arn
            .clone()
            .or_else(|| data.dlq_source_arn.clone())
            .unwrap_or_default();
        data.dlq_source_arn = None;
        by_dest.entry(arn).or_default().push((*seq, data));
    }
    let mut placed: Vec<(Arc<Queue>, Vec<u64>)> = Vec::new();
    let mut writes = Vec::new();
    for (arn, items) in by_dest {
        let Some(dest) = dests.get(&arn) else {
            continue;
        };
        let mut batch = Batch::new();
        let mut st = dest.lock();
        let mut seqs = Vec::with_capacity(items.len());
        for (_, data) in &items {
            // A redriven message starts over: new receive count, new retention.
            let new_seq = st.insert_pending(MsgHead::of(data), 0, 0, now, 0);
            batch.put(
                state::MESSAGES,
                dest.message_key(new_seq),
                state::to_json(&state::MessageRecordOut {
                    v: state::RECORD_VERSION,
                    d: data,
                    enq: now,
                    du: 0,
                    rc: 0,
                    fr: 0,
                }),
            );
            seqs.push(new_seq);
        }
        writes.push(inner.submit_for(dest, &mut st, batch));
        drop(st);
        placed.push((dest.clone(), seqs));
    }
    let moved: usize = placed.iter().map(|(_, s)| s.len()).sum();
    let mut progress = task.info();
    progress.moved += moved as u64;
    let mut batch = Batch::new();
    for (seq, _) in &taken {
        let k = src.message_key(*seq);
        batch.delete(state::MESSAGES, k.clone());
        batch.delete(state::MESSAGE_STATE, k);
    }
    task_put(&mut batch, &progress);
    let source_done = inner.submit_for(src, &mut src.lock(), batch);
    let mut result = Ok(());
    for w in writes {
        result = result.and(w.await);
    }
    result = result.and(source_done.await);
    let now = inner.now();
    for (dest, seqs) in &placed {
        let mut st = dest.lock();
        if result.is_err() {
            st.unsubmit(seqs.len() as u64);
        }
        for seq in seqs {
            if result.is_ok() {
                st.finish_pending(*seq, now);
            } else {
                st.remove(*seq);
            }
        }
        drop(st);
        dest.notify.notify_waiters();
    }
    if let Err(e) = result {
        src.lock().put_back(taken);
        return Err(e.message);
    }
    let n = moved as u64;
    let latest = task.update(|r| r.moved += n);
    if latest.status != "RUNNING" {
        // Cancelled while this chunk was being written: record the final count.
        let mut b = Batch::new();
        task_put(&mut b, &latest);
        let _ = inner.commit(b).await;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartIn {
    source_arn: Option<String>,
    destination_arn: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    max_number_of_messages_per_second: Option<i64>,
}

fn is_dead_letter_queue(inner: &Inner, dlq: &Queue) -> bool {
    inner
        .partition(&dlq.key.account, &dlq.key.region)
        .iter()
        .any(|q| {
            q.lock()
                .attrs
                .redrive_policy
                .as_ref()
                .is_some_and(|p| p.dead_letter_target_arn == dlq.arn)
        })
}

pub async fn start_message_move_task(
    inner: &Arc<Inner>,
    ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: StartIn = parse(input)?;
    let source_arn = required(&req.source_arn, "SourceArn")?.to_string();
    if !names::looks_like_arn(&source_arn) {
        return Err(errors::bad_arn("SourceArn"));
    }
    let src = inner
        .queue_by_arn(&source_arn)
        .ok_or_else(|| errors::arn_not_found("SourceArn"))?;
    if let Some(r) = req.max_number_of_messages_per_second {
        if !(1..=500).contains(&r) {
            return Err(errors::invalid_value(
                r,
                "MaxNumberOfMessagesPerSecond",
                "Must be between 1 and 500, if provided.",
            ));
        }
    }
    if !is_dead_letter_queue(inner, &src) {
        return Err(AwsError::invalid_parameter(
            "Source queue must be configured as a Dead Letter Queue.",
        ));
    }
    let destination = match req.destination_arn.filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => {
            if !names::looks_like_arn(&d) {
                return Err(errors::bad_arn("DestinationArn"));
            }
            let dest = inner
                .queue_by_arn(&d)
                .ok_or_else(|| errors::arn_not_found("DestinationArn"))?;
            if d == source_arn {
                return Err(AwsError::invalid_parameter(
                    "Source queue arn and destination queue arn cannot be the same.",
                ));
            }
            if dest.fifo != src.fifo {
                return Err(AwsError::invalid_parameter(
                    "The source queue and the destination queue must be of the same queue type.",
                ));
            }
            Some(d)
        }
    };
    let now = inner.now();
    let to_move = {
        let mut st = src.lock();
        st.advance(now);
        st.counts().0 as u64
    };
    let rec = MoveTaskRecord {
        v: state::RECORD_VERSION,
        id: uuid::Uuid::new_v4().to_string(),
        account: ctx.account_id.clone(),
        region: inner.region(ctx),
        source_arn: source_arn.clone(),
        destination_arn: destination,
        rate: req.max_number_of_messages_per_second.map(|r| r as u32),
        status: "RUNNING".into(),
        started_ms: now,
        to_move,
        moved: 0,
        failure: None,
    };
    let task = Arc::new(MoveTask::new(rec.clone()));
    let mut batch = Batch::new();
    {
        let mut tasks = crate::lock(&inner.tasks);
        if tasks
            .values()
            .any(|t| t.info().source_arn == source_arn && t.info().status == "RUNNING")
        {
            return Err(AwsError::invalid_parameter(
                "There is already a task running. Only one active task is allowed for a source queue arn at a given time.",
            ));
        }
        // Forget the oldest finished tasks of this source.
        let mut finished: Vec<(u64, String)> = tasks
            .values()
            .map(|t| t.info())
            .filter(|i| i.source_arn == source_arn && i.status != "RUNNING")
            .map(|i| (i.started_ms, i.id))
            .collect();
        finished.sort();
        while finished.len() >= KEEP_FINISHED {
            let (_, id) = finished.remove(0);
            tasks.remove(&id);
            batch.delete(state::MOVE_TASKS, id.into_bytes());
        }
        tasks.insert(rec.id.clone(), task.clone());
    }
    task_put(&mut batch, &rec);
    if let Err(e) = inner.commit(batch).await {
        crate::lock(&inner.tasks).remove(&rec.id);
        return Err(e);
    }
    spawn(inner.clone(), task);
    Ok(json!({ "TaskHandle": names::encode_task_handle(&rec.id, &source_arn) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CancelIn {
    task_handle: Option<String>,
}

pub async fn cancel_message_move_task(
    inner: &Arc<Inner>,
    _ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: CancelIn = parse(input)?;
    let handle = required(&req.task_handle, "TaskHandle")?;
    let (task_id, source_arn) = names::decode_task_handle(handle)
        .ok_or_else(|| AwsError::invalid_parameter("Value for parameter TaskHandle is invalid."))?;
    if inner.queue_by_arn(&source_arn).is_none() {
        return Err(errors::arn_not_found("SourceArn"));
    }
    let task = crate::lock(&inner.tasks)
        .get(&task_id)
        .cloned()
        .filter(|t| t.info().source_arn == source_arn)
        .ok_or_else(|| errors::resource_not_found("Task does not exist."))?;
    if task.info().status != "RUNNING" {
        return Err(AwsError::invalid_parameter(
            "Only tasks with status RUNNING can be cancelled.",
        ));
    }
    task.cancelled.store(true, Ordering::SeqCst);
    let rec = task.update(|r| r.status = "CANCELLED".into());
    task.wake.notify_waiters();
    let mut batch = Batch::new();
    task_put(&mut batch, &rec);
    inner.commit(batch).await?;
    Ok(json!({ "ApproximateNumberOfMessagesMoved": rec.moved }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListIn {
    source_arn: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    max_results: Option<i64>,
}

pub fn list_message_move_tasks(
    inner: &Arc<Inner>,
    _ctx: &RequestContext,
    input: Value,
) -> Result<Value, AwsError> {
    let req: ListIn = parse(input)?;
    let source_arn = required(&req.source_arn, "SourceArn")?.to_string();
    if !names::looks_like_arn(&source_arn) {
        return Err(errors::bad_arn("SourceArn"));
    }
    if inner.queue_by_arn(&source_arn).is_none() {
        return Err(errors::arn_not_found("SourceArn"));
    }
    let max = req.max_results.unwrap_or(1);
    if !(1..=10).contains(&max) {
        return Err(errors::invalid_value(
            max,
            "MaxResults",
            "You must enter a number that's between 1 and 10.",
        ));
    }
    let mut tasks: Vec<MoveTaskRecord> = crate::lock(&inner.tasks)
        .values()
        .map(|t| t.info())
        .filter(|i| i.source_arn == source_arn)
        .collect();
    tasks.sort_by_key(|t| std::cmp::Reverse(t.started_ms));
    let results: Vec<Value> = tasks
        .iter()
        .take(max as usize)
        .map(|t| {
            let mut m = Map::new();
            if t.status == "RUNNING" {
                m.insert(
                    "TaskHandle".into(),
                    json!(names::encode_task_handle(&t.id, &t.source_arn)),
                );
            }
            m.insert("Status".into(), json!(t.status));
            m.insert("SourceArn".into(), json!(t.source_arn));
            if let Some(d) = &t.destination_arn {
                m.insert("DestinationArn".into(), json!(d));
            }
            if let Some(r) = t.rate {
                m.insert("MaxNumberOfMessagesPerSecond".into(), json!(r));
            }
            m.insert("ApproximateNumberOfMessagesMoved".into(), json!(t.moved));
            m.insert("ApproximateNumberOfMessagesToMove".into(), json!(t.to_move));
            if let Some(f) = &t.failure {
                m.insert("FailureReason".into(), json!(f));
            }
            m.insert("StartedTimestamp".into(), json!(t.started_ms));
            Value::Object(m)
        })
        .collect();
    Ok(json!({ "Results": results }))
}
