//! The fault scenarios, small, through the real binary against every
//! dispatcher: each pass line must hold, every fault key of run.json must be
//! documented, and a pass line that cannot hold must fail the run (exit 99).
//!
//! The scenarios/faults-*.toml files are the full-size runs; these are the
//! same faults at a size CI affords. The runs take the machine's two cores,
//! so they go one at a time.

use std::path::PathBuf;
use std::sync::Mutex;

use testkit::scenario::run_scenario;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const DISPATCHERS: &str = r#"dispatchers = [
    { name = "thread-per-connection", args = ["--thread-stack", "65536"] },
    { name = "thread-pool", args = ["--pool-size", "512"] },
    "reactor",
    { name = "uring", args = ["--threads", "2"] },
    { name = "green", args = ["--threads", "2", "--thread-stack", "32768"] },
    { name = "tokio", args = ["--threads", "2"] },
]"#;

#[test]
fn every_dispatcher_takes_the_faults() {
    for kind in dispatchers::Kind::ALL {
        let name = format!("\"{}\"", kind.name());
        assert!(DISPATCHERS.contains(&name), "{name} is not in DISPATCHERS");
    }
}

/// Dispatchers in [`DISPATCHERS`]: every one (see above).
fn kinds() -> usize {
    dispatchers::Kind::ALL.len()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs scenario `text` (named `name`); its exit code, stdout and run.json.
fn run(name: &str, text: &str) -> (Option<i32>, String, serde_json::Value) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let ran = run_scenario(env!("CARGO_BIN_EXE_cometbench"), name, text);
    (ran.code, ran.stdout.clone(), ran.run.clone())
}

/// Every case ran its fault, and every check of its pass line held.
fn assert_passed(run: &serde_json::Value, kind: &str, cases: usize) {
    let all = run["cases"].as_array().unwrap();
    assert_eq!(all.len(), cases);
    for c in all {
        let name = format!("{} {}", c["target"], c["transport"]);
        let f = &c["fault"];
        assert_eq!(f["kind"], kind, "{name}");
        let checks = f["checks"].as_array().unwrap();
        assert!(!checks.is_empty(), "{name}: judged");
        for check in checks {
            assert_eq!(check["passed"], true, "{name}: {check}");
        }
        assert_eq!(f["passed"], true, "{name}");
        assert_eq!(c["status"], "ok", "{name}: {}", c["failure"]);
    }
    assert_eq!(run["thresholds"]["passed"], true);
    assert_documented(run);
}

/// Every key under `fault` is named in results/README.md.
fn assert_documented(run: &serde_json::Value) {
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
    let doc = std::fs::read_to_string(root().join("results/README.md")).unwrap();
    let mut all = std::collections::BTreeSet::new();
    for c in run["cases"].as_array().unwrap() {
        keys(&c["fault"], &mut all);
    }
    let missing: Vec<_> = all
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(missing.is_empty(), "undocumented fault keys: {missing:?}");
}

#[test]
fn disconnect_storm_close_and_reset() {
    for reset in [false, true] {
        let (code, stdout, run) = run(
            if reset { "ci-reset" } else { "ci-disconnect" },
            &format!(
                "{DISPATCHERS}\ntransports = [\"sse\"]\nsteps = [400]\nhold_secs = 0.5\nwarmup_secs = 0.5\n\
                 sample_interval_ms = 200\n[fault]\nkind = \"disconnect\"\nreset = {reset}\nrecover_secs = 5.0\n"
            ),
        );
        assert_eq!(code, Some(0), "{stdout}");
        assert_passed(&run, "disconnect", kinds());
        for c in run["cases"].as_array().unwrap() {
            let f = &c["fault"];
            assert_eq!(f["counts"]["storm_closed"], 400);
            let metrics: Vec<&str> = f["recovery"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["metric"].as_str().unwrap())
                .collect();
            assert_eq!(
                metrics,
                ["rss", "fds", "threads", "subscribers", "connections"]
            );
            // The storm was real: the server held them all before it.
            let subs = &f["recovery"][3];
            assert_eq!(subs["before"], 400.0, "{}", c["target"]);
            assert_eq!(subs["after"], 0.0, "{}", c["target"]);
        }
    }
}

