//! `vigil notify test ROUTE`: sends a sample incident along a configured responder route,
//! at once and without the outbox, and says what the receiver answered.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;

/// `vigil notify …`.
#[derive(Subcommand)]
pub enum NotifyCommand {
    /// Send a sample incident along ROUTE (from `[responders]`) and report the answer.
    Test(TestArgs),
}

/// `vigil notify test`.
#[derive(Args)]
pub struct TestArgs {
    /// The route's name.
    route: String,
    /// TOML configuration file.
    #[arg(long, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(command: NotifyCommand) -> Result<ExitCode> {
    let NotifyCommand::Test(args) = command;
    let config = crate::load_config(args.config.as_ref(), None)?;
    if !config
        .responders
        .routes
        .iter()
        .any(|r| r.name == args.route)
    {
        let names: Vec<&str> = config
            .responders
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        bail!(
            "no route `{}` in [responders] (configured: {})",
            args.route,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    }
    crate::runtime()?.block_on(async {
        // A throwaway store: the test sends directly and records nothing.
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let store: Arc<dyn vigil_store::Store> = Arc::new(vigil_store::SqliteStore::open(
            dir.path(),
            vigil_store::SqliteOptions::default(),
        )?);
        let responders = vigil_respond::Responders::new(config.responders.clone(), store)
            .map_err(|e| anyhow::anyhow!("{e} (fix [responders])"))?;
        let now = vigil_core::now_rfc3339();
        let incident = vigil_core::Incident {
            id: vigil_core::new_id(),
            title: "Vigil test notification".into(),
            status: vigil_core::IncidentStatus::Open,
            severity: vigil_core::Severity::High,
            score: 75.0,
            entity: "host:vigil-test".into(),
            host_name: Some("vigil-test".into()),
            first_seen: now.clone(),
            last_seen: now.clone(),
            finding_ids: vec![],
            techniques: vec![],
            assignee: None,
            notes: vec![],
            created_at: now.clone(),
            updated_at: now.clone(),
        };
        let delivery = vigil_store::Delivery {
            id: vigil_core::new_id(),
            route: args.route.clone(),
            incident_id: incident.id.clone(),
            kind: "test".into(),
            state: vigil_store::DeliveryState::Pending,
            attempts: 0,
            next_at_ms: 0,
            created_at: now.clone(),
            updated_at: now,
            last_error: None,
            payload: serde_json::to_value(&incident)?,
        };
        let outcome = responders.attempt(&delivery).await;
        let (ok, detail) = match &outcome {
            vigil_respond::responders::Attempt::Delivered => (true, "delivered".to_string()),
            vigil_respond::responders::Attempt::Retry(e, _) => {
                (false, format!("failed (would be retried): {e}"))
            }
            vigil_respond::responders::Attempt::Refused(e) => {
                (false, format!("refused (would be a dead letter): {e}"))
            }
        };
        if args.json {
            println!(
                "{}",
                json!({"route": args.route, "delivered": ok, "detail": detail})
            );
        } else {
            println!("route {}: {detail}", args.route);
        }
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}
