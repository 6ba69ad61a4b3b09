//! The two thread dispatchers on real sockets (127.0.0.1, port 0): delivery,
//! long-poll keep-alive, removal of vanished subscribers, the thread pool's
//! starvation, and thread-per-connection fan-out.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use comet::client::{
    parse_response_head, publish_request, subscribe_request, ClientEvent, Item, Subscriber,
};
use comet::request::Status;
use comet::{Config, Transport};
use dispatchers::{Kind, Options, Running};

const KINDS: [Kind; 2] = [Kind::ThreadPerConn, Kind::ThreadPool];
const WAIT: Duration = Duration::from_secs(10);

fn opts(config: Config) -> Options {
    Options {
        config,
        ..Options::default()
    }
}

fn start(kind: Kind, opts: Options) -> Running {
    dispatchers::start(kind, opts).unwrap_or_else(|e| panic!("{}: start: {e}", kind.name()))
}

fn fast_heartbeat() -> Config {
    Config {
        heartbeat: Duration::from_secs(1),
        ..Config::default()
    }
}

/// One request, one whole response (Content-Length), on a new connection.
fn request(addr: SocketAddr, req: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Status::Complete(head) = parse_response_head(&buf).expect("response head") {
            let len = head.content_length.unwrap_or(0);
            if buf.len() >= head.len + len {
                let body = String::from_utf8(buf[head.len..head.len + len].to_vec()).unwrap();
                return (head.status, body);
            }
        }
        let n = s.read(&mut chunk).expect("read response");
        assert!(n > 0, "connection closed before the response completed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn publish(addr: SocketAddr, channel: &str, data: &str) -> (u64, u64) {
    let (status, body) = request(addr, &publish_request(channel, data, None));
    assert_eq!(status, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    (
        v["id"].as_u64().unwrap(),
        v["subscribers"].as_u64().unwrap(),
    )
}

fn stats(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = request(addr, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    serde_json::from_str(&body).unwrap()
}

/// Polls `/stats` until `subscribers` is `n`.
fn wait_subscribers(addr: SocketAddr, n: u64) {
    let end = Instant::now() + WAIT;
    loop {
        let got = stats(addr)["subscribers"].as_u64().unwrap();
        if got == n {
            return;
        }
        assert!(Instant::now() < end, "subscribers {got}, want {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A subscriber's connection and its decoder.
struct Client {
    stream: TcpStream,
    sub: Subscriber,
    buf: Vec<u8>,
    events: Vec<ClientEvent>,
}

impl Client {
    fn subscribe(addr: SocketAddr, channel: &str, transport: Transport) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        let mut c = Client {
            stream,
            sub: Subscriber::new(transport),
            buf: Vec::new(),
            events: Vec::new(),
        };
        c.send(&subscribe_request(channel, transport, None));
        c
    }

    fn send(&mut self, req: &str) {
        self.stream.write_all(req.as_bytes()).expect("send");
    }

    /// Decodes what is buffered.
    fn decode(&mut self) {
        let used = self.sub.feed(&self.buf, &mut self.events).expect("decode");
        self.buf.drain(..used);
    }

    /// Reads once, waiting at most `timeout`. Returns false on timeout.
    fn read_some(&mut self, timeout: Duration) -> bool {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => panic!("server closed the connection"),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                self.decode();
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(e) => panic!("read: {e}"),
        }
    }

    /// The next event that is not a heartbeat, waiting up to [`WAIT`].
    fn next(&mut self) -> ClientEvent {
        let end = Instant::now() + WAIT;
        loop {
            self.events
                .retain(|e| !matches!(e, ClientEvent::Item(Item::Heartbeat)));
            if !self.events.is_empty() {
                return self.events.remove(0);
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no event within {WAIT:?}");
            self.read_some(left);
        }
    }

    fn expect_head(&mut self, status: u16) {
        match self.next() {
            ClientEvent::Head(h) => assert_eq!(h.status, status),
            e => panic!("expected a head, got {e:?}"),
        }
    }

    fn expect_message(&mut self) -> (u64, String) {
        match self.next() {
            ClientEvent::Item(Item::Message { id, data }) => (id, data),
            e => panic!("expected a message, got {e:?}"),
        }
    }

    /// A whole long-poll response: its messages' ids and data.
    fn poll_response(&mut self) -> Vec<(u64, String)> {
        self.expect_head(200);
        let mut got = Vec::new();
        loop {
            match self.next() {
                ClientEvent::Item(Item::Message { id, data }) => got.push((id, data)),
                ClientEvent::End => break,
                e => panic!("unexpected {e:?}"),
            }
        }
        self.sub.reset();
        self.decode();
        got
    }

    /// Whether a whole long-poll response has arrived (reads without waiting long).
    fn poll_answered(&mut self) -> bool {
        if !self.events.contains(&ClientEvent::End) {
            self.read_some(Duration::from_millis(1));
        }
        self.events.contains(&ClientEvent::End)
    }
}

#[test]
fn sse_messages_arrive_in_order() {
    for kind in KINDS {
        let running = start(kind, opts(fast_heartbeat()));
        let mut c = Client::subscribe(running.addr, "news", Transport::Sse);
        c.expect_head(200);
        for i in 1..=5 {
            let (id, n) = publish(running.addr, "news", &format!("m{i}"));
            assert_eq!((id, n), (i, 1), "{}", kind.name());
        }
        // A message of another channel does not reach it.
        publish(running.addr, "other", "not for you");
        for i in 1..=5 {
            assert_eq!(c.expect_message(), (i, format!("m{i}")), "{}", kind.name());
        }
        running.stop();
    }
}

#[test]
fn longpoll_repolls_on_one_keepalive_connection() {
    for kind in KINDS {
        let running = start(kind, opts(Config::default()));
        let addr = running.addr;
        let mut c = Client::subscribe(addr, "lp", Transport::Longpoll);
        wait_subscribers(addr, 1);
        publish(addr, "lp", "a");
        assert_eq!(c.poll_response(), vec![(1, "a".to_string())]);
        wait_subscribers(addr, 0);
        // Published between polls: the re-poll with `since` gets both at once.
        publish(addr, "lp", "b");
        publish(addr, "lp", "c");
        c.send(&subscribe_request("lp", Transport::Longpoll, Some(1)));
        assert_eq!(
            c.poll_response(),
            vec![(2, "b".to_string()), (3, "c".to_string())]
        );
        // Nothing new after 3: the poll is held until the next publish.
        c.send(&subscribe_request("lp", Transport::Longpoll, Some(3)));
        wait_subscribers(addr, 1);
        publish(addr, "lp", "d");
        assert_eq!(c.poll_response(), vec![(4, "d".to_string())]);
        let s = stats(addr);
        assert_eq!(s["dispatcher"], kind.name());
        // Three polls on the one subscriber connection, plus one connection per
        // publish and per `/stats`.
        assert_eq!(s["delivered"].as_u64(), Some(4), "{s}");
        running.stop();
    }
}

#[test]
fn vanished_subscriber_removed_at_next_heartbeat() {
    for kind in KINDS {
        let running = start(kind, opts(fast_heartbeat()));
        let addr = running.addr;
        let mut c = Client::subscribe(addr, "gone", Transport::Sse);
        c.expect_head(200);
        let mut c2 = Client::subscribe(addr, "gone", Transport::Stream);
        c2.expect_head(200);
        wait_subscribers(addr, 2);
        drop(c);
        drop(c2);
        let t = Instant::now();
        wait_subscribers(addr, 0);
        // Heartbeat 1 s: gone by the next one.
        assert!(
            t.elapsed() < Duration::from_millis(2500),
            "{}: removed after {:?}",
            kind.name(),
            t.elapsed()
        );
        running.stop();
    }
}

#[test]
fn vanished_subscribers_removed_at_once_by_the_watcher() {
    // Heartbeats and poll timeouts far away: only the hang-up watcher can
    // notice these clients going, by a FIN or by a reset.
    for kind in KINDS {
        let running = start(kind, opts(Config::default()));
        let addr = running.addr;
        let mut fin = Client::subscribe(addr, "gone", Transport::Sse);
        fin.expect_head(200);
        let mut rst = Client::subscribe(addr, "gone", Transport::Iframe);
        rst.expect_head(200);
        let lp = Client::subscribe(addr, "gone", Transport::Longpoll);
        wait_subscribers(addr, 3);
        let before = stats(addr)["connections"].as_u64().unwrap();
        let t = Instant::now();
        drop(fin);
        drop(lp);
        // SO_LINGER 0: close sends a reset.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket and a valid option of the right size.
        let r = unsafe {
            libc::setsockopt(
                rst.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        drop(rst);
        wait_subscribers(addr, 0);
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "{}: removed after {:?}",
            kind.name(),
            t.elapsed()
        );
        // Their connections (and threads) are gone too, not only the subscriptions.
        let end = Instant::now() + WAIT;
        while stats(addr)["connections"].as_u64().unwrap() > before - 3 {
            assert!(Instant::now() < end, "{}: connections stay", kind.name());
            std::thread::sleep(Duration::from_millis(10));
        }
        running.stop();
    }
}

#[test]
fn thread_pool_header_deadline_runs_from_accept() {
    // One worker, held by a slowloris connection until its deadline. Behind
    // it in the queue: another slowloris, and a whole request. When the
    // worker is free both have waited past their deadline: the attacker is
    // closed at once (not given a deadline of its own), the whole request
    // is served at once.
    let deadline = Duration::from_millis(1500);
    let running = start(
        Kind::ThreadPool,
        Options {
            config: Config {
                header_timeout: deadline,
                ..Config::default()
            },
            pool_size: 1,
            ..Options::default()
        },
    );
    let addr = running.addr;
    let t0 = Instant::now();
    let mut first = TcpStream::connect(addr).unwrap();
    first.write_all(b"GET /stats HTTP/1.1\r\nX-Slow: ").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut queued = TcpStream::connect(addr).unwrap();
    queued
        .write_all(b"GET /stats HTTP/1.1\r\nX-Slow: ")
        .unwrap();
    let mut whole = TcpStream::connect(addr).unwrap();
    whole
        .write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Read until the server closes; returns what came and when.
    let closed = |s: &mut TcpStream| {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        (String::from_utf8_lossy(&got).into_owned(), t0.elapsed())
    };
    let (a, ta) = closed(&mut first);
    let (b, tb) = closed(&mut queued);
    let (c, tc) = closed(&mut whole);
    assert!(a.starts_with("HTTP/1.1 408"), "{a}");
    assert!(b.starts_with("HTTP/1.1 408"), "{b}");
    assert!(c.starts_with("HTTP/1.1 200"), "{c}");
    assert!(ta >= deadline, "first closed early: {ta:?}");
    // From accept: all three are done within a deadline (and a margin), not
    // one deadline after another.
    let margin = deadline + Duration::from_millis(700);
    assert!(tb < margin, "queued attacker closed after {tb:?}");
    assert!(tc < margin, "queued request answered after {tc:?}");
    running.stop();
}

#[test]
fn thread_pool_starves_past_its_size() {
    const P: usize = 4;
    const EXTRA: usize = 5;
    let running = start(
        Kind::ThreadPool,
        Options {
            pool_size: P,
            publish_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..opts(Config::default())
        },
    );
    let pub_addr = running.publish_addr.expect("publish listener");
    let mut clients: Vec<Client> = (0..P + EXTRA)
        .map(|_| Client::subscribe(running.addr, "starve", Transport::Longpoll))
        .collect();
    // Exactly P requests are read and held; the others wait in the queue.
    wait_subscribers(pub_addr, P as u64);
    std::thread::sleep(Duration::from_millis(500));
    let s = stats(pub_addr);
    assert_eq!(s["subscribers"].as_u64(), Some(P as u64), "{s}");
    assert_eq!(s["settings"]["pool_size"].as_u64(), Some(P as u64), "{s}");

    // One publish (on the separate listener, so it is not starved) reaches P.
    assert_eq!(publish(pub_addr, "starve", "first"), (1, P as u64));
    let served = answered(&mut clients, P);
    std::thread::sleep(Duration::from_millis(1500));
    let waiting: Vec<usize> = (0..clients.len()).filter(|i| !served.contains(i)).collect();
    assert_eq!(waiting.len(), EXTRA);
    for &i in &waiting {
        assert!(!clients[i].poll_answered(), "waiting client {i} was served");
    }
    for &i in &served {
        assert_eq!(clients[i].poll_response(), vec![(1, "first".to_string())]);
    }

    // Close the served ones: their workers take waiting connections, which
    // are now read and held (P of the EXTRA), and the next publish reaches them.
    let mut clients: Vec<Option<Client>> = clients.into_iter().map(Some).collect();
    for &i in &served {
        clients[i] = None;
    }
    wait_subscribers(pub_addr, P as u64);
    assert_eq!(publish(pub_addr, "starve", "second"), (2, P as u64));
    let mut left: Vec<Client> = waiting
        .iter()
        .map(|&i| clients[i].take().unwrap())
        .collect();
    let second = answered(&mut left, P);
    for &i in &second {
        assert_eq!(left[i].poll_response(), vec![(2, "second".to_string())]);
    }
    let last: Vec<usize> = (0..left.len()).filter(|i| !second.contains(i)).collect();
    assert_eq!(last.len(), EXTRA - P);
    assert!(!left[last[0]].poll_answered());

    // Once those close too, the last one is served and the main listener
    // answers `/stats` again.
    let mut last_client = left.swap_remove(last[0]);
    drop(left);
    wait_subscribers(pub_addr, 1);
    assert_eq!(publish(pub_addr, "starve", "third"), (3, 1));
    assert_eq!(last_client.poll_response(), vec![(3, "third".to_string())]);
    drop(last_client);
    let s = stats(running.addr);
    assert_eq!(s["dispatcher"], "thread-pool");
    assert_eq!(s["delivered"].as_u64(), Some((P + P + 1) as u64), "{s}");
    running.stop();
}

/// Waits until exactly `n` of `clients` have a whole long-poll response;
/// returns their indexes.
fn answered(clients: &mut [Client], n: usize) -> Vec<usize> {
    let end = Instant::now() + WAIT;
    loop {
        let done: Vec<usize> = (0..clients.len())
            .filter(|&i| clients[i].poll_answered())
            .collect();
        assert!(done.len() <= n, "{} answered, want {n}", done.len());
        if done.len() == n {
            return done;
        }
        assert!(Instant::now() < end, "{} answered, want {n}", done.len());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn thread_per_connection_fans_out_to_200() {
    const N: usize = 200;
    let stack = 96 * 1024;
    let running = start(
        Kind::ThreadPerConn,
        Options {
            thread_stack: stack,
            ..opts(fast_heartbeat())
        },
    );
    let mut clients: Vec<Client> = (0..N)
        .map(|_| Client::subscribe(running.addr, "fan", Transport::Sse))
        .collect();
    for c in &mut clients {
        c.expect_head(200);
    }
    assert_eq!(publish(running.addr, "fan", "to all"), (1, N as u64));
    for c in &mut clients {
        assert_eq!(c.expect_message(), (1, "to all".to_string()));
    }
    let s = stats(running.addr);
    assert_eq!(s["dispatcher"], "thread-per-connection");
    assert_eq!(
        s["settings"]["thread_stack"].as_u64(),
        Some(stack as u64),
        "{s}"
    );
    assert_eq!(s["subscribers"].as_u64(), Some(N as u64), "{s}");
    assert_eq!(s["delivered"].as_u64(), Some(N as u64), "{s}");
    // 200 subscribers and this `/stats` connection.
    assert!(s["connections"].as_u64().unwrap() > N as u64, "{s}");
    // One thread each (other tests in this process may add theirs).
    let conn_threads = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "tpc-conn")
        .count();
    assert!(conn_threads >= N, "{conn_threads} connection threads");
    running.stop();
}

#[test]
fn thread_per_connection_answers_503_when_no_thread_can_start() {
    // A stack no mmap can give (1 TiB): every pthread_create fails.
    let running = start(
        Kind::ThreadPerConn,
        Options {
            thread_stack: 1 << 40,
            publish_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..opts(Config::default())
        },
    );
    for _ in 0..3 {
        let (status, body) = request(running.addr, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            (status, body.as_str()),
            (503, "server at its connection limit\n")
        );
    }
    // The server goes on: the publish listener (std threads) still answers.
    let s = stats(running.publish_addr.unwrap());
    assert_eq!(s["refused"].as_u64(), Some(3), "{s}");
    running.stop();
}

#[test]
fn stop_is_prompt_and_closes_the_listener() {
    for kind in KINDS {
        let running = start(kind, opts(Config::default()));
        let addr = running.addr;
        let mut c = Client::subscribe(addr, "s", Transport::Sse);
        c.expect_head(200);
        let t = Instant::now();
        running.stop();
        assert!(t.elapsed() < Duration::from_secs(1), "{}", kind.name());
        assert!(TcpStream::connect(addr).is_err(), "{}", kind.name());
    }
}

#[test]
fn bad_requests_are_answered() {
    for kind in KINDS {
        let running = start(kind, opts(Config::default()));
        let (status, _) = request(running.addr, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(status, 404, "{}", kind.name());
        let (status, _) = request(
            running.addr,
            "GET /sub/bad!name HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(status, 400, "{}", kind.name());
        running.stop();
    }
}

/// Runs in a child process of its own (it lowers the open-file limit): at the
/// limit the acceptor answers `503` instead of spinning or failing.
#[test]
fn acceptor_answers_503_at_the_descriptor_limit() {
    const CHILD: &str = "THREADS_TEST_EMFILE_CHILD";
    const NAME: &str = "acceptor_answers_503_at_the_descriptor_limit";
    /// Descriptors below this are the server's; the client's sit above it.
    const LIMIT: usize = 96;
    let Some(kind) = std::env::var_os(CHILD) else {
        // One child per dispatcher: connection threads of a stopped server
        // keep their sockets until their next wake-up.
        for kind in KINDS {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
                .env(CHILD, kind.name())
                .output()
                .expect("run child");
            assert!(
                out.status.success(),
                "{} child failed:\n{}\n{}",
                kind.name(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        return;
    };
    let kind = Kind::from_name(kind.to_str().unwrap()).unwrap();
    let running = start(
        kind,
        Options {
            // More workers than descriptors: here no connection waits for one.
            pool_size: 2 * LIMIT,
            ..opts(Config::default())
        },
    );
    // The client's sockets are made first and moved above the limit: a
    // lowered RLIMIT_NOFILE bounds new descriptor numbers only, so the
    // server's accepts alone run out, and the client never takes the
    // descriptor the acceptor frees.
    let clients: Vec<socket2::Socket> = (0..LIMIT)
        .map(|_| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            // SAFETY: duplicating a valid descriptor; the new one is owned below.
            let high = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 1000) };
            assert!(high >= 1000);
            // SAFETY: `high` is a fresh descriptor owned by nothing else.
            unsafe { socket2::Socket::from_raw_fd(high) }
        })
        .collect();
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on valid structs.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let limit = libc::rlimit {
            rlim_cur: LIMIT as libc::rlim_t,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let mut held = Vec::new();
    let mut clients = clients.into_iter();
    let refused = loop {
        let Some(c) = clients.next() else {
            panic!("{}: never refused", kind.name())
        };
        c.connect(&running.addr.into()).expect("client connect");
        let mut s: TcpStream = c.into();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(subscribe_request("full", Transport::Sse, None).as_bytes())
            .unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).expect("a response");
        if buf[..n].starts_with(b"HTTP/1.1 503") {
            break s;
        }
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", kind.name());
        held.push(s);
    };
    assert!(held.len() > 10, "{}: {} served", kind.name(), held.len());
    assert_eq!(
        running
            .shared
            .counters
            .refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "{}",
        kind.name()
    );
    assert_eq!(
        dispatchers::blocking::accept_backoffs(),
        0,
        "{}",
        kind.name()
    );
    drop((refused, held));
    // SAFETY: as above.
    unsafe {
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &old), 0);
    }
    running.stop();
}
