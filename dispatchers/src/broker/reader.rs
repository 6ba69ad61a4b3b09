//! The reader thread: blocks on the pub/sub connection and feeds what
//! arrives (confirmations, live messages) to the follow table.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::thread::JoinHandle;

use redis::Value;

use super::link::Inner;
use super::message::Message;
use super::stats::add;
use super::wire;
use super::worker::{Job, Request};

pub(crate) fn spawn(
    session: u64,
    stream: TcpStream,
    inner: Arc<Inner>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("broker-reader".into())
        .spawn(move || {
            run(&stream, &inner);
            // The worker tells this from a later session's loss by the id.
            let _ = inner.jobs.send(Job::Lost(session));
        })
}

fn run(stream: &TcpStream, inner: &Inner) {
    let mut parser = redis::Parser::new();
    while let Ok(value) = parser.parse_value(stream) {
        let Value::Array(parts) = value else {
            continue;
        };
        match parts.as_slice() {
            [Value::BulkString(kind), Value::BulkString(topic), Value::BulkString(payload)]
                if kind == b"message" =>
            {
                add(&inner.counters.received, 1);
                live(inner, topic, payload);
            }
            [Value::BulkString(kind), Value::BulkString(topic), _]
                if kind == b"subscribe" || kind == b"unsubscribe" =>
            {
                let Some(channel) = std::str::from_utf8(topic)
                    .ok()
                    .and_then(|t| inner.config.channel_of(t))
                else {
                    continue;
                };
                let catch_up = inner.table().handle_confirmed(channel);
                if let Some(c) = catch_up {
                    let _ = inner.jobs.send(Job::Request(Request::CatchUp(c)));
                }
            }
            [Value::BulkString(kind), Value::BulkString(mark)] if kind == b"pong" => {
                let mark = std::str::from_utf8(mark)
                    .ok()
                    .and_then(|m| m.strip_prefix('m'))
                    .and_then(|m| m.parse().ok());
                if let Some(mark) = mark {
                    inner
                        .table()
                        .handle_marker(mark, &*inner.sink, &inner.counters);
                }
            }
            _ => {}
        }
    }
}

/// A live message on `topic`: decoded, checked against its topic, handed to
/// the table.
fn live(inner: &Inner, topic: &[u8], payload: &[u8]) {
    let channel = std::str::from_utf8(topic)
        .ok()
        .and_then(|t| inner.config.channel_of(t));
    let decoded = wire::decode_live(payload);
    let (Some(channel), Ok(m)) = (channel, decoded) else {
        add(&inner.counters.malformed, 1);
        return;
    };
    if m.channel != channel {
        add(&inner.counters.malformed, 1);
        return;
    }
    let message = Message {
        channel: Arc::from(channel),
        id: m.id,
        time_ms: m.time_ms,
        data: m.data.into(),
    };
    let catch_up = inner
        .table()
        .handle_live(message, &*inner.sink, &inner.counters);
    if let Some(c) = catch_up {
        let _ = inner.jobs.send(Job::Request(Request::CatchUp(c)));
    }
}
