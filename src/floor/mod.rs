//! `cometbench floor`: the fan-out floor, the least a server can do.
//!
//! It accepts subscribers, answers each an SSE head, and on a publish
//! encodes the message once as one chunk and writes it to every subscriber
//! of the channel in a plain loop, one `write` each: no event loop, no
//! queue, no heartbeat, no backlog, no reading of subscribers after their
//! request. What it costs per delivery and how late the last subscriber
//! hears is what this machine's kernel and loopback cost, and a run with
//! `floor = true` gives every fan-out figure its ratio to it.
//!
//! It speaks only as much of the protocol as the load generator needs:
//! `GET /sub/{channel}?transport=sse` (chunked, `retry` first, then `id:` and
//! `data:` per message), `POST /pub/{channel}` with `Content-Length`,
//! answered `202 {"id":N,"subscribers":K}` with ids 1, 2, 3 ... per channel
//! and K the subscribers written to, and `GET /stats` with `subscribers`.
//! A subscriber whose write fails or is short (a full socket) is dropped.
//! Anything else is `400`, `404` or `405` and the connection closes.
//!
//! Past one process's open-file limit it is `--processes N` of them (see
//! [`processes`]): N children each accept subscribers on their own
//! `SO_REUSEPORT` listener of one port and write to them in their own plain
//! loop, and the parent takes the publishes on the publish listener and hands
//! each frame to all of them at once.

mod processes;

pub use processes::child;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

/// The channels and their subscribers, and each channel's last id.
#[derive(Default)]
struct Floor {
    channels: Mutex<HashMap<String, Channel>>,
}

#[derive(Default)]
struct Channel {
    subscribers: Vec<TcpStream>,
    last_id: u64,
}

/// What answers a publish and `/stats`: one process's subscribers, or all
/// of its children's.
trait Fanout: Send + Sync {
    /// Gives the message on `channel` its id and writes it to every
    /// subscriber: the id, and how many got it whole.
    fn publish(&self, channel: &str, text: &str) -> (u64, u64);
    /// The `/stats` body.
    fn stats(&self) -> String;
}

/// Serves on `listen` (and `publish_listen`, when given) until SIGINT or
/// SIGTERM, as `processes` processes when more than one; prints the
/// subscribers' address first.
pub fn run(listen: SocketAddr, publish_listen: Option<SocketAddr>, processes: usize) -> Result<()> {
    if processes > 1 {
        let Some(publish) = publish_listen else {
            anyhow::bail!(
                "--processes {processes} needs --publish-listen: the subscribers' port is shared by the children, and a publish must reach all of them"
            );
        };
        return processes::run(listen, publish, processes);
    }
    let floor = Arc::new(Floor::default());
    let main = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    print_addr(main.local_addr()?)?;
    let signals = signals()?;
    if let Some(addr) = publish_listen {
        let l = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        let f: Arc<dyn Fanout> = floor.clone();
        std::thread::spawn(move || publish_loop(&l, &f));
    }
    let f = floor.clone();
    std::thread::spawn(move || accept_loop(&main, &f, true));
    stop_on(signals, &*floor);
    Ok(())
}

/// The address on stdout, where the one who started us waits for it.
fn print_addr(addr: SocketAddr) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{addr}")?;
    out.flush()?;
    Ok(())
}

fn signals() -> Result<signal_hook::iterator::Signals> {
    signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .context("installing signal handlers")
}

/// Waits for SIGINT or SIGTERM, then says what it held.
fn stop_on(mut signals: signal_hook::iterator::Signals, floor: &dyn Fanout) {
    let sig = signals.forever().next();
    eprintln!(
        "cometbench floor: signal {}, stopping; {}",
        sig.unwrap_or(0),
        floor.stats()
    );
}

/// A thread per connection of the publish listener: publishes and `/stats`.
fn publish_loop(l: &TcpListener, floor: &Arc<dyn Fanout>) {
    for conn in l.incoming() {
        let Ok(s) = conn else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let f = floor.clone();
        std::thread::spawn(move || {
            let mut s = s;
            let mut buf = Vec::new();
            if let Ok(Some(head)) = read_head(&mut s, &mut buf) {
                serve(s, buf, head, &*f);
            }
        });
    }
}

