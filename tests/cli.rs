//! The real `cometbench` binary: serve, run, and their errors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use testkit::Server;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cometbench"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every key of a JSON document, recursively (map keys only).
fn keys(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                out.insert(k.clone());
                keys(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

/// A reactor server on port 0.
fn serve_reactor() -> Server {
    Server::start(
        env!("CARGO_BIN_EXE_cometbench"),
        &["--dispatcher", "reactor", "--listen", "127.0.0.1:0"],
    )
}

#[test]
fn serve_prints_address_and_stops_on_sigterm() {
    let server = serve_reactor();
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"dispatcher\":\"reactor\""));
    let status = server.terminate();
    assert!(status.success(), "{status}");
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let out = bin()
        .args(["serve", "--dispatcher", "fibers"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dispatcher 'fibers'"));

    let dir = std::env::temp_dir().join(format!("cometbench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\ndispatchers = [\"reactor\"]\ntransports = [\"sse\"]\nsteps = [10]\n[publish]\nrat = 3.0\n",
    )
    .unwrap();
    let out = bin().arg("run").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("rat"), "{err}");

    let out = bin()
        .args(["run", "/nonexistent/scenario.toml"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
}

#[test]
fn refuses_public_listen_without_token() {
    let out = bin()
        .args(["serve", "--dispatcher", "reactor", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--publish-token"));
}

/// What CI runs: scenarios/smoke.toml, every dispatcher and transport; every
/// message delivered exactly once, no errors, and run.json as documented.
#[test]
fn smoke_scenario() {
    let out_dir = std::env::temp_dir().join(format!("cometbench-smoke-{}", std::process::id()));
    let out = bin()
        .arg("run")
        .arg(root().join("scenarios/smoke.toml"))
        .arg("--out")
        .arg(&out_dir)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let (dir, run) = run_json(&stdout);
    assert_eq!(run["schema"], "cometbench-run/1");
    let cases = run["cases"].as_array().unwrap();
    // The smoke scenario names every dispatcher.
    for d in dispatchers::Kind::ALL.map(|k| k.name()) {
        for t in ["longpoll", "sse", "stream", "iframe", "ws"] {
            let c = cases
                .iter()
                .find(|c| c["target"] == d && c["transport"] == t)
                .unwrap_or_else(|| panic!("{d} {t} missing"));
            let name = format!("{d} {t}");
            assert_eq!(c["status"], "ok", "{name}: {}", c["failure"]);
            let del = &c["delivery"];
            assert!(del["expected"].as_u64().unwrap() > 0, "{name}");
            assert_eq!(del["received"], del["expected"], "{name}");
            for k in [
                "lost",
                "duplicates",
                "out_of_order",
                "protocol_errors",
                "unstamped",
            ] {
                assert_eq!(del[k], 0, "{name}: {k}");
            }
            assert_eq!(c["connections"]["connected"], 200, "{name}");
            assert_eq!(c["connections"]["server_subscribers"], 200, "{name}");
            assert!(c["server"]["rss_per_conn"].is_number(), "{name}");
            let hlog = c["hlog"].as_str().expect("an hlog");
            assert!(std::fs::read_to_string(dir.join(hlog))
                .unwrap()
                .contains("#[StartTime:"));
        }
    }
    assert!(std::fs::metadata(dir.join("samples.jsonl")).unwrap().len() > 0);
    // Every key the run wrote is documented.
    let doc = std::fs::read_to_string(root().join("results/README.md")).unwrap();
    let mut all = std::collections::BTreeSet::new();
    keys(&run, &mut all);
    let scenario_keys: std::collections::BTreeSet<String> = {
        let mut s = std::collections::BTreeSet::new();
        keys(&run["scenario"], &mut s);
        s
    };
    let undocumented: Vec<_> = all
        .iter()
        .filter(|k| !scenario_keys.contains(*k) && !doc.contains(&format!("`{k}`")))
        .filter(|k| !k.chars().all(|c| c.is_ascii_digit() || c == '_'))
        .filter(|k| !k.starts_with("http_") && !cause_keys().contains(&k.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "undocumented run.json keys: {undocumented:?}"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// The results directory a run printed, and its `run.json`.
fn run_json(stdout: &str) -> (PathBuf, serde_json::Value) {
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .map(PathBuf::from)
        .expect("results directory printed");
    let text = std::fs::read_to_string(dir.join("run.json")).unwrap();
    (dir, serde_json::from_str(&text).unwrap())
}

/// Keys of cause maps, documented as a list of values.
fn cause_keys() -> &'static [&'static str] {
    &[
        "refused",
        "timeout",
        "reset",
        "no_ports",
        "fd_limit",
        "closed",
        "protocol",
        "other",
        "io",
        "bad_response",
        "not_connected",
    ]
}

/// The per-user pattern over WebSocket: every user publishes over its own
/// socket and gets each message back with the next id of its channel.
#[test]
fn chat_over_websocket_publishes_over_the_sockets() {
    let dir = std::env::temp_dir().join(format!("cometbench-chat-ws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("chat-ws.toml");
    // Every dispatcher: each reads its held sockets its own way.
    let every: Vec<String> = dispatchers::Kind::ALL
        .map(|k| format!("\"{}\"", k.name()))
        .into();
    std::fs::write(
        &scenario,
        format!("name = \"chat-ws\"\ndispatchers = [{}]\n", every.join(", "))
            + "transports = [\"ws\"]\nsteps = [60]\nhold_secs = 0.2\nwarmup_secs = 0.2\n\
         sample_interval_ms = 100\npublish_listen = true\n\
         [ramp]\nrate = 2000.0\nin_flight = 64\n\
         [publish]\npattern = \"per-user\"\nrate = 120.0\nsize = 64\nduration_secs = 1.0\ndrain_secs = 0.5\n\
         [thresholds]\nmax_errors = 0\nmin_delivered_fraction = 1.0\n",
    )
    .unwrap();
    let out = bin()
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&dir)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let (_, run) = run_json(&stdout);
    let cases = run["cases"].as_array().unwrap();
    assert_eq!(cases.len(), every.len(), "one case per dispatcher");
    for c in cases {
        let name = c["target"].as_str().unwrap();
        let p = &c["publish"];
        assert_eq!(p["scheduled"], 120, "{name}: {p}");
        assert_eq!(p["accepted"], 120, "{name}: sent over the sockets: {p}");
        // Nothing went through the publish listener: no subscriber counts.
        assert_eq!(p["handed_to"], 0, "{name}: {p}");
        let d = &c["delivery"];
        assert_eq!(d["expected"], 120, "{name}: {d}");
        assert_eq!(d["received"], 120, "{name}: {d}");
        assert_eq!(d["lost"], 0, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--target` drives a server the run did not start, sampled through `--pid`;
/// a broken threshold exits 99.
#[test]
fn external_target_and_threshold_exit() {
    let server = serve_reactor();
    let addr = server.addr;
    let dir = std::env::temp_dir().join(format!("cometbench-ext-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("ext.toml");
    std::fs::write(
        &scenario,
        "name = \"ext\"\ntransports = [\"sse\"]\nsteps = [20]\nhold_secs = 0.2\nwarmup_secs = 0.1\n\
         [publish]\npattern = \"broadcast\"\nrate = 10.0\nduration_secs = 0.5\ndrain_secs = 0.5\n\
         [thresholds]\np99_ms = 0.001\n",
    )
    .unwrap();
    let out = bin()
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&dir)
        .arg("--target")
        .arg(format!(
            "http://{addr}/sub/{{channel}}?transport={{transport}}"
        ))
        .arg("--pid")
        .arg(server.child.id().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    drop(server);
    assert_eq!(
        out.status.code(),
        Some(99),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("threshold broken"), "{stdout}");
    let run_dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .map(PathBuf::from)
        .unwrap();
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    let case = &run["cases"][0];
    assert_eq!(case["kind"], "external");
    assert_eq!(case["delivery"]["received"], case["delivery"]["expected"]);
    assert_eq!(case["delivery"]["received"], 100);
    assert!(case["server"]["at_step"]["rss"].as_u64().unwrap() > 0);
    assert_eq!(run["thresholds"]["passed"], false);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--message-ttl` and `--max-channels` reach the hub: past the limit a new
/// channel is `503`, and once their messages are older than the lifetime the
/// channels are gone, with no traffic, and `/stats` says so.
#[test]
fn serve_expires_channels_and_bounds_them() {
    let out = bin()
        .args(["serve", "--dispatcher", "reactor", "--message-ttl", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--message-ttl must be a positive number"),
        "{err}"
    );

    let server = Server::start(
        env!("CARGO_BIN_EXE_cometbench"),
        &[
            "--dispatcher",
            "reactor",
            "--listen",
            "127.0.0.1:0",
            "--message-ttl",
            "1",
            "--max-channels",
            "2",
        ],
    );
    let a = server.addr;
    assert_eq!(testkit::publish(a, "a", "x"), 1);
    assert_eq!(testkit::publish(a, "b", "x"), 1);
    let (head, _) = testkit::request(a, comet::client::publish_request("c", "x", None).as_bytes());
    assert_eq!(head.status, 503);
    let st = testkit::stats(a);
    assert_eq!(st["channels"], 2, "{st}");
    assert_eq!(st["config"]["message_ttl_secs"], 1.0, "{st}");
    assert_eq!(st["config"]["max_channels"], 2, "{st}");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while testkit::stats(a)["channels"] != 0 {
        assert!(std::time::Instant::now() < end, "{}", testkit::stats(a));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(testkit::publish(a, "c", "x"), 1);
}
