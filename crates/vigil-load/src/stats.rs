//! What happened, counted: the outcome and latency of every request per traffic kind and
//! phase, the WebSocket subscribers, which events the server acknowledged, and the pure
//! arithmetic over them (percentiles, the RSS trend and its verdict, the recovery time after
//! an overload). The recorder is shared by every traffic task; the functions are unit-tested.

use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// One kind of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `POST /api/v1/events/bulk` at the steady rate.
    Bulk,
    /// `POST /api/v1/analyze`.
    Analyze,
    /// `POST /api/v1/network/analyze/batch`.
    Network,
    /// Static analysis over the binary file-analysis protocol.
    File,
    /// The overload phase's bulk requests, as fast as the server answers.
    Blast,
}

impl Kind {
    /// Every kind, in table order.
    pub const ALL: [Kind; 5] = [
        Kind::Bulk,
        Kind::Analyze,
        Kind::Network,
        Kind::File,
        Kind::Blast,
    ];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bulk => "bulk",
            Kind::Analyze => "analyze",
            Kind::Network => "network",
            Kind::File => "file",
            Kind::Blast => "blast",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The part of the run a request was sent in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The soak: every kind at its set rate.
    Steady,
    /// The steady rates plus the bulk blast.
    Overload,
    /// The steady rates again, after the blast.
    Recovery,
}

impl Phase {
    /// Every phase, in time order.
    pub const ALL: [Phase; 3] = [Phase::Steady, Phase::Overload, Phase::Recovery];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Steady => "steady",
            Phase::Overload => "overload",
            Phase::Recovery => "recovery",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How long each phase lasts.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Phases {
    /// Seconds at the steady rates.
    pub steady: u64,
    /// Seconds of blast (0: no overload phase).
    pub overload: u64,
    /// Seconds back at the steady rates after the blast.
    pub recovery: u64,
}

impl Phases {
    /// The phase at `secs` after the start (the last one past the end).
    pub fn at(&self, secs: f64) -> Phase {
        if secs < self.steady as f64 {
            Phase::Steady
        } else if secs < (self.steady + self.overload) as f64 {
            Phase::Overload
        } else if self.overload > 0 || self.recovery > 0 {
            Phase::Recovery
        } else {
            Phase::Steady
        }
    }

    /// Seconds from the start to the end of the last phase.
    pub fn total(&self) -> u64 {
        self.steady + self.overload + self.recovery
    }

    /// Seconds `phase` lasts.
    pub fn length(&self, phase: Phase) -> u64 {
        match phase {
            Phase::Steady => self.steady,
            Phase::Overload => self.overload,
            Phase::Recovery => self.recovery,
        }
    }

    /// Where `phase` starts, in seconds from the start.
    pub fn start(&self, phase: Phase) -> u64 {
        match phase {
            Phase::Steady => 0,
            Phase::Overload => self.steady,
            Phase::Recovery => self.steady + self.overload,
        }
    }
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx (or a protocol verdict).
    Ok,
    /// 429: shed, retry later.
    TooMany,
    /// 503: unavailable, retry later (or protocol `ERROR 7 too many connections`).
    Unavailable,
    /// Any other status below 500 (or a protocol error other than 7).
    Client,
    /// 500–599 other than 503 (or protocol `ERROR 7`, internal).
    Server,
    /// No answer: connect, read or write failed, or the client's timeout expired.
    Transport,
}

impl Outcome {
    /// The outcome of an HTTP status.
    pub fn from_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Ok,
            429 => Outcome::TooMany,
            503 => Outcome::Unavailable,
            500..=599 => Outcome::Server,
            _ => Outcome::Client,
        }
    }
}

/// Counters and latencies of one kind in one phase.
#[derive(Default)]
pub struct Cell {
    sent: AtomicU64,
    ok: AtomicU64,
    too_many: AtomicU64,
    unavailable: AtomicU64,
    client: AtomicU64,
    server: AtomicU64,
    transport: AtomicU64,
    dropped: AtomicU64,
    events_sent: AtomicU64,
    events_acked: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    retry_after_missing: AtomicU64,
    hits: AtomicU64,
    latencies_ms: Mutex<Vec<f64>>,
}

