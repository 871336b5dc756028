//! [`OpenSearchStore`]: the `Store` with events, findings and incidents in OpenSearch and
//! the control tables (API keys, scripts, models, agents, cache, outbox, reports, assets,
//! network time series) in the node's embedded SQLite.
//!
//! Why split: events, findings and incidents are the data that grows and that several nodes
//! write at once. By their ids they are written idempotently, so two nodes, or a node and
//! its restart, store each one once. The control tables are small, transactional (the
//! outbox's claims, the cache's expiry), and per node today. Sharing them across nodes is
//! left for later; `docs/deployment.md` says what that means for a deployment.

use crate::OpenSearchConfig;
use crate::client::{Client, OsError};
use crate::docs::{FindingIndex, IncidentIndex};
use crate::events::EventIndex;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use vigil_core::{Event, Finding, Incident};
use vigil_store::*;

fn backend(e: OsError) -> StoreError {
    match e {
        OsError::Format(m) if m == "bad cursor" => StoreError::BadCursor,
        other => StoreError::Backend(other.to_string()),
    }
}

/// Events, findings and incidents in OpenSearch; the rest in SQLite.
pub struct OpenSearchStore {
    events: EventIndex,
    findings: FindingIndex,
    incidents: IncidentIndex,
    control: Arc<SqliteStore>,
}

impl OpenSearchStore {
    /// Connects, installs the index templates, and keeps the control tables in `control`.
    pub async fn open(
        cfg: &OpenSearchConfig,
        control: Arc<SqliteStore>,
    ) -> Result<OpenSearchStore, StoreError> {
        let client = Client::new(cfg).map_err(backend)?;
        let store = OpenSearchStore {
            events: EventIndex::new(client.clone(), &cfg.index_prefix),
            findings: FindingIndex::new(client.clone(), &cfg.index_prefix),
            incidents: IncidentIndex::new(client, &cfg.index_prefix),
            control,
        };
        store.events.ensure_template().await.map_err(backend)?;
        store.findings.ensure_template().await.map_err(backend)?;
        store.incidents.ensure_template().await.map_err(backend)?;
        Ok(store)
    }
}

#[async_trait]
impl Store for OpenSearchStore {
    async fn insert_events(&self, events: &[Event]) -> Result<Vec<bool>, StoreError> {
        let flags = self.events.insert_events(events).await.map_err(backend)?;
        let new: Vec<&Event> = events
            .iter()
            .zip(&flags)
            .filter(|(_, n)| **n)
            .map(|(e, _)| e)
            .collect();
        self.control.record_agents(&new).await?;
        Ok(flags)
    }

    async fn get_event(&self, id: &str) -> Result<Option<Event>, StoreError> {
        self.events.get_event(id).await.map_err(backend)
    }

    async fn events_by_hash(&self, sha256: &str, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.events
            .events_by_hash(&sha256.to_ascii_lowercase(), limit)
            .await
            .map_err(backend)
    }

    async fn query_events(&self, query: &EventQuery) -> Result<Page<Event>, StoreError> {
        self.events.query_events(query).await.map_err(backend)
    }

