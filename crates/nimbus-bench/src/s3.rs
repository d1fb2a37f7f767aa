//! The S3 workloads: small PutObject and GetObject, ListObjectsV2 through a
//! large bucket, large PutObject and GetObject streamed both ways, and `dd`,
//! the disk's own sequential-write-plus-fsync rate, against which large PUTs
//! are read as a fraction of what the hardware allows.
//!
//! Requests are path-style (`http://host:port/bucket/key`), so that no DNS or
//! virtual-host set-up is needed, and signed for service `s3` with
//! `UNSIGNED-PAYLOAD` (see [`client::UNSIGNED_PAYLOAD`]). Each run writes into
//! a bucket of its own with a unique name; nothing is cleaned up, since
//! deleting thousands of objects would cost more than the runs themselves.
//! Work that is not measured (bucket creation, the pre-fill of the GET and
//! list workloads) happens before the clock starts; the objects written by
//! `s3-put` and `s3-put-large` are reused by the GET workloads of the same
//! endpoint, so a slow peer is not filled twice.

use super::client::{self, RepeatBody, Reply};
use super::measure;
use super::sqs::{self, RunConfig, RunResult, Tally, Target, Workload};
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use http::Method;
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Keys per ListObjectsV2 page: S3's maximum, and what listing tools ask for.
const PAGE_KEYS: u64 = 1000;
/// Pages an s3-list worker follows by continuation token after each random
/// start, so that both ways into a listing are measured.
const WALK_PAGES: u32 = 5;
/// Piece in which large bodies are sent, and `dd`'s write size.
const CHUNK: usize = 1 << 20;
/// How often a long pre-fill reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Repetitions of the `dd` measurement.
pub const DD_RUNS: u32 = 3;

/// Objects one endpoint already holds from earlier runs of this invocation.
#[derive(Default)]
pub struct EndpointState {
    small: Option<Filled>,
    large: Option<Filled>,
}

/// A bucket and the indices of the objects known to be in it.
struct Filled {
    bucket: String,
    keys: Vec<u64>,
    size: u64,
}

/// Object key number `i`: zero-padded so that key order is number order,
/// which lets s3-list pick a start position by number.
fn key(i: u64) -> String {
    format!("key/{i:09}")
}

/// The number of a key written by [`key`].
fn key_index(k: &str) -> Option<u64> {
    k.strip_prefix("key/")?.parse().ok()
}

/// A small, fast generator (splitmix64): list start positions and bucket
/// names only need to differ, not to be unpredictable.
struct Rng(u64);

impl Rng {
    fn seeded(salt: u64) -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(nanos ^ (u64::from(std::process::id()) << 32) ^ salt.wrapping_mul(0x9E37_79B9))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (n > 0); the modulo bias is irrelevant here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A bucket name unique to this run: lowercase, digits and hyphens, short
/// enough for S3's 63-character limit.
fn bucket_name(workload: Workload) -> String {
    let mut rng = Rng::seeded(workload as u64);
    format!("nimbus-bench-{}-{:012x}", workload.name(), rng.next() >> 16)
}

/// Whether `name` is a valid S3 bucket name (the common rules).
pub fn valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// ListObjectsV2's answer, as much of it as the workloads use.
#[derive(Debug, Default, PartialEq)]
struct Page {
    keys: Vec<String>,
    key_count: u64,
    next_token: Option<String>,
}

/// Reads a ListObjectsV2 XML answer without an XML library: the elements
/// used are flat and unambiguous (`<Key>` only appears in `<Contents>`).
/// `want_keys` false only counts the keys, to keep the timed path cheap.
fn parse_list(xml: &str, want_keys: bool) -> Page {
    let mut page = Page::default();
    let mut rest = xml;
    while let Some(at) = rest.find("<Key>") {
        rest = &rest[at + "<Key>".len()..];
        let end = rest.find("</Key>").unwrap_or(rest.len());
        if want_keys {
            page.keys.push(xml_unescape(&rest[..end]));
        }
        page.key_count += 1;
        rest = &rest[end..];
    }
    let truncated = element(xml, "IsTruncated").is_some_and(|v| v.trim() == "true");
    page.next_token = element(xml, "NextContinuationToken")
        .filter(|_| truncated)
        .map(xml_unescape)
        .filter(|t| !t.is_empty());
    page
}

/// The text of the first `<name>` element of `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..start + len])
}

