//! The `uring` dispatcher on real sockets (127.0.0.1, port 0).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use comet::client::{
    parse_response_head, publish_request, subscribe_request, ClientEvent, Item, ResponseHead,
    Subscriber,
};
use comet::request::Status;
use comet::{Config, Transport};
use dispatchers::{Kind, Options, Running};

const WAIT: Duration = Duration::from_secs(5);

fn start(config: Config) -> Running {
    dispatchers::start(
        Kind::Uring,
        Options {
            threads: 2,
            config,
            ..Default::default()
        },
    )
    .expect("uring starts")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads whole `Content-Length` responses off one connection, keeping what
/// arrives past one for the next.
struct Responses {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Responses {
    fn new(stream: TcpStream) -> Responses {
        Responses {
            stream,
            buf: Vec::new(),
        }
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed early");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    fn next(&mut self) -> (ResponseHead, Vec<u8>) {
        loop {
            if let Status::Complete(head) = parse_response_head(&self.buf).expect("response head") {
                let len = if head.status == 204 {
                    0
                } else {
                    head.content_length.expect("content-length")
                };
                while self.buf.len() < head.len + len {
                    self.fill();
                }
                let body = self.buf[head.len..head.len + len].to_vec();
                self.buf.drain(..head.len + len);
                return (head, body);
            }
            self.fill();
        }
    }
}

fn request(addr: SocketAddr, raw: &str) -> (ResponseHead, Vec<u8>) {
    let mut s = connect(addr);
    s.write_all(raw.as_bytes()).unwrap();
    Responses::new(s).next()
}

fn publish(addr: SocketAddr, channel: &str, data: &str) -> u64 {
    let (head, body) = request(addr, &publish_request(channel, data, None));
    assert_eq!(head.status, 202, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["id"].as_u64().unwrap()
}

fn stats(addr: SocketAddr) -> serde_json::Value {
    let (head, body) = request(addr, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(head.status, 200);
    serde_json::from_slice(&body).unwrap()
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A streaming subscriber and its decoder.
struct Sub {
    stream: TcpStream,
    dec: Subscriber,
    pending: Vec<ClientEvent>,
}

impl Sub {
    fn open(addr: SocketAddr, channel: &str, transport: Transport) -> Sub {
        let mut stream = connect(addr);
        stream
            .write_all(subscribe_request(channel, transport, None).as_bytes())
            .unwrap();
        let mut sub = Sub {
            stream,
            dec: Subscriber::new(transport),
            pending: Vec::new(),
        };
        match sub.event() {
            ClientEvent::Head(h) => assert_eq!(h.status, 200),
            e => panic!("expected a head, got {e:?}"),
        }
        sub
    }

    fn event(&mut self) -> ClientEvent {
        while self.pending.is_empty() {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).expect("subscriber read");
            assert!(n > 0, "subscriber connection closed");
            let mut out = Vec::new();
            self.dec.feed(&chunk[..n], &mut out).expect("decode");
            self.pending.extend(out);
        }
        self.pending.remove(0)
    }

    /// The next message, skipping heartbeats.
    fn message(&mut self) -> (u64, String) {
        loop {
            match self.event() {
                ClientEvent::Item(Item::Message { id, data }) => return (id, data),
                ClientEvent::Item(Item::Heartbeat) => {}
                e => panic!("expected a message, got {e:?}"),
            }
        }
    }
}

#[test]
fn sse_subscriber_gets_messages_in_order() {
    let r = start(Config::default());
    let mut sub = Sub::open(r.addr, "news", Transport::Sse);
    for i in 1..=20 {
        assert_eq!(publish(r.addr, "news", &format!("m{i}")), i);
    }
    for i in 1..=20 {
        assert_eq!(sub.message(), (i, format!("m{i}")));
    }
    let s = stats(r.addr);
    assert_eq!(s["dispatcher"], "uring");
    assert_eq!(s["settings"]["threads"], 2);
    assert_eq!(s["delivered"], 20);
    r.stop();
}

#[test]
fn longpoll_repolls_on_the_same_connection() {
    let r = start(Config::default());
    let mut polls = Responses::new(connect(r.addr));
    // Waits for the next message.
    let req = subscribe_request("lp", Transport::Longpoll, None);
    polls.stream.write_all(req.as_bytes()).unwrap();
    wait_for("the poll to subscribe", WAIT, || {
        stats(r.addr)["subscribers"] == 1
    });
    assert_eq!(publish(r.addr, "lp", "one"), 1);
    let (head, body) = polls.next();
    assert_eq!(head.status, 200);
    assert!(!head.close);
    assert_eq!(
        comet::client::parse_longpoll(&body).unwrap(),
        vec![Item::Message {
            id: 1,
            data: "one".into()
        }]
    );
    // A message published between polls is answered at once from the backlog.
    assert_eq!(publish(r.addr, "lp", "two"), 2);
    let req = subscribe_request("lp", Transport::Longpoll, Some(1));
    polls.stream.write_all(req.as_bytes()).unwrap();
    let (head, body) = polls.next();
    assert_eq!(head.status, 200);
    assert_eq!(
        comet::client::parse_longpoll(&body).unwrap(),
        vec![Item::Message {
            id: 2,
            data: "two".into()
        }]
    );
    // And a third poll on the same connection waits again.
    let req = subscribe_request("lp", Transport::Longpoll, Some(2));
    polls.stream.write_all(req.as_bytes()).unwrap();
    wait_for("the third poll", WAIT, || stats(r.addr)["subscribers"] == 1);
    assert_eq!(publish(r.addr, "lp", "three"), 3);
    let (_, body) = polls.next();
    assert_eq!(
        comet::client::parse_longpoll(&body).unwrap(),
        vec![Item::Message {
            id: 3,
            data: "three".into()
        }]
    );
    assert!(stats(r.addr)["accepted"].as_u64().unwrap() >= 2);
    r.stop();
}

#[test]
fn disconnected_subscriber_leaves_within_a_second() {
    let r = start(Config::default());
    let subs: Vec<Sub> = (0..3)
        .map(|_| Sub::open(r.addr, "gone", Transport::Sse))
        .collect();
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
fn broadcast_reaches_500_sse_subscribers() {
    let r = start(Config::default());
    let mut subs: Vec<Sub> = (0..500)
        .map(|_| Sub::open(r.addr, "all", Transport::Sse))
        .collect();
    assert_eq!(stats(r.addr)["subscribers"], 500);
    let (head, body) = request(r.addr, &publish_request("all", "hello everyone", None));
    assert_eq!(head.status, 202);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["subscribers"], 500);
    for s in &mut subs {
        assert_eq!(s.message(), (1, "hello everyone".to_string()));
    }
    // Both rings took part: the kernel spreads connections over the listeners.
    assert_eq!(stats(r.addr)["delivered"], 500);
    r.stop();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let r = start(Config::default());
    let mut c = Responses::new(connect(r.addr));
    let raw = format!(
        "{}{}GET /stats HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
        publish_request("p", "first", None),
        publish_request("p", "second", None)
    );
    c.stream.write_all(raw.as_bytes()).unwrap();
    let (h1, b1) = c.next();
    let (h2, b2) = c.next();
    let (h3, b3) = c.next();
    let (h4, _) = c.next();
    assert_eq!(
        (h1.status, h2.status, h3.status, h4.status),
        (202, 202, 200, 404)
    );
    let id = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap()["id"].clone();
    assert_eq!((id(&b1), id(&b2)), (1.into(), 2.into()));
    let s: serde_json::Value = serde_json::from_slice(&b3).unwrap();
    assert_eq!(s["published"], 2);
    r.stop();
}

#[test]
fn request_larger_than_one_receive_buffer() {
    let r = start(Config::default());
    let mut sub = Sub::open(r.addr, "big", Transport::Stream);
    let data: String = (0..40_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    assert_eq!(publish(r.addr, "big", &data), 1);
    assert_eq!(sub.message(), (1, data));
    r.stop();
}

#[test]
fn heartbeats_and_poll_timeouts_fire() {
    let r = start(Config {
        heartbeat: Duration::from_millis(150),
        ..Config::default()
    });
    let mut sub = Sub::open(r.addr, "hb", Transport::Sse);
    let t0 = Instant::now();
    let mut beats = 0;
    while beats < 3 {
        match sub.event() {
            ClientEvent::Item(Item::Heartbeat) => beats += 1,
            e => panic!("expected a heartbeat, got {e:?}"),
        }
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let mut c = Responses::new(connect(r.addr));
    let t0 = Instant::now();
    c.stream
        .write_all(b"GET /sub/lp?transport=longpoll&timeout=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (head, _) = c.next();
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
    let sub = Sub::open(r.addr, "slow", Transport::Sse);
    let data = "x".repeat(16 * 1024);
    let mut publisher = Responses::new(connect(r.addr));
    for _ in 0..2000 {
        publisher
            .stream
            .write_all(publish_request("slow", &data, None).as_bytes())
            .unwrap();
        assert_eq!(publisher.next().0.status, 202);
        if stats(r.addr)["dropped_slow"] == 1 {
            break;
        }
    }
    let s = stats(r.addr);
    assert_eq!(s["dropped_slow"], 1);
    assert_eq!(s["subscribers"], 0);
    // The server closes it: the client reads to the end and sees EOF.
    let mut stream = sub.stream;
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

#[test]
fn stop_is_prompt_with_connections_open() {
    let r = start(Config::default());
    let addr = r.addr;
    let mut subs: Vec<Sub> = (0..100)
        .map(|_| Sub::open(addr, "stay", Transport::Sse))
        .collect();
    // And some that never sent a byte.
    let idle: Vec<TcpStream> = (0..50).map(|_| connect(addr)).collect();
    let t0 = Instant::now();
    r.stop();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    for s in subs.iter_mut() {
        let mut b = [0u8; 64];
        let n = s.stream.read(&mut b).unwrap_or(0);
        assert_eq!(n, 0, "server side still open");
    }
    drop(idle);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}
