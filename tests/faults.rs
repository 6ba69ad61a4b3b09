//! The fault scenarios, small, through the real binary against every
//! dispatcher: each pass line must hold, every fault key of run.json must be
//! documented, and a pass line that cannot hold must fail the run (exit 99).
//!
//! The scenarios/faults-*.toml files are the full-size runs; these are the
//! same faults at a size CI affords. Each fault is one run per dispatcher,
//! [`AT_ONCE`] runs at a time across the tests: a run sleeps most of its
//! time (holds, publishing at 10 to 25 messages a second, the recovery
//! watched). One run at a time, the suite took 11 minutes and 150 s of CPU.

use std::path::PathBuf;

use serde_json::Value;
use testkit::scenario::run_scenario;
use testkit::slots::Slots;

/// Runs at once: with four, every pass line held beside the chat suite's
/// browser on a machine loaded past 10 (other builds).
const AT_ONCE: usize = 4;

static RUNS: Slots = Slots::new(AT_ONCE);

/// Every dispatcher, as an entry of a scenario's `dispatchers` list.
const DISPATCHERS: [&str; 6] = [
    r#"{ name = "thread-per-connection", args = ["--thread-stack", "65536"] }"#,
    r#"{ name = "thread-pool", args = ["--pool-size", "512"] }"#,
    r#""reactor""#,
    r#"{ name = "uring", args = ["--threads", "2"] }"#,
    r#"{ name = "green", args = ["--threads", "2", "--thread-stack", "32768"] }"#,
    r#"{ name = "tokio", args = ["--threads", "2"] }"#,
];

#[test]
fn every_dispatcher_takes_the_faults() {
    for kind in dispatchers::Kind::ALL {
        let name = format!("\"{}\"", kind.name());
        assert!(
            DISPATCHERS.iter().any(|d| d.contains(&name)),
            "{name} is not in DISPATCHERS"
        );
    }
}

/// Dispatchers in [`DISPATCHERS`]: every one (see above).
fn kinds() -> usize {
    dispatchers::Kind::ALL.len()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One run of a scenario: its exit code, stdout and run.json.
struct Run {
    code: Option<i32>,
    stdout: String,
    json: Value,
}

/// Runs scenario `text` (named `name`) on `dispatchers`.
fn run(name: &str, dispatchers: &str, text: &str) -> Run {
    let _slot = RUNS.take();
    let text = format!("dispatchers = [{dispatchers}]\n{text}");
    let ran = run_scenario(env!("CARGO_BIN_EXE_cometbench"), name, &text);
    Run {
        code: ran.code,
        stdout: ran.stdout.clone(),
        json: ran.run.clone(),
    }
}

/// Runs scenario `text` once for each of [`DISPATCHERS`], the runs side by
/// side (at most [`AT_ONCE`] at a time); each must exit 0.
fn run_each(name: &str, text: &str) -> Vec<Run> {
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let jobs: Vec<_> = DISPATCHERS
            .iter()
            .enumerate()
            .map(|(i, d)| scope.spawn(move || run(&format!("{name}-{i}"), d, text)))
            .collect();
        jobs.into_iter()
            .map(|j| j.join().expect("a run panicked"))
            .collect()
    });
    for r in &runs {
        assert_eq!(r.code, Some(0), "{}", r.stdout);
    }
    runs
}

/// The cases of every run.
fn cases(runs: &[Run]) -> Vec<&Value> {
    runs.iter()
        .flat_map(|r| r.json["cases"].as_array().unwrap())
        .collect()
}

