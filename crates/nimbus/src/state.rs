//! Save and load of the whole cloud, wired to the server and the command line:
//! `POST /_nimbus/state/save` streams an archive of everything (see the
//! `nimbus-state` crate for the format) while nimbus keeps serving;
//! `POST /_nimbus/state/load` takes one, checks it whole into a staging
//! directory, and then restarts nimbus in place (same process, port and
//! arguments) on the loaded state, so that every service and every instance
//! that was running comes up exactly as at a normal start; `serve --load FILE`
//! does the same before the first start; `nimbus state save|load FILE` are the
//! clients. Both endpoints need the root credentials under `--auth enforce`.

use crate::edge::body::HttpBody;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt as _;
use nimbus_core::Service;
use nimbus_store::Store;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Staging directories of loads in progress, and old state set aside while a
/// loaded one moves in; both are removed at start if a crash left them.
const LOADING_PREFIX: &str = ".loading-";
const REPLACED_PREFIX: &str = ".replaced-";
/// Pieces of the archive stream.
const PIECE: usize = 256 * 1024;

/// What the state endpoints need from the running server.
pub struct Plane {
    pub store: Store,
    pub data_dir: PathBuf,
    pub services: BTreeMap<&'static str, Arc<dyn Service>>,
    /// One save or load at a time.
    busy: Arc<tokio::sync::Mutex<()>>,
    /// A checked state waiting for the restart that installs it.
    staged: Mutex<Option<PathBuf>>,
    /// Tells the serve loop to stop and restart on the staged state.
    restart: tokio::sync::watch::Sender<bool>,
}

impl Plane {
    pub fn new(
        store: Store,
        data_dir: PathBuf,
        services: BTreeMap<&'static str, Arc<dyn Service>>,
    ) -> (Arc<Plane>, tokio::sync::watch::Receiver<bool>) {
        let (restart, wait) = tokio::sync::watch::channel(false);
        let plane = Arc::new(Plane {
            store,
            data_dir,
            services,
            busy: Arc::default(),
            staged: Mutex::new(None),
            restart,
        });
        (plane, wait)
    }

