//! The VirusTotal client against a local fake that speaks VirusTotal's v3 wire format
//! (`GET /api/v3/files/{id}` with `x-apikey`, v3 file objects, v3 error objects).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vigil_file::vt::{
    MAX_BODY_BYTES, MemoryCache, VirusTotal, VtCache, VtConfig, VtError, VtReport,
};

/// EICAR's SHA-256: the fake knows it.
const KNOWN: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";
/// A hash the fake answers 404 `NotFoundError` for.
const UNKNOWN: &str = "1111111111111111111111111111111111111111111111111111111111111111";
/// 429 `QuotaExceededError` while the fake has failures left, then the EICAR report.
const QUOTA: &str = "2222222222222222222222222222222222222222222222222222222222222222";
/// 503 `TransientError` while the fake has failures left, then the EICAR report.
const FLAKY: &str = "3333333333333333333333333333333333333333333333333333333333333333";
/// 429 with `Retry-After: 1` while the fake has failures left, then the EICAR report.
const RETRY_AFTER: &str = "4444444444444444444444444444444444444444444444444444444444444444";
/// Answers after 5 s.
const SLOW: &str = "5555555555555555555555555555555555555555555555555555555555555555";
/// Answers after 300 ms.
const SLOWISH: &str = "6666666666666666666666666666666666666666666666666666666666666666";
/// Answers with a body over the client's cap.
const BIG: &str = "7777777777777777777777777777777777777777777777777777777777777777";

const SERVER_KEY: &str = "server-key-5f0e2b7c";
const CALLER_KEY: &str = "caller-key-9a41d3e8";
const WRONG_KEY: &str = "wrong-key-c0ffee77";

// ---------------------------------------------------------------------------------------
// The fake VirusTotal.

#[derive(Default)]
struct Fake {
    /// Requests received.
    requests: AtomicUsize,
    /// Error answers left for QUOTA, FLAKY and RETRY_AFTER.
    failures_left: AtomicUsize,
    /// The `x-apikey` of each request.
    keys_seen: Mutex<Vec<String>>,
}

impl Fake {
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn keys_seen(&self) -> Vec<String> {
        self.keys_seen.lock().unwrap().clone()
    }

