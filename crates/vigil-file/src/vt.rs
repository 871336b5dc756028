//! VirusTotal: file reports from the v3 API (`GET {base_url}/api/v3/files/{sha256}` with
//! an `x-apikey` header), as seed 001's file-analysis server used them.
//!
//! A caller may pass its own VirusTotal key with each lookup, so that its quota is spent
//! rather than the server's; otherwise the configured key ([`VtConfig::api_key`]) is used.
//! Reports go through a [`VtCache`] so that a hash is not looked up twice within the TTL;
//! "not found" answers are cached too, for a shorter time. Concurrent lookups of one hash
//! share a single request.
//!
//! Everything is bounded: the hash is validated before any request (so nothing can be
//! injected into the URL), each request has a timeout, retries (429, 5xx, timeouts,
//! connection errors) are counted and backed off, the response body is capped, and the
//! report keeps at most [`MAX_DETECTIONS`] detections. The API key is never logged nor put
//! in an error message.
//!
//! `base_url` is guarded (issue 12, [`vigil_core::net_guard`]): VirusTotal is on the
//! internet, so an internal address (by literal, reserved name, or DNS answer at each
//! connection) is refused unless [`VtConfig::allow_internal`] or
//! [`VtConfig::internal_allow`] allows it (a local fake in tests, a mirror on the LAN).
//! Redirects are never followed, so the key stays on the configured host.

use async_trait::async_trait;
use reqwest::header::{HeaderValue, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{debug, warn};
use vigil_core::net_guard::{Guard, find_refusal};
use vigil_http::{Fixed, GuardedResolver};

/// The public VirusTotal service.
pub const DEFAULT_BASE_URL: &str = "https://www.virustotal.com";
/// Largest response body read from VirusTotal (a file report is usually under 100 KiB).
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// Largest error body read (only its `error.code` and `error.message` are used).
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;
/// Most detections kept in a report.
pub const MAX_DETECTIONS: usize = 100;
/// Longest wait between two attempts, whatever `backoff_ms` or `Retry-After` say.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Most retries [`VtConfig::max_retries`] may ask for.
pub const MAX_RETRIES_LIMIT: u32 = 10;
/// Longest per-request timeout [`VtConfig::timeout_ms`] may ask for.
pub const MAX_TIMEOUT_MS: u64 = 300_000;
/// Entries a [`MemoryCache`] holds by default.
pub const MEMORY_CACHE_DEFAULT_ENTRIES: usize = 100_000;
/// Strings copied from a report (names, labels, engine results) are cut to this many bytes.
const MAX_TEXT_BYTES: usize = 512;

/// The `[virustotal]` section of the configuration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VtConfig {
    /// Where the v3 API lives (the client appends `/api/v3/files/{sha256}`).
    pub base_url: String,
    /// The server's own VirusTotal key, used when a request brings none (prefer the
    /// `VIGIL_VIRUSTOTAL__API_KEY` variable). Without it, only callers that pass their
    /// own key (or hashes already cached) get reports.
    pub api_key: Option<String>,
    /// How long a report of a known file is cached, in seconds (default 7 days).
    pub cache_ttl_secs: u64,
    /// How long a "not found" answer is cached, in seconds (default 1 day).
    pub not_found_ttl_secs: u64,
    /// Timeout of each HTTP request (connection, headers and body), in milliseconds
    /// (at most 300000).
    pub timeout_ms: u64,
    /// Retries after a 429, a 5xx, a timeout or a connection error (at most 10).
    pub max_retries: u32,
    /// Wait before the first retry, in milliseconds; it doubles for each further retry,
    /// capped at 30 s. A `Retry-After` header (seconds) replaces it, capped the same way.
    pub backoff_ms: u64,
    /// Whether `base_url` may be an internal address (loopback, private, link-local, …),
    /// by literal, reserved name (`localhost`, `*.internal`) or DNS answer. Off: VirusTotal
    /// is on the internet, and the key must not be sent elsewhere. Cloud metadata
    /// (169.254.0.0/16, …) stays refused even when on.
    pub allow_internal: bool,
    /// Internal targets allowed all the same: addresses, CIDR blocks, host names,
    /// `*.suffix` (a mirror on the LAN). Only a CIDR block opens a cloud metadata address.
    pub internal_allow: Vec<String>,
}

impl Default for VtConfig {
    fn default() -> Self {
        VtConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            api_key: None,
            cache_ttl_secs: 7 * 24 * 3600,
            not_found_ttl_secs: 24 * 3600,
            timeout_ms: 10_000,
            max_retries: 3,
            backoff_ms: 1_000,
            allow_internal: false,
            internal_allow: Vec::new(),
        }
    }
}

impl std::fmt::Debug for VtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VtConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("cache_ttl_secs", &self.cache_ttl_secs)
            .field("not_found_ttl_secs", &self.not_found_ttl_secs)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_retries", &self.max_retries)
            .field("backoff_ms", &self.backoff_ms)
            .field("allow_internal", &self.allow_internal)
            .field("internal_allow", &self.internal_allow)
            .finish()
    }
}

