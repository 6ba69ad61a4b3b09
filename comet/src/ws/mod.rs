//! WebSocket (RFC 6455), sans-IO: the opening handshake, the frame encoder
//! and the frame decoder, for both ends of the connection.
//!
//! The server side is [`handshake`] (accept or refuse an upgrade request and
//! the exact `101` head), [`encode`] (unmasked frames, and a header alone for
//! a payload shared by every subscriber) and [`Decoder::server`] (a client's
//! masked frames in, messages, pings, pongs and closes out). The client side,
//! for the load generator and tests, is [`client`] (the request head, the
//! check of the `101` response, masked frames) and [`Decoder::client`].
//!
//! Left out: sockets, threads, clocks and randomness. The caller passes the
//! masking key and the handshake nonce in, so every byte is reproducible.
//! `permessage-deflate` and every other extension are never negotiated: a
//! compression context with context takeover costs up to hundreds of
//! kilobytes per connection (zlib's deflate state is 256 KiB at its
//! defaults), which is what this workbench measures, so an offer is ignored
//! and a frame with a reserved bit set is a protocol error.

pub mod client;
pub mod close;
mod decoder;
pub mod encode;
mod error;
pub mod handshake;
mod header;
mod mask;
mod opcode;

pub use decoder::{Decoder, Event};
pub use error::Error;
pub use header::Header;
pub use mask::apply_mask;
pub use opcode::Opcode;
