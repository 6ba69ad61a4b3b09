//! Frames the server sends: unmasked (RFC 6455 section 5.1).
//!
//! One text frame per message. Its payload is the same JSON object as the
//! `stream` transport's line, without the newline: [`message`].

use bytes::{BufMut, Bytes, BytesMut};

use super::close;
use super::header::Header;
use super::mask::apply_mask;
use super::opcode::Opcode;
use crate::transport::encode_object;

/// The longest payload a control frame (close, ping, pong) may carry.
pub const MAX_CONTROL: usize = 125;

/// The header of an unmasked text frame of `len` bytes, for a payload the
/// caller already holds (see [`Header`]'s `# Sharing`).
pub fn text_header(len: usize) -> Header {
    Header::new(true, Opcode::Text, len as u64, None)
}

/// A text frame carrying `payload` whole.
pub fn text(payload: &str) -> Bytes {
    frame(true, Opcode::Text, payload.as_bytes(), None)
}

/// The text frame of message `id`: `{"id":N,"data":"..."}`.
pub fn message(id: u64, data: &str) -> Bytes {
    text(&encode_object(id, data))
}

/// A ping carrying `payload`.
///
/// # Panics
/// If `payload` is longer than [`MAX_CONTROL`]: a control frame cannot carry it.
pub fn ping(payload: &[u8]) -> Bytes {
    control(Opcode::Ping, payload, None)
}

/// A pong carrying `payload` (a ping's, echoed).
///
/// # Panics
/// If `payload` is longer than [`MAX_CONTROL`].
pub fn pong(payload: &[u8]) -> Bytes {
    control(Opcode::Pong, payload, None)
}

/// A close frame with `code` and `reason` (cut to [`close::MAX_REASON`] bytes).
pub fn close(code: u16, reason: &str) -> Bytes {
    frame(true, Opcode::Close, &close::payload(code, reason), None)
}

/// Any frame: `payload` behind its header, masked with `mask` when given.
pub fn frame(fin: bool, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    let header = Header::new(fin, opcode, payload.len() as u64, mask);
    let mut out = BytesMut::with_capacity(header.as_bytes().len() + payload.len());
    out.put_slice(header.as_bytes());
    let start = out.len();
    out.put_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
    out.freeze()
}

pub(crate) fn control(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    assert!(
        payload.len() <= MAX_CONTROL,
        "a control frame carries at most {MAX_CONTROL} bytes, not {}",
        payload.len()
    );
    frame(true, opcode, payload, mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{encode_event, Transport};

    #[test]
    fn rfc_samples() {
        // RFC 6455 section 5.7.
        assert_eq!(&text("Hello")[..], b"\x81\x05Hello");
        assert_eq!(&ping(b"Hello")[..], b"\x89\x05Hello");
        assert_eq!(&pong(b"Hello")[..], b"\x8a\x05Hello");
        let masked = frame(true, Opcode::Text, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]));
        assert_eq!(
            &masked[..],
            &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }

    #[test]
    fn a_message_is_the_stream_line_without_its_newline() {
        let data = "a \"quoted\" line\nand é";
        let line = encode_event(Transport::Stream, 42, data);
        let payload = &line[..line.len() - 1];
        let f = message(42, data);
        let h = text_header(payload.len());
        assert_eq!(&f[..h.as_bytes().len()], h.as_bytes());
        assert_eq!(&f[h.as_bytes().len()..], payload);
    }

    #[test]
    fn close_carries_code_then_reason() {
        assert_eq!(&close(1000, "bye")[..], b"\x88\x05\x03\xe8bye");
        assert_eq!(close(1000, &"x".repeat(500)).len(), 2 + MAX_CONTROL);
    }

    #[test]
    #[should_panic(expected = "at most 125")]
    fn an_oversized_ping_is_refused() {
        ping(&[0; 126]);
    }
}
