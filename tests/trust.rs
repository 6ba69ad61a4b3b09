//! Numbers to trust, with the real binary: repeats and their spread, the
//! floor and placement in a run, a publish whose answer is lost, and
//! `compare`'s exit on a regression.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cometbench"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn results_dir(stdout: &str) -> PathBuf {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .map(PathBuf::from)
        .expect("results directory printed")
}

fn read_run(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

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

/// The CPUs this test may run on, from /proc.
fn allowed_cpus() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    list.split(',')
        .map(|p| match p.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// `scenarios/smoke.toml` on the reactor with `--repeat 2`, the floor and,
/// where there are two CPUs, a placement: every repeat kept, each figure's
/// median and range over them, the floor's ratios, the CPUs as set.
#[test]
fn smoke_with_repeats_the_floor_and_placement() {
    let out_dir = std::env::temp_dir().join(format!("cometbench-trust-{}", std::process::id()));
    let pinned = allowed_cpus() >= 2;
    let mut cmd = bin();
    cmd.arg("run")
        .arg(root().join("scenarios/smoke.toml"))
        .args([
            "--dispatcher",
            "reactor",
            "--repeat",
            "2",
            "--floor",
            "--out",
        ])
        .arg(&out_dir);
    if pinned {
        cmd.args(["--cpus", "server=0,loadgen=1"]);
    }
    let out = cmd.stderr(Stdio::inherit()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("figures over repeats: median [min-max]"),
        "{stdout}"
    );
    assert!(stdout.contains("against the floor"), "{stdout}");
    let dir = results_dir(&stdout);
    let run = read_run(&dir);
    let cases = run["cases"].as_array().unwrap();
    let reactor_sse = cases
        .iter()
        .find(|c| c["target"] == "reactor" && c["transport"] == "sse")
        .unwrap();
    for c in cases.iter().filter(|c| c["target"] == "reactor") {
        let name = format!("reactor {}", c["transport"]);
        assert_eq!(c["status"], "ok", "{name}: {}", c["failure"]);
        let repeats = c["repeats"].as_array().expect("repeats kept");
        assert_eq!(repeats.len(), 2, "{name}");
        assert_eq!(
            (repeats[0]["repeat"].as_u64(), repeats[1]["repeat"].as_u64()),
            (Some(1), Some(2))
        );
        // Each repeat is a whole case, with a latency log of its own.
        let logs: Vec<&str> = repeats
            .iter()
            .map(|r| r["hlog"].as_str().unwrap())
            .collect();
        assert_ne!(logs[0], logs[1], "{name}");
        assert!(logs.iter().all(|l| dir.join(l).exists()), "{logs:?}");
        // Two repeats: the median is the mean of the two, min and max theirs.
        for (key, path) in [
            (
                "delivery.latency_us.p99",
                &["delivery", "latency_us", "p99"][..],
            ),
            (
                "server.cpu_per_delivery_us",
                &["server", "cpu_per_delivery_us"][..],
            ),
            (
                "delivery.delivered_fraction",
                &["delivery", "delivered_fraction"][..],
            ),
            (
                "loadgen.cpu_per_delivery_us",
                &["loadgen", "cpu_per_delivery_us"][..],
            ),
            ("server.rss_per_conn", &["server", "rss_per_conn"][..]),
        ] {
            let s = &c["spread"][key];
            let v: Vec<f64> = repeats
                .iter()
                .map(|r| path.iter().fold(r, |v, p| &v[*p]).as_f64().unwrap())
                .collect();
            let (lo, hi) = (v[0].min(v[1]), v[0].max(v[1]));
            assert_eq!(s["min"].as_f64(), Some(lo), "{name} {key}");
            assert_eq!(s["max"].as_f64(), Some(hi), "{name} {key}");
            let median = s["median"].as_f64().unwrap();
            assert!(
                (median - (v[0] + v[1]) / 2.0).abs() < 1e-6,
                "{name} {key}: {s}"
            );
        }
        assert_eq!(c["spread"]["delivery.delivered_fraction"]["median"], 1.0);
        if pinned {
            assert_eq!(c["server"]["cpus"], serde_json::json!([0]), "{name}");
            assert_eq!(c["loadgen"]["cpus"], serde_json::json!([1]), "{name}");
        }
    }
    // The floor ran SSE (and only SSE) beside it, and the fan-out figures
    // have their ratio to it.
    let floor = cases
        .iter()
        .find(|c| c["target"] == "floor" && c["transport"] == "sse")
        .unwrap();
    assert_eq!(floor["kind"], "floor");
    assert_eq!(floor["status"], "ok", "{}", floor["failure"]);
    assert_eq!(floor["delivery"]["received"], floor["delivery"]["expected"]);
    assert_eq!(floor["connections"]["server_subscribers"], 200);
    let skipped = cases
        .iter()
        .find(|c| c["target"] == "floor" && c["transport"] == "longpoll")
        .unwrap();
    assert_eq!(skipped["status"], "skipped");
    for key in [
        "delivery.latency_us.p50",
        "delivery.latency_us.p99",
        "server.cpu_per_delivery_us",
    ] {
        let r = reactor_sse["floor_ratio"][key].as_f64().unwrap();
        let want = reactor_sse["spread"][key]["median"].as_f64().unwrap()
            / floor["spread"][key]["median"].as_f64().unwrap();
        assert!((r - want).abs() < 1e-9, "{key}: {r} != {want}");
    }
    if pinned {
        assert_eq!(
            run["placement"],
            serde_json::json!({"server": [0], "loadgen": [1]})
        );
    }
    // Every key written is documented.
    let doc = std::fs::read_to_string(root().join("results/README.md")).unwrap();
    let mut all = std::collections::BTreeSet::new();
    keys(&run, &mut all);
    let mut scenario = std::collections::BTreeSet::new();
    keys(&run["scenario"], &mut scenario);
    let undocumented: Vec<_> = all
        .iter()
        .filter(|k| !scenario.contains(*k) && !doc.contains(&format!("`{k}`")))
        .filter(|k| !k.chars().all(|c| c.is_ascii_digit() || c == '_'))
        .filter(|k| !k.starts_with("http_"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "undocumented run.json keys: {undocumented:?}"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// Forwards connections to `upstream`; on publish connections, the answer
/// to publish number `drop_nth` (from 1, in order of arrival) is never
/// passed on: the connection is closed instead, after the server has
/// published it.
fn proxy(upstream: SocketAddr, drop_nth: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let publishes = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(client) = c else { continue };
            let publishes = publishes.clone();
            std::thread::spawn(move || relay(client, upstream, &publishes, drop_nth));
        }
    });
    addr
}

fn relay(mut client: TcpStream, upstream: SocketAddr, publishes: &AtomicUsize, drop_nth: usize) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let mut first = [0u8; 10];
    if client.peek(&mut first).unwrap_or(0) < 10 || &first != b"POST /pub/" {
        // Subscribers and the rest: bytes both ways.
        let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut c2, &mut s2);
        });
        let _ = std::io::copy(&mut server, &mut client);
        return;
    }
    loop {
        // One request (head and Content-Length body), then its answer.
        let Some(request) = read_message(&mut client) else {
            return;
        };
        let nth = publishes.fetch_add(1, Ordering::SeqCst) + 1;
        if server.write_all(&request).is_err() {
            return;
        }
        let Some(answer) = read_message(&mut server) else {
            return;
        };
        if nth == drop_nth {
            let _ = client.shutdown(std::net::Shutdown::Both);
            return;
        }
        if client.write_all(&answer).is_err() {
            return;
        }
    }
}

