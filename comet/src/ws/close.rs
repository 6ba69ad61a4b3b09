//! Close codes (RFC 6455 section 7.4) and the close frame's payload.

/// The endpoint is going away normally.
pub const NORMAL: u16 = 1000;
/// The server is going down, or a browser left the page.
pub const GOING_AWAY: u16 = 1001;
/// The peer broke the protocol.
pub const PROTOCOL_ERROR: u16 = 1002;
/// A kind of data the endpoint does not accept (here: binary).
pub const UNSUPPORTED_DATA: u16 = 1003;
/// Data inconsistent with its type (here: text that is not UTF-8).
pub const INVALID_DATA: u16 = 1007;
/// A message violating the endpoint's policy (here: a publish without the token).
pub const POLICY: u16 = 1008;
/// A message too big to process.
pub const TOO_BIG: u16 = 1009;
/// The server met an unexpected condition.
pub const INTERNAL: u16 = 1011;
/// The server is overloaded for now: the client may try again later (here:
/// a publish past `--max-channels`).
pub const TRY_AGAIN_LATER: u16 = 1013;

/// The longest close reason that fits a control frame beside the code.
pub const MAX_REASON: usize = 123;

/// Whether `code` may be sent in a close frame.
///
/// 1004 is reserved, 1005, 1006 and 1015 are for reporting only and never sent,
/// 1016-2999 are unassigned IANA codes, and 3000-4999 are for libraries and
/// applications; everything else is a protocol error.
pub fn is_valid(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The close frame's payload: the code, then `reason` cut to [`MAX_REASON`]
/// bytes at a character boundary.
pub fn payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(2 + end);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_codes_are_exactly_the_sendable_ranges() {
        let valid: Vec<u16> = (0..=u16::MAX).filter(|&c| is_valid(c)).collect();
        let expected: Vec<u16> = (1000..=1003)
            .chain(1007..=1014)
            .chain(3000..=4999)
            .collect();
        assert_eq!(valid, expected);
    }

    #[test]
    fn a_long_reason_is_cut_between_characters() {
        let reason = "é".repeat(100);
        let p = payload(NORMAL, &reason);
        assert_eq!(&p[..2], &[0x03, 0xE8]);
        assert_eq!(p.len(), 2 + 122);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        assert_eq!(payload(TOO_BIG, "big"), b"\x03\xf1big");
    }
}