/// A request on its way: when and in which phase it was sent.
pub struct Ticket {
    kind: Kind,
    phase: Phase,
    second: usize,
    sent_at: Instant,
}

impl Ticket {
    /// The phase it was sent in.
    pub fn phase(&self) -> Phase {
        self.phase
    }
}

/// Requests sent in one second by the steady kinds, and how many of them succeeded.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Second {
    /// Sent, or refused by the client because too many were in flight.
    pub total: u64,
    /// Answered 2xx (or with a verdict).
    pub ok: u64,
}

/// The WebSocket subscribers' counters.
#[derive(Default)]
pub struct WsStats {
    /// Successful connections (the first ones and every reconnection).
    pub connects: AtomicU64,
    /// Connection attempts that failed.
    pub connect_errors: AtomicU64,
    /// Connections the server closed or that broke while the run went on.
    pub disconnects: AtomicU64,
    /// Of those, closed with 1008 (slow consumer).
    pub slow_consumer: AtomicU64,
    /// Text messages (findings) received.
    pub messages: AtomicU64,
}

/// Everything recorded during a run; shared by the traffic tasks.
pub struct Recorder {
    start: Instant,
    /// The phases' lengths.
    pub phases: Phases,
    cells: Vec<Cell>,
    window: Vec<Mutex<Vec<f64>>>,
    timeline: Mutex<Vec<Second>>,
    acked: Mutex<SeqSet>,
    /// The WebSocket subscribers.
    pub ws: WsStats,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new(phases: Phases) -> Recorder {
        Recorder {
            start: Instant::now(),
            phases,
            cells: (0..Kind::ALL.len() * Phase::ALL.len())
                .map(|_| Cell::default())
                .collect(),
            window: Kind::ALL.iter().map(|_| Mutex::default()).collect(),
            timeline: Mutex::new(vec![Second::default(); phases.total() as usize + 1]),
            acked: Mutex::default(),
            ws: WsStats::default(),
        }
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.start
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The phase now.
    pub fn phase(&self) -> Phase {
        self.phases.at(self.elapsed().as_secs_f64())
    }

    fn cell(&self, kind: Kind, phase: Phase) -> &Cell {
        &self.cells[phase.index() * Kind::ALL.len() + kind.index()]
    }

    fn second(&self, second: usize, ok: bool) {
        let mut t = self.timeline.lock().unwrap();
        if second >= t.len() {
            t.resize(second + 1, Second::default());
        }
        t[second].total += 1;
        t[second].ok += u64::from(ok);
    }

    /// A request of `kind` is sent now.
    pub fn begin(&self, kind: Kind) -> Ticket {
        let elapsed = self.elapsed();
        let phase = self.phases.at(elapsed.as_secs_f64());
        self.cell(kind, phase).sent.fetch_add(1, Relaxed);
        Ticket {
            kind,
            phase,
            second: elapsed.as_secs() as usize,
            sent_at: Instant::now(),
        }
    }

    /// A request of `kind` was not sent: too many were in flight already.
    pub fn dropped(&self, kind: Kind) {
        let elapsed = self.elapsed();
        let phase = self.phases.at(elapsed.as_secs_f64());
        self.cell(kind, phase).dropped.fetch_add(1, Relaxed);
        if kind != Kind::Blast {
            self.second(elapsed.as_secs() as usize, false);
        }
    }

    /// The request of `ticket` ended with `outcome`, now.
    pub fn finish(&self, ticket: &Ticket, outcome: Outcome) {
        let ms = ticket.sent_at.elapsed().as_secs_f64() * 1000.0;
        let cell = self.cell(ticket.kind, ticket.phase);
        let counter = match outcome {
            Outcome::Ok => &cell.ok,
            Outcome::TooMany => &cell.too_many,
            Outcome::Unavailable => &cell.unavailable,
            Outcome::Client => &cell.client,
            Outcome::Server => &cell.server,
            Outcome::Transport => &cell.transport,
        };
        counter.fetch_add(1, Relaxed);
        if outcome != Outcome::Transport {
            cell.latencies_ms.lock().unwrap().push(ms);
            self.window[ticket.kind.index()].lock().unwrap().push(ms);
        }
        if ticket.kind != Kind::Blast {
            self.second(ticket.second, outcome == Outcome::Ok);
        }
    }

    /// `n` events were sent with the request of `ticket`.
    pub fn events_sent(&self, ticket: &Ticket, n: u64) {
        let cell = self.cell(ticket.kind, ticket.phase);
        cell.events_sent.fetch_add(n, Relaxed);
    }

    /// The server acknowledged the events numbered `seqs` (of which `duplicates` had been
    /// stored before) and refused `rejected` lines.
    pub fn acked(&self, ticket: &Ticket, seqs: &[u64], duplicates: u64, rejected: u64) {
        let cell = self.cell(ticket.kind, ticket.phase);
        cell.events_acked.fetch_add(seqs.len() as u64, Relaxed);
        cell.duplicates.fetch_add(duplicates, Relaxed);
        cell.rejected.fetch_add(rejected, Relaxed);
        let mut set = self.acked.lock().unwrap();
        for &s in seqs {
            set.insert(s);
        }
    }

    /// The server processed `n` items of the request of `ticket` (network records scored)
    /// and refused `rejected`.
    pub fn processed(&self, ticket: &Ticket, n: u64, rejected: u64) {
        let cell = self.cell(ticket.kind, ticket.phase);
        cell.events_acked.fetch_add(n, Relaxed);
        cell.rejected.fetch_add(rejected, Relaxed);
    }

    /// A 429 or 503 without a `Retry-After` header.
    pub fn retry_after_missing(&self, ticket: &Ticket) {
        let cell = self.cell(ticket.kind, ticket.phase);
        cell.retry_after_missing.fetch_add(1, Relaxed);
    }

    /// The answer showed that the server's analysis reacted (a script result or finding
    /// for `analyze`, an anomaly for `network`, a malicious verdict for `file`).
    pub fn hit(&self, ticket: &Ticket) {
        self.cell(ticket.kind, ticket.phase)
            .hits
            .fetch_add(1, Relaxed);
    }

    /// The sequence numbers of every acknowledged event.
    pub fn acked_set(&self) -> SeqSet {
        self.acked.lock().unwrap().clone()
    }

    /// Per second of the run (by send time): the steady kinds' requests and successes.
    pub fn timeline(&self) -> Vec<Second> {
        self.timeline.lock().unwrap().clone()
    }

    /// Latencies completed since the last call, per kind (for the periodic lines).
    pub fn take_window(&self, kind: Kind) -> Vec<f64> {
        std::mem::take(&mut *self.window[kind.index()].lock().unwrap())
    }

    /// Totals of `kind` over every phase so far.
    pub fn totals(&self, kind: Kind) -> Totals {
        let mut t = Totals::default();
        for phase in Phase::ALL {
            t.add(&self.cell(kind, phase).totals());
        }
        t
    }

    /// The summary of `kind` in `phase`, with rates over `secs`.
    pub fn summary(&self, kind: Kind, phase: Phase, secs: f64) -> KindSummary {
        let cell = self.cell(kind, phase);
        let mut lat = cell.latencies_ms.lock().unwrap().clone();
        lat.sort_by(f64::total_cmp);
        let totals = cell.totals();
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        KindSummary {
            kind,
            phase,
            requests_per_sec: per_sec(totals.ok),
            events_per_sec: per_sec(totals.events_acked),
            latency_ms: LatencySummary::of_sorted(&lat),
            totals,
        }
    }
}

impl Cell {
    fn totals(&self) -> Totals {
        Totals {
            sent: self.sent.load(Relaxed),
            ok: self.ok.load(Relaxed),
            status_429: self.too_many.load(Relaxed),
            status_503: self.unavailable.load(Relaxed),
            other_4xx: self.client.load(Relaxed),
            status_5xx: self.server.load(Relaxed),
            transport_errors: self.transport.load(Relaxed),
            dropped_by_client: self.dropped.load(Relaxed),
            events_sent: self.events_sent.load(Relaxed),
            events_acked: self.events_acked.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            rejected_lines: self.rejected.load(Relaxed),
            retry_after_missing: self.retry_after_missing.load(Relaxed),
            hits: self.hits.load(Relaxed),
        }
    }
}

/// Counts of one kind (in one phase, or over several).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Requests sent.
    pub sent: u64,
    /// Answered 2xx (or with a protocol verdict).
    pub ok: u64,
    /// Answered 429.
    pub status_429: u64,
    /// Answered 503 (protocol: `ERROR 7 too many connections`).
    pub status_503: u64,
    /// Answered with another status below 500 (protocol: errors other than 7).
    pub other_4xx: u64,
    /// Answered 500–599 other than 503 (protocol: `ERROR 7`, internal).
    pub status_5xx: u64,
    /// No answer (connection, timeout).
    pub transport_errors: u64,
    /// Not sent: the kind's in-flight cap was reached (the server was too slow).
    pub dropped_by_client: u64,
    /// Bulk: events sent.
    pub events_sent: u64,
    /// Bulk: events acknowledged (`accepted`).
    pub events_acked: u64,
    /// Bulk: acknowledged events the server had stored before (should stay 0).
    pub duplicates: u64,
    /// Bulk: lines the server refused (should stay 0).
    pub rejected_lines: u64,
    /// 429/503 answers without `Retry-After`.
    pub retry_after_missing: u64,
    /// Answers in which the analysis reacted (script result, anomaly, malicious verdict).
    pub hits: u64,
}

