//! Wall-clock time as the helper records it: whole seconds since the Unix epoch, the unit of every
//! time that crosses the bus or lands in the store. A clock before 1970 reads as 0.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
