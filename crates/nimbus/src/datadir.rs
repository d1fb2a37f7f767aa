//! The data directory at start: private to nimbus's user, and a clear word when
//! it cannot be used. nimbus's state (the store, S3 objects, instance disks and
//! their boot files with metadata secrets) is readable by no one else: the
//! directory is 0700 and, with the process umask at 077, everything nimbus
//! creates is 0600 or 0700 whatever umask it was started with.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

/// Files and directories nimbus creates get no group or other bits. Called
/// before any thread starts, as the umask is process-wide.
pub fn private_umask() {
    // SAFETY: umask only sets the process's creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Makes `dir` ready for the store: created 0700 when missing, made 0700 when
/// others could read it, and known to be writable. The errors name the cause
/// (permission denied, not a directory, read-only file system) rather than
/// leaving it to the store's open to fail obscurely.
pub fn prepare(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => return Err(format!("{} is not a directory", dir.display())),
        Ok(meta) => {
            writable(dir)?;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
                    Ok(()) => tracing::warn!(
                        "data directory {} was readable by other users (mode {:o}); now 0700",
                        dir.display(),
                        mode & 0o7777
                    ),
                    // Writable but not ours (a shared group directory): say so and go on.
                    Err(e) => tracing::warn!(
                        "data directory {} is readable by other users (mode {:o}) and cannot be made private: {e}",
                        dir.display(),
                        mode & 0o7777
                    ),
                }
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| describe(dir, &e))?;
            writable(dir)?;
        }
        Err(e) => return Err(describe(dir, &e)),
    }
    Ok(())
}

/// Creates and removes a file in `dir`, and opens the store's files for writing
/// when they exist: what the store does first, with the cause named when it fails.
fn writable(dir: &Path) -> Result<(), String> {
    tempfile::Builder::new()
        .prefix(".nimbus-probe-")
        .tempfile_in(dir)
        .map_err(|e| describe(dir, &e))?;
    for name in ["state.redb", "state.wal"] {
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(describe(&path, &e)),
        }
    }
    Ok(())
}

/// The start error for an I/O failure on `path`.
fn describe(path: &Path, e: &std::io::Error) -> String {
    let shown = path.display();
    match e.kind() {
        ErrorKind::PermissionDenied => format!("permission denied writing {shown}"),
        ErrorKind::ReadOnlyFilesystem => format!("read-only file system: cannot write {shown}"),
        ErrorKind::NotADirectory => {
            format!("{shown} is not a directory (or a directory above it is not)")
        }
        _ => format!("cannot use the data directory {shown}: {e}"),
    }
}

/// The start error when the store does not open: another nimbus holding its lock
/// is the usual cause, and only that case says so.
pub fn store_error(dir: &Path, e: &nimbus_store::StoreError) -> String {
    if nimbus_store::Store::in_use(&dir.join("state.redb")) {
        format!(
            "cannot open the store in {}: another nimbus is using it",
            dir.display()
        )
    } else {
        format!("cannot open the store in {}: {e}", dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_directory_is_private_and_an_open_one_is_made_private() {
        let top = tempfile::tempdir().expect("tempdir");
        let fresh = top.path().join("a/b/data");
        prepare(&fresh).expect("created");
        assert_eq!(mode(&fresh), 0o700);
        let open = top.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        prepare(&open).expect("usable");
        assert_eq!(mode(&open), 0o700);
        // The probe leaves nothing behind.
        assert_eq!(std::fs::read_dir(&open).expect("list").count(), 0);
    }

    #[test]
    fn files_are_not_directories() {
        let top = tempfile::tempdir().expect("tempdir");
        let file = top.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        assert_eq!(
            prepare(&file),
            Err(format!("{} is not a directory", file.display()))
        );
        let below = file.join("data");
        assert_eq!(
            prepare(&below),
            Err(format!(
                "{} is not a directory (or a directory above it is not)",
                below.display()
            ))
        );
    }

    #[test]
    fn causes_are_named() {
        let p = Path::new("/d");
        let e = |k: ErrorKind| describe(p, &std::io::Error::from(k));
        assert_eq!(
            e(ErrorKind::PermissionDenied),
            "permission denied writing /d"
        );
        assert_eq!(
            e(ErrorKind::ReadOnlyFilesystem),
            "read-only file system: cannot write /d"
        );
        assert!(e(ErrorKind::StorageFull).starts_with("cannot use the data directory /d: "));
    }

    #[test]
    fn only_a_held_store_blames_another_nimbus() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = nimbus_store::Store::open(&dir.path().join("state.redb")).expect("open");
        let failed = nimbus_store::StoreError("x".into());
        assert!(store_error(dir.path(), &failed).contains("another nimbus is using it"));
        drop(store);
        let free = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            store_error(free.path(), &failed),
            format!(
                "cannot open the store in {}: store: x",
                free.path().display()
            )
        );
    }
}
