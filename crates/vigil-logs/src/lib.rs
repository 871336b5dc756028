//! Vigil's log engine (seed 004): from raw lines to log keys to anomalies.
//!
//! * [`format`]: header formats that cut a line into fields and the message.
//! * [`mask`]: masking of variable tokens.
//! * [`session`]: grouping keys into sessions by an identifier in the line.
//! * [`syslog`]: RFC 5424 and RFC 3164 messages into ECS events.
//! * [`tail`]: following log files through rotation, with offsets that survive restarts.
//! * [`detect`]: the log anomaly detectors (Isolation Forest, DeepLog, LogBERT) and their
//!   evaluation.
//! * [`model`]: a saved log model (Drain state, session pattern, detectors, version).
//! * [`drain`]: the Drain template miner with stable ids and saved state.
//! * [`sample`]: sample logs with injected attacks and failures, and their labels.
//! * [`keys`]: log-key sessions and the files they are stored in.
//! * [`loghub`]: the Loghub 2k parsing benchmark (grouping accuracy).
#![warn(missing_docs)]

pub mod detect;
pub mod drain;
pub mod format;
pub mod keys;
pub mod loghub;
pub mod mask;
#[cfg(feature = "neural")]
pub mod model;
pub mod sample;
pub mod session;
pub mod syslog;
pub mod tail;

pub use drain::{Drain, DrainConfig, Parsed};
pub use format::LogFormat;
