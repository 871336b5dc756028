//! The network detector (seed 002): connection records, host features against per-host
//! and per-process baselines, an Isolation Forest model with calibrated scores and
//! reasons, the NSL-KDD evaluation mapping, and the Linux connection collector.
//!
//! * [`record`]: one connection, from seed 002's JSON or an ECS `network` event.
//! * [`features`]: the features of a connection and the [`Baselines`](features::Baselines)
//!   they are measured against.
//! * [`model`]: the model (quantile features, k-NN or Isolation Forest, calibration).
//! * [`detector`]: the live detector, training, drift, promotion, `[network]` config.
//! * [`privacy`]: keyed pseudonyms for IP addresses.
//! * [`nslkdd`]: NSL-KDD rows and the evaluation protocol.
//! * [`sockdiag`]: TCP byte counters from the kernel's `sock_diag` netlink interface.
//! * [`collector`]: `/proc/net/{tcp,udp}[6]` and `/proc/<pid>/fd` into records.
#![warn(missing_docs)]

pub mod collector;
pub mod detector;
pub mod features;
pub mod model;
pub mod nslkdd;
pub mod privacy;
pub mod record;
pub mod sockdiag;

pub use detector::{NetConfig, NetDetector, NetResult};
pub use record::{ConnectionRecord, Direction, Protocol, RecordError};
