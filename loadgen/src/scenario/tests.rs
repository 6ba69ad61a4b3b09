//! Parsing and refusing scenario files.

use super::*;

const FULL: &str = r#"
name = "broadcast-10k"
description = "10,000 SSE subscribers, one channel, 1 publish/s for 30 s"
dispatchers = ["thread-per-connection", { name = "thread-pool", args = ["--pool-size", "512"] }, "reactor", "uring"]
peers = ["nchan"]
server_args = ["--heartbeat", "15"]
transports = ["sse", "longpoll"]
steps = [1000, 10000]
hold_secs = 3.5
warmup_secs = 2.0
sample_interval_ms = 250

[ramp]
rate = 4000.0
in_flight = 256

[publish]
pattern = "broadcast"
rate = 1.0
size = 128
duration_secs = 30.0
drain_secs = 3.0

[thresholds]
max_errors = 0
p99_ms = 150.0
min_delivered_fraction = 1.0
"#;

const MINIMAL: &str = r#"
name = "tiny"
transports = ["stream"]
steps = [10]
"#;

fn err(text: &str) -> String {
    let e = Scenario::from_str(text, "scenarios/x.toml").expect_err("should be refused");
    let s = e.to_string();
    assert!(!s.contains('\n'), "one line: {s}");
    assert!(s.starts_with("scenarios/x.toml"), "names the file: {s}");
    s
}

fn with(extra_top: &str, tables: &str) -> String {
    format!("name = \"x\"\ntransports = [\"sse\"]\nsteps = [10]\n{extra_top}\n{tables}")
}

#[test]
fn full_file_parses() {
    let s = Scenario::from_str(FULL, "full.toml").unwrap();
    let expected = Scenario {
        name: "broadcast-10k".into(),
        description: "10,000 SSE subscribers, one channel, 1 publish/s for 30 s".into(),
        dispatchers: vec![
            DispatcherSpec {
                name: "thread-per-connection".into(),
                args: vec![],
            },
            DispatcherSpec {
                name: "thread-pool".into(),
                args: vec!["--pool-size".into(), "512".into()],
            },
            DispatcherSpec {
                name: "reactor".into(),
                args: vec![],
            },
            DispatcherSpec {
                name: "uring".into(),
                args: vec![],
            },
        ],
        peers: vec!["nchan".into()],
        server_args: vec!["--heartbeat".into(), "15".into()],
        transports: vec![Transport::Sse, Transport::Longpoll],
        steps: vec![1000, 10000],
        hold_secs: 3.5,
        warmup_secs: 2.0,
        sample_interval_ms: 250,
        publish_listen: false,
        nodes: vec![],
        broker: None,
        balancer: None,
        shared_port: false,
        ramp: Ramp {
            rate: 4000.0,
            in_flight: 256,
            unanswered: None,
        },
        publish: Publish {
            pattern: Pattern::Broadcast,
            rate: 1.0,
            size: 128,
            duration_secs: 30.0,
            drain_secs: 3.0,
        },
        thresholds: Thresholds {
            max_errors: Some(0),
            p99_ms: Some(150.0),
            min_delivered_fraction: Some(1.0),
        },
        fault: None,
        hosts: None,
        repeat: 1,
        floor: false,
        placement: None,
        capacity: false,
        slo_p99_ms: 250.0,
    };
    assert_eq!(s, expected);
}

