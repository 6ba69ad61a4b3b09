//! The broker link against a real redis-server (started through
//! scripts/broker/redis.sh, which installs it when missing): shared ids
//! across nodes, the follow invariant under concurrent publishing, routing,
//! the backlog's cap and age, replay, and broker faults.

#[path = "common/redis.rs"]
mod redis_server;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use dispatchers::broker::{Cause, Config, Error, Link, Message, Replay, Sink, Structure};
use redis_server::Redis;

#[derive(Debug, Clone)]
enum Event {
    Live(Message),
    Followed(String, Cause, Replay),
    State(bool),
}

/// A sink that records everything, in order.
#[derive(Default)]
struct Record {
    events: Mutex<Vec<Event>>,
    changed: Condvar,
}

impl Sink for Record {
    fn message(&self, message: Message) {
        self.push(Event::Live(message));
    }
    fn followed(&self, channel: &str, cause: Cause, replay: Replay) {
        self.push(Event::Followed(channel.to_string(), cause, replay));
    }
    fn link_state(&self, up: bool) {
        self.push(Event::State(up));
    }
}

/// One follow of a channel as the sink saw it: its replay, then live ids.
#[derive(Debug)]
struct Run {
    cause: Cause,
    missed: u64,
    ids: Vec<u64>,
    live: usize,
}

impl Record {
    fn push(&self, e: Event) {
        self.events.lock().unwrap().push(e);
        self.changed.notify_all();
    }

    /// Waits (at most `secs`) until `check` holds on the events so far.
    fn wait(&self, secs: u64, what: &str, check: impl Fn(&[Event]) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        let mut events = self.events.lock().unwrap();
        while !check(&events) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}: {:?}",
                tail(&events)
            );
            events = self.changed.wait_timeout(events, left).unwrap().0;
        }
    }

    fn wait_follows(&self, channel: &str, n: usize) {
        self.wait(10, &format!("{n} follows of {channel}"), |e| {
            follows(e, channel) >= n
        });
    }

    /// Waits until `channel`'s latest run has handed on id `id`.
    fn wait_id(&self, channel: &str, id: u64) {
        self.wait(20, &format!("id {id} on {channel}"), |e| {
            runs(e, channel)
                .last()
                .is_some_and(|r| r.ids.last() == Some(&id))
        });
    }

    fn wait_state(&self, up: bool, n: usize) {
        self.wait(20, &format!("{n} link_state({up})"), |e| {
            e.iter()
                .filter(|e| matches!(e, Event::State(s) if *s == up))
                .count()
                >= n
        });
    }

    fn runs(&self, channel: &str) -> Vec<Run> {
        runs(&self.events.lock().unwrap(), channel)
    }
}

fn tail(events: &[Event]) -> Vec<String> {
    events[events.len().saturating_sub(6)..]
        .iter()
        .map(|e| match e {
            Event::Live(m) => format!("live {}#{}", m.channel, m.id),
            Event::Followed(c, cause, r) => format!(
                "{cause:?} {c} {:?} missed {}",
                r.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
                r.missed
            ),
            Event::State(up) => format!("up {up}"),
        })
        .collect()
}

fn follows(events: &[Event], channel: &str) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Followed(c, ..) if c == channel))
        .count()
}

fn runs(events: &[Event], channel: &str) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for e in events {
        match e {
            Event::Followed(c, cause, r) if c == channel => out.push(Run {
                cause: *cause,
                missed: r.missed,
                ids: r.messages.iter().map(|m| m.id).collect(),
                live: 0,
            }),
            Event::Live(m) if &*m.channel == channel => {
                let run = out.last_mut().expect("a live message before any follow");
                run.ids.push(m.id);
                run.live += 1;
            }
            _ => {}
        }
    }
    out
}

/// Consecutive ids, each once.
fn is_contiguous(ids: &[u64]) -> bool {
    ids.windows(2).all(|w| w[1] == w[0] + 1)
}

fn config(redis: &Redis, backlog: usize) -> Config {
    let mut c = Config::new(&redis.url);
    c.backlog = backlog;
    c.reconnect_min = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(200);
    c
}

fn node(config: &Config) -> (Link, Arc<Record>) {
    let record = Arc::new(Record::default());
    let link = Link::connect(config.clone(), record.clone()).expect("connect to the test broker");
    (link, record)
}

