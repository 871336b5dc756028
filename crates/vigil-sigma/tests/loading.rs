//! Rule validation and rejection reasons, loading from folders, logsource routing, the ECS
//! mapping, and the fuzz entry point.

use std::path::Path;

use serde_json::json;
use vigil_sigma::{FieldMapping, Level, Record, RejectKind, Rejected, RuleSet};

const ID: &str = "22222222-2222-2222-2222-222222222222";

fn rule(logsource: &str, detection: &str) -> String {
    format!(
        "title: Test rule\nid: {ID}\nstatus: test\nlevel: high\nlogsource: {logsource}\ndetection:\n{detection}"
    )
}

fn rejected(text: &str) -> Vec<Rejected> {
    match RuleSet::from_yaml(text, Path::new("bad.yml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(r) => r,
    }
}

fn reason(text: &str) -> String {
    let r = rejected(text);
    assert_eq!(r.len(), 1, "{r:?}");
    r[0].reason.clone()
}

const SEL: &str = "    sel:\n        A: 1\n    condition: sel\n";

#[test]
fn malformed_yaml() {
    let r = rejected("title: x\ndetection: [unclosed\n");
    assert_eq!(r[0].kind, RejectKind::Yaml);
    assert!(r[0].reason.contains("invalid YAML"), "{}", r[0].reason);
    // Not a mapping at all.
    assert!(reason("- a\n- b\n").contains("must be a mapping"));
    // Tabs, garbage, binary-ish text: rejected, no panic.
    for text in [
        "\t\t: :\n",
        "{{{{",
        "a: b: c",
        "\u{0}\u{1}",
        "---\n...\n---\n",
    ] {
        let _ = RuleSet::from_yaml(text, Path::new("x.yml"));
    }
}

#[test]
fn missing_parts_name_the_key_and_the_rule() {
    let text = format!("title: t\nid: {ID}\nlogsource: {{product: windows}}\n");
    let r = rejected(&text);
    assert_eq!(r[0].reason, "missing `detection`");
    assert_eq!(r[0].id.as_deref(), Some(ID));
    assert_eq!(r[0].title.as_deref(), Some("t"));
    let r = rejected(&rule("{}", "    sel:\n        A: 1\n"));
    assert_eq!(r[0].reason, "missing `detection.condition`");
    assert_eq!(r[0].id.as_deref(), Some(ID));
    assert!(
        reason(&format!("title: t\nlogsource: {{}}\ndetection:\n{SEL}"))
            .contains("missing rule `id`")
    );
    assert!(
        reason(&format!("id: {ID}\nlogsource: {{}}\ndetection:\n{SEL}"))
            .contains("missing `title`")
    );
    assert!(
        reason(&format!("title: t\nid: {ID}\ndetection:\n{SEL}")).contains("missing `logsource`")
    );
    assert!(
        reason(&format!(
            "title: t\nid: {ID}\nlevel: severe\nlogsource: {{}}\ndetection:\n{SEL}"
        ))
        .contains("unknown `level` `severe`")
    );
    assert!(reason(&rule("{}", "    condition: sel\n")).contains("no search identifier"));
}

#[test]
fn unknown_identifier_in_condition() {
    let r = reason(&rule(
        "{}",
        "    sel:\n        A: 1\n    condition: sel and filter\n",
    ));
    assert!(r.contains("unknown search identifier `filter`"), "{r}");
    let r = reason(&rule(
        "{}",
        "    sel:\n        A: 1\n    condition: 1 of filter_*\n",
    ));
    assert!(
        r.contains("pattern `filter_*` matches no search identifier"),
        "{r}"
    );
}

#[test]
fn unsupported_modifiers() {
    let r = rejected(&rule(
        "{}",
        "    sel:\n        A|contains|expand: '%x%'\n    condition: sel\n",
    ));
    assert_eq!(r[0].kind, RejectKind::Unsupported);
    assert!(
        r[0].reason.contains("unsupported modifier `expand`"),
        "{}",
        r[0].reason
    );
    assert_eq!(r[0].id.as_deref(), Some(ID));
    let r = reason(&rule(
        "{}",
        "    sel:\n        A|minute: 5\n    condition: sel\n",
    ));
    assert!(r.contains("unsupported modifier `minute`"), "{r}");
    let r = reason(&rule(
        "{}",
        "    sel:\n        A|bogus: 5\n    condition: sel\n",
    ));
    assert!(r.contains("unsupported modifier `bogus`"), "{r}");
}

#[test]
fn bad_regex() {
    let r = rejected(&rule(
        "{}",
        "    sel:\n        A|re: '(?<!x)y'\n    condition: sel\n",
    ));
    assert_eq!(r[0].kind, RejectKind::Detection);
    assert!(
        r[0].reason.contains("invalid regular expression `(?<!x)y`"),
        "{}",
        r[0].reason
    );
    assert!(r[0].reason.contains("`A|re`"), "{}", r[0].reason);
}

#[test]
fn correlation_and_collections_and_filters() {
    let corr = format!(
        "{}\n---\ntitle: c\nid: 33333333-3333-3333-3333-333333333333\ncorrelation:\n    type: event_count\n    rules: [{ID}]\n    group-by: [User]\n    timespan: 1h\n    condition: {{gte: 10}}\n",
        rule("{}", SEL)
    );
    let r = rejected(&corr);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].reason, "correlation rules are unsupported");
    assert_eq!(
        r[0].id.as_deref(),
        Some("33333333-3333-3333-3333-333333333333")
    );
    let coll = format!(
        "action: global\ntitle: g\nlogsource: {{}}\n---\n{}",
        rule("{}", SEL)
    );
    let r = rejected(&coll);
    assert_eq!(r.len(), 2);
    assert!(
        r.iter()
            .all(|x| x.reason.contains("action: global/repeat/reset"))
    );
    let filt = format!(
        "title: f\nid: {ID}\nlogsource: {{}}\nfilter:\n    rules: [x]\n    selection: {{A: 1}}\n    condition: not selection\n"
    );
    assert!(reason(&filt).contains("meta filters"));
    let agg = rule(
        "{}",
        "    sel:\n        A: 1\n    condition: sel | count() by B > 5\n",
    );
    assert!(reason(&agg).contains("aggregation"));
    let near = rule(
        "{}",
        "    sel:\n        A: 1\n    b:\n        B: 1\n    condition: sel near b\n",
    );
    assert!(reason(&near).contains("near"));
}