#[test]
fn repeats_floor_placement_and_capacity() {
    let text = format!(
        "{MINIMAL}repeat = 3\nfloor = true\ncapacity = true\nslo_p99_ms = 100.0\n\
         [placement]\nserver = [0]\nloadgen = [1, 2]\n[publish]\npattern = \"broadcast\"\nrate = 1.0\n"
    );
    let s = Scenario::from_str(&text, "t.toml").unwrap();
    assert_eq!(
        (s.repeat, s.floor, s.capacity, s.slo_p99_ms),
        (3, true, true, 100.0)
    );
    assert_eq!(
        s.placement,
        Some(Placement {
            server: vec![0],
            loadgen: vec![1, 2]
        })
    );
    for (bad, field) in [
        ("repeat = 0\n", "repeat"),
        ("slo_p99_ms = -1.0\n", "slo_p99_ms"),
        (
            "[placement]\nserver = []\nloadgen = [1]\n",
            "placement.server",
        ),
        ("[placement]\nserver = [0]\n", "placement"),
        ("floor = true\n[hosts]\nnamespaces = 2\n", "floor"),
    ] {
        let err = Scenario::from_str(&format!("{MINIMAL}{bad}"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{bad}: {err}");
    }
    // Capacity steps a broadcast.
    let err = Scenario::from_str(&format!("{MINIMAL}capacity = true\n"), "t.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("capacity"), "{err}");
}

#[test]
fn cpus_on_the_command_line() {
    let p = Placement::parse("server=0,loadgen=1").unwrap();
    assert_eq!((p.server, p.loadgen), (vec![0], vec![1]));
    let p = Placement::parse("server=0-1,3,loadgen=2").unwrap();
    assert_eq!((p.server, p.loadgen), (vec![0, 1, 3], vec![2]));
    for bad in [
        "0,1",
        "server=0",
        "server=x,loadgen=1",
        "server=2-1,loadgen=0",
    ] {
        assert!(Placement::parse(bad).is_err(), "{bad}");
    }
    let s = Scenario::from_str(MINIMAL, "min.toml")
        .unwrap()
        .with_run_options(Some(2), Some("server=0,loadgen=1"), true)
        .unwrap();
    assert_eq!((s.repeat, s.floor), (2, true));
    assert_eq!(s.placement.unwrap().loadgen, vec![1]);
    let err = Scenario::from_str(MINIMAL, "min.toml")
        .unwrap()
        .with_run_options(None, Some("loadgen=1"), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--cpus"), "{err}");
}

#[test]
fn defaults() {
    let s = Scenario::from_str(MINIMAL, "min.toml").unwrap();
    assert_eq!(s.name, "tiny");
    assert_eq!(s.description, "");
    assert!(s.dispatchers.is_empty() && s.peers.is_empty() && s.server_args.is_empty());
    assert_eq!(s.transports, vec![Transport::Stream]);
    assert_eq!(s.steps, vec![10]);
    assert_eq!(s.hold_secs, 5.0);
    assert_eq!(s.warmup_secs, 1.0);
    assert_eq!(s.sample_interval_ms, 500);
    assert_eq!(
        s.ramp,
        Ramp {
            rate: 5000.0,
            in_flight: 512,
            unanswered: None,
        }
    );
    assert_eq!(s.publish, Publish::default());
    assert_eq!(s.publish.pattern, Pattern::None);
    assert_eq!(s.publish.size, 64);
    assert_eq!(s.publish.duration_secs, 10.0);
    assert_eq!(s.publish.drain_secs, 2.0);
    assert_eq!(s.thresholds, Thresholds::default());
    // A partial table keeps the defaults of the fields it leaves out.
    let s = Scenario::from_str(
        &with(
            "",
            "[publish]\npattern = \"per-user\"\nrate = 5.0\n[ramp]\nrate = 100.0",
        ),
        "p.toml",
    )
    .unwrap();
    assert_eq!(s.publish.pattern, Pattern::PerUser);
    assert_eq!(s.publish.size, 64);
    assert_eq!(s.publish.duration_secs, 10.0);
    assert_eq!(s.ramp.in_flight, 512);
    // Whole numbers where numbers are expected.
    let s = Scenario::from_str(
        &with(
            "hold_secs = 2",
            "[publish]\npattern = \"broadcast\"\nrate = 1",
        ),
        "p.toml",
    )
    .unwrap();
    assert_eq!((s.hold_secs, s.publish.rate), (2.0, 1.0));
}

#[test]
fn serializes_for_run_json() {
    let s = Scenario::from_str(FULL, "full.toml").unwrap();
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["transports"], serde_json::json!(["sse", "longpoll"]));
    assert_eq!(v["publish"]["pattern"], "broadcast");
    assert_eq!(v["dispatchers"][1]["args"][1], "512");
    assert_eq!(v["dispatchers"][0]["name"], "thread-per-connection");
    // And back (charts may read a run's scenario).
    let back: Scenario = serde_json::from_value(v).unwrap();
    assert_eq!(back, s);
}

#[test]
fn unknown_top_level_field() {
    let e = err(&with("steps_max = 3", ""));
    assert!(e.contains("unknown field `steps_max` (expected"), "{e}");
    assert!(e.contains("expected one of name, description"), "{e}");
    assert!(e.contains("x.toml:4:"), "line: {e}");
}

#[test]
fn unknown_field_in_publish() {
    let e = err(&with("", "[publish]\npattern = \"broadcast\"\nrat = 1.0\n"));
    assert!(e.contains("unknown field `rat` in [publish]"), "{e}");
    assert!(
        e.contains("(expected one of pattern, rate, size, duration_secs, drain_secs)"),
        "{e}"
    );
    assert!(e.contains("x.toml:7:"), "line: {e}");
    let e = err(&with("", "[thresholds]\np99 = 1.0\n"));
    assert!(e.contains("unknown field `p99` in [thresholds]"), "{e}");
    let e = err(&with("", "[ramp]\nspeed = 1.0\n"));
    assert!(e.contains("unknown field `speed` in [ramp]"), "{e}");
    let e = err(&with(
        "dispatchers = [{ name = \"reactor\", flags = [] }]",
        "",
    ));
    assert!(e.contains("unknown field `flags` in dispatchers[0]"), "{e}");
}

#[test]
fn bad_transport() {
    let e = err(&with("", "").replace("[\"sse\"]", "[\"sse\", \"websocket\"]"));
    assert!(
        e.contains("unknown transport \"websocket\" in transports"),
        "{e}"
    );
    assert!(e.contains("longpoll, sse, stream, iframe"), "{e}");
    let e = err(&with("", "").replace("[\"sse\"]", "[]"));
    assert!(e.contains("transports must not be empty"), "{e}");
    let e = err(&with("", "").replace("[\"sse\"]", "[\"sse\", \"sse\"]"));
    assert!(e.contains("transports lists \"sse\" twice"), "{e}");
}

#[test]
fn bad_dispatcher() {
    let e = err(&with("dispatchers = [\"reactor\", \"epoll\"]", ""));
    assert!(
        e.contains("unknown dispatcher \"epoll\" in dispatchers[1]"),
        "{e}"
    );
    assert!(
        e.contains("thread-per-connection, thread-pool, reactor, uring, green, tokio"),
        "{e}"
    );
    let e = err(&with("dispatchers = [{ name = \"nchan\" }]", ""));
    assert!(
        e.contains("unknown dispatcher \"nchan\" (peers go in peers) in dispatchers[0]"),
        "{e}"
    );
    let e = err(&with("dispatchers = [{ args = [] }]", ""));
    assert!(e.contains("missing field `name` in dispatchers[0]"), "{e}");
    let e = err(&with("dispatchers = [3]", ""));
    assert!(e.contains("dispatchers[0]"), "{e}");
}

#[test]
fn bad_peer() {
    let e = err(&with("peers = [\"nginx\"]", ""));
    assert!(
        e.contains("unknown peer \"nginx\" in peers (expected one of nchan, pushpin)"),
        "{e}"
    );
    let e = err(&with("peers = [\"reactor\"]", ""));
    assert!(e.contains("dispatchers go in dispatchers"), "{e}");
    let e = err(&with("peers = [\"nchan\", \"nchan\"]", ""));
    assert!(e.contains("peers lists \"nchan\" twice"), "{e}");
    let s = Scenario::from_str(&with("peers = [\"pushpin\", \"nchan\"]", ""), "p.toml").unwrap();
    assert_eq!(s.peers, vec!["pushpin", "nchan"]);
}

#[test]
fn decreasing_steps() {
    let e = err(&with("", "").replace("[10]", "[100, 500, 200]"));
    assert!(
        e.contains("steps must be strictly increasing (got 200 after 500)"),
        "{e}"
    );
    let e = err(&with("", "").replace("[10]", "[100, 100]"));
    assert!(e.contains("strictly increasing (got 100 after 100)"), "{e}");
    let e = err(&with("", "").replace("[10]", "[0, 5]"));
    assert!(e.contains("steps must each be >= 1"), "{e}");
    let e = err(&with("", "").replace("[10]", "[]"));
    assert!(e.contains("steps must not be empty"), "{e}");
    let e = err(&with("", "").replace("[10]", "[-5]"));
    assert!(e.contains("in steps[0]"), "{e}");
}

#[test]
fn size_too_small() {
    let e = err(&with(
        "",
        "[publish]\npattern = \"broadcast\"\nrate = 1.0\nsize = 16\n",
    ));
    assert!(
        e.contains("publish.size must be 48 ..= 65536 bytes (got 16"),
        "{e}"
    );
    let e = err(&with("", "[publish]\nsize = 70000\n"));
    assert!(e.contains("publish.size"), "{e}");
}

#[test]
fn missing_required_field() {
    let e = err("transports = [\"sse\"]\nsteps = [1]\n");
    assert!(e.contains("missing required field `name`"), "{e}");
    let e = err("name = \"x\"\nsteps = [1]\n");
    assert!(e.contains("missing required field `transports`"), "{e}");
    let e = err("name = \"x\"\ntransports = [\"sse\"]\n");
    assert!(e.contains("missing required field `steps`"), "{e}");
}

#[test]
fn other_refusals_are_one_line_too() {
    let e = err(&with("", "[publish]\npattern = \"broadcast\"\n"));
    assert!(e.contains("publish.rate must be > 0"), "{e}");
    let e = err(&with("", "[publish]\npattern = \"fanout\"\n"));
    assert!(e.contains("unknown variant `fanout` in publish.pattern (expected one of none, broadcast, per-user)"), "{e}");
    let e = err(&with("", "[publish]\nsize = \"big\"\n"));
    assert!(e.contains("in publish.size"), "{e}");
    let e = err(&with("sample_interval_ms = 10", ""));
    assert!(e.contains("sample_interval_ms must be >= 50"), "{e}");
    let e = err(&with("", "[ramp]\nrate = 0.0\n"));
    assert!(e.contains("ramp.rate must be > 0"), "{e}");
    let e = err(&with("", "[ramp]\nin_flight = 0\n"));
    assert!(e.contains("ramp.in_flight must be >= 1"), "{e}");
    let e = err(&with("", "[ramp]\nin_flight = 64\nunanswered = 10\n"));
    assert!(
        e.contains("ramp.unanswered must be >= ramp.in_flight (64), got 10"),
        "{e}"
    );
    let e = err(&with("", "[thresholds]\nmin_delivered_fraction = 1.5\n"));
    assert!(e.contains("thresholds.min_delivered_fraction"), "{e}");
    let e = err(&with("hold_secs = -1.0", ""));
    assert!(e.contains("hold_secs must be >= 0"), "{e}");
    let e = err(&with("", "").replace("\"x\"", "\"a/b\""));
    assert!(e.contains("name must be"), "{e}");
    // Not TOML at all: the parser's multi-line report, flattened.
    let e = err("name = \"x\"\n[publish\n");
    assert!(e.contains("x.toml:2: unclosed table"), "{e}");
    let e = err(&with("name = \"y\"", ""));
    assert!(e.contains("x.toml:4: duplicate key `name`"), "{e}");
    let e = err(&with("", "[publish]\nsize = \"big\"\n"));
    assert!(
        e.contains(
            "x.toml:6: invalid type: string \"big\" in publish.size (expected a whole number >= 0)"
        ),
        "{e}"
    );
}

#[test]
fn missing_file_names_the_path() {
    let e = Scenario::from_path(Path::new("/nonexistent/s.toml")).unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("/nonexistent/s.toml: "), "{s}");
    assert!(matches!(e, ScenarioError::Io { .. }));
}

#[test]
fn overrides() {
    let s = Scenario::from_str(FULL, "full.toml").unwrap();
    let o = s
        .clone()
        .with_overrides(
            Some(vec!["thread-pool".into(), "nchan".into()]),
            None,
            None,
            false,
        )
        .unwrap();
    assert_eq!(o.dispatchers.len(), 1);
    assert_eq!(o.dispatchers[0].args, vec!["--pool-size", "512"]);
    assert_eq!(o.peers, vec!["nchan"]);
    let o = s
        .clone()
        .with_overrides(Some(vec!["reactor".into()]), None, None, false)
        .unwrap();
    assert!(o.peers.is_empty());
    let min = Scenario::from_str(MINIMAL, "min.toml").unwrap();
    let o = min
        .with_overrides(Some(vec!["uring".into()]), None, None, false)
        .unwrap();
    assert_eq!(
        o.dispatchers,
        vec![DispatcherSpec {
            name: "uring".into(),
            args: vec![]
        }]
    );
    let e = s
        .clone()
        .with_overrides(Some(vec!["epoll".into()]), None, None, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--dispatcher: unknown dispatcher \"epoll\""),
        "{e}"
    );

    let o = s
        .clone()
        .with_overrides(None, None, Some(vec![5, 50]), false)
        .unwrap();
    assert_eq!(o.steps, vec![5, 50]);
    let e = s
        .clone()
        .with_overrides(None, None, Some(vec![50, 5]), false)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "--steps: steps must be strictly increasing (got 5 after 50)"
    );

    let o = s
        .clone()
        .with_overrides(None, None, Some(vec![1, 5, 10, 100, 10000]), true)
        .unwrap();
    assert_eq!(o.steps, vec![1, 10, 1000]);
    assert_eq!(o.hold_secs, 1.0); // 3.5 / 5 = 0.7, raised to 1 s
    assert_eq!(o.publish.duration_secs, 6.0);
    assert_eq!(o.warmup_secs, s.warmup_secs);
    // --peer alone: only the peers named run, listed in the scenario or not.
    let o = s
        .clone()
        .with_overrides(
            None,
            Some(vec!["pushpin".into(), "nchan".into()]),
            None,
            false,
        )
        .unwrap();
    assert!(o.dispatchers.is_empty());
    assert_eq!(o.peers, vec!["pushpin", "nchan"]);
    // Both flags: the union; a peer named twice runs once.
    let o = s
        .clone()
        .with_overrides(
            Some(vec!["reactor".into(), "nchan".into()]),
            Some(vec!["nchan".into()]),
            None,
            false,
        )
        .unwrap();
    assert_eq!(o.dispatchers.len(), 1);
    assert_eq!(o.peers, vec!["nchan"]);
    let e = s
        .clone()
        .with_overrides(None, Some(vec!["reactor".into()]), None, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--peer: unknown peer \"reactor\" (expected one of nchan, pushpin); dispatchers go in --dispatcher"),
        "{e}"
    );
    let short = Scenario::from_str(&with("hold_secs = 0.5", ""), "s.toml").unwrap();
    assert_eq!(
        short
            .with_overrides(None, None, None, true)
            .unwrap()
            .hold_secs,
        0.5
    );
}

