//! The `lstm-dse` binary: parse the command line, run it, turn the outcome into an exit code
//! (0 on success, 2 on bad input, with one line naming the file or token and the problem).

use clap::error::ErrorKind;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match lstm_dse::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            // clap's usage errors say what is wrong on their first line; the rest is hints.
            let text = e.render().to_string();
            eprintln!(
                "{}",
                text.lines().next().unwrap_or("error: bad command line")
            );
            return ExitCode::from(2);
        }
    };
    match lstm_dse::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The context chain on one line, each cause once (an error that already shows
            // its source would otherwise print it twice), whatever line breaks a library's
            // message holds.
            let mut msg = String::new();
            for cause in e.chain() {
                let text = cause.to_string();
                if !msg.contains(&text) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&text);
                }
            }
            eprintln!(
                "error: {}",
                msg.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            ExitCode::from(2)
        }
    }
}
