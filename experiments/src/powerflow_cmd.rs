//! `voltarena powerflow --network PATH.m [--scenarios FILE.json] [--method ac|lindistflow]
//! [--output FILE.json]`
//!
//! Scenario file: `{"p_inj_mw": [[...], ...], "q_inj_mvar": [[...], ...]}`, S rows with one value
//! per bus in the case file's bus-row order, net injection in generator convention (load
//! negative). They replace the case's own Pd/Qd and PQ-bus generation; the reference-bus entry is
//! ignored. Output: `{"vm_pu": [[...]], "va_degree": [[...]], "converged": [...], "iterations":
//! [...], "p_loss_mw": [...], "solve_seconds": s}` plus `"errors"` (null, or why a row failed).
//! A row that did not converge holds nulls.

use crate::{atomic, CliError};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;
use voltarena_env::powerflow::{solve_batch, Method};
use voltarena_env::{AcOptions, Algorithm, LinDistFlowForm, Network};

#[derive(Clone, Copy, ValueEnum)]
pub enum MethodArg {
    /// Full AC Newton–Raphson.
    Ac,
    /// LinDistFlow (radial networks).
    Lindistflow,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AlgorithmArg {
    Auto,
    Radial,
    Newton,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormArg {
    Squared,
    Linear,
}

#[derive(clap::Args)]
pub struct Args {
    /// MATPOWER version-2 case file (.m).
    #[arg(long, value_name = "PATH.m")]
    network: PathBuf,
    /// JSON scenarios {"p_inj_mw": [[..]], "q_inj_mvar": [[..]]}; without it, the case as given.
    #[arg(long, value_name = "FILE.json")]
    scenarios: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "ac")]
    method: MethodArg,
    /// Write the JSON result here (atomically) instead of stdout.
    #[arg(long, value_name = "FILE.json")]
    output: Option<PathBuf>,
    /// AC algorithm: auto picks the radial tree solver on radial PQ networks.
    #[arg(long, value_enum, default_value = "auto")]
    algorithm: AlgorithmArg,
    /// LinDistFlow voltage form.
    #[arg(long, value_enum, default_value = "squared")]
    form: FormArg,
    /// AC convergence tolerance on the largest power mismatch (MVA).
    #[arg(long, default_value_t = AcOptions::default().tolerance_mva)]
    tolerance_mva: f64,
    /// AC Newton iteration limit.
    #[arg(long, default_value_t = AcOptions::default().max_iterations)]
    max_iterations: u32,
    /// Worker threads for the batch (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenarios {
    p_inj_mw: Vec<Vec<f64>>,
    q_inj_mvar: Vec<Vec<f64>>,
}

#[derive(Serialize)]
struct Output {
    vm_pu: Vec<Vec<f64>>,
    va_degree: Vec<Vec<f64>>,
    converged: Vec<bool>,
    iterations: Vec<u32>,
    p_loss_mw: Vec<f64>,
    solve_seconds: f64,
    errors: Vec<Option<String>>,
}

fn load_scenarios(path: &PathBuf, n: usize) -> Result<(Vec<f64>, Vec<f64>), CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Input(format!("cannot read scenarios {}: {e}", path.display())))?;
    let sc: Scenarios = serde_json::from_str(&text).map_err(|e| {
        CliError::Input(format!(
            "{}: {e}; expected {{\"p_inj_mw\": [[...], ...], \"q_inj_mvar\": [[...], ...]}}",
            path.display()
        ))
    })?;
    if sc.p_inj_mw.len() != sc.q_inj_mvar.len() {
        return Err(CliError::Input(format!(
            "{}: p_inj_mw has {} rows but q_inj_mvar has {}; expected one row per scenario in both",
            path.display(),
            sc.p_inj_mw.len(),
            sc.q_inj_mvar.len()
        )));
    }
    for (field, rows) in [("p_inj_mw", &sc.p_inj_mw), ("q_inj_mvar", &sc.q_inj_mvar)] {
        for (s, row) in rows.iter().enumerate() {
            if row.len() != n {
                return Err(CliError::Input(format!(
                    "{}: {field}[{s}] has {} values; expected {n}, one per bus in the case's bus-row order",
                    path.display(),
                    row.len()
                )));
            }
        }
    }
    Ok((sc.p_inj_mw.concat(), sc.q_inj_mvar.concat()))
}

pub fn run(args: Args) -> Result<(), CliError> {
    let net = Network::from_matpower_file(&args.network).map_err(|e| CliError::Input(e.to_string()))?;
    let n = net.n_bus();
    let (p, q) = match &args.scenarios {
        Some(path) => load_scenarios(path, n)?,
        None => net.injections(),
    };
    if !(args.tolerance_mva.is_finite() && args.tolerance_mva > 0.0) {
        return Err(CliError::Input(format!("--tolerance-mva must be a positive number, got {}", args.tolerance_mva)));
    }
    let method = match args.method {
        MethodArg::Ac => Method::Ac(AcOptions {
            tolerance_mva: args.tolerance_mva,
            max_iterations: args.max_iterations,
            algorithm: match args.algorithm {
                AlgorithmArg::Auto => Algorithm::Auto,
                AlgorithmArg::Radial => Algorithm::Radial,
                AlgorithmArg::Newton => Algorithm::Newton,
            },
            warm_start: false,
        }),
        MethodArg::Lindistflow => Method::LinDistFlow(match args.form {
            FormArg::Squared => LinDistFlowForm::Squared,
            FormArg::Linear => LinDistFlowForm::Linear,
        }),
    };
    let t0 = Instant::now();
    let out = solve_batch(&net, method, &p, &q, args.threads)
        .map_err(|e| CliError::Input(format!("{}: {e}", args.network.display())))?;
    let solve_seconds = t0.elapsed().as_secs_f64();
    let rows = out.converged.len();
    let result = Output {
        vm_pu: (0..rows).map(|s| out.vm_row(s).to_vec()).collect(),
        va_degree: (0..rows).map(|s| out.va_row(s).iter().map(|a| a.to_degrees()).collect()).collect(),
        converged: out.converged.clone(),
        iterations: out.iterations.clone(),
        p_loss_mw: out.p_loss_mw.clone(),
        solve_seconds,
        errors: out.errors.iter().map(|e| e.as_ref().map(|e| e.to_string())).collect(),
    };
    let json = serde_json::to_string(&result).map_err(|e| CliError::Other(e.to_string()))?;
    match &args.output {
        Some(path) => atomic::write(path, json.as_bytes())
            .map_err(|e| CliError::Other(format!("cannot write {}: {e}", path.display())))?,
        None => println!("{json}"),
    }
    Ok(())
}
