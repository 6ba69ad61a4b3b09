//! `cometbench report` run as a user would: on the committed reference runs
//! (`results/reference/`), an older reference run kept as a fixture
//! (`tests/fixtures/report/`) and the chart fixtures, on copies edited to carry
//! repeats or hostile text, and on bad input; then one page opened in
//! headless Chromium to see that a browser builds the charts and the table.
//!
//! Chromium is required by the last test: a missing `chromium` fails it
//! (`scripts/deps.sh`, run by the test command, installs the Debian package).
//! `COMETBENCH_CHROMIUM` names another binary.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The targets of the `broadcast-10k` fixture, in its order.
const BROADCAST_TARGETS: [&str; 6] = [
    "thread-per-connection",
    "thread-pool",
    "reactor",
    "uring",
    "nchan",
    "pushpin",
];

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cometbench"))
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The newest run under `results/reference/<scenario>/`.
fn reference(scenario: &str) -> PathBuf {
    let dir = repo("results/reference").join(scenario);
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("run.json").is_file())
        .collect();
    runs.sort();
    runs.pop()
        .unwrap_or_else(|| panic!("no run under {}", dir.display()))
}

/// The reference `broadcast-10k` run of 2026-11-24 (one repeat, SSE, both
/// peers), kept as a fixture: the page tests check figures against its
/// numbers, which the newer reference runs must be free to change.
fn broadcast_fixture() -> PathBuf {
    repo("tests/fixtures/report/broadcast-10k")
}

/// Every reference scenario's newest run.
fn all_references() -> Vec<PathBuf> {
    let mut names: Vec<String> = std::fs::read_dir(repo("results/reference"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .filter(|p| {
            std::fs::read_dir(p)
                .unwrap()
                .any(|r| r.unwrap().path().join("run.json").is_file())
        })
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 5, "reference runs: {names:?}");
    names.iter().map(|n| reference(n)).collect()
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn report(dirs: &[PathBuf], out: &Path) -> Output {
    bin()
        .arg("report")
        .args(dirs)
        .arg("--out")
        .arg(out)
        .output()
        .expect("running cometbench")
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

/// The page written for one run (the only one in `out`).
fn page_of(run: &Path, out: &Path) -> String {
    let stdout = ok(&report(&[run.to_path_buf()], out));
    let path = PathBuf::from(stdout.trim());
    assert_eq!(path.parent(), Some(out), "{stdout}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run_json(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap()
}

/// Copies a run's files into `to` (a fresh run directory) with its run.json
/// edited by `edit`.
fn edited_copy(run: &Path, to: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = to.join("edited").join("2026-12-01T10-00-00Z");
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(run).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "hlog") {
            std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
        }
    }
    let mut v = run_json(run);
    edit(&mut v);
    std::fs::write(dir.join("run.json"), serde_json::to_string(&v).unwrap()).unwrap();
    dir
}

fn parse(html: &str) -> roxmltree::Document<'_> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(html, opts)
        .unwrap_or_else(|e| panic!("the page is not well-formed (polyglot) HTML: {e}"))
}

fn text_of(n: roxmltree::Node) -> String {
    n.descendants()
        .filter(|d| d.is_text())
        .filter_map(|d| d.text())
        .collect::<String>()
}

fn elements<'a>(doc: &'a roxmltree::Document, name: &str) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == name)
        .collect()
}