/// Takes connections one at a time: a subscriber's request is read and
/// answered here; any other connection gets a thread of its own when
/// `others` (one process serves publishes on this port too), else a 404 (a
/// child of several, whose publishes come from the parent).
fn accept_loop(l: &TcpListener, floor: &Arc<Floor>, others: bool) {
    for conn in l.incoming() {
        let Ok(mut s) = conn else {
            // Out of descriptors: let some go before trying again.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut buf = Vec::new();
        let Ok(Some(head)) = read_head(&mut s, &mut buf) else {
            continue;
        };
        if let Some(channel) = head.subscribe_channel() {
            floor.subscribe(s, channel);
        } else if others {
            let f = floor.clone();
            std::thread::spawn(move || serve(s, buf, head, &*f));
        } else {
            let body = r#"{"error":"publish and /stats on the floor's publish listener"}"#;
            let _ = write!(
                s,
                "HTTP/1.1 404 Not Found\r\nServer: cometbench\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    }
}

/// A request head: method, path, and the body length it announces.
struct Head {
    method: String,
    path: String,
    content_length: usize,
    /// `Connection: close`: the answer is the last.
    close: bool,
    len: usize,
}

impl Head {
    /// `GET /sub/{channel}?transport=sse`: the channel.
    fn subscribe_channel(&self) -> Option<String> {
        let (path, query) = self.path.split_once('?').unwrap_or((&self.path, ""));
        let channel = path.strip_prefix("/sub/")?;
        let sse = query.split('&').any(|kv| kv == "transport=sse");
        (self.method == "GET" && sse && valid_channel(channel)).then(|| channel.to_string())
    }
}

fn valid_channel(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 64
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Reads until a whole head is in `buf`; `None` at a close or a bad head.
fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<Head>> {
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let content_length = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0);
                let close = req.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("connection")
                        && h.value.eq_ignore_ascii_case(b"close")
                });
                return Ok(Some(Head {
                    method: req.method.unwrap_or("").to_string(),
                    path: req.path.unwrap_or("").to_string(),
                    content_length,
                    close,
                    len,
                }));
            }
            Ok(httparse::Status::Partial) if buf.len() < 16 * 1024 => {}
            _ => return Ok(None),
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Publishes and `/stats` on one keep-alive connection, in order.
fn serve(mut s: TcpStream, mut buf: Vec<u8>, mut head: Head, floor: &dyn Fanout) {
    loop {
        let want = head.len + head.content_length;
        let mut chunk = [0u8; 4096];
        while buf.len() < want {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head.len..want].to_vec();
        buf.drain(..want);
        let (status, answer) = answer(floor, &head, &body);
        let close = head.close || (status != 202 && status != 200);
        let reason = match status {
            200 => "OK",
            202 => "Accepted",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Bad Request",
        };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nServer: cometbench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{answer}",
            answer.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if s.write_all(response.as_bytes()).is_err() || close {
            return;
        }
        head = match read_head(&mut s, &mut buf) {
            Ok(Some(h)) => h,
            _ => return,
        };
    }
}

impl Floor {
    /// Answers `subscriber`'s SSE head and keeps it on `channel`.
    fn subscribe(&self, mut s: TcpStream, channel: String) {
        const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nServer: cometbench\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nretry: 3000\n\n\r\n";
        if s.write_all(HEAD).is_err() || s.set_nonblocking(true).is_err() {
            return;
        }
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.entry(channel).or_default().subscribers.push(s);
    }

    /// Writes `frame` to every subscriber of `channel`, one write each;
    /// those it could not be written to whole are dropped. How many got it.
    fn write_frame(&self, channel: &str, frame: &[u8]) -> u64 {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let c = channels.entry(channel.to_string()).or_default();
        write_to(&mut c.subscribers, frame)
    }

    /// Subscribers held, and channels.
    fn counts(&self) -> (u64, u64) {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let subscribers: usize = channels.values().map(|c| c.subscribers.len()).sum();
        (subscribers as u64, channels.len() as u64)
    }
}

impl Fanout for Floor {
    /// Gives the message its id and encodes it once for all subscribers.
    fn publish(&self, channel: &str, text: &str) -> (u64, u64) {
        // The id and the writes under one lock: ids go out in order.
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let c = channels.entry(channel.to_string()).or_default();
        c.last_id += 1;
        let frame = encode(c.last_id, text);
        (c.last_id, write_to(&mut c.subscribers, &frame))
    }

    fn stats(&self) -> String {
        let (subscribers, channels) = self.counts();
        format!(
            "{{\"dispatcher\":\"floor\",\"subscribers\":{subscribers},\"channels\":{channels}}}"
        )
    }
}

/// `frame` to each of `subscribers`, one write each, dropping those it could
/// not be written to whole; how many got it.
fn write_to(subscribers: &mut Vec<TcpStream>, frame: &[u8]) -> u64 {
    subscribers.retain_mut(|s| matches!(s.write(frame), Ok(n) if n == frame.len()));
    subscribers.len() as u64
}

/// The status and JSON body of a publish or `/stats`.
fn answer(floor: &dyn Fanout, head: &Head, body: &[u8]) -> (u16, String) {
    if head.path == "/stats" {
        return match head.method.as_str() {
            "GET" => (200, floor.stats()),
            _ => (405, "{}".into()),
        };
    }
    let Some(channel) = head.path.strip_prefix("/pub/") else {
        return (404, "{}".into());
    };
    if head.method != "POST" {
        return (405, "{}".into());
    }
    let (Some(text), true) = (std::str::from_utf8(body).ok(), valid_channel(channel)) else {
        return (400, "{}".into());
    };
    let (id, written) = floor.publish(channel, text);
    (202, format!("{{\"id\":{id},\"subscribers\":{written}}}"))
}

/// One SSE event as one HTTP chunk: `id: N`, a `data:` line per line.
fn encode(id: u64, text: &str) -> Vec<u8> {
    let mut event = format!("id: {id}\n");
    for line in text.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
        event.push_str("data: ");
        event.push_str(line);
        event.push('\n');
    }
    event.push('\n');
    let mut frame = format!("{:x}\r\n", event.len()).into_bytes();
    frame.extend_from_slice(event.as_bytes());
    frame.extend_from_slice(b"\r\n");
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use comet::client::{ClientEvent, Item, Subscriber};
    use comet::Transport;

    #[test]
    fn frames_read_as_the_protocol_says() {
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        wire.extend(encode(1, "1 2 1 xx"));
        wire.extend(encode(2, "two\nlines"));
        let mut sub = Subscriber::new(Transport::Sse);
        let mut out = Vec::new();
        sub.feed(&wire, &mut out).unwrap();
        let items: Vec<&ClientEvent> = out.iter().skip(1).collect();
        assert_eq!(
            items,
            [
                &ClientEvent::Item(Item::Message {
                    id: 1,
                    data: "1 2 1 xx".into()
                }),
                &ClientEvent::Item(Item::Message {
                    id: 2,
                    data: "two\nlines".into()
                })
            ]
        );
    }

    #[test]
    fn only_an_sse_subscribe_is_a_subscriber() {
        let head = |m: &str, p: &str| Head {
            method: m.into(),
            path: p.into(),
            content_length: 0,
            close: false,
            len: 0,
        };
        assert_eq!(
            head("GET", "/sub/bc?transport=sse")
                .subscribe_channel()
                .as_deref(),
            Some("bc")
        );
        assert_eq!(
            head("GET", "/sub/bc?transport=longpoll").subscribe_channel(),
            None
        );
        assert_eq!(
            head("POST", "/sub/bc?transport=sse").subscribe_channel(),
            None
        );
        assert_eq!(
            head("GET", "/sub/a%2Fb?transport=sse").subscribe_channel(),
            None
        );
    }
}
