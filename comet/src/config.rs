//! Server settings shared by every connection.

use std::time::Duration;

/// Settings of a Comet server, the same for every dispatcher.
///
/// Defaults are those of the wire protocol (`docs/DESIGN.md`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Interval between heartbeats on streaming transports.
    pub heartbeat: Duration,
    /// How long a long-poll is held when the request gives no `?timeout=`.
    pub poll_timeout: Duration,
    /// Upper bound on `?timeout=`.
    pub max_poll_timeout: Duration,
    /// A request (head and body) must complete this long after its first byte
    /// (after accept, for the first request of a connection).
    pub header_timeout: Duration,
    /// An idle keep-alive connection between requests is closed after this.
    pub idle_timeout: Duration,
    /// Largest publish body in bytes; larger is `413`.
    pub max_message: usize,
    /// Messages kept per channel for `since` / `Last-Event-ID` replay.
    pub backlog: usize,
    /// Age at which a message leaves the backlog; a channel with no
    /// subscriber and nothing younger is removed (nchan's
    /// `nchan_message_timeout`).
    pub message_ttl: Duration,
    /// Channels that may exist at once; a request that would make one more
    /// is answered `503`.
    pub max_channels: usize,
    /// Unsent bytes a streaming subscriber may be behind by: a message that
    /// arrives when more than this already waits drops the subscriber. A
    /// replay of the backlog does not count (see `Conn::handle_subscribed`),
    /// and one frame is always taken, so the queue stays below this plus one
    /// frame however much a transport's escaping grows a message.
    pub max_queue: usize,
    /// After an answer given before its request was read whole, the longest
    /// the connection keeps reading (and discarding) what the client still
    /// sends (nginx's `lingering_time`; see `Conn::poll_shutdown`).
    pub linger_time: Duration,
    /// ... and the longest it waits for the next byte of it (nginx's
    /// `lingering_timeout`).
    pub linger_timeout: Duration,
    /// ... and the most bytes it reads so; past them the connection is cut off.
    pub linger_bytes: usize,
    /// Bearer token required to publish, when set.
    pub publish_token: Option<String>,
    /// Value of `Access-Control-Allow-Origin`, when CORS is enabled.
    pub allow_origin: Option<String>,
    /// SSE `retry:` field, in milliseconds.
    pub sse_retry_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat: Duration::from_secs(15),
            poll_timeout: Duration::from_secs(30),
            max_poll_timeout: Duration::from_secs(600),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_message: 64 * 1024,
            backlog: 64,
            message_ttl: Duration::from_secs(3600),
            max_channels: 1_000_000,
            max_queue: 256 * 1024,
            linger_time: Duration::from_secs(30),
            linger_timeout: Duration::from_secs(5),
            linger_bytes: 1 << 20,
            publish_token: None,
            allow_origin: None,
            sse_retry_ms: 3000,
        }
    }
}