    /// Streams an archive of the whole state as of now.
    pub async fn save(&self) -> Result<Response<HttpBody>, (StatusCode, String)> {
        let busy = self.busy.clone().lock_owned().await;
        let started = Instant::now();
        let mut holds = Vec::new();
        for (name, service) in &self.services {
            let hold = service.hold_files().await.map_err(|e| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{name} cannot hold its files: {}", e.message),
                )
            })?;
            holds.push(hold);
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
        let (store, dir) = (self.store.clone(), self.data_dir.clone());
        tokio::task::spawn_blocking(move || {
            let _one = busy;
            let mut out = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(PIECE),
                sent: 0,
            };
            match nimbus_state::save(&mut out, &dir, &store, holds, crate::health::VERSION) {
                Ok(summary) => tracing::info!(
                    "state saved: {} records, {} files ({} bytes of files), {} bytes of archive in {} ms",
                    summary.records,
                    summary.files,
                    summary.file_bytes,
                    out.sent,
                    started.elapsed().as_millis()
                ),
                Err(e) => {
                    tracing::error!("state save failed: {e}");
                    // The response ends with an error: the client sees an incomplete archive.
                    let _ = tx.blocking_send(Err(io::Error::other(e)));
                }
            }
        });
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let body = http_body_util::StreamBody::new(futures_util::StreamExt::map(stream, |piece| {
            piece.map(hyper::body::Frame::data)
        }))
        .boxed_unsync();
        let mut response = Response::new(body);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-tar"),
        );
        Ok(response)
    }

    /// Reads an archive from the request body into a staging directory and checks
    /// it whole; on success the server restarts on it a moment after answering.
    /// `payload_sha256` is the signed payload hash under `--auth enforce`: the body
    /// must match it, or nothing is loaded.
    pub async fn load(
        &self,
        body: hyper::body::Incoming,
        payload_sha256: Option<String>,
    ) -> Result<serde_json::Value, (StatusCode, String)> {
        let _one = self.busy.clone().lock_owned().await;
        let started = Instant::now();
        let staging = self.data_dir.join(format!(
            "{LOADING_PREFIX}{}",
            nimbus_core::random_string(b"0123456789abcdef", 12)
        ));
        let (tx, rx) = std::sync::mpsc::sync_channel::<Option<Bytes>>(8);
        let target = staging.clone();
        let reading = tokio::task::spawn_blocking(move || {
            let mut input = ChannelReader {
                rx,
                piece: Bytes::new(),
                sha: Sha256::new(),
                ended: false,
                failed: false,
            };
            let loaded = nimbus_state::load(&mut input, &target);
            // The signed hash covers the whole body, tar's closing blocks included.
            let _ = io::copy(&mut input, &mut io::sink());
            (loaded, hex::encode(input.sha.finalize()), input.failed)
        });
        let mut body = body;
        let mut body_failed = false;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        if tx.send(Some(data)).is_err() {
                            break; // the reader gave up: its error is the answer
                        }
                    }
                }
                Err(_) => {
                    body_failed = true;
                    break;
                }
            }
        }
        let _ = tx.send(if body_failed {
            None
        } else {
            Some(Bytes::new())
        });
        drop(tx);
        let (loaded, digest, cut) = reading
            .await
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let refuse = |status: StatusCode, why: String| {
            let _ = std::fs::remove_dir_all(&staging);
            tracing::warn!("state load refused: {why}");
            Err((status, why))
        };
        if body_failed || cut {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the request body ended early; nothing was loaded".into(),
            );
        }
        let loaded = match loaded {
            Ok(l) => l,
            Err(why) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!("{why}; nothing was loaded"),
                )
            }
        };
        if let Some(signed) = payload_sha256 {
            if !signed.eq_ignore_ascii_case(&digest) {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "the body does not match its signed x-amz-content-sha256; nothing was loaded"
                        .into(),
                );
            }
        }
        tracing::info!(
            "state load checked: {} records, {} files (written by nimbus {}) in {} ms; restarting on it",
            loaded.summary.records,
            loaded.summary.files,
            loaded.written_by,
            started.elapsed().as_millis()
        );
        let previous = self
            .staged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(staging);
        if let Some(old) = previous {
            let _ = std::fs::remove_dir_all(old);
        }
        // The serve loop stops accepting and lets this answer finish before it restarts.
        let _ = self.restart.send(true);
        let mut answer = loaded.summary.to_json();
        answer["status"] = "loaded".into();
        answer["written_by"] = loaded.written_by.into();
        answer["restarting"] = true.into();
        Ok(answer)
    }

    /// After the serve loop stopped for a load: the old state goes, the staged
    /// one moves in. Returns false when nothing was staged.
    pub fn install_staged(&self) -> Result<bool, String> {
        let Some(staging) = self.staged.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(false);
        };
        replace_state(&self.data_dir, &staging)?;
        Ok(true)
    }
}

/// Moves the current state of `data_dir` aside, installs `staging`, and removes
/// the old state. A crash in between leaves both directories for the next
/// start to clean up, and the data directory holding either state, never a mix
/// (the store moves last and first).
fn replace_state(data_dir: &Path, staging: &Path) -> Result<(), String> {
    let aside = data_dir.join(format!(
        "{REPLACED_PREFIX}{}",
        nimbus_core::random_string(b"0123456789abcdef", 12)
    ));
    std::fs::create_dir(&aside).map_err(|e| format!("cannot create {}: {e}", aside.display()))?;
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(data_dir)
        .map_err(|e| format!("cannot read {}: {e}", data_dir.display()))?
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| !n.to_string_lossy().starts_with('.'))
        .collect();
    // The store first: without it the directory reads as empty, never as half old.
    names.sort_by_key(|n| !n.to_string_lossy().starts_with("state."));
    for name in names {
        std::fs::rename(data_dir.join(&name), aside.join(&name))
            .map_err(|e| format!("cannot move {} aside: {e}", name.to_string_lossy()))?;
    }
    nimbus_state::install(staging, data_dir)?;
    let _ = std::fs::remove_dir_all(&aside);
    Ok(())
}

