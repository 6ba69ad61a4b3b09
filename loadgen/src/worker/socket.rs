//! The sockets a worker opens, and the requests it writes on them.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use comet::Transport;
use mio::net::TcpStream;

/// A non-blocking socket from `source` connecting to `target`.
pub(super) fn open_socket(target: SocketAddr, source: IpAddr) -> io::Result<TcpStream> {
    open_socket_with(target, source, |_| Ok(()))
}

/// [`open_socket`], with `setup` run on the socket before it connects.
pub(super) fn open_socket_with(
    target: SocketAddr,
    source: IpAddr,
    setup: impl FnOnce(&socket2::Socket) -> io::Result<()>,
) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
    s.set_nonblocking(true)?;
    s.set_nodelay(true)?;
    setup(&s)?;
    // Let connect() pick the port per destination, so each source address
    // gives a whole ephemeral range towards the server.
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `one` (a c_int of the given size) only.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    s.bind(&SocketAddr::new(source, 0).into())?;
    match s.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(s.into()))
}

/// Makes the coming close send RST instead of FIN (`SO_LINGER` 0).
pub(super) fn set_reset_on_close(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// A subscribe request; SSE asks for `text/event-stream` as browsers do
/// (nchan serves eventsource only then). `extra` is more header lines.
pub(super) fn request(
    path: &str,
    target: &SocketAddr,
    transport: Transport,
    extra: &str,
) -> Vec<u8> {
    let accept = match transport {
        Transport::Sse => "text/event-stream",
        _ => "*/*",
    };
    format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nAccept: {accept}\r\n{extra}\r\n").into_bytes()
}
