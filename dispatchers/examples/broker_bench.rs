//! Measures the broker link against a real redis-server (started through
//! scripts/broker/redis.sh): per backlog structure, the publish round trip
//! (p50/p99), Redis CPU per publish (from /proc and from INFO
//! commandstats), memory per backlog entry; then broker-to-node messages per
//! publish with 0, 1 and 2 following nodes and with per-user channels.
//!
//!   cargo run --release -p dispatchers --example broker_bench [PUBLISHES]

#[path = "../tests/common/redis.rs"]
mod redis_server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatchers::broker::{Cause, Config, Link, Message, Replay, Sink, Structure};
use redis_server::Redis;

/// Counts what it is handed; waits on nothing.
#[derive(Default)]
struct Count {
    messages: AtomicU64,
    follows: AtomicU64,
}

impl Sink for Count {
    fn message(&self, _: Message) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }
    fn followed(&self, _: &str, _: Cause, _: Replay) {
        self.follows.fetch_add(1, Ordering::Relaxed);
    }
    fn link_state(&self, _: bool) {}
}

fn node(config: &Config) -> (Link, Arc<Count>) {
    let count = Arc::new(Count::default());
    let link = Link::connect(config.clone(), count.clone()).expect("connect");
    (link, count)
}

fn publish_wait(link: &Link, channel: &str, data: &str) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    link.publish(channel, data, move |r| {
        let _ = tx.send(r);
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("answered")
        .expect("published");
}

/// `n` publishes with up to `window` in flight; returns when all are answered.
fn publish_windowed(link: &Link, channels: &[String], data: &str, n: usize, window: u64) {
    let in_flight = Arc::new(AtomicU64::new(0));
    for i in 0..n {
        while in_flight.load(Ordering::Acquire) >= window {
            std::thread::yield_now();
        }
        in_flight.fetch_add(1, Ordering::AcqRel);
        let f = in_flight.clone();
        link.publish(&channels[i % channels.len()], data, move |r| {
            r.expect("published");
            f.fetch_sub(1, Ordering::AcqRel);
        });
    }
    while in_flight.load(Ordering::Acquire) > 0 {
        std::thread::yield_now();
    }
}

fn info_field(conn: &mut redis::Connection, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg(section).query(conn).ok()?;
    info.lines().find_map(|l| {
        l.strip_prefix(&format!("{field}:"))
            .map(|v| v.trim().to_string())
    })
}

/// EVALSHA's mean execution time in microseconds, as Redis measured it.
fn evalsha_usec(conn: &mut redis::Connection) -> f64 {
    let line = info_field(conn, "commandstats", "cmdstat_evalsha").unwrap_or_default();
    line.split(',')
        .find_map(|kv| kv.strip_prefix("usec_per_call="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn used_memory(conn: &mut redis::Connection) -> i64 {
    info_field(conn, "memory", "used_memory")
        .and_then(|v| v.parse().ok())
        .expect("used_memory")
}

fn reset(conn: &mut redis::Connection) {
    redis::cmd("FLUSHALL").exec(conn).unwrap();
    redis::cmd("CONFIG").arg("RESETSTAT").exec(conn).unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One structure's figures from one round.
#[derive(Clone, Copy)]
struct Figures {
    p50_us: f64,
    p99_us: f64,
    cpu_seq_us: f64,
    cpu_pipe_us: f64,
    evalsha_us: f64,
    entry_bytes: f64,
}

fn measure(redis: &Redis, structure: Structure, n: usize) -> Figures {
    let mut admin = redis.conn();
    let data = "x".repeat(64);
    reset(&mut admin);
    let mut c = Config::new(&redis.url);
    c.structure = structure;
    let (link, _) = node(&c);
    // Warm up: scripts loaded, connection settled.
    for _ in 0..200 {
        publish_wait(&link, "warm", &data);
    }
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .exec(&mut admin)
        .unwrap();
    // Sequential: one publish in flight, 64 channels round robin.
    let channels: Vec<String> = (0..64).map(|i| format!("c{i}")).collect();
    let mut rtt = Vec::with_capacity(n);
    let cpu0 = redis.cpu();
    for i in 0..n {
        let t = Instant::now();
        publish_wait(&link, &channels[i % 64], &data);
        rtt.push(t.elapsed());
    }
    let cpu_seq_us = (redis.cpu() - cpu0).as_secs_f64() * 1e6 / n as f64;
    let evalsha_us = evalsha_usec(&mut admin);
    rtt.sort();
    let cpu0 = redis.cpu();
    publish_windowed(&link, &channels, &data, n * 4, 64);
    let cpu_pipe_us = (redis.cpu() - cpu0).as_secs_f64() * 1e6 / (n * 4) as f64;
    drop(link);
    // Memory: 1,000 channels with full backlogs of 64, less the same
    // channels' sequence keys alone (backlog 0).
    let many: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let grown = |backlog: usize, publishes: usize| -> i64 {
        let mut admin = redis.conn();
        reset(&mut admin);
        let before = used_memory(&mut admin);
        let mut c = c.clone();
        c.backlog = backlog;
        let (link, _) = node(&c);
        publish_windowed(&link, &many, &data, publishes, 256);
        used_memory(&mut admin) - before
    };
    let full = grown(64, 64_000);
    let seq_only = grown(0, 1000);
    Figures {
        p50_us: percentile(&rtt, 0.5).as_secs_f64() * 1e6,
        p99_us: percentile(&rtt, 0.99).as_secs_f64() * 1e6,
        cpu_seq_us,
        cpu_pipe_us,
        evalsha_us,
        entry_bytes: (full - seq_only) as f64 / 64_000.0,
    }
}

/// Each figure's best round: the machine is shared, and interference only
/// ever adds.
fn best(rounds: &[Figures]) -> Figures {
    let min = |f: fn(&Figures) -> f64| rounds.iter().map(f).fold(f64::INFINITY, f64::min);
    Figures {
        p50_us: min(|f| f.p50_us),
        p99_us: min(|f| f.p99_us),
        cpu_seq_us: min(|f| f.cpu_seq_us),
        cpu_pipe_us: min(|f| f.cpu_pipe_us),
        evalsha_us: min(|f| f.evalsha_us),
        entry_bytes: min(|f| f.entry_bytes),
    }
}

fn structures(redis: &Redis, n: usize) {
    const ROUNDS: usize = 3;
    println!("## Backlog structures (backlog 64, 64-byte messages, {n} sequential and {} pipelined publishes; best of {ROUNDS} alternating rounds)", n * 4);
    println!("| structure | round trip p50 | p99 | Redis CPU per publish, sequential (/proc) | pipelined, 64 in flight (/proc) | EVALSHA usec_per_call | memory per backlog entry |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let kinds = [Structure::List, Structure::Stream];
    let mut rounds: Vec<Vec<Figures>> = vec![Vec::new(); kinds.len()];
    for _ in 0..ROUNDS {
        for (i, s) in kinds.iter().enumerate() {
            rounds[i].push(measure(redis, *s, n));
        }
    }
    for (s, r) in kinds.iter().zip(&rounds) {
        let f = best(r);
        println!(
            "| {} | {:.0} us | {:.0} us | {:.1} us | {:.1} us | {:.1} us | {:.0} B |",
            s.name(),
            f.p50_us,
            f.p99_us,
            f.cpu_seq_us,
            f.cpu_pipe_us,
            f.evalsha_us,
            f.entry_bytes
        );
    }
    println!();
}

/// Broker-to-node messages received by `nodes` so far.
fn received(nodes: &[(Link, Arc<Count>)]) -> u64 {
    nodes.iter().map(|(l, _)| l.stats().received).sum()
}

/// Publishes `n` round robin on `channels` and waits (10 s at most) for
/// `per_publish` broker-to-node messages each; returns those that arrived
/// and Redis CPU per publish in microseconds.
fn fan_round(
    redis: &Redis,
    publisher: &Link,
    nodes: &[(Link, Arc<Count>)],
    channels: &[String],
    n: usize,
    per_publish: usize,
) -> (u64, f64) {
    let data = "x".repeat(64);
    let before = received(nodes);
    let cpu0 = redis.cpu();
    publish_windowed(publisher, channels, &data, n, 64);
    let want = before + (n * per_publish) as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while received(nodes) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let cpu = (redis.cpu() - cpu0).as_secs_f64() * 1e6 / n as f64;
    (received(nodes) - before, cpu)
}

fn fan_out(redis: &Redis, n: usize) {
    let mut admin = redis.conn();
    reset(&mut admin);
    let c = Config::new(&redis.url);
    println!("## Broker-to-node messages per publish ({n} publishes, list backlog)");
    println!("| case | publishes | broker-to-node messages | per publish | Redis CPU per publish (/proc) |");
    println!("| --- | --- | --- | --- | --- |");
    let (publisher, _) = node(&c);
    let followers: Vec<(Link, Arc<Count>)> = (0..2).map(|_| node(&c)).collect();
    for following in 0..=2usize {
        let channel = format!("fan{following}");
        for (link, count) in &followers[..following] {
            link.follow(&channel);
            while count.follows.load(Ordering::Relaxed) == 0 {
                std::thread::yield_now();
            }
        }
        let (got, cpu) = fan_round(
            redis,
            &publisher,
            &followers,
            std::slice::from_ref(&channel),
            n,
            following,
        );
        println!(
            "| broadcast channel, {following} following nodes | {n} | {got} | {:.2} | {cpu:.1} us |",
            got as f64 / n as f64
        );
        for (link, count) in &followers[..following] {
            link.unfollow(&channel);
            count.follows.store(0, Ordering::Relaxed);
        }
    }
    // Per-user channels: 200 users, half on each node.
    let users: Vec<String> = (0..200).map(|i| format!("user{i}")).collect();
    for (i, user) in users.iter().enumerate() {
        followers[i % 2].0.follow(user);
    }
    while followers
        .iter()
        .map(|(_, c)| c.follows.load(Ordering::Relaxed))
        .sum::<u64>()
        < users.len() as u64
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (got, cpu) = fan_round(redis, &publisher, &followers, &users, n, 1);
    println!(
        "| per-user channels (200 users over 2 nodes) | {n} | {got} | {:.2} | {cpu:.1} us |",
        got as f64 / n as f64
    );
    println!();
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("PUBLISHES is a number"))
        .unwrap_or(5000);
    let redis = Redis::start();
    let mut admin = redis.conn();
    let version = info_field(&mut admin, "server", "redis_version").unwrap_or_default();
    println!(
        "redis-server {version} pid {} on {}\n",
        redis.pid, redis.url
    );
    structures(&redis, n);
    fan_out(&redis, n);
}