#[test]
fn fault_table() {
    let s = Scenario::from_str(
        &with(
            "",
            "[publish]\npattern = \"broadcast\"\nrate = 5.0\n[fault]\nkind = \"churn\"\nrate = 0.2\naway_max_ms = 4000\n",
        ),
        "f.toml",
    )
    .unwrap();
    let fault = s.fault.clone().unwrap();
    assert_eq!(fault.kind(), FaultKind::Churn);
    let Fault::Churn(f) = fault else {
        panic!("{fault:?}")
    };
    assert_eq!(f.rate(), 0.2);
    assert_eq!(f.away_ms(), (0, 4000));
    assert_eq!(f.reset_fraction(), 0.5);
    // Round-trips through run.json, in the shape it always had there.
    assert_eq!(
        serde_json::to_value(&s).unwrap()["fault"],
        serde_json::json!({ "kind": "churn", "rate": 0.2, "away_max_ms": 4000 })
    );
    let back: Scenario = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    let s = Scenario::from_str(
        &with("", "[fault]\nkind = \"disconnect\"\nreset = true\n"),
        "f.toml",
    )
    .unwrap();
    assert!(matches!(s.fault, Some(Fault::Disconnect(f)) if f.reset()));
}

#[test]
fn quick_keeps_the_fault_meaningful() {
    let text = with(
        "hold_secs = 5.0",
        "[publish]\npattern = \"broadcast\"\nrate = 5.0\nduration_secs = 20.0\n[fault]\nkind = \"restart\"\nat_secs = 8.0\n",
    );
    let s = Scenario::from_str(&text, "q.toml")
        .unwrap()
        .with_overrides(None, None, None, true)
        .unwrap();
    assert_eq!(s.publish.duration_secs, 4.0);
    assert!(
        matches!(&s.fault, Some(Fault::Restart(f)) if f.at_secs() == 1.6),
        "{:?}",
        s.fault
    );
    let text = text.replace("\"restart\"\nat_secs = 8.0", "\"slowloris\"");
    let s = Scenario::from_str(&text, "q.toml")
        .unwrap()
        .with_overrides(None, None, None, true)
        .unwrap();
    assert_eq!(s.publish.duration_secs, 15.0);
}

