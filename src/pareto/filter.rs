//! Row filters such as `top1_agreement >= 0.99 and latency_us < 100`: the `--where` of
//! `lstm-dse pareto` and the constraints of a sweep spec.
//!
//! Grammar (`and` binds tighter than `or`; keywords are case-insensitive; `&&`, `||` and `!`
//! are accepted too):
//!
//! ```text
//! expr       := conj ("or" conj)*
//! conj       := unary ("and" unary)*
//! unary      := "not" unary | "(" expr ")" | comparison
//! comparison := operand ("<" | "<=" | ">" | ">=" | "==" | "=" | "!=") operand
//! operand    := column | ["-" | "+"] number
//! column     := name ("." name)*      e.g. latency_us, compute.units
//! name       := [A-Za-z_][A-Za-z0-9_]*
//! number     := 12 | 0.5 | .5 | 1e-3 | inf | infinity
//! ```
//!
//! Comparisons follow IEEE 754: a NaN cell makes every comparison false except `!=`.

use std::fmt;

use super::lex::{lex, Tok, Token};
use super::ParetoError;

/// A parsed, column-checked row filter; see the module documentation for the syntax.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    text: String,
    expr: Expr,
    columns: Vec<usize>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CmpOp {
    fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operand {
    Column(usize),
    Value(f64),
}

#[derive(Debug, Clone, PartialEq)]
/// A chain of `or`s or `and`s is one node with its operands in order (not a left-leaning
/// pair of pairs), so the tree is only as deep as the brackets and `not`s ([`MAX_DEPTH`]):
/// evaluating and dropping it recurse that deep, however long a chain is.
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Cmp(Operand, CmpOp, Operand),
}

impl Filter {
    /// Parses `text`, resolving column names against `columns` (a CSV header). Errors name the
    /// unknown column, or the 1-based character position and token where parsing failed.
    pub fn parse(text: &str, columns: &[String]) -> Result<Filter, ParetoError> {
        let tokens = lex(text)?;
        let mut p = Parser {
            text,
            tokens,
            at: 0,
            columns,
            used: Vec::new(),
            depth: 0,
        };
        let expr = p.expr()?;
        if let Some(t) = p.tokens.get(p.at) {
            return Err(p.error(t, "expected `and`, `or` or the end"));
        }
        let mut used = p.used;
        used.sort_unstable();
        used.dedup();
        Ok(Filter {
            text: text.to_string(),
            expr,
            columns: used,
        })
    }

    /// Whether `row` (one value per column of the header given to [`Filter::parse`]) passes.
    /// Only the cells of [`Filter::columns`] are read.
    ///
    /// # Panics
    /// If `row` is shorter than the header.
    pub fn eval(&self, row: &[f64]) -> bool {
        eval(&self.expr, row)
    }

    /// The column indices the filter reads, ascending.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn eval(e: &Expr, row: &[f64]) -> bool {
    let value = |o: &Operand| match *o {
        Operand::Column(c) => row[c],
        Operand::Value(v) => v,
    };
    match e {
        Expr::Or(terms) => terms.iter().any(|t| eval(t, row)),
        Expr::And(terms) => terms.iter().all(|t| eval(t, row)),
        Expr::Not(a) => !eval(a, row),
        Expr::Cmp(a, op, b) => op.apply(value(a), value(b)),
    }
}

/// One term as itself, several as `node` of them.
fn chain(mut terms: Vec<Expr>, node: fn(Vec<Expr>) -> Expr) -> Expr {
    if terms.len() == 1 {
        terms.pop().expect("one term")
    } else {
        node(terms)
    }
}

