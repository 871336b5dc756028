//! EVTX records as ECS events and back.
//!
//! [`to_ecs`] turns a record into the event Vigil stores: Winlogbeat's `winlog.*` fields
//! (channel, event id, provider, computer, record id, `event_data`, `user_data`, …), the ECS
//! basics (`@timestamp`, `host.name`, `event.code`, `event.provider`, a category for the
//! well-known Sysmon and Security event ids) and, for process creations, `process.*`. The
//! event id is derived from the computer, channel, record id and time, so uploading the same
//! log twice stores each record once.
//!
//! [`record_from_winlog`] rebuilds the evtx JSON layout from such an event (or from one that
//! Winlogbeat shipped), so the Sigma engine reads a stored event exactly as it reads the
//! record in the file.

use crate::EvtxRecord;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// `System` fields copied as they are, as (`winlog.*` name, EVTX name).
const SYSTEM_NUMBERS: [(&str, &str); 5] = [
    ("level", "Level"),
    ("task", "Task"),
    ("opcode", "Opcode"),
    ("keywords", "Keywords"),
    ("version", "Version"),
];

fn attr<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get("#attributes")?.get(key)
}

/// The event id of `System.EventID`, plain or with qualifiers.
fn event_id(system: &Value) -> Option<u64> {
    match system.get("EventID")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        obj @ Value::Object(_) => match obj.get("#text")? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The ECS category of well-known event ids, when there is one.
fn category(channel: &str, id: u64) -> Option<&'static str> {
    if channel.eq_ignore_ascii_case("Microsoft-Windows-Sysmon/Operational") {
        return match id {
            1 | 5 | 8 | 10 | 25 => Some("process"),
            3 | 22 => Some("network"),
            2 | 11 | 15 | 23 | 26 | 27 | 28 | 29 => Some("file"),
            12..=14 => Some("registry"),
            6 => Some("driver"),
            7 => Some("library"),
            _ => None,
        };
    }
    if channel.eq_ignore_ascii_case("Security") {
        return match id {
            4624 | 4625 | 4634 | 4647 | 4648 | 4768 | 4769 | 4771 | 4776 => Some("authentication"),
            4688 | 4689 => Some("process"),
            4720 | 4722 | 4724 | 4725 | 4726 | 4728 | 4732 | 4738 | 4756 => Some("iam"),
            4657 => Some("registry"),
            4663 | 4656 | 4660 => Some("file"),
            _ => None,
        };
    }
    None
}