#[test]
fn fault_refusals_name_the_field() {
    let e = err(&with("", "[fault]\nkind = \"flood\"\n"));
    assert!(e.contains("unknown variant `flood`"), "{e}");
    assert!(e.contains("in fault.kind"), "{e}");
    let e = err(&with(
        "",
        "[fault]\nkind = \"disconnect\"\nconnections = 5\n",
    ));
    assert!(
        e.contains("fault.connections does not apply to kind \"disconnect\""),
        "{e}"
    );
    let e = err(&with("", "[fault]\nkind = \"slow\"\n"));
    assert!(e.contains("needs messages"), "{e}");
    let e = err(&with(
        "",
        "[fault]\nkind = \"disconnect\"\ntolerance = 1.5\n",
    ));
    assert!(e.contains("fault.tolerance must be within 0 ..= 1"), "{e}");
    let e = err(&with(
        "",
        "[fault]\nkind = \"slowloris\"\nconnections = 0\n",
    ));
    assert!(e.contains("fault.connections must be >= 1"), "{e}");
    let e = err(&with(
        "",
        "[publish]\npattern = \"broadcast\"\nrate = 1.0\nduration_secs = 2.0\n[fault]\nkind = \"restart\"\nat_secs = 5.0\n",
    ));
    assert!(
        e.contains("fault.at_secs (5) must be within publish.duration_secs"),
        "{e}"
    );
    let e = err(&with("", "[fault]\nkind = \"churn\"\nspeed = 1\n"));
    assert!(e.contains("unknown field `speed` in [fault]"), "{e}");
}

