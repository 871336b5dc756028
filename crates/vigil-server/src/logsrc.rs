//! Log sources of `vigil serve`: followed log files and syslog over UDP and TCP, each line
//! an ECS event (`event.category: log`) through the pipeline like any other event.
//!
//! Files: lines are read by [`vigil_logs::tail::Tailer`] and ingested in batches; an
//! event's id is derived from the file's device, inode and the line's offset, and the
//! offsets are saved (atomically) only after the pipeline has committed the batch. A crash
//! between the two re-reads lines whose ids are already stored, which the store ignores:
//! neither loss nor duplicates across restarts and rotations.
//!
//! Syslog: RFC 5424 or BSD messages (see [`vigil_logs::syslog`]), one per UDP datagram, or
//! over TCP framed by newlines or by octet counting (RFC 6587). UDP has no backpressure:
//! when the pipeline is full, datagrams are dropped and counted. TCP waits.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use vigil_core::Event;
use vigil_logs::tail::{Checkpoint, Line, TailLimits, Tailer};
use vigil_pipeline::{IngestError, Pipeline};

/// `[log_sources]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSourcesConfig {
    /// Log files to follow: paths whose file name may hold `*` and `?`.
    pub files: Vec<PathBuf>,
    /// At the very first start (no saved offsets), read files that already exist from
    /// their end rather than their start.
    pub start_at_end: bool,
    /// Milliseconds between looks at the files.
    pub poll_ms: u64,
    /// Syslog over UDP: address to listen on; empty turns it off.
    pub syslog_udp: String,
    /// Syslog over TCP: address to listen on; empty turns it off.
    pub syslog_tcp: String,
    /// Syslog TCP connections served at once; at the cap the sender quiet the longest is
    /// closed to make room.
    pub max_connections: usize,
    /// Syslog TCP connections held at once from one address.
    pub max_connections_per_ip: usize,
    /// Seconds a syslog TCP sender may stay quiet before its connection is closed.
    pub idle_timeout_secs: u64,
    /// Most lines per ingest batch.
    pub batch: usize,
}

impl Default for LogSourcesConfig {
    fn default() -> Self {
        LogSourcesConfig {
            files: Vec::new(),
            start_at_end: false,
            poll_ms: 500,
            syslog_udp: String::new(),
            syslog_tcp: String::new(),
            max_connections: 256,
            max_connections_per_ip: 64,
            idle_timeout_secs: 600,
            batch: 1000,
        }
    }
}

const OFFSETS_FILE: &str = "log-offsets.json";

fn file_event(line: &Line) -> serde_json::Value {
    let (dev, ino, offset) = line.origin;
    let mut doc = json!({
        "event": {
            "id": format!("file:{dev:x}:{ino:x}:{offset}"),
            "kind": "event",
            "category": ["log"],
            "module": "file",
        },
        "message": line.text,
        "log": {"file": {"path": line.path.to_string_lossy()}},
    });
    if line.truncated {
        doc["log"]["truncated"] = json!(true);
        metrics::counter!(vigil_core::metric_names::LOG_TRUNCATED, "source" => "file").increment(1);
    }
    doc
}

