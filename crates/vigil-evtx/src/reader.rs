//! [`EvtxReader`]: an EVTX input, read chunk by chunk into [`EvtxRecord`]s.
//!
//! An EVTX file is a 4 KiB file header followed by 64 KiB chunks at fixed offsets; each chunk
//! has its own string and template tables, so chunks are independent. The reader reads one chunk
//! at a time (never the whole file when it reads from a path), has `evtx` parse and render its
//! records under `catch_unwind`, and queues them for the iterator.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use evtx::{EvtxChunkData, EvtxFileHeader, ParserSettings};
use serde_json::Value;
use tracing::{debug, error, warn};

use crate::MAX_EVTX_BYTES;
use crate::error::{EvtxError, not_evtx, with_causes};

/// Size of the EVTX file header block.
pub const EVTX_HEADER_SIZE: usize = 4096;
/// Size of an EVTX chunk.
pub const EVTX_CHUNK_SIZE: usize = 65536;
const CHUNK_HEADER_SIZE: usize = 512;
/// The smallest record: a 24-byte header and the 4-byte copy of its size.
const MIN_RECORD_SIZE: usize = 28;
/// The most items (records and record errors) one chunk may yield: as many records as fit in
/// it. `evtx` never yields more from a real chunk; past this the chunk is cut short with an
/// error, so a parser bug cannot loop forever.
pub const MAX_ITEMS_PER_CHUNK: usize = (EVTX_CHUNK_SIZE - CHUNK_HEADER_SIZE) / MIN_RECORD_SIZE + 1;
/// The most JSON text one chunk's records may render to (16 MiB): real chunks render well under
/// 1 MiB, a crafted one can reuse its templates to render far more (`evtx` allows 64 MiB). Past
/// it the rest of the chunk is skipped with an error, which bounds the memory the queued records
/// of a chunk hold.
pub const MAX_CHUNK_JSON_BYTES: usize = 16 << 20;

const MAGIC: &[u8; 8] = b"ElfFile\0";

/// One event record.
#[derive(Debug, Clone, PartialEq)]
pub struct EvtxRecord {
    /// The record's ID from its record header: its number in this file. Usually equal to
    /// `Event.System.EventRecordID`, but a log saved from a query (Event Viewer "Save Filtered
    /// Log File As", `wevtutil epl /q`) numbers its records afresh here while
    /// `System.EventRecordID` keeps the ID they had on the source machine.
    pub record_id: u64,
    /// When the record was written (its record header's FILETIME), RFC 3339 in UTC with seven
    /// fractional digits, like `System.TimeCreated.SystemTime`: `2025-11-27T07:40:10.1653245Z`.
    pub timestamp: String,
    /// The record in `evtx`'s JSON layout (see the [crate docs](crate#the-json-layout)).
    pub data: Value,
}

impl EvtxRecord {
    /// `Event.System.EventID` as a number, whether it is a plain number or, when the provider
    /// wrote `Qualifiers`, `{"#attributes": {"Qualifiers": ..}, "#text": id}`.
    pub fn event_id(&self) -> Option<u32> {
        let id = self.data.get("Event")?.get("System")?.get("EventID")?;
        let id = id.get("#text").unwrap_or(id);
        match id {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// What one pass of [`EvtxReader::records`] has yielded so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Records read (`Ok` items).
    pub records: u64,
    /// Records that could not be read ([`EvtxError::BadRecord`] items).
    pub bad_records: u64,
    /// Chunks that could not be read, or only in part ([`EvtxError::BadChunk`],
    /// [`EvtxError::TruncatedChunk`] and [`EvtxError::ParserPanic`] items).
    pub bad_chunks: u64,
    /// Chunks read although their CRC32s do not match: their records may be damaged. A log
    /// copied while Windows was writing it can have one. Not an `Err` item.
    pub checksum_errors: u64,
}

enum Source {
    File(File),
    Bytes(Vec<u8>),
}

/// A readable EVTX input: its file header checked, its chunks read on demand.
pub struct EvtxReader {
    source: Source,
    /// What the input is called in errors and logs (its path, or "the input").
    name: String,
    len: u64,
    /// Chunks in the input, the last one possibly cut short.
    chunks: u64,
    settings: Arc<ParserSettings>,
    stats: ReadStats,
}

impl fmt::Debug for EvtxReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvtxReader")
            .field("name", &self.name)
            .field("len", &self.len)
            .field("chunks", &self.chunks)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl EvtxReader {
    /// Opens the EVTX file at `path`: checks its size (at most [`MAX_EVTX_BYTES`]) and its file
    /// header. Records are read when iterated, one chunk at a time.
    pub fn open(path: &Path) -> Result<EvtxReader, EvtxError> {
        let at = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let meta = std::fs::metadata(path).map_err(at)?;
        if !meta.is_file() {
            return Err(EvtxError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a regular file", path.display()),
            )));
        }
        if meta.len() > MAX_EVTX_BYTES {
            return Err(EvtxError::TooLarge {
                limit: MAX_EVTX_BYTES,
            });
        }
        let mut file = File::open(path).map_err(at)?;
        let mut head = Vec::with_capacity(EVTX_HEADER_SIZE);
        (&mut file)
            .take(EVTX_HEADER_SIZE as u64)
            .read_to_end(&mut head)
            .map_err(at)?;
        let name = path.display().to_string();
        Self::new(Source::File(file), name, meta.len(), &head)
    }

