//! The peers (nginx + nchan, Pushpin) driven by the real binary: a tiny
//! broadcast on every transport (WebSocket too), started and stopped through
//! scripts/peers/.
//!
//! A peer that is not installed fails the test with what to install, unless
//! `COMETBENCH_SKIP_PEERS=1` (the scripts could install it themselves, but a
//! test should not run apt-get behind one's back).

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cometbench"))
}

fn skip() -> bool {
    std::env::var("COMETBENCH_SKIP_PEERS").is_ok_and(|v| v == "1")
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(name).is_file()
}

/// Whether `peer` is installed; panics with the packages to install when it
/// is not (unless skipping).
fn installed(peer: &str) -> bool {
    let (ok, packages) = match peer {
        "nchan" => (
            on_path("nginx") && Path::new("/usr/lib/nginx/modules/ngx_nchan_module.so").is_file(),
            "nginx libnginx-mod-nchan",
        ),
        "pushpin" => (
            ["pushpin", "condure", "zurl"].iter().all(|b| on_path(b))
                && Path::new("/usr/bin/python3").is_file(),
            "pushpin python3",
        ),
        _ => unreachable!(),
    };
    if ok {
        return true;
    }
    if skip() {
        eprintln!("{peer} not installed: skipped (COMETBENCH_SKIP_PEERS=1)");
        return false;
    }
    panic!(
        "{peer} is not installed: `apt-get install -y {packages}` \
         (or set COMETBENCH_SKIP_PEERS=1 to leave the peer tests out)"
    );
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs a 30-subscriber broadcast on every transport against `peer` only
/// (`--peer`, though the scenario also names a dispatcher) and returns run.json.
fn run_peer(peer: &str) -> serde_json::Value {
    let dir =
        Dir(std::env::temp_dir().join(format!("cometbench-peer-{peer}-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let scenario = dir.0.join("peer.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"peer-{peer}\"\ndispatchers = [\"reactor\"]\npeers = [\"{peer}\"]\n\
             transports = [\"longpoll\", \"sse\", \"stream\", \"iframe\", \"ws\"]\nsteps = [30]\n\
             hold_secs = 0.3\nwarmup_secs = 0.2\nsample_interval_ms = 100\n\
             server_args = [\"--heartbeat\", \"1\"]\n\
             [ramp]\nrate = 1000.0\nin_flight = 32\n\
             [publish]\npattern = \"broadcast\"\nrate = 5.0\nsize = 64\nduration_secs = 1.2\ndrain_secs = 1.0\n"
        ),
    )
    .unwrap();
    let out = bin()
        .arg("run")
        .arg(&scenario)
        .args(["--peer", peer, "--out"])
        .arg(&dir.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("notes on {peer}:")), "{stdout}");
    let run_dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .map(PathBuf::from)
        .expect("results directory printed");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    let cases = run["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5, "only the peer ran");
    for c in cases {
        assert_eq!(c["target"], peer);
        assert_eq!(c["kind"], "peer");
        assert!(!c["notes"].as_array().unwrap().is_empty());
        // Stopped with its whole process group: nothing of it is left.
        if let Some(pid) = c["server"]["pid"].as_u64() {
            // SAFETY: kill with signal 0 only checks for existence.
            let alive = unsafe { libc::kill(pid as i32, 0) } == 0;
            assert!(!alive, "{peer}: process {pid} still running");
        }
    }
    run
}

fn case<'a>(run: &'a serde_json::Value, transport: &str) -> &'a serde_json::Value {
    run["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["transport"] == transport)
        .unwrap_or_else(|| panic!("no {transport} case"))
}

/// Every message delivered once (or, `exact` false, all but at most two
/// messages' worth), latency measured for each, the whole peer sampled.
fn assert_delivered(c: &serde_json::Value, min_processes: u64, exact: bool) {
    let name = format!("{} {}", c["target"], c["transport"]);
    assert_eq!(c["status"], "ok", "{name}: {}", c["failure"]);
    assert_eq!(c["connections"]["connected"], 30, "{name}");
    let d = &c["delivery"];
    let expected = d["expected"].as_u64().unwrap();
    let received = d["received"].as_u64().unwrap();
    assert_eq!(expected, 30 * 6, "{name}: 6 messages to 30 subscribers");
    if exact {
        assert_eq!(received, expected, "{name}: {d}");
        assert_eq!(d["lost"], 0, "{name}");
    } else {
        assert!(received + 2 * 30 >= expected, "{name}: {d}");
        assert_eq!(d["lost"].as_u64().unwrap(), expected - received, "{name}");
    }
    for k in ["duplicates", "out_of_order", "protocol_errors", "unstamped"] {
        assert_eq!(d[k], 0, "{name}: {k}");
    }
    assert_eq!(d["latency_us"]["count"], received, "{name}");
    assert!(c["hlog"].is_string(), "{name}");
    let at = &c["server"]["at_step"];
    assert!(
        at["processes"].as_u64().unwrap() >= min_processes,
        "{name}: {at}"
    );
    assert!(at["rss"].as_u64().unwrap() > 0, "{name}");
    assert_eq!(c["publish"]["accepted"], 6, "{name}");
}

#[test]
fn nchan_every_transport() {
    if !installed("nchan") {
        return;
    }
    let run = run_peer("nchan");
    for t in ["longpoll", "sse", "stream", "ws"] {
        let c = case(&run, t);
        // The master and its worker.
        assert_delivered(c, 2, true);
        // nchan counts its subscribers in its publish answers.
        assert_eq!(c["publish"]["handed_to"], 6 * 30, "{t}");
    }
    // Each SSE stream opens with a comment (`: hi`), then pings every second;
    // so does each WebSocket (its pings answered, or nchan closes it).
    assert!(case(&run, "sse")["wire"]["heartbeats"].as_u64().unwrap() > 30);
    assert!(case(&run, "ws")["wire"]["heartbeats"].as_u64().unwrap() > 30);
    let iframe = case(&run, "iframe");
    assert_eq!(iframe["status"], "skipped");
    assert!(iframe["notes"].as_array().unwrap().iter().any(|n| n
        .as_str()
        .unwrap()
        .starts_with("skipped: nchan has no iframe")));
    assert_eq!(iframe["connections"]["connected"], 0);
}

#[test]
fn pushpin_every_transport() {
    if !installed("pushpin") {
        return;
    }
    let run = run_peer("pushpin");
    for t in ["sse", "stream", "iframe", "ws"] {
        // Runner, condure, zurl, pushpin-proxy, pushpin-handler.
        assert_delivered(case(&run, t), 5, true);
    }
    // Without a backlog, a long-poll client can miss what is published while
    // it re-polls (and, seen in about half the runs, one early message reaches
    // none of them): counted as lost, never as a protocol error.
    assert_delivered(case(&run, "longpoll"), 5, false);
    // Keep-alives after 1 s without data (the hold and the drain have such
    // gaps): over WebSocket, pings the backend asked for.
    for t in ["sse", "stream", "iframe", "ws"] {
        let beats = case(&run, t)["wire"]["heartbeats"].as_u64().unwrap();
        assert!(beats > 0, "{t}: no keep-alive");
    }
}
