//! The text of a metric math expression read into a syntax tree: tokens,
//! operator precedence, function calls, array literals, and the checks
//! that need no data (known functions and how many arguments they take,
//! the ids an expression names). Errors are plain sentences; the caller
//! puts them into CloudWatch's "Error in expression" message.
//!
//! Precedence, lowest first: `OR`/`||`, `AND`/`&&`, comparisons
//! (`== != < <= > >=`), `+ -`, `* /`, unary `-` and `NOT`/`!`, `^` (right
//! associative, so `2^3^2` is `2^9` and `-2^2` is `-4`, as in arithmetic).

use std::fmt;

/// Deepest nesting of parentheses, calls and brackets: keeps the recursive
/// reader far from the end of a worker thread's stack.
const MAX_DEPTH: usize = 64;
/// Deepest syntax tree (a chain like `a+b+c+...` deepens it by one a term):
/// bounds the recursion of evaluation the same way.
const MAX_TREE_DEPTH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl fmt::Display for BinOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
        })
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    Str(String),
    /// The id of another query (starts with a lower-case letter).
    Ref(String),
    /// A bare upper-case word: an argument such as `REPEAT`, `ASC`, `AVG`.
    Keyword(String),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A function call; the name is upper-cased.
    Call(String, Vec<Expr>),
    /// `[a, b, ...]`: an array of time series.
    List(Vec<Expr>),
}

/// The functions an expression may call, with the fewest and most
/// arguments each takes.
pub const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("ABS", 1, 1),
    ("AVG", 1, 1),
    ("CEIL", 1, 1),
    ("DATAPOINT_COUNT", 1, 1),
    ("DIFF", 1, 1),
    ("DIFF_TIME", 1, 1),
    ("EPOCH", 1, 1),
    ("EXP", 1, 1),
    ("FILL", 2, 2),
    ("FIRST", 1, 1),
    ("FLOOR", 1, 1),
    ("IF", 2, 3),
    ("LAST", 1, 1),
    ("LOG", 1, 1),
    ("LOG10", 1, 1),
    ("MAX", 1, 1),
    ("METRIC_COUNT", 1, 1),
    ("METRICS", 0, 1),
    ("MIN", 1, 1),
    ("PERIOD", 1, 1),
    ("RATE", 1, 1),
    ("REMOVE_EMPTY", 1, 1),
    ("RUNNING_SUM", 1, 1),
    ("SLICE", 2, 3),
    ("SORT", 3, 4),
    ("SQRT", 1, 1),
    ("STDDEV", 1, 1),
    ("SUM", 1, 1),
    ("TIME_SERIES", 1, 1),
];

