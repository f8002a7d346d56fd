//! The rule expression language: arithmetic, comparisons and boolean logic over live points.
//!
//! `comsrv:1001:T:1 > 80.0 && comsrv:1001:S:2 == 1`, `(a + b) / 2 >= 10 or not x`. Point
//! references are `comsrv:{channel}:{T|S|C|A}:{point}`. Values are numbers; a comparison or
//! logic operator yields 1 or 0; anything non-zero is true. Parsing errors give the 1-based
//! column. Evaluation takes a lookup function: a point without a value makes the whole
//! expression unknown (`None`), which callers treat as false and report.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Point(PointRef),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(Box<Expr>, Op, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
    And,
    Or,
}

/// A point an expression reads: `comsrv:{channel}:{kind}:{point}`, or a model's point
/// `model:{model_id}:{point_name}` (resolved through the model's mapping).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PointRef {
    Comsrv {
        channel: u32,
        kind: char,
        point: u32,
    },
    Model {
        model: String,
        point: String,
    },
}

impl fmt::Display for PointRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointRef::Comsrv {
                channel,
                kind,
                point,
            } => write!(f, "comsrv:{channel}:{kind}:{point}"),
            PointRef::Model { model, point } => write!(f, "model:{model}:{point}"),
        }
    }
}

/// A parse error at a 1-based column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Point(PointRef),
    Op(Op),
    Not,
    LParen,
    RParen,
}

fn err(column: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        column,
        message: message.into(),
    }
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i] as char;
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two = src.get(i..i + 2).unwrap_or("");
        let (tok, len) = match two {
            ">=" => (Tok::Op(Op::Ge), 2),
            "<=" => (Tok::Op(Op::Le), 2),
            "==" => (Tok::Op(Op::Eq), 2),
            "!=" => (Tok::Op(Op::Ne), 2),
            "&&" => (Tok::Op(Op::And), 2),
            "||" => (Tok::Op(Op::Or), 2),
            _ => match c {
                '>' => (Tok::Op(Op::Gt), 1),
                '<' => (Tok::Op(Op::Lt), 1),
                '+' => (Tok::Op(Op::Add), 1),
                '-' => (Tok::Op(Op::Sub), 1),
                '*' => (Tok::Op(Op::Mul), 1),
                '/' => (Tok::Op(Op::Div), 1),
                '!' => (Tok::Not, 1),
                '(' => (Tok::LParen, 1),
                ')' => (Tok::RParen, 1),
                _ if c.is_ascii_digit() || c == '.' => {
                    let end = src[i..]
                        .find(|ch: char| {
                            !(ch.is_ascii_digit() || ch == '.' || ch == 'e' || ch == 'E')
                        })
                        .map_or(b.len(), |e| i + e);
                    let text = &src[i..end];
                    let v = text
                        .parse::<f64>()
                        .map_err(|_| err(col, format!("{text:?} is not a number")))?;
                    (Tok::Num(v), end - i)
                }
                _ if c.is_ascii_alphabetic() => {
                    let end = src[i..]
                        .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == ':' || ch == '_'))
                        .map_or(b.len(), |e| i + e);
                    let word = &src[i..end];
                    let tok = match word.to_ascii_lowercase().as_str() {
                        "and" => Tok::Op(Op::And),
                        "or" => Tok::Op(Op::Or),
                        "not" => Tok::Not,
                        "true" => Tok::Num(1.0),
                        "false" => Tok::Num(0.0),
                        _ => Tok::Point(point_ref(word).map_err(|m| err(col, m))?),
                    };
                    (tok, end - i)
                }
                _ => return Err(err(col, format!("unexpected character {c:?}"))),
            },
        };
        out.push((tok, col));
        i += len;
    }
    Ok(out)
}

fn point_ref(word: &str) -> Result<PointRef, String> {
    let parts: Vec<&str> = word.split(':').collect();
    let bad = || {
        format!("{word:?} is not a point reference like comsrv:1001:T:1 or model:pcs_1:dc_voltage")
    };
    if parts.len() == 3 && parts[0] == "model" && !parts[1].is_empty() && !parts[2].is_empty() {
        return Ok(PointRef::Model {
            model: parts[1].to_string(),
            point: parts[2].to_string(),
        });
    }
    if parts.len() != 4 || parts[0] != "comsrv" {
        return Err(bad());
    }
    let kind = parts[2]
        .chars()
        .next()
        .filter(|k| parts[2].len() == 1 && "TSCA".contains(*k))
        .ok_or_else(bad)?;
    Ok(PointRef::Comsrv {
        channel: parts[1].parse().map_err(|_| bad())?,
        kind,
        point: parts[3].parse().map_err(|_| bad())?,
    })
}

fn prec(op: Op) -> u8 {
    match op {
        Op::Or => 1,
        Op::And => 2,
        Op::Eq | Op::Ne => 3,
        Op::Gt | Op::Ge | Op::Lt | Op::Le => 4,
        Op::Add | Op::Sub => 5,
        Op::Mul | Op::Div => 6,
    }
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn col(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.1).unwrap_or(self.end)
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let col = self.col();
        let Some((t, _)) = self.toks.get(self.pos).cloned() else {
            return Err(err(col, "expression ends where a value was expected"));
        };
        self.pos += 1;
        match t {
            Tok::Num(v) => Ok(Expr::Num(v)),
            Tok::Point(p) => Ok(Expr::Point(p)),
            Tok::Not => Ok(Expr::Not(Box::new(self.primary()?))),
            Tok::Op(Op::Sub) => Ok(Expr::Neg(Box::new(self.primary()?))),
            Tok::LParen => {
                let e = self.binary(0)?;
                match self.toks.get(self.pos) {
                    Some((Tok::RParen, _)) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    _ => Err(err(self.col(), "missing )")),
                }
            }
            _ => Err(err(col, "a value was expected here")),
        }
    }

    fn binary(&mut self, min: u8) -> Result<Expr, ParseError> {
        let mut lhs = self.primary()?;
        while let Some((Tok::Op(op), _)) = self.toks.get(self.pos).cloned() {
            if prec(op) <= min {
                break;
            }
            self.pos += 1;
            let rhs = self.binary(prec(op))?;
            lhs = Expr::Bin(Box::new(lhs), op, Box::new(rhs));
        }
        Ok(lhs)
    }
}

