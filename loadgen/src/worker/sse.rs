//! A reader of this workbench's own SSE stream, HTTP/1.1 chunked, that
//! allocates nothing per message: the body of a broadcast subscriber once
//! its `200` head has been read.
//!
//! It reads exactly what `comet::client::Subscriber` reads for the `sse`
//! transport in the Comet dialect, chunk framing and SSE fields alike (a
//! test feeds both the same streams, cut anywhere), but hands each event to
//! a callback with the data borrowed from the read buffer, or from one
//! line buffer kept across reads, instead of building a `String` per line,
//! per field and per event and a `Vec` per layer. On a 10,000-subscriber
//! broadcast that decoding was a quarter of the worker's CPU.
//!
//! Every other response (another transport, a peer's dialect, an error
//! status, a close-delimited HTTP/1.0 stream) is read by the general
//! decoder.

use comet::client::DecodeError;

/// What the stream carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event<'a> {
    Message {
        id: u64,
        data: &'a str,
    },
    /// `: missed K`.
    Missed(u64),
    /// Any other comment.
    Heartbeat,
}

/// Where the chunk framing is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a size line.
    #[default]
    Size,
    /// Bytes of the chunk still to come, plus its CRLF.
    Data(usize),
    /// The last (zero-size) chunk arrived.
    Done,
}

/// The reader of one response body.
#[derive(Debug, Default)]
pub(super) struct SseReader {
    chunk: Chunk,
    /// A size line split across reads.
    size_line: Vec<u8>,
    /// An SSE line split across chunks or reads.
    line: Vec<u8>,
    /// The last byte was CR: an LF right after it ends nothing more.
    after_cr: bool,
    /// The event's `id` field: absent, or its value read as an integer
    /// (`None` when it is not one).
    id: Option<Option<u64>>,
    /// The event's `data` lines so far, joined by LF.
    data: String,
    has_data: bool,
}

/// The longest size line without its LF that is read on (as the general
/// decoder: longer is a malformed chunk).
const MAX_SIZE_LINE: usize = 1024;

impl SseReader {
    /// Reads body bytes, calling `on` for each event; true once the stream
    /// has ended (the last chunk), after which nothing more is read.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        on: &mut impl FnMut(Event<'_>),
    ) -> Result<bool, DecodeError> {
        while !input.is_empty() {
            match self.chunk {
                Chunk::Done => break,
                Chunk::Data(remaining) => {
                    // The chunk's data, then its trailing two bytes,
                    // skipped unread as the general decoder does.
                    let take = remaining.min(input.len());
                    let data = take.min(remaining.saturating_sub(2));
                    self.body(&input[..data], on)?;
                    input = &input[take..];
                    self.chunk = match remaining - take {
                        0 => Chunk::Size,
                        left => Chunk::Data(left),
                    };
                }
                Chunk::Size => input = self.size(input)?,
            }
        }
        Ok(self.chunk == Chunk::Done)
    }

    /// Reads a size line from `input`; what follows it.
    fn size<'i>(&mut self, input: &'i [u8]) -> Result<&'i [u8], DecodeError> {
        let Some(nl) = memchr(b'\n', input) else {
            self.size_line.extend_from_slice(input);
            if self.size_line.len() > MAX_SIZE_LINE {
                return Err(DecodeError::BadChunk);
            }
            return Ok(&[]);
        };
        let size = if self.size_line.is_empty() {
            chunk_size(&input[..nl])?
        } else {
            self.size_line.extend_from_slice(&input[..nl]);
            let size = chunk_size(&self.size_line);
            self.size_line.clear();
            size?
        };
        self.chunk = match size {
            0 => Chunk::Done,
            n => Chunk::Data(n + 2),
        };
        Ok(&input[nl + 1..])
    }

    /// Reads SSE bytes (chunk data), a line at a time.
    fn body(&mut self, mut data: &[u8], on: &mut impl FnMut(Event<'_>)) -> Result<(), DecodeError> {
        while !data.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if data[0] == b'\n' {
                    data = &data[1..];
                    continue;
                }
            }
            let Some(end) = memchr2(b'\n', b'\r', data) else {
                self.line.extend_from_slice(data);
                return Ok(());
            };
            self.after_cr = data[end] == b'\r';
            if self.line.is_empty() {
                self.line_done(&data[..end], on)?;
            } else {
                self.line.extend_from_slice(&data[..end]);
                let line = std::mem::take(&mut self.line);
                let done = self.line_done(&line, on);
                // The buffer is kept for the next split line.
                self.line = line;
                self.line.clear();
                done?;
            }
            data = &data[end + 1..];
        }
        Ok(())
    }

    /// One whole line, as the HTML standard reads `text/event-stream`.
    fn line_done(
        &mut self,
        line: &[u8],
        on: &mut impl FnMut(Event<'_>),
    ) -> Result<(), DecodeError> {
        // Checked whole first: the lossy path is several times slower on
        // the ASCII lines every message is.
        let line = match std::str::from_utf8(line) {
            Ok(l) => std::borrow::Cow::Borrowed(l),
            Err(_) => String::from_utf8_lossy(line),
        };
        if line.is_empty() {
            if self.has_data {
                self.has_data = false;
                let id = match self.id.take() {
                    Some(Some(id)) => id,
                    other => {
                        return Err(DecodeError::BadFrame(format!(
                            "SSE id {:?}",
                            other.map(|_| "not an integer")
                        )))
                    }
                };
                on(Event::Message {
                    id,
                    data: &self.data,
                });
                self.data.clear();
            }
            return Ok(());
        }
        if let Some(c) = line.strip_prefix(':') {
            let c = c.trim_start();
            match c.strip_prefix("missed ") {
                Some(k) => on(Event::Missed(
                    k.parse()
                        .map_err(|_| DecodeError::BadFrame(format!(": {c}")))?,
                )),
                None => on(Event::Heartbeat),
            }
            return Ok(());
        }
        let (field, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" => self.id = Some(value.parse().ok()),
            // `event` and `retry` are read and dropped, as the general
            // decoder drops them for this dialect; unknown fields too.
            _ => {}
        }
        Ok(())
    }
}

