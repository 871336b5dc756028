//! `vigil serve`: wires store, pipeline and HTTP server together and runs until a signal.

use crate::config::{Config, LogFormat};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::EnvFilter;
use vigil_pipeline::{AnalyzerRegistry, Pipeline, spawn_retention};
use vigil_server::{AppState, Authenticator};
use vigil_store::Store;

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    // Colours only on a terminal: escape codes in a log file get in the way of searches.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Runs the server until SIGINT or SIGTERM, then drains in-flight work.
pub async fn serve(mut config: Config) -> Result<()> {
    init_logging(&config);
    if let Some(path) = &config.source_file {
        warn_if_secrets_readable(path);
    }
    let http_limits = fit_connection_caps(&mut config);
    let metrics = vigil_server::telemetry::install_recorder()
        .context("cannot install the Prometheus recorder")?;
    let sqlite = Arc::new(crate::open_store(&config)?);
    // Temporary files of a save a crash interrupted (the log sources' offsets).
    let stale = vigil_store::fsutil::remove_stale_temporaries(&config.data_dir);
    if stale > 0 {
        tracing::info!(
            files = stale,
            "removed temporary files of an interrupted save"
        );
    }
    let store: Arc<dyn Store> = match config.store.backend {
        crate::config::StoreBackend::Sqlite => sqlite,
        crate::config::StoreBackend::Opensearch => {
            let os = vigil_opensearch::OpenSearchStore::open(&config.opensearch, sqlite)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot use OpenSearch at `{}`: {e} (fix [opensearch])",
                        config.opensearch.url
                    )
                })?;
            tracing::info!(url = %config.opensearch.url, "events, findings and incidents in OpenSearch");
            Arc::new(os)
        }
    };

    // The first admin key is made only once every listener is bound (issue 23): a start
    // that fails on a busy port must not use up the one time it is printed.
    let first_key_needed = config.auth.enabled && store.list_api_keys().await?.is_empty();
    let no_key_yet = |e: anyhow::Error| {
        if first_key_needed {
            anyhow::anyhow!(
                "{e:#}\n(no API key was created: the next start that succeeds prints the first admin key, or make one now with `vigil key create --role admin`)"
            )
        } else {
            e
        }
    };
    if !config.auth.enabled {
        tracing::warn!(
            "auth is DISABLED (auth.enabled = false): anyone who can reach this port can read and write everything"
        );
    }
    let auth = Authenticator::new(&config.auth, store.clone())?;
    if config.scripts.python.enabled {
        // Python workers run in an OS sandbox: its layers are logged, and a host that lacks
        // a required one refuses to start unless the operator accepts weaker isolation.
        match vigil_script::sandbox::status(&config.scripts.python) {
            Ok(_) => {}
            Err(e) if e.code == "python_sandbox" => anyhow::bail!("{e} (fix [scripts.python])"),
            Err(e) => tracing::error!(error = %e, "Python scripts cannot run"),
        }
    }

    let scripts = Arc::new(vigil_script::ScriptSet::new(Arc::new(
        vigil_script::ScriptEngine::new(config.scripts.clone(), vigil_script::Lists::default()),
    )));
    let loaded = vigil_server::load_scripts(store.as_ref(), &scripts).await?;
    tracing::info!(scripts = loaded, "user scripts loaded");
    let persist = vigil_server::spawn_disable_persistence(store.clone(), &scripts);

    let registry = Arc::new(AnalyzerRegistry::new());
    registry.register(Arc::new(vigil_script::ScriptAnalyzer(scripts.clone())));
    let (pipeline, tasks) = Pipeline::start(store.clone(), registry.clone(), &config.pipeline);
    // `[network] hash_ips`: no real address is stored, analysed or logged, whichever way
    // an event comes in (API, Kafka, log sources, EVTX).
    let ip_pseudonyms = config
        .network
        .pseudonyms()
        .map_err(|e| anyhow::anyhow!("{e} (fix [network])"))?;
    let pipeline = if ip_pseudonyms.enabled() {
        let p = ip_pseudonyms.clone();
        pipeline.with_event_transform(Arc::new(move |e: &mut vigil_core::Event| {
            e.map_ips(&|ip| p.apply(ip));
        }))
    } else {
        pipeline
    };
    let retention = spawn_retention(store.clone(), config.retention.clone());

    let engine = {
        let cfg = config.file.clone();
        tokio::task::spawn_blocking(move || vigil_file::FileEngine::new(cfg))
            .await?
            .context("file analysis cannot start (fix [file] in the configuration)")?
    };
    tracing::info!(
        yara_rules = engine.yara().rules().len(),
        model = engine.model().map(|m| m.describe()),
        "file analysis ready"
    );
    let vt = vigil_file::vt::VirusTotal::new(
        config.virustotal.clone(),
        Arc::new(vigil_server::files::StoreVtCache(store.clone())),
    )
    .context("the VirusTotal client cannot start (check [virustotal])")?;
    let files = Arc::new(vigil_server::files::FileService::new(
        Arc::new(engine),
        Arc::new(vt),
        store.clone(),
    ));
    let known = files
        .load_known()
        .await
        .context("cannot load the known file verdicts")?;
    tracing::info!(known, "file verdicts loaded for the pipeline");
    registry.register(Arc::new(vigil_server::files::FileHashAnalyzer(
        files.known().clone(),
    )));
    let auth = Arc::new(auth);

    let (network, retrainer) = if config.network.enabled {
        let net = vigil_server::network::NetService::start(
            config.network.clone(),
            store.clone(),
            &pipeline,
        )
        .map_err(|e| anyhow::anyhow!("the network detector cannot start: {e} (fix [network])"))?;
        match net.load_active().await {
            Ok(Some(v)) => tracing::info!(version = v, "network model loaded"),
            Ok(None) => tracing::info!(
                auto_train_after = config.network.auto_train_after,
                "no network model yet: connections are learned and scored once one is trained"
            ),
            Err(e) => {
                tracing::error!(error = %e, "the stored network model cannot be loaded; retrain it")
            }
        }
        registry.register(Arc::new(if ip_pseudonyms.enabled() {
            vigil_server::network::NetAnalyzer::for_private_events(&net)
        } else {
            vigil_server::network::NetAnalyzer::new(&net)
        }));
        let retrainer =
            vigil_server::network::spawn_retrainer(net.clone(), Duration::from_secs(60));
        (Some(net), Some(retrainer))
    } else {
        (None, None)
    };

    config
        .kafka
        .validate()
        .map_err(|e| anyhow::anyhow!("{e} (fix [kafka])"))?;
    let kafka_publisher = if config.kafka.enabled() {
        let p = vigil_kafka::KafkaPublisher::new(&config.kafka)
            .map_err(|e| anyhow::anyhow!("{e} (fix [kafka])"))?;
        Some(Arc::new(p))
    } else {
        None
    };
    let (responder_stop, responder_stop_rx) = tokio::sync::watch::channel(false);
    let mut responder_task = None;
    let (incidents, correlator) = if config.incidents.enabled {
        config
            .incidents
            .validate()
            .map_err(|e| anyhow::anyhow!("{e} (fix [incidents])"))?;
        let responders = Arc::new(
            vigil_respond::Responders::with_publisher(
                config.responders.clone(),
                store.clone(),
                kafka_publisher
                    .clone()
                    .map(|p| p as Arc<dyn vigil_respond::Publisher>),
            )
            .map_err(|e| anyhow::anyhow!("{e} (fix [responders])"))?,
        );
        if !responders.routes().is_empty() {
            tracing::info!(routes = ?responders.routes(), "responders ready");
        }
        let service = vigil_respond::IncidentService::start(
            config.incidents.clone(),
            store.clone(),
            Some(responders.clone()),
        )
        .await
        .context("cannot load the open incidents")?;
        responder_task = Some(responders.spawn(responder_stop_rx.clone()));
        let (tap, stored) = flume::bounded(64);
        pipeline.tap_stored_findings(tap);
        let task = service.spawn(stored);
        (Some(service), Some(task))
    } else {
        (None, None)
    };
    let (log_tick_stop, log_tick_rx) = tokio::sync::watch::channel(false);
    let (logs, log_ticker) = if config.log_analysis.enabled {
        let logs = vigil_server::logs::LogService::start(
            config.log_analysis.clone(),
            &config.data_dir,
            pipeline.findings_sink(),
        )
        .map_err(|e| anyhow::anyhow!("the log analyzer cannot start: {e} (fix [log_analysis])"))?;
        match logs.model() {
            Some(m) => tracing::info!(version = m.version, "log model loaded"),
            None => tracing::info!(
                "no log model yet: log sessions are recorded and judged once one is trained \
                 (POST /api/v1/logs/train)"
            ),
        }
        registry.register(Arc::new(vigil_server::logs::LogAnalyzer::new(&logs)));
        let ticker =
            vigil_server::logs::spawn_ticker(logs.clone(), Duration::from_secs(1), log_tick_rx);
        (Some(logs), Some(ticker))
    } else {
        (None, None)
    };

    let triage = if config.triage.enabled {
        let extra: Vec<Arc<dyn vigil_triage::Tool>> = vec![
            Arc::new(vigil_server::triage::RunScript(scripts.clone())),
            Arc::new(vigil_server::triage::LiveVirusTotal(files.clone())),
        ];
        let (cfg, data_dir, store2) = (
            config.triage.clone(),
            config.data_dir.clone(),
            store.clone(),
        );
        let agent = tokio::task::spawn_blocking(move || {
            vigil_triage::build(&cfg, &data_dir, store2, extra)
        })
        .await?
        .map_err(|e| anyhow::anyhow!("the triage agent cannot start: {e}"))?;
        tracing::info!(
            llm = agent.model().unwrap_or("none (offline)"),
            knowledge_chunks = agent.knowledge().len(),
            "triage agent ready"
        );
        let dir = config
            .triage
            .reports_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("reports"));
        let svc = vigil_server::triage::TriageService::new(
            agent,
            store.clone(),
            dir,
            config.triage.clone(),
        );
        if let Some(inc) = &incidents {
            svc.spawn_auto(inc.subscribe());
        }
        Some(svc)
    } else {
        None
    };

    let sigma_cfg = config.sigma.clone();
    let sigma =
        tokio::task::spawn_blocking(move || vigil_server::sigma::SigmaService::load(sigma_cfg))
            .await?
            .map_err(|e| anyhow::anyhow!("the Sigma rules cannot load: {e} (fix [sigma])"))?;
    {
        let s = sigma.summary();
        if !config.sigma.rules.is_empty() {
            tracing::info!(
                loaded = s.loaded,
                rejected = s.rejected.len(),
                "sigma rules ready (GET /api/v1/sigma/rules lists the refused ones)"
            );
            registry.register(sigma.analyzer());
        }
    }

    let state = AppState {
        store: store.clone(),
        pipeline: pipeline.clone(),
        auth: auth.clone(),
        metrics: Some(metrics),
        config: Arc::new(config.server.clone()),
        streams: config.server.stream_slots(),
        scripts,
        jobs: Default::default(),
        files: Some(files.clone()),
        network: network.clone(),
        logs: logs.clone(),
        incidents: incidents.clone(),
        triage,
        sigma: Some(sigma),
    };
    let findings_publisher = match (&kafka_publisher, &config.kafka.findings_topic) {
        (Some(p), Some(topic)) => Some(vigil_kafka::spawn_findings_publisher(
            p.clone(),
            topic.clone(),
            pipeline.subscribe(),
        )),
        _ => None,
    };
    let (kafka_stop, kafka_stop_rx) = tokio::sync::watch::channel(false);
    let kafka_source = if config.kafka.enabled() && config.kafka.source.enabled {
        let stats = Arc::new(vigil_kafka::SourceStats::default());
        let (cfg, p) = (config.kafka.clone(), pipeline.clone());
        Some(tokio::spawn(async move {
            if let Err(e) = vigil_kafka::run_source(cfg, p, kafka_stop_rx, stats).await {
                tracing::error!(error = %e, "the Kafka source stopped");
            }
        }))
    } else {
        None
    };
    let access_log = match &config.server.access_log {
        Some(path) => vigil_server::access::AccessLog::to_file(path).with_context(|| {
            format!(
                "cannot open the access log {} ([server] access_log)",
                path.display()
            )
        })?,
        None => vigil_server::access::AccessLog::default(),
    }
    .with_ip_pseudonyms(ip_pseudonyms.clone());
    let log_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log_sources = start_log_sources(&config, &pipeline, &log_stop)
        .await
        .map_err(no_key_yet)?;
    let tls = vigil_server::tls::acceptors(&config.tls)
        .map_err(anyhow::Error::msg)
        .map_err(no_key_yet)?;
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))
        .map_err(no_key_yet)?;
    let addr = listener.local_addr()?;
    let protocol_listener = if config.protocol.enabled {
        Some(
            tokio::net::TcpListener::bind(&config.protocol.listen)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {} ([protocol] listen)",
                        config.protocol.listen
                    )
                })
                .map_err(no_key_yet)?,
        )
    } else {
        None
    };
    if first_key_needed {
        let (key, record) = vigil_server::generate_api_key("first admin", vigil_core::Role::Admin);
        store.create_api_key(&record).await?;
        // Printed to the terminal once, never logged.
        println!(
            "vigil: created the first admin API key (shown only this once, store it safely):\n\n    {key}\n"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("vigil: listening on {scheme}://{addr}");
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "vigil serving");

    let (proto_stop, proto_rx) = tokio::sync::oneshot::channel::<()>();
    let protocol = if let Some(listener) = protocol_listener {
        let addr = listener.local_addr()?;
        let over = if tls.is_some() { " (TLS)" } else { "" };
        println!("vigil: file-analysis protocol on {addr}{over}");
        let state = vigil_server::protocol::ProtocolState {
            files,
            auth,
            config: Arc::new(config.protocol.clone()),
            tls: tls.as_ref().map(|t| t.protocol.clone()),
        };
        Some(tokio::spawn(vigil_server::protocol::serve_with_access_log(
            listener,
            state,
            access_log.clone(),
            async move {
                let _ = proto_rx.await;
            },
        )))
    } else {
        None
    };

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = vigil_server::app_with_access_log(state, access_log);
    let stopped = async move {
        let _ = stop_rx.await;
    };
    let limits = http_limits;
    let server = match tls {
        None => tokio::spawn(vigil_server::http::serve(listener, app, limits, stopped)),
        Some(t) => {
            let listener = vigil_server::tls::TlsListener::new(listener, t.http)?;
            tokio::spawn(vigil_server::http::serve(listener, app, limits, stopped))
        }
    };
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(());
    let _ = proto_stop.send(());
    if let Some(p) = protocol {
        let _ = p.await;
    }
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
        Err(_) => tracing::warn!("open connections did not finish in time"),
    }
    // The Kafka source stops reading; a batch in flight finishes (stored, analyzed,
    // committed) or is left uncommitted for the next owner of its partitions.
    let _ = kafka_stop.send(true);
    if let Some(k) = kafka_source {
        let _ = tokio::time::timeout(grace, k).await;
    }
    log_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in log_sources {
        let _ = tokio::time::timeout(grace, h).await;
    }
    // Close the open log sessions (their findings go through the pipeline) and save the
    // templates.
    let _ = log_tick_stop.send(true);
    if let Some(t) = log_ticker {
        let _ = tokio::time::timeout(grace, t).await;
    }
    drop(logs);
    retention.abort();
    persist.abort();
    if let Some(r) = retrainer {
        r.abort();
        let _ = r.await;
    }
    // The network service's writer holds a findings sink: it must end for the pipeline to
    // drain.
    drop(network);
    drop(pipeline);
    tasks.shutdown(grace).await;
    // The findings writer has closed the correlator's tap: let it store the last incidents.
    if let Some(c) = correlator {
        let _ = tokio::time::timeout(grace, c).await;
    }
    drop(incidents);
    if let Some(f) = findings_publisher {
        let _ = tokio::time::timeout(grace, f).await;
    }
    let _ = responder_stop.send(true);
    if let Some(t) = responder_task {
        let _ = tokio::time::timeout(grace, t).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts the configured log sources (followed files, syslog UDP/TCP).
async fn start_log_sources(
    config: &Config,
    pipeline: &Pipeline,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    use vigil_server::logsrc;
    let c = &config.log_sources;
    let mut handles = Vec::new();
    if !c.files.is_empty() {
        tracing::info!(files = ?c.files, "following log files");
        handles.push(logsrc::spawn_file_source(
            c.clone(),
            &config.data_dir,
            pipeline.clone(),
            stop.clone(),
        ));
    }
    if !c.syslog_udp.is_empty() {
        let socket = tokio::net::UdpSocket::bind(&c.syslog_udp)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} ([log_sources] syslog_udp)",
                    c.syslog_udp
                )
            })?;
        println!("vigil: syslog udp on {}", socket.local_addr()?);
        handles.push(logsrc::spawn_syslog_udp(
            socket,
            pipeline.clone(),
            stop.clone(),
        ));
    }
    if !c.syslog_tcp.is_empty() {
        let listener = tokio::net::TcpListener::bind(&c.syslog_tcp)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} ([log_sources] syslog_tcp)",
                    c.syslog_tcp
                )
            })?;
        println!("vigil: syslog tcp on {}", listener.local_addr()?);
        handles.push(logsrc::spawn_syslog_tcp(
            listener,
            pipeline.clone(),
            vigil_server::conn::ConnLimits {
                max_total: c.max_connections,
                max_per_ip: c.max_connections_per_ip,
            },
            Duration::from_secs(c.idle_timeout_secs.max(1)),
            stop.clone(),
        ));
    }
    Ok(handles)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Setting names whose values are secrets when written in the file itself (not as `env:`).
