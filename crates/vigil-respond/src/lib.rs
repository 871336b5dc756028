//! Vigil's response layer (seed 004): findings from every analyzer correlated into
//! incidents ([`correlate`]), stored and announced as they open and change.
#![warn(missing_docs)]

pub mod correlate;
pub mod service;

pub use correlate::{CorrelationConfig, Rule};
pub use service::{IncidentEvent, IncidentPatch, IncidentService, PatchError};
