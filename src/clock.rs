//! The instance's own clock, for what it stamps itself: access-token times
//! and stored timestamps. Session times come from Redis instead (see
//! [`crate::sessions`]), so instances whose clocks differ agree on them.

use chrono::{DateTime, TimeDelta, Utc};

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