const SECRET_KEYS: [&str; 6] = [
    "secret",
    "password",
    "api_key",
    "token",
    "webhook_url",
    "url",
];

/// Warns when the config file can be read by other users and holds a secret in clear
/// (issue 22: a worker read a world-readable config with the JWT secret).
fn warn_if_secrets_readable(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let mode = meta.permissions().mode();
        if mode & 0o004 == 0 {
            return;
        }
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        if let Some(name) = secret_in_clear(&text) {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                setting = name,
                "the config file can be read by every user and holds a secret in clear; run chmod 600 on it, or move the value to an environment variable (`env:NAME`)"
            );
        }
    }
}

/// The first setting of `toml` that looks like a secret written in clear.
fn secret_in_clear(toml: &str) -> Option<String> {
    toml.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        let name = name.trim();
        let value = value.trim().trim_matches('"').trim_matches('\'');
        let secret = SECRET_KEYS
            .iter()
            .any(|k| name == *k || name.ends_with(&format!("_{k}")));
        let url_with_credentials = name.ends_with("url") && value.contains('@');
        let plain = !value.is_empty() && !value.starts_with("env:");
        let url_like = name == "url" || name.ends_with("_url");
        (secret && plain && (!url_like || url_with_credentials || name == "webhook_url"))
            .then(|| name.to_string())
    })
}