/// One engine that flagged the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    /// The engine's name, such as `Kaspersky`.
    pub engine: String,
    /// `malicious` or `suspicious`.
    pub category: String,
    /// The engine's verdict, such as `EICAR-Test-File`, when it gave one.
    pub result: Option<String>,
}

/// What VirusTotal knows about a file. Serializable so that caches can store it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VtReport {
    /// The file's SHA-256, lowercase.
    pub sha256: String,
    /// Whether VirusTotal knows the file (false after a 404 `NotFoundError`).
    pub found: bool,
    /// Engines that called it malicious.
    pub malicious: u32,
    /// Engines that called it suspicious.
    pub suspicious: u32,
    /// Engines that called it harmless.
    pub harmless: u32,
    /// Engines that found nothing.
    pub undetected: u32,
    /// Engines that gave a verdict: malicious + suspicious + harmless + undetected (engines
    /// that timed out, failed or do not support the type are left out).
    pub engines: u32,
    /// (malicious + 0.5 × suspicious) / engines, in [0, 1]; 0 when no engine gave a verdict.
    pub score: f64,
    /// VirusTotal's suggested threat label, such as `trojan.emotet/zusy`.
    pub threat_label: Option<String>,
    /// VirusTotal's community reputation score.
    pub reputation: Option<i64>,
    /// When the file was last analysed (seconds since the epoch).
    pub last_analysis_date: Option<i64>,
    /// VirusTotal's most meaningful name for the file.
    pub meaningful_name: Option<String>,
    /// The file type, such as `Win32 EXE`.
    pub type_description: Option<String>,
    /// Engines that called it malicious or suspicious, by engine name, at most
    /// [`MAX_DETECTIONS`].
    pub detections: Vec<Detection>,
    /// When VirusTotal was asked (seconds since the epoch).
    pub fetched_at: i64,
    /// True when this report was served from the cache.
    #[serde(default)]
    pub cached: bool,
}

impl VtReport {
    /// The report for a file VirusTotal does not know.
    pub fn not_found(sha256: &str, fetched_at: i64) -> Self {
        VtReport {
            sha256: sha256.to_string(),
            found: false,
            malicious: 0,
            suspicious: 0,
            harmless: 0,
            undetected: 0,
            engines: 0,
            score: 0.0,
            threat_label: None,
            reputation: None,
            last_analysis_date: None,
            meaningful_name: None,
            type_description: None,
            detections: Vec::new(),
            fetched_at,
            cached: false,
        }
    }

    /// Parses the body of a v3 `GET /api/v3/files/{id}` answer. Missing parts (stats,
    /// results, labels…) are left empty; only a body that is not that JSON shape fails.
    /// When `last_analysis_stats` is missing, the counts come from `last_analysis_results`.
    pub fn from_v3_json(sha256: &str, body: &[u8], fetched_at: i64) -> Result<Self, VtError> {
        let parsed: FileResponse = serde_json::from_slice(body)
            .map_err(|e| VtError::Decode(format!("not a VirusTotal v3 file object: {e}")))?;
        let attributes = parsed.data.attributes;
        let results = attributes.last_analysis_results.unwrap_or_default();
        let stats = attributes.last_analysis_stats.unwrap_or_else(|| {
            let mut stats = Stats::default();
            for r in results.values() {
                match r.category.as_deref() {
                    Some("malicious") => stats.malicious += 1,
                    Some("suspicious") => stats.suspicious += 1,
                    Some("harmless") => stats.harmless += 1,
                    Some("undetected") => stats.undetected += 1,
                    _ => {}
                }
            }
            stats
        });
        let detections = results
            .iter()
            .filter_map(|(key, r)| {
                let category = r.category.as_deref()?;
                if category != "malicious" && category != "suspicious" {
                    return None;
                }
                Some(Detection {
                    engine: cut(r.engine_name.as_deref().unwrap_or(key)),
                    category: category.to_string(),
                    result: r.result.as_deref().map(cut),
                })
            })
            .take(MAX_DETECTIONS)
            .collect();
        let engines = stats
            .malicious
            .saturating_add(stats.suspicious)
            .saturating_add(stats.harmless)
            .saturating_add(stats.undetected);
        Ok(VtReport {
            sha256: sha256.to_string(),
            found: true,
            malicious: stats.malicious,
            suspicious: stats.suspicious,
            harmless: stats.harmless,
            undetected: stats.undetected,
            engines,
            score: score(stats.malicious, stats.suspicious, engines),
            threat_label: attributes
                .popular_threat_classification
                .and_then(|c| c.suggested_threat_label)
                .as_deref()
                .map(cut),
            reputation: attributes.reputation,
            last_analysis_date: attributes.last_analysis_date,
            meaningful_name: attributes.meaningful_name.as_deref().map(cut),
            type_description: attributes.type_description.as_deref().map(cut),
            detections,
            fetched_at,
            cached: false,
        })
    }
}

