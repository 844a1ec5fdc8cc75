//! The meaning the importer gives a value's dimensions: a shape vector's entries ([`Dim`]:
//! known, or the sequence's steps or batch) and the sequence's axes ([`Axis`]), with how
//! messages print them.

/// One dimension of a shape value: known, or the symbolic sequence length / batch size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Dim {
    Known(i64),
    Steps,
    Batch,
    Unknown,
}

/// An axis of the sequence value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Axis {
    Steps,
    Batch,
    /// Steps and batch flattened into rows (around a 2-D Gemm head); `steps_first` records
    /// their order so a Reshape can restore them.
    Rows {
        steps_first: bool,
    },
    Dirs(usize),
    /// Features; `None` for the graph input before the first LSTM fixes its width.
    Feat(Option<usize>),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Known(v) => write!(f, "{v}"),
            Dim::Steps => f.write_str("steps"),
            Dim::Batch => f.write_str("batch"),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

impl std::fmt::Display for Axis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Axis::Steps => f.write_str("steps"),
            Axis::Batch => f.write_str("batch"),
            Axis::Rows { steps_first: true } => f.write_str("steps x batch rows"),
            Axis::Rows { steps_first: false } => f.write_str("batch x steps rows"),
            Axis::Dirs(d) => write!(f, "directions ({d})"),
            Axis::Feat(Some(w)) => write!(f, "features ({w})"),
            Axis::Feat(None) => f.write_str("features"),
        }
    }
}

/// A list of dims or axes as `[a, b, c]`, for messages.
pub(super) fn show<T: std::fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(T::to_string).collect();
    format!("[{}]", parts.join(", "))
}
