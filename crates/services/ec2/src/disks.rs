//! Volume and snapshot bodies: sparse files under `<data dir>/ec2/`. A new
//! volume is a file of its size with no data blocks; a snapshot is a
//! point-in-time copy of its volume's file, and a volume made from a
//! snapshot starts as a copy of it. Copies move only the data regions
//! (`SEEK_DATA` / `SEEK_HOLE`), so an 8 GiB volume holding 100 MiB copies
//! 100 MiB and stays sparse. Files are synced before the record naming them
//! is committed; unnamed files are removed at start.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nimbus_core::DeferredRemovals;

pub const GIB: u64 = 1 << 30;

#[derive(Debug)]
pub struct Disks {
    volumes: PathBuf,
    snapshots: PathBuf,
    durable: bool,
    /// Every EC2 file removal (volumes, snapshots, instance disks, image layers)
    /// waits here while a save of the whole cloud reads the files.
    pub removals: Arc<DeferredRemovals>,
}

impl Disks {
    pub fn open(root: &Path, durable: bool, referenced: &HashSet<String>) -> Result<Disks, String> {
        let volumes = root.join("volumes");
        let snapshots = root.join("snapshots");
        for dir in [&volumes, &snapshots] {
            fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            if let Ok(entries) = fs::read_dir(dir) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let id = name.trim_end_matches(".img");
                    if !referenced.contains(id) {
                        let _ = fs::remove_file(entry.path());
                    }
                }
            }
        }
        Ok(Disks {
            volumes,
            snapshots,
            durable,
            removals: Arc::default(),
        })
    }

    pub fn volume_path(&self, id: &str) -> PathBuf {
        self.volumes.join(format!("{id}.img"))
    }

    pub fn snapshot_path(&self, id: &str) -> PathBuf {
        self.snapshots.join(format!("{id}.img"))
    }

    /// A new volume file of `size_gib`, optionally starting as a copy of a snapshot.
    pub fn create_volume(&self, id: &str, size_gib: u64, from: Option<&str>) -> io::Result<()> {
        let path = self.volume_path(id);
        match from {
            Some(snapshot) => sparse_copy(&self.snapshot_path(snapshot), &path)?,
            None => {
                File::create(&path)?;
            }
        }
        let file = OpenOptions::new().write(true).open(&path)?;
        file.set_len(size_gib * GIB)?;
        self.sync(&file, &path)
    }

    pub fn grow_volume(&self, id: &str, size_gib: u64) -> io::Result<()> {
        let path = self.volume_path(id);
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            // A root volume has no file (its data is the instance's writable layer).
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if file.metadata()?.len() < size_gib * GIB {
            file.set_len(size_gib * GIB)?;
        }
        self.sync(&file, &path)
    }

    /// A point-in-time copy of a volume file. A root volume has no file (its data is
    /// the instance's writable layer, which CreateImage captures): its snapshot is
    /// an empty disk of its size, so volumes made from it are blank.
    pub fn snapshot(&self, volume: &str, snapshot: &str, size_gib: u64) -> io::Result<()> {
        let target = self.snapshot_path(snapshot);
        let source = self.volume_path(volume);
        if source.exists() {
            sparse_copy(&source, &target)?;
        } else {
            File::create(&target)?.set_len(size_gib * GIB)?;
        }
        let file = File::open(&target)?;
        self.sync(&file, &target)
    }

    pub fn remove_volume(&self, id: &str) {
        let path = self.volume_path(id);
        self.removals.run_or_defer(move || {
            let _ = fs::remove_file(path);
        });
    }

    pub fn remove_snapshot(&self, id: &str) {
        let path = self.snapshot_path(id);
        self.removals.run_or_defer(move || {
            let _ = fs::remove_file(path);
        });
    }

    /// The volume and snapshot directories (for a save).
    pub fn dirs(&self) -> (PathBuf, PathBuf) {
        (self.volumes.clone(), self.snapshots.clone())
    }

    fn sync(&self, file: &File, path: &Path) -> io::Result<()> {
        if self.durable {
            file.sync_all()?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }
}

/// Copies `from` to `to` (created anew) keeping holes: only data regions are copied.
fn sparse_copy(from: &Path, to: &Path) -> io::Result<()> {
    let source = File::open(from)?;
    let len = source.metadata()?.len();
    let target = File::create(to)?;
    target.set_len(len)?;
    let (src, dst) = (source.as_raw_fd(), target.as_raw_fd());
    let mut offset: i64 = 0;
    while (offset as u64) < len {
        // SAFETY: lseek on a descriptor this function owns; it only moves the file offset.
        let data = unsafe { libc::lseek(src, offset, libc::SEEK_DATA) };
        if data < 0 {
            // ENXIO: no data after `offset`, the rest is a hole.
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(src, data, libc::SEEK_HOLE) };
        let end = if hole < 0 { len as i64 } else { hole };
        let mut from_off = data;
        let mut to_off = data;
        while from_off < end {
            let want = (end - from_off) as usize;
            // SAFETY: both descriptors are open files owned here; the offsets are plain integers
            // the kernel reads and advances.
            let n = unsafe { libc::copy_file_range(src, &mut from_off, dst, &mut to_off, want, 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 {
                break;
            }
        }
        offset = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn snapshots_and_restores_keep_data_and_holes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disks = Disks::open(dir.path(), true, &HashSet::new()).expect("open");
        disks.create_volume("vol-1", 8, None).expect("create");
        let mut f = OpenOptions::new()
            .write(true)
            .open(disks.volume_path("vol-1"))
            .expect("open vol");
        f.seek(SeekFrom::Start(5 * GIB)).expect("seek");
        f.write_all(b"written in the middle").expect("write");
        drop(f);
        disks.snapshot("vol-1", "snap-1", 1).expect("snapshot");
        disks
            .create_volume("vol-2", 16, Some("snap-1"))
            .expect("restore");
        // Size, sparseness and the written bytes (reading 16 GiB would be wasteful).
        let meta = fs::metadata(disks.volume_path("vol-2")).expect("meta");
        assert_eq!(meta.len(), 16 * GIB);
        assert!(
            meta.blocks() * 512 < 64 << 20,
            "restored volume stays sparse"
        );
        let mut f = File::open(disks.volume_path("vol-2")).expect("open");
        let mut buf = [0u8; 21];
        f.seek(SeekFrom::Start(5 * GIB)).expect("seek");
        std::io::Read::read_exact(&mut f, &mut buf).expect("read");
        assert_eq!(&buf, b"written in the middle");
    }
}
