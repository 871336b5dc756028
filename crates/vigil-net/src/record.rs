//! One network connection as the detector sees it: seed 002's request shape
//! (`process_id`, `process_name`, `local_ip`, `remote_ip`, `protocol`, `bytes_sent`,
//! `bytes_received`) plus ports, direction, state, duration, timestamp and host, read from
//! that JSON or from an ECS `network` event. Validation names the field at fault.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;
use vigil_core::{Event, FieldLookup};

/// Longest process or host name kept.
const MAX_NAME: usize = 256;

/// Transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
    /// Anything else.
    Other,
}

impl Protocol {
    /// Reads `TCP`, `tcp`, `udp6`, `ICMP`, … (any case; a trailing `4`/`6` is ignored).
    pub fn parse(s: &str) -> Option<Protocol> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.trim_end_matches(['4', '6']);
        Some(match s {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" | "icmpv" => Protocol::Icmp,
            "" => return None,
            _ => Protocol::Other,
        })
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Other => "other",
        }
    }
}

/// Who opened the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// This host connected out.
    Outbound,
    /// A remote host connected in (the local port is listening).
    Inbound,
    /// Not known.
    #[default]
    Unknown,
}

/// One connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// When it was seen.
    pub timestamp: DateTime<Utc>,
    /// The host it was seen on (`host.name`).
    pub host: String,
    /// Process id.
    pub process_id: Option<u32>,
    /// Process name (`chrome.exe`).
    pub process_name: String,
    /// Local address.
    pub local_ip: Option<IpAddr>,
    /// Local port.
    pub local_port: Option<u16>,
    /// Remote address.
    pub remote_ip: IpAddr,
    /// Remote port.
    pub remote_port: Option<u16>,
    /// Transport.
    pub protocol: Protocol,
    /// Who opened it.
    pub direction: Direction,
    /// Socket state (`ESTABLISHED`, `SYN_SENT`, …), upper-case.
    pub state: Option<String>,
    /// Bytes this host sent.
    pub bytes_sent: u64,
    /// Bytes this host received.
    pub bytes_received: u64,
    /// How long it lasted, in seconds.
    pub duration_secs: f64,
}

/// Why a record was refused; `field` names what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct RecordError {
    /// The field at fault (seed names for seed input, ECS paths for events).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// A name from an event, trimmed and cut to [`MAX_NAME`] bytes on a character boundary,
/// so that it reads back through [`ConnectionRecord::from_seed_json`].
fn clip(s: &str) -> String {
    let s = s.trim();
    let mut end = s.len().min(MAX_NAME);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim_end().to_string()
}

fn err(field: &str, reason: impl Into<String>) -> RecordError {
    RecordError {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn name(field: &str, v: Option<&Value>, required: bool) -> Result<Option<String>, RecordError> {
    match v {
        None | Some(Value::Null) if required => Err(err(field, "is required")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() && required {
                return Err(err(field, "must not be empty"));
            }
            if s.len() > MAX_NAME {
                return Err(err(field, format!("is longer than {MAX_NAME} bytes")));
            }
            Ok((!s.is_empty()).then(|| s.to_string()))
        }
        Some(_) => Err(err(field, "must be a string")),
    }
}

fn ip(field: &str, v: Option<&Value>, required: bool) -> Result<Option<IpAddr>, RecordError> {
    match name(field, v, required)? {
        None => Ok(None),
        Some(s) => {
            // `[::1]` and a zone id (`fe80::1%eth0`) are common in collector output.
            let bare = s.trim_start_matches('[').trim_end_matches(']');
            let bare = bare.split('%').next().unwrap_or(bare);
            bare.parse()
                .map(Some)
                .map_err(|_| err(field, format!("`{s}` is not an IP address")))
        }
    }
}

fn count(field: &str, v: Option<&Value>) -> Result<u64, RecordError> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(u)
            } else if n.as_i64().is_some_and(|i| i < 0) || n.as_f64().is_some_and(|f| f < 0.0) {
                Err(err(field, "must not be negative"))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f < 1.8e19 => Ok(f as u64),
                    _ => Err(err(field, "is too large")),
                }
            }
        }
        Some(_) => Err(err(field, "must be a number")),
    }
}

fn port(field: &str, v: Option<&Value>) -> Result<Option<u16>, RecordError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .map(Some)
            .ok_or_else(|| err(field, "must be a port number, 0 to 65535")),
        Some(_) => Err(err(field, "must be a port number, 0 to 65535")),
    }
}

