//! YARA scanning with `yara-x`: Vigil's default rules (`rules/yara/`, built in) plus rule
//! folders loaded at start and reloaded on demand. A reload that does not compile keeps
//! the rules in force and reports every error with its file, line and column.

use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The default rules written for Vigil, compiled into the binary: (namespace, source).
pub const DEFAULT_RULES: [(&str, &str); 5] = [
    (
        "vigil_test_files",
        include_str!("../../../rules/yara/test_files.yar"),
    ),
    (
        "vigil_packers",
        include_str!("../../../rules/yara/packers.yar"),
    ),
    (
        "vigil_structure",
        include_str!("../../../rules/yara/structure.yar"),
    ),
    (
        "vigil_capabilities",
        include_str!("../../../rules/yara/capabilities.yar"),
    ),
    ("vigil_tools", include_str!("../../../rules/yara/tools.yar")),
];

/// Rule files larger than this are refused.
const MAX_RULE_FILE_BYTES: u64 = 16 << 20;
/// Rule files read per load.
const MAX_RULE_FILES: usize = 10_000;

/// A rule that does not compile, located.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{file}:{line}:{column}: {code}: {message}")]
pub struct RuleError {
    /// The rule file (or `builtin:NAMESPACE`).
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// YARA-X's error code, such as `E009`.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

/// A rule that matched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct YaraMatch {
    /// Rule identifier.
    pub rule: String,
    /// Namespace (the file's stem for loaded folders).
    pub namespace: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Metadata (`description`, `score`, `attack`, …).
    pub meta: serde_json::Value,
}

impl YaraMatch {
    /// The rule's `score` metadata (0–100), when it has one.
    pub fn score(&self) -> Option<f64> {
        self.meta.get("score").and_then(serde_json::Value::as_f64)
    }
}

/// A scan that could not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// Ran past the timeout.
    #[error("the YARA scan ran longer than {0:?}")]
    Timeout(Duration),
    /// Anything else YARA-X reports.
    #[error("the YARA scan failed: {0}")]
    Failed(String),
}

/// Compiled rules and where they came from.
pub struct RuleSet {
    rules: yara_x::Rules,
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.iter().len())
            .field("files", &self.files)
            .finish()
    }
}

fn rule_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> std::io::Result<()> {
    if depth > 8 || out.len() >= MAX_RULE_FILES {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            rule_files(&path, out, depth + 1)?;
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "yar" || e == "yara") {
            out.push(path);
        }
    }
    Ok(())
}

fn error_of(e: &yara_x::errors::CompileError, file: &str) -> RuleError {
    // Labels serialize with their line and column.
    let label = e
        .labels()
        .next()
        .and_then(|l| serde_json::to_value(&l).ok())
        .unwrap_or_default();
    let number = |k: &str| {
        label
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as usize
    };
    let text = label
        .get("text")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    RuleError {
        file: file.to_string(),
        line: number("line"),
        column: number("column"),
        code: e.code().to_string(),
        message: if text.is_empty() || text == e.title() {
            e.title().to_string()
        } else {
            format!("{}: {text}", e.title())
        },
    }
}

/// A namespace for a rule file: its stem, in identifier characters.
fn namespace_of(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("rules");
    stem.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

impl RuleSet {
    /// Compiles the built-in rules (when `builtin`) and every `.yar`/`.yara` file under
    /// `dirs` (recursively), each file in its own namespace. Any error fails the whole set,
    /// listing every error found.
    pub fn compile(dirs: &[PathBuf], builtin: bool) -> Result<RuleSet, Vec<RuleError>> {
        let mut compiler = yara_x::Compiler::new();
        let mut errors = Vec::new();
        if builtin {
            for (namespace, source) in DEFAULT_RULES {
                compiler.new_namespace(namespace);
                let origin = format!("builtin:{namespace}");
                let src = yara_x::SourceCode::from(source).with_origin(&origin);
                if let Err(e) = compiler.add_source(src) {
                    errors.push(error_of(&e, &origin));
                }
            }
        }
        let mut files = Vec::new();
        for dir in dirs {
            if let Err(e) = rule_files(dir, &mut files, 0) {
                errors.push(RuleError {
                    file: dir.display().to_string(),
                    line: 0,
                    column: 0,
                    code: "io".into(),
                    message: format!("cannot read the rule folder: {e}"),
                });
            }
        }
        for file in &files {
            let shown = file.display().to_string();
            let source = match std::fs::metadata(file) {
                Ok(m) if m.len() > MAX_RULE_FILE_BYTES => Err(format!(
                    "{} bytes; rule files of at most {MAX_RULE_FILE_BYTES} are read",
                    m.len()
                )),
                _ => std::fs::read(file).map_err(|e| e.to_string()),
            };
            let source = match source {
                Ok(s) => s,
                Err(message) => {
                    errors.push(RuleError {
                        file: shown,
                        line: 0,
                        column: 0,
                        code: "io".into(),
                        message,
                    });
                    continue;
                }
            };
            compiler.new_namespace(&namespace_of(file));
            let src = yara_x::SourceCode::from(source.as_slice()).with_origin(&shown);
            if let Err(e) = compiler.add_source(src) {
                errors.push(error_of(&e, &shown));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RuleSet {
            rules: compiler.build(),
            files,
        })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.iter().len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rule files loaded (built-in rules not included).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Scans `bytes`, stopping after `timeout`.
    pub fn scan(&self, bytes: &[u8], timeout: Duration) -> Result<Vec<YaraMatch>, ScanError> {
        let mut scanner = yara_x::Scanner::new(&self.rules);
        scanner.set_timeout(timeout);
        let results = scanner.scan(bytes).map_err(|e| match e {
            yara_x::errors::ScanError::Timeout => ScanError::Timeout(timeout),
            other => ScanError::Failed(other.to_string()),
        })?;
        Ok(results
            .matching_rules()
            .map(|r| YaraMatch {
                rule: r.identifier().to_string(),
                namespace: r.namespace().to_string(),
                tags: r.tags().map(|t| t.identifier().to_string()).collect(),
                meta: serde_json::Value::Object(
                    r.metadata()
                        .map(|(k, v)| (k.to_string(), serde_json::to_value(v).unwrap_or_default()))
                        .collect(),
                ),
            })
            .collect())
    }
}

/// The rules in force, replaceable while scans run.
pub struct Yara {
    dirs: Vec<PathBuf>,
    builtin: bool,
    timeout: Duration,
    current: RwLock<Arc<RuleSet>>,
}

impl Yara {
    /// Compiles the rules; fails with every error when any rule does not compile.
    pub fn load(
        dirs: Vec<PathBuf>,
        builtin: bool,
        timeout: Duration,
    ) -> Result<Yara, Vec<RuleError>> {
        let set = RuleSet::compile(&dirs, builtin)?;
        Ok(Yara {
            dirs,
            builtin,
            timeout,
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// Compiles the folders again; on success the new rules replace the old ones for the
    /// next scan, on failure the old ones stay and the errors are returned.
    pub fn reload(&self) -> Result<Arc<RuleSet>, Vec<RuleError>> {
        let set = Arc::new(RuleSet::compile(&self.dirs, self.builtin)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = set.clone();
        Ok(set)
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Scans with the rules in force and the configured timeout.
    pub fn scan(&self, bytes: &[u8]) -> Result<Vec<YaraMatch>, ScanError> {
        self.rules().scan(bytes, self.timeout)
    }
}
