//! What is triaged: the seed's event line, a JSON event or an incident, read into one
//! [`Subject`].

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use vigil_core::{Finding, Incident};

/// Longest event line or text field accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The line format, for error messages.
pub const LINE_FORMAT: &str = "TIME SRC_IP:PORT DST_IP:PORT EVENT_NAME EVENT_CONTENT, \
     e.g. `2023/10/9 11:23 172.24.158.39:45676 180.215.5.133:2599 emp3r0r木马攻击 \
     https中疑似存在emp3r0r恶意流量`";

/// Why an input cannot be triaged; each says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The line does not follow the seed's format.
    #[error("cannot read the event line: {reason}; expected {LINE_FORMAT}")]
    Line {
        /// What is wrong, in words.
        reason: String,
    },
    /// A JSON event lacks what triage needs.
    #[error("cannot triage the JSON event: {0}")]
    Event(String),
    /// The input is larger than [`MAX_LINE_BYTES`].
    #[error("the input is {0} bytes; at most {MAX_LINE_BYTES} are accepted")]
    TooLarge(usize),
}

/// The event under triage, whatever its origin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// When it happened (RFC 3339 UTC), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Source address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    /// Source port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Destination address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<IpAddr>,
    /// Destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// The event's name (the alert or rule name).
    pub name: String,
    /// The event's content (the alert text, message, payload excerpt).
    pub content: String,
    /// `host.name`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A file hash the event names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A user the event names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The incident triaged, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// The stored event, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The input as given (line, or JSON text), for the report.
    pub raw: String,
}

impl Subject {
    /// The text the classifier reads: name, content and the ports.
    pub fn text(&self) -> String {
        let mut s = format!("{} {}", self.name, self.content);
        if let Some(p) = self.dst_port {
            s.push_str(&format!(" dport:{p}"));
        }
        s
    }

    /// The value of a playbook placeholder (`src_ip`, `dst_port`, `host`, …), if known.
    pub fn field(&self, name: &str) -> Option<String> {
        match name {
            "src_ip" => self.src_ip.map(|i| i.to_string()),
            "dst_ip" => self.dst_ip.map(|i| i.to_string()),
            "src_port" => self.src_port.map(|p| p.to_string()),
            "dst_port" => self.dst_port.map(|p| p.to_string()),
            "host" => self.host.clone(),
            "sha256" => self.sha256.clone(),
            "user" => self.user.clone(),
            "name" => Some(self.name.clone()),
            "time" => self.time.clone(),
            _ => None,
        }
    }

    /// A short one-line description for titles.
    pub fn headline(&self) -> String {
        let mut s = self.name.clone();
        match (self.src_ip, self.dst_ip) {
            (Some(a), Some(b)) => s.push_str(&format!(" ({a} → {b})")),
            (Some(a), None) => s.push_str(&format!(" (from {a})")),
            (None, Some(b)) => s.push_str(&format!(" (to {b})")),
            (None, None) => {
                if let Some(h) = &self.host {
                    s.push_str(&format!(" on {h}"));
                }
            }
        }
        s
    }

