//! Sigma's regression logs (`$VIGIL_SHARED_DATA/sigma/regression_data/**/*.evtx`, each next to
//! the JSON of the event its rule must match): every log reads without damage, each case's
//! event is among its log's records, and damaged copies of the logs (truncated, bytes flipped)
//! read without a panic or a hang.
//!
//! Skipped with a message when `VIGIL_SHARED_DATA` is unset; a failure when `VIGIL_REQUIRE_DATA`
//! is set and the data is missing.

use std::path::{Path, PathBuf};

use serde_json::Value;
use vigil_evtx::{EVTX_CHUNK_SIZE, EVTX_HEADER_SIZE, EvtxReader, EvtxRecord, find_evtx_files};

fn regression_dir() -> Option<PathBuf> {
    let require = std::env::var_os("VIGIL_REQUIRE_DATA").is_some();
    let Some(shared) = std::env::var_os("VIGIL_SHARED_DATA") else {
        assert!(
            !require,
            "VIGIL_REQUIRE_DATA is set but VIGIL_SHARED_DATA is not"
        );
        eprintln!("skipped: set VIGIL_SHARED_DATA to the shared data folder to run this test");
        return None;
    };
    let dir = PathBuf::from(shared).join("sigma/regression_data");
    if !dir.is_dir() {
        assert!(
            !require,
            "{} is missing (VIGIL_REQUIRE_DATA is set)",
            dir.display()
        );
        eprintln!("skipped: {} is missing", dir.display());
        return None;
    }
    Some(dir)
}

fn logs(dir: &Path) -> Vec<PathBuf> {
    let logs = find_evtx_files(&[dir.to_path_buf()]).unwrap();
    assert!(logs.len() >= 100, "only {} .evtx files", logs.len());
    logs
}

