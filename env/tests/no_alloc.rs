//! "No allocation in per-step hot paths", checked: a counting global allocator around
//! `VoltageEnv::step` (AC and LinDistFlow) and the power-flow solves.

use std::alloc::{GlobalAlloc, Layout, System};
use voltarena_env::safety::{SafetyConfig, SafetyKind, SafetyLayer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use voltarena_env::task::Backend;
use voltarena_env::{AcOptions, AcSolver, Injection, ResetOptions, Solution, Split, Task, VoltageEnv};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn env_steps_and_radial_solves_do_not_allocate() {
    for name in ["mapdn33", "mapdn322", "rural2_96"] {
        let task = Arc::new(Task::builtin(name).unwrap());
        for backend in [Backend::Ac, Backend::Lindistflow] {
            let mut env = VoltageEnv::with_backend(task.clone(), backend).unwrap();
            env.reset(1, &ResetOptions { split: Split::Test, ..Default::default() }).unwrap();
            let actions = vec![0.05; env.n_agents()];
            env.step(&actions).unwrap(); // first step may size internal buffers
            let before = ALLOCS.load(Ordering::Relaxed);
            for _ in 0..100 {
                let s = env.step(&actions).unwrap();
                assert!(!s.terminated && !s.truncated);
            }
            let n = ALLOCS.load(Ordering::Relaxed) - before;
            assert_eq!(n, 0, "{name} {backend:?}: {n} allocations in 100 steps");
        }
        // The safety layers: after one pass sizes their buffers, filtering the same steps again
        // allocates nothing, infeasible steps (slack) included; only the rare interior-point
        // fallback may.
        for kind in [SafetyKind::Projection, SafetyKind::Cbf] {
            let mut env = VoltageEnv::new(task.clone()).unwrap();
            let mut layer = SafetyLayer::new(&task, SafetyConfig { kind, ..Default::default() }).unwrap();
            let n = env.n_agents();
            let props: Vec<Vec<f64>> = (0..40).map(|j| (0..n).map(|k| (((k * 7 + j * 3) % 11) as f64 / 5.0) - 1.0).collect()).collect();
            let mut out = vec![0.0; n];
            let mut allocs = 0;
            let mut fallbacks = 0;
            for pass in 0..2 {
                env.reset(1, &ResetOptions { split: Split::Test, ..Default::default() }).unwrap();
                for p in &props {
                    let (before, fb) = (ALLOCS.load(Ordering::Relaxed), layer.fallbacks);
                    layer.filter(&env, p, &mut out);
                    if pass == 1 && layer.fallbacks == fb {
                        allocs += ALLOCS.load(Ordering::Relaxed) - before;
                    }
                    fallbacks += (pass == 1 && layer.fallbacks > fb) as usize;
                    env.step(&out).unwrap();
                }
            }
            assert_eq!(allocs, 0, "{name} {kind:?}: {allocs} allocations in 40 filtered steps");
            assert!(fallbacks <= 2, "{name} {kind:?}: {fallbacks} of 40 steps needed the interior-point fallback");
        }
        let mut solver = AcSolver::new(&task.network, AcOptions::default()).unwrap();
        let mut sol = Solution::new(task.network.n_bus());
        let (p, q) = task.network.injections();
        solver.solve(Injection { p_mw: &p, q_mvar: &q }, &mut sol).unwrap();
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..100 {
            solver.solve(Injection { p_mw: &p, q_mvar: &q }, &mut sol).unwrap();
        }
        assert_eq!(ALLOCS.load(Ordering::Relaxed) - before, 0, "{name}: AC solve allocates");
    }
}
