//! Criterion benches of the protocol core: request parsing, frame encoding per
//! transport, and a publish handed to 10,000 in-memory subscribers.
//!
//! Each bench runs about 4 s (1 s warm-up, 3 s measurement), so the whole file
//! runs in well under a minute: `cargo bench -p comet --bench core -- --noplot`.

use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, SamplingMode,
    Throughput,
};

use comet::glue::{self, memory::Memory};
use comet::request::parse_head;
use comet::transport::Frame;
use comet::{client, Config, Conn, Limits, Message, Transport};

/// What a browser's `EventSource` sends on reconnect, give or take.
const SUBSCRIBE: &[u8] = b"GET /sub/room-42?transport=sse&since=17 HTTP/1.1\r\n\
Host: 127.0.0.1:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/event-stream\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Cache-Control: no-cache\r\n\
Last-Event-ID: 17\r\n\
Connection: keep-alive\r\n\r\n";

/// A publish head as the load generator sends it (the body follows).
const PUBLISH: &[u8] = b"POST /pub/room-42 HTTP/1.1\r\n\
Host: 127.0.0.1:8080\r\n\
Authorization: Bearer 0123456789abcdef0123456789abcdef\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 100\r\n\r\n";

/// 100 bytes of chat-like JSON text: quotes to escape, one `<` for the iframe.
fn payload() -> String {
    let mut s = String::from(
        r#"{"user":"ada","text":"hello <all>, the 1st Comet message of the day","ts":1700000000123,"n":"#,
    );
    while s.len() < 99 {
        s.push('7');
    }
    s.push('}');
    assert_eq!(s.len(), 100);
    s
}

fn short<M: criterion::measurement::Measurement>(g: &mut BenchmarkGroup<'_, M>) {
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_head");
    short(&mut g);
    for (name, req) in [("subscribe", SUBSCRIBE), ("publish", PUBLISH)] {
        assert!(matches!(
            parse_head(req),
            Ok(comet::request::Status::Complete(_))
        ));
        g.throughput(Throughput::Bytes(req.len() as u64));
        g.bench_function(name, |b| b.iter(|| parse_head(black_box(req))));
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let channel: Arc<str> = Arc::from("room-42");
    let data = payload();
    let mut g = c.benchmark_group("encode");
    short(&mut g);
    g.throughput(Throughput::Elements(1));
    let frames = [
        (
            "sse",
            Frame::Stream {
                transport: Transport::Sse,
                chunked: true,
            },
        ),
        (
            "stream",
            Frame::Stream {
                transport: Transport::Stream,
                chunked: true,
            },
        ),
        (
            "iframe",
            Frame::Stream {
                transport: Transport::Iframe,
                chunked: true,
            },
        ),
        ("object", Frame::Object),
    ];
    for (name, frame) in frames {
        // A fresh message each time, made outside the timing: the frame cache
        // is empty, so this times one encoding, not a cache hit.
        g.bench_function(name, |b| {
            b.iter_batched(
                || Message::new(channel.clone(), 12_345, data.as_str().into()),
                |m| m.frame(black_box(frame)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

const SUBSCRIBERS: usize = 10_000;

fn publish(c: &mut Criterion) {
    let config = Arc::new(Config::default());
    let now = Instant::now();
    let mut memory: Memory<usize> = Memory::new(Limits::from(&*config));
    let request = client::subscribe_request("room-42", Transport::Sse, None);
    let mut conns: Vec<Conn> = (0..SUBSCRIBERS)
        .map(|key| {
            let mut conn = Conn::new(config.clone(), now);
            conn.handle_read(request.as_bytes(), now);
            glue::drain(&mut conn, &mut memory.backend(key), now);
            let n = written(&conn);
            conn.handle_written(n);
            conn
        })
        .collect();
    assert_eq!(memory.hub().stats().subscribers, SUBSCRIBERS as u64);
    let data = payload();

    let mut g = c.benchmark_group("publish");
    short(&mut g);
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(30);
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    g.bench_function("sse_10k", |b| {
        b.iter(|| {
            let m = memory
                .publish("room-42", data.as_str().into(), now)
                .expect("one channel");
            assert_eq!(memory.take_published().map(|m| m.id()), Some(m.id()));
            let mut total = 0;
            for conn in conns.iter_mut() {
                conn.handle_message(&m, now);
                let n = written(conn);
                conn.handle_written(n);
                total += n;
            }
            total
        })
    });
    g.finish();
    assert!(conns
        .iter()
        .all(|c| !c.is_done() && c.poll_timeout().is_some()));
}

/// Bytes a `writev` of `conn`'s output would write whole.
fn written(conn: &Conn) -> usize {
    let mut iov = [IoSlice::new(&[]); 16];
    let n = conn.poll_transmit(&mut iov);
    iov[..n].iter().map(|b| b.len()).sum()
}

criterion_group!(benches, parse, encode, publish);
criterion_main!(benches);
