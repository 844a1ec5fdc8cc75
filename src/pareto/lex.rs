//! The tokens of a row filter ([`super::Filter`]): column names (dotted, as the swept
//! architecture fields `compute.units`), numbers, comparison operators, signs, parentheses and
//! the connectives.

use super::filter::CmpOp;
use super::ParetoError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Number(f64),
    Op(CmpOp),
    Sign(f64),
    Open,
    Close,
    And,
    Or,
    Not,
}

pub(super) struct Token {
    pub(super) tok: Tok,
    /// 1-based character position in the text.
    pub(super) pos: usize,
    pub(super) lexeme: String,
}

/// Whether `c` may begin a name (or a part of a dotted one).
fn name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// The tokens of `text`, or the 1-based character position and the lexeme that is neither a
/// name, a number nor an operator.
pub(super) fn lex(text: &str) -> Result<Vec<Token>, ParetoError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let tok = if c.is_whitespace() {
            i += 1;
            continue;
        } else if name_start(c) {
            // A name, or dotted names (`compute.units`): a dot after a name joins the next one.
            loop {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                if chars.get(i) != Some(&'.') {
                    break;
                }
                if !chars.get(i + 1).is_some_and(|&n| name_start(n)) {
                    let word: String = chars[start..=i].iter().collect();
                    return Err(ParetoError::FilterSyntax {
                        text: text.to_string(),
                        pos: i + 1,
                        message: format!(
                            "`{word}` is not a column name (a `.` in a name is followed by a letter or `_`)"
                        ),
                    });
                }
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            match word.to_ascii_lowercase().as_str() {
                "and" => Tok::And,
                "or" => Tok::Or,
                "not" => Tok::Not,
                "inf" | "infinity" => Tok::Number(f64::INFINITY),
                _ => Tok::Ident(word),
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() {
                let d = chars[i];
                let exp_sign =
                    (d == '+' || d == '-') && matches!(chars[i - 1], 'e' | 'E') && i - 1 > start;
                if d.is_ascii_alphanumeric() || d == '.' || d == '_' || exp_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            let word: String = chars[start..i].iter().collect();
            match word.parse::<f64>() {
                Ok(v) => Tok::Number(v),
                Err(_) => {
                    return Err(ParetoError::FilterSyntax {
                        text: text.to_string(),
                        pos: start + 1,
                        message: format!("`{word}` is not a number"),
                    })
                }
            }
        } else {
            let next = chars.get(i + 1).copied();
            let (tok, len) = match (c, next) {
                ('<', Some('=')) => (Tok::Op(CmpOp::Le), 2),
                ('>', Some('=')) => (Tok::Op(CmpOp::Ge), 2),
                ('=', Some('=')) => (Tok::Op(CmpOp::Eq), 2),
                ('!', Some('=')) => (Tok::Op(CmpOp::Ne), 2),
                ('&', Some('&')) => (Tok::And, 2),
                ('|', Some('|')) => (Tok::Or, 2),
                ('<', _) => (Tok::Op(CmpOp::Lt), 1),
                ('>', _) => (Tok::Op(CmpOp::Gt), 1),
                ('=', _) => (Tok::Op(CmpOp::Eq), 1),
                ('!', _) => (Tok::Not, 1),
                ('(', _) => (Tok::Open, 1),
                (')', _) => (Tok::Close, 1),
                ('-', _) => (Tok::Sign(-1.0), 1),
                ('+', _) => (Tok::Sign(1.0), 1),
                _ => {
                    return Err(ParetoError::FilterSyntax {
                        text: text.to_string(),
                        pos: start + 1,
                        message: format!("unexpected character `{c}`"),
                    })
                }
            };
            i += len;
            tok
        };
        out.push(Token {
            tok,
            pos: start + 1,
            lexeme: chars[start..i].iter().collect(),
        });
    }
    Ok(out)
}