/// A table of `kind` with `extra` and what the kind needs to be accepted
/// (fault `node`: nodes sharing a broker).
fn fault_text(kind: FaultKind, extra: &str) -> String {
    let (top, nodes) = match kind {
        FaultKind::Node => ("broker = \"redis\"", "nodes = [2]\n"),
        _ => ("", ""),
    };
    with(
        top,
        &format!(
            "{nodes}[publish]\npattern = \"broadcast\"\nrate = 1.0\nduration_secs = 5.0\n[fault]\nkind = \"{}\"\n{extra}",
            kind.name()
        ),
    )
}

/// serde's `deny_unknown_fields` does not reach the variants of an
/// internally tagged enum by itself: every kind must refuse a misspelt key.
#[test]
fn every_fault_kind_refuses_a_misspelt_key() {
    for kind in FaultKind::ALL {
        let accepted = Scenario::from_str(&fault_text(kind, ""), "scenarios/x.toml").unwrap();
        assert_eq!(accepted.fault.map(|f| f.kind()), Some(kind));
        for field in kind.fields() {
            let misspelt = format!("{field}s");
            let e = err(&fault_text(kind, &format!("{misspelt} = 1\n")));
            assert!(
                e.contains(&format!("unknown field `{misspelt}` in [fault]")),
                "{}: {e}",
                kind.name()
            );
            let expected = match kind.fields() {
                [a, b] => format!("{a} or {b}"),
                all => format!("one of {}", all.join(", ")),
            };
            assert!(
                e.contains(&format!("(expected {expected})")),
                "{}: {e}",
                kind.name()
            );
            // The line of the [fault] table.
            let text = fault_text(kind, "");
            let line = text.lines().position(|l| l == "[fault]").unwrap() + 1;
            assert!(
                e.starts_with(&format!("scenarios/x.toml:{line}: ")),
                "line: {e}"
            );
        }
    }
}

