//! The live network detector: features of each connection against the host's baselines,
//! scored by the active model, with reasons; training from records; drift on the score
//! distribution; the `[network]` configuration.
//!
//! Scoring is synchronous and short (a lock on the baselines for the feature update, a
//! read of the model): callers on an async runtime may call it directly for one record and
//! should move batches to a blocking thread.

use crate::features::{BaselineLimits, Baselines, FEATURES};
use crate::model::{
    ModelError, ModelParams, NetModel, NumericColumn, Reason, Sample, Schema, TrainingInfo,
};
use crate::privacy::IpPseudonyms;
use crate::record::ConnectionRecord;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, RwLock};

/// The `[network]` configuration section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// Score connections (REST, WebSocket, ECS `network` events in the pipeline).
    pub enabled: bool,
    /// Replace IP addresses by keyed pseudonyms before they are stored or learned (needs
    /// `hash_key`).
    pub hash_ips: bool,
    /// The key of the pseudonyms (at least 16 bytes); a secret: set it with
    /// `VIGIL_NETWORK__HASH_KEY`. Changing it makes every stored address new.
    pub hash_key: Option<String>,
    /// How models are trained.
    pub model: ModelParams,
    /// Bounds and window of the per-host baselines.
    pub baselines: BaselineLimits,
    /// Without a model, train the first one automatically once this many connections are
    /// stored (0: never; train with `vigil net train` or `POST /api/v1/network/train`).
    pub auto_train_after: usize,
    /// Retrain on the recent window every this many hours (0: never).
    pub retrain_hours: u64,
    /// Train on connections of the last this many days.
    pub training_days: u64,
    /// Most connections read for one training.
    pub max_training_records: usize,
    /// Retrain early when the score distribution drifts: population stability index of
    /// the calibrated scores (expected uniform) over the last `drift_window` scores above
    /// this (0.25 is a common "significant shift"; 0 turns drift checks off).
    pub drift_psi: f64,
    /// Scores per drift check.
    pub drift_window: usize,
    /// Most records in one batch request.
    pub max_batch: usize,
    /// Days the connection time series is kept (0: forever).
    pub retention_days: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            enabled: true,
            hash_ips: false,
            hash_key: None,
            model: ModelParams::default(),
            baselines: BaselineLimits::default(),
            auto_train_after: 1000,
            retrain_hours: 24,
            training_days: 7,
            max_training_records: 200_000,
            drift_psi: 0.25,
            drift_window: 5000,
            max_batch: 10_000,
            retention_days: 30,
        }
    }
}

impl NetConfig {
    /// The pseudonyms this configuration asks for.
    pub fn pseudonyms(&self) -> Result<IpPseudonyms, String> {
        match (self.hash_ips, self.hash_key.as_deref()) {
            (false, _) => Ok(IpPseudonyms::default()),
            (true, None) => Err(
                "network.hash_ips is on but network.hash_key is not set (use VIGIL_NETWORK__HASH_KEY)"
                    .into(),
            ),
            (true, Some(k)) => IpPseudonyms::new(Some(k)),
        }
    }
}

/// The schema of live connection features.
pub fn live_schema() -> Schema {
    Schema {
        numeric: FEATURES
            .iter()
            .map(|f| NumericColumn {
                name: (*f).to_string(),
                log: false,
            })
            .collect(),
        categorical: Vec::new(),
    }
}

/// What the detector says about one connection (seed 002's `result` object, extended).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetResult {
    /// Flagged as an anomaly.
    pub is_anomaly: bool,
    /// Share of normal connections (held out at training) that score lower, in [0, 1].
    pub anomaly_score: f64,
    /// The model's raw score.
    pub raw_score: f64,
    /// The raw score above which a connection is an anomaly.
    pub threshold: f64,
    /// `scored`, or `no_model` while no model is trained (then nothing is flagged).
    pub status: &'static str,
    /// The model version, when there is one.
    pub model_version: Option<String>,
    /// The features that made the score, strongest first.
    pub reasons: Vec<Reason>,
    /// The reasons in words.
    pub explanation: Vec<String>,
}