impl Totals {
    /// Adds `other`'s counts.
    pub fn add(&mut self, o: &Totals) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.status_429 += o.status_429;
        self.status_503 += o.status_503;
        self.other_4xx += o.other_4xx;
        self.status_5xx += o.status_5xx;
        self.transport_errors += o.transport_errors;
        self.dropped_by_client += o.dropped_by_client;
        self.events_sent += o.events_sent;
        self.events_acked += o.events_acked;
        self.duplicates += o.duplicates;
        self.rejected_lines += o.rejected_lines;
        self.retry_after_missing += o.retry_after_missing;
        self.hits += o.hits;
    }
}

/// One row of the summary: a kind in a phase.
#[derive(Clone, Debug, Serialize)]
pub struct KindSummary {
    /// The traffic kind.
    pub kind: Kind,
    /// The phase.
    pub phase: Phase,
    /// Its counts.
    #[serde(flatten)]
    pub totals: Totals,
    /// Successful requests per second of the phase.
    pub requests_per_sec: f64,
    /// Acknowledged events per second of the phase (bulk kinds).
    pub events_per_sec: f64,
    /// Latency of answered requests.
    pub latency_ms: LatencySummary,
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl LatencySummary {
    /// The summary of samples sorted in ascending order.
    pub fn of_sorted(sorted: &[f64]) -> LatencySummary {
        LatencySummary {
            count: sorted.len(),
            p50: percentile(sorted, 50.0),
            p95: percentile(sorted, 95.0),
            p99: percentile(sorted, 99.0),
            max: sorted.last().copied().unwrap_or(0.0),
        }
    }

    /// The summary of unsorted samples.
    pub fn of(mut samples: Vec<f64>) -> LatencySummary {
        samples.sort_by(f64::total_cmp);
        LatencySummary::of_sorted(&samples)
    }
}

/// The `p`-th percentile (0–100) of ascending `sorted` by the nearest-rank method: the
/// smallest sample with at least `p`% of the samples at or below it. 0 when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Least-squares line through `points` (x, y): `(slope, intercept)`; `None` with fewer
/// than two points or when every x is the same.
pub fn linear_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    Some((slope, mean_y - slope * mean_x))
}

