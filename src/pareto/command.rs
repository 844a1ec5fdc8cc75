//! `lstm-dse pareto`: the front of any columns of any results CSV, as CSV and optionally SVG.

use std::path::PathBuf;

use super::{front_of_csv, front_svg, stage_front_csv};

/// The non-dominated rows of a results CSV for the chosen objective columns.
#[derive(Debug, clap::Args)]
pub struct ParetoArgs {
    /// CSV file with a header row, e.g. a sweep's results.csv.
    pub input: PathBuf,
    /// Columns to minimise, comma-separated (e.g. latency_us,energy_uj).
    #[arg(long, value_delimiter = ',', value_parser = column_name)]
    pub minimize: Vec<String>,
    /// Columns to maximise, comma-separated (e.g. top1_agreement).
    #[arg(long, value_delimiter = ',', value_parser = column_name)]
    pub maximize: Vec<String>,
    /// Keep only rows matching this expression before finding the front, e.g.
    /// "top1_agreement >= 0.99 and latency_us < 100" (< <= > >= == !=, and, or, not, parentheses;
    /// a swept field is a column by its dotted name: "compute.units >= 8").
    #[arg(long = "where")]
    pub filter: Option<String>,
    /// Where to write the front rows (the input's header and columns, input order).
    #[arg(long)]
    pub out: PathBuf,
    /// Also draw the front as SVG: the first objective (minimised ones first) on x, the second
    /// on y; with a single objective, the objective against row number.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// One name of an objective list: not empty (`--minimize a,` has a comma too many).
fn column_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("an empty column name in the list (a comma too many?)".into());
    }
    Ok(s.to_string())
}

