//! Vigil's response layer (seed 004): findings from every analyzer correlated into
//! incidents ([`correlate`]), stored and announced as they open and change ([`service`]),
//! and delivered to Slack, webhooks and Shuffle SOAR ([`responders`]).
#![warn(missing_docs)]

pub mod correlate;
pub mod responders;
pub mod service;

pub use correlate::{CorrelationConfig, Rule};
pub use responders::{PublishError, Publisher, RespondConfig, Responders, RouteConfig, RouteKind};
pub use service::{IncidentEvent, IncidentPatch, IncidentService, PatchError};