/// Removes what an interrupted load left in the data directory.
pub fn clean_leftovers(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(LOADING_PREFIX) || name.starts_with(REPLACED_PREFIX) {
            tracing::info!("removing {name}, left by an interrupted state load");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `serve --load FILE`: installs the archive into the data directory before the
/// store opens. A directory that already holds state is refused: loading would
/// silently replace it.
pub fn load_at_start(file: &Path, data_dir: &Path) -> Result<(), String> {
    if data_dir.join("state.redb").exists() {
        return Err(format!(
            "--load needs a data directory without state, and {} has some (use --ephemeral, another --data-dir, or `nimbus state load` against the running nimbus)",
            data_dir.display()
        ));
    }
    let started = Instant::now();
    let input =
        std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let staging = data_dir.join(format!(
        "{LOADING_PREFIX}{}",
        nimbus_core::random_string(b"0123456789abcdef", 12)
    ));
    let loaded = nimbus_state::load(io::BufReader::with_capacity(PIECE, input), &staging)
        .map_err(|e| format!("cannot load {}: {e}", file.display()))?;
    replace_state(data_dir, &staging)?;
    tracing::info!(
        "loaded {}: {} records, {} files (written by nimbus {}) in {} ms",
        file.display(),
        loaded.summary.records,
        loaded.summary.files,
        loaded.written_by,
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Replaces this process with a fresh start of itself, with the same arguments
/// but `--load` (its archive is installed already); an ephemeral data directory
/// is handed over to the new start instead of being made anew.
pub fn restart_in_place(ephemeral_dir: Option<&Path>) -> String {
    use std::os::unix::process::CommandExt as _;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return format!("cannot find nimbus's own binary: {e}"),
    };
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut skip = false;
    for arg in std::env::args_os().skip(1) {
        let text = arg.to_string_lossy();
        if skip {
            skip = false;
            continue;
        }
        if text == "--load" || text == "--reuse-ephemeral-dir" {
            skip = true;
            continue;
        }
        if text.starts_with("--load=") || text.starts_with("--reuse-ephemeral-dir=") {
            continue;
        }
        args.push(arg);
    }
    if let Some(dir) = ephemeral_dir {
        args.push("--reuse-ephemeral-dir".into());
        args.push(dir.as_os_str().to_owned());
    }
    crate::log::flush();
    let _ = io::stdout().flush();
    // exec only returns on failure.
    let e = std::process::Command::new(exe).args(args).exec();
    format!("cannot restart: {e}")
}

/// Feeds the archive writer's output to the HTTP response in pieces.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
    sent: u64,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.sent += piece.len() as u64;
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The request body as a blocking reader for the archive reader, hashing as it
/// goes. `Some(empty)` from the channel is the clean end; `None` a broken body.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Option<Bytes>>,
    piece: Bytes,
    sha: Sha256,
    ended: bool,
    failed: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.piece.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Some(piece)) if piece.is_empty() => self.ended = true,
                Ok(Some(piece)) => self.piece = piece,
                Ok(None) | Err(_) => {
                    self.ended = true;
                    self.failed = true;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the request body ended early",
                    ));
                }
            }
        }
        let n = buf.len().min(self.piece.len());
        let piece = self.piece.split_to(n);
        self.sha.update(&piece);
        buf[..n].copy_from_slice(&piece);
        Ok(n)
    }
}

#[derive(clap::Args)]
pub struct StateArgs {
    #[command(subcommand)]
    action: StateAction,
}

#[derive(clap::Subcommand)]
enum StateAction {
    /// Write the whole state of a running nimbus to FILE (a tar archive), consistent as of one instant while it keeps serving.
    Save(TransferArgs),
    /// Replace the whole state of a running nimbus with FILE's; it restarts in place on it (instances that were running boot again).
    Load(TransferArgs),
}

#[derive(clap::Args)]
struct TransferArgs {
    /// The archive.
    file: PathBuf,
    #[command(flatten)]
    root: crate::health::RootClientArgs,
}

