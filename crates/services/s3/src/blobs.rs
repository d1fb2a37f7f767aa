//! Object bodies on disk. Each stored body (a whole object, or one part of a
//! multipart object) is an immutable file `objects/<2 hex>/<id>` under the S3
//! data directory. A body is written to `tmp/<id>`, synced, renamed into
//! place and its directory synced before any record names it, so a crash can
//! leave at most an unnamed file, never a named half file. [`Blobs::open`]
//! clears `tmp/`; files a crash left in `objects/` without a record (renamed
//! but never named, or a record deleted but not yet unlinked) are found by a
//! sweep after the start (`S3::sweep_orphan_bodies`). Files are never rewritten:
//! overwrites and deletes drop the record first and unlink afterwards, so a
//! reader that already opened a file keeps reading the body it asked for, and
//! a copy of a whole object is a hard link.

use nimbus_core::{AwsError, DeferredRemovals, FileHold};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// The mark of a clean stop, in the S3 data directory.
const CLEAN_STOP: &str = "clean-stop";

/// Bodies are gathered into writes of this size: large enough that syscalls
/// do not dominate, small enough to keep memory per upload low.
const WRITE_CHUNK: usize = 1 << 20;

#[derive(Debug)]
pub struct Blobs {
    objects: PathBuf,
    tmp: PathBuf,
    /// False under `--ephemeral`-like tests that do not need fsync; always true in serve.
    durable: bool,
    /// Unlinks wait while a save of the whole cloud reads the bodies.
    removals: Arc<DeferredRemovals>,
}

impl Blobs {
    /// Opens (creating) the blob directories below `root` and empties `tmp/`.
    pub fn open(root: &Path, durable: bool) -> Result<Blobs, String> {
        let objects = root.join("objects");
        let tmp = root.join("tmp");
        for dir in [&objects, &tmp] {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        // Anything in tmp/ was never renamed into place, so no record names it.
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Blobs {
            objects,
            tmp,
            durable,
            removals: Arc::default(),
        })
    }

    pub fn path(&self, id: &str) -> PathBuf {
        let shard = id.get(..2).unwrap_or("00");
        self.objects.join(shard).join(id)
    }

    pub fn new_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Starts writing a new body.
    pub fn writer(&self) -> Result<BlobWriter, AwsError> {
        let id = Blobs::new_id();
        let tmp_path = self.tmp.join(&id);
        let file = File::create(&tmp_path).map_err(io_error)?;
        Ok(BlobWriter {
            id,
            tmp_path,
            final_path: self.path_for_new(),
            file: Some(file),
            pending: Vec::with_capacity(WRITE_CHUNK),
            durable: self.durable,
            finished: false,
            pipe: None,
        })
    }

    fn path_for_new(&self) -> PathBuf {
        self.objects.clone()
    }

    /// Opens a stored body for reading.
    pub fn open_file(&self, id: &str) -> Result<File, AwsError> {
        File::open(self.path(id)).map_err(io_error)
    }