/// Undoes XML's five predefined entities (all S3 escapes in keys and tokens).
fn xml_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The S3 calls the workloads make.
impl Target<'_> {
    /// CreateBucket; with `reuse`, a bucket we already own is fine too
    /// (us-east-1 answers 200 for it, other regions 409 BucketAlreadyOwnedByYou).
    pub(crate) async fn s3_create_bucket(
        &self,
        bucket: &str,
        reuse: bool,
        timeout: Duration,
    ) -> Result<(), String> {
        // us-east-1 takes no location; every other region requires it.
        let body = if self.signer.region == "us-east-1" {
            RepeatBody::empty()
        } else {
            RepeatBody::once(Bytes::from(format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.signer.region
            )))
        };
        let req = client::s3_request(
            self.endpoint,
            self.signer,
            Method::PUT,
            &format!("/{bucket}"),
            "",
            body,
        )?;
        let r = client::send(self.s3_client, req, timeout).await?;
        let text = String::from_utf8_lossy(&r.body);
        if r.ok() || (reuse && r.status == 409 && text.contains("BucketAlreadyOwnedByYou")) {
            Ok(())
        } else {
            Err(format!(
                "CreateBucket {bucket}: HTTP {}: {}",
                r.status,
                r.body_excerpt()
            ))
        }
    }

    async fn s3_put(
        &self,
        bucket: &str,
        i: u64,
        body: RepeatBody,
        timeout: Duration,
    ) -> Result<(), String> {
        let path = format!("/{bucket}/{}", key(i));
        let req = client::s3_request(self.endpoint, self.signer, Method::PUT, &path, "", body)?;
        let c = client::send_counting(self.s3_client, req, timeout).await?;
        if c.reply.ok() {
            Ok(())
        } else {
            Err(format!(
                "PutObject: HTTP {}: {}",
                c.status,
                c.reply.body_excerpt()
            ))
        }
    }

    /// GetObject, the body counted as it streams in; its length is checked.
    async fn s3_get(
        &self,
        bucket: &str,
        i: u64,
        size: u64,
        timeout: Duration,
    ) -> Result<(), String> {
        let path = format!("/{bucket}/{}", key(i));
        let req = client::s3_request(
            self.endpoint,
            self.signer,
            Method::GET,
            &path,
            "",
            RepeatBody::empty(),
        )?;
        let c = client::send_counting(self.s3_client, req, timeout).await?;
        if !c.reply.ok() {
            Err(format!(
                "GetObject: HTTP {}: {}",
                c.status,
                c.reply.body_excerpt()
            ))
        } else if c.body_bytes != size {
            Err(format!(
                "GetObject: {} bytes instead of {size}",
                c.body_bytes
            ))
        } else {
            Ok(())
        }
    }

    /// One ListObjectsV2 page; `params` are extra query parameters, encoded.
    async fn s3_list(
        &self,
        bucket: &str,
        params: &str,
        want_keys: bool,
        timeout: Duration,
    ) -> Result<Page, String> {
        let query = format!("list-type=2&max-keys={PAGE_KEYS}{params}");
        let req = client::s3_request(
            self.endpoint,
            self.signer,
            Method::GET,
            &format!("/{bucket}"),
            &query,
            RepeatBody::empty(),
        )?;
        let r: Reply = client::send(self.s3_client, req, timeout).await?;
        if !r.ok() {
            return Err(format!(
                "ListObjectsV2: HTTP {}: {}",
                r.status,
                r.body_excerpt()
            ));
        }
        Ok(parse_list(&String::from_utf8_lossy(&r.body), want_keys))
    }
}

