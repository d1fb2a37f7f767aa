//! The cloud's clock (`nimbus serve --clock-scale N`): the one time that the
//! infrastructure timers of the cloud follow, which can run N times faster
//! than the wall clock so that a five-minute scaling story plays in seconds.
//!
//! What follows it: metric periods of the collectors, alarm evaluation and
//! every timestamp CloudWatch hands out or accepts, and (as they land) health
//! check intervals, cooldowns and warm-ups. What does not: request-level
//! timers SDKs rely on (SQS visibility, presigned expiry, STS expiry), which
//! read [`crate::now_millis`].
//!
//! With scale 1 the cloud time *is* the wall clock. With scale N it starts at
//! the wall clock (or at the last cloud time an earlier run reached, if that
//! is later: cloud time never goes backwards across a restart) and then
//! advances N milliseconds per real millisecond.

use std::sync::Arc;
use std::time::Duration;

/// The largest scale accepted: a day of cloud time in under a minute and a
/// half. Beyond it a one-second timer would fire more often than a
/// millisecond of real time, which no timer here can honour.
pub const MAX_SCALE: u32 = 1000;

/// A handle on the cloud's clock; cheap to clone, every clone the same clock.
#[derive(Debug, Clone)]
pub struct CloudClock {
    inner: Arc<Anchor>,
}

#[derive(Debug)]
struct Anchor {
    scale: u32,
    /// Wall time (epoch ms) at which the cloud time was `cloud_origin_ms`.
    real_origin_ms: u64,
    cloud_origin_ms: u64,
}

impl Default for CloudClock {
    fn default() -> Self {
        CloudClock::real()
    }
}

impl CloudClock {
    /// The clock that is the wall clock (scale 1).
    pub fn real() -> CloudClock {
        CloudClock::anchored(1, 0, 0)
    }

    /// A clock running `scale` times faster than the wall clock from now on,
    /// starting at the later of now and `resume_from_ms` (the last cloud time
    /// an earlier run reached, 0 for none). Scale 1 ignores `resume_from_ms`:
    /// it is the wall clock, as AWS's is. `scale` is kept within
    /// 1..=[`MAX_SCALE`].
    pub fn scaled(scale: u32, resume_from_ms: u64) -> CloudClock {
        let scale = scale.clamp(1, MAX_SCALE);
        if scale == 1 {
            return CloudClock::real();
        }
        let now = crate::now_millis();
        CloudClock::anchored(scale, now, now.max(resume_from_ms))
    }

    /// A clock whose cloud time was `cloud_origin_ms` at wall time
    /// `real_origin_ms` (tests pick both).
    pub fn anchored(scale: u32, real_origin_ms: u64, cloud_origin_ms: u64) -> CloudClock {
        CloudClock {
            inner: Arc::new(Anchor {
                scale: scale.clamp(1, MAX_SCALE),
                real_origin_ms,
                cloud_origin_ms,
            }),
        }
    }

    /// How many times faster than the wall clock this clock runs.
    pub fn scale(&self) -> u32 {
        self.inner.scale
    }

    /// Whether this clock is the wall clock.
    pub fn is_real(&self) -> bool {
        self.inner.scale == 1 && self.inner.real_origin_ms == self.inner.cloud_origin_ms
    }

    /// The cloud time now, epoch milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.cloud_at(crate::now_millis())
    }

    /// The cloud time at wall time `real_ms` (a request's arrival, say).
    pub fn cloud_at(&self, real_ms: u64) -> u64 {
        let a = &self.inner;
        let elapsed = real_ms.saturating_sub(a.real_origin_ms);
        a.cloud_origin_ms
            .saturating_add(elapsed.saturating_mul(u64::from(a.scale)))
    }

    /// The wall time at which the cloud time reaches `cloud_ms` (now or
    /// earlier for a cloud time already past).
    pub fn real_at(&self, cloud_ms: u64) -> u64 {
        let a = &self.inner;
        let ahead = cloud_ms.saturating_sub(a.cloud_origin_ms);
        a.real_origin_ms
            .saturating_add(ahead.div_ceil(u64::from(a.scale)))
    }

    /// How long, in wall time, `cloud` of cloud time lasts.
    pub fn real_duration(&self, cloud: Duration) -> Duration {
        cloud / self.inner.scale
    }

    /// Waits until the cloud time reaches `cloud_ms`.
    pub async fn sleep_until(&self, cloud_ms: u64) {
        let wait_ms = self.real_at(cloud_ms).saturating_sub(crate::now_millis());
        if wait_ms > 0 {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        }
    }

    /// Waits for `cloud` of cloud time.
    pub async fn sleep(&self, cloud: Duration) {
        let d = self.real_duration(cloud);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_one_is_the_wall_clock() {
        let c = CloudClock::scaled(1, u64::MAX / 2);
        assert!(c.is_real());
        assert_eq!(c.cloud_at(1_000_000), 1_000_000);
        assert_eq!(c.real_at(1_000_000), 1_000_000);
        let before = crate::now_millis();
        let now = c.now_ms();
        assert!(now >= before && now <= crate::now_millis());
    }

    #[test]
    fn a_scaled_clock_runs_faster_from_its_anchor() {
        let c = CloudClock::anchored(60, 10_000, 50_000);
        assert_eq!(c.cloud_at(10_000), 50_000);
        assert_eq!(c.cloud_at(11_000), 110_000);
        assert_eq!(
            c.cloud_at(9_000),
            50_000,
            "before the anchor it stands still"
        );
        assert_eq!(c.real_at(110_000), 11_000);
        assert_eq!(
            c.real_at(50_001),
            10_001,
            "a cloud instant is reached, not passed early"
        );
        assert_eq!(
            c.real_duration(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
        assert!(!c.is_real());
    }

    #[test]
    fn a_scaled_clock_resumes_where_an_earlier_run_left_off() {
        let later = crate::now_millis() + 3_600_000;
        let c = CloudClock::scaled(10, later);
        assert!(c.now_ms() >= later);
        let c = CloudClock::scaled(10, 0);
        assert!(c.now_ms() >= crate::now_millis());
    }

    #[test]
    fn the_scale_is_bounded() {
        assert_eq!(CloudClock::scaled(0, 0).scale(), 1);
        assert_eq!(CloudClock::scaled(1_000_000, 0).scale(), MAX_SCALE);
    }
}
