//! Why a peer's frames were refused, and the close code each gets.

use super::close;

/// A frame stream that breaks RFC 6455 (or this endpoint's limits). The
/// connection must be closed with [`Error::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A client frame without a mask: `1002`.
    Unmasked,
    /// A server frame with a mask: `1002`.
    Masked,
    /// A reserved bit is set, and no extension was negotiated: `1002`.
    Reserved,
    /// A reserved opcode (the value is given): `1002`.
    Opcode(u8),
    /// A control frame with more than 125 bytes of payload: `1002`.
    ControlTooLong,
    /// A control frame without FIN: `1002`.
    ControlFragmented,
    /// A continuation frame with no message to continue: `1002`.
    NoContinuation,
    /// A new text or binary frame before the fragmented message ended: `1002`.
    Interleaved,
    /// A 64-bit payload length with its top bit set: `1002`.
    LengthTopBit,
    /// A close frame with a one-byte payload: `1002`.
    CloseOneByte,
    /// A close code that may not be sent (the value is given): `1002`.
    CloseCode(u16),
    /// A binary message: this endpoint takes text only: `1003`.
    Binary,
    /// A text message or close reason that is not UTF-8: `1007`.
    Utf8,
    /// A message longer than the decoder's maximum: `1009`.
    TooBig,
}

impl Error {
    /// The code to close the connection with.
    pub fn close_code(self) -> u16 {
        match self {
            Error::Binary => close::UNSUPPORTED_DATA,
            Error::Utf8 => close::INVALID_DATA,
            Error::TooBig => close::TOO_BIG,
            _ => close::PROTOCOL_ERROR,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unmasked => f.write_str("client frame not masked"),
            Error::Masked => f.write_str("server frame masked"),
            Error::Reserved => f.write_str("reserved bit set"),
            Error::Opcode(op) => write!(f, "reserved opcode {op:#x}"),
            Error::ControlTooLong => f.write_str("control frame longer than 125 bytes"),
            Error::ControlFragmented => f.write_str("control frame fragmented"),
            Error::NoContinuation => f.write_str("continuation frame with no message"),
            Error::Interleaved => f.write_str("new message inside a fragmented one"),
            Error::LengthTopBit => f.write_str("64-bit length with its top bit set"),
            Error::CloseOneByte => f.write_str("close payload of one byte"),
            Error::CloseCode(code) => write!(f, "invalid close code {code}"),
            Error::Binary => f.write_str("binary message"),
            Error::Utf8 => f.write_str("text not UTF-8"),
            Error::TooBig => f.write_str("message too big"),
        }
    }
}

impl std::error::Error for Error {}
