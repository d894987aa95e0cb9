//! `voltarena curves`: learning curves over several training seeds — the median and interquartile
//! range of the validation CR and QL at every evaluation step, per group of run directories
//! (e.g. one `--runs-dir` per configuration), as `curves.svg` and `curves.csv`.

use crate::leaderboard::quantile;
use crate::CliError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Groups as NAME=DIR: every run directory inside DIR (a subfolder with a metrics.csv) is one seed
    /// of the group; DIR may also be a single run directory.
    #[arg(required = true)]
    pub groups: Vec<String>,
    /// Output folder (curves.svg, curves.csv).
    #[arg(long)]
    pub out: PathBuf,
    /// Horizontal reference lines on the two panels, e.g. droop on the same validation episodes
    /// (`voltarena rollout --controller droop --split val --seed 10000 --steps 1200` for 5 episodes).
    #[arg(long)]
    pub ref_cr: Option<f64>,
    #[arg(long)]
    pub ref_ql: Option<f64>,
}

/// Validation rows of one run: step → (CR, QL).
pub(crate) fn read_eval_rows(csv: &Path) -> Result<BTreeMap<u64, (f64, f64)>, CliError> {
    let text = std::fs::read_to_string(csv).map_err(|e| CliError::Input(format!("{}: {e}", csv.display())))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).ok_or_else(|| CliError::Input(format!("{}: line 1: expected a header with column '{name}'", csv.display())));
    let (kind, step, cr, ql) = (col("kind")?, col("step")?, col("cr")?, col("ql")?);
    let mut rows = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if f.get(kind) != Some(&"eval") {
            continue;
        }
        let num = |j: usize, what: &str| -> Result<f64, CliError> {
            f.get(j).and_then(|s| s.parse::<f64>().ok()).filter(|v| v.is_finite()).ok_or_else(|| CliError::Input(format!("{}: line {}: expected a finite number in column '{what}'", csv.display(), i + 2)))
        };
        rows.insert(num(step, "step")? as u64, (num(cr, "cr")?, num(ql, "ql")?));
    }
    Ok(rows)
}

/// One group's aggregate at one step: (runs, [q25, median, q75] of CR, of QL).
type Row = (usize, [f64; 3], [f64; 3]);

pub fn run(args: Args) -> Result<(), CliError> {
    let mut groups: Vec<(String, Vec<PathBuf>, BTreeMap<u64, Row>)> = Vec::new();
    for g in &args.groups {
        let (name, dir) = g.split_once('=').ok_or_else(|| CliError::Input(format!("group '{g}': expected NAME=DIR")))?;
        let dir = Path::new(dir);
        let runs: Vec<PathBuf> = if dir.join("metrics.csv").is_file() {
            vec![dir.to_path_buf()]
        } else {
            let entries = std::fs::read_dir(dir).map_err(|e| CliError::Input(format!("group '{name}': {}: {e}", dir.display())))?;
            let mut v: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("metrics.csv").is_file()).collect();
            v.sort();
            v
        };
        if runs.is_empty() {
            return Err(CliError::Input(format!("group '{name}': {}: no run directory (a folder with metrics.csv) found", dir.display())));
        }
        let mut by_step: BTreeMap<u64, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for r in &runs {
            for (step, (cr, ql)) in read_eval_rows(&r.join("metrics.csv"))? {
                let e = by_step.entry(step).or_default();
                e.0.push(cr);
                e.1.push(ql);
            }
        }
        let agg = by_step
            .into_iter()
            .map(|(s, (mut cr, mut ql))| {
                cr.sort_by(f64::total_cmp);
                ql.sort_by(f64::total_cmp);
                let q3 = |v: &[f64]| [quantile(v, 0.25), quantile(v, 0.5), quantile(v, 0.75)];
                (s, (cr.len(), q3(&cr), q3(&ql)))
            })
            .collect();
        groups.push((name.to_string(), runs, agg));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| CliError::Other(format!("{}: {e}", args.out.display())))?;
    let mut csv = String::from("group,step,runs,cr_q25,cr_median,cr_q75,ql_q25,ql_median,ql_q75\n");
    for (name, _, agg) in &groups {
        // RFC 4180 quoting: group names may hold commas.
        let name = if name.contains([',', '"']) { format!("\"{}\"", name.replace('"', "\"\"")) } else { name.clone() };
        for (s, (n, c, q)) in agg {
            csv += &format!("{name},{s},{n},{},{},{},{},{},{}\n", c[0], c[1], c[2], q[0], q[1], q[2]);
        }
    }
    crate::atomic::write(&args.out.join("curves.csv"), csv.as_bytes()).map_err(|e| CliError::Other(format!("{}: {e}", args.out.join("curves.csv").display())))?;
    let bands: Vec<crate::plot::Band> = groups
        .iter()
        .map(|(name, runs, agg)| crate::plot::Band {
            name: format!("{name} ({} runs)", runs.len()),
            x: agg.keys().map(|&s| s as f64).collect(),
            panels: vec![agg.values().map(|r| r.1).collect(), agg.values().map(|r| r.2).collect()],
        })
        .collect();
    let svg = args.out.join("curves.svg");
    crate::plot::bands(&svg, "Validation curves: median and IQR over runs", "environment steps", &["CR (validation days)", "QL (Mvar, validation days)"], &bands, &[args.ref_cr, args.ref_ql])
        .map_err(CliError::Other)?;
    for (name, runs, _) in &groups {
        eprintln!("{name}: {} runs", runs.len());
    }
    println!("{}", args.out.display());
    Ok(())
}