/// Functions of CloudWatch's metric math that nimbus does not evaluate:
/// named in their own error rather than as unknown.
pub const UNSUPPORTED: &[&str] = &[
    "ANOMALY_DETECTION_BAND",
    "SEARCH",
    "INSIGHT_RULE_METRIC",
    "SERVICE_QUOTA",
    "DB_PERF_INSIGHTS",
    "LAMBDA",
    "CONCAT",
    "AVG_OVER_TIME",
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Str(String),
    Word(String),
    Op(&'static str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Number(n) => write!(f, "{n}"),
            Token::Str(s) => write!(f, "\"{s}\""),
            Token::Word(w) => f.write_str(w),
            Token::Op(o) => f.write_str(o),
            Token::LParen => f.write_str("("),
            Token::RParen => f.write_str(")"),
            Token::LBracket => f.write_str("["),
            Token::RBracket => f.write_str("]"),
            Token::Comma => f.write_str(","),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            // An exponent only when digits follow, so `2e` stays an error.
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let s: String = chars[start..i].iter().collect();
            let n: f64 = s.parse().map_err(|_| format!("Invalid number {s}"))?;
            out.push(Token::Number(n));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
            continue;
        }
        if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("Unterminated string".into()),
                    Some(&q) if q == c => break,
                    Some('\\') if chars.get(i + 1).is_some() => {
                        s.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            i += 1;
            out.push(Token::Str(s));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op2 = ["==", "!=", "<=", ">=", "&&", "||"]
            .into_iter()
            .find(|o| *o == two);
        if let Some(o) = op2 {
            out.push(Token::Op(o));
            i += 2;
            continue;
        }
        let tok = match c {
            '+' => Token::Op("+"),
            '-' => Token::Op("-"),
            '*' => Token::Op("*"),
            '/' => Token::Op("/"),
            '^' => Token::Op("^"),
            '<' => Token::Op("<"),
            '>' => Token::Op(">"),
            '!' => Token::Op("!"),
            '(' => Token::LParen,
            ')' => Token::RParen,
            '[' => Token::LBracket,
            ']' => Token::RBracket,
            ',' => Token::Comma,
            other => return Err(format!("Unrecognized character '{other}'")),
        };
        out.push(tok);
        i += 1;
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

/// Parses `text`; checks the function names and argument counts.
pub fn parse(text: &str) -> Result<Expr, String> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err("The expression is empty".into());
    }
    let mut p = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    let e = p.or()?;
    if let Some(t) = p.peek() {
        return Err(format!("Unexpected token '{t}'"));
    }
    if e.deeper_than(MAX_TREE_DEPTH) {
        return Err("The expression is nested too deeply".into());
    }
    Ok(e)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn eat_op(&mut self, ops: &[&str]) -> Option<&'static str> {
        match self.peek() {
            Some(Token::Op(o)) if ops.contains(o) => {
                let o = *o;
                self.at += 1;
                Some(o)
            }
            _ => None,
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("The expression is nested too deeply".into());
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat_op(&["||"]).is_some() || self.eat_word("OR") {
            let right = self.and()?;
            left = Expr::Binary(BinOp::Or, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.comparison()?;
        while self.eat_op(&["&&"]).is_some() || self.eat_word("AND") {
            let right = self.comparison()?;
            left = Expr::Binary(BinOp::And, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let mut left = self.additive()?;
        while let Some(o) = self.eat_op(&["==", "!=", "<", "<=", ">", ">="]) {
            let op = match o {
                "==" => BinOp::Eq,
                "!=" => BinOp::Ne,
                "<" => BinOp::Lt,
                "<=" => BinOp::Le,
                ">" => BinOp::Gt,
                _ => BinOp::Ge,
            };
            let right = self.additive()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr, String> {
        let mut left = self.term()?;
        while let Some(o) = self.eat_op(&["+", "-"]) {
            let op = if o == "+" { BinOp::Add } else { BinOp::Sub };
            let right = self.term()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while let Some(o) = self.eat_op(&["*", "/"]) {
            let op = if o == "*" { BinOp::Mul } else { BinOp::Div };
            let right = self.unary()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat_op(&["-"]).is_some() {
            self.enter()?;
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Neg(Box::new(e)));
        }
        if self.eat_op(&["+"]).is_some() {
            self.enter()?;
            let e = self.unary();
            self.depth -= 1;
            return e;
        }
        if self.eat_op(&["!"]).is_some() || self.eat_word("NOT") {
            self.enter()?;
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.power()
    }

    fn power(&mut self) -> Result<Expr, String> {
        let base = self.primary()?;
        if self.eat_op(&["^"]).is_some() {
            // The exponent may carry its own sign: `2^-1`.
            self.enter()?;
            let exponent = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Binary(BinOp::Pow, Box::new(base), Box::new(exponent)));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let Some(tok) = self.next() else {
            return Err("Unexpected end of expression".into());
        };
        match tok {
            Token::Number(n) => Ok(Expr::Number(n)),
            Token::Str(s) => Ok(Expr::Str(s)),
            Token::LParen => {
                self.enter()?;
                let e = self.or()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token::RParen) => Ok(e),
                    _ => Err("Missing closing parenthesis".into()),
                }
            }
            Token::LBracket => {
                self.enter()?;
                let items = self.items(Token::RBracket)?;
                self.depth -= 1;
                Ok(Expr::List(items))
            }
            Token::Word(w) => {
                if matches!(self.peek(), Some(Token::LParen)) {
                    self.at += 1;
                    let name = w.to_ascii_uppercase();
                    if UNSUPPORTED.contains(&name.as_str()) {
                        return Err(format!("The function {name} is not supported by nimbus"));
                    }
                    let Some(&(_, min, max)) = FUNCTIONS.iter().find(|f| f.0 == name) else {
                        return Err(format!("Unknown function {w}"));
                    };
                    self.enter()?;
                    let args = self.items(Token::RParen)?;
                    self.depth -= 1;
                    if args.len() < min || args.len() > max {
                        let takes = if min == max {
                            format!("{min}")
                        } else {
                            format!("{min} to {max}")
                        };
                        return Err(format!(
                            "The function {name} takes {takes} arguments, {} given",
                            args.len()
                        ));
                    }
                    Ok(Expr::Call(name, args))
                } else if w.starts_with(|c: char| c.is_ascii_lowercase()) {
                    Ok(Expr::Ref(w))
                } else {
                    let upper = w.to_ascii_uppercase();
                    if ["AND", "OR", "NOT"].contains(&upper.as_str()) {
                        return Err(format!("Unexpected token '{w}'"));
                    }
                    Ok(Expr::Keyword(upper))
                }
            }
            other => Err(format!("Unexpected token '{other}'")),
        }
    }

    /// Comma-separated expressions up to `close` (consumed).
    fn items(&mut self, close: Token) -> Result<Vec<Expr>, String> {
        let mut items = Vec::new();
        if self.peek() == Some(&close) {
            self.at += 1;
            return Ok(items);
        }
        loop {
            items.push(self.or()?);
            match self.next() {
                Some(Token::Comma) => continue,
                Some(t) if t == close => return Ok(items),
                Some(t) => return Err(format!("Unexpected token '{t}'")),
                None => return Err(format!("Missing closing '{close}'")),
            }
        }
    }
}

impl Expr {
    /// Whether the tree is deeper than `limit` (stops looking once it is).
    fn deeper_than(&self, limit: usize) -> bool {
        if limit == 0 {
            return true;
        }
        match self {
            Expr::Neg(e) | Expr::Not(e) => e.deeper_than(limit - 1),
            Expr::Binary(_, a, b) => a.deeper_than(limit - 1) || b.deeper_than(limit - 1),
            Expr::Call(_, args) | Expr::List(args) => args.iter().any(|a| a.deeper_than(limit - 1)),
            Expr::Number(_) | Expr::Str(_) | Expr::Ref(_) | Expr::Keyword(_) => false,
        }
    }

    /// The query ids this expression names, each once, in order of first use.
    pub fn refs(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_refs(&mut out);
        out
    }

    fn collect_refs<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Ref(id) => {
                if !out.contains(&id.as_str()) {
                    out.push(id);
                }
            }
            Expr::Neg(e) | Expr::Not(e) => e.collect_refs(out),
            Expr::Binary(_, a, b) => {
                a.collect_refs(out);
                b.collect_refs(out);
            }
            Expr::Call(_, args) | Expr::List(args) => {
                for a in args {
                    a.collect_refs(out);
                }
            }
            Expr::Number(_) | Expr::Str(_) | Expr::Keyword(_) => {}
        }
    }

    /// Whether the expression calls METRICS() anywhere (it then depends on
    /// every metric of the request).
    pub fn uses_metrics(&self) -> bool {
        match self {
            Expr::Call(name, args) => name == "METRICS" || args.iter().any(Expr::uses_metrics),
            Expr::List(args) => args.iter().any(Expr::uses_metrics),
            Expr::Neg(e) | Expr::Not(e) => e.uses_metrics(),
            Expr::Binary(_, a, b) => a.uses_metrics() || b.uses_metrics(),
            _ => false,
        }
    }
}
