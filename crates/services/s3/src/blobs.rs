//! Object bodies on disk. Each stored body (a whole object, or one part of a
//! multipart object) is an immutable file `objects/<2 hex>/<id>` under the S3
//! data directory. A body is written to `tmp/<id>`, synced, renamed into
//! place and its directory synced before any record names it, so a crash can
//! leave at most an unnamed file, never a named half file; [`Blobs::open`]
//! removes unnamed leftovers at the next start. Files are never rewritten:
//! overwrites and deletes drop the record first and unlink afterwards, so a
//! reader that already opened a file keeps reading the body it asked for, and
//! a copy of a whole object is a hard link.

use nimbus_core::AwsError;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bodies are gathered into writes of this size: large enough that syscalls
/// do not dominate, small enough to keep memory per upload low.
const WRITE_CHUNK: usize = 1 << 20;

#[derive(Debug)]
pub struct Blobs {
    objects: PathBuf,
    tmp: PathBuf,
    /// False under `--ephemeral`-like tests that do not need fsync; always true in serve.
    durable: bool,
}

impl Blobs {
    /// Opens (creating) the blob directories below `root` and removes every file
    /// that `is_referenced` does not claim: leftovers of uploads a crash interrupted.
    pub fn open(root: &Path, durable: bool, referenced: &HashSet<String>) -> Result<Blobs, String> {
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
        if let Ok(shards) = fs::read_dir(&objects) {
            for shard in shards.flatten() {
                let Ok(files) = fs::read_dir(shard.path()) else {
                    continue;
                };
                for file in files.flatten() {
                    let name = file.file_name().to_string_lossy().into_owned();
                    if !referenced.contains(&name) {
                        let _ = fs::remove_file(file.path());
                    }
                }
            }
        }
        Ok(Blobs {
            objects,
            tmp,
            durable,
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

    /// Removes stored bodies no record names any more.
    pub fn remove(&self, ids: &[String]) {
        for id in ids {
            let _ = fs::remove_file(self.path(id));
        }
    }
}

/// A body being written; [`BlobWriter::finish`] makes it durable under its id.
pub struct BlobWriter {
    pub id: String,
    tmp_path: PathBuf,
    final_path: PathBuf,
    file: Option<File>,
    pending: Vec<u8>,
    durable: bool,
    finished: bool,
}

impl BlobWriter {
    /// Adds data; writes happen on the blocking pool in large pieces.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), AwsError> {
        self.pending.extend_from_slice(data);
        if self.pending.len() >= WRITE_CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), AwsError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| AwsError::internal("blob writer reused"))?;
        let data = std::mem::replace(&mut self.pending, Vec::with_capacity(WRITE_CHUNK));
        let (file, data) = tokio::task::spawn_blocking(move || {
            let result = file.write_all(&data);
            (result.map(|()| file), data)
        })
        .await
        .map_err(|e| AwsError::internal(e.to_string()))?;
        self.file = Some(file.map_err(io_error)?);
        self.pending = data;
        self.pending.clear();
        Ok(())
    }

    /// Syncs the data, moves the file into place and syncs its directory.
    pub async fn finish(mut self) -> Result<String, AwsError> {
        self.flush().await?;
        let file = self
            .file
            .take()
            .ok_or_else(|| AwsError::internal("blob writer reused"))?;
        let shard = self.id.get(..2).unwrap_or("00").to_string();
        let dir = self.final_path.join(shard);
        let target = dir.join(&self.id);
        let tmp = self.tmp_path.clone();
        let durable = self.durable;
        tokio::task::spawn_blocking(move || -> Result<(), AwsError> {
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
