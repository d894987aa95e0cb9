//! `--verify DIR`: re-runs the suite stored in `DIR/leaderboard.json` (training its RL entries again
//! in a temporary folder, or reopening the run directories they reuse) and checks that every entry
//! has the same status and the same per-seed numbers: the summary and provenance are not compared,
//! the numbers they come from are. It fails naming the first entry that differs, and says where the
//! machine or the numerics modes differ from the ones the leaderboard was made with (a different
//! libtorch kernel choice changes every RL number; `voltarena_agents::numerics`).

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
            return Err(CliError::Other(format!("verify: entry {} / {} differs from {}{}", a.task, a.controller, path.display(), machine_difference(&stored))));
        }
    }
    if old.len() != new.len() {
        return Err(CliError::Other(format!("verify: {} entries stored, {} re-run", old.len(), new.len())));
    }
    println!("verified: {} entries identical to {}", new.len(), path.display());
    Ok(())
}

/// What differs between the stored leaderboard's machine and numerics modes and this one's, as a
/// sentence to append to a mismatch (empty when nothing recorded differs).
fn machine_difference(stored: &serde_json::Value) -> String {
    let here = crate::provenance::Machine::detect();
    let mut diffs = Vec::new();
    let numerics = serde_json::to_value(voltarena_agents::numerics::pin()).unwrap_or_default();
    match stored.get("numerics") {
        None => diffs.push(format!("it records no numerics modes (made before they were pinned), here they are {}", numerics["mode"])),
        Some(n) if n != &numerics => diffs.push(format!("numerics modes {} there, {} here", n["mode"], numerics["mode"])),
        _ => {}
    }
    if let Some(cpu) = stored.get("cpu") {
        let cpu_here = serde_json::to_value(&here.cpu).unwrap_or_default();
        if cpu != &cpu_here {
            diffs.push(format!("CPU {} {} there, {} {} here", cpu["model"], cpu["flags"], cpu_here["model"], cpu_here["flags"]));
        }
    } else {
        diffs.push(format!("it records no CPU model ({} there), this is {}", stored["machine"], here.cpu.model));
    }
    if diffs.is_empty() {
        String::new()
    } else {
        format!(" (machine differences: {})", diffs.join("; "))
    }
}
