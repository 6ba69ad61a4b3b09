//! Latency histograms: one shape for every recorder, a compact encoding for the
//! pipe between worker processes and the coordinator, summaries for `run.json`,
//! and interval logs in the standard HdrHistogram format.
//!
//! Every value is in **microseconds**. Histograms keep 3 significant digits over
//! 1 µs .. 1 hour and grow past that (auto-resize) rather than refuse a value.
//!
//! # Merging, never averaging
//! Histograms from several workers are combined with [`merge`], which adds the
//! counts; percentiles are computed once, on the merged histogram. A mean of
//! per-worker p99s is not a p99.
//!
//! # Interval logs
//! [`write_log`] writes what Java's `HistogramLogWriter` writes (log format 1.3):
//! a version comment, `#[StartTime: ...]`, `#[BaseTime: ...]` (the same instant,
//! so each interval's timestamp is its offset from the start), the legend line,
//! then one `[Tag=T,]start,length,max,histogram` line per interval, the histogram
//! V2-deflate encoded in base64. The `Interval_Max` column is in milliseconds
//! (`#[MaxValueDivisor: 1000.000]`), as Java tools write it; the histograms hold
//! microseconds, so `HistogramLogProcessor -outputValueUnitRatio 1000` prints
//! milliseconds.

use std::fmt;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry, Tag};
use hdrhistogram::serialization::{
    DeserializeError, Deserializer, Serializer as _, V2DeflateSerializer,
};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::clock::{utc, Precision};

/// Significant digits kept by every histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;
/// Lowest discernible value, µs.
pub const LOWEST_US: u64 = 1;
/// Highest value before the histogram resizes itself: one hour in µs.
pub const HIGHEST_US: u64 = 3_600_000_000;

/// The divisor of the `Interval_Max` column: µs to ms.
const MAX_VALUE_DIVISOR: f64 = 1000.0;
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why an encoded histogram or an interval log could not be read.
#[derive(Debug)]
pub enum HistError {
    /// The text is not base64.
    Base64(base64::DecodeError),
    /// The bytes are not a V2 (deflate) histogram.
    Histogram(DeserializeError),
    /// A line of an interval log could not be parsed; `line` counts from 1.
    Log { line: usize },
}

impl fmt::Display for HistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistError::Base64(e) => write!(f, "encoded histogram is not base64: {e}"),
            HistError::Histogram(e) => write!(f, "bad encoded histogram: {e}"),
            HistError::Log { line } => write!(f, "interval log: cannot parse line {line}"),
        }
    }
}

impl std::error::Error for HistError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HistError::Base64(e) => Some(e),
            HistError::Histogram(e) => Some(e),
            HistError::Log { .. } => None,
        }
    }
}

/// An empty latency histogram: µs, 3 significant digits, 1 µs .. 1 h, auto-resize.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        .expect("constant bounds are valid");
    h.auto(true);
    h
}

/// The histogram as one line of text: V2 deflate serialization in base64 (the
/// encoding of interval logs), for JSON lines between processes.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Serializing into a Vec fails only for a count above i64::MAX.
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("histogram counts fit in i64");
    BASE64.encode(bytes)
}

/// The inverse of [`encode`]; the result auto-resizes like [`new_histogram`].
pub fn decode(text: &str) -> Result<Histogram<u64>, HistError> {
    let bytes = BASE64.decode(text.trim()).map_err(HistError::Base64)?;
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(HistError::Histogram)?;
    h.auto(true);
    Ok(h)
}

/// Adds the counts of `from` to `into` (never averages). `into` is switched to
/// auto-resize so that no value of `from` is out of its range.
pub fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    into.auto(true);
    if into.add(from).is_err() {
        // Only a resize beyond usize can fail: keep every count, clamped.
        for v in from.iter_recorded() {
            into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
}

/// The figures of a histogram that `run.json` keeps, µs.
///
/// Percentiles are the highest value equivalent to the recorded one at 3
/// significant digits (HdrHistogram's convention). An empty histogram gives
/// `count` 0 and zeros everywhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

impl From<&Histogram<u64>> for Summary {
    fn from(h: &Histogram<u64>) -> Summary {
        Summary::of(h)
    }
}

/// One line of an interval log.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Seconds from the log's start time to the start of this interval.
    pub start_offset_secs: f64,
    pub duration_secs: f64,
    /// e.g. `corrected`, `raw`; no commas, spaces or line breaks.
    pub tag: Option<String>,
    pub hist: Histogram<u64>,
}

