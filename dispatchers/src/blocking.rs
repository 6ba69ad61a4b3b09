//! Not built yet.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::Shared;

pub fn serve_publish_listener(_addr: SocketAddr, _shared: Arc<Shared>) -> io::Result<SocketAddr> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "not built yet"))
}