/// The events of a case's `.json`: one JSON document, or several one after the other.
fn expected_events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(|v| v.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// `value` with the two differences between Sigma's regression JSON and evtx 0.15's output
/// evened out: the regression JSON has strings' trailing whitespace trimmed (Windows keeps it,
/// in some command lines), and was made by an older evtx that wrote GUIDs uppercase without
/// braces (evtx 0.15 writes them as Windows does, lowercase in braces).
fn normalized(value: &Value) -> Value {
    match value {
        Value::String(s) => {
            let s = s.trim_end();
            let bare = s.trim_start_matches('{').trim_end_matches('}');
            if is_guid(bare) {
                Value::String(bare.to_ascii_uppercase())
            } else {
                Value::String(s.to_owned())
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn lowercase(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.to_lowercase()),
        Value::Array(items) => Value::Array(items.iter().map(lowercase).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), lowercase(v))).collect())
        }
        other => other.clone(),
    }
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn read(path: &Path) -> (Vec<EvtxRecord>, vigil_evtx::ReadStats) {
    let mut reader = EvtxReader::open(path).unwrap();
    let mut records = Vec::new();
    for item in reader.records() {
        match item {
            Ok(record) => records.push(record),
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    (records, reader.stats())
}

#[test]
fn every_regression_log_reads_and_holds_its_case_event() {
    let Some(dir) = regression_dir() else {
        return;
    };
    let (mut files, mut records, mut cases, mut exact, mut normalized_only) = (0, 0, 0, 0, 0);
    let mut renumbered = 0;
    let mut case_only = Vec::new();
    let mut failures = Vec::new();
    for path in logs(&dir) {
        let (read, stats) = read(&path);
        assert_eq!(
            stats.bad_records + stats.bad_chunks,
            0,
            "{}",
            path.display()
        );
        assert!(!read.is_empty(), "{}: no records", path.display());
        files += 1;
        records += read.len();
        for record in &read {
            assert!(
                chrono::DateTime::parse_from_rfc3339(&record.timestamp).is_ok(),
                "{}: {}",
                path.display(),
                record.timestamp
            );
            // A log saved from a query ("Save Filtered Log File As") numbers its records
            // afresh in their headers; `System.EventRecordID` keeps the original ID.
            if record.data["Event"]["System"]["EventRecordID"] != record.record_id {
                renumbered += 1;
            }
        }
        let json = path.with_extension("json");
        if !json.exists() {
            continue;
        }
        for expected in expected_events(&json) {
            cases += 1;
            let event = &expected["Event"];
            let id = &event["System"]["EventRecordID"];
            let key = if event.get("EventData").is_some() {
                "EventData"
            } else {
                "UserData"
            };
            let candidates: Vec<&EvtxRecord> = read
                .iter()
                .filter(|r| &r.data["Event"]["System"]["EventRecordID"] == id)
                .collect();
            if candidates
                .iter()
                .any(|r| r.data["Event"][key] == event[key])
            {
                exact += 1;
            } else if candidates
                .iter()
                .any(|r| normalized(&r.data["Event"][key]) == normalized(&event[key]))
            {
                normalized_only += 1;
            } else if candidates.iter().any(|r| {
                lowercase(&normalized(&r.data["Event"][key])) == lowercase(&normalized(&event[key]))
            }) {
                // The case's JSON was edited by hand: one of them differs only in letter case
                // (`Explorer.exe` where the log says `Explorer.EXE`).
                println!(
                    "{}: record {id} equal only ignoring letter case",
                    path.display()
                );
                case_only.push(path.display().to_string());
            } else {
                failures.push(format!(
                    "{}: record {id} ({} candidates) has no {key} equal to the case's",
                    path.display(),
                    candidates.len()
                ));
            }
        }
    }
    println!(
        "{files} regression logs, {records} records ({renumbered} whose header ID is not their \
         System.EventRecordID); {cases} case events found: {exact} equal, {normalized_only} \
         equal once trailing whitespace and GUID case/braces are evened out, {} equal only \
         ignoring letter case",
        case_only.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(case_only.len() <= 2, "{case_only:?}");
    assert!(cases >= 100, "only {cases} case events");
}

/// Damaged copies of each regression log: cut inside the header, inside the first chunk and
/// mid-record, and with bytes flipped in the chunk (fixed seeds). Each reads to its end without
/// a panic, and keeps the records before the damage.
#[test]
fn damaged_regression_logs_read_without_panic() {
    let Some(dir) = regression_dir() else {
        return;
    };
    let (mut variants, mut kept, mut errors) = (0usize, 0usize, 0usize);
    for path in logs(&dir) {
        let bytes = std::fs::read(&path).unwrap();
        let (intact, _) = read(&path);
        let free_space = {
            let at = EVTX_HEADER_SIZE + 48;
            u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
        };
        let first_record_end = {
            let at = EVTX_HEADER_SIZE + 512 + 4;
            512 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
        };
        // Inside the header: an error up front.
        for cut in [10, 2000] {
            assert!(EvtxReader::from_bytes(bytes[..cut].to_vec()).is_err());
        }
        // Inside the first chunk's header, mid-record (the first), past the first record,
        // mid-way through the records, and in the chunk's slack.
        let cuts = [
            EVTX_HEADER_SIZE + 100,
            EVTX_HEADER_SIZE + 512 + 40,
            EVTX_HEADER_SIZE + first_record_end + 8,
            EVTX_HEADER_SIZE + (512 + free_space) / 2,
            EVTX_HEADER_SIZE + (free_space + EVTX_CHUNK_SIZE) / 2,
        ];
        let mut damaged: Vec<(String, Vec<u8>)> = cuts
            .iter()
            .filter(|&&cut| cut < bytes.len())
            .map(|&cut| (format!("cut at {cut}"), bytes[..cut].to_vec()))
            .collect();
        for seed in 1..=4u64 {
            let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ bytes.len() as u64;
            let mut copy = bytes.clone();
            for _ in 0..(seed * 3) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let offset = EVTX_HEADER_SIZE + (state as usize % free_space.max(513));
                copy[offset] ^= 1 << (state >> 60 & 7);
            }
            damaged.push((format!("seed {seed}"), copy));
        }
        for (what, copy) in damaged {
            let mut reader = EvtxReader::from_bytes(copy).unwrap();
            let mut read = Vec::new();
            for item in reader.records() {
                match item {
                    Ok(record) => read.push(record.record_id),
                    Err(_) => errors += 1,
                }
            }
            variants += 1;
            kept += read.len();
            assert!(
                read.len() <= intact.len() + 64,
                "{} {what}: {} records",
                path.display(),
                read.len()
            );
            // Cut after the first record: it is still there.
            if what.starts_with("cut") && what != format!("cut at {}", cuts[0]) {
                let cut: usize = what[7..].parse().unwrap();
                if cut >= cuts[2] {
                    assert_eq!(
                        read.first(),
                        intact.first().map(|r| &r.record_id),
                        "{} {what}",
                        path.display()
                    );
                }
            }
        }
    }
    println!("{variants} damaged copies read: {kept} records kept, {errors} errors");
}
