//! The one configuration file, its defaults, and `VIGIL_*` environment overrides.
//!
//! Precedence, lowest first: built-in defaults, the TOML file (`--config` or `VIGIL_CONFIG`),
//! environment variables, command-line flags. An environment variable
//! `VIGIL_<SECTION>__<KEY>` sets `<key>` in `[<section>]` (double underscore between levels),
//! e.g. `VIGIL_AUTH__JWT_HS256_SECRET`, `VIGIL_SERVER__LISTEN`, `VIGIL_DATA_DIR`.
//! Values are read as TOML (`true`, `42`, `"text"`); anything else is taken as a string.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use vigil_pipeline::{PipelineConfig, RetentionConfig};
use vigil_server::{AuthConfig, ServerConfig};
use vigil_store::Synchronous;

/// Everything Vigil can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database, models and state live.
    pub data_dir: PathBuf,
    /// HTTP listener and request limits.
    pub server: ServerConfig,
    /// TLS on the HTTP and protocol listeners; mutual TLS for agents.
    pub tls: vigil_server::tls::TlsConfig,
    /// Credentials.
    pub auth: AuthConfig,
    /// Storage backend.
    pub store: StoreConfig,
    /// Queues and workers.
    pub pipeline: PipelineConfig,
    /// Limits of user analysis scripts.
    pub scripts: vigil_script::ScriptLimits,
    /// How long data is kept.
    pub retention: RetentionConfig,
    /// File analysis: YARA rules, the model, the verdict threshold, limits.
    pub file: vigil_file::FileConfig,
    /// The VirusTotal client (the server's key, cache TTLs, retries).
    pub virustotal: vigil_file::vt::VtConfig,
    /// The binary file-analysis protocol (seed 001) over TCP.
    pub protocol: vigil_server::protocol::ProtocolConfig,
    /// The network connection detector (seed 002).
    pub network: vigil_net::NetConfig,
    /// Log sources: followed files, syslog over UDP and TCP.
    pub log_sources: vigil_server::logsrc::LogSourcesConfig,
    /// The log analyzer: templates, sessions, the log anomaly model (seed 004).
    pub log_analysis: vigil_server::logs::LogConfig,
    /// Incident correlation: rules and window.
    pub incidents: vigil_respond::CorrelationConfig,
    /// Responders: routes of incidents to Slack, webhooks, Shuffle.
    pub responders: vigil_respond::RespondConfig,
    /// The triage agent: limits, automatic incident triage, the LLM, reports.
    pub triage: vigil_triage::TriageConfig,
    /// Sigma rules: the folders, the lowest level that makes a finding, EVTX upload size.
    pub sigma: vigil_server::sigma::SigmaConfig,
    /// Kafka: the brokers, the events source (a consumer group), the findings topic.
    pub kafka: vigil_kafka::KafkaConfig,
    /// OpenSearch or Elasticsearch, when `[store] backend = "opensearch"`.
    pub opensearch: vigil_opensearch::OpenSearchConfig,
    /// Logging.
    pub log: LogConfig,
    /// The file this configuration was read from, if any (not a setting).
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./vigil-data"),
            server: ServerConfig::default(),
            tls: vigil_server::tls::TlsConfig::default(),
            auth: AuthConfig::default(),
            store: StoreConfig::default(),
            pipeline: PipelineConfig::default(),
            scripts: vigil_script::ScriptLimits::default(),
            retention: RetentionConfig::default(),
            file: vigil_file::FileConfig::default(),
            virustotal: vigil_file::vt::VtConfig::default(),
            protocol: vigil_server::protocol::ProtocolConfig::default(),
            network: vigil_net::NetConfig::default(),
            log_sources: vigil_server::logsrc::LogSourcesConfig::default(),
            log_analysis: vigil_server::logs::LogConfig::default(),
            incidents: vigil_respond::CorrelationConfig::default(),
            responders: vigil_respond::RespondConfig::default(),
            triage: vigil_triage::TriageConfig::default(),
            sigma: vigil_server::sigma::SigmaConfig::default(),
            kafka: vigil_kafka::KafkaConfig::default(),
            opensearch: vigil_opensearch::OpenSearchConfig::default(),
            log: LogConfig::default(),
            source_file: None,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Where events, findings and incidents live: `sqlite` (embedded, the default) or
    /// `opensearch` (`[opensearch]`; the control tables stay in SQLite).
    pub backend: StoreBackend,
    /// `full`: every acknowledged event survives a power cut; `normal`: survives a crash of
    /// Vigil but not of the machine.
    pub synchronous: Synchronous,
    /// Read-only SQLite connections.
    pub readers: usize,
}