/// Parses an expression; errors name the column.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err(err(1, "empty expression"));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end: src.len() + 1,
    };
    let e = p.binary(0)?;
    if p.pos < p.toks.len() {
        return Err(err(p.col(), "unexpected token after a complete expression"));
    }
    Ok(e)
}

impl Expr {
    /// Every point the expression reads.
    pub fn points(&self, out: &mut Vec<PointRef>) {
        match self {
            Expr::Point(p) => {
                if !out.contains(p) {
                    out.push(p.clone())
                }
            }
            Expr::Not(e) | Expr::Neg(e) => e.points(out),
            Expr::Bin(a, _, b) => {
                a.points(out);
                b.points(out);
            }
            Expr::Num(_) => {}
        }
    }

    /// The value, or `None` when a point has no value (or a division by zero).
    pub fn eval(&self, lookup: &impl Fn(&PointRef) -> Option<f64>) -> Option<f64> {
        let b = |x: bool| if x { 1.0 } else { 0.0 };
        Some(match self {
            Expr::Num(v) => *v,
            Expr::Point(p) => lookup(p)?,
            Expr::Not(e) => b(e.eval(lookup)? == 0.0),
            Expr::Neg(e) => -e.eval(lookup)?,
            Expr::Bin(l, op, r) => {
                let x = l.eval(lookup)?;
                // Short-circuit: a decided and/or does not need the other side's points.
                match op {
                    Op::And if x == 0.0 => return Some(0.0),
                    Op::Or if x != 0.0 => return Some(1.0),
                    _ => {}
                }
                let y = r.eval(lookup)?;
                match op {
                    Op::Add => x + y,
                    Op::Sub => x - y,
                    Op::Mul => x * y,
                    Op::Div if y == 0.0 => return None,
                    Op::Div => x / y,
                    Op::Gt => b(x > y),
                    Op::Ge => b(x >= y),
                    Op::Lt => b(x < y),
                    Op::Le => b(x <= y),
                    Op::Eq => b(x == y),
                    Op::Ne => b(x != y),
                    Op::And | Op::Or => b(y != 0.0),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eval(src: &str, vals: &[(&str, f64)]) -> Option<f64> {
        let e = parse(src).unwrap();
        e.eval(&|p: &PointRef| {
            vals.iter()
                .find(|(k, _)| *k == p.to_string())
                .map(|(_, v)| *v)
        })
    }

    #[test]
    fn the_seed_condition_and_precedence() {
        assert_eq!(
            eval("comsrv:1001:T:1 > 80.0", &[("comsrv:1001:T:1", 85.75)]),
            Some(1.0)
        );
        assert_eq!(
            eval(
                "comsrv:1001:T:1 > 80.0 && comsrv:1001:S:2 == 1",
                &[("comsrv:1001:T:1", 85.0), ("comsrv:1001:S:2", 0.0)]
            ),
            Some(0.0)
        );
        assert_eq!(eval("1 + 2 * 3 == 7 and not (2 > 3)", &[]), Some(1.0));
        assert_eq!(eval("-(4 - 6) / 2", &[]), Some(1.0));
        assert_eq!(
            eval("1 or comsrv:9:T:9 > 0", &[]),
            Some(1.0),
            "short-circuit needs no value"
        );
    }

    #[test]
    fn missing_values_and_division_by_zero_are_unknown() {
        assert_eq!(eval("comsrv:1:T:1 > 1", &[]), None);
        assert_eq!(eval("1 / 0 > 1", &[]), None);
    }

    #[test]
    fn bad_expressions_name_the_column() {
        assert_eq!(parse("comsrv:1001:T:1 > ").unwrap_err().column, 19);
        assert_eq!(parse("(1 + 2").unwrap_err().message, "missing )");
        assert_eq!(parse("temp > 80").unwrap_err().column, 1);
        assert_eq!(parse("1 > 2 3").unwrap_err().column, 7);
        assert_eq!(parse("1 # 2").unwrap_err().column, 3);
        assert!(parse("comsrv:1:X:1 > 0")
            .unwrap_err()
            .message
            .contains("point reference"));
    }

    #[test]
    fn model_points_are_references_too() {
        assert_eq!(
            eval(
                "model:pcs_1:dc_voltage > 700",
                &[("model:pcs_1:dc_voltage", 752.0)]
            ),
            Some(1.0)
        );
        assert!(parse("model:pcs_1 > 1").is_err());
    }

    #[test]
    fn points_lists_each_reference_once() {
        let mut v = Vec::new();
        parse("comsrv:1:T:1 + comsrv:1:T:1 > comsrv:2:S:3")
            .unwrap()
            .points(&mut v);
        assert_eq!(v.len(), 2);
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "[ -~]{0,60}") {
            let _ = parse(&s);
        }
    }
}