/// Runs one S3 workload against `target`.
pub async fn run(
    target: &Target<'_>,
    workload: Workload,
    cfg: &RunConfig,
    state: &mut EndpointState,
) -> RunResult {
    let ep = target.endpoint.name.as_str();
    // Idle RSS is taken before anything of this run touches the server.
    let rss_before = match target.server_pid.map(measure::sample_server).transpose() {
        Ok(s) => s.map(|s| s.rss_kib),
        Err(e) => return RunResult::failed(ep, workload, e),
    };
    let outcome = match workload {
        Workload::S3Put | Workload::S3PutLarge => put_run(target, workload, cfg, rss_before).await,
        Workload::S3Get | Workload::S3GetLarge => {
            get_run(target, workload, cfg, rss_before, state).await
        }
        Workload::S3List => list_run(target, cfg, rss_before).await,
        _ => Err(format!("{} is not an S3 workload", workload.name())),
    };
    match outcome {
        Ok((result, filled)) => {
            if let Some(f) = filled {
                if workload == Workload::S3Put || workload == Workload::S3Get {
                    state.small = Some(f);
                } else {
                    state.large = Some(f);
                }
            }
            result
        }
        Err(why) => RunResult::failed(ep, workload, why),
    }
}

/// Object size, count and concurrency of a put or get workload.
fn shape(workload: Workload, cfg: &RunConfig) -> (u64, u64, usize) {
    if matches!(workload, Workload::S3PutLarge | Workload::S3GetLarge) {
        (cfg.large_size, cfg.large_ops, cfg.large_concurrency)
    } else {
        (cfg.object_size as u64, cfg.ops, cfg.concurrency)
    }
}

/// The body source of a put workload: one buffer of at most [`CHUNK`] bytes,
/// made once per run and sent as many times as an object needs.
fn body_chunk(size: u64) -> Bytes {
    let len = size.min(CHUNK as u64) as usize;
    Bytes::from(sqs::message_body(len))
}

type Outcome = Result<(RunResult, Option<Filled>), String>;

/// s3-put and s3-put-large: distinct keys into a fresh bucket.
async fn put_run(
    target: &Target<'_>,
    workload: Workload,
    cfg: &RunConfig,
    rss_before: Option<u64>,
) -> Outcome {
    let ep = target.endpoint.name.as_str();
    let (size, ops, concurrency) = shape(workload, cfg);
    let bucket = bucket_name(workload);
    target
        .s3_create_bucket(&bucket, false, cfg.request_timeout)
        .await?;
    let body = RepeatBody::repeat(body_chunk(size), size);
    let tally = Tally::default();
    let written = RefCell::new(Vec::new());
    let (tally_ref, written_ref, bucket_ref, body_ref) = (&tally, &written, &bucket, &body);
    let phase = sqs::timed_phase(
        target.server_pid,
        rss_before,
        &tally,
        cfg,
        |deadline| async move {
            let mut set = FuturesUnordered::new();
            for _ in 0..concurrency.max(1) {
                set.push(async move {
                    while let Some(i) = tally_ref.claim(ops, deadline) {
                        let started = Instant::now();
                        match target
                            .s3_put(bucket_ref, i, body_ref.clone(), cfg.request_timeout)
                            .await
                        {
                            Ok(()) => {
                                tally_ref.ok(started.elapsed(), 0);
                                tally_ref.bytes.set(tally_ref.bytes.get() + size);
                                written_ref.borrow_mut().push(i);
                            }
                            Err(e) => tally_ref.error(1, || e),
                        }
                    }
                });
            }
            while set.next().await.is_some() {}
        },
    )
    .await?;
    let result = RunResult::from_phase(ep, workload, &tally, phase);
    let keys = written.take();
    let filled = (!keys.is_empty()).then_some(Filled { bucket, keys, size });
    Ok((result, filled))
}

