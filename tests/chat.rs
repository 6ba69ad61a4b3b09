//! The chat page (`GET /chat`) in a real browser: headless Chromium, driven
//! over the DevTools protocol by `headless_chrome`, for every transport on
//! every dispatcher, from the server's own origin and from another one.
//!
//! In each case two tabs (alice and bob) join one room and take turns to send
//! messages that try to become markup; each tab must show every message
//! once, in order, with its id, as text, and the latency of its own. Then bob
//! leaves while alice sends more than the backlog holds, and comes back in
//! the same tab: he must get what the backlog still holds and a line saying
//! what was missed. Then bob reloads and alice sends one more, which he must
//! get and nothing else.
//!
//! Every case has servers of its own: Chromium opens at most six HTTP/1.1
//! connections to one host and port for the whole browser, and ten tabs each
//! holding a subscription on one server would wait on each other. The page
//! for the cross-origin cases comes from one more server, the "host", and
//! talks (`?server=`) to a server started with `--allow-origin` naming the
//! host's origin. One browser serves every case; the five transports of a
//! dispatcher run at once.
//!
//! Screenshots of alice's tab after the exchange and of bob's once back are
//! saved for each case in `target/tmp/chat-screenshots/`. A missing `chromium` fails the test
//! (`scripts/deps.sh` installs it); `COMETBENCH_CHROMIUM` names another binary.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatchers::Kind;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use testkit::Server;

const TRANSPORTS: [&str; 5] = ["longpoll", "stream", "iframe", "sse", "ws"];

/// How long the page may take to show what is waited for; only a bound.
const WITHIN: Duration = Duration::from_secs(30);

/// How long one DevTools call may take before the browser counts as gone.
const CALL_WITHIN: Duration = Duration::from_secs(60);

/// The servers' backlog: small, so that bob's absence overflows it.
const BACKLOG: usize = 3;

/// Alice's and bob's turns: each text tries to become markup or script.
const TURNS: [(&str, &str); 6] = [
    ("alice", "<img src=x onerror=\"window.pwned=1\">"),
    ("bob", "</script><script>window.pwned=2</script>"),
    ("alice", "é 😀 \u{2028} & &amp; <b>not bold</b>"),
    ("bob", "\"});window.pwned=3;//"),
    ("alice", "plain hello"),
    (
        "bob",
        "<iframe srcdoc=\"<script>parent.pwned=4</script>\"></iframe>",
    ),
];

/// What alice sends while bob is away: one more than the backlog keeps.
const AWAY: usize = BACKLOG + 1;

fn browser() -> Browser {
    let path = std::env::var("COMETBENCH_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let path = which(&path).unwrap_or_else(|| {
        panic!("no {path}: install the Debian package `chromium` (scripts/deps.sh does)")
    });
    let args: Vec<&OsStr> = [
        "--disable-quic",
        "--disable-dev-shm-usage",
        // Tabs that are not in front must not have their timers slowed.
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let options = LaunchOptions::default_builder()
        .path(Some(path))
        .headless(true)
        .sandbox(false)
        .window_size(Some((760, 520)))
        .idle_browser_timeout(CALL_WITHIN)
        .args(args)
        .build()
        .expect("launch options");
    Browser::new(options).expect("start chromium")
}

fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

fn serve(dispatcher: &str, extra: &[&str]) -> Server {
    let backlog = BACKLOG.to_string();
    let mut args = vec!["--dispatcher", dispatcher, "--backlog", &backlog];
    if !extra.contains(&"--listen") {
        args.extend(["--listen", "127.0.0.1:0"]);
    }
    args.extend_from_slice(extra);
    Server::start(env!("CARGO_BIN_EXE_cometbench"), &args)
}

/// Evaluates `js`, which must give a string, and returns it.
fn eval(tab: &Tab, js: &str) -> Result<String, String> {
    let v = tab
        .evaluate(js, false)
        .map_err(|e| format!("evaluate: {e}"))?;
    match v.value {
        Some(serde_json::Value::String(s)) => Ok(s),
        other => Err(format!("{js} gave {other:?}")),
    }
}

