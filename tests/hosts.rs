//! Load from several hosts, through the real binary: the run makes network
//! namespaces (two worker hosts, the server in a third), and must remove them
//! however it ends: at its end, after a case failed, on Ctrl-C, and after a
//! run killed outright (the next run removes what that one left).
//!
//! Namespaces need root and iproute2 (`ip`, `tc`; `scripts/deps.sh`
//! installs iproute2): without them these tests fail, saying so. The runs
//! take the machine's two cores, so they go one at a time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use loadgen::netns::cleanup;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const SMALL: &str = r#"
dispatchers = ["reactor", { name = "uring", args = ["--threads", "2"] }]
transports = ["sse"]
steps = [400]
hold_secs = 0.5
warmup_secs = 0.3
sample_interval_ms = 200

[ramp]
rate = 2000.0
in_flight = 128

[publish]
pattern = "broadcast"
rate = 20.0
size = 64
duration_secs = 1.0
drain_secs = 0.5
"#;

/// Namespaces can be made here, or the test fails saying why.
fn need_namespaces() {
    let probe = format!("{}{}-probe", cleanup::PREFIX, std::process::id());
    let out = Command::new("ip").args(["netns", "add", &probe]).output();
    match out {
        Ok(o) if o.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).output();
        }
        Ok(o) => panic!(
            "these tests make network namespaces and need root: `ip netns add` said: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("these tests need iproute2 (`ip`): {e}"),
    }
}

/// The namespaces of run `pid` left now.
fn left_by(pid: u32) -> Vec<String> {
    let prefix = format!("{}{pid}-", cleanup::PREFIX);
    cleanup::list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Removes whatever run `pid` left when dropped, so that a failed assertion
/// leaves the machine clean too.
struct Sweep(u32);

impl Drop for Sweep {
    fn drop(&mut self) {
        cleanup::remove(&format!("{}{}-", cleanup::PREFIX, self.0));
    }
}

/// A scenario file named `name` with `text`, in a directory of its own.
fn scenario(name: &str, text: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("cometbench-hosts-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("name = \"{name}\"\n{text}")).unwrap();
    (dir, path)
}

