//! The incremental frame decoder: byte chunks in, messages and control frames out.

use std::mem;

use bytes::Bytes;

use super::close;
use super::error::Error;
use super::header::{self, Header, Parsed, MASKED, RSV};
use super::mask::apply_mask;
use super::opcode::Opcode;

/// What a peer's frames amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole text message, its fragments joined.
    Text(String),
    /// A ping; answer it with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong: the answer to a ping, or an unsolicited heartbeat.
    Pong(Bytes),
    /// The peer closes. `code` is `None` when the close frame was empty
    /// (reported as 1005 by browsers). The decoder yields nothing after it.
    Close { code: Option<u16>, reason: String },
}

/// Which peer's frames are decoded: the two differ only in the mask rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Decodes a client's frames, which must be masked.
    Server,
    /// Decodes a server's frames, which must not be.
    Client,
}

/// Decodes one direction of a WebSocket connection, fed arbitrary pieces of
/// the byte stream: a frame may arrive a byte at a time, or many in one piece.
///
/// # Memory
/// Between messages the decoder holds no heap memory: a message is collected
/// in a buffer that is handed out whole as [`Event::Text`], and a control
/// frame's payload likewise as the `Bytes` of its event. While a frame is
/// read, what is held is what has arrived, never more than the maximum message:
/// a length above it is refused from the header, before any payload is kept.
///
/// # Unmasking
/// On copy: the piece fed in is borrowed (it may be the dispatcher's read
/// buffer or a kernel-provided ring buffer, read-only here), and a message
/// has to outlive it anyway to be joined with its other fragments, so each
/// payload byte is copied once into the message and unmasked there.
///
/// # Errors
/// The first protocol error is returned and then returned again by every
/// later call: the connection must be closed with [`Error::close_code`].
/// Events decoded before the error, in the same piece, are still in `out`.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    /// The text message being joined; empty and unallocated between messages.
    message: Vec<u8>,
    /// The control frame being read; empty and unallocated between frames.
    control: Vec<u8>,
    state: State,
    role: Role,
    /// A text frame without FIN has arrived, and its last fragment has not.
    fragmented: bool,
}

#[derive(Debug)]
enum State {
    /// Reading a header: `have` bytes of it are in `buf`.
    Header {
        buf: [u8; Header::MAX_LEN],
        have: u8,
    },
    Payload(Frame),
    /// A close frame arrived: what follows is not read.
    Closed,
    Failed(Error),
}

/// The frame whose payload is being read.
#[derive(Debug)]
struct Frame {
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    /// Payload bytes still to come.
    left: u64,
    /// Payload bytes read so far, modulo 4: where the mask resumes.
    offset: u8,
}

const FRESH: State = State::Header {
    buf: [0; Header::MAX_LEN],
    have: 0,
};

impl Decoder {
    /// A decoder for the frames a client sends (masked), taking text messages
    /// of at most `max_message` bytes.
    pub fn server(max_message: usize) -> Decoder {
        Decoder::new(Role::Server, max_message)
    }

    /// A decoder for the frames a server sends (unmasked).
    pub fn client(max_message: usize) -> Decoder {
        Decoder::new(Role::Client, max_message)
    }

