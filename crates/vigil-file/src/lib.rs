//! File analysis (seed 001): static analysis of executables from untrusted bytes, the
//! features models score, and (in later modules) YARA, VirusTotal and verdicts.
//!
//! * [`headers`]: PE headers read by hand, bounds-checked, `pefile`-compatible.
//! * [`analysis`]: the static report of a file (PE sections, imports, exports, overlay,
//!   signature, packer signs; ELF basics). Never fails: a malformed file is a result.
//! * [`clamp`]: ClaMP's 53 raw header features, for models trained on ClaMP's data.
#![warn(missing_docs)]

pub mod analysis;
pub mod clamp;
pub mod dataset;
pub mod headers;
pub mod protocol;
pub mod vt;
pub mod yara;

pub use analysis::{Format, Limits, StaticReport, analyze};
