//! Several nodes sharing a broker, through the real binary: `serve --broker`
//! refusing to start without its broker, and small runs of the scale-out,
//! chat, node-kill and node-restart scenarios with a real redis-server (and
//! HAProxy, and two nginx + nchan nodes), checked by what run.json says.
//!
//! The scenarios/*.toml files are the full-size runs; these are the same
//! shapes at a size CI affords, one at a time (they take both cores).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;
use testkit::scenario::{run_scenario, Ran};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs scenario `text` (named `name`, with [`SMALL`] before it): its exit
/// code, run.json, and the run (its results are removed when it drops).
fn run(name: &str, text: &str) -> (Option<i32>, Value, Ran) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let ran = run_scenario(
        env!("CARGO_BIN_EXE_cometbench"),
        &format!("scale-{name}"),
        &format!("{SMALL}{text}"),
    );
    (ran.code, ran.run.clone(), ran)
}

/// What every small run here shares: one step of a few hundred
/// subscribers over nodes sharing a Redis, short phases.
const SMALL: &str = r#"broker = "redis"
hold_secs = 0.5
warmup_secs = 0.5
sample_interval_ms = 200
"#;

fn cases(run: &Value) -> &Vec<Value> {
    run["cases"].as_array().unwrap()
}

/// The case ran, every message arrived once at every subscriber.
fn assert_delivered(c: &Value) {
    let name = format!(
        "{} {} {}n",
        c["target"], c["transport"], c["cluster"]["nodes"]
    );
    assert_eq!(c["status"], "ok", "{name}: {}", c["failure"]);
    let d = &c["delivery"];
    assert!(d["expected"].as_u64().unwrap() > 0, "{name}");
    assert_eq!(d["received"], d["expected"], "{name}: {d}");
    for k in ["lost", "duplicates", "out_of_order", "protocol_errors"] {
        assert_eq!(d[k], 0, "{name}: {k}");
    }
}

/// Every key under `cluster` is named in results/README.md.
fn assert_documented(run: &Value) {
    let doc = std::fs::read_to_string(root().join("results/README.md")).unwrap();
    fn keys(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                out.push(k.clone());
                keys(v, out);
            }),
            Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    for c in cases(run) {
        keys(&c["cluster"], &mut all);
    }
    assert!(!all.is_empty());
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(missing.is_empty(), "undocumented cluster keys: {missing:?}");
}

#[test]
fn serve_with_an_unreachable_broker_exits_with_one_line_naming_it() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let ours = [
        "thread-per-connection",
        "thread-pool",
        "reactor",
        "uring",
        "green",
        "tokio",
    ];
    for name in ours {
        let out = Command::new(env!("CARGO_BIN_EXE_cometbench"))
            .args(["serve", "--dispatcher", name, "--listen", "127.0.0.1:0"])
            .args(["--broker", &url])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}: no address printed");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        let expected = format!("broker {url} unreachable");
        assert!(err.contains(&expected), "{name}: {err}");
    }
}

