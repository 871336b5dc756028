//! Golden semantics: every modifier, value rule and condition form, on hand-written records.

use std::path::Path;

use serde_json::{Value, json};
use vigil_sigma::{Record, RuleSet};

const ID: &str = "11111111-1111-1111-1111-111111111111";

/// A rule with an empty logsource (it describes every record) and this detection body
/// (indented by four spaces).
fn rules(detection: &str) -> RuleSet {
    let text = format!("title: t\nid: {ID}\nlogsource: {{}}\nlevel: high\ndetection:\n{detection}");
    RuleSet::from_yaml(&text, Path::new("t.yml")).unwrap_or_else(|e| panic!("{e:#?}\n{text}"))
}

fn rec(pairs: &[(&str, Value)]) -> Record {
    Record::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())))
}

fn fires(detection: &str, pairs: &[(&str, Value)]) -> bool {
    !rules(detection).matches(&rec(pairs)).is_empty()
}

/// One field condition `key: value` (value as YAML) against a record with `field = v`.
fn one(key_value: &str, v: Value) -> bool {
    let field = key_value.split(['|', ':']).next().unwrap();
    fires(
        &format!("    sel:\n        {key_value}\n    condition: sel\n"),
        &[(field, v)],
    )
}

#[test]
fn plain_values_are_whole_and_case_insensitive() {
    assert!(one(
        "Image: 'C:\\Windows\\cmd.exe'",
        json!("c:\\windows\\CMD.EXE")
    ));
    assert!(!one("Image: 'cmd.exe'", json!("c:\\windows\\cmd.exe")));
    assert!(!one("Image: 'cmd.exe'", json!("cmd.exe2")));
}

#[test]
fn wildcards_and_escapes() {
    assert!(one("F: '*\\cmd.exe'", json!("C:\\x\\cmd.exe")));
    // `\*` escapes the star: a backslash before a wildcard must itself be escaped.
    assert!(one("F: 'C:\\\\*\\cmd.exe'", json!("C:\\a\\b\\cmd.exe")));
    assert!(!one("F: 'C:\\*\\cmd.exe'", json!("C:\\a\\cmd.exe")));
    assert!(one("F: 'C:\\*\\cmd.exe'", json!("C:*\\cmd.exe")));
    assert!(one("F: 'a?c'", json!("abc")));
    assert!(!one("F: 'a?c'", json!("abbc")));
    // `\*` is a literal star, `\\` a literal backslash (pySigma's escaping).
    assert!(one("F: 'a\\*c'", json!("a*c")));
    assert!(!one("F: 'a\\*c'", json!("abc")));
    assert!(one("F: 'a\\?c'", json!("a?c")));
    assert!(!one("F: 'a\\?c'", json!("abc")));
    assert!(one(
        "F: '\\\\\\\\server\\share'",
        json!("\\\\server\\share")
    ));
    assert!(one("F: 'x\\\\*'", json!("x\\anything")));
    // A backslash before an ordinary character is literal.
    assert!(one("F: 'C:\\Windows\\'", json!("c:\\windows\\")));
}

#[test]
fn contains_startswith_endswith() {
    assert!(one("F|contains: 'WHOAMI'", json!("cmd /c whoami /all")));
    assert!(!one("F|contains: 'whoami'", json!("cmd /c who ami")));
    assert!(one("F|startswith: 'cmd'", json!("CMD.exe /c")));
    assert!(!one("F|startswith: 'cmd'", json!("x cmd")));
    assert!(one("F|endswith: '.EXE'", json!("a.exe")));
    assert!(!one("F|endswith: '.exe'", json!("a.exe ")));
    // Wildcards inside a contains value still work.
    assert!(one("F|contains: 'a*c'", json!("xxabbbcxx")));
    // Lists are OR.
    assert!(one("F|contains: ['nope', 'who']", json!("whoami")));
    // Many values (merged into one automaton / hash set internally).
    let many: Vec<String> = (0..50).map(|i| format!("'needle{i}'")).collect();
    assert!(one(
        &format!("F|contains: [{}]", many.join(", ")),
        json!("x NEEDLE42 y")
    ));
    assert!(!one(
        &format!("F|contains: [{}]", many.join(", ")),
        json!("needle")
    ));
    assert!(one(&format!("F: [{}]", many.join(", ")), json!("Needle7")));
    assert!(!one(
        &format!("F: [{}]", many.join(", ")),
        json!("needle7x")
    ));
}

