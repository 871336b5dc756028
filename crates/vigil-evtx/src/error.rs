//! What can go wrong reading an EVTX input: the whole input ([`EvtxError::NotEvtx`],
//! [`EvtxError::Io`], [`EvtxError::TooLarge`], [`EvtxError::Truncated`]) or one part of it, as
//! an `Err` item of [`crate::Records`] after which reading goes on ([`EvtxError::BadChunk`],
//! [`EvtxError::TruncatedChunk`], [`EvtxError::BadRecord`], [`EvtxError::ParserPanic`]).

/// An error reading an EVTX input. Each message says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum EvtxError {
    /// The input is not an EVTX file: it does not start with the magic `ElfFile\0`. The message
    /// says what it looks like instead.
    #[error("{0}")]
    NotEvtx(String),
    /// The input could not be read (the message names the path).
    #[error("cannot read the EVTX input: {0}")]
    Io(#[from] std::io::Error),
    /// The input is larger than the limit ([`crate::MAX_EVTX_BYTES`]).
    #[error(
        "the EVTX input is larger than the {limit}-byte limit: export a smaller log (Event Viewer \
         \"Save Filtered Log File As\", or wevtutil epl with a /q query) or split it"
    )]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The input starts like an EVTX file but ends inside its 4 KiB file header.
    #[error(
        "the EVTX input is truncated: it is {len} bytes, shorter than the {header}-byte file \
         header, so it holds no records; copy the log again"
    )]
    Truncated {
        /// The input's length.
        len: u64,
        /// The file header's size (4096).
        header: u64,
    },
    /// A chunk (64 KiB of records) that cannot be read: its records are skipped (or, when
    /// `reason` says so, the rest of them) and reading goes on with the next chunk.
    #[error(
        "chunk {chunk} (file offset {offset:#x}) cannot be read: {reason}; reading goes on with \
         the next chunk"
    )]
    BadChunk {
        /// The chunk's number in the file, from 0.
        chunk: u64,
        /// The chunk's offset in the file.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The input ends inside a chunk (a truncated copy): the chunk's records before the cut
    /// were read, the ones after it are lost. Always the last item.
    #[error(
        "the input ends {bytes} bytes into chunk {chunk} (file offset {offset:#x}), so the records \
         after that point are lost (a truncated copy?); copy the log again"
    )]
    TruncatedChunk {
        /// The chunk's number in the file, from 0.
        chunk: u64,
        /// The chunk's offset in the file.
        offset: u64,
        /// How many of the chunk's 65536 bytes the input holds.
        bytes: u64,
    },
    /// A record that cannot be read or rendered; reading goes on with the next record.
    #[error("{} in chunk {chunk} cannot be read: {reason}; it is skipped", record_name(*.record_id))]
    BadRecord {
        /// The chunk's number in the file, from 0.
        chunk: u64,
        /// The record's `EventRecordID`, when its header could be read.
        record_id: Option<u64>,
        /// What is wrong with it, with its causes.
        reason: String,
    },
    /// The `evtx` parser panicked on a chunk (a bug in it, on damaged or crafted input). The
    /// rest of the chunk is skipped and reading goes on with the next chunk.
    #[error(
        "the EVTX parser failed on chunk {chunk} (file offset {offset:#x}): {message}; the rest \
         of this chunk is skipped (a parser bug on damaged input: please report it with the file)"
    )]
    ParserPanic {
        /// The chunk's number in the file, from 0.
        chunk: u64,
        /// The chunk's offset in the file.
        offset: u64,
        /// The panic message.
        message: String,
    },
}

fn record_name(record_id: Option<u64>) -> String {
    match record_id {
        Some(id) => format!("record {id}"),
        None => "a record".to_owned(),
    }
}

/// `err` and its causes, `: `-separated, without repeats (evtx's outer messages are vague, the
/// inner ones say where and what).
pub(crate) fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// What `head` (an input's first bytes) looks like, for [`EvtxError::NotEvtx`].
pub(crate) fn not_evtx(what: &str, head: &[u8]) -> EvtxError {
    let looks_like = if head.is_empty() {
        "it is empty".to_owned()
    } else {
        let kind = sniff(head);
        let shown: String = head
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        format!("it starts with {shown}{kind}")
    };
    EvtxError::NotEvtx(format!(
        "{what} is not an EVTX file (a Windows event log starts with \"ElfFile\\0\"): \
         {looks_like}; export the log from Event Viewer (\"Save All Events As\" .evtx) or with \
         wevtutil epl"
    ))
}

fn sniff(head: &[u8]) -> &'static str {
    let text = head.iter().take(64).all(|&b| {
        b.is_ascii_graphic() || b.is_ascii_whitespace() || b >= 0x80 // UTF-8 text
    });
    let trimmed = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &head[i..]);
    if head.starts_with(b"\x89PNG") {
        ", a PNG image"
    } else if head.starts_with(b"PK\x03\x04") {
        ", a ZIP archive: extract the .evtx from it first"
    } else if head.starts_with(&[0x1f, 0x8b]) {
        ", a gzip file: decompress it first"
    } else if head.starts_with(b"ElfChnk\0") {
        ", a bare EVTX chunk without its file header"
    } else if head.starts_with(b"MZ") {
        ", a Windows executable"
    } else if text && trimmed.starts_with(b"<") {
        " (XML text: an event log exported as XML, not .evtx?)"
    } else if text && (trimmed.starts_with(b"{") || trimmed.starts_with(b"[")) {
        " (JSON text: events already converted to JSON?)"
    } else if text {
        " (text)"
    } else {
        ""
    }
}