    /// A second name for a stored body (a copied object shares the file).
    pub fn link(&self, id: &str) -> Result<String, AwsError> {
        let new_id = Blobs::new_id();
        let target = self.path(&new_id);
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).map_err(io_error)?;
        }
        fs::hard_link(self.path(id), &target).map_err(io_error)?;
        if self.durable {
            sync_dir(target.parent())?;
        }
        Ok(new_id)
    }

    /// The stored bodies whose file existed before `started` (its inode changed
    /// last before then: a hard link or a rename made later changes it too),
    /// so that no body written or linked since is among them.
    pub fn older_than(&self, started: SystemTime) -> HashSet<String> {
        let mut found = HashSet::new();
        let Ok(shards) = fs::read_dir(&self.objects) else {
            return found;
        };
        for shard in shards.flatten() {
            let Ok(files) = fs::read_dir(shard.path()) else {
                continue;
            };
            for file in files.flatten() {
                let changed = file.metadata().ok().and_then(|m| changed_at(&m));
                if changed.is_some_and(|t| t < started) {
                    found.insert(file.file_name().to_string_lossy().into_owned());
                }
            }
        }
        found
    }

    /// Whether the previous run marked its stop as clean (see
    /// [`Blobs::mark_clean_stop`]); the mark is removed, so a crash of this
    /// run leaves none.
    pub fn stopped_cleanly(root: &Path) -> bool {
        fs::remove_file(root.join(CLEAN_STOP)).is_ok()
    }

    /// Marks this run's stop as clean: every body it unlinked is gone and no
    /// body is half named, so the next start needs no sweep.
    pub fn mark_clean_stop(&self) {
        if let Some(root) = self.objects.parent() {
            let _ = File::create(root.join(CLEAN_STOP));
        }
    }

    /// Removes stored bodies no record names any more (once no save holds them).
    pub fn remove(&self, ids: &[String]) {
        let paths: Vec<PathBuf> = ids.iter().map(|id| self.path(id)).collect();
        self.removals.run_or_defer(move || {
            for path in paths {
                let _ = fs::remove_file(path);
            }
        });
    }

    /// Every stored body, held until the returned hold drops (for a save).
    pub fn hold(&self) -> FileHold {
        FileHold {
            settled: vec![self.objects.clone()],
            release: Some(Box::new(self.removals.hold())),
            ..FileHold::default()
        }
    }
}

/// When a file's inode last changed (ctime), where the platform tells.
fn changed_at(meta: &fs::Metadata) -> Option<SystemTime> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let secs = u64::try_from(meta.ctime()).ok()?;
        let nanos = u32::try_from(meta.ctime_nsec()).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
    }
    #[cfg(not(unix))]
    {
        meta.modified().ok()
    }
}

/// A body being written; [`BlobWriter::finish`] makes it durable under its id.
///
/// Large bodies are written by a task on the blocking pool fed through a small
/// bounded channel, so that receiving and hashing the next megabytes overlaps
/// with writing the previous ones; each written piece is handed to the
/// kernel's writeback at once (`sync_file_range`), so the final sync finds
/// little left to do.
pub struct BlobWriter {
    pub id: String,
    tmp_path: PathBuf,
    final_path: PathBuf,
    file: Option<File>,
    pending: Vec<u8>,
    durable: bool,
    finished: bool,
    pipe: Option<Pipe>,
}

struct Pipe {
    sender: tokio::sync::mpsc::Sender<Vec<u8>>,
    done: tokio::task::JoinHandle<std::io::Result<File>>,
}

/// Pieces in flight between the receiving task and the writing task.
const PIPE_DEPTH: usize = 4;

