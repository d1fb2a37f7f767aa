//! Metric data queries, the `MetricDataQuery` list that GetMetricData takes
//! and a metric-math alarm keeps in its `Metrics`: this module owns reading
//! and validating such a list ([`parse_queries`]), running it over the
//! stored data ([`run_queries`]: metric statistics fetched through
//! `Metrics::statistics`, expressions evaluated by `metrics::math`), and
//! writing a query back in the API's JSON shape ([`MetricDataQuery::to_json`]).
//! Paging, ScanBy and the wire shape of results belong to the
//! GetMetricData handler (`metric_data`).
//!
//! Errors. A list CloudWatch would refuse is refused whole, before any data
//! is read, as CloudWatch validates: missing members with
//! `MissingParameter`, every other problem of every query gathered into one
//! `ValidationError` (400) whose message holds one sentence per problem,
//! separated by newlines, as CloudWatch words them ("The value X for
//! parameter MetricDataQueries.member.1.Id is not matching the expected
//! pattern ^[a-z][a-zA-Z0-9_]*$."). An expression that does not parse,
//! names an unknown id, depends on itself, or applies a function to the
//! wrong kind of value is such a problem ("Error in expression e1: ...").
//! Problems with the data rather than the request do not fail the call:
//! non-finite values (a division by zero) are dropped from a result with
//! an `ArithmeticError` message, and a failure to read one metric's data
//! marks that result, and every expression built on it, `InternalError`
//! with the reason as its message (the documented meaning of that status:
//! retry), while the other results are answered.

use super::{list, member, opt_bool, opt_integer, string};
use crate::metrics::math::{self, label, Env, Expr, Series, Value as MathValue, Window};
use crate::metrics::{
    query, Dimension, MetricIdentity, Metrics, MetricsError, Statistic, StatisticsRequest, Unit,
};
use nimbus_core::AwsError;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

/// The most queries one list may hold.
pub const MAX_QUERIES: usize = 500;
/// The longest expression CloudWatch takes (the model's limit).
pub const MAX_EXPRESSION_LEN: usize = 2048;
/// The most periods one query may span: GetMetricData's limit on the
/// datapoints of a whole call, applied to each query so that no request
/// makes nimbus hold more than that per series.
pub const MAX_PERIODS_PER_QUERY: u64 = 100_800;
/// The period of an expression that names no metric and sets none.
const DEFAULT_PERIOD_S: u64 = 60;
/// The longest chain of expressions built on expressions that one
/// evaluation follows (each link costs stack).
const MAX_REFERENCE_DEPTH: usize = 64;
const ID_PATTERN: &str = "^[a-z][a-zA-Z0-9_]*$";

/// A metric and how to aggregate it (`MetricStat`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricStat {
    pub metric: MetricIdentity,
    /// The dimensions in the order given, for echoing the query back.
    pub dimensions: Vec<Dimension>,
    pub period_s: i64,
    /// The statistic as written (`Average`, `p99`, `TM(10%:90%)`).
    pub stat: String,
    pub statistic: Statistic,
    pub unit: Option<Unit>,
}

/// What a query computes.
#[derive(Debug, Clone, PartialEq)]
pub enum QuerySource {
    Metric(MetricStat),
    /// A metric math expression: its text and its parsed form.
    Expression {
        text: String,
        expr: Expr,
    },
}

/// One validated `MetricDataQuery`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDataQuery {
    pub id: String,
    pub source: QuerySource,
    pub label: Option<String>,
    /// As given (None when left out, which means true).
    pub return_data: Option<bool>,
    /// The query's own `Period` (an expression's grid; ignored beside a MetricStat).
    pub period_s: Option<i64>,
    /// Kept to echo; nimbus has one account per caller, so it selects nothing.
    pub account_id: Option<String>,
}

impl MetricDataQuery {
    /// Whether the query's data is returned (ReturnData, true by default).
    pub fn returns_data(&self) -> bool {
        self.return_data.unwrap_or(true)
    }