/// Writes `intervals` as an HdrHistogram interval log (format 1.3) whose
/// StartTime and BaseTime are `start`. Fails with `InvalidInput` on a tag that
/// the format cannot hold.
pub fn write_log<W: Write>(mut w: W, start: SystemTime, intervals: &[Interval]) -> io::Result<()> {
    let start_secs = epoch_secs(start);
    let mut out = String::new();
    out.push_str("#[Histogram log format version 1.3]\n");
    out.push_str("#[cometbench: latency in microseconds]\n");
    out.push_str(&format!(
        "#[StartTime: {start_secs:.3} (seconds since epoch), {}]\n",
        utc(start, Precision::Millis)
    ));
    out.push_str(&format!(
        "#[BaseTime: {start_secs:.3} (seconds since epoch)]\n"
    ));
    out.push_str(&format!("#[MaxValueDivisor: {MAX_VALUE_DIVISOR:.3}]\n"));
    out.push_str("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n");
    for i in intervals {
        if let Some(tag) = &i.tag {
            if Tag::new(tag).is_none() || tag.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("interval log tag {tag:?} holds a comma, space or line break"),
                ));
            }
            out.push_str("Tag=");
            out.push_str(tag);
            out.push(',');
        }
        out.push_str(&format!(
            "{:.3},{:.3},{:.3},{}\n",
            i.start_offset_secs.max(0.0),
            i.duration_secs.max(0.0),
            i.hist.max() as f64 / MAX_VALUE_DIVISOR,
            encode(&i.hist)
        ));
    }
    w.write_all(out.as_bytes())?;
    w.flush()
}

