//! `nimbus serve`: opens the data directory and its store, builds every
//! service, and serves them all on one port (HTTP/1.1 with keep-alive and
//! HTTP/2 cleartext on the same socket) until Ctrl-C or SIGTERM.

use crate::edge::{AuthMode, Edge, EdgeConfig};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use nimbus_core::{CredentialRecord, CredentialRegistry, Service};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", env = "NIMBUS_HOST", value_parser = crate::flags::host)]
    host: String,
    /// Port to listen on (4566 is where local-AWS tooling looks).
    #[arg(long, default_value_t = 4566, env = "NIMBUS_PORT")]
    port: u16,
    /// Where state lives [default: $XDG_DATA_HOME/nimbus or ~/.local/share/nimbus].
    #[arg(long, env = "NIMBUS_DATA_DIR", value_parser = crate::flags::data_dir)]
    data_dir: Option<PathBuf>,
    /// Keep state in a temporary directory that is removed on exit.
    #[arg(long, conflicts_with = "data_dir")]
    ephemeral: bool,
    /// Region for requests that do not name one.
    #[arg(long, default_value = "us-east-1", env = "NIMBUS_REGION", value_parser = crate::flags::region)]
    region: String,
    /// Account for access keys that do not name one (a 12-digit access key id names its account).
    #[arg(long, default_value = nimbus_core::DEFAULT_ACCOUNT_ID, env = "NIMBUS_ACCOUNT_ID", value_parser = crate::flags::account_id)]
    account_id: String,
    /// `open` accepts any well-formed signature; `enforce` verifies every signature.
    #[arg(long, value_enum, default_value = "open", env = "NIMBUS_AUTH")]
    auth: AuthMode,
    /// Root access key id known to `--auth enforce`.
    #[arg(long, default_value = "test", env = "NIMBUS_ROOT_ACCESS_KEY_ID", value_parser = crate::flags::non_empty)]
    root_access_key_id: String,
    /// Root secret access key known to `--auth enforce`.
    #[arg(
        long,
        default_value = "test",
        env = "NIMBUS_ROOT_SECRET_ACCESS_KEY",
        hide_env_values = true,
        value_parser = crate::flags::non_empty
    )]
    root_secret_access_key: String,
    /// How EC2 instances run: `namespace` (isolated, needs root on Linux), `process`
    /// (supervised processes, anywhere) or `auto` (namespace when possible).
    #[arg(long, default_value = "auto", env = "NIMBUS_INSTANCE_DRIVER", value_parser = ["auto", "namespace", "process"])]
    instance_driver: String,
    /// Where elastic IPs come from (loopback by default: no address leads off this machine).
    #[arg(long, default_value = "127.100.0.0/16", env = "NIMBUS_ELASTIC_IP_CIDR", value_parser = crate::flags::ipv4_cidr)]
    elastic_ip_cidr: String,
    /// Log filter (error, warn, info, debug, trace, or a tracing filter expression).
    /// At `info` every API request is one line; `warn` keeps only problems.
    #[arg(long, default_value = "info", env = "NIMBUS_LOG", value_parser = crate::flags::log_level)]
    log_level: String,
    /// `text` (coloured only on a terminal) or `json` (one object per line, for CI log tools).
    #[arg(long, value_enum, default_value = "text", env = "NIMBUS_LOG_FORMAT")]
    log_format: crate::log::LogFormat,
    /// Seconds a client may take to send a request's headers (and its first byte)
    /// before the connection is closed.
    #[arg(long, default_value_t = 30, env = "NIMBUS_HEADER_TIMEOUT")]
    header_timeout: u64,
    /// Init hooks, as LocalStack's: the executable files of DIR/ready.d run in name
    /// order once nimbus is ready, with AWS_ENDPOINT_URL and the root credentials set.
    #[arg(long = "init", value_name = "DIR", env = "NIMBUS_INIT_DIR", value_parser = crate::flags::init_dir)]
    init_dir: Option<PathBuf>,
    /// Start from a state archive (`nimbus state save`): into a data directory
    /// without state, or with --ephemeral. Instances that were running boot again.
    #[arg(long, value_name = "FILE", env = "NIMBUS_LOAD")]
    load: Option<PathBuf>,
    /// Memory for the state store's cache of its file (bytes, or with a unit:
    /// 64MiB, 512MB, 1GiB). Stored objects, messages and records live on disk;
    /// this is what nimbus keeps of them in memory.
    #[arg(long, default_value = "64MiB", env = "NIMBUS_CACHE_SIZE", value_parser = crate::flags::byte_size)]
    cache_size: usize,
    /// How long raw metric datapoints are kept (CloudWatch: 3 hours). Longer keeps
    /// sub-minute periods and exact percentiles answerable for older data: 3h, 14d,
    /// 90d, 2w, 1d12h. Roll-ups are kept as CloudWatch keeps them whatever this is.
    #[arg(long, value_name = "DURATION", default_value = "3h", env = "NIMBUS_METRICS_RETENTION", value_parser = crate::flags::metrics_retention)]
    metrics_retention: u64,
    /// Runs the cloud's infrastructure clock N times faster (1 to 1000): metric
    /// periods, alarm evaluation and every CloudWatch timestamp follow it, so a
    /// 3-period 60 s alarm fires about 3 s after a breach at 60. Request timers
    /// (SQS visibility, presigned and STS expiry) stay in real time.
    #[arg(long, value_name = "N", default_value_t = 1, env = "NIMBUS_CLOCK_SCALE", value_parser = clap::value_parser!(u32).range(1..=nimbus_core::clock::MAX_SCALE as i64))]
    clock_scale: u32,
    /// Seconds without a request after which memory freed by earlier requests goes
    /// back to the system (tests shorten it).
    #[arg(long, hide = true, default_value_t = crate::trim::PERIOD.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    idle_trim_after: u64,
    /// The ephemeral directory of the start this one replaces (a restart on a loaded state).
    #[arg(long, hide = true, requires = "ephemeral")]
    reuse_ephemeral_dir: Option<PathBuf>,
}

