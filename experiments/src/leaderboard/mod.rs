//! `voltarena leaderboard SUITE.toml [--out DIR] [--jobs N]`, `voltarena leaderboard --verify DIR`, and
//! for clusters `--emit-slurm DIR` (job array: `--entry K` per array task, then `--collect OUT`).
//!
//! A suite is tasks × controllers × seeds. For seed s every controller is evaluated on the same
//! `eval_episodes` episodes of the test split (episode seeds 100·s + i, no data noise); RL entries are
//! first trained with seed s (MAPDN's protocol: 5 seeds × 10 episodes, median and interquartile range
//! over seeds). Output: `leaderboard.json` (every entry with its per-seed numbers and provenance: suite
//! hash, training-config hashes, git commit, versions, machine and CPU), `leaderboard.md` and a
//! static `index.html`. `--verify DIR` re-runs the suite stored in `DIR/leaderboard.json` and fails naming the
//! first entry whose numbers differ. RL entries may evaluate given run directories (`runs`) instead
//! of training; with `train` also given, a run whose config differs from the entry's is refused
//! (config hash mismatch). Entry k of a suite is (tasks[k / n_controllers], controllers[k % n]); a
//! Slurm array task runs one entry with the same code as a local run, so the collected leaderboard
//! has the same numbers.
//!
//! One job per file: [`suite`] reads and checks a suite file (and hashes it), [`scheduler`] runs its
//! (entry, seed) jobs in parallel, [`report`] turns the entries into median and IQR over seeds and
//! writes leaderboard.json / .md / index.html, [`slurm`] emits the job array and merges what its
//! array tasks wrote, [`verify`] re-runs a stored leaderboard. This file only reads the flags and
//! picks one of them.

mod external;
#[cfg(test)]
mod fuzz_tests;
mod html;
mod report;
mod scheduler;
mod slurm;
mod suite;
mod verify;

pub use report::quantile;

use crate::CliError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Suite file (TOML), e.g. configs/leaderboard_quick.toml.
    suite: Option<PathBuf>,
    #[arg(long)]
    out: Option<PathBuf>,
    /// Parallel training/evaluation jobs.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Re-run the suite stored in DIR/leaderboard.json and check the numbers are identical.
    #[arg(long, value_name = "DIR")]
    verify: Option<PathBuf>,
    /// Write a Slurm job array (one entry per array task), a collect step and submit.sh into DIR;
    /// results go to --out.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["verify", "entry", "collect"])]
    emit_slurm: Option<PathBuf>,
    /// Run only entry K (task × controller, all seeds) into OUT/entries/K.json (a Slurm array task).
    #[arg(long, value_name = "K", conflicts_with_all = ["verify", "collect"])]
    entry: Option<usize>,
    /// Merge DIR/entries/*.json (written by --entry) into DIR/leaderboard.json, .md and index.html.
    #[arg(long, value_name = "DIR", conflicts_with = "verify")]
    collect: Option<PathBuf>,
    /// --entry / --collect: the --emit-slurm submission (written into its scripts); --collect then
    /// refuses entry files of any other submission as stale.
    #[arg(long, value_name = "ID")]
    submission: Option<String>,
    /// --emit-slurm: the folder the jobs run in (relative paths of the suite start there; default:
    /// the current folder). Every path the suite names must exist there.
    #[arg(long, value_name = "DIR", requires = "emit_slurm")]
    workdir: Option<PathBuf>,
    /// --emit-slurm: sbatch --account (default: the suite's [slurm] account, else none).
    #[arg(long, requires = "emit_slurm")]
    account: Option<String>,
    /// --emit-slurm: sbatch --partition.
    #[arg(long, requires = "emit_slurm")]
    partition: Option<String>,
    /// --emit-slurm: wall-time limit per array task (default 02:00:00).
    #[arg(long, requires = "emit_slurm")]
    time: Option<String>,
    /// --emit-slurm: memory per array task (default 8G).
    #[arg(long, requires = "emit_slurm")]
    mem: Option<String>,
    /// --emit-slurm: CPUs per array task (default 2; the entry's seeds run on them).
    #[arg(long, requires = "emit_slurm")]
    cpus_per_task: Option<usize>,
}

pub fn run(args: Args) -> Result<(), CliError> {
    if let Some(dir) = &args.verify {
        return verify::verify(dir, args.jobs);
    }
    let path = args.suite.ok_or_else(|| CliError::Input("leaderboard needs SUITE.toml or --verify DIR".into()))?;
    let (suite, suite_hash) = suite::read_suite(&path)?;
    let out = args.out.unwrap_or_else(|| PathBuf::from("results").join(format!("leaderboard_{}", suite.name)));
    if let Some(dir) = &args.emit_slurm {
        let s = suite.slurm.clone().unwrap_or_default();
        let sbatch = suite::SlurmOptions {
            account: args.account.or(s.account),
            partition: args.partition.or(s.partition),
            time: args.time.or(s.time),
            mem: args.mem.or(s.mem),
            cpus_per_task: args.cpus_per_task.or(s.cpus_per_task),
        };
        for (k, v) in [("account", &sbatch.account), ("partition", &sbatch.partition), ("time", &sbatch.time), ("mem", &sbatch.mem)] {
            if v.as_deref().is_some_and(|v| v.is_empty() || v.contains(char::is_whitespace)) {
                return Err(CliError::Input(format!("--{k}: expected one word, got {v:?}")));
            }
        }
        if sbatch.cpus_per_task == Some(0) {
            return Err(CliError::Input("--cpus-per-task: expected at least 1".into()));
        }
        let workdir = match args.workdir {
            Some(w) => w,
            None => std::env::current_dir().map_err(|e| CliError::Other(format!("current folder: {e}")))?,
        };
        return slurm::emit(&path, &suite, &suite_hash, dir, &out, &slurm::EmitOptions { workdir, sbatch });
    }
    if let Some(dir) = &args.collect {
        return slurm::collect(&path, &suite, &suite_hash, dir, args.submission.as_deref());
    }
    std::fs::create_dir_all(&out).map_err(|e| CliError::Other(format!("cannot create {}: {e}", out.display())))?;
    let t0 = std::time::Instant::now();
    if let Some(k) = args.entry {
        return slurm::run_entry(&path, &suite, suite_hash, k, &out, args.jobs, args.submission, t0);
    }
    let entries = scheduler::run_suite(&suite, &out, args.jobs, None)?;
    let md = report::write_outputs(&suite, &suite_hash, &entries, &out, t0.elapsed().as_secs_f64())?;
    print!("{md}");
    println!("\nwritten to {} in {:.1} s", out.display(), t0.elapsed().as_secs_f64());
    report::fail_on_errors(&entries, &out)
}
