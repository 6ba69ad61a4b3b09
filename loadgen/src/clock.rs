//! A clock every process of a run shares.
//!
//! `CLOCK_MONOTONIC` is one clock for the whole machine, so a publisher's
//! scheduled time and a worker's receipt time, taken in different processes,
//! subtract to a true delivery latency.

/// Nanoseconds of `CLOCK_MONOTONIC`.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec passed in; CLOCK_MONOTONIC
    // always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU seconds (user, system) this process has used.
pub fn self_cpu() -> (f64, f64) {
    // SAFETY: getrusage writes only the struct passed in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// The latency stamp at the head of every published message:
/// `"{scheduled_ns} {sent_ns} "`, then padding.
pub fn parse_stamp(data: &str) -> Option<(u64, u64)> {
    let mut it = data.split(' ');
    let scheduled = it.next()?.parse().ok()?;
    let sent = it.next()?.parse().ok()?;
    Some((scheduled, sent))
}

/// A message of `size` bytes carrying the stamp.
pub fn stamped(scheduled_ns: u64, sent_ns: u64, size: usize) -> String {
    let mut s = format!("{scheduled_ns} {sent_ns} ");
    while s.len() < size {
        s.push('x');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip() {
        let s = stamped(123, 456, 64);
        assert_eq!(s.len(), 64);
        assert_eq!(parse_stamp(&s), Some((123, 456)));
        assert_eq!(parse_stamp("nonsense"), None);
        assert!(mono_ns() > 0);
    }
}