/// Growth always allowed over the measured window, in MB.
pub const RSS_FLAT_FLOOR_MB: f64 = 10.0;
/// Growth allowed over the measured window, as a share of the mean RSS.
pub const RSS_FLAT_SHARE: f64 = 0.05;
/// Fewest samples for a verdict.
pub const RSS_MIN_SAMPLES: usize = 10;

/// The RSS trend over the measured window and whether it is flat.
///
/// The rule: fit a least-squares line to the samples; the *projected growth* is its slope
/// times the window's length. RSS is **flat** when the projected growth is at most
/// `max(10 MB, 5% of the mean RSS)`: a leak of 1 MB/min over a 9-minute window at ~100 MB
/// projects 9 MB (flat); 3 MB/min projects 27 MB (not flat). A shrinking RSS is flat.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RssTrend {
    /// Where the window starts and ends, in seconds from the start of the run.
    pub from_s: f64,
    /// End of the window.
    pub to_s: f64,
    /// Samples in the window.
    pub samples: usize,
    /// The first sample's RSS.
    pub start_mb: f64,
    /// The mean.
    pub mean_mb: f64,
    /// The largest.
    pub max_mb: f64,
    /// The last sample's RSS.
    pub end_mb: f64,
    /// The fitted slope.
    pub slope_mb_per_min: f64,
    /// Slope × window length.
    pub projected_growth_mb: f64,
    /// `max(10 MB, 5% of mean)`.
    pub allowed_growth_mb: f64,
    /// `projected_growth_mb <= allowed_growth_mb`.
    pub flat: bool,
}

