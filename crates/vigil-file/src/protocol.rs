//! Seed 001's binary protocol, as Vigil speaks it (specified byte by byte in
//! `docs/protocol.md`): framing only, no I/O, so that the TCP listener, the tests and the
//! fuzz target share one decoder.
//!
//! A request is a little-endian `u32` command, then length-prefixed fields (`u32` length,
//! then the bytes), then the four bytes `_END`. A reply is a `u32` status (`1029` yes,
//! `1030` no, `1031` error), then its payload, then `_END`.

/// The terminator of every frame.
pub const END: &[u8; 4] = b"_END";
/// Reply status: malicious (and, for `AUTH`, accepted).
pub const YES: u32 = 1029;
/// Reply status: not malicious.
pub const NO: u32 = 1030;
/// Reply status: the request failed; a code and a message follow.
pub const ERROR: u32 = 1031;
/// Most fields a request may carry.
pub const MAX_FIELDS: usize = 8;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// 0: authenticate with an API key (the first frame when authentication is on).
    Auth,
    /// 1: static analysis (PE features, YARA, the model).
    Static,
    /// 2: dynamic analysis (behaviour Vigil has observed for the hash).
    Dynamic,
    /// 3: VirusTotal.
    VirusTotal,
    /// 4: static + VirusTotal.
    StaticVirusTotal,
    /// 5: dynamic + VirusTotal.
    DynamicVirusTotal,
    /// 6: static, dynamic and VirusTotal.
    All,
}

impl Command {
    /// The command for a wire value.
    pub fn from_u32(v: u32) -> Option<Command> {
        Some(match v {
            0 => Command::Auth,
            1 => Command::Static,
            2 => Command::Dynamic,
            3 => Command::VirusTotal,
            4 => Command::StaticVirusTotal,
            5 => Command::DynamicVirusTotal,
            6 => Command::All,
            _ => return None,
        })
    }

    /// Whether the command runs static analysis.
    pub fn wants_static(self) -> bool {
        matches!(
            self,
            Command::Static | Command::StaticVirusTotal | Command::All
        )
    }

    /// Whether the command runs dynamic analysis.
    pub fn wants_dynamic(self) -> bool {
        matches!(
            self,
            Command::Dynamic | Command::DynamicVirusTotal | Command::All
        )
    }

    /// Whether the command asks VirusTotal.
    pub fn wants_virustotal(self) -> bool {
        matches!(
            self,
            Command::VirusTotal
                | Command::StaticVirusTotal
                | Command::DynamicVirusTotal
                | Command::All
        )
    }
}

/// Error codes of `ERROR` replies (stable; listed in `docs/protocol.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    /// The frame is not `command, fields, _END`; the connection closes.
    Malformed = 1,
    /// A length is over the server's limit; the connection closes.
    TooLarge = 2,
    /// The command is unknown.
    UnknownCommand = 3,
    /// Authentication is required, or the key is wrong.
    Unauthorized = 4,
    /// The fields do not fit the command (count, SHA-256 format or mismatch).
    BadRequest = 5,
    /// The analysis asked for cannot run (say, VirusTotal without any key).
    Unavailable = 6,
    /// The server failed, or has no free connection slot (then it closes).
    Internal = 7,
    /// No complete frame arrived in time; the connection closes.
    Timeout = 8,
}

/// Why bytes are not a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A field's length is over the limit (the frame is not read further).
    #[error("field {field} is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// 1-based field number.
        field: usize,
        /// Its announced length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// More than [`MAX_FIELDS`] fields before `_END`.
    #[error("more than {MAX_FIELDS} fields without `_END`")]
    TooManyFields,
}

impl FrameError {
    /// The reply code.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::TooLarge { .. } => ErrorCode::TooLarge,
            FrameError::TooManyFields => ErrorCode::Malformed,
        }
    }
}

/// A decoded request: the raw command value and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command value (see [`Command::from_u32`]).
    pub command: u32,
    /// The fields, in order.
    pub fields: Vec<Vec<u8>>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes one frame from the start of `buf`: `Ok(None)` when more bytes are needed,
/// `Ok(Some((frame, consumed)))` when one is complete. Each field may be at most
/// `max_field` bytes. A field whose 4 length bytes read `_END` is the terminator, so a
/// field can never be 1,145,980,255 bytes long (it is over any sane limit anyway).
pub fn decode(buf: &[u8], max_field: u64) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(command) = u32_at(buf, 0) else {
        return Ok(None);
    };
    let mut at = 4;
    let mut fields = Vec::new();
    loop {
        let Some(word) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        if word == END {
            return Ok(Some((Frame { command, fields }, at + 4)));
        }
        if fields.len() == MAX_FIELDS {
            return Err(FrameError::TooManyFields);
        }
        let len = u64::from(u32::from_le_bytes(word.try_into().expect("4 bytes")));
        if len > max_field {
            return Err(FrameError::TooLarge {
                field: fields.len() + 1,
                len,
                max: max_field,
            });
        }
        let start = at + 4;
        let end = start + len as usize;
        let Some(data) = buf.get(start..end) else {
            return Ok(None);
        };
        fields.push(data.to_vec());
        at = end;
    }
}

