//! Background upkeep of the store: event retention and cache expiry.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use vigil_core::metric_names as m;
use vigil_store::Store;

/// How long data is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Delete events whose `@timestamp` is older than this many days; 0 keeps them forever.
    pub events_days: u32,
    /// Seconds between retention runs.
    pub interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            events_days: 30,
            interval_secs: 3600,
        }
    }
}

/// Runs retention and cache purging now and then every `interval_secs`, until aborted.
pub fn spawn_retention(store: Arc<dyn Store>, config: RetentionConfig) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(config.interval_secs.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if config.events_days > 0 {
                let cutoff = chrono::Utc::now() - chrono::Duration::days(config.events_days.into());
                match store.delete_events_before(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => {
                        metrics::counter!(m::RETENTION_DELETED).increment(n);
                        tracing::info!(deleted = n, %cutoff, "retention deleted old events");
                    }
                    Err(e) => tracing::error!(error = %e, "retention failed"),
                }
            }
            if let Err(e) = store.cache_purge_expired().await {
                tracing::error!(error = %e, "cache purge failed");
            }
        }
    })
}