fn seconds(field: &str, v: Option<&Value>, scale: f64) -> Result<f64, RecordError> {
    match v {
        None | Some(Value::Null) => Ok(0.0),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(f * scale),
            Some(f) if f < 0.0 => Err(err(field, "must not be negative")),
            _ => Err(err(field, "must be a finite number")),
        },
        Some(_) => Err(err(field, "must be a number")),
    }
}

fn timestamp(
    field: &str,
    v: Option<&Value>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, RecordError> {
    match v {
        None | Some(Value::Null) => Ok(now),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| err(field, format!("`{s}` is not an RFC 3339 time"))),
        Some(_) => Err(err(field, "must be an RFC 3339 time string")),
    }
}

fn direction(field: &str, v: Option<&Value>) -> Result<Direction, RecordError> {
    Ok(
        match name(field, v, false)?
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("unknown") => Direction::Unknown,
            Some("outbound" | "egress" | "out" | "outgoing") => Direction::Outbound,
            Some("inbound" | "ingress" | "in" | "incoming") => Direction::Inbound,
            // ECS also has internal/external/listening/...: not an initiator.
            Some(_) => Direction::Unknown,
        },
    )
}

/// Fields of the seed's JSON shape (and Vigil's additions) that a record may carry.
pub const SEED_FIELDS: [&str; 16] = [
    "timestamp",
    "host",
    "process_id",
    "process_name",
    "local_ip",
    "local_port",
    "remote_ip",
    "remote_port",
    "protocol",
    "direction",
    "state",
    "bytes_sent",
    "bytes_received",
    "duration",
    "agent_id",
    "hostname",
];