#[test]
fn multi_document_plain_rules_and_duplicate_ids() {
    let two = format!(
        "{}---\n{}",
        rule("{}", SEL),
        rule("{}", SEL).replace(ID, "44444444-4444-4444-4444-444444444444")
    );
    assert_eq!(
        RuleSet::from_yaml(&two, Path::new("two.yml"))
            .unwrap()
            .len(),
        2
    );
    let dup = format!("{}---\n{}", rule("{}", SEL), rule("{}", SEL));
    let r = rejected(&dup);
    assert_eq!(r[0].kind, RejectKind::DuplicateId);
    assert!(r[0].reason.contains("duplicate rule id"));
}

#[test]
fn metadata_and_status() {
    let text = format!(
        "title: T\nid: {ID}\nstatus: deprecated\ndescription: d\nauthor: me\nreferences: [r1]\ntags: [attack.t1059]\nfalsepositives: [none]\nlevel: critical\nlogsource: {{product: windows, category: process_creation}}\ndetection:\n{SEL}"
    );
    let rs = RuleSet::from_yaml(&text, Path::new("m.yml")).unwrap();
    let m = rs.rules().next().unwrap();
    assert_eq!(m.status.as_deref(), Some("deprecated"));
    assert_eq!(m.level, Level::Critical);
    assert_eq!(m.tags, ["attack.t1059"]);
    assert_eq!(m.logsource.category.as_deref(), Some("process_creation"));
    assert_eq!(m.path, Path::new("m.yml"));
}

fn sysmon(eid: u32, data: serde_json::Value) -> Record {
    Record::from_evtx_json(&json!({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
        "EventID": eid, "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "pc"},
        "EventData": data}}))
}

fn security(eid: u32, data: serde_json::Value) -> Record {
    Record::from_evtx_json(&json!({"Event": {"System": {
        "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
        "EventID": {"#attributes": {"Qualifiers": ""}, "#text": eid}, "Channel": "Security"},
        "EventData": data}}))
}

