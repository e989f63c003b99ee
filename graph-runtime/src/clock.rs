//! The wall clock that stamps checkpoints ([`Checkpoint::created_at`](crate::store::Checkpoint)).

use std::time::SystemTime;

/// Now, to within the resolution of the system's coarse real-time clock on Linux (the kernel's
/// tick: 1 to 4 ms), which is read without touching the hardware clock: a few nanoseconds,
/// against 20 to 30 for a precise read, which an in-memory step would otherwise pay on every
/// checkpoint. Elsewhere, [`SystemTime::now`].
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn coarse_now() -> SystemTime {
    use rustix::time::{ClockId, clock_gettime};
    let now = clock_gettime(ClockId::RealtimeCoarse);
    let since_epoch = std::time::Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    );
    SystemTime::UNIX_EPOCH
        .checked_add(since_epoch)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Now ([`SystemTime::now`]): this platform has no coarse clock to read instead.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn coarse_now() -> SystemTime {
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The coarse clock is the wall clock, a tick behind at most: never off by seconds, never
    /// the epoch.
    #[test]
    fn the_coarse_clock_tells_the_time() {
        let precise = SystemTime::now();
        let coarse = coarse_now();
        let apart = precise
            .duration_since(coarse)
            .or_else(|e| Ok::<_, ()>(e.duration()))
            .unwrap();
        assert!(apart < Duration::from_millis(100), "{apart:?} apart");
    }
}
