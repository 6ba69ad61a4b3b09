//! The `tokio` dispatcher on real sockets (127.0.0.1, port 0), for what
//! only it has: its connections' deadlines live in one table driven by one
//! task (`tasks/deadlines.rs`), not in a `Sleep` per task, so each kind of
//! deadline is seen to fire, and to fire no earlier than due. What every
//! dispatcher does is in `conformance.rs`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use comet::client::Item;
use comet::{Config, Transport};
use dispatchers::{Kind, Running};
use testkit::*;

const WAIT: Duration = Duration::from_secs(5);

fn start(config: Config) -> Running {
    common::start(Kind::Tokio, config, 64)
}

fn open(r: &Running, channel: &str, transport: Transport) -> Sub {
    let mut s = Sub::open(r.addr, channel, transport, "", "");
    assert_eq!(s.wait_head().status, 200);
    s
}

#[test]
fn heartbeats_and_poll_timeouts_fire() {
    let r = start(Config {
        heartbeat: Duration::from_millis(150),
        ..Config::default()
    });
    let mut sub = open(&r, "hb", Transport::Sse);
    let t0 = Instant::now();
    let beats = |s: &Sub| s.items.iter().filter(|i| **i == Item::Heartbeat).count();
    assert!(sub.read_until(WAIT, |s| beats(s) >= 3));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(sub.messages().is_empty(), "{:?}", sub.items);
    let t0 = Instant::now();
    let (head, _) = request(
        r.addr,
        b"GET /sub/lp?transport=longpoll&timeout=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(head.status, 204);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "{took:?}"
    );
    r.stop();
}

/// A client that never finishes its head is closed at the header timeout;
/// a later deadline of another connection (a long-poll's) does not hold
/// the earlier one back, nor the earlier one fire the later.
#[test]
fn a_head_left_unfinished_is_closed_at_the_header_timeout() {
    let r = start(Config {
        header_timeout: Duration::from_millis(500),
        ..Config::default()
    });
    let t0 = Instant::now();
    let mut lp = TcpStream::connect(r.addr).unwrap();
    lp.write_all(b"GET /sub/lp?transport=longpoll&timeout=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut slow = TcpStream::connect(r.addr).unwrap();
    slow.write_all(b"GET /sub/slow?transport=sse HTTP/1.1\r\n")
        .unwrap();
    slow.set_read_timeout(Some(WAIT)).unwrap();
    let mut sink = Vec::new();
    // Whatever it is answered, the server closes it.
    let _ = slow.read_to_end(&mut sink);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(2),
        "{took:?}"
    );
    lp.set_read_timeout(Some(WAIT)).unwrap();
    let mut answer = [0u8; 12];
    lp.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 204");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1950) && took < Duration::from_secs(4),
        "{took:?}"
    );
    r.stop();
}