#[test]
fn every_fault_kind_refuses_the_keys_of_the_others() {
    for kind in FaultKind::ALL {
        for other in FaultKind::ALL.into_iter().filter(|&o| o != kind) {
            for field in other.fields().iter().filter(|f| !kind.fields().contains(f)) {
                let value = if *field == "signal" { "\"kill\"" } else { "1" };
                let e = err(&fault_text(kind, &format!("{field} = {value}\n")));
                assert!(
                    e.contains(&format!(
                        "fault.{field} does not apply to kind \"{}\" (it reads {})",
                        kind.name(),
                        kind.fields().join(", ")
                    )),
                    "{e}"
                );
            }
        }
    }
}

#[test]
fn repository_scenarios_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("note: no {} to check", dir.display());
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = Scenario::from_path(&path) {
                panic!("{e}");
            }
        }
    }
}

#[test]
fn hosts_table() {
    let s = Scenario::from_str(
        &with("", "[hosts]\nnamespaces = 2\nrate_mbit = 100.0\n"),
        "x.toml",
    )
    .unwrap();
    let h = s.hosts.as_ref().unwrap();
    assert_eq!((h.namespaces, h.rate_mbit), (Some(2), Some(100.0)));
    assert_eq!(h.command(), NAMESPACE_COMMAND);
    let s = Scenario::from_str(
        &with(
            "",
            "[hosts]\nnames = [\"load1\", \"u@load-2.example\"]\ncommand = \"ssh {host} cometbench worker\"\nlisten = \"192.0.2.10\"\n",
        ),
        "x.toml",
    )
    .unwrap();
    let h = s.hosts.unwrap();
    assert_eq!(h.names, ["load1", "u@load-2.example"]);
    assert_eq!(h.listen, Some("192.0.2.10".parse().unwrap()));
}

