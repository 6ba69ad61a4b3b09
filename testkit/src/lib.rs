//! Test support shared by the dispatcher tests (`dispatchers/tests/`) and the
//! binary's tests (`tests/`), written once:
//!
//! - [`client`]: a small blocking HTTP client for the Comet protocol on real
//!   sockets, decoded with `comet::client` (`request`, `publish`, `stats`,
//!   `wait_subscribers`, a subscriber [`Sub`]);
//! - [`control`]: one keep-alive connection for publishing and `/stats`, so
//!   that a test can count the connections it made;
//! - [`serve`]: `cometbench serve` as a child process;
//! - [`scenario`]: `cometbench run` on a scenario written by a test;
//! - [`slots`]: at most so many scenario runs at once;
//! - [`hostile`]: messages that try to break out of the iframe transport.
//!
//! It leaves out what differs per suite: how a server is configured and started.

pub mod client;
pub mod control;
pub mod hostile;
pub mod scenario;
pub mod serve;
pub mod slots;

pub use client::*;
pub use control::Control;
pub use serve::Server;
