//! User analysis scripts (seed 000): Rhai scripts that admins upload at run time, run on
//! every matching event, and answer a result dictionary and, optionally, a finding.
//!
//! * [`ScriptEngine`]: one sandboxed Rhai engine with Vigil's host library and the limits
//!   every run obeys (operations, call depth, data sizes, wall-clock time). Scripts cannot
//!   import modules, read files, open sockets, start processes or read the environment: the
//!   engine has no such functions, and `eval` is disabled.
//! * [`Manifest`]: what a script declares (name, categories, config defaults, timeout), given
//!   as JSON by the API or as `//!` TOML front matter in a `.rhai` file.
//! * [`ScriptSet`]: the loaded scripts; runs every enabled script that matches an event,
//!   collects results and errors per script, and disables a script that keeps failing.
//!
//! Contract of a script: `fn analyze(event, config)` returns a map (the result dictionary)
//! or `()` for nothing to say. A map with a numeric `score` (0–100) also becomes a finding,
//! with `summary`, `severity` and `technique` (string or array) taken from the map.
#![warn(missing_docs)]

mod convert;
mod host;
mod manifest;
mod memory;
mod python;
pub mod sandbox;
mod set;

pub use host::Lists;
pub use manifest::{Language, Manifest, ManifestError, front_matter_fields};
pub use memory::{CountingAlloc, accounting_active};
pub use python::PythonConfig;
pub use set::{
    AnalysisReport, MAX_PENDING_ANALYSES, Overloaded, PreparedScript, ScriptAnalyzer,
    ScriptFailure, ScriptInfo, ScriptSet,
};

use rhai::{Dynamic, Engine, EvalAltResult, OptimizationLevel, Position};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits every script run obeys. Serialized as the `[scripts]` configuration section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptLimits {
    /// Rhai operations per run (a loop iteration, a call, an expression step).
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_depth: usize,
    /// Longest string a script may build, in bytes.
    pub max_string_bytes: usize,
    /// Largest array or map a script may build.
    pub max_collection_len: usize,
    /// Wall-clock time per run unless the manifest sets `timeout_ms`, in milliseconds.
    pub default_timeout_ms: u64,
    /// Highest `timeout_ms` a manifest may ask for.
    pub max_timeout_ms: u64,
    /// Consecutive failed runs after which a script is disabled.
    pub max_consecutive_failures: u32,
    /// Longest script source accepted, in bytes.
    pub max_source_bytes: usize,
    /// Memory a run may hold at once, in MiB: the net bytes its thread allocated since the
    /// run began. 0 means no budget. Needs the counting global allocator
    /// ([`CountingAlloc`]); without it ([`ScriptEngine::memory_accounting`] is false) runs
    /// have no memory budget.
    pub max_memory_mib: u64,
    /// Python scripts in seed 000's contract (off by default).
    pub python: PythonConfig,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 200_000,
            max_call_depth: 32,
            max_string_bytes: 1 << 20,
            max_collection_len: 10_000,
            default_timeout_ms: 50,
            max_timeout_ms: 2_000,
            max_consecutive_failures: 5,
            max_source_bytes: 256 * 1024,
            max_memory_mib: 64,
            python: PythonConfig::default(),
        }
    }
}

/// A script error that an author can act on, with a stable code.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{code}: {message}{}", location(*line, *column))]
pub struct ScriptError {
    /// Stable code: `compile`, `no_analyze`, `timeout`, `operations_limit`, `call_depth`,
    /// `data_too_large`, `memory_limit`, `bad_return`, `runtime`, `panic`,
    /// `source_too_large`; for Python
    /// scripts also `python_disabled`, `worker_start`, `worker_died`, `busy`,
    /// `worker_protocol`.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
    /// 1-based line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

impl ScriptError {
    /// An error without a position.
    pub fn plain(code: &'static str, message: impl Into<String>) -> ScriptError {
        ScriptError {
            code,
            message: message.into(),
            line: None,
            column: None,
        }
    }

    fn new(code: &'static str, message: impl Into<String>, pos: Position) -> ScriptError {
        ScriptError {
            code,
            message: message.into(),
            line: pos.line(),
            column: pos.position(),
        }
    }

