//! The memory budget of a script run (issue 22, finding 5): a run that holds more than
//! `max_memory_mib` fails with `memory_limit`, whatever shape its data takes, shortly after
//! crossing the budget; runs within the budget are unaffected, and the budget is per run.
//!
//! The budget needs the counting global allocator, installed here as the binary installs it.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_core::Event;
use vigil_script::{CountingAlloc, Lists, Manifest, ScriptEngine, ScriptLimits, ScriptSet};

#[global_allocator]
static ALLOC: CountingAlloc<std::alloc::System> = CountingAlloc::new(std::alloc::System);

/// The script an outside review uploaded: a map of 100,000 one-MiB strings (10,000 fit
/// under the map-size limit, so ~10 GB), which raised the server from 115 MB to 1.5 GB
/// inside its 2 s timeout.
const REVIEW_ATTACK: &str = r#"
fn analyze(event, config) {
    let s="x"; s.pad(1000000,"x"); let m=#{}; for i in 0..100000 { m["k"+i] = s + i; }
}
"#;

const GOOD: &str = r#"
fn analyze(event, config) {
    let cmd = event["process.command_line"];
    if cmd == () { return (); }
    #{ seen: true, long: cmd.contains("-enc") }
}
"#;

fn event(v: serde_json::Value) -> Arc<Event> {
    Arc::new(Event::from_input(v, chrono::Utc::now()).unwrap())
}

fn manifest(name: &str) -> Manifest {
    Manifest {
        name: name.into(),
        description: String::new(),
        categories: vec!["*".into()],
        config: serde_json::Map::new(),
        timeout_ms: None,
        agent_tags: vec![],
        language: Default::default(),
    }
}

