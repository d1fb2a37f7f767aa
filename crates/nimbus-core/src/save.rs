//! What a service lends to a save of the whole cloud (`nimbus state save`):
//! the files it keeps beside the store, held steady while the archive is
//! written. The store itself is read through one snapshot by the saver; a
//! service only says which files belong to that instant and makes sure none
//! of them disappears or changes until the saver is done with them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A service's files for one save, and what keeps them steady.
#[derive(Default)]
pub struct FileHold {
    /// Files or directories that running instances change (their disks): archived
    /// while the instances are frozen, before [`FileHold::thaw`] runs.
    pub live: Vec<PathBuf>,
    /// Files that never change once written (object bodies, snapshots, image
    /// layers): archived after the thaw. A file here that the store snapshot does
    /// not name is harmless: the service drops unnamed files when it opens.
    pub settled: Vec<PathBuf>,
    /// Frozen instances run again when this drops.
    pub thaw: Option<Box<dyn Send>>,
    /// Kept until the save ends; removals deferred meanwhile happen when it drops.
    pub release: Option<Box<dyn Send>>,
}

impl FileHold {
    /// Lets frozen instances run again now (the rest of the hold stays).
    pub fn thaw_now(&mut self) {
        self.thaw = None;
    }
}

type Removal = Box<dyn FnOnce() + Send>;

/// Runs a closure when dropped: a thaw or a release that must happen even when
/// a save fails half-way.
pub struct OnDrop(Option<Box<dyn FnOnce() + Send>>);

impl OnDrop {
    pub fn new(run: impl FnOnce() + Send + 'static) -> OnDrop {
        OnDrop(Some(Box::new(run)))
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(run) = self.0.take() {
            run();
        }
    }
}

/// File removals that wait while a save reads the files: a delete during a save
/// drops its record at once (the API answers as always) and unlinks the file
/// when the last save holding it ends.
#[derive(Default)]
pub struct DeferredRemovals {
    inner: Mutex<(usize, Vec<Removal>)>,
}

impl std::fmt::Debug for DeferredRemovals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        write!(
            f,
            "DeferredRemovals(held {}, waiting {})",
            inner.0,
            inner.1.len()
        )
    }
}

impl DeferredRemovals {
    /// Runs `remove` now, or when the saves in progress end.
    pub fn run_or_defer(&self, remove: impl FnOnce() + Send + 'static) {
        {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if inner.0 > 0 {
                inner.1.push(Box::new(remove));
                return;
            }
        }
        remove();
    }

    /// Defers removals until the returned guard drops.
    pub fn hold(self: &Arc<Self>) -> RemovalGuard {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0 += 1;
        RemovalGuard(self.clone())
    }
}

/// See [`DeferredRemovals::hold`].
pub struct RemovalGuard(Arc<DeferredRemovals>);

impl Drop for RemovalGuard {
    fn drop(&mut self) {
        let due = {
            let mut inner = self.0.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.0 = inner.0.saturating_sub(1);
            if inner.0 == 0 {
                std::mem::take(&mut inner.1)
            } else {
                Vec::new()
            }
        };
        for remove in due {
            remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn removals_wait_for_every_hold() {
        let removals = Arc::new(DeferredRemovals::default());
        let done = Arc::new(AtomicUsize::new(0));
        let count = |d: &Arc<AtomicUsize>| {
            let d = d.clone();
            move || {
                d.fetch_add(1, Ordering::SeqCst);
            }
        };
        removals.run_or_defer(count(&done));
        assert_eq!(done.load(Ordering::SeqCst), 1);
        let first = removals.hold();
        let second = removals.hold();
        removals.run_or_defer(count(&done));
        drop(first);
        assert_eq!(done.load(Ordering::SeqCst), 1);
        drop(second);
        assert_eq!(done.load(Ordering::SeqCst), 2);
    }
}