/// Every case ran its fault, and every check of its pass line held; every
/// dispatcher ran `per_dispatcher` cases.
fn assert_passed(runs: &[Run], kind: &str, per_dispatcher: usize) {
    let all = cases(runs);
    assert_eq!(all.len(), per_dispatcher * kinds());
    for d in dispatchers::Kind::ALL {
        let of_d = all.iter().filter(|c| c["target"] == d.name()).count();
        assert_eq!(of_d, per_dispatcher, "cases of {}", d.name());
    }
    for c in &all {
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
    for r in runs {
        assert_eq!(r.json["thresholds"]["passed"], true);
    }
    assert_documented(&all);
}

/// Every key under `fault` is named in results/README.md.
fn assert_documented(cases: &[&Value]) {
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
    for c in cases {
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
    let (close, reset) = std::thread::scope(|scope| {
        let storm = |reset: bool| {
            scope.spawn(move || {
                run_each(
                    if reset { "ci-reset" } else { "ci-disconnect" },
                    &format!(
                        "transports = [\"sse\"]\nsteps = [400]\nhold_secs = 0.5\nwarmup_secs = 0.5\n\
                         sample_interval_ms = 200\n[fault]\nkind = \"disconnect\"\nreset = {reset}\nrecover_secs = 5.0\n"
                    ),
                )
            })
        };
        let (close, reset) = (storm(false), storm(true));
        (close.join().unwrap(), reset.join().unwrap())
    });
    for runs in [close, reset] {
        assert_passed(&runs, "disconnect", 1);
        for c in cases(&runs) {
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
    let runs = run_each(
        "ci-churn",
        "transports = [\"longpoll\", \"sse\", \"stream\", \"iframe\", \"ws\"]\nsteps = [200]\n\
         hold_secs = 0.3\nwarmup_secs = 0.3\nsample_interval_ms = 200\npublish_listen = true\n\
         [publish]\npattern = \"broadcast\"\nrate = 25.0\nduration_secs = 4.0\ndrain_secs = 1.0\n\
         [fault]\nkind = \"churn\"\nrate = 0.25\naway_min_ms = 0\naway_max_ms = 3500\n",
    );
    assert_passed(&runs, "churn", 5);
    let mut missed = 0;
    for c in cases(&runs) {
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

/// The publishing outlasts the thread dispatchers' 10 s write deadline, by
/// which they drop a client that takes nothing.
#[test]
fn slow_consumers_are_dropped_and_memory_stays_bounded() {
    let runs = run_each(
        "ci-slow",
        "transports = [\"sse\"]\nsteps = [100]\nhold_secs = 0.3\nwarmup_secs = 0.3\n\
         sample_interval_ms = 200\npublish_listen = true\n\
         [publish]\npattern = \"broadcast\"\nrate = 20.0\nsize = 16384\nduration_secs = 15.0\ndrain_secs = 1.0\n\
         [fault]\nkind = \"slow\"\nfraction = 0.2\nmax_rss_growth_mib = 64\n",
    );
    assert_passed(&runs, "slow", 1);
    for c in cases(&runs) {
        let f = &c["fault"];
        assert_eq!(f["counts"]["slow"], 20, "{}", c["target"]);
        assert!(f["server_dropped_slow"].as_u64().unwrap() >= 20);
    }
}

/// The servers' header deadline is 3 s here (10 s by default): the
/// attackers live 3 s, the pass line allows 5, and the publishing lasts
/// those 5 s and 3 s more (as `--quick` keeps it), several generations of
/// attackers.
#[test]
fn slowloris_is_cut_off_by_the_header_deadline() {
    let runs = run_each(
        "ci-slowloris",
        "transports = [\"sse\"]\nsteps = [100]\nhold_secs = 1.0\nwarmup_secs = 0.3\n\
         sample_interval_ms = 500\npublish_listen = true\nserver_args = [\"--header-timeout\", \"3\"]\n\
         [publish]\npattern = \"broadcast\"\nrate = 10.0\nduration_secs = 8.0\ndrain_secs = 0.5\n\
         [fault]\nkind = \"slowloris\"\nconnections = 300\nbyte_interval_ms = 1000\nmax_life_secs = 5.0\n",
    );
    assert_passed(&runs, "slowloris", 1);
    for c in cases(&runs) {
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
    let runs = run_each(
        "ci-restart",
        "transports = [\"longpoll\", \"sse\"]\nsteps = [200]\nhold_secs = 0.3\n\
         warmup_secs = 0.3\nsample_interval_ms = 200\npublish_listen = true\n\
         [publish]\npattern = \"broadcast\"\nrate = 20.0\nduration_secs = 5.0\ndrain_secs = 1.0\n\
         [fault]\nkind = \"restart\"\nat_secs = 2.0\ndowntime_secs = 0.5\n",
    );
    assert_passed(&runs, "restart", 2);
    for c in cases(&runs) {
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
    let Run { code, stdout, json } = run(
        "ci-broken",
        r#""reactor""#,
        "transports = [\"sse\"]\nsteps = [50]\nhold_secs = 0.2\nwarmup_secs = 0.2\n\
         sample_interval_ms = 100\n\
         [publish]\npattern = \"broadcast\"\nrate = 20.0\nsize = 16384\nduration_secs = 2.0\ndrain_secs = 0.5\n\
         [fault]\nkind = \"slow\"\nfraction = 0.2\nmax_rss_growth_mib = 0\n",
    );
    assert_eq!(code, Some(99), "{stdout}");
    assert!(
        stdout.contains("fault slow on reactor sse 50: FAIL"),
        "{stdout}"
    );
    let c = &json["cases"][0];
    assert_eq!(c["status"], "failed");
    assert_eq!(c["fault"]["passed"], false);
    assert!(c["failure"]
        .as_str()
        .unwrap()
        .contains("server RSS grew at most 0 MiB"));
}
