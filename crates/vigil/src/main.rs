//! `vigil`: the server and its command-line tools.

mod config;
mod file;
mod logs;
mod net;
mod notify;
mod script;
mod send;
mod serve;
mod sigma;
mod tls;
mod triage;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use config::Config;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vigil_core::Role;
use vigil_store::{SqliteOptions, SqliteStore, Store};

/// mimalloc instead of glibc malloc: under bulk ingest, glibc's per-thread arenas held
/// 200-300 MiB for ~70 MiB of live data (see docs/benchmarks.md). Wrapped to count each
/// thread's net allocations, which is how script runs are held to `scripts.max_memory_mib`.
#[global_allocator]
static ALLOC: vigil_script::CountingAlloc<mimalloc::MiMalloc> =
    vigil_script::CountingAlloc::new(mimalloc::MiMalloc);

/// Vigil: AI-assisted security analysis back end.
#[derive(Parser)]
#[command(name = "vigil", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (REST, WebSocket, pipeline) on the configured store.
    Serve {
        /// TOML configuration file.
        #[arg(long, env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8080 (overrides `server.listen`).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Manage API keys directly in the data directory.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Send events to a running server.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Check and test user analysis scripts locally.
    Script {
        #[command(subcommand)]
        command: script::ScriptCommand,
    },
    /// Scan files: static analysis, YARA and the file model, with a verdict per file.
    Scan(file::ScanArgs),
    /// Train the file model.
    File {
        #[command(subcommand)]
        command: file::FileCommand,
    },
    /// The network detector: train models, collect this host's connections.
    Net {
        #[command(subcommand)]
        command: net::NetCommand,
    },
    /// Responders: send a test notification along a route.
    Notify {
        #[command(subcommand)]
        command: notify::NotifyCommand,
    },
    /// The log engine: mine templates, train and run the log anomaly detectors.
    Logs {
        #[command(subcommand)]
        command: logs::LogsCommand,
    },
    /// Write sample logs (sshd, web access, kernel, HDFS-like) with injected attacks and
    /// failures, and their ground truth.
    GenLogs(logs::GenLogsArgs),
    /// Triage a security event: classify, investigate with Vigil's analyzers, write a report.
    Triage(triage::TriageArgs),
    /// The triage knowledge base: index Markdown, import ATT&CK, try retrieval.
    Kb {
        #[command(subcommand)]
        command: triage::KbCommand,
    },
    /// Sigma rules: validate a folder.
    Sigma {
        #[command(subcommand)]
        command: sigma::SigmaCommand,
    },
    /// Hunt through Windows event logs (.evtx) offline with Sigma rules: a timeline of
    /// detections and a summary by level.
    Evtx(sigma::EvtxArgs),
    /// Measure detectors on labelled data.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// TLS: make a private CA, a server certificate and agent certificates.
    Tls {
        #[command(subcommand)]
        command: tls::TlsCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an API key and print it alone on stdout (it is shown only this once).
    Create {
        /// What the key may do.
        #[arg(long)]
        role: Role,
        /// A label to recognize the key by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Data directory (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML configuration file.
        #[arg(long, env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Send an NDJSON file (one JSON event a line) through the bulk API.
    Send(send::SendArgs),
}

#[derive(Subcommand)]
enum EvalCommand {
    /// The file model on ClaMP raw-feature CSVs: AUC, accuracy, detection at 1% FPR.
    File(file::EvalFileArgs),
    /// The network detector on NSL-KDD files: AUC, detection rate, FPR, precision, F1,
    /// fit seconds, rows/s.
    Net(net::EvalNetArgs),
    /// Drain's grouping accuracy on Loghub 2k sets, per system.
    Parse(logs::EvalParseArgs),
    /// Log-key anomaly detectors on key-sequence files: precision, recall, F1, FPR,
    /// training seconds, sessions/s.
    Logs(logs::EvalLogsArgs),
    /// The triage classifier's accuracy on held-out groups of its labelled set.
    Triage(triage::EvalTriageArgs),
    /// Sigma rules on SigmaHQ's regression cases: each case's named rule must fire on its
    /// .evtx; pass rate, failures with reasons, noise, speed.
    Sigma(sigma::EvalSigmaArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (defaults, file, environment) as TOML.
    Print {
        /// TOML configuration file.
        #[arg(long, env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the pseudonym Vigil stores for each address under `[network] hash_ips`, to
    /// search for a known address (`GET /api/v1/events?ip=…`).
    Pseudonym {
        /// IPv4 or IPv6 addresses.
        #[arg(required = true)]
        addresses: Vec<String>,
        /// TOML configuration file.
        #[arg(long, env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
    },
}

pub(crate) fn load_config(file: Option<&PathBuf>, data_dir: Option<PathBuf>) -> Result<Config> {
    let mut config = Config::load(file.map(PathBuf::as_path), std::env::vars())?;
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    Ok(config)
}

/// Opens the configured store.
pub(crate) fn open_store(config: &Config) -> Result<SqliteStore> {
    SqliteStore::open(
        &config.data_dir,
        SqliteOptions {
            synchronous: config.store.synchronous,
            readers: config.store.readers,
        },
    )
    .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS crypto provider for every HTTPS client in the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            data_dir,
            listen,
        } => {
            let mut config = load_config(config.as_ref(), data_dir)?;
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            runtime()?.block_on(serve::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Key {
            command:
                KeyCommand::Create {
                    role,
                    name,
                    data_dir,
                    config,
                },
        } => {
            let config = load_config(config.as_ref(), data_dir)?;
            runtime()?.block_on(async {
                let store = Arc::new(open_store(&config)?);
                let (key, record) = vigil_server::generate_api_key(&name, role);
                store.create_api_key(&record).await?;
                println!("{key}");
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Events {
            command: EventsCommand::Send(args),
        } => runtime()?.block_on(send::send(args)),
        Command::Script { command } => script::run(command),
        Command::Scan(args) => file::scan(args),
        Command::Logs { command } => logs::run(command),
        Command::Notify { command } => notify::run(command),
        Command::GenLogs(args) => logs::gen_logs(args),
        Command::File { command } => file::run(command),
        Command::Eval {
            command: EvalCommand::File(args),
        } => file::eval(args),
        Command::Eval {
            command: EvalCommand::Net(args),
        } => net::eval(args),
        Command::Eval {
            command: EvalCommand::Parse(args),
        } => logs::eval_parse(args),
        Command::Eval {
            command: EvalCommand::Logs(args),
        } => logs::eval_logs(args),
        Command::Eval {
            command: EvalCommand::Triage(args),
        } => triage::eval(args),
        Command::Eval {
            command: EvalCommand::Sigma(args),
        } => sigma::eval(args),
        Command::Sigma {
            command: sigma::SigmaCommand::Check(args),
        } => sigma::check(args),
        Command::Evtx(args) => sigma::evtx(args),
        Command::Tls { command } => tls::run(command),
        Command::Triage(args) => triage::triage(args),
        Command::Kb { command } => triage::kb(command),
        Command::Net {
            command: net::NetCommand::Train(args),
        } => net::train(args),
        Command::Net {
            command: net::NetCommand::Collect(args),
        } => net::collect(args),
        Command::Config {
            command: ConfigCommand::Print { config },
        } => {
            let config = load_config(config.as_ref(), None)?;
            print!("{}", config.to_toml_redacted()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Pseudonym { addresses, config },
        } => {
            let config = load_config(config.as_ref(), None)?;
            let ips = config
                .network
                .pseudonyms()
                .map_err(|e| anyhow::anyhow!("{e} (fix [network])"))?;
            if !ips.enabled() {
                anyhow::bail!(
                    "[network] hash_ips is off: addresses are stored as they are (set hash_ips = true and hash_key)"
                );
            }
            for a in addresses {
                let ip: std::net::IpAddr = a
                    .parse()
                    .with_context(|| format!("`{a}` is not an IPv4 or IPv6 address"))?;
                println!("{a}\t{}", ips.apply(ip));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
