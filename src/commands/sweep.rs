//! `sweep`: the batch runner, with indicatif bars for its stages.

use super::*;

/// indicatif bars for the sweep's stages.
struct Bars {
    quiet: bool,
    bar: std::sync::Mutex<indicatif::ProgressBar>,
}

impl crate::sweep::Progress for Bars {
    fn stage(&self, name: &str, total: u64) {
        // A few long items (the precision stage counts models) give no useful estimate of
        // the time left: "0/1 (11s, 0s left)" while the only model runs.
        let template = if total < MIN_FOR_ETA {
            "{spinner} {msg} [{bar:40}] {pos}/{len} ({elapsed})"
        } else {
            "{spinner} {msg} [{bar:40}] {pos}/{len} ({elapsed}, {eta} left)"
        };
        let bar = progress_bar_with(self.quiet, name, total, template);
        // The precision stage reports once per model: keep the spinner moving in between.
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        if let Ok(mut slot) = self.bar.lock() {
            std::mem::replace(&mut *slot, bar).finish_and_clear();
        }
    }
    fn advance(&self, n: u64) {
        if let Ok(bar) = self.bar.lock() {
            bar.inc(n);
        }
    }
}

/// Fewest items of a stage for which its bar shows the time left.
const MIN_FOR_ETA: u64 = 10;

/// Most threads `--jobs` may ask for: each rayon thread reserves a stack, and thousands of
/// them exhaust memory without making the sweep faster.
const MAX_JOBS: usize = 256;

pub(super) fn sweep_cmd(a: &SweepArgs) -> Result<()> {
    let default = crate::cli::DEFAULT_SWEEP;
    if a.spec.is_none() && !std::path::Path::new(default).exists() {
        let here = std::env::current_dir().map_or(String::new(), |d| format!(" ({})", d.display()));
        bail!(
            "no sweep file given, and the default {default} is not in the current directory{here}: run from the repository root, or name a sweep file (lstm-dse sweep SWEEP.toml)"
        );
    }
    if a.slurm {
        return super::cluster_cmds::slurm_sweep(a);
    }
    let shard = match &a.shard {
        None => None,
        Some(s) => {
            let parsed = s.split_once('/').and_then(|(i, n)| {
                Some((
                    i.trim().parse::<usize>().ok()?,
                    n.trim().parse::<usize>().ok()?,
                ))
            });
            match parsed {
                Some((i, n)) if n >= 1 && i < n => Some((i, n)),
                _ => bail!("--shard '{s}': expected i/N with 0 <= i < N, e.g. 0/4"),
            }
        }
    };
    let opts = crate::sweep::RunOptions {
        out: a.out.clone(),
        resume: a.resume,
        shard,
        cache_dir: a.cache.clone(),
        smoke: a.smoke,
        precision_only: a.precision_only,
    };
    let bars = Bars {
        quiet: a.quiet,
        bar: std::sync::Mutex::new(indicatif::ProgressBar::hidden()),
    };
    let go = || crate::sweep::run_counted(a.spec_file(), &opts, &bars);
    let finished = match a.jobs {
        Some(j) if j == 0 || j > MAX_JOBS => {
            bail!(
                "--jobs {j}: give 1 to {MAX_JOBS} threads (more only add memory and start-up time)"
            )
        }
        Some(j) => rayon::ThreadPoolBuilder::new()
            .num_threads(j)
            .build()?
            .install(go)?,
        None => go()?,
    };
    if let Ok(bar) = bars.bar.lock() {
        bar.finish_and_clear();
    }
    // finished.lock is held until the page is drawn: another run cannot replace the files
    // it is drawn from.
    let (out, rows) = (&finished.out, finished.rows);
    if shard.is_none() && !a.precision_only {
        // The results are complete at this point: a page that cannot be drawn is worth a
        // warning, not a failed sweep (`lstm-dse report` retries it).
        let bar = super::view_cmds::stage_bar(a.quiet);
        let written = crate::view::page::report_dir_with(
            out,
            0,
            rows,
            finished.records.as_ref(),
            &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            },
        );
        bar.finish_and_clear();
        if let Err(e) = written {
            crate::note!("warning: report.html not written: {e:#}");
        }
    }
    if !a.quiet && a.precision_only {
        crate::note!("precision stage cached in {}", a.cache.display());
    } else if !a.quiet {
        match shard {
            Some((i, n)) => crate::note!(
                "shard {i}/{n}: wrote {} (combine the shards with `lstm-dse merge`)",
                out.display()
            ),
            None => crate::out_part!(
                "{}",
                crate::view::SweepDir::open_with_rows(out, rows)?.summary()
            )?,
        }
    }
    Ok(())
}