/// Nesting deeper than this is surely a mistake, and recursion must stay bounded.
const MAX_DEPTH: usize = 200;

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    at: usize,
    columns: &'a [String],
    used: Vec<usize>,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, t: &Token, what: &str) -> ParetoError {
        ParetoError::FilterSyntax {
            text: self.text.to_string(),
            pos: t.pos,
            message: format!("{what}, found `{}`", t.lexeme),
        }
    }

    fn error_here(&self, what: &str) -> ParetoError {
        match self.tokens.get(self.at) {
            Some(t) => self.error(t, what),
            None => ParetoError::FilterSyntax {
                text: self.text.to_string(),
                pos: self.text.chars().count() + 1,
                message: format!("{what}, found the end"),
            },
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at).map(|t| &t.tok)
    }

    fn expr(&mut self) -> Result<Expr, ParetoError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here("expression nested too deeply"));
        }
        let mut terms = vec![self.conj()?];
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            terms.push(self.conj()?);
        }
        self.depth -= 1;
        Ok(chain(terms, Expr::Or))
    }

    fn conj(&mut self) -> Result<Expr, ParetoError> {
        let mut terms = vec![self.unary()?];
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            terms.push(self.unary()?);
        }
        Ok(chain(terms, Expr::And))
    }

    fn unary(&mut self) -> Result<Expr, ParetoError> {
        match self.peek() {
            Some(Tok::Not) => {
                self.at += 1;
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.error_here("expression nested too deeply"));
                }
                let e = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(e)))
            }
            Some(Tok::Open) => {
                self.at += 1;
                let e = self.expr()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(self.error_here("expected `)`"));
                }
                self.at += 1;
                Ok(e)
            }
            _ => {
                let a = self.operand()?;
                let op = match self.peek() {
                    Some(Tok::Op(op)) => *op,
                    _ => return Err(self.error_here("expected a comparison (< <= > >= == !=)")),
                };
                self.at += 1;
                let b = self.operand()?;
                Ok(Expr::Cmp(a, op, b))
            }
        }
    }

    fn operand(&mut self) -> Result<Operand, ParetoError> {
        let sign = match self.peek() {
            Some(Tok::Sign(s)) => {
                let s = *s;
                self.at += 1;
                Some(s)
            }
            _ => None,
        };
        let what = "expected a column name or a number";
        let Some(t) = self.tokens.get(self.at) else {
            return Err(self.error_here(what));
        };
        let operand = match (&t.tok, sign) {
            (Tok::Number(v), s) => Operand::Value(s.unwrap_or(1.0) * v),
            (Tok::Ident(name), None) => match self.columns.iter().position(|c| c == name) {
                Some(c) => {
                    self.used.push(c);
                    Operand::Column(c)
                }
                None => {
                    return Err(ParetoError::FilterColumn {
                        column: name.clone(),
                        text: self.text.to_string(),
                        available: self.columns.join(", "),
                    })
                }
            },
            (_, Some(_)) => return Err(self.error(t, "expected a number after the sign")),
            _ => return Err(self.error(t, what)),
        };
        self.at += 1;
        Ok(operand)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<String> {
        ["top1_agreement", "latency_us", "output_rmse", "area_mm2"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn passes(text: &str, row: [f64; 4]) -> bool {
        Filter::parse(text, &cols()).expect("parses").eval(&row)
    }

    fn err(text: &str) -> String {
        Filter::parse(text, &cols())
            .expect_err("must not parse")
            .to_string()
    }

    #[test]
    fn comparisons_and_connectives() {
        let f = "top1_agreement >= 0.99 and latency_us < 100";
        assert!(passes(f, [0.99, 99.0, 0.0, 0.0]));
        assert!(!passes(f, [0.98, 99.0, 0.0, 0.0]));
        assert!(!passes(f, [1.0, 100.0, 0.0, 0.0]));
        let g = "output_rmse <= 0.01 or area_mm2 < 5";
        assert!(passes(g, [0.0, 0.0, 0.02, 4.0]));
        assert!(!passes(g, [0.0, 0.0, 0.02, 5.0]));
        assert!(passes(
            "latency_us == 3 && area_mm2 != 3",
            [0.0, 3.0, 0.0, 1.0]
        ));
        assert!(passes("latency_us = 3", [0.0, 3.0, 0.0, 1.0]));
        assert!(passes("output_rmse < 1e-3", [0.0, 0.0, 5e-4, 0.0]));
        assert!(passes("output_rmse > -1E+2", [0.0, 0.0, -5.0, 0.0]));
        assert!(passes("latency_us < inf", [0.0, 1e300, 0.0, 0.0]));
        assert!(passes("latency_us > -INF", [0.0, -1e300, 0.0, 0.0]));
        assert!(passes("1 < latency_us", [0.0, 2.0, 0.0, 0.0]));
        assert!(passes("latency_us < area_mm2", [0.0, 2.0, 0.0, 3.0]));
        assert!(passes("latency_us > .5", [0.0, 0.6, 0.0, 0.0]));
    }

    #[test]
    fn precedence_not_and_parentheses() {
        // and binds tighter: a or (b and c)
        let t = "latency_us < 1 or area_mm2 < 1 and output_rmse < 1";
        assert!(passes(t, [0.0, 0.0, 5.0, 5.0]));
        let t = "(latency_us < 1 or area_mm2 < 1) and output_rmse < 1";
        assert!(!passes(t, [0.0, 0.0, 5.0, 5.0]));
        assert!(passes("not latency_us < 1", [0.0, 2.0, 0.0, 0.0]));
        assert!(passes(
            "NOT (latency_us < 1 OR area_mm2 < 1)",
            [0.0, 2.0, 0.0, 2.0]
        ));
        assert!(passes(
            "!(latency_us < 1) || not not area_mm2 < 1",
            [0.0, 2.0, 0.0, 2.0]
        ));
        assert!(passes("((((latency_us < 1))))", [0.0, 0.0, 0.0, 0.0]));
    }

    #[test]
    fn nan_compares_false_except_ne() {
        assert!(!passes("latency_us < 1", [0.0, f64::NAN, 0.0, 0.0]));
        assert!(!passes("latency_us >= 1", [0.0, f64::NAN, 0.0, 0.0]));
        assert!(passes("latency_us != 1", [0.0, f64::NAN, 0.0, 0.0]));
    }

    #[test]
    fn columns_used() {
        let f = Filter::parse("area_mm2 < 1 or latency_us > area_mm2", &cols()).expect("parses");
        assert_eq!(f.columns(), &[1, 3]);
        assert_eq!(f.to_string(), "area_mm2 < 1 or latency_us > area_mm2");
    }

    /// Swept architecture fields are dotted columns (`compute.units`): a dot after a name joins
    /// the next name (`compute.units >= 4` was lexed as `compute` and the number `.units`);
    /// numbers keep their dots.
    #[test]
    fn dotted_column_names() {
        let cols: Vec<String> = [
            "latency_us",
            "compute.units",
            "memory.sram_weight_kib",
            "a.b_2.c",
        ]
        .map(String::from)
        .to_vec();
        let row = [5.0, 8.0, 0.5, 1.0];
        let passes = |t: &str| Filter::parse(t, &cols).expect(t).eval(&row);
        let err = |t: &str| Filter::parse(t, &cols).expect_err(t).to_string();
        assert!(passes("compute.units >= 4"));
        assert!(!passes("compute.units < 4"));
        assert!(passes("compute.units>=4 and memory.sram_weight_kib<.75"));
        assert!(passes("(compute.units==8)&&a.b_2.c=1.0"));
        assert!(passes("compute.units > 7.5e0 or latency_us < 1e-3"));
        assert!(passes("not compute.units < memory.sram_weight_kib"));
        assert!(passes("-1.5 < a.b_2.c"));
        let f = Filter::parse("latency_us < compute.units", &cols).expect("parses");
        assert_eq!(f.columns(), &[0, 1]);
        // A dotted name is one column: neither a prefix nor a near miss is taken.
        let e = err("compute < 1");
        assert!(
            e.contains("`compute`") && e.contains("compute.units"),
            "{e}"
        );
        let e = err("compute.unit < 1");
        assert!(e.contains("`compute.unit`"), "{e}");
        // A dot not followed by a name is said at the dot.
        for (t, at, word) in [
            ("compute. units < 1", 8, "`compute.`"),
            ("compute.4 < 1", 8, "`compute.`"),
            ("latency_us < 1 or compute.units.", 32, "`compute.units.`"),
        ] {
            let e = err(t);
            assert!(
                e.contains(&format!("character {at}")) && e.contains(word),
                "{t}: {e}"
            );
            assert!(e.contains("not a column name") && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn long_chains_need_no_deep_recursion() {
        // 200,000 terms a chain: a pair-of-pairs tree of them overflowed the main thread's
        // 8 MiB stack when evaluated or dropped (exit 134). Here on a 1 MiB stack.
        let run = || {
            let n = 200_000;
            let and = vec!["latency_us > 0"; n].join(" and ");
            assert!(passes(&and, [0.0, 1.0, 0.0, 0.0]));
            assert!(!passes(&and, [0.0, 0.0, 0.0, 0.0]));
            let or = vec!["latency_us < 0"; n].join(" or ") + " or area_mm2 > 1";
            assert!(passes(&or, [0.0, 1.0, 0.0, 2.0]));
            assert!(!passes(&or, [0.0, 1.0, 0.0, 0.0]));
            // `and` binds tighter than `or` along a long mixed chain too.
            let mixed = vec!["latency_us > 0 and area_mm2 > 0"; n].join(" or ");
            assert!(passes(&mixed, [0.0, 1.0, 0.0, 1.0]));
            assert!(!passes(&mixed, [0.0, 1.0, 0.0, 0.0]));
        };
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(run)
            .expect("thread")
            .join()
            .expect("long chains evaluate");
    }

    #[test]
    fn errors_are_one_line_and_say_where() {
        let e = err("energy_uj < 3");
        assert!(e.contains("`energy_uj`") && e.contains("latency_us"), "{e}");
        let e = err("latency_us 100");
        assert!(e.contains("character 12") && e.contains("`100`"), "{e}");
        let e = err("latency_us < ");
        assert!(e.contains("the end"), "{e}");
        let e = err("(latency_us < 1");
        assert!(e.contains("expected `)`"), "{e}");
        let e = err("latency_us < 1 area_mm2 < 2");
        assert!(
            e.contains("character 16") && e.contains("`area_mm2`"),
            "{e}"
        );
        let e = err("latency_us < 1.2.3");
        assert!(e.contains("`1.2.3` is not a number"), "{e}");
        let e = err("latency_us < 1 and");
        assert!(e.contains("the end"), "{e}");
        let e = err("latency_us # 1");
        assert!(e.contains("`#`"), "{e}");
        let e = err("latency_us < -area_mm2");
        assert!(e.contains("number after the sign"), "{e}");
        assert!(err("").contains("the end"));
        let deep = format!("{}latency_us < 1{}", "(".repeat(500), ")".repeat(500));
        assert!(err(&deep).contains("nested too deeply"));
        for t in ["a <", "latency_us < 1 or", "1e", "latency_us << 2", "()"] {
            assert!(!err(t).contains('\n'), "{t}");
        }
    }
}