    fn from_eval(err: &EvalAltResult, timeout: Duration, memory_mib: u64) -> ScriptError {
        let pos = err.position();
        match err {
            EvalAltResult::ErrorTerminated(token, _) if token.is::<OverBudget>() => {
                let used = token.clone().cast::<OverBudget>().0;
                ScriptError::new(
                    "memory_limit",
                    format!(
                        "held {} MiB, over its memory budget of {memory_mib} MiB",
                        used.div_ceil(1 << 20)
                    ),
                    pos,
                )
            }
            EvalAltResult::ErrorTerminated(..) => ScriptError::new(
                "timeout",
                format!("ran longer than {} ms", timeout.as_millis()),
                pos,
            ),
            EvalAltResult::ErrorTooManyOperations(_) => {
                ScriptError::new("operations_limit", "ran too many operations", pos)
            }
            EvalAltResult::ErrorStackOverflow(_) => {
                ScriptError::new("call_depth", "calls nested too deeply", pos)
            }
            EvalAltResult::ErrorDataTooLarge(what, _) => {
                ScriptError::new("data_too_large", format!("{what} is too large"), pos)
            }
            EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => {
                ScriptError::from_eval(inner, timeout, memory_mib)
            }
            other => ScriptError::new("runtime", other.to_string(), pos),
        }
    }
}

thread_local! {
    /// Deadline of the script run on this thread, read by the progress callback.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// Memory budget of the script run on this thread, read by the progress callback;
    /// `None` when no budget is armed.
    static MEMORY_BUDGET: Cell<Option<MemoryBudget>> = const { Cell::new(None) };
}

/// A run's memory budget, in the terms of this thread's allocation counter.
#[derive(Clone, Copy)]
struct MemoryBudget {
    /// The counter ([`memory::thread_allocated`]) when the run began.
    start: isize,
    /// Net bytes the run may hold.
    limit: isize,
}

/// The token of a run stopped by its memory budget: the bytes it held then.
#[derive(Clone)]
struct OverBudget(usize);

/// Arms the deadline and the memory budget of a run on this thread, and disarms both when
/// dropped, including when the engine panics.
struct RunGuard;

impl RunGuard {
    fn arm(deadline: Instant, memory: Option<MemoryBudget>) -> RunGuard {
        DEADLINE.set(Some(deadline));
        MEMORY_BUDGET.set(memory);
        RunGuard
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        DEADLINE.set(None);
        MEMORY_BUDGET.set(None);
    }
}

/// The sandboxed Rhai engine with Vigil's host library. Shared by every script.
pub struct ScriptEngine {
    engine: Engine,
    limits: ScriptLimits,
    lists: Lists,
    /// Whether the global allocator counts, so that `max_memory_mib` can be enforced.
    memory_accounting: bool,
}

impl ScriptEngine {
    /// An engine with these limits, reading lookup lists from `lists`.
    pub fn new(limits: ScriptLimits, lists: Lists) -> ScriptEngine {
        let mut engine = Engine::new();
        engine
            .set_optimization_level(OptimizationLevel::Simple)
            .set_strict_variables(true)
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_depth)
            .set_max_expr_depths(64, 32)
            .set_max_string_size(limits.max_string_bytes)
            .set_max_array_size(limits.max_collection_len)
            .set_max_map_size(limits.max_collection_len)
            .set_max_variables(1_000)
            .set_max_functions(256);
        // `eval` would compile code at run time, outside the checks of upload.
        engine.disable_symbol("eval");
        // The string interner is one lock for every thread, and Rhai waits for it by
        // sleeping 10 ms at a time: under concurrent runs that was the whole p99 tail of
        // POST /api/v1/analyze (docs/benchmarks.md). Scripts gain little from interning.
        engine.set_max_strings_interned(0);
        engine.on_progress(|ops| {
            // The memory budget is looked at on every operation (two thread-local reads):
            // one operation can allocate up to `max_string_bytes` or a copy of a container,
            // so checking less often would let a run overshoot by that much per skipped one.
            if let Some(budget) = MEMORY_BUDGET.get() {
                let held = memory::thread_allocated().wrapping_sub(budget.start);
                if held > budget.limit {
                    return Some(Dynamic::from(OverBudget(held.unsigned_abs())));
                }
            }
            // Checking the clock costs more than an operation: look every 256.
            if ops & 0xff != 0 {
                return None;
            }
            match DEADLINE.get() {
                Some(deadline) if Instant::now() >= deadline => Some(Dynamic::from("timeout")),
                _ => None,
            }
        });
        engine.on_print(|text| tracing::info!(script = host::current_script(), "{text}"));
        engine.on_debug(
            |text, _, pos| tracing::debug!(script = host::current_script(), %pos, "{text}"),
        );
        host::register(&mut engine, lists.clone());
        // Rhai's standard library has `sleep(seconds)`, which blocks the thread where
        // neither the operation count nor the deadline can stop it: shadowed by one that
        // fails.
        for_sleep(&mut engine);
        let memory_accounting = memory::accounting_active();
        if limits.max_memory_mib > 0 && !memory_accounting {
            tracing::warn!(
                "the global allocator does not count allocations: script runs have no \
                 memory budget (scripts.max_memory_mib)"
            );
        }
        ScriptEngine {
            engine,
            limits,
            lists,
            memory_accounting,
        }
    }

