//! The `AlarmRule` language of composite alarms: a parser that accepts what
//! PutCompositeAlarm accepts and rejects the rest with CloudWatch's error
//! wording, and the evaluation of a parsed rule over the states of the alarms
//! it names.
//!
//! The language, from the API reference and the user guide:
//!
//! ```text
//! rule     := or
//! or       := and ("OR" and)*
//! and      := unary ("AND" unary)*
//! unary    := "NOT"* primary
//! primary  := "(" or ")" | "TRUE" | "FALSE"
//!           | ("ALARM" | "OK" | "INSUFFICIENT_DATA") "(" alarm ")"
//! alarm    := a name or ARN, in double quotes, or bare when it has no space,
//!             parenthesis or double quote
//! ```
//!
//! AWS documents neither operator precedence nor case; nimbus gives NOT, AND,
//! OR the usual precedence (tightest first) and reads keywords in any case,
//! so that no rule AWS accepts is refused. Inside double quotes `\"` and `\\`
//! stand for `"` and `\` (nimbus's choice: AWS documents no escape).
//!
//! Errors, as seen from AWS: `Error in AlarmRule [Unsupported token ')' at
//! char 1]` for `()`, and `Error in AlarmRule [Unsupported token 'Oldest' at
//! char 67, must be: ')']` for an unquoted name with spaces; `char` is the
//! 0-based position of the token (in UTF-16 units, as Java counts). The
//! wording for a rule that ends too early, and for the 100-alarm and
//! 500-element limits, is nimbus's own: no AWS text for them was found.

use super::state::AlarmState;
use nimbus_core::AwsError;
use std::fmt;

/// The longest `AlarmRule`, in characters (the model's `max`).
pub const MAX_RULE_LENGTH: usize = 10240;
/// How many different alarms one rule may name.
pub const MAX_RULE_ALARMS: usize = 100;
/// How many elements one rule may have: "child alarms, TRUE or FALSE
/// statements, and parentheses" (each pair of grouping parentheses is one).
pub const MAX_RULE_ELEMENTS: usize = 500;

/// A parsed rule expression.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleExpr {
    /// `TRUE` or `FALSE`.
    Constant(bool),
    /// `ALARM(x)`, `OK(x)`, `INSUFFICIENT_DATA(x)`: true when alarm `x` (a name
    /// or an ARN, as written) is in `state`.
    StateIs {
        state: AlarmState,
        alarm: String,
    },
    Not(Box<RuleExpr>),
    And(Box<RuleExpr>, Box<RuleExpr>),
    Or(Box<RuleExpr>, Box<RuleExpr>),
}

impl RuleExpr {
    /// The value of the expression when `state_of` gives each named alarm's
    /// state; an alarm it does not know is in no state, so every function of
    /// it is false.
    pub fn evaluate(&self, state_of: &dyn Fn(&str) -> Option<AlarmState>) -> bool {
        match self {
            RuleExpr::Constant(value) => *value,
            RuleExpr::StateIs { state, alarm } => state_of(alarm) == Some(*state),
            RuleExpr::Not(inner) => !inner.evaluate(state_of),
            RuleExpr::And(left, right) => left.evaluate(state_of) && right.evaluate(state_of),
            RuleExpr::Or(left, right) => left.evaluate(state_of) || right.evaluate(state_of),
        }
    }
}

/// A rule that PutCompositeAlarm would accept.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRule {
    expr: RuleExpr,
    alarms: Vec<String>,
}

