//! The frame header: 2 to 14 bytes before every payload.

use super::opcode::Opcode;

/// The FIN bit: the last frame of a message.
const FIN: u8 = 0x80;
/// RSV1, RSV2 and RSV3: meaningful only with a negotiated extension.
pub(crate) const RSV: u8 = 0x70;
/// The MASK bit of the second byte.
pub(crate) const MASKED: u8 = 0x80;

/// An encoded frame header, held on the stack.
///
/// # Sharing
/// A header depends only on the payload's length (and the mask), so a caller
/// that holds one payload for many connections writes `Header` and payload as
/// two slices, and never copies the payload per connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; Header::MAX_LEN],
    len: u8,
}

impl Header {
    /// The longest header: 2 bytes, an 8-byte length and a 4-byte mask.
    pub const MAX_LEN: usize = 14;

    /// The header of a frame with `payload_len` bytes of payload, masked with
    /// `mask` when it is given (client to server).
    pub fn new(fin: bool, opcode: Opcode, payload_len: u64, mask: Option<[u8; 4]>) -> Header {
        let mut bytes = [0; Header::MAX_LEN];
        bytes[0] = if fin { FIN } else { 0 } | opcode.bits();
        let mask_bit = if mask.is_some() { MASKED } else { 0 };
        // RFC 6455 section 5.2: the minimal length encoding.
        let mut len = match payload_len {
            0..=125 => {
                bytes[1] = mask_bit | payload_len as u8;
                2
            }
            126..=0xFFFF => {
                bytes[1] = mask_bit | 126;
                bytes[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
                4
            }
            _ => {
                bytes[1] = mask_bit | 127;
                bytes[2..10].copy_from_slice(&payload_len.to_be_bytes());
                10
            }
        };
        if let Some(key) = mask {
            bytes[len..len + 4].copy_from_slice(&key);
            len += 4;
        }
        Header {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl AsRef<[u8]> for Header {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Header({:02x?})", self.as_bytes())
    }
}

/// A header read off the wire, not yet checked against the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub fin: bool,
    /// The first byte's RSV bits, in place.
    pub rsv: u8,
    /// The raw 4-bit opcode (reserved values included).
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    /// The payload length as sent (the top bit may be set: the caller refuses it).
    pub len: u64,
}

/// How many header bytes a frame whose second byte is `second` has.
pub(crate) fn wanted(second: u8) -> usize {
    let ext = match second & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & MASKED != 0 { 4 } else { 0 };
    2 + ext + mask
}

/// Reads a complete header: `buf` holds exactly [`wanted`]`(buf[1])` bytes.
pub(crate) fn parse(buf: &[u8]) -> Parsed {
    debug_assert_eq!(buf.len(), wanted(buf[1]));
    let (len, at) = match buf[1] & 0x7F {
        126 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
        127 => (
            u64::from_be_bytes(buf[2..10].try_into().expect("eight length bytes")),
            10,
        ),
        n => (n as u64, 2),
    };
    let mask = (buf[1] & MASKED != 0).then(|| buf[at..at + 4].try_into().expect("four mask bytes"));
    Parsed {
        fin: buf[0] & FIN != 0,
        rsv: buf[0] & RSV,
        opcode: buf[0] & 0x0F,
        mask,
        len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form_and_parse_back() {
        let table: &[(u64, usize, &[u8])] = &[
            (0, 2, &[0x81, 0x00]),
            (125, 2, &[0x81, 125]),
            (126, 4, &[0x81, 126, 0x00, 126]),
            (0xFFFF, 4, &[0x81, 126, 0xFF, 0xFF]),
            (0x1_0000, 10, &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for &(len, size, bytes) in table {
            let h = Header::new(true, Opcode::Text, len, None);
            assert_eq!(h.as_bytes(), bytes, "len {len}");
            assert_eq!(wanted(h.as_bytes()[1]), size);
            let p = parse(h.as_bytes());
            assert_eq!(
                (p.fin, p.rsv, p.opcode, p.mask, p.len),
                (true, 0, 1, None, len)
            );
        }
    }

    #[test]
    fn a_mask_follows_the_length() {
        let key = [1, 2, 3, 4];
        let h = Header::new(false, Opcode::Continuation, 300, Some(key));
        assert_eq!(h.as_bytes(), &[0x00, 0x80 | 126, 0x01, 0x2C, 1, 2, 3, 4]);
        let p = parse(h.as_bytes());
        assert_eq!((p.fin, p.opcode, p.mask, p.len), (false, 0, Some(key), 300));
    }
}
