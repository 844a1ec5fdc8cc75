//! The `lstm-dse` binary: parse the command line, run it, turn the outcome into an exit code
//! (0 on success, 2 on bad input, with one line naming the file or token and the problem).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = lstm_dse::cli::Cli::parse();
    match lstm_dse::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
