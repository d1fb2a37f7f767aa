//! Image layers: CreateImage freezes an instance's writable layer into a
//! read-only copy that later instances stack under their own. An overlay
//! upper layer is more than files: deletions are whiteouts (character devices
//! 0:0), replaced directories carry the `trusted.overlay.opaque` attribute,
//! and owners and modes matter, so the copy keeps all of them. No crate copies
//! a tree with extended attributes and device nodes, hence this walk.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Copies the layer `from` to `to` (which must not exist) through a temporary
/// name, syncs it, and renames it into place: a half-copied layer is never seen.
pub fn freeze(from: &Path, to: &Path) -> io::Result<()> {
    let staging = to.with_extension("partial");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    copy_tree(from, &staging)?;
    let dir = std::fs::File::open(&staging)?;
    // SAFETY: syncfs on a descriptor we own flushes the file system it lives on.
    if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
        return Err(io::Error::last_os_error());
    }
    std::fs::rename(&staging, to)
}

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::other("path with a NUL byte"))
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let m = std::fs::symlink_metadata(&source)?;
        let kind = m.file_type();
        if kind.is_dir() {
            copy_tree(&source, &target)?;
            continue;
        }
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source)?, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&source, &target)?;
        } else if kind.is_char_device()
            || kind.is_block_device()
            || kind.is_fifo()
            || kind.is_socket()
        {
            // Whiteouts are 0:0 character devices; fifos and sockets are kept as nodes.
            let path = c_path(&target)?;
            // SAFETY: mknod with a valid C path and the source's own mode and device.
            if unsafe { libc::mknod(path.as_ptr(), m.mode(), m.rdev()) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        finish(&source, &target, &m)?;
    }
    finish(from, to, &meta)
}

/// Owner, mode, extended attributes and times of `target`, as `source` has them.
fn finish(source: &Path, target: &Path, m: &std::fs::Metadata) -> io::Result<()> {
    let path = c_path(target)?;
    // SAFETY: lchown on a valid C path; it does not follow symlinks.
    if unsafe { libc::lchown(path.as_ptr(), m.uid(), m.gid()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    copy_xattrs(source, target)?;
    if !m.file_type().is_symlink() {
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
    }
    let times = [
        libc::timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec(),
        },
        libc::timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec(),
        },
    ];
    // SAFETY: utimensat with a valid C path and two timespecs; AT_SYMLINK_NOFOLLOW keeps
    // symlinks' own times.
    unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    Ok(())
}

fn copy_xattrs(source: &Path, target: &Path) -> io::Result<()> {
    let src = c_path(source)?;
    let dst = c_path(target)?;
    let mut names = vec![0u8; 4096];
    // SAFETY: the buffer is valid for its length; the call writes at most that much.
    let len = unsafe { libc::llistxattr(src.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if len < 0 {
        let e = io::Error::last_os_error();
        // File systems without xattrs have nothing to copy.
        return if e.raw_os_error() == Some(libc::ENOTSUP) {
            Ok(())
        } else {
            Err(e)
        };
    }
    for name in names[..len as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let Ok(name) = CString::new(name) else {
            continue;
        };
        let mut value = vec![0u8; 65536];
        // SAFETY: as above, with a valid attribute name.
        let n = unsafe {
            libc::lgetxattr(
                src.as_ptr(),
                name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if n < 0 {
            continue;
        }
        // SAFETY: the value buffer holds n valid bytes.
        let set = unsafe {
            libc::lsetxattr(
                dst.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                n as usize,
                0,
            )
        };
        if set != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freezes_files_links_modes_and_whiteouts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let upper = dir.path().join("upper");
        std::fs::create_dir_all(upper.join("srv/www")).expect("mkdir");
        std::fs::write(upper.join("srv/www/index.html"), b"stamped").expect("write");
        std::fs::set_permissions(
            upper.join("srv/www/index.html"),
            std::fs::Permissions::from_mode(0o640),
        )
        .expect("chmod");
        std::os::unix::fs::symlink("www/index.html", upper.join("srv/link")).expect("symlink");
        let root = nix::unistd::geteuid().is_root();
        if root {
            let path = c_path(&upper.join("gone")).expect("path");
            // SAFETY: test-only mknod of a whiteout.
            assert_eq!(unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR, 0) }, 0);
        }
        let frozen = dir.path().join("images/ami-1/layer");
        freeze(&upper, &frozen).expect("freeze");
        assert_eq!(
            std::fs::read(frozen.join("srv/www/index.html")).expect("read"),
            b"stamped"
        );
        let mode = std::fs::metadata(frozen.join("srv/www/index.html"))
            .expect("meta")
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(
            std::fs::read_link(frozen.join("srv/link")).expect("link"),
            Path::new("www/index.html")
        );
        if root {
            let m = std::fs::symlink_metadata(frozen.join("gone")).expect("whiteout");
            assert!(m.file_type().is_char_device() && m.rdev() == 0);
        }
        assert!(!frozen.with_extension("partial").exists());
    }
}