fn publish(link: &Link, channel: &str, data: &str) -> Result<u64, Error> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    link.publish(channel, data, move |r| {
        let _ = tx.send(r);
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("publish answered")
}

fn replay(link: &Link, channel: &str, since: u64) -> Replay {
    let (tx, rx) = crossbeam_channel::bounded(1);
    link.replay(channel, since, move |r| {
        let _ = tx.send(r);
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("replay answered")
        .expect("replay succeeded")
}

fn ids(r: &Replay) -> Vec<u64> {
    r.messages.iter().map(|m| m.id).collect()
}

#[test]
fn ids_are_one_sequence_across_nodes() {
    let redis = Redis::start();
    let c = config(&redis, 64);
    let (a, _) = node(&c);
    let (b, _) = node(&c);
    for i in 1..=10u64 {
        let link = if i % 2 == 1 { &a } else { &b };
        assert_eq!(publish(link, "room", &format!("m{i}")), Ok(i));
    }
    assert_eq!(publish(&b, "other", "x"), Ok(1));
    // Both nodes at once, nobody waiting: still one sequence.
    let (tx, rx) = crossbeam_channel::unbounded();
    for _ in 0..200 {
        for link in [&a, &b] {
            let tx = tx.clone();
            link.publish("room", "y", move |r| tx.send(r).unwrap());
        }
    }
    let mut got: Vec<u64> = (0..400)
        .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (11..=410).collect::<Vec<_>>());
    assert_eq!(a.stats().published + b.stats().published, 411);
    // The data is kept as published: the backlog reads it back.
    let r = replay(&a, "room", 0);
    assert_eq!(&*r.messages[0].data, "y");
    let r = replay(&a, "other", 0);
    assert_eq!((ids(&r), &*r.messages[0].data), (vec![1], "x"));
    // The broker forgets the scripts: the next publish is refused with
    // NOSCRIPT, reloaded and sent again, and runs once.
    let mut admin = redis.conn();
    redis::cmd("SCRIPT").arg("FLUSH").exec(&mut admin).unwrap();
    assert_eq!(publish(&a, "room", "again"), Ok(411));
    assert_eq!(publish(&b, "room", "and again"), Ok(412));
    let r = replay(&b, "room", 410);
    assert_eq!(ids(&r), vec![411, 412]);
}

/// `# Follow without a gap`: a publisher hammers a channel while another
/// node follows and unfollows it again and again; every follow hands on a
/// contiguous run of ids, each once.
#[test]
fn follow_without_a_gap_under_concurrent_publishing() {
    let redis = Redis::start();
    let c = config(&redis, 16);
    let (a, _) = node(&c);
    let (b, record) = node(&c);
    let a = Arc::new(a);
    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (a, stop, in_flight, acked) =
            (a.clone(), stop.clone(), in_flight.clone(), acked.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if in_flight.load(Ordering::Relaxed) >= 32 {
                    std::thread::yield_now();
                    continue;
                }
                in_flight.fetch_add(1, Ordering::Relaxed);
                let (in_flight, acked) = (in_flight.clone(), acked.clone());
                a.publish("hot", "payload: with colons\nand a newline", move |r| {
                    r.expect("publish");
                    acked.fetch_add(1, Ordering::Relaxed);
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
        })
    };
    let rounds = 40;
    for round in 0..rounds {
        b.follow("hot");
        record.wait_follows("hot", round + 1);
        std::thread::sleep(Duration::from_millis((round % 7) as u64 * 3));
        if round + 1 < rounds {
            b.unfollow("hot");
            std::thread::sleep(Duration::from_millis((round % 3) as u64));
        }
    }
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    assert!(Redis::wait_for(10, || in_flight.load(Ordering::Relaxed) == 0));
    // The last follow stays: it must reach the last id published.
    let last = acked.load(Ordering::Relaxed);
    record.wait_id("hot", last);
    let runs = record.runs("hot");
    let summary: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{:?} {:?}..{:?} n={} live={} missed={}",
                r.cause,
                r.ids.first(),
                r.ids.last(),
                r.ids.len(),
                r.live,
                r.missed
            )
        })
        .collect();
    eprintln!("{}", summary.join("\n"));
    assert_eq!(runs.len(), rounds);
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run.cause, Cause::Follow);
        assert!(
            is_contiguous(&run.ids),
            "follow {i} has a gap or a duplicate: {:?}",
            run.ids
        );
        if let Some(first) = run.ids.first() {
            assert_eq!(
                *first,
                run.missed + 1,
                "follow {i}: missed counts what precedes"
            );
        }
    }
    assert!(
        runs.iter().map(|r| r.live).sum::<usize>() > 0,
        "no live message at all"
    );
    assert!(last > 1000, "the publisher published only {last}");
}

