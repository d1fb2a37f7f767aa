//! What nimbus tells its user on stderr: the tracing subscriber (text, coloured
//! only on a terminal, or JSON lines for CI log tools) and the request log, one
//! line per API request with service, operation, status, AWS error code,
//! duration, account and region. The edge fills a per-request [`Note`] as it
//! learns these facts (service after routing, caller after authentication,
//! operation after decoding, error code when encoding an error) and writes the
//! line once the response is ready, so no step has to pass them along.

use std::cell::RefCell;
use std::future::Future;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (time, level, target and the event's fields).
    Json,
}

/// JSON lines carry the request's facts as fields; text lines carry them in the message.
static JSON: AtomicBool = AtomicBool::new(false);

/// Installs the subscriber for `serve`. `filter` was validated at start.
pub fn init(filter: tracing_subscriber::EnvFilter, format: LogFormat) {
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| BatchedStderr);
    match format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        LogFormat::Json => {
            JSON.store(true, Ordering::Relaxed);
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .init()
        }
    }
}

/// Log lines gathered for the writer thread; at most this many bytes wait before a
/// writer flushes them itself (stderr stalled by a slow reader must not eat memory).
const MAX_PENDING: usize = 1 << 20;
/// How long the writer thread lets lines gather before one write.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

struct Pending {
    lines: std::sync::Mutex<Vec<u8>>,
    ready: std::sync::Condvar,
}

static PENDING: Pending = Pending {
    lines: std::sync::Mutex::new(Vec::new()),
    ready: std::sync::Condvar::new(),
};

/// stderr, written in batches by one thread: one write(2) for all the lines of a
/// few milliseconds instead of one per request line, which kept a request log
/// at about a tenth of a small request's CPU (measured with `nimbus bench`).
struct BatchedStderr;

impl std::io::Write for BatchedStderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        static WRITER: std::sync::Once = std::sync::Once::new();
        WRITER.call_once(|| {
            let spawned = std::thread::Builder::new()
                .name("nimbus-log".into())
                .spawn(write_batches);
            if spawned.is_err() {
                // Without the thread every writer flushes for itself (below).
                lines().reserve(MAX_PENDING + 1);
            }
        });
        let mut pending = lines();
        let was_empty = pending.is_empty();
        pending.extend_from_slice(bytes);
        if pending.len() > MAX_PENDING {
            let batch = std::mem::take(&mut *pending);
            drop(pending);
            write_stderr(&batch);
        } else if was_empty {
            PENDING.ready.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lines() -> std::sync::MutexGuard<'static, Vec<u8>> {
    PENDING.lines.lock().unwrap_or_else(|p| p.into_inner())
}

fn write_stderr(batch: &[u8]) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(batch);
    let _ = err.flush();
}

fn write_batches() {
    loop {
        {
            let mut pending = lines();
            while pending.is_empty() {
                pending = PENDING
                    .ready
                    .wait(pending)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        std::thread::sleep(BATCH_WINDOW);
        flush();
    }
}

/// Writes out every line still waiting (at shutdown).
pub fn flush() {
    let batch = std::mem::take(&mut *lines());
    if !batch.is_empty() {
        write_stderr(&batch);
    }
}

/// The facts of one request, learned step by step.
#[derive(Debug, Default)]
pub struct Note {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub error: Option<String>,
    /// Internal probes (health polls) that would drown the log.
    pub quiet: bool,
}

tokio::task_local! {
    static NOTE: RefCell<Note>;
}

/// Adds to the current request's note; a no-op outside a request.
pub fn note(update: impl FnOnce(&mut Note)) {
    let _ = NOTE.try_with(|n| update(&mut n.borrow_mut()));
}

pub fn note_error(code: &str) {
    note(|n| n.error = Some(code.to_string()));
}

/// Runs one request with a fresh note and returns the note with the answer.
pub async fn scoped<F: Future>(request: F) -> (F::Output, Note) {
    NOTE.scope(RefCell::new(Note::default()), async move {
        let output = request.await;
        let note = NOTE.with(|n| n.take());
        (output, note)
    })
    .await
}

/// Writes the request's line at info level (target `request`).
pub fn request(note: &Note, method: &str, path: &str, status: u16, elapsed: Duration) {
    if note.quiet || !tracing::enabled!(target: "request", tracing::Level::INFO) {
        return;
    }
    let millis = elapsed.as_secs_f64() * 1000.0;
    let account = note.account.as_deref().unwrap_or("-");
    let region = note.region.as_deref().unwrap_or("-");
    let error = note.error.as_deref().unwrap_or("");
    if JSON.load(Ordering::Relaxed) {
        tracing::info!(
            target: "request",
            service = note.service.as_deref().unwrap_or(""),
            operation = note.operation.as_deref().unwrap_or(""),
            status,
            error,
            duration_ms = (millis * 1000.0).round() / 1000.0,
            account,
            region,
            method,
            path,
            "request"
        );
        return;
    }
    let what = match (&note.service, &note.operation) {
        (Some(s), Some(o)) => format!("{s}.{o}"),
        (Some(s), None) => format!("{s} {method} {path}"),
        _ => format!("{method} {path}"),
    };
    let error = if error.is_empty() {
        String::new()
    } else {
        format!(" {error}")
    };
    tracing::info!(
        target: "request",
        "{what} {status}{error} {} acct={account} {region}",
        human_duration(millis)
    );
}

fn human_duration(millis: f64) -> String {
    if millis < 10.0 {
        format!("{millis:.1}ms")
    } else if millis < 10_000.0 {
        format!("{millis:.0}ms")
    } else {
        format!("{:.1}s", millis / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_note_is_per_request() {
        let ((), first) = scoped(async {
            note(|n| n.service = Some("sqs".into()));
            note_error("QueueDoesNotExist");
        })
        .await;
        let ((), second) = scoped(async {}).await;
        assert_eq!(first.service.as_deref(), Some("sqs"));
        assert_eq!(first.error.as_deref(), Some("QueueDoesNotExist"));
        assert!(second.service.is_none() && second.error.is_none());
        // Outside a request, noting is harmless.
        note_error("x");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(0.43), "0.4ms");
        assert_eq!(human_duration(123.4), "123ms");
        assert_eq!(human_duration(12_345.0), "12.3s");
    }
}
