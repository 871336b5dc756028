//! Small, valid EVTX files built in code, for tests and fuzz seeds (so that no real log has to
//! be stored). Each record is a template instance, as Windows writes them: the first record of
//! a chunk with a given set of `Data` names and types carries the template's definition inline,
//! later ones refer to it. So they go through `evtx`'s template path:
//!
//! ```xml
//! <Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
//!   <System>
//!     <Provider Name="{provider}"/>
//!     <EventID Qualifiers="{qualifiers}">{event_id}</EventID>  <!-- Qualifiers when set -->
//!     <TimeCreated SystemTime="{time}"/>
//!     <EventRecordID>{record_id}</EventRecordID>
//!     <Channel>{channel}</Channel>
//!     <Computer>{computer}</Computer>
//!   </System>
//!   <EventData><Data Name="{name}">{value}</Data>…</EventData>
//! </Event>
//! ```
//!
//! Records are packed into as many 64 KiB chunks as they need, with correct CRC32s.

use crate::reader::{EVTX_CHUNK_SIZE, EVTX_HEADER_SIZE};

const CHUNK_HEADER_SIZE: usize = 512;
const RECORD_HEADER_SIZE: usize = 24;
/// FILETIME (100 ns since 1601) of the Unix epoch.
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;
/// 2024-01-01T00:00:00Z, the default time of a [`SynthEvent`] (plus its record ID in seconds).
const DEFAULT_UNIX_SECONDS: u64 = 1_704_067_200;

/// A value of an `EventData` `Data` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SynthValue {
    /// A string (BinXML `StringType`), rendered as a JSON string.
    Text(String),
    /// A 32-bit unsigned number (`UInt32Type`), rendered as a JSON number.
    UInt32(u32),
}

impl From<&str> for SynthValue {
    fn from(text: &str) -> Self {
        SynthValue::Text(text.to_owned())
    }
}

impl From<u32> for SynthValue {
    fn from(n: u32) -> Self {
        SynthValue::UInt32(n)
    }
}

/// One event of a synthetic log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthEvent {
    /// `EventRecordID`, in the record header and in `System`.
    pub record_id: u64,
    /// When it was written, in 100 ns units since the Unix epoch.
    pub unix_100ns: u64,
    /// `Provider/@Name`.
    pub provider: String,
    /// `EventID`.
    pub event_id: u16,
    /// `EventID/@Qualifiers`, which classic providers write.
    pub qualifiers: Option<u16>,
    /// `Channel`.
    pub channel: String,
    /// `Computer`.
    pub computer: String,
    /// The `EventData` `Data` elements, by name.
    pub data: Vec<(String, SynthValue)>,
}

impl SynthEvent {
    /// An event with no data, from provider `Vigil-Synthetic` in channel `Application` on
    /// computer `vigil-test`, written `record_id` seconds after 2024-01-01T00:00:00Z.
    pub fn new(record_id: u64, event_id: u16) -> Self {
        SynthEvent {
            record_id,
            unix_100ns: (DEFAULT_UNIX_SECONDS + record_id) * 10_000_000,
            provider: "Vigil-Synthetic".to_owned(),
            event_id,
            qualifiers: None,
            channel: "Application".to_owned(),
            computer: "vigil-test".to_owned(),
            data: Vec::new(),
        }
    }

    /// Adds a `Data` element.
    pub fn with_data(mut self, name: &str, value: impl Into<SynthValue>) -> Self {
        self.data.push((name.to_owned(), value.into()));
        self
    }

    /// Sets `EventID/@Qualifiers`.
    pub fn with_qualifiers(mut self, qualifiers: u16) -> Self {
        self.qualifiers = Some(qualifiers);
        self
    }
}

/// An EVTX file holding `events`, as many per chunk as fit.
pub fn evtx_file(events: &[SynthEvent]) -> Vec<u8> {
    evtx_file_chunked(events, usize::MAX)
}

/// An EVTX file holding `events`, at most `per_chunk` (at least 1) in each chunk.
pub fn evtx_file_chunked(events: &[SynthEvent], per_chunk: usize) -> Vec<u8> {
    let per_chunk = per_chunk.max(1);
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut current = ChunkWriter::new();
    for event in events {
        if current.count >= per_chunk || !current.fits(event) {
            chunks.push(current.finish());
            current = ChunkWriter::new();
        }
        assert!(
            current.fits(event),
            "event {} is too big for a chunk",
            event.record_id
        );
        current.push(event);
    }
    if current.count > 0 {
        chunks.push(current.finish());
    }
    let next_record_id = events.iter().map(|e| e.record_id + 1).max().unwrap_or(1);
    let chunk_count = u16::try_from(chunks.len()).expect("fewer than 65536 chunks");
    let mut file = file_header(chunk_count, next_record_id);
    for chunk in chunks {
        file.extend(chunk);
    }
    file
}

