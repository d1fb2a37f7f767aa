//! Save and load of a whole nimbus cloud (`nimbus state save` / `load`,
//! `serve --load`): the archive format, its writer and its checked reader.
//!
//! An archive is a POSIX tar file, so `tar tvf` shows what it holds:
//! - `nimbus-state.json` first: `{"format": 1, "nimbus": VERSION, "created_ms": T}`;
//! - `files/<path>`: the files the services keep beside the store, by their path
//!   in the data directory (object bodies, volume and snapshot files, image
//!   layers, instance disks). Sparse files stay sparse, owners, modes, device
//!   nodes (overlay whiteouts) and the overlay's opaque-directory attribute are
//!   kept;
//! - `store/NNNNNN`: the store's records, in chunks of about 4 MiB, each record
//!   framed as `u32` length + table name, `u32` length + key, `u32` length +
//!   value (little-endian). Records rather than the store's own file: they load
//!   into any later store layout, and a snapshot of them is consistent while
//!   the server keeps writing;
//! - `nimbus-state.end.json` last: counts, and the CRC-32 and length of every
//!   archive byte before this entry's header. Without it the archive is
//!   truncated; with a mismatch it is corrupt. Either way nothing is loaded.
//!
//! Consistency of a save is the caller's: it takes every service's
//! [`FileHold`] (instances paused, removals deferred) before calling [`save`],
//! which then reads the store through one snapshot, archives the live files,
//! lets the instances run, and archives the rest. Tar comes from the `tar`
//! crate; the checksum framing is ours because tar has none for contents.

use nimbus_core::FileHold;
use nimbus_store::{Batch, Store};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// The archive format this nimbus writes and the newest it reads.
pub const FORMAT: u32 = 1;

const MANIFEST: &str = "nimbus-state.json";
const TRAILER: &str = "nimbus-state.end.json";
const STORE_DIR: &str = "store";
const FILES_DIR: &str = "files";
/// Store records are archived in chunks of about this size (memory per save).
const CHUNK: usize = 4 << 20;
/// A store chunk larger than this is not one this writer made.
const MAX_CHUNK: u64 = 1 << 30;
const BLOCK: usize = 512;
/// The extended attribute overlayfs marks a replaced directory with.
const OPAQUE: &str = "trusted.overlay.opaque";

/// What one archive holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Store records.
    pub records: u64,
    /// Files (not directories).
    pub files: u64,
    /// Bytes of the files' contents (their logical sizes).
    pub file_bytes: u64,
}