#[test]
fn process_creation_routes_to_sysmon_1_and_security_4688() {
    let rs = RuleSet::from_yaml(
        &rule(
            "{product: windows, category: process_creation}",
            "    sel:\n        Image|endswith: '\\whoami.exe'\n        ParentImage|endswith: '\\cmd.exe'\n    condition: sel\n",
        ),
        Path::new("p.yml"),
    )
    .unwrap();
    let data = json!({"Image": "C:\\Windows\\System32\\whoami.exe", "ParentImage": "C:\\Windows\\cmd.exe"});
    assert_eq!(rs.matches(&sysmon(1, data.clone())).len(), 1);
    // Same fields on a network-connection event: not a process_creation record.
    assert!(rs.matches(&sysmon(3, data.clone())).is_empty());
    // Security 4688 with its own field names (NewProcessName, ParentProcessName).
    let m = rs.matches(&security(
        4688,
        json!({"NewProcessName": "C:\\Windows\\System32\\whoami.exe", "ParentProcessName": "C:\\Windows\\cmd.exe"}),
    ));
    assert_eq!(m.len(), 1);
    assert!(m[0].fields.iter().any(|(n, _)| n == "NewProcessName"));
    // 4688 with Sysmon names does not match: the rule reads NewProcessName there.
    assert!(rs.matches(&security(4688, data.clone())).is_empty());
    assert!(rs.matches(&security(4624, data)).is_empty());
}

#[test]
fn service_security_never_runs_on_sysmon() {
    let rs = RuleSet::from_yaml(
        &rule(
            "{product: windows, service: security}",
            "    sel:\n        EventID: 1\n    condition: sel\n",
        ),
        Path::new("s.yml"),
    )
    .unwrap();
    assert!(rs.matches(&sysmon(1, json!({"Image": "x"}))).is_empty());
    assert_eq!(rs.matches(&security(1, json!({}))).len(), 1);
}

#[test]
fn unmapped_logsources_run_on_matching_generic_records_only() {
    let rs = RuleSet::from_yaml(
        &rule(
            "{product: linux, category: process_creation}",
            "    sel:\n        Image|endswith: '/nc'\n    condition: sel\n",
        ),
        Path::new("l.yml"),
    )
    .unwrap();
    let linux = Record::from_pairs([
        ("product".to_string(), json!("linux")),
        ("category".to_string(), json!("process_creation")),
        ("Image".to_string(), json!("/usr/bin/nc")),
    ]);
    assert_eq!(rs.matches(&linux).len(), 1);
    let other = Record::from_pairs([
        ("product".to_string(), json!("linux")),
        ("category".to_string(), json!("network_connection")),
        ("Image".to_string(), json!("/usr/bin/nc")),
    ]);
    assert!(rs.matches(&other).is_empty());
    assert!(
        rs.matches(&sysmon(1, json!({"Image": "/usr/bin/nc"})))
            .is_empty()
    );
    // A category-only rule (webserver) matches any product's webserver records.
    let rs = RuleSet::from_yaml(
        &rule(
            "{category: webserver}",
            "    sel:\n        cs-method: POST\n    condition: sel\n",
        ),
        Path::new("w.yml"),
    )
    .unwrap();
    let web = Record::from_pairs([
        ("category".to_string(), json!("webserver")),
        ("product".to_string(), json!("apache")),
        ("cs-method".to_string(), json!("POST")),
    ]);
    assert_eq!(rs.matches(&web).len(), 1);
}

#[test]
fn ecs_events_through_the_field_mapping() {
    let linux = rule(
        "{product: linux, category: process_creation}",
        "    sel:\n        Image|endswith: '/curl'\n        CommandLine|contains: '| sh'\n    condition: sel\n",
    );
    let rs = RuleSet::from_yaml(&linux, Path::new("e.yml")).unwrap();
    let ev = json!({"@timestamp": "2024-01-01T00:00:00Z",
        "event": {"category": ["process"], "type": ["start"]},
        "host": {"os": {"type": "linux"}},
        "process": {"executable": "/usr/bin/curl", "command_line": "curl http://x | sh"}});
    let r = FieldMapping::builtin().record_from_ecs(&ev);
    assert_eq!(rs.matches(&r).len(), 1);
    // A Windows process_creation rule sees Winlogbeat's Sysmon events through Channel/EventID.
    let win = rule(
        "{product: windows, category: process_creation}",
        "    sel:\n        Image|endswith: '\\whoami.exe'\n    condition: sel\n",
    );
    let rs = RuleSet::from_yaml(&win, Path::new("w.yml")).unwrap();
    let ev = json!({"winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 1,
        "event_data": {"Image": "C:\\Windows\\whoami.exe"}}});
    assert_eq!(
        rs.matches(&FieldMapping::builtin().record_from_ecs(&ev))
            .len(),
        1
    );
    assert!(rs.matches(&r).is_empty());
}

