//! Reading Windows event logs (`.evtx`, the binary XML event log format) safely.
//!
//! This crate owns turning `.evtx` bytes — a file on disk or an HTTP upload — into one record at
//! a time, as a [`serde_json::Value`]. Parsing is done by the [`evtx`] crate; this crate bounds
//! what it is given, contains what it can do wrong on hostile input, and reports damage as
//! values instead of failing the whole file.
//!
//! * [`EvtxReader`]: [`open`](EvtxReader::open) a path or take [`from_bytes`](EvtxReader::from_bytes),
//!   then iterate [`records`](EvtxReader::records).
//! * [`find_evtx_files`]: the `.evtx` files under a list of files and directories.
//! * [`fuzz_bytes`]: the fuzz entry point (reads every record of arbitrary bytes).
//! * [`synth`]: builds small valid EVTX files, for tests and fuzz seeds.
//!
//! # The JSON layout
//!
//! Each record's [`EvtxRecord::data`] is exactly what `evtx` renders (its `evtx_dump -o json`
//! layout, which python-evtx-based tools and Sigma's regression data use too). It is not
//! flattened: a Sigma engine flattens it. The XML element tree becomes nested objects:
//!
//! ```json
//! {"Event": {
//!    "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
//!    "System": {
//!      "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon", "Guid": "{5770385f-…}"}},
//!      "EventID": 1,
//!      "TimeCreated": {"#attributes": {"SystemTime": "2025-10-22T20:33:27.2767021Z"}},
//!      "EventRecordID": 256875,
//!      "Channel": "Microsoft-Windows-Sysmon/Operational",
//!      "Computer": "host",
//!      "Security": {"#attributes": {"UserID": "S-1-5-18"}}
//!    },
//!    "EventData": {"Image": "C:\\Windows\\System32\\cmd.exe", "ProcessId": 4460}
//! }}
//! ```
//!
//! * An element's attributes are under `"#attributes"`; an element that has attributes *and*
//!   text keeps its text under `"#text"`. An element with text only is its value.
//! * **`EventID` has two shapes.** Classic (non-manifest) providers write a `Qualifiers`
//!   attribute, and then `EventID` is an object: `{"#attributes": {"Qualifiers": 16384},
//!   "#text": 7036}`; otherwise it is a number (`"EventID": 4688`). This crate keeps both as
//!   `evtx` emits them; [`EvtxRecord::event_id`] reads either. A consumer that compares
//!   `Event.System.EventID` with a number must handle the object form.
//! * `<Data Name="X">v</Data>` under `EventData` becomes `"X": v`. Numbers are JSON numbers,
//!   strings keep their whitespace (Windows writes trailing spaces in some command lines).
//!   Repeated consecutive `Data` elements of one name become an array; a name that comes back
//!   later is numbered `X_1`, `X_2`.
//! * Events that use `UserData` instead of `EventData` have a `"UserData"` object holding the
//!   provider's own elements, in the same element-to-object layout.
//! * GUIDs are lowercase in braces and timestamps have seven fractional digits (100 ns), as
//!   Windows renders them (evtx ≥ 0.15; older evtx and Sigma's regression JSON write GUIDs
//!   uppercase without braces and six digits).
//! * An empty element is `null` (`"Correlation": null`). An element that its template makes
//!   depend on a value that is NULL (an optional field left unset) is left out, as Windows
//!   leaves it out.
//!
//! # Order and damage
//!
//! Records come in file order (chunk by chunk, each chunk's records in order). A log that has
//! wrapped around (Windows overwrote its oldest chunks) then does not start with its oldest
//! record, which can be in any chunk: sort by `record_id` when order matters. A chunk or record
//! that cannot be read is an `Err` item and reading goes on with the next one; [`ReadStats`]
//! counts them. A chunk whose CRC32 does not match is still read (its records may be damaged)
//! and counted in [`ReadStats::checksum_errors`]. A file cut short inside a chunk yields that
//! chunk's whole records before the cut, then an [`EvtxError::TruncatedChunk`] item.
//!
//! # Hostile input
//!
//! * Inputs over [`MAX_EVTX_BYTES`] are refused before they are read.
//! * `evtx` bounds the work and output of each record and chunk itself (node and output budgets,
//!   nesting caps). On top of that, each chunk is parsed under [`std::panic::catch_unwind`]: a
//!   panic in `evtx` becomes an [`EvtxError::ParserPanic`] item and the rest of that chunk is
//!   skipped. (This needs `panic = "unwind"`, Rust's default; Vigil's profiles keep it.)
//! * Each chunk yields at most [`MAX_ITEMS_PER_CHUNK`] items, so no chunk can loop forever, and
//!   the chunk count is bounded by the input size.
//! * One chunk is held in memory at a time: its 64 KiB and its records, whose JSON text is
//!   capped at [`MAX_CHUNK_JSON_BYTES`]. Reading from a path never loads the whole file.
#![warn(missing_docs)]

pub mod ecs;
mod error;
mod files;
mod reader;
pub mod synth;

pub use ecs::{record_from_winlog, to_ecs};
pub use error::EvtxError;
pub use files::find_evtx_files;
pub use reader::{
    EVTX_CHUNK_SIZE, EVTX_HEADER_SIZE, EvtxReader, EvtxRecord, MAX_CHUNK_JSON_BYTES,
    MAX_ITEMS_PER_CHUNK, ReadStats, Records,
};

/// The largest input [`EvtxReader::open`] and [`EvtxReader::from_bytes`] accept (1 GiB). Larger
/// logs are refused with [`EvtxError::TooLarge`].
pub const MAX_EVTX_BYTES: u64 = 1 << 30;

/// The fuzz entry point: reads every record of `data` as an EVTX file. It must never panic,
/// loop or allocate without bound, whatever `data` is.
pub fn fuzz_bytes(data: &[u8]) {
    let Ok(mut reader) = EvtxReader::from_bytes(data.to_vec()) else {
        return;
    };
    let mut items = 0u64;
    for item in reader.records() {
        items += 1;
        if let Ok(record) = item {
            assert!(record.data.is_object(), "a record is a JSON object");
        }
    }
    let stats = reader.stats();
    assert_eq!(stats.records + stats.bad_records + stats.bad_chunks, items);
    // A chunk is 64 KiB and a record at least 28 bytes: the item count has a hard bound (each
    // chunk's records, then at most a cut-off error and a truncation error).
    let chunks = (data.len() as u64).div_ceil(EVTX_CHUNK_SIZE as u64);
    assert!(items <= chunks * (MAX_ITEMS_PER_CHUNK as u64 + 2));
}