impl Summary {
    pub fn to_json(self) -> Value {
        json!({"records": self.records, "files": self.files, "file_bytes": self.file_bytes})
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Counts and checksums every byte written through it.
struct Checked<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the whole state to `out`. `holds` are every service's file holds,
/// taken just before; `data_dir` is the root the files' names are relative to.
/// The holds' thaws run once the live files are archived (or on error).
pub fn save<W: Write>(
    out: W,
    data_dir: &Path,
    store: &Store,
    mut holds: Vec<FileHold>,
    nimbus_version: &str,
) -> Result<Summary, String> {
    let snapshot = store
        .snapshot()
        .map_err(|e| format!("cannot read the store: {e}"))?;
    let mut builder = tar::Builder::new(Checked {
        inner: out,
        crc: crc32fast::Hasher::new(),
        len: 0,
    });
    builder.mode(tar::HeaderMode::Complete);
    builder.follow_symlinks(false);
    builder.sparse(true);
    let mut summary = Summary::default();
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("cannot save {what}: {e}");

    let manifest = json!({
        "format": FORMAT,
        "nimbus": nimbus_version,
        "created_ms": nimbus_core::now_millis(),
    });
    append_bytes(&mut builder, MANIFEST, manifest.to_string().as_bytes())
        .map_err(|e| fail("the manifest", &e))?;

    let live: Vec<PathBuf> = holds.iter_mut().flat_map(|h| h.live.drain(..)).collect();
    for path in &live {
        add_tree(&mut builder, data_dir, path, &mut summary)
            .map_err(|e| fail(&path.display().to_string(), &e))?;
    }
    for hold in &mut holds {
        hold.thaw_now();
    }

    let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut chunks = 0u32;
    let tables = snapshot.tables().map_err(|e| fail("the store", &e))?;
    for table in &tables {
        snapshot
            .for_each(table, |key, value| -> Result<(), BoxError> {
                for part in [table.as_bytes(), key, value] {
                    let len = u32::try_from(part.len()).map_err(|_| "a record over 4 GiB")?;
                    chunk.extend_from_slice(&len.to_le_bytes());
                    chunk.extend_from_slice(part);
                }
                summary.records += 1;
                if chunk.len() >= CHUNK {
                    chunks += 1;
                    append_bytes(&mut builder, &format!("{STORE_DIR}/{chunks:06}"), &chunk)?;
                    chunk.clear();
                }
                Ok(())
            })
            .map_err(|e| fail("the store", &e))?;
    }
    if !chunk.is_empty() {
        chunks += 1;
        append_bytes(&mut builder, &format!("{STORE_DIR}/{chunks:06}"), &chunk)
            .map_err(|e| fail("the store", &e))?;
    }
    drop(snapshot);

    let settled: Vec<PathBuf> = holds.iter_mut().flat_map(|h| h.settled.drain(..)).collect();
    for path in &settled {
        add_tree(&mut builder, data_dir, path, &mut summary)
            .map_err(|e| fail(&path.display().to_string(), &e))?;
    }

    let checked = builder.get_ref();
    let trailer = json!({
        "format": FORMAT,
        "crc32": checked.crc.clone().finalize(),
        "length": checked.len,
        "records": summary.records,
        "files": summary.files,
        "file_bytes": summary.file_bytes,
    });
    append_bytes(&mut builder, TRAILER, trailer.to_string().as_bytes())
        .map_err(|e| fail("the end marker", &e))?;
    let mut checked = builder.into_inner().map_err(|e| fail("the archive", &e))?;
    checked.flush().map_err(|e| fail("the archive", &e))?;
    Ok(summary)
}

fn append_bytes<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(nimbus_core::now_millis() / 1000);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, data)
}

/// Archives `path` (a file or a whole directory) as `files/<path in data_dir>`.
/// A file gone meanwhile is skipped (nothing the store snapshot names can go:
/// the holds defer removals); sockets cannot be archived and are skipped too.
fn add_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    data_dir: &Path,
    path: &Path,
    summary: &mut Summary,
) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let relative = path.strip_prefix(data_dir).map_err(|_| {
        io::Error::other(format!("{} is outside the data directory", path.display()))
    })?;
    let name = Path::new(FILES_DIR).join(relative);
    use std::os::unix::fs::FileTypeExt as _;
    if meta.file_type().is_socket() {
        return Ok(());
    }
    if meta.is_dir() {
        if let Some(value) = xattr(path, OPAQUE) {
            let key = format!("SCHILY.xattr.{OPAQUE}");
            builder.append_pax_extensions([(key.as_str(), value.as_slice())])?;
        }
        builder.append_path_with_name(path, &name)?;
        let mut children: Vec<PathBuf> = match fs::read_dir(path) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        children.sort();
        for child in children {
            add_tree(builder, data_dir, &child, summary)?;
        }
        return Ok(());
    }
    let kind = meta.file_type();
    let appended = if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() {
        append_node(builder, &name, &meta)
    } else {
        builder.append_path_with_name(path, &name)
    };
    match appended {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    if meta.is_file() {
        summary.files += 1;
        summary.file_bytes += meta.len();
    }
    Ok(())
}

/// A device node or fifo (an overlay whiteout is a 0:0 character device). The
/// tar crate's own path for them names the entry by its source path, so the
/// header is made here.
fn append_node<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &Path,
    meta: &fs::Metadata,
) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header.set_size(0);
    let kind = meta.file_type();
    header.set_entry_type(if kind.is_char_device() {
        tar::EntryType::Char
    } else if kind.is_block_device() {
        tar::EntryType::Block
    } else {
        tar::EntryType::Fifo
    });
    let rdev = meta.rdev();
    // SAFETY: major/minor only compute on the number.
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    header.set_device_major(major)?;
    header.set_device_minor(minor)?;
    builder.append_data(&mut header, name, io::empty())
}

