//! Size limits checked before anything large is allocated. Counts that come from a file or a
//! flag (a sweep's cross product, a range, a threshold grid, generated inputs, an `.npy`
//! shape) are multiplied with checked arithmetic and compared with two limits:
//!
//! * **points**: design points per sweep (models x precision options x architecture points),
//!   values per range and policies per threshold grid; default [`DEFAULT_MAX_POINTS`];
//! * **memory**: the estimated bytes of the largest buffers one run holds (inputs, per-lane
//!   traces); default [`DEFAULT_MAX_MEMORY`].
//!
//! The binary sets them once from `--max-points` and `--max-memory` (global flags); the
//! library reads them where it checks a size. A limit hit is an error naming what was too
//! large, by how much, and the flag that raises the limit.

use std::sync::atomic::{AtomicU64, Ordering};

/// Default limit on design points per sweep (and values per range, policies per grid).
pub const DEFAULT_MAX_POINTS: u64 = 10_000_000;
/// Default limit on the estimated memory of one run: 8 GiB.
pub const DEFAULT_MAX_MEMORY: u64 = 8 << 30;

static MAX_POINTS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_POINTS);
static MAX_MEMORY: AtomicU64 = AtomicU64::new(DEFAULT_MAX_MEMORY);

/// The limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_points: u64,
    pub max_memory_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_points: DEFAULT_MAX_POINTS,
            max_memory_bytes: DEFAULT_MAX_MEMORY,
        }
    }
}

/// Sets the process-wide limits (the binary does this once, from its flags).
pub fn set(l: Limits) {
    MAX_POINTS.store(l.max_points, Ordering::Relaxed);
    MAX_MEMORY.store(l.max_memory_bytes, Ordering::Relaxed);
}

/// The limits in force.
pub fn current() -> Limits {
    Limits {
        max_points: MAX_POINTS.load(Ordering::Relaxed),
        max_memory_bytes: MAX_MEMORY.load(Ordering::Relaxed),
    }
}

/// A size over a limit; `Display` is one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error("{what}: {count} {unit}, more than the limit of {limit} (raise it with --max-points)")]
    Points {
        what: String,
        /// `None`: more than 2^128.
        count: Count,
        unit: &'static str,
        limit: u64,
    },
    #[error("{what}: needs about {need} of memory, more than the limit of {limit} (raise it with --max-memory)")]
    Memory {
        what: String,
        need: Bytes,
        limit: Bytes,
    },
}

/// A count that may be beyond any integer type (shown as "more than 2^128").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Count(pub Option<u128>);

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "more than 2^128"),
        }
    }
}

/// A byte count shown with a binary unit (`12.0 GiB`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bytes(pub Option<u128>);

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(n) = self.0 else {
            return write!(f, "more than 2^128 bytes");
        };
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let (mut v, mut u) = (n as f64, 0);
        while v >= 1024.0 && u + 1 < units.len() {
            v /= 1024.0;
            u += 1;
        }
        if n == 1 {
            write!(f, "1 byte")
        } else if u == 0 {
            write!(f, "{n} bytes")
        } else {
            write!(f, "{v:.1} {}", units[u])
        }
    }
}

/// The product of `factors`, `None` when it does not fit in a u128.
pub fn product(factors: &[u128]) -> Option<u128> {
    factors.iter().try_fold(1u128, |a, &b| a.checked_mul(b))
}

/// Checks a count of `unit` (points, values, policies) against the points limit; `count` None
/// means it overflowed while being computed.
pub fn check_points(what: &str, count: Option<u128>, unit: &'static str) -> Result<(), LimitError> {
    let limit = current().max_points;
    match count {
        Some(n) if n <= limit as u128 => Ok(()),
        _ => Err(LimitError::Points {
            what: what.to_string(),
            count: Count(count),
            unit,
            limit,
        }),
    }
}

/// Checks an estimate of bytes against the memory limit; `bytes` None means it overflowed.
pub fn check_memory(what: &str, bytes: Option<u128>) -> Result<(), LimitError> {
    let limit = current().max_memory_bytes;
    match bytes {
        Some(n) if n <= limit as u128 => Ok(()),
        _ => Err(LimitError::Memory {
            what: what.to_string(),
            need: Bytes(bytes),
            limit: Bytes(Some(limit as u128)),
        }),
    }
}