#[test]
fn hosts_refusals_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            "",
            "hosts needs names = [...] (with command and listen), or namespaces = N",
        ),
        ("namespaces = 0", "namespaces must be 1 ..= 64, got 0"),
        ("namespaces = 65", "namespaces must be 1 ..= 64"),
        (
            "namespaces = 2\nnames = [\"a\"]",
            "either names or namespaces",
        ),
        (
            "namespaces = 2\nlisten = \"10.0.0.1\"",
            "hosts.listen goes with names",
        ),
        (
            "namespaces = 2\ncommand = \"ip netns exec x worker\"",
            "hosts.command must name {host}",
        ),
        ("namespaces = 2\nrate_mbit = 0.0", "rate_mbit must be > 0"),
        (
            "names = [\"a\"]\nlisten = \"10.0.0.1\"",
            "hosts.command is needed with names",
        ),
        (
            "names = [\"a\"]\ncommand = \"ssh {host} w\"",
            "hosts.listen is needed with names",
        ),
        (
            "names = [\"a b\"]\ncommand = \"ssh {host} w\"\nlisten = \"10.0.0.1\"",
            "a host name is 1 or more of",
        ),
        (
            "names = [\"a\", \"a\"]\ncommand = \"ssh {host} w\"\nlisten = \"10.0.0.1\"",
            "names lists \"a\" twice",
        ),
        (
            "names = [\"a\"]\ncommand = \"ssh {host} w\"\nlisten = \"10.0.0.1\"\nrate_mbit = 10.0",
            "hosts.rate_mbit: links are rate-limited only",
        ),
        ("namespace = 2", "unknown field `namespace`"),
        ("listen = \"not an address\"", "hosts.listen"),
    ];
    for (table, expected) in cases {
        let e = err(&with("", &format!("[hosts]\n{table}\n")));
        assert!(e.contains(expected), "{table:?}: {e}");
    }
    let e = err(&with("peers = [\"nchan\"]", "[hosts]\nnamespaces = 1\n"));
    assert!(e.contains("peers serve on 127.0.0.1 only"), "{e}");
    let e = err(&with("broker = \"redis\"", "[hosts]\nnamespaces = 1\n"));
    assert!(
        e.contains("nodes and their broker run on 127.0.0.1 only"),
        "{e}"
    );
}

#[test]
fn hosts_flag() {
    let base = || Scenario::from_str(&with("", "[hosts]\nnamespaces = 3\n"), "x.toml").unwrap();
    assert_eq!(base().with_hosts("local", None, None).unwrap().hosts, None);
    let s = base().with_hosts("netns:2", None, None).unwrap();
    assert_eq!(s.hosts.unwrap().namespaces, Some(2));
    let s = base()
        .with_hosts(
            "a,b",
            Some("ssh {host} cometbench worker".into()),
            Some("10.1.0.1".parse().unwrap()),
        )
        .unwrap();
    assert_eq!(s.hosts.unwrap().names, ["a", "b"]);
    for (flag, command, expected) in [
        ("netns:x", None, "--hosts netns:N needs a number"),
        ("netns:0", None, "namespaces must be 1 ..= 64"),
        ("a,b", None, "hosts.command is needed with names"),
        (
            "local",
            Some("ssh {host} w"),
            "--hosts local takes no --host-command",
        ),
    ] {
        let e = base()
            .with_hosts(flag, command.map(String::from), None)
            .expect_err(flag)
            .to_string();
        assert!(
            e.contains(expected) && e.starts_with("--hosts"),
            "{flag}: {e}"
        );
    }
    let named = base().with_name("other-name").unwrap();
    assert_eq!(named.name, "other-name");
    let e = base().with_name("../x").unwrap_err().to_string();
    assert!(e.starts_with("--name") && e.contains("name must be"), "{e}");
}

