//! Memory freed after a load goes back to the system once nimbus idles.
//!
//! mimalloc keeps the pages a thread frees for that thread's next allocations,
//! and returns ("purges") free pages to the system only from inside a later
//! allocation or collection, a second after they were freed. A server that goes
//! quiet after a burst allocates nothing more, so it would keep the burst's
//! memory for good (about 100 MB after 200,000 SQS messages went through).
//! Purging at every free (`MIMALLOC_PURGE_DELAY=0`) cost 10-14 % of the CPU per
//! request under load; so instead, once a whole [`PERIOD`] (15 s by default)
//! passes without a request after one that had some, every runtime worker
//! collects its own heap once (the first collection also purges every free page
//! of the process).
//! Idle time costs nothing: the watch is one timer tick per period, and a
//! request costs one relaxed atomic increment.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long without a request counts as idle by default (`serve --idle-trim-after`).
/// Memory is returned between one and two periods after the last request.
pub const PERIOD: Duration = Duration::from_secs(15);

/// Requests answered so far (only compared, never read as a figure).
static REQUESTS: AtomicU64 = AtomicU64::new(0);
/// Bumped for each trim; a worker that has not collected for the current one does
/// so before it next sleeps.
static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COLLECTED: Cell<u64> = const { Cell::new(0) };
}

extern "C" {
    // mimalloc's own entry point (linked through the `mimalloc` crate, which does not
    // re-export it): frees the calling thread's empty pages and, with `force`,
    // purges every free page of the process's arenas.
    fn mi_collect(force: bool);
}

/// Counts one request (the idle watch only needs to see that there were some).
pub fn note_request() {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
}

/// The runtime's `on_thread_park` hook: a worker about to sleep collects its heap
/// if a trim is pending that it has not done yet.
pub fn on_park() {
    let generation = GENERATION.load(Ordering::Relaxed);
    if COLLECTED.get() != generation {
        COLLECTED.set(generation);
        collect();
    }
}

fn collect() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time.
    unsafe { mi_collect(true) }
}

/// Watches for idleness (`period` without a request) and trims once per idle
/// spell, forever (spawned by serve).
pub async fn watch(period: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = REQUESTS.load(Ordering::Relaxed);
    // The start itself allocates and frees: the first idle period trims it too.
    let mut busy = true;
    loop {
        tick.tick().await;
        let now = REQUESTS.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            busy = true;
        } else if busy {
            busy = false;
            trim().await;
        }
    }
}

/// Asks every worker to collect before it next sleeps, collects here, and wakes the
/// sleeping workers so that they do it now rather than after the next request.
async fn trim() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    on_park();
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    // A task spawned from a worker wakes a sleeping one to steal it; that worker
    // goes back to sleep through `on_park`.
    for _ in 0..workers {
        tokio::spawn(tokio::task::yield_now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_collects_once_per_trim() {
        let before = COLLECTED.get();
        on_park();
        assert_eq!(COLLECTED.get(), GENERATION.load(Ordering::Relaxed));
        GENERATION.fetch_add(1, Ordering::Relaxed);
        on_park();
        assert_eq!(COLLECTED.get(), GENERATION.load(Ordering::Relaxed));
        assert_ne!(COLLECTED.get(), before);
    }
}
