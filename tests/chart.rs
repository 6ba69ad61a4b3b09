//! `cometbench chart` on the fixture runs in `tests/fixtures/charts/`: the files
//! written, that they are well-formed SVG and 1920x1080 PNG, what their text
//! says, and the errors. No test looks at pixels.
//!
//! The fixtures (trimmed from a real smoke run, then edited):
//! - `broadcast`: one step, SSE, latency logs; thread-pool failed with a log,
//!   thread-per-connection failed with nothing delivered;
//! - `peers`: a run of the same kind with nchan, drawn beside them;
//! - `idle`: nothing published, 1,000 long-poll connections; uring failed;
//! - `sweep`: 100, 200, 500 SSE connections; thread-per-connection failed at 500;
//! - `transports`: long-poll, SSE and WebSocket, wire figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cometbench"))
}

fn fixture(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/charts")
        .join(name);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .find(|p| p.join("run.json").is_file())
        .unwrap_or_else(|| panic!("no run under {}", dir.display()))
}

/// A fresh directory for one test's output.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chart-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chart(dirs: &[PathBuf], out: &Path, extra: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.arg("chart")
        .args(dirs)
        .arg("--out")
        .arg(out)
        .args(extra);
    cmd.output().expect("running cometbench")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Every chart of every fixture, drawn once for the tests that read them.
fn all_charts(name: &str, extra: &[&str]) -> (PathBuf, String) {
    let out = scratch(name);
    let dirs: Vec<PathBuf> = ["broadcast", "peers", "idle", "sweep", "transports"]
        .iter()
        .map(|f| fixture(f))
        .collect();
    let stdout = ok(&chart(&dirs, &out, extra));
    (out, stdout)
}

/// The text nodes of an SVG document, checking that it is well-formed XML
/// with an `svg` root of 1920x1080.
fn svg_texts(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{}: not XML: {e}", path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg", "{}", path.display());
    assert_eq!(root.attribute("width"), Some("1920"));
    assert_eq!(root.attribute("height"), Some("1080"));
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            n.descendants()
                .filter(|d| d.is_text())
                .filter_map(|d| d.text())
                .collect::<String>()
                .trim()
                .to_string()
        })
        .collect()
}

fn count(texts: &[String], s: &str) -> usize {
    texts.iter().filter(|t| *t == s).count()
}

const CHARTS: [&str; 7] = [
    "memory-per-connection",
    "idle-1k-memory-threads",
    "latency-distribution",
    "latency-vs-connections",
    "wire-bytes-per-message",
    "cpu-per-delivery",
    // The transports fixture has CPU figures for three transports.
    "cpu-per-delivery-transports",
];

#[test]
fn every_chart_is_written_as_svg_and_png_and_printed() {
    let (out, stdout) = all_charts("all", &[]);
    let printed: Vec<&str> = stdout.lines().collect();
    assert_eq!(printed.len(), CHARTS.len() * 2, "{stdout}");
    for name in CHARTS {
        for ext in ["svg", "png"] {
            let path = out.join(format!("{name}.{ext}"));
            assert!(
                printed.contains(&path.to_str().unwrap()),
                "{} not printed in\n{stdout}",
                path.display()
            );
            assert!(path.is_file(), "{}", path.display());
        }
        svg_texts(&out.join(format!("{name}.svg")));
        let png = std::fs::read(out.join(format!("{name}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png signature");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut buf).expect("PNG image data");
        assert_eq!((frame.width, frame.height), (1920, 1080), "{name}.png");
    }
}

/// A run of several transports draws its latency and CPU charts with one
/// panel per transport, titled with it, each naming only its own targets:
/// no line or bar stands for two transports.
#[test]
fn several_transports_get_a_panel_each() {
    let tmp = scratch("panels");
    let from = fixture("broadcast");
    let run = tmp.join("run");
    std::fs::create_dir_all(&run).unwrap();
    for f in std::fs::read_dir(&from).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, run.join(f.file_name().unwrap())).unwrap();
    }
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    for c in v["cases"].as_array_mut().unwrap() {
        if c["target"] == "uring" {
            c["transport"] = "ws".into();
        }
    }
    std::fs::write(run.join("run.json"), v.to_string()).unwrap();
    let out = tmp.join("out");
    ok(&chart(&[run], &out, &["--format", "svg"]));

    let texts = svg_texts(&out.join("latency-distribution.svg"));
    for panel in ["SSE", "WebSocket"] {
        assert_eq!(count(&texts, panel), 1, "panel {panel} in {texts:?}");
    }
    assert_eq!(count(&texts, "percentile (log scale)"), 1, "{texts:?}");
    assert_eq!(count(&texts, "percentile"), 1, "{texts:?}");
    // One legend entry per target that has a curve, in whichever panel.
    for t in ["thread-pool", "reactor", "uring"] {
        assert_eq!(count(&texts, t), 1, "{t} in {texts:?}");
    }

    let texts = svg_texts(&out.join("cpu-per-delivery.svg"));
    for panel in ["SSE", "WebSocket"] {
        assert_eq!(count(&texts, panel), 1, "panel {panel} in {texts:?}");
    }
    // The legend and the first panel's rows, which the panel beside it
    // shares: a row per target of either transport.
    for t in ["thread-pool", "reactor", "uring"] {
        assert_eq!(count(&texts, t), 2, "{t} in {texts:?}");
    }
    assert_eq!(
        count(&texts, "CPU time per delivered message (µs)"),
        1,
        "{texts:?}"
    );
    assert_eq!(count(&texts, "µs"), 1, "{texts:?}");
}

