//! Pareto fronts: the non-dominated rows of a results table for chosen objectives.
//!
//! This module owns the last stage of the pipeline. [`front`] finds the non-dominated rows of a
//! numeric table (every objective minimised); [`Filter`] parses the `--where` expressions and
//! sweep-spec constraints that select rows first; [`front_of_csv`] and [`write_front_csv`] do
//! both on any CSV with a header, with the rules of [`FrontRules`] for the cells they read;
//! [`plot_front_svg`] draws a front; and [`ParetoArgs`] with [`run`] is the `lstm-dse pareto`
//! command.

mod command;
mod filter;
mod front;
mod lex;
mod plot;
mod rules;
mod table;
mod tree;

use std::path::PathBuf;

pub use command::{run, ParetoArgs};
pub use filter::{CmpOp, Filter};
pub use front::{dominates, front};
pub use plot::{front_svg, plot_front_svg};
pub use rules::FrontRules;
pub use table::{
    front_of_csv, front_of_csv_by, stage_front_csv, write_front_csv, FrontResult, Objective, Sense,
};

/// Why a front could not be computed, read or written; `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum ParetoError {
    #[error("no objectives: name at least one column with --minimize or --maximize")]
    NoObjectives,
    /// `by` and `first`: the flags (or spec keys) that named it, this time and the first.
    #[error("{by} {column}: {}", if by == first { "named twice".to_string() } else { format!("also named by {first}") })]
    DuplicateObjective {
        by: String,
        first: String,
        column: String,
    },
    #[error("{by} {column}: not a column of {} (columns: {available})", path.display())]
    ObjectiveColumn {
        by: String,
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error("{by} {column}: {}: the header has this column more than once (rename one to use it)", path.display())]
    AmbiguousObjective {
        by: String,
        path: PathBuf,
        column: String,
    },
    #[error("{}: column `{column}` appears more than once in the header (rename one to use it)", path.display())]
    AmbiguousColumn { path: PathBuf, column: String },
    #[error("expression `{text}` names column `{column}`, which is not one of: {available}")]
    FilterColumn {
        column: String,
        text: String,
        available: String,
    },
    #[error("expression `{text}`: at character {pos}: {message}")]
    FilterSyntax {
        text: String,
        pos: usize,
        message: String,
    },
    #[error("{}:{line}: column `{column}`: {problem}", path.display())]
    BadCell {
        path: PathBuf,
        line: u64,
        column: String,
        problem: String,
    },
    #[error("{}: {source}", path.display())]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: plot: {message}", path.display())]
    Plot { path: PathBuf, message: String },
}