    /// The query in the API's JSON shape (member names as in the model),
    /// with only the members that were given.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("Id".into(), json!(self.id));
        match &self.source {
            QuerySource::Metric(m) => {
                let dims: Vec<Value> = m
                    .dimensions
                    .iter()
                    .map(|d| json!({ "Name": d.name, "Value": d.value }))
                    .collect();
                let mut metric = Map::new();
                metric.insert("Namespace".into(), json!(m.metric.namespace));
                metric.insert("MetricName".into(), json!(m.metric.metric_name));
                if !dims.is_empty() {
                    metric.insert("Dimensions".into(), Value::Array(dims));
                }
                let mut stat = Map::new();
                stat.insert("Metric".into(), Value::Object(metric));
                stat.insert("Period".into(), json!(m.period_s));
                stat.insert("Stat".into(), json!(m.stat));
                if let Some(u) = m.unit {
                    stat.insert("Unit".into(), json!(u.as_str()));
                }
                out.insert("MetricStat".into(), Value::Object(stat));
            }
            QuerySource::Expression { text, .. } => {
                out.insert("Expression".into(), json!(text));
            }
        }
        if let Some(l) = &self.label {
            out.insert("Label".into(), json!(l));
        }
        if let Some(r) = self.return_data {
            out.insert("ReturnData".into(), json!(r));
        }
        if let Some(p) = self.period_s {
            out.insert("Period".into(), json!(p));
        }
        if let Some(a) = &self.account_id {
            out.insert("AccountId".into(), json!(a));
        }
        Value::Object(out)
    }

    /// The label a result carries when the query sets none: the metric
    /// name for a metric, the id for an expression.
    fn default_label(&self) -> &str {
        match &self.source {
            QuerySource::Metric(m) => &m.metric.metric_name,
            QuerySource::Expression { .. } => &self.id,
        }
    }
}

/// The status of one result, as `MetricDataResult.StatusCode` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    Complete,
    PartialData,
    InternalError,
}

impl StatusCode {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Complete => "Complete",
            StatusCode::PartialData => "PartialData",
            StatusCode::InternalError => "InternalError",
        }
    }
}

/// A `MessageData`: a code and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub code: String,
    pub value: String,
}

/// The data of one returned series. An expression that yields an array of
/// series gives one result per series, all with the query's id.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub id: String,
    /// The label, dynamic parts filled in.
    pub label: String,
    /// Ascending by time (epoch ms), finite values only.
    pub points: Vec<(i64, f64)>,
    /// `Complete` or `InternalError` (paging makes `PartialData`).
    pub status: StatusCode,
    pub messages: Vec<Message>,
}

fn missing(parameter: &str) -> AwsError {
    MetricsError::missing(parameter).to_aws_error()
}

fn validation(messages: &[String]) -> AwsError {
    AwsError::new("ValidationError", messages.join("\n")).with_status(400)
}

fn expression_error(id: &str, detail: &str) -> String {
    format!("Error in expression {id}: {detail}")
}

fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn period_problem(period: i64, path: &str) -> Option<String> {
    query::validate_period(period)
        .err()
        .map(|_| format!("The parameter {path} must be 1, 5, 10, 20, 30, or a multiple of 60."))
}

/// Reads and validates a `MetricDataQuery` list (`v`, the list itself;
/// `path`, its parameter name, `MetricDataQueries` or an alarm's
/// `Metrics`) as GetMetricData does: 1 to 500 queries; ids unique and
/// matching `^[a-z][a-zA-Z0-9_]*$`; each query a MetricStat (Metric with
/// Namespace and MetricName, a valid Period and Stat, an optional Unit)
/// or an Expression that parses and names only ids of the list, without
/// cycles; at least one query returning data. A null `v` is a missing
/// list. Errors are AWS's (see the module doc); the caller adds its own
/// rules (an alarm's one ReturnData).
pub(crate) fn parse_queries(v: &Value, path: &str) -> Result<Vec<MetricDataQuery>, AwsError> {
    let items: &[Value] = match v {
        Value::Null => &[],
        Value::Array(items) => items,
        other => {
            return Err(MetricsError::invalid(format!(
                "The value {other} for parameter {path} is invalid."
            ))
            .to_aws_error())
        }
    };
    if items.is_empty() {
        return Err(missing(path));
    }
    if items.len() > MAX_QUERIES {
        return Err(MetricsError::invalid(format!(
            "The collection {path} must not have a size greater than {MAX_QUERIES}."
        ))
        .to_aws_error());
    }
    let mut problems: Vec<String> = Vec::new();
    let mut queries = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}.member.{}", i + 1);
        if let Some(q) = parse_query(item, &at, &mut problems)? {
            queries.push(q);
        }
    }
    let mut seen = HashSet::new();
    if !queries.iter().all(|q| seen.insert(q.id.as_str())) {
        problems.push(format!(
            "The values for parameter id in {path} are not unique."
        ));
    }
    if problems.is_empty() {
        check_references(&queries, &mut problems);
    }
    // Counted over every item, read or not, so that one bad query does not
    // also make the list look as if nothing returned data.
    let returning = items
        .iter()
        .any(|item| !matches!(opt_bool(item, "ReturnData", path), Ok(Some(false))));
    if !returning {
        problems.push(format!(
            "At least one of the queries in {path} must have ReturnData set to true."
        ));
    }
    if problems.is_empty() {
        Ok(queries)
    } else {
        Err(validation(&problems))
    }
}

