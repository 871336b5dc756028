//! Latency distribution of one analysis with N example scripts, in process (no HTTP):
//! `cargo run --release -p vigil-script --example latency -- N POOL RUNS`: with POOL 1
//! each analysis is handed to the set's threads (`submit`, as the API does), with 0 it
//! runs on the calling thread (as pipeline workers do).
use std::sync::Arc;
use std::time::Instant;
use vigil_script::{Lists, Manifest, ScriptEngine, ScriptLimits, ScriptSet};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let (n, pool, runs) = (
        *args.first().unwrap_or(&10),
        *args.get(1).unwrap_or(&2),
        *args.get(2).unwrap_or(&5000),
    );
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    files.sort();
    let set = Arc::new(ScriptSet::new(Arc::new(ScriptEngine::new(
        ScriptLimits::default(),
        Lists::default(),
    ))));
    for i in 0..n {
        let src = std::fs::read_to_string(&files[i % files.len()]).unwrap();
        let mut m = Manifest::from_front_matter(&src).unwrap();
        m.name = format!("{}_{i}", m.name);
        set.load(m, 1, &src, true, None).unwrap();
    }
    let ev = vigil_core::ndjson::parse_event(
        br#"{"event.category":"process","host.name":"ws-12","process.name":"powershell.exe","process.parent.name":"winword.exe","process.executable":"C:\\Users\\bob\\AppData\\Local\\Temp\\x.exe","process.command_line":"powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA"}"#,
        chrono::Utc::now(),
    )
    .unwrap();
    let ev = Arc::new(ev);
    let mut lat = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let r = if pool == 1 {
            set.submit(ev.clone()).unwrap().recv().unwrap()
        } else {
            set.analyze(&ev)
        };
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64) * p) as usize];
    println!(
        "scripts={n} pool={pool}: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        q(0.5),
        q(0.99),
        q(0.999),
        lat[lat.len() - 1]
    );
}
