//! The durable state of nimbus: one redb file in the data directory holding
//! every service's records as byte keys and values in named tables, fronted by
//! a write-ahead log (WAL) beside it.
//!
//! Why a WAL: redb's commit is copy-on-write, so its cost (rewriting the
//! B-tree path of every touched page, the page cache work, two fsyncs) is
//! nearly the same for one record as for thousands. nimbus commits a few
//! records per request, so committing each group of requests to redb spent
//! most of the server's CPU there. Instead, [`Store::commit`] appends the batch
//! to a sequential log and returns once that log is synced; redb receives the
//! accumulated changes later in one large transaction (a checkpoint), where
//! its per-commit cost is shared by thousands of records and repeated writes
//! of one key collapse into one.
//!
//! Writes: a single writer thread gathers every batch that arrives while the
//! previous group is being synced (group commit), writes the group as WAL
//! frames with one write call, `fdatasync`s, and only then acknowledges the
//! callers. After acknowledging it keeps the changes in memory until the next
//! checkpoint, which runs on the same thread when enough ops are pending, when
//! the oldest pending op is older than the checkpoint interval, before a read,
//! and when the last handle is dropped. A checkpoint commits the changes to
//! redb durably together with the lsn of the last frame they include, then
//! empties the WAL: under load by starting to write over it from the top
//! again (rewriting a file's blocks in place is the cheapest kind of write to
//! `fdatasync`), when idle or stopping by truncating it to its header.
//!
//! Reads never wait for the writer: a batch enters a shared overlay of
//! changes not yet in redb when it is submitted (see `overlay`), and a read
//! merges that overlay over a redb read transaction, so it sees every write
//! submitted before it, acknowledged or about to be. Services keep their bulk
//! state here rather than in memory: redb's page cache (`--cache-size`) is
//! what stays resident, and [`Store::scan`] pages through a table in key
//! order for listings.
//!
//! On-disk layout, for `state.redb`:
//! - `state.redb` (redb): one table per name given to [`Batch::put`], `&[u8]`
//!   keys to `&[u8]` values; `nimbus_meta` (`&str` → `u32`) holds `format` =
//!   [`FORMAT_VERSION`]; `nimbus_wal` (`&str` → `u64`) holds `applied_lsn`,
//!   the lsn of the newest WAL frame whose changes redb contains.
//! - `state.wal`: a 16-byte header (`NIMBUSWL`, [`WAL_VERSION`] as u32 LE,
//!   4 zero bytes), then frames, one per committed batch, all integers
//!   little-endian: `u32` payload length, `u32` CRC-32 of the lsn bytes followed
//!   by the payload, `u64` lsn (consecutive from frame to frame), payload. The
//!   payload is the batch's ops in order: `u8` tag (1 put, 2 delete), `u32`
//!   length + table name (UTF-8), `u32` length + key, and for a put `u32`
//!   length + value. After the live frames the file may hold zeros (it grows
//!   in zero-filled 1 MiB steps) or frames from before the last rewind, all
//!   with lsns at most `applied_lsn`.
//!
//! Recovery at open replays, in one durable redb transaction, the frames with
//! an lsn above `applied_lsn`, stopping at the first frame that is incomplete,
//! fails its checksum or breaks the lsn sequence: such a frame was being
//! written when the process died, so it was never acknowledged, or it is
//! older than the live frames and already in redb. The WAL is then truncated
//! to its header and lsns continue from the highest seen.

mod overlay;

use bytes::Bytes;
use overlay::{Overlay, Pending, TableChanges};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableError, TableHandle,
};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The on-disk layout version, kept in the `nimbus_meta` table so that a
/// later release can migrate older data instead of misreading it.
pub const FORMAT_VERSION: u32 = 1;

/// The version of the WAL file format, in its header.
pub const WAL_VERSION: u32 = 1;

const WAL_MAGIC: &[u8; 8] = b"NIMBUSWL";
/// redb's page cache unless [`StoreOptions::cache_bytes`] says otherwise.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;
/// How many overlay keys a scan takes at a time (see [`Store::scan`]).
const SCAN_CHUNK: usize = 128;
const WAL_HEADER_LEN: u64 = 16;
const FRAME_HEADER_LEN: usize = 16;
/// The WAL file grows in zero-filled steps of this size.
const WAL_GROWTH: u64 = 1 << 20;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;

const META: TableDefinition<&str, u32> = TableDefinition::new("nimbus_meta");
// A table of its own because `nimbus_meta` is typed `u32` and an lsn is `u64`;
// redb refuses to open a table with other types than it was created with.
const WAL_META: TableDefinition<&str, u64> = TableDefinition::new("nimbus_wal");
const APPLIED_LSN: &str = "applied_lsn";

#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

fn err(e: impl fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

#[derive(Debug)]
enum Op {
    Put {
        table: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        table: String,
        key: Vec<u8>,
    },
}

/// Changes that become durable together, or not at all.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, table: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put {
            table: table.to_string(),
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, table: &str, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete {
            table: table.to_string(),
            key: key.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Calls `f` with each key of `table` starting with `prefix` that this
    /// batch puts (`true`) or deletes (`false`), in order.
    pub fn for_each_key(&self, table: &str, prefix: &[u8], mut f: impl FnMut(&[u8], bool)) {
        for op in &self.ops {
            match op {
                Op::Put { table: t, key, .. } if t == table && key.starts_with(prefix) => {
                    f(key, true)
                }
                Op::Delete { table: t, key } if t == table && key.starts_with(prefix) => {
                    f(key, false)
                }
                _ => {}
            }
        }
    }

    /// How many puts and deletes this batch holds for keys of `table` that
    /// start with `prefix` (services that keep a stored count of their
    /// records adjust it by what a batch changes).
    pub fn count_keys(&self, table: &str, prefix: &[u8]) -> (u64, u64) {
        let mut puts = 0;
        let mut deletes = 0;
        for op in &self.ops {
            match op {
                Op::Put { table: t, key, .. } if t == table && key.starts_with(prefix) => puts += 1,
                Op::Delete { table: t, key } if t == table && key.starts_with(prefix) => {
                    deletes += 1
                }
                _ => {}
            }
        }
        (puts, deletes)
    }
}

/// A services' table as redb opens it in a write transaction.
type BytesTable<'txn> = redb::Table<'txn, &'static [u8], &'static [u8]>;

/// One record as stored: key and value bytes.
pub type Record = (Vec<u8>, Vec<u8>);

/// When the writer moves acknowledged changes from the WAL into redb.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Checkpoint once this many ops were committed since the last one.
    pub checkpoint_ops: usize,
    /// Checkpoint once this many WAL bytes were written since the last one;
    /// bounds the memory the pending changes hold when values are large.
    pub checkpoint_bytes: u64,
    /// Checkpoint once the oldest pending change is this old, so an idle
    /// store soon has an empty WAL.
    pub checkpoint_interval: Duration,
    /// redb's page cache: what the store keeps of its file in memory.
    pub cache_bytes: usize,
    /// Sync to disk (false only for a store thrown away at exit, such as
    /// `--ephemeral`'s, where syncing protects nothing and costs the start
    /// several fsyncs).
    pub durable: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            checkpoint_ops: 20_000,
            // Bounds both the overlay's memory and the replay after a crash
            // (16 MiB of frames replay in well under a second).
            checkpoint_bytes: 16 << 20,
            checkpoint_interval: Duration::from_millis(250),
            cache_bytes: DEFAULT_CACHE_BYTES,
            durable: true,
        }
    }
}

/// A submitted batch as the writer needs it: its ops encoded as a WAL frame
/// payload (by the submitting thread, off the writer's path).
struct Frame {
    payload: Vec<u8>,
    ops: usize,
    /// Its submission seq in the overlay.
    seq: u64,
}

/// What a [`Store::scan`] visitor asks for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Next,
    Stop,
    /// Go on at the first key at or after this one (ignored unless it is
    /// after the current key): how a listing skips a whole common prefix.
    Seek(Vec<u8>),
}

