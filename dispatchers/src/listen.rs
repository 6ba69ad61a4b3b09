//! Listening sockets: a deep backlog, and `SO_REUSEPORT` groups so that each
//! reactor or ring accepts on its own socket.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};

/// Backlog asked of the kernel; it is capped at `net.core.somaxconn`.
pub const BACKLOG: i32 = 4096;

/// One listener on `addr`; `share` lets other processes join its port.
pub fn listener(addr: SocketAddr, share: bool) -> io::Result<TcpListener> {
    Ok(listeners(addr, 1, share)?.remove(0))
}

/// `n` listeners sharing one port with `SO_REUSEPORT`; the kernel spreads
/// connections across them (and across other processes' listeners of the
/// port, when `share`). With port 0, the first picks the port and the
/// others join it.
pub fn listeners(addr: SocketAddr, n: usize, share: bool) -> io::Result<Vec<TcpListener>> {
    let mut out: Vec<TcpListener> = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        if n > 1 || share {
            s.set_reuse_port(true)?;
        }
        s.bind(&addr.into())?;
        s.listen(BACKLOG)?;
        let l: TcpListener = s.into();
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}