    async fn delete_events_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.events
            .delete_events_before(cutoff)
            .await
            .map_err(backend)
    }

    async fn count_events(&self) -> Result<u64, StoreError> {
        self.events.count_events().await.map_err(backend)
    }

    async fn activity(&self, query: &ActivityQuery) -> Result<Activity, StoreError> {
        let mut activity = query.empty_activity()?;
        let mut findings = activity.clone();
        tokio::try_join!(
            self.events.count_activity(query, &mut activity),
            self.findings.count_activity(query, &mut findings),
        )
        .map_err(backend)?;
        for (bucket, f) in activity.buckets.iter_mut().zip(findings.buckets) {
            bucket.findings = f.findings;
            bucket.by_severity = f.by_severity;
            bucket.by_analyzer = f.by_analyzer;
        }
        Ok(activity)
    }

    async fn insert_findings(&self, findings: &[Finding]) -> Result<(), StoreError> {
        self.findings.insert(findings).await.map_err(backend)
    }

    async fn get_finding(&self, id: &str) -> Result<Option<Finding>, StoreError> {
        self.findings.get(id).await.map_err(backend)
    }

    async fn query_findings(&self, query: &FindingQuery) -> Result<Page<Finding>, StoreError> {
        self.findings.query(query).await.map_err(backend)
    }

    async fn upsert_incident(&self, incident: &Incident) -> Result<(), StoreError> {
        self.incidents.upsert(incident).await.map_err(backend)
    }

    async fn get_incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        self.incidents.get(id).await.map_err(backend)
    }

    async fn query_incidents(&self, query: &IncidentQuery) -> Result<Page<Incident>, StoreError> {
        self.incidents.query(query).await.map_err(backend)
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.control.list_agents().await
    }

    async fn register_agent(&self, agent: &AgentRegistration) -> Result<(), StoreError> {
        self.control.register_agent(agent).await
    }

    async fn heartbeat_agent(&self, id: &str) -> Result<bool, StoreError> {
        self.control.heartbeat_agent(id).await
    }

    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.control.create_api_key(key).await
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.control.find_api_key(key_hash).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.control.list_api_keys().await
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        self.control.revoke_api_key(id).await
    }

    async fn put_script(&self, script: &ScriptRecord) -> Result<(), StoreError> {
        self.control.put_script(script).await
    }

    async fn list_scripts(&self) -> Result<Vec<ScriptRecord>, StoreError> {
        self.control.list_scripts().await
    }

    async fn set_script_enabled(
        &self,
        name: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.control.set_script_enabled(name, enabled, reason).await
    }

    async fn delete_script(&self, name: &str) -> Result<bool, StoreError> {
        self.control.delete_script(name).await
    }

    async fn put_list(&self, name: &str, values: &[String]) -> Result<(), StoreError> {
        self.control.put_list(name, values).await
    }

    async fn list_lists(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.control.list_lists().await
    }

    async fn put_model(&self, model: &ModelRecord) -> Result<(), StoreError> {
        self.control.put_model(model).await
    }

    async fn get_model(&self, name: &str, version: i64) -> Result<Option<ModelRecord>, StoreError> {
        self.control.get_model(name, version).await
    }

    async fn insert_connections(&self, rows: &[ConnectionRow]) -> Result<(), StoreError> {
        self.control.insert_connections(rows).await
    }

    async fn query_connections(
        &self,
        query: &ConnectionQuery,
    ) -> Result<Page<ConnectionRow>, StoreError> {
        self.control.query_connections(query).await
    }

    async fn connection_series(
        &self,
        query: &ConnectionQuery,
        bucket_secs: u64,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        self.control.connection_series(query, bucket_secs).await
    }

    async fn delete_connections_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.control.delete_connections_before(cutoff).await
    }

    async fn latest_model(&self, name: &str) -> Result<Option<ModelRecord>, StoreError> {
        self.control.latest_model(name).await
    }

    async fn list_models(&self) -> Result<Vec<ModelRecord>, StoreError> {
        self.control.list_models().await
    }

    async fn cache_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.control.cache_get(namespace, key).await
    }

    async fn cache_put(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.control.cache_put(namespace, key, value, ttl).await
    }

    async fn cache_list(
        &self,
        namespace: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.control.cache_list(namespace, limit).await
    }

    async fn cache_purge_expired(&self) -> Result<u64, StoreError> {
        self.control.cache_purge_expired().await
    }

    async fn put_report(&self, report: &ReportRecord) -> Result<(), StoreError> {
        self.control.put_report(report).await
    }

    async fn get_report(&self, id: &str) -> Result<Option<ReportRecord>, StoreError> {
        self.control.get_report(id).await
    }

    async fn query_reports(&self, query: &ReportQuery) -> Result<Page<ReportRecord>, StoreError> {
        self.control.query_reports(query).await
    }

    async fn put_asset(&self, asset: &Asset) -> Result<(), StoreError> {
        self.control.put_asset(asset).await
    }

    async fn get_asset(&self, id: &str) -> Result<Option<Asset>, StoreError> {
        self.control.get_asset(id).await
    }

    async fn find_assets(
        &self,
        ip: Option<&str>,
        host: Option<&str>,
    ) -> Result<Vec<Asset>, StoreError> {
        self.control.find_assets(ip, host).await
    }

    async fn list_assets(&self, limit: usize) -> Result<Vec<Asset>, StoreError> {
        self.control.list_assets(limit).await
    }

    async fn delete_asset(&self, id: &str) -> Result<bool, StoreError> {
        self.control.delete_asset(id).await
    }

    async fn enqueue_deliveries(&self, deliveries: &[Delivery]) -> Result<usize, StoreError> {
        self.control.enqueue_deliveries(deliveries).await
    }

    async fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.control.due_deliveries(now_ms, limit).await
    }

    async fn update_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.control.update_delivery(delivery).await
    }

    async fn list_deliveries(
        &self,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.control.list_deliveries(state, limit).await
    }
}