#[test]
fn cased() {
    assert!(one("F|cased: 'Abc'", json!("Abc")));
    assert!(!one("F|cased: 'Abc'", json!("abc")));
    assert!(one("F|contains|cased: 'B'", json!("aBc")));
    assert!(!one("F|contains|cased: 'B'", json!("abc")));
}

#[test]
fn all_modifier() {
    assert!(one("F|contains|all: ['a', 'b']", json!("xaxbx")));
    assert!(!one("F|contains|all: ['a', 'b']", json!("xaxx")));
    // With windash, each value's variants are an OR inside the AND.
    assert!(one(
        "F|contains|all|windash: [' -a', ' -b']",
        json!("x /a /b")
    ));
    assert!(!one(
        "F|contains|all|windash: [' -a', ' -b']",
        json!("x /a")
    ));
}

#[test]
fn regular_expressions() {
    assert!(one("F|re: 'ab+c'", json!("xxabbbcxx")));
    // Case-sensitive by default; `i` makes it insensitive.
    assert!(!one("F|re: 'ABC'", json!("abc")));
    assert!(one("F|re|i: 'ABC'", json!("abc")));
    // `m`: ^ and $ at line breaks.
    assert!(!one("F|re: '^b$'", json!("a\nb\nc")));
    assert!(one("F|re|m: '^b$'", json!("a\nb\nc")));
    // `s`: dot matches newline.
    assert!(!one("F|re: 'a.b'", json!("a\nb")));
    assert!(one("F|re|s: 'a.b'", json!("a\nb")));
    // The rule's own inline flags work.
    assert!(one(
        "F|re: '(?i)^c:\\\\windows\\\\'",
        json!("C:\\Windows\\x")
    ));
}