    /// Reads a JSON event (ECS field names, nested or dotted).
    pub fn from_event(event: &Value) -> Result<Subject, InputError> {
        let obj = event
            .as_object()
            .ok_or_else(|| InputError::Event("an event must be a JSON object".into()))?;
        let raw = event.to_string();
        if raw.len() > MAX_LINE_BYTES {
            return Err(InputError::TooLarge(raw.len()));
        }
        let get = |path: &str| -> Option<&Value> {
            if let Some(v) = obj.get(path) {
                return Some(v);
            }
            let mut cur = event;
            for part in path.split('.') {
                cur = cur.get(part)?;
            }
            Some(cur)
        };
        let text = |path: &str| get(path).and_then(|v| v.as_str()).map(str::to_string);
        let ip = |path: &str| text(path).and_then(|s| s.parse::<IpAddr>().ok());
        let port = |path: &str| {
            get(path).and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .and_then(|p| u16::try_from(p).ok())
            })
        };
        let name = ["rule.name", "event.action", "event.kind", "event.category"]
            .iter()
            .find_map(|p| match get(p) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Array(a)) => a.first().and_then(|v| v.as_str()).map(str::to_string),
                _ => None,
            })
            .unwrap_or_else(|| "event".into());
        let content = [
            "message",
            "event.original",
            "rule.description",
            "event.reason",
        ]
        .iter()
        .find_map(|p| text(p))
        .or_else(|| text("process.command_line"))
        .or_else(|| text("url.original"))
        .unwrap_or_default();
        let sha256 = ["file.hash.sha256", "process.hash.sha256"]
            .iter()
            .find_map(|p| text(p))
            .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|s| s.to_ascii_lowercase());
        let time = text("@timestamp").and_then(|t| parse_time(&t));
        let subject = Subject {
            time,
            src_ip: ip("source.ip"),
            src_port: port("source.port"),
            dst_ip: ip("destination.ip"),
            dst_port: port("destination.port"),
            name,
            content,
            host: text("host.name"),
            sha256,
            user: text("user.name"),
            incident_id: None,
            event_id: text("event.id"),
            raw,
        };
        if subject.content.is_empty()
            && subject.src_ip.is_none()
            && subject.dst_ip.is_none()
            && subject.host.is_none()
            && subject.sha256.is_none()
        {
            return Err(InputError::Event(
                "it names no message, address, host or file hash to investigate; give at \
                 least one of `message`, `source.ip`, `destination.ip`, `host.name`, \
                 `file.hash.sha256`"
                    .into(),
            ));
        }
        Ok(subject)
    }

    /// Reads an incident and its findings: the title is the name, the findings' summaries
    /// the content, addresses and hashes from their evidence.
    pub fn from_incident(incident: &Incident, findings: &[Finding]) -> Subject {
        let mut content = Vec::new();
        let mut subject = Subject {
            time: Some(incident.first_seen.clone()),
            name: incident.title.clone(),
            host: incident.host_name.clone(),
            incident_id: Some(incident.id.clone()),
            ..Subject::default()
        };
        for f in findings.iter().take(50) {
            content.push(format!("[{}] {}", f.analyzer, f.summary));
            let ev = &f.evidence;
            let str_at = |path: &[&str]| {
                let mut cur = ev;
                for p in path {
                    cur = cur.get(p)?;
                }
                cur.as_str().map(str::to_string)
            };
            if subject.dst_ip.is_none() {
                subject.dst_ip = str_at(&["connection", "remote_ip"])
                    .or_else(|| str_at(&["destination", "ip"]))
                    .and_then(|s| s.parse().ok());
                subject.dst_port = ev
                    .pointer("/connection/remote_port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok());
            }
            if subject.src_ip.is_none() {
                subject.src_ip = str_at(&["source", "ip"]).and_then(|s| s.parse().ok());
            }
            if subject.sha256.is_none() {
                subject.sha256 = str_at(&["sha256"]);
            }
            if subject.user.is_none() {
                subject.user = str_at(&["user", "name"]);
            }
        }
        subject.content = content.join("; ");
        subject.raw = serde_json::to_string(incident).unwrap_or_default();
        subject
    }
}

/// Reads the seed's event line: `TIME SRC_IP:PORT DST_IP:PORT EVENT_NAME EVENT_CONTENT`.
/// The time may take one or two words; IPv6 endpoints are written `[addr]:port`; the name
/// is one word and the content the rest of the line (possibly empty).
pub fn parse_line(line: &str) -> Result<Subject, InputError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(InputError::TooLarge(line.len()));
    }
    let err = |reason: String| InputError::Line { reason };
    let line = line.trim();
    if line.is_empty() {
        return Err(err("the line is empty".into()));
    }
    let words: Vec<(usize, &str)> = split_words(line);
    let Some(src_at) = words.iter().position(|(_, w)| endpoint(w).is_some()) else {
        return Err(err(
            "it has no SRC_IP:PORT endpoint (such as 10.0.0.5:44321 or [2001:db8::1]:443)".into(),
        ));
    };
    if src_at == 0 {
        return Err(err("it starts with an endpoint instead of a time".into()));
    }
    if let Some((_, w)) = words[..src_at].iter().find(|(_, w)| looks_like_endpoint(w)) {
        return Err(err(format!(
            "`{w}` is not a valid IP:PORT endpoint (an IPv4 or [IPv6] address and a port \
             0-65535)"
        )));
    }
    if src_at > 2 {
        return Err(err(format!(
            "the time is `{}`, more than two words before the first endpoint",
            &line[..words[src_at].0].trim()
        )));
    }
    let time_text = line[..words[src_at].0].trim();
    let time = parse_time(time_text).ok_or_else(|| {
        err(format!(
            "`{time_text}` is not a time (accepted: 2023/10/9 11:23, 2023-10-09 11:23:05, \
             RFC 3339)"
        ))
    })?;
    let src = endpoint(words[src_at].1).expect("checked above");
    let Some((_, dst_word)) = words.get(src_at + 1) else {
        return Err(err(
            "it ends after the source endpoint; DST_IP:PORT is missing".into(),
        ));
    };
    let dst = endpoint(dst_word).ok_or_else(|| {
        err(format!(
            "`{dst_word}` is not a DST_IP:PORT endpoint (such as 180.215.5.133:2599)"
        ))
    })?;
    let Some((_, name)) = words.get(src_at + 2) else {
        return Err(err("it has no EVENT_NAME after the endpoints".into()));
    };
    let content = words
        .get(src_at + 3)
        .map(|(at, _)| line[*at..].trim().to_string())
        .unwrap_or_default();
    Ok(Subject {
        time: Some(time),
        src_ip: Some(src.ip()),
        src_port: Some(src.port()),
        dst_ip: Some(dst.ip()),
        dst_port: Some(dst.port()),
        name: name.to_string(),
        content,
        raw: line.to_string(),
        ..Subject::default()
    })
}