/// Human words for a feature.
fn describe(r: &Reason) -> String {
    let what = match r.feature.as_str() {
        "remote_new_for_process" => "remote address new for this process",
        "port_new_for_process" => "remote port new for this process",
        "process_new" => "process never seen talking on this host",
        "process_rarity" => "rare process on this host",
        "log_bytes_sent" => "bytes sent (log)",
        "log_bytes_received" => "bytes received (log)",
        "log_bytes_ratio" => "sent/received ratio (log)",
        "log_duration" => "duration (log s)",
        "log_rate_in_window" => "connections by the process in the window (log)",
        "log_distinct_remotes_in_window" => "distinct remotes of the process in the window (log)",
        "failed_share_in_window" => "share of failed attempts in the window",
        "periodicity" => "regular timing (beaconing)",
        "remote_port_class" => "remote port class (0 system, 1 user, 2 dynamic)",
        "remote_internal" => "remote is internal",
        other => other,
    };
    format!(
        "{what}: {} (normal: {}), {:.0}% of the score",
        r.value,
        r.normal,
        r.weight * 100.0
    )
}

/// Drift of calibrated scores from the uniform distribution normal traffic gives them.
#[derive(Debug, Default)]
struct Drift {
    counts: [u64; 10],
    n: u64,
    last_psi: Option<f64>,
    drifted: bool,
}

impl Drift {
    fn add(&mut self, score: f64, window: usize) -> Option<f64> {
        let bin = ((score * 10.0) as usize).min(9);
        self.counts[bin] += 1;
        self.n += 1;
        if window == 0 || (self.n as usize) < window {
            return None;
        }
        let expected = 0.1;
        let psi = self
            .counts
            .iter()
            .map(|&c| {
                let actual = (c as f64 / self.n as f64).max(1e-4);
                (actual - expected) * (actual / expected).ln()
            })
            .sum::<f64>();
        *self = Drift {
            last_psi: Some(psi),
            drifted: self.drifted,
            ..Drift::default()
        };
        Some(psi)
    }
}

/// The live detector.
pub struct NetDetector {
    config: NetConfig,
    pseudonyms: IpPseudonyms,
    model: RwLock<Option<Arc<NetModel>>>,
    baselines: Mutex<Baselines>,
    drift: Mutex<Drift>,
}

