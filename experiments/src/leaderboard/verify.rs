//! `--verify DIR`: re-runs the suite stored in `DIR/leaderboard.json` (training its RL entries again
//! in a temporary folder, or reopening the run directories they reuse) and checks that every entry
//! has the same status and the same per-seed numbers: the summary and provenance are not compared,
//! the numbers they come from are. It fails naming the first entry that differs.

use super::report::EntryOut;
use super::scheduler::run_suite;
use super::suite::{absent_nulls, Suite};
use crate::CliError;
use std::path::Path;

pub fn verify(dir: &Path, jobs: usize) -> Result<(), CliError> {
    let path = dir.join("leaderboard.json");
    let text = std::fs::read_to_string(&path).map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?;
    let stored: serde_json::Value = serde_json::from_str(&text).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    let suite: Suite = serde_json::from_value(absent_nulls(stored["suite"].clone())).map_err(|e| CliError::Input(format!("{}: suite: {e}", path.display())))?;
    let old: Vec<EntryOut> = serde_json::from_value(stored["entries"].clone()).map_err(|e| CliError::Input(format!("{}: entries: {e}", path.display())))?;
    let tmp = std::env::temp_dir().join(format!("voltarena-verify-{}", std::process::id()));
    let new = run_suite(&suite, &tmp, jobs, None)?;
    let _ = std::fs::remove_dir_all(&tmp);
    for (a, b) in old.iter().zip(&new) {
        if a.per_seed != b.per_seed || a.status != b.status {
            return Err(CliError::Other(format!("verify: entry {} / {} differs from {}", a.task, a.controller, path.display())));
        }
    }
    if old.len() != new.len() {
        return Err(CliError::Other(format!("verify: {} entries stored, {} re-run", old.len(), new.len())));
    }
    println!("verified: {} entries identical to {}", new.len(), path.display());
    Ok(())
}