fn split_words(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push((s, &line[s..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

fn looks_like_endpoint(word: &str) -> bool {
    word.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && (host.parse::<IpAddr>().is_ok() || host.starts_with('['))
    })
}

fn endpoint(word: &str) -> Option<SocketAddr> {
    word.parse::<SocketAddr>().ok()
}

/// Reads the times security devices write; local times without an offset are taken as UTC.
pub fn parse_time(text: &str) -> Option<String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        );
    }
    const FORMATS: [&str; 8] = [
        "%Y/%m/%d %H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y/%m/%d-%H:%M:%S",
    ];
    FORMATS.iter().find_map(|f| {
        NaiveDateTime::parse_from_str(text, f).ok().map(|n| {
            Utc.from_utc_datetime(&n)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_seed_example() {
        let s = parse_line(
            "2023/10/9 11:23 172.24.158.39:45676 180.215.5.133:2599  emp3r0r木马攻击 \
             https中疑似存在emp3r0r恶意流量",
        )
        .unwrap();
        assert_eq!(s.time.as_deref(), Some("2023-10-09T11:23:00Z"));
        assert_eq!(s.src_ip, Some("172.24.158.39".parse().unwrap()));
        assert_eq!(s.src_port, Some(45676));
        assert_eq!(s.dst_ip, Some("180.215.5.133".parse().unwrap()));
        assert_eq!(s.dst_port, Some(2599));
        assert_eq!(s.name, "emp3r0r木马攻击");
        assert_eq!(s.content, "https中疑似存在emp3r0r恶意流量");
    }

    #[test]
    fn reads_other_times_ipv6_and_empty_content() {
        let s = parse_line("2024-03-01T12:00:00+08:00 [2001:db8::1]:443 10.0.0.1:80 scan").unwrap();
        assert_eq!(s.time.as_deref(), Some("2024-03-01T04:00:00Z"));
        assert_eq!(s.src_port, Some(443));
        assert_eq!(s.name, "scan");
        assert_eq!(s.content, "");
        let s =
            parse_line("2024-03-01 12:00:05 1.2.3.4:1 5.6.7.8:22 SSH暴力破解 多次 失败").unwrap();
        assert_eq!(s.content, "多次 失败");
    }

    #[test]
    fn bad_lines_say_what_was_expected() {
        for (line, needle) in [
            ("", "empty"),
            ("hello world", "no SRC_IP:PORT"),
            ("1.2.3.4:5 6.7.8.9:10 x", "starts with an endpoint"),
            ("yesterday 1.2.3.4:5 6.7.8.9:10 x", "not a time"),
            ("2023/10/9 11:23 1.2.3.4:5", "DST_IP:PORT is missing"),
            ("2023/10/9 11:23 1.2.3.4:5 nowhere x", "not a DST_IP:PORT"),
            ("2023/10/9 11:23 1.2.3.4:5 6.7.8.9:10", "no EVENT_NAME"),
            ("a b c d 1.2.3.4:5 6.7.8.9:10 x", "more than two words"),
            (
                "2023/10/9 11:23 1.2.3.4:99999 6.7.8.9:10 x",
                "`1.2.3.4:99999` is not a valid",
            ),
        ] {
            let e = parse_line(line).unwrap_err().to_string();
            assert!(e.contains(needle), "{line:?}: {e}");
            assert!(e.contains("TIME SRC_IP:PORT"), "{e}");
        }
        let long = "x".repeat(MAX_LINE_BYTES + 1);
        assert!(matches!(parse_line(&long), Err(InputError::TooLarge(_))));
    }

    #[test]
    fn reads_json_events() {
        let s = Subject::from_event(&json!({
            "@timestamp": "2024-01-01T00:00:00Z",
            "source": {"ip": "10.0.0.5", "port": 5555},
            "destination.ip": "8.8.8.8", "destination.port": "53",
            "rule": {"name": "DNS tunnel"}, "message": "long TXT queries",
            "host": {"name": "web-1"},
            "file": {"hash": {"sha256": "AB".repeat(32)}}
        }))
        .unwrap();
        assert_eq!(s.name, "DNS tunnel");
        assert_eq!(s.dst_port, Some(53));
        assert_eq!(s.host.as_deref(), Some("web-1"));
        assert_eq!(s.sha256, Some("ab".repeat(32)));
        assert!(Subject::from_event(&json!([1])).is_err());
        let e = Subject::from_event(&json!({"event": {"kind": "alert"}})).unwrap_err();
        assert!(e.to_string().contains("source.ip"), "{e}");
    }
}