    fn take_failure(&self) -> bool {
        self.failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A v3 error object, as VirusTotal sends them.
fn vt_error(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap();
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn engine(name: &str, category: &str, result: Option<&str>) -> serde_json::Value {
    json!({
        "category": category,
        "engine_name": name,
        "engine_version": "1.0.0.1",
        "result": result,
        "method": "blacklist",
        "engine_update": "20240610"
    })
}

/// A v3 file object like VirusTotal's for the EICAR test file (fewer engines).
fn eicar_report(id: &str) -> serde_json::Value {
    json!({
        "data": {
            "id": id,
            "type": "file",
            "links": {"self": format!("https://www.virustotal.com/api/v3/files/{id}")},
            "attributes": {
                "type_description": "DOS COM",
                "type_tag": "com",
                "tags": ["com", "attachment", "via-tor", "known-distributor"],
                "names": ["eicar.com", "eicar.com.txt", "eicar_com.zip"],
                "meaningful_name": "eicar.com",
                "md5": "44d88612fea8a8f36de82e1278abb02f",
                "sha1": "3395856ce81f2b7382dee72602f798b642f14140",
                "sha256": id,
                "size": 68,
                "reputation": 3627,
                "times_submitted": 1_245_000,
                "first_submission_date": 1_148_301_722,
                "last_submission_date": 1_718_010_000,
                "last_analysis_date": 1_718_035_200,
                "last_analysis_stats": {
                    "malicious": 5,
                    "suspicious": 1,
                    "undetected": 1,
                    "harmless": 1,
                    "timeout": 1,
                    "confirmed-timeout": 0,
                    "failure": 0,
                    "type-unsupported": 1
                },
                "last_analysis_results": {
                    "Bkav": engine("Bkav", "malicious", Some("W32.EicarTest.Trojan")),
                    "ESET-NOD32": engine("ESET-NOD32", "malicious", Some("Eicar test file")),
                    "Kaspersky": engine("Kaspersky", "malicious", Some("EICAR-Test-File")),
                    "Microsoft": engine("Microsoft", "malicious", Some("Virus:DOS/EICAR_Test_File")),
                    "Sophos": engine("Sophos", "malicious", Some("EICAR-AV-Test")),
                    "Jiangmin": engine("Jiangmin", "suspicious", Some("Suspicious.Eicar")),
                    "Zoner": engine("Zoner", "undetected", None),
                    "Webroot": engine("Webroot", "harmless", None),
                    "Avast-Mobile": engine("Avast-Mobile", "timeout", None),
                    "SymantecMobileInsight": engine("SymantecMobileInsight", "type-unsupported", None)
                },
                "popular_threat_classification": {
                    "suggested_threat_label": "virus.eicar/test",
                    "popular_threat_category": [{"count": 40, "value": "virus"}],
                    "popular_threat_name": [{"count": 31, "value": "eicar"}, {"count": 12, "value": "test"}]
                },
                "total_votes": {"harmless": 120, "malicious": 310}
            }
        }
    })
}

async fn file(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    let key = headers
        .get("x-apikey")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    fake.keys_seen.lock().unwrap().push(key.clone());
    if key != SERVER_KEY && key != CALLER_KEY {
        return vt_error(401, "WrongCredentialsError", "Wrong API key");
    }
    match id.as_str() {
        KNOWN => Json(eicar_report(&id)).into_response(),
        QUOTA if fake.take_failure() => vt_error(429, "QuotaExceededError", "Quota exceeded"),
        FLAKY if fake.take_failure() => vt_error(503, "TransientError", "Please retry later"),
        RETRY_AFTER if fake.take_failure() => {
            let mut response = vt_error(429, "TooManyRequestsError", "Too many requests");
            response
                .headers_mut()
                .insert("retry-after", "1".parse().unwrap());
            response
        }
        QUOTA | FLAKY | RETRY_AFTER => Json(eicar_report(&id)).into_response(),
        SLOW => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Json(eicar_report(&id)).into_response()
        }
        SLOWISH => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Json(eicar_report(&id)).into_response()
        }
        BIG => {
            let mut body = br#"{"data":{"attributes":{"meaningful_name":""#.to_vec();
            body.resize(MAX_BODY_BYTES + 1024, b'x');
            body.extend_from_slice(br#""}}}"#);
            ([("content-type", "application/json")], body).into_response()
        }
        _ => vt_error(404, "NotFoundError", &format!("File \"{id}\" not found")),
    }
}

/// Starts a fake with `failures` error answers for QUOTA, FLAKY and RETRY_AFTER; returns
/// its base URL.
async fn start_fake(failures: usize) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    fake.failures_left.store(failures, Ordering::SeqCst);
    let app = Router::new()
        .route("/api/v3/files/{id}", get(file))
        .with_state(Arc::clone(&fake));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), fake)
}

/// A server that answers one request with a chunked body (no `Content-Length`) of 16 MiB.
async fn start_chunked_flood() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if socket.write_all(head).await.is_err() {
            return;
        }
        let mut chunk = b"10000\r\n".to_vec();
        chunk.resize(chunk.len() + 0x10000, b' ');
        chunk.extend_from_slice(b"\r\n");
        for _ in 0..256 {
            if socket.write_all(&chunk).await.is_err() {
                return; // The client hung up, as it should.
            }
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
    });
    format!("http://{addr}")
}

// ---------------------------------------------------------------------------------------
// The client.

