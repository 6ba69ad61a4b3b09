//! The two thread dispatchers on real sockets (127.0.0.1, port 0), for
//! what only they have: the heartbeat's and the hang-up watcher's removal of
//! vanished subscribers, the thread pool's deadline from accept and its
//! starvation, thread-per-connection's threads, and the acceptor at the
//! descriptor limit. What every dispatcher does is in `conformance.rs`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use comet::client::subscribe_request;
use comet::{Config, Transport};
use dispatchers::{Kind, Options, Running};
use testkit::*;

const KINDS: [Kind; 2] = [Kind::ThreadPerConn, Kind::ThreadPool];
const WAIT: Duration = Duration::from_secs(10);

fn opts(config: Config) -> Options {
    Options {
        config,
        ..Options::default()
    }
}

fn start(kind: Kind, opts: Options) -> Running {
    common::start_with(kind, opts)
}

fn fast_heartbeat() -> Config {
    Config {
        heartbeat: Duration::from_secs(1),
        ..Config::default()
    }
}

#[test]
fn vanished_subscriber_removed_at_next_heartbeat() {
    // The publish listener's connections have no hang-up watcher: only the
    // check of the socket before each heartbeat can notice these go. A
    // heartbeat comes 1 s after the last write; the next one is too late.
    for kind in KINDS {
        let running = start(
            kind,
            Options {
                publish_listen: Some("127.0.0.1:0".parse().unwrap()),
                ..opts(fast_heartbeat())
            },
        );
        let p = running.publish_addr.unwrap();
        let mut c = Sub::open(p, "gone", Transport::Sse, "", "");
        c.wait_head();
        let mut c2 = Sub::open(p, "gone", Transport::Stream, "", "");
        c2.wait_head();
        wait_subscribers(p, 2, WAIT);
        drop(c);
        drop(c2);
        let t = Instant::now();
        wait_subscribers(p, 0, WAIT);
        assert!(
            t.elapsed() < Duration::from_millis(1900),
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
        let mut fin = Sub::open(addr, "gone", Transport::Sse, "", "");
        fin.wait_head();
        let mut rst = Sub::open(addr, "gone", Transport::Iframe, "", "");
        rst.wait_head();
        let lp = Sub::open(addr, "gone", Transport::Longpoll, "", "");
        wait_subscribers(addr, 3, WAIT);
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
        wait_subscribers(addr, 0, WAIT);
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
    let mut clients: Vec<Sub> = (0..P + EXTRA)
        .map(|_| Sub::open(running.addr, "starve", Transport::Longpoll, "", ""))
        .collect();
    // Exactly P requests are read and held; the others wait in the queue.
    wait_subscribers(pub_addr, P as u64, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    let s = stats(pub_addr);
    assert_eq!(s["subscribers"].as_u64(), Some(P as u64), "{s}");
    assert_eq!(s["settings"]["pool_size"].as_u64(), Some(P as u64), "{s}");

    // One publish (on the separate listener, so it is not starved) reaches P.
    assert_eq!(publish_counted(pub_addr, "starve", "first"), (1, P as u64));
    let served = answered(&mut clients, P);
    std::thread::sleep(Duration::from_millis(1500));
    let waiting: Vec<usize> = (0..clients.len()).filter(|i| !served.contains(i)).collect();
    assert_eq!(waiting.len(), EXTRA);
    for &i in &waiting {
        assert!(!clients[i].is_answered(), "waiting client {i} was served");
    }
    for &i in &served {
        assert_eq!(clients[i].poll_response(), vec![(1, "first".to_string())]);
    }

    // Close the served ones: their workers take waiting connections, which
    // are now read and held (P of the EXTRA), and the next publish reaches them.
    let mut clients: Vec<Option<Sub>> = clients.into_iter().map(Some).collect();
    for &i in &served {
        clients[i] = None;
    }
    wait_subscribers(pub_addr, P as u64, WAIT);
    assert_eq!(publish_counted(pub_addr, "starve", "second"), (2, P as u64));
    let mut left: Vec<Sub> = waiting
        .iter()
        .map(|&i| clients[i].take().unwrap())
        .collect();
    let second = answered(&mut left, P);
    for &i in &second {
        assert_eq!(left[i].poll_response(), vec![(2, "second".to_string())]);
    }
    let last: Vec<usize> = (0..left.len()).filter(|i| !second.contains(i)).collect();
    assert_eq!(last.len(), EXTRA - P);
    assert!(!left[last[0]].is_answered());

    // Once those close too, the last one is served and the main listener
    // answers `/stats` again.
    let mut last_client = left.swap_remove(last[0]);
    drop(left);
    wait_subscribers(pub_addr, 1, WAIT);
    assert_eq!(publish_counted(pub_addr, "starve", "third"), (3, 1));
    assert_eq!(last_client.poll_response(), vec![(3, "third".to_string())]);
    drop(last_client);
    let s = stats(running.addr);
    assert_eq!(s["dispatcher"], "thread-pool");
    assert_eq!(s["delivered"].as_u64(), Some((P + P + 1) as u64), "{s}");
    running.stop();
}

/// Waits until exactly `n` of `clients` have a whole long-poll response;
/// returns their indexes.
fn answered(clients: &mut [Sub], n: usize) -> Vec<usize> {
    let end = Instant::now() + WAIT;
    loop {
        let done: Vec<usize> = (0..clients.len())
            .filter(|&i| clients[i].is_answered())
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
    let mut clients: Vec<Sub> = (0..N)
        .map(|_| Sub::open(running.addr, "fan", Transport::Sse, "", ""))
        .collect();
    for c in &mut clients {
        assert_eq!(c.wait_head().status, 200);
    }
    assert_eq!(
        publish_counted(running.addr, "fan", "to all"),
        (1, N as u64)
    );
    for c in &mut clients {
        assert_eq!(c.wait_messages(1), vec![(1, "to all".to_string())]);
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
        let (head, body) = request(running.addr, b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            (head.status, String::from_utf8_lossy(&body).as_ref()),
            (503, "server at its connection limit\n")
        );
    }
    // The server goes on: the publish listener (std threads) still answers.
    let s = stats(running.publish_addr.unwrap());
    assert_eq!(s["refused"].as_u64(), Some(3), "{s}");
    running.stop();
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

#[test]
fn green_reports_the_stack_it_runs_on_in_stats() {
    // Requested, what the runtime makes of it: whole pages, at least its floor.
    for (requested, effective) in [(40_000u64, 40_960u64), (4096, 32 * 1024)] {
        let running = start(
            Kind::Green,
            Options {
                thread_stack: requested as usize,
                ..opts(Config::default())
            },
        );
        let mut sub = Sub::open(running.addr, "stack", Transport::Sse, "", "");
        assert_eq!(sub.wait_head().status, 200);
        assert_eq!(publish_counted(running.addr, "stack", "on it"), (1, 1));
        assert_eq!(sub.wait_messages(1), vec![(1, "on it".to_string())]);
        let s = stats(running.addr);
        assert_eq!(s["dispatcher"], "green");
        assert_eq!(
            s["settings"]["thread_stack"].as_u64(),
            Some(effective),
            "{s}"
        );
        assert_eq!(
            s["settings"]["thread_stack_requested"].as_u64(),
            Some(requested),
            "{s}"
        );
        running.stop();
    }
}
