//! Config files: TOML with `--set key.path=value` overrides and errors that name file and line.

use crate::CliError;
use std::path::Path;

/// Applies `key.path=value` overrides to a parsed TOML document.
pub fn apply_sets(doc: &mut toml::Value, sets: &[String]) -> Result<(), String> {
    for s in sets {
        let (key, raw) = s.split_once('=').ok_or_else(|| format!("--set {s}: expected KEY=VALUE"))?;
        let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
            Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.to_string())),
            Err(_) => toml::Value::String(raw.to_string()),
        };
        let mut node = &mut *doc;
        let parts: Vec<&str> = key.trim().split('.').collect();
        for (k, part) in parts.iter().enumerate() {
            let table = node.as_table_mut().ok_or_else(|| format!("--set {s}: '{}' is not a table", parts[..k].join(".")))?;
            if k + 1 == parts.len() {
                table.insert(part.to_string(), value.clone());
                break;
            }
            node = table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        }
    }
    Ok(())
}


/// Reads a TOML file into a document, with `--set` overrides applied.
pub fn read_toml(path: &Path, sets: &[String]) -> Result<toml::Value, CliError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Input(format!("cannot read {source}: {e}")))?;
    let mut doc: toml::Value = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        CliError::Input(format!("{source}{}: {}", line.map(|l| format!(":{l}")).unwrap_or_default(), e.message()))
    })?;
    apply_sets(&mut doc, sets).map_err(CliError::Input)?;
    Ok(doc)
}

/// The output folder of a command that writes `results/<config name>/` by default: with `--set`
/// overrides and no `--out`, a variant folder `results/<config name>-set-<hash of the overrides>/`,
/// so that a variant run never replaces the published results of the config itself.
pub fn default_out(config: &Path, sets: &[String], fallback: &str) -> std::path::PathBuf {
    let stem = config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| fallback.into());
    if sets.is_empty() {
        return std::path::PathBuf::from("results").join(stem);
    }
    std::path::PathBuf::from("results").join(format!("{stem}-set-{}", &crate::provenance::fnv(&sets.join("\n"))[..8]))
}