#[test]
fn titles_axes_and_one_legend_entry_per_target() {
    let (out, _) = all_charts("text", &["--format", "svg"]);
    assert!(
        !out.join("latency-distribution.png").exists(),
        "--format svg"
    );
    let expect: BTreeMap<&str, (&str, Vec<&str>, Vec<&str>)> = BTreeMap::from([
        (
            "memory-per-connection",
            (
                "Server memory per connection",
                vec!["KiB per connection (log scale)", "connections (log scale)"],
                vec!["thread-per-connection", "reactor"],
            ),
        ),
        (
            "idle-1k-memory-threads",
            (
                "Memory and threads at 1,000 idle connections",
                vec!["server memory (MiB)", "threads (log scale)"],
                vec!["thread-per-connection", "reactor", "uring"],
            ),
        ),
        (
            "latency-distribution",
            (
                "Delivery latency by percentile",
                vec!["latency (ms)", "percentile (log scale)"],
                vec!["thread-pool", "reactor", "uring", "nchan"],
            ),
        ),
        (
            "latency-vs-connections",
            (
                "Delivery latency vs connections",
                vec!["latency (ms)", "connections (log scale)"],
                vec!["thread-per-connection", "reactor"],
            ),
        ),
        (
            "wire-bytes-per-message",
            (
                "Bytes on the wire per delivered message",
                vec!["bytes on the wire per delivered message"],
                vec!["reactor", "uring"],
            ),
        ),
        (
            "cpu-per-delivery",
            (
                "CPU time per delivered message",
                vec!["CPU time per delivered message (µs)"],
                vec!["thread-pool", "reactor", "uring", "nchan"],
            ),
        ),
    ]);
    for (name, (title, axes, targets)) in expect {
        let texts = svg_texts(&out.join(format!("{name}.svg")));
        assert_eq!(count(&texts, title), 1, "{name}: title in {texts:?}");
        for a in axes {
            assert_eq!(count(&texts, a), 1, "{name}: axis label {a:?} in {texts:?}");
        }
        // Bar charts with a row per target name it on the axis too.
        let per_target = if matches!(name, "cpu-per-delivery" | "idle-1k-memory-threads") {
            2
        } else {
            1
        };
        for t in targets {
            assert_eq!(count(&texts, t), per_target, "{name}: {t:?} in {texts:?}");
        }
        assert!(
            texts.iter().any(|t| t.starts_with("machine: 2 cores")),
            "{name}: footer in {texts:?}"
        );
    }
    // Percentiles on the distribution's axis.
    let texts = svg_texts(&out.join("latency-distribution.svg"));
    for p in ["0%", "90%", "99%", "99.9%"] {
        assert_eq!(count(&texts, p), 1, "{p} in {texts:?}");
    }
    // The wire chart stacks three parts, named in the legend.
    let texts = svg_texts(&out.join("wire-bytes-per-message.svg"));
    for part in ["payload", "response heads", "framing, padding, heartbeats"] {
        assert_eq!(count(&texts, part), 1, "{part} in {texts:?}");
    }
    // WebSocket is drawn beside SSE, the transports in the protocol's order
    // from the top (the axis writes its labels bottom up).
    let at = |name: &str| texts.iter().position(|t| t == name);
    let bottom_up = [at("WebSocket"), at("SSE"), at("long-poll")];
    assert!(bottom_up.iter().all(Option::is_some), "{texts:?}");
    assert!(bottom_up.is_sorted(), "{bottom_up:?} in {texts:?}");
}

#[test]
fn failed_steps_are_marked_with_their_reason() {
    let out = scratch("failed");
    ok(&chart(&[fixture("sweep")], &out, &["--format", "svg"]));
    for name in ["memory-per-connection", "latency-vs-connections"] {
        let texts = svg_texts(&out.join(format!("{name}.svg")));
        assert!(
            texts.contains(
                &"✗ thread-per-connection at 500: 120 of 500 connections failed (120 http_503)"
                    .to_string()
            ),
            "{name}: {texts:?}"
        );
        assert_eq!(count(&texts, "step failed (below)"), 1, "{name}: {texts:?}");
    }
    // A failed case of a one-step run, and a target with nothing to draw.
    ok(&chart(&[fixture("broadcast")], &out, &["--format", "svg"]));
    let texts = svg_texts(&out.join("latency-distribution.svg"));
    assert!(
        texts.contains(
            &"✗ thread-pool: 88 of 200 connections were accepted but never served".into()
        ),
        "{texts:?}"
    );
    assert!(
        texts.contains(
            &"not shown, no latency recorded: thread-per-connection (nothing delivered)".into()
        ),
        "{texts:?}"
    );
    let texts = svg_texts(&out.join("cpu-per-delivery.svg"));
    assert!(
        texts.contains(
            &"not shown, no CPU figure: thread-per-connection (nothing delivered)".into()
        ),
        "{texts:?}"
    );
}

