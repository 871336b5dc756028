//! ClaMP's features computed from real PE files equal what `pefile` computes (the tool
//! ClaMP's authors used), on Debian's harmless test executables (`clamav-testfiles`).
//! Regenerate the expected values with `tests/golden/clamp_pefile.py`.
//!
//! The executables are not in the repository: without the package the test says so and
//! passes, unless `VIGIL_REQUIRE_FIXTURES=1` (CI sets it), where it fails.

use std::collections::BTreeMap;
mod common;

use common::fixtures_dir;
use vigil_file::{clamp, headers::Headers};

#[test]
fn clamp_features_match_pefile_on_real_executables() {
    let Some(dir) = fixtures_dir() else { return };
    let expected: BTreeMap<String, Vec<f64>> =
        serde_json::from_str(include_str!("golden/clamp_pefile.json")).unwrap();
    assert!(expected.len() >= 15);
    for (name, want) in &expected {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let headers = Headers::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = clamp::values(&headers);
        for (i, feature) in clamp::FEATURES.iter().enumerate() {
            assert_eq!(got[i], want[i], "{name}: {feature}");
        }
    }
}