impl AlarmRule {
    /// Parses `text`, checking the length and size limits.
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let length = java_length(text);
        if length == 0 {
            return Err(RuleError::length(text, "greater than or equal to 1"));
        }
        if length > MAX_RULE_LENGTH {
            return Err(RuleError::length(
                text,
                &format!("less than or equal to {MAX_RULE_LENGTH}"),
            ));
        }
        let mut parser = Parser {
            text,
            tokens: tokenize(text)?,
            next: 0,
            elements: 0,
            alarms: Vec::new(),
        };
        let expr = parser.or()?;
        if let Some(token) = parser.peek() {
            return Err(parser.unsupported(token, None));
        }
        Ok(AlarmRule {
            expr,
            alarms: parser.alarms,
        })
    }

    pub fn expr(&self) -> &RuleExpr {
        &self.expr
    }

    /// The alarms the rule names (as written: names or ARNs), each once, in
    /// the order they first appear.
    pub fn alarms(&self) -> &[String] {
        &self.alarms
    }

    /// PutCompositeAlarm's refusal of a rule that names alarms that do not
    /// exist: `Could not save the composite alarm as alarms [gone] in the alarm
    /// rule do not exist` (the AWS wording; with several, nimbus lists them in
    /// rule order, separated by ", ").
    pub fn check_alarms_exist(&self, exists: &dyn Fn(&str) -> bool) -> Result<(), RuleError> {
        let missing: Vec<&str> = self
            .alarms
            .iter()
            .map(String::as_str)
            .filter(|alarm| !exists(alarm))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(RuleError {
            message: format!(
                "Could not save the composite alarm as alarms [{}] in the alarm rule do not exist",
                missing.join(", ")
            ),
        })
    }

    /// True when the rule holds, i.e. the composite alarm belongs in ALARM.
    pub fn evaluate(&self, state_of: &dyn Fn(&str) -> Option<AlarmState>) -> bool {
        self.expr.evaluate(state_of)
    }
}

/// Why a rule was refused; its message is what AWS returns with the
/// `ValidationError` code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    message: String,
}

impl RuleError {
    pub fn message(&self) -> &str {
        &self.message
    }

    fn in_rule(detail: String) -> Self {
        RuleError {
            message: format!("Error in AlarmRule [{detail}]"),
        }
    }

    fn length(text: &str, bound: &str) -> Self {
        RuleError {
            message: format!(
                "1 validation error detected: Value '{text}' at 'alarmRule' failed to satisfy constraint: Member must have length {bound}"
            ),
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RuleError {}

impl From<RuleError> for AwsError {
    fn from(error: RuleError) -> Self {
        AwsError::new("ValidationError", error.message)
    }
}

/// Length as Java's `String.length()` counts it, which is how AWS measures.
fn java_length(text: &str) -> usize {
    text.encode_utf16().count()
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Open,
    Close,
    /// A run of characters other than whitespace, parentheses and `"`.
    Word(String),
    /// A double-quoted string, unescaped.
    Quoted(String),
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    /// Byte offset in the rule text.
    at: usize,
    /// The token as written.
    raw: String,
}

fn tokenize(text: &str) -> Result<Vec<Token>, RuleError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        match c {
            '(' | ')' => {
                chars.next();
                tokens.push(Token {
                    kind: if c == '(' {
                        TokenKind::Open
                    } else {
                        TokenKind::Close
                    },
                    at,
                    raw: c.to_string(),
                });
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        '\\' => match chars.peek() {
                            Some(&(_, escaped @ ('"' | '\\'))) => {
                                value.push(escaped);
                                chars.next();
                            }
                            _ => value.push('\\'),
                        },
                        other => value.push(other),
                    }
                }
                let Some(end) = end else {
                    let detail = format!(
                        "Unsupported token '{}' at char {}, must be: '\"'",
                        &text[at..],
                        java_length(&text[..at])
                    );
                    return Err(RuleError::in_rule(detail));
                };
                tokens.push(Token {
                    kind: TokenKind::Quoted(value),
                    at,
                    raw: text[at..end].to_string(),
                });
            }
            _ => {
                let mut end = text.len();
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '"') {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                let word = &text[at..end];
                tokens.push(Token {
                    kind: TokenKind::Word(word.to_string()),
                    at,
                    raw: word.to_string(),
                });
            }
        }
    }
    Ok(tokens)
}

