//! Before a case's baseline, the server serves a few subscribers of the
//! case's transport that come and go, so that the baseline holds what
//! serving touches once: the code and read-only data paged in by the first
//! connection of a kind (reactor, 2026-12-02: about 350 KB, 33 to 40 of the
//! 135 to 144 bytes per subscriber `idle-10k` measured at 10,000), and the
//! buffers a first request grows. What the step's connections add over it
//! is then what they cost each, which is what per-connection figures claim.
//! Not for the floor (see `CaseRun::warm_up`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use comet::{ws, Transport};

/// Subscribers of the warm-up round for a step of `step`: a hundredth of
/// it, between 10 and 100.
pub(super) fn round(step: u64) -> usize {
    (step / 100).clamp(10, 100) as usize
}

/// `n` subscribers of `transport` on `path` at `addr` (each waits for its
/// answer's first bytes, briefly: a long-poll holds its answer), then all
/// closed. A connection that fails is passed over: this only pages in.
pub(super) fn warm_up(addr: SocketAddr, path: &str, transport: Transport, n: usize) {
    let mut conns = Vec::new();
    for i in 0..n {
        let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            continue;
        };
        if c.write_all(&request(addr, path, transport, i)).is_ok() {
            conns.push(c);
        }
    }
    for c in &mut conns {
        let _ = c.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
    }
}

fn request(addr: SocketAddr, path: &str, transport: Transport, i: usize) -> Vec<u8> {
    let host = addr.to_string();
    if transport == Transport::Ws {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let key = ws::client::key(nonce);
        if let Ok(req) = ws::client::request(&host, path, &key, &[]) {
            return req;
        }
    }
    let accept = match transport {
        Transport::Sse => "text/event-stream",
        _ => "*/*",
    };
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\n\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn each_subscriber_asks_in_its_transport_and_all_are_closed() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut heads = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).unwrap();
                heads.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                // Closed by the client once it has read (nothing here).
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                assert_eq!(s.read(&mut buf).unwrap(), 0, "closed after the round");
            }
            heads
        });
        warm_up(addr, "/sub/warmup?transport=ws", Transport::Ws, 1);
        warm_up(addr, "/sub/warmup?transport=sse", Transport::Sse, 1);
        let heads = server.join().unwrap();
        assert!(heads[0].contains("Upgrade: websocket"), "{}", heads[0]);
        assert!(heads[0].contains("Sec-WebSocket-Key: "), "{}", heads[0]);
        assert!(
            heads[1].contains("Accept: text/event-stream"),
            "{}",
            heads[1]
        );
        assert_eq!(round(500), 10);
        assert_eq!(round(2_000_000), 100);
    }
}