/// The trend of `samples` (seconds from the start, RSS in MB) within `[from, to]`; `None`
/// with fewer than [`RSS_MIN_SAMPLES`] samples there.
pub fn rss_trend(samples: &[(f64, f64)], from: f64, to: f64) -> Option<RssTrend> {
    let window: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|(t, _)| *t >= from && *t <= to)
        .collect();
    if window.len() < RSS_MIN_SAMPLES {
        return None;
    }
    let (slope, _) = linear_fit(&window)?;
    let span = window.last()?.0 - window.first()?.0;
    let mean = window.iter().map(|p| p.1).sum::<f64>() / window.len() as f64;
    let projected = slope * span;
    let allowed = RSS_FLAT_FLOOR_MB.max(RSS_FLAT_SHARE * mean);
    Some(RssTrend {
        from_s: window.first()?.0,
        to_s: window.last()?.0,
        samples: window.len(),
        start_mb: window.first()?.1,
        mean_mb: mean,
        max_mb: window.iter().map(|p| p.1).fold(f64::MIN, f64::max),
        end_mb: window.last()?.1,
        slope_mb_per_min: slope * 60.0,
        projected_growth_mb: projected,
        allowed_growth_mb: allowed,
        flat: projected <= allowed,
    })
}

/// Shortest overload whose RSS plateau is judged: RSS climbs for the first 10–20 s of an
/// overload (the queues fill), so a shorter window cannot tell a bound from a leak.
pub const PLATEAU_MIN_SECS: u64 = 20;

/// How much the last third of a window's RSS may exceed the middle third's peak, as a
/// share of it (plus [`RSS_FLAT_FLOOR_MB`]).
pub const PLATEAU_SHARE: f64 = 0.10;

/// Whether RSS levelled off within a window (the overload): the window is cut in thirds by
/// time; the first third is the climb, and the peak of the last third may exceed the peak of
/// the middle third by at most 10% + 10 MB. Peaks rather than a fitted slope because RSS
/// under overload swings by ±10% from one second to the next.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Plateau {
    /// Peak of the middle third, MB.
    pub middle_max_mb: f64,
    /// Peak of the last third, MB.
    pub last_max_mb: f64,
    /// `last_max_mb <= middle_max_mb × 1.1 + 10`.
    pub levelled: bool,
}

