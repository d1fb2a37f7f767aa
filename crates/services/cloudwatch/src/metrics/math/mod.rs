//! CloudWatch metric math, as a library with no store and no clock: this
//! module owns reading an expression (`parse`), evaluating it over time
//! series that the caller supplies through an [`Env`] (`eval`), and filling
//! in dynamic labels (`label`). GetMetricData and metric-math alarms use it
//! through `handlers::metric_queries`, which fetches the metric data.
//!
//! Supported: `+ - * / ^`, unary minus, parentheses, comparisons
//! (`== != < <= > >=`) and logic (`AND`/`&&`, `OR`/`||`, `NOT`/`!`),
//! array literals `[m1, m2]`, and the functions ABS, AVG, CEIL,
//! DATAPOINT_COUNT, DIFF, DIFF_TIME, EPOCH, EXP, FILL (value, series,
//! REPEAT, LINEAR), FIRST, FLOOR, IF, LAST, LOG, LOG10, MAX, METRIC_COUNT,
//! METRICS, MIN, PERIOD, RATE, REMOVE_EMPTY, RUNNING_SUM, SLICE, SORT,
//! SQRT, STDDEV, SUM and TIME_SERIES. SEARCH, ANOMALY_DETECTION_BAND,
//! INSIGHT_RULE_METRIC and the other service-backed functions are refused
//! by name.

pub mod eval;
pub mod label;
pub mod parse;
#[cfg(test)]
mod tests;

pub use eval::{evaluate, Env, Series, Value, Window};
pub use parse::{parse, BinOp, Expr};