/// Waits until `js` is `"true"`; `what` names it in the error.
fn wait(tab: &Tab, js: &str, what: &str) -> Result<(), String> {
    let end = Instant::now() + WITHIN;
    let js = format!("String(!!({js}))");
    loop {
        // An evaluation may fail while the page is being replaced.
        if eval(tab, &js).as_deref() == Ok("true") {
            return Ok(());
        }
        if Instant::now() > end {
            let status =
                eval(tab, "document.getElementById('status').textContent").unwrap_or_default();
            let log = eval(tab, "document.getElementById('log').innerText").unwrap_or_default();
            return Err(format!(
                "{what}: not within {WITHIN:?}; status {status:?}, log:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the page to be connected. A page still being replaced (by a
/// reload) has `window.old` set by the caller.
fn ready(tab: &Tab) -> Result<(), String> {
    wait(
        tab,
        "!window.old && document.getElementById('status') && document.getElementById('status').className === 'up'",
        "connected",
    )
}

/// One message as the page shows it.
#[derive(Debug, serde::Deserialize)]
struct Row {
    id: u64,
    data: String,
    /// The text part's textContent and how many elements it holds.
    text: String,
    elements: usize,
}

fn rows(tab: &Tab) -> Result<Vec<Row>, String> {
    let json = eval(
        tab,
        "JSON.stringify(Array.prototype.map.call(document.querySelectorAll('#log li.msg'), function (li) {
            var t = li.querySelector('.text');
            return { id: +li.dataset.id, data: li.dataset.data, text: t.textContent,
                     elements: t.querySelectorAll('*').length + li.querySelectorAll('img, script, iframe, b').length };
        }))",
    )?;
    serde_json::from_str(&json).map_err(|e| format!("rows: {e}: {json}"))
}

fn notes(tab: &Tab) -> Result<String, String> {
    eval(
        tab,
        "Array.prototype.map.call(document.querySelectorAll('#log li.note'), function (n) { return n.textContent; }).join('\\n')",
    )
}

fn count(tab: &Tab, n: usize, what: &str) -> Result<(), String> {
    wait(
        tab,
        &format!("document.querySelectorAll('#log li.msg').length >= {n}"),
        what,
    )
}

fn say(tab: &Tab, text: &str) -> Result<(), String> {
    let text = serde_json::to_string(text).unwrap();
    eval(
        tab,
        &format!(
            "document.getElementById('text').value = {text}; document.getElementById('send').requestSubmit(); ''"
        ),
    )
    .map(drop)
}

/// `got` is exactly `want` (id, data), in order, each shown as text.
fn same(who: &str, got: &[Row], want: &[(u64, String)]) -> Result<(), String> {
    let ids: Vec<(u64, &str)> = got.iter().map(|r| (r.id, r.data.as_str())).collect();
    let wanted: Vec<(u64, &str)> = want.iter().map(|(i, d)| (*i, d.as_str())).collect();
    if ids != wanted {
        return Err(format!("{who} shows {ids:?}, not {wanted:?}"));
    }
    for r in got {
        let text = r.data.split_once(": ").map_or(r.data.as_str(), |(_, t)| t);
        if r.text != text || r.elements != 0 {
            return Err(format!(
                "{who}: message {} is not shown as text: {r:?}",
                r.id
            ));
        }
    }
    Ok(())
}

struct Case<'a> {
    browser: &'a Browser,
    dispatcher: &'a str,
    transport: &'a str,
    /// Where the page comes from, and `&server=...` when it talks elsewhere.
    page: SocketAddr,
    server: Option<SocketAddr>,
    shots: PathBuf,
}

impl Case<'_> {
    fn label(&self) -> String {
        let origin = if self.server.is_some() { "-cross" } else { "" };
        format!("{}-{}{origin}", self.dispatcher, self.transport)
    }

    fn url(&self, name: &str) -> String {
        let server = self
            .server
            .map_or(String::new(), |s| format!("&server=http://{s}"));
        format!(
            "http://{}/chat?room=chat-{}&name={name}&transport={}{server}",
            self.page, self.transport, self.transport
        )
    }

    fn tab(&self, name: &str) -> Result<Arc<Tab>, String> {
        let tab = self
            .browser
            .new_tab()
            .map_err(|e| format!("new tab: {e}"))?;
        tab.navigate_to(&self.url(name))
            .map_err(|e| format!("navigate: {e}"))?;
        ready(&tab)?;
        Ok(tab)
    }

    fn run(&self) -> Result<(), String> {
        eprintln!("{}: start", self.label());
        let alice = self.tab("alice")?;
        let bob = self.tab("bob")?;
        let result = self.exchange(&alice, &bob);
        let _ = alice.close(false);
        let _ = bob.close(false);
        result
    }

    fn exchange(&self, alice: &Tab, bob: &Tab) -> Result<(), String> {
        let mut want = Vec::new();
        for (i, (who, text)) in TURNS.iter().enumerate() {
            say(if *who == "alice" { alice } else { bob }, text)?;
            want.push((i as u64 + 1, format!("{who}: {text}")));
            count(alice, want.len(), "alice sees the turn")?;
            count(bob, want.len(), "bob sees the turn")?;
        }
        for (name, tab) in [("alice", alice), ("bob", bob)] {
            // Each sender's answer (its id) may come after the message does.
            let own = format!(
                "Array.prototype.every.call(document.querySelectorAll('#log li.msg'), function (li) {{
                    return li.dataset.data.indexOf('{name}: ') !== 0 || li.dataset.latency; }})"
            );
            wait(tab, &own, "the latency of every own message")?;
            same(name, &rows(tab)?, &want)?;
            if eval(tab, "String(window.pwned || 0)")? != "0" {
                return Err(format!("{name}: a message ran as script"));
            }
        }
        self.screenshot(alice, "")?;
        self.away_and_back(alice, bob, want.len() as u64)?;
        self.reload(alice, bob, want.len() as u64 + AWAY as u64)
    }

    /// Bob leaves; alice sends more than the backlog holds; bob comes back
    /// in the same tab and resumes after the last id he saw.
    fn away_and_back(&self, alice: &Tab, bob: &Tab, seen: u64) -> Result<(), String> {
        bob.navigate_to("about:blank")
            .map_err(|e| format!("leave: {e}"))?;
        wait(bob, "location.href === 'about:blank'", "bob left")?;
        for i in 0..AWAY {
            say(alice, &format!("while bob is away {i}"))?;
            count(alice, seen as usize + i + 1, "alice sees her message")?;
        }
        bob.navigate_to(&self.url("bob"))
            .map_err(|e| format!("back: {e}"))?;
        ready(bob)?;
        count(bob, BACKLOG, "bob gets the backlog")?;
        let last = seen + AWAY as u64;
        let want: Vec<(u64, String)> = (last - BACKLOG as u64 + 1..=last)
            .map(|id| {
                let i = id - seen - 1;
                (id, format!("alice: while bob is away {i}"))
            })
            .collect();
        same("bob, back", &rows(bob)?, &want)?;
        let notes = notes(bob)?;
        let missed = AWAY - BACKLOG;
        assert_eq!(missed, 1, "the lines below say one message");
        let lines = [
            format!("resuming room chat-{} after id {seen}", self.transport),
            // SSE's notice is a comment, which EventSource never shows its
            // page: the gap in the ids says it instead.
            if self.transport == "sse" {
                format!("id {} never arrived", seen + 1)
            } else {
                format!("{missed} message(s) missed")
            },
        ];
        for line in lines {
            if !notes.contains(&line) {
                return Err(format!("bob, back: no line {line:?} in:\n{notes}"));
            }
        }
        self.screenshot(bob, "-back")
    }

    /// Bob reloads; what alice sends next reaches him, and nothing before.
    fn reload(&self, alice: &Tab, bob: &Tab, seen: u64) -> Result<(), String> {
        eval(bob, "window.old = 1; ''")?;
        bob.reload(false, None)
            .map_err(|e| format!("reload: {e}"))?;
        ready(bob)?;
        say(alice, "after the reload")?;
        count(bob, 1, "bob gets the message after his reload")?;
        // Anything sent twice would be here by the time alice has hers.
        count(alice, seen as usize + 1, "alice sees it")?;
        same(
            "bob, reloaded",
            &rows(bob)?,
            &[(seen + 1, "alice: after the reload".into())],
        )
    }

    fn screenshot(&self, tab: &Tab, suffix: &str) -> Result<(), String> {
        // A tab behind another may have no frame to give.
        tab.activate().map_err(|e| format!("activate: {e}"))?;
        let png = tab
            .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
            .map_err(|e| format!("screenshot: {e}"))?;
        let path = self.shots.join(format!("{}{suffix}.png", self.label()));
        std::fs::write(&path, png).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// A restart of the server, seen from one tab on `transport`: a line when
/// the connection drops, one when it resumes after the last id seen, and one
/// when the new server's ids start again; the message sent then arrives.
fn restart(browser: &Browser, transport: &'static str) -> Result<(), String> {
    // A forever iframe cut off says nothing: the page knows it by two
    // heartbeats without a byte.
    let server = serve("reactor", &["--heartbeat", "1"]);
    let addr = server.addr;
    let case = Case {
        browser,
        dispatcher: "reactor",
        transport,
        page: addr,
        server: None,
        shots: PathBuf::new(),
    };
    let tab = case.tab("alice")?;
    say(&tab, "before the restart")?;
    count(&tab, 1, "the first message")?;
    server.terminate();
    let has = |line: &str| {
        format!(
            "Array.prototype.some.call(document.querySelectorAll('#log li.note'), function (n) {{
                return n.textContent.indexOf({}) >= 0; }})",
            serde_json::to_string(line).unwrap()
        )
    };
    wait(&tab, &has("connection dropped"), "the drop is shown")?;
    let addr = addr.to_string();
    let _again = serve("reactor", &["--listen", &addr, "--heartbeat", "1"]);
    wait(&tab, &has("resumed after id 1"), "the resume is shown")?;
    say(&tab, "after the restart")?;
    wait(&tab, &has("ids started again at 1"), "the restart is shown")?;
    let got = rows(&tab)?;
    let _ = tab.close(false);
    same(
        "alice",
        &got,
        &[
            (1, "alice: before the restart".into()),
            (1, "alice: after the restart".into()),
        ],
    )
}