#[test]
fn nodes_share_a_broker_and_sweep_like_steps() {
    let s = Scenario::from_str(
        &with(
            "nodes = [1, 2, 4]\nbroker = \"redis\"\nbalancer = \"haproxy\"",
            "",
        ),
        "x.toml",
    )
    .unwrap();
    assert_eq!(s.node_counts(), vec![1, 2, 4]);
    assert_eq!(
        (s.broker, s.balancer),
        (Some(Broker::Redis), Some(Balancer::Haproxy))
    );
    // A broker alone is one node; nothing at all is a lone server.
    let one = Scenario::from_str(&with("broker = \"redis\"", ""), "x.toml").unwrap();
    assert_eq!(one.node_counts(), vec![1]);
    assert!(Scenario::from_str(&with("", ""), "x.toml")
        .unwrap()
        .node_counts()
        .is_empty());
    let cases = [
        ("nodes = [2]", "nodes need a broker they share"),
        (
            "nodes = [2, 2]\nbroker = \"redis\"",
            "nodes must be strictly increasing",
        ),
        ("nodes = [0]\nbroker = \"redis\"", "nodes must each be >= 1"),
        (
            "nodes = [65]\nbroker = \"redis\"",
            "nodes must each be <= 64",
        ),
        ("shared_port = true", "shared_port is for nodes"),
        (
            "nodes = [2]\nbroker = \"redis\"\nshared_port = true\nbalancer = \"haproxy\"\npublish_listen = true",
            "nodes sharing a port need no balancer",
        ),
        (
            "nodes = [2]\nbroker = \"redis\"\nshared_port = true\npeers = [\"nchan\"]\npublish_listen = true",
            "a peer's nodes cannot share a port",
        ),
        (
            "nodes = [2]\nbroker = \"redis\"\nshared_port = true",
            "nodes sharing a port need publish_listen = true",
        ),
        (
            "balancer = \"haproxy\"",
            "a balancer stands in front of nodes",
        ),
        (
            "broker = \"redis\"\npeers = [\"pushpin\"]",
            "peer \"pushpin\" cannot share a broker",
        ),
        ("broker = \"memcached\"", "unknown variant `memcached`"),
        (
            "broker = \"redis\"\ndispatchers = [\"tokio\"]",
            "dispatcher \"tokio\" cannot share a broker",
        ),
    ];
    for (top, want) in cases {
        let e = err(&with(top, ""));
        assert!(e.contains(want), "{top}: {e}");
    }
    // Fault `node` needs another node for the subscribers to go to.
    let fault = "[publish]\npattern = \"broadcast\"\nrate = 1.0\nduration_secs = 5.0\n[fault]\nkind = \"node\"\n";
    let e = err(&with("", fault));
    assert!(
        e.contains("fault \"node\" needs nodes sharing a broker"),
        "{e}"
    );
    let e = err(&with("broker = \"redis\"", fault));
    assert!(e.contains("every count in nodes must be >= 2"), "{e}");
    let e = err(&format!(
        "{}node = 2\n",
        with("broker = \"redis\"\nnodes = [2]", fault)
    ));
    assert!(
        e.contains("fault.node (2) must be below the smallest count in nodes (2)"),
        "{e}"
    );
    let broker = format!("{}kill = \"broker\"\n", with("broker = \"redis\"", fault));
    assert!(Scenario::from_str(&broker, "x.toml").is_ok());
    let shared = with(
        "nodes = [60]\nbroker = \"redis\"\nshared_port = true\npublish_listen = true",
        "",
    );
    assert!(Scenario::from_str(&shared, "x.toml").unwrap().shared_port);
}