    fn new(role: Role, max_message: usize) -> Decoder {
        Decoder {
            max_message,
            message: Vec::new(),
            control: Vec::new(),
            state: FRESH,
            role,
            fragmented: false,
        }
    }

    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Whether a close frame has been decoded.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether the decoder is between messages: no frame begun, no
    /// fragmented message waiting for its end (so nothing would be lost by
    /// making a new one).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Header { have: 0, .. }) && !self.fragmented
    }

    /// Heap bytes held for a message or control frame not yet complete.
    pub fn buffered(&self) -> usize {
        self.message.capacity() + self.control.capacity()
    }

    /// Decodes `input`, pushing every event it completes onto `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<Event>) -> Result<(), Error> {
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        while !input.is_empty() {
            let step = match self.state {
                State::Header { .. } => self.read_header(&mut input, out),
                State::Payload(_) => self.read_payload(&mut input, out),
                State::Closed | State::Failed(_) => return Ok(()),
            };
            if let Err(e) = step {
                self.state = State::Failed(e);
                self.message = Vec::new();
                self.control = Vec::new();
                return Err(e);
            }
        }
        Ok(())
    }

    fn read_header(&mut self, input: &mut &[u8], out: &mut Vec<Event>) -> Result<(), Error> {
        let State::Header { buf, have } = &mut self.state else {
            unreachable!("called in the header state")
        };
        let mut n = *have as usize;
        let need = if n < 2 { 2 } else { header::wanted(buf[1]) };
        let take = (need - n).min(input.len());
        buf[n..n + take].copy_from_slice(&input[..take]);
        *input = &input[take..];
        n += take;
        *have = n as u8;
        let buf = *buf;
        // Each byte is judged as soon as it arrives, so that a hostile peer is
        // refused without waiting for the rest of its header.
        self.check_first(buf[0])?;
        if n < 2 {
            return Ok(());
        }
        self.check_second(buf[0], buf[1])?;
        if n < header::wanted(buf[1]) {
            return Ok(());
        }
        self.start(header::parse(&buf[..n]), out)
    }

    /// The first byte: FIN, RSV and the opcode, against the message in progress.
    fn check_first(&self, first: u8) -> Result<(), Error> {
        if first & RSV != 0 {
            return Err(Error::Reserved);
        }
        let bits = first & 0x0F;
        let opcode = Opcode::from_bits(bits).ok_or(Error::Opcode(bits))?;
        let fin = first & 0x80 != 0;
        match opcode {
            _ if opcode.is_control() && !fin => Err(Error::ControlFragmented),
            Opcode::Continuation if !self.fragmented => Err(Error::NoContinuation),
            Opcode::Text | Opcode::Binary if self.fragmented => Err(Error::Interleaved),
            Opcode::Binary => Err(Error::Binary),
            _ => Ok(()),
        }
    }

    /// The second byte: the mask bit and the 7-bit length.
    fn check_second(&self, first: u8, second: u8) -> Result<(), Error> {
        match (self.role, second & MASKED != 0) {
            (Role::Server, false) => return Err(Error::Unmasked),
            (Role::Client, true) => return Err(Error::Masked),
            _ => {}
        }
        let control = first & 0x08 != 0;
        if control && (second & 0x7F) > 125 {
            return Err(Error::ControlTooLong);
        }
        Ok(())
    }

    /// A whole header, its bytes already checked: the limits on its length.
    fn start(&mut self, h: Parsed, out: &mut Vec<Event>) -> Result<(), Error> {
        let opcode = Opcode::from_bits(h.opcode).ok_or(Error::Opcode(h.opcode))?;
        if h.len >> 63 != 0 {
            return Err(Error::LengthTopBit);
        }
        if opcode == Opcode::Close && h.len == 1 {
            return Err(Error::CloseOneByte);
        }
        if !opcode.is_control()
            && (self.message.len() as u64).saturating_add(h.len) > self.max_message as u64
        {
            return Err(Error::TooBig);
        }
        self.state = State::Payload(Frame {
            fin: h.fin,
            opcode,
            mask: h.mask,
            left: h.len,
            offset: 0,
        });
        if h.len == 0 {
            return self.finish(out);
        }
        Ok(())
    }

    fn read_payload(&mut self, input: &mut &[u8], out: &mut Vec<Event>) -> Result<(), Error> {
        let State::Payload(f) = &mut self.state else {
            unreachable!("called in the payload state")
        };
        let take = f.left.min(input.len() as u64) as usize;
        let dst = if f.opcode.is_control() {
            &mut self.control
        } else {
            &mut self.message
        };
        let start = dst.len();
        dst.extend_from_slice(&input[..take]);
        if let Some(key) = f.mask {
            apply_mask(&mut dst[start..], key, f.offset as usize);
        }
        *input = &input[take..];
        f.offset = ((f.offset as usize + take) % 4) as u8;
        f.left -= take as u64;
        if f.left == 0 {
            return self.finish(out);
        }
        Ok(())
    }

    /// The frame's payload is complete.
    fn finish(&mut self, out: &mut Vec<Event>) -> Result<(), Error> {
        let State::Payload(f) = mem::replace(&mut self.state, FRESH) else {
            unreachable!("called in the payload state")
        };
        match f.opcode {
            Opcode::Text | Opcode::Continuation if !f.fin => self.fragmented = true,
            Opcode::Text | Opcode::Continuation => {
                self.fragmented = false;
                // UTF-8 is checked once, on the whole message: checking each
                // fragment would need the position of a character cut at its end.
                let text =
                    String::from_utf8(mem::take(&mut self.message)).map_err(|_| Error::Utf8)?;
                out.push(Event::Text(text));
            }
            Opcode::Ping => out.push(Event::Ping(mem::take(&mut self.control).into())),
            Opcode::Pong => out.push(Event::Pong(mem::take(&mut self.control).into())),
            Opcode::Close => {
                let event = close_event(&mem::take(&mut self.control))?;
                // A message left unfinished is abandoned with the connection.
                self.message = Vec::new();
                self.state = State::Closed;
                out.push(event);
            }
            Opcode::Binary => return Err(Error::Binary),
        }
        Ok(())
    }
}

/// The event of a close frame's (unmasked) payload.
fn close_event(payload: &[u8]) -> Result<Event, Error> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return match payload.len() {
            0 => Ok(Event::Close {
                code: None,
                reason: String::new(),
            }),
            _ => Err(Error::CloseOneByte),
        };
    };
    let code = u16::from_be_bytes(*code);
    if !close::is_valid(code) {
        return Err(Error::CloseCode(code));
    }
    let reason = std::str::from_utf8(reason).map_err(|_| Error::Utf8)?;
    Ok(Event::Close {
        code: Some(code),
        reason: reason.to_owned(),
    })
}