/// The plateau of `samples` (seconds, MB) within `[from, to]`; `None` with fewer than
/// three samples in the middle or last third.
pub fn plateau(samples: &[(f64, f64)], from: f64, to: f64) -> Option<Plateau> {
    let third = (to - from) / 3.0;
    let peak = |a: f64, b: f64| {
        let v: Vec<f64> = samples
            .iter()
            .filter(|(t, _)| *t >= a && *t < b)
            .map(|p| p.1)
            .collect();
        (v.len() >= 3).then(|| v.into_iter().fold(f64::MIN, f64::max))
    };
    let middle = peak(from + third, from + 2.0 * third)?;
    let last = peak(from + 2.0 * third, to)?;
    Some(Plateau {
        middle_max_mb: middle,
        last_max_mb: last,
        levelled: last <= middle * (1.0 + PLATEAU_SHARE) + RSS_FLAT_FLOOR_MB,
    })
}

/// Share of requests a second must answer 2xx to count as recovered.
pub const RECOVERED_SHARE: f64 = 0.99;

/// Seconds into `seconds` (the recovery phase, one entry a second) from which every second
/// to the end answered at least 99% of its requests 2xx, provided that lasted at least
/// `hold` seconds; `None` otherwise. Seconds without requests do not break the run.
pub fn recovery_after(seconds: &[Second], hold: usize) -> Option<usize> {
    let good = |s: &Second| s.total == 0 || s.ok as f64 >= RECOVERED_SHARE * s.total as f64;
    let bad_tail = seconds.iter().rposition(|s| !good(s));
    let from = bad_tail.map_or(0, |i| i + 1);
    (seconds.len() - from >= hold.max(1)).then_some(from)
}

/// A set of event sequence numbers (dense from 0), one bit each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqSet {
    bits: Vec<u64>,
}

impl SeqSet {
    /// Adds `seq`.
    pub fn insert(&mut self, seq: u64) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << bit;
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        self.bits
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// How many numbers are in the set.
    pub fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// How many numbers are in `self` but not in `other`.
    pub fn count_missing_from(&self, other: &SeqSet) -> u64 {
        self.bits
            .iter()
            .enumerate()
            .map(|(i, w)| u64::from((w & !other.bits.get(i).copied().unwrap_or(0)).count_ones()))
            .sum()
    }

