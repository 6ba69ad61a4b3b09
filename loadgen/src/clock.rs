//! A clock every process of a run shares.
//!
//! `CLOCK_MONOTONIC` is one clock for the whole machine, so a publisher's
//! scheduled time and a worker's receipt time, taken in different processes,
//! subtract to a true delivery latency. The wall clock is only written down
//! (run timestamps, interval logs' start time), as UTC dates by [`utc`].

use std::time::SystemTime;

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

/// How many digits of a second [`utc`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `2025-11-24T16:00:00Z`
    Seconds,
    /// `2025-11-24T16:00:00.123Z` (truncated, not rounded)
    Millis,
}

/// `t` as an RFC 3339 date and time in UTC; a time jiff cannot hold (before
/// year -9999 or after 9999) is written as the Unix epoch.
pub fn utc(t: SystemTime, precision: Precision) -> String {
    let ts = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let format = match precision {
        Precision::Seconds => "%Y-%m-%dT%H:%M:%SZ",
        Precision::Millis => "%Y-%m-%dT%H:%M:%S%.3fZ",
    };
    ts.strftime(format).to_string()
}

/// The stamp at the head of every published message.
///
/// `"{scheduled_ns} {sent_ns} {seq} "`, then padding (`x`): the scheduled and
/// the actual send time (`mono_ns`), and the message's place in its channel's
/// publish sequence (1, 2, 3 ...), by which a subscriber checks continuity on a
/// server that gives no integer ids of its own. The older form without `seq`,
/// `"{scheduled_ns} {sent_ns} "`, still parses, with `seq` `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub scheduled_ns: u64,
    pub sent_ns: u64,
    pub seq: Option<u64>,
}

/// Reads the stamp at the head of `data`; `None` without one.
pub fn parse_stamp(data: &str) -> Option<Stamp> {
    let mut it = data.split(' ');
    let scheduled_ns = it.next()?.parse().ok()?;
    let sent_ns = it.next()?.parse().ok()?;
    // The third field is the sequence only when a space ends it: in the old
    // form it is the padding (or nothing).
    let seq = match (it.next(), it.next()) {
        (Some(seq), Some(_)) => seq.parse().ok(),
        _ => None,
    };
    Some(Stamp {
        scheduled_ns,
        sent_ns,
        seq,
    })
}

/// A message of `size` bytes carrying the stamp in its older form, without a
/// sequence number.
pub fn stamped(scheduled_ns: u64, sent_ns: u64, size: usize) -> String {
    pad(format!("{scheduled_ns} {sent_ns} "), size)
}

/// A message of `size` bytes (more when the stamp needs it) carrying the
/// stamp with the channel sequence number `seq`.
pub fn stamped_seq(scheduled_ns: u64, sent_ns: u64, seq: u64, size: usize) -> String {
    pad(format!("{scheduled_ns} {sent_ns} {seq} "), size)
}

fn pad(mut s: String, size: usize) -> String {
    while s.len() < size {
        s.push('x');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(utc(UNIX_EPOCH, Precision::Seconds), "1970-01-01T00:00:00Z");
        assert_eq!(
            utc(UNIX_EPOCH, Precision::Millis),
            "1970-01-01T00:00:00.000Z"
        );
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc(leap, Precision::Seconds), "2000-02-29T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_nanos(1_764_000_000_123_999_999);
        assert_eq!(utc(t, Precision::Millis), "2025-11-24T16:00:00.123Z");
        assert_eq!(utc(t, Precision::Seconds), "2025-11-24T16:00:00Z");
    }

    #[test]
    fn stamp_round_trip() {
        let s = stamped(123, 456, 64);
        assert_eq!(s.len(), 64);
        let old = parse_stamp(&s).unwrap();
        assert_eq!((old.scheduled_ns, old.sent_ns, old.seq), (123, 456, None));
        assert_eq!(parse_stamp("nonsense"), None);
        assert!(mono_ns() > 0);
    }

    #[test]
    fn stamp_with_sequence() {
        let s = stamped_seq(123, 456, 7, 64);
        assert_eq!(s.len(), 64);
        assert!(s.starts_with("123 456 7 xx"), "{s}");
        assert_eq!(
            parse_stamp(&s),
            Some(Stamp {
                scheduled_ns: 123,
                sent_ns: 456,
                seq: Some(7)
            })
        );
        // No padding left: the sequence still ends with its space.
        let tight = stamped_seq(1_000_000_000_000_000, 1_000_000_000_000_001, 12345, 10);
        assert_eq!(parse_stamp(&tight).unwrap().seq, Some(12345));
        // The old form, padded or not, has no sequence.
        assert_eq!(parse_stamp("123 456 ").unwrap().seq, None);
        assert_eq!(parse_stamp("123 456 xxxx").unwrap().seq, None);
        assert_eq!(parse_stamp("123 456").unwrap().seq, None);
        // A third field that is not a number is no sequence.
        assert_eq!(parse_stamp("123 456 x7 xx").unwrap().seq, None);
        // Old and new forms of the same size carry the same times.
        let (a, b) = (stamped(9, 10, 48), stamped_seq(9, 10, 1, 48));
        assert_eq!(a.len(), b.len());
        assert_eq!(
            parse_stamp(&a).unwrap().sent_ns,
            parse_stamp(&b).unwrap().sent_ns
        );
    }
}
