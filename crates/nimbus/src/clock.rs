//! Starting the cloud's clock (`--clock-scale`) and keeping its mark: a
//! scaled clock runs ahead of the wall clock, and the cloud time it reached
//! is saved every few seconds so that the next start resumes from there
//! rather than going back in time (alarm history and metric timestamps stay
//! in order across a restart).

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
    let mark = store
        .get(TABLE, MARK)
        .map_err(|e| format!("reading the cloud clock's mark failed: {e}"))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes);
    let clock = CloudClock::scaled(scale, mark);
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
            batch.put(TABLE, MARK, saved.now_ms().to_be_bytes().to_vec());
            if let Err(e) = store.commit(batch).await {
                tracing::warn!("saving the cloud clock's mark failed (retried): {e}");
            }
        }
    });
    Ok(clock)
}
