//! How an alarm's state follows from its data: metric alarms from the
//! datapoints of their evaluation range (M out of N, TreatMissingData,
//! low-sample percentiles), composite alarms from the states of the alarms
//! their rule names; and the `StateReason` / `StateReasonData` that CloudWatch
//! writes for each, in its own wording. Pure logic: the caller fetches the
//! datapoints and passes the time in; nothing here stores, schedules or acts.

mod composite;
mod metric;
mod rule;
mod state;
pub(crate) mod text;

pub use composite::{ChildAlarm, CompositeTrigger};
pub use metric::{
    evaluation_range_periods, low_sample_count_limit, percentile_fraction, ComparisonOperator,
    Datapoint, EvaluationRange, LowSampleCountPercentile, MetricAlarmConfig, TreatMissingData,
    MAX_EVALUATION_PERIODS,
};
pub use rule::{
    AlarmRule, RuleError, RuleExpr, MAX_RULE_ALARMS, MAX_RULE_ELEMENTS, MAX_RULE_LENGTH,
};
pub use state::{AlarmState, Outcome, StateUpdate};
