//! Always-on tests on EVTX files built by `vigil_evtx::synth` (no stored logs): the layout,
//! file order, and damaged, empty and foreign inputs.

use std::path::PathBuf;

use serde_json::json;
use vigil_evtx::synth::{SynthEvent, evtx_file, evtx_file_chunked, file_header};
use vigil_evtx::{
    EVTX_CHUNK_SIZE, EVTX_HEADER_SIZE, EvtxError, EvtxReader, EvtxRecord, MAX_EVTX_BYTES,
    ReadStats, find_evtx_files, fuzz_bytes,
};

/// `count` events, IDs from 1, alternating a Sysmon-like process creation and a classic
/// service event whose EventID has Qualifiers.
fn events(count: u64) -> Vec<SynthEvent> {
    (1..=count)
        .map(|id| {
            if id % 2 == 1 {
                SynthEvent::new(id, 1)
                    .with_data("Image", r"C:\Windows\System32\cmd.exe")
                    .with_data("CommandLine", format!("cmd.exe /c echo {id} ").as_str())
                    .with_data("ProcessId", id as u32)
            } else {
                SynthEvent::new(id, 7036)
                    .with_qualifiers(16384)
                    .with_data("param1", "Print Spooler")
                    .with_data("param2", "running")
            }
        })
        .collect()
}

/// Every item of `reader`: the records, and the errors as text.
fn read_all(reader: &mut EvtxReader) -> (Vec<EvtxRecord>, Vec<String>) {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for item in reader.records() {
        match item {
            Ok(record) => records.push(record),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let stats = reader.stats();
    assert_eq!(stats.records, records.len() as u64);
    assert_eq!(stats.bad_records + stats.bad_chunks, errors.len() as u64);
    (records, errors)
}

fn ids(records: &[EvtxRecord]) -> Vec<u64> {
    records.iter().map(|r| r.record_id).collect()
}

/// A deterministic xorshift64 generator, for damage that is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn records_come_in_file_order_with_their_timestamps() {
    let file = evtx_file(&events(2000));
    assert!(file.len() > EVTX_HEADER_SIZE + 3 * EVTX_CHUNK_SIZE);
    let mut reader = EvtxReader::from_bytes(file).unwrap();
    let (records, errors) = read_all(&mut reader);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(ids(&records), (1..=2000).collect::<Vec<_>>());
    assert_eq!(
        reader.stats(),
        ReadStats {
            records: 2000,
            ..ReadStats::default()
        }
    );
    let first = &records[0];
    assert_eq!(first.timestamp, "2024-01-01T00:00:01.0000000Z");
    assert_eq!(
        first.data["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"],
        first.timestamp
    );
    assert_eq!(
        first.data["Event"]["EventData"],
        json!({
            "Image": r"C:\Windows\System32\cmd.exe",
            "CommandLine": "cmd.exe /c echo 1 ",
            "ProcessId": 1
        })
    );
    // Reading again starts over and counts afresh.
    assert_eq!(reader.records().count(), 2000);
    assert_eq!(reader.stats().records, 2000);
}

#[test]
fn event_id_with_qualifiers_is_kept_as_evtx_emits_it() {
    let mut reader = EvtxReader::from_bytes(evtx_file(&events(2))).unwrap();
    let (records, _) = read_all(&mut reader);
    let [plain, qualified] = records.as_slice() else {
        panic!("{} records", records.len());
    };
    assert_eq!(plain.data["Event"]["System"]["EventID"], json!(1));
    assert_eq!(plain.event_id(), Some(1));
    assert_eq!(
        qualified.data["Event"]["System"]["EventID"],
        json!({"#attributes": {"Qualifiers": 16384}, "#text": 7036})
    );
    assert_eq!(qualified.event_id(), Some(7036));
    assert_eq!(
        qualified.data,
        json!({"Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": {
                "Provider": {"#attributes": {"Name": "Vigil-Synthetic"}},
                "EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 7036},
                "TimeCreated": {"#attributes": {"SystemTime": "2024-01-01T00:00:02.0000000Z"}},
                "EventRecordID": 2,
                "Channel": "Application",
                "Computer": "vigil-test"
            },
            "EventData": {"param1": "Print Spooler", "param2": "running"}
        }})
    );
}

