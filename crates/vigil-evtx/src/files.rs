//! [`find_evtx_files`]: the `.evtx` files under a list of files and directories.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::EvtxError;

/// Deepest directory nesting walked below an input directory.
const MAX_DEPTH: usize = 64;

/// The EVTX files named by `inputs`: each file as given (whatever its name), and every file
/// under each directory, recursively, whose name ends in `.evtx` (any case). The result is
/// sorted and without duplicates.
///
/// Symbolic links are followed, but a directory is walked once however many links lead to it,
/// so link loops end; nesting deeper than 64 levels is not walked. An input that does not exist
/// is an error; an unreadable entry inside a directory is logged and skipped.
pub fn find_evtx_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, EvtxError> {
    let mut found = Vec::new();
    let mut walked = HashSet::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| {
            EvtxError::Io(io::Error::new(
                e.kind(),
                format!("{}: {e}", input.display()),
            ))
        })?;
        if meta.is_dir() {
            walk(input, 0, &mut walked, &mut found).map_err(|e| {
                EvtxError::Io(io::Error::new(
                    e.kind(),
                    format!("{}: {e}", input.display()),
                ))
            })?;
        } else {
            found.push(input.clone());
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn walk(
    dir: &Path,
    depth: usize,
    walked: &mut HashSet<PathBuf>,
    found: &mut Vec<PathBuf>,
) -> io::Result<()> {
    // A directory reached again through a link (a loop, or two links to one place) is skipped.
    if !walked.insert(dir.canonicalize()?) {
        return Ok(());
    }
    if depth > MAX_DEPTH {
        warn!(dir = %dir.display(), "directory nested too deeply; not walked");
        return Ok(());
    }
    let entries = std::fs::read_dir(dir)?;
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "unreadable directory entry; skipped");
                continue;
            }
        };
        // `metadata` follows links; a dangling link is skipped.
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "unreadable entry; skipped");
                continue;
            }
        };
        if meta.is_dir() {
            if let Err(e) = walk(&path, depth + 1, walked, found) {
                warn!(dir = %path.display(), error = %e, "unreadable directory; skipped");
            }
        } else if meta.is_file() && is_evtx_name(&path) {
            found.push(path);
        }
    }
    Ok(())
}

fn is_evtx_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("evtx"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evtx_names_in_any_case() {
        assert!(is_evtx_name(Path::new("a/Security.EVTX")));
        assert!(is_evtx_name(Path::new("b.evtx")));
        assert!(!is_evtx_name(Path::new("b.evtx.json")));
        assert!(!is_evtx_name(Path::new("evtx")));
    }
}
