//! Init hooks, as LocalStack's `ready.d`: with `nimbus serve --init DIR`, the
//! executable files of `DIR/ready.d` run in name order, one at a time, once
//! the listener is ready (requests are served meanwhile), with the endpoint,
//! the root credentials and the region in their environment. This module owns
//! finding them, running them, logging their output (one info line per line,
//! prefixed with the script's name) and their progress, which the health
//! document shows (`"init"`) and `/_localstack/init` answers in LocalStack's
//! shape. A failing script is a warning, never fatal.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Running,
    Ok,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Ok => "ok",
            Status::Failed => "failed",
        }
    }

    /// LocalStack's names for the same states.
    fn localstack(self) -> &'static str {
        match self {
            Status::Pending => "UNKNOWN",
            Status::Running => "RUNNING",
            Status::Ok => "SUCCESSFUL",
            Status::Failed => "ERROR",
        }
    }
}

#[derive(Debug, Clone)]
struct Script {
    name: String,
    path: PathBuf,
    status: Status,
    exit_code: Option<i32>,
    /// Why it failed when there is no exit code (not startable, killed by a signal).
    error: Option<String>,
}

#[derive(Debug, Default)]
struct Progress {
    scripts: Vec<Script>,
    completed: bool,
}

/// One nimbus per process, and the health document is built far from serve:
/// the progress lives here rather than being threaded through the edge.
static PROGRESS: Mutex<Option<Progress>> = Mutex::new(None);

fn progress() -> std::sync::MutexGuard<'static, Option<Progress>> {
    PROGRESS.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the scripts see: where nimbus answers, as whom, in which region.
pub struct HookEnv {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

/// Finds the scripts of `dir/ready.d` (pending until [`run`]); non-executable
/// files and directories are skipped with a log line.
pub fn discover(dir: &Path) {
    let ready = dir.join("ready.d");
    let mut scripts = Vec::new();
    match std::fs::read_dir(&ready) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !path.is_file() {
                    tracing::info!("init: skipping {name}: not a file");
                } else if !is_executable(&path) {
                    tracing::info!("init: skipping {name}: not executable");
                } else {
                    scripts.push(Script {
                        name,
                        path,
                        status: Status::Pending,
                        exit_code: None,
                        error: None,
                    });
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!("init: {} does not exist; no hooks to run", ready.display());
        }
        Err(e) => tracing::warn!("init: cannot read {}: {e}", ready.display()),
    }
    *progress() = Some(Progress {
        completed: scripts.is_empty(),
        scripts,
    });
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

fn set(index: usize, f: impl FnOnce(&mut Script)) {
    if let Some(script) = progress().as_mut().and_then(|p| p.scripts.get_mut(index)) {
        f(script);
    }
}

/// Runs the discovered scripts one after another (in the background, after the
/// listener is ready).
pub async fn run(env: HookEnv) {
    let scripts: Vec<(String, PathBuf)> = progress()
        .as_ref()
        .map(|p| {
            p.scripts
                .iter()
                .map(|s| (s.name.clone(), s.path.clone()))
                .collect()
        })
        .unwrap_or_default();
    for (index, (name, path)) in scripts.into_iter().enumerate() {
        set(index, |s| s.status = Status::Running);
        tracing::info!("init: running {name}");
        let (status, exit_code, error) = run_one(&name, &path, &env).await;
        match (status, exit_code, &error) {
            (Status::Ok, _, _) => tracing::info!("init: {name} finished"),
            (_, Some(code), _) => tracing::warn!("init: {name} failed with exit code {code}"),
            (_, None, Some(why)) => tracing::warn!("init: {name} failed: {why}"),
            _ => tracing::warn!("init: {name} failed"),
        }
        set(index, |s| {
            s.status = status;
            s.exit_code = exit_code;
            s.error = error;
        });
    }
    if let Some(p) = progress().as_mut() {
        p.completed = true;
    }
}

async fn run_one(name: &str, path: &Path, env: &HookEnv) -> (Status, Option<i32>, Option<String>) {
    let mut command = tokio::process::Command::new(path);
    command
        .env("AWS_ENDPOINT_URL", &env.endpoint)
        .env("AWS_ACCESS_KEY_ID", &env.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_access_key)
        .env("AWS_DEFAULT_REGION", &env.region)
        .env("AWS_REGION", &env.region)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A script still running when nimbus exits does not outlive it.
        .kill_on_drop(true);
    if let Some(dir) = path.parent() {
        command.current_dir(dir);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return (Status::Failed, None, Some(format!("cannot start: {e}"))),
    };
    let out = child.stdout.take().map(|o| log_lines(name.to_string(), o));
    let err = child.stderr.take().map(|e| log_lines(name.to_string(), e));
    let waited = child.wait().await;
    // The pipes close when the script ends, unless it left a background process
    // holding them: that one's output is not waited for.
    for task in [out, err].into_iter().flatten() {
        let abort = task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    match waited {
        Ok(s) if s.success() => (Status::Ok, Some(0), None),
        Ok(s) => match s.code() {
            Some(code) => (Status::Failed, Some(code), None),
            None => {
                use std::os::unix::process::ExitStatusExt;
                let why = match s.signal() {
                    Some(sig) => format!("killed by signal {sig}"),
                    None => "ended abnormally".to_string(),
                };
                (Status::Failed, None, Some(why))
            }
        },
        Err(e) => (Status::Failed, None, Some(format!("cannot wait: {e}"))),
    }
}

fn log_lines(
    name: String,
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!("init {name}: {line}");
        }
    })
}

