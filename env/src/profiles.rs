//! SimBench 2016 load and PV profiles, their interpolation to the task resolution, and the fixed
//! train / validation / test split by day.
//!
//! The files hold 35 136 rows (366 days × 96 quarter hours); step k is 2016-01-01 00:00 CET +
//! 15 min·k. Values are dimensionless factors of an element's nominal P (or Q). A task at a finer
//! resolution (3 min, 6 s) reads them linearly interpolated between quarter hours.
//!
//! **Split by day** (fixed, documented in `docs/ENVIRONMENT.md`): the year is cut into 14-day
//! blocks; in each block days 0–9 are *train*, days 10–11 *validation*, days 12–13 *test*. The two
//! days left at the end of the year (364, 365) are train. That gives 262 / 52 / 52 days, spread
//! over all seasons. An episode lies entirely inside one contiguous run of days of its split.

use flate2::read::GzDecoder;
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Seconds between two profile rows.
pub const ROW_SECONDS: u32 = 900;
/// Days in the profile year (2016 is a leap year).
pub const DAYS: usize = 366;
/// Rows per day.
pub const ROWS_PER_DAY: usize = 96;

/// Profile columns by name, each a full year of factors (`Profiles::default()` holds none; add
/// files with [`Profiles::add_csv`]).
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    names: Vec<String>,
    index: HashMap<String, usize>,
    columns: Vec<Vec<f64>>,
    rows: usize,
}

/// A problem with a profile file: which file, which line, what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ProfileError {}

impl Profiles {
    /// Reads `simbench2016_load_15min.csv.gz` and `simbench2016_pv_15min.csv.gz` from `dir`.
    pub fn load_dir(dir: &Path) -> Result<Profiles, ProfileError> {
        let mut p = Profiles { names: Vec::new(), index: HashMap::new(), columns: Vec::new(), rows: 0 };
        for file in ["simbench2016_load_15min.csv.gz", "simbench2016_pv_15min.csv.gz"] {
            let path = dir.join(file);
            let f = std::fs::File::open(&path)
                .map_err(|e| ProfileError { file: path.clone(), line: None, message: format!("cannot open: {e}") })?;
            p.add_csv(GzDecoder::new(f), &path)?;
        }
        Ok(p)
    }