/// How long a restart after a state load waits for the answers in flight.
const RESTART_GRACE: Duration = Duration::from_secs(2);

/// The `--ephemeral` data directory, removed when serve returns. A restart in
/// place (after a state load) execs without returning, so it survives that.
struct EphemeralDir(PathBuf);

impl Drop for EphemeralDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(args: ServeArgs) -> i32 {
    crate::datadir::private_umask();
    // Checked by clap already (flags::log_level); the fallback only keeps this total.
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    crate::log::init(filter, args.log_format);
    // A data directory nimbus cannot use is a setting to fix, like a bad flag: exit 2.
    if !args.ephemeral {
        let dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
        if let Err(e) = crate::datadir::prepare(&dir) {
            eprintln!("nimbus: {e}");
            return 2;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(crate::trim::on_park)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nimbus: cannot start the runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(serve(args));
    crate::log::flush();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nimbus: {e}");
            1
        }
    }
}

fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("nimbus");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/nimbus"),
        None => PathBuf::from(".nimbus"),
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    // Held until serve returns: dropping it removes the ephemeral directory.
    let ephemeral_dir = match (&args.reuse_ephemeral_dir, args.ephemeral) {
        (Some(dir), true) if dir.is_dir() => Some(EphemeralDir(dir.clone())),
        (_, true) => Some(EphemeralDir(
            tempfile::Builder::new()
                .prefix("nimbus-")
                .tempdir()
                .map_err(|e| format!("cannot create a temporary data directory: {e}"))?
                .keep(),
        )),
        (_, false) => None,
    };
    let data_dir = match &ephemeral_dir {
        Some(dir) => dir.0.clone(),
        None => args.data_dir.clone().unwrap_or_else(default_data_dir),
    };
    crate::datadir::prepare(&data_dir)?;
    crate::state::clean_leftovers(&data_dir);
    if let Some(file) = &args.load {
        // The store's writer answers commits over a channel the loader waits on:
        // the load runs off the runtime's threads.
        let (file, dir) = (file.clone(), data_dir.clone());
        tokio::task::spawn_blocking(move || crate::state::load_at_start(&file, &dir))
            .await
            .map_err(|e| format!("the load stopped: {e}"))??;
    }
    crate::health::mark_started();
    let options = nimbus_store::StoreOptions {
        cache_bytes: args.cache_size,
        durable: ephemeral_dir.is_none(),
        ..Default::default()
    };
    let store = nimbus_store::Store::open_with(&data_dir.join("state.redb"), options)
        .map_err(|e| crate::datadir::store_error(&data_dir, &e))?;

    let credentials = Arc::new(CredentialRegistry::new());
    credentials.insert(CredentialRecord {
        access_key_id: args.root_access_key_id.clone(),
        secret_access_key: args.root_secret_access_key.clone(),
        session_token: None,
        account_id: nimbus_sts::account_for_key(&args.root_access_key_id)
            .unwrap_or_else(|| args.account_id.clone()),
        arn: format!("arn:aws:iam::{}:root", args.account_id),
        user_id: args.account_id.clone(),
        expires_at_ms: None,
    });

    let mut services: BTreeMap<&'static str, Arc<dyn Service>> = BTreeMap::new();
    let sqs = Arc::new(nimbus_sqs::Sqs::open(store.clone(), &args.region)?);
    services.insert("sqs", sqs.clone());
    let sts = nimbus_sts::Sts::open(store.clone(), credentials.clone())?;
    services.insert("sts", Arc::new(sts));
    services.insert("iam", Arc::new(nimbus_iam::Iam::open(store.clone())?));
    let ec2 = nimbus_ec2::Ec2::open(
        store.clone(),
        &data_dir.join("ec2"),
        ephemeral_dir.is_none(),
        &args.instance_driver,
    )?;
    ec2.set_elastic_ip_pool(&args.elastic_ip_cidr)?;
    services.insert("ec2", ec2.clone());
    if let Some(iam) = services.get("iam").cloned() {
        ec2.set_profile_resolver(crate::imds::profile_resolver(iam));
    }
    let clock = crate::clock::start(&store, args.clock_scale)?;
    let cloudwatch = Arc::new(nimbus_cloudwatch::CloudWatch::open(
        store.clone(),
        &args.region,
        clock.clone(),
        nimbus_cloudwatch::metrics::MetricsOptions {
            retention: nimbus_cloudwatch::metrics::Retention {
                raw_s: args.metrics_retention,
                ..Default::default()
            },
            ..Default::default()
        },
    )?);
    services.insert("cloudwatch", cloudwatch.clone());
    cloudwatch.set_action_sink(Arc::new(crate::alarm_actions::AlarmActions::new(
        ec2.clone(),
    )));
    tokio::spawn(cloudwatch.clone().run_alarms());
    // Ingested metric data goes into its blocks, and old blocks go, in the
    // background: a put only appends to the ingest log.
    {
        let cloudwatch = cloudwatch.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(nimbus_cloudwatch::UPKEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = cloudwatch.upkeep().await {
                    tracing::warn!("cloudwatch: metric upkeep failed (retried next round): {e}");
                }
            }
        });
    }
    let s3_opened = std::time::SystemTime::now();
    let s3 = Arc::new(nimbus_s3::S3::open(
        store.clone(),
        &data_dir.join("s3"),
        ephemeral_dir.is_none(),
    )?);
    services.insert("s3", s3.clone());
    {
        let s3 = s3.clone();
        tokio::spawn(async move { s3.sweep_orphan_bodies(s3_opened).await });
    }
    // The metrics AWS services publish by themselves, every cloud minute.
    cloudwatch.add_source(sqs.metric_source());
    cloudwatch.add_source(ec2.metric_source());
    cloudwatch.add_source(s3.metric_source());
    tokio::spawn(cloudwatch.clone().run_collectors());
    if let Some(sqs) = services.get("sqs").cloned() {
        s3.set_event_sink(Arc::new(crate::events::SqsSink::new(
            sqs,
            args.region.clone(),
        )));
    }
    // Memory freed after a load goes back to the system once requests stop.
    tokio::spawn(crate::trim::watch(Duration::from_secs(
        args.idle_trim_after,
    )));
    // Lifecycle rules run once a minute (their granularity is days).
    {
        let s3 = s3.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                s3.run_lifecycle(nimbus_core::now_millis()).await;
            }
        });
    }

    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .or_else(|_| {
            std::net::ToSocketAddrs::to_socket_addrs(&(args.host.as_str(), args.port))
                .ok()
                .and_then(|mut a| a.next())
                .ok_or(())
        })
        .map_err(|_| format!("cannot resolve listen address {}", args.host))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    // With --port 0 the system picks the port: say which.
    let addr = listener.local_addr().unwrap_or(addr);

    let imds = Arc::new(crate::imds::Imds::new(
        ec2.clone(),
        services
            .get("iam")
            .cloned()
            .ok_or("the IAM service is missing")?,
        services
            .get("sts")
            .cloned()
            .ok_or("the STS service is missing")?,
    ));
    let (plane, mut restart) =
        crate::state::Plane::new(store.clone(), data_dir.clone(), services.clone());
    let edge = Arc::new(
        Edge::new(
            EdgeConfig {
                auth: args.auth,
                default_account: args.account_id.clone(),
                default_region: args.region.clone(),
                data_dir: data_dir.display().to_string(),
                durable: ephemeral_dir.is_none(),
                instance_driver: ec2.instance_driver(),
                root_access_key_id: args.root_access_key_id.clone(),
                clock: clock.clone(),
            },
            services,
            credentials,
            Some(s3.clone()),
        )
        .with_state(plane.clone())
        .with_metrics_export(cloudwatch.clone()),
    );

    // Found before "Ready.", so that the health document never shows an init that has
    // completed before its scripts were even listed.
    if let Some(dir) = &args.init_dir {
        crate::init::discover(dir);
    }
    // One line, ending in "Ready." because tools that wait for LocalStack look for that word.
    println!(
        "nimbus {} listening on http://{addr} (auth {}), data in {}{}. Ready.",
        crate::health::VERSION,
        args.auth.as_str(),
        data_dir.display(),
        if ephemeral_dir.is_some() {
            " (ephemeral)"
        } else {
            ""
        }
    );

    let header_timeout = Duration::from_secs(args.header_timeout.max(1));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its headers must not hold a connection forever.
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    let builder = Arc::new(builder);
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.port);
    instance_listeners(&ec2, &edge, &imds, &builder, addr, port).await;
    ec2.resume();
    if args.init_dir.is_some() {
        tokio::spawn(crate::init::run(crate::init::HookEnv {
            endpoint: hook_endpoint(addr, port),
            access_key_id: args.root_access_key_id.clone(),
            secret_access_key: args.root_secret_access_key.clone(),
            region: args.region.clone(),
        }));
    }
    let mut shutdown = std::pin::pin!(shutdown_signal());
    // Lets a restart after a state load finish the answers in flight (the
    // load's own among them) before the process is replaced.
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let edge = edge.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    // hyper's header timeout starts once it knows the HTTP version, which
                    // takes the first bytes: a silent client is dropped here instead.
                    let mut first = [0u8; 1];
                    match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                    let service = hyper::service::service_fn(move |req| {
                        let edge = edge.clone();
                        async move { Ok::<_, std::convert::Infallible>(edge.handle(req, Some(remote)).await) }
                    });
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(connection).await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            _ = &mut shutdown => break,
            _ = restart.changed() => break,
        }
    }
    let restarting = *restart.borrow();
    if restarting {
        drop(listener);
        let _ = tokio::time::timeout(RESTART_GRACE, graceful.shutdown()).await;
    }
    crate::log::flush();
    eprintln!(
        "nimbus: {}",
        if restarting {
            "restarting on the loaded state"
        } else {
            "shutting down"
        }
    );
    ec2.shutdown().await;
    if restarting {
        // The store stays open until exec: its handles are many, and exec closes
        // every file; acknowledged writes are in its log, and the state is replaced.
        plane.install_staged()?;
        return Err(crate::state::restart_in_place(
            ephemeral_dir.as_ref().map(|d| d.0.as_path()),
        ));
    }
    // Pending metric data into its blocks, so that the next start replays nothing.
    if let Err(e) = cloudwatch.flush_all().await {
        tracing::warn!("cloudwatch: final flush failed (the ingest log keeps the data): {e}");
    }
    let stopping = store.clone();
    match tokio::task::spawn_blocking(move || stopping.checkpoint()).await {
        Ok(Ok(())) => s3.mark_clean_stop(),
        Ok(Err(e)) => tracing::warn!("final checkpoint failed (the log keeps every write): {e}"),
        Err(e) => tracing::warn!("final checkpoint stopped: {e}"),
    }
    drop(ephemeral_dir);
    Ok(())
}