/// `"init"` of the health document: `{"ready": [{"script", "status", "exit_code"}], "completed"}`.
pub fn health() -> Value {
    let guard = progress();
    let Some(p) = guard.as_ref() else {
        return json!({"ready": [], "completed": true});
    };
    let ready: Vec<Value> = p
        .scripts
        .iter()
        .map(|s| {
            let mut v = json!({
                "script": s.name,
                "status": s.status.as_str(),
                "exit_code": s.exit_code,
            });
            if let Some(e) = &s.error {
                v["error"] = json!(e);
            }
            v
        })
        .collect();
    json!({"ready": ready, "completed": p.completed})
}

/// The answer at `/_localstack/init{rest}`: `rest` is empty or a `/stage`; None
/// when no such stage exists.
pub fn localstack_answer(rest: &str) -> Option<String> {
    let stage = match rest.trim_end_matches('/') {
        "" => None,
        r => Some(r.strip_prefix('/')?),
    };
    localstack(stage).map(|v| v.to_string())
}

/// LocalStack's `/_localstack/init` document (`stage` None) or one stage's
/// (`/_localstack/init/ready`); nimbus has only the READY stage, the others are
/// complete or (SHUTDOWN) not reached. None for an unknown stage.
fn localstack(stage: Option<&str>) -> Option<Value> {
    let guard = progress();
    let (scripts, completed): (Vec<Value>, bool) = match guard.as_ref() {
        Some(p) => (
            p.scripts
                .iter()
                .map(|s| json!({"stage": "READY", "name": s.name, "state": s.status.localstack()}))
                .collect(),
            p.completed,
        ),
        None => (Vec::new(), true),
    };
    match stage.map(str::to_ascii_uppercase).as_deref() {
        None => Some(json!({
            "completed": {"BOOT": true, "START": true, "READY": completed, "SHUTDOWN": false},
            "scripts": scripts,
        })),
        Some("READY") => Some(json!({"completed": completed, "scripts": scripts})),
        Some("BOOT") | Some("START") => Some(json!({"completed": true, "scripts": []})),
        Some("SHUTDOWN") => Some(json!({"completed": false, "scripts": []})),
        Some(_) => None,
    }
}
