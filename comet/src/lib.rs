//! The Comet protocol core of cometbench, sans-IO.
//!
//! Bytes and time in, bytes and events out: HTTP/1.1 request parsing
//! ([`request`]), routing ([`route`]), the five transports and their framing
//! ([`transport`]), the channel hub with ids, backlog and message lifetimes
//! ([`hub`]), the per-connection state machine every dispatcher drives
//! ([`Conn`]), the glue that answers its events against a hub ([`glue`]),
//! and the client-side decoders ([`client`]) that the load generator and
//! tests use.
//! WebSocket's handshake and frame codec, both ends, are in [`ws`]; the
//! chat page that `GET /` answers is in [`page`].
//!
//! It leaves out everything that waits: no sockets, no threads, no clock.
//! Time is always passed in as an `Instant`, so heartbeats and timeouts are
//! tested with a fake clock.

pub mod client;
pub mod config;
pub mod conn;
pub mod glue;
pub mod hub;
pub mod message;
pub mod page;
pub mod request;
pub mod route;
pub mod transport;
pub mod ws;

pub use config::Config;
pub use conn::{Conn, Event, Refusal};
pub use glue::{Accepted, Answer, Backend};
pub use hub::{ChannelLimit, Hub, HubStats, Limits, Published, Replay};
pub use message::Message;
pub use transport::Transport;