impl ConnectionRecord {
    /// Reads seed 002's JSON (`process_name`, `remote_ip`, `protocol` required; the rest
    /// optional). Unknown fields are refused so that a typo is not silently ignored.
    /// `host` falls back to `default_host` (the caller's identity), then `unknown`.
    pub fn from_seed_json(
        v: &Value,
        now: DateTime<Utc>,
        default_host: Option<&str>,
    ) -> Result<ConnectionRecord, RecordError> {
        let Some(obj) = v.as_object() else {
            return Err(err("*", "a connection record is a JSON object"));
        };
        if let Some(k) = obj.keys().find(|k| !SEED_FIELDS.contains(&k.as_str())) {
            return Err(err(
                k,
                format!("unknown field; known fields are {}", SEED_FIELDS.join(", ")),
            ));
        }
        let protocol_raw = name("protocol", obj.get("protocol"), true)?.unwrap_or_default();
        let protocol = Protocol::parse(&protocol_raw)
            .ok_or_else(|| err("protocol", "is required (TCP, UDP, ICMP)"))?;
        let process_id = match obj.get("process_id") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_u64()
                    .and_then(|p| u32::try_from(p).ok())
                    .ok_or_else(|| err("process_id", "must be a non-negative integer"))?,
            ),
            Some(_) => return Err(err("process_id", "must be a non-negative integer")),
        };
        let host = name("host", obj.get("host"), false)?
            .or(name("hostname", obj.get("hostname"), false)?)
            .or(default_host.map(str::to_string))
            .unwrap_or_else(|| "unknown".to_string());
        Ok(ConnectionRecord {
            timestamp: timestamp("timestamp", obj.get("timestamp"), now)?,
            host,
            process_id,
            process_name: name("process_name", obj.get("process_name"), true)?.unwrap_or_default(),
            local_ip: ip("local_ip", obj.get("local_ip"), false)?,
            local_port: port("local_port", obj.get("local_port"))?,
            remote_ip: ip("remote_ip", obj.get("remote_ip"), true)?
                .ok_or_else(|| err("remote_ip", "is required"))?,
            remote_port: port("remote_port", obj.get("remote_port"))?,
            protocol,
            direction: direction("direction", obj.get("direction"))?,
            state: name("state", obj.get("state"), false)?.map(|s| s.to_ascii_uppercase()),
            bytes_sent: count("bytes_sent", obj.get("bytes_sent"))?,
            bytes_received: count("bytes_received", obj.get("bytes_received"))?,
            duration_secs: seconds("duration", obj.get("duration"), 1.0)?,
        })
    }

    /// Reads an ECS network event: `destination.ip` (or `source.ip` for inbound) is the
    /// remote end, `source.bytes`/`destination.bytes` the bytes each way, `event.duration`
    /// in nanoseconds. Returns `Ok(None)` when the event is not about a connection (no
    /// remote address).
    pub fn from_event(e: &Event) -> Result<Option<ConnectionRecord>, RecordError> {
        let dir = direction("network.direction", e.get("network.direction"))?;
        let (local, remote) = match dir {
            Direction::Inbound => ("destination", "source"),
            _ => ("source", "destination"),
        };
        let remote_field = format!("{remote}.ip");
        let Some(remote_ip) = ip(&remote_field, e.get(&remote_field), false)? else {
            return Ok(None);
        };
        let protocol = e
            .get_str("network.transport")
            .or(e.get_str("network.protocol"))
            .and_then(Protocol::parse)
            .unwrap_or(Protocol::Other);
        let process_id = e.get_i64("process.pid").and_then(|p| u32::try_from(p).ok());
        Ok(Some(ConnectionRecord {
            timestamp: e.timestamp(),
            host: clip(e.host_name().unwrap_or("unknown")),
            process_id,
            process_name: clip(e.get_str("process.name").unwrap_or("")),
            local_ip: ip(&format!("{local}.ip"), e.get(&format!("{local}.ip")), false)?,
            local_port: port(&format!("{local}.port"), e.get(&format!("{local}.port")))?,
            remote_ip,
            remote_port: port(&format!("{remote}.port"), e.get(&format!("{remote}.port")))?,
            protocol,
            direction: dir,
            state: e.get_str("network.state").map(str::to_ascii_uppercase),
            bytes_sent: count(&format!("{local}.bytes"), e.get(&format!("{local}.bytes")))?,
            bytes_received: count(
                &format!("{remote}.bytes"),
                e.get(&format!("{remote}.bytes")),
            )?,
            duration_secs: seconds("event.duration", e.get("event.duration"), 1e-9)?,
        }))
    }

    /// The record in seed 002's JSON shape (what [`from_seed_json`](Self::from_seed_json)
    /// reads back; what collectors send).
    pub fn to_seed_json(&self) -> Value {
        let mut v = serde_json::json!({
            "timestamp": self.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "host": self.host,
            "process_name": self.process_name,
            "remote_ip": self.remote_ip.to_string(),
            "protocol": self.protocol.as_str(),
            "direction": match self.direction {
                Direction::Outbound => "outbound",
                Direction::Inbound => "inbound",
                Direction::Unknown => "unknown",
            },
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "duration": self.duration_secs,
        });
        let m = v.as_object_mut().expect("an object");
        if let Some(pid) = self.process_id {
            m.insert("process_id".into(), pid.into());
        }
        if let Some(ip) = self.local_ip {
            m.insert("local_ip".into(), ip.to_string().into());
        }
        if let Some(p) = self.local_port {
            m.insert("local_port".into(), p.into());
        }
        if let Some(p) = self.remote_port {
            m.insert("remote_port".into(), p.into());
        }
        if let Some(s) = &self.state {
            m.insert("state".into(), s.clone().into());
        }
        v
    }

    /// The record as an ECS network event (for storage and the other analyzers).
    pub fn to_event_json(&self) -> Value {
        let (local, remote) = match self.direction {
            Direction::Inbound => ("destination", "source"),
            _ => ("source", "destination"),
        };
        let mut v = serde_json::json!({
            "@timestamp": self.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "event.category": "network",
            "event.kind": "event",
            "host.name": self.host,
            "network.transport": self.protocol.as_str(),
            "network.direction": match self.direction {
                Direction::Outbound => "outbound",
                Direction::Inbound => "inbound",
                Direction::Unknown => "unknown",
            },
            "event.duration": (self.duration_secs * 1e9) as u64,
        });
        let m = v.as_object_mut().expect("an object");
        m.insert(
            format!("{remote}.ip"),
            Value::String(self.remote_ip.to_string()),
        );
        m.insert(format!("{local}.bytes"), self.bytes_sent.into());
        m.insert(format!("{remote}.bytes"), self.bytes_received.into());
        if let Some(p) = self.remote_port {
            m.insert(format!("{remote}.port"), p.into());
        }
        if let Some(ip) = self.local_ip {
            m.insert(format!("{local}.ip"), Value::String(ip.to_string()));
        }
        if let Some(p) = self.local_port {
            m.insert(format!("{local}.port"), p.into());
        }
        if !self.process_name.is_empty() {
            m.insert("process.name".into(), self.process_name.clone().into());
        }
        if let Some(pid) = self.process_id {
            m.insert("process.pid".into(), pid.into());
        }
        if let Some(s) = &self.state {
            m.insert("network.state".into(), s.clone().into());
        }
        v
    }
}

