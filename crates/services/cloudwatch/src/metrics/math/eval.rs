//! Evaluation of a parsed expression over time series: the value types
//! (scalar, series, array of series), the operators with timestamp
//! alignment, and every function of [`super::parse::FUNCTIONS`]. Pure: the
//! data of other queries comes from an [`Env`] the caller supplies.
//!
//! Rules, as CloudWatch's metric math guide states them:
//! - An operator between two series yields a value only at the timestamps
//!   both have (FILL is the way to bridge gaps); between a series and a
//!   scalar it applies to every point; an array of series is taken series
//!   by series.
//! - Comparisons and logical operators give 1 for true and 0 for false;
//!   any value other than 0 counts as true.
//! - AVG, MAX, MIN, SUM, STDDEV and DATAPOINT_COUNT of one series give a
//!   scalar over all its points; of an array they give one series, taken
//!   timestamp by timestamp over the series that have a value there.
//! - Non-finite results (a division by zero) stay in intermediate values
//!   (an IF may discard them) and are dropped from a query's final result
//!   (see `run` in the caller).

use super::parse::{BinOp, Expr};
use std::collections::BTreeMap;

/// One time series: ascending (timestamp ms, value) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The label the series carries into arrays (a metric's label, or the
    /// id of the expression that made it).
    pub label: String,
    /// The id of the query the series came from (METRICS("x") filters on it).
    pub id: String,
    pub period_s: u64,
    pub points: Vec<(i64, f64)>,
}

impl Series {
    fn derived(&self, points: Vec<(i64, f64)>) -> Series {
        Series {
            label: self.label.clone(),
            id: self.id.clone(),
            period_s: self.period_s,
            points,
        }
    }

    fn at(&self, t: i64) -> Option<f64> {
        self.points
            .binary_search_by_key(&t, |p| p.0)
            .ok()
            .map(|i| self.points[i].1)
    }
}

/// What an expression evaluates to.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    Series(Series),
    Array(Vec<Series>),
}

/// What evaluation needs from outside.
pub trait Env {
    /// The value of the query with this id (evaluated on first use).
    fn value_of(&mut self, id: &str) -> Result<Value, String>;
    /// The series of every metric (MetricStat) query of the request, in
    /// request order: what METRICS() returns.
    fn metrics(&mut self) -> Result<Vec<Series>, String>;
}

/// The time frame of a request: the periods a scalar, TIME_SERIES or FILL
/// lay out.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
    pub now_ms: i64,
    /// The most points a laid-out series may have.
    pub max_points: u64,
}

impl Window {
    /// The period starts of `period_s` in the window, rounded as
    /// CloudWatch rounds a request's start.
    pub fn grid(&self, period_s: u64) -> Vec<i64> {
        let period_s = period_s.max(1);
        let start_s = crate::metrics::query::rounded_start_s(self.start_ms, period_s, self.now_ms);
        let step = (period_s as i64).saturating_mul(1000);
        let mut out = Vec::new();
        let mut t = (start_s as i64).saturating_mul(1000);
        while t < self.end_ms && (out.len() as u64) < self.max_points {
            out.push(t);
            t = t.saturating_add(step);
        }
        out
    }
}

/// Evaluates `expr`; `period_s` is the period of the expression's own
/// grid (for scalars made series and FILL).
pub fn evaluate(
    expr: &Expr,
    env: &mut dyn Env,
    window: &Window,
    period_s: u64,
) -> Result<Value, String> {
    Evaluator {
        env,
        window,
        period_s,
    }
    .eval(expr)
}

struct Evaluator<'a> {
    env: &'a mut dyn Env,
    window: &'a Window,
    period_s: u64,
}

fn apply(op: BinOp, x: f64, y: f64) -> f64 {
    let truth = |b: bool| if b { 1.0 } else { 0.0 };
    match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
        BinOp::Pow => x.powf(y),
        BinOp::Eq => truth(x == y),
        BinOp::Ne => truth(x != y),
        BinOp::Lt => truth(x < y),
        BinOp::Le => truth(x <= y),
        BinOp::Gt => truth(x > y),
        BinOp::Ge => truth(x >= y),
        BinOp::And => truth(x != 0.0 && y != 0.0),
        BinOp::Or => truth(x != 0.0 || y != 0.0),
    }
}

