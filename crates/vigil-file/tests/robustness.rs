//! Hostile input: truncated and corrupted copies of real executables are results, never
//! panics, and what can still be read is reported.

mod common;

use common::fixtures_dir;
use vigil_file::{Format, Limits, analyze};

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn truncated_and_corrupted_executables_are_results() {
    let Some(dir) = fixtures_dir() else { return };
    let limits = Limits::default();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "exe") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let full = analyze(&bytes, &limits);
        assert!(full.is_pe, "{}", path.display());
        files += 1;
        // Truncations: at every header boundary region, then through the body.
        let cuts = (0..bytes.len().min(1024))
            .step_by(7)
            .chain((1024..bytes.len()).step_by(bytes.len() / 16 + 1));
        for n in cuts {
            let r = analyze(&bytes[..n], &limits);
            assert_eq!(r.size, n);
            if r.is_pe {
                let pe = r.pe.as_ref().unwrap();
                assert!(pe.sections.len() <= full.pe.as_ref().unwrap().sections.len());
            }
        }
        // Corruptions: random bytes flipped in the first 4 KiB, where the headers are.
        for _ in 0..40 {
            let mut copy = bytes.clone();
            for _ in 0..8 {
                let at = (xorshift(&mut rng) as usize) % copy.len().min(4096);
                copy[at] ^= xorshift(&mut rng) as u8;
            }
            let r = analyze(&copy, &limits);
            assert_eq!(r.sha256.len(), 64);
            serde_json::to_string(&r).unwrap();
        }
    }
    assert!(files >= 15, "found only {files} executables");
}

#[test]
fn a_truncated_pe_reports_what_it_could_read() {
    let Some(dir) = fixtures_dir() else { return };
    let bytes = std::fs::read(dir.join("clam-upx.exe")).unwrap();
    // Headers and section table intact, section data cut off.
    let r = analyze(&bytes[..0x400], &Limits::default());
    assert!(r.is_pe);
    let pe = r.pe.unwrap();
    assert_eq!(pe.sections.len(), 3);
    assert!(
        pe.packer_signs.iter().any(|s| s.contains("UPX")),
        "{:?}",
        pe.packer_signs
    );
    // No DOS header at all.
    let r = analyze(&bytes[2..], &Limits::default());
    assert!(!r.is_pe);
    assert_eq!(r.format, Format::Unknown);
}

#[test]
fn hostile_section_names_are_escaped() {
    let Some(dir) = fixtures_dir() else { return };
    let bytes = std::fs::read(dir.join("clam-mew.exe")).unwrap();
    let r = analyze(&bytes, &Limits::default());
    for s in &r.pe.unwrap().sections {
        assert!(
            s.name.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{:?}",
            s.name
        );
    }
}
