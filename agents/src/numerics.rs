//! CPU-independent numerics for libtorch.
//!
//! libtorch picks its CPU kernels by instruction set at run time (ATen's `ATEN_CPU_CAPABILITY`:
//! default / avx2 / avx512), and so do the BLAS (MKL) and oneDNN inside it. Different kernels sum in
//! different orders, so the same training run gives different numbers on a CPU with AVX-512 than on
//! one with AVX2 only — and training amplifies a last-bit difference into a different policy.
//! [`pin`] fixes every one of these choices before the first tensor operation, inside the program
//! (the user's environment is overridden): on any x86-64 CPU with AVX2 and FMA, ATen's AVX2 kernels,
//! MKL's conditional numerical reproducibility on its *compatible* code path in strict mode, and
//! oneDNN limited to AVX2. CPUs without AVX2 get the portable ATen kernels (and other numbers); on
//! other architectures nothing is pinned. The cost is measured in docs/BENCHMARKS.md.
//!
//! Why MKL's compatible path and not its AVX2 one: MKL also picks code by CPU *vendor*. Measured
//! with an Intel CPU model under QEMU against this AMD EPYC, with `MKL_CBWR=AVX2,STRICT` the
//! matrix–vector products (a linear layer with one output) and the vector-math `exp`, `log` and
//! `sqrt` differ in their last bits; with `COMPATIBLE,STRICT` all but `sqrt` agree, and `sqrt` is
//! kept out of MKL by computing Adam in Rust ([`crate::adam`]). Training runs then give the same
//! metrics.csv on an AVX-512 AMD EPYC, an AVX2-only one (EPYC-Rome model) and an Intel Haswell
//! model (docs/BENCHMARKS.md).
//!
//! `VOLTARENA_NUMERICS=native` (set by the user) skips the pinning: faster on AVX-512 machines,
//! results then depend on the CPU.

use serde::Serialize;
use std::sync::OnceLock;

/// The modes in force, recorded with every run and leaderboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Numerics {
    /// `"avx2"`, `"portable"`, `"native"` (not pinned, on request) or `"unpinned"` (architecture
    /// without pinning).
    pub mode: &'static str,
    /// The variables set for libtorch, MKL and oneDNN (name, value).
    pub settings: Vec<(&'static str, &'static str)>,
}

/// Pins libtorch's CPU numerics (see the module docs); idempotent. Call it before the first tensor
/// operation, ideally first thing in `main` (it sets environment variables); the agents crate
/// also calls it before building any network.
pub fn pin() -> &'static Numerics {
    static PINNED: OnceLock<Numerics> = OnceLock::new();
    PINNED.get_or_init(|| {
        if std::env::var("VOLTARENA_NUMERICS").map(|v| v == "native").unwrap_or(false) {
            return Numerics { mode: "native", settings: Vec::new() };
        }
        let (mode, settings): (&'static str, Vec<(&'static str, &'static str)>) = if !cfg!(target_arch = "x86_64") {
            ("unpinned", Vec::new())
        } else if has_avx2_fma() {
            ("avx2", vec![("ATEN_CPU_CAPABILITY", "avx2"), ("MKL_CBWR", "COMPATIBLE,STRICT"), ("MKL_ENABLE_INSTRUCTIONS", "AVX2"), ("ONEDNN_MAX_CPU_ISA", "AVX2"), ("DNNL_MAX_CPU_ISA", "AVX2")])
        } else {
            ("portable", vec![("ATEN_CPU_CAPABILITY", "default"), ("MKL_CBWR", "COMPATIBLE,STRICT"), ("MKL_ENABLE_INSTRUCTIONS", "SSE4_2"), ("ONEDNN_MAX_CPU_ISA", "SSE41"), ("DNNL_MAX_CPU_ISA", "SSE41")])
        };
        for (k, v) in &settings {
            // Before any libtorch kernel runs: libtorch, MKL and oneDNN read these once, lazily.
            std::env::set_var(k, v);
        }
        Numerics { mode, settings }
    })
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2_fma() -> bool {
    false
}
