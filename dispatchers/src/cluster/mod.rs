//! Several servers, one set of channels: a dispatcher started with a broker
//! (`serve --broker redis://HOST:PORT`) is one *node* of many that share the
//! broker's ids and backlogs (see `docs/DESIGN.md`, Several nodes). The link
//! to the broker is [`crate::broker`]; this module is what the node does
//! with it, in one place for every dispatcher: [`crate::Shared`] calls it,
//! so a dispatcher that answers its connections with
//! [`crate::backend::GroupBackend`] (or calls `Shared`'s `subscribe` and
//! `publish` itself) is a node without a line of its own.
//!
//! # The follow invariant
//! A node delivers a channel's messages to its own subscribers in id order,
//! each exactly once, whether it numbered them or not: the link hands a
//! followed channel's backlog and live messages over with no gap and no
//! duplicate between them (the broker's `# Follow without a gap`), the hub
//! keeps them under the broker's ids in the channel's *mirror* and drops a
//! copy it has (`comet::hub`'s mirror), and fan-out is the hub's own, in
//! order through each group's inbox.
//!
//! # O(l) routing
//! A node follows a channel only while it has subscribers on it: the first
//! local subscriber follows it (and waits, [`comet::Answer::Later`], for the
//! broker's backlog, which becomes the mirror every later subscriber's
//! `since` is answered from), and the follow ends a [`node::LINGER`] after
//! the last one left. So a message reaches the nodes that have subscribers
//! for it, not all of them; `/stats` counts what the broker sent this node
//! (`broker.received`).
//!
//! A subscribe with `since` on a channel not followed waits for the follow
//! like any other, rather than asking the broker for a replay of its own:
//! the follow hands over the whole shared backlog, so the mirror then
//! answers that `since` exactly as a replay would, and the subscriber needs
//! the follow anyway to go on live. (A long-poll answered at once from it
//! keeps the follow for the linger, in which its next poll comes.)
//!
//! # Publishing
//! A publish goes to the broker, which gives it its id; the answer (`202`
//! with that id, or `503` when the broker is down or the connection to it
//! was lost with the publish in flight) is handed back to the publisher's
//! connection through its group's inbox ([`crate::deferred`]). The message
//! is not handed to local subscribers on the way: it comes back through the
//! link, as every other node's messages do, so there is one order.
//!
//! # Broker faults
//! While the broker is down, publishes are `503`, subscribers already
//! connected stay, a subscribe on a followed channel is answered from its
//! mirror, and one on a channel not followed (or still waiting) is `503`.
//! Back, the link follows every channel again and hands over what it
//! missed; a skip in ids is told to each subscriber as missed by its
//! `Conn`. A broker that lost its data (a new life) ends the subscriptions
//! of each channel ([`crate::deferred::Item::End`]): their ids belong to
//! the old life.

mod follows;
pub mod node;
mod sink;

pub(crate) use follows::Follows;
pub use node::Node;