/// An HTTP message with a `Content-Length` body, or `None` at a close.
fn read_message(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    buf.extend(body);
    Some(buf)
}

/// The last of four publishes is published and delivered, but its answer
/// is lost on the way back: the case counts it as published (reconciled),
/// due to every subscriber, and stays `ok` with a delivered fraction of 1,
/// not 1.33.
#[test]
fn a_publish_whose_answer_is_lost_is_settled_by_the_subscribers() {
    let mut server = bin()
        .args([
            "serve",
            "--dispatcher",
            "reactor",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let upstream: SocketAddr = line.trim().parse().unwrap();
    let addr = proxy(upstream, 4);
    let dir = std::env::temp_dir().join(format!("cometbench-lost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("lost.toml");
    std::fs::write(
        &scenario,
        "name = \"lost\"\ntransports = [\"sse\"]\nsteps = [20]\nhold_secs = 0.3\nwarmup_secs = 0.1\n\
         [publish]\npattern = \"broadcast\"\nrate = 4.0\nduration_secs = 1.0\ndrain_secs = 0.5\n",
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
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = read_run(&results_dir(&stdout));
    let c = &run["cases"][0];
    assert_eq!(c["publish"]["accepted"], 3, "{}", c["publish"]);
    assert_eq!(c["publish"]["unanswered"], 1, "{}", c["publish"]);
    let d = &c["delivery"];
    assert_eq!(d["received"], 80, "{d}");
    assert_eq!(d["expected"], 80, "{d}");
    assert_eq!(d["lost"], 0, "{d}");
    assert_eq!(d["reconciled"], 1, "{d}");
    assert_eq!(d["delivered_fraction"], 1.0, "{d}");
    assert_eq!(c["status"], "ok", "{}", c["failure"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two committed runs, the second slower on one figure beyond both runs'
/// ranges: exit 99 past the threshold, 0 under it.
#[test]
fn compare_exits_99_on_a_regression_past_the_threshold() {
    let fixtures = root().join("tests/fixtures/compare");
    let out = bin()
        .arg("compare")
        .arg(fixtures.join("a"))
        .arg(fixtures.join("b"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(99), "{stdout}");
    let slower = stdout
        .lines()
        .find(|l| l.contains("reactor sse 200") && l.contains("delivery.latency_us.p99"))
        .unwrap();
    assert!(slower.contains("slower REGRESSION"), "{slower}");
    assert!(slower.contains("3.551"), "{slower}");
    let faster = stdout
        .lines()
        .find(|l| l.contains("reactor longpoll 200") && l.contains("delivery.latency_us.p50"))
        .unwrap();
    assert!(faster.ends_with("faster"), "{faster}");
    assert!(
        stdout.contains("1 figures regressed by more than 10%"),
        "{stdout}"
    );
    // Within the noise elsewhere.
    assert!(stdout.contains("floor sse 200") && stdout.contains("no change beyond the noise"));
    let out = bin()
        .arg("compare")
        .arg(fixtures.join("a"))
        .arg(fixtures.join("b"))
        .args(["--threshold", "400"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = bin()
        .arg("compare")
        .arg(fixtures.join("a"))
        .arg(fixtures.join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// A free loopback port (bound and let go).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Asks `req` on a fresh connection to `addr`; the answer, whole.
fn ask(addr: SocketAddr, req: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The floor past one process: three children share the subscribers' port,
/// a publish on the parent's listener reaches every subscriber once with
/// its id, `/stats` sums them, a publish on the shared port is refused, and
/// SIGTERM takes the children with the parent.
#[test]
fn the_floor_as_several_processes_writes_to_all_their_subscribers() {
    let refused = bin()
        .args(["floor", "--processes", "2", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("needs --publish-listen"), "{said}");

    let publish: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut floor = bin()
        .args(["floor", "--processes", "3", "--listen", "127.0.0.1:0"])
        .arg("--publish-listen")
        .arg(publish.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(floor.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr: SocketAddr = line.trim().parse().unwrap();
    let mut subs: Vec<TcpStream> = (0..60)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /sub/bc?transport=sse HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    // Each subscriber is held once its head is answered.
    for s in &mut subs {
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut head = Vec::new();
        while !String::from_utf8_lossy(&head).contains("retry: 3000") {
            let mut b = [0u8; 512];
            let n = s.read(&mut b).unwrap();
            assert!(n > 0, "closed before its head");
            head.extend_from_slice(&b[..n]);
        }
    }
    let stats = ask(publish, "GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(
        stats.contains("\"subscribers\":60") && stats.contains("\"processes\":3"),
        "{stats}"
    );
    for id in 1..=2 {
        let answer = ask(
            publish,
            "POST /pub/bc HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        );
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        assert!(
            answer.contains(&format!("{{\"id\":{id},\"subscribers\":60}}")),
            "{answer}"
        );
    }
    for s in &mut subs {
        let mut got = String::new();
        while !got.contains("id: 2\n") {
            let mut b = [0u8; 512];
            let n = s.read(&mut b).unwrap();
            assert!(n > 0, "closed before id 2: {got}");
            got.push_str(&String::from_utf8_lossy(&b[..n]));
        }
        assert_eq!(got.matches("data: hello").count(), 2, "{got}");
        assert!(got.find("id: 1\n") < got.find("id: 2\n"), "{got}");
    }
    let wrong = ask(
        addr,
        "POST /pub/bc HTTP/1.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
    );
    assert!(wrong.starts_with("HTTP/1.1 404"), "{wrong}");
    let children = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default()
    };
    let kids: Vec<String> = children(floor.id())
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(kids.len(), 3, "{kids:?}");
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    unsafe { libc::kill(floor.id() as i32, libc::SIGTERM) };
    let status = floor.wait().unwrap();
    assert!(status.success(), "{status}");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while kids
        .iter()
        .any(|k| std::path::Path::new(&format!("/proc/{k}")).exists())
        && std::time::Instant::now() < end
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for k in &kids {
        let stat = std::fs::read_to_string(format!("/proc/{k}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init to reap it.
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "child {k}: {stat}"
        );
    }
}
