//! What can go wrong between a node and its broker.

use std::fmt;

/// A failed link operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The broker URL does not parse, or names a transport the link does not
    /// speak (only `redis://` over TCP).
    Url { url: String, reason: String },
    /// The broker could not be reached when the link was made.
    Unreachable { url: String, reason: String },
    /// The link is down and reconnecting: the request was not sent.
    Down,
    /// The connection was lost with the request in flight: a publish may or
    /// may not have happened.
    Lost,
    /// The broker answered with an error.
    Broker(String),
    /// The broker's answer did not have the expected shape.
    Protocol(String),
    /// The link was stopped.
    Stopped,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Url { url, reason } => write!(f, "bad broker URL {url}: {reason}"),
            Error::Unreachable { url, reason } => {
                write!(f, "broker {url} unreachable: {reason}")
            }
            Error::Down => f.write_str("broker link down"),
            Error::Lost => f.write_str("broker connection lost with the request in flight"),
            Error::Broker(e) => write!(f, "broker error: {e}"),
            Error::Protocol(e) => write!(f, "unexpected broker answer: {e}"),
            Error::Stopped => f.write_str("broker link stopped"),
        }
    }
}

impl std::error::Error for Error {}
