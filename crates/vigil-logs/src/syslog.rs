//! Syslog messages (RFC 5424 and the BSD format of RFC 3164) into ECS events.
//!
//! The parser takes one message (a UDP datagram, or one frame of a TCP stream) as bytes from
//! anyone who can reach the port, so it never panics, bounds what it keeps, and accepts what
//! real senders emit: a message whose header does not parse still becomes an event, with the
//! whole text as its message and `log.syslog.malformed: true`.

use serde_json::{Map, Value, json};

/// Longest message kept, in bytes; longer ones are cut on a character boundary.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// One parsed syslog message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Syslog {
    /// `PRI` (facility × 8 + severity), when present and valid.
    pub priority: Option<u8>,
    /// 1 for RFC 5424, `None` for BSD syslog.
    pub version: Option<u8>,
    /// The timestamp as sent (RFC 3339 for RFC 5424, `Mmm dd hh:mm:ss` for BSD).
    pub timestamp: Option<String>,
    /// Sender host name.
    pub hostname: Option<String>,
    /// Program (RFC 5424 APP-NAME, BSD tag).
    pub app_name: Option<String>,
    /// Process id.
    pub procid: Option<String>,
    /// RFC 5424 MSGID.
    pub msgid: Option<String>,
    /// RFC 5424 STRUCTURED-DATA as sent.
    pub structured_data: Option<String>,
    /// The free-text message.
    pub message: String,
    /// The header did not parse; `message` holds the whole text.
    pub malformed: bool,
}

fn nil(s: &str) -> Option<String> {
    (s != "-" && !s.is_empty()).then(|| s.to_string())
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Splits off a leading `<PRI>`.
fn priority(s: &str) -> (Option<u8>, &str) {
    let Some(rest) = s.strip_prefix('<') else {
        return (None, s);
    };
    let Some(close) = rest.find('>').filter(|&i| (1..=3).contains(&i)) else {
        return (None, s);
    };
    match rest[..close].parse::<u8>() {
        Ok(p) if p <= 191 && rest[..close].bytes().all(|b| b.is_ascii_digit()) => {
            (Some(p), &rest[close + 1..])
        }
        _ => (None, s),
    }
}

fn next_field(s: &str) -> Option<(&str, &str)> {
    let s = s.strip_prefix(' ').unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    Some(match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    })
}