/// Whether an address is private, loopback, link-local or otherwise not on the Internet.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                // Carrier-grade NAT, 100.64.0.0/10.
                || (v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-30T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_seed_example_reads() {
        let v = json!({"process_id": 1234, "process_name": "chrome.exe", "local_ip": "192.168.1.100",
                       "remote_ip": "203.0.113.1", "protocol": "TCP", "bytes_sent": 1024, "bytes_received": 4096});
        let r = ConnectionRecord::from_seed_json(&v, now(), Some("ws-1")).unwrap();
        assert_eq!(r.process_name, "chrome.exe");
        assert_eq!(r.protocol, Protocol::Tcp);
        assert_eq!(r.host, "ws-1");
        assert_eq!((r.bytes_sent, r.bytes_received), (1024, 4096));
        assert_eq!(r.timestamp, now());
        assert!(!is_internal(r.remote_ip));
    }

    #[test]
    fn bad_records_name_the_field() {
        let base = json!({"process_name": "a", "remote_ip": "1.2.3.4", "protocol": "tcp"});
        let cases = [
            ("remote_ip", json!("999.1.1.1")),
            ("remote_ip", json!(null)),
            ("process_name", json!(7)),
            ("protocol", json!("")),
            ("bytes_sent", json!(-1)),
            ("bytes_received", json!("many")),
            ("remote_port", json!(70000)),
            ("process_id", json!(-5)),
            ("duration", json!(-0.5)),
            ("timestamp", json!("yesterday")),
            ("colour", json!("red")),
        ];
        for (field, value) in cases {
            let mut v = base.clone();
            v[field] = value.clone();
            let e = ConnectionRecord::from_seed_json(&v, now(), None).unwrap_err();
            assert_eq!(e.field, field, "{field}={value}: {e}");
        }
        assert!(ConnectionRecord::from_seed_json(&json!([1]), now(), None).is_err());
        let long = "x".repeat(300);
        let mut v = base.clone();
        v["process_name"] = json!(long);
        assert!(ConnectionRecord::from_seed_json(&v, now(), None).is_err());
        // IPv6 with brackets and a zone id.
        let mut v = base;
        v["remote_ip"] = json!("[fe80::1%eth0]");
        let r = ConnectionRecord::from_seed_json(&v, now(), None).unwrap();
        assert!(is_internal(r.remote_ip));
    }

    #[test]
    fn ecs_events_round_trip() {
        let v = json!({"process_name": "curl", "remote_ip": "198.51.100.7", "remote_port": 443,
                       "local_ip": "10.0.0.2", "local_port": 50000, "protocol": "tcp",
                       "direction": "outbound", "bytes_sent": 10, "bytes_received": 20,
                       "duration": 1.5, "host": "h", "state": "established", "process_id": 9});
        let r = ConnectionRecord::from_seed_json(&v, now(), None).unwrap();
        let e = Event::from_input(r.to_event_json(), now()).unwrap();
        let back = ConnectionRecord::from_event(&e).unwrap().unwrap();
        assert_eq!(back, r);
        // Not a connection: no remote address.
        let e = Event::from_input(
            json!({"event.category": "network", "host.name": "h"}),
            now(),
        )
        .unwrap();
        assert!(ConnectionRecord::from_event(&e).unwrap().is_none());
    }

    #[test]
    fn event_names_are_clipped_to_what_records_accept() {
        let long = "é".repeat(200); // 400 bytes
        let e = Event::from_input(
            json!({"event.category": "network", "host.name": long, "process.name": "  ",
                   "destination.ip": "1.2.3.4"}),
            now(),
        )
        .unwrap();
        let r = ConnectionRecord::from_event(&e).unwrap().unwrap();
        assert!(r.host.len() <= MAX_NAME && r.host.chars().all(|c| c == 'é'));
        assert_eq!(r.process_name, "");
    }

    #[test]
    fn seed_json_round_trips() {
        let v = json!({"process_name": "curl", "remote_ip": "2001:db8::7", "remote_port": 443,
                       "local_ip": "10.0.0.2", "local_port": 50000, "protocol": "udp",
                       "direction": "inbound", "bytes_sent": 10, "bytes_received": 20,
                       "duration": 1.5, "host": "h", "state": "CLOSED", "process_id": 9,
                       "timestamp": "2026-11-30T10:00:00.250Z"});
        let r = ConnectionRecord::from_seed_json(&v, now(), None).unwrap();
        let back = ConnectionRecord::from_seed_json(&r.to_seed_json(), now(), None).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn internal_addresses() {
        for a in [
            "10.1.2.3",
            "192.168.0.1",
            "127.0.0.1",
            "100.100.0.1",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "2001:4860:4860::8888", "100.128.0.1"] {
            assert!(!is_internal(a.parse().unwrap()), "{a}");
        }
    }
}