/// s3-get and s3-get-large: GETs of objects written by the matching put
/// workload earlier in this invocation, or by an untimed pre-fill.
async fn get_run(
    target: &Target<'_>,
    workload: Workload,
    cfg: &RunConfig,
    rss_before: Option<u64>,
    state: &mut EndpointState,
) -> Outcome {
    let ep = target.endpoint.name.as_str();
    let (size, ops, concurrency) = shape(workload, cfg);
    let earlier = if workload == Workload::S3Get {
        state.small.take()
    } else {
        state.large.take()
    };
    let filled = match earlier {
        Some(f) if f.size == size && !f.keys.is_empty() => f,
        _ => {
            let bucket = bucket_name(workload);
            target
                .s3_create_bucket(&bucket, false, cfg.request_timeout)
                .await?;
            let wanted: Vec<u64> = (0..ops).collect();
            let body = RepeatBody::repeat(body_chunk(size), size);
            let fill = prefill(
                target,
                cfg.request_timeout,
                &bucket,
                &wanted,
                &body,
                concurrency,
                "pre-fill",
            )
            .await;
            if fill.reported {
                eprint!("\n  ");
            }
            if fill.written.is_empty() {
                return Err(format!(
                    "pre-fill wrote no object: {}",
                    fill.first_error.unwrap_or_default()
                ));
            }
            Filled {
                bucket,
                keys: fill.written,
                size,
            }
        }
    };
    let tally = Tally::default();
    let (tally_ref, filled_ref) = (&tally, &filled);
    let phase = sqs::timed_phase(
        target.server_pid,
        rss_before,
        &tally,
        cfg,
        |deadline| async move {
            let mut set = FuturesUnordered::new();
            for _ in 0..concurrency.max(1) {
                set.push(async move {
                    let keys = &filled_ref.keys;
                    while let Some(i) = tally_ref.claim(ops, deadline) {
                        let k = keys[(i % keys.len() as u64) as usize];
                        let started = Instant::now();
                        match target
                            .s3_get(&filled_ref.bucket, k, size, cfg.request_timeout)
                            .await
                        {
                            Ok(()) => {
                                tally_ref.ok(started.elapsed(), 0);
                                tally_ref.bytes.set(tally_ref.bytes.get() + size);
                            }
                            Err(e) => tally_ref.error(1, || e),
                        }
                    }
                });
            }
            while set.next().await.is_some() {}
        },
    )
    .await?;
    Ok((
        RunResult::from_phase(ep, workload, &tally, phase),
        Some(filled),
    ))
}

/// What a pre-fill achieved.
pub(crate) struct Fill {
    written: Vec<u64>,
    pub failures: u64,
    pub first_error: Option<String>,
    /// Whether progress lines were printed (the run's summary then needs a line of its own).
    reported: bool,
}

/// Writes the objects numbered `wanted` with `concurrency` workers, untimed,
/// printing progress on long fills. It gives up once failures pass 1% (at
/// least 100), so that a broken server does not keep it busy for hours.
pub(crate) async fn prefill(
    target: &Target<'_>,
    timeout: Duration,
    bucket: &str,
    wanted: &[u64],
    body: &RepeatBody,
    concurrency: usize,
    label: &str,
) -> Fill {
    let total = wanted.len() as u64;
    let max_failures = (total / 100).max(100);
    let next = Cell::new(0usize);
    let failures = Cell::new(0u64);
    let first_error = RefCell::new(None);
    let written = RefCell::new(Vec::with_capacity(wanted.len()));
    let started = Instant::now();
    let last_report = Cell::new(started);
    let reported = Cell::new(false);
    let one_worker = || async {
        loop {
            let n = next.get();
            if n >= wanted.len() || failures.get() > max_failures {
                break;
            }
            next.set(n + 1);
            match target
                .s3_put(bucket, wanted[n], body.clone(), timeout)
                .await
            {
                Ok(()) => written.borrow_mut().push(wanted[n]),
                Err(e) => {
                    failures.set(failures.get() + 1);
                    first_error.borrow_mut().get_or_insert(e);
                }
            }
            if last_report.get().elapsed() >= PROGRESS_EVERY {
                last_report.set(Instant::now());
                reported.set(true);
                let done = written.borrow().len() as u64;
                eprint!(
                    "\n  {label}: {done}/{total} objects, {} objects/s, {} failed",
                    report_rate(done, started.elapsed()),
                    failures.get()
                );
            }
        }
    };
    let mut set = FuturesUnordered::new();
    for _ in 0..concurrency.max(1) {
        set.push(one_worker());
    }
    while set.next().await.is_some() {}
    drop(set);
    if reported.get() {
        eprint!(
            "\n  {label} done: {} objects in {:.1} s",
            written.borrow().len(),
            started.elapsed().as_secs_f64()
        );
    }
    Fill {
        written: written.take(),
        failures: failures.get(),
        first_error: first_error.take(),
        reported: reported.get(),
    }
}