#[test]
fn defender_field_names_with_spaces() {
    let rs = RuleSet::from_yaml(
        &rule(
            "{product: windows, service: windefend}",
            "    sel:\n        ThreatName|contains: 'EICAR'\n    condition: sel\n",
        ),
        Path::new("d.yml"),
    )
    .unwrap();
    let r = Record::from_evtx_json(&json!({"Event": {"System": {"EventID": 1116,
        "Channel": "Microsoft-Windows-Windows Defender/Operational"},
        "EventData": {"Threat Name": "Virus:DOS/EICAR_Test_File"}}}));
    assert_eq!(rs.matches(&r).len(), 1);
    assert_eq!(
        r.get("Threat Name").unwrap().as_str(),
        Some("Virus:DOS/EICAR_Test_File")
    );
}

#[test]
fn load_dirs_reports_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("good.yml"), rule("{}", SEL)).unwrap();
    std::fs::write(
        root.join("sub/deeper/other.yaml"),
        rule("{}", SEL).replace(ID, "55555555-5555-5555-5555-555555555555"),
    )
    .unwrap();
    std::fs::write(root.join("sub/dup.yml"), rule("{}", SEL)).unwrap();
    std::fs::write(root.join("sub/broken.yml"), "title: [").unwrap();
    std::fs::write(root.join("sub/binary.yml"), [0xff, 0xfe, 0x00]).unwrap();
    std::fs::write(root.join("sub/empty.yml"), "").unwrap();
    std::fs::write(root.join("big.yml"), "#".repeat(2 * 1024 * 1024)).unwrap();
    std::fs::write(root.join("README.md"), "not a rule").unwrap();
    let report = RuleSet::load_dirs(&[root]).unwrap();
    assert_eq!(report.files, 7);
    assert_eq!(report.rules.len(), 2);
    let reasons: Vec<String> = report
        .rejected
        .iter()
        .map(|r| format!("{}: {}", r.path.display(), r.reason))
        .collect();
    assert_eq!(report.rejected.len(), 5, "{reasons:#?}");
    let find = |name: &str| {
        report
            .rejected
            .iter()
            .find(|r| r.path.ends_with(name))
            .unwrap()
    };
    assert_eq!(find("dup.yml").kind, RejectKind::DuplicateId);
    assert!(find("dup.yml").reason.contains("good.yml"));
    assert_eq!(find("broken.yml").kind, RejectKind::Yaml);
    assert!(find("binary.yml").reason.contains("UTF-8"));
    assert!(find("big.yml").reason.contains("limit"));
    assert!(find("empty.yml").reason.contains("no YAML document"));
    assert!(RuleSet::load_dirs(&[root.join("missing")]).is_err());
    assert!(RuleSet::load_dirs(&[root.join("good.yml")]).is_err());
}

#[test]
fn fuzz_entry_point_survives_mutations() {
    let seed = rule(
        "{product: windows, category: process_creation}",
        "    sel:\n        Image|endswith|windash: ['\\cmd.exe', ' -x']\n        CommandLine|re|i: 'who(ami)?'\n        A|base64offset|contains: 'abc'\n        B|cidr: 10.0.0.0/8\n    f:\n        - 'kw'\n    condition: sel and not 1 of f* or (sel)\n",
    );
    vigil_sigma::fuzz_rule(seed.as_bytes());
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"|*?\\:-[]{}'\"\n #&!%@()ab01";
    for _ in 0..3000 {
        let mut bytes = seed.clone().into_bytes();
        for _ in 0..(next() % 6 + 1) {
            let pos = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[pos] = alphabet[(next() as usize) % alphabet.len()],
                1 => {
                    bytes.remove(pos);
                }
                _ => bytes.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
            }
        }
        vigil_sigma::fuzz_rule(&bytes);
    }
    for bad in [
        &b"\xff\xfe"[..],
        b"",
        b"[[[[[[[[",
        b"&a [*a, *a]",
        b"a: !!binary x",
    ] {
        vigil_sigma::fuzz_rule(bad);
    }
}
