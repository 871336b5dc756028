//! Crash-safe file writes.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: to a temporary file beside it, synced, then renamed
/// over `path` and the directory synced. A crash leaves either the old file or the new one,
/// never a torn mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory is synced (not possible everywhere).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes the temporary files [`write_atomic`] leaves in `dir` when a process is killed
/// mid-write (`.NAME.PID.tmp`), unless that process is this one or still running. Returns
/// how many were removed; a directory that cannot be read removes nothing.
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let me = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = temporary_pid(name) else {
            continue;
        };
        if pid == me || alive(pid) {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The writer's pid of a `.NAME.PID.tmp` file name.
fn temporary_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (base, pid) = rest.rsplit_once('.')?;
    if base.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// Whether a process with this pid exists (Linux: `/proc`; elsewhere assumed alive, so
/// nothing another process may be writing is removed).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporaries_of_dead_writers_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        // pid 0 is never a user process: a writer that is gone.
        std::fs::write(p(".v3.json.4294967294.tmp"), b"torn").unwrap();
        std::fs::write(p(&format!(".active.{}.tmp", std::process::id())), b"mine").unwrap();
        std::fs::write(p("v3.json"), b"{}").unwrap();
        std::fs::write(p(".hidden"), b"x").unwrap();
        std::fs::write(p(".x.notapid.tmp"), b"x").unwrap();
        let removed = remove_stale_temporaries(dir.path());
        if cfg!(target_os = "linux") {
            assert_eq!(removed, 1);
            assert!(!p(".v3.json.4294967294.tmp").exists());
        }
        for kept in ["v3.json", ".hidden", ".x.notapid.tmp"] {
            assert!(p(kept).exists(), "{kept}");
        }
        assert!(p(&format!(".active.{}.tmp", std::process::id())).exists());
        assert_eq!(temporary_pid(".drain.json.12.tmp"), Some(12));
        assert_eq!(temporary_pid("..12.tmp"), None);
        assert_eq!(remove_stale_temporaries(&dir.path().join("absent")), 0);
    }

    #[test]
    fn replaces_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write_atomic(&dir.path().join("missing/x"), b"x").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