/// An extended attribute of `path` (not following a symlink), if set.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt as _;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let c_name = std::ffi::CString::new(name).ok()?;
    let mut buf = [0u8; 256];
    // SAFETY: both strings are NUL-terminated and the buffer length is passed.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

/// The running checksum of a load: covers every byte read except the last
/// block, so that when the end marker's header has just been read, it covers
/// exactly the bytes before that header (what the writer summed).
#[derive(Default)]
struct ReadSum {
    crc: crc32fast::Hasher,
    /// The newest bytes read, not yet summed (at most one block once settled).
    held: Vec<u8>,
    read: u64,
    /// The input ended (a read returned nothing for a non-empty buffer).
    ended: bool,
}

struct SummingReader<R> {
    inner: R,
    sum: Rc<RefCell<ReadSum>>,
}

impl<R: Read> Read for SummingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut sum = self.sum.borrow_mut();
        sum.ended |= n == 0 && !buf.is_empty();
        sum.read += n as u64;
        sum.held.extend_from_slice(&buf[..n]);
        if sum.held.len() > BLOCK {
            let due = sum.held.len() - BLOCK;
            let ReadSum { crc, held, .. } = &mut *sum;
            crc.update(&held[..due]);
            held.drain(..due);
        }
        Ok(n)
    }
}

/// What a load brought in.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub summary: Summary,
    /// The nimbus version that wrote the archive.
    pub written_by: String,
    pub created_ms: u64,
}

/// Reads an archive from `input` into `staging` (which must not exist): the
/// store at `staging/state.redb`, the files under `staging/files/`. Checks the
/// format version first and the end marker last; on any error `staging` is
/// removed and the message says what is wrong. Nothing outside `staging` is
/// touched, whatever the archive holds.
pub fn load<R: Read>(input: R, staging: &Path) -> Result<Loaded, String> {
    let result = load_into(input, staging);
    if result.is_err() {
        let _ = fs::remove_dir_all(staging);
    }
    result
}

