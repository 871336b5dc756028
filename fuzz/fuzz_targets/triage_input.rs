//! Triage's readers of attacker-controlled text: the seed's event line, JSON events, the
//! classifier's and the knowledge base's tokenisers, Markdown chunking and report rendering.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(subject) = vigil_triage::parse_line(text) {
        assert!(subject.src_ip.is_some() && subject.dst_ip.is_some());
        let _ = subject.text();
        let _ = subject.headline();
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = vigil_triage::Subject::from_event(&v);
    }
    let _ = vigil_triage::classify::raw_features(text);
    let _ = vigil_triage::kb::tokenize(text);
    for chunk in vigil_triage::kb::chunk_markdown("fuzz.md", text) {
        assert!(!chunk.text.trim().is_empty());
    }
    let _ = vigil_triage::kb::clean_attack_text(text);
    let _ = vigil_triage::input::parse_time(text);
});