/// One query; None (with its problems noted) when it cannot be read whole.
fn parse_query(
    v: &Value,
    at: &str,
    problems: &mut Vec<String>,
) -> Result<Option<MetricDataQuery>, AwsError> {
    if !v.is_object() {
        problems.push(format!("The value {v} for parameter {at} is invalid."));
        return Ok(None);
    }
    let id = string(v, "Id", &format!("{at}.Id"))?.ok_or_else(|| missing(&format!("{at}.Id")))?;
    if !valid_id(&id) {
        problems.push(format!(
            "The value {id} for parameter {at}.Id is not matching the expected pattern {ID_PATTERN}."
        ));
    }
    let label = string(v, "Label", &format!("{at}.Label"))?;
    let return_data = opt_bool(v, "ReturnData", &format!("{at}.ReturnData"))?;
    let period_s = opt_integer(v, "Period", &format!("{at}.Period"))?;
    if let Some(p) = period_s {
        if let Some(problem) = period_problem(p, &format!("{at}.Period")) {
            problems.push(problem);
        }
    }
    let account_id = string(v, "AccountId", &format!("{at}.AccountId"))?;
    let expression = string(v, "Expression", &format!("{at}.Expression"))?;
    let stat = member(v, "MetricStat");
    let source = match (stat, expression) {
        (Some(_), Some(_)) | (None, None) => {
            problems.push(format!(
                "Exactly one of the parameters {at}.MetricStat and {at}.Expression must be specified."
            ));
            return Ok(None);
        }
        (Some(stat), None) => match parse_metric_stat(stat, &format!("{at}.MetricStat"), problems)?
        {
            Some(m) => QuerySource::Metric(m),
            None => return Ok(None),
        },
        (None, Some(text)) => {
            if text.chars().count() > MAX_EXPRESSION_LEN {
                problems.push(format!(
                    "The parameter {at}.Expression must be no longer than {MAX_EXPRESSION_LEN} characters."
                ));
                return Ok(None);
            }
            match math::parse(&text) {
                Ok(expr) => QuerySource::Expression { text, expr },
                Err(detail) => {
                    problems.push(expression_error(&id, &detail));
                    return Ok(None);
                }
            }
        }
    };
    Ok(Some(MetricDataQuery {
        id,
        source,
        label,
        return_data,
        period_s,
        account_id,
    }))
}