/// A 4 KiB EVTX file header (format 3.1) for a file of `chunk_count` chunks whose next record
/// will be `next_record_id`, with its CRC32.
pub fn file_header(chunk_count: u16, next_record_id: u64) -> Vec<u8> {
    let mut header = vec![0; EVTX_HEADER_SIZE];
    put(&mut header, 0, b"ElfFile\0");
    put(&mut header, 8, &0u64.to_le_bytes()); // first chunk
    let last_chunk = u64::from(chunk_count.saturating_sub(1));
    put(&mut header, 16, &last_chunk.to_le_bytes());
    put(&mut header, 24, &next_record_id.to_le_bytes());
    put(&mut header, 32, &128u32.to_le_bytes()); // header size
    put(&mut header, 36, &1u16.to_le_bytes()); // minor version
    put(&mut header, 38, &3u16.to_le_bytes()); // major version
    put(&mut header, 40, &(EVTX_HEADER_SIZE as u16).to_le_bytes()); // header block size
    put(&mut header, 42, &chunk_count.to_le_bytes());
    let checksum = evtx::checksum_ieee(&header[..120]);
    put(&mut header, 124, &checksum.to_le_bytes());
    header
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

struct ChunkWriter {
    data: Vec<u8>,
    /// The templates defined in this chunk: their shape and definition offset.
    templates: Vec<(Shape, u32)>,
    count: usize,
    first_id: u64,
    last_id: u64,
    last_record_offset: usize,
}

impl ChunkWriter {
    fn new() -> Self {
        ChunkWriter {
            data: vec![0; CHUNK_HEADER_SIZE],
            templates: Vec::new(),
            count: 0,
            first_id: 0,
            last_id: 0,
            last_record_offset: 0,
        }
    }

    /// `event`'s record at the end of the chunk, and the offset of the template definition it
    /// carries, if it does.
    fn record(&self, event: &SynthEvent) -> (Vec<u8>, Option<u32>) {
        let start = self.data.len();
        let shape = shape(event);
        let defined = self
            .templates
            .iter()
            .find(|(s, _)| *s == shape)
            .map(|&(_, offset)| offset);
        let (binxml, definition) =
            record_binxml(event, (start + RECORD_HEADER_SIZE) as u32, defined);
        let size = (RECORD_HEADER_SIZE + binxml.len() + 4) as u32;
        let filetime = FILETIME_UNIX_EPOCH + event.unix_100ns;
        let mut record = Vec::with_capacity(size as usize);
        record.extend(b"\x2a\x2a\0\0");
        record.extend(size.to_le_bytes());
        record.extend(event.record_id.to_le_bytes());
        record.extend(filetime.to_le_bytes());
        record.extend(binxml);
        record.extend(size.to_le_bytes());
        (record, definition)
    }

    fn fits(&self, event: &SynthEvent) -> bool {
        self.data.len() + self.record(event).0.len() <= EVTX_CHUNK_SIZE
    }

    fn push(&mut self, event: &SynthEvent) {
        let (record, definition) = self.record(event);
        if let Some(offset) = definition {
            self.templates.push((shape(event), offset));
        }
        if self.count == 0 {
            self.first_id = event.record_id;
        }
        self.last_id = event.record_id;
        self.last_record_offset = self.data.len();
        self.count += 1;
        self.data.extend(record);
    }

    fn finish(mut self) -> Vec<u8> {
        let free_space = self.data.len();
        self.data.resize(EVTX_CHUNK_SIZE, 0);
        let chunk = &mut self.data;
        put(chunk, 0, b"ElfChnk\0");
        // First and last record numbers, then IDs (numbers are the IDs here).
        for (at, id) in [
            (8, self.first_id),
            (16, self.last_id),
            (24, self.first_id),
            (32, self.last_id),
        ] {
            put(chunk, at, &id.to_le_bytes());
        }
        put(chunk, 40, &128u32.to_le_bytes()); // header size
        put(chunk, 44, &(self.last_record_offset as u32).to_le_bytes());
        put(chunk, 48, &(free_space as u32).to_le_bytes());
        let events_checksum = evtx::checksum_ieee(&chunk[CHUNK_HEADER_SIZE..free_space]);
        put(chunk, 52, &events_checksum.to_le_bytes());
        let header_checksum =
            evtx::checksum_ieee(&[&chunk[..120], &chunk[128..CHUNK_HEADER_SIZE]].concat());
        put(chunk, 124, &header_checksum.to_le_bytes());
        self.data
    }
}

/// BinXML value types used here.
mod ty {
    pub const NULL: u8 = 0x00;
    pub const STRING: u8 = 0x01;
    pub const UINT16: u8 = 0x06;
    pub const UINT32: u8 = 0x08;
    pub const UINT64: u8 = 0x0a;
    pub const FILETIME: u8 = 0x11;
}

/// A BinXML writer that knows the chunk offset of its first byte (names are referenced by
/// chunk offset).
struct BinXml {
    bytes: Vec<u8>,
    base: u32,
}

impl BinXml {
    fn at(base: u32) -> Self {
        BinXml {
            bytes: Vec::new(),
            base,
        }
    }

    fn pos(&self) -> u32 {
        self.base + self.bytes.len() as u32
    }

    fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes.push(v);
        self
    }

    fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes.extend(v.to_le_bytes());
        self
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend(v.to_le_bytes());
        self
    }

    fn utf16(&mut self, text: &str) -> &mut Self {
        for unit in text.encode_utf16() {
            self.u16(unit);
        }
        self
    }

    /// A name reference whose string follows inline: next string, hash, length, UTF-16, NUL.
    fn name(&mut self, name: &str) -> &mut Self {
        let offset = self.pos() + 4;
        let hash = name.encode_utf16().fold(0u32, |h, c| {
            h.wrapping_mul(65599).wrapping_add(u32::from(c))
        });
        self.u32(offset)
            .u32(0)
            .u16(hash as u16)
            .u16(name.encode_utf16().count() as u16)
            .utf16(name)
            .u16(0)
    }

    /// An element start in a template definition (with a DependencyId of none).
    fn open(&mut self, name: &str, attributes: bool) -> &mut Self {
        self.u8(if attributes { 0x41 } else { 0x01 })
            .u16(0xffff)
            .u32(0) // data size, which readers skip
            .name(name);
        if attributes {
            self.u32(0); // attribute list size, which readers skip
        }
        self
    }

    fn attribute(&mut self, name: &str) -> &mut Self {
        self.u8(0x06).name(name)
    }

    fn text(&mut self, text: &str) -> &mut Self {
        self.u8(0x05)
            .u8(ty::STRING)
            .u16(text.encode_utf16().count() as u16)
            .utf16(text)
    }

    fn substitution(&mut self, id: u16, value_type: u8, optional: bool) -> &mut Self {
        self.u8(if optional { 0x0e } else { 0x0d })
            .u16(id)
            .u8(value_type)
    }

    fn close_start(&mut self) -> &mut Self {
        self.u8(0x02)
    }

    fn close_empty(&mut self) -> &mut Self {
        self.u8(0x03)
    }

    fn end(&mut self) -> &mut Self {
        self.u8(0x04)
    }
}