/// Nothing in the page refers outside it: no script, style sheet, image,
/// frame or object element, every `src`/`href` a fragment of the page itself,
/// and no `url(...)` or `@import` in any style.
fn assert_self_contained(html: &str, what: &str) {
    let lower = html.to_ascii_lowercase();
    for needle in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "<script",
        "<link",
    ] {
        assert!(!lower.contains(needle), "{what}: the page holds {needle:?}");
    }
    let doc = parse(html);
    let styles = elements(&doc, "style").into_iter().map(text_of).chain(
        doc.descendants()
            .filter_map(|n| n.attribute("style"))
            .map(str::to_string),
    );
    for css in styles {
        let css = css.to_ascii_lowercase();
        assert!(
            !css.contains("url(") && !css.contains("@import"),
            "{what}: a style fetches: {css}"
        );
    }
    for n in doc.descendants().filter(|n| n.is_element()) {
        let name = n.tag_name().name();
        assert!(
            !["script", "link", "img", "iframe", "object", "embed", "image", "use"].contains(&name),
            "{what}: a <{name}> element"
        );
        for a in n.attributes() {
            let local = a.name();
            if ["src", "href", "srcset", "action", "poster", "data"].contains(&local) {
                assert!(
                    a.value().starts_with('#'),
                    "{what}: <{name} {local}=\"{}\"> points outside the page",
                    a.value()
                );
            }
            assert!(!local.starts_with("on"), "{what}: <{name} {local}=...>");
        }
    }
}

/// The table's body rows as (th text, the td texts).
fn table_rows(doc: &roxmltree::Document) -> Vec<(String, Vec<String>)> {
    let table = elements(doc, "table")
        .into_iter()
        .find(|t| t.attribute("class") == Some("comparison"))
        .expect("the comparison table");
    table
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "tr")
        .filter(|tr| tr.ancestors().any(|a| a.tag_name().name() == "tbody"))
        .map(|tr| {
            let th = tr
                .children()
                .find(|c| c.tag_name().name() == "th")
                .map(text_of)
                .unwrap_or_default();
            let tds = tr
                .children()
                .filter(|c| c.tag_name().name() == "td")
                .map(text_of)
                .collect();
            (th, tds)
        })
        .collect()
}

/// The table's header texts.
fn table_columns(doc: &roxmltree::Document) -> Vec<String> {
    elements(doc, "thead")[0]
        .descendants()
        .filter(|n| n.tag_name().name() == "th")
        .map(text_of)
        .collect()
}

/// The charts `cometbench chart` draws from the same run: their titles.
fn chart_titles(run: &Path, name: &str) -> Vec<String> {
    let out = scratch(&format!("charts-{name}"));
    let o = bin()
        .arg("chart")
        .arg(run)
        .arg("--out")
        .arg(&out)
        .args(["--format", "svg"])
        .output()
        .unwrap();
    let stdout = ok(&o);
    stdout
        .lines()
        .map(|p| {
            let svg = std::fs::read_to_string(p).unwrap();
            let doc = roxmltree::Document::parse(&svg).unwrap();
            // The title is the first text drawn.
            doc.descendants()
                .find(|n| n.tag_name().name() == "text")
                .map(text_of)
                .unwrap()
                .trim()
                .to_string()
        })
        .collect()
}

