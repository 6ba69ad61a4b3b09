//! A WebSocket subscriber's frames after the `101`: text frames as items,
//! pings to answer, the server's close.

use super::{parse_object, ClientEvent, DecodeError, Dialect, Item};
use crate::ws::{Decoder, Event};

/// The largest message a client takes: a server's JSON escaping can make a
/// frame six times the largest message it accepts (64 KiB by default).
pub const MAX_CLIENT_MESSAGE: usize = 16 << 20;

/// Reads the frames of one WebSocket subscription.
#[derive(Debug)]
pub struct WsReader {
    decoder: Decoder,
    dialect: Dialect,
}

impl WsReader {
    pub fn new(dialect: Dialect) -> WsReader {
        WsReader {
            decoder: Decoder::client(MAX_CLIENT_MESSAGE),
            dialect,
        }
    }

    /// Whether the server's close frame has been read.
    pub fn is_closed(&self) -> bool {
        self.decoder.is_closed()
    }

    /// Decodes frame bytes into events: a text frame is an item (our
    /// `{"id":N,"data":"..."}` or `{"missed":K}`, or a peer's raw message),
    /// a ping is [`ClientEvent::Ping`], a close [`ClientEvent::Close`].
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<ClientEvent>) -> Result<(), DecodeError> {
        let mut events = Vec::new();
        let result = self.decoder.feed(input, &mut events);
        for e in events {
            out.push(match e {
                Event::Text(text) => ClientEvent::Item(self.item(text)?),
                Event::Ping(payload) => ClientEvent::Ping(payload),
                // Our client sends no pings: a pong is unsolicited, and says nothing.
                Event::Pong(_) => continue,
                Event::Close { code, reason } => ClientEvent::Close { code, reason },
            });
        }
        result.map_err(|e| DecodeError::BadFrame(format!("WebSocket: {e}")))
    }

    fn item(&self, text: String) -> Result<Item, DecodeError> {
        match self.dialect {
            Dialect::Comet => parse_object(&text),
            Dialect::Nchan => Ok(Item::Opaque {
                id: None,
                data: text,
            }),
        }
    }
}