/// Runs `lstm-dse pareto`: reads, filters, writes the front, plots it if asked, and prints
/// "N rows, M pass the filter, K on the front" to stderr.
pub fn run(args: &ParetoArgs) -> anyhow::Result<()> {
    // Both outputs are checked (against the input and each other) before either is written,
    // so a refusal writes nothing.
    use crate::report::{refuse_overwriting_inputs, Input, Output};
    let mut outputs = vec![Output::file("--out", &args.out)];
    outputs.extend(args.plot.iter().map(|p| Output::file("--plot", p)));
    refuse_overwriting_inputs(&[Input::new("the input", &args.input)], &outputs)?;
    for (flag, path) in [("--out", Some(&args.out)), ("--plot", args.plot.as_ref())] {
        if let Some(path) = path {
            crate::report::writable(path)
                .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))?;
        }
    }
    if let Some(plot) = &args.plot {
        crate::report::refuse_non_svg("--plot", plot)?;
    }
    // The errors name the file, line, column or expression themselves.
    let result = front_of_csv(
        &args.input,
        &args.minimize,
        &args.maximize,
        args.filter.as_deref(),
    )?;
    // The front and its figure replace a previous run's together or not at all.
    let mut staged = crate::report::Staged::new();
    stage_front_csv(&mut staged, &args.out, &result)?;
    if let Some(plot) = &args.plot {
        let name = args
            .input
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let d = result.objectives.len();
        let title = if d > 2 {
            format!("Pareto front of {name} (first 2 of {d} objectives)")
        } else {
            format!("Pareto front of {name}")
        };
        let label = |k: usize| {
            let o = &result.objectives[k];
            match o.sense {
                super::Sense::Minimize => format!("{} (min)", o.name),
                super::Sense::Maximize => format!("{} (max)", o.name),
            }
        };
        let first = result.objective_values(0);
        let svg = if d >= 2 {
            let second = result.objective_values(1);
            front_svg(
                plot,
                &title,
                (&label(0), &first),
                (&label(1), &second),
                &result.on_front,
            )?
        } else {
            let rows: Vec<f64> = (0..first.len()).map(|i| i as f64).collect();
            front_svg(
                plot,
                &title,
                ("row (after filtering)", &rows),
                (&label(0), &first),
                &result.on_front,
            )?
        };
        staged.write(plot, |w| w.write_all(svg.as_bytes()))?;
    }
    staged.commit()?;
    crate::note!(
        "{} rows, {} pass the filter, {} on the front",
        result.total_rows,
        result.rows.len(),
        result.front_len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ParetoArgs,
    }

    fn parse(dir: &std::path::Path, extra: &[&str]) -> ParetoArgs {
        let input = dir.join("results.csv");
        let out = dir.join("out/front.csv");
        let mut argv = vec![
            "pareto".to_string(),
            input.display().to_string(),
            "--out".to_string(),
            out.display().to_string(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        Cli::try_parse_from(argv).expect("arguments parse").args
    }

    fn setup() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("results.csv"),
            "design,latency_us,energy_uj,area_mm2,top1_agreement\n\
             a,10,5,1,0.999\n\
             b,20,2,1,0.995\n\
             c,20,6,1,0.999\n\
             d,5,9,1,0.98\n\
             f,30,1,1,0.999\n",
        )
        .expect("write fixture");
        dir
    }

    #[test]
    fn writes_front_and_plot() {
        let dir = setup();
        let plot = dir.path().join("front.svg");
        let args = parse(
            dir.path(),
            &[
                "--minimize",
                "latency_us,energy_uj",
                "--maximize",
                "top1_agreement",
                "--where",
                "top1_agreement >= 0.99",
                "--plot",
                plot.to_str().expect("utf-8 path"),
            ],
        );
        assert_eq!(args.minimize, ["latency_us", "energy_uj"]);
        run(&args).expect("runs");
        let front = std::fs::read_to_string(&args.out).expect("front.csv");
        assert_eq!(
            front,
            "design,latency_us,energy_uj,area_mm2,top1_agreement\n\
             a,10,5,1,0.999\nb,20,2,1,0.995\nf,30,1,1,0.999\n"
        );
        let svg = std::fs::read_to_string(&plot).expect("front.svg");
        assert!(svg.contains("latency_us (min)") && svg.contains("energy_uj (min)"));
        assert!(svg.contains("first 2 of 3 objectives"));
        let first = svg.clone();
        run(&args).expect("runs again");
        assert_eq!(std::fs::read_to_string(&plot).expect("svg"), first);
    }

    #[test]
    fn single_objective_plots_against_row() {
        let dir = setup();
        let plot = dir.path().join("one.svg");
        let args = parse(
            dir.path(),
            &[
                "--minimize",
                "latency_us",
                "--plot",
                plot.to_str().expect("utf-8"),
            ],
        );
        run(&args).expect("runs");
        let front = std::fs::read_to_string(&args.out).expect("front.csv");
        assert_eq!(front.lines().count(), 2);
        assert!(front.ends_with("d,5,9,1,0.98\n"));
        assert!(std::fs::read_to_string(&plot)
            .expect("svg")
            .contains("row (after filtering)"));
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let dir = setup();
        let err =
            |extra: &[&str]| format!("{:#}", run(&parse(dir.path(), extra)).expect_err("fails"));
        assert!(err(&[]).contains("no objectives"));
        let e = err(&["--minimize", "latency"]);
        assert!(e.contains("--minimize latency: not a column of "), "{e}");
        let parsed = Cli::try_parse_from([
            "pareto",
            "in.csv",
            "--out",
            "o.csv",
            "--minimize",
            "latency_us,",
        ]);
        let Err(e) = parsed else {
            panic!("an empty name was accepted")
        };
        let e = e.to_string();
        assert!(
            e.contains("--minimize") && e.contains("an empty column name"),
            "{e}"
        );
        let e = err(&["--minimize", "latency_us", "--where", "power_mw < 3"]);
        assert!(e.contains("`power_mw`"), "{e}");
        let e = err(&["--minimize", "latency_us", "--where", "latency_us <"]);
        assert!(
            e.contains("at character") && e.contains("found the end"),
            "{e}"
        );
        assert!(!dir.path().join("out/front.csv").exists());
    }
}
