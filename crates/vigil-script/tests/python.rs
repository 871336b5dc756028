//! The Python runtime (seed 000's contract): the seed's own example unchanged, errors with
//! line numbers, and hostile scripts contained in their worker process.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_core::Event;
use vigil_script::{
    Language, Lists, Manifest, PythonConfig, ScriptEngine, ScriptLimits, ScriptSet,
};

fn event(v: Value) -> Arc<Event> {
    Arc::new(Event::from_input(v, chrono::Utc::now()).unwrap())
}

fn process_event() -> Arc<Event> {
    event(json!({
        "@timestamp": "2026-11-24T08:00:00Z",
        "event": {"category": ["process"]},
        "host": {"name": "ws-1"},
        "process": {"name": "powershell.exe",
                    "command_line": "powershell -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAKQA="}
    }))
}

fn python_limits() -> ScriptLimits {
    ScriptLimits {
        default_timeout_ms: 2_000,
        python: PythonConfig {
            enabled: true,
            memory_mb: 256,
            ..PythonConfig::default()
        },
        ..ScriptLimits::default()
    }
}

fn manifest(name: &str) -> Manifest {
    Manifest {
        name: name.into(),
        description: String::new(),
        categories: vec!["*".into()],
        config: serde_json::Map::new(),
        timeout_ms: None,
        agent_tags: vec![],
        language: Language::Python,
    }
}

fn set_with(limits: ScriptLimits) -> ScriptSet {
    ScriptSet::new(Arc::new(ScriptEngine::new(limits, Lists::default())))
}

fn load(set: &ScriptSet, name: &str, source: &str) {
    set.load(manifest(name), 1, source, true, None)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// A script in the seed's shape whose worker thread runs `body` (Python, indented by 4)
/// with `DATA` and `q` in scope.
fn seed_shaped(body: &str) -> String {
    let body: String = body.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "import queue\nimport threading\n\ndef work(q, DATA):\n{body}\n\
         def Start_Analysis(queue_instance, DATA):\n    \
         threading.Thread(target=work, args=(queue_instance, DATA)).start()\n    \
         return queue_instance\n"
    )
}

#[test]
fn the_seed_example_runs_unchanged() {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/examples/python/seed_custom.py"
    ))
    .unwrap();
    assert!(source.contains("def Start_Analysis(queue_instance:queue.Queue, DATA:bytes)"));
    let set = set_with(python_limits());
    load(&set, "seed_custom", &source);
    let ev = process_event();
    let report = set.analyze(&ev);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // DATA is the event as JSON bytes; the bytes the script put back arrive as text.
    let echoed = report.results["seed_custom"]["custom_res"]
        .as_str()
        .unwrap();
    let parsed: Value = serde_json::from_str(echoed).unwrap();
    assert_eq!(parsed["process"]["name"], "powershell.exe");
    assert_eq!(parsed["event"]["id"], ev.id());
    let info = &set.list()[0];
    assert_eq!(info.language, Language::Python);
}

#[test]
fn the_python_example_finds_encoded_powershell() {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/examples/python/powershell_encoded.py"
    ))
    .unwrap();
    let set = set_with(python_limits());
    let mut m = manifest("ps_enc");
    m.config.insert("score".into(), json!(81));
    set.load(m, 1, &source, true, None).unwrap();
    let report = set.analyze(&process_event());
    let r = &report.results["ps_enc"];
    assert_eq!(r["score"], 81);
    assert_eq!(r["decoded"], "IEX (New-Object)");
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].techniques, vec!["T1059.001", "T1027"]);
    // A benign command line: nothing to say.
    let benign = event(
        json!({"event": {"category": ["process"]}, "process": {"command_line": "notepad.exe"}}),
    );
    let report = set.analyze(&benign);
    assert!(
        report.results.is_empty() && report.errors.is_empty(),
        "{report:?}"
    );
}