struct Parser<'t> {
    text: &'t str,
    tokens: Vec<Token>,
    next: usize,
    elements: usize,
    alarms: Vec<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn advance(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next).cloned();
        if token.is_some() {
            self.next += 1;
        }
        token
    }

    /// Whether the next token is the keyword `word` (in any case).
    fn at_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: TokenKind::Word(w), .. }) if w.eq_ignore_ascii_case(word))
    }

    fn unsupported(&self, token: &Token, must_be: Option<&str>) -> RuleError {
        let mut detail = format!(
            "Unsupported token '{}' at char {}",
            token.raw,
            java_length(&self.text[..token.at])
        );
        if let Some(expected) = must_be {
            detail.push_str(", must be: ");
            detail.push_str(expected);
        }
        RuleError::in_rule(detail)
    }

    fn unexpected_end(&self) -> RuleError {
        RuleError::in_rule(format!(
            "Unexpected end of AlarmRule at char {}",
            java_length(self.text)
        ))
    }

    /// The next token, or the error for a rule that stops here.
    fn expect_any(&mut self) -> Result<Token, RuleError> {
        self.advance().ok_or_else(|| self.unexpected_end())
    }

    fn count_element(&mut self) -> Result<(), RuleError> {
        self.elements += 1;
        if self.elements > MAX_RULE_ELEMENTS {
            return Err(RuleError::in_rule(format!(
                "AlarmRule can have at most {MAX_RULE_ELEMENTS} elements"
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<RuleExpr, RuleError> {
        let mut left = self.and()?;
        while self.at_keyword("OR") {
            self.next += 1;
            let right = self.and()?;
            left = RuleExpr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<RuleExpr, RuleError> {
        let mut left = self.unary()?;
        while self.at_keyword("AND") {
            self.next += 1;
            let right = self.unary()?;
            left = RuleExpr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<RuleExpr, RuleError> {
        // A run of NOTs is read in a loop, not by recursion, and kept as one
        // NOT or none: a 10 KiB rule of NOTs must not exhaust the stack.
        let mut negations = 0usize;
        while self.at_keyword("NOT") {
            self.next += 1;
            negations += 1;
        }
        let operand = self.primary()?;
        Ok(if negations % 2 == 1 {
            RuleExpr::Not(Box::new(operand))
        } else {
            operand
        })
    }

    fn primary(&mut self) -> Result<RuleExpr, RuleError> {
        let token = self.expect_any()?;
        match &token.kind {
            TokenKind::Open => {
                // Counting before descending bounds the nesting depth (and so
                // the recursion) by the element limit.
                self.count_element()?;
                let inner = self.or()?;
                self.expect_close()?;
                Ok(inner)
            }
            TokenKind::Word(word) => {
                if word.eq_ignore_ascii_case("TRUE") || word.eq_ignore_ascii_case("FALSE") {
                    self.count_element()?;
                    return Ok(RuleExpr::Constant(word.eq_ignore_ascii_case("TRUE")));
                }
                let state = if word.eq_ignore_ascii_case("ALARM") {
                    AlarmState::Alarm
                } else if word.eq_ignore_ascii_case("OK") {
                    AlarmState::Ok
                } else if word.eq_ignore_ascii_case("INSUFFICIENT_DATA") {
                    AlarmState::InsufficientData
                } else {
                    return Err(self.unsupported(&token, None));
                };
                self.state_function(state)
            }
            TokenKind::Close | TokenKind::Quoted(_) => Err(self.unsupported(&token, None)),
        }
    }

    /// The `(alarm)` after ALARM, OK or INSUFFICIENT_DATA.
    fn state_function(&mut self, state: AlarmState) -> Result<RuleExpr, RuleError> {
        let open = self.expect_any()?;
        if open.kind != TokenKind::Open {
            return Err(self.unsupported(&open, Some("'('")));
        }
        let name_token = self.expect_any()?;
        let alarm = match &name_token.kind {
            TokenKind::Word(name) => name.clone(),
            TokenKind::Quoted(name) if !name.is_empty() => name.clone(),
            _ => return Err(self.unsupported(&name_token, None)),
        };
        self.expect_close()?;
        self.count_element()?;
        if !self.alarms.contains(&alarm) {
            if self.alarms.len() == MAX_RULE_ALARMS {
                return Err(RuleError::in_rule(format!(
                    "AlarmRule can reference at most {MAX_RULE_ALARMS} alarms"
                )));
            }
            self.alarms.push(alarm.clone());
        }
        Ok(RuleExpr::StateIs { state, alarm })
    }

    fn expect_close(&mut self) -> Result<(), RuleError> {
        let token = self.expect_any()?;
        if token.kind == TokenKind::Close {
            Ok(())
        } else {
            Err(self.unsupported(&token, Some("')'")))
        }
    }
}

#[cfg(test)]
mod tests;