    /// Up to `n` numbers in `self` but not in `other`, smallest first.
    pub fn first_missing_from(&self, other: &SeqSet, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        for (i, w) in self.bits.iter().enumerate() {
            let mut m = w & !other.bits.get(i).copied().unwrap_or(0);
            while m != 0 && out.len() < n {
                let bit = m.trailing_zeros();
                out.push(i as u64 * 64 + u64::from(bit));
                m &= m - 1;
            }
            if out.len() >= n {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        // 10 samples: p95 and p99 are the largest, p50 the 5th.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 5.0);
        assert_eq!(percentile(&v, 95.0), 10.0);
    }

    #[test]
    fn latency_summary_sorts() {
        let s = LatencySummary::of(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(s.count, 5);
        assert_eq!(s.p50, 3.0);
        assert_eq!(s.p99, 5.0);
        assert_eq!(s.max, 5.0);
        assert_eq!(LatencySummary::of(vec![]), LatencySummary::default());
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(Outcome::from_status(202), Outcome::Ok);
        assert_eq!(Outcome::from_status(429), Outcome::TooMany);
        assert_eq!(Outcome::from_status(503), Outcome::Unavailable);
        assert_eq!(Outcome::from_status(500), Outcome::Server);
        assert_eq!(Outcome::from_status(504), Outcome::Server);
        assert_eq!(Outcome::from_status(400), Outcome::Client);
        assert_eq!(Outcome::from_status(413), Outcome::Client);
    }

    #[test]
    fn fits_a_line() {
        let pts: Vec<(f64, f64)> = (0..10).map(|x| (x as f64, 3.0 * x as f64 + 2.0)).collect();
        let (slope, intercept) = linear_fit(&pts).unwrap();
        assert!((slope - 3.0).abs() < 1e-9);
        assert!((intercept - 2.0).abs() < 1e-9);
        assert_eq!(linear_fit(&[(1.0, 1.0)]), None);
        assert_eq!(linear_fit(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    fn series(secs: usize, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (0..secs).map(|t| (t as f64, f(t as f64))).collect()
    }

    #[test]
    fn flat_rss_with_noise_is_flat() {
        // 100 MB ± 3 MB of sawtooth noise over 10 minutes.
        let s = series(600, |t| 100.0 + ((t as i64 % 7) - 3) as f64);
        let trend = rss_trend(&s, 60.0, 600.0).unwrap();
        assert!(trend.flat, "{trend:?}");
        assert!(trend.slope_mb_per_min.abs() < 0.1, "{trend:?}");
        assert_eq!(trend.from_s, 60.0);
        assert_eq!(trend.samples, 540);
    }

    #[test]
    fn a_leak_is_not_flat() {
        // 3 MB/min from 100 MB: 27 MB over the 9 measured minutes, over max(10, ~5.7).
        let s = series(600, |t| 100.0 + 3.0 * t / 60.0);
        let trend = rss_trend(&s, 60.0, 600.0).unwrap();
        assert!(!trend.flat, "{trend:?}");
        assert!((trend.slope_mb_per_min - 3.0).abs() < 1e-6);
        assert!((trend.projected_growth_mb - 3.0 * 539.0 / 60.0).abs() < 1e-6);
        assert_eq!(trend.allowed_growth_mb, 10.0);
    }

    #[test]
    fn a_slow_drift_under_the_allowance_is_flat() {
        // 1 MB/min: 9 MB over 9 minutes, under the 10 MB floor.
        let s = series(600, |t| 100.0 + t / 60.0);
        assert!(rss_trend(&s, 60.0, 600.0).unwrap().flat);
        // At 1 GB the allowance is 5% (~51 MB): 5 MB/min over 9 minutes (45 MB) is flat.
        let s = series(600, |t| 1000.0 + 5.0 * t / 60.0);
        let trend = rss_trend(&s, 60.0, 600.0).unwrap();
        assert!(trend.flat, "{trend:?}");
        assert!(trend.allowed_growth_mb > 50.0);
    }

    #[test]
    fn shrinking_rss_is_flat_and_short_windows_have_no_verdict() {
        let s = series(300, |t| 200.0 - t / 10.0);
        assert!(rss_trend(&s, 0.0, 300.0).unwrap().flat);
        assert_eq!(rss_trend(&s[..5], 0.0, 300.0), None);
        assert_eq!(rss_trend(&s, 1000.0, 2000.0), None);
    }

    #[test]
    fn plateau_after_a_climb() {
        // Climbs to ~1000 MB in 10 s, then swings ±60 MB: levelled.
        let s = series(30, |t| {
            if t < 10.0 {
                100.0 + 90.0 * t
            } else {
                1000.0 + if t as i64 % 2 == 0 { 60.0 } else { -60.0 }
            }
        });
        let p = plateau(&s, 0.0, 30.0).unwrap();
        assert!(p.levelled, "{p:?}");
        assert_eq!(p.middle_max_mb, 1060.0);
        // Still climbing 20 MB/s in the last third: not levelled.
        let s = series(30, |t| 100.0 + 20.0 * t);
        let p = plateau(&s, 0.0, 30.0).unwrap();
        assert!(!p.levelled, "{p:?}");
        // Too short to say.
        assert_eq!(plateau(&series(6, |_| 1.0), 0.0, 6.0), None);
    }

    fn secs(v: &[(u64, u64)]) -> Vec<Second> {
        v.iter().map(|&(total, ok)| Second { total, ok }).collect()
    }

    #[test]
    fn recovery_time() {
        // Failing for 3 s, then fine for 7: recovered after 3 s.
        let s = secs(&[
            (50, 10),
            (50, 20),
            (50, 48),
            (50, 50),
            (50, 50),
            (0, 0),
            (50, 50),
            (50, 50),
            (100, 99),
            (50, 50),
        ]);
        assert_eq!(recovery_after(&s, 5), Some(3));
        // 99% is enough, 98% is not.
        assert_eq!(recovery_after(&secs(&[(100, 98), (100, 99)]), 1), Some(1));
        // Not held long enough.
        assert_eq!(recovery_after(&s, 8), None);
        // Never failed.
        assert_eq!(recovery_after(&secs(&[(5, 5); 6]), 5), Some(0));
        // Failing at the end.
        assert_eq!(recovery_after(&secs(&[(5, 5), (5, 0)]), 1), None);
        assert_eq!(recovery_after(&[], 1), None);
    }

    #[test]
    fn seq_sets() {
        let mut a = SeqSet::default();
        let mut b = SeqSet::default();
        for s in [0, 1, 63, 64, 65, 1000] {
            a.insert(s);
        }
        for s in [0, 63, 65, 2000] {
            b.insert(s);
        }
        assert_eq!(a.count(), 6);
        assert!(a.contains(1000) && !a.contains(999) && !a.contains(1 << 40));
        assert_eq!(a.count_missing_from(&b), 3);
        assert_eq!(a.first_missing_from(&b, 10), vec![1, 64, 1000]);
        assert_eq!(a.first_missing_from(&b, 2), vec![1, 64]);
        assert_eq!(b.count_missing_from(&a), 1);
        assert_eq!(SeqSet::default().count(), 0);
    }

    #[test]
    fn phases_in_time() {
        let p = Phases {
            steady: 60,
            overload: 15,
            recovery: 15,
        };
        assert_eq!(p.at(0.0), Phase::Steady);
        assert_eq!(p.at(59.9), Phase::Steady);
        assert_eq!(p.at(60.0), Phase::Overload);
        assert_eq!(p.at(75.0), Phase::Recovery);
        assert_eq!(p.at(500.0), Phase::Recovery);
        assert_eq!(p.total(), 90);
        let soak = Phases {
            steady: 60,
            overload: 0,
            recovery: 0,
        };
        assert_eq!(soak.at(70.0), Phase::Steady);
    }

    #[test]
    fn recorder_counts_by_phase() {
        let r = Recorder::new(Phases {
            steady: 100,
            overload: 0,
            recovery: 0,
        });
        let t = r.begin(Kind::Bulk);
        r.events_sent(&t, 3);
        r.acked(&t, &[0, 1, 2], 0, 0);
        r.finish(&t, Outcome::Ok);
        let t = r.begin(Kind::Bulk);
        r.finish(&t, Outcome::TooMany);
        r.retry_after_missing(&t);
        r.dropped(Kind::Bulk);
        let s = r.summary(Kind::Bulk, Phase::Steady, 1.0);
        assert_eq!(s.totals.sent, 2);
        assert_eq!(s.totals.ok, 1);
        assert_eq!(s.totals.status_429, 1);
        assert_eq!(s.totals.dropped_by_client, 1);
        assert_eq!(s.totals.events_acked, 3);
        assert_eq!(s.totals.retry_after_missing, 1);
        assert_eq!(s.latency_ms.count, 2);
        assert_eq!(r.acked_set().count(), 3);
        let t = r.timeline();
        assert_eq!(t[0], Second { total: 3, ok: 1 });
        assert_eq!(r.take_window(Kind::Bulk).len(), 2);
        assert!(r.take_window(Kind::Bulk).is_empty());
    }
}
