//! The two encodings the scripts write, and their decoders.
//!
//! - A live message, on the pub/sub channel: `ID:MS:LEN:CHANNELDATA`, where
//!   `ID`, `MS` (publish time) and `LEN` (the channel's length in bytes) are
//!   decimal, the channel's `LEN` bytes follow, and the data is everything
//!   after them. Data may hold anything, colons and newlines included: it is
//!   never scanned.
//! - A backlog entry, as the read scripts return it: `ID:MS:DATA`.
//!
//! The encoders here mirror the Lua in `script.rs`, which writes both;
//! they exist for tests and tools.

use std::fmt;

/// A live message, borrowed from its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live<'a> {
    pub channel: &'a str,
    pub id: u64,
    pub time_ms: u64,
    pub data: &'a str,
}

/// A backlog entry, borrowed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub id: u64,
    pub time_ms: u64,
    pub data: &'a str,
}

/// Why bytes from the broker are not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// A decimal field (named) is missing, empty, not digits, or too large.
    Field(&'static str),
    /// The channel length runs past the end of the payload.
    Short,
    /// Channel or data is not UTF-8 (or `LEN` splits a character).
    NotUtf8,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Field(name) => write!(f, "bad {name} field"),
            WireError::Short => f.write_str("channel runs past the end"),
            WireError::NotUtf8 => f.write_str("not UTF-8"),
        }
    }
}

impl std::error::Error for WireError {}

/// The decimal field before the next `:`, and the rest after it.
fn field<'a>(bytes: &'a [u8], name: &'static str) -> Result<(u64, &'a [u8]), WireError> {
    let end = bytes
        .iter()
        .position(|&b| b == b':')
        .ok_or(WireError::Field(name))?;
    let digits = &bytes[..end];
    // u64::MAX has 20 digits; more (or a sign, or nothing) is not ours.
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(WireError::Field(name));
    }
    let text = std::str::from_utf8(digits).map_err(|_| WireError::Field(name))?;
    let value = text.parse().map_err(|_| WireError::Field(name))?;
    Ok((value, &bytes[end + 1..]))
}

fn text(bytes: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(bytes).map_err(|_| WireError::NotUtf8)
}

pub fn decode_live(payload: &[u8]) -> Result<Live<'_>, WireError> {
    let (id, rest) = field(payload, "id")?;
    let (time_ms, rest) = field(rest, "time")?;
    let (len, rest) = field(rest, "length")?;
    let len = usize::try_from(len).map_err(|_| WireError::Short)?;
    if len > rest.len() {
        return Err(WireError::Short);
    }
    let (channel, data) = rest.split_at(len);
    Ok(Live {
        channel: text(channel)?,
        id,
        time_ms,
        data: text(data)?,
    })
}

pub fn encode_live(channel: &str, id: u64, time_ms: u64, data: &str) -> Vec<u8> {
    format!("{id}:{time_ms}:{}:{channel}{data}", channel.len()).into_bytes()
}

pub fn decode_entry(bytes: &[u8]) -> Result<Entry<'_>, WireError> {
    let (id, rest) = field(bytes, "id")?;
    let (time_ms, rest) = field(rest, "time")?;
    Ok(Entry {
        id,
        time_ms,
        data: text(rest)?,
    })
}

pub fn encode_entry(id: u64, time_ms: u64, data: &str) -> Vec<u8> {
    format!("{id}:{time_ms}:{data}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_round_trips() {
        let cases = [
            ("a", 1, 0, ""),
            ("room.7", 42, 1_764_633_600_123, "hello"),
            ("a:b", 3, 9, "1:2:3:xyz"),
            ("ü", u64::MAX, u64::MAX, "line\nnext\r\n\0end"),
            ("", 5, 5, ":"),
            ("日本", 7, 1, "データ"),
        ];
        for (channel, id, time_ms, data) in cases {
            let bytes = encode_live(channel, id, time_ms, data);
            assert_eq!(
                decode_live(&bytes),
                Ok(Live {
                    channel,
                    id,
                    time_ms,
                    data
                }),
                "{channel:?} {data:?}"
            );
        }
    }

    #[test]
    fn entry_round_trips() {
        for (id, time_ms, data) in [(1, 2, ""), (9, 10, "a:b:c"), (3, 4, "ü\n")] {
            let bytes = encode_entry(id, time_ms, data);
            assert_eq!(decode_entry(&bytes), Ok(Entry { id, time_ms, data }));
        }
    }

    #[test]
    fn bad_payloads() {
        let cases: [(&[u8], WireError); 11] = [
            (b"", WireError::Field("id")),
            (b"1", WireError::Field("id")),
            (b":1:1:a", WireError::Field("id")),
            (b"x:1:1:a", WireError::Field("id")),
            (b"-1:1:1:a", WireError::Field("id")),
            (b"1:2", WireError::Field("time")),
            (b"1:2:", WireError::Field("length")),
            (b"1:2:3:ab", WireError::Short),
            (b"1:2:99999999999999999999999:a", WireError::Field("length")),
            (b"1:2:1:\xc3\xbc", WireError::NotUtf8),
            (b"1:2:1:a\xff", WireError::NotUtf8),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                decode_live(bytes),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(decode_entry(b"1:x:a"), Err(WireError::Field("time")));
        assert_eq!(decode_entry(b"1:2:\xff"), Err(WireError::NotUtf8));
    }
}
