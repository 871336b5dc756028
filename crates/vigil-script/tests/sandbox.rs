//! Scripts as hostile input: every limit holds, a failing script never hides the others'
//! results, and the host library does what the docs say.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_core::{Event, Severity};
use vigil_script::{Lists, Manifest, ScriptEngine, ScriptLimits, ScriptSet};

fn event(v: serde_json::Value) -> Arc<Event> {
    Arc::new(Event::from_input(v, chrono::Utc::now()).unwrap())
}

fn manifest(name: &str, categories: &[&str]) -> Manifest {
    Manifest {
        name: name.into(),
        description: format!("test script {name}"),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        config: serde_json::Map::new(),
        timeout_ms: None,
        agent_tags: vec![],
        language: Default::default(),
    }
}

fn set_with(limits: ScriptLimits, scripts: &[(&str, &str)]) -> ScriptSet {
    let set = ScriptSet::new(Arc::new(ScriptEngine::new(limits, Lists::default())));
    for (name, src) in scripts {
        set.load(manifest(name, &["*"]), 1, src, true, None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    set
}

const GOOD: &str = r#"
fn analyze(event, config) {
    let cmd = event["process.command_line"];
    if cmd == () { return (); }
    if cmd.contains("-enc") {
        return #{ score: 80, summary: "encoded command", technique: ["T1059.001", "bogus"], severity: "high", cmd: cmd };
    }
    #{ seen: true }
}
"#;

#[test]
fn results_findings_and_nothing_to_say() {
    let set = set_with(ScriptLimits::default(), &[("good", GOOD)]);
    let report = set.analyze(&event(
        json!({"process.command_line": "powershell -enc AAA", "host.name": "h"}),
    ));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.results["good"]["summary"], "encoded command");
    let f = &report.findings[0];
    assert_eq!(f.analyzer, "script:good");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(
        f.techniques,
        vec!["T1059.001"],
        "invalid technique ids are dropped"
    );
    assert_eq!(f.host_name.as_deref(), Some("h"));

    let report = set.analyze(&event(json!({"process.command_line": "ls"})));
    assert_eq!(report.results["good"], json!({"seen": true}));
    assert!(report.findings.is_empty());
    let report = set.analyze(&event(json!({"message": "x"})));
    assert!(
        report.results.is_empty() && report.errors.is_empty(),
        "() means nothing to say"
    );
}

#[test]
fn categories_select_scripts() {
    let set = ScriptSet::new(Arc::new(ScriptEngine::new(
        ScriptLimits::default(),
        Lists::default(),
    )));
    set.load(
        manifest("net", &["network"]),
        1,
        "fn analyze(e, c) { #{ ran: true } }",
        true,
        None,
    )
    .unwrap();
    set.load(
        manifest("all", &["*"]),
        1,
        "fn analyze(e, c) { #{ ran: true } }",
        true,
        None,
    )
    .unwrap();
    let r = set.analyze(&event(json!({"event.category": "process"})));
    assert_eq!(r.results.keys().collect::<Vec<_>>(), vec!["all"]);
    let r = set.analyze(&event(json!({"event.category": ["network", "process"]})));
    assert_eq!(r.results.len(), 2);
}

#[test]
fn compile_errors_carry_line_and_column() {
    let engine = ScriptEngine::new(ScriptLimits::default(), Lists::default());
    let err = engine
        .compile("fn analyze(event, config) {\n    let x = ;\n}\n")
        .unwrap_err();
    assert_eq!(err.code, "compile");
    assert_eq!(err.line, Some(2), "{err}");
    assert!(err.column.is_some(), "{err}");
    let err = engine.compile("fn other(a) { a }").unwrap_err();
    assert_eq!(err.code, "no_analyze");
    let err = engine
        .compile("fn analyze(event, config) { undefined_variable }")
        .unwrap_err();
    assert_eq!(
        err.code, "compile",
        "strict variables catch typos at upload: {err}"
    );
    let err = engine.compile(&"x".repeat(300 * 1024)).unwrap_err();
    assert_eq!(err.code, "source_too_large");
}

#[test]
fn no_files_network_modules_or_eval() {
    let engine = ScriptEngine::new(ScriptLimits::default(), Lists::default());
    for src in [
        r#"import "os" as os; fn analyze(e, c) { () }"#,
        r#"fn analyze(e, c) { eval("40 + 2") }"#,
    ] {
        assert_eq!(engine.compile(src).unwrap_err().code, "compile", "{src}");
    }
    // Functions that would touch the system simply do not exist.
    let set = set_with(
        ScriptLimits::default(),
        &[
            ("file", r#"fn analyze(e, c) { open_file("/etc/passwd") }"#),
            (
                "net",
                r#"fn analyze(e, c) { http_get("http://127.0.0.1/") }"#,
            ),
            ("proc", r#"fn analyze(e, c) { system("id") }"#),
            ("env", r#"fn analyze(e, c) { env("HOME") }"#),
            // Rhai's own `sleep` would block the thread beyond the reach of the timeout.
            ("sleep_f", "fn analyze(e, c) { sleep(5.0); () }"),
            ("sleep_i", "fn analyze(e, c) { sleep(5); () }"),
        ],
    );
    let started = std::time::Instant::now();
    let r = set.analyze(&event(json!({})));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "nothing slept"
    );
    assert_eq!(r.errors.len(), 6);
    for (name, e) in &r.errors {
        assert_eq!(e.code, "runtime", "{name}: {e}");
        if name.starts_with("sleep") {
            assert!(e.message.contains("sleep is not available"), "{name}: {e}");
        } else {
            assert!(e.message.contains("not found"), "{name}: {e}");
        }
    }
}

#[test]
fn every_limit_is_contained_and_the_others_still_answer() {
    let limits = ScriptLimits {
        max_operations: 50_000_000,
        default_timeout_ms: 100,
        // Small size limits trip in microseconds, so the size cases never race the clock
        // (each push re-checks the whole array: growing to 10,000 is quadratic).
        max_collection_len: 200,
        max_string_bytes: 4096,
        ..Default::default()
    };
    let set = set_with(
        limits,
        &[
            ("a_good", "fn analyze(e, c) { #{ ok: true } }"),
            ("loop_forever", "fn analyze(e, c) { loop { } }"),
            ("recurse", "fn f(n) { f(n + 1) } fn analyze(e, c) { f(0) }"),
            (
                "huge_string",
                r#"fn analyze(e, c) { let s = "xxxxxxxx"; loop { s += s; } }"#,
            ),
            (
                "huge_array",
                "fn analyze(e, c) { let a = []; loop { a.push(1); } }",
            ),
            ("bad_return", "fn analyze(e, c) { 42 }"),
            ("throws", r#"fn analyze(e, c) { throw "boom"; }"#),
            ("div_zero", "fn analyze(e, c) { 1 / 0 }"),
            ("bad_regex", r#"fn analyze(e, c) { regex_match("x", "(") }"#),
            ("z_good", "fn analyze(e, c) { #{ ok: true } }"),
        ],
    );
    let started = Instant::now();
    let r = set.analyze(&event(json!({})));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        r.results.keys().collect::<Vec<_>>(),
        vec!["a_good", "z_good"]
    );
    let code = |n: &str| r.errors[n].code;
    assert_eq!(code("loop_forever"), "timeout");
    assert_eq!(code("recurse"), "call_depth");
    assert_eq!(code("huge_string"), "data_too_large");
    assert_eq!(code("huge_array"), "data_too_large");
    assert_eq!(code("bad_return"), "bad_return");
    assert_eq!(code("throws"), "runtime");
    assert_eq!(code("div_zero"), "runtime");
    assert_eq!(code("bad_regex"), "runtime");
    assert_eq!(r.errors.len(), 8);

    // With the default operation budget, a busy loop is stopped by the operation count. Rhai
    // checks a map's size on function calls but not on `m[k] = v`: such growth is bounded by
    // the operation budget instead (a few MiB at the default 200,000 operations). A long
    // timeout makes the operation count, not the clock, the limit that trips.
    let set = set_with(
        ScriptLimits {
            default_timeout_ms: 60_000,
            ..Default::default()
        },
        &[
            (
                "spin",
                "fn analyze(e, c) { let i = 0; while true { i += 1; } }",
            ),
            (
                "huge_map",
                "fn analyze(e, c) { let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; } }",
            ),
        ],
    );
    let r = set.analyze(&event(json!({})));
    assert_eq!(r.errors["spin"].code, "operations_limit");
    assert_eq!(r.errors["huge_map"].code, "operations_limit");
}

#[test]
fn a_script_that_keeps_failing_is_disabled_with_its_reason() {
    let limits = ScriptLimits {
        max_consecutive_failures: 3,
        ..Default::default()
    };
    let set = set_with(
        limits,
        &[
            ("flaky", r#"fn analyze(e, c) { throw "nope"; }"#),
            ("fine", "fn analyze(e, c) { #{a: 1} }"),
        ],
    );
    let disabled = set.auto_disabled();
    for _ in 0..3 {
        assert!(set.analyze(&event(json!({}))).errors.contains_key("flaky"));
    }
    let r = set.analyze(&event(json!({})));
    assert!(r.errors.is_empty(), "a disabled script does not run");
    assert_eq!(r.results.len(), 1);
    let info = set.list().into_iter().find(|s| s.name == "flaky").unwrap();
    assert!(!info.enabled);
    assert!(
        info.disabled_reason
            .as_deref()
            .unwrap()
            .contains("3 failed runs in a row"),
        "{info:?}"
    );
    let failure = disabled.try_recv().unwrap();
    assert_eq!(failure.name, "flaky");
    assert!(disabled.try_recv().is_err(), "reported once");
    assert!(set.set_enabled("flaky", true, None));
    assert!(set.analyze(&event(json!({}))).errors.contains_key("flaky"));
}

#[test]
fn host_library() {
    let lists = Lists::default();
    lists.set(
        "bad_hashes",
        vec!["E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855".into()],
    );
    let set = ScriptSet::new(Arc::new(ScriptEngine::new(ScriptLimits::default(), lists)));
    let src = r#"
fn analyze(event, config) {
    #{
        name: event.get("process.name"),
        has_hash: event.has("file.hash.sha256"),
        missing: event["no.such.field"],
        cats: event.categories(),
        re: regex_match(event["process.command_line"], "(?i)-enc(odedcommand)?\\s"),
        found: regex_find("pid=1234 user=root", "user=\\w+"),
        caps: regex_captures("user=root", "user=(\\w+)"),
        any: contains_any("Invoke-Mimikatz", ["mimikatz", "rubeus"]),
        ent_low: entropy("aaaa"),
        ent_high: entropy("aZ3$kq9!Lp0@xV7#") > 3.9,
        b64: base64_decode("aGVsbG8="),
        b64_bad: base64_decode("***"),
        ps: base64_decode_utf16("SQBFAFgA"),
        hex: hex_decode("6869"),
        sha: sha256("abc"),
        md5: md5("abc"),
        priv: is_private_ip(event["source.ip"]),
        pub_ip: is_private_ip("8.8.8.8"),
        cidr: in_cidr("10.1.2.3", "10.0.0.0/8"),
        ip: is_ip("nope"),
        listed: in_list("bad_hashes", event["file.hash.sha256"]),
        unlisted: in_list("bad_hashes", "00"),
        reg: registered_domain("a.b.evil.example.com."),
        labels: domain_labels("x.y.com").len(),
        tld: tld("x.y.com"),
        cfg: config.threshold,
    }
}
"#;
    let mut m = manifest("lib", &["*"]);
    m.config.insert("threshold".into(), json!(7));
    set.load(m, 1, src, true, None).unwrap();
    let ev = event(json!({
        "event.category": "process",
        "process.name": "powershell.exe",
        "process.command_line": "powershell -EncodedCommand SQBFAFgA",
        "source.ip": "192.168.1.10",
        "file.hash.sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }));
    let r = set.analyze(&ev);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(
        r.results["lib"],
        json!({
            "name": "powershell.exe", "has_hash": true, "missing": null, "cats": ["process"],
            "re": true, "found": "user=root", "caps": ["user=root", "root"], "any": true,
            "ent_low": 0.0, "ent_high": true, "b64": "hello", "b64_bad": null, "ps": "IEX",
            "hex": "hi",
            "sha": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "md5": "900150983cd24fb0d6963f7d28e17f72",
            "priv": true, "pub_ip": false, "cidr": true, "ip": false, "listed": true,
            "unlisted": false, "reg": "example.com", "labels": 3, "tld": "com", "cfg": 7
        })
    );
}

/// Analyses handed to the set's own threads answer on their channel, many at once.
#[test]
fn submitted_analyses_run_on_the_sets_threads() {
    let set = Arc::new(set_with(
        ScriptLimits::default(),
        &[
            ("good", GOOD),
            ("map", "fn analyze(e, c) { #{a: 1, b: \"x\", c: [1, 2]} }"),
        ],
    ));
    let started = std::time::Instant::now();
    let receivers: Vec<_> = (0..400)
        .map(|i| {
            set.submit(event(
                json!({"process.command_line": format!("p -enc {i}")}),
            ))
            .unwrap()
        })
        .collect();
    for rx in receivers {
        let r = rx.recv().unwrap();
        assert_eq!(r.results.len(), 2, "{r:?}");
        assert_eq!(r.findings.len(), 1);
    }
    // 800 tiny script runs: milliseconds of work; allow a slow CI machine plenty.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn many_concurrent_analyses() {
    let set = Arc::new(set_with(
        ScriptLimits::default(),
        &[("good", GOOD), ("other", "fn analyze(e, c) { #{n: 1} }")],
    ));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let set = set.clone();
            std::thread::spawn(move || {
                for j in 0..200 {
                    let r = set.analyze(&event(
                        json!({"process.command_line": format!("x -enc {i} {j}")}),
                    ));
                    assert_eq!(r.results.len(), 2);
                    assert_eq!(r.findings.len(), 1);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
