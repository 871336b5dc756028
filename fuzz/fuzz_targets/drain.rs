//! Log lines are attacker-controlled: masking and mining any text must not panic, ids must
//! stay within the clusters, and a saved and restored miner must judge every line exactly
//! as the original does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_logs::{Drain, DrainConfig};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut drain = Drain::new(DrainConfig {
        max_clusters: 64,
        max_tokens: 32,
        ..DrainConfig::default()
    });
    for line in text.lines() {
        let parsed = drain.parse(line);
        assert!(parsed.id as usize <= drain.clusters().len());
    }
    let restored = Drain::restore(&drain.save()).expect("a saved state restores");
    assert_eq!(restored.clusters(), drain.clusters());
    for line in text.lines() {
        assert_eq!(restored.lookup(line), drain.lookup(line), "{line:?}");
    }
});
