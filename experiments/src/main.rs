//! `voltarena` — the VoltArena command-line tool.
//!
//! Subcommands grow with the project; each lives in its own module. Errors print one line naming
//! the file and field at fault and exit with status 2 (bad input) or 1 (anything else).

mod atomic;
mod baseline_cmd;
mod compare_cmd;
mod config;
mod controllers;
mod curves_cmd;
mod leaderboard;
mod plot;
mod powerflow_cmd;
mod provenance;
mod rollout_cmd;
mod task_cmd;
mod train_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "voltarena", version, about = "Voltage control on distribution feeders: physics, RL and OFO on the same scenarios")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Solve AC or LinDistFlow power flow for a MATPOWER case, one or many scenarios.
    Powerflow(powerflow_cmd::Args),
    /// Run a controller on a task's episodes and report CR, QL, AVV, violations, losses.
    Rollout(rollout_cmd::Args),
    /// Run the model-based baselines (droop, OFO family) on a static or dynamic scenario.
    Baseline(baseline_cmd::Args),
    /// Run several controllers on exactly the same episodes of a task and compare them.
    Compare(compare_cmd::Args),
    /// Run a suite (tasks × controllers × seeds) into a reproducible leaderboard, or verify one.
    Leaderboard(leaderboard::Args),
    /// Train MADDPG or MATD3 from a config file into a run directory.
    Train(train_cmd::TrainArgs),
    /// Evaluate a trained run on a split.
    Eval(train_cmd::EvalArgs),
    /// Learning curves over training seeds: median and IQR of validation CR and QL per group of runs.
    Curves(curves_cmd::Args),
    /// List or describe tasks.
    #[command(subcommand)]
    Task(task_cmd::TaskCommand),
}

/// A failure, with the exit status it maps to.
pub enum CliError {
    /// Bad input: a file, a field, a flag (exit 2).
    Input(String),
    /// Anything else (exit 1).
    Other(String),
}

fn main() -> ExitCode {
    // CPU-independent libtorch numerics, set before any thread or tensor exists.
    voltarena_agents::numerics::pin();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Powerflow(args) => powerflow_cmd::run(args),
        Command::Rollout(args) => rollout_cmd::run(args),
        Command::Task(cmd) => task_cmd::run(cmd),
        Command::Baseline(args) => baseline_cmd::run(args),
        Command::Train(args) => train_cmd::train(args),
        Command::Compare(args) => compare_cmd::run(args),
        Command::Leaderboard(args) => leaderboard::run(args),
        Command::Eval(args) => train_cmd::eval(args),
        Command::Curves(args) => curves_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Input(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(CliError::Other(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
