//! The user-script compiler and sandbox: arbitrary text as a script's front matter and as Rhai
//! source, compiled under the server's limits and, when it compiles, run once on an event
//! under the operation, depth, size and time limits. A panic, a hang past the time limit or
//! an escape from the limits is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use vigil_script::{Language, Lists, Manifest, ScriptEngine, ScriptLimits, ScriptSet};

fn set() -> &'static ScriptSet {
    static SET: OnceLock<ScriptSet> = OnceLock::new();
    SET.get_or_init(|| {
        let limits = ScriptLimits {
            default_timeout_ms: 50,
            ..ScriptLimits::default()
        };
        ScriptSet::new(Arc::new(ScriptEngine::new(limits, Lists::default())))
    })
}

fn event() -> &'static Arc<vigil_core::Event> {
    static EVENT: OnceLock<Arc<vigil_core::Event>> = OnceLock::new();
    EVENT.get_or_init(|| {
        let v = serde_json::json!({
            "@timestamp": "2026-03-14T10:02:11Z",
            "event": {"category": ["process"], "id": "fuzz-1"},
            "host": {"name": "ws-17"},
            "process": {"command_line": "powershell.exe -enc SQBFAFgA", "pid": 4242},
            "source": {"ip": "10.0.0.5"}
        });
        Arc::new(vigil_core::Event::from_input(v, chrono::Utc::now()).expect("a valid event"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Manifest::from_front_matter(source);
    let manifest = Manifest {
        name: "fuzz".into(),
        description: String::new(),
        categories: vec!["*".into()],
        config: Default::default(),
        timeout_ms: None,
        agent_tags: Vec::new(),
        language: Language::Rhai,
    };
    let set = set();
    if let Ok(prepared) = set.prepare(manifest, 1, source, true, None) {
        let (report, matches) = set.trial(&prepared, event());
        assert!(matches);
        assert!(report.results.len() + report.errors.len() <= 1);
    }
});
