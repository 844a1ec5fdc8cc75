//! The one error type of the accelerator model. Every variant prints as a single line that
//! names the file and/or field at fault and says what is wrong, so a sweep over thousands of
//! configurations can log it verbatim (e.g. `sweeps/arch/x.toml: field 'compute.units': must
//! be >= 1, got 0`).

use thiserror::Error;

/// Bad input to the accelerator model: a malformed architecture file, an override that does
/// not apply, a policy that is not in `policies.csv`, or a workload the architecture cannot run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AccelError {
    /// The file could not be read at all.
    #[error("{path}: cannot read: {message}")]
    Io { path: String, message: String },

    /// The file is not valid TOML/CSV, or a field has the wrong type or is unknown.
    #[error("{path}:{line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },

    /// A field parsed but its value is out of range.
    #[error("{origin}: field '{field}': {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },

    /// A `--set key=value` override that does not apply.
    #[error("--set '{assignment}': {message}")]
    Set { assignment: String, message: String },

    /// The requested policy id has no row in the policies file.
    #[error("{path}: policy {id} not found")]
    PolicyNotFound { path: String, id: u64 },

    /// The workload cannot run on this architecture (or is itself malformed).
    #[error("workload '{workload}': {message}")]
    Workload { workload: String, message: String },
}

pub(crate) use crate::inputs::one_line;

/// A number for an error message: as `{}` prints it for everyday magnitudes, in exponent
/// form (`1e300`, `-2.5e-30`) beyond, where `{}` would print hundreds of digits.
pub(crate) fn compact(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || !a.is_finite() || (1e-6..1e16).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

#[cold]
#[inline(never)]
pub(crate) fn invalid(origin: &str, field: &str, message: impl Into<String>) -> AccelError {
    AccelError::Invalid {
        origin: origin.to_string(),
        field: field.to_string(),
        message: message.into(),
    }
}