/// What a template fixes: the `Data` names and value types, in order.
type Shape = Vec<(String, u8)>;

fn shape(event: &SynthEvent) -> Shape {
    event
        .data
        .iter()
        .map(|(name, value)| (name.clone(), value_type(value)))
        .collect()
}

fn value_type(value: &SynthValue) -> u8 {
    match value {
        SynthValue::Text(_) => ty::STRING,
        SynthValue::UInt32(_) => ty::UINT32,
    }
}

/// `event` as BinXML starting at chunk offset `base`: a fragment holding a template instance,
/// then its values. The instance refers to the definition at chunk offset `defined`, or carries
/// its definition inline; the second value is its offset then.
fn record_binxml(event: &SynthEvent, base: u32, defined: Option<u32>) -> (Vec<u8>, Option<u32>) {
    fn utf16(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }
    let mut values: Vec<(u8, Vec<u8>)> = vec![
        (ty::STRING, utf16(&event.provider)),
        (ty::UINT16, event.event_id.to_le_bytes().to_vec()),
        match event.qualifiers {
            Some(q) => (ty::UINT16, q.to_le_bytes().to_vec()),
            None => (ty::NULL, Vec::new()),
        },
        (
            ty::FILETIME,
            (FILETIME_UNIX_EPOCH + event.unix_100ns)
                .to_le_bytes()
                .to_vec(),
        ),
        (ty::UINT64, event.record_id.to_le_bytes().to_vec()),
        (ty::STRING, utf16(&event.channel)),
        (ty::STRING, utf16(&event.computer)),
    ];
    for (_, value) in &event.data {
        values.push(match value {
            SynthValue::Text(text) => (ty::STRING, utf16(text)),
            SynthValue::UInt32(n) => (ty::UINT32, n.to_le_bytes().to_vec()),
        });
    }
    let data_types: Vec<u8> = values[7..].iter().map(|(t, _)| *t).collect();

    let mut w = BinXml::at(base);
    w.u8(0x0f).u8(1).u8(1).u8(0); // fragment header
    w.u8(0x0c).u8(0x01).u32(0); // template instance, template ID (unused)
    if let Some(definition) = defined {
        w.u32(definition);
        write_values(&mut w, values);
        return (w.bytes, None);
    }
    let definition = w.pos() + 4;
    w.u32(definition).u32(0); // definition offset (here), next template offset
    // A GUID per shape: the record ID that first used it, in this chunk.
    let mut guid = [0x56u8; 16];
    guid[..8].copy_from_slice(&event.record_id.to_le_bytes());
    w.bytes.extend(guid);

    // The definition's body, after its 24-byte header (next offset, GUID, size).
    let mut d = BinXml::at(definition + 24);
    d.u8(0x0f).u8(1).u8(1).u8(0);
    d.open("Event", true)
        .attribute("xmlns")
        .text("http://schemas.microsoft.com/win/2004/08/events/event")
        .close_start();
    d.open("System", false).close_start();
    d.open("Provider", true)
        .attribute("Name")
        .substitution(0, ty::STRING, false)
        .close_empty();
    d.open("EventID", true)
        .attribute("Qualifiers")
        .substitution(2, ty::UINT16, true)
        .close_start()
        .substitution(1, ty::UINT16, false)
        .end();
    d.open("TimeCreated", true)
        .attribute("SystemTime")
        .substitution(3, ty::FILETIME, false)
        .close_empty();
    for (name, id, value_type) in [
        ("EventRecordID", 4, ty::UINT64),
        ("Channel", 5, ty::STRING),
        ("Computer", 6, ty::STRING),
    ] {
        d.open(name, false)
            .close_start()
            .substitution(id, value_type, false)
            .end();
    }
    d.end(); // System
    d.open("EventData", false).close_start();
    for (i, (name, _)) in event.data.iter().enumerate() {
        let value_type = data_types[i];
        d.open("Data", true)
            .attribute("Name")
            .text(name)
            .close_start()
            .substitution(7 + i as u16, value_type, false)
            .end();
    }
    d.end(); // EventData
    d.end(); // Event
    d.u8(0x00); // EOF
    w.u32(d.bytes.len() as u32);
    w.bytes.extend(d.bytes);
    write_values(&mut w, values);
    (w.bytes, Some(definition))
}