#[test]
fn errors_at_upload_carry_line_and_column() {
    let set = set_with(python_limits());
    let e = set
        .load(
            manifest("syntax"),
            1,
            "import queue\n\ndef Start_Analysis(q, DATA)\n    pass\n",
            true,
            None,
        )
        .unwrap_err();
    assert_eq!(e.code, "compile");
    assert_eq!(e.line, Some(3));
    assert!(e.column.is_some());

    let e = set
        .load(manifest("noentry"), 1, "x = 1\n", true, None)
        .unwrap_err();
    assert_eq!(e.code, "no_analyze");
    assert!(e.message.contains("Start_Analysis"));

    let e = set
        .load(
            manifest("modraise"),
            1,
            "x = 1\nraise ValueError('at import')\n",
            true,
            None,
        )
        .unwrap_err();
    assert_eq!(e.code, "runtime");
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("at import"));
    assert!(
        set.list().is_empty(),
        "nothing is loaded after a failed upload"
    );
}

#[test]
fn python_is_off_unless_enabled() {
    let set = set_with(ScriptLimits::default());
    let e = set
        .load(manifest("seed"), 1, &seed_shaped("q.put({})"), true, None)
        .unwrap_err();
    assert_eq!(e.code, "python_disabled");
    assert!(e.message.contains("[scripts.python] enabled = true"));
}

#[test]
fn runtime_errors_are_results_for_that_script_alone() {
    let set = set_with(python_limits());
    load(&set, "good", &seed_shaped("q.put({'ok': 1})"));
    load(
        &set,
        "raises",
        &seed_shaped("x = 1\nraise KeyError('missing')"),
    );
    load(&set, "returns_list", &seed_shaped("q.put([1, 2])"));
    load(
        &set,
        "silent",
        "def Start_Analysis(q, DATA):\n    return q\n",
    );
    load(
        &set,
        "unserializable",
        &seed_shaped("q.put({'f': object()})"),
    );
    let started = Instant::now();
    let report = set.analyze(&process_event());
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "nothing waited for a timeout"
    );
    assert_eq!(report.results["good"]["ok"], 1);
    let e = &report.errors["raises"];
    assert_eq!(e.code, "runtime");
    assert!(e.message.contains("KeyError"), "{e:?}");
    assert_eq!(e.line, Some(6), "line of the raise in the script");
    assert_eq!(report.errors["returns_list"].code, "bad_return");
    assert_eq!(report.errors["silent"].code, "bad_return");
    assert_eq!(report.errors["unserializable"].code, "bad_return");
}

#[test]
fn a_script_that_hangs_is_killed_and_its_next_run_works() {
    let mut limits = python_limits();
    limits.default_timeout_ms = 300;
    let set = set_with(limits);
    // Hangs only on the first event it sees: the second run is on a fresh worker.
    let src = seed_shaped(
        "import json\nif json.loads(DATA).get('hang'):\n    while True:\n        pass\nq.put({'done': True})",
    );
    load(&set, "hang", &src);
    load(&set, "fine", &seed_shaped("q.put({'fine': True})"));
    let report = set.analyze(&event(json!({"hang": true})));
    assert_eq!(report.errors["hang"].code, "timeout", "{report:?}");
    assert_eq!(report.results["fine"]["fine"], true);
    let report = set.analyze(&event(json!({"hang": false})));
    assert_eq!(report.results["hang"]["done"], true, "{report:?}");
}