#[test]
fn a_node_receives_only_what_it_follows() {
    let redis = Redis::start();
    let c = config(&redis, 64);
    let (a, ra) = node(&c);
    let (b, rb) = node(&c);
    let mut admin = redis.conn();
    let numsub = |admin: &mut redis::Connection, channel: &str| -> i64 {
        let v: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(format!("cometbench:msg:{channel}"))
            .query(admin)
            .unwrap();
        v[0].1
    };
    b.follow("x");
    rb.wait_follows("x", 1);
    for i in 0..30 {
        publish(&a, "y", &format!("y{i}")).unwrap();
        publish(&a, "x", &format!("x{i}")).unwrap();
    }
    // One connection delivers in publish order: once x's last is in, any y
    // would have been too.
    rb.wait_id("x", 30);
    assert_eq!(b.stats().received, 30);
    assert_eq!(a.stats().received, 0);
    assert_eq!(rb.runs("y").len(), 0);
    assert_eq!(b.stats().following, 1);

    a.follow("y");
    ra.wait_follows("y", 1);
    assert_eq!(ids_of(&ra.runs("y")[0]), (1..=30).collect::<Vec<_>>());
    for i in 0..5 {
        publish(&b, "y", &format!("late{i}")).unwrap();
    }
    ra.wait_id("y", 35);
    assert_eq!(a.stats().received, 5);
    assert_eq!((numsub(&mut admin, "y"), numsub(&mut admin, "x")), (1, 1));

    // Unfollowed at the broker: nothing more of x reaches b.
    b.unfollow("x");
    assert!(Redis::wait_for(10, || numsub(&mut admin, "x") == 0));
    b.follow("z");
    rb.wait_follows("z", 1);
    for i in 0..5 {
        publish(&a, "x", &format!("gone{i}")).unwrap();
    }
    let odd = "after: 1:2:3 ü\n\r\n日本 \u{0}";
    publish(&a, "z", odd).unwrap();
    rb.wait_id("z", 1);
    let events = rb.events.lock().unwrap().clone();
    let data = events.iter().rev().find_map(|e| match e {
        Event::Live(m) if &*m.channel == "z" => Some(m.data.clone()),
        _ => None,
    });
    assert_eq!(data.as_deref(), Some(odd), "data changed on the way");
    assert_eq!(b.stats().received, 31, "x after the unfollow reached b");
    assert_eq!(rb.runs("x")[0].ids.last(), Some(&30));
}

fn ids_of(run: &Run) -> Vec<u64> {
    run.ids.clone()
}

/// The cap, the age limit (by the publish script and by key expiry), and
/// replay with its missed count, for one backlog structure.
fn backlog_cap_and_age(structure: Structure) {
    let redis = Redis::start();
    let mut c = config(&redis, 5);
    c.structure = structure;
    c.message_ttl = Duration::from_secs(2);
    let (a, _) = node(&c);
    let (b, rb) = node(&c);
    let mut admin = redis.conn();
    for i in 1..=12u64 {
        assert_eq!(publish(&a, "c", &i.to_string()), Ok(i));
    }
    let r = replay(&a, "c", 0);
    assert_eq!(
        (ids(&r), r.missed, r.last_id, r.since),
        ((8..=12).collect(), 7, 12, 0)
    );
    assert_eq!(&*r.messages[0].data, "8");
    let r = replay(&a, "c", 9);
    assert_eq!((ids(&r), r.missed), (vec![10, 11, 12], 0));
    let r = replay(&a, "c", 12);
    assert_eq!((ids(&r), r.missed), (vec![], 0));
    // From an earlier life: read as 0.
    let r = replay(&a, "c", 99);
    assert_eq!((ids(&r), r.missed, r.since), ((8..=12).collect(), 7, 0));
    let r = replay(&a, "never", 3);
    assert_eq!((ids(&r), r.missed, r.last_id), (vec![], 0, 0));
    // A first follow is handed the shared backlog with its missed count.
    b.follow("c");
    rb.wait_follows("c", 1);
    let run = &rb.runs("c")[0];
    assert_eq!(
        (run.cause, run.ids.clone(), run.missed),
        (Cause::Follow, (8..=12).collect(), 7)
    );

    let key = "cometbench:backlog:c";
    let kind: String = redis::cmd("TYPE").arg(key).query(&mut admin).unwrap();
    assert_eq!(kind, structure.name());
    let len_cmd = if structure == Structure::List {
        "LLEN"
    } else {
        "XLEN"
    };
    let len = |admin: &mut redis::Connection, key: &str| -> i64 {
        redis::cmd(len_cmd).arg(key).query(admin).unwrap()
    };
    assert_eq!(len(&mut admin, key), 5);
    let pttl: i64 = redis::cmd("PTTL").arg(key).query(&mut admin).unwrap();
    assert!(pttl > 0 && pttl <= 2000, "backlog PTTL {pttl}");

    // Age, by the publish script: 1-3 are over 2 s old when 7 comes.
    for i in 1..=3 {
        publish(&a, "t", &i.to_string()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1200));
    for i in 4..=6 {
        publish(&a, "t", &i.to_string()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1200));
    publish(&a, "t", "7").unwrap();
    assert_eq!(len(&mut admin, "cometbench:backlog:t"), 4);
    let r = replay(&a, "t", 0);
    assert_eq!((ids(&r), r.missed), ((4..=7).collect(), 3));
    // Age, by expiry: a quiet channel's backlog goes whole; its ids stay.
    std::thread::sleep(Duration::from_millis(2100));
    let r = replay(&a, "t", 0);
    assert_eq!((ids(&r), r.missed, r.last_id), (vec![], 7, 7));
    let exists: i64 = redis::cmd("EXISTS")
        .arg("cometbench:backlog:t")
        .query(&mut admin)
        .unwrap();
    assert_eq!(exists, 0);
    assert_eq!(publish(&a, "t", "8"), Ok(8));
    let r = replay(&a, "t", 5);
    assert_eq!((ids(&r), r.missed), (vec![8], 2));
}