/// `record` as an ECS event (a JSON object for `Event::from_input`).
pub fn to_ecs(record: &EvtxRecord) -> Value {
    let event = record.data.get("Event").unwrap_or(&record.data);
    let system = event.get("System").cloned().unwrap_or(Value::Null);
    let channel = text(system.get("Channel")).unwrap_or_default();
    let computer = text(system.get("Computer")).unwrap_or_default();
    let provider = system.get("Provider").and_then(|p| text(attr(p, "Name")));
    let provider_guid = system.get("Provider").and_then(|p| text(attr(p, "Guid")));
    let id = event_id(&system);
    let record_id = system
        .get("EventRecordID")
        .and_then(Value::as_u64)
        .unwrap_or(record.record_id);
    let timestamp = system
        .get("TimeCreated")
        .and_then(|t| text(attr(t, "SystemTime")))
        .unwrap_or_else(|| record.timestamp.clone());

    let mut digest = Sha256::new();
    for part in [
        computer.as_str(),
        channel.as_str(),
        &record_id.to_string(),
        &timestamp,
    ] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let hash = digest.finalize();
    let eid: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();

    let mut winlog = Map::new();
    winlog.insert("channel".into(), json!(channel));
    winlog.insert("computer_name".into(), json!(computer));
    winlog.insert("record_id".into(), json!(record_id));
    if let Some(id) = id {
        winlog.insert("event_id".into(), json!(id.to_string()));
    }
    if let Some(p) = &provider {
        winlog.insert("provider_name".into(), json!(p));
    }
    if let Some(g) = &provider_guid {
        winlog.insert("provider_guid".into(), json!(g));
    }
    for (ecs, key) in SYSTEM_NUMBERS {
        if let Some(v) = system.get(key).filter(|v| !v.is_null()) {
            winlog.insert(ecs.into(), v.clone());
        }
    }
    if let Some(exec) = system.get("Execution") {
        let mut process = Map::new();
        if let Some(pid) = attr(exec, "ProcessID") {
            process.insert("pid".into(), pid.clone());
        }
        if let Some(tid) = attr(exec, "ThreadID") {
            process.insert("thread".into(), json!({"id": tid}));
        }
        if !process.is_empty() {
            winlog.insert("process".into(), Value::Object(process));
        }
    }
    if let Some(uid) = system.get("Security").and_then(|s| text(attr(s, "UserID"))) {
        winlog.insert("user".into(), json!({"identifier": uid}));
    }
    if let Some(d) = event.get("EventData").filter(|v| !v.is_null()) {
        winlog.insert("event_data".into(), d.clone());
    }
    if let Some(d) = event.get("UserData").filter(|v| !v.is_null()) {
        winlog.insert("user_data".into(), d.clone());
    }

    let mut ev = Map::new();
    ev.insert("id".into(), json!(format!("evtx-{eid}")));
    ev.insert("kind".into(), json!("event"));
    ev.insert("module".into(), json!("evtx"));
    if let Some(id) = id {
        ev.insert("code".into(), json!(id.to_string()));
        if let Some(c) = category(&channel, id) {
            ev.insert("category".into(), json!([c]));
        }
    }
    if let Some(p) = &provider {
        ev.insert("provider".into(), json!(p));
    }
    let mut out = Map::new();
    out.insert("@timestamp".into(), json!(timestamp));
    out.insert("event".into(), Value::Object(ev));
    if !computer.is_empty() {
        out.insert("host".into(), json!({"name": computer}));
    }
    // Process creations also fill `process.*`, for scripts and the other analyzers.
    let data = event.get("EventData");
    let field = |k: &str| data.and_then(|d| text(d.get(k)));
    let creation = match (channel.as_str(), id) {
        ("Microsoft-Windows-Sysmon/Operational", Some(1)) => Some(("Image", "ParentImage")),
        ("Security", Some(4688)) => Some(("NewProcessName", "ParentProcessName")),
        _ => None,
    };
    if let Some((image, parent)) = creation {
        let mut p = Map::new();
        if let Some(v) = field(image) {
            p.insert("executable".into(), json!(v));
            if let Some(name) = v.rsplit(['\\', '/']).next() {
                p.insert("name".into(), json!(name));
            }
        }
        if let Some(v) = field("CommandLine") {
            p.insert("command_line".into(), json!(v));
        }
        if let Some(v) = field(parent) {
            p.insert("parent".into(), json!({"executable": v}));
        }
        if !p.is_empty() {
            out.insert("process".into(), Value::Object(p));
        }
        if let Some(u) = field("User").or_else(|| field("SubjectUserName")) {
            out.insert("user".into(), json!({"name": u}));
        }
    }
    out.insert("winlog".into(), Value::Object(winlog));
    Value::Object(out)
}