/// Two series joined on the timestamps both have.
fn join(a: &Series, b: &Series, f: impl Fn(f64, f64) -> f64) -> Series {
    let (mut i, mut j) = (0, 0);
    let mut points = Vec::with_capacity(a.points.len().min(b.points.len()));
    while i < a.points.len() && j < b.points.len() {
        let (ta, va) = a.points[i];
        let (tb, vb) = b.points[j];
        match ta.cmp(&tb) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                points.push((ta, f(va, vb)));
                i += 1;
                j += 1;
            }
        }
    }
    let mut out = a.derived(points);
    out.period_s = a.period_s.min(b.period_s);
    out
}

fn map_series(s: &Series, f: impl Fn(f64) -> f64) -> Series {
    s.derived(s.points.iter().map(|&(t, v)| (t, f(v))).collect())
}

/// A function over a value's numbers, keeping its shape.
fn map_value(v: Value, f: impl Fn(f64) -> f64) -> Value {
    match v {
        Value::Scalar(x) => Value::Scalar(f(x)),
        Value::Series(s) => Value::Series(map_series(&s, f)),
        Value::Array(a) => Value::Array(a.iter().map(|s| map_series(s, &f)).collect()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reduce {
    Avg,
    Max,
    Min,
    Sum,
    StdDev,
    Count,
}

impl Reduce {
    fn of(name: &str) -> Option<Reduce> {
        Some(match name {
            "AVG" => Reduce::Avg,
            "MAX" => Reduce::Max,
            "MIN" => Reduce::Min,
            "SUM" => Reduce::Sum,
            "STDDEV" => Reduce::StdDev,
            "DATAPOINT_COUNT" => Reduce::Count,
            _ => return None,
        })
    }

    /// The statistic over `values` (NaN for no values, except a count).
    fn over(self, values: &[f64]) -> f64 {
        let n = values.len() as f64;
        if values.is_empty() {
            return if self == Reduce::Count { 0.0 } else { f64::NAN };
        }
        match self {
            Reduce::Avg => values.iter().sum::<f64>() / n,
            Reduce::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            Reduce::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            Reduce::Sum => values.iter().sum(),
            // The population standard deviation: the data points are the
            // whole of what is measured, not a sample of it.
            Reduce::StdDev => {
                let mean = values.iter().sum::<f64>() / n;
                (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
            }
            Reduce::Count => n,
        }
    }
}

fn values_of(s: &Series) -> Vec<f64> {
    s.points.iter().map(|p| p.1).collect()
}

impl Evaluator<'_> {
    fn eval(&mut self, e: &Expr) -> Result<Value, String> {
        match e {
            Expr::Number(n) => Ok(Value::Scalar(*n)),
            Expr::Str(s) => Err(format!("Unexpected string \"{s}\"")),
            Expr::Keyword(k) => Err(format!("Unexpected keyword {k}")),
            Expr::Ref(id) => self.env.value_of(id),
            Expr::Neg(inner) => Ok(map_value(self.eval(inner)?, |x| -x)),
            Expr::Not(inner) => Ok(map_value(self.eval(inner)?, |x| {
                if x == 0.0 {
                    1.0
                } else {
                    0.0
                }
            })),
            Expr::Binary(op, a, b) => {
                let a = self.eval(a)?;
                let b = self.eval(b)?;
                binary(*op, a, b)
            }
            Expr::List(items) => {
                let mut out = Vec::new();
                for item in items {
                    match self.eval(item)? {
                        Value::Series(s) => out.push(s),
                        Value::Array(a) => out.extend(a),
                        Value::Scalar(_) => return Err("An array may hold only time series".into()),
                    }
                }
                Ok(Value::Array(out))
            }
            Expr::Call(name, args) => self.call(name, args),
        }
    }

    fn array_arg(&mut self, name: &str, e: &Expr) -> Result<Vec<Series>, String> {
        match self.eval(e)? {
            Value::Array(a) => Ok(a),
            Value::Series(s) => Ok(vec![s]),
            Value::Scalar(_) => Err(format!(
                "The function {name} expects an array of time series"
            )),
        }
    }

    fn scalar_arg(&mut self, name: &str, e: &Expr) -> Result<f64, String> {
        match self.eval(e)? {
            Value::Scalar(x) => Ok(x),
            _ => Err(format!("The function {name} expects a scalar")),
        }
    }

    /// A function applied to a series, or to each series of an array.
    fn per_series(
        &mut self,
        name: &str,
        arg: &Expr,
        f: impl Fn(&Series) -> Series,
    ) -> Result<Value, String> {
        match self.eval(arg)? {
            Value::Series(s) => Ok(Value::Series(f(&s))),
            Value::Array(a) => Ok(Value::Array(a.iter().map(f).collect())),
            Value::Scalar(_) => Err(format!("The function {name} expects a time series")),
        }
    }

    fn call(&mut self, name: &str, args: &[Expr]) -> Result<Value, String> {
        let arg = |i: usize| -> Result<&Expr, String> {
            args.get(i)
                .ok_or_else(|| format!("The function {name} is missing an argument"))
        };
        if let Some(reduce) = Reduce::of(name) {
            return match self.eval(arg(0)?)? {
                Value::Scalar(x) if reduce == Reduce::Count => {
                    Ok(Value::Scalar(if x.is_nan() { 0.0 } else { 1.0 }))
                }
                Value::Scalar(x) => Ok(Value::Scalar(x)),
                Value::Series(s) => Ok(Value::Scalar(reduce.over(&values_of(&s)))),
                Value::Array(a) => Ok(Value::Series(across(&a, reduce, self.period_s))),
            };
        }
        match name {
            "ABS" => Ok(map_value(self.eval(arg(0)?)?, f64::abs)),
            "CEIL" => Ok(map_value(self.eval(arg(0)?)?, f64::ceil)),
            "FLOOR" => Ok(map_value(self.eval(arg(0)?)?, f64::floor)),
            "LOG" => Ok(map_value(self.eval(arg(0)?)?, f64::ln)),
            "LOG10" => Ok(map_value(self.eval(arg(0)?)?, f64::log10)),
            "SQRT" => Ok(map_value(self.eval(arg(0)?)?, f64::sqrt)),
            "EXP" => Ok(map_value(self.eval(arg(0)?)?, f64::exp)),
            "EPOCH" => self.per_series(name, arg(0)?, |s| {
                s.derived(
                    s.points
                        .iter()
                        .map(|&(t, _)| (t, (t / 1000) as f64))
                        .collect(),
                )
            }),
            "DIFF" => self.per_series(name, arg(0)?, |s| {
                s.derived(
                    s.points
                        .windows(2)
                        .map(|w| (w[1].0, w[1].1 - w[0].1))
                        .collect(),
                )
            }),
            "DIFF_TIME" => self.per_series(name, arg(0)?, |s| {
                s.derived(
                    s.points
                        .windows(2)
                        .map(|w| (w[1].0, (w[1].0 - w[0].0) as f64 / 1000.0))
                        .collect(),
                )
            }),
            "RATE" => self.per_series(name, arg(0)?, |s| {
                s.derived(
                    s.points
                        .windows(2)
                        .map(|w| {
                            (
                                w[1].0,
                                (w[1].1 - w[0].1) / ((w[1].0 - w[0].0) as f64 / 1000.0),
                            )
                        })
                        .collect(),
                )
            }),
            "RUNNING_SUM" => self.per_series(name, arg(0)?, |s| {
                let mut total = 0.0;
                s.derived(
                    s.points
                        .iter()
                        .map(|&(t, v)| {
                            total += v;
                            (t, total)
                        })
                        .collect(),
                )
            }),
            "PERIOD" => match self.eval(arg(0)?)? {
                Value::Series(s) => Ok(Value::Scalar(s.period_s as f64)),
                Value::Array(a) => match a.first() {
                    Some(s) => Ok(Value::Scalar(s.period_s as f64)),
                    None => Ok(Value::Scalar(self.period_s as f64)),
                },
                Value::Scalar(_) => Err("The function PERIOD expects a time series".into()),
            },
            "TIME_SERIES" => {
                let x = self.scalar_arg(name, arg(0)?)?;
                Ok(Value::Series(self.constant(x)))
            }
            "METRICS" => {
                let filter = match args.first() {
                    None => None,
                    Some(Expr::Str(s)) => Some(s.clone()),
                    Some(_) => return Err("The function METRICS expects a string".into()),
                };
                let all = self.env.metrics()?;
                Ok(Value::Array(
                    all.into_iter()
                        .filter(|s| filter.as_ref().is_none_or(|f| s.id.contains(f.as_str())))
                        .collect(),
                ))
            }
            "METRIC_COUNT" => Ok(Value::Scalar(self.array_arg(name, arg(0)?)?.len() as f64)),
            "REMOVE_EMPTY" => match self.eval(arg(0)?)? {
                Value::Array(a) => Ok(Value::Array(
                    a.into_iter().filter(|s| !s.points.is_empty()).collect(),
                )),
                Value::Series(s) => Ok(Value::Series(s)),
                Value::Scalar(_) => Err("The function REMOVE_EMPTY expects an array".into()),
            },
            "FIRST" | "LAST" => {
                let a = self.array_arg(name, arg(0)?)?;
                let picked = if name == "FIRST" {
                    a.into_iter().next()
                } else {
                    a.into_iter().next_back()
                };
                Ok(Value::Series(picked.unwrap_or_else(|| self.empty())))
            }
            "SORT" => self.sort(args),
            "SLICE" => {
                let a = self.array_arg(name, arg(0)?)?;
                let index = |x: f64| -> Result<usize, String> {
                    if x.is_finite() && x >= 0.0 && x.fract() == 0.0 {
                        Ok(x as usize)
                    } else {
                        Err("The function SLICE expects whole, non-negative indexes".into())
                    }
                };
                let from = index(self.scalar_arg(name, arg(1)?)?)?;
                let to = match args.get(2) {
                    Some(e) => index(self.scalar_arg(name, e)?)?,
                    None => from + 1,
                };
                let to = to.min(a.len());
                let from = from.min(to);
                Ok(Value::Array(a[from..to].to_vec()))
            }
            "FILL" => self.fill(arg(0)?, arg(1)?),
            "IF" => self.if_(args),
            other => Err(format!("Unknown function {other}")),
        }
    }

    fn empty(&self) -> Series {
        Series {
            label: String::new(),
            id: String::new(),
            period_s: self.period_s,
            points: Vec::new(),
        }
    }

    fn constant(&self, x: f64) -> Series {
        Series {
            points: self
                .window
                .grid(self.period_s)
                .into_iter()
                .map(|t| (t, x))
                .collect(),
            ..self.empty()
        }
    }

    fn sort(&mut self, args: &[Expr]) -> Result<Value, String> {
        let mut a = match args.first() {
            Some(e) => self.array_arg("SORT", e)?,
            None => return Err("The function SORT is missing an argument".into()),
        };
        let by = match args.get(1) {
            Some(Expr::Keyword(k)) => Reduce::of(k),
            _ => None,
        }
        .ok_or("The function SORT sorts by AVG, MAX, MIN, SUM, STDDEV or DATAPOINT_COUNT")?;
        let descending = match args.get(2) {
            Some(Expr::Keyword(k)) if k == "ASC" => false,
            Some(Expr::Keyword(k)) if k == "DESC" => true,
            _ => return Err("The function SORT takes ASC or DESC as its order".into()),
        };
        let limit = match args.get(3) {
            Some(e) => {
                let n = self.scalar_arg("SORT", e)?;
                if !(n.is_finite() && n >= 0.0) {
                    return Err("The function SORT takes a non-negative number of series".into());
                }
                Some(n as usize)
            }
            None => None,
        };
        let mut keyed: Vec<(f64, Series)> =
            a.drain(..).map(|s| (by.over(&values_of(&s)), s)).collect();
        // Stable, and series with no value (NaN) last in either order.
        keyed.sort_by(|x, y| match (x.0.is_nan(), y.0.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if descending => y.0.total_cmp(&x.0),
            _ => x.0.total_cmp(&y.0),
        });
        let mut out: Vec<Series> = keyed.into_iter().map(|(_, s)| s).collect();
        if let Some(n) = limit {
            out.truncate(n);
        }
        Ok(Value::Array(out))
    }

    fn fill(&mut self, target: &Expr, with: &Expr) -> Result<Value, String> {
        enum How {
            Value(f64),
            Series(Series),
            Repeat,
            Linear,
        }
        let how =
            match with {
                Expr::Keyword(k) if k == "REPEAT" => How::Repeat,
                Expr::Keyword(k) if k == "LINEAR" => How::Linear,
                other => match self.eval(other)? {
                    Value::Scalar(x) => How::Value(x),
                    Value::Series(s) => How::Series(s),
                    Value::Array(_) => return Err(
                        "The function FILL fills with a scalar, a time series, REPEAT or LINEAR"
                            .into(),
                    ),
                },
            };
        let window = *self.window;
        let fill_one = |s: &Series| -> Series {
            let mut at: BTreeMap<i64, Option<f64>> =
                s.points.iter().map(|&(t, v)| (t, Some(v))).collect();
            for t in window.grid(s.period_s) {
                at.entry(t).or_insert(None);
            }
            let times: Vec<i64> = at.keys().copied().collect();
            let known: Vec<(i64, f64)> = s.points.clone();
            let mut points = Vec::with_capacity(times.len());
            for t in times {
                let value = match at.get(&t).copied().flatten() {
                    Some(v) => Some(v),
                    None => match &how {
                        How::Value(x) => Some(*x),
                        How::Series(f) => f.at(t),
                        How::Repeat => {
                            let i = known.partition_point(|p| p.0 < t);
                            i.checked_sub(1).map(|i| known[i].1)
                        }
                        How::Linear => {
                            let i = known.partition_point(|p| p.0 < t);
                            match (i.checked_sub(1).map(|i| known[i]), known.get(i)) {
                                (Some((t0, v0)), Some(&(t1, v1))) => {
                                    let f = (t - t0) as f64 / (t1 - t0) as f64;
                                    Some(v0 + (v1 - v0) * f)
                                }
                                _ => None,
                            }
                        }
                    },
                };
                if let Some(v) = value {
                    points.push((t, v));
                }
            }
            s.derived(points)
        };
        match self.eval(target)? {
            Value::Series(s) => Ok(Value::Series(fill_one(&s))),
            Value::Array(a) => Ok(Value::Array(a.iter().map(fill_one).collect())),
            Value::Scalar(_) => Err("The function FILL expects a time series".into()),
        }
    }

    fn if_(&mut self, args: &[Expr]) -> Result<Value, String> {
        let cond = match args.first() {
            Some(e) => self.eval(e)?,
            None => return Err("The function IF is missing an argument".into()),
        };
        let branch = |v: Option<Value>| -> Result<Option<Value>, String> {
            match v {
                Some(Value::Array(_)) => {
                    Err("The function IF takes a scalar or a time series as its values".into())
                }
                other => Ok(other),
            }
        };
        let yes = match args.get(1) {
            Some(e) => branch(Some(self.eval(e)?))?,
            None => return Err("The function IF is missing an argument".into()),
        };
        let no = match args.get(2) {
            Some(e) => branch(Some(self.eval(e)?))?,
            None => None,
        };
        let pick = |t: i64, c: f64| -> Option<f64> {
            let chosen = if c != 0.0 { yes.as_ref() } else { no.as_ref() };
            match chosen? {
                Value::Scalar(x) => Some(*x),
                Value::Series(s) => s.at(t),
                Value::Array(_) => None,
            }
        };
        let over = |s: &Series| -> Series {
            s.derived(
                s.points
                    .iter()
                    .filter_map(|&(t, c)| pick(t, c).map(|v| (t, v)))
                    .collect(),
            )
        };
        match cond {
            Value::Scalar(c) => {
                let chosen = if c != 0.0 { yes } else { no };
                Ok(chosen.unwrap_or_else(|| Value::Series(self.empty())))
            }
            Value::Series(s) => Ok(Value::Series(over(&s))),
            Value::Array(a) => Ok(Value::Array(a.iter().map(over).collect())),
        }
    }
}

/// A statistic across an array, timestamp by timestamp, over the series
/// with a value there.
fn across(a: &[Series], reduce: Reduce, default_period_s: u64) -> Series {
    let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for s in a {
        for &(t, v) in &s.points {
            at.entry(t).or_default().push(v);
        }
    }
    Series {
        label: String::new(),
        id: String::new(),
        period_s: a
            .iter()
            .map(|s| s.period_s)
            .min()
            .unwrap_or(default_period_s),
        points: at
            .into_iter()
            .map(|(t, vs)| (t, reduce.over(&vs)))
            .collect(),
    }
}

fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, String> {
    let f = |x, y| apply(op, x, y);
    Ok(match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => Value::Scalar(f(x, y)),
        (Value::Series(s), Value::Scalar(y)) => Value::Series(map_series(&s, |x| f(x, y))),
        (Value::Scalar(x), Value::Series(s)) => Value::Series(map_series(&s, |y| f(x, y))),
        (Value::Series(s), Value::Series(t)) => Value::Series(join(&s, &t, f)),
        (Value::Array(a), Value::Scalar(y)) => {
            Value::Array(a.iter().map(|s| map_series(s, |x| f(x, y))).collect())
        }
        (Value::Scalar(x), Value::Array(a)) => {
            Value::Array(a.iter().map(|s| map_series(s, |y| f(x, y))).collect())
        }
        (Value::Array(a), Value::Series(t)) => {
            Value::Array(a.iter().map(|s| join(s, &t, f)).collect())
        }
        (Value::Series(s), Value::Array(a)) => Value::Array(
            a.iter()
                .map(|t| {
                    let mut joined = join(&s, t, f);
                    joined.label = t.label.clone();
                    joined.id = t.id.clone();
                    joined
                })
                .collect(),
        ),
        (Value::Array(_), Value::Array(_)) => {
            return Err(format!(
                "The operator {op} cannot combine two arrays of time series"
            ))
        }
    })
}
