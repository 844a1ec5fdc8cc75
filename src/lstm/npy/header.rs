//! The `.npy` header: magic, version, then a Python dict literal with `descr`,
//! `fortran_order` and `shape` (numpy's `lib/format.py`), read without trusting any of it.

/// What the header says, and where the data starts.
pub struct Header {
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<u64>,
    pub data_start: usize,
}

/// Longest header accepted (numpy itself refuses more than 10,000 bytes by default).
const MAX_HEADER: usize = 1 << 16;
/// Deepest nesting of the dict literal.
const MAX_DEPTH: usize = 4;

pub fn parse(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("no \\x93NUMPY magic at the start".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("format version {v}.{} is not supported", bytes[7])),
    };
    if len > MAX_HEADER {
        return Err(format!("a header of {len} bytes (at most {MAX_HEADER})"));
    }
    let end = start + len;
    if end > bytes.len() {
        return Err(format!(
            "the header of {len} bytes runs past the end of the file ({} bytes)",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| "the header is not text".to_string())?;
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
    };
    let Lit::Dict(items) = p.value(0)? else {
        return Err("the header is not a dict".into());
    };
    p.ws();
    if p.at != p.s.len() {
        return Err(format!(
            "unexpected text after the header dict at byte {}",
            p.at
        ));
    }
    // A key given twice is refused: numpy reads the last, and guessing wrong reshapes the data.
    let get = |key: &str| {
        let mut found = items
            .iter()
            .filter(|(k, _)| matches!(k, Lit::Str(s) if s == key))
            .map(|(_, v)| v);
        match (found.next(), found.next()) {
            (Some(v), None) => Ok(v),
            (None, _) => Err(format!("the header has no '{key}'")),
            (Some(_), Some(_)) => Err(format!("the header gives '{key}' more than once")),
        }
    };
    let Lit::Str(descr) = get("descr")? else {
        return Err("'descr' is not a string (structured dtypes are not supported)".into());
    };
    let Lit::Bool(fortran_order) = get("fortran_order")? else {
        return Err("'fortran_order' is not True or False".into());
    };
    let Lit::Seq(dims) = get("shape")? else {
        return Err("'shape' is not a tuple".into());
    };
    let shape = dims
        .iter()
        .map(|d| match d {
            Lit::Int(n) => Ok(*n),
            _ => Err("'shape' holds something other than whole numbers".to_string()),
        })
        .collect::<Result<Vec<u64>, String>>()?;
    Ok(Header {
        descr: descr.clone(),
        fortran_order: *fortran_order,
        shape,
        data_start: end,
    })
}

enum Lit {
    Str(String),
    Bool(bool),
    Int(u64),
    Seq(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.at).is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Lit, String> {
        if depth > MAX_DEPTH {
            return Err("the header is nested too deeply".into());
        }
        self.ws();
        let at = self.at;
        match self.s.get(at) {
            Some(b'{') => {
                self.at += 1;
                let mut items = Vec::new();
                while !self.eat(b'}') {
                    let k = self.value(depth + 1)?;
                    if !self.eat(b':') {
                        return Err(format!("expected ':' at byte {}", self.at));
                    }
                    items.push((k, self.value(depth + 1)?));
                    if !self.eat(b',') && !self.eat(b'}') {
                        return Err(format!("expected ',' or '}}' at byte {}", self.at));
                    } else if self.s.get(self.at - 1) == Some(&b'}') {
                        break;
                    }
                }
                Ok(Lit::Dict(items))
            }
            Some(&open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.at += 1;
                let mut items = Vec::new();
                while !self.eat(close) {
                    items.push(self.value(depth + 1)?);
                    if !self.eat(b',') && !self.eat(close) {
                        return Err(format!("expected ',' at byte {}", self.at));
                    } else if self.s.get(self.at - 1) == Some(&close) {
                        break;
                    }
                }
                Ok(Lit::Seq(items))
            }
            Some(&q @ (b'\'' | b'"')) => {
                let rest = &self.s[at + 1..];
                let n = rest
                    .iter()
                    .position(|&c| c == q)
                    .ok_or_else(|| format!("unterminated string at byte {at}"))?;
                self.at = at + 1 + n + 1;
                Ok(Lit::Str(String::from_utf8_lossy(&rest[..n]).into_owned()))
            }
            Some(c) if c.is_ascii_digit() => {
                let n = self.s[at..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                self.at = at + n;
                if self.s.get(self.at) == Some(&b'L') {
                    self.at += 1;
                }
                let digits = std::str::from_utf8(&self.s[at..at + n]).unwrap_or("");
                digits
                    .parse()
                    .map(Lit::Int)
                    .map_err(|_| format!("the number {digits} is too large"))
            }
            _ if self.s[at..].starts_with(b"True") => {
                self.at += 4;
                Ok(Lit::Bool(true))
            }
            _ if self.s[at..].starts_with(b"False") => {
                self.at += 5;
                Ok(Lit::Bool(false))
            }
            _ => Err(format!("unexpected text at byte {at}")),
        }
    }
}
