//! A connection's deadline in 8 bytes rather than an `Option<Instant>`'s 16
//! (see `docs/DESIGN.md`, "Memory per connection"): nanoseconds from an
//! epoch, which is the first deadline any connection of the process set.
//! No clock is read: the epoch is one of the instants the dispatcher passed
//! in, and an instant before it is a negative offset. Nanoseconds keep every
//! instant exact (Linux's clock has no finer grain), and an `i64` of them
//! spans 292 years either way.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// `i64::MIN` is "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Deadline(i64);

impl Deadline {
    pub(super) fn new(at: Option<Instant>) -> Deadline {
        let Some(at) = at else {
            return Deadline(i64::MIN);
        };
        let epoch = *EPOCH.get_or_init(|| at);
        let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        match at.checked_duration_since(epoch) {
            Some(after) => Deadline(ns(after)),
            None => Deadline(-ns(epoch - at)),
        }
    }

    pub(super) fn get(self) -> Option<Instant> {
        if self.0 == i64::MIN {
            return None;
        }
        let epoch = *EPOCH.get().expect("set by the first deadline");
        let offset = Duration::from_nanos(self.0.unsigned_abs());
        if self.0 >= 0 {
            epoch.checked_add(offset)
        } else {
            epoch.checked_sub(offset)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_either_side_of_the_epoch_round_trip() {
        let t0 = Instant::now();
        let first = Deadline::new(Some(t0)).get();
        assert_eq!(first, Some(t0));
        for at in [
            t0 + Duration::from_nanos(1),
            t0 + Duration::from_secs(86_400 * 365),
            t0 - Duration::from_millis(3),
        ] {
            assert_eq!(Deadline::new(Some(at)).get(), Some(at));
        }
        assert_eq!(Deadline::new(None).get(), None);
    }
}
