//! A nimbus the bench starts itself, on a data directory of its own, for the
//! workloads that must own their server: to fill it, restart it, or load into it
//! (`state-save`, `s3-scale`, `sqs-backlog`), or to start it with flags of
//! their own (`alarm-eval`'s `--clock-scale`).

use super::client::{self, Endpoint, HttpClient};
use super::startup;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer after a start, a restart or a load.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

pub struct Server {
    pub binary: PathBuf,
    child: Child,
    port: u16,
    pub endpoint: Endpoint,
    /// Its data directory.
    pub data: PathBuf,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Flags given to `serve` besides port, driver and data directory.
    extra_args: Vec<String>,
    http: HttpClient,
}

impl Server {
    /// Starts `binary serve` (process instance driver, so that it runs anywhere)
    /// on a free loopback port with its data in `dir/data`; `name` names its endpoint.
    /// `extra_args` are added to `serve`'s command line.
    pub async fn start_with(
        binary: &Path,
        dir: &Path,
        name: &str,
        extra_args: &[String],
    ) -> Result<Server, String> {
        let port = startup::free_port()?;
        let log = dir.join("nimbus.log");
        let child = spawn(binary, port, &dir.join("data"), &log, extra_args)?;
        let mut server = Server {
            binary: binary.to_path_buf(),
            child,
            port,
            endpoint: Endpoint::parse(&format!("{name}=http://127.0.0.1:{port}"))?,
            data: dir.join("data"),
            log,
            extra_args: extra_args.to_vec(),
            // No keep-alive: a restart or a load replaces the server under any pooled socket.
            http: client::http_client(0),
        };
        if let Err(e) = server.wait_ready(Instant::now()).await {
            server.stop().await;
            return Err(format!("own nimbus did not start: {e}"));
        }
        Ok(server)
    }

    /// Starts `binary` (this one when None) on a new temporary directory under
    /// `parent`, named `prefix...`; the directory goes when the returned guard drops.
    pub async fn start_fresh(
        binary: Option<PathBuf>,
        parent: &Path,
        prefix: &str,
        name: &str,
    ) -> Result<(tempfile::TempDir, Server), String> {
        Server::start_fresh_with(binary, parent, prefix, name, &[]).await
    }

    /// As [`Server::start_fresh`], with `extra_args` added to `serve`'s command line.
    pub async fn start_fresh_with(
        binary: Option<PathBuf>,
        parent: &Path,
        prefix: &str,
        name: &str,
        extra_args: &[String],
    ) -> Result<(tempfile::TempDir, Server), String> {
        let binary = binary
            .map_or_else(std::env::current_exe, Ok)
            .map_err(|e| format!("cannot find this binary: {e}"))?;
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .map_err(|e| format!("cannot make a directory in {}: {e}", parent.display()))?;
        let server = Server::start_with(&binary, dir.path(), name, extra_args).await?;
        Ok((dir, server))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (SIGTERM) and starts it again on the same port and data;
    /// returns the time from the new spawn to its first healthy answer.
    pub async fn restart(&mut self) -> Result<Duration, String> {
        self.stop().await;
        let started = Instant::now();
        self.child = spawn(
            &self.binary,
            self.port,
            &self.data,
            &self.log,
            &self.extra_args,
        )?;
        self.wait_ready(started).await
    }

    async fn wait_ready(&mut self, started: Instant) -> Result<Duration, String> {
        startup::wait_healthy(
            &mut self.child,
            &self.http,
            &self.endpoint.authority,
            started,
            READY_TIMEOUT,
        )
        .await
        .map_err(|e| format!("{e}{}", self.log_tail()))
    }

    /// The last lines of its log, to explain a failure.
    pub fn log_tail(&self) -> String {
        match std::fs::File::open(&self.log) {
            Ok(mut f) => startup::log_tail(&mut f),
            Err(_) => String::new(),
        }
    }

    pub async fn stop(&mut self) {
        startup::stop(&mut self.child).await;
    }
}

fn spawn(
    binary: &Path,
    port: u16,
    data: &Path,
    log: &Path,
    extra_args: &[String],
) -> Result<Child, String> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("log file: {e}"))?;
    let err = out.try_clone().map_err(|e| format!("log file: {e}"))?;
    Command::new(binary)
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--instance-driver",
            "process",
        ])
        .arg("--data-dir")
        .arg(data)
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", binary.display()))
}
