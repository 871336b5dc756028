//! Asynchronous analysis jobs (`POST /api/v1/analyze?async=true`): held in memory, bounded
//! in number, kept for ten minutes after they finish. A restart forgets them.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most jobs held at once (pending and finished).
pub const MAX_JOBS: usize = 10_000;
/// How long a finished job's result is kept.
pub const KEEP_FOR: Duration = Duration::from_secs(600);

/// The jobs.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<HashMap<String, (Instant, Option<Value>)>>,
}

impl Jobs {
    /// A new pending job's id, or `None` when the table is full.
    pub fn start(&self) -> Option<String> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.len() >= MAX_JOBS {
            let now = Instant::now();
            jobs.retain(|_, (at, result)| result.is_none() || now.duration_since(*at) < KEEP_FOR);
            if jobs.len() >= MAX_JOBS {
                return None;
            }
        }
        let id = vigil_core::new_id();
        jobs.insert(id.clone(), (Instant::now(), None));
        Some(id)
    }

    /// Stores a finished job's result.
    pub fn finish(&self, id: &str, result: Value) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.insert(id.to_string(), (Instant::now(), Some(result)));
    }

    /// Drops a job that could not be started.
    pub fn forget(&self, id: &str) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// `None`: unknown or expired; `Some(None)`: pending; `Some(Some(v))`: done.
    pub fn get(&self, id: &str) -> Option<Option<Value>> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        match jobs.get(id) {
            Some((at, Some(_))) if at.elapsed() >= KEEP_FOR => None,
            Some((_, r)) => Some(r.clone()),
            None => None,
        }
    }
}
