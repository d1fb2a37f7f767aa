//! Starting the cloud's clock (`--clock-scale`) and keeping its mark: a
//! scaled clock runs ahead of the wall clock, and the cloud time it reached
//! is saved with its scale every few seconds. The next start resumes past
//! anything the previous run can have reached since its last save (the mark
//! plus a save interval and a second at the old scale), so cloud time never
//! goes backwards, even after kill -9: alarm history and metric timestamps
//! stay in order across a restart.

use nimbus_core::clock::CloudClock;
use nimbus_store::{Batch, Store};
use std::time::Duration;

const TABLE: &str = "nimbus_clock";
const MARK: &[u8] = b"cloud_time_ms";
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// The clock for this run; with a scale above 1, a task keeps its mark.
pub fn start(store: &Store, scale: u32) -> Result<CloudClock, String> {
    if scale <= 1 {
        return Ok(CloudClock::real());
    }
    let resume_from = store
        .get(TABLE, MARK)
        .map_err(|e| format!("reading the cloud clock's mark failed: {e}"))?
        .map_or(0, |v| resume_point(&v));
    let clock = CloudClock::scaled(scale, resume_from);
    tracing::info!(
        "the cloud clock runs {scale} times faster than the wall clock, from {}",
        nimbus_core::timestamp::format_iso8601_secs((clock.now_ms() / 1000) as i64)
    );
    let (store, saved) = (store.clone(), clock.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAVE_EVERY);
        loop {
            tick.tick().await;
            let mut batch = Batch::new();
            batch.put(TABLE, MARK, encode_mark(saved.now_ms(), saved.scale()));
            if let Err(e) = store.commit(batch).await {
                tracing::warn!("saving the cloud clock's mark failed (retried): {e}");
            }
        }
    });
    Ok(clock)
}

/// The mark: cloud time (8 bytes) then scale (4 bytes), big-endian.
fn encode_mark(cloud_ms: u64, scale: u32) -> Vec<u8> {
    let mut v = cloud_ms.to_be_bytes().to_vec();
    v.extend_from_slice(&scale.to_be_bytes());
    v
}

/// The earliest cloud time a start may resume from after `mark`.
fn resume_point(mark: &[u8]) -> u64 {
    let (Some(time), Some(scale)) = (mark.get(..8), mark.get(8..12)) else {
        return 0;
    };
    let (Ok(time), Ok(scale)) = (<[u8; 8]>::try_from(time), <[u8; 4]>::try_from(scale)) else {
        return 0;
    };
    let slack_ms =
        (SAVE_EVERY.as_millis() as u64 + 1000).saturating_mul(u64::from(u32::from_be_bytes(scale)));
    u64::from_be_bytes(time).saturating_add(slack_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_resumes_past_what_the_last_run_can_have_reached() {
        let mark = encode_mark(1_000_000, 60);
        assert_eq!(resume_point(&mark), 1_000_000 + 6_000 * 60);
        assert_eq!(resume_point(b"short"), 0);
    }
}
