//! Shared by the integration tests: where the harmless PE fixtures are.

use std::path::{Path, PathBuf};

/// Debian's `clamav-testfiles` folder, or `None` (with a loud message) when the package is
/// missing. With `VIGIL_REQUIRE_FIXTURES=1` (CI) a missing package fails the test.
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = Path::new("/usr/share/clamav-testfiles");
    if dir.is_dir() {
        return Some(dir.to_path_buf());
    }
    assert!(
        std::env::var("VIGIL_REQUIRE_FIXTURES").as_deref() != Ok("1"),
        "VIGIL_REQUIRE_FIXTURES=1 but /usr/share/clamav-testfiles is missing: apt install clamav-testfiles"
    );
    eprintln!("SKIPPED: /usr/share/clamav-testfiles is missing (apt install clamav-testfiles)");
    None
}
