//! A saved log model: the Drain state that turns lines into keys, how lines are grouped into
//! sessions, the trained detectors and how their verdicts combine, with a version number.
//!
//! `vigil logs train` writes one, `vigil logs detect` reads it, and the server's log
//! analyzer judges live sessions with the active one.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Drain;
use crate::detect::deeplog::{DeepLog, DeepLogParams};
use crate::detect::iforest::{IForestDetector, IForestParams};
use crate::detect::logbert::{LogBert, LogBertParams};
use crate::detect::{DetectError, Ensemble, Policy, Reason, SessionDetector, Verdict};

/// The format of saved models.
pub const FORMAT: u32 = 1;

/// The kinds of detector a model can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// DeepLog's next-key LSTM.
    Deeplog,
    /// LogBERT's masked-key transformer.
    Logbert,
    /// The Isolation Forest over key counts.
    Iforest,
}

impl Kind {
    /// All kinds, the ensemble's members.
    pub const ALL: [Kind; 3] = [Kind::Deeplog, Kind::Logbert, Kind::Iforest];

    /// The name used in saved models and the API.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Deeplog => "deeplog",
            Kind::Logbert => "logbert",
            Kind::Iforest => "iforest",
        }
    }
}

/// What to train.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSpec {
    /// The detectors (empty: all three).
    pub kinds: Vec<Kind>,
    /// How several detectors' verdicts combine.
    pub policy: Option<Policy>,
    /// DeepLog's parameters.
    pub deeplog: DeepLogParams,
    /// LogBERT's parameters.
    pub logbert: LogBertParams,
    /// The Isolation Forest's parameters.
    pub iforest: IForestParams,
}

/// How lines become sessions of keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The header format lines were cut with (`None`: the whole line is the message).
    pub header_format: Option<String>,
    /// The pattern of the session identifier.
    pub session_pattern: String,
}

/// A trained log model.
pub struct LogModel {
    /// Version number (1 for the first model of a store).
    pub version: u64,
    /// When it was trained (RFC 3339).
    pub created: String,
    /// How lines become sessions.
    pub reading: Reading,
    /// Training figures per detector.
    pub training: Value,
    policy: Policy,
    kinds: Vec<Kind>,
    drain: Option<Drain>,
    detector: Box<dyn SessionDetector>,
    /// The detectors as saved.
    saved: serde_json::Map<String, Value>,
}