    /// Adds the columns of one CSV (`step`, then one column per profile) read from `reader`.
    pub fn add_csv(&mut self, reader: impl Read, path: &Path) -> Result<(), ProfileError> {
        let err = |line: Option<usize>, message: String| ProfileError { file: path.to_path_buf(), line, message };
        let mut lines = BufReader::new(reader).lines();
        let header = match lines.next() {
            Some(Ok(h)) => h,
            Some(Err(e)) => return Err(err(Some(1), format!("cannot read: {e}"))),
            None => return Err(err(None, "empty file; expected a header 'step,<profile>,...'".into())),
        };
        let names: Vec<String> = header.trim().split(',').map(|s| s.trim().to_string()).collect();
        if names.first().map(String::as_str) != Some("step") || names.len() < 2 {
            return Err(err(Some(1), format!("expected a header 'step,<profile>,...', found '{}'", header.trim())));
        }
        let first = self.columns.len();
        for name in &names[1..] {
            if self.index.contains_key(name) {
                return Err(err(Some(1), format!("profile '{name}' appears twice")));
            }
            self.index.insert(name.clone(), self.columns.len());
            self.names.push(name.clone());
            self.columns.push(Vec::with_capacity(DAYS * ROWS_PER_DAY));
        }
        let mut rows = 0usize;
        for (i, line) in lines.enumerate() {
            let lineno = i + 2;
            let line = line.map_err(|e| err(Some(lineno), format!("cannot read: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let mut fields = line.split(',');
            let step = fields.next().unwrap_or("").trim();
            if step.parse::<usize>().ok() != Some(rows) {
                return Err(err(Some(lineno), format!("column 'step': expected {rows}, found '{step}'")));
            }
            let mut count = 0;
            for (k, f) in fields.enumerate() {
                let col = first + k;
                if col >= self.columns.len() {
                    return Err(err(Some(lineno), format!("expected {} columns, found more", names.len())));
                }
                let v: f64 = f.trim().parse().map_err(|_| {
                    err(Some(lineno), format!("column '{}': expected a number, found '{}'", names[k + 1], f.trim()))
                })?;
                if !v.is_finite() {
                    return Err(err(Some(lineno), format!("column '{}': expected a finite number, found {v}", names[k + 1])));
                }
                self.columns[col].push(v);
                count += 1;
            }
            if count != names.len() - 1 {
                return Err(err(Some(lineno), format!("expected {} columns, found {}", names.len(), count + 1)));
            }
            rows += 1;
        }
        if self.rows != 0 && rows != self.rows {
            return Err(err(None, format!("{rows} rows, but the other profile file has {}", self.rows)));
        }
        if rows < ROWS_PER_DAY {
            return Err(err(None, format!("{rows} rows; expected at least one day ({ROWS_PER_DAY})")));
        }
        self.rows = rows;
        Ok(())
    }

    /// Column index of a profile name (e.g. `H0-A_pload`, `PV3`).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// All profile names, in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of rows (quarter hours).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The raw quarter-hour factors of a column.
    pub fn values(&self, col: usize) -> &[f64] {
        &self.columns[col]
    }

    /// The factor of column `col` at `t_s` seconds after the first row, linearly interpolated
    /// (held constant after the last row).
    #[inline]
    pub fn at(&self, col: usize, t_s: f64) -> f64 {
        let (i, a) = self.position(t_s);
        self.at_position(col, i, a)
    }

    /// Row index and interpolation weight of a time (s), shared by all columns at that time.
    #[inline]
    pub fn position(&self, t_s: f64) -> (usize, f64) {
        let x = (t_s / ROW_SECONDS as f64).max(0.0);
        let i = x.floor() as usize;
        if i + 1 >= self.rows {
            (self.rows.saturating_sub(2), 1.0)
        } else {
            (i, x - i as f64)
        }
    }

    /// The factor of column `col` at a [`Self::position`].
    #[inline]
    pub fn at_position(&self, col: usize, i: usize, a: f64) -> f64 {
        let c = &self.columns[col];
        c[i] + a * (c[i + 1] - c[i])
    }
}

/// Which part of the year an episode comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    /// The split a day of the year (0 = 2016-01-01) belongs to.
    pub fn of_day(day: usize) -> Split {
        if day >= 364 {
            return Split::Train;
        }
        match day % 14 {
            0..=9 => Split::Train,
            10 | 11 => Split::Val,
            _ => Split::Test,
        }
    }

    /// Contiguous runs of days `[first, last]` (inclusive) of this split within `days` days.
    pub fn runs(self, days: usize) -> Vec<(usize, usize)> {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for d in 0..days {
            if Split::of_day(d) == self {
                match runs.last_mut() {
                    Some(r) if r.1 + 1 == d => r.1 = d,
                    _ => runs.push((d, d)),
                }
            }
        }
        runs
    }
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Split, String> {
        match s {
            "train" => Ok(Split::Train),
            "val" | "validation" => Ok(Split::Val),
            "test" => Ok(Split::Test),
            _ => Err(format!("unknown split '{s}'; expected train, val or test")),
        }
    }
}

/// Episode start times (in task steps of `resolution_s`) such that `steps` further steps stay
/// inside one contiguous run of the split's days: a list of inclusive ranges. With `window`
/// (seconds of the local day, inclusive), only starts whose time of day lies in it.
pub fn start_ranges(split: Split, days: usize, resolution_s: u32, steps: usize, window: Option<(u32, u32)>) -> Vec<(usize, usize)> {
    let per_day = 86_400 / resolution_s as usize;
    let mut out = Vec::new();
    for (d0, d1) in split.runs(days) {
        let first = d0 * per_day;
        let end = (d1 + 1) * per_day; // exclusive, in steps
        // The last sample used is start + steps, which must be < end.
        if first + steps >= end {
            continue;
        }
        let last = end - 1 - steps;
        match window {
            None => out.push((first, last)),
            Some((w0, w1)) => {
                let (a, b) = (w0 as usize / resolution_s as usize, w1 as usize / resolution_s as usize);
                for d in d0..=d1 {
                    let (lo, hi) = (d * per_day + a, (d * per_day + b).min(last));
                    if lo <= hi {
                        out.push((lo, hi));
                    }
                }
            }
        }
    }
    out
}

/// "HH:MM" → seconds of the day.
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.trim().parse().ok()?, m.trim().parse().ok()?);
    (h < 24 && m < 60).then_some(h * 3600 + m * 60)
}