#[test]
fn base64_and_encodings() {
    // base64("foobar") = Zm9vYmFy
    assert!(one("F|base64: 'foobar'", json!("Zm9vYmFy")));
    assert!(one("F|base64|contains: 'foobar'", json!("xx Zm9vYmFy yy")));
    // base64offset: the value at any alignment inside a longer encoded string.
    for prefix in ["", "a", "ab"] {
        let enc = base64_encode(format!("{prefix}foobar and more").as_bytes());
        assert!(
            one("F|base64offset|contains: 'foobar'", json!(enc)),
            "{prefix}"
        );
    }
    assert!(!one(
        "F|base64offset|contains: 'foobar'",
        json!(base64_encode(b"fooba"))
    ));
    // wide (UTF-16LE) before base64offset: PowerShell -EncodedCommand.
    let wide: Vec<u8> = "IEX (New-Object Net.WebClient)"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let cmd = format!("powershell -enc {}", base64_encode(&wide));
    assert!(one(
        "F|wide|base64offset|contains: 'New-Object'",
        json!(cmd)
    ));
    assert!(one(
        "F|utf16le|base64offset|contains: 'New-Object'",
        json!(cmd)
    ));
    assert!(!one("F|base64offset|contains: 'New-Object'", json!(cmd)));
    let be: Vec<u8> = "hello".encode_utf16().flat_map(u16::to_be_bytes).collect();
    assert!(one("F|utf16be|base64: 'hello'", json!(base64_encode(&be))));
    let mut bom = vec![0xFF, 0xFE];
    bom.extend("hi".encode_utf16().flat_map(u16::to_le_bytes));
    assert!(one("F|utf16|base64: 'hi'", json!(base64_encode(&bom))));
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn windash() {
    for v in [
        " -enc ",
        " /enc ",
        " \u{2013}enc ",
        " \u{2014}enc ",
        " \u{2015}enc ",
    ] {
        assert!(
            one(
                "F|contains|windash: ' -enc '",
                json!(format!("powershell{v}x"))
            ),
            "{v:?}"
        );
    }
    assert!(!one(
        "F|contains|windash: ' -enc '",
        json!("powershell enc x")
    ));
    assert!(one("F|endswith|windash: ' -x'", json!("a /x")));
}

#[test]
fn cidr() {
    assert!(one("F|cidr: '10.0.0.0/8'", json!("10.20.30.40")));
    assert!(!one("F|cidr: '10.0.0.0/8'", json!("11.0.0.1")));
    assert!(one(
        "F|cidr: ['192.168.0.0/16', '172.16.0.0/12']",
        json!("172.20.1.1")
    ));
    assert!(one("F|cidr: 'fe80::/10'", json!("fe80::1234")));
    assert!(!one("F|cidr: 'fe80::/10'", json!("2001:db8::1")));
    assert!(one("F|cidr: '2001:db8::/32'", json!("2001:DB8::1")));
    assert!(!one("F|cidr: '10.0.0.0/8'", json!("not an ip")));
}

#[test]
fn exists() {
    assert!(one("F|exists: true", json!("x")));
    assert!(one("F|exists: true", json!(null)));
    assert!(fires(
        "    sel:\n        G|exists: false\n    condition: sel\n",
        &[("F", json!(1))]
    ));
    assert!(!fires(
        "    sel:\n        G|exists: true\n    condition: sel\n",
        &[("F", json!(1))]
    ));
}

#[test]
fn numeric_comparisons() {
    assert!(one("F|gt: 10", json!(11)));
    assert!(!one("F|gt: 10", json!(10)));
    assert!(one("F|gte: 10", json!("10")));
    assert!(one("F|lt: 10.5", json!(10)));
    assert!(!one("F|lt: 10", json!(10)));
    assert!(one("F|lte: 10", json!(10)));
    assert!(one("F|gt: 15", json!("0x10")));
    assert!(!one("F|gt: 1", json!("abc")));
}

#[test]
fn numbers_and_bools_compare_as_text() {
    assert!(one("EventID: 4688", json!(4688)));
    assert!(one("EventID: 4688", json!("4688")));
    assert!(one("EventID: [1, 4688]", json!(4688)));
    assert!(!one("EventID: 4688", json!(46880)));
    assert!(one("Signed: false", json!("false")));
    assert!(one("Signed: false", json!(false)));
    assert!(one("Signed: 'true'", json!(true)));
}

#[test]
fn fieldref() {
    let d = "    sel:\n        A|fieldref: B\n    condition: sel\n";
    assert!(fires(d, &[("A", json!("X.exe")), ("B", json!("x.EXE"))]));
    assert!(!fires(d, &[("A", json!("x.exe")), ("B", json!("y.exe"))]));
    assert!(!fires(d, &[("A", json!("x.exe"))]));
    let d = "    sel:\n        A|fieldref|contains: B\n    condition: sel\n";
    assert!(fires(
        d,
        &[("A", json!("C:\\x\\evil.exe")), ("B", json!("EVIL"))]
    ));
    let d = "    sel:\n        A|fieldref|startswith: B\n    condition: sel\n";
    assert!(fires(d, &[("A", json!("abc")), ("B", json!("ab"))]));
    assert!(!fires(d, &[("A", json!("abc")), ("B", json!("bc"))]));
    let d = "    sel:\n        A|fieldref|endswith: B\n    condition: sel\n";
    assert!(fires(d, &[("A", json!("abc")), ("B", json!("bc"))]));
}

#[test]
fn null_and_empty() {
    let d = "    sel:\n        F: null\n    condition: sel\n";
    assert!(fires(d, &[("G", json!(1))]));
    assert!(fires(d, &[("F", json!(null))]));
    assert!(!fires(d, &[("F", json!(""))]));
    assert!(!fires(d, &[("F", json!("x"))]));
    let d = "    sel:\n        F: ''\n    condition: sel\n";
    assert!(fires(d, &[("F", json!(""))]));
    assert!(!fires(d, &[("F", json!("x"))]));
    assert!(!fires(d, &[("G", json!(""))]));
    // A rule field absent from the record does not match.
    assert!(!fires(
        "    sel:\n        F|contains: 'x'\n    condition: sel\n",
        &[("G", json!("x"))]
    ));
    // `not` over a missing field is true.
    assert!(fires(
        "    sel:\n        G: 1\n    f:\n        F: 'x'\n    condition: sel and not f\n",
        &[("G", json!(1))]
    ));
    // null inside a list: missing/null OR a value.
    let d = "    sel:\n        F: [null, 'x']\n    condition: sel\n";
    assert!(fires(d, &[("G", json!(1))]));
    assert!(fires(d, &[("F", json!("X"))]));
    assert!(!fires(d, &[("F", json!("y"))]));
}

#[test]
fn field_names_case_insensitive_exact_first() {
    let d = "    sel:\n        image|endswith: 'a.exe'\n    condition: sel\n";
    assert!(fires(d, &[("Image", json!("C:\\a.exe"))]));
    // The exact spelling wins over a case-insensitive match.
    let d = "    sel:\n        ProcessId: 5\n    condition: sel\n";
    assert!(fires(
        d,
        &[("ProcessID", json!(4)), ("ProcessId", json!(5))]
    ));
    assert!(!fires(
        d,
        &[("ProcessId", json!(4)), ("ProcessID", json!(5))]
    ));
}

#[test]
fn list_values_in_records() {
    let d = "    sel:\n        Data|contains: 'HostApplication=powershell'\n    condition: sel\n";
    assert!(fires(
        d,
        &[(
            "Data",
            json!(["Available", "HostApplication=powershell -nop"])
        )]
    ));
    assert!(!fires(d, &[("Data", json!(["Available", "x"]))]));
}

#[test]
fn keywords() {
    let d = "    keywords:\n        - 'mimikatz'\n        - 'sekurlsa'\n    condition: keywords\n";
    assert!(fires(
        d,
        &[
            ("A", json!("x")),
            ("CommandLine", json!("run MimiKatz.exe"))
        ]
    ));
    assert!(!fires(d, &[("A", json!("mimi katz"))]));
    let d = "    keywords:\n        '|all':\n            - 'grep'\n            - 'password'\n    condition: keywords\n";
    assert!(fires(
        d,
        &[("A", json!("grep -r")), ("B", json!("x password y"))]
    ));
    assert!(!fires(d, &[("A", json!("grep -r"))]));
    // A single keyword string.
    let d = "    keywords: 'evil'\n    condition: keywords\n";
    assert!(fires(d, &[("A", json!("so EVIL"))]));
}

#[test]
fn list_of_maps_is_or_map_is_and() {
    let d = "    sel:\n        - A: 1\n          B: 2\n        - C: 3\n    condition: sel\n";
    assert!(fires(d, &[("A", json!(1)), ("B", json!(2))]));
    assert!(!fires(d, &[("A", json!(1)), ("B", json!(3))]));
    assert!(fires(d, &[("C", json!(3))]));
}

fn cond(condition: &str, a: bool, b: bool, c: bool, f1: bool, f2: bool) -> bool {
    let d = format!(
        "    sel_a:\n        A: 1\n    sel_b:\n        B: 1\n    other_c:\n        C: 1\n    filter_1:\n        F1: 1\n    filter_2:\n        F2: 1\n    condition: {condition}\n"
    );
    let mut pairs = vec![];
    for (name, on) in [("A", a), ("B", b), ("C", c), ("F1", f1), ("F2", f2)] {
        pairs.push((name, json!(if on { 1 } else { 0 })));
    }
    fires(&d, &pairs)
}

#[test]
fn condition_forms() {
    assert!(cond("sel_a", true, false, false, false, false));
    assert!(!cond("sel_a", false, true, false, false, false));
    assert!(cond("sel_a and sel_b", true, true, false, false, false));
    assert!(!cond("sel_a and sel_b", true, false, false, false, false));
    assert!(cond("sel_a or sel_b", false, true, false, false, false));
    assert!(cond("not sel_a", false, false, false, false, false));
    assert!(cond("1 of sel_*", false, true, false, false, false));
    assert!(!cond("1 of sel_*", false, false, true, false, false));
    assert!(cond("any of sel_*", true, false, false, false, false));
    assert!(cond("all of sel_*", true, true, false, false, false));
    assert!(!cond("all of sel_*", true, false, true, false, false));
    assert!(cond("1 of them", false, false, false, false, true));
    assert!(!cond("1 of them", false, false, false, false, false));
    assert!(cond("all of them", true, true, true, true, true));
    assert!(!cond("all of them", true, true, true, true, false));
    assert!(cond(
        "sel_a and not 1 of filter_*",
        true,
        false,
        false,
        false,
        false
    ));
    assert!(!cond(
        "sel_a and not 1 of filter_*",
        true,
        false,
        false,
        false,
        true
    ));
    assert!(cond(
        "sel_a and not all of filter_*",
        true,
        false,
        false,
        true,
        false
    ));
    assert!(!cond(
        "sel_a and not all of filter_*",
        true,
        false,
        false,
        true,
        true
    ));
    // Precedence: not > and > or.
    assert!(cond(
        "sel_a or sel_b and other_c",
        true,
        false,
        false,
        false,
        false
    ));
    assert!(!cond(
        "(sel_a or sel_b) and other_c",
        true,
        false,
        false,
        false,
        false
    ));
    assert!(cond(
        "not sel_a and sel_b",
        false,
        true,
        false,
        false,
        false
    ));
    assert!(!cond(
        "not (sel_a and sel_b) and other_c",
        true,
        true,
        true,
        false,
        false
    ));
    assert!(cond(
        "not (sel_a and sel_b) and other_c",
        true,
        false,
        true,
        false,
        false
    ));
    assert!(cond("((sel_a))", true, false, false, false, false));
    // Deprecated list of conditions: any of them.
    let d =
        "    a:\n        A: 1\n    b:\n        B: 1\n    condition:\n        - a\n        - b\n";
    assert!(fires(d, &[("B", json!(1))]));
}

#[test]
fn them_skips_underscore_identifiers() {
    let d = "    sel:\n        A: 1\n    _helper:\n        B: 1\n    condition: all of them\n";
    assert!(fires(d, &[("A", json!(1))]));
}

#[test]
fn evidence_lists_positive_selection_fields() {
    let rs = rules(
        "    sel:\n        Image|endswith: '\\cmd.exe'\n        CommandLine|contains: 'whoami'\n    filter:\n        User: 'SYSTEM'\n    condition: sel and not filter\n",
    );
    let r = rec(&[
        ("Image", json!("C:\\cmd.exe")),
        ("CommandLine", json!("cmd /c whoami")),
        ("User", json!("bob")),
    ]);
    let m = rs.matches(&r);
    assert_eq!(m.len(), 1);
    let mut fields = m[0].fields.clone();
    fields.sort();
    assert_eq!(
        fields,
        [
            ("CommandLine".to_string(), "cmd /c whoami".to_string()),
            ("Image".to_string(), "C:\\cmd.exe".to_string())
        ]
    );
    assert_eq!(m[0].rule.id, ID);
}

#[test]
fn neq_negates_a_term() {
    assert!(one("F|neq: 'x'", json!("y")));
    assert!(!one("F|neq: 'x'", json!("X")));
}
