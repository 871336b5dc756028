//! Asynchronous analysis jobs (`POST /api/v1/analyze?async=true`): held in memory, bounded
//! in number, kept for ten minutes after they finish. A restart forgets them. A job's
//! result is read only by the credential that started it (or an admin): it holds the
//! script results of someone's event.

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
    jobs: Mutex<HashMap<String, Job>>,
}

struct Job {
    at: Instant,
    owner: String,
    result: Option<Value>,
}

impl Jobs {
    /// A new pending job's id, owned by `owner` (a principal's subject), or `None` when the
    /// table is full.
    pub fn start(&self, owner: &str) -> Option<String> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs.len() >= MAX_JOBS {
            let now = Instant::now();
            jobs.retain(|_, j| j.result.is_none() || now.duration_since(j.at) < KEEP_FOR);
            if jobs.len() >= MAX_JOBS {
                return None;
            }
        }
        let id = vigil_core::new_id();
        let job = Job {
            at: Instant::now(),
            owner: owner.to_string(),
            result: None,
        };
        jobs.insert(id.clone(), job);
        Some(id)
    }

    /// Stores a finished job's result.
    pub fn finish(&self, id: &str, result: Value) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = jobs.get_mut(id) {
            j.at = Instant::now();
            j.result = Some(result);
        }
    }

    /// Drops a job that could not be started.
    pub fn forget(&self, id: &str) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// `None`: unknown, expired or another credential's (`owner` `None`: any owner);
    /// `Some(None)`: pending; `Some(Some(v))`: done.
    pub fn get(&self, id: &str, owner: Option<&str>) -> Option<Option<Value>> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        match jobs.get(id) {
            Some(j) if owner.is_some_and(|o| o != j.owner) => None,
            Some(j) if j.result.is_some() && j.at.elapsed() >= KEEP_FOR => None,
            Some(j) => Some(j.result.clone()),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_read_only_by_its_owner_or_an_admin() {
        let jobs = Jobs::default();
        let id = jobs.start("key-a").unwrap();
        assert_eq!(jobs.get(&id, Some("key-a")), Some(None));
        jobs.finish(&id, serde_json::json!({"x": 1}));
        assert!(jobs.get(&id, Some("key-a")).unwrap().is_some());
        assert_eq!(jobs.get(&id, Some("key-b")), None);
        assert!(jobs.get(&id, None).unwrap().is_some());
        // A finish for a job that was never started (or forgotten) creates nothing.
        jobs.finish("nope", serde_json::json!({}));
        assert_eq!(jobs.get("nope", None), None);
    }
}