    /// Reads EVTX data held in memory, such as an upload: checks its size (at most
    /// [`MAX_EVTX_BYTES`]) and its file header.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<EvtxReader, EvtxError> {
        let len = bytes.len() as u64;
        if len > MAX_EVTX_BYTES {
            return Err(EvtxError::TooLarge {
                limit: MAX_EVTX_BYTES,
            });
        }
        let head = bytes[..bytes.len().min(EVTX_HEADER_SIZE)].to_vec();
        Self::new(Source::Bytes(bytes), "the input".to_owned(), len, &head)
    }

    fn new(source: Source, name: String, len: u64, head: &[u8]) -> Result<EvtxReader, EvtxError> {
        if !head.starts_with(MAGIC) {
            return Err(if !head.is_empty() && MAGIC.starts_with(head) {
                EvtxError::Truncated {
                    len,
                    header: EVTX_HEADER_SIZE as u64,
                }
            } else {
                not_evtx(&name, head)
            });
        }
        if len < EVTX_HEADER_SIZE as u64 {
            return Err(EvtxError::Truncated {
                len,
                header: EVTX_HEADER_SIZE as u64,
            });
        }
        let header = EvtxFileHeader::from_bytes(head)
            .map_err(|e| EvtxError::NotEvtx(format!("{name}: bad EVTX file header: {e}")))?;
        if !header.validate_checksum() {
            warn!(input = %name, "EVTX file header CRC32 does not match; reading the chunks anyway");
        }
        if header.major_version != 3 {
            warn!(input = %name, major = header.major_version, minor = header.minor_version,
                "unexpected EVTX format version (3.x expected); reading it anyway");
        }
        let chunks = (len - EVTX_HEADER_SIZE as u64).div_ceil(EVTX_CHUNK_SIZE as u64);
        let settings = ParserSettings::new()
            // Keep `#attributes` next to `#text` (the EventID-with-Qualifiers shape).
            .separate_json_attributes(false)
            .indent(false)
            // A chunk with a bad CRC is still read: damaged logs are what forensics reads.
            .validate_checksums(false);
        Ok(EvtxReader {
            source,
            name,
            len,
            chunks,
            settings: Arc::new(settings),
            stats: ReadStats::default(),
        })
    }

    /// The input's records, in file order (see the [crate docs](crate#order-and-damage)). A
    /// chunk or record that cannot be read is an `Err` item and reading goes on; the iterator
    /// always ends. Each call starts again from the first chunk and resets [`Self::stats`].
    pub fn records(&mut self) -> Records<'_> {
        self.stats = ReadStats::default();
        Records {
            reader: self,
            next_chunk: 0,
            pending: VecDeque::new(),
            done: false,
        }
    }

    /// What the current (or last) pass of [`Self::records`] has yielded.
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// The input's size in bytes.
    pub fn byte_len(&self) -> u64 {
        self.len
    }

    /// How many chunks the input holds (64 KiB each; the last may be cut short). A bare file
    /// header, a log without records, has none.
    pub fn chunk_count(&self) -> u64 {
        self.chunks
    }

    /// Reads chunk `index`'s bytes: 64 KiB, or fewer when the input ends inside it.
    fn chunk_bytes(&mut self, index: u64) -> io::Result<Vec<u8>> {
        let offset = chunk_offset(index);
        let want = self.len.saturating_sub(offset).min(EVTX_CHUNK_SIZE as u64);
        match &mut self.source {
            Source::Bytes(bytes) => {
                // `offset + want <= len`, which fits in usize since `bytes` holds it.
                let start = offset as usize;
                Ok(bytes[start..start + want as usize].to_vec())
            }
            Source::File(file) => {
                file.seek(SeekFrom::Start(offset))?;
                let mut data = Vec::with_capacity(EVTX_CHUNK_SIZE);
                file.take(want).read_to_end(&mut data)?;
                Ok(data)
            }
        }
    }

    /// Reads chunk `index` and queues its items on `out`.
    fn read_chunk(&mut self, index: u64, out: &mut VecDeque<Result<EvtxRecord, EvtxError>>) {
        let offset = chunk_offset(index);
        let bad_chunk = |reason: String| EvtxError::BadChunk {
            chunk: index,
            offset,
            reason,
        };
        let mut data = match self.chunk_bytes(index) {
            Ok(data) => data,
            Err(e) => {
                out.push_back(Err(bad_chunk(format!("reading {} failed: {e}", self.name))));
                return;
            }
        };
        let got = data.len();
        let truncated = got < EVTX_CHUNK_SIZE;
        data.resize(EVTX_CHUNK_SIZE, 0);
        let truncation = || EvtxError::TruncatedChunk {
            chunk: index,
            offset,
            bytes: got as u64,
        };

        // Unused chunks are all zeroes.
        if !data.iter().any(|&b| b != 0) {
            if truncated {
                out.push_back(Err(truncation()));
            }
            return;
        }

        let settings = Arc::clone(&self.settings);
        let queued = out.len();
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            parse_chunk(index, data, truncated, settings, out)
        }));
        match parsed {
            Ok(ChunkOutcome::Read { checksum_ok }) => {
                if !checksum_ok {
                    self.stats.checksum_errors += 1;
                    debug!(input = %self.name, chunk = index,
                        "EVTX chunk CRC32 does not match: its records may be damaged");
                }
            }
            Ok(ChunkOutcome::Unreadable(reason)) => {
                // A chunk cut short often has a whole header: say why it is damaged.
                if truncated {
                    out.push_back(Err(truncation()));
                } else {
                    out.push_back(Err(bad_chunk(format!("{reason}; its records are skipped"))));
                }
                return;
            }
            Err(panic) => {
                let message = panic_message(&*panic);
                error!(input = %self.name, chunk = index, kept = out.len() - queued, %message,
                    "the evtx parser panicked; the rest of the chunk is skipped");
                out.push_back(Err(EvtxError::ParserPanic {
                    chunk: index,
                    offset,
                    message,
                }));
            }
        }
        if truncated {
            out.push_back(Err(truncation()));
        }
    }
}