fn load_into<R: Read>(input: R, staging: &Path) -> Result<Loaded, String> {
    fs::create_dir(staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let sum = Rc::new(RefCell::new(ReadSum::default()));
    let mut archive = tar::Archive::new(SummingReader {
        inner: input,
        sum: sum.clone(),
    });
    archive.set_preserve_permissions(true);
    // SAFETY: geteuid has no preconditions.
    archive.set_preserve_ownerships(unsafe { libc::geteuid() } == 0);
    archive.set_unpack_xattrs(true);
    archive.set_preserve_mtime(true);
    let corrupt = |why: String| format!("the archive is corrupt or truncated: {why}");
    let files_root = staging.join(FILES_DIR);
    fs::create_dir(&files_root)
        .map_err(|e| format!("cannot create {}: {e}", files_root.display()))?;
    let store = Store::open(&staging.join("state.redb"))
        .map_err(|e| format!("cannot create the store: {e}"))?;

    let mut manifest: Option<(String, u64)> = None;
    let mut summary = Summary::default();
    let mut ended = false;
    let entries = archive.entries().map_err(|e| corrupt(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(e.to_string()))?;
        if ended {
            return Err(corrupt("entries after the end marker".into()));
        }
        let name = entry
            .path()
            .map_err(|e| corrupt(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if manifest.is_none() {
            if name != MANIFEST {
                return Err(format!(
                    "this is not a nimbus state archive (it starts with {name:?}, not {MANIFEST})"
                ));
            }
            let doc = read_json(&mut entry).map_err(corrupt)?;
            let format = doc["format"].as_u64().unwrap_or(0);
            let written_by = doc["nimbus"].as_str().unwrap_or("?").to_string();
            if format > u64::from(FORMAT) {
                return Err(format!(
                    "the archive is state format {format} (written by nimbus {written_by}); this nimbus reads format {FORMAT} and older: load it with a newer nimbus"
                ));
            }
            if format == 0 {
                return Err(corrupt("its manifest has no format".into()));
            }
            manifest = Some((written_by, doc["created_ms"].as_u64().unwrap_or(0)));
            continue;
        }
        if name == TRAILER {
            let header_at = entry.raw_header_position();
            let (crc, summed) = {
                let s = sum.borrow();
                (s.crc.clone().finalize(), s.read - s.held.len() as u64)
            };
            let doc = read_json(&mut entry).map_err(corrupt)?;
            if summed != header_at || doc["length"].as_u64() != Some(header_at) {
                return Err(corrupt("its end marker is not where it says".into()));
            }
            if doc["crc32"].as_u64() != Some(u64::from(crc)) {
                return Err(corrupt("its checksum does not match its contents".into()));
            }
            let recorded = Summary {
                records: doc["records"].as_u64().unwrap_or(u64::MAX),
                files: doc["files"].as_u64().unwrap_or(u64::MAX),
                file_bytes: doc["file_bytes"].as_u64().unwrap_or(u64::MAX),
            };
            if recorded.records != summary.records || recorded.files != summary.files {
                return Err(corrupt(format!(
                    "it lists {} records and {} files but holds {} and {}",
                    recorded.records, recorded.files, summary.records, summary.files
                )));
            }
            summary.file_bytes = recorded.file_bytes;
            ended = true;
            continue;
        }
        if let Some(rest) = name.strip_prefix(&format!("{STORE_DIR}/")) {
            if rest.is_empty() || entry.size() > MAX_CHUNK {
                return Err(corrupt(format!("unexpected store entry {name}")));
            }
            let mut chunk = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut chunk)
                .map_err(|e| corrupt(e.to_string()))?;
            let batch = records(&chunk, &mut summary.records).map_err(corrupt)?;
            // Straight into the new store, not through its log: a failed load
            // throws the whole store away, so only the end needs to be durable.
            store
                .import(batch)
                .map_err(|e| format!("cannot write the store: {e}"))?;
            continue;
        }
        if name == FILES_DIR || name.starts_with(&format!("{FILES_DIR}/")) {
            if !safe_relative(Path::new(&name)) {
                return Err(corrupt(format!("unsafe path {name:?}")));
            }
            let kind = entry.header().entry_type();
            if matches!(
                kind,
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
            ) {
                make_node(&staging.join(&name), entry.header())
                    .map_err(|e| format!("cannot unpack {name}: {e}"))?;
                continue;
            }
            let is_file = kind.is_file() || kind == tar::EntryType::GNUSparse;
            // The tar crate sets attributes on files only; a directory's opaque mark is set here.
            let opaque = if kind.is_dir() {
                opaque_mark(&mut entry)
            } else {
                None
            };
            // unpack_in keeps every entry (and every link it makes) inside `staging`.
            let inside = entry.unpack_in(staging).map_err(|e| {
                // An archive that ends inside a file's bytes is truncated, not unwritable.
                if sum.borrow().ended {
                    corrupt(format!("{name} ends early"))
                } else {
                    format!("cannot unpack {name}: {e}")
                }
            })?;
            if !inside {
                return Err(corrupt(format!("unsafe path {name:?}")));
            }
            if let Some(value) = opaque {
                set_xattr(&staging.join(&name), OPAQUE, &value)
                    .map_err(|e| format!("cannot mark {name} opaque: {e}"))?;
            }
            if is_file {
                summary.files += 1;
            }
            continue;
        }
        return Err(corrupt(format!("unexpected entry {name:?}")));
    }
    if manifest.is_none() {
        return Err("the archive is empty".into());
    }
    if !ended {
        return Err(corrupt("it ends before its end marker".into()));
    }
    store
        .finish_import()
        .map_err(|e| format!("cannot write the store: {e}"))?;
    // Closing frees its file for the restart.
    store.close();
    let (written_by, created_ms) = manifest.unwrap_or_default();
    Ok(Loaded {
        summary,
        written_by,
        created_ms,
    })
}

/// The overlay opaque mark a directory entry carries in its PAX header, if any.
fn opaque_mark<R: Read>(entry: &mut tar::Entry<'_, R>) -> Option<Vec<u8>> {
    let key = format!("SCHILY.xattr.{OPAQUE}");
    let extensions = entry.pax_extensions().ok()??;
    extensions
        .flatten()
        .find(|e| e.key() == Ok(key.as_str()))
        .map(|e| e.value_bytes().to_vec())
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("a path with a NUL byte"))?;
    let c_name = std::ffi::CString::new(name).map_err(|_| io::Error::other("a NUL byte"))?;
    // SAFETY: NUL-terminated strings, and the value's pointer and length.
    let rc = unsafe {
        libc::lsetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes a device node or fifo as the header describes (the tar crate unpacks
/// neither), owned as it was when nimbus runs as root.
fn make_node(path: &Path, header: &tar::Header) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let kind = match header.entry_type() {
        tar::EntryType::Char => libc::S_IFCHR,
        tar::EntryType::Block => libc::S_IFBLK,
        _ => libc::S_IFIFO,
    };
    let mode = header.mode()? & 0o7777;
    let major = header.device_major()?.unwrap_or(0);
    let minor = header.device_minor()?.unwrap_or(0);
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("a path with a NUL byte"))?;
    // SAFETY: a NUL-terminated path; makedev only computes on the numbers.
    if unsafe { libc::mknod(c_path.as_ptr(), kind | mode, libc::makedev(major, minor)) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: geteuid has no preconditions; lchown gets a NUL-terminated path.
    if unsafe { libc::geteuid() } == 0 {
        let (uid, gid) = (header.uid()? as libc::uid_t, header.gid()? as libc::gid_t);
        if unsafe { libc::lchown(c_path.as_ptr(), uid, gid) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn read_json<R: Read>(entry: &mut R) -> Result<Value, String> {
    let mut text = Vec::new();
    entry
        .take(1 << 20)
        .read_to_end(&mut text)
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&text).map_err(|e| e.to_string())
}

/// Parses one store chunk into a batch of puts.
fn records(chunk: &[u8], count: &mut u64) -> Result<Batch, String> {
    let mut batch = Batch::new();
    let mut at = 0usize;
    let next = |at: &mut usize| -> Result<&[u8], String> {
        let len_bytes = chunk
            .get(*at..*at + 4)
            .ok_or("a store record is cut short")?;
        let len =
            u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let part = chunk
            .get(*at + 4..*at + 4 + len)
            .ok_or("a store record is cut short")?;
        *at += 4 + len;
        Ok(part)
    };
    while at < chunk.len() {
        let table = std::str::from_utf8(next(&mut at)?).map_err(|_| "a table name is not UTF-8")?;
        let key = next(&mut at)?.to_vec();
        let value = next(&mut at)?.to_vec();
        batch.put(table, key, value);
        *count += 1;
    }
    Ok(batch)
}

/// A relative path that stays below its root (no `..`, not absolute).
fn safe_relative(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Moves a loaded state (`staging`, as [`load`] left it) into `data_dir`, whose
/// own state must already be gone: the store (`state.redb` and its log
/// `state.wal`) and everything under `files/`.
pub fn install(staging: &Path, data_dir: &Path) -> Result<(), String> {
    let moving = |from: &Path, to: &Path| {
        fs::rename(from, to)
            .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))
    };
    moving(&staging.join("state.redb"), &data_dir.join("state.redb"))?;
    // The store's log goes with it: an older log left beside it would replay into it.
    moving(&staging.join("state.wal"), &data_dir.join("state.wal"))?;
    let files = staging.join(FILES_DIR);
    if let Ok(entries) = fs::read_dir(&files) {
        for entry in entries.flatten() {
            moving(&entry.path(), &data_dir.join(entry.file_name()))?;
        }
    }
    let _ = fs::remove_dir_all(staging);
    // The moves are durable once the directory is synced.
    fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", data_dir.display()))
}

#[cfg(test)]
mod tests;
