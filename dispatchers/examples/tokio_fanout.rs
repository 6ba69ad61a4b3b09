//! The two ways a tokio user fans a message out to many waiting tasks,
//! measured side by side in one process: a `tokio::sync::broadcast`
//! channel with a receiver per task (what the `tokio` dispatcher does), or
//! a `tokio::sync::mpsc` channel per task and a loop over their senders
//! (what the groups rule of the thread dispatchers would be, in tokio).
//!
//! ```text
//! cargo run --release -p dispatchers --example tokio_fanout -- 10000 2 20
//! ```
//!
//! Arguments: tasks (10,000), worker threads (2), messages (20). For each
//! idiom it spawns the tasks, each waiting for messages, and reports the
//! memory each waiting task adds (RSS growth over the tasks), the time the
//! publisher spends handing one message on (what the hub lock is held for
//! in a dispatcher), and the time until the last task has it, median and
//! worst of the messages.
//!
//! # Measured here (2026-12-02, 2 cores shared, load 3, release; two runs)
//! | idiom | bytes per waiting task | hand-off p50 | last task has it p50 |
//! | --- | --- | --- | --- |
//! | broadcast | 471, 480 | 3.2, 3.1 ms | 9.0, 5.0 ms |
//! | mpsc (256) per task | 1,568, 1,566 | 1.4, 0.8 ms | 3.2, 1.1 ms |
//!
//! A receiver is a cursor into one shared ring; an mpsc channel per task
//! is a channel each (its first block of slots, its semaphore). The
//! broadcast's `send` wakes every waiter while holding its own lock, so the
//! hand-off (the time the hub lock is held in the dispatcher) is longer:
//! a few milliseconds at 10,000, against the ~70 ms the 10,000 socket
//! writes of a broadcast take on one core. The `tokio` dispatcher takes the
//! broadcast: a kilobyte less per idle subscriber.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, Notify};

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let only = all.iter().find_map(|a| match a.as_str() {
        "broadcast" => Some(Idiom::Broadcast),
        "mpsc" => Some(Idiom::Mpsc),
        _ => None,
    });
    let args: Vec<usize> = all.iter().filter_map(|a| a.parse().ok()).collect();
    let tasks = args.first().copied().unwrap_or(10_000);
    let workers = args.get(1).copied().unwrap_or(2);
    let messages = args.get(2).copied().unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(idiom) = only else {
        // Each idiom in a process of its own, so that the first one's freed
        // heap does not hide the second one's growth.
        println!("{tasks} tasks, {workers} workers, {messages} messages");
        println!("idiom      bytes/task  hand-off p50/max   last task has it p50/max");
        for idiom in ["broadcast", "mpsc"] {
            let exe = std::env::current_exe().expect("this program");
            let status = std::process::Command::new(exe)
                .args(all.iter().filter(|a| a.parse::<usize>().is_ok()))
                .arg(idiom)
                .status()
                .expect("run an idiom");
            assert!(status.success(), "{idiom}: {status}");
        }
        return;
    };
    {
        let r = rt.block_on(measure(idiom, tasks, messages));
        println!(
            "{:<10} {:>10.0}  {:>7.2}/{:<7.2} ms {:>8.2}/{:<7.2} ms",
            idiom.name(),
            r.bytes_per_task,
            ms(r.hand_off.0),
            ms(r.hand_off.1),
            ms(r.last.0),
            ms(r.last.1),
        );
    }
}

#[derive(Clone, Copy)]
enum Idiom {
    Broadcast,
    Mpsc,
}

impl Idiom {
    fn name(self) -> &'static str {
        match self {
            Idiom::Broadcast => "broadcast",
            Idiom::Mpsc => "mpsc",
        }
    }
}

struct Report {
    bytes_per_task: f64,
    /// Median and worst.
    hand_off: (Duration, Duration),
    last: (Duration, Duration),
}

/// Every task waits for each message, counts it, and the last of each
/// round wakes the publisher.
async fn measure(idiom: Idiom, tasks: usize, messages: usize) -> Report {
    let got = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Notify::new());
    let before = rss();
    let (btx, _) = broadcast::channel::<Arc<str>>(256);
    let mut senders = Vec::new();
    for _ in 0..tasks {
        let (got, done) = (got.clone(), done.clone());
        let count = move || {
            if got.fetch_add(1, Ordering::AcqRel) + 1 == tasks {
                done.notify_one();
            }
        };
        match idiom {
            Idiom::Broadcast => {
                let mut rx = btx.subscribe();
                tokio::spawn(async move {
                    while rx.recv().await.is_ok() {
                        count();
                    }
                });
            }
            Idiom::Mpsc => {
                let (tx, mut rx) = mpsc::channel::<Arc<str>>(256);
                senders.push(tx);
                tokio::spawn(async move {
                    while rx.recv().await.is_some() {
                        count();
                    }
                });
            }
        }
    }
    // Let every task reach its first wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bytes_per_task = (rss() - before) as f64 / tasks as f64;
    let (mut hand_offs, mut lasts) = (Vec::new(), Vec::new());
    for i in 0..messages {
        got.store(0, Ordering::Release);
        let m: Arc<str> = format!("message {i}").into();
        let start = Instant::now();
        match idiom {
            Idiom::Broadcast => {
                let _ = btx.send(m);
            }
            Idiom::Mpsc => {
                for tx in &senders {
                    let _ = tx.try_send(m.clone());
                }
            }
        }
        hand_offs.push(start.elapsed());
        done.notified().await;
        lasts.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(btx);
    drop(senders);
    Report {
        bytes_per_task,
        hand_off: median_max(&mut hand_offs),
        last: median_max(&mut lasts),
    }
}

fn median_max(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Resident bytes of this process.
fn rss() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