/// Parses a size such as `8G`, `512MiB`, `100000` (bytes) or `1.5T`; units are powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "'{s}': expected a size such as 8G, 512M or a number of bytes"
            ))
        }
    };
    let expected = || format!("'{s}': expected a size such as 8G, 512M or a number of bytes");
    // Whole numbers exactly (a float64 rounds 2^64 - 1 up to 2^64), fractions to the byte.
    let bytes: Option<u128> = if num.contains('.') {
        let v: f64 = num.parse().map_err(|_| expected())?;
        let b = v * (1u64 << shift) as f64;
        (b < 2f64.powi(64)).then_some(b as u128)
    } else {
        let v: u128 = num.parse().map_err(|_| expected())?;
        v.checked_mul(1 << shift)
    };
    match bytes {
        Some(b) if (1..=u64::MAX as u128).contains(&b) => Ok(b as u64),
        _ => Err(format!(
            "'{s}': the size must be at least 1 byte and less than 16 EiB"
        )),
    }
}

/// Why `value` (a name or path from a file or a flag) cannot be written into a file name or a
/// generated script: the first control character in it (newline, carriage return, tab, other
/// C0 or C1 controls, DEL), which would end a script line or a comment and start a command.
/// `None` when it has none. The message shows the value escaped, so it stays one line.
pub fn control_character(value: &std::ffi::OsStr) -> Option<String> {
    let text = value.to_string_lossy();
    let c = text.chars().find(|c| c.is_control())?;
    let what = match c {
        '\n' => "a newline".to_string(),
        '\r' => "a carriage return".to_string(),
        '\t' => "a tab".to_string(),
        c => format!("the control character U+{:04X}", u32::from(c)),
    };
    Some(format!(
        "{text:?} contains {what}; names and paths may not hold control characters"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_size("0.5"),
            Err("'0.5': the size must be at least 1 byte and less than 16 EiB".into())
        );
        assert_eq!(Bytes(Some(1)).to_string(), "1 byte");
        for bad in [
            "",
            "G",
            "-1G",
            "8Q",
            "0",
            "1e30",
            "99999999999T",
            "18446744073709551616",
            "16E",
            ".",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn products_overflow_to_none() {
        assert_eq!(product(&[3, 4, 5]), Some(60));
        assert_eq!(product(&[]), Some(1));
        assert_eq!(product(&[1 << 64, 1 << 64]), None);
    }

    #[test]
    fn messages_are_one_line_and_name_the_flag() {
        let e = LimitError::Memory {
            what: "x.npy".into(),
            need: Bytes(Some(3 << 30)),
            limit: Bytes(Some(1 << 30)),
        }
        .to_string();
        assert_eq!(
            e,
            "x.npy: needs about 3.0 GiB of memory, more than the limit of 1.0 GiB (raise it with --max-memory)"
        );
        let e = LimitError::Points {
            what: "r".into(),
            count: Count(None),
            unit: "points",
            limit: 10,
        }
        .to_string();
        assert!(e.contains("more than 2^128 points") && e.contains("--max-points"));
    }

    #[test]
    fn control_characters_are_named_on_one_line() {
        use std::ffi::OsStr;
        assert_eq!(control_character(OsStr::new("results/a b'$(x)#%")), None);
        assert_eq!(control_character(OsStr::new("caf\u{e9}")), None);
        let m = control_character(OsStr::new("s\ntouch /tmp/x #")).expect("newline");
        assert_eq!(
            m,
            r#""s\ntouch /tmp/x #" contains a newline; names and paths may not hold control characters"#
        );
        for (bad, what) in [
            ("a\rb", "carriage return"),
            ("a\tb", "tab"),
            ("a\u{1}b", "U+0001"),
            ("a\u{7f}", "U+007F"),
            ("a\u{85}", "U+0085"),
        ] {
            let m = control_character(OsStr::new(bad)).expect(bad);
            assert!(m.contains(what) && !m.contains('\n'), "{m}");
        }
    }
}