fn parse_metric_stat(
    v: &Value,
    at: &str,
    problems: &mut Vec<String>,
) -> Result<Option<MetricStat>, AwsError> {
    let metric_at = format!("{at}.Metric");
    let metric = member(v, "Metric").ok_or_else(|| missing(&metric_at))?;
    let namespace = string(metric, "Namespace", &format!("{metric_at}.Namespace"))?
        .ok_or_else(|| missing(&format!("{metric_at}.Namespace")))?;
    let metric_name = string(metric, "MetricName", &format!("{metric_at}.MetricName"))?
        .ok_or_else(|| missing(&format!("{metric_at}.MetricName")))?;
    let dims_at = format!("{metric_at}.Dimensions");
    let items = list(metric, "Dimensions", &dims_at)?;
    if items.len() > crate::metrics::identity::MAX_DIMENSIONS {
        problems.push(format!(
            "The collection {dims_at} must not have a size greater than {}.",
            crate::metrics::identity::MAX_DIMENSIONS
        ));
    }
    let mut dimensions = Vec::with_capacity(items.len());
    for (j, d) in items.iter().enumerate() {
        let d_at = format!("{dims_at}.member.{}", j + 1);
        let name = string(d, "Name", &format!("{d_at}.Name"))?
            .ok_or_else(|| missing(&format!("{d_at}.Name")))?;
        let value = string(d, "Value", &format!("{d_at}.Value"))?
            .ok_or_else(|| missing(&format!("{d_at}.Value")))?;
        dimensions.push(Dimension::new(name, value));
    }
    let period_s = opt_integer(v, "Period", &format!("{at}.Period"))?
        .ok_or_else(|| missing(&format!("{at}.Period")))?;
    let stat =
        string(v, "Stat", &format!("{at}.Stat"))?.ok_or_else(|| missing(&format!("{at}.Stat")))?;
    let unit = match string(v, "Unit", &format!("{at}.Unit"))? {
        None => None,
        Some(u) => match Unit::parse(&u, format!("{at}.Unit")) {
            Ok(unit) => Some(unit),
            Err(e) => {
                problems.push(e.message().to_string());
                None
            }
        },
    };
    let mut ok = true;
    if let Some(problem) = period_problem(period_s, &format!("{at}.Period")) {
        problems.push(problem);
        ok = false;
    }
    let statistic = Statistic::parse(&stat);
    if statistic.is_none() {
        problems.push(format!(
            "The value {stat} for parameter {at}.Stat is not a valid statistic."
        ));
    }
    let (Some(statistic), true) = (statistic, ok) else {
        return Ok(None);
    };
    Ok(Some(MetricStat {
        metric: MetricIdentity::new(namespace, metric_name, dimensions.clone()),
        dimensions,
        period_s,
        stat,
        statistic,
        unit,
    }))
}

