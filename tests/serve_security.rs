//! `cometbench serve` and who may publish: without a token it listens on
//! loopback only (unless `--insecure-public`), says at start who may publish,
//! and with `--publish-token` the real server refuses a publish without it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;

use testkit::Server;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cometbench"))
}

/// Starts `serve` with `args`; returns it and the first line it wrote to
/// stderr (the start summary).
fn serve(args: &[&str]) -> (Server, String) {
    let server = Server::start(env!("CARGO_BIN_EXE_cometbench"), args);
    let summary = server.summary();
    (server, summary)
}

/// The status of one raw request.
fn status(addr: SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.lines().next().unwrap_or("").to_string()
}

fn loopback(addr: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], addr.port()))
}

#[test]
fn refuses_every_public_listener_without_a_token() {
    for args in [
        &["--listen", "0.0.0.0:0"][..],
        &["--listen", "[::]:0"][..],
        &["--listen", "127.0.0.1:0", "--publish-listen", "0.0.0.0:0"][..],
    ] {
        for dispatcher in ["reactor", "thread-per-connection", "green", "tokio"] {
            let out = bin()
                .args(["serve", "--dispatcher", dispatcher])
                .args(args)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(out.stdout.is_empty(), "{args:?}: nothing was bound");
            assert!(err.contains("--publish-token"), "{args:?}: {err}");
            assert!(err.contains("--insecure-public"), "{args:?}: {err}");
        }
    }
}

#[test]
fn loopback_without_token_says_anyone_may_publish() {
    let (server, summary) = serve(&["--dispatcher", "reactor", "--listen", "127.0.0.1:0"]);
    assert!(server.addr.ip().is_loopback());
    assert!(
        summary.contains("publishing is open to anyone who can connect"),
        "{summary}"
    );
}

#[test]
fn insecure_public_starts_and_says_anyone_may_publish() {
    let (server, summary) = serve(&[
        "--dispatcher",
        "reactor",
        "--listen",
        "0.0.0.0:0",
        "--insecure-public",
    ]);
    let addr = server.addr;
    let st = status(
        loopback(addr),
        "POST /pub/open HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    drop(server);
    assert!(addr.ip().is_unspecified(), "{addr}");
    assert!(summary.contains("anyone who can connect"), "{summary}");
    assert!(st.starts_with("HTTP/1.1 202"), "{st}");
}

#[test]
fn public_with_token_needs_the_token() {
    for dispatcher in dispatchers::Kind::ALL.map(|k| k.name()) {
        let (server, summary) = serve(&[
            "--dispatcher",
            dispatcher,
            "--listen",
            "0.0.0.0:0",
            "--publish-token",
            "tok-123",
        ]);
        let a = loopback(server.addr);
        let pub_ = |auth: &str| {
            status(
                a,
                &format!("POST /pub/c HTTP/1.1\r\n{auth}Content-Length: 2\r\nConnection: close\r\n\r\nhi"),
            )
        };
        let none = pub_("");
        let wrong = pub_("Authorization: Bearer tok-124\r\n");
        let right = pub_("Authorization: Bearer tok-123\r\n");
        let stats = status(a, "GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n");
        let mut body = String::new();
        TcpStream::connect(a)
            .and_then(|mut s| {
                s.write_all(b"GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n")?;
                s.read_to_string(&mut body)
            })
            .unwrap();
        drop(server);
        assert!(summary.contains("publishing needs the token"), "{summary}");
        assert!(none.starts_with("HTTP/1.1 401"), "{dispatcher}: {none}");
        assert!(wrong.starts_with("HTTP/1.1 401"), "{dispatcher}: {wrong}");
        assert!(right.starts_with("HTTP/1.1 202"), "{dispatcher}: {right}");
        assert!(stats.starts_with("HTTP/1.1 200"), "{dispatcher}: {stats}");
        assert!(body.contains("\"published\":1"), "{dispatcher}: {body}");
    }
}
