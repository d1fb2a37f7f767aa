//! Amazon CloudWatch for nimbus (issue 12), being built in parts that each
//! stand on their own before the service is wired:
//!
//! - `alarm` — how an alarm's state follows from its datapoints: M out of N,
//!   TreatMissingData, low-sample-count percentiles; composite alarm rules
//!   (parsed and evaluated over the states of other alarms); state reasons in
//!   AWS's wording (pure logic; no storage, no clock).
//! - `metrics` — datapoints stored compactly by metric and time, rolled up
//!   and expired as AWS does, and the statistics (including percentiles)
//!   computed over them.
//!
//! Still to come: the handlers behind the model-driven codec, the
//! collectors and the alarm controller, and `--clock-scale`.

pub mod alarm;
pub mod metrics;
