//! Untrusted NDJSON from agents: parsing and normalization must never panic, and every
//! non-blank line must end up either as an event or as a numbered error.
#![no_main]

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use vigil_core::FieldLookup;
use vigil_core::ndjson::parse_batch;

fuzz_target!(|data: &[u8]| {
    let now = chrono::Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    if let Ok((events, errors)) = parse_batch(data, 1000, now) {
        let lines = data
            .split(|b| *b == b'\n')
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .count();
        assert_eq!(events.len() + errors.len(), lines);
        for e in &events {
            // A normalized event always has an id and an RFC 3339 timestamp.
            assert!(!e.id().is_empty());
            assert!(e.get_str("@timestamp").is_some_and(|t| t.ends_with('Z')));
        }
    }
});