impl std::fmt::Debug for LogModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogModel")
            .field("version", &self.version)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl LogModel {
    /// Trains the detectors of `spec` on normal sessions. `progress` hears each neural
    /// detector's epochs (kind, epoch, loss).
    pub fn train(
        sessions: &[Vec<u32>],
        drain: Option<Drain>,
        reading: Reading,
        spec: &TrainSpec,
        version: u64,
        mut progress: impl FnMut(Kind, usize, f64),
    ) -> Result<LogModel, DetectError> {
        let mut kinds = if spec.kinds.is_empty() {
            Kind::ALL.to_vec()
        } else {
            spec.kinds.clone()
        };
        kinds.sort_unstable();
        kinds.dedup();
        let mut saved = serde_json::Map::new();
        let mut training = serde_json::Map::new();
        for kind in &kinds {
            match kind {
                Kind::Deeplog => {
                    let m = DeepLog::train(sessions, &spec.deeplog, |e, l| {
                        progress(Kind::Deeplog, e, l)
                    })?;
                    training.insert("deeplog".into(), json!(m.training()));
                    saved.insert("deeplog".into(), to_value(&m.to_json())?);
                }
                Kind::Logbert => {
                    let m = LogBert::train(sessions, &spec.logbert, |e, l| {
                        progress(Kind::Logbert, e, l)
                    })?;
                    training.insert("logbert".into(), json!(m.training()));
                    saved.insert("logbert".into(), to_value(&m.to_json())?);
                }
                Kind::Iforest => {
                    let m = IForestDetector::train(sessions, &spec.iforest)?;
                    training.insert(
                        "iforest".into(),
                        json!({"sessions": sessions.len(), "threshold": m.threshold()}),
                    );
                    saved.insert(
                        "iforest".into(),
                        serde_json::to_value(&m).map_err(|e| DetectError::Model(e.to_string()))?,
                    );
                }
            }
        }
        let saved_model = json!({
            "format": FORMAT,
            "version": version,
            "created": chrono::Utc::now().to_rfc3339(),
            "header_format": reading.header_format,
            "session_pattern": reading.session_pattern,
            "policy": spec.policy.unwrap_or(Policy::Any),
            "training": training,
            "drain": match &drain {
                Some(d) => to_value(&d.save())?,
                None => Value::Null,
            },
            "detectors": saved,
        });
        LogModel::from_value(saved_model)
    }

    /// The model as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "format": FORMAT,
            "version": self.version,
            "created": self.created,
            "header_format": self.reading.header_format,
            "session_pattern": self.reading.session_pattern,
            "policy": self.policy,
            "training": self.training,
            "drain": self.drain.as_ref().map(|d| to_value(&d.save()).expect("a saved Drain is JSON")),
            "detectors": self.saved,
        }))
        .expect("the model serialises")
    }

    /// A model saved by [`LogModel::to_json`].
    pub fn from_json(bytes: &[u8]) -> Result<LogModel, DetectError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| DetectError::Model(format!("not a Vigil log model: {e}")))?;
        LogModel::from_value(v)
    }

    fn from_value(mut v: Value) -> Result<LogModel, DetectError> {
        if v["format"].as_u64() != Some(u64::from(FORMAT)) {
            return Err(DetectError::Model(format!(
                "not a Vigil log model of format {FORMAT}"
            )));
        }
        let drain = match v["drain"].take() {
            Value::Null => None,
            d => Some(
                Drain::restore(&serde_json::to_vec(&d).expect("JSON"))
                    .map_err(|e| DetectError::Model(format!("its Drain state: {e}")))?,
            ),
        };
        let policy: Policy = match v["policy"].take() {
            Value::Null => Policy::Any,
            p => serde_json::from_value(p).map_err(|e| DetectError::Model(e.to_string()))?,
        };
        let saved = match v["detectors"].take() {
            Value::Object(m) => m,
            _ => return Err(DetectError::Model("it holds no detectors".into())),
        };
        let mut kinds = Vec::new();
        let mut members: Vec<(Box<dyn SessionDetector>, f64)> = Vec::new();
        for kind in Kind::ALL {
            let Some(d) = saved.get(kind.name()) else {
                continue;
            };
            let bytes = serde_json::to_vec(d).expect("JSON");
            let member: Box<dyn SessionDetector> = match kind {
                Kind::Deeplog => Box::new(DeepLog::from_json(&bytes)?),
                Kind::Logbert => Box::new(LogBert::from_json(&bytes)?),
                Kind::Iforest => Box::new(
                    serde_json::from_slice::<IForestDetector>(&bytes)
                        .map_err(|e| DetectError::Model(e.to_string()))?
                        .loaded()?,
                ),
            };
            kinds.push(kind);
            members.push((member, 1.0));
        }
        let detector: Box<dyn SessionDetector> = match members.len() {
            0 => return Err(DetectError::Model("it holds no detectors".into())),
            1 => members.pop().expect("one member").0,
            _ => Box::new(Ensemble { members, policy }),
        };
        Ok(LogModel {
            version: v["version"].as_u64().unwrap_or(1),
            created: v["created"].as_str().unwrap_or_default().to_string(),
            reading: Reading {
                header_format: v["header_format"].as_str().map(str::to_string),
                session_pattern: v["session_pattern"]
                    .as_str()
                    .unwrap_or(r"(blk_-?\d+)")
                    .to_string(),
            },
            training: v["training"].take(),
            policy,
            kinds,
            drain,
            detector,
            saved,
        })
    }

    /// Sets the version (when a store numbers it).
    pub fn set_version(&mut self, version: u64) {
        self.version = version;
    }

    /// The detectors it holds.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// How several detectors' verdicts combine.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The Drain state the keys come from (`None` for a model trained on key sequences).
    pub fn drain(&self) -> Option<&Drain> {
        self.drain.as_ref()
    }

    /// Judges sessions.
    pub fn judge_many(&self, sessions: &[&[u32]]) -> Vec<Verdict> {
        self.detector.judge_many(sessions)
    }

    /// Judges one session.
    pub fn judge(&self, session: &[u32]) -> Verdict {
        self.detector.judge(session)
    }

    /// The template of a key, when the model knows it.
    pub fn template(&self, key: u32) -> Option<String> {
        self.drain
            .as_ref()
            .and_then(|d| d.cluster(key))
            .map(|c| c.template())
    }

    /// A sentence that explains a verdict, with the templates of the keys involved.
    pub fn explain(&self, reason: Option<&Reason>) -> String {
        self.explain_with(reason, |k| self.template(k))
    }

    /// [`LogModel::explain`] with templates from elsewhere (a live Drain that knows keys
    /// mined after training).
    pub fn explain_with(
        &self,
        reason: Option<&Reason>,
        template: impl Fn(u32) -> Option<String>,
    ) -> String {
        let named = |key: Option<u32>| match key {
            None => "the end of the session".to_string(),
            Some(k) => match template(k) {
                Some(t) => format!("{k} `{t}`"),
                None => k.to_string(),
            },
        };
        match reason {
            None => String::new(),
            Some(Reason::UnseenKey { position, key }) => {
                if *key == u32::MAX {
                    format!("line {position} of the session matches no known template")
                } else {
                    format!(
                        "key {} at position {position} was never seen in training",
                        named(Some(*key))
                    )
                }
            }
            Some(Reason::Unexpected {
                position,
                key,
                expected,
                ..
            }) => format!(
                "key {} at position {position} was not among the expected: {}",
                named(Some(*key)),
                expected
                    .iter()
                    .map(|e| named(*e))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Some(Reason::UnexpectedEnd { length, expected }) => format!(
                "the session ended after {length} keys where {} was expected",
                expected
                    .iter()
                    .take(3)
                    .map(|e| named(*e))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            Some(Reason::Outlier { keys }) => format!(
                "unusual counts of keys: {}",
                keys.iter()
                    .map(|(k, n)| format!("{} ×{n}", named(Some(*k))))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Some(Reason::FarFromNormal { distance, radius }) => format!(
                "the session as a whole is unlike normal ones (distance {distance:.3}, normal \
                 sessions at most {radius:.3})"
            ),
        }
    }
}

fn to_value(bytes: &[u8]) -> Result<Value, DetectError> {
    serde_json::from_slice(bytes).map_err(|e| DetectError::Model(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Vec<Vec<u32>> {
        crate::detect::test_sessions()
    }

    fn spec() -> TrainSpec {
        TrainSpec {
            kinds: vec![Kind::Logbert, Kind::Deeplog, Kind::Iforest],
            policy: Some(Policy::Majority),
            deeplog: DeepLogParams {
                window: 3,
                top_g: 2,
                hidden: 8,
                embedding: 4,
                epochs: 2,
                min_steps: 0,
                ..Default::default()
            },
            logbert: LogBertParams {
                dim: 8,
                heads: 2,
                ff: 16,
                epochs: 2,
                min_steps: 0,
                ..Default::default()
            },
            iforest: IForestParams::default(),
        }
    }

    #[test]
    fn trains_saves_and_restores_an_ensemble() {
        let mut drain = Drain::new(Default::default());
        drain.parse("Receiving block blk_1 src: /10.0.0.1:50010");
        let reading = Reading {
            header_format: None,
            session_pattern: "(blk_-?\\d+)".into(),
        };
        let mut heard = 0;
        let m = LogModel::train(
            &sessions(),
            Some(drain),
            reading.clone(),
            &spec(),
            3,
            |_, _, _| heard += 1,
        )
        .unwrap();
        assert!(heard >= 4);
        assert_eq!(m.kinds(), [Kind::Deeplog, Kind::Logbert, Kind::Iforest]);
        assert_eq!(m.policy(), Policy::Majority);
        let back = LogModel::from_json(&m.to_json()).unwrap();
        assert_eq!((back.version, &back.reading), (3, &reading));
        assert_eq!(
            back.template(1).as_deref(),
            Some("Receiving block blk_<*> src: /<*>:<*>")
        );
        for s in sessions().iter().chain([&vec![1, 9, 2]]) {
            assert_eq!(back.judge(s), m.judge(s));
        }
        let v = back.judge(&[1, 99]);
        assert!(v.anomalous);
        assert!(
            back.explain(v.reason.as_ref()).contains("never seen"),
            "{v:?}"
        );
    }

    #[test]
    fn refuses_what_is_not_a_model() {
        for bad in [
            &b"{}"[..],
            b"not json",
            br#"{"format": 1, "detectors": {}}"#,
            br#"{"format": 2, "detectors": {"deeplog": {}}}"#,
            br#"{"format": 1, "detectors": {"deeplog": {"format": 1}}}"#,
        ] {
            assert!(
                LogModel::from_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