fn report_rate(n: u64, d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs > 0.0 {
        format!("{:.0}", n as f64 / secs)
    } else {
        "-".to_string()
    }
}

/// s3-list: fill (or top up) a bucket with `list_keys` keys, then time pages
/// of 1000 keys from random start positions, each followed by a few pages by
/// continuation token.
async fn list_run(target: &Target<'_>, cfg: &RunConfig, rss_before: Option<u64>) -> Outcome {
    let ep = target.endpoint.name.as_str();
    let workload = Workload::S3List;
    let n = cfg.list_keys;
    let (bucket, reuse) = match &cfg.list_bucket {
        Some(b) => (b.clone(), true),
        None => (bucket_name(workload), false),
    };
    target
        .s3_create_bucket(&bucket, reuse, cfg.request_timeout)
        .await?;
    let mut present = vec![false; n as usize];
    if reuse {
        // CreateBucket cannot tell a new bucket from an old one in us-east-1,
        // so the bucket is listed either way; a new one is a single page.
        let found = scan_keys(target, cfg.request_timeout, &bucket, &mut present).await?;
        eprint!("\n  bucket {bucket} holds {found} of the {n} keys wanted");
    }
    let mut printed = reuse;
    let missing: Vec<u64> = (0..n).filter(|i| !present[*i as usize]).collect();
    drop(present);
    let tally = Tally::default();
    if !missing.is_empty() {
        // Listing does not read bodies: one byte each keeps the fill fast.
        let body = RepeatBody::once(Bytes::from_static(b"x"));
        let fill = prefill(
            target,
            cfg.request_timeout,
            &bucket,
            &missing,
            &body,
            cfg.concurrency,
            &format!("filling {bucket}"),
        )
        .await;
        if fill.failures > 0 {
            let first = fill.first_error.unwrap_or_default();
            let failures = fill.failures;
            tally.error(0, || {
                format!("fill: {failures} objects not written, first: {first}")
            });
        }
        if fill.written.is_empty() {
            return Err("the fill wrote no key".to_string());
        }
        printed |= fill.reported;
    }
    if printed {
        // The run's own summary follows on a line of its own.
        eprint!("\n  ");
    }
    // Random starts leave a full page after them (when the bucket has one).
    let max_start = n.saturating_sub(PAGE_KEYS).max(1);
    let pages = cfg.list_pages;
    let (tally_ref, bucket_ref) = (&tally, &bucket);
    let phase = sqs::timed_phase(
        target.server_pid,
        rss_before,
        &tally,
        cfg,
        |deadline| async move {
            let mut set = FuturesUnordered::new();
            for w in 0..cfg.concurrency.max(1) {
                set.push(async move {
                    let mut rng = Rng::seeded(w as u64 + 1);
                    let mut token: Option<String> = None;
                    let mut walked = 0u32;
                    while tally_ref.claim(pages, deadline).is_some() {
                        let params = match token.take() {
                            Some(t) if walked < WALK_PAGES => {
                                walked += 1;
                                format!("&continuation-token={}", client::uri_encode(&t))
                            }
                            _ => {
                                walked = 0;
                                let start = key(rng.below(max_start));
                                format!("&start-after={}", client::uri_encode(&start))
                            }
                        };
                        let started = Instant::now();
                        match target
                            .s3_list(bucket_ref, &params, false, cfg.request_timeout)
                            .await
                        {
                            Ok(page) if page.key_count > 0 => {
                                tally_ref.ok(started.elapsed(), page.key_count);
                                token = page.next_token;
                            }
                            Ok(_) => tally_ref.error(1, || {
                                format!("ListObjectsV2 {params}: a page without keys")
                            }),
                            Err(e) => tally_ref.error(1, || e),
                        }
                    }
                });
            }
            while set.next().await.is_some() {}
        },
    )
    .await?;
    Ok((RunResult::from_phase(ep, workload, &tally, phase), None))
}

