//! Every shipped example script compiles, and does on its sample events what its
//! `NAME.cases.json` says.
//!
//! Cases file: `{"lists": {"name": ["value", ...]}, "cases": [{"name": "...", "event": {...},
//! "expect": "finding" | "result" | "nothing", "min_score": 70}]}`.

use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use vigil_core::Event;
use vigil_script::{Lists, Manifest, ScriptEngine, ScriptLimits, ScriptSet};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    #[serde(default)]
    lists: HashMap<String, Vec<String>>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    event: serde_json::Value,
    expect: String,
    #[serde(default)]
    min_score: Option<f64>,
}

#[test]
fn every_example_compiles_and_passes_its_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/examples");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    scripts.sort();
    let mut checked = 0;
    for path in &scripts {
        let source = std::fs::read_to_string(path).unwrap();
        let manifest = Manifest::from_front_matter(&source)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stem = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(
            manifest.name,
            stem,
            "{}: the manifest name must match the file name",
            path.display()
        );
        let cases_path = path.with_extension("cases.json");
        let cases: CasesFile = serde_json::from_str(
            &std::fs::read_to_string(&cases_path)
                .unwrap_or_else(|_| panic!("{} has no {}", path.display(), cases_path.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", cases_path.display()));
        let lists = Lists::default();
        for (name, values) in cases.lists {
            lists.set(&name, values);
        }
        let set = ScriptSet::new(Arc::new(ScriptEngine::new(ScriptLimits::default(), lists)));
        set.load(manifest, 1, &source, true, None)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let kinds: Vec<&str> = cases.cases.iter().map(|c| c.expect.as_str()).collect();
        assert!(
            kinds.contains(&"finding"),
            "{stem}: needs a case that fires"
        );
        assert!(
            kinds.contains(&"nothing"),
            "{stem}: needs a case that stays quiet"
        );
        for case in &cases.cases {
            let event = Arc::new(
                Event::from_input(case.event.clone(), chrono::Utc::now())
                    .unwrap_or_else(|e| panic!("{stem}/{}: {e}", case.name)),
            );
            let r = set.analyze(&event);
            assert!(r.errors.is_empty(), "{stem}/{}: {:?}", case.name, r.errors);
            match case.expect.as_str() {
                "finding" => {
                    assert_eq!(
                        r.findings.len(),
                        1,
                        "{stem}/{}: expected a finding, got {:?}",
                        case.name,
                        r.results
                    );
                    if let Some(min) = case.min_score {
                        assert!(
                            r.findings[0].score >= min,
                            "{stem}/{}: score {} < {min}",
                            case.name,
                            r.findings[0].score
                        );
                    }
                }
                "result" => assert!(
                    r.findings.is_empty() && r.results.contains_key(stem),
                    "{stem}/{}: {:?}",
                    case.name,
                    r.results
                ),
                "nothing" => assert!(
                    r.findings.is_empty(),
                    "{stem}/{}: unexpected finding {:?}",
                    case.name,
                    r.findings
                ),
                other => panic!("{stem}/{}: unknown expect `{other}`", case.name),
            }
            checked += 1;
        }
    }
    assert!(
        scripts.len() >= 12,
        "ship at least 12 examples, found {}",
        scripts.len()
    );
    assert!(checked >= scripts.len() * 2);
}
