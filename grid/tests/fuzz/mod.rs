//! A small mutation fuzzer for the readers' tests (shared by the grid, env and experiments test
//! suites via `#[path]`): seed inputs (the shipped files) are mutated — bit flips, special bytes,
//! deleted / duplicated ranges, dictionary tokens (NaN, inf, huge and negative numbers, brackets),
//! numbers replaced, truncation — and each result is given to a reader inside `catch_unwind`. A
//! reader may refuse an input with an error; it must never panic, nor take seconds on a small input.
//! Inputs that do are written to `target/fuzz-failures/` and fail the test.
//!
//! Budget: `VOLTARENA_FUZZ_SECS` seconds per reader (the long runs recorded in docs), else
//! `VOLTARENA_FUZZ_ITERS` inputs (default 1500, a few seconds: the fixed-budget run of the suite).
//! Deterministic for a given budget in inputs (SplitMix64 seeded per reader).

#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

pub struct Mutator {
    state: u64,
}

const SPECIAL: &[u8] = b"\0\xff\"'[]{},;=\n\r\t-+.eE%#:0129 ";
const TOKENS: &[&str] = &[
    "NaN", "nan", "inf", "-inf", "1e309", "-1e309", "1e-320", "0", "-0", "-1", "-999999", "99999999999999999999",
    "18446744073709551616", "4294967296", "1e12", "[]", "{}", "[[", "]]", "null", "true", "\"\"", ";", "%", "]",
    "[", "\n", "mpc.bus = [", "mpc.branch = [", "];", "= ", "\"x\"", ",,", "..", "0x10", "1.5", "-1.5",
];

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator { state: seed ^ 0x9E37_79B9_7F4A_7C15 }
    }

    pub fn next(&mut self) -> u64 {
        // SplitMix64.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// One mutant of `seed`: 1–6 mutations.
    pub fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..1 + self.below(6) {
            let len = v.len();
            match self.below(8) {
                0 if len > 0 => {
                    let i = self.below(len);
                    v[i] ^= 1 << self.below(8);
                }
                1 if len > 0 => {
                    let i = self.below(len);
                    v[i] = SPECIAL[self.below(SPECIAL.len())];
                }
                2 if len > 0 => {
                    let i = self.below(len);
                    let n = 1 + self.below(64.min(len - i));
                    v.drain(i..i + n);
                }
                3 if len > 0 => {
                    let i = self.below(len);
                    let n = 1 + self.below(256.min(len - i));
                    let chunk = v[i..i + n].to_vec();
                    let at = self.below(len + 1);
                    v.splice(at..at, chunk);
                }
                4 => {
                    let at = self.below(len + 1);
                    let t = TOKENS[self.below(TOKENS.len())].as_bytes();
                    v.splice(at..at, t.iter().copied());
                }
                5 if len > 0 => {
                    // Replace a number (a run of digits, signs, dots) by a token.
                    let i = self.below(len);
                    if let Some(start) = (i..len).find(|&k| v[k].is_ascii_digit()) {
                        let end = (start..len).find(|&k| !(v[k].is_ascii_digit() || v[k] == b'.' || v[k] == b'e' || v[k] == b'-')).unwrap_or(len);
                        let t = TOKENS[self.below(TOKENS.len())].as_bytes();
                        v.splice(start..end, t.iter().copied());
                    }
                }
                6 if len > 0 => {
                    let at = self.below(len);
                    v.truncate(at);
                }
                _ if len > 0 => {
                    // Swap two lines.
                    let lines: Vec<usize> = v.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(k, _)| k).collect();
                    if lines.len() >= 3 {
                        let a = self.below(lines.len() - 1);
                        let (s, e) = (lines[a] + 1, lines[a + 1] + 1);
                        let line = v[s..e].to_vec();
                        v.drain(s..e);
                        let b = self.below(v.len() + 1);
                        v.splice(b..b, line);
                    }
                }
                _ => {}
            }
        }
        v
    }
}

/// What a fuzz run tried.
#[derive(Debug)]
pub struct Report {
    pub name: String,
    pub inputs: usize,
    pub accepted: usize,
    pub panics: Vec<String>,
    pub seconds: f64,
}

/// Fuzzes `reader` (true: input accepted, false: refused with an error) from `seeds`.
pub fn fuzz(name: &str, seeds: &[Vec<u8>], mut reader: impl FnMut(&[u8]) -> bool) -> Report {
    let secs: Option<f64> = std::env::var("VOLTARENA_FUZZ_SECS").ok().and_then(|s| s.parse().ok());
    let iters: usize = std::env::var("VOLTARENA_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(1500);
    let mut m = Mutator::new(name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    let t0 = Instant::now();
    let deadline = secs.map(|s| t0 + Duration::from_secs_f64(s));
    let (mut inputs, mut accepted, mut panics) = (0usize, 0usize, Vec::new());
    // Quiet panics: the message is recorded, not printed per input.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // Accepted mutants join the corpus, so mutations compound.
    let mut corpus: Vec<Vec<u8>> = seeds.to_vec();
    loop {
        if match deadline {
            Some(d) => Instant::now() >= d,
            None => inputs >= iters,
        } {
            break;
        }
        let base = &corpus[m.below(corpus.len())];
        let input = m.mutate(base);
        inputs += 1;
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| reader(&input)));
        if started.elapsed() > Duration::from_secs(5) {
            // A reader that takes seconds on a small input (a loop bounded by an unchecked value).
            panics.push(format!("slow input: {:.1} s ({})", started.elapsed().as_secs_f64(), save(name, panics.len(), &input).display()));
        }
        match result {
            Ok(true) => {
                accepted += 1;
                if corpus.len() < 256 {
                    corpus.push(input);
                }
            }
            Ok(false) => {}
            Err(e) => {
                let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                panics.push(format!("{msg} (input: {})", save(name, panics.len(), &input).display()));
                if panics.len() >= 5 {
                    break;
                }
            }
        }
    }
    std::panic::set_hook(hook);
    let r = Report { name: name.into(), inputs, accepted, panics, seconds: t0.elapsed().as_secs_f64() };
    println!("fuzz {}: {} inputs in {:.1} s, {} accepted, {} panics", r.name, r.inputs, r.seconds, r.accepted, r.panics.len());
    r
}

/// Writes a failing input to `target/fuzz-failures/`.
fn save(name: &str, k: usize, input: &[u8]) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("{name}-{k}.bin"));
    let _ = std::fs::write(&file, input);
    file
}

/// Fails the test on any panic (or input that takes over 5 s).
pub fn check(r: Report) {
    assert!(r.panics.is_empty(), "fuzz {}: {} panic(s): {:#?}", r.name, r.panics.len(), r.panics);
    assert!(r.inputs > 0);
}