/// Every id an expression names must be another query of the list, and no
/// expression may depend on itself.
fn check_references(queries: &[MetricDataQuery], problems: &mut Vec<String>) {
    let by_id: HashMap<&str, &MetricDataQuery> =
        queries.iter().map(|q| (q.id.as_str(), q)).collect();
    for q in queries {
        if let QuerySource::Expression { expr, .. } = &q.source {
            for r in expr.refs() {
                if !by_id.contains_key(r) {
                    problems.push(expression_error(
                        &q.id,
                        &format!("Unrecognized metric or expression id {r}"),
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        return;
    }
    // Depth-first walk: 0 unvisited, 1 on the path, 2 done.
    let mut state: HashMap<&str, u8> = HashMap::new();
    for q in queries {
        if cycle_from(&q.id, &by_id, &mut state) {
            problems.push(expression_error(
                &q.id,
                "The expression depends on itself (a circular reference)",
            ));
            return;
        }
    }
}

fn cycle_from<'a>(
    id: &'a str,
    by_id: &HashMap<&'a str, &'a MetricDataQuery>,
    state: &mut HashMap<&'a str, u8>,
) -> bool {
    match state.get(id) {
        Some(1) => return true,
        Some(_) => return false,
        None => {}
    }
    state.insert(id, 1);
    if let Some(QuerySource::Expression { expr, .. }) = by_id.get(id).map(|q| &q.source) {
        for r in expr.refs() {
            if let Some((&key, _)) = by_id.get_key_value(r) {
                if cycle_from(key, by_id, state) {
                    return true;
                }
            }
        }
    }
    state.insert(id, 2);
    false
}

/// Runs validated queries (from [`parse_queries`]) over `[start_ms,
/// end_ms)` at service time `now_ms`, in the caller's account and region,
/// and returns a result for every query with ReturnData (one per series
/// for an expression yielding several), in query order, labels filled in
/// at UTC. Only a problem of the request fails the call (an expression
/// applying a function to the wrong kind of value; a query spanning more
/// than [`MAX_PERIODS_PER_QUERY`] periods; a reversed range); see the
/// module doc for what a result's status says.
pub(crate) fn run_queries(
    metrics: &Metrics,
    account: &str,
    region: &str,
    queries: &[MetricDataQuery],
    start_ms: i64,
    end_ms: i64,
    now_ms: u64,
) -> Result<Vec<QueryResult>, AwsError> {
    run_queries_at(
        metrics, account, region, queries, start_ms, end_ms, now_ms, 0,
    )
}

/// [`run_queries`] with time-valued label parts shown at `offset_min`
/// minutes from UTC (GetMetricData's LabelOptions.Timezone).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_queries_at(
    metrics: &Metrics,
    account: &str,
    region: &str,
    queries: &[MetricDataQuery],
    start_ms: i64,
    end_ms: i64,
    now_ms: u64,
    offset_min: i32,
) -> Result<Vec<QueryResult>, AwsError> {
    query::validate_range(start_ms, end_ms).map_err(|e| e.to_aws_error())?;
    for (i, q) in queries.iter().enumerate() {
        if let QuerySource::Metric(m) = &q.source {
            let period_s = query::validate_period(m.period_s).map_err(|e| e.to_aws_error())?;
            let wanted = query::Plan::count(start_ms, end_ms, period_s, now_ms as i64);
            if wanted > MAX_PERIODS_PER_QUERY {
                return Err(MetricsError::combination(format!(
                    "The query {} (query {}) requests up to {wanted} datapoints, which exceeds the limit of {MAX_PERIODS_PER_QUERY}. You may reduce the datapoints requested by increasing Period, or decreasing the time range.",
                    q.id,
                    i + 1
                ))
                .to_aws_error());
            }
        }
    }
    let mut env = QueryEnv {
        metrics,
        account,
        region,
        queries,
        by_id: queries
            .iter()
            .enumerate()
            .map(|(i, q)| (q.id.as_str(), i))
            .collect(),
        cache: HashMap::new(),
        active: HashSet::new(),
        window: Window {
            start_ms,
            end_ms,
            now_ms: now_ms as i64,
            max_points: MAX_PERIODS_PER_QUERY,
        },
        now_ms,
        offset_min,
        periods: HashMap::new(),
        internal: None,
    };
    let mut out = Vec::new();
    for q in queries.iter().filter(|q| q.returns_data()) {
        env.internal = None;
        let value = match env.value_of(&q.id) {
            Ok(v) => v,
            Err(reason) => match env.internal.take() {
                Some(internal) => {
                    out.push(QueryResult {
                        id: q.id.clone(),
                        label: q.label.clone().unwrap_or_else(|| q.default_label().into()),
                        points: Vec::new(),
                        status: StatusCode::InternalError,
                        messages: vec![Message {
                            code: "InternalError".into(),
                            value: internal,
                        }],
                    });
                    continue;
                }
                None => return Err(validation(&[reason])),
            },
        };
        let period_s = env.period_of(&q.id, 0);
        let series = match value {
            MathValue::Scalar(x) => vec![Series {
                label: q.default_label().into(),
                id: q.id.clone(),
                period_s,
                points: env
                    .window
                    .grid(period_s)
                    .into_iter()
                    .map(|t| (t, x))
                    .collect(),
            }],
            MathValue::Series(s) => vec![s],
            MathValue::Array(a) => a,
        };
        let single = series.len() == 1;
        for s in series {
            let before = s.points.len();
            let points: Vec<(i64, f64)> =
                s.points.into_iter().filter(|p| p.1.is_finite()).collect();
            let mut messages = Vec::new();
            if points.len() != before {
                messages.push(Message {
                    code: "ArithmeticError".into(),
                    value: "One or more data-points have been dropped due to non-numeric values (NaN, -Infinite, +Infinite)".into(),
                });
            }
            // A series' own label: what it was called where it came from
            // (a metric, or an array's member); a single expression result
            // is called by its query.
            let own = if single || s.label.is_empty() {
                match &q.source {
                    QuerySource::Metric(m) => m.metric.metric_name.clone(),
                    QuerySource::Expression { .. } if s.label.is_empty() => q.id.clone(),
                    QuerySource::Expression { .. } => s.label.clone(),
                }
            } else {
                s.label.clone()
            };
            let template = match (&q.label, single) {
                (Some(l), _) => l.clone(),
                (None, true) => q.default_label().to_string(),
                (None, false) => own.clone(),
            };
            out.push(QueryResult {
                id: q.id.clone(),
                label: label::render(&template, &own, &points, offset_min),
                points,
                status: StatusCode::Complete,
                messages,
            });
        }
    }
    Ok(out)
}

/// A query's value once computed (or why it could not be).
#[derive(Clone)]
enum Computed {
    Value(MathValue),
    /// The request's fault.
    Invalid(String),
    /// The data could not be read.
    Internal(String),
}

struct QueryEnv<'a> {
    metrics: &'a Metrics,
    account: &'a str,
    region: &'a str,
    queries: &'a [MetricDataQuery],
    by_id: HashMap<&'a str, usize>,
    cache: HashMap<String, Computed>,
    /// Queries being evaluated (a guard against cycles in lists that did
    /// not come through parse_queries).
    active: HashSet<String>,
    window: Window,
    now_ms: u64,
    offset_min: i32,
    /// Periods found so far, by id.
    periods: HashMap<String, u64>,
    /// Set when a value failed because data could not be read.
    internal: Option<String>,
}

impl QueryEnv<'_> {
    /// The period of a query's series: a metric's own; for an expression
    /// its Period, else the shortest of what it names (every metric for
    /// METRICS()), else the shortest metric period of the request.
    /// Remembered per id, so a web of expressions costs one visit each.
    fn period_of(&mut self, id: &str, depth: usize) -> u64 {
        if let Some(&p) = self.periods.get(id) {
            return p;
        }
        let queries = self.queries;
        let Some(q) = self.by_id.get(id).map(|&i| &queries[i]) else {
            return DEFAULT_PERIOD_S;
        };
        let shortest_metric = queries
            .iter()
            .filter_map(|q| match &q.source {
                QuerySource::Metric(m) => Some(m.period_s.max(1) as u64),
                _ => None,
            })
            .min();
        let period = match &q.source {
            QuerySource::Metric(m) => m.period_s.max(1) as u64,
            QuerySource::Expression { expr, .. } => match q.period_s.filter(|p| *p > 0) {
                Some(p) => p as u64,
                None => {
                    let mut periods: Vec<u64> = Vec::new();
                    // Deeper than any list can chain is a cycle: stop there.
                    if depth < queries.len() {
                        for r in expr.refs() {
                            periods.push(self.period_of(r, depth + 1));
                        }
                    }
                    if expr.uses_metrics() {
                        periods.extend(shortest_metric);
                    }
                    periods
                        .into_iter()
                        .min()
                        .or(shortest_metric)
                        .unwrap_or(DEFAULT_PERIOD_S)
                }
            },
        };
        self.periods.insert(id.to_string(), period);
        period
    }

    fn compute(&mut self, id: &str) -> Computed {
        let Some(&index) = self.by_id.get(id) else {
            return Computed::Invalid(format!("Unrecognized metric or expression id {id}"));
        };
        let queries = self.queries;
        let q = &queries[index];
        match &q.source {
            QuerySource::Metric(m) => match self.fetch(q, m) {
                Ok(s) => Computed::Value(MathValue::Series(s)),
                Err(e @ MetricsError::Internal(_)) => Computed::Internal(e.message().to_string()),
                Err(e) => Computed::Invalid(e.message().to_string()),
            },
            QuerySource::Expression { expr, .. } => {
                if self.active.len() >= MAX_REFERENCE_DEPTH {
                    return Computed::Invalid(expression_error(
                        id,
                        &format!("Expressions may build on each other at most {MAX_REFERENCE_DEPTH} deep"),
                    ));
                }
                if !self.active.insert(id.to_string()) {
                    return Computed::Invalid(expression_error(
                        id,
                        "The expression depends on itself (a circular reference)",
                    ));
                }
                let period_s = self.period_of(id, 0);
                let window = self.window;
                let result = math::evaluate(expr, self, &window, period_s);
                self.active.remove(id);
                match result {
                    Ok(mut v) => {
                        // A single series made by an expression is that
                        // expression's, for whatever uses it next.
                        if let MathValue::Series(s) = &mut v {
                            if s.id.is_empty() {
                                s.id = id.to_string();
                            }
                        }
                        Computed::Value(v)
                    }
                    Err(detail) if self.internal.is_some() => Computed::Internal(detail),
                    Err(detail) if detail.starts_with("Error in expression") => {
                        Computed::Invalid(detail)
                    }
                    Err(detail) => Computed::Invalid(expression_error(id, &detail)),
                }
            }
        }
    }

    /// A metric's datapoints at its statistic, units merged (see `merge`).
    fn fetch(&self, q: &MetricDataQuery, m: &MetricStat) -> Result<Series, MetricsError> {
        let statistics = [m.statistic, Statistic::SampleCount];
        let request = StatisticsRequest {
            account: self.account,
            region: self.region,
            metric: &m.metric,
            unit: m.unit,
            start_ms: self.window.start_ms,
            end_ms: self.window.end_ms,
            period_s: m.period_s,
            statistics: &statistics,
        };
        let points = self
            .metrics
            .statistics(&request, self.now_ms, MAX_PERIODS_PER_QUERY)?;
        let mut by_time: std::collections::BTreeMap<i64, Vec<(f64, f64)>> =
            std::collections::BTreeMap::new();
        for p in points {
            if let (Some(Some(v)), Some(Some(count))) = (p.values.first(), p.values.get(1)) {
                by_time
                    .entry(p.timestamp_ms)
                    .or_default()
                    .push((*v, *count));
            }
        }
        let points: Vec<(i64, f64)> = by_time
            .into_iter()
            .map(|(t, parts)| (t, merge(&m.statistic, &parts)))
            .collect();
        // In an array (METRICS()) a metric goes by its label as its own
        // result shows it.
        let template = q.label.as_deref().unwrap_or(&m.metric.metric_name);
        Ok(Series {
            label: label::render(template, &m.metric.metric_name, &points, self.offset_min),
            id: q.id.clone(),
            period_s: m.period_s.max(1) as u64,
            points,
        })
    }
}

/// One period's value from the values of the units it has data in, each
/// with its sample count. A metric published in one unit (the usual case)
/// has one; several units (a query without Unit) combine as the statistic
/// does: counts and sums add, extremes take the extreme, averages weigh
/// by count, and a percentile-family statistic, which cannot be combined
/// from its parts, takes the unit with the most samples.
fn merge(statistic: &Statistic, parts: &[(f64, f64)]) -> f64 {
    if let [(v, _)] = parts {
        return *v;
    }
    match statistic {
        Statistic::SampleCount | Statistic::Sum => parts.iter().map(|p| p.0).sum(),
        Statistic::Minimum => parts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min),
        Statistic::Maximum => parts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max),
        Statistic::Average => {
            let total: f64 = parts.iter().map(|p| p.1).sum();
            parts.iter().map(|p| p.0 * p.1).sum::<f64>() / total
        }
        _ => parts
            .iter()
            .copied()
            .reduce(|a, b| if b.1 > a.1 { b } else { a })
            .map_or(f64::NAN, |p| p.0),
    }
}

impl Env for QueryEnv<'_> {
    fn value_of(&mut self, id: &str) -> Result<MathValue, String> {
        let computed = match self.cache.get(id) {
            Some(c) => c.clone(),
            None => {
                let c = self.compute(id);
                self.cache.insert(id.to_string(), c.clone());
                c
            }
        };
        match computed {
            Computed::Value(v) => Ok(v),
            Computed::Invalid(reason) => Err(reason),
            Computed::Internal(reason) => {
                self.internal = Some(reason.clone());
                Err(reason)
            }
        }
    }

    fn metrics(&mut self) -> Result<Vec<Series>, String> {
        let ids: Vec<&str> = self
            .queries
            .iter()
            .filter(|q| matches!(q.source, QuerySource::Metric(_)))
            .map(|q| q.id.as_str())
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.value_of(id)? {
                MathValue::Series(s) => out.push(s),
                _ => return Err(format!("The metric {id} is not a time series")),
            }
        }
        Ok(out)
    }
}