#[test]
fn the_broadcast_10k_page_holds_its_charts_table_notes_and_provenance() {
    let run = broadcast_fixture();
    let out = scratch("broadcast-10k");
    let html = page_of(&run, &out);
    assert!(out.join("broadcast-10k.html").is_file());
    assert_self_contained(&html, "broadcast-10k");
    let doc = parse(&html);
    let v = run_json(&run);

    // One inline SVG per chart `cometbench chart` draws from this run, titled alike.
    let titles = chart_titles(&run, "broadcast-10k");
    assert_eq!(titles.len(), 2, "{titles:?}");
    let svgs = elements(&doc, "svg");
    assert_eq!(svgs.len(), titles.len());
    for (svg, title) in svgs.iter().zip(&titles) {
        assert_eq!(svg.attribute("aria-label"), Some(title.as_str()));
        assert_eq!(svg.attribute("viewBox"), Some("0 0 1920 1080"));
        assert!(text_of(*svg).contains(title.as_str()), "{title}");
        assert!(
            svg.descendants()
                .filter(|n| n.tag_name().name() == "text")
                .count()
                > 10,
            "{title}: the chart's labels"
        );
    }

    // The table: the columns `cometbench run` prints, a row per case in order.
    assert_eq!(
        table_columns(&doc),
        [
            "target",
            "transport",
            "conns",
            "RSS/conn",
            "kernel/conn",
            "threads",
            "procs",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "CPU us/msg",
            "delivered",
            "LG us/msg",
            "LG/conn",
            "errors",
            "status"
        ]
    );
    let rows = table_rows(&doc);
    let targets: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(targets, BROADCAST_TARGETS);
    for ((_, tds), case) in rows.iter().zip(v["cases"].as_array().unwrap()) {
        let l = &case["delivery"]["latency_us"];
        let ms = |k: &str| format!("{:.1}", l[k].as_u64().unwrap() as f64 / 1000.0);
        assert_eq!(tds[0], case["transport"].as_str().unwrap());
        assert_eq!(
            tds[1],
            format!("{}/{}", case["connections"]["connected"], case["step"])
        );
        assert_eq!(
            (&tds[6], &tds[7], &tds[8]),
            (&ms("p50"), &ms("p99"), &ms("p999"))
        );
        assert_eq!(tds[4], case["server"]["threads"].to_string());
        match case["failure"].as_str() {
            Some(f) => assert_eq!(tds[14], format!("FAILED: {f}")),
            None => assert_eq!(tds[14], case["status"].as_str().unwrap()),
        }
    }

    // The notes on the peers, every one of them, as list items.
    let items: Vec<String> = elements(&doc, "li").into_iter().map(text_of).collect();
    for case in v["cases"].as_array().unwrap() {
        for n in case["notes"].as_array().unwrap() {
            let n = n.as_str().unwrap();
            assert!(items.iter().any(|i| i == n), "note missing: {n}");
        }
    }
    for b in v["thresholds"]["broken"].as_array().unwrap() {
        assert!(items.iter().any(|i| i == b.as_str().unwrap()), "{b}");
    }

    // Machine, date and command line.
    let all = text_of(doc.root());
    let m = &v["machine"];
    for want in [
        format!("Linux {}", m["kernel"].as_str().unwrap()),
        format!("{} ({})", m["cores"], m["cpu_model"].as_str().unwrap()),
        "2026-11-24 09:42:55 UTC to 09:47:09 UTC".to_string(),
        "./target/release/cometbench run scenarios/broadcast-10k.toml --out results/reference"
            .to_string(),
        v["scenario"]["description"].as_str().unwrap().to_string(),
    ] {
        assert!(all.contains(&want), "the page does not say {want:?}");
    }
    // No run here has repeats: no range is shown.
    assert!(!html.contains("class=\"range\""));
}