/// The evtx JSON layout (`{"Event":{"System":…,"EventData":…}}`) of an event with
/// Winlogbeat's `winlog.*` fields; `None` when it has no `winlog.channel`.
pub fn record_from_winlog(event: &Value) -> Option<Value> {
    let w = event.get("winlog")?;
    let channel = w.get("channel")?.as_str()?;
    let mut system = Map::new();
    system.insert("Channel".into(), json!(channel));
    if let Some(id) = w.get("event_id").and_then(|v| text(Some(v))) {
        let id: Value = id.trim().parse::<u64>().map_or(json!(id), |n| json!(n));
        system.insert("EventID".into(), id);
    }
    let computer = w
        .get("computer_name")
        .cloned()
        .or_else(|| event.get("host").and_then(|h| h.get("name")).cloned());
    if let Some(c) = computer {
        system.insert("Computer".into(), c);
    }
    let mut provider = Map::new();
    if let Some(p) = w.get("provider_name") {
        provider.insert("Name".into(), p.clone());
    }
    if let Some(g) = w.get("provider_guid") {
        provider.insert("Guid".into(), g.clone());
    }
    if !provider.is_empty() {
        system.insert("Provider".into(), json!({"#attributes": provider}));
    }
    if let Some(r) = w.get("record_id") {
        system.insert("EventRecordID".into(), r.clone());
    }
    for (ecs, key) in SYSTEM_NUMBERS {
        if let Some(v) = w.get(ecs) {
            system.insert(key.into(), v.clone());
        }
    }
    if let Some(p) = w.get("process") {
        let mut a = Map::new();
        if let Some(pid) = p.get("pid") {
            a.insert("ProcessID".into(), pid.clone());
        }
        if let Some(tid) = p.get("thread").and_then(|t| t.get("id")) {
            a.insert("ThreadID".into(), tid.clone());
        }
        system.insert("Execution".into(), json!({"#attributes": a}));
    }
    if let Some(uid) = w.get("user").and_then(|u| u.get("identifier")) {
        system.insert("Security".into(), json!({"#attributes": {"UserID": uid}}));
    }
    if let Some(ts) = event.get("@timestamp") {
        system.insert(
            "TimeCreated".into(),
            json!({"#attributes": {"SystemTime": ts}}),
        );
    }
    let mut ev = Map::new();
    ev.insert("System".into(), Value::Object(system));
    if let Some(d) = w.get("event_data") {
        ev.insert("EventData".into(), d.clone());
    }
    if let Some(d) = w.get("user_data") {
        ev.insert("UserData".into(), d.clone());
    }
    Some(json!({ "Event": ev }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysmon_1() -> EvtxRecord {
        EvtxRecord {
            record_id: 7,
            timestamp: "2025-11-27T07:40:10.1653240Z".into(),
            data: json!({"Event": {
                "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
                "System": {
                    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon", "Guid": "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}"}},
                    "EventID": 1, "Version": 5, "Level": 4, "Task": 1, "Opcode": 0,
                    "Keywords": "0x8000000000000000",
                    "TimeCreated": {"#attributes": {"SystemTime": "2025-11-27T07:40:10.1653240Z"}},
                    "EventRecordID": 571146, "Correlation": null,
                    "Execution": {"#attributes": {"ProcessID": 3544, "ThreadID": 4272}},
                    "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "ws-17",
                    "Security": {"#attributes": {"UserID": "S-1-5-18"}}
                },
                "EventData": {"Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "cmd.exe /c whoami",
                              "ParentImage": "C:\\Windows\\explorer.exe", "User": "CORP\\jdoe", "ProcessId": 4460}
            }}),
        }
    }

    #[test]
    fn a_sysmon_process_creation_becomes_ecs_with_winlog_fields() {
        let e = to_ecs(&sysmon_1());
        assert_eq!(e["@timestamp"], "2025-11-27T07:40:10.1653240Z");
        assert_eq!(e["host"]["name"], "ws-17");
        assert_eq!(e["event"]["code"], "1");
        assert_eq!(e["event"]["category"], json!(["process"]));
        assert!(e["event"]["id"].as_str().unwrap().starts_with("evtx-"));
        assert_eq!(
            e["winlog"]["channel"],
            "Microsoft-Windows-Sysmon/Operational"
        );
        assert_eq!(e["winlog"]["event_id"], "1");
        assert_eq!(e["winlog"]["record_id"], 571146);
        assert_eq!(
            e["winlog"]["event_data"]["CommandLine"],
            "cmd.exe /c whoami"
        );
        assert_eq!(e["process"]["name"], "cmd.exe");
        assert_eq!(e["process"]["command_line"], "cmd.exe /c whoami");
        assert_eq!(e["user"]["name"], "CORP\\jdoe");
        // Same record, same id: an upload twice stores it once.
        assert_eq!(to_ecs(&sysmon_1())["event"]["id"], e["event"]["id"]);
    }

    #[test]
    fn the_winlog_fields_give_back_the_evtx_layout() {
        let original = sysmon_1();
        let back = record_from_winlog(&to_ecs(&original)).unwrap();
        let (a, b) = (&original.data["Event"], &back["Event"]);
        assert_eq!(a["EventData"], b["EventData"]);
        for k in [
            "EventID",
            "Channel",
            "Computer",
            "EventRecordID",
            "Provider",
            "Execution",
            "Security",
            "TimeCreated",
            "Level",
            "Task",
            "Keywords",
        ] {
            assert_eq!(a["System"][k], b["System"][k], "{k}");
        }
        assert!(record_from_winlog(&json!({"host": {"name": "x"}})).is_none());
    }

    #[test]
    fn qualifiers_and_odd_shapes_do_not_break_it() {
        let r = EvtxRecord {
            record_id: 1,
            timestamp: "2026-01-01T00:00:00Z".into(),
            data: json!({"Event": {"System": {"EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 4688},
                "Channel": "Security"}, "EventData": {"NewProcessName": "C:\\x\\a.exe"}}}),
        };
        let e = to_ecs(&r);
        assert_eq!(e["winlog"]["event_id"], "4688");
        assert_eq!(e["process"]["executable"], "C:\\x\\a.exe");
        assert!(e.get("host").is_none());
        let weird = EvtxRecord {
            record_id: 2,
            timestamp: "2026-01-01T00:00:00Z".into(),
            data: json!([1, 2]),
        };
        let e = to_ecs(&weird);
        assert_eq!(e["@timestamp"], "2026-01-01T00:00:00Z");
    }
}