/// Reads an interval log (ours or any HdrHistogram tool's). Offsets are
/// relative to the log's StartTime when it has one, else to its BaseTime;
/// without either they are the timestamps as written.
pub fn read_log(text: &str) -> Result<Vec<Interval>, HistError> {
    let mut start: Option<f64> = None;
    let mut base: Option<f64> = None;
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(text.as_bytes()) {
        let entry = entry.map_err(|e| {
            let hdrhistogram::serialization::interval_log::LogIteratorError::ParseError { offset } =
                e;
            HistError::Log {
                line: text.as_bytes()[..offset.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1,
            }
        })?;
        match entry {
            LogEntry::StartTime(d) => start = Some(d.as_secs_f64()),
            LogEntry::BaseTime(d) => base = Some(d.as_secs_f64()),
            LogEntry::Interval(i) => {
                let ts = i.start_timestamp().as_secs_f64();
                // Java's HistogramLogReader rules: with a BaseTime, timestamps
                // are offsets from it; with only a StartTime, they are offsets
                // when much smaller than it (a year), else absolute.
                const YEAR: f64 = 365.25 * 86400.0;
                let absolute = match (base, start) {
                    (Some(b), _) => b + ts,
                    (None, Some(s)) if ts < s - YEAR => s + ts,
                    _ => ts,
                };
                let offset = match start.or(base) {
                    Some(s) => absolute - s,
                    None => absolute,
                };
                out.push(Interval {
                    start_offset_secs: (offset * 1000.0).round() / 1000.0,
                    duration_secs: i.duration().as_secs_f64(),
                    tag: i.tag().map(|t| t.as_str().to_string()),
                    hist: decode(i.encoded_histogram())?,
                });
            }
        }
    }
    Ok(out)
}

fn epoch_secs(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn values(seed: u64, n: usize) -> Vec<u64> {
        // A small xorshift: spread over 1 µs .. ~10 s, heavy at the low end.
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let exp = x % 24;
                1 + (x >> 8) % (1u64 << exp)
            })
            .collect()
    }

    #[test]
    fn new_histogram_has_the_agreed_shape() {
        let mut h = new_histogram();
        assert_eq!(h.sigfig(), 3);
        assert!(h.is_auto_resize());
        h.record(0).unwrap();
        h.record(5 * HIGHEST_US).unwrap();
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn merge_equals_recording_everything_into_one() {
        let a = values(1, 10_000);
        let b = values(2, 3_000);
        let (mut ha, mut hb, mut all) = (new_histogram(), new_histogram(), new_histogram());
        for &v in &a {
            ha.record(v).unwrap();
            all.record(v).unwrap();
        }
        for &v in &b {
            hb.record(v).unwrap();
            all.record(v).unwrap();
        }
        hb.record(2 * HIGHEST_US).unwrap();
        all.record(2 * HIGHEST_US).unwrap();
        merge(&mut ha, &hb);
        assert_eq!(ha.len(), all.len());
        assert_eq!(ha.len(), 13_001);
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(ha.value_at_quantile(q), all.value_at_quantile(q), "q {q}");
        }
        assert_eq!(ha.max(), all.max());
        assert_eq!(ha.min(), all.min());
        assert_eq!(Summary::of(&ha), Summary::of(&all));
    }

    #[test]
    fn merge_into_a_histogram_without_auto_resize() {
        let mut small = Histogram::<u64>::new_with_bounds(1, 1000, 3).unwrap();
        small.record(10).unwrap();
        let mut big = new_histogram();
        big.record(1_000_000).unwrap();
        merge(&mut small, &big);
        assert_eq!(small.len(), 2);
        assert_eq!(small.max(), big.max());
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut h = new_histogram();
        for v in values(7, 5000) {
            h.record(v).unwrap();
        }
        let text = encode(&h);
        assert!(!text.contains('\n') && !text.contains('"'));
        let back = decode(&text).unwrap();
        assert_eq!(back, h);
        assert_eq!(Summary::of(&back), Summary::of(&h));
        assert!(back.is_auto_resize());
        // Empty histograms travel too.
        let empty = decode(&encode(&new_histogram())).unwrap();
        assert_eq!(empty.len(), 0);
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(matches!(decode("not base64!"), Err(HistError::Base64(_))));
        assert!(matches!(
            decode("aGVsbG8gd29ybGQ="),
            Err(HistError::Histogram(_))
        ));
    }

    #[test]
    fn summary_of_empty_and_known_values() {
        assert_eq!(Summary::of(&new_histogram()), Summary::default());
        let mut h = new_histogram();
        for v in 1..=1000 {
            h.record(v).unwrap();
        }
        let s = Summary::of(&h);
        assert_eq!(s.count, 1000);
        assert_eq!(s.min, 1);
        assert_eq!(s.max, 1000);
        assert_eq!(s.p50, 500);
        assert_eq!(s.p90, 900);
        assert_eq!(s.p99, 990);
        assert_eq!(s.p999, 999);
        assert!((s.mean - 500.5).abs() < 0.5, "{}", s.mean);
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["p999"], 999);
    }

    #[test]
    fn written_log_reads_back() {
        let start = UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        let mut intervals = Vec::new();
        for i in 0..4u64 {
            for (tag, extra) in [("corrected", 1000), ("raw", 0)] {
                let mut h = new_histogram();
                for v in values(i + 10, 100 * (i as usize + 1)) {
                    h.record(v + extra).unwrap();
                }
                intervals.push(Interval {
                    start_offset_secs: i as f64 + 0.25,
                    duration_secs: 1.0,
                    tag: Some(tag.into()),
                    hist: h,
                });
            }
        }
        intervals.push(Interval {
            start_offset_secs: 10.0,
            duration_secs: 0.5,
            tag: None,
            hist: new_histogram(),
        });
        let mut buf = Vec::new();
        write_log(&mut buf, start, &intervals).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#[Histogram log format version 1.3]");
        assert!(text.contains(
            "#[StartTime: 1764000000.123 (seconds since epoch), 2025-11-24T16:00:00.123Z]\n"
        ));
        assert!(text.contains("#[BaseTime: 1764000000.123 (seconds since epoch)]\n"));
        assert!(text.contains(
            "\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"
        ));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("Tag=corrected,0.250,1.000,")));
        assert!(lines.iter().any(|l| l.starts_with("10.000,0.500,0.000,")));

        let back = read_log(&text).unwrap();
        assert_eq!(back.len(), intervals.len());
        for (a, b) in intervals.iter().zip(&back) {
            assert!((a.start_offset_secs - b.start_offset_secs).abs() < 1e-6);
            assert!((a.duration_secs - b.duration_secs).abs() < 1e-6);
            assert_eq!(a.tag, b.tag);
            assert_eq!(a.hist.len(), b.hist.len());
            assert_eq!(a.hist, b.hist);
        }
    }

    #[test]
    fn read_log_reads_foreign_logs_without_base_time() {
        // As Java writes it: StartTime with a date, offsets small against it.
        let mut h = new_histogram();
        h.record(1234).unwrap();
        let text = format!(
            "#[Logged with jHiccup version 2.0.7]\n#[Histogram log format version 1.2]\n\
             #[StartTime: 1441812279.474 (seconds since epoch), Wed Sep 09 08:24:39 PDT 2015]\n\
             \"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n\
             0.127,1.007,1.234,{}\n",
            encode(&h)
        );
        let back = read_log(&text).unwrap();
        assert_eq!(back.len(), 1);
        assert!((back[0].start_offset_secs - 0.127).abs() < 1e-6);
        assert_eq!(back[0].tag, None);
        assert_eq!(back[0].hist.len(), 1);
    }

    #[test]
    fn bad_tags_and_bad_lines_are_errors() {
        let i = Interval {
            start_offset_secs: 0.0,
            duration_secs: 1.0,
            tag: Some("two words".into()),
            hist: new_histogram(),
        };
        let e = write_log(Vec::new(), SystemTime::now(), &[i]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = read_log("#[Histogram log format version 1.3]\nnot,a,log\n").unwrap_err();
        assert!(matches!(e, HistError::Log { line: 2 }), "{e}");
    }
}