#[test]
fn a_restart_of_the_server_is_a_visible_drop_and_resume_on_every_transport() {
    let browser = &browser();
    let outcomes: Vec<(&str, Result<(), String>)> = std::thread::scope(|scope| {
        let jobs: Vec<_> = TRANSPORTS
            .map(|t| (t, scope.spawn(move || restart(browser, t))))
            .into_iter()
            .collect();
        jobs.into_iter()
            .map(|(t, j)| (t, j.join().expect("a case panicked")))
            .collect()
    });
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|(t, r)| r.as_ref().err().map(|e| format!("{t}: {e}")))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

fn verdict(r: &Result<(), String>) -> &'static str {
    if r.is_ok() {
        "ok"
    } else {
        "FAILED"
    }
}

/// `all`, or the comma-separated part of it that the variable `var` names
/// (to run a few cases by hand).
fn pick(var: &str, all: &[&'static str]) -> Vec<&'static str> {
    match std::env::var(var) {
        Ok(v) => all
            .iter()
            .copied()
            .filter(|a| v.split(',').any(|p| p == *a))
            .collect(),
        Err(_) => all.to_vec(),
    }
}

#[test]
fn two_tabs_chat_on_every_transport_and_dispatcher_same_and_cross_origin() {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("chat-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let browser = browser();
    let host = serve("reactor", &[]);
    let host_origin = format!("http://{}", host.addr);
    let mut table = Vec::new();
    for dispatcher in pick("COMETBENCH_CHAT_DISPATCHERS", &Kind::ALL.map(Kind::name)) {
        let outcomes: Vec<(String, Result<(), String>)> = std::thread::scope(|scope| {
            let jobs: Vec<_> = pick("COMETBENCH_CHAT_TRANSPORTS", &TRANSPORTS)
                .into_iter()
                .map(|transport| {
                    let (browser, shots, host_origin) = (&browser, &shots, &host_origin);
                    let host = host.addr;
                    scope.spawn(move || {
                        let same = serve(dispatcher, &[]);
                        let cross = serve(dispatcher, &["--allow-origin", host_origin]);
                        let mut out = Vec::new();
                        for (page, server) in [(same.addr, None), (host, Some(cross.addr))] {
                            let case = Case {
                                browser,
                                dispatcher,
                                transport,
                                page,
                                server,
                                shots: shots.clone(),
                            };
                            let outcome = case.run();
                            eprintln!("{}: {}", case.label(), verdict(&outcome));
                            out.push((case.label(), outcome));
                        }
                        out
                    })
                })
                .collect();
            jobs.into_iter()
                .flat_map(|j| j.join().expect("a case panicked"))
                .collect()
        });
        table.extend(outcomes);
    }
    let failed: Vec<String> = table
        .iter()
        .filter_map(|(label, r)| r.as_ref().err().map(|e| format!("{label}: {e}")))
        .collect();
    for (label, r) in &table {
        eprintln!("{label}: {}", verdict(r));
    }
    eprintln!("screenshots in {}", shots.display());
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// `?server=` is an origin, never a URL the page would load into a frame:
/// `javascript:` is refused, and the page says so.
#[test]
fn a_server_that_is_not_http_is_refused() {
    let browser = browser();
    let server = serve("reactor", &[]);
    let tab = browser.new_tab().expect("a tab");
    let url = format!(
        "http://{}/chat?transport=iframe&server=javascript:window.pwned=1//",
        server.addr
    );
    tab.navigate_to(&url).expect("navigate");
    let refused = wait(
        &tab,
        "document.getElementById('status').textContent.indexOf('must be an http') >= 0",
        "the refusal",
    );
    // Long enough for a frame to have run it, had one been made.
    std::thread::sleep(Duration::from_millis(500));
    let pwned = eval(&tab, "String(window.pwned || 0)");
    let frames = eval(&tab, "String(document.querySelectorAll('iframe').length)");
    refused.unwrap();
    assert_eq!(pwned.as_deref(), Ok("0"));
    assert_eq!(frames.as_deref(), Ok("0"));
}