enum Request {
    Commit(Frame, oneshot::Sender<Result<(), StoreError>>),
    /// Apply every acknowledged change to redb, then answer.
    Checkpoint(mpsc::Sender<Result<(), StoreError>>),
    /// Stop at once without a checkpoint, leaving redb and the WAL as a crash would.
    #[cfg(test)]
    Halt(mpsc::Sender<()>),
}

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    overlay: Arc<RwLock<Overlay>>,
    writer: mpsc::Sender<Request>,
    /// The writer thread, for [`Store::close`].
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Store {
    /// Opens (or creates) the store file at `path` and its WAL beside it,
    /// replaying what the WAL holds beyond redb.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// [`Store::open`] with explicit checkpoint thresholds.
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let wal_path = path.with_extension("wal");
        if wal_path == path {
            return Err(StoreError(format!(
                "{} cannot be the store file: its WAL would be the same file",
                path.display()
            )));
        }
        // redb locks its file, so past this point no other store uses this WAL.
        // redb's default page cache is 1 GiB; the cache is what a store keeps of
        // its data in memory, so it is the user's to bound (`--cache-size`).
        let mut builder = Database::builder();
        builder.set_cache_size(options.cache_bytes);
        let db = if options.durable {
            builder.create(path).map_err(err)?
        } else {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(err)?;
            let backend = redb::backends::FileBackend::new(file).map_err(err)?;
            builder
                .create_with_backend(Unsynced(backend))
                .map_err(err)?
        };
        let db = Arc::new(db);
        Self::check_format(&db)?;
        let applied_lsn = read_applied_lsn(&db)?;
        let (wal, recovered) = Wal::open(&wal_path, applied_lsn, options.durable)?;
        let overlay = Arc::new(RwLock::new(Overlay::default()));
        let mut writer = Writer {
            db: db.clone(),
            overlay: overlay.clone(),
            wal,
            progress: Progress::default(),
            options,
            last_checkpoint: Instant::now(),
            failed: None,
        };
        writer.finish_recovery(recovered)?;
        let (sender, queue) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(err)?;
        Ok(Store {
            db,
            overlay,
            writer: sender,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        })
    }

    /// Whether another process holds the store file at `path` open (its lock),
    /// which tells "another nimbus uses this directory" from other open failures.
    pub fn in_use(path: &Path) -> bool {
        matches!(
            Database::builder().set_cache_size(1 << 20).open(path),
            Err(redb::DatabaseError::DatabaseAlreadyOpen)
        )
    }

    fn check_format(db: &Database) -> Result<(), StoreError> {
        // Read first: a start of an existing store then commits nothing (a
        // commit costs two fsyncs).
        let found = {
            let txn = db.begin_read().map_err(err)?;
            match txn.open_table(META) {
                Ok(table) => table.get("format").map_err(err)?.map(|v| v.value()),
                Err(TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(err(e)),
            }
        };
        match found {
            Some(v) if v == FORMAT_VERSION => Ok(()),
            Some(v) => Err(StoreError(format!(
                "data format {v} is newer than this nimbus understands ({FORMAT_VERSION})"
            ))),
            None => {
                let mut txn = db.begin_write().map_err(err)?;
                txn.set_quick_repair(true);
                txn.open_table(META)
                    .map_err(err)?
                    .insert("format", FORMAT_VERSION)
                    .map_err(err)?;
                txn.commit().map_err(err)
            }
        }
    }

    /// Makes `batch` durable; returns once it is on disk.
    pub async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        self.submit(batch).await
    }

    /// Queues `batch` at once and returns a future that resolves when it is
    /// durable. Reads see the batch from this call on. Batches queued one after
    /// another (for example under a caller's lock that orders writes to one
    /// key) reach the log in that order.
    pub fn submit(
        &self,
        batch: Batch,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let queued = self.enqueue(batch);
        async move {
            match queued {
                Ok(None) => Ok(()),
                Ok(Some(wait)) => wait.await.map_err(|_| writer_stopped())?,
                Err(e) => Err(e),
            }
        }
    }

    /// Blocking form of [`Store::commit`] for code outside the async runtime.
    pub fn commit_blocking(&self, batch: Batch) -> Result<(), StoreError> {
        match self.enqueue(batch)? {
            None => Ok(()),
            Some(wait) => wait.blocking_recv().map_err(|_| writer_stopped())?,
        }
    }

    /// Adds `batch` to the overlay and hands its frame to the writer, both
    /// under the overlay's lock so that submission seqs and log order agree.
    fn enqueue(
        &self,
        batch: Batch,
    ) -> Result<Option<oneshot::Receiver<Result<(), StoreError>>>, StoreError> {
        if batch.is_empty() {
            return Ok(None);
        }
        let payload = encode_payload(&batch.ops)?;
        let ops = batch.ops.len();
        let changes = batch.ops.into_iter().map(|op| match op {
            Op::Put { table, key, value } => (table, key, Some(Bytes::from(value))),
            Op::Delete { table, key } => (table, key, None),
        });
        let (done, wait) = oneshot::channel();
        let mut overlay = self.overlay_mut();
        let seq = overlay.add(changes);
        self.writer
            .send(Request::Commit(Frame { payload, ops, seq }, done))
            .map_err(|_| writer_stopped())?;
        drop(overlay);
        Ok(Some(wait))
    }

    fn overlay(&self) -> RwLockReadGuard<'_, Overlay> {
        self.overlay.read().unwrap_or_else(|p| p.into_inner())
    }

    fn overlay_mut(&self) -> RwLockWriteGuard<'_, Overlay> {
        self.overlay.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until every write acknowledged before this call is in redb.
    /// A std channel rather than a tokio one: it may be called from inside the
    /// runtime, where `blocking_recv` would panic.
    fn checkpoint_now(&self) -> Result<(), StoreError> {
        let (done, wait) = mpsc::channel();
        self.writer
            .send(Request::Checkpoint(done))
            .map_err(|_| writer_stopped())?;
        wait.recv().map_err(|_| writer_stopped())?
    }

    /// Moves every acknowledged write into redb and empties the log, so that
    /// the next open replays nothing (serve calls it when it stops: handles
    /// held by background tasks may outlive it, and their final checkpoint
    /// would not run).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.checkpoint_now()
    }

    /// The value of `key` in `table` as of every write submitted before this call.
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        // The redb view opens under the overlay's lock: a version that leaves
        // the overlay after this is in redb before it leaves (see `Writer::checkpoint`).
        let txn = {
            let overlay = self.overlay();
            match overlay.get(table, key) {
                Pending::Put(value) => return Ok(Some(value.to_vec())),
                Pending::Deleted => return Ok(None),
                Pending::None => self.db.begin_read().map_err(err)?,
            }
        };
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(table);
        let table = match txn.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        Ok(table.get(key).map_err(err)?.map(|v| v.value().to_vec()))
    }

    /// [`Store::get`] of several keys at once: one look at the overlay and at
    /// most one redb view for all of them (a request that checks a batch of
    /// keys pays for one view, not one per key).
    pub fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut unresolved = Vec::new();
        let txn = {
            let overlay = self.overlay();
            for (i, key) in keys.iter().enumerate() {
                match overlay.get(table, key) {
                    Pending::Put(value) => out[i] = Some(value.to_vec()),
                    Pending::Deleted => {}
                    Pending::None => unresolved.push(i),
                }
            }
            if unresolved.is_empty() {
                return Ok(out);
            }
            self.db.begin_read().map_err(err)?
        };
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(table);
        let t = match txn.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(out),
            Err(e) => return Err(err(e)),
        };
        for i in unresolved {
            out[i] = t
                .get(keys[i].as_slice())
                .map_err(err)?
                .map(|v| v.value().to_vec());
        }
        Ok(out)
    }

    /// Calls `visit` with the records of `table` from the first key at or
    /// after `from`, in key order, as of the writes submitted before each
    /// record is reached, until it returns [`Step::Stop`] or the table ends.
    ///
    /// The scan goes in segments: a chunk of overlay keys taken under the
    /// overlay's lock, merged with redb's records up to the chunk's last key.
    /// A checkpoint between segments moves versions from the overlay into a
    /// redb state newer than the scan's view, so the next segment opens a new
    /// view whenever the overlay's epoch has moved.
    pub fn scan(
        &self,
        table: &str,
        from: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Step,
    ) -> Result<(), StoreError> {
        type View = Option<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>;
        type Guard = redb::AccessGuard<'static, &'static [u8]>;
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(table);
        let mut start = Bound::Included(from.to_vec());
        let mut view: Option<(u64, View)> = None;
        loop {
            let (chunk, complete) = {
                let overlay = self.overlay();
                if view.as_ref().map(|(epoch, _)| *epoch) != Some(overlay.epoch()) {
                    let txn = self.db.begin_read().map_err(err)?;
                    let table = match txn.open_table(def) {
                        Ok(t) => Some(t),
                        Err(TableError::TableDoesNotExist(_)) => None,
                        Err(e) => return Err(err(e)),
                    };
                    view = Some((overlay.epoch(), table));
                }
                overlay.chunk(table, &start, SCAN_CHUNK)
            };
            // Past the chunk's last key the overlay may hold more than this
            // chunk shows, so redb is read only up to it.
            let end = match (complete, chunk.last()) {
                (false, Some((last, _))) => Bound::Included(last.clone()),
                _ => Bound::Unbounded,
            };
            let mut disk = match view.as_ref().and_then(|(_, t)| t.as_ref()) {
                Some(t) => Some(
                    t.range::<&[u8]>((as_slice(&start), as_slice(&end)))
                        .map_err(err)?,
                ),
                None => None,
            };
            // redb's records are visited from its pages, not copied.
            let mut next_disk = || -> Result<Option<(Guard, Guard)>, StoreError> {
                match disk.as_mut().and_then(Iterator::next) {
                    Some(Ok(record)) => Ok(Some(record)),
                    Some(Err(e)) => Err(err(e)),
                    None => Ok(None),
                }
            };
            let mut pending = chunk.into_iter().peekable();
            let mut on_disk = next_disk()?;
            let mut seek = None;
            loop {
                let from_overlay = match (&on_disk, pending.peek()) {
                    (None, None) => break,
                    (Some(_), None) => false,
                    (None, Some(_)) => true,
                    (Some((dk, _)), Some((ok, _))) => ok.as_slice() <= dk.value(),
                };
                // The step, and whether a seek it asks for goes past the current key.
                let (step, onward) = if from_overlay {
                    let Some((key, value)) = pending.next() else {
                        break;
                    };
                    // The overlay's version replaces redb's.
                    if on_disk
                        .as_ref()
                        .is_some_and(|(dk, _)| dk.value() == key.as_slice())
                    {
                        on_disk = next_disk()?;
                    }
                    let Some(value) = value else {
                        continue;
                    };
                    let step = visit(&key, &value);
                    let onward = matches!(&step, Step::Seek(to) if to.as_slice() > key.as_slice());
                    (step, onward)
                } else {
                    let Some((k, v)) = on_disk.take() else {
                        break;
                    };
                    on_disk = next_disk()?;
                    let step = visit(k.value(), v.value());
                    let onward = matches!(&step, Step::Seek(to) if to.as_slice() > k.value());
                    (step, onward)
                };
                match step {
                    Step::Stop => return Ok(()),
                    Step::Seek(to) if onward => {
                        seek = Some(to);
                        break;
                    }
                    _ => {}
                }
            }
            start = match (seek, end) {
                (Some(to), _) => Bound::Included(to),
                (None, Bound::Included(last)) => Bound::Excluded(last),
                (None, _) => return Ok(()),
            };
        }
    }

    /// Every record of `table` whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, table: &str, prefix: &[u8]) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        self.scan(table, prefix, |k, v| {
            if !k.starts_with(prefix) {
                return Step::Stop;
            }
            out.push((k.to_vec(), v.to_vec()));
            Step::Next
        })?;
        Ok(out)
    }

    /// Every key of each of `tables` (what a service's reset deletes), read on a
    /// blocking thread so that the async runtime's workers are not held.
    pub async fn keys_of_tables(
        &self,
        tables: &[&'static str],
    ) -> Result<Vec<(&'static str, Vec<Vec<u8>>)>, StoreError> {
        let store = self.clone();
        let tables = tables.to_vec();
        tokio::task::spawn_blocking(move || {
            tables
                .into_iter()
                .map(|t| store.keys(t).map(|keys| (t, keys)))
                .collect()
        })
        .await
        .map_err(err)?
    }

    /// Every key of `table`, in order (reset deletes them).
    pub fn keys(&self, table: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        self.scan(table, b"", |k, _| {
            out.push(k.to_vec());
            Step::Next
        })?;
        Ok(out)
    }

    /// Closes the last handle and waits until the writer has checkpointed and
    /// released the file (dropping a handle releases it a moment later). Waits
    /// for every other handle to go too: call it on the only one.
    pub fn close(self) {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(self);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Writes `batch` straight into redb, past the WAL and without waiting for
    /// the disk: for filling a new store that is thrown away when the fill
    /// fails (a state load). Nothing imported is durable before
    /// [`Store::finish_import`]; the store must take no other writes meanwhile.
    pub fn import(&self, batch: Batch) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(err)?;
        txn.set_durability(Durability::None).map_err(err)?;
        {
            // Records come table by table: each table is opened once per run of them.
            let mut open: Option<(String, BytesTable)> = None;
            for op in batch.ops {
                let (table, key, value) = match op {
                    Op::Put { table, key, value } => (table, key, Some(value)),
                    Op::Delete { table, key } => (table, key, None),
                };
                if open.as_ref().is_none_or(|(name, _)| *name != table) {
                    // The open table borrows the transaction: closed before the next opens.
                    drop(open.take());
                    let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(&table);
                    let handle = txn.open_table(def).map_err(err)?;
                    open = Some((table, handle));
                }
                let Some((_, handle)) = open.as_mut() else {
                    continue;
                };
                match value {
                    Some(value) => {
                        handle
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(err)?;
                    }
                    None => {
                        handle.remove(key.as_slice()).map_err(err)?;
                    }
                }
            }
        }
        txn.commit().map_err(err)
    }

    /// Makes every [`Store::import`] durable (one synced commit).
    pub fn finish_import(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(err)?;
        txn.set_durability(Durability::Immediate).map_err(err)?;
        txn.set_quick_repair(true);
        txn.commit().map_err(err)
    }

    /// A consistent view of every table as of every write acknowledged before
    /// this call, for a save of the whole state; later writes go on meanwhile
    /// and are not in it (redb's read transactions are snapshots).
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.checkpoint_now()?;
        Ok(Snapshot {
            txn: self.db.begin_read().map_err(err)?,
        })
    }

    /// Stops the writer without a checkpoint, as if the process were killed
    /// right after its last acknowledgement.
    #[cfg(test)]
    fn halt_for_tests(self) {
        let (done, wait) = mpsc::channel();
        if self.writer.send(Request::Halt(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

/// What [`Store::snapshot`] sees: the services' tables (not the store's own
/// bookkeeping), read on the caller's thread.
pub struct Snapshot {
    txn: redb::ReadTransaction,
}

impl Snapshot {
    /// The names of the services' tables, sorted.
    pub fn tables(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .txn
            .list_tables()
            .map_err(err)?
            .map(|t| t.name().to_string())
            .filter(|name| name != META.name() && name != WAL_META.name())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Calls `each` with every record of `table` in key order; stops at its
    /// first error.
    pub fn for_each<E: From<StoreError>>(
        &self,
        table: &str,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(table);
        let table = match self.txn.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(err(e).into()),
        };
        for entry in table.iter().map_err(err)? {
            let (k, v) = entry.map_err(err)?;
            each(k.value(), v.value())?;
        }
        Ok(())
    }
}

fn writer_stopped() -> StoreError {
    StoreError("writer stopped".into())
}

fn read_applied_lsn(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_read().map_err(err)?;
    let table = match txn.open_table(WAL_META) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(err(e)),
    };
    Ok(table
        .get(APPLIED_LSN)
        .map_err(err)?
        .map_or(0, |v| v.value()))
}

/// The changes a WAL holds beyond redb at open, reduced to the last op per
/// key: the final state after a sequence of puts and deletes depends only on
/// the last op on each key, and redb is cheaper fed fewer records in key order.
#[derive(Default)]
struct Unapplied {
    tables: BTreeMap<String, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    ops: usize,
    /// The lsn of the newest frame included.
    last_lsn: u64,
}

impl Unapplied {
    fn add(&mut self, table: String, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.tables.entry(table).or_default().insert(key, value);
        self.ops += 1;
    }
}

/// Writes `tables` and `last_lsn` to redb in one durable transaction.
fn apply<'a, V: AsRef<[u8]> + 'a>(
    db: &Database,
    tables: impl IntoIterator<Item = (&'a str, Vec<(&'a [u8], Option<V>)>)>,
    last_lsn: u64,
) -> Result<(), StoreError> {
    let mut txn = db.begin_write().map_err(err)?;
    // The WAL is emptied after this commit, so it must be on disk when it returns.
    txn.set_durability(Durability::Immediate).map_err(err)?;
    // With the allocator state in every commit, opening after a crash (or an
    // exit that left handles open) is instant; without it redb walks the whole
    // file, which costs seconds and its size in memory once the file is large.
    txn.set_quick_repair(true);
    {
        for (name, records) in tables {
            let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(name);
            let mut table = txn.open_table(def).map_err(err)?;
            for (key, value) in records {
                match value {
                    Some(value) => {
                        table.insert(key, value.as_ref()).map_err(err)?;
                    }
                    None => {
                        table.remove(key).map_err(err)?;
                    }
                }
            }
        }
        let mut meta = txn.open_table(WAL_META).map_err(err)?;
        meta.insert(APPLIED_LSN, last_lsn).map_err(err)?;
    }
    txn.commit().map_err(err)
}

struct Wal {
    file: File,
    path: PathBuf,
    /// Reused encoding buffer: one group, written with one call.
    buf: Vec<u8>,
    next_lsn: u64,
    /// Where the next frame goes: the end of the frames not yet in redb.
    pos: u64,
    /// The file's length. Past `pos` it holds only zeros and frames already
    /// in redb (see [`Wal::rewind`]), or after a failed write the frames of
    /// that unacknowledged group.
    len: u64,
    /// Whether writes are synced (see [`StoreOptions::durable`]).
    durable: bool,
}

impl Wal {
    /// Opens or creates the WAL and reads back the changes of its frames with
    /// an lsn above `applied_lsn`.
    fn open(path: &Path, applied_lsn: u64, durable: bool) -> Result<(Wal, Unapplied), StoreError> {
        let io = |e: io::Error| StoreError(format!("write-ahead log {}: {e}", path.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut header = [0u8; WAL_HEADER_LEN as usize];
        header[..8].copy_from_slice(WAL_MAGIC);
        header[8..12].copy_from_slice(&WAL_VERSION.to_le_bytes());
        if file_len < WAL_HEADER_LEN {
            // Only a crash while the WAL was being created leaves it shorter
            // than its header; it holds no frame, so it is written afresh. Any
            // other short file is not ours and is left alone.
            let mut found = Vec::new();
            file.read_to_end(&mut found).map_err(io)?;
            if !header.starts_with(&found) {
                return Err(not_a_wal(path));
            }
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(&header).map_err(io)?;
            if durable {
                file.sync_all().map_err(io)?;
                // The file's directory entry must be durable too, or a crash
                // could lose the whole log along with acknowledged frames.
                sync_parent_dir(path).map_err(io)?;
            }
            let wal = Wal {
                file,
                path: path.to_path_buf(),
                buf: Vec::new(),
                next_lsn: applied_lsn + 1,
                pos: WAL_HEADER_LEN,
                len: WAL_HEADER_LEN,
                durable,
            };
            return Ok((wal, Unapplied::default()));
        }
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut found = [0u8; WAL_HEADER_LEN as usize];
        reader.read_exact(&mut found).map_err(io)?;
        if found[..8] != WAL_MAGIC[..] {
            return Err(not_a_wal(path));
        }
        let version = u32_at(&found, 8);
        if version != WAL_VERSION {
            return Err(StoreError(format!(
                "write-ahead log {} has format version {version}; this nimbus understands only {WAL_VERSION}",
                path.display()
            )));
        }

        let mut pending = Unapplied::default();
        let mut pos = WAL_HEADER_LEN;
        let mut last_seen: Option<u64> = None;
        let mut replayed = 0u64;
        let mut payload = Vec::new();
        loop {
            let left = file_len - pos;
            if left < FRAME_HEADER_LEN as u64 {
                break;
            }
            let mut head = [0u8; FRAME_HEADER_LEN];
            reader.read_exact(&mut head).map_err(io)?;
            let len = u32_at(&head, 0);
            let crc = u32_at(&head, 4);
            let lsn = u64::from_le_bytes(head[8..16].try_into().map_err(err)?);
            // Checked before reading so that a torn length cannot make us
            // allocate gigabytes.
            if u64::from(len) > left - FRAME_HEADER_LEN as u64 {
                break;
            }
            payload.resize(len as usize, 0);
            reader.read_exact(&mut payload).map_err(io)?;
            if frame_crc(lsn, &payload) != crc {
                break;
            }
            // Frames are written with consecutive lsns; a valid frame out of
            // sequence is left from before a rewind (or a truncation that did
            // not reach the disk), and so is everything after it.
            if last_seen.is_some_and(|prev| lsn != prev + 1) {
                break;
            }
            last_seen = Some(lsn);
            pos += FRAME_HEADER_LEN as u64 + u64::from(len);
            if lsn > applied_lsn {
                decode_payload(&payload, &mut pending).map_err(|e| {
                    StoreError(format!(
                        "write-ahead log {}: frame {lsn} passed its checksum but does not decode ({e})",
                        path.display()
                    ))
                })?;
                pending.last_lsn = lsn;
                replayed += 1;
            }
        }
        drop(reader);
        if pos < file_len {
            // After a crash this is the usual case, not damage: the frame being
            // written, or frames from before the last rewind.
            tracing::info!(
                "write-ahead log {}: ignoring {} bytes of an incomplete or stale tail after lsn {}",
                path.display(),
                file_len - pos,
                last_seen.unwrap_or(0)
            );
        }
        if replayed > 0 {
            tracing::info!(
                "write-ahead log {}: replaying {replayed} frames ({} ops) up to lsn {}",
                path.display(),
                pending.ops,
                pending.last_lsn
            );
        }
        let wal = Wal {
            file,
            path: path.to_path_buf(),
            buf: Vec::new(),
            next_lsn: applied_lsn.max(last_seen.unwrap_or(0)) + 1,
            pos,
            len: file_len,
            durable,
        };
        Ok((wal, pending))
    }

    /// Appends `frame` to `buf` under the next lsn.
    fn encode(&mut self, frame: &Frame) {
        let lsn = self.next_lsn;
        let crc = frame_crc(lsn, &frame.payload);
        // `encode_payload` checked that the length fits.
        self.buf
            .extend_from_slice(&(frame.payload.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf.extend_from_slice(&lsn.to_le_bytes());
        self.buf.extend_from_slice(&frame.payload);
        self.next_lsn += 1;
    }

    /// Writes `buf` at `pos` and makes it durable.
    fn write_buf(&mut self) -> io::Result<()> {
        // Zeros for growing the file, written from one static block rather
        // than appended to `buf`, whose capacity would keep them resident.
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        let frames = self.buf.len();
        let end = self.pos + frames as u64;
        self.file.seek(SeekFrom::Start(self.pos))?;
        self.file.write_all(&self.buf)?;
        if end > self.len {
            // A write past the end of the file makes fdatasync write the inode
            // and the block allocation besides the data (see `rewind`), so the
            // file grows by a zero-filled chunk at a time: that cost is then
            // paid once per chunk instead of once per group. Zeros end a
            // replay like a torn frame: they fail the checksum.
            let new_len = end.div_ceil(WAL_GROWTH) * WAL_GROWTH;
            let mut pad = (new_len - end) as usize;
            while pad > 0 {
                let n = pad.min(ZEROS.len());
                self.file.write_all(&ZEROS[..n])?;
                pad -= n;
            }
            self.len = new_len;
        }
        // A burst of large batches leaves a large buffer: give it back.
        if self.buf.capacity() > WAL_GROWTH as usize {
            self.buf = Vec::new();
        }
        self.pos = end;
        // fdatasync also persists a grown file length, which reading the
        // frames back needs; other metadata (mtime) does not matter.
        if self.durable {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Starts the log over after a checkpoint but keeps the file's blocks,
    /// so that the next frames overwrite old ones in place: fdatasync of an
    /// in-place write flushes only the data, while a write past the end of the
    /// file also makes it write the inode and the block allocation, which
    /// measured as about a third of each fdatasync's cost.
    ///
    /// The frames left behind are never replayed: their lsns are at most the
    /// `applied_lsn` redb now holds, so recovery skips those it reads before
    /// the first new frame, and the first one after the new frames breaks the
    /// lsn sequence (or, cut mid-frame, fails its checksum) and ends replay.
    fn rewind(&mut self) {
        self.pos = WAL_HEADER_LEN;
    }

    /// Cuts the file back to its header, for a store that is idle, stopping
    /// or just opened, so that its log is empty on disk too.
    fn truncate(&mut self) -> io::Result<()> {
        if self.len > WAL_HEADER_LEN {
            self.file.set_len(WAL_HEADER_LEN)?;
            if self.durable {
                self.file.sync_data()?;
            }
            self.len = WAL_HEADER_LEN;
        }
        self.rewind();
        Ok(())
    }
}

/// redb's file backend without its syncs (see [`StoreOptions::durable`]).
#[derive(Debug)]
struct Unsynced(redb::backends::FileBackend);

impl redb::StorageBackend for Unsynced {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.0.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.0.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.0.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.0.close()
    }

    fn try_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.0.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.0.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.0.lock_range(start, end)
    }

    fn lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.0.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.0.unlock_range(start, end)
    }

    fn query_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.0.query_lock_range(start, end)
    }
}

fn not_a_wal(path: &Path) -> StoreError {
    StoreError(format!(
        "{} exists but is not a nimbus write-ahead log",
        path.display()
    ))
}

fn sync_parent_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn frame_crc(lsn: u64, payload: &[u8]) -> u32 {
    // The lsn is covered too: a frame torn inside its header must not be
    // replayed under a wrong lsn.
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// A batch's ops as a frame payload (see the module's layout).
fn encode_payload(ops: &[Op]) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::new();
    for op in ops {
        match op {
            Op::Put { table, key, value } => {
                buf.push(TAG_PUT);
                put_field(&mut buf, table.as_bytes());
                put_field(&mut buf, key);
                put_field(&mut buf, value);
            }
            Op::Delete { table, key } => {
                buf.push(TAG_DELETE);
                put_field(&mut buf, table.as_bytes());
                put_field(&mut buf, key);
            }
        }
    }
    // Any field too long for its u32 length makes the payload too long as
    // well, so this one check also rejects every mis-encoded field.
    if u32::try_from(buf.len()).is_err() {
        return Err(StoreError(
            "batch too large for one write-ahead log frame".into(),
        ));
    }
    Ok(buf)
}

fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn put_field(buf: &mut Vec<u8>, field: &[u8]) {
    // Truncation of an oversized length is caught by the frame length check.
    buf.extend_from_slice(&(field.len() as u32).to_le_bytes());
    buf.extend_from_slice(field);
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn decode_payload(payload: &[u8], into: &mut Unapplied) -> Result<(), String> {
    let mut rest = payload;
    fn field<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], String> {
        if rest.len() < 4 {
            return Err("truncated field length".into());
        }
        let len = u32_at(rest, 0) as usize;
        let body = &rest[4..];
        if body.len() < len {
            return Err("truncated field".into());
        }
        *rest = &body[len..];
        Ok(&body[..len])
    }
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        let table = std::str::from_utf8(field(&mut rest)?)
            .map_err(|_| "table name is not UTF-8".to_string())?
            .to_string();
        let key = field(&mut rest)?.to_vec();
        match tag {
            TAG_PUT => {
                let value = field(&mut rest)?.to_vec();
                into.add(table, key, Some(value));
            }
            TAG_DELETE => into.add(table, key, None),
            other => return Err(format!("unknown op tag {other}")),
        }
    }
    Ok(())
}

struct Writer {
    db: Arc<Database>,
    overlay: Arc<RwLock<Overlay>>,
    wal: Wal,
    progress: Progress,
    options: StoreOptions,
    last_checkpoint: Instant,
    /// Set after a WAL write or sync failed: the log's tail is then unknown
    /// (a partial frame, or data the kernel dropped), so no later commit may
    /// be acknowledged on top of it.
    failed: Option<String>,
}

/// What the log holds beyond redb since the last checkpoint.
#[derive(Default)]
struct Progress {
    /// Ops and WAL bytes, for the checkpoint thresholds.
    ops: usize,
    bytes: u64,
    /// The lsn of the newest durable frame.
    last_lsn: u64,
    /// The submission seq of the newest durable frame: overlay versions up
    /// to it may go to redb.
    durable_seq: u64,
    /// When the oldest of these changes was acknowledged.
    since: Option<Instant>,
}

impl Writer {
    /// Moves what recovery read from the WAL into redb and empties the WAL,
    /// so the writer starts with nothing pending.
    fn finish_recovery(&mut self, recovered: Unapplied) -> Result<(), StoreError> {
        if recovered.ops > 0 {
            let tables = recovered.tables.iter().map(|(name, records)| {
                let records = records
                    .iter()
                    .map(|(k, v)| (k.as_slice(), v.as_deref()))
                    .collect();
                (name.as_str(), records)
            });
            apply(&self.db, tables, recovered.last_lsn)?;
        }
        // Truncated, not rewound: past the replayed frames the file may hold a
        // torn or unacknowledged frame with an lsn above `applied_lsn`, which
        // must not be found by a later replay when new frames happen to end
        // exactly where it starts.
        self.wal
            .truncate()
            .map_err(|e| StoreError(format!("write-ahead log {}: {e}", self.wal.path.display())))
    }

    fn overlay(&self) -> RwLockReadGuard<'_, Overlay> {
        self.overlay.read().unwrap_or_else(|p| p.into_inner())
    }

    fn overlay_mut(&self) -> RwLockWriteGuard<'_, Overlay> {
        self.overlay.write().unwrap_or_else(|p| p.into_inner())
    }

    fn run(mut self, queue: mpsc::Receiver<Request>) {
        loop {
            // Waiting with a deadline makes an idle store checkpoint its
            // pending changes an interval after the oldest, and truncate its
            // WAL file an interval after that checkpoint if nothing came since.
            let interval = self.options.checkpoint_interval;
            let deadline = match self.progress.since {
                Some(since) => Some(since + interval),
                None if self.wal.len > WAL_HEADER_LEN => Some(self.last_checkpoint + interval),
                None => None,
            };
            let first = match deadline {
                None => match queue.recv() {
                    Ok(request) => request,
                    Err(_) => break,
                },
                Some(due) => {
                    match queue.recv_timeout(due.saturating_duration_since(Instant::now())) {
                        Ok(request) => request,
                        Err(RecvTimeoutError::Timeout) => {
                            // With nothing pending, no commit came for an
                            // interval after the last checkpoint: the store
                            // is idle and its WAL file may as well shrink.
                            let idle = self.progress.ops == 0;
                            let _ = self.checkpoint(idle);
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            let mut commits = Vec::new();
            let mut readers = Vec::new();
            #[cfg(test)]
            let mut halt = None;
            let mut next = Some(first);
            while let Some(request) = next {
                match request {
                    Request::Commit(frame, done) => commits.push((frame, done)),
                    Request::Checkpoint(done) => readers.push(done),
                    #[cfg(test)]
                    Request::Halt(done) => halt = Some(done),
                }
                next = queue.try_recv().ok();
            }
            if !commits.is_empty() {
                self.commit_group(commits);
            }
            #[cfg(test)]
            if let Some(done) = halt {
                let _ = done.send(());
                return;
            }
            let progress = &self.progress;
            let due = !readers.is_empty()
                || progress.ops >= self.options.checkpoint_ops
                || progress.bytes >= self.options.checkpoint_bytes
                || progress
                    .since
                    .is_some_and(|since| since.elapsed() >= self.options.checkpoint_interval);
            if due {
                let result = self.checkpoint(false);
                for done in readers {
                    let _ = done.send(result.clone());
                }
            }
        }
        // Every handle is gone: a final checkpoint leaves redb complete and
        // the WAL empty, so a clean stop needs no replay at the next open.
        let _ = self.checkpoint(true);
    }

    /// Makes a group durable in the WAL and acknowledges it; its changes wait
    /// in the overlay for the next checkpoint.
    fn commit_group(&mut self, commits: Vec<(Frame, oneshot::Sender<Result<(), StoreError>>)>) {
        if let Some(reason) = &self.failed {
            for (_, done) in commits {
                let _ = done.send(Err(StoreError(reason.clone())));
            }
            return;
        }
        self.wal.buf.clear();
        for (frame, _) in &commits {
            self.wal.encode(frame);
        }
        if let Err(e) = self.wal.write_buf() {
            let reason = format!(
                "write-ahead log {} failed ({e}); refusing further commits until nimbus restarts",
                self.wal.path.display()
            );
            tracing::error!("{reason}");
            // Later submissions fail too, so everything after the last durable
            // frame leaves the overlay: nothing unlogged may be read.
            self.overlay_mut().discard_after(self.progress.durable_seq);
            for (_, done) in commits {
                let _ = done.send(Err(StoreError(reason.clone())));
            }
            self.failed = Some(reason);
            return;
        }
        let progress = &mut self.progress;
        progress.bytes += self.wal.buf.len() as u64;
        progress.last_lsn = self.wal.next_lsn - 1;
        progress.since.get_or_insert_with(Instant::now);
        for (frame, done) in commits {
            progress.ops += frame.ops;
            progress.durable_seq = frame.seq;
            let _ = done.send(Ok(()));
        }
    }

    /// Moves every acknowledged change into redb and empties the WAL, by
    /// truncating its file when `truncate`, else by rewinding it.
    fn checkpoint(&mut self, truncate: bool) -> Result<(), StoreError> {
        self.last_checkpoint = Instant::now();
        if self.progress.ops == 0 {
            if truncate && self.wal.len > WAL_HEADER_LEN {
                self.empty_wal(true);
            }
            return Ok(());
        }
        let started = Instant::now();
        let upto = self.progress.durable_seq;
        // Values are shared (`Bytes`), so taking them holds the lock briefly.
        let changes = self.overlay().changes_upto(upto);
        let tables = changes.iter().map(|(name, records)| {
            let records = records
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_ref()))
                .collect();
            (name.as_str(), records)
        });
        if let Err(e) = apply(&self.db, tables, self.progress.last_lsn) {
            tracing::error!("store checkpoint failed, will retry: {e}");
            // The WAL and the overlay still hold every change, so nothing is
            // lost; wait a full interval before retrying rather than spinning.
            self.progress.since = Some(Instant::now());
            return Err(e);
        }
        // Only now may the versions leave the overlay: a reader that misses
        // them there opens its redb view after this commit (see `Store::get`).
        self.overlay_mut().retire(&changes, upto);
        let done = std::mem::take(&mut self.progress);
        self.progress.durable_seq = done.durable_seq;
        tracing::debug!(
            "checkpoint: {} ops ({} records) up to lsn {} in {:?}",
            done.ops,
            changes
                .iter()
                .map(|(_, c): &(String, TableChanges)| c.len())
                .sum::<usize>(),
            done.last_lsn,
            started.elapsed()
        );
        // Emptying the WAL is safe here: this thread is the only writer of
        // the WAL, and redb now holds durably, together with `last_lsn`, the
        // newest durable version of every key changed by an acknowledged
        // frame since the last checkpoint (versions submitted later are newer
        // than any durable one, and stay in the overlay for their own frames).
        // The only other frames are older ones, already in redb, and those of
        // a group whose write failed, which was never acknowledged.
        self.empty_wal(truncate);
        Ok(())
    }

    fn empty_wal(&mut self, truncate: bool) {
        if !truncate {
            self.wal.rewind();
            return;
        }
        if let Err(e) = self.wal.truncate() {
            if self.failed.is_none() {
                let reason = format!(
                    "write-ahead log {} could not be emptied ({e}); refusing further commits until nimbus restarts",
                    self.wal.path.display()
                );
                tracing::error!("{reason}");
                self.failed = Some(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};

    fn wal_len(path: &Path) -> u64 {
        std::fs::metadata(path.with_extension("wal")).unwrap().len()
    }

    /// Retries while the previous store's writer thread still holds the file.
    fn reopen(path: &Path, options: StoreOptions) -> Store {
        for _ in 0..500 {
            match Store::open_with(path, options.clone()) {
                Ok(s) => return s,
                Err(e) if e.0.contains("already open") => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("reopen: {e}"),
            }
        }
        panic!("store did not reopen");
    }

    /// Reads redb alone, without the WAL, once the store has let go of it.
    fn in_redb(path: &Path, table: &str, key: &[u8]) -> Option<Vec<u8>> {
        let db = (0..500)
            .find_map(|_| {
                Database::open(path).ok().or_else(|| {
                    std::thread::sleep(Duration::from_millis(10));
                    None
                })
            })
            .unwrap();
        let txn = db.begin_read().unwrap();
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(table);
        let table = txn.open_table(def).unwrap();
        table.get(key).unwrap().map(|v| v.value().to_vec())
    }

    /// Where the frames of a WAL image end (each commit here is one frame).
    fn frames_end(wal: &[u8]) -> usize {
        let mut at = WAL_HEADER_LEN as usize;
        while at + FRAME_HEADER_LEN <= wal.len() {
            let len = u32_at(wal, at) as usize;
            let lsn = u64::from_le_bytes(wal[at + 8..at + 16].try_into().unwrap());
            if lsn == 0 {
                break;
            }
            at += FRAME_HEADER_LEN + len;
        }
        at
    }

    fn no_checkpoints() -> StoreOptions {
        StoreOptions {
            checkpoint_ops: usize::MAX,
            checkpoint_bytes: u64::MAX,
            checkpoint_interval: Duration::from_secs(3600),
            ..StoreOptions::default()
        }
    }

    fn put(table: &str, key: &str, value: &str) -> Batch {
        let mut b = Batch::new();
        b.put(table, key.as_bytes().to_vec(), value.as_bytes().to_vec());
        b
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn commits_are_visible_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = Store::open(&path).unwrap();
            let mut tasks = Vec::new();
            for i in 0..50u32 {
                let s = store.clone();
                tasks.push(tokio::spawn(async move {
                    let mut b = Batch::new();
                    b.put(
                        "t",
                        format!("k{i:03}").into_bytes(),
                        i.to_be_bytes().to_vec(),
                    );
                    s.commit(b).await.unwrap();
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let mut b = Batch::new();
            b.delete("t", b"k000".to_vec());
            store.commit(b).await.unwrap();
        }
        // The writer thread lets go of the file once it sees the last sender dropped.
        let store = (0..200)
            .find_map(|_| {
                Store::open(&path).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    None
                })
            })
            .unwrap();
        let all = store.scan_prefix("t", b"k").unwrap();
        assert_eq!(all.len(), 49);
        assert_eq!(all[0].0, b"k001");
        assert_eq!(
            store.get("t", b"k007").unwrap(),
            Some(7u32.to_be_bytes().to_vec())
        );
        assert_eq!(store.get("missing", b"x").unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_commits_are_replayed_from_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open_with(&path, no_checkpoints()).unwrap();
        let mut tasks = Vec::new();
        for t in 0..16u32 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..40u32 {
                    let mut b = Batch::new();
                    b.put("a", format!("{t:02}-{i:03}").into_bytes(), i.to_be_bytes());
                    b.put("b", format!("{t:02}-{i:03}").into_bytes(), t.to_be_bytes());
                    s.commit(b).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(wal_len(&path) > WAL_HEADER_LEN);
        store.halt_for_tests();

        let store = reopen(&path, no_checkpoints());
        // Replayed into redb and the WAL emptied before open returned.
        assert_eq!(wal_len(&path), WAL_HEADER_LEN);
        let a = store.scan_prefix("a", b"").unwrap();
        let b = store.scan_prefix("b", b"").unwrap();
        assert_eq!((a.len(), b.len()), (640, 640));
        for t in 0..16u32 {
            for i in 0..40u32 {
                let key = format!("{t:02}-{i:03}").into_bytes();
                assert_eq!(
                    store.get("a", &key).unwrap(),
                    Some(i.to_be_bytes().to_vec())
                );
                assert_eq!(
                    store.get("b", &key).unwrap(),
                    Some(t.to_be_bytes().to_vec())
                );
            }
        }
        // Lsns continue after recovery: a later commit is replayed too.
        store.commit(put("a", "later", "x")).await.unwrap();
        store.halt_for_tests();
        let store = reopen(&path, no_checkpoints());
        assert_eq!(store.get("a", b"later").unwrap(), Some(b"x".to_vec()));
        assert_eq!(store.scan_prefix("a", b"").unwrap().len(), 641);
    }

    /// Commits ten one-frame batches, damages the WAL of the stopped store,
    /// reopens: the first nine are always there, the tenth if `last_survives`.
    fn torn_tail_case(last_survives: bool, damage: impl Fn(&mut Vec<u8>)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open_with(&path, no_checkpoints()).unwrap();
        // One commit at a time: one frame each.
        for i in 0..10 {
            store
                .commit_blocking(put("t", &format!("k{i}"), &format!("v{i}")))
                .unwrap();
        }
        store.halt_for_tests();
        let wal_path = path.with_extension("wal");
        let mut bytes = std::fs::read(&wal_path).unwrap();
        // Without the zeros the file grows by, as a crash in mid-growth leaves it.
        bytes.truncate(frames_end(&bytes));
        damage(&mut bytes);
        std::fs::write(&wal_path, &bytes).unwrap();

        let store = reopen(&path, no_checkpoints());
        assert_eq!(wal_len(&path), WAL_HEADER_LEN);
        for i in 0..9 {
            assert_eq!(
                store.get("t", format!("k{i}").as_bytes()).unwrap(),
                Some(format!("v{i}").into_bytes())
            );
        }
        let last = store.get("t", b"k9").unwrap();
        assert_eq!(last, last_survives.then(|| b"v9".to_vec()));
        // Writing goes on after the damaged tail was dropped.
        store.commit_blocking(put("t", "after", "1")).unwrap();
        store.halt_for_tests();
        let store = reopen(&path, no_checkpoints());
        assert_eq!(store.get("t", b"after").unwrap(), Some(b"1".to_vec()));
    }

    #[test]
    fn a_truncated_last_frame_is_ignored() {
        // Cut inside the payload, then inside the frame header.
        torn_tail_case(false, |wal| {
            let len = wal.len();
            wal.truncate(len - 3);
        });
        torn_tail_case(false, |wal| {
            let len = wal.len();
            wal.truncate(len - 20);
        });
    }

    #[test]
    fn garbage_after_the_last_frame_is_ignored() {
        torn_tail_case(true, |wal| {
            wal.extend((0..200u32).map(|i| (i * 37 % 251) as u8))
        });
        torn_tail_case(true, |wal| wal.extend([0u8; 4096]));
        // A complete frame header claiming more bytes than the file has.
        torn_tail_case(true, |wal| {
            wal.extend(1000u32.to_le_bytes());
            wal.extend(0u32.to_le_bytes());
            wal.extend(11u64.to_le_bytes());
            wal.extend([1u8; 10]);
        });
    }

    #[test]
    fn imports_are_in_the_store_after_finish_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open(&path).unwrap();
        let mut batch = Batch::new();
        for i in 0..100u32 {
            batch.put(
                if i % 2 == 0 { "a" } else { "b" },
                i.to_be_bytes(),
                b"v".to_vec(),
            );
        }
        batch.delete("a", 0u32.to_be_bytes());
        store.import(batch).unwrap();
        store.finish_import().unwrap();
        store.close();
        let store = reopen(&path, StoreOptions::default());
        assert_eq!(store.keys("a").unwrap().len(), 49);
        assert_eq!(store.keys("b").unwrap().len(), 50);
        assert_eq!(
            store.get("b", &1u32.to_be_bytes()).unwrap(),
            Some(b"v".to_vec())
        );
    }

    #[test]
    fn keys_lists_a_tables_keys_including_writes_not_yet_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(&dir.path().join("state.redb"), no_checkpoints()).unwrap();
        store.commit_blocking(put("t", "b", "1")).unwrap();
        store.commit_blocking(put("t", "a", "2")).unwrap();
        store.commit_blocking(put("u", "c", "3")).unwrap();
        assert_eq!(store.keys("t").unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(store.keys("missing").unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_frame_ends_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open_with(&path, no_checkpoints()).unwrap();
        for i in 0..3 {
            store
                .commit_blocking(put("t", &format!("k{i}"), "v"))
                .unwrap();
        }
        store.halt_for_tests();
        let wal_path = path.with_extension("wal");
        let mut bytes = std::fs::read(&wal_path).unwrap();
        // Flip a byte in the second frame's payload: it and the third are dropped.
        let first_len = u32_at(&bytes, WAL_HEADER_LEN as usize) as usize;
        let second = WAL_HEADER_LEN as usize + FRAME_HEADER_LEN + first_len;
        bytes[second + FRAME_HEADER_LEN + 2] ^= 0xff;
        std::fs::write(&wal_path, &bytes).unwrap();
        let store = reopen(&path, no_checkpoints());
        assert_eq!(store.get("t", b"k0").unwrap(), Some(b"v".to_vec()));
        assert_eq!(store.get("t", b"k1").unwrap(), None);
        assert_eq!(store.get("t", b"k2").unwrap(), None);
    }

    #[test]
    fn deletes_are_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open_with(&path, no_checkpoints()).unwrap();
        let mut b = Batch::new();
        for k in ["a", "b", "c", "d"] {
            b.put("t", k.as_bytes().to_vec(), b"old".to_vec());
        }
        store.commit_blocking(b).unwrap();
        // The read checkpoints, so these deletes must be replayed against redb.
        assert_eq!(store.get("t", b"a").unwrap(), Some(b"old".to_vec()));
        let mut b = Batch::new();
        b.delete("t", b"a".to_vec());
        b.put("t", b"b".to_vec(), b"new".to_vec());
        b.delete("t", b"c".to_vec());
        store.commit_blocking(b).unwrap();
        store.commit_blocking(put("t", "c", "again")).unwrap();
        store.commit_blocking(put("t", "e", "short-lived")).unwrap();
        let mut b = Batch::new();
        b.delete("t", b"e".to_vec());
        b.delete("t", b"d".to_vec());
        store.commit_blocking(b).unwrap();
        store.halt_for_tests();

        let store = reopen(&path, no_checkpoints());
        let all = store.scan_prefix("t", b"").unwrap();
        assert_eq!(
            all,
            vec![
                (b"b".to_vec(), b"new".to_vec()),
                (b"c".to_vec(), b"again".to_vec()),
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn reads_see_writes_not_yet_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open_with(&path, no_checkpoints()).unwrap();
        store.commit(put("t", "k", "v")).await.unwrap();
        assert!(wal_len(&path) > WAL_HEADER_LEN);
        assert_eq!(store.get("t", b"k").unwrap(), Some(b"v".to_vec()));
        store.commit(put("t", "k2", "v2")).await.unwrap();
        assert_eq!(store.scan_prefix("t", b"k").unwrap().len(), 2);

        // Readers racing writers see every write acknowledged before they asked.
        let mut tasks = Vec::new();
        for t in 0..8u32 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..30u32 {
                    let key = format!("r{t}-{i}");
                    s.commit(put("r", &key, "x")).await.unwrap();
                    let s2 = s.clone();
                    let found = tokio::task::spawn_blocking(move || s2.get("r", key.as_bytes()))
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(found, Some(b"x".to_vec()));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(store.scan_prefix("r", b"").unwrap().len(), 240);
        // Reads did not checkpoint: the writes come back by replay.
        store.halt_for_tests();
        let store = reopen(&path, no_checkpoints());
        assert_eq!(store.get("t", b"k2").unwrap(), Some(b"v2".to_vec()));
        assert_eq!(store.get("r", b"r7-29").unwrap(), Some(b"x".to_vec()));
    }

    fn key(i: u32) -> Vec<u8> {
        format!("k{i:05}").into_bytes()
    }

    /// A scan sees, once each and in order, every record that existed before
    /// it began and was not changed meanwhile, while writes and checkpoints
    /// move records from the overlay into redb under it.
    #[tokio::test(flavor = "multi_thread")]
    async fn scans_merge_the_overlay_with_redb_across_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let options = StoreOptions {
            checkpoint_ops: 50,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&path, options).unwrap();
        // Even keys in redb (and some of them deleted in the overlay), odd keys pending.
        for chunk in (0..2000u32).step_by(2).collect::<Vec<_>>().chunks(100) {
            let mut b = Batch::new();
            for i in chunk {
                b.put("t", key(*i), b"even".to_vec());
            }
            store.commit(b).await.unwrap();
        }
        store.checkpoint_now().unwrap();
        let mut b = Batch::new();
        for i in (1..2000u32).step_by(2) {
            b.put("t", key(i), b"odd".to_vec());
        }
        for i in (0..2000u32).step_by(10) {
            b.delete("t", key(i));
        }
        store.commit(b).await.unwrap();
        let writer = {
            let s = store.clone();
            tokio::spawn(async move {
                for i in 0..400u32 {
                    s.commit(put("t", &format!("z{i:05}"), "late"))
                        .await
                        .unwrap();
                }
            })
        };
        let s = store.clone();
        let seen = tokio::task::spawn_blocking(move || {
            let mut seen = Vec::new();
            s.scan("t", b"k", |k, v| {
                if !k.starts_with(b"k") {
                    return Step::Stop;
                }
                seen.push((k.to_vec(), v.to_vec()));
                // Slow enough that the writer checkpoints several times meanwhile.
                std::thread::sleep(Duration::from_micros(200));
                Step::Next
            })
            .unwrap();
            seen
        })
        .await
        .unwrap();
        writer.await.unwrap();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = (0..2000u32)
            .filter(|i| i % 10 != 0)
            .map(|i| {
                let v: &[u8] = if i % 2 == 0 { b"even" } else { b"odd" };
                (key(i), v.to_vec())
            })
            .collect();
        assert_eq!(seen.len(), expected.len());
        assert!(seen == expected, "the scan differs from the table");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unsynced_store_reads_back_what_it_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let unsynced = StoreOptions {
            durable: false,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&path, unsynced.clone()).unwrap();
        store.commit(put("t", "k", "v")).await.unwrap();
        store.checkpoint().unwrap();
        store.commit(put("t", "k2", "v2")).await.unwrap();
        store.close();
        let store = reopen(&path, unsynced);
        assert_eq!(store.get("t", b"k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(store.get("t", b"k2").unwrap(), Some(b"v2".to_vec()));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_scan_seeks_past_what_its_visitor_skips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open_with(&path, no_checkpoints()).unwrap();
        let mut b = Batch::new();
        for name in ["a/1", "a/2", "b/1", "b/2", "c"] {
            b.put("t", name.as_bytes().to_vec(), b"v".to_vec());
        }
        store.commit(b).await.unwrap();
        store.checkpoint_now().unwrap();
        store.commit(put("t", "b/3", "v")).await.unwrap();
        // A listing with delimiter "/" reports each prefix once and seeks past it.
        let mut prefixes = Vec::new();
        store
            .scan("t", b"", |k, _| match k.iter().position(|b| *b == b'/') {
                Some(at) => {
                    prefixes.push(String::from_utf8_lossy(&k[..=at]).into_owned());
                    let mut next = k[..=at].to_vec();
                    *next.last_mut().unwrap() += 1;
                    Step::Seek(next)
                }
                None => {
                    prefixes.push(String::from_utf8_lossy(k).into_owned());
                    Step::Next
                }
            })
            .unwrap();
        assert_eq!(prefixes, ["a/", "b/", "c"]);
    }

    #[test]
    fn rewound_frames_are_never_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open_with(&path, no_checkpoints()).unwrap();
        for i in 0..20 {
            store
                .commit_blocking(put("t", &format!("k{i:02}"), &"old".repeat(40)))
                .unwrap();
        }
        // Checkpoints and rewinds: the file keeps its frames.
        assert_eq!(store.scan_prefix("t", b"").unwrap().len(), 20);
        let full = wal_len(&path);
        assert!(full > 20 * 120);
        let mut b = Batch::new();
        for i in 0..20 {
            b.delete("t", format!("k{i:02}").into_bytes());
        }
        store.commit_blocking(b).unwrap();
        store.commit_blocking(put("t", "new", "1")).unwrap();
        // Written over the old frames, in place.
        assert_eq!(wal_len(&path), full);
        store.halt_for_tests();

        // Replaying an old put after the new delete would bring its key back.
        let store = reopen(&path, no_checkpoints());
        assert_eq!(
            store.scan_prefix("t", b"").unwrap(),
            vec![(b"new".to_vec(), b"1".to_vec())]
        );
    }

    #[test]
    fn an_idle_store_checkpoints_and_empties_its_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open_with(
            &path,
            StoreOptions {
                checkpoint_interval: Duration::from_millis(300),
                ..StoreOptions::default()
            },
        )
        .unwrap();
        store.commit_blocking(put("t", "k", "v")).unwrap();
        assert!(wal_len(&path) > WAL_HEADER_LEN);
        let deadline = Instant::now() + Duration::from_secs(10);
        while wal_len(&path) > WAL_HEADER_LEN {
            assert!(Instant::now() < deadline, "no idle checkpoint");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The change is in redb itself: a crash now needs no replay.
        store.halt_for_tests();
        assert_eq!(in_redb(&path, "t", b"k"), Some(b"v".to_vec()));

        // Checkpoints under load only rewind the file; idleness truncates it.
        let store = reopen(
            &path,
            StoreOptions {
                checkpoint_ops: 1,
                checkpoint_interval: Duration::from_millis(300),
                ..StoreOptions::default()
            },
        );
        store.commit_blocking(put("t", "k", "v2")).unwrap();
        store.commit_blocking(put("t", "k", "v3")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while wal_len(&path) > WAL_HEADER_LEN {
            assert!(Instant::now() < deadline, "no idle truncation");
            std::thread::sleep(Duration::from_millis(20));
        }
        store.halt_for_tests();
        assert_eq!(in_redb(&path, "t", b"k"), Some(b"v3".to_vec()));
    }

    #[test]
    fn a_clean_stop_leaves_an_empty_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = Store::open_with(&path, no_checkpoints()).unwrap();
        store.commit_blocking(put("t", "k", "v")).unwrap();
        drop(store);
        let store = reopen(&path, no_checkpoints());
        assert_eq!(wal_len(&path), WAL_HEADER_LEN);
        assert_eq!(store.get("t", b"k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn an_unknown_wal_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let mut header = Vec::from(&WAL_MAGIC[..]);
        header.extend(99u32.to_le_bytes());
        header.extend([0u8; 4]);
        std::fs::write(path.with_extension("wal"), &header).unwrap();
        let e = Store::open(&path).err().unwrap();
        assert!(e.0.contains("format version 99"), "{e}");

        std::fs::write(path.with_extension("wal"), b"something else entirely").unwrap();
        let e = Store::open(&path).err().unwrap();
        assert!(e.0.contains("not a nimbus write-ahead log"), "{e}");
    }

    #[test]
    fn a_wal_cut_inside_its_header_is_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        std::fs::write(path.with_extension("wal"), &WAL_MAGIC[..5]).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(wal_len(&path), WAL_HEADER_LEN);
        store.commit_blocking(put("t", "k", "v")).unwrap();
        assert_eq!(store.get("t", b"k").unwrap(), Some(b"v".to_vec()));
    }

    const CRASH_CHILD: &str = "NIMBUS_STORE_CRASH_CHILD";

    /// The child side of `acknowledged_commits_survive_sigkill`: commits
    /// numbered records from several threads and prints each acknowledged
    /// number, until killed. Does nothing in a normal test run.
    #[test]
    fn crash_child() {
        let Some(path) = std::env::var_os(CRASH_CHILD) else {
            return;
        };
        let round = std::env::var("NIMBUS_STORE_CRASH_ROUND").unwrap();
        let checkpoint_ops = std::env::var("NIMBUS_STORE_CRASH_OPS")
            .unwrap()
            .parse()
            .unwrap();
        // The parent's store of the previous round may still be letting go.
        let store = reopen(
            Path::new(&path),
            StoreOptions {
                checkpoint_ops,
                ..StoreOptions::default()
            },
        );
        let next = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let store = store.clone();
                let next = next.clone();
                let round = round.clone();
                std::thread::spawn(move || loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let mut b = Batch::new();
                    b.put(
                        "crash",
                        format!("{round}-{n:08}").into_bytes(),
                        n.to_be_bytes(),
                    );
                    // A short-lived key in the same batch, so deletes are in the log too.
                    b.put("scratch", n.to_be_bytes(), vec![7u8; (n % 300) as usize]);
                    if n > 0 {
                        b.delete("scratch", (n - 1).to_be_bytes());
                    }
                    store.commit_blocking(b).unwrap();
                    println!("ack {n}");
                })
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
    }

    #[test]
    fn acknowledged_commits_survive_sigkill() {
        if std::env::var_os(CRASH_CHILD).is_some() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let exe = std::env::current_exe().unwrap();
        let mut killed_with_frames = 0;
        // Kill points vary; small checkpoint thresholds make kills land inside
        // checkpoints and WAL truncations too, large ones in a long WAL.
        for (round, (kill_after, checkpoint_ops)) in [
            (500, 100),
            (3000, 20_000),
            (1500, 700),
            (2500, 50),
            (4000, 3000),
        ]
        .into_iter()
        .enumerate()
        {
            // The previous round's child is dead; its redb lock went with it.
            let mut child = Command::new(&exe)
                .args([
                    "--exact",
                    "tests::crash_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CRASH_CHILD, &path)
                .env("NIMBUS_STORE_CRASH_ROUND", round.to_string())
                .env("NIMBUS_STORE_CRASH_OPS", checkpoint_ops.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let mut acked = Vec::new();
            // libtest may print its own text ahead of the first number.
            for line in lines.by_ref() {
                if let Some((_, n)) = line.unwrap().rsplit_once("ack ") {
                    acked.push(n.parse::<u64>().unwrap());
                    if acked.len() >= kill_after {
                        break;
                    }
                }
            }
            child.kill().unwrap(); // SIGKILL
                                   // Numbers printed before the kill were acknowledged too.
            for line in lines {
                let Ok(line) = line else { break };
                if let Some((_, n)) = line.rsplit_once("ack ") {
                    acked.push(n.parse::<u64>().unwrap());
                }
            }
            child.wait().unwrap();
            assert!(acked.len() >= kill_after, "child died early");
            if wal_len(&path) > WAL_HEADER_LEN {
                killed_with_frames += 1;
            }

            let store = reopen(&path, StoreOptions::default());
            let found: HashSet<Vec<u8>> = store
                .scan_prefix("crash", format!("{round}-").as_bytes())
                .unwrap()
                .into_iter()
                .map(|(k, v)| {
                    let n = u64::from_be_bytes(v.try_into().unwrap());
                    assert_eq!(k, format!("{round}-{n:08}").into_bytes());
                    k
                })
                .collect();
            for n in &acked {
                assert!(
                    found.contains(format!("{round}-{n:08}").as_bytes()),
                    "round {round}: acknowledged {n} lost ({} acked, {} found)",
                    acked.len(),
                    found.len()
                );
            }
            drop(store);
        }
        // Otherwise no kill tested a replay.
        assert!(killed_with_frames > 0);
    }
}
