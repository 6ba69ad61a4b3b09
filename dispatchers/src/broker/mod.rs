//! The broker link: one node's connection to a Redis broker that gives every
//! channel one id sequence and one backlog across all nodes.
//!
//! The link knows nothing of connections or dispatchers. Its owner calls
//! methods on a [`Link`] (publish, follow, unfollow, replay), none of which
//! blocks on the broker; the link answers on its own threads, through the
//! owner's [`Sink`] and the callbacks given with each request.
//!
//! # Threads
//! - the *worker* owns the command connection: it runs publishes, backlog
//!   reads and replays as Lua scripts (`EVALSHA`), pipelining whatever has
//!   queued up, writes `SUBSCRIBE`/`UNSUBSCRIBE` to the pub/sub connection,
//!   pings the broker when idle, and reconnects with backoff;
//! - the *reader* blocks on the pub/sub connection and passes each live
//!   message to the follow table ([`follow`]), which hands it to the sink.
//!
//! # Keys
//! With the default prefix `cometbench:`, channel `C` has the integer key
//! `cometbench:seq:C` (its last id: never expires, so ids never restart while
//! the broker keeps its data), the backlog `cometbench:backlog:C` and the
//! pub/sub channel `cometbench:msg:C`. `cometbench:epoch` names the broker's
//! current life (see `# Broker faults`). The prefix comes after nothing
//! and the channel after a fixed word, so no two channels share a key.
//!
//! # Publish
//! One script ([`script`]) increments the sequence, appends `ID:MS:DATA` to
//! the backlog (a list, oldest first, capped with `LTRIM` to `backlog`
//! entries), drops entries at least `message_ttl` old (publish times are the
//! broker's clock, `TIME`, in milliseconds), sets the backlog key to expire
//! `message_ttl` after this publish (so a quiet channel's backlog goes when
//! its newest entry would), and `PUBLISH`es the message, all atomically. Reads
//! filter by age as well, so an entry is visible for exactly `message_ttl`
//! whether or not a later publish has trimmed it yet. On the pub/sub channel a
//! message is `ID:MS:LEN:CHANNELDATA` (see [`wire`]): decimal fields, then the
//! channel's `LEN` bytes, then the data to the end, which is unambiguous for
//! any data at all. A `stream` backlog (`XADD` with `MAXLEN`, entry ids
//! `ID-0`) is kept as the measured alternative ([`Structure`]).
//!
//! # Follow without a gap
//! When a node begins to follow a channel, there is no gap and no duplicate
//! between what the backlog replays and what arrives live; after that, every
//! message is handed on once, in id order. The link
//! 1. `SUBSCRIBE`s, and drops live messages of the channel until the broker
//!    confirms that subscription (earlier ones belong to an older
//!    subscription, and a hole after them would be a gap);
//! 2. from the confirmation on, buffers every live message: the broker
//!    publishes each message after the confirmation to this connection;
//! 3. only then reads the sequence and the backlog: every message not in
//!    that read was published after it, so after the subscription, so it is
//!    in the buffer or still to come live;
//! 4. hands the owner the backlog and the buffer merged, deduplicated by id,
//!    in id order ([`Sink::followed`]), and remembers the last id handed on;
//! 5. passes each later live message on if its id is the next one, drops it
//!    if it is not newer (a message both read and received live), and treats
//!    a hole as a fault: it buffers again and fills the hole from the backlog
//!    ([`Cause::Gap`]), reporting what had left it.
//!
//! # Broker faults
//! [`Link::connect`] fails at once, naming the URL, when the broker cannot be
//! reached. A broker lost later is reported to the sink (`link_state(false)`):
//! publishes fail with [`Error::Down`] (those in flight with [`Error::Lost`]:
//! they may have run) until the link is back. The worker reconnects with
//! doubling backoff, follows every channel again and fills each one's gap from
//! the backlog with the same steps as a first follow, counting what left the
//! backlog meanwhile in `missed` ([`Cause::Reconnect`]). A broker that lost
//! its data (a restart without persistence) has a new epoch: each channel then
//! starts again from id 0 ([`Cause::Reset`]), since its old ids are gone and
//! new messages reuse them.

mod config;
mod error;
mod follow;
mod link;
mod message;
mod reader;
mod script;
mod session;
mod sink;
mod stats;
pub mod wire;
mod worker;

pub use config::{Config, Structure};
pub use error::Error;
pub use link::Link;
pub use message::{Message, Replay};
pub use sink::{Cause, Sink};
pub use stats::Stats;
