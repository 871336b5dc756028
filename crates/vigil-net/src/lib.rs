//! The network detector (seed 002): connection records, host features against per-host
//! and per-process baselines, an Isolation Forest model with calibrated scores and
//! reasons, the NSL-KDD evaluation mapping, and the Linux connection collector.
//!
//! * [`record`]: one connection, from seed 002's JSON or an ECS `network` event.
//! * [`features`]: the features of a connection and the [`Baselines`](features::Baselines)
//!   they are measured against.
//! * [`collector`]: `/proc/net/{tcp,udp}[6]` and `/proc/<pid>/fd` into records.
#![warn(missing_docs)]

pub mod collector;
pub mod features;
pub mod model;
pub mod nslkdd;
pub mod record;

pub use record::{ConnectionRecord, Direction, Protocol, RecordError};
