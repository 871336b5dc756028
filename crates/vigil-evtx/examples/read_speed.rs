//! How fast EVTX logs read into JSON values: files, records, seconds, records/s.
//!
//! ```sh
//! cargo run --release -p vigil-evtx --example read_speed -- [FILE_OR_DIR...]
//! ```
//!
//! Without arguments it reads `$VIGIL_SHARED_DATA/sigma/regression_data` (Sigma's regression
//! logs: small, one chunk each), then a synthetic log of 100,000 records built by
//! `vigil_evtx::synth` (one large file, templates shared within each chunk as Windows does).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vigil_evtx::synth::{SynthEvent, evtx_file};
use vigil_evtx::{EvtxReader, find_evtx_files};

struct Tally {
    files: u64,
    records: u64,
    errors: u64,
    bytes: u64,
    time: Duration,
}

impl Tally {
    fn print(&self, what: &str) {
        let secs = self.time.as_secs_f64();
        println!(
            "{what}: {} files, {:.1} MB, {} records, {} errors, {secs:.3} s, {:.0} records/s, \
             {:.1} MB/s",
            self.files,
            self.bytes as f64 / 1e6,
            self.records,
            self.errors,
            self.records as f64 / secs,
            self.bytes as f64 / 1e6 / secs,
        );
    }
}

fn read(tally: &mut Tally, mut reader: EvtxReader) {
    let start = Instant::now();
    for item in reader.records() {
        match item {
            Ok(record) => {
                std::hint::black_box(&record.data);
                tally.records += 1;
            }
            Err(_) => tally.errors += 1,
        }
    }
    tally.time += start.elapsed();
    tally.files += 1;
    tally.bytes += reader.byte_len();
}

fn main() {
    let mut inputs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let synthetic = inputs.is_empty();
    if inputs.is_empty() {
        match std::env::var_os("VIGIL_SHARED_DATA") {
            Some(shared) => inputs.push(PathBuf::from(shared).join("sigma/regression_data")),
            None => eprintln!("VIGIL_SHARED_DATA is unset: synthetic log only"),
        }
    }
    if !inputs.is_empty() {
        let files = find_evtx_files(&inputs).expect("inputs");
        let mut tally = Tally {
            files: 0,
            records: 0,
            errors: 0,
            bytes: 0,
            time: Duration::ZERO,
        };
        // Opening (header check) is counted too: the per-file cost matters for small logs.
        for path in &files {
            let start = Instant::now();
            match EvtxReader::open(path) {
                Ok(reader) => {
                    tally.time += start.elapsed();
                    read(&mut tally, reader);
                }
                Err(e) => eprintln!("{e}"),
            }
        }
        tally.print(&format!("{}", inputs[0].display()));
    }
    if synthetic {
        let events: Vec<SynthEvent> = (1..=100_000u64)
            .map(|id| {
                SynthEvent::new(id, 1)
                    .with_data(
                        "Image",
                        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
                    )
                    .with_data(
                        "CommandLine",
                        format!("powershell.exe -nop -c \"Get-Item {id}\"").as_str(),
                    )
                    .with_data("User", r"CONTOSO\alice")
                    .with_data("ProcessId", id as u32)
            })
            .collect();
        let bytes = evtx_file(&events);
        let mut tally = Tally {
            files: 0,
            records: 0,
            errors: 0,
            bytes: 0,
            time: Duration::ZERO,
        };
        read(
            &mut tally,
            EvtxReader::from_bytes(bytes).expect("synthetic log"),
        );
        tally.print("synthetic log");
    }
}