/// `nimbus state save|load FILE`.
pub fn command(args: StateArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nimbus state: {e}");
            return 1;
        }
    };
    let (verb, result) = match args.action {
        StateAction::Save(t) => ("save", runtime.block_on(save_command(t))),
        StateAction::Load(t) => ("load", runtime.block_on(load_command(t))),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            eprintln!("nimbus state {verb}: {e}");
            1
        }
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    HttpBody,
>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// A signed POST to one of the state endpoints; the payload hash is given, as
/// the body may be a file too large to hold.
fn signed_post(
    t: &TransferArgs,
    path: &str,
    payload_sha256: &str,
    body: HttpBody,
    length: u64,
) -> Result<http::Request<HttpBody>, String> {
    let authority = t
        .root
        .endpoint
        .strip_prefix("http://")
        .ok_or("only http:// endpoints are supported")?
        .trim_end_matches('/')
        .to_string();
    let mut headers = vec![
        ("host".to_string(), authority.clone()),
        (
            "x-amz-content-sha256".to_string(),
            payload_sha256.to_string(),
        ),
    ];
    let params = nimbus_auth::SigningParams {
        access_key_id: &t.root.root_access_key_id,
        secret_access_key: &t.root.root_secret_access_key,
        session_token: None,
        region: "us-east-1",
        service: "nimbus",
        time_epoch_secs: (nimbus_core::now_millis() / 1000) as i64,
    };
    let added = nimbus_auth::sign_v4("POST", path, "", &headers, b"", &params);
    headers.extend(added);
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{authority}{path}"));
    for (name, value) in &headers {
        if name != "host" {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    request
        .header(http::header::CONTENT_LENGTH, length)
        .body(body)
        .map_err(|e| e.to_string())
}

async fn save_command(t: TransferArgs) -> Result<String, String> {
    let started = Instant::now();
    let empty = hex::encode(Sha256::digest(b""));
    let request = signed_post(
        &t,
        "/_nimbus/state/save",
        &empty,
        crate::edge::body::full(Bytes::new()),
        0,
    )?;
    let response = client()
        .request(request)
        .await
        .map_err(|e| format!("{}: {e}", t.root.endpoint))?;
    let status = response.status();
    let mut body = response.into_body();
    if status != StatusCode::OK {
        let text = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        return Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&text).trim()
        ));
    }
    let partial = t.file.with_extension("partial");
    let mut out = std::fs::File::create(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let mut written = 0u64;
    let copied: Result<(), String> = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("the archive stream broke off: {e}"))?;
            if let Ok(data) = frame.into_data() {
                out.write_all(&data).map_err(|e| e.to_string())?;
                written += data.len() as u64;
            }
        }
        out.sync_all().map_err(|e| e.to_string())
    }
    .await;
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(format!(
            "{e}; see nimbus's log (nothing was written to {})",
            t.file.display()
        ));
    }
    std::fs::rename(&partial, &t.file)
        .map_err(|e| format!("cannot rename to {}: {e}", t.file.display()))?;
    Ok(format!(
        "saved {} ({} bytes) in {:.2} s",
        t.file.display(),
        written,
        started.elapsed().as_secs_f64()
    ))
}

async fn load_command(t: TransferArgs) -> Result<String, String> {
    let started = Instant::now();
    let path = t.file.clone();
    let (sha, length) = tokio::task::spawn_blocking(move || -> Result<(String, u64), String> {
        let mut file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; PIECE];
        let mut length = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            length += n as u64;
        }
        Ok((hex::encode(sha.finalize()), length))
    })
    .await
    .map_err(|e| e.to_string())??;
    let before = started_ms(&t.root.endpoint)
        .ok_or_else(|| format!("no nimbus answers at {}", t.root.endpoint))?;
    let file = tokio::fs::File::open(&t.file)
        .await
        .map_err(|e| format!("cannot open {}: {e}", t.file.display()))?;
    let stream = file_frames(file);
    let body = http_body_util::StreamBody::new(stream).boxed_unsync();
    let request = signed_post(&t, "/_nimbus/state/load", &sha, body, length)?;
    let response = client()
        .request(request)
        .await
        .map_err(|e| format!("{}: {e}", t.root.endpoint))?;
    let status = response.status();
    let text = response
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    if status != StatusCode::OK {
        return Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&text).trim()
        ));
    }
    let answer: serde_json::Value = serde_json::from_slice(&text).unwrap_or_default();
    // The server restarts on the loaded state: wait until the new start answers.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if started_ms(&t.root.endpoint).is_some_and(|now| now != before) {
            break;
        }
        if Instant::now() > deadline {
            return Err("nimbus did not come back after the load; see its log".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(format!(
        "loaded {} ({} records, {} files) in {:.2} s; nimbus restarted on it",
        t.file.display(),
        answer["records"],
        answer["files"],
        started.elapsed().as_secs_f64()
    ))
}

/// When the server at `endpoint` started (from its health document).
fn started_ms(endpoint: &str) -> Option<u64> {
    let body = crate::health::http_call(endpoint, "GET", "/_nimbus/health", None).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
    doc["started_ms"].as_u64()
}

/// A file as a stream of body frames, read in pieces.
fn file_frames(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<hyper::body::Frame<Bytes>, io::Error>> {
    futures_util::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt as _;
        let mut file = file?;
        let mut buf = vec![0u8; PIECE];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(hyper::body::Frame::data(Bytes::from(buf))), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}