fn start(path: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cometbench"))
        .arg("run")
        .arg(path)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Runs a scenario to its end: its exit, its run.json, and its pid.
fn run(name: &str, text: &str) -> (ExitStatus, serde_json::Value, u32) {
    let (dir, path) = scenario(name, text);
    let child = start(&path, &dir);
    let pid = child.id();
    let _sweep = Sweep(pid);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{stdout}");
    assert!(left_by(pid).is_empty(), "left behind: {:?}", left_by(pid));
    let results = stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no results directory: {stdout}"));
    let run =
        serde_json::from_str(&std::fs::read_to_string(results.join("run.json")).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (out.status, run, pid)
}

/// A namespace named as a run that no longer runs would name its own.
fn leftover_of_a_killed_run() -> String {
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let name = format!("{}{}-0-w0", cleanup::PREFIX, gone.id());
    let out = Command::new("ip")
        .args(["netns", "add", &name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    name
}

/// The `[hosts]` of two namespaces reached through a launcher script in
/// `dir`: host w1 runs `w1` (a shell script's lines, with `$1` the host and
/// `$2` the binary), every other host starts its worker as usual.
fn through_launcher(dir: &Path, w1: &str) -> String {
    let script = dir.join("launch.sh");
    let text = format!(
        "case \"$1\" in\n*-w1)\n{w1}\n    ;;\n*) exec ip netns exec \"$1\" \"$2\" worker ;;\nesac\n"
    );
    std::fs::write(&script, text).unwrap();
    format!(
        "\n[hosts]\nnamespaces = 2\ncommand = \"sh {} {{host}} {{exe}}\"\n",
        script.display()
    )
}

/// Two worker namespaces, the server in a third, a rate-limited link each:
/// every id arrives exactly once at every subscriber, each host carries half,
/// its clock is within 1 ms of the coordinator's, and nothing is left behind,
/// not even a killed run's namespaces.
#[test]
fn two_worker_namespaces_and_the_server_in_a_third() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    need_namespaces();
    let stale = leftover_of_a_killed_run();
    let text = format!(
        "{SMALL}\n[thresholds]\nmax_errors = 0\nmin_delivered_fraction = 1.0\n\n[hosts]\nnamespaces = 2\nrate_mbit = 200.0\n"
    );
    let (status, run, pid) = run("hosts-two", &text);
    assert!(
        !cleanup::list().contains(&stale),
        "a killed run's namespace {stale} was left"
    );
    assert_eq!(status.code(), Some(0), "{}", run["thresholds"]);
    let cases = run["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for c in cases {
        let name = c["target"].to_string();
        assert_eq!(c["status"], "ok", "{name}: {}", c["failure"]);
        let d = &c["delivery"];
        assert_eq!(d["expected"], 400 * 20, "{name}");
        assert_eq!(d["received"], d["expected"], "{name}");
        for k in [
            "lost",
            "duplicates",
            "out_of_order",
            "protocol_errors",
            "unstamped",
        ] {
            assert_eq!(d[k], 0, "{name}: {k}");
        }
        assert_eq!(c["connections"]["server_subscribers"], 400, "{name}");
        let notes = c["notes"].to_string();
        assert!(
            notes.contains("2 network namespaces") && notes.contains("netem"),
            "{notes}"
        );
        let hosts = c["loadgen"]["hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 2, "{name}");
        for (i, h) in hosts.iter().enumerate() {
            let host = h["host"].as_str().unwrap();
            assert!(
                host.starts_with(&format!("cometbench-{pid}-")) && host.ends_with(&format!("w{i}")),
                "{host}"
            );
            assert_eq!(
                (h["connections"].as_u64(), h["connected"].as_u64()),
                (Some(200), Some(200))
            );
            let offset = h["offset_ns"].as_i64().expect("measured");
            let uncertainty = h["uncertainty_ns"].as_u64().unwrap();
            assert!(
                offset.unsigned_abs() < 1_000_000,
                "{host}: offset {offset} ns"
            );
            assert!(
                uncertainty < 1_000_000,
                "{host}: uncertainty {uncertainty} ns"
            );
            let w = &h["workers"][0];
            assert_eq!(w["corrected"], true);
            assert_eq!(w["clock"]["exchanges"], 8);
            assert!(w["cpu_user"].as_f64().unwrap() + w["cpu_sys"].as_f64().unwrap() > 0.0);
            assert!(w["failure"].is_null());
        }
    }
}

/// Hosts named in the scenario, reached through a command (here `ip netns
/// exec` into a namespace the test makes, as `ssh` would reach another
/// machine), the server on this machine listening where they reach it, with
/// a publish token of the run's own: every id arrives exactly once.
#[test]
fn named_hosts_reached_through_a_command() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    need_namespaces();
    // Named as a lab of this process would be, so that its removal takes the
    // root end of the link too.
    let prefix = format!("{}{}-9-", cleanup::PREFIX, std::process::id());
    let _sweep = Sweep(std::process::id());
    let ns = format!("{prefix}n0");
    let root_end = cleanup::root_link_name(&prefix);
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ip(&["netns", "add", &ns]);
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    ip(&[
        "link", "add", &root_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ]);
    ip(&["addr", "add", "198.18.255.1/24", "dev", &root_end]);
    ip(&["link", "set", &root_end, "up"]);
    ip(&["-n", &ns, "addr", "add", "198.18.255.2/24", "dev", "eth0"]);
    ip(&["-n", &ns, "link", "set", "eth0", "up"]);
    let text = SMALL.replace(", { name = \"uring\", args = [\"--threads\", \"2\"] }", "")
        + &format!(
            "\n[thresholds]\nmax_errors = 0\nmin_delivered_fraction = 1.0\n\n[hosts]\nnames = [\"{ns}\"]\ncommand = \"ip netns exec {{host}} {{exe}} worker\"\nlisten = \"198.18.255.1\"\n"
        );
    let (status, run, _) = run("hosts-named", &text);
    assert_eq!(status.code(), Some(0), "{}", run["thresholds"]);
    let c = &run["cases"][0];
    assert_eq!(c["status"], "ok", "{}", c["failure"]);
    assert_eq!(c["delivery"]["received"], 400 * 20);
    assert_eq!(c["delivery"]["expected"], 400 * 20);
    assert!(c["notes"]
        .to_string()
        .contains("started by `ip netns exec {host} {exe} worker`"));
    assert!(
        !c["args"].to_string().contains("token"),
        "the token is not written down"
    );
    let h = &c["loadgen"]["hosts"][0];
    assert_eq!(h["host"], ns.as_str());
    assert_eq!(h["connected"], 400);
    assert!(
        h["offset_ns"].as_i64().unwrap().unsigned_abs() < 1_000_000,
        "{h}"
    );
    drop(_sweep);
    assert!(!cleanup::list().contains(&ns));
}

/// A worker whose host's command fails is named with its host and why; the
/// case goes on with the other host, and so does the run. One that starts
/// and then dies is named too.
#[test]
fn a_host_whose_command_fails_is_named_and_the_run_goes_on() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    need_namespaces();
    let (dir, _) = scenario("hosts-launcher", "");
    // The host w1: refused the first time (an ssh that cannot connect),
    // started and killed two seconds later the second time.
    let tries = dir.join("tries");
    let hosts = through_launcher(
        &dir,
        &format!(
            r#"    echo x >> {tries}
    if [ "$(wc -l < {tries})" -eq 1 ]; then
        echo "ssh: connect to host $1 port 22: Connection refused" >&2
        exit 255
    fi
    exec 3<&0
    ip netns exec "$1" "$2" worker <&3 &
    sleep 2
    kill $!
    wait $!"#,
            tries = tries.display()
        ),
    );
    let text = SMALL
        .replace("hold_secs = 0.5", "hold_secs = 1.0")
        .replace("duration_secs = 1.0", "duration_secs = 3.0")
        + &hosts;
    let (status, run, _) = run("hosts-launcher", &text);
    assert_eq!(
        status.code(),
        Some(0),
        "no threshold: the run itself succeeds"
    );
    let cases = run["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "the run went on to the second dispatcher");
    for (c, why) in cases
        .iter()
        .zip(["could not start: exit status: 255", "died: "])
    {
        let name = c["target"].to_string();
        let failure = c["failure"].as_str().unwrap_or_default();
        assert_eq!(c["status"], "failed", "{name}");
        assert!(
            failure.contains("worker 1 on cometbench-") && failure.contains(why),
            "{name}: {failure}"
        );
        let lost = &c["loadgen"]["hosts"][1];
        assert!(lost["host"].as_str().unwrap().ends_with("-w1"));
        let wf = lost["workers"][0]["failure"].as_str().unwrap();
        assert!(wf.contains(why), "{name}: {wf}");
        // The other host's subscribers got every message.
        let ok = &c["loadgen"]["hosts"][0];
        assert_eq!(ok["connected"], 200, "{name}");
        assert!(ok["workers"][0]["failure"].is_null(), "{name}");
        let d = &c["delivery"];
        assert!(d["received"].as_u64().unwrap() >= 200 * 60, "{name}: {d}");
        assert_eq!(d["lost"], 0, "{name}");
        assert_eq!(d["duplicates"], 0, "{name}");
    }
    let first = cases[0]["failure"].as_str().unwrap();
    assert!(
        first.contains("Connection refused"),
        "what the host said: {first}"
    );
}

/// A worker stopped mid-case (SIGSTOP: alive, its pipes open, but saying
/// nothing more) is named with its host as fallen silent, the case ends
/// without it, and the run still removes its namespaces and what ran there.
#[test]
fn a_host_whose_worker_falls_silent_is_named() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    need_namespaces();
    let (dir, _) = scenario("hosts-silent", "");
    // Outside `dir`, which `run` removes.
    let stopped =
        std::env::temp_dir().join(format!("cometbench-hosts-{}-stopped", std::process::id()));
    let hosts = through_launcher(
        &dir,
        &format!(
            r#"    exec 3<&0
    ip netns exec "$1" "$2" worker <&3 &
    echo $! > {stopped}
    sleep 2
    kill -STOP $!
    wait $!"#,
            stopped = stopped.display()
        ),
    );
    let text = SMALL
        .replace(", { name = \"uring\", args = [\"--threads\", \"2\"] }", "")
        .replace("hold_secs = 0.5", "hold_secs = 1.0")
        // Longer than the silence a worker is given up after, so that it is
        // noticed while publishing, not as a report missing at the finish.
        .replace("duration_secs = 1.0", "duration_secs = 20.0")
        + &hosts;
    let (status, run, pid) = run("hosts-silent", &text);
    assert_eq!(status.code(), Some(0), "no threshold: the run succeeds");
    let c = &run["cases"][0];
    let failure = c["failure"].as_str().unwrap_or_default();
    assert_eq!(c["status"], "failed");
    assert!(
        failure.contains(&format!("worker 1 on cometbench-{pid}-"))
            && failure.contains("fell silent"),
        "{failure}"
    );
    let lost = &c["loadgen"]["hosts"][1];
    let wf = lost["workers"][0]["failure"].as_str().unwrap();
    assert!(wf.contains("fell silent"), "{wf}");
    let ok = &c["loadgen"]["hosts"][0];
    assert!(ok["workers"][0]["failure"].is_null(), "{ok}");
    let d = &c["delivery"];
    assert!(d["received"].as_u64().unwrap() >= 200 * 20 * 20, "{d}");
    assert_eq!(d["duplicates"], 0);
    // The stopped worker went with its namespace.
    let worker = std::fs::read_to_string(&stopped).unwrap();
    let t = Instant::now();
    while running(worker.trim()) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "still there: {worker}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&stopped);
}

/// Ctrl-C in the middle of a case: the run ends as SIGINT ends it, and
/// takes its namespaces, and what ran in them, with it.
#[test]
fn ctrl_c_removes_the_namespaces() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    need_namespaces();
    let text = SMALL
        .replace("hold_secs = 0.5", "hold_secs = 60.0")
        .replace(", { name = \"uring\", args = [\"--threads\", \"2\"] }", "")
        + "\n[hosts]\nnamespaces = 1\n";
    let (dir, path) = scenario("hosts-interrupted", &text);
    let mut child = start(&path, &dir);
    let pid = child.id();
    let _sweep = Sweep(pid);
    // Holding: both namespaces made, and something running in each.
    let t = Instant::now();
    let inside = loop {
        let names = left_by(pid);
        let pids: Vec<Vec<String>> = names.iter().map(|n| pids_in(n)).collect();
        if names.len() == 2 && pids.iter().all(|p| !p.is_empty()) {
            break pids.concat();
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no namespaces with work: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill has no memory-safety preconditions; `pid` is our child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status}");
    assert!(left_by(pid).is_empty(), "left behind: {:?}", left_by(pid));
    let t = Instant::now();
    while inside.iter().any(|p| running(p)) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "still running: {inside:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Process `pid` exists and is not a zombie waiting to be reaped.
fn running(pid: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `PID (COMM) STATE ...`: the state follows the last parenthesis.
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    !state.starts_with('Z')
}

fn pids_in(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}
