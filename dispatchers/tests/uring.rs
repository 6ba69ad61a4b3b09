//! The `uring` dispatcher on real sockets (127.0.0.1, port 0), for what only
//! it has: a reset seen as a failed receive, two rings sharing the accepts,
//! requests larger than one provided buffer, its timers, and a subscriber
//! that stops reading while sends are in flight. What every dispatcher does
//! is in `conformance.rs`.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use comet::client::{publish_request, Item};
use comet::{Config, Transport};
use dispatchers::{Kind, Running};
use testkit::*;

const WAIT: Duration = Duration::from_secs(5);

fn start(config: Config) -> Running {
    common::start(Kind::Uring, config, 64)
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn open(r: &Running, channel: &str, transport: Transport) -> Sub {
    let mut s = Sub::open(r.addr, channel, transport, "", "");
    assert_eq!(s.wait_head().status, 200);
    s
}

#[test]
fn disconnected_subscriber_leaves_within_a_second() {
    let r = start(Config::default());
    let subs: Vec<Sub> = (0..3).map(|_| open(&r, "gone", Transport::Sse)).collect();
    assert_eq!(stats(r.addr)["subscribers"], 3);
    let mut subs = subs.into_iter();
    drop(subs.next());
    // A reset rather than a FIN: the recv completes with ECONNRESET.
    let reset = subs.next().unwrap();
    socket2::SockRef::from(&reset.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(reset);
    let t0 = Instant::now();
    wait_for("subscribers to leave", Duration::from_secs(1), || {
        stats(r.addr)["subscribers"] == 1
    });
    eprintln!("left after {:?}", t0.elapsed());
    // The stats connection itself may still be counted while it closes.
    wait_for("connections to close", Duration::from_secs(1), || {
        stats(r.addr)["connections"].as_u64().unwrap() <= 2
    });
    r.stop();
}

#[test]
fn broadcast_reaches_500_sse_subscribers_on_both_rings() {
    let r = start(Config::default());
    let mut subs: Vec<Sub> = (0..500).map(|_| open(&r, "all", Transport::Sse)).collect();
    // Only the subscribers have connected so far: each ring's count is its
    // share of them. The kernel spreads connections over the two listeners
    // by a hash of the client's port; all 500 on one would be a bug.
    let per_ring: Vec<u64> = r
        .shared
        .accepted_per_loop
        .iter()
        .map(|n| n.load(Ordering::Relaxed))
        .collect();
    assert_eq!(per_ring.iter().sum::<u64>(), 500, "{per_ring:?}");
    assert!(
        per_ring.iter().all(|&n| n > 0),
        "one ring took none: {per_ring:?}"
    );
    assert_eq!(publish_counted(r.addr, "all", "hello everyone"), (1, 500));
    for s in &mut subs {
        assert_eq!(s.wait_messages(1), vec![(1, "hello everyone".to_string())]);
    }
    assert_eq!(stats(r.addr)["delivered"], 500);
    r.stop();
}

#[test]
fn request_larger_than_one_receive_buffer() {
    let r = start(Config::default());
    let mut sub = open(&r, "big", Transport::Stream);
    let data: String = (0..40_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    assert_eq!(publish(r.addr, "big", &data), 1);
    assert_eq!(sub.wait_messages(1), vec![(1, data)]);
    r.stop();
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

#[test]
fn slow_subscriber_is_dropped() {
    let r = start(Config {
        max_queue: 64 * 1024,
        ..Config::default()
    });
    // It never reads: the socket buffers fill, then the server's queue.
    let sub = open(&r, "slow", Transport::Sse);
    let data = "x".repeat(16 * 1024);
    let mut ctl = Control::connect(r.addr);
    for _ in 0..2000 {
        let (head, _) = ctl.request(publish_request("slow", &data, None).as_bytes());
        assert_eq!(head.status, 202);
        if ctl.stats()["dropped_slow"] == 1 {
            break;
        }
    }
    let s = ctl.stats();
    assert_eq!(s["dropped_slow"], 1);
    assert_eq!(s["subscribers"], 0);
    // The server closes it: the client reads to the end and sees EOF.
    let mut stream: TcpStream = sub.stream;
    let mut sink = vec![0u8; 64 * 1024];
    let t0 = Instant::now();
    loop {
        match stream.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => assert!(t0.elapsed() < WAIT, "never closed"),
            // A reset is as good as an EOF here.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{e}"),
        }
    }
    r.stop();
}