#[test]
fn files_network_processes_and_native_code_are_refused() {
    let set = set_with(python_limits());
    let probes = [
        ("read_file", "q.put({'x': open('/etc/passwd').read()})"),
        (
            "write_file",
            "q.put({'x': open('/tmp/vigil-py-probe', 'w').write('x')})",
        ),
        (
            "os_open",
            "import os\nq.put({'x': os.open('/etc/hostname', os.O_RDONLY)})",
        ),
        ("list_dir", "import os\nq.put({'x': os.listdir('/')})"),
        (
            "socket",
            "import socket\nq.put({'x': socket.create_connection(('127.0.0.1', 9))})",
        ),
        (
            "subprocess",
            "import subprocess\nq.put({'x': subprocess.run(['id']).returncode})",
        ),
        ("system", "import os\nq.put({'x': os.system('id')})"),
        ("fork", "import os\nq.put({'x': os.fork()})"),
        ("kill", "import os\nq.put({'x': os.kill(1, 9)})"),
        ("ctypes", "import ctypes\nq.put({'x': ctypes.CDLL(None)})"),
        (
            "urllib",
            "import urllib.request\nq.put({'x': urllib.request.urlopen('http://127.0.0.1:9')})",
        ),
    ];
    for (name, body) in probes {
        load(&set, name, &seed_shaped(body));
    }
    let report = set.analyze(&process_event());
    for (name, _) in probes {
        let e = report
            .errors
            .get(name)
            .unwrap_or_else(|| panic!("{name} was not refused: {report:?}"));
        assert_eq!(e.code, "runtime", "{name}: {e:?}");
        // urllib.request cannot even import: it needs `socket`.
        assert!(
            e.message.contains("vigil sandbox") || name == "urllib",
            "{name}: {e:?}"
        );
    }
    assert!(!std::path::Path::new("/tmp/vigil-py-probe").exists());
}

#[test]
fn the_worker_has_no_environment_and_its_own_network_when_the_kernel_allows() {
    let set = set_with(python_limits());
    load(
        &set,
        "probe",
        &seed_shaped("import os\nq.put({'env': sorted(os.environ), 'uid': os.getuid()})"),
    );
    let report = set.analyze(&process_event());
    let r = &report.results["probe"];
    let env: Vec<&str> = r["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Python may set LC_CTYPE itself (PEP 538); nothing comes from the server.
    assert!(
        env.iter().all(|k| *k == "LC_CTYPE"),
        "inherited environment: {env:?}"
    );
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } == 0 {
        assert_eq!(r["uid"], 65534, "a root server runs workers as nobody");
    }
    let can_unshare = std::process::Command::new("unshare")
        .args(["-Un", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let info = &set.list()[0];
    if can_unshare {
        assert_eq!(info.network_isolated, Some(true), "{info:?}");
    } else {
        assert!(info.network_isolated.is_some());
    }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[test]
fn memory_and_result_size_are_bounded() {
    let mut limits = python_limits();
    limits.python.max_result_bytes = 10_000;
    let set = set_with(limits);
    load(
        &set,
        "hog",
        &seed_shaped("b = bytearray(1 << 30)\nq.put({'n': len(b)})"),
    );
    load(&set, "big", &seed_shaped("q.put({'x': 'a' * 100_000})"));
    let report = set.analyze(&process_event());
    let hog = &report.errors["hog"];
    assert!(hog.message.contains("MemoryError"), "{hog:?}");
    assert_eq!(report.errors["big"].code, "data_too_large");
    // Both recover: the next runs still answer (with the same errors, not hangs).
    let report = set.analyze(&process_event());
    assert!(report.errors.contains_key("hog") && report.errors.contains_key("big"));
}

#[test]
fn many_analyses_at_once_share_a_bounded_pool() {
    let mut limits = python_limits();
    limits.python.workers_per_script = 2;
    let set = Arc::new(set_with(limits));
    load(
        &set,
        "echo",
        &seed_shaped("import json\nq.put({'n': json.loads(DATA)['n']})"),
    );
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let set = set.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let n = t * 100 + i;
                    let report = set.analyze(&event(json!({"n": n})));
                    assert_eq!(report.results["echo"]["n"], n, "{report:?}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn python_and_rhai_scripts_answer_together() {
    let set = set_with(python_limits());
    load(&set, "py", &seed_shaped("q.put({'from': 'python'})"));
    let mut rhai = manifest("rh");
    rhai.language = Language::Rhai;
    set.load(
        rhai,
        1,
        "fn analyze(event, config) { #{from: \"rhai\"} }",
        true,
        None,
    )
    .unwrap();
    let report = set.analyze(&process_event());
    assert_eq!(report.results["py"]["from"], "python");
    assert_eq!(report.results["rh"]["from"], "rhai");
}