#[test]
fn open_reads_a_file_as_from_bytes_reads_its_bytes() {
    let file = evtx_file_chunked(&events(50), 20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Security.evtx");
    std::fs::write(&path, &file).unwrap();
    let mut from_path = EvtxReader::open(&path).unwrap();
    let mut from_bytes = EvtxReader::from_bytes(file).unwrap();
    assert_eq!(read_all(&mut from_path), read_all(&mut from_bytes));
    assert_eq!(from_path.stats().records, 50);
}

#[test]
fn a_bare_header_is_a_log_without_records() {
    let mut reader = EvtxReader::from_bytes(file_header(0, 1)).unwrap();
    assert_eq!(reader.chunk_count(), 0);
    assert_eq!(reader.records().count(), 0);
    // Zeroed (unused) chunks after it are skipped silently.
    let mut file = file_header(0, 1);
    file.resize(EVTX_HEADER_SIZE + 2 * EVTX_CHUNK_SIZE, 0);
    let mut reader = EvtxReader::from_bytes(file).unwrap();
    assert_eq!(reader.records().count(), 0);
    assert_eq!(reader.stats(), ReadStats::default());
}

#[test]
fn empty_input_is_not_evtx() {
    let err = EvtxReader::from_bytes(Vec::new()).unwrap_err();
    assert!(matches!(err, EvtxError::NotEvtx(_)), "{err:?}");
    assert!(err.to_string().contains("it is empty"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.evtx");
    std::fs::write(&path, b"").unwrap();
    let err = EvtxReader::open(&path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("empty.evtx") && text.contains("it is empty"),
        "{text}"
    );
}

#[test]
fn foreign_files_say_what_they_look_like() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    for (bytes, says) in [
        (png, "a PNG image"),
        (b"PK\x03\x04rest".to_vec(), "a ZIP archive"),
        (b"<?xml version=\"1.0\"?><Events>".to_vec(), "XML text"),
        (b"{\"Event\": {}}\n".to_vec(), "JSON text"),
        (b"hello, world\n".to_vec(), "(text)"),
        (vec![0u8; 5000], "it starts with 00 00"),
    ] {
        let err = EvtxReader::from_bytes(bytes).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, EvtxError::NotEvtx(_)), "{err:?}");
        assert!(text.contains(says) && text.contains("ElfFile"), "{text}");
    }
    // A directory is not a file.
    let dir = tempfile::tempdir().unwrap();
    let err = EvtxReader::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let err = EvtxReader::open(&dir.path().join("missing.evtx")).unwrap_err();
    assert!(matches!(err, EvtxError::Io(_)) && err.to_string().contains("missing.evtx"));
}

#[test]
fn inputs_over_the_limit_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.evtx");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_EVTX_BYTES + 1).unwrap(); // sparse
    let err = EvtxReader::open(&path).unwrap_err();
    assert!(
        matches!(err, EvtxError::TooLarge { limit } if limit == MAX_EVTX_BYTES),
        "{err:?}"
    );
    assert!(err.to_string().contains("limit"), "{err}");
    // Zeroed pages are not touched: this costs no real memory.
    let err = EvtxReader::from_bytes(vec![0; MAX_EVTX_BYTES as usize + 1]).unwrap_err();
    assert!(matches!(err, EvtxError::TooLarge { .. }), "{err:?}");
}

#[test]
fn truncated_inside_the_header_is_an_error() {
    let file = evtx_file(&events(3));
    for cut in [1, 4, 8, 100, 4095] {
        let err = EvtxReader::from_bytes(file[..cut].to_vec()).unwrap_err();
        assert!(
            matches!(err, EvtxError::Truncated { len, .. } if len == cut as u64),
            "{cut}: {err:?}"
        );
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}

#[test]
fn truncated_inside_a_chunk_keeps_the_records_before_the_cut() {
    let file = evtx_file_chunked(&events(60), 30);
    let second = EVTX_HEADER_SIZE + EVTX_CHUNK_SIZE;
    // Inside the second chunk's header, just after it, mid-record, and near its end.
    for cut in [
        second + 4,
        second + 100,
        second + 600,
        second + 2001,
        second + 9000,
    ] {
        let mut reader = EvtxReader::from_bytes(file[..cut].to_vec()).unwrap();
        let (records, errors) = read_all(&mut reader);
        let ids = ids(&records);
        assert!(
            ids.len() >= 30 && ids[..30] == (1..=30).collect::<Vec<_>>()[..],
            "{cut}: {ids:?}"
        );
        assert!(ids.len() < 60, "{cut}: {ids:?}");
        // The record cut in two may be an error of its own; the truncation is the last item.
        assert!((1..=2).contains(&errors.len()), "{cut}: {errors:?}");
        let last = errors.last().unwrap();
        assert!(
            last.contains("chunk 1") && last.contains("truncated"),
            "{last}"
        );
        assert_eq!(reader.stats().bad_chunks, 1);
    }
    // Cut mid-record in the middle of the second chunk: the whole records before the cut
    // are still read.
    let mut reader = EvtxReader::from_bytes(file[..second + 9000].to_vec()).unwrap();
    let (records, _) = read_all(&mut reader);
    assert!(records.len() > 31, "{}", records.len());
    // Inside the first chunk too.
    let mut reader = EvtxReader::from_bytes(file[..EVTX_HEADER_SIZE + 5000].to_vec()).unwrap();
    let (records, errors) = read_all(&mut reader);
    assert!(
        !records.is_empty() && records.len() < 30,
        "{}",
        records.len()
    );
    assert!((1..=2).contains(&errors.len()), "{errors:?}");
}

#[test]
fn a_chunk_that_cannot_be_read_is_skipped() {
    let mut file = evtx_file_chunked(&events(90), 30);
    let second = EVTX_HEADER_SIZE + EVTX_CHUNK_SIZE;
    file[second..second + 8].copy_from_slice(b"NotAChnk");
    let mut reader = EvtxReader::from_bytes(file).unwrap();
    let (records, errors) = read_all(&mut reader);
    let expected: Vec<u64> = (1..=30).chain(61..=90).collect();
    assert_eq!(ids(&records), expected);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("chunk 1 (file offset 0x11000)")
            && errors[0].contains("goes on with the next chunk"),
        "{}",
        errors[0]
    );
    assert_eq!(reader.stats().bad_chunks, 1);
}