/// One channel over 1 and 2 nodes of two dispatchers: each message reaches
/// every node once (both hold subscribers), every subscriber gets it once,
/// and the broker's cost is measured beside the nodes'; the chart draws it.
#[test]
fn a_small_scale_out() {
    let (code, run, ran) = run(
        "out",
        r#"dispatchers = ["reactor", { name = "uring", args = ["--threads", "2"] }]
transports = ["sse"]
steps = [300]
nodes = [1, 2]
publish_listen = true
[publish]
pattern = "broadcast"
rate = 5.0
duration_secs = 3.0
drain_secs = 1.0
"#,
    );
    assert_eq!(code, Some(0));
    assert_eq!(cases(&run).len(), 4);
    for c in cases(&run) {
        assert_delivered(c);
        let cl = &c["cluster"];
        let nodes = cl["nodes"].as_u64().unwrap();
        assert_eq!(cl["per_node"].as_array().unwrap().len() as u64, nodes);
        assert_eq!(cl["node_pids"].as_array().unwrap().len() as u64, nodes);
        // A broadcast every node follows: one broker-to-node message per
        // node per publish, and the publishes went to the nodes in turn.
        assert_eq!(
            cl["broker_to_node_per_publish"].as_f64(),
            Some(nodes as f64),
            "{cl}"
        );
        assert_eq!(cl["published"], c["publish"]["accepted"], "{cl}");
        for n in cl["per_node"].as_array().unwrap() {
            assert!(n["published"].as_u64().unwrap() > 0, "{cl}");
        }
        assert!(cl["cpu_per_delivery_us"].as_f64().is_some(), "{cl}");
        assert!(cl["broker_peak_rss"].as_u64().unwrap() > 0, "{cl}");
        assert_eq!(
            c["connections"]["server_subscribers"], 300,
            "subscribers summed over the nodes"
        );
    }
    assert_documented(&run);
    let charts = ran.dir.join("charts");
    let out = Command::new(env!("CARGO_BIN_EXE_cometbench"))
        .arg("chart")
        .arg(&ran.dir)
        .arg("--out")
        .arg(&charts)
        .args(["--format", "svg"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(charts.join("scale-out.svg")).unwrap();
    assert!(svg.contains("Scaling out through a broker"));
    assert!(svg.contains("the broker&apos;s share") || svg.contains("the broker's share"));
}

/// Per-user channels over two nodes: each message reaches exactly the node
/// its user is on (O(l) routing), not both.
#[test]
fn chat_over_two_nodes_routes_each_message_to_one_node() {
    let (code, run, _) = run(
        "chat",
        r#"dispatchers = ["reactor"]
transports = ["sse"]
steps = [200]
nodes = [2]
publish_listen = true
[publish]
pattern = "per-user"
rate = 100.0
duration_secs = 2.0
drain_secs = 1.0
"#,
    );
    assert_eq!(code, Some(0));
    let c = &cases(&run)[0];
    assert_delivered(c);
    let cl = &c["cluster"];
    assert_eq!(cl["broker_to_node_per_publish"].as_f64(), Some(1.0), "{cl}");
    for n in cl["per_node"].as_array().unwrap() {
        // Every user has a channel of its own, on one node.
        assert!(n["received"].as_u64().unwrap() > 0, "{cl}");
    }
}

/// Node 1 of 2 SIGKILLed mid-broadcast: its subscribers go on to node 0 and
/// resume from the shared backlog; nothing is lost unreported.
#[test]
fn a_killed_node_loses_nothing_unreported() {
    let (code, run, _) = run(
        "kill",
        r#"dispatchers = ["reactor", { name = "thread-per-connection", args = ["--thread-stack", "65536"] }]
transports = ["sse", "longpoll"]
steps = [200]
nodes = [2]
publish_listen = true
[publish]
pattern = "broadcast"
rate = 10.0
duration_secs = 3.0
drain_secs = 1.0
[fault]
kind = "node"
at_secs = 1.0
"#,
    );
    assert_eq!(code, Some(0));
    assert_eq!(cases(&run).len(), 4);
    for c in cases(&run) {
        let name = format!("{} {}", c["target"], c["transport"]);
        let f = &c["fault"];
        assert_eq!(f["passed"], true, "{name}: {f}");
        assert!(f["counts"]["server_drops"].as_u64().unwrap() > 0, "{name}");
        assert_eq!(c["delivery"]["lost"], 0, "{name}");
        assert_eq!(c["status"], "ok", "{name}: {}", c["failure"]);
        // The killed node is gone from the figures; node 0 took everyone.
        assert_eq!(c["cluster"]["per_node"].as_array().unwrap().len(), 1);
    }
}

/// Node 0 of 2 restarted: long-polls come back and resume from the broker's
/// backlog, so none of its messages is lost.
#[test]
fn a_node_restart_with_a_broker_loses_no_long_poll_message() {
    let (code, run, _) = run(
        "restart",
        r#"dispatchers = ["reactor"]
transports = ["longpoll"]
steps = [200]
nodes = [2]
publish_listen = true
[publish]
pattern = "broadcast"
rate = 10.0
duration_secs = 3.0
drain_secs = 1.0
[fault]
kind = "restart"
at_secs = 1.0
downtime_secs = 0.5
"#,
    );
    assert_eq!(code, Some(0));
    let c = &cases(&run)[0];
    let f = &c["fault"];
    assert_eq!(f["passed"], true, "{f}");
    assert_eq!(f["restart"]["lost"], 0, "{f}");
    assert!(f["counts"]["server_drops"].as_u64().unwrap() > 0);
    assert_eq!(c["status"], "ok", "{}", c["failure"]);
}

/// HAProxy in front of two of our nodes and of two nginx + nchan nodes
/// sharing one Redis: one address, every message to every subscriber.
#[test]
fn a_balancer_in_front_of_two_nodes_and_nchan_sharing_redis() {
    let (code, run, _) = run(
        "balancer",
        r#"dispatchers = ["reactor"]
peers = ["nchan"]
transports = ["sse"]
steps = [200]
nodes = [2]
balancer = "haproxy"
[publish]
pattern = "broadcast"
rate = 5.0
duration_secs = 2.0
drain_secs = 1.0
"#,
    );
    assert_eq!(code, Some(0));
    assert_eq!(cases(&run).len(), 2);
    for c in cases(&run) {
        assert_delivered(c);
        assert_eq!(c["cluster"]["balancer"], "haproxy");
        assert!(c["cluster"]["balancer_cpu"].as_f64().is_some());
    }
    // Both of our nodes got subscribers through the balancer.
    let ours = &cases(&run)[0]["cluster"]["per_node"];
    for n in ours.as_array().unwrap() {
        assert!(n["delivered"].as_u64().unwrap() > 0, "{ours}");
    }
}

/// Three reactor processes sharing one port and a Redis: the kernel spreads
/// the subscribers over them (each node delivers to some), every message
/// reaches every subscriber once, and each node is told apart by its own
/// publish listener.
#[test]
fn nodes_sharing_one_port_hold_the_subscribers_between_them() {
    let (code, run, _) = run(
        "shared-port",
        r#"dispatchers = [{ name = "reactor", args = ["--threads", "1"] }]
transports = ["sse"]
steps = [600]
nodes = [3]
shared_port = true
publish_listen = true
[publish]
pattern = "broadcast"
rate = 5.0
duration_secs = 2.0
drain_secs = 1.0
"#,
    );
    assert_eq!(code, Some(0));
    let c = &cases(&run)[0];
    assert_delivered(c);
    assert_eq!(c["connections"]["server_subscribers"], 600);
    let cl = &c["cluster"];
    let per_node = cl["per_node"].as_array().unwrap();
    assert_eq!(per_node.len(), 3, "{cl}");
    let addrs: std::collections::BTreeSet<&str> = per_node
        .iter()
        .map(|n| n["addr"].as_str().unwrap())
        .collect();
    assert_eq!(addrs.len(), 3, "publish listeners of their own: {cl}");
    let published = c["publish"]["accepted"].as_u64().unwrap();
    let delivered: u64 = per_node
        .iter()
        .map(|n| n["delivered"].as_u64().unwrap())
        .sum();
    assert_eq!(delivered, 600 * published, "{cl}");
    for n in per_node {
        assert!(n["delivered"].as_u64().unwrap() > 0, "{cl}");
    }
    assert!(
        cl["broker_cpu"].as_f64().unwrap() > 0.0,
        "run time in ns: {cl}"
    );
}
