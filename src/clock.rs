//! The instance's own clock, for what it stamps itself: access-token times
//! and stored timestamps. Session times come from Redis instead (see
//! [`crate::sessions`]), so instances whose clocks differ agree on them.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// What clients are told in whole seconds (`expires_in`, `Max-Age`,
/// `Retry-After`): rounded up, so that time left never reads as 0.
pub fn whole_seconds(duration: Duration) -> u64 {
    duration.as_millis().div_ceil(1000) as u64
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    offset: TimeDelta,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock::default()
    }

    /// The system clock off by `offset` (negative: behind), as an instance
    /// on a badly synchronised host would read it.
    pub fn skewed(offset: TimeDelta) -> Self {
        Clock { offset }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}