/// Marks which of the wanted keys an existing bucket holds, by listing it
/// all (untimed); returns how many it found.
pub(crate) async fn scan_keys(
    target: &Target<'_>,
    timeout: Duration,
    bucket: &str,
    present: &mut [bool],
) -> Result<u64, String> {
    let mut found = 0u64;
    let mut token: Option<String> = None;
    loop {
        let mut params = "&prefix=key%2F".to_string();
        if let Some(t) = &token {
            params += &format!("&continuation-token={}", client::uri_encode(t));
        }
        let page = target
            .s3_list(bucket, &params, true, timeout)
            .await
            .map_err(|e| format!("listing the bucket {bucket}: {e}"))?;
        for k in &page.keys {
            if let Some(slot) = key_index(k).and_then(|i| present.get_mut(i as usize)) {
                if !*slot {
                    *slot = true;
                    found += 1;
                }
            }
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    Ok(found)
}

/// `dd`'s figures: sequential writes plus fsync into `dir`.
#[derive(Debug, Clone)]
pub struct DiskResult {
    pub dir: String,
    pub size: u64,
    /// MB/s (10^6 bytes) of each run, in run order.
    pub mb_per_sec: Vec<f64>,
    pub failures: Vec<String>,
}

impl DiskResult {
    pub fn median(&self) -> Option<f64> {
        let mut v = self.mb_per_sec.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len().checked_sub(1)? / 2).copied()
    }

    pub fn min(&self) -> Option<f64> {
        self.mb_per_sec.iter().copied().reduce(f64::min)
    }

    pub fn max(&self) -> Option<f64> {
        self.mb_per_sec.iter().copied().reduce(f64::max)
    }
}

/// What `dd bs=1M conv=fsync` does: `size` bytes into a new file in `dir`
/// in 1 MiB writes, then one fsync, timed together, `runs` times. That is the
/// most a durable large PUT can achieve on this disk, since a server must at
/// least write the object and sync it before acknowledging it. It blocks the
/// thread on purpose: it runs alone, with no request in flight.
pub fn disk_write(dir: &Path, size: u64, runs: u32) -> DiskResult {
    let mut result = DiskResult {
        dir: dir.display().to_string(),
        size,
        mb_per_sec: Vec::new(),
        failures: Vec::new(),
    };
    let buf = sqs::message_body(CHUNK).into_bytes();
    for _ in 0..runs.max(1) {
        match write_once(dir, size, &buf) {
            Ok(d) if d.as_secs_f64() > 0.0 => {
                result.mb_per_sec.push(size as f64 / d.as_secs_f64() / 1e6)
            }
            Ok(_) => result
                .failures
                .push("a write took no measurable time".to_string()),
            Err(e) => result.failures.push(e),
        }
    }
    result
}

fn write_once(dir: &Path, size: u64, buf: &[u8]) -> Result<Duration, String> {
    // Removed when dropped, also on error.
    let mut file = tempfile::Builder::new()
        .prefix("nimbus-bench-dd-")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))?;
    let started = Instant::now();
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        file.write_all(&buf[..n])
            .map_err(|e| format!("writing to {}: {e}", dir.display()))?;
        left -= n as u64;
    }
    file.as_file()
        .sync_all()
        .map_err(|e| format!("fsync in {}: {e}", dir.display()))?;
    Ok(started.elapsed())
}

