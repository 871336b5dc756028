//! `vigil events send FILE.ndjson --url URL --token T`: streams a file through the bulk API
//! in batches, with a progress bar, retrying politely when the server sheds load.

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Arguments of `vigil events send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// NDJSON file: one JSON event a line (`-` for standard input).
    file: PathBuf,
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key or JWT with the `agent` (or `admin`) role.
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    token: String,
    /// Lines per bulk request.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Times to retry one batch when the server answers 429/503 or is unreachable.
    #[arg(long, default_value_t = 10)]
    retries: u32,
    /// Print the summary as JSON on stdout (and no progress bar).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: crate::tls::ClientTls,
}

/// What the server said about one batch (the subset we read).
#[derive(Deserialize)]
struct BulkAnswer {
    #[serde(default)]
    accepted: usize,
    #[serde(default)]
    duplicates: usize,
    #[serde(default)]
    rejected: usize,
    #[serde(default)]
    errors: Vec<LineError>,
}

#[derive(Deserialize, Serialize, Clone)]
struct LineError {
    line: usize,
    code: String,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

/// The final report.
#[derive(Serialize, Default)]
struct Summary {
    lines: usize,
    accepted: usize,
    duplicates: usize,
    rejected: usize,
    requests: usize,
    retries: usize,
    seconds: f64,
    events_per_second: f64,
    errors: Vec<LineError>,
}

struct Batch {
    first_line: usize,
    lines: usize,
    body: String,
}

/// Runs the command; exit code 0 when every line was accepted, 1 when some were rejected.
pub async fn send(args: SendArgs) -> Result<ExitCode> {
    if args.batch == 0 || args.concurrency == 0 {
        bail!("--batch and --concurrency must be at least 1");
    }
    let reader: Box<dyn BufRead + Send> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        Box::new(BufReader::new(f))
    };
    let total_bytes = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    let progress = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(total_bytes);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
            )
            .expect("valid template"),
        );
        bar
    };

    let client = args
        .tls
        .apply(reqwest::Client::builder().timeout(Duration::from_secs(60)))?
        .build()
        .context("cannot build the HTTP client")?;
    let endpoint = format!("{}/api/v1/events/bulk", args.url.trim_end_matches('/'));
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut in_flight: JoinSet<Result<(Batch, BulkAnswer, usize)>> = JoinSet::new();

    let mut lines = reader.lines();
    let mut line_no = 0usize;
    loop {
        let mut batch = Batch {
            first_line: line_no + 1,
            lines: 0,
            body: String::new(),
        };
        for line in lines.by_ref() {
            let line = line.with_context(|| format!("reading line {}", line_no + 1))?;
            line_no += 1;
            progress.inc(line.len() as u64 + 1);
            // Blank lines keep their number, so the server's line numbers map back.
            batch.body.push_str(&line);
            batch.body.push('\n');
            batch.lines += 1;
            if batch.lines == args.batch {
                break;
            }
        }
        if batch.lines == 0 {
            break;
        }
        summary.lines += batch.lines;
        if in_flight.len() >= args.concurrency
            && let Some(done) = in_flight.join_next().await
        {
            account(&mut summary, done??, &progress);
        }
        let (client, endpoint, token, retries) = (
            client.clone(),
            endpoint.clone(),
            args.token.clone(),
            args.retries,
        );
        in_flight
            .spawn(async move { post_batch(&client, &endpoint, &token, batch, retries).await });
    }
    while let Some(done) = in_flight.join_next().await {
        account(&mut summary, done??, &progress);
    }
    progress.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.events_per_second = summary.accepted as f64 / summary.seconds.max(1e-9);
    summary.errors.sort_by_key(|e| e.line);

    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for e in summary.errors.iter().take(20) {
            eprintln!("line {}: {} ({})", e.line, e.message, e.code);
        }
        if summary.errors.len() > 20 {
            eprintln!("… and {} more rejected lines", summary.errors.len() - 20);
        }
        println!(
            "sent {} lines in {:.2} s: {} accepted ({} already stored), {} rejected, {:.0} events/s",
            summary.lines,
            summary.seconds,
            summary.accepted,
            summary.duplicates,
            summary.rejected,
            summary.events_per_second
        );
    }
    Ok(if summary.rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn account(
    summary: &mut Summary,
    (batch, answer, retries): (Batch, BulkAnswer, usize),
    bar: &ProgressBar,
) {
    summary.requests += 1;
    summary.retries += retries;
    summary.accepted += answer.accepted;
    summary.duplicates += answer.duplicates;
    summary.rejected += answer.rejected;
    summary
        .errors
        .extend(answer.errors.into_iter().map(|mut e| {
            e.line += batch.first_line - 1;
            e
        }));
    bar.set_message(format!("{} accepted", summary.accepted));
}

async fn post_batch(
    client: &reqwest::Client,
    endpoint: &str,
    token: &str,
    batch: Batch,
    max_retries: u32,
) -> Result<(Batch, BulkAnswer, usize)> {
    let mut attempt = 0u32;
    loop {
        let sent = client
            .post(endpoint)
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .body(batch.body.clone())
            .send()
            .await;
        let wait = match sent {
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let text = resp.text().await.unwrap_or_default();
                if status.is_success() || status.as_u16() == 400 {
                    let answer: BulkAnswer = serde_json::from_str(&text).with_context(|| {
                        format!(
                            "lines {}..: unexpected answer ({status}): {text}",
                            batch.first_line
                        )
                    })?;
                    if status.is_success() || answer.rejected > 0 {
                        return Ok((batch, answer, attempt as usize));
                    }
                    bail!(
                        "lines {}..: server refused the batch ({status}): {text}",
                        batch.first_line
                    );
                }
                if status.as_u16() != 429 && status.as_u16() != 503 {
                    bail!(
                        "lines {}..: server answered {status}: {text}",
                        batch.first_line
                    );
                }
                Duration::from_secs(retry_after.unwrap_or(1).min(30))
            }
            Err(e) if e.is_connect() || e.is_timeout() => {
                if attempt >= max_retries {
                    return Err(e).context(format!("cannot reach {endpoint}"));
                }
                Duration::from_millis(200 << attempt.min(6))
            }
            Err(e) => return Err(e).context(format!("posting to {endpoint}")),
        };
        attempt += 1;
        if attempt > max_retries {
            bail!(
                "lines {}..: the server is still overloaded after {max_retries} retries",
                batch.first_line
            );
        }
        tokio::time::sleep(wait).await;
    }
}