/// reqwest is built with `rustls-no-provider`, and panics when a client is built without a
/// rustls crypto provider, even for plain http. The binary installs ring; tests must too.
fn install_tls_provider() {
    // reqwest with `rustls-no-provider` needs one installed, even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn config(base_url: &str, api_key: Option<&str>) -> VtConfig {
    VtConfig {
        base_url: base_url.to_string(),
        api_key: api_key.map(str::to_string),
        timeout_ms: 2_000,
        max_retries: 3,
        backoff_ms: 10,
        // The fake VirusTotal is on 127.0.0.1.
        allow_internal: true,
        ..VtConfig::default()
    }
}

fn client_with(config: VtConfig, cache: Arc<dyn VtCache>) -> VirusTotal {
    install_tls_provider();
    match VirusTotal::new(config, cache) {
        Ok(vt) => vt,
        Err(e) => panic!("{e} (see install_tls_provider in this file)"),
    }
}

fn client(config: VtConfig) -> (VirusTotal, Arc<MemoryCache>) {
    let cache = Arc::new(MemoryCache::new());
    (client_with(config, cache.clone()), cache)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn assert_eicar(report: &VtReport, sha256: &str) {
    assert_eq!(report.sha256, sha256);
    assert!(report.found);
    assert_eq!(
        (
            report.malicious,
            report.suspicious,
            report.harmless,
            report.undetected
        ),
        (5, 1, 1, 1)
    );
    // Timeout and type-unsupported engines gave no verdict.
    assert_eq!(report.engines, 8);
    assert!((report.score - 5.5 / 8.0).abs() < 1e-9, "{}", report.score);
    assert_eq!(report.threat_label.as_deref(), Some("virus.eicar/test"));
    assert_eq!(report.reputation, Some(3627));
    assert_eq!(report.last_analysis_date, Some(1_718_035_200));
    assert_eq!(report.meaningful_name.as_deref(), Some("eicar.com"));
    assert_eq!(report.type_description.as_deref(), Some("DOS COM"));
}

#[tokio::test]
async fn known_hash_is_parsed_and_scored() {
    let (base, fake) = start_fake(0).await;
    let (vt, _) = client(config(&base, Some(SERVER_KEY)));
    let report = vt.lookup(KNOWN, None).await.unwrap();
    assert_eicar(&report, KNOWN);
    assert!(!report.cached);
    assert!((report.fetched_at - now()).abs() < 60);
    let engines: Vec<(&str, &str, Option<&str>)> = report
        .detections
        .iter()
        .map(|d| (d.engine.as_str(), d.category.as_str(), d.result.as_deref()))
        .collect();
    assert_eq!(
        engines,
        [
            ("Bkav", "malicious", Some("W32.EicarTest.Trojan")),
            ("ESET-NOD32", "malicious", Some("Eicar test file")),
            ("Jiangmin", "suspicious", Some("Suspicious.Eicar")),
            ("Kaspersky", "malicious", Some("EICAR-Test-File")),
            ("Microsoft", "malicious", Some("Virus:DOS/EICAR_Test_File")),
            ("Sophos", "malicious", Some("EICAR-AV-Test")),
        ]
    );
    assert_eq!(fake.requests(), 1);
    assert_eq!(fake.keys_seen(), [SERVER_KEY]);
}

#[tokio::test]
async fn second_lookup_is_served_from_the_cache_without_request_or_key() {
    let (base, fake) = start_fake(0).await;
    // No configured key: the first lookup brings one, the later ones need none.
    let (vt, cache) = client(config(&base, None));
    let first = vt.lookup(KNOWN, Some(CALLER_KEY)).await.unwrap();
    assert!(!first.cached);
    assert_eq!(cache.len(), 1);

    let second = vt.lookup(KNOWN, None).await.unwrap();
    assert!(second.cached);
    assert_eicar(&second, KNOWN);
    assert_eq!(second.detections, first.detections);
    assert_eq!(second.fetched_at, first.fetched_at);

    // The cache is keyed by the lowercase hash.
    let upper = vt.lookup(&KNOWN.to_uppercase(), None).await.unwrap();
    assert!(upper.cached);
    assert_eq!(upper.sha256, KNOWN);

    assert_eq!(fake.requests(), 1);
    let stats = vt.stats();
    assert_eq!(
        (
            stats.lookups,
            stats.cache_hits,
            stats.cache_misses,
            stats.requests,
            stats.errors
        ),
        (3, 2, 1, 1, 0)
    );
}

#[tokio::test]
async fn not_found_is_cached_as_not_found() {
    let (base, fake) = start_fake(0).await;
    let (vt, _) = client(config(&base, Some(SERVER_KEY)));
    let report = vt.lookup(UNKNOWN, None).await.unwrap();
    assert!(!report.found);
    assert!(!report.cached);
    assert_eq!((report.engines, report.score), (0, 0.0));
    assert!(report.detections.is_empty());
    assert_eq!(report.threat_label, None);

    let again = vt.lookup(UNKNOWN, None).await.unwrap();
    assert!(!again.found);
    assert!(again.cached);
    assert_eq!(fake.requests(), 1);
}

#[tokio::test]
async fn not_found_expires_sooner_than_found() {
    let (base, fake) = start_fake(0).await;
    let (vt, _) = client(VtConfig {
        not_found_ttl_secs: 0,
        ..config(&base, Some(SERVER_KEY))
    });
    assert!(!vt.lookup(UNKNOWN, None).await.unwrap().cached);
    assert!(!vt.lookup(UNKNOWN, None).await.unwrap().cached);
    assert!(!vt.lookup(KNOWN, None).await.unwrap().cached);
    assert!(vt.lookup(KNOWN, None).await.unwrap().cached);
    assert_eq!(fake.requests(), 3);
}

#[tokio::test]
async fn wrong_key_is_bad_key_not_retried_not_cached_and_not_shown() {
    let (base, fake) = start_fake(0).await;
    let (vt, _) = client(config(&base, Some(SERVER_KEY)));
    let err = vt.lookup(KNOWN, Some(WRONG_KEY)).await.unwrap_err();
    assert_eq!(err, VtError::BadKey);
    assert_eq!(fake.requests(), 1);
    assert!(!err.to_string().contains(WRONG_KEY), "{err}");
    assert!(!format!("{err:?}").contains(WRONG_KEY));
    assert_eq!(vt.stats().errors, 1);

    // Nothing was cached: the right key gets the report.
    let report = vt.lookup(KNOWN, None).await.unwrap();
    assert!(!report.cached);
    assert_eq!(fake.requests(), 2);
    assert_eq!(fake.keys_seen(), [WRONG_KEY, SERVER_KEY]);
}

#[tokio::test]
async fn key_that_cannot_be_a_header_is_bad_key_without_request() {
    let (base, fake) = start_fake(0).await;
    let (vt, _) = client(config(&base, None));
    let err = vt
        .lookup(KNOWN, Some("abc\r\nx-evil: 1"))
        .await
        .unwrap_err();
    assert_eq!(err, VtError::BadKey);
    assert_eq!(fake.requests(), 0);
}

#[tokio::test]
async fn quota_twice_then_success_with_retries() {
    let (base, fake) = start_fake(2).await;
    let (vt, _) = client(config(&base, Some(SERVER_KEY)));
    let report = vt.lookup(QUOTA, None).await.unwrap();
    assert_eicar(&report, QUOTA);
    assert_eq!(fake.requests(), 3);
    assert_eq!(vt.stats().requests, 3);
}

#[tokio::test]
async fn quota_beyond_max_retries_is_a_quota_error() {
    let (base, fake) = start_fake(100).await;
    let (vt, _) = client(VtConfig {
        max_retries: 2,
        ..config(&base, Some(SERVER_KEY))
    });
    let err = vt.lookup(QUOTA, None).await.unwrap_err();
    assert_eq!(err, VtError::Quota { retries: 2 });
    assert!(err.to_string().contains("quota"), "{err}");
    assert_eq!(fake.requests(), 3);
    // Failures are not cached.
    assert!(vt.lookup(QUOTA, None).await.is_err());
    assert_eq!(fake.requests(), 6);
}

#[tokio::test]
async fn zero_retries_means_one_request() {
    let (base, fake) = start_fake(100).await;
    let (vt, _) = client(VtConfig {
        max_retries: 0,
        ..config(&base, Some(SERVER_KEY))
    });
    assert_eq!(
        vt.lookup(QUOTA, None).await.unwrap_err(),
        VtError::Quota { retries: 0 }
    );
    assert_eq!(fake.requests(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let (base, fake) = start_fake(1).await;
    let (vt, _) = client(config(&base, Some(SERVER_KEY)));
    assert_eicar(&vt.lookup(FLAKY, None).await.unwrap(), FLAKY);
    assert_eq!(fake.requests(), 2);

    let (base, fake) = start_fake(100).await;
    let (vt, _) = client(VtConfig {
        max_retries: 1,
        ..config(&base, Some(SERVER_KEY))
    });
    let err = vt.lookup(FLAKY, None).await.unwrap_err();
    assert_eq!(
        err,
        VtError::Http {
            status: 503,
            code: "TransientError".into(),
            message: "Please retry later".into()
        }
    );
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (base, fake) = start_fake(1).await;
    let (vt, _) = client(config(&base, Some(SERVER_KEY)));
    let started = Instant::now();
    assert_eicar(&vt.lookup(RETRY_AFTER, None).await.unwrap(), RETRY_AFTER);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn slow_answer_times_out_after_retries() {
    let (base, fake) = start_fake(0).await;
    let (vt, _) = client(VtConfig {
        timeout_ms: 200,
        max_retries: 1,
        ..config(&base, Some(SERVER_KEY))
    });
    let started = Instant::now();
    let err = vt.lookup(SLOW, None).await.unwrap_err();
    assert_eq!(err, VtError::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn no_key_at_all_is_refused_without_request() {
    let (base, fake) = start_fake(0).await;
    let (vt, _) = client(config(&base, None));
    for caller_key in [None, Some(""), Some("   ")] {
        let err = vt.lookup(KNOWN, caller_key).await.unwrap_err();
        assert_eq!(err, VtError::NoKey);
        assert!(
            err.to_string().contains("VIGIL_VIRUSTOTAL__API_KEY"),
            "{err}"
        );
    }
    // An empty configured key is no key either.
    let (vt, _) = client(config(&base, Some("")));
    assert_eq!(vt.lookup(KNOWN, None).await.unwrap_err(), VtError::NoKey);
    assert_eq!(fake.requests(), 0);
}

#[tokio::test]
async fn caller_key_takes_precedence_over_the_configured_key() {
    let (base, fake) = start_fake(0).await;
    let (vt, _) = client(config(&base, Some(SERVER_KEY)));
    vt.lookup(KNOWN, Some(CALLER_KEY)).await.unwrap();
    vt.lookup(UNKNOWN, None).await.unwrap();
    vt.lookup(QUOTA, Some("")).await.unwrap();
    assert_eq!(fake.keys_seen(), [CALLER_KEY, SERVER_KEY, SERVER_KEY]);
}

#[tokio::test]
async fn bad_hashes_are_refused_without_request() {
    let (base, fake) = start_fake(0).await;
    let (vt, _) = client(config(&base, Some(SERVER_KEY)));
    let traversal = format!("../../etc/passwd{}", &KNOWN[16..]);
    assert_eq!(traversal.len(), 64);
    for bad in [
        "../../etc/passwd",
        traversal.as_str(),
        &KNOWN[..63],
        &format!("{KNOWN}0"),
        &KNOWN.replace('f', "z"),
        &format!("{}?x=1", &KNOWN[..60]),
        "",
    ] {
        assert_eq!(
            vt.lookup(bad, None).await.unwrap_err(),
            VtError::BadHash,
            "{bad}"
        );
    }
    assert_eq!(fake.requests(), 0);
    let stats = vt.stats();
    assert_eq!((stats.cache_hits, stats.cache_misses), (0, 0));
}

#[tokio::test]
async fn debug_output_hides_the_key() {
    let (base, _) = start_fake(0).await;
    let config = config(&base, Some(SERVER_KEY));
    let text = format!("{config:?}");
    assert!(!text.contains(SERVER_KEY), "{text}");
    assert!(text.contains(r#"api_key: Some("<redacted>")"#), "{text}");
    let (vt, _) = client(config);
    assert!(!format!("{vt:?}").contains(SERVER_KEY));
}

#[tokio::test]
async fn oversized_body_is_a_decode_error() {
    let (base, fake) = start_fake(0).await;
    let (vt, cache) = client(config(&base, Some(SERVER_KEY)));
    let err = vt.lookup(BIG, None).await.unwrap_err();
    assert!(matches!(err, VtError::Decode(_)), "{err:?}");
    assert_eq!(fake.requests(), 1, "not retried");
    assert!(cache.is_empty());

    // Without Content-Length, the cap applies while reading.
    let base = start_chunked_flood().await;
    let (vt, _) = client(config(&base, Some(SERVER_KEY)));
    let err = vt.lookup(KNOWN, None).await.unwrap_err();
    assert!(matches!(err, VtError::Decode(_)), "{err:?}");
}

#[tokio::test]
async fn concurrent_lookups_of_one_hash_share_one_request() {
    let (base, fake) = start_fake(0).await;
    let (vt, _) = client(config(&base, Some(SERVER_KEY)));
    let vt = Arc::new(vt);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let vt = Arc::clone(&vt);
            tokio::spawn(async move { vt.lookup(SLOWISH, None).await })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        let report = task.await.unwrap().unwrap();
        assert_eicar(&report, SLOWISH);
        fresh += usize::from(!report.cached);
    }
    assert_eq!(fresh, 1);
    assert_eq!(fake.requests(), 1);
}

/// A cache that always fails.
struct BrokenCache;

#[async_trait::async_trait]
impl VtCache for BrokenCache {
    async fn get(&self, _: &str) -> Result<Option<VtReport>, String> {
        Err("database is locked".into())
    }
    async fn put(&self, _: &VtReport, _: Duration) -> Result<(), String> {
        Err("disk full".into())
    }
}

#[tokio::test]
async fn cache_failures_do_not_fail_the_lookup() {
    let (base, fake) = start_fake(0).await;
    let vt = client_with(config(&base, Some(SERVER_KEY)), Arc::new(BrokenCache));
    assert_eicar(&vt.lookup(KNOWN, None).await.unwrap(), KNOWN);
    assert!(!vt.lookup(KNOWN, None).await.unwrap().cached);
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn other_client_errors_are_http_errors_and_unreachable_is_network() {
    // A base URL with a path prefix the fake does not serve: 404 without NotFoundError
    // must not be cached as "not found".
    let (base, fake) = start_fake(0).await;
    let (vt, cache) = client(config(&format!("{base}/proxy/"), Some(SERVER_KEY)));
    let err = vt.lookup(KNOWN, None).await.unwrap_err();
    assert!(matches!(err, VtError::Http { status: 404, .. }), "{err:?}");
    assert!(cache.is_empty());
    assert_eq!(fake.requests(), 0);

    // Nothing listens there (the port was just freed).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (vt, _) = client(VtConfig {
        max_retries: 1,
        ..config(&format!("http://{addr}"), Some(SERVER_KEY))
    });
    let err = vt.lookup(KNOWN, None).await.unwrap_err();
    assert!(matches!(err, VtError::Network(_)), "{err:?}");
    assert!(!err.to_string().contains(SERVER_KEY));
    assert_eq!(vt.stats().requests, 2);
}
