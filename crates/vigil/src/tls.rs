//! `vigil tls init DIR`: a private CA, a server certificate and agent client certificates
//! for `[tls]`; and the TLS options every client command shares (`--ca-cert`,
//! `--client-cert`, `--client-key`).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `vigil tls …`.
#[derive(Subcommand, Debug)]
pub enum TlsCommand {
    /// Write a private CA, a server certificate and agent client certificates (PEM) to a
    /// directory, and print the `[tls]` settings that use them.
    Init(InitArgs),
}

/// Arguments of `vigil tls init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory to write to (created; existing files are kept unless --force).
    dir: PathBuf,
    /// Names and addresses the server is reached by (repeat the option).
    #[arg(long = "host", default_values = ["localhost", "127.0.0.1", "::1"])]
    hosts: Vec<String>,
    /// Agent client certificates to make, by name (the name is the certificate's common
    /// name and appears in the access log as `tls_client`).
    #[arg(long = "agent", default_values = ["agent"])]
    agents: Vec<String>,
    /// Days the server and agent certificates are valid (the CA: 10 years).
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Overwrite files that exist.
    #[arg(long)]
    force: bool,
    /// Print the written files as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Written {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    agents: Vec<AgentFiles>,
}

#[derive(Serialize)]
struct AgentFiles {
    name: String,
    cert: PathBuf,
    key: PathBuf,
}

/// Runs `vigil tls …`.
pub fn run(command: TlsCommand) -> Result<ExitCode> {
    match command {
        TlsCommand::Init(args) => init(args),
    }
}

fn write(path: &Path, text: &str, secret: bool, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!(
            "{} exists; pass --force to overwrite it, or choose another directory",
            path.display()
        );
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = o
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn init(args: InitArgs) -> Result<ExitCode> {
    if args.days == 0 || args.days > 3650 {
        bail!("--days must be from 1 to 3650");
    }
    let pki = vigil_server::tls::generate_pki(&args.hosts, &args.agents, args.days)
        .map_err(anyhow::Error::msg)?;
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let at = |name: &str| dir.join(name);
    let files = Written {
        ca_cert: at("ca.pem"),
        ca_key: at("ca.key"),
        server_cert: at("server.pem"),
        server_key: at("server.key"),
        agents: pki
            .agents
            .iter()
            .map(|(name, _, _)| AgentFiles {
                name: name.clone(),
                cert: at(&format!("agent-{name}.pem")),
                key: at(&format!("agent-{name}.key")),
            })
            .collect(),
    };
    // Check every target before writing any, so a refusal leaves nothing half done.
    if !args.force {
        let mut all = vec![
            &files.ca_cert,
            &files.ca_key,
            &files.server_cert,
            &files.server_key,
        ];
        for a in &files.agents {
            all.extend([&a.cert, &a.key]);
        }
        if let Some(p) = all.into_iter().find(|p| p.exists()) {
            bail!(
                "{} exists; pass --force to overwrite it, or choose another directory",
                p.display()
            );
        }
    }
    write(&files.ca_cert, &pki.ca_cert, false, args.force)?;
    write(&files.ca_key, &pki.ca_key, true, args.force)?;
    write(&files.server_cert, &pki.server_cert, false, args.force)?;
    write(&files.server_key, &pki.server_key, true, args.force)?;
    for (a, (_, cert, key)) in files.agents.iter().zip(&pki.agents) {
        write(&a.cert, cert, false, args.force)?;
        write(&a.key, key, true, args.force)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&files)?);
        return Ok(ExitCode::SUCCESS);
    }
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    println!(
        "Wrote a private CA, a server certificate and {} agent certificate(s) to {}.",
        files.agents.len(),
        dir.display()
    );
    println!("Keep ca.key offline: it signs certificates that every Vigil client trusts.\n");
    println!("Add to vigil.toml:\n");
    println!("[tls]");
    println!("cert = {:?}", abs(&files.server_cert).display().to_string());
    println!("key = {:?}", abs(&files.server_key).display().to_string());
    println!("# Mutual TLS for agents (a second factor; API keys are still needed):");
    println!(
        "client_ca = {:?}",
        abs(&files.ca_cert).display().to_string()
    );
    println!("client_auth = \"required\"\n");
    if let Some(a) = files.agents.first() {
        println!("Then, from an agent:\n");
        println!(
            "  curl --cacert {} --cert {} --key {} https://{}:8080/api/v1/health",
            files.ca_cert.display(),
            a.cert.display(),
            a.key.display(),
            args.hosts.first().map_or("localhost", String::as_str)
        );
        println!(
            "  vigil events send FILE.ndjson --url https://{}:8080 --ca-cert {} --client-cert {} --client-key {}",
            args.hosts.first().map_or("localhost", String::as_str),
            files.ca_cert.display(),
            a.cert.display(),
            a.key.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// TLS options of the commands that talk to a server.
#[derive(Args, Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM CA certificate(s) to trust for the server, besides the system's (a private CA
    /// from `vigil tls init`).
    #[arg(long, env = "VIGIL_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate, when the server requires mutual TLS.
    #[arg(long, env = "VIGIL_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM key of --client-cert.
    #[arg(long, env = "VIGIL_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl ClientTls {
    /// `builder` with the CA and client identity set.
    pub fn apply(&self, mut builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder> {
        if let Some(ca) = &self.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} is not a PEM certificate file", ca.display()))?;
            if certs.is_empty() {
                bail!("{} holds no certificate", ca.display());
            }
            builder = builder.tls_certs_merge(certs);
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            let mut pem =
                std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(
                std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?,
            );
            let id = reqwest::Identity::from_pem(&pem).with_context(|| {
                format!(
                    "{} and {} are not a PEM certificate and key",
                    cert.display(),
                    key.display()
                )
            })?;
            builder = builder.identity(id);
        }
        Ok(builder)
    }
}
