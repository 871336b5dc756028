//! The [`Analyzer`] trait and the registry the worker pool reads.

use std::sync::{Arc, RwLock};
use vigil_core::{Event, Finding};

/// Which events an analyzer wants to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest {
    /// Every event.
    All,
    /// Events with at least one of these `event.category` values.
    Categories(Vec<String>),
}

impl Interest {
    /// Whether `event` is of interest.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Interest::All => true,
            Interest::Categories(wanted) => {
                event.categories().any(|c| wanted.iter().any(|w| w == c))
            }
        }
    }
}

/// Something that looks at one event and may have findings about it.
///
/// Analyzers are synchronous: they run on the pipeline's worker threads, never on the async
/// runtime. A panic is caught and counted; it does not affect other analyzers.
pub trait Analyzer: Send + Sync + 'static {
    /// Stable name, recorded in each finding's `analyzer` field.
    fn name(&self) -> &str;
    /// Which events to call [`Analyzer::analyze`] for.
    fn interest(&self) -> Interest;
    /// Findings about `event` (usually none).
    fn analyze(&self, event: &Event) -> Vec<Finding>;
    /// Whether the analyzer must see events in the order they were committed (log
    /// sequences). An ordered analyzer runs on the committing task, one event at a time, so
    /// it must be quick (microseconds) and leave heavy work to its own threads; the others
    /// run on the worker pool, in no particular order.
    fn ordered(&self) -> bool {
        false
    }
}

/// The analyzers the pipeline runs. Analyzers can be added and removed while it runs;
/// each event sees a consistent snapshot.
#[derive(Default)]
pub struct AnalyzerRegistry {
    analyzers: RwLock<Arc<Vec<Arc<dyn Analyzer>>>>,
}

impl AnalyzerRegistry {
    /// An empty registry.
    pub fn new() -> AnalyzerRegistry {
        AnalyzerRegistry::default()
    }

    /// Adds an analyzer, replacing one with the same name.
    pub fn register(&self, analyzer: Arc<dyn Analyzer>) {
        let mut guard = self.analyzers.write().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<_> = guard
            .iter()
            .filter(|a| a.name() != analyzer.name())
            .cloned()
            .collect();
        next.push(analyzer);
        *guard = Arc::new(next);
    }

    /// Removes an analyzer by name; false when there was none.
    pub fn unregister(&self, name: &str) -> bool {
        let mut guard = self.analyzers.write().unwrap_or_else(|e| e.into_inner());
        let before = guard.len();
        let next: Vec<_> = guard.iter().filter(|a| a.name() != name).cloned().collect();
        let removed = next.len() != before;
        *guard = Arc::new(next);
        removed
    }

    /// The current analyzers.
    pub fn snapshot(&self) -> Arc<Vec<Arc<dyn Analyzer>>> {
        self.analyzers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Names of the current analyzers.
    pub fn names(&self) -> Vec<String> {
        self.snapshot()
            .iter()
            .map(|a| a.name().to_string())
            .collect()
    }
}