/// Encodes a request (for clients and tests).
pub fn encode_request(command: u32, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = command.to_le_bytes().to_vec();
    for f in fields {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out.extend_from_slice(END);
    out
}

/// A verdict reply: `YES` or `NO`, the score as `f32`, a length-prefixed JSON report.
pub fn encode_verdict(malicious: bool, score: f32, report_json: &[u8]) -> Vec<u8> {
    let mut out = if malicious { YES } else { NO }.to_le_bytes().to_vec();
    out.extend_from_slice(&score.to_le_bytes());
    out.extend_from_slice(&(report_json.len() as u32).to_le_bytes());
    out.extend_from_slice(report_json);
    out.extend_from_slice(END);
    out
}

/// An error reply: `ERROR`, the code, a length-prefixed UTF-8 message.
pub fn encode_error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut out = ERROR.to_le_bytes().to_vec();
    out.extend_from_slice(&(code as u32).to_le_bytes());
    out.extend_from_slice(&(message.len() as u32).to_le_bytes());
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(END);
    out
}

/// A decoded reply (for clients and tests).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `YES`/`NO` with the score and the JSON report.
    Verdict {
        /// `YES`.
        malicious: bool,
        /// Score in [0, 1].
        score: f32,
        /// The report, JSON.
        report: Vec<u8>,
    },
    /// `ERROR`.
    Error {
        /// The code.
        code: u32,
        /// The message.
        message: String,
    },
}

/// Decodes one reply from the start of `buf` (`Ok(None)`: incomplete).
pub fn decode_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let Some(status) = u32_at(buf, 0) else {
        return Ok(None);
    };
    if !matches!(status, YES | NO | ERROR) {
        return Err(format!("unknown reply status {status}"));
    }
    let (Some(second), Some(len)) = (u32_at(buf, 4), u32_at(buf, 8)) else {
        return Ok(None);
    };
    let end = 12 + len as usize;
    let Some(payload) = buf.get(12..end) else {
        return Ok(None);
    };
    match buf.get(end..end + 4) {
        None => return Ok(None),
        Some(t) if t != END => return Err("reply without `_END`".into()),
        Some(_) => {}
    }
    let reply = match status {
        YES | NO => Reply::Verdict {
            malicious: status == YES,
            score: f32::from_le_bytes(second.to_le_bytes()),
            report: payload.to_vec(),
        },
        ERROR => Reply::Error {
            code: second,
            message: String::from_utf8_lossy(payload).into_owned(),
        },
        other => return Err(format!("unknown reply status {other}")),
    };
    Ok(Some((reply, end + 4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let req = encode_request(4, &[b"MZ...", b"ab", b""]);
        let (frame, used) = decode(&req, 100).unwrap().unwrap();
        assert_eq!(used, req.len());
        assert_eq!(frame.command, 4);
        assert_eq!(
            frame.fields,
            vec![b"MZ...".to_vec(), b"ab".to_vec(), vec![]]
        );
        assert_eq!(
            Command::from_u32(frame.command),
            Some(Command::StaticVirusTotal)
        );

        let v = encode_verdict(true, 0.75, b"{}");
        assert_eq!(
            decode_reply(&v).unwrap().unwrap().0,
            Reply::Verdict {
                malicious: true,
                score: 0.75,
                report: b"{}".to_vec()
            }
        );
        let e = encode_error(ErrorCode::Unauthorized, "no");
        let (r, n) = decode_reply(&e).unwrap().unwrap();
        assert_eq!(n, e.len());
        assert_eq!(
            r,
            Reply::Error {
                code: 4,
                message: "no".into()
            }
        );
    }

    #[test]
    fn partial_and_hostile_frames() {
        let req = encode_request(1, &[b"abc", b"def"]);
        // Every strict prefix is "need more".
        for n in 0..req.len() {
            assert_eq!(decode(&req[..n], 100), Ok(None), "prefix {n}");
        }
        // Two frames back to back: the first is consumed alone.
        let mut two = req.clone();
        two.extend(encode_request(2, &[]));
        let (_, used) = decode(&two, 100).unwrap().unwrap();
        assert_eq!(decode(&two[used..], 100).unwrap().unwrap().0.command, 2);
        // A huge length is refused before anything is buffered.
        let mut huge = 1u32.to_le_bytes().to_vec();
        huge.extend(u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&huge, 1 << 20),
            Err(FrameError::TooLarge { field: 1, .. })
        ));
        // Too many fields.
        let many: Vec<&[u8]> = vec![b"x"; MAX_FIELDS + 1];
        assert_eq!(
            decode(&encode_request(1, &many), 100),
            Err(FrameError::TooManyFields)
        );
        // Unknown commands decode (the listener answers them with an error).
        assert_eq!(Command::from_u32(99), None);
        assert!(decode_reply(b"\x05\x04\x00\x00\0\0\0\0\0\0\0\0XXXX").is_err());
    }
}
