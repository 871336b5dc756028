//! CAPE/Cuckoo sandbox reports arrive from the network: parsing any bytes must give a
//! summary or an error, never a panic, and the summary's lists stay capped.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(summary) = vigil_file::sandbox::parse(data) {
        assert!(summary.signatures.len() <= 50);
        assert!(summary.hosts.len() <= 50);
        for e in vigil_file::sandbox::evidence(&summary) {
            assert!((0.0..=1.0).contains(&e.score));
        }
    }
});
