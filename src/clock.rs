//! The wall clock, read in one place.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch, zero on a clock set before it: epochs of
/// automatic ids and of a backplane's data set, and instance names, are
/// made from it, and none of them may fail because a clock is wrong.
pub fn unix_time() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
