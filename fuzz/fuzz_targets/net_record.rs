//! Connection records arrive from the network (REST, WebSocket) and /proc text from the
//! collector: parsing any bytes must give a record, a field error, or a parse error,
//! never a panic; a record's features are finite.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        if let Ok(r) = vigil_net::ConnectionRecord::from_seed_json(&v, now, Some("fuzz")) {
            let mut b = vigil_net::features::Baselines::default();
            for f in b.observe(&r) {
                assert!(f.is_finite());
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vigil_net::collector::parse_proc_net(text, vigil_net::Protocol::Tcp);
    }
});