#[test]
fn list_backlog_cap_and_age() {
    backlog_cap_and_age(Structure::List);
}

#[test]
fn stream_backlog_cap_and_age() {
    backlog_cap_and_age(Structure::Stream);
}

#[test]
fn a_broker_that_cannot_be_reached_fails_at_once() {
    let port = redis_server::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let err = Link::connect(Config::new(&url), Arc::new(Record::default()))
        .err()
        .expect("nothing listens there");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
    for bad in [
        "http://127.0.0.1:1",
        "redis+unix:///tmp/none.sock",
        "not a url",
    ] {
        let err = Link::connect(Config::new(bad), Arc::new(Record::default()))
            .err()
            .expect("refused");
        assert!(matches!(err, Error::Url { .. }), "{bad}: {err:?}");
        assert!(err.to_string().contains(bad), "{err}");
    }
}

/// What a publisher thread got back, in the order answers came.
#[derive(Default)]
struct Answers(Mutex<Vec<Result<u64, Error>>>);

/// A broker SIGKILLed mid-stream and started again on the same port: the
/// owner is told, publishes fail meanwhile, the follower ends up with every
/// id exactly once (with data kept) or a reported reset (without).
fn broker_restart(persistent: bool) {
    let dir = std::env::temp_dir().join(format!(
        "cometbench-broker-test-{}-{persistent}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut redis = if persistent {
        Redis::start_persistent(&dir)
    } else {
        Redis::start()
    };
    let c = config(&redis, 10_000);
    let (a, ra) = node(&c);
    let (b, rb) = node(&c);
    b.follow("c");
    rb.wait_follows("c", 1);
    let a = Arc::new(a);
    let answers = Arc::new(Answers::default());
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (a, answers, stop) = (a.clone(), answers.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let answers = answers.clone();
                n += 1;
                a.publish("c", &format!("m{n}"), move |r| {
                    answers.0.lock().unwrap().push(r)
                });
                std::thread::sleep(Duration::from_millis(1));
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    redis.kill();
    rb.wait_state(false, 1);
    ra.wait_state(false, 1);
    assert!(!b.is_up());
    let down = Err(Error::Down);
    assert!(Redis::wait_for(10, || answers
        .0
        .lock()
        .unwrap()
        .contains(&down)));
    redis.restart();
    rb.wait_state(true, 1);
    ra.wait_state(true, 1);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let sent = publisher.join().unwrap();
    assert!(Redis::wait_for(10, || answers.0.lock().unwrap().len() == sent));
    let answers = std::mem::take(&mut *answers.0.lock().unwrap());
    let acked: Vec<u64> = answers.iter().filter_map(|r| r.clone().ok()).collect();
    let failed = answers.iter().filter(|r| r.is_err()).count();
    assert!(
        failed > 0 && acked.len() > 100,
        "acked {} failed {failed}",
        acked.len()
    );
    assert!(
        answers
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(Error::Down) | Err(Error::Lost))),
        "a publish failed otherwise"
    );
    let last = *acked.last().unwrap();
    rb.wait_id("c", last);
    let runs = rb.runs("c");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0].cause, Cause::Follow);
    assert!(
        is_contiguous(&runs[0].ids),
        "before the restart: {:?}",
        runs[0].ids
    );
    assert!(
        is_contiguous(&runs[1].ids),
        "after the restart: {:?}",
        runs[1].ids
    );
    assert_eq!(runs[1].missed, 0);
    if persistent {
        // One life: every acked id once, across the two runs, in order.
        assert_eq!(runs[1].cause, Cause::Reconnect);
        let all: Vec<u64> = runs.iter().flat_map(|r| r.ids.clone()).collect();
        assert!(is_contiguous(&all), "a gap or duplicate across the restart");
        assert_eq!(all.first(), Some(&1));
        assert!(acked.iter().all(|id| all.contains(id)));
        assert_eq!(b.stats().resets, 0);
    } else {
        // A new life: ids start at 1 again; it is reported, and every id
        // acked in it arrives once.
        assert_eq!(runs[1].cause, Cause::Reset);
        let restart = acked
            .windows(2)
            .position(|w| w[1] < w[0])
            .expect("ids restarted")
            + 1;
        let new_life = &acked[restart..];
        assert_eq!(runs[1].ids.first(), Some(&1));
        assert!(new_life.iter().all(|id| runs[1].ids.contains(id)));
        assert_eq!(runs[0].ids.first(), Some(&1));
        assert_eq!(b.stats().resets, 1);
    }
    let s = b.stats();
    assert_eq!((s.downs, s.reconnects, s.up), (1, 1, true));
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The follower's connection is cut while the broker stays up and the
/// publisher goes on: the follower reconnects, and the messages that left
/// its small backlog meanwhile are reported as missed, exactly.
#[test]
fn a_cut_connection_resumes_with_a_missed_count() {
    let redis = Redis::start();
    let mut c = config(&redis, 16);
    let (a, _) = node(&c);
    // A long first wait, so that many more than 16 messages are published
    // while the follower is away.
    c.reconnect_min = Duration::from_millis(300);
    let (b, rb) = node(&c);
    b.follow("c");
    rb.wait_follows("c", 1);
    let a = Arc::new(a);
    let stop = Arc::new(AtomicBool::new(false));
    let last = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (a, stop, last) = (a.clone(), stop.clone(), last.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let id = publish(&a, "c", "m").expect("the broker stays up");
                last.store(id, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let mut admin = redis.conn();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut admin)
        .unwrap();
    assert_eq!(killed, 1, "the follower's pub/sub connection");
    rb.wait_state(false, 1);
    rb.wait_state(true, 1);
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    rb.wait_id("c", last.load(Ordering::Relaxed));
    let runs = rb.runs("c");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[1].cause, Cause::Reconnect);
    assert!(is_contiguous(&runs[0].ids) && is_contiguous(&runs[1].ids));
    let before = *runs[0].ids.last().unwrap();
    let after = runs[1].ids[0];
    assert!(runs[1].missed > 0, "nothing left the backlog: {runs:?}");
    assert_eq!(
        after - before - 1,
        runs[1].missed,
        "the hole is the missed count"
    );
    let s = b.stats();
    assert_eq!((s.missed, s.downs, s.reconnects), (runs[1].missed, 1, 1));
}