#[test]
fn every_reference_page_is_self_contained_and_has_a_row_per_case() {
    let runs = all_references();
    let out = scratch("all");
    let stdout = ok(&report(&runs, &out));
    let written: Vec<&str> = stdout.lines().collect();
    assert_eq!(written.len(), runs.len(), "{stdout}");
    for (run, path) in runs.iter().zip(written) {
        let html = std::fs::read_to_string(path).unwrap();
        assert_self_contained(&html, path);
        let doc = parse(&html);
        let cases = run_json(run)["cases"].as_array().unwrap().len();
        assert_eq!(table_rows(&doc).len(), cases, "{path}");
        let faults = run_json(run)["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.get("fault").is_some_and(|f| !f.is_null()))
            .count();
        let shown = elements(&doc, "div")
            .iter()
            .filter(|d| d.attribute("class") == Some("fault"))
            .count();
        assert_eq!(shown, faults, "{path}: one pass line per fault");
    }
}

#[test]
fn figures_over_repeats_show_their_range_beside_the_median() {
    let tmp = scratch("repeats");
    // The shape `run --repeat N` is to write: per case, per figure path,
    // the median and the min-max over the repeats.
    let run = edited_copy(&broadcast_fixture(), &tmp, |v| {
        let reactor = v["cases"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c["target"] == "reactor")
            .unwrap();
        reactor["spread"] = serde_json::json!({
            "delivery.latency_us.p99": {"median": 110600.0, "min": 110600.0, "max": 113900.0},
            "server.rss_per_conn": {"median": 323.0, "min": 250.0, "max": 331.0}
        });
    });
    let html = page_of(&run, &tmp.join("out"));
    assert_self_contained(&html, "repeats");
    let doc = parse(&html);
    let rows = table_rows(&doc);
    let (_, reactor) = rows.iter().find(|r| r.0 == "reactor").unwrap();
    assert_eq!(reactor[7], "110.6 [110.6–113.9]");
    assert_eq!(reactor[2], "323 B [250 B–331 B]");
    // The others have no repeats: their own value, no range.
    let (_, uring) = rows.iter().find(|r| r.0 == "uring").unwrap();
    assert_eq!(uring[7], "77.6");
    // A range past 10% of the median is marked, a narrow one is not.
    let wide: Vec<String> = elements(&doc, "td")
        .into_iter()
        .filter(|td| td.attribute("class") == Some("num wide"))
        .map(text_of)
        .collect();
    assert_eq!(wide, ["323 B [250 B–331 B]"]);
    assert!(text_of(doc.root()).contains("Figures over repeats: median [min–max]"));
}

#[test]
fn hostile_text_in_a_run_stays_text() {
    let tmp = scratch("hostile");
    let evil_note = r#"</li></ul><script src="https://evil.example/x.js"></script><img src=x onerror=alert(1)>"#;
    let evil_target = r#"<link rel="stylesheet" href="http://evil.example/a.css">"#;
    let run = edited_copy(&broadcast_fixture(), &tmp, |v| {
        let c = &mut v["cases"][0];
        c["notes"] = serde_json::json!([evil_note]);
        c["target"] = Value::String(evil_target.into());
        c["failure"] = Value::String("&amp; \"quoted\" 'single' ]]> <!--".into());
        v["scenario"]["description"] = Value::String("<style>@import url(http://x)</style>".into());
        v["command_line"] = serde_json::json!(["cometbench", "run", "</code></pre><b>x</b>"]);
    });
    let html = page_of(&run, &tmp.join("out"));
    assert_self_contained(&html, "hostile");
    let doc = parse(&html);
    assert!(elements(&doc, "b").is_empty());
    assert_eq!(
        elements(&doc, "style").len(),
        1,
        "only the page's own style"
    );
    let items: Vec<String> = elements(&doc, "li").into_iter().map(text_of).collect();
    assert!(items.iter().any(|i| i == evil_note), "the note, as text");
    let rows = table_rows(&doc);
    assert_eq!(rows[0].0, evil_target);
    assert_eq!(rows[0].1[14], "FAILED: &amp; \"quoted\" 'single' ]]> <!--");
    assert!(text_of(doc.root()).contains("'</code></pre><b>x</b>'"));
}

/// A failing run of `report`: exit 1 and one line on stderr that contains
/// each of `says`; nothing written to stdout or to `out`.
fn fails(dirs: &[PathBuf], out: &Path, says: &[&str]) {
    let o = report(dirs, out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{dirs:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{dirs:?}: one line: {stderr}");
    assert!(stderr.starts_with("cometbench: "), "{stderr}");
    for s in says {
        assert!(
            stderr.contains(s),
            "{dirs:?}: {stderr:?} does not say {s:?}"
        );
    }
    assert!(o.stdout.is_empty());
    assert!(
        !out.exists(),
        "{}: written despite the error",
        out.display()
    );
}

#[test]
fn bad_input_is_one_readable_line_and_writes_nothing() {
    let tmp = scratch("bad");
    let good = broadcast_fixture();
    let out = tmp.join("out");

    // A scenario's directory, not one of its runs: the error names one.
    let scenario = good.parent().unwrap().to_path_buf();
    fails(
        &[good.clone(), scenario.clone()],
        &out,
        &[
            &format!(
                "{}: no run.json, not a cometbench result directory",
                scenario.display()
            ),
            &format!("e.g. {}", good.display()),
        ],
    );
    let empty = tmp.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(&[empty], &out, &["not a cometbench result directory"]);
    let missing = tmp.join("missing");
    fails(&[missing], &out, &["missing: no such directory"]);

    let not_json = tmp.join("not-json");
    std::fs::create_dir_all(&not_json).unwrap();
    std::fs::write(
        not_json.join("run.json"),
        "{\"schema\": \"cometbench-run/1\", \"cases\": [",
    )
    .unwrap();
    fails(
        &[good.clone(), not_json.clone()],
        &out,
        &["not-json/run.json: not a cometbench run"],
    );

    // Unreadable: a directory where the file should be (root reads any mode).
    let unreadable = tmp.join("unreadable");
    std::fs::create_dir_all(unreadable.join("run.json")).unwrap();
    fails(
        &[unreadable],
        &out,
        &["unreadable/run.json: Is a directory"],
    );

    let other = tmp.join("other-schema");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("run.json"),
        r#"{"schema":"cometbench-run/9","cases":[]}"#,
    )
    .unwrap();
    fails(&[other], &out, &["schema \"cometbench-run/9\""]);

    // A spread that is not median, min and max is an error, not a blank.
    let bad_spread = edited_copy(&good, &tmp.join("spread"), |v| {
        v["cases"][0]["spread"] = serde_json::json!({"delivery.latency_us.p99": {"median": 1.0}});
    });
    fails(
        &[bad_spread],
        &out,
        &["run.json: not a cometbench run", "missing field `min`"],
    );

    let o = bin().arg("report").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "no directory: a usage error");
}

/// Chromium's serialisation of the page's DOM (`--dump-dom`), with a fresh
/// profile, nothing in the background, within `limit`.
fn dump_dom(page: &Path, profile: &Path, limit: Duration) -> String {
    let chromium = std::env::var("COMETBENCH_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let mut child = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that the browser's helpers stop with it.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {chromium} ({e}): install the Debian package `chromium` \
                 (scripts/deps.sh does), or set COMETBENCH_CHROMIUM"
            )
        });
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: signals the process group this test created for its own child.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let dom = reader.join().unwrap();
    match status {
        Some(s) if s.success() && !dom.is_empty() => dom,
        Some(s) => panic!("{chromium} exited {s} with no DOM; it said:\n{err}"),
        None => panic!("{chromium} gave no DOM within {limit:?}; it said:\n{err}"),
    }
}

