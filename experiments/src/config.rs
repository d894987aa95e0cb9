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

/// An OFO-family controller configured in a `voltarena baseline` config file (`[controllers]`).
pub fn ofo_from_config(path: &Path, name: &str, task: &voltarena_env::Task) -> Result<Box<dyn voltarena_env::Controller>, OfoLoadError> {
    let doc = read_toml(path, &[]).map_err(|e| OfoLoadError::Config(match e {
        CliError::Input(m) | CliError::Other(m) => m,
    }))?;
    let set: voltarena_baselines::suite::ControllerSet = doc
        .get("controllers")
        .cloned()
        .ok_or_else(|| OfoLoadError::Config(format!("{}: no [controllers]", path.display())))?
        .try_into()
        .map_err(|e: toml::de::Error| OfoLoadError::Config(format!("{}: {}", path.display(), e.message())))?;
    set.build(name, task, &voltarena_baselines::suite::Faults::default()).map_err(|e| OfoLoadError::NotApplicable(e.to_string()))
}

/// Why an OFO controller could not be loaded: a bad config, or a task it does not apply to.
pub enum OfoLoadError {
    Config(String),
    NotApplicable(String),
}

/// The droop used when an entry gives no settings: the default curve with a first-order lag of 0.1.
pub fn default_droop() -> voltarena_baselines::suite::DroopSpec {
    voltarena_baselines::suite::DroopSpec { preset: None, curve: None, q_frac: None, smoothing: Some(0.1) }
}
