//! Provenance: what a result records about where it came from: the git commit (and whether the
//! work tree had uncommitted changes), the versions of voltarena, tch and libtorch, the time, and
//! the machine. `train` (run.json), `leaderboard` (leaderboard.json and the Slurm entry files) and
//! `compare` (results.json) all take it from here, so they record the same things the same way.
//!
//! The machine is recorded twice over: the `"machine"` string (`"{cores} cores, {arch}"`, read by
//! other tools, kept as it was) and a `"cpu"` object with the CPU model and the SIMD instruction
//! sets it offers. The latter matter for reproducing numbers: libtorch (and the compiler's
//! auto-vectorised loops) pick kernels by instruction set, and FMA or AVX-512 kernels round
//! differently from SSE ones, so two machines with the same core count and architecture can train
//! different policies.

use serde::{Deserialize, Serialize};

/// The voltarena version (the workspace's).
pub const VOLTARENA_VERSION: &str = env!("CARGO_PKG_VERSION");
pub use voltarena_agents::{LIBTORCH_VERSION, TCH_VERSION};

/// The versions of the three pieces that decide the numbers, as leaderboard.json's `"versions"`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Versions {
    pub voltarena: &'static str,
    pub tch: &'static str,
    pub libtorch: &'static str,
}

pub const VERSIONS: Versions = Versions { voltarena: VOLTARENA_VERSION, tch: TCH_VERSION, libtorch: LIBTORCH_VERSION };

/// `git ARGS` in the current directory: its trimmed output, or None where git is missing or fails
/// (not a checkout).
fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit checked out in the current directory (`git rev-parse HEAD`), if it is a git checkout.
pub fn git_commit() -> Option<String> {
    git(&["rev-parse", "HEAD"])
}

/// Whether the work tree has uncommitted changes (false where it is not a git checkout).
pub fn git_dirty() -> bool {
    git(&["status", "--porcelain"]).map(|s| !s.is_empty()).unwrap_or(false)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The instruction-set flags recorded, in this order, where the CPU has them: those that change
/// which floating-point kernels run (x86 names as in /proc/cpuinfo `flags`, Arm as in `Features`).
pub const SIMD_FLAGS: &[&str] = &[
    // x86-64
    "sse2", "ssse3", "sse4_1", "sse4_2", "avx", "f16c", "fma", "avx2", "avx_vnni", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
    // aarch64
    "asimd", "asimdhp", "asimddp", "bf16", "i8mm", "sve", "sve2", "sme",
];

/// The CPU: its model name and which of [`SIMD_FLAGS`] it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// `model name` of /proc/cpuinfo; "unknown" where there is none (not Linux, some Arm boards).
    pub model: String,
    pub flags: Vec<String>,
}

impl Cpu {
    /// This machine's CPU (Linux: from /proc/cpuinfo; elsewhere "unknown" and no flags).
    pub fn detect() -> Cpu {
        let text = if cfg!(target_os = "linux") { std::fs::read_to_string("/proc/cpuinfo").ok() } else { None };
        text.map(|t| Cpu::from_cpuinfo(&t)).unwrap_or_else(|| Cpu { model: "unknown".into(), flags: Vec::new() })
    }

    /// Reads the first processor's `model name` and `flags` (x86) or `Features` (Arm) lines of a
    /// /proc/cpuinfo text.
    pub fn from_cpuinfo(text: &str) -> Cpu {
        let field = |key: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
        };
        let model = field("model name").filter(|m| !m.is_empty()).unwrap_or_else(|| "unknown".into());
        let have = field("flags").or_else(|| field("Features")).unwrap_or_default();
        let have: Vec<&str> = have.split_whitespace().collect();
        let flags = SIMD_FLAGS.iter().filter(|f| have.contains(f)).map(|f| f.to_string()).collect();
        Cpu { model, flags }
    }
}

/// The machine a result was computed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// Available parallelism (cores the process may use).
    pub cores: usize,
    /// `std::env::consts::ARCH`, e.g. "x86_64".
    pub arch: String,
    pub cpu: Cpu,
}

impl Machine {
    pub fn detect() -> Machine {
        Machine { cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), arch: std::env::consts::ARCH.to_string(), cpu: Cpu::detect() }
    }

    /// The `"machine"` string of run.json and leaderboard.json: `"{cores} cores, {arch}"`.
    pub fn label(&self) -> String {
        format!("{} cores, {}", self.cores, self.arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_model_and_simd_flags_in_a_fixed_order() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\nflags\t\t: fpu sse sse2 avx2 fma sse4_2 avx avx512f avx512_vnni\n\nprocessor\t: 1\nmodel name\t: other\nflags\t\t: sse2\n";
        let c = Cpu::from_cpuinfo(x86);
        assert_eq!(c.model, "AMD EPYC 9654 96-Core Processor");
        assert_eq!(c.flags, ["sse2", "sse4_2", "avx", "fma", "avx2", "avx512f", "avx512_vnni"]);
        let arm = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes sve sve2\nCPU part\t: 0xd40\n";
        assert_eq!(Cpu::from_cpuinfo(arm), Cpu { model: "unknown".into(), flags: vec!["asimd".into(), "sve".into(), "sve2".into()] });
        let m = Machine { cores: 2, arch: "x86_64".into(), cpu: c };
        assert_eq!(m.label(), "2 cores, x86_64");
        let json = serde_json::to_value(&m.cpu).unwrap();
        assert_eq!(json["model"], "AMD EPYC 9654 96-Core Processor");
        assert_eq!(serde_json::from_value::<Cpu>(json).unwrap(), m.cpu);
    }
}

/// FNV-1a 64-bit of a text, as 16 hex digits: a stable content hash for provenance (suite and
/// training-config hashes, variant output folders).
pub fn fnv(text: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}