#[test]
fn a_damaged_record_is_skipped_and_reading_goes_on() {
    let file = evtx_file_chunked(&events(10), 10);
    // Find record 5's header and break its magic.
    let chunk = EVTX_HEADER_SIZE;
    let mut at = chunk + 512;
    for _ in 1..5 {
        let size = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
        at += size;
    }
    let mut damaged = file.clone();
    damaged[at] = b'X';
    let mut reader = EvtxReader::from_bytes(damaged).unwrap();
    let (records, errors) = read_all(&mut reader);
    assert_eq!(ids(&records), vec![1, 2, 3, 4, 6, 7, 8, 9, 10]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("chunk 0") && errors[0].contains("skipped"));
    assert_eq!(reader.stats().bad_records, 1);
    assert_eq!(reader.stats().checksum_errors, 1);
}

#[test]
fn flipped_bytes_never_panic_and_are_noticed() {
    let file = evtx_file_chunked(&events(90), 30);
    let records_end = {
        // The first chunk's free space offset: where its CRC-covered records end.
        let at = EVTX_HEADER_SIZE + 48;
        u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize
    };
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut damaged = file.clone();
        let flips = 1 + rng.below(8);
        for _ in 0..flips {
            // In the first chunk: its header (but not the flags and CRC at 120..128) or records.
            let mut offset = rng.below(records_end);
            if (120..128).contains(&offset) {
                offset = 119;
            }
            damaged[EVTX_HEADER_SIZE + offset] ^= 1 << rng.below(8);
        }
        let mut reader = EvtxReader::from_bytes(damaged).unwrap();
        let (records, errors) = read_all(&mut reader);
        let stats = reader.stats();
        // The other chunks are untouched.
        let ids = ids(&records);
        assert!(
            ids.ends_with(&(31..=90).collect::<Vec<_>>()),
            "seed {seed}: {ids:?}"
        );
        assert!(records.len() <= 90 + errors.len(), "seed {seed}");
        assert!(
            stats.checksum_errors + stats.bad_chunks + stats.bad_records > 0,
            "seed {seed}: damage went unnoticed"
        );
    }
}

#[test]
fn random_chunks_after_a_valid_header_end() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed * 7919);
        let mut file = file_header(2, 1);
        for chunk in 0..2 {
            let mut data: Vec<u8> = (0..EVTX_CHUNK_SIZE).map(|_| rng.next() as u8).collect();
            if chunk == 0 || seed % 2 == 0 {
                data[..8].copy_from_slice(b"ElfChnk\0");
            }
            file.extend(data);
        }
        fuzz_bytes(&file);
        let mut reader = EvtxReader::from_bytes(file).unwrap();
        let (_, errors) = read_all(&mut reader);
        assert!(!errors.is_empty(), "seed {seed}");
    }
}

#[test]
fn fuzz_entry_point_takes_anything() {
    let valid = evtx_file_chunked(&events(20), 10);
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"ElfFile\0".to_vec(),
        file_header(0, 1),
        valid[..EVTX_HEADER_SIZE + 700].to_vec(),
        valid.clone(),
        {
            let mut v = valid.clone();
            v.truncate(valid.len() - 1);
            v
        },
    ];
    for input in inputs {
        fuzz_bytes(&input);
    }
}

#[test]
fn find_evtx_files_walks_directories_and_survives_link_loops() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    for name in [
        "a/x.evtx",
        "a/b/Y.EVTX",
        "a/b/notes.txt",
        "a/z.evtx.json",
        "top.evtx",
    ] {
        std::fs::write(root.join(name), b"").unwrap();
    }
    std::fs::write(root.join("given.log"), b"").unwrap();
    #[cfg(unix)]
    {
        // A loop, and a second path to a directory already walked.
        std::os::unix::fs::symlink(root.join("a"), root.join("a/b/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("missing"), root.join("a/dangling.evtx")).unwrap();
    }
    let inputs: Vec<PathBuf> = vec![root.join("a"), root.join("given.log"), root.join("a")];
    let found = find_evtx_files(&inputs).unwrap();
    let found: Vec<_> = found
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(found, ["a/b/Y.EVTX", "a/x.evtx", "given.log"]);

    let err = find_evtx_files(&[root.join("nope")]).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