#[test]
fn chromium_builds_the_charts_and_the_table_from_the_file_alone() {
    let run = broadcast_fixture();
    let out = scratch("chromium");
    let html = page_of(&run, &out);
    // The page alone, away from the run's files: all it needs is inside.
    let page = out.join("alone.html");
    std::fs::write(&page, &html).unwrap();
    let profile = out.join("profile");
    let dom = dump_dom(&page, &profile, Duration::from_secs(120));
    let _ = std::fs::remove_dir_all(&profile);

    let titles = chart_titles(&run, "chromium");
    // Inline SVG parsed as SVG: each chart's element, its title, its labels.
    assert_eq!(dom.matches("<svg ").count(), titles.len(), "{dom:.2000}");
    for t in &titles {
        assert!(
            dom.contains(&format!("aria-label=\"{t}\"")),
            "chart {t:?} missing from the DOM"
        );
    }
    assert!(dom.matches("<text ").count() > 20, "the charts' labels");
    // The table: its header and one row per case, each starting with its target.
    let tbody = dom
        .split("<tbody>")
        .nth(1)
        .and_then(|s| s.split("</tbody>").next())
        .expect("a table body in the DOM");
    let rows: Vec<&str> = tbody.split("<tr ").skip(1).collect();
    let targets: Vec<String> = rows
        .iter()
        .map(|r| {
            r.split("<th scope=\"row\">")
                .nth(1)
                .and_then(|s| s.split("</th>").next())
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(targets, BROADCAST_TARGETS);
    assert!(dom.contains("<th scope=\"col\">p99.9 ms</th>"));
    assert!(rows[2].contains(">98.0<"), "reactor's p99: {}", rows[2]);
    // The style sheet is the page's own, and nothing else was pulled in.
    assert!(dom.contains("<style>"));
    assert!(!dom.contains("<script") && !dom.contains("<link"));
}
