//! Server settings shared by every connection.

use std::time::Duration;

/// Settings of a Comet server, the same for every dispatcher.
///
/// Defaults are those of DESIGN section 3.
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
    /// Unsent bytes a streaming subscriber may be behind by: a message that
    /// arrives when more than this already waits drops the subscriber. A
    /// replay of the backlog does not count (see `Conn::handle_subscribed`),
    /// and one frame is always taken, so the queue stays below this plus one
    /// frame however much a transport's escaping grows a message.
    pub max_queue: usize,
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
            max_queue: 256 * 1024,
            publish_token: None,
            allow_origin: None,
            sse_retry_ms: 3000,
        }
    }
}