impl BlobWriter {
    /// Adds data; writes happen on the blocking pool in large pieces.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), AwsError> {
        self.pending.extend_from_slice(data);
        if self.pending.len() >= WRITE_CHUNK {
            let piece = std::mem::replace(&mut self.pending, Vec::with_capacity(WRITE_CHUNK));
            self.send(piece).await?;
        }
        Ok(())
    }

    async fn send(&mut self, piece: Vec<u8>) -> Result<(), AwsError> {
        if self.pipe.is_none() {
            let mut file = self
                .file
                .take()
                .ok_or_else(|| AwsError::internal("blob writer reused"))?;
            let durable = self.durable;
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(PIPE_DEPTH);
            let done = tokio::task::spawn_blocking(move || {
                let mut offset = 0u64;
                while let Some(piece) = receiver.blocking_recv() {
                    file.write_all(&piece)?;
                    if durable {
                        start_writeback(&file, offset, piece.len() as u64);
                    }
                    offset += piece.len() as u64;
                }
                Ok(file)
            });
            self.pipe = Some(Pipe { sender, done });
        }
        let Some(pipe) = self.pipe.as_ref() else {
            return Err(AwsError::internal("blob writer lost its pipe"));
        };
        if pipe.sender.send(piece).await.is_err() {
            // The writing task ended early: its error says why.
            return Err(self
                .close_pipe()
                .await
                .err()
                .unwrap_or_else(|| AwsError::internal("object writer stopped")));
        }
        Ok(())
    }

    /// Ends the writing task and takes the file back.
    async fn close_pipe(&mut self) -> Result<File, AwsError> {
        let Some(pipe) = self.pipe.take() else {
            return self
                .file
                .take()
                .ok_or_else(|| AwsError::internal("blob writer reused"));
        };
        drop(pipe.sender);
        pipe.done
            .await
            .map_err(|e| AwsError::internal(e.to_string()))?
            .map_err(io_error)
    }

    /// Syncs the data, moves the file into place and syncs its directory.
    pub async fn finish(mut self) -> Result<String, AwsError> {
        if self.pipe.is_some() && !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.send(rest).await?;
        }
        let mut file = self.close_pipe().await?;
        let rest = std::mem::take(&mut self.pending);
        let shard = self.id.get(..2).unwrap_or("00").to_string();
        let dir = self.final_path.join(shard);
        let target = dir.join(&self.id);
        let tmp = self.tmp_path.clone();
        let durable = self.durable;
        tokio::task::spawn_blocking(move || -> Result<(), AwsError> {
            if !rest.is_empty() {
                file.write_all(&rest).map_err(io_error)?;
            }
            if durable {
                file.sync_data().map_err(io_error)?;
            }
            drop(file);
            fs::create_dir_all(&dir).map_err(io_error)?;
            fs::rename(&tmp, &target).map_err(io_error)?;
            if durable {
                sync_dir(Some(&dir))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| AwsError::internal(e.to_string()))??;
        self.finished = true;
        Ok(self.id.clone())
    }
}

/// Asks the kernel to start writing a just-written range to disk without waiting.
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: sync_file_range only reads its integer arguments; the descriptor is owned by `file`.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // An abandoned upload (client gone, bad digest) leaves nothing behind.
        if !self.finished {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

fn sync_dir(dir: Option<&Path>) -> Result<(), AwsError> {
    if let Some(dir) = dir {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error)?;
    }
    Ok(())
}

fn io_error(e: std::io::Error) -> AwsError {
    tracing::error!("object storage I/O failed: {e}");
    AwsError::internal(format!("object storage failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bodies_of_every_size_come_back_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path(), true).expect("open");
        for size in [
            0usize,
            1,
            4097,
            WRITE_CHUNK - 1,
            WRITE_CHUNK,
            3 * WRITE_CHUNK + 17,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let mut writer = blobs.writer().expect("writer");
            // Uneven pieces, as bodies arrive from the network.
            for piece in data.chunks(65_521) {
                writer.write(piece).await.expect("write");
            }
            let id = writer.finish().await.expect("finish");
            let stored = fs::read(blobs.path(&id)).expect("read");
            assert_eq!(stored.len(), size, "size {size}");
            assert!(stored == data, "content of size {size}");
        }
        // Nothing is left in tmp/ once bodies are in place.
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
            0
        );
    }

    #[tokio::test]
    async fn abandoned_bodies_go_and_only_bodies_older_than_a_start_are_candidates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = Blobs::open(dir.path(), false).expect("open");
        let mut abandoned = blobs.writer().expect("writer");
        abandoned.write(b"half").await.expect("write");
        drop(abandoned);
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
            0
        );
        let mut old = blobs.writer().expect("writer");
        old.write(b"old").await.expect("write");
        let old = old.finish().await.expect("finish");
        let mut copied = blobs.writer().expect("writer");
        copied.write(b"copied").await.expect("write");
        let copied = copied.finish().await.expect("finish");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let started = SystemTime::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut new = blobs.writer().expect("writer");
        new.write(b"new").await.expect("write");
        let new = new.finish().await.expect("finish");
        // A link made after the start names an old inode, whose change time
        // moves with it: neither name is a candidate.
        let linked = blobs.link(&copied).expect("link");
        let candidates = blobs.older_than(started);
        assert!(candidates.contains(&old));
        for young in [&new, &linked, &copied] {
            assert!(!candidates.contains(young));
        }
    }
}