/// A chunk size line's size: hexadecimal, before any `;` extension.
fn chunk_size(line: &[u8]) -> Result<usize, DecodeError> {
    let text = std::str::from_utf8(line).map_err(|_| DecodeError::BadChunk)?;
    let size = text.split(';').next().unwrap_or("").trim();
    usize::from_str_radix(size, 16).map_err(|_| DecodeError::BadChunk)
}

fn memchr(b: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&x| x == b)
}

fn memchr2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&x| x == a || x == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use comet::client::{ClientEvent, Item, Subscriber};
    use comet::Transport;

    const HEAD: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

    /// What the general decoder makes of `body` after a chunked `200` head,
    /// fed in pieces cut at `cuts`: the items, and whether it ended or failed.
    fn general(body: &[u8], cuts: &[usize]) -> (Vec<Item>, Result<bool, ()>) {
        let mut sub = Subscriber::new(Transport::Sse);
        let mut out = Vec::new();
        let mut events = Vec::new();
        if sub.feed(HEAD, &mut out).is_err() {
            return (Vec::new(), Err(()));
        }
        for piece in pieces(body, cuts) {
            let mut rest = piece;
            while !rest.is_empty() {
                let used = match sub.feed(rest, &mut out) {
                    Ok(u) => u,
                    Err(_) => return (items(&events), Err(())),
                };
                events.append(&mut out);
                rest = &rest[used..];
                if used == 0 {
                    break;
                }
            }
            if events.contains(&ClientEvent::End) {
                return (items(&events), Ok(true));
            }
        }
        (items(&events), Ok(false))
    }

    fn items(events: &[ClientEvent]) -> Vec<Item> {
        events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Item(i) => Some(i.clone()),
                _ => None,
            })
            .collect()
    }

    /// What this reader makes of it. Items read before an error in the same
    /// piece are kept here and dropped by the general decoder (which hands
    /// back a piece's items only when the piece decoded whole), so on an
    /// error only the error is compared.
    fn fast(body: &[u8], cuts: &[usize]) -> (Vec<Item>, Result<bool, ()>) {
        let mut r = SseReader::default();
        let mut got = Vec::new();
        for piece in pieces(body, cuts) {
            let mut on = |e: Event<'_>| {
                got.push(match e {
                    Event::Message { id, data } => Item::Message {
                        id,
                        data: data.to_string(),
                    },
                    Event::Missed(k) => Item::Missed(k),
                    Event::Heartbeat => Item::Heartbeat,
                })
            };
            match r.feed(piece, &mut on) {
                Ok(true) => return (got, Ok(true)),
                Ok(false) => {}
                Err(_) => return (got, Err(())),
            }
        }
        (got, Ok(false))
    }

    fn pieces<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts {
            let c = c.min(body.len());
            if c > at {
                out.push(&body[at..c]);
                at = c;
            }
        }
        out.push(&body[at..]);
        out
    }

    fn chunked(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
            out.extend_from_slice(p);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn same(body: &[u8], cuts: &[usize]) {
        let (gi, ge) = general(body, cuts);
        let (fi, fe) = fast(body, cuts);
        assert_eq!(
            fe,
            ge,
            "ending of {:?} cut at {cuts:?}",
            String::from_utf8_lossy(body)
        );
        if ge.is_ok() {
            assert_eq!(
                fi,
                gi,
                "items of {:?} cut at {cuts:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn what_the_server_sends() {
        let body = chunked(&[
            b"retry: 3000\n\n",
            b": missed 3\n\n",
            b"id: 4\ndata: 1 2 4 xxxx\n\n",
            b":\n\n",
            b"id: 5\ndata: two\ndata: lines\n\n",
            b"",
        ]);
        let (items, end) = fast(&body, &[]);
        assert_eq!(end, Ok(true));
        assert_eq!(
            items,
            vec![
                Item::Missed(3),
                Item::Message {
                    id: 4,
                    data: "1 2 4 xxxx".into()
                },
                Item::Heartbeat,
                Item::Message {
                    id: 5,
                    data: "two\nlines".into()
                },
            ]
        );
        // Every cut of it, one and two at a time, reads the same as the
        // general decoder.
        for a in 0..body.len() {
            same(&body, &[a]);
            for b in a..body.len() {
                same(&body, &[a, b]);
            }
        }
    }

    #[test]
    fn line_ends_fields_and_framing_as_the_general_decoder() {
        let cases: &[&[u8]] = &[
            // CR and CRLF line ends, a CR at a chunk's end.
            &chunked(&[b"id: 1\rdata: a\r\r", b"id: 2\r\ndata: b\r", b"\n\r\n"]),
            // CRLF between two data lines of one event, split between the CR and the LF.
            &chunked(&[b"id: 1\r\ndata: a\r", b"\ndata: b\r\n\r\n"]),
            // An event split over chunks; unknown fields; no space after the colon.
            &chunked(&[b"id:7\nda", b"ta:x\nevent: e\nfoo: bar\n\n"]),
            // An id kept across an event without data.
            &chunked(&[b"id: 9\n\ndata: later\n\n"]),
            // No id, or one that is not an integer: malformed.
            &chunked(&[b"data: x\n\n"]),
            &chunked(&[b"id: 1:2\ndata: x\n\n"]),
            // A missed notice that is not a count.
            &chunked(&[b": missed many\n\n"]),
            // Not UTF-8 data, read lossily.
            &chunked(&[b"id: 3\ndata: \xff\xfe\n\n"]),
            // Chunk extensions and a size in capitals; bytes after the end.
            b"5;ext=1\r\nid: 1\r\nD\r\n\ndata: hi\n\n\n\r\n0\r\n\r\nGARBAGE",
            // A malformed size line, and one too long.
            b"zz\r\nid: 1\n",
            &[b'1'; 2000],
        ];
        for body in cases {
            for a in 0..body.len().min(64) {
                same(body, &[a]);
                same(body, &[a, a + 3]);
            }
            same(body, &[]);
        }
    }

    #[test]
    fn a_long_stream_cut_at_random() {
        // A stream of many events in chunks of several events each, cut at
        // pseudo-random places (a fixed seed: the same cases every run).
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let mut parts: Vec<Vec<u8>> = Vec::new();
            let mut part = Vec::new();
            for id in 1..40u64 {
                match next() % 5 {
                    0 => part.extend_from_slice(b":\n\n"),
                    1 => part.extend_from_slice(format!(": missed {}\n\n", next() % 9).as_bytes()),
                    _ => part.extend_from_slice(
                        format!(
                            "id: {id}\ndata: {} {} {id} xx\n\n",
                            next() % 1000,
                            next() % 77
                        )
                        .as_bytes(),
                    ),
                }
                if next() % 3 == 0 {
                    parts.push(std::mem::take(&mut part));
                }
            }
            parts.push(part);
            parts.push(Vec::new());
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let body = chunked(&refs);
            let mut cuts: Vec<usize> = (0..6).map(|_| (next() as usize) % body.len()).collect();
            cuts.sort_unstable();
            same(&body, &cuts);
        }
    }
}