/// Splits RFC 5424 STRUCTURED-DATA (`-` or `[id k="v"]…`) from the message after it.
fn structured_data(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('-') {
        return Some(("-", rest.strip_prefix(' ').unwrap_or(rest)));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] == b'[' {
        // Inside an element: `]` ends it unless escaped in a quoted value.
        let mut quoted = false;
        i += 1;
        loop {
            match bytes.get(i)? {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b']' if !quoted => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let rest = &s[i..];
    Some((&s[..i], rest.strip_prefix(' ').unwrap_or(rest)))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses one message.
pub fn parse(bytes: &[u8]) -> Syslog {
    let text = String::from_utf8_lossy(bytes);
    let text = cut(text.trim_end_matches(['\n', '\r', '\0']), MAX_MESSAGE);
    let (pri, rest) = priority(text);
    if let Some(after) = rest.strip_prefix("1 ")
        && let Some(parsed) = parse_5424(after)
    {
        return Syslog {
            priority: pri,
            version: Some(1),
            ..parsed
        };
    }
    if let Some(parsed) = parse_3164(rest) {
        return Syslog {
            priority: pri,
            ..parsed
        };
    }
    Syslog {
        priority: pri,
        message: rest.to_string(),
        malformed: pri.is_none(),
        ..Syslog::default()
    }
}

fn parse_5424(s: &str) -> Option<Syslog> {
    let (timestamp, s) = next_field(s)?;
    let (hostname, s) = next_field(s)?;
    let (app, s) = next_field(s)?;
    let (procid, s) = next_field(s)?;
    let (msgid, s) = next_field(s)?;
    let (sd, msg) = structured_data(s.strip_prefix(' ').unwrap_or(s))?;
    if timestamp != "-" && !timestamp.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(Syslog {
        timestamp: nil(timestamp),
        hostname: nil(cut(hostname, 255)),
        app_name: nil(cut(app, 48)),
        procid: nil(cut(procid, 128)),
        msgid: nil(cut(msgid, 32)),
        structured_data: nil(sd),
        message: msg.strip_prefix('\u{feff}').unwrap_or(msg).to_string(),
        ..Syslog::default()
    })
}

fn parse_3164(s: &str) -> Option<Syslog> {
    // `Mmm dd hh:mm:ss` (day padded with a space or a zero).
    let month = s.get(..3)?;
    if !MONTHS.contains(&month) || s.as_bytes().get(3) != Some(&b' ') {
        return None;
    }
    let rest = s[4..].trim_start_matches(' ');
    let (day, rest) = rest.split_once(' ')?;
    let (time, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let time_ok = time.len() == 8
        && time.bytes().enumerate().all(|(i, b)| {
            if i == 2 || i == 5 {
                b == b':'
            } else {
                b.is_ascii_digit()
            }
        });
    if !(1..=2).contains(&day.len()) || !day.bytes().all(|b| b.is_ascii_digit()) || !time_ok {
        return None;
    }
    let timestamp = format!("{month} {day:>2} {time}");
    // Then HOSTNAME and TAG[PID]: — the host is missing when the next word is the tag.
    let (first, after_first) = rest.split_once(' ').unwrap_or((rest, ""));
    let (hostname, tagged) = if first.ends_with(':') || first.contains('[') {
        (None, rest)
    } else {
        (Some(first), after_first)
    };
    let (tag_part, message) = match tagged.find(": ") {
        Some(i) if i <= 128 && !tagged[..i].contains(' ') => (Some(&tagged[..i]), &tagged[i + 2..]),
        _ => match tagged.strip_suffix(':') {
            Some(t) if !t.contains(' ') => (Some(t), ""),
            _ => (None, tagged),
        },
    };
    let (app_name, procid) = match tag_part {
        Some(tag) => match tag.split_once('[') {
            Some((name, pid)) => (Some(name), Some(pid.trim_end_matches(']'))),
            None => (Some(tag), None),
        },
        None => (None, None),
    };
    Some(Syslog {
        timestamp: Some(timestamp),
        hostname: hostname.map(|h| cut(h, 255).to_string()),
        app_name: app_name.and_then(|a| nil(cut(a, 48))),
        procid: procid.and_then(|p| nil(cut(p, 128))),
        message: message.to_string(),
        ..Syslog::default()
    })
}

const SEVERITIES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
];

impl Syslog {
    /// The message as an ECS event document (for `vigil_core::Event::from_input`). The
    /// sender's address, when known, is `source.ip`.
    pub fn to_ecs(&self, original: &[u8], peer: Option<std::net::IpAddr>) -> Value {
        let mut log = Map::new();
        if let Some(p) = self.priority {
            log.insert(
                "syslog".into(),
                json!({
                    "priority": p,
                    "facility": {"code": p / 8},
                    "severity": {"code": p % 8, "name": SEVERITIES[usize::from(p % 8)]},
                }),
            );
        }
        let syslog = log
            .entry("syslog")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("an object");
        if let Some(v) = self.version {
            syslog.insert("version".into(), json!(v.to_string()));
        }
        if let Some(m) = &self.msgid {
            syslog.insert("msgid".into(), json!(m));
        }
        if let Some(sd) = &self.structured_data {
            syslog.insert("structured_data".into(), json!(sd));
        }
        if self.malformed {
            syslog.insert("malformed".into(), json!(true));
        }
        if syslog.is_empty() {
            log.remove("syslog");
        }
        let mut doc = json!({
            "event": {"kind": "event", "category": ["log"], "module": "syslog"},
            "message": self.message,
            "log": log,
        });
        // The frame's own line ending is not part of the message (issue 23: newline-framed
        // TCP kept it in `event.original`).
        let end = original
            .iter()
            .rposition(|b| !matches!(b, b'\n' | b'\r' | b'\0'))
            .map_or(0, |i| i + 1);
        let original = String::from_utf8_lossy(&original[..end]);
        // Longer than what is kept: marked like a followed file's long line.
        if original.len() > MAX_MESSAGE {
            doc["log"]["truncated"] = json!(true);
        }
        doc["event"]["original"] = json!(cut(&original, MAX_MESSAGE));
        if let Some(h) = &self.hostname {
            doc["host"] = json!({"hostname": h, "name": h});
        }
        if let Some(a) = &self.app_name {
            doc["process"] = json!({"name": a});
            if let Some(pid) = self.procid.as_deref().and_then(|p| p.parse::<u64>().ok()) {
                doc["process"]["pid"] = json!(pid);
            }
        }
        if let Some(p) = self.priority {
            doc["log"]["level"] = json!(SEVERITIES[usize::from(p % 8)]);
        }
        if let Some(ip) = peer {
            doc["source"] = json!({"ip": ip.to_string()});
        }
        // RFC 5424 timestamps are RFC 3339 and become @timestamp; BSD ones have no year and
        // no zone, so the receive time stands and the sent one is kept as text.
        match (&self.timestamp, self.version) {
            (Some(ts), Some(_)) if chrono::DateTime::parse_from_rfc3339(ts).is_ok() => {
                doc["@timestamp"] = json!(ts);
            }
            (Some(ts), _) => {
                doc["log"]["syslog"]["timestamp"] = json!(ts);
            }
            _ => {}
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424() {
        let m = parse(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App\\]lication\"] An application event log entry...",
        );
        assert_eq!(m.priority, Some(165));
        assert_eq!(m.version, Some(1));
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(m.app_name.as_deref(), Some("evntslog"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid.as_deref(), Some("ID47"));
        assert!(
            m.structured_data
                .as_deref()
                .unwrap()
                .ends_with("App\\]lication\"]")
        );
        assert_eq!(m.message, "An application event log entry...");
        let e = m.to_ecs(b"x", None);
        assert_eq!(e["@timestamp"], "2003-10-11T22:14:15.003Z");
        assert_eq!(e["log"]["syslog"]["severity"]["name"], "notice");
        assert_eq!(e["log"]["syslog"]["facility"]["code"], 20);
        let m = parse(b"<34>1 - - - - - -");
        assert_eq!((m.message.as_str(), m.malformed), ("", false));
    }

    #[test]
    fn rfc3164() {
        let m = parse(
            b"<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick on /dev/pts/8\n",
        );
        assert_eq!(m.priority, Some(34));
        assert_eq!(m.timestamp.as_deref(), Some("Oct 11 22:14:15"));
        assert_eq!(m.hostname.as_deref(), Some("mymachine"));
        assert_eq!(m.app_name.as_deref(), Some("su"));
        assert_eq!(m.procid.as_deref(), Some("123"));
        assert_eq!(m.message, "'su root' failed for lonvick on /dev/pts/8");
        let e = m.to_ecs(b"x", "10.0.0.9".parse().ok());
        assert_eq!(e["process"]["pid"], 123);
        assert_eq!(e["source"]["ip"], "10.0.0.9");
        assert_eq!(e["log"]["syslog"]["timestamp"], "Oct 11 22:14:15");
        // No host name, single-digit day.
        let m = parse(b"<13>Feb  5 17:32:18 sshd[99]: Accepted password");
        assert_eq!((m.hostname, m.app_name.as_deref()), (None, Some("sshd")));
        assert_eq!(m.message, "Accepted password");
    }

    #[test]
    fn malformed_input_still_becomes_an_event() {
        for raw in [
            &b""[..],
            b"<",
            b"<999>hello",
            b"<1a>x",
            b"<13>1 ",
            b"<13>1 2003-10-11T22:14:15Z host app - - [unterminated",
            b"Oct 99 zz:zz:zz x",
            b"\xff\xfe\x00garbage",
            b"<13>Oct 11 22:14:15",
        ] {
            let m = parse(raw);
            let e = m.to_ecs(raw, None);
            assert_eq!(e["event"]["category"][0], "log");
        }
        assert!(parse(b"plain text").malformed);
        assert_eq!(parse(b"<999>hello").priority, None);
        let long = vec![b'a'; MAX_MESSAGE * 2];
        assert_eq!(parse(&long).message.len(), MAX_MESSAGE);
        // Issue 23: a cut message is marked, and a frame's line ending is not kept.
        let doc = parse(&long).to_ecs(&long, None);
        assert_eq!(doc["log"]["truncated"], true);
        assert_eq!(
            doc["event"]["original"].as_str().unwrap().len(),
            MAX_MESSAGE
        );
        let line = b"<13>Dec  7 10:00:00 h app: hi\r\n";
        let doc = parse(line).to_ecs(line, None);
        assert_eq!(doc["event"]["original"], "<13>Dec  7 10:00:00 h app: hi");
        assert!(doc["log"].get("truncated").is_none());
        let multibyte = "é".repeat(MAX_MESSAGE);
        assert!(parse(multibyte.as_bytes()).message.len() <= MAX_MESSAGE);
    }
}