    /// Whether runs are held to `max_memory_mib`: the global allocator is a
    /// [`CountingAlloc`] and the budget is not 0.
    pub fn memory_accounting(&self) -> bool {
        self.memory_accounting && self.limits.max_memory_mib > 0
    }

    /// The limits in force.
    pub fn limits(&self) -> &ScriptLimits {
        &self.limits
    }

    /// The lookup lists scripts read with `in_list(name, value)`.
    pub fn lists(&self) -> &Lists {
        &self.lists
    }

    /// Refuses a source longer than `max_source_bytes`, in either language.
    pub fn check_source_size(&self, source: &str) -> Result<(), ScriptError> {
        if source.len() > self.limits.max_source_bytes {
            return Err(ScriptError::plain(
                "source_too_large",
                format!(
                    "the script is {} bytes; at most {} are accepted",
                    source.len(),
                    self.limits.max_source_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Compiles a script and checks it defines `fn analyze(event, config)`.
    pub fn compile(&self, source: &str) -> Result<rhai::AST, ScriptError> {
        self.check_source_size(source)?;
        let ast = self
            .engine
            .compile(source)
            .map_err(|e| ScriptError::new("compile", e.0.to_string(), e.1))?;
        let has_analyze = ast
            .iter_functions()
            .any(|f| f.name == "analyze" && f.params.len() == 2);
        if !has_analyze {
            return Err(ScriptError::plain(
                "no_analyze",
                "the script must define `fn analyze(event, config)`",
            ));
        }
        Ok(ast)
    }

    /// Runs `analyze(event, config)` under the limits, with a wall-clock `timeout`.
    fn call(
        &self,
        ast: &rhai::AST,
        event: Dynamic,
        config: Dynamic,
        timeout: Duration,
    ) -> Result<Dynamic, ScriptError> {
        let memory = self.memory_accounting().then(|| MemoryBudget {
            start: memory::thread_allocated(),
            limit: isize::try_from(self.limits.max_memory_mib.saturating_mul(1 << 20))
                .unwrap_or(isize::MAX),
        });
        let guard = RunGuard::arm(Instant::now() + timeout, memory);
        let mut scope = rhai::Scope::new();
        let options = rhai::CallFnOptions::new()
            .eval_ast(false)
            .rewind_scope(true);
        let result = self.engine.call_fn_with_options::<Dynamic>(
            options,
            &mut scope,
            ast,
            "analyze",
            (event, config),
        );
        // The scope (everything the run still held) is freed before the budget is disarmed.
        drop(scope);
        drop(guard);
        result.map_err(|e| ScriptError::from_eval(&e, timeout, self.limits.max_memory_mib))
    }
}

fn for_sleep(engine: &mut Engine) {
    fn refuse<T>(_: T) -> Result<(), Box<EvalAltResult>> {
        Err("sleep is not available to scripts: a run must not block its thread".into())
    }
    engine.register_fn("sleep", refuse::<rhai::INT>);
    engine.register_fn("sleep", refuse::<rhai::FLOAT>);
}

/// A shared engine, as the script set and the CLI use it.
pub type SharedEngine = Arc<ScriptEngine>;