/// A template instance's values: their count and descriptors (size, type, padding), then
/// their bytes; then the fragment's EOF.
fn write_values(w: &mut BinXml, values: Vec<(u8, Vec<u8>)>) {
    w.u32(values.len() as u32);
    for (value_type, bytes) in &values {
        w.u16(bytes.len() as u16).u8(*value_type).u8(0);
    }
    for (_, bytes) in values {
        w.bytes.extend(bytes);
    }
    w.u8(0x00); // EOF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_valid() {
        let header = file_header(1, 2);
        let parsed = evtx::EvtxFileHeader::from_bytes(&header).unwrap();
        assert!(parsed.validate_checksum());
        assert_eq!(parsed.major_version, 3);
        assert_eq!(parsed.chunk_count, 1);
    }

    #[test]
    fn chunks_fill_and_split() {
        let events: Vec<_> = (1..=10).map(|id| SynthEvent::new(id, 1)).collect();
        let file = evtx_file_chunked(&events, 4);
        assert_eq!(file.len(), EVTX_HEADER_SIZE + 3 * EVTX_CHUNK_SIZE);
        let file = evtx_file(&events);
        assert_eq!(file.len(), EVTX_HEADER_SIZE + EVTX_CHUNK_SIZE);
        for chunk in file[EVTX_HEADER_SIZE..].chunks(EVTX_CHUNK_SIZE) {
            let chunk = evtx::EvtxChunkData::new(chunk.to_vec(), true).unwrap();
            assert!(chunk.validate_checksum());
        }
    }
}