#[test]
fn runs_of_one_kind_are_drawn_side_by_side() {
    let out = scratch("merge");
    let stdout = ok(&chart(
        &[fixture("broadcast"), fixture("peers")],
        &out,
        &["--format", "svg"],
    ));
    // One chart each, not one per run.
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let texts = svg_texts(&out.join("latency-distribution.svg"));
    for t in ["reactor", "uring", "nchan"] {
        assert_eq!(count(&texts, t), 1, "{t} in {texts:?}");
    }
    let footer = texts.iter().find(|t| t.starts_with("machine:")).unwrap();
    assert!(
        footer.contains("runs 2026-11-24 10:00, 10:05 UTC"),
        "{footer}"
    );
    // The peer's own notes are pointed to.
    assert!(
        texts.contains(&"notes on nchan (how driven, limits): see run.json".into()),
        "{texts:?}"
    );
}

/// A run of another scenario that measured the same cases (here the
/// broadcast fixture renamed, as a run with its load from other hosts would
/// be) does not replace them: it gets charts of its own.
#[test]
fn another_scenario_measuring_the_same_cases_is_drawn_apart() {
    let out = scratch("rival");
    let rival = out.join("rival-run");
    std::fs::create_dir_all(&rival).unwrap();
    let src = fixture("broadcast");
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, rival.join(p.file_name().unwrap())).unwrap();
    }
    let path = rival.join("run.json");
    let mut run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    run["scenario"]["name"] = "broadcast-10k-hosts".into();
    run["started_at"] = "2026-11-25T10:00:00Z".into();
    std::fs::write(&path, run.to_string()).unwrap();
    let charts = out.join("charts");
    let stdout = ok(&chart(&[src, rival], &charts, &["--format", "svg"]));
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    for (file, run) in [
        (
            "latency-distribution.svg",
            "run 2026-11-24 10:00 UTC  ·  broadcast-10k",
        ),
        (
            "latency-distribution-broadcast-10k-hosts.svg",
            "run 2026-11-25 10:00 UTC  ·  broadcast-10k-hosts",
        ),
    ] {
        let texts = svg_texts(&charts.join(file));
        let footer = texts.iter().find(|t| t.starts_with("machine:")).unwrap();
        assert!(footer.ends_with(run), "{file}: {footer}");
    }
}

#[test]
fn the_dark_theme_paints_a_dark_slide() {
    let out = scratch("dark");
    ok(&chart(
        &[fixture("idle")],
        &out,
        &["--format", "svg", "--theme", "dark"],
    ));
    let svg = std::fs::read_to_string(out.join("idle-1k-memory-threads.svg")).unwrap();
    assert!(svg.contains(r##"fill="#121212""##), "dark background");
    assert!(!svg.contains(r##"fill="#FFFFFF""##), "no white background");
}

/// Runs `chart` expecting failure; returns stderr after checking it is one line.
fn fails(dirs: &[PathBuf], out: &Path, env: &[(&str, &str)]) -> String {
    let mut cmd = bin();
    cmd.arg("chart").args(dirs).arg("--out").arg(out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert!(!o.status.success(), "should fail");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn errors_are_one_readable_line_and_a_non_zero_exit() {
    let out = scratch("errors");
    // A directory without run.json, e.g. a scenario folder: says so, names a run.
    let err = fails(
        &[fixture("idle").parent().unwrap().to_path_buf()],
        &out,
        &[],
    );
    assert!(err.contains("no run.json"), "{err}");
    assert!(err.contains("2026-11-24T10-10-00Z"), "{err}");

    // An unreadable latency log names the file.
    let broken = out.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for f in std::fs::read_dir(fixture("broadcast")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, broken.join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        broken.join("reactor-sse-200.hlog"),
        "Tag=corrected,0,1,2,not base64!\n",
    )
    .unwrap();
    let err = fails(std::slice::from_ref(&broken), &out, &[]);
    assert!(err.contains("reactor-sse-200.hlog"), "{err}");
    std::fs::remove_file(broken.join("reactor-sse-200.hlog")).unwrap();
    let err = fails(std::slice::from_ref(&broken), &out, &[]);
    assert!(err.contains("reactor-sse-200.hlog"), "{err}");

    // Not a run.
    std::fs::write(
        broken.join("run.json"),
        "{\"schema\": \"cometbench-run/1\"}",
    )
    .unwrap();
    let err = fails(&[broken], &out, &[]);
    assert!(err.contains("run.json") && err.contains("cases"), "{err}");

    // No font: the package to install is named.
    let err = fails(
        &[fixture("idle")],
        &out,
        &[("COMETBENCH_FONT", "/nonexistent/font.ttf")],
    );
    assert!(err.contains("fonts-dejavu-core"), "{err}");
}
