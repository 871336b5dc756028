//! NDJSON (one JSON event a line) parsing of untrusted bytes, shared by every source that
//! receives batches: the bulk HTTP endpoint now, Kafka and log shippers later.
//!
//! Bad lines do not sink the batch: each is reported with its 1-based line number, and the
//! good ones are returned. Blank lines are skipped but keep their numbers, so that a client
//! can map errors back to its file.

use crate::{Event, EventError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// Why one line was refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// Stable code: `invalid_json` or `invalid_event`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// Offending field, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Why a whole batch was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    /// Nothing but blank lines.
    #[error("no events: send NDJSON, one JSON event a line")]
    Empty,
    /// More lines than allowed.
    #[error("{got} lines in one batch; at most {max} are accepted, split it")]
    TooManyLines {
        /// Non-blank lines in the batch.
        got: usize,
        /// The limit.
        max: usize,
    },
}

/// Parses one JSON event from untrusted bytes.
pub fn parse_event(bytes: &[u8], now: DateTime<Utc>) -> Result<Event, LineError> {
    let value: Value =
        crate::strict_json::from_slice(bytes).map_err(
            |e| match crate::strict_json::duplicate_key(&e) {
                Some(field) => LineError {
                    line: 1,
                    code: "invalid_event",
                    message: format!("the key `{field}` appears twice; send each field once"),
                    field: Some(field),
                },
                None => LineError {
                    line: 1,
                    code: "invalid_json",
                    message: format!("malformed JSON: {e}"),
                    field: None,
                },
            },
        )?;
    Event::from_input(value, now).map_err(|e: EventError| LineError {
        line: 1,
        code: "invalid_event",
        field: e.field().map(str::to_string),
        message: e.to_string(),
    })
}

/// Parses an NDJSON batch of at most `max_lines` non-blank lines (`\n` or `\r\n`).
pub fn parse_batch(
    body: &[u8],
    max_lines: usize,
    now: DateTime<Utc>,
) -> Result<(Vec<Event>, Vec<LineError>), BatchError> {
    let lines: Vec<(usize, &[u8])> = body
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    if lines.is_empty() {
        return Err(BatchError::Empty);
    }
    if lines.len() > max_lines {
        return Err(BatchError::TooManyLines {
            got: lines.len(),
            max: max_lines,
        });
    }
    let mut events = Vec::with_capacity(lines.len());
    let mut errors = Vec::new();
    for (line, bytes) in lines {
        match parse_event(bytes, now) {
            Ok(e) => events.push(e),
            Err(mut e) => {
                e.line = line;
                errors.push(e);
            }
        }
    }
    Ok((events, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_bad_lines_by_number_and_keeps_good_ones() {
        let body = b"{\"a\":1}\r\n\nnot json\n{\"source.port\":-1}\n{\"b\":2}";
        let (events, errors) = parse_batch(body, 10, Utc::now()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(errors.len(), 2);
        assert_eq!((errors[0].line, errors[0].code), (3, "invalid_json"));
        assert_eq!(
            (errors[1].line, errors[1].field.as_deref()),
            (4, Some("source.port"))
        );
    }

    #[test]
    fn refuses_empty_and_oversized_batches() {
        assert_eq!(
            parse_batch(b" \n\r\n", 10, Utc::now()),
            Err(BatchError::Empty)
        );
        assert_eq!(parse_batch(b"", 10, Utc::now()), Err(BatchError::Empty));
        assert_eq!(
            parse_batch(b"{}\n{}\n{}", 2, Utc::now()),
            Err(BatchError::TooManyLines { got: 3, max: 2 })
        );
    }

    #[test]
    fn survives_hostile_bytes() {
        let deep = "[".repeat(100_000);
        let cases: [&[u8]; 5] = [
            b"\xff\xfe\x00",
            deep.as_bytes(),
            b"{\"a\":1e999999}",
            b"\"str\"",
            b"{\"@timestamp\":-99999999999999999}",
        ];
        for case in cases {
            let (events, errors) = parse_batch(case, 10, Utc::now()).unwrap();
            assert!(
                events.is_empty() && errors.len() == 1,
                "{:?}",
                String::from_utf8_lossy(&case[..case.len().min(20)])
            );
        }
    }
}
