//! A real browser on the iframe and WebSocket transports: headless Chromium
//! loads a host page that defines `window.comet` and embeds the forever
//! iframe of a channel holding hostile messages (replayed from the backlog
//! with `since=0`), and opens Chromium's own `WebSocket` on the same channel:
//! it gets the same messages, sends one of its own (which comes back with the
//! next id), answers the server's pings by itself (it is still open after
//! three heartbeats), has permessage-deflate declined, and sees a binary
//! message closed with `1003`. Served by the real `cometbench serve` of each
//! dispatcher.
//!
//! The iframe must be same-origin with the host page to call `parent.comet`,
//! so the test runs a small HTTP server on one port: `/` is the host page,
//! `POST /result` is where the page reports, and anything else is proxied to
//! the cometbench server byte for byte (a `Connection: close` is added to the
//! request so that one connection carries one proxied request).
//!
//! Chromium is required: a missing `chromium` fails the test (the test command
//! installs the Debian package, see `scripts/deps.sh`). `COMETBENCH_CHROMIUM`
//! names another binary.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use testkit::{hostile, publish, Server};

/// How long the page may take to report; only a bound, never a measurement.
const REPORT_WITHIN: Duration = Duration::from_secs(60);

/// Published after the hostile messages; the page reports once it arrives.
const SENTINEL: &str = "end of the hostile messages";

/// What the page's WebSocket sends; it must come back to it whole.
const OWN: &str = "from Chromium: é \u{2028} </script> 😀";

/// The server's heartbeat: a WebSocket that answered no ping would be
/// dropped after three, so the page stays open for more than that.
const HEARTBEAT_SECS: f64 = 0.5;

fn host_page(channel: &str, expected: usize, server: SocketAddr) -> String {
    // In a script element: "</" would end it.
    let own = serde_json::to_string(OWN).unwrap().replace("</", "<\\/");
    let stay_ms = (HEARTBEAT_SECS * 3.0 * 1000.0 + 400.0) as u64;
    format!(
        r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>host</title></head>
<body>
<script>
window.pwned = 0;
var got = [];
var reported = false;
var errors = [];
var iframeDone = false;
var ws = {{ got: [], extensions: null, alive: null, binaryClose: null, done: false }};
window.onerror = function (m) {{ errors.push(String(m)); }};
function report() {{
  if (reported || !iframeDone || !ws.done) return;
  reported = true;
  var f = document.getElementById("f");
  var d = f.contentDocument;
  var result = {{
    got: got,
    pwned: window.pwned || 0,
    iframePwned: (f.contentWindow && f.contentWindow.pwned) || 0,
    elements: d && d.body ? Array.prototype.map.call(d.body.querySelectorAll("*"), function (e) {{ return e.tagName; }}) : null,
    errors: errors,
    ws: ws
  }};
  fetch("/result", {{ method: "POST", body: JSON.stringify(result) }});
}}
window.comet = function (m) {{
  got.push(m);
  // The sentinel comes last, so it arrives even when earlier messages broke
  // their script elements. A grace period after it lets any asynchronous
  // injection (an onerror handler, say) run before the report; it measures nothing.
  if (m.data === "{SENTINEL}" || got.length === {expected}) setTimeout(function () {{ iframeDone = true; report(); }}, 500);
}};
var url = "ws://{server}/sub/{channel}?transport=ws&since=0";
var sock = new WebSocket(url);
var opened = 0;
sock.onopen = function () {{
  opened = Date.now();
  ws.extensions = sock.extensions;
  sock.send({own});
}};
sock.onmessage = function (e) {{
  ws.got.push(JSON.parse(e.data));
  if (ws.got.length === {expected} + 1) {{
    setTimeout(function () {{
      ws.alive = sock.readyState === WebSocket.OPEN;
      ws.done = true;
      report();
    }}, Math.max(0, opened + {stay_ms} - Date.now()));
  }}
}};
var bin = new WebSocket(url);
bin.onopen = function () {{ bin.send(new Uint8Array([1, 2, 3])); }};
bin.onclose = function (e) {{ ws.binaryClose = e.code; }};
</script>
<iframe id="f" src="/sub/{channel}?transport=iframe&since=0"></iframe>
</body></html>
"#
    )
}

/// Reads a request head (and nothing more) from `s`.
fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
        if buf.len() > 64 * 1024 {
            return None;
        }
    }
    Some(buf)
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.trim().parse().unwrap_or(0))
}

