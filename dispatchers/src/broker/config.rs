//! How a link talks to its broker.

use std::time::Duration;

/// The data structure that holds a channel's backlog at the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    /// A list, oldest first: `RPUSH` and `LTRIM`. The default: cheaper in
    /// CPU and memory per message (see the module's `# Why a list`).
    List,
    /// A stream: `XADD MAXLEN`, entry ids `ID-0`, `XRANGE` to read.
    Stream,
}

impl Structure {
    pub fn name(self) -> &'static str {
        match self {
            Structure::List => "list",
            Structure::Stream => "stream",
        }
    }

    pub fn from_name(name: &str) -> Option<Structure> {
        [Structure::List, Structure::Stream]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// Settings of a [`Link`](super::Link).
#[derive(Debug, Clone)]
pub struct Config {
    /// `redis://HOST:PORT` (a password in the URL is sent with `AUTH`).
    pub url: String,
    /// Put before every key and pub/sub channel name, so that several
    /// deployments (or tests) can share one broker.
    pub prefix: String,
    /// Messages kept per channel in the shared backlog.
    pub backlog: usize,
    /// A message leaves the backlog this long after it was published
    /// (at least 1 ms).
    pub message_ttl: Duration,
    pub structure: Structure,
    /// Connecting, and each command round trip, must finish within this.
    pub timeout: Duration,
    /// The worker pings the broker after this long without a command, so a
    /// lost broker is noticed on a quiet link too.
    pub ping_interval: Duration,
    /// First wait before reconnecting; it doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl Config {
    /// Defaults for the broker at `url`: backlog 64, `message_ttl` one hour.
    pub fn new(url: &str) -> Config {
        Config {
            url: url.to_string(),
            prefix: "cometbench:".to_string(),
            backlog: 64,
            message_ttl: Duration::from_secs(3600),
            structure: Structure::List,
            timeout: Duration::from_secs(2),
            ping_interval: Duration::from_secs(1),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
        }
    }

    /// `message_ttl` in whole milliseconds, at least 1.
    pub(crate) fn ttl_ms(&self) -> u64 {
        (self.message_ttl.as_millis() as u64).max(1)
    }

    pub(crate) fn seq_key(&self, channel: &str) -> String {
        format!("{}seq:{channel}", self.prefix)
    }

    pub(crate) fn backlog_key(&self, channel: &str) -> String {
        format!("{}backlog:{channel}", self.prefix)
    }

    pub(crate) fn epoch_key(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    /// The pub/sub channel that carries `channel`'s messages.
    pub(crate) fn topic(&self, channel: &str) -> String {
        format!("{}msg:{channel}", self.prefix)
    }

    /// The channel a pub/sub channel name carries, if it is one of ours.
    pub(crate) fn channel_of<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.prefix.as_str())
            .and_then(|t| t.strip_prefix("msg:"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        let c = Config::new("redis://127.0.0.1:1");
        for name in ["a", "msg:a", "a:b", "ünï", ""] {
            assert_eq!(c.channel_of(&c.topic(name)), Some(name));
        }
        assert_eq!(c.channel_of("other:msg:a"), None);
        assert_eq!(c.channel_of("cometbench:seq:a"), None);
        assert_ne!(c.seq_key("a"), c.backlog_key("a"));
        assert_eq!(Structure::from_name("stream"), Some(Structure::Stream));
        assert_eq!(Structure::from_name("zset"), None);
    }
}
