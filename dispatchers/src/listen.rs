//! Listening sockets: a deep backlog, and `SO_REUSEPORT` groups so that each
//! reactor or ring accepts on its own socket.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};

/// Backlog asked of the kernel; it is capped at `net.core.somaxconn`.
pub const BACKLOG: i32 = 4096;

/// One listener on `addr`.
pub fn listener(addr: SocketAddr) -> io::Result<TcpListener> {
    Ok(listeners(addr, 1)?.remove(0))
}

/// `n` listeners sharing one port with `SO_REUSEPORT`; the kernel spreads
/// connections across them. With port 0, the first picks the port and the
/// others join it.
pub fn listeners(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpListener>> {
    let mut out: Vec<TcpListener> = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        if n > 1 {
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