/// One connection of the host server.
fn handle(mut s: TcpStream, backend: SocketAddr, page: &str, results: &mpsc::Sender<String>) {
    let Some(head) = read_head(&mut s) else {
        return;
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or("");
    if line.starts_with("GET / ") {
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
    } else if line.starts_with("POST /result ") {
        let mut body = vec![0u8; content_length(&text)];
        if s.read_exact(&mut body).is_ok() {
            let _ = results.send(String::from_utf8_lossy(&body).into_owned());
        }
        let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    } else {
        let Ok(mut up) = TcpStream::connect(backend) else {
            return;
        };
        let mut head = head;
        head.truncate(head.len() - 2);
        head.extend_from_slice(b"Connection: close\r\n\r\n");
        if up.write_all(&head).is_err() {
            return;
        }
        let (mut down, mut up_read) = (s.try_clone().unwrap(), up.try_clone().unwrap());
        std::thread::spawn(move || {
            // The server's bytes, unchanged, to the browser.
            let _ = std::io::copy(&mut up_read, &mut down);
            let _ = down.shutdown(Shutdown::Both);
        });
        let _ = std::io::copy(&mut s, &mut up);
        let _ = up.shutdown(Shutdown::Write);
    }
}

/// Serves the host page and proxies to `backend`; returns its address and
/// the receiver of the page's reports.
fn host_server(backend: SocketAddr, page: String) -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let page = std::sync::Arc::new(page);
        for s in listener.incoming() {
            let Ok(s) = s else { continue };
            let (page, tx) = (page.clone(), tx.clone());
            std::thread::spawn(move || handle(s, backend, &page, &tx));
        }
    });
    (addr, rx)
}

fn chromium(url: &str, profile: &std::path::Path) -> Child {
    let bin = std::env::var("COMETBENCH_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so that the browser's helpers are stopped with it.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {bin} ({e}): install the Debian package `chromium` (scripts/deps.sh does)")
        })
}

/// Stops a child started in its own process group, and the group.
fn stop_group(child: &mut Child) {
    // SAFETY: signals the process group this test created for its own child.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.kill();
    let _ = child.wait();
}

fn check_dispatcher(dispatcher: &str) {
    let mut msgs = hostile::hostile_messages();
    msgs.push(SENTINEL.into());
    let server = Server::start(
        env!("CARGO_BIN_EXE_cometbench"),
        &[
            "--dispatcher",
            dispatcher,
            "--listen",
            "127.0.0.1:0",
            "--heartbeat",
            &HEARTBEAT_SECS.to_string(),
        ],
    );
    let addr = server.addr;
    let channel = "evil";
    for m in &msgs {
        publish(addr, channel, m);
    }
    let (host, results) = host_server(addr, host_page(channel, msgs.len(), addr));
    let profile = std::env::temp_dir().join(format!(
        "cometbench-browser-{}-{dispatcher}",
        std::process::id()
    ));
    let mut browser = chromium(&format!("http://{host}/"), &profile);
    let report = results.recv_timeout(REPORT_WITHIN);
    stop_group(&mut browser);
    let mut err = String::new();
    if report.is_err() {
        let _ = browser.stderr.take().unwrap().read_to_string(&mut err);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&profile);
    let report = report.unwrap_or_else(|_| {
        panic!(
            "{dispatcher}: the page did not report within {REPORT_WITHIN:?}; chromium said:\n{err}"
        )
    });
    let v: serde_json::Value = serde_json::from_str(&report).expect("the report is JSON");
    // The page's WebSocket published on the channel too, after the rest.
    msgs.push(OWN.into());
    assert_eq!(v["pwned"], 0, "{dispatcher}: injected script ran: {report}");
    assert_eq!(
        v["iframePwned"], 0,
        "{dispatcher}: injected script ran: {report}"
    );
    assert_eq!(v["errors"], serde_json::json!([]), "{dispatcher}");
    // Each message is one script element; nothing else was parsed into the iframe.
    let elements = v["elements"].as_array().expect("the iframe document");
    assert_eq!(elements.len(), msgs.len(), "{dispatcher}: {elements:?}");
    assert!(
        elements.iter().all(|e| e == "SCRIPT"),
        "{dispatcher}: {elements:?}"
    );
    same_messages(dispatcher, "iframe", &v["got"], &msgs);
    check_websocket(dispatcher, &v["ws"], &msgs);
}

/// `got` is every one of `msgs`, in order, with the ids 1, 2, 3 ...
fn same_messages(dispatcher: &str, what: &str, got: &serde_json::Value, msgs: &[String]) {
    let got = got.as_array().expect("messages");
    assert_eq!(got.len(), msgs.len(), "{dispatcher} {what}: {got:?}");
    for (i, (g, want)) in got.iter().zip(msgs).enumerate() {
        assert_eq!(g["id"], i as u64 + 1, "{dispatcher} {what}: {g}");
        assert_eq!(
            g["data"].as_str(),
            Some(want.as_str()),
            "{dispatcher} {what}: message {}",
            i + 1
        );
    }
}

/// What the page's own `WebSocket` saw: every message, its own last.
fn check_websocket(dispatcher: &str, ws: &serde_json::Value, msgs: &[String]) {
    assert_eq!(ws["extensions"], "", "{dispatcher}: deflate declined: {ws}");
    assert_eq!(
        ws["alive"], true,
        "{dispatcher}: dropped though Chromium pongs"
    );
    assert_eq!(ws["binaryClose"], 1003, "{dispatcher}: {ws}");
    same_messages(dispatcher, "WebSocket", &ws["got"], msgs);
}

#[test]
fn chromium_runs_no_injected_script_and_its_websocket_sends_and_receives() {
    // One browser at a time: the machine is small.
    for d in dispatchers::Kind::ALL.map(|k| k.name()) {
        check_dispatcher(d);
    }
}
