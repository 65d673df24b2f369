//! Time as the core sees it: milliseconds since the Unix epoch, from a [`Clock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch (virtual in the proving ground, real in a server).
pub type Timestamp = i64;

/// The only source of time for core and simulator code.
pub trait Clock: Send + Sync {
    /// The current time in milliseconds since the Unix epoch.
    fn now(&self) -> Timestamp;
}

/// A clock that moves only when told to: the proving ground's virtual time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }
    /// Sets the time (virtual time never goes backwards in a run; callers keep it so).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t, Ordering::SeqCst);
    }
    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}