/// Lowers the listeners' connection caps to fit the open-file limit (raised to its hard
/// limit first), so that idle sockets cannot exhaust descriptors: 60% of what is left after
/// [`vigil_server::conn::FD_RESERVE`] for HTTP, 20% each for the protocol and syslog TCP.
fn fit_connection_caps(config: &mut Config) -> vigil_server::http::HttpLimits {
    let soft = vigil_server::conn::raise_fd_limit();
    let room = soft.saturating_sub(vigil_server::conn::FD_RESERVE).max(16) as usize;
    let fit = |what: &str, cap: &mut usize, share: usize| {
        let most = (room * share / 100).max(4);
        if *cap > most {
            tracing::warn!(
                listener = what,
                configured = *cap,
                lowered_to = most,
                open_file_limit = soft,
                "connection cap lowered to fit the open-file limit (raise `ulimit -n` to keep it)"
            );
            *cap = most;
        }
    };
    fit("http", &mut config.server.max_connections, 60);
    config.server.max_connections_per_ip = config
        .server
        .max_connections_per_ip
        .min(config.server.max_connections);
    fit("protocol", &mut config.protocol.max_connections, 20);
    fit("syslog_tcp", &mut config.log_sources.max_connections, 20);
    config.server.http_limits()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_clear_are_found_and_env_references_are_not() {
        assert_eq!(
            secret_in_clear("[auth]\njwt_hs256_secret = \"abc\"\n").as_deref(),
            Some("jwt_hs256_secret")
        );
        assert_eq!(secret_in_clear("jwt_hs256_secret = \"env:JWT\"\n"), None);
        assert_eq!(secret_in_clear("url = \"http://127.0.0.1:9200\"\n"), None);
        assert_eq!(
            secret_in_clear("url = \"postgresql://u:p@db/x\"\n").as_deref(),
            Some("url")
        );
        assert_eq!(
            secret_in_clear("smtp_password = \"hunter2\"\n").as_deref(),
            Some("smtp_password")
        );
        assert_eq!(secret_in_clear("listen = \"127.0.0.1:8080\"\n"), None);
    }
}