/// [`MAX_CHUNK_JSON_BYTES`], which tests can lower.
fn chunk_json_cap() -> usize {
    #[cfg(test)]
    if let Some(cap) = tests::JSON_CAP.with(std::cell::Cell::get) {
        return cap;
    }
    MAX_CHUNK_JSON_BYTES
}

fn chunk_offset(index: u64) -> u64 {
    EVTX_HEADER_SIZE as u64 + index * EVTX_CHUNK_SIZE as u64
}

enum ChunkOutcome {
    /// The chunk's records were queued (some may be errors).
    Read { checksum_ok: bool },
    /// The chunk could not be parsed at all.
    Unreadable(String),
}

/// Parses chunk `index` (`data`, 64 KiB) and queues its records and record errors on `out`.
/// May panic if `evtx` does: the caller catches it and keeps what was queued.
fn parse_chunk(
    index: u64,
    data: Vec<u8>,
    truncated: bool,
    settings: Arc<ParserSettings>,
    out: &mut VecDeque<Result<EvtxRecord, EvtxError>>,
) -> ChunkOutcome {
    let mut chunk_data = match EvtxChunkData::new(data, false) {
        Ok(chunk) => chunk,
        Err(e) => return ChunkOutcome::Unreadable(with_causes(&e)),
    };
    // A chunk cut short fails its CRC32 for that reason alone; its truncation is reported.
    let checksum_ok = truncated || chunk_data.validate_checksum();
    let mut chunk = match chunk_data.parse(settings) {
        Ok(chunk) => chunk,
        Err(e) => return ChunkOutcome::Unreadable(with_causes(&e)),
    };
    let mut items = 0usize;
    let mut json_bytes = 0usize;
    for item in chunk.iter() {
        items += 1;
        if items > MAX_ITEMS_PER_CHUNK {
            out.push_back(Err(EvtxError::BadChunk {
                chunk: index,
                offset: chunk_offset(index),
                reason: format!(
                    "the parser found more than {MAX_ITEMS_PER_CHUNK} records in it, more than \
                     fit in a chunk; the rest of it is skipped"
                ),
            }));
            break;
        }
        let bad_record = |record_id: Option<u64>, e: &dyn std::error::Error| EvtxError::BadRecord {
            chunk: index,
            record_id,
            reason: with_causes(e),
        };
        let record = match item {
            Ok(record) => record,
            Err(e) => {
                out.push_back(Err(bad_record(record_id_of(&e), &e)));
                continue;
            }
        };
        let record_id = record.event_record_id;
        #[cfg(test)]
        tests::maybe_panic(record_id);
        // What `into_json_value` does, with the text's size in hand.
        let rendered = match record.into_json() {
            Ok(rendered) => rendered,
            Err(e) => {
                out.push_back(Err(bad_record(Some(record_id), &e)));
                continue;
            }
        };
        json_bytes += rendered.data.len();
        if json_bytes > chunk_json_cap() {
            out.push_back(Err(EvtxError::BadChunk {
                chunk: index,
                offset: chunk_offset(index),
                reason: format!(
                    "its records render to more than {MAX_CHUNK_JSON_BYTES} bytes of JSON, far \
                     more than a real chunk's; the rest of it is skipped"
                ),
            }));
            break;
        }
        let data = match serde_json::from_str(&rendered.data) {
            Ok(data) => data,
            Err(e) => {
                out.push_back(Err(bad_record(Some(record_id), &e)));
                continue;
            }
        };
        out.push_back(Ok(EvtxRecord {
            record_id,
            timestamp: rfc3339(rendered.timestamp),
            data,
        }));
    }
    debug!(chunk = index, items, "EVTX chunk read");
    ChunkOutcome::Read { checksum_ok }
}

