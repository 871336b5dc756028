//! The fuzz target's seed corpus (`fuzz/corpus/evtx_reader/seed*`) is built by `vigil_evtx::synth`.
//! Regenerate it with `VIGIL_BLESS=1 cargo test -p vigil-evtx --test fuzz_seeds`.

use std::path::PathBuf;

use vigil_evtx::EvtxReader;
use vigil_evtx::synth::{SynthEvent, evtx_file, file_header};

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let events = [
        SynthEvent::new(1, 4688)
            .with_data("CommandLine", "cmd.exe /c whoami")
            .with_data("ProcessId", 4242u32),
        SynthEvent::new(2, 7036)
            .with_qualifiers(16384)
            .with_data("param1", "Spooler"),
        // The first record's template again, by reference.
        SynthEvent::new(3, 4688)
            .with_data("CommandLine", "powershell -enc AAAA")
            .with_data("ProcessId", 77u32),
    ];
    vec![
        // A bare, valid file header: a log with no chunks.
        ("seed-header", file_header(0, 1)),
        // A header and one chunk of three template records, two sharing a template.
        ("seed-chunk", evtx_file(&events)),
    ]
}

#[test]
fn seeds_are_current_and_readable() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/evtx_reader");
    let bless = std::env::var_os("VIGIL_BLESS").is_some();
    for (name, bytes) in seeds() {
        let mut reader = EvtxReader::from_bytes(bytes.clone()).unwrap();
        assert!(reader.records().all(|r| r.is_ok()), "{name}");
        let path = dir.join(name);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else if path.exists() {
            assert!(
                std::fs::read(&path).unwrap() == bytes,
                "{} is stale: VIGIL_BLESS=1 cargo test -p vigil-evtx --test fuzz_seeds",
                path.display()
            );
        }
    }
}
