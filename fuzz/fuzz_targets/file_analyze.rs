//! Static analysis of untrusted bytes (PE/ELF headers, sections, imports, exports,
//! overlay, ClaMP features): any input gives a report, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = vigil_file::analyze(data, &vigil_file::Limits::default());
    assert_eq!(report.size, data.len());
    if let Some(pe) = &report.pe {
        let features = vigil_file::clamp::vector(&pe.headers);
        assert_eq!(features.len(), vigil_file::clamp::FEATURES.len());
    }
    let _ = serde_json::to_vec(&report);
});
