//! File analysis (seed 001): static analysis of executables from untrusted bytes, the
//! features models score, and (in later modules) YARA, VirusTotal and verdicts.
//!
//! * [`headers`]: PE headers read by hand, bounds-checked, `pefile`-compatible.
//! * [`analysis`]: the static report of a file (PE sections, imports, exports, overlay,
//!   signature, packer signs; ELF basics). Never fails: a malformed file is a result.
//! * [`clamp`]: ClaMP's 53 raw header features, for models trained on ClaMP's data.
//! * [`model`]: the file model (a random forest over those features) and its metadata.
//! * [`yara`]: YARA-X with Vigil's default rules and reloadable rule folders.
//! * [`vt`]: the VirusTotal v3 client and its cache.
//! * [`dynamic`]: behaviour Vigil has observed of a hash (events, children, findings).
//! * [`sandbox`]: CAPE and Cuckoo reports as dynamic evidence.
//! * [`known`]: verdicts by hash, for the pipeline's file analyzer.
//! * [`verdict`]: evidence from every analysis combined into one score and explanation.
//! * [`engine`]: static analysis + YARA + model on one file, shared by CLI, REST, protocol.
//! * [`protocol`]: seed 001's binary protocol (framing only).
//! * [`dataset`]: ClaMP's CSV and seed 001's `path, sha256, label` CSV.
#![warn(missing_docs)]

pub mod analysis;
pub mod clamp;
pub mod dataset;
pub mod dynamic;
#[cfg(feature = "yara")]
pub mod engine;
pub mod headers;
pub mod known;
pub mod model;
pub mod protocol;
pub mod sandbox;
pub mod verdict;
#[cfg(feature = "virustotal")]
pub mod vt;
#[cfg(feature = "yara")]
pub mod yara;

pub use analysis::{Format, Limits, StaticReport, analyze};
#[cfg(feature = "yara")]
pub use engine::{FileConfig, FileEngine, FileReport};