/// Creates `bucket` (or reuses it) and writes objects 0..`count` of `size` bytes
/// into it, `concurrency` at a time, untimed: the fill of the workloads that
/// measure a server holding many objects.
pub(crate) async fn fill_bucket(
    target: &Target<'_>,
    bucket: &str,
    count: u64,
    size: usize,
    concurrency: usize,
    timeout: Duration,
) -> Result<(), String> {
    target.s3_create_bucket(bucket, true, timeout).await?;
    let body = RepeatBody::once(Bytes::from(super::sqs::message_body(size)));
    let wanted: Vec<u64> = (0..count).collect();
    let fill = prefill(
        target,
        timeout,
        bucket,
        &wanted,
        &body,
        concurrency,
        "filling",
    )
    .await;
    if fill.failures > 0 {
        return Err(format!(
            "{} PutObject calls failed: {}",
            fill.failures,
            fill.first_error.unwrap_or_default()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_number() {
        assert_eq!(key(42), "key/000000042");
        assert!(key(9) < key(10) && key(99_999) < key(100_000));
        assert_eq!(key_index(&key(123_456)), Some(123_456));
        assert_eq!(key_index("other/1"), None);
    }

    #[test]
    fn bucket_names() {
        let a = bucket_name(Workload::S3PutLarge);
        assert!(valid_bucket_name(&a), "{a}");
        assert!(a.starts_with("nimbus-bench-s3-put-large-"));
        assert!(valid_bucket_name("my-bench.bucket1"));
        assert!(!valid_bucket_name("ab"));
        assert!(!valid_bucket_name("Upper"));
        assert!(!valid_bucket_name("-dash"));
        assert!(!valid_bucket_name(&"a".repeat(64)));
    }

    #[test]
    fn list_answers() {
        let xml = "<?xml version=\"1.0\"?><ListBucketResult><Name>b</Name><KeyCount>2</KeyCount>\
            <IsTruncated>true</IsTruncated><NextContinuationToken>a+b/c=&amp;d</NextContinuationToken>\
            <Contents><Key>key/000000001</Key><Size>1</Size></Contents>\
            <Contents><Key>key/a&amp;b</Key><Size>1</Size></Contents></ListBucketResult>";
        let p = parse_list(xml, true);
        assert_eq!(p.key_count, 2);
        assert_eq!(
            p.keys,
            vec!["key/000000001".to_string(), "key/a&b".to_string()]
        );
        assert_eq!(p.next_token.as_deref(), Some("a+b/c=&d"));
        let p = parse_list(xml, false);
        assert!(p.keys.is_empty());
        assert_eq!(p.key_count, 2);
        // A last page may carry no token, or an empty one.
        let last = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
        assert_eq!(parse_list(last, true), Page::default());
    }

    #[test]
    fn rng_spreads() {
        let mut r = Rng::seeded(1);
        let v: Vec<u64> = (0..1000).map(|_| r.below(10)).collect();
        assert!(v.iter().all(|x| *x < 10));
        assert!((0..10).all(|d| v.contains(&d)));
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn dd_writes_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let r = disk_write(dir.path(), 3 * 1024 * 1024 + 7, 2);
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert_eq!(r.mb_per_sec.len(), 2);
        assert!(r.median().is_some_and(|m| m > 0.0));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let bad = disk_write(Path::new("/nonexistent/nimbus-bench"), 10, 1);
        assert_eq!(bad.failures.len(), 1);
    }
}