#[test]
fn churn_loses_nothing_silently() {
    let (code, stdout, run) = run(
        "ci-churn",
        &format!(
            "{DISPATCHERS}\ntransports = [\"longpoll\", \"sse\", \"stream\", \"iframe\", \"ws\"]\nsteps = [200]\n\
             hold_secs = 0.3\nwarmup_secs = 0.3\nsample_interval_ms = 200\npublish_listen = true\n\
             [publish]\npattern = \"broadcast\"\nrate = 25.0\nduration_secs = 4.0\ndrain_secs = 1.0\n\
             [fault]\nkind = \"churn\"\nrate = 0.25\naway_min_ms = 0\naway_max_ms = 3500\n"
        ),
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert_passed(&run, "churn", 5 * kinds());
    let mut missed = 0;
    for c in run["cases"].as_array().unwrap() {
        let f = &c["fault"]["counts"];
        assert!(f["churned"].as_u64().unwrap() >= 50, "{}", c["fault"]);
        assert_eq!(f["churned"], f["reconnects"]);
        assert!(f["churned_reset"].as_u64().unwrap() > 0);
        missed += c["delivery"]["missed_reported"].as_u64().unwrap();
    }
    // Away up to 3.5 s at 25 messages/s outlasts the 64-message backlog: the
    // servers must have said so somewhere.
    assert!(missed > 0, "no missed messages reported");
}

#[test]
fn slow_consumers_are_dropped_and_memory_stays_bounded() {
    let (code, stdout, run) = run(
        "ci-slow",
        &format!(
            "{DISPATCHERS}\ntransports = [\"sse\"]\nsteps = [100]\nhold_secs = 0.3\nwarmup_secs = 0.3\n\
             sample_interval_ms = 200\npublish_listen = true\n\
             [publish]\npattern = \"broadcast\"\nrate = 20.0\nsize = 16384\nduration_secs = 15.0\ndrain_secs = 1.0\n\
             [fault]\nkind = \"slow\"\nfraction = 0.2\nmax_rss_growth_mib = 64\n"
        ),
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert_passed(&run, "slow", kinds());
    for c in run["cases"].as_array().unwrap() {
        let f = &c["fault"];
        assert_eq!(f["counts"]["slow"], 20, "{}", c["target"]);
        assert!(f["server_dropped_slow"].as_u64().unwrap() >= 20);
    }
}

#[test]
fn slowloris_is_cut_off_by_the_header_deadline() {
    let (code, stdout, run) = run(
        "ci-slowloris",
        &format!(
            "{DISPATCHERS}\ntransports = [\"sse\"]\nsteps = [100]\nhold_secs = 1.0\nwarmup_secs = 0.3\n\
             sample_interval_ms = 500\npublish_listen = true\n\
             [publish]\npattern = \"broadcast\"\nrate = 10.0\nduration_secs = 14.0\ndrain_secs = 0.5\n\
             [fault]\nkind = \"slowloris\"\nconnections = 300\nbyte_interval_ms = 1000\n"
        ),
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert_passed(&run, "slowloris", kinds());
    for c in run["cases"].as_array().unwrap() {
        let f = &c["fault"];
        assert!(
            f["counts"]["attackers_closed"].as_u64().unwrap() >= 300,
            "{f}"
        );
        assert!(f["probe"]["answered"].as_u64().unwrap() >= 1, "{f}");
    }
}

#[test]
fn restart_is_survived_and_losses_reported() {
    let (code, stdout, run) = run(
        "ci-restart",
        &format!(
            "{DISPATCHERS}\ntransports = [\"longpoll\", \"sse\"]\nsteps = [200]\nhold_secs = 0.3\n\
             warmup_secs = 0.3\nsample_interval_ms = 200\npublish_listen = true\n\
             [publish]\npattern = \"broadcast\"\nrate = 20.0\nduration_secs = 5.0\ndrain_secs = 1.0\n\
             [fault]\nkind = \"restart\"\nat_secs = 2.0\ndowntime_secs = 0.5\n"
        ),
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert_passed(&run, "restart", 2 * kinds());
    for c in run["cases"].as_array().unwrap() {
        let f = &c["fault"];
        // A subscriber that came back to the old server while it was still
        // stopping is dropped twice: every drop must be followed by a return.
        let drops = f["counts"]["server_drops"].as_u64().unwrap();
        assert!(drops >= 200, "{}: {drops} drops", c["target"]);
        assert_eq!(f["counts"]["reconnects"], drops, "{}", c["target"]);
        assert!(f["restart"]["new_pid"].is_number());
        assert_ne!(f["restart"]["new_pid"], f["restart"]["old_pid"]);
        // Subscribers saw messages from both lives of the server.
        assert!(c["delivery"]["received"].as_u64().unwrap() > 0);
    }
}

/// A pass line that cannot hold fails the case and the run (exit 99): the
/// checks are real.
#[test]
fn a_broken_pass_line_exits_99() {
    let (code, stdout, run) = run(
        "ci-broken",
        "dispatchers = [\"reactor\"]\ntransports = [\"sse\"]\nsteps = [50]\nhold_secs = 0.2\nwarmup_secs = 0.2\n\
         sample_interval_ms = 100\n\
         [publish]\npattern = \"broadcast\"\nrate = 20.0\nsize = 16384\nduration_secs = 2.0\ndrain_secs = 0.5\n\
         [fault]\nkind = \"slow\"\nfraction = 0.2\nmax_rss_growth_mib = 0\n",
    );
    assert_eq!(code, Some(99), "{stdout}");
    assert!(
        stdout.contains("fault slow on reactor sse 50: FAIL"),
        "{stdout}"
    );
    let c = &run["cases"][0];
    assert_eq!(c["status"], "failed");
    assert_eq!(c["fault"]["passed"], false);
    assert!(c["failure"]
        .as_str()
        .unwrap()
        .contains("server RSS grew at most 0 MiB"));
}