/// Where init hooks reach nimbus: the listening address, or loopback when it
/// listens on every address.
fn hook_endpoint(addr: SocketAddr, port: u16) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, port))
}

/// A listener on an address this host may not have yet (the VPC bridge's
/// addresses appear with the first instance): IP_FREEBIND lets it bind now.
fn bind_ahead(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv4() {
        socket.set_freebind_v4(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// What instances reach: nimbus's API on the bridge's gateway and the metadata
/// service at 169.254.169.254 (namespace driver), or the metadata service on a
/// loopback port with each instance's secret in the path (process driver).
async fn instance_listeners(
    ec2: &Arc<nimbus_ec2::Ec2>,
    edge: &Arc<Edge>,
    imds: &Arc<crate::imds::Imds>,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    api: SocketAddr,
    port: u16,
) {
    let metadata_addr: SocketAddr = match ec2.instance_gateway() {
        Some(_) => SocketAddr::from(([169, 254, 169, 254], 80)),
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let by_path = ec2.instance_gateway().is_none();
    match bind_ahead(metadata_addr) {
        Ok(listener) => {
            let local = listener.local_addr().ok();
            let imds = imds.clone();
            spawn_accept(listener, builder.clone(), move |req, remote| {
                let imds = imds.clone();
                async move { imds.handle(req, remote, by_path).await }
            });
            if by_path {
                let base = local.map(|a| format!("http://{a}/")).unwrap_or_default();
                ec2.set_endpoints(format!("http://{api}"), Some(base));
            }
        }
        Err(e) => {
            tracing::warn!("the instance metadata service cannot listen on {metadata_addr}: {e}")
        }
    }
    if let Some(gateway) = ec2.instance_gateway() {
        let endpoint = SocketAddr::from((gateway, port));
        ec2.set_endpoints(format!("http://{endpoint}"), None);
        if !api.ip().is_unspecified() {
            match bind_ahead(endpoint) {
                Ok(listener) => {
                    let edge = edge.clone();
                    spawn_accept(listener, builder.clone(), move |req, remote| {
                        let edge = edge.clone();
                        async move { edge.handle(req, Some(remote)).await }
                    });
                }
                Err(e) => tracing::warn!("instances cannot reach nimbus at {endpoint}: {e}"),
            }
        }
    }
}

fn spawn_accept<F, Fut, B>(
    listener: tokio::net::TcpListener,
    builder: Arc<auto::Builder<TokioExecutor>>,
    handler: F,
) where
    F: Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = hyper::Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let builder = builder.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, std::convert::Infallible>(handler(req, remote).await) }
                });
                if let Err(e) = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!("connection ended: {e}");
                }
            });
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
