//! An independent WebSocket client against every dispatcher: Python's
//! `websockets` library (Debian `python3-websockets`, installed by
//! `scripts/deps.sh`), which does each step of `websockets_client.py` and
//! says what it saw; this test judges it. Messages and their ids, the
//! sender's own message back, a fragmented publish, resume with `since`,
//! the missed notice, a ping answered, the server's pings answered by the
//! library (or it would be dropped), every close code, the close echoed, the origin check,
//! and permessage-deflate offered and declined.

mod common;

use std::process::Command;
use std::time::Duration;

use comet::Config;
use dispatchers::Kind;
use serde_json::{json, Value};

const PYTHON: &str = "/usr/bin/python3";
const ORIGIN: &str = "http://ok.example";

fn run(kind: Kind) {
    let srv = common::start(
        kind,
        Config {
            backlog: 4,
            max_message: 1024,
            heartbeat: Duration::from_secs(1),
            publish_token: Some("s3cret".into()),
            allow_origin: Some(ORIGIN.into()),
            ..Config::default()
        },
        64,
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/websockets_client.py");
    let out = Command::new(PYTHON)
        .args([script, &srv.addr.to_string(), "s3cret", ORIGIN])
        .output()
        .unwrap_or_else(|e| {
            panic!("{PYTHON}: {e}: install python3 and python3-websockets (scripts/deps.sh)")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'websockets'"),
        "python3-websockets is not installed (scripts/deps.sh installs it)"
    );
    assert!(
        out.status.success(),
        "{}: the client failed:\n{stderr}",
        kind.name()
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    let name = kind.name();
    let m = |id: u64, data: &str| json!({"id": id, "data": data});
    assert_eq!(seen["extensions"], json!([]), "{name}: deflate declined");
    assert_eq!(
        seen["a_own"],
        m(1, "hello from a"),
        "{name}: the sender's own back"
    );
    assert_eq!(seen["b_from_a"], m(1, "hello from a"), "{name}");
    assert_eq!(seen["http_id"], 2, "{name}");
    assert_eq!(seen["a_http"], m(2, "from http"), "{name}");
    assert_eq!(seen["a_fragmented"], m(3, "fragmented é"), "{name}");
    assert_eq!(seen["ping_answered"], true, "{name}");
    assert_eq!(seen["resumed"], m(3, "fragmented é"), "{name}");
    let late = json!([
        {"missed": 4},
        m(6, "backlog 2"),
        m(7, "backlog 3"),
        m(8, "backlog 4"),
        m(9, "backlog 5")
    ]);
    assert_eq!(seen["late"], late, "{name}");
    let codes = json!({
        "binary": 1003,
        "too_big": 1009,
        "fragments_too_big": 1009,
        "not_utf8": 1007,
        "continuation_alone": 1002,
        "no_token": 1008,
        "echoed_4000": 4000,
    });
    assert_eq!(seen["codes"], codes, "{name}");
    assert_eq!(seen["bad_channel"], 400, "{name}");
    assert_eq!(seen["wrong_origin"], 403, "{name}: another origin");
    assert_eq!(seen["no_origin"], 403, "{name}: no origin");
    assert_eq!(
        seen["keeper_open"], true,
        "{name}: dropped though it answered pings"
    );
    let got = seen["keeper_got"].as_array().unwrap();
    assert_eq!(got.len(), 10, "{name}: {got:?}");
    assert_eq!(got.last().unwrap(), "still here");
    let st = testkit::stats(srv.addr);
    assert_eq!(st["dropped_unresponsive"], 0, "{name}: {st}");
    srv.stop();
}

macro_rules! every_dispatcher {
    ($($name:ident => $kind:expr),* $(,)?) => {
        #[test]
        fn every_dispatcher_is_in_the_suite() {
            common::assert_every_kind(&[$($kind),*]);
        }
        $(
        #[test]
        fn $name() {
            run($kind)
        }
        )*
    };
}

every_dispatcher! {
    python_websockets_on_reactor => Kind::Reactor,
    python_websockets_on_uring => Kind::Uring,
    python_websockets_on_thread_per_connection => Kind::ThreadPerConn,
    python_websockets_on_thread_pool => Kind::ThreadPool,
    python_websockets_on_green => Kind::Green,
    python_websockets_on_tokio => Kind::Tokio,
}
