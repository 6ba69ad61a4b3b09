//! The counters a dispatcher reports in `/stats`.

use std::sync::atomic::AtomicU64;

/// Counters reported in `/stats`, shared by every thread of a dispatcher.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections open now.
    pub connections: AtomicU64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Messages handed to subscribers (one per subscriber per message).
    pub delivered: AtomicU64,
    /// Subscribers dropped because their output passed the bound.
    pub dropped_slow: AtomicU64,
    /// WebSocket clients dropped for answering no ping for two heartbeats.
    pub dropped_unresponsive: AtomicU64,
    /// Connections closed for sending no request within their deadline.
    pub closed_idle: AtomicU64,
    /// Connections refused (`503`, or a full descriptor table) since start.
    pub refused: AtomicU64,
}