/// `[store] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// Everything in the embedded SQLite database.
    #[default]
    Sqlite,
    /// Events, findings and incidents in OpenSearch or Elasticsearch.
    Opensearch,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Sqlite,
            synchronous: Synchronous::Full,
            readers: 4,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people, `json` for log shippers.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `vigil=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// Top-level keys an environment variable may address.
const SECTIONS: &[&str] = &[
    "data_dir",
    "server",
    "tls",
    "auth",
    "store",
    "pipeline",
    "scripts",
    "retention",
    "file",
    "virustotal",
    "protocol",
    "network",
    "log_sources",
    "log_analysis",
    "incidents",
    "responders",
    "triage",
    "sigma",
    "kafka",
    "opensearch",
    "log",
];

impl Config {
    /// Defaults, then `file` (if any), then the `VIGIL_*` variables in `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<toml::Table>(&text)
                    .with_context(|| format!("config file {} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("VIGIL_"))
            .collect();
        vars.sort();
        for (key, raw) in vars {
            let path: Vec<String> = key["VIGIL_".len()..]
                .to_ascii_lowercase()
                .split("__")
                .map(str::to_string)
                .collect();
            if !SECTIONS.contains(&path[0].as_str()) {
                continue; // VIGIL_TOKEN, VIGIL_CONFIG, … belong to the CLI, not the config.
            }
            if path.iter().any(String::is_empty) {
                bail!("environment variable {key}: empty key segment");
            }
            set_path(&mut table, &path, parse_env_value(&raw))
                .with_context(|| format!("environment variable {key}"))?;
        }
        let origin = file.map_or("defaults and environment".to_string(), |p| {
            format!("config file {} (with environment overrides)", p.display())
        });
        let mut config = Config::deserialize(toml::Value::Table(table))
            .map_err(|e| anyhow::anyhow!("{origin}: {}", e.to_string().trim()))?;
        config.source_file = file.map(Path::to_path_buf);
        Ok(config)
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_toml_redacted(&self) -> Result<String> {
        let mut shown = self.clone();
        if shown.auth.jwt_hs256_secret.is_some() {
            shown.auth.jwt_hs256_secret = Some("<redacted>".into());
        }
        for route in &mut shown.responders.routes {
            // Slack webhook URLs and Shuffle URLs carry tokens; `env:` references are not
            // secrets and stay readable.
            let redact = |v: &mut String| {
                if !v.starts_with("env:") {
                    *v = "<redacted>".into();
                }
            };
            redact(&mut route.url);
            if let Some(s) = &mut route.secret {
                redact(s);
            }
            for v in route.headers.values_mut() {
                redact(v);
            }
            if let Some(p) = route.email.as_mut().and_then(|e| e.password.as_mut()) {
                redact(p);
            }
        }
        if shown.network.hash_key.is_some() {
            shown.network.hash_key = Some("<redacted>".into());
        }
        if shown
            .opensearch
            .password
            .as_deref()
            .is_some_and(|p| !p.starts_with("env:"))
        {
            shown.opensearch.password = Some("<redacted>".into());
        }
        if shown.virustotal.api_key.is_some() {
            shown.virustotal.api_key = Some("<redacted>".into());
        }
        if let Some(llm) = &mut shown.triage.llm
            && llm
                .api_key
                .as_deref()
                .is_some_and(|k| !k.starts_with("env:"))
        {
            llm.api_key = Some("<redacted>".into());
        }
        for (k, v) in shown.kafka.options.iter_mut() {
            if (k.contains("password") || k.contains("secret") || k.contains("key"))
                && !v.starts_with("env:")
            {
                *v = "<redacted>".into();
            }
        }
        Ok(toml::to_string_pretty(&shown)?)
    }
}

fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<()> {
    let (last, parents) = path.split_last().expect("at least one segment");
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .with_context(|| format!("`{p}` is not a section"))?;
    }
    cur.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `VIGIL_*` settings a deployment file sets (`KEY: value` lines of YAML).
    fn deployment_env(path: &str) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(path),
        )
        .unwrap();
        let mut out = Vec::new();
        for line in text.lines() {
            let t = line.trim_start();
            let Some((key, value)) = t.split_once(':') else {
                continue;
            };
            if !key.starts_with("VIGIL_") || key.contains(' ') {
                continue;
            }
            let mut v = value.trim().to_string();
            if !(v.starts_with('\'') || v.starts_with('"')) {
                if let Some(i) = v.find(" #") {
                    v.truncate(i);
                }
                v = v.trim().to_string();
            } else {
                let q = v.chars().next().unwrap();
                v = v[1..v[1..].find(q).map_or(v.len(), |i| i + 1)].to_string();
            }
            if !v.contains("${") {
                out.push((key.to_string(), v));
            }
        }
        out
    }

    #[test]
    fn the_deployment_files_configure_a_valid_vigil() {
        let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/vigil.container.toml");
        for file in [
            "deploy/kubernetes/configmap.yaml",
            "deploy/docker-compose.yml",
        ] {
            let env = deployment_env(file);
            assert!(env.len() >= 8, "{file}: {env:?}");
            let c = Config::load(Some(&image), env)
                .unwrap_or_else(|e| panic!("{file} does not configure Vigil: {e:#}"));
            assert_eq!(c.store.backend, StoreBackend::Opensearch, "{file}");
            assert!(c.kafka.source.enabled && c.kafka.enabled(), "{file}");
            assert_eq!(c.kafka.source.topics, vec!["vigil-events"], "{file}");
            assert!(
                c.responders
                    .routes
                    .iter()
                    .any(|r| r.kind == vigil_respond::RouteKind::Kafka),
                "{file}"
            );
            assert_eq!(c.server.listen, "0.0.0.0:8080", "{file}");
        }
    }

    #[test]
    fn every_section_can_be_set_from_the_environment() {
        let v = toml::Value::try_from(Config::default()).unwrap();
        for key in v.as_table().unwrap().keys() {
            assert!(
                SECTIONS.contains(&key.as_str()),
                "VIGIL_{}__… is ignored",
                key.to_uppercase()
            );
        }
        let c = Config::load(
            None,
            [(
                "VIGIL_KAFKA__SOURCE__TOPICS".to_string(),
                "[\"a\", \"b\"]".to_string(),
            )],
        )
        .unwrap();
        assert_eq!(c.kafka.source.topics, vec!["a", "b"]);
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let c = Config::default();
        let text = c.to_toml_redacted().unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn example_config_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vigil.example.toml");
        let mut c = Config::load(Some(&path), []).unwrap();
        assert_eq!(c.source_file.as_deref(), Some(path.as_path()));
        c.source_file = None;
        assert_eq!(c, Config::default());
        // And every key is in the example (documented), not just defaulted.
        fn keys(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
            for (k, v) in t {
                let path = format!("{prefix}{k}");
                match v {
                    toml::Value::Table(inner) => keys(&format!("{path}."), inner, out),
                    _ => out.push(path),
                }
            }
        }
        let (mut want, mut have) = (Vec::new(), Vec::new());
        keys(
            "",
            &toml::Table::try_from(Config::default()).unwrap(),
            &mut want,
        );
        let example: toml::Table =
            toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        keys("", &example, &mut have);
        let missing: Vec<_> = want.iter().filter(|k| !have.contains(k)).collect();
        assert!(missing.is_empty(), "not in vigil.example.toml: {missing:?}");
    }

    #[test]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"0.0.0.0:9000\"\n[pipeline]\nworkers = 3\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            env(&[
                ("VIGIL_PIPELINE__WORKERS", "5"),
                ("VIGIL_AUTH__ENABLED", "false"),
                ("VIGIL_DATA_DIR", "/var/lib/vigil"),
                ("VIGIL_AUTH__JWT_HS256_SECRET", "abc def"),
                ("VIGIL_TOKEN", "not config"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:9000");
        assert_eq!(c.pipeline.workers, 5);
        assert!(!c.auth.enabled);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/vigil"));
        assert_eq!(c.auth.jwt_hs256_secret.as_deref(), Some("abc def"));
        assert!(!c.to_toml_redacted().unwrap().contains("abc def"));
    }

    #[test]
    fn config_print_redacts_route_secrets_but_not_env_references() {
        let routes = r#"[{name = "s", kind = "slack", url = "https://hooks.slack.com/services/T/B/urlsecret1"},
            {name = "m", kind = "email", email = {host = "smtp.example.org", username = "u",
             password = "smtpsecret2", from = "a@example.org", to = ["b@example.org"]}},
            {name = "e", kind = "email", email = {host = "smtp.example.org", username = "u",
             password = "env:SMTP_PASSWORD", from = "a@example.org", to = ["b@example.org"]}}]"#;
        let c = Config::load(None, env(&[("VIGIL_RESPONDERS__ROUTES", routes)])).unwrap();
        let shown = c.to_toml_redacted().unwrap();
        assert!(!shown.contains("urlsecret1"), "{shown}");
        assert!(!shown.contains("smtpsecret2"), "{shown}");
        assert!(shown.contains("env:SMTP_PASSWORD"), "{shown}");
    }

    #[test]
    fn unknown_keys_and_bad_types_are_errors_that_name_them() {
        let err = Config::load(None, env(&[("VIGIL_SERVER__LISTN", "x")])).unwrap_err();
        assert!(format!("{err:#}").contains("listn"), "{err:#}");
        let err = Config::load(None, env(&[("VIGIL_PIPELINE__WORKERS", "many")])).unwrap_err();
        assert!(format!("{err:#}").contains("workers"), "{err:#}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(&path, "[server\n").unwrap();
        let err = Config::load(Some(&path), []).unwrap_err();
        assert!(format!("{err:#}").contains("not valid TOML"), "{err:#}");
        let err = Config::load(Some(&dir.path().join("missing.toml")), []).unwrap_err();
        assert!(format!("{err:#}").contains("cannot read"), "{err:#}");
    }
}