fn record_id_of(e: &evtx::err::EvtxError) -> Option<u64> {
    match e {
        evtx::err::EvtxError::FailedToParseRecord { record_id, .. } => Some(*record_id),
        _ => None,
    }
}

/// `ts` as RFC 3339 UTC with the seven fractional digits a FILETIME holds.
fn rfc3339(ts: evtx::Timestamp) -> String {
    let nanos = ts.as_nanosecond();
    let secs = nanos.div_euclid(1_000_000_000);
    let subsec = nanos.rem_euclid(1_000_000_000) as u32;
    match i64::try_from(secs)
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, subsec))
    {
        Some(dt) => format!("{}.{:07}Z", dt.format("%Y-%m-%dT%H:%M:%S"), subsec / 100),
        None => ts.to_string(),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// The iterator of [`EvtxReader::records`].
pub struct Records<'a> {
    reader: &'a mut EvtxReader,
    next_chunk: u64,
    /// The items of the chunk being yielded.
    pending: VecDeque<Result<EvtxRecord, EvtxError>>,
    /// Whether the end was reached (and the pass logged).
    done: bool,
}

impl fmt::Debug for Records<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records")
            .field("next_chunk", &self.next_chunk)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Records<'_> {
    /// One log line for a damaged input, at the end of its pass (not one per chunk).
    fn log_damage(&self) {
        let stats = self.reader.stats;
        if stats.bad_records + stats.bad_chunks + stats.checksum_errors > 0 {
            warn!(input = %self.reader.name, records = stats.records,
                bad_records = stats.bad_records, bad_chunks = stats.bad_chunks,
                checksum_errors = stats.checksum_errors, "damaged EVTX input read");
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<EvtxRecord, EvtxError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                let stats = &mut self.reader.stats;
                match &item {
                    Ok(_) => stats.records += 1,
                    Err(EvtxError::BadRecord { .. }) => stats.bad_records += 1,
                    Err(_) => stats.bad_chunks += 1,
                }
                return Some(item);
            }
            // Bounded: at most `len / 64 KiB + 1` chunks.
            if self.next_chunk >= self.reader.chunks {
                if !self.done {
                    self.done = true;
                    self.log_damage();
                }
                return None;
            }
            let index = self.next_chunk;
            self.next_chunk += 1;
            self.reader.read_chunk(index, &mut self.pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::synth::{SynthEvent, evtx_file_chunked};

    thread_local! {
        /// The record ID at which `parse_chunk` panics, standing in for a bug in `evtx`.
        static PANIC_AT: Cell<Option<u64>> = const { Cell::new(None) };
        /// A lower [`MAX_CHUNK_JSON_BYTES`].
        pub(super) static JSON_CAP: Cell<Option<usize>> = const { Cell::new(None) };
    }

    pub(super) fn maybe_panic(record_id: u64) {
        if PANIC_AT.with(Cell::get) == Some(record_id) {
            panic!("injected panic at record {record_id}");
        }
    }

    #[test]
    fn a_parser_panic_skips_the_rest_of_its_chunk_only() {
        let events: Vec<_> = (1..=30).map(|id| SynthEvent::new(id, 1)).collect();
        let mut reader = EvtxReader::from_bytes(evtx_file_chunked(&events, 10)).unwrap();
        PANIC_AT.with(|p| p.set(Some(15)));
        let items: Vec<_> = reader.records().collect();
        PANIC_AT.with(|p| p.set(None));
        let ids: Vec<u64> = items
            .iter()
            .filter_map(|i| i.as_ref().ok().map(|r| r.record_id))
            .collect();
        // Chunk 1 keeps the records before the panic; chunk 2 is read as usual.
        let expected: Vec<u64> = (1..=14).chain(21..=30).collect();
        assert_eq!(ids, expected);
        let errors: Vec<_> = items.iter().filter_map(|i| i.as_ref().err()).collect();
        let [EvtxError::ParserPanic { chunk, message, .. }] = errors.as_slice() else {
            panic!("{errors:?}");
        };
        assert_eq!(*chunk, 1);
        assert!(message.contains("injected panic at record 15"), "{message}");
        assert!(
            errors[0]
                .to_string()
                .contains("rest of this chunk is skipped")
        );
        assert_eq!(reader.stats().bad_chunks, 1);
        assert_eq!(reader.stats().records, 24);
    }

    #[test]
    fn a_chunk_rendering_too_much_json_is_cut_short() {
        let events: Vec<_> = (1..=30).map(|id| SynthEvent::new(id, 1)).collect();
        let mut reader = EvtxReader::from_bytes(evtx_file_chunked(&events, 10)).unwrap();
        let one = reader.records().next().unwrap().unwrap();
        let size = serde_json::to_string(&one.data).unwrap().len();
        // Room for 4 records of a chunk.
        JSON_CAP.with(|c| c.set(Some(size * 4 + size / 2)));
        let items: Vec<_> = reader.records().collect();
        JSON_CAP.with(|c| c.set(None));
        let ids: Vec<u64> = items
            .iter()
            .filter_map(|i| i.as_ref().ok().map(|r| r.record_id))
            .collect();
        assert_eq!(ids, [1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24]);
        let errors: Vec<String> = items
            .iter()
            .filter_map(|i| i.as_ref().err().map(ToString::to_string))
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("bytes of JSON"), "{}", errors[0]);
        assert_eq!(reader.stats().bad_chunks, 3);
    }

    #[test]
    fn timestamps_have_seven_digits_and_handle_old_dates() {
        let ts: evtx::Timestamp = "2016-07-08T18:12:51.6816408Z".parse().unwrap();
        assert_eq!(rfc3339(ts), "2016-07-08T18:12:51.6816408Z");
        // FILETIME 0 and other pre-1970 times.
        let ts: evtx::Timestamp = "1601-01-01T00:00:00.0000001Z".parse().unwrap();
        assert_eq!(rfc3339(ts), "1601-01-01T00:00:00.0000001Z");
        let ts: evtx::Timestamp = "1969-12-31T23:59:59.9Z".parse().unwrap();
        assert_eq!(rfc3339(ts), "1969-12-31T23:59:59.9000000Z");
    }
}