/// (malicious + 0.5 × suspicious) / engines, clamped to [0, 1]; 0 without engines.
fn score(malicious: u32, suspicious: u32, engines: u32) -> f64 {
    if engines == 0 {
        return 0.0;
    }
    ((f64::from(malicious) + 0.5 * f64::from(suspicious)) / f64::from(engines)).clamp(0.0, 1.0)
}

/// `text` cut to [`MAX_TEXT_BYTES`] at a character boundary.
fn cut(text: &str) -> String {
    if text.len() <= MAX_TEXT_BYTES {
        return text.to_string();
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

// The parts of VirusTotal's v3 file object that Vigil reads.
#[derive(Deserialize)]
struct FileResponse {
    data: FileData,
}

#[derive(Deserialize)]
struct FileData {
    #[serde(default)]
    attributes: Attributes,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Attributes {
    last_analysis_stats: Option<Stats>,
    last_analysis_results: Option<BTreeMap<String, EngineResult>>,
    last_analysis_date: Option<i64>,
    popular_threat_classification: Option<ThreatClassification>,
    reputation: Option<i64>,
    meaningful_name: Option<String>,
    type_description: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Stats {
    malicious: u32,
    suspicious: u32,
    harmless: u32,
    undetected: u32,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct EngineResult {
    category: Option<String>,
    engine_name: Option<String>,
    result: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ThreatClassification {
    suggested_threat_label: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ErrorResponse {
    error: ErrorBody,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    code: String,
    message: String,
}

/// Why a lookup failed. No message ever contains the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VtError {
    /// Neither the request nor the configuration has a key.
    #[error(
        "no VirusTotal API key: pass one with the request or set [virustotal] api_key / VIGIL_VIRUSTOTAL__API_KEY"
    )]
    NoKey,
    /// VirusTotal refused the key (401/403, `WrongCredentialsError`/`ForbiddenError`), or
    /// the key cannot be sent in a header. Not retried.
    #[error("VirusTotal rejected the API key (wrong key or not allowed for this request)")]
    BadKey,
    /// Still 429 (quota exceeded or too many requests) after the retries.
    #[error("VirusTotal quota exceeded (HTTP 429, still after {retries} retries)")]
    Quota {
        /// Retries made.
        retries: u32,
    },
    /// No answer within `timeout_ms`, after the retries.
    #[error("VirusTotal did not answer in time")]
    Timeout,
    /// Any other HTTP error (after the retries for 5xx).
    #[error("VirusTotal answered HTTP {status} {code}: {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// VirusTotal's `error.code`, such as `NotAvailableYet` (empty when absent).
        code: String,
        /// VirusTotal's `error.message` (empty when absent).
        message: String,
    },
    /// VirusTotal could not be reached (DNS, connection, TLS), after the retries.
    #[error("cannot reach VirusTotal: {0}")]
    Network(String),
    /// The answer is not a usable v3 file object, or is larger than [`MAX_BODY_BYTES`].
    #[error("cannot read the VirusTotal answer: {0}")]
    Decode(String),
    /// The SHA-256 is not 64 hexadecimal characters.
    #[error("not a SHA-256 (64 hexadecimal characters)")]
    BadHash,
    /// The report cache failed (lookups log cache failures and carry on; caches may use
    /// this in their own errors).
    #[error("VirusTotal cache: {0}")]
    Cache(String),
    /// The `[virustotal]` settings are unusable.
    #[error("invalid [virustotal] config: {0}")]
    Config(String),
    /// `base_url` resolved to an address the guard refuses (internal, or cloud metadata).
    /// Not retried.
    #[error("VirusTotal target refused: {0}")]
    Refused(String),
    /// The HTTP client could not be built (for instance, no TLS crypto provider installed).
    #[error("cannot build the VirusTotal HTTP client: {0}")]
    Client(String),
}

/// Where reports are kept between lookups. The server implements it over its store; tests
/// and the CLI use [`MemoryCache`].
#[async_trait]
pub trait VtCache: Send + Sync {
    /// The report for `sha256` (lowercase) if one is cached and has not expired.
    async fn get(&self, sha256: &str) -> Result<Option<VtReport>, String>;
    /// Keeps `report` (under `report.sha256`) for `ttl`.
    async fn put(&self, report: &VtReport, ttl: Duration) -> Result<(), String>;
}

struct CacheEntry {
    report: VtReport,
    inserted: Instant,
    expires: Instant,
}

/// An in-memory [`VtCache`], bounded: when full, expired entries go first, then the oldest.
pub struct MemoryCache {
    entries: Mutex<HashMap<String, CacheEntry>>,
    max_entries: usize,
}

impl MemoryCache {
    /// A cache of at most [`MEMORY_CACHE_DEFAULT_ENTRIES`] reports.
    pub fn new() -> Self {
        Self::with_max_entries(MEMORY_CACHE_DEFAULT_ENTRIES)
    }

    /// A cache of at most `max_entries` reports (at least 1).
    pub fn with_max_entries(max_entries: usize) -> Self {
        MemoryCache {
            entries: Mutex::new(HashMap::new()),
            max_entries: max_entries.max(1),
        }
    }

    /// Reports held, expired ones included until they are evicted.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CacheEntry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("entries", &self.len())
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

#[async_trait]
impl VtCache for MemoryCache {
    async fn get(&self, sha256: &str) -> Result<Option<VtReport>, String> {
        let now = Instant::now();
        let mut entries = self.lock();
        match entries.get(sha256) {
            Some(e) if e.expires > now => Ok(Some(e.report.clone())),
            Some(_) => {
                entries.remove(sha256);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn put(&self, report: &VtReport, ttl: Duration) -> Result<(), String> {
        let now = Instant::now();
        // A century is forever here, and cannot overflow an Instant.
        let ttl = ttl.min(Duration::from_secs(100 * 365 * 86_400));
        let expires = now.checked_add(ttl).unwrap_or(now);
        let mut entries = self.lock();
        if !entries.contains_key(&report.sha256) && entries.len() >= self.max_entries {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.max_entries {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.inserted)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        let mut report = report.clone();
        report.cached = false;
        entries.insert(
            report.sha256.clone(),
            CacheEntry {
                report,
                inserted: now,
                expires,
            },
        );
        Ok(())
    }
}

/// Counters since the client was built, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VtStats {
    /// Calls to [`VirusTotal::lookup`].
    pub lookups: u64,
    /// Lookups answered from the cache.
    pub cache_hits: u64,
    /// Lookups not in the cache (bad hashes are neither hits nor misses).
    pub cache_misses: u64,
    /// HTTP requests sent to VirusTotal, retries included.
    pub requests: u64,
    /// Lookups that ended in an error.
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    lookups: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
}

/// The VirusTotal client: validates hashes, consults the cache, calls the v3 API with
/// retries and caches what it learns.
pub struct VirusTotal {
    http: reqwest::Client,
    config: VtConfig,
    cache: Arc<dyn VtCache>,
    /// `base_url` without a trailing slash.
    base: String,
    /// One async lock per hash being fetched, so that concurrent lookups of a hash share
    /// one request. Holds only hashes in flight.
    inflight: Inflight,
    counters: Counters,
}

impl std::fmt::Debug for VirusTotal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirusTotal")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

type Inflight = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

/// A lookup's share of a hash's in-flight lock. Dropping it (also when the lookup is
/// cancelled) removes the hash from the map once nobody else holds or waits for it.
struct InflightSlot<'a> {
    map: &'a Inflight,
    sha256: &'a str,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> InflightSlot<'a> {
    fn join(map: &'a Inflight, sha256: &'a str) -> Self {
        let mut inflight = map.lock().unwrap_or_else(PoisonError::into_inner);
        let lock = Arc::clone(inflight.entry(sha256.to_string()).or_default());
        InflightSlot { map, sha256, lock }
    }
}

impl Drop for InflightSlot<'_> {
    fn drop(&mut self) {
        let mut inflight = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        // The map and this slot hold the only references: nobody else waits.
        if Arc::strong_count(&self.lock) == 2 {
            inflight.remove(self.sha256);
        }
    }
}

/// How one attempt ended, when it did not produce an answer.
enum Failure {
    /// Worth another attempt; `retry_after` is the server's `Retry-After`.
    Retry {
        error: VtError,
        retry_after: Option<Duration>,
    },
    /// Final.
    Fatal(VtError),
}

impl VirusTotal {
    /// A client for `config`, keeping reports in `cache`. Fails when the settings are out
    /// of bounds, or when the HTTP client cannot be built: with reqwest's
    /// `rustls-no-provider`, the binary must install a rustls crypto provider first.
    pub fn new(config: VtConfig, cache: Arc<dyn VtCache>) -> Result<Self, VtError> {
        VirusTotal::build(config, cache, Fixed::default())
    }

    fn build(config: VtConfig, cache: Arc<dyn VtCache>, fixed: Fixed) -> Result<Self, VtError> {
        let base = config.base_url.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| VtError::Config(format!("base_url {base:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https")
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(VtError::Config(format!(
                "base_url {base:?} must be a plain http(s) URL without credentials, query or fragment"
            )));
        }
        let guard = Guard::new(
            "[virustotal]",
            config.allow_internal,
            &config.internal_allow,
        )
        .map_err(VtError::Config)?;
        guard
            .check_host(url.host_str().unwrap_or_default())
            .map_err(|e| VtError::Config(format!("base_url {base:?}: {e}")))?;
        if config.timeout_ms == 0 || config.timeout_ms > MAX_TIMEOUT_MS {
            return Err(VtError::Config(format!(
                "timeout_ms must be between 1 and {MAX_TIMEOUT_MS}"
            )));
        }
        if config.max_retries > MAX_RETRIES_LIMIT {
            return Err(VtError::Config(format!(
                "max_retries must be at most {MAX_RETRIES_LIMIT}"
            )));
        }
        let timeout = Duration::from_millis(config.timeout_ms);
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would carry the x-apikey header to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver::new(
                Arc::new(guard),
                url.host_str().unwrap_or_default(),
                fixed,
            )))
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")));
        // reqwest panics (rather than erring) when rustls has no crypto provider.
        let http = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder.build()))
            .map_err(|_| {
                VtError::Client(
                    "no rustls crypto provider is installed (install one, e.g. \
                     rustls::crypto::ring::default_provider().install_default(), before \
                     building the client)"
                        .into(),
                )
            })?
            .map_err(|e| VtError::Client(describe(&e)))?;
        Ok(VirusTotal {
            http,
            config,
            cache,
            base,
            inflight: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &VtConfig {
        &self.config
    }

    /// Counters since the client was built.
    pub fn stats(&self) -> VtStats {
        let c = &self.counters;
        VtStats {
            lookups: c.lookups.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            cache_misses: c.cache_misses.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }

    /// The report for `sha256` (any case). A cached report is returned with `cached: true`
    /// without any key or request. Otherwise VirusTotal is asked with `caller_key` (when
    /// non-empty) or the configured key, and the answer (found or not) is cached.
    pub async fn lookup(
        &self,
        sha256: &str,
        caller_key: Option<&str>,
    ) -> Result<VtReport, VtError> {
        self.counters.lookups.fetch_add(1, Ordering::Relaxed);
        let result = self.lookup_inner(sha256, caller_key).await;
        if result.is_err() {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn lookup_inner(
        &self,
        sha256: &str,
        caller_key: Option<&str>,
    ) -> Result<VtReport, VtError> {
        let sha256 = normalize_sha256(sha256)?;
        if let Some(report) = self.cached(&sha256).await {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(report);
        }
        let key = caller_key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .or_else(|| {
                self.config
                    .api_key
                    .as_deref()
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
            })
            .ok_or(VtError::NoKey)?;

        // One fetch per hash at a time; whoever waited finds the report in the cache.
        let slot = InflightSlot::join(&self.inflight, &sha256);
        let _guard = slot.lock.lock().await;
        match self.cached(&sha256).await {
            Some(report) => {
                self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                Ok(report)
            }
            None => {
                self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
                self.fetch_and_cache(&sha256, key).await
            }
        }
    }

    /// The cached report, marked as such; cache failures are logged and count as misses.
    async fn cached(&self, sha256: &str) -> Option<VtReport> {
        match self.cache.get(sha256).await {
            Ok(Some(mut report)) => {
                debug!(sha256, found = report.found, "virustotal cache hit");
                report.cached = true;
                Some(report)
            }
            Ok(None) => None,
            Err(error) => {
                warn!(sha256, %error, "virustotal cache read failed; asking VirusTotal");
                None
            }
        }
    }

    async fn fetch_and_cache(&self, sha256: &str, key: &str) -> Result<VtReport, VtError> {
        let report = self.fetch(sha256, key).await?;
        let ttl = Duration::from_secs(if report.found {
            self.config.cache_ttl_secs
        } else {
            self.config.not_found_ttl_secs
        });
        if let Err(error) = self.cache.put(&report, ttl).await {
            warn!(sha256, %error, "virustotal cache write failed");
        }
        Ok(report)
    }

    /// Asks VirusTotal, retrying as configured.
    async fn fetch(&self, sha256: &str, key: &str) -> Result<VtReport, VtError> {
        let mut key_header = HeaderValue::from_str(key).map_err(|_| VtError::BadKey)?;
        key_header.set_sensitive(true);
        let url = format!("{}/api/v3/files/{sha256}", self.base);
        let mut attempt: u32 = 0;
        loop {
            let failure = match self.attempt(&url, sha256, key, &key_header).await {
                Ok(report) => return Ok(report),
                Err(failure) => failure,
            };
            match failure {
                Failure::Fatal(error) => return Err(error),
                Failure::Retry { error, retry_after } => {
                    if attempt >= self.config.max_retries {
                        return Err(match error {
                            VtError::Quota { .. } => VtError::Quota { retries: attempt },
                            other => other,
                        });
                    }
                    let wait = backoff(self.config.backoff_ms, attempt, retry_after);
                    debug!(sha256, attempt, wait_ms = wait.as_millis() as u64, %error, "virustotal retry");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One request.
    async fn attempt(
        &self,
        url: &str,
        sha256: &str,
        key: &str,
        key_header: &HeaderValue,
    ) -> Result<VtReport, Failure> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .http
            .get(url)
            .header("x-apikey", key_header.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_failure(&e))?;
        let status = response.status();
        debug!(sha256, status = status.as_u16(), "virustotal response");
        let retry_after = retry_after(&response);

        if status.is_success() {
            let fetched_at = now_epoch();
            let body = read_capped(response, MAX_BODY_BYTES).await?;
            return VtReport::from_v3_json(sha256, &body, fetched_at).map_err(Failure::Fatal);
        }
        // Error bodies are small; one that is not readable just has no code or message.
        let body = read_capped(response, MAX_ERROR_BODY_BYTES)
            .await
            .unwrap_or_default();
        let error = serde_json::from_slice::<ErrorResponse>(&body)
            .unwrap_or_default()
            .error;
        let code = scrub(&error.code, key);
        let message = scrub(&error.message, key);
        match status.as_u16() {
            404 if code == "NotFoundError" => Ok(VtReport::not_found(sha256, now_epoch())),
            401 | 403 => Err(Failure::Fatal(VtError::BadKey)),
            429 => Err(Failure::Retry {
                error: VtError::Quota { retries: 0 },
                retry_after,
            }),
            s if status.is_server_error() => Err(Failure::Retry {
                error: VtError::Http {
                    status: s,
                    code,
                    message,
                },
                retry_after,
            }),
            s => Err(Failure::Fatal(VtError::Http {
                status: s,
                code,
                message,
            })),
        }
    }
}

/// `sha256` lowercased, or [`VtError::BadHash`] unless it is exactly 64 hex digits.
pub fn normalize_sha256(sha256: &str) -> Result<String, VtError> {
    if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha256.to_ascii_lowercase())
    } else {
        Err(VtError::BadHash)
    }
}

/// The wait before retry number `attempt + 1`: `Retry-After` when given, otherwise
/// `backoff_ms` doubled `attempt` times; capped at [`MAX_BACKOFF`] either way.
fn backoff(backoff_ms: u64, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let wait = retry_after.unwrap_or_else(|| {
        Duration::from_millis(backoff_ms.saturating_mul(1u64 << attempt.min(32)))
    });
    wait.min(MAX_BACKOFF)
}

/// The `Retry-After` header in seconds (the HTTP-date form is ignored).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    let secs: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(MAX_BACKOFF.as_secs())))
}

/// The body, or a decode failure once it passes `cap` bytes (checked against
/// `Content-Length` first, then while reading).
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, Failure> {
    let too_big = || {
        Failure::Fatal(VtError::Decode(format!(
            "the response body is larger than {cap} bytes"
        )))
    };
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_failure(&e))? {
        if body.len() + chunk.len() > cap {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error as a retryable failure (timeouts and connection errors) or a
/// final one.
fn transport_failure(e: &reqwest::Error) -> Failure {
    if let Some(r) = find_refusal(e) {
        return Failure::Fatal(VtError::Refused(r.to_string()));
    }
    if e.is_timeout() {
        return Failure::Retry {
            error: VtError::Timeout,
            retry_after: None,
        };
    }
    if e.is_connect() || e.is_request() || e.is_body() {
        return Failure::Retry {
            error: VtError::Network(describe(e)),
            retry_after: None,
        };
    }
    if e.is_decode() {
        return Failure::Fatal(VtError::Decode(describe(e)));
    }
    Failure::Fatal(VtError::Network(describe(e)))
}

/// An error with its causes, `: `-separated. reqwest errors name the URL (base URL and
/// hash), never the headers, so the key cannot appear.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    let mut depth = 0;
    while let Some(s) = source {
        if depth >= 8 {
            break;
        }
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
        depth += 1;
    }
    cut(&text)
}

/// `text` (from VirusTotal) cut to size, with any occurrence of the key hidden.
fn scrub(text: &str, key: &str) -> String {
    let text = cut(text);
    if key.is_empty() || !text.contains(key) {
        text
    } else {
        text.replace(key, "<redacted>")
    }
}

fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

    #[test]
    fn minimal_body_parses_to_an_empty_found_report() {
        let r = VtReport::from_v3_json(HASH, br#"{"data":{"id":"x","type":"file"}}"#, 5).unwrap();
        assert!(r.found);
        assert_eq!((r.engines, r.score, r.detections.len()), (0, 0.0, 0));
        assert_eq!(r.threat_label, None);
        assert_eq!(r.fetched_at, 5);
        let r = VtReport::from_v3_json(HASH, br#"{"data":{"attributes":{}}}"#, 0).unwrap();
        assert_eq!(r.engines, 0);
    }

    #[test]
    fn not_json_or_wrong_shape_is_a_decode_error() {
        for body in [&b"<html>"[..], b"{}", b"[]", br#"{"data": 3}"#] {
            assert!(matches!(
                VtReport::from_v3_json(HASH, body, 0),
                Err(VtError::Decode(_))
            ));
        }
    }

    #[test]
    fn counts_come_from_results_when_stats_are_missing() {
        let body = br#"{"data":{"attributes":{"last_analysis_results":{
            "A":{"category":"malicious","engine_name":"A","result":"Trojan.X"},
            "B":{"category":"suspicious","engine_name":"B","result":null},
            "C":{"category":"undetected","engine_name":"C","result":null},
            "D":{"category":"type-unsupported","engine_name":"D","result":null}}}}}"#;
        let r = VtReport::from_v3_json(HASH, body, 0).unwrap();
        assert_eq!(
            (r.malicious, r.suspicious, r.undetected, r.engines),
            (1, 1, 1, 3)
        );
        assert!((r.score - 0.5).abs() < 1e-9);
        assert_eq!(r.detections.len(), 2);
        assert_eq!(r.detections[0].result.as_deref(), Some("Trojan.X"));
        assert_eq!(r.detections[1].result, None);
    }

    #[test]
    fn detections_are_capped_and_long_strings_cut() {
        let mut results = serde_json::Map::new();
        for i in 0..300 {
            results.insert(
                format!("E{i:03}"),
                serde_json::json!({"category": "malicious", "result": "x".repeat(5000)}),
            );
        }
        let body = serde_json::json!({"data": {"attributes": {
            "last_analysis_results": results,
            "meaningful_name": "é".repeat(1000),
        }}});
        let r = VtReport::from_v3_json(HASH, body.to_string().as_bytes(), 0).unwrap();
        assert_eq!(r.detections.len(), MAX_DETECTIONS);
        assert_eq!(r.detections[0].engine, "E000");
        assert!(r.detections[0].result.as_ref().unwrap().len() <= MAX_TEXT_BYTES);
        assert!(r.meaningful_name.unwrap().len() <= MAX_TEXT_BYTES);
        assert!((r.score - 1.0).abs() < 1e-9);
    }

    #[test]
    fn score_is_bounded() {
        assert_eq!(score(0, 0, 0), 0.0);
        assert_eq!(score(3, 2, 8), 0.5);
        assert_eq!(score(10, 0, 10), 1.0);
    }

    #[test]
    fn hashes_are_validated_and_lowercased() {
        assert_eq!(normalize_sha256(&HASH.to_uppercase()).unwrap(), HASH);
        for bad in [
            "",
            "../../etc/passwd",
            &HASH[..63],
            &format!("{HASH}0"),
            &HASH.replace('f', "g"),
        ] {
            assert_eq!(normalize_sha256(bad), Err(VtError::BadHash), "{bad}");
        }
        // 64 bytes but not ASCII hex.
        let multibyte = format!("é{}", &HASH[2..]);
        assert_eq!(normalize_sha256(&multibyte), Err(VtError::BadHash));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1000, 0, None), Duration::from_secs(1));
        assert_eq!(backoff(1000, 1, None), Duration::from_secs(2));
        assert_eq!(backoff(1000, 3, None), Duration::from_secs(8));
        assert_eq!(backoff(1000, 9, None), MAX_BACKOFF);
        assert_eq!(backoff(u64::MAX, 40, None), MAX_BACKOFF);
        assert_eq!(
            backoff(10, 0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(backoff(10, 0, Some(Duration::from_secs(3600))), MAX_BACKOFF);
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c: VtConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, VtConfig::default());
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!((c.cache_ttl_secs, c.not_found_ttl_secs), (604_800, 86_400));
        assert_eq!(
            (c.timeout_ms, c.max_retries, c.backoff_ms),
            (10_000, 3, 1_000)
        );
        let err = serde_json::from_str::<VtConfig>(r#"{"apikey": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("apikey"), "{err}");
    }

    #[test]
    fn debug_hides_the_key() {
        let c = VtConfig {
            api_key: Some("s3cr3t-key".into()),
            ..VtConfig::default()
        };
        let text = format!("{c:?}");
        assert!(!text.contains("s3cr3t-key"));
        assert!(text.contains(r#"api_key: Some("<redacted>")"#), "{text}");
        assert!(format!("{:?}", VtConfig::default()).contains("api_key: None"));
    }

    #[test]
    fn error_text_is_scrubbed_of_the_key() {
        assert_eq!(scrub("bad key k3y!", "k3y"), "bad key <redacted>!");
        assert_eq!(scrub("fine", "k3y"), "fine");
    }

    #[test]
    fn report_round_trips_and_cached_defaults_to_false() {
        let r = VtReport::not_found(HASH, 7);
        let mut json = serde_json::to_value(&r).unwrap();
        json.as_object_mut().unwrap().remove("cached");
        let back: VtReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[tokio::test]
    async fn memory_cache_expires_and_evicts_the_oldest() {
        let cache = MemoryCache::with_max_entries(2);
        let report = |h: char| VtReport::not_found(&h.to_string().repeat(64), 0);
        cache
            .put(&report('a'), Duration::from_secs(60))
            .await
            .unwrap();
        cache.put(&report('b'), Duration::ZERO).await.unwrap();
        assert!(
            cache.get(&"b".repeat(64)).await.unwrap().is_none(),
            "expired"
        );
        cache.put(&report('b'), Duration::ZERO).await.unwrap();
        // Full: the expired entry goes first.
        cache
            .put(&report('c'), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&"a".repeat(64)).await.unwrap().is_some());
        // Full again, nothing expired: the oldest goes.
        cache
            .put(&report('d'), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&"a".repeat(64)).await.unwrap().is_none());
        assert!(cache.get(&"c".repeat(64)).await.unwrap().is_some());
        assert!(cache.get(&"d".repeat(64)).await.unwrap().is_some());
        // Huge TTLs do not overflow.
        cache.put(&report('e'), Duration::MAX).await.unwrap();
    }

    #[tokio::test]
    async fn inflight_slots_are_removed_by_the_last_holder() {
        let map = Inflight::default();
        let first = InflightSlot::join(&map, HASH);
        let second = InflightSlot::join(&map, HASH);
        assert!(Arc::ptr_eq(&first.lock, &second.lock));
        let guard = first.lock.lock().await;
        assert!(second.lock.try_lock().is_err(), "the second lookup waits");
        drop(guard);
        drop(first);
        assert_eq!(map.lock().unwrap().len(), 1, "the second still holds it");
        drop(second);
        assert!(map.lock().unwrap().is_empty());
        // A cancelled lookup (its future dropped while waiting) cleans up too.
        let holder = InflightSlot::join(&map, HASH);
        let held = holder.lock.lock().await;
        let waiting = async {
            let slot = InflightSlot::join(&map, HASH);
            let _guard = slot.lock.lock().await;
        };
        assert!(
            tokio::time::timeout(Duration::from_millis(10), waiting)
                .await
                .is_err()
        );
        assert_eq!(Arc::strong_count(&holder.lock), 2, "map and holder only");
        drop(held);
        drop(holder);
        assert!(map.lock().unwrap().is_empty());
    }

    #[test]
    fn bad_settings_are_refused_before_building_a_client() {
        let cache: Arc<dyn VtCache> = Arc::new(MemoryCache::new());
        for config in [
            VtConfig {
                base_url: "ftp://example.com".into(),
                ..VtConfig::default()
            },
            VtConfig {
                base_url: "not a url".into(),
                ..VtConfig::default()
            },
            VtConfig {
                base_url: "https://user:pw@example.com".into(),
                ..VtConfig::default()
            },
            VtConfig {
                timeout_ms: 0,
                ..VtConfig::default()
            },
            VtConfig {
                max_retries: 11,
                ..VtConfig::default()
            },
        ] {
            assert!(matches!(
                VirusTotal::new(config, Arc::clone(&cache)),
                Err(VtError::Config(_))
            ));
        }
    }

    #[test]
    fn internal_base_urls_are_refused_unless_allowed() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cache: Arc<dyn VtCache> = Arc::new(MemoryCache::new());
        let with = |base: &str, allow_internal: bool, list: &[&str]| {
            VirusTotal::new(
                VtConfig {
                    base_url: base.into(),
                    allow_internal,
                    internal_allow: list.iter().map(|s| s.to_string()).collect(),
                    ..VtConfig::default()
                },
                Arc::clone(&cache),
            )
        };
        for base in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::ffff:127.0.0.1]",
            "http://10.1.2.3",
            "http://169.254.169.254",
        ] {
            let Err(VtError::Config(m)) = with(base, false, &[]) else {
                panic!("{base} accepted");
            };
            assert!(m.contains(base), "{m}");
            assert!(m.contains("[virustotal] internal_allow"), "{m}");
        }
        with("http://127.0.0.1:8080", true, &[]).unwrap();
        with("http://10.1.2.3", false, &["10.1.2.0/24"]).unwrap();
        with(DEFAULT_BASE_URL, false, &[]).unwrap();
        let Err(VtError::Config(m)) = with("http://169.254.169.254", true, &[]) else {
            panic!("metadata accepted");
        };
        assert!(m.contains("cloud metadata"), "{m}");
    }

    #[tokio::test]
    async fn a_base_url_resolving_to_an_internal_address_is_refused_without_retries() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let fixed: Fixed = Arc::new(vec![(
            "vt.example.org".into(),
            "127.0.0.1".parse().unwrap(),
        )]);
        let vt = VirusTotal::build(
            VtConfig {
                base_url: "http://vt.example.org:9".into(),
                api_key: Some("k".into()),
                max_retries: 3,
                backoff_ms: 1,
                ..VtConfig::default()
            },
            Arc::new(MemoryCache::new()),
            fixed,
        )
        .unwrap();
        let err = vt.lookup(HASH, None).await.unwrap_err();
        let VtError::Refused(m) = &err else {
            panic!("{err:?}");
        };
        assert!(
            m.contains("`vt.example.org` resolves to 127.0.0.1")
                && m.contains("[virustotal] allow_internal = true"),
            "{m}"
        );
        assert_eq!(vt.stats().requests, 1, "a refusal is not retried");
    }
}
