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
//!   message to the follow table (`follow.rs`), which hands it to the sink.
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
//! One script (`script.rs`) increments the sequence, appends `ID:MS:DATA` to
//! the backlog (a list, oldest first, capped with `LTRIM` to `backlog`
//! entries), drops entries at least `message_ttl` old (publish times are the
//! broker's clock, `TIME`, in milliseconds), sets the backlog key to expire
//! `message_ttl` after this publish (so a quiet channel's backlog goes when
//! its newest entry would), and `PUBLISH`es the message, all atomically. Reads
//! filter by age as well, so an entry is visible for exactly `message_ttl`
//! whether or not a later publish has trimmed it yet. On the pub/sub channel a
//! message is `ID:MS:LEN:CHANNELDATA` (see [`wire`]): decimal fields, then the
//! channel's `LEN` bytes, then the data to the end, which is unambiguous for
//! any data at all.
//!
//! # Why a list
//! A stream (`XADD` with `MAXLEN`, entry ids `ID-0`, `XRANGE` reads) is kept
//! as the measured alternative ([`Structure`]). Its strength, reading a range
//! by id, buys nothing here: ids are consecutive, so a read finds `since` in
//! a list by position. And it costs more, on every figure and in every run:
//! measured with `cargo run --release -p dispatchers --example broker_bench
//! 20000` (Redis 7.0.15, backlog 64, 64-byte messages, best of 3 rounds on a
//! shared, busy 2-core VM; two runs), list against stream: script time
//! (`EVALSHA` `usec_per_call`) 11-16 against 18-19 us, Redis CPU per publish
//! 23-29 against 33-38 us one at a time and 10 against 14.5 us pipelined,
//! round trip p50 41-44 against 47-57 us, and 100 against 150 bytes of Redis
//! memory per backlog entry.
//!
//! # Follow without a gap
//! When a node begins to follow a channel, there is no gap and no duplicate
//! between what the backlog replays and what arrives live; after that, every
//! message is handed on once, in id order. The link
//! 1. `SUBSCRIBE`s, and drops live messages of the channel until the broker
//!    confirms that subscription (earlier ones belong to an older
//!    subscription, and a hole after them would be a gap);
//! 2. from the confirmation on, buffers every live message: the broker
//!    sends this connection each message published after the confirmation;
//! 3. only then reads the sequence and the backlog (on the command
//!    connection): every message not in that read was published after it,
//!    so after the subscription, so it is buffered or still to come live;
//! 4. writes a marker (`PING m<N>`) on the pub/sub connection once the read
//!    is back, and waits for its `pong`: the broker answers it after every
//!    message it had published before, so every live message older than
//!    the read is now buffered, even one that has already left the capped
//!    backlog (without this wait, such a message would be skipped as read);
//! 5. hands the owner the backlog and the buffer merged, deduplicated by id,
//!    in id order ([`Sink::followed`]), and remembers the last id handed on;
//! 6. passes each later live message on if its id is the next one, drops it
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