#[test]
fn broker_restart_with_its_data_loses_nothing() {
    broker_restart(true);
}

#[test]
fn broker_restart_without_its_data_is_reported() {
    broker_restart(false);
}

/// scripts/broker/redis.sh: loopback only, protected mode, no persistence,
/// and on SIGTERM both Redis and its private directory are gone.
#[test]
fn the_broker_script_keeps_to_itself() {
    let redis = Redis::start();
    let mut admin = redis.conn();
    let get = |admin: &mut redis::Connection, key: &str| -> String {
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(key)
            .query(admin)
            .unwrap();
        v[1].clone()
    };
    assert_eq!(get(&mut admin, "bind"), "127.0.0.1");
    assert_eq!(get(&mut admin, "protected-mode"), "yes");
    assert_eq!(get(&mut admin, "save"), "");
    assert_eq!(get(&mut admin, "appendonly"), "no");
    // Redis works in its `dir`: the script's private directory.
    let dir = std::fs::read_link(format!("/proc/{}/cwd", redis.pid)).unwrap();
    assert!(dir.join("redis.conf").is_file(), "{}", dir.display());
    let pid = redis.pid;
    drop((admin, redis));
    assert!(!dir.exists(), "{} left behind", dir.display());
    // SAFETY: kill(2) with signal 0 only checks that the pid exists.
    assert_ne!(
        unsafe { libc::kill(pid, 0) },
        0,
        "redis-server still running"
    );
}