fn set_with(limits: ScriptLimits, scripts: &[(&str, &str)]) -> ScriptSet {
    let set = ScriptSet::new(Arc::new(ScriptEngine::new(limits, Lists::default())));
    for (name, src) in scripts {
        set.load(manifest(name), 1, src, true, None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    set
}

/// Default limits but the 2 s timeout the review's script asked for, so that the memory
/// budget, not the clock, is what stops it.
fn limits() -> ScriptLimits {
    ScriptLimits {
        default_timeout_ms: 2_000,
        ..ScriptLimits::default()
    }
}

/// The MiB a `memory_limit` error says the run held when it was stopped.
fn held_mib(message: &str) -> u64 {
    message
        .strip_prefix("held ")
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `held N MiB` in {message:?}"))
}

#[test]
fn accounting_is_active_with_the_counting_allocator() {
    assert!(vigil_script::accounting_active());
    let engine = ScriptEngine::new(ScriptLimits::default(), Lists::default());
    assert!(engine.memory_accounting());
    let off = ScriptEngine::new(
        ScriptLimits {
            max_memory_mib: 0,
            ..ScriptLimits::default()
        },
        Lists::default(),
    );
    assert!(!off.memory_accounting(), "0 means no budget");
}

#[test]
fn review_script_map_of_megabyte_strings_fails_with_memory_limit() {
    let set = set_with(limits(), &[("attack", REVIEW_ATTACK), ("good", GOOD)]);
    let started = Instant::now();
    let r = set.analyze(&event(
        json!({"process.command_line": "powershell -enc AA"}),
    ));
    let took = started.elapsed();
    let err = &r.errors["attack"];
    assert_eq!(err.code, "memory_limit", "{err}");
    let held = held_mib(&err.message);
    assert!(
        (64..=72).contains(&held),
        "stopped holding {held} MiB: {err}"
    );
    assert!(err.message.contains("64 MiB"), "{err}");
    assert!(
        took < Duration::from_secs(2),
        "stopped by the clock? {took:?}"
    );
    // The other script's result is unaffected.
    assert_eq!(r.results["good"], json!({"seen": true, "long": true}));
    assert_eq!(r.errors.len(), 1);
}

#[test]
fn runs_within_the_budget_are_unaffected_and_the_budget_is_per_run() {
    // 40 MiB held at the end of each run: under 64, and only if each run started from zero
    // would ten of them pass.
    let forty = r#"
        fn analyze(event, config) {
            let s = "x"; s.pad(1000000, "x");
            let a = []; a.pad(40, 0);
            let n = 0;
            for i in 0..40 { a[i] = s + i; n += 1; }
            #{ n: n }
        }"#;
    let set = set_with(limits(), &[("forty", forty), ("good", GOOD)]);
    for _ in 0..10 {
        let r = set.analyze(&event(json!({"process.command_line": "ls"})));
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(r.results["forty"], json!({"n": 40}));
        assert_eq!(r.results["good"], json!({"seen": true, "long": false}));
    }
}

#[test]
fn memory_limit_holds_on_the_sets_own_threads_and_counts_towards_auto_disable() {
    let set = Arc::new(set_with(
        ScriptLimits {
            max_consecutive_failures: 3,
            ..limits()
        },
        &[("attack", REVIEW_ATTACK)],
    ));
    // Through `submit`, as `POST /api/v1/analyze` runs them: on the set's threads, several
    // at once.
    let pending: Vec<_> = (0..3)
        .map(|_| set.submit(event(json!({"message": "m"}))).unwrap())
        .collect();
    for rx in pending {
        let r = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(r.errors["attack"].code, "memory_limit", "{:?}", r.errors);
    }
    let info = set.list().into_iter().find(|s| s.name == "attack").unwrap();
    assert!(!info.enabled, "disabled after 3 memory_limit failures");
    let reason = info.disabled_reason.unwrap();
    assert!(reason.contains("memory_limit"), "{reason}");
    let auto: Vec<_> = set.auto_disabled().try_iter().collect();
    assert_eq!(auto.len(), 1);
}

#[test]
fn every_shape_of_data_is_stopped_shortly_after_the_budget() {
    let budget = 16;
    // Rhai checks the total size of nested data on function calls and literals but not on
    // index assignment (`x[k] = v`): these shapes go through it, each toward 100 MiB or
    // more.
    let past_rhai = [
        (
            "review_map",
            "let m = #{}; for i in 0..100000 { m[`k${i}`] = s + i; }",
        ),
        (
            "array_index",
            "let a = []; a.pad(1000, 0); for i in 0..1000 { a[i] = s + i; }",
        ),
        (
            "nested",
            "let m = #{}; for i in 0..100 { m[`a${i}`] = #{}; \
             for j in 0..10 { m[`a${i}`][`b${j}`] = [s + j]; } }",
        ),
        (
            // A copy of an array shares nothing: 9,000 values per copy, no strings at all.
            "copies",
            "let a = []; a.pad(9000, 0); let all = []; all.pad(5000, 0); \
             for i in 0..5000 { all[i] = a; }",
        ),
        (
            // BLOBs are byte buffers, outside the string limit.
            "blobs",
            "let all = []; all.pad(5000, 0); for i in 0..5000 { all[i] = blob(9999, 1); }",
        ),
    ];
    // One expression building ~100 MiB: Rhai checks literals element by element, so these
    // stop at once with `data_too_large`, before the budget matters.
    let list = |f: &dyn Fn(usize) -> String| (0..100).map(f).collect::<Vec<_>>().join(", ");
    let one_expression_array = format!("let a = [{}];", list(&|i| format!("s + {i}")));
    let one_expression_map = format!("let m = #{{{}}};", list(&|i| format!("k{i}: s + {i}")));
    let caught_by_rhai = [
        ("one_expression_array", one_expression_array.as_str()),
        ("one_expression_map", one_expression_map.as_str()),
        (
            "array_push",
            "let a = []; for i in 0..100 { a.push(s + i); }",
        ),
    ];
    let prelude = r#"let s = "x"; s.pad(1000000, "x");"#;
    let scripts: Vec<(&str, String)> = past_rhai
        .iter()
        .chain(&caught_by_rhai)
        .map(|(name, body)| {
            (
                *name,
                format!("fn analyze(event, config) {{ {prelude} {body} #{{}} }}"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = scripts.iter().map(|(n, s)| (*n, s.as_str())).collect();
    let set = set_with(
        ScriptLimits {
            max_memory_mib: budget,
            max_operations: 10_000_000,
            default_timeout_ms: 20_000,
            ..ScriptLimits::default()
        },
        &refs,
    );
    let r = set.analyze(&event(json!({})));
    let mut wrong = Vec::new();
    for (name, _) in &past_rhai {
        let Some(err) = r.errors.get(*name) else {
            wrong.push(format!("{name}: ran to the end"));
            continue;
        };
        if err.code != "memory_limit" {
            wrong.push(format!("{name}: {err}"));
            continue;
        }
        let held = held_mib(&err.message);
        eprintln!("{name}: stopped holding {held} MiB (budget {budget})");
        if held > budget + 4 {
            wrong.push(format!("{name}: held {held} MiB, budget {budget}"));
        }
    }
    for (name, _) in &caught_by_rhai {
        match r.errors.get(*name) {
            Some(err) if matches!(err.code, "data_too_large" | "memory_limit") => {}
            other => wrong.push(format!("{name}: {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