/// Ingests events, waiting while the pipeline is full. Fails only when it shuts down.
async fn ingest_waiting(pipeline: &Pipeline, events: Vec<Event>, stop: &AtomicBool) -> bool {
    let mut delay = Duration::from_millis(50);
    loop {
        match pipeline.ingest(events.clone()).await {
            Ok(_) => return true,
            Err(IngestError::ShuttingDown) => return false,
            Err(e) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                tracing::debug!(error = %e, "log source waiting for the pipeline");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Follows the configured files until `stop` is set.
pub fn spawn_file_source(
    config: LogSourcesConfig,
    data_dir: &Path,
    pipeline: Pipeline,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let offsets_path = data_dir.join(OFFSETS_FILE);
    tokio::spawn(async move {
        let mut tailer = Tailer::new(
            config.files.clone(),
            TailLimits::default(),
            config.start_at_end,
        );
        let restored = std::fs::read(&offsets_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Checkpoint>(&b).ok());
        if let Some(c) = &restored {
            tailer.restore(c);
        }
        let tailer = Arc::new(std::sync::Mutex::new(tailer));
        let poll = Duration::from_millis(config.poll_ms.max(10));
        while !stop.load(Ordering::Relaxed) {
            let t = tailer.clone();
            let lines = tokio::task::spawn_blocking(move || t.lock().expect("tailer lock").poll())
                .await
                .unwrap_or_default();
            if lines.is_empty() {
                tokio::time::sleep(poll).await;
                continue;
            }
            let now = chrono::Utc::now();
            for chunk in lines.chunks(config.batch.max(1)) {
                let events: Vec<Event> = chunk
                    .iter()
                    .filter_map(|l| {
                        Event::from_input(file_event(l), now)
                            .map_err(|e| tracing::warn!(error = %e, path = %l.path.display(), "a log line could not become an event"))
                            .ok()
                    })
                    .collect();
                if !ingest_waiting(&pipeline, events, &stop).await {
                    return;
                }
            }
            // Committed: only now do the offsets move on.
            let checkpoint = tailer.lock().expect("tailer lock").checkpoint();
            match serde_json::to_vec(&checkpoint) {
                Ok(bytes) => {
                    if let Err(e) = vigil_store::fsutil::write_atomic(&offsets_path, &bytes) {
                        tracing::warn!(error = %e, path = %offsets_path.display(), "cannot save log offsets");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot encode log offsets"),
            }
            metrics::counter!(vigil_core::metric_names::LOG_LINES, "source" => "file")
                .increment(lines.len() as u64);
        }
    })
}

fn syslog_event(
    bytes: &[u8],
    peer: Option<std::net::IpAddr>,
    source: &'static str,
) -> Option<Event> {
    let message = vigil_logs::syslog::parse(bytes);
    let doc = message.to_ecs(bytes, peer);
    if doc["log"]["truncated"] == true {
        metrics::counter!(vigil_core::metric_names::LOG_TRUNCATED, "source" => source).increment(1);
    }
    Event::from_input(doc, chrono::Utc::now())
        .map_err(|e| tracing::warn!(error = %e, "a syslog message could not become an event"))
        .ok()
}

/// Receives syslog datagrams until `stop` is set.
pub fn spawn_syslog_udp(
    socket: tokio::net::UdpSocket,
    pipeline: Pipeline,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        let mut batch = Vec::new();
        // A batch is ingested when it is full or its first datagram is 200 ms old.
        let mut oldest = tokio::time::Instant::now();
        let max_wait = Duration::from_millis(200);
        while !stop.load(Ordering::Relaxed) {
            let wait = if batch.is_empty() {
                max_wait
            } else {
                max_wait.saturating_sub(oldest.elapsed())
            };
            let received = tokio::time::timeout(wait, socket.recv_from(&mut buf)).await;
            if let Ok(Ok((n, peer))) = received
                && let Some(e) = syslog_event(&buf[..n], Some(peer.ip()), "syslog_udp")
            {
                if batch.is_empty() {
                    oldest = tokio::time::Instant::now();
                }
                batch.push(e);
            }
            if batch.is_empty() || (batch.len() < 500 && oldest.elapsed() < max_wait) {
                continue;
            }
            let n = batch.len() as u64;
            match pipeline.ingest(std::mem::take(&mut batch)).await {
                Ok(_) => {
                    metrics::counter!(vigil_core::metric_names::LOG_LINES, "source" => "syslog_udp")
                        .increment(n)
                }
                Err(IngestError::ShuttingDown) => return,
                Err(e) => {
                    metrics::counter!(vigil_core::metric_names::LOG_DROPPED, "source" => "syslog_udp").increment(n);
                    tracing::warn!(error = %e, dropped = n, "syslog datagrams dropped: the pipeline is full");
                }
            }
        }
    })
}

/// Longest syslog frame over TCP.
const MAX_FRAME: usize = vigil_logs::syslog::MAX_MESSAGE + 1024;

async fn syslog_connection(
    stream: tokio::net::TcpStream,
    pipeline: Pipeline,
    stop: Arc<AtomicBool>,
    slot: &crate::conn::ConnGuard,
    idle: Duration,
) {
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    let mut reader = BufReader::new(stream);
    let mut frame = Vec::new();
    let mut batch = Vec::new();
    loop {
        frame.clear();
        // A sender quiet for `idle` is closed (it reconnects when it has something to
        // say); a frame once begun must be complete within SYSLOG_FRAME_TIME.
        match tokio::time::timeout(idle, reader.fill_buf()).await {
            Ok(Ok([])) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {}
        }
        match tokio::time::timeout(
            SYSLOG_FRAME_TIME,
            read_syslog_frame(&mut reader, &mut frame),
        )
        .await
        {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
        slot.touch();
        if let Some(e) = syslog_event(&frame, peer, "syslog_tcp") {
            batch.push(e);
        }
        let more_buffered = !reader.buffer().is_empty();
        if batch.len() >= 500 || (!more_buffered && !batch.is_empty()) {
            let n = batch.len() as u64;
            if !ingest_waiting(&pipeline, std::mem::take(&mut batch), &stop).await {
                return;
            }
            metrics::counter!(vigil_core::metric_names::LOG_LINES, "source" => "syslog_tcp")
                .increment(n);
        }
    }
    if !batch.is_empty() {
        let _ = ingest_waiting(&pipeline, batch, &stop).await;
    }
}

/// Time to receive a whole syslog frame once its first byte arrived.
const SYSLOG_FRAME_TIME: Duration = Duration::from_secs(30);

/// Reads one frame (octet-counted or a line) into `frame`; false when the connection
/// must close.
async fn read_syslog_frame(
    reader: &mut BufReader<tokio::net::TcpStream>,
    frame: &mut Vec<u8>,
) -> bool {
    let mut reader = reader;
    let first = match reader.fill_buf().await {
        Ok([]) | Err(_) => return false,
        Ok(b) => b[0],
    };
    if first.is_ascii_digit() {
        let mut len = Vec::new();
        if (&mut reader)
            .take(8)
            .read_until(b' ', &mut len)
            .await
            .is_err()
        {
            return false;
        }
        let Some(n) = std::str::from_utf8(&len)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        else {
            return false;
        };
        if n > MAX_FRAME {
            return false;
        }
        frame.resize(n, 0);
        if reader.read_exact(frame).await.is_err() {
            return false;
        }
    } else {
        match (&mut reader)
            .take(MAX_FRAME as u64)
            .read_until(b'\n', frame)
            .await
        {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        if frame.last() != Some(&b'\n') && frame.len() >= MAX_FRAME {
            // Too long: keep the start, drop the rest of the line.
            let mut rest = Vec::new();
            let _ = (&mut reader)
                .take(16 << 20)
                .read_until(b'\n', &mut rest)
                .await;
        }
    }
    true
}

/// Accepts syslog TCP connections until `stop` is set.
///
/// Connections are capped in all and per address; at a cap the sender quiet the longest
/// is closed to make room. A sender quiet for `idle` is closed.
pub fn spawn_syslog_tcp(
    listener: tokio::net::TcpListener,
    pipeline: Pipeline,
    limits: crate::conn::ConnLimits,
    idle: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let tracker = crate::conn::ConnTracker::new("syslog_tcp", limits);
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let Ok(Ok((stream, peer))) =
                tokio::time::timeout(Duration::from_millis(200), listener.accept()).await
            else {
                continue;
            };
            let Ok(slot) = tracker.admit(peer.ip()) else {
                continue; // Every connection is busy: this one is closed.
            };
            let (pipeline, stop) = (pipeline.clone(), stop.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = syslog_connection(stream, pipeline, stop, &slot, idle) => {}
                    _ = slot.evicted() => {}
                }
            });
        }
    })
}