impl NetDetector {
    /// A detector without a model (it learns baselines and answers `no_model`).
    pub fn new(config: NetConfig) -> Result<NetDetector, String> {
        let pseudonyms = config.pseudonyms()?;
        Ok(NetDetector {
            baselines: Mutex::new(Baselines::new(config.baselines.clone())),
            config,
            pseudonyms,
            model: RwLock::new(None),
            drift: Mutex::new(Drift::default()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// The address pseudonyms in force.
    pub fn pseudonyms(&self) -> &IpPseudonyms {
        &self.pseudonyms
    }

    /// The active model.
    pub fn model(&self) -> Option<Arc<NetModel>> {
        self.model.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `model` the active one. With `adopt_baselines`, its baselines replace the live
    /// ones (at start, when nothing has been learned since).
    pub fn install(&self, model: NetModel, adopt_baselines: bool) -> Result<(), ModelError> {
        model.validate()?;
        if model.schema() != &live_schema() {
            return Err(ModelError::Corrupt(
                "not a live connection model (an NSL-KDD evaluation model?)".into(),
            ));
        }
        if adopt_baselines && let Some(b) = &model.baselines {
            *self.baselines.lock().unwrap_or_else(|e| e.into_inner()) = b.clone();
        }
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(model));
        *self.drift.lock().unwrap_or_else(|e| e.into_inner()) = Drift::default();
        Ok(())
    }

    /// The record as it is stored and learned: addresses replaced by pseudonyms.
    pub fn private(&self, r: &ConnectionRecord) -> ConnectionRecord {
        let mut r = r.clone();
        r.remote_ip = self.pseudonyms.apply(r.remote_ip);
        r.local_ip = r.local_ip.map(|ip| self.pseudonyms.apply(ip));
        r
    }

    /// Scores a connection (learning it into the baselines). `r` should already be
    /// [`private`](Self::private).
    pub fn analyze(&self, r: &ConnectionRecord) -> NetResult {
        let features = self
            .baselines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(r);
        let Some(model) = self.model() else {
            return NetResult {
                is_anomaly: false,
                anomaly_score: 0.0,
                raw_score: 0.0,
                threshold: 0.0,
                status: "no_model",
                model_version: None,
                reasons: Vec::new(),
                explanation: vec![
                    "no network model is trained yet: connections are being learned; train one with `vigil net train` or POST /api/v1/network/train".into(),
                ],
            };
        };
        let sample = Sample {
            numeric: features.iter().map(|v| f64::from(*v)).collect(),
            categorical: Vec::new(),
        };
        let (scored, reasons) = match model.explain(&sample, 3) {
            Ok(x) => x,
            Err(e) => {
                // The schema was checked at install: this is a bug, not bad input.
                tracing::error!(error = %e, "network model cannot score a live sample");
                return NetResult {
                    is_anomaly: false,
                    anomaly_score: 0.0,
                    raw_score: 0.0,
                    threshold: model.threshold,
                    status: "error",
                    model_version: Some(model.version.clone()),
                    reasons: Vec::new(),
                    explanation: vec![format!("the model failed: {e}")],
                };
            }
        };
        {
            // One guard for the whole update: re-locking inside an `if let` on a guard
            // temporary would deadlock.
            let mut drift = self.drift.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(psi) = drift.add(scored.anomaly_score, self.config.drift_window)
                && self.config.drift_psi > 0.0
                && psi > self.config.drift_psi
            {
                if !drift.drifted {
                    tracing::warn!(psi, "network score distribution drifted");
                }
                drift.drifted = true;
            }
        }
        NetResult {
            is_anomaly: scored.is_anomaly,
            anomaly_score: scored.anomaly_score,
            raw_score: scored.raw,
            threshold: model.threshold,
            status: "scored",
            model_version: Some(model.version.clone()),
            explanation: reasons.iter().map(describe).collect(),
            reasons,
        }
    }

    /// The last drift figure (PSI) and whether drift was seen since the model was
    /// installed, without changing either.
    pub fn drift_state(&self) -> (Option<f64>, bool) {
        let d = self.drift.lock().unwrap_or_else(|e| e.into_inner());
        (d.last_psi, d.drifted)
    }

    /// The last drift figure (PSI) and whether drift was seen since the model was
    /// installed; takes the drift flag (a retrainer calls this).
    pub fn take_drift(&self) -> (Option<f64>, bool) {
        let mut d = self.drift.lock().unwrap_or_else(|e| e.into_inner());
        let out = (d.last_psi, d.drifted);
        d.drifted = false;
        out
    }

    /// A snapshot of the live baselines (to save with a model).
    pub fn baselines(&self) -> Baselines {
        self.baselines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Trains a live model on `records` (oldest first; addresses already private): replays
/// them through fresh baselines to get each one's features as they were when it happened,
/// fits on all but the newest `holdout_share`, and reports on that newest slice the share
/// flagged (what a promotion compares). The model carries the baselines.
pub fn train(
    records: &[ConnectionRecord],
    params: &ModelParams,
    limits: &BaselineLimits,
    source: &str,
) -> Result<NetModel, ModelError> {
    let mut baselines = Baselines::new(limits.clone());
    let samples: Vec<Sample> = records
        .iter()
        .map(|r| Sample {
            numeric: baselines.observe(r).iter().map(|v| f64::from(*v)).collect(),
            categorical: Vec::new(),
        })
        .collect();
    let info = TrainingInfo {
        source: source.to_string(),
        from: records.first().map(|r| r.timestamp.to_rfc3339()),
        to: records.last().map(|r| r.timestamp.to_rfc3339()),
        ..TrainingInfo::default()
    };
    let mut model = NetModel::train(&live_schema(), &samples, params, info)?;
    model.baselines = Some(baselines);
    Ok(model)
}

/// Share of `records` (features against `baselines`, not learned) that `model` flags.
pub fn flagged_share(model: &NetModel, baselines: &Baselines, records: &[ConnectionRecord]) -> f64 {
    if records.is_empty() {
        return 0.0;
    }
    let mut b = baselines.clone();
    let flagged = records
        .iter()
        .filter(|r| {
            let s = Sample {
                numeric: b.observe(r).iter().map(|v| f64::from(*v)).collect(),
                categorical: Vec::new(),
            };
            model.score(&s).is_ok_and(|x| x.is_anomaly)
        })
        .count();
    flagged as f64 / records.len() as f64
}

/// Whether a candidate should replace the active model: on the newest records (not used
/// to fit the candidate), its flagged share must be at least as close to the target
/// false-positive rate as the active model's, give or take `tolerance`. Unlabelled
/// traffic is mostly normal, so the model that flags closer to its budget is the better
/// calibrated one.
pub fn promote(
    active_share: Option<f64>,
    candidate_share: f64,
    target_fpr: f64,
    tolerance: f64,
) -> bool {
    match active_share {
        None => true,
        Some(a) => (candidate_share - target_fpr).abs() <= (a - target_fpr).abs() + tolerance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Direction, Protocol};
    use chrono::{DateTime, Utc};

    fn rec(t: i64, process: &str, remote: &str, port: u16, sent: u64) -> ConnectionRecord {
        ConnectionRecord {
            timestamp: DateTime::<Utc>::from_timestamp(1_800_000_000 + t, 0).unwrap(),
            host: "ws-1".into(),
            process_id: Some(1),
            process_name: process.into(),
            local_ip: None,
            local_port: None,
            remote_ip: remote.parse().unwrap(),
            remote_port: Some(port),
            protocol: Protocol::Tcp,
            direction: Direction::Outbound,
            state: Some("ESTABLISHED".into()),
            bytes_sent: sent,
            bytes_received: sent * 20,
            duration_secs: 1.0,
        }
    }

    /// A day of ordinary traffic: browsers and an updater talking to a few servers.
    fn ordinary(n: i64) -> Vec<ConnectionRecord> {
        let mut t = 0;
        (0..n)
            .map(|i| {
                // Irregular gaps, as people browse.
                t += 1 + (i * 7919 + i * i * 31) % 97;
                let (p, r, port) = match i % 5 {
                    0 | 1 => ("chrome.exe", format!("142.250.0.{}", i % 7), 443),
                    2 => ("firefox.exe", format!("151.101.1.{}", i % 5), 443),
                    3 => ("outlook.exe", "52.96.0.1".to_string(), 443),
                    _ => ("svchost.exe", format!("10.0.0.{}", i % 3 + 1), 53),
                };
                rec(
                    i * 13 + (i * 7919) % 11,
                    p,
                    &r,
                    port,
                    500 + ((i * 37) % 900) as u64,
                )
            })
            .collect()
    }

    #[test]
    fn trains_scores_and_explains() {
        let all = ordinary(3200);
        let (history, later) = all.split_at(3000);
        let params = ModelParams::default();
        let model = train(history, &params, &BaselineLimits::default(), "test").unwrap();
        let d = NetDetector::new(NetConfig::default()).unwrap();
        // Before a model: a clear answer, not a guess.
        let first = d.analyze(&later[0]);
        assert_eq!(first.status, "no_model");
        assert!(!first.is_anomaly);
        d.install(model, true).unwrap();
        // Ordinary traffic after training is mostly not flagged (the budget is 2%).
        let flagged = later[1..]
            .iter()
            .filter(|r| d.analyze(r).is_anomaly)
            .count();
        assert!(
            flagged <= 10,
            "{flagged} of 199 ordinary connections flagged"
        );
        let t = later.last().unwrap().timestamp.timestamp() - 1_800_000_000;
        // A never-seen process sending 40 MB to a public address on an odd port.
        let odd = d.analyze(&rec(
            t + 5,
            "rundll32.exe",
            "198.51.100.66",
            4444,
            40_000_000,
        ));
        assert!(odd.is_anomaly, "{odd:?}");
        assert!(odd.anomaly_score > 0.99);
        assert!(!odd.explanation.is_empty());
        assert!(
            odd.reasons
                .iter()
                .any(|r| r.feature.contains("process") || r.feature.contains("bytes")),
            "{:?}",
            odd.reasons
        );
    }

    /// Regression: the drift check re-locked its mutex inside an `if let` holding the
    /// guard, and the first drift deadlocked every scoring thread.
    #[test]
    fn drift_is_flagged_without_deadlock() {
        let all = ordinary(1200);
        let model = train(
            &all,
            &ModelParams::default(),
            &BaselineLimits::default(),
            "t",
        )
        .unwrap();
        let d = Arc::new(
            NetDetector::new(NetConfig {
                drift_window: 50,
                ..NetConfig::default()
            })
            .unwrap(),
        );
        d.install(model, true).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = d.clone();
        std::thread::spawn(move || {
            // Nothing but odd connections: the scores pile up at the top.
            for i in 0..120 {
                let r = rec(
                    900_000 + i,
                    &format!("odd{i}.exe"),
                    "198.51.100.9",
                    4444,
                    90_000_000,
                );
                worker.analyze(&r);
            }
            tx.send(()).unwrap();
        });
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("scoring finished (no deadlock)");
        let (psi, drifted) = d.drift_state();
        assert!(drifted && psi.unwrap() > 0.25, "{psi:?}");
        assert!(d.take_drift().1);
        assert!(!d.drift_state().1, "taken");
    }

    #[test]
    fn nsl_kdd_models_are_refused_live() {
        let rows = crate::nslkdd::parse(
            &"0,tcp,http,SF,200,3000,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,5,5,0,0,0,0,1,0,0,50,50,1,0,0.02,0,0,0,0,0,normal,21\n".repeat(60),
            "t",
        )
        .unwrap();
        let samples: Vec<Sample> = rows.iter().map(crate::nslkdd::sample).collect();
        let m = NetModel::train(
            &crate::nslkdd::schema(),
            &samples,
            &ModelParams::default(),
            TrainingInfo::default(),
        )
        .unwrap();
        let d = NetDetector::new(NetConfig::default()).unwrap();
        assert!(d.install(m, false).is_err());
    }

    #[test]
    fn drift_and_promotion_rules() {
        let mut d = Drift::default();
        // Uniform scores: no drift.
        let mut psi = None;
        for i in 0..1000 {
            psi = d.add((i % 100) as f64 / 100.0, 1000).or(psi);
        }
        assert!(psi.unwrap() < 0.01);
        // Everything high: drift.
        for _ in 0..1000 {
            psi = d.add(0.995, 1000).or(psi);
        }
        assert!(psi.unwrap() > 1.0);
        assert!(promote(None, 0.5, 0.02, 0.005));
        assert!(promote(Some(0.08), 0.03, 0.02, 0.005));
        assert!(!promote(Some(0.021), 0.09, 0.02, 0.005));
    }

    #[test]
    fn hashing_needs_a_key() {
        let c = NetConfig {
            hash_ips: true,
            ..NetConfig::default()
        };
        assert!(NetDetector::new(c).is_err());
        let c = NetConfig {
            hash_ips: true,
            hash_key: Some("k".repeat(32)),
            ..NetConfig::default()
        };
        let d = NetDetector::new(c).unwrap();
        let r = d.private(&rec(0, "a", "203.0.113.1", 1, 1));
        assert!(crate::privacy::is_pseudonym(r.remote_ip));
    }
}
