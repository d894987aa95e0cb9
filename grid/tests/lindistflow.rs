//! LinDistFlow sensitivities: the dense R and X against their definition (sums over the shared
//! path edges, computed here naively from the branch list), the O(n) tree products against the
//! dense products, and the sweep solve against v = v₀ + (Rp + Xq)/v₀.

use std::collections::HashSet;
use std::path::PathBuf;
use voltarena_grid::{Injection, LinDistFlow, LinDistFlowForm, Network, Solution};

fn network(file: &str) -> Network {
    Network::from_matpower_file(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/networks").join(file)).unwrap()
}

/// Deterministic pseudo-random numbers in [-1, 1) (64-bit LCG); no dependency needed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// Edges (as branch indices) on the path slack → bus, found by a plain DFS over the branch list.
fn path_edges(net: &Network, bus: usize) -> HashSet<usize> {
    fn dfs(net: &Network, at: usize, goal: usize, seen: &mut Vec<bool>, path: &mut Vec<usize>) -> bool {
        if at == goal {
            return true;
        }
        seen[at] = true;
        for (k, br) in net.branches.iter().enumerate() {
            if !br.in_service {
                continue;
            }
            let next = if br.from == at { br.to } else if br.to == at { br.from } else { continue };
            if !seen[next] {
                path.push(k);
                if dfs(net, next, goal, seen, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = Vec::new();
    assert!(dfs(net, net.slack, bus, &mut vec![false; net.n_bus()], &mut path));
    path.into_iter().collect()
}

const NETS: [&str; 4] = ["case33bw.m", "lv_rural2_96.m", "mapdn_case141.m", "sb_1_LV_rural1__0_sw.m"];

#[test]
fn dense_r_x_equal_shared_path_sums() {
    for file in NETS {
        let net = network(file);
        let ldf = LinDistFlow::new(&net, LinDistFlowForm::Linear).unwrap();
        let sens = ldf.sensitivities();
        let paths: Vec<HashSet<usize>> = sens.buses.iter().map(|&b| path_edges(&net, b)).collect();
        for a in 0..sens.buses.len() {
            for b in 0..sens.buses.len() {
                let shared = paths[a].intersection(&paths[b]);
                let (mut r, mut x) = (0.0, 0.0);
                for &k in shared {
                    // Series impedance of the branch (transformer: its series part, ratio ignored).
                    r += net.branches[k].r;
                    x += net.branches[k].x;
                }
                assert!((sens.r[(a, b)] - r).abs() < 1e-12, "{file} R[{a},{b}]");
                assert!((sens.x[(a, b)] - x).abs() < 1e-12, "{file} X[{a},{b}]");
            }
        }
    }
}

#[test]
fn tree_products_equal_dense_products() {
    let mut rng = Lcg(7);
    for file in NETS {
        let net = network(file);
        let n = net.n_bus();
        let ldf = LinDistFlow::new(&net, LinDistFlowForm::Linear).unwrap();
        let sens = ldf.sensitivities();
        let m = sens.buses.len();
        for _ in 0..5 {
            let d: Vec<f64> = (0..n).map(|_| rng.next()).collect();
            let mut xd = vec![0.0; n];
            let mut rd = vec![0.0; n];
            ldf.x_times(&d, &mut xd);
            ldf.r_times(&d, &mut rd);
            let scale = sens.x.norm_max() * m as f64;
            for (a, &i) in sens.buses.iter().enumerate() {
                let dense_x: f64 = (0..m).map(|b| sens.x[(a, b)] * d[sens.buses[b]]).sum();
                let dense_r: f64 = (0..m).map(|b| sens.r[(a, b)] * d[sens.buses[b]]).sum();
                assert!((xd[i] - dense_x).abs() <= 1e-13 * scale, "{file} X·d at {i}");
                assert!((rd[i] - dense_r).abs() <= 1e-13 * scale.max(sens.r.norm_max() * m as f64), "{file} R·d at {i}");
            }
            assert_eq!(xd[net.slack], 0.0);
            // X⁻¹ (X d) = d: the one-hop product inverts the dense matrix.
            let mut back = vec![0.0; n];
            ldf.x_inv_times(&xd, &mut back).unwrap();
            for &i in &sens.buses {
                assert!((back[i] - d[i]).abs() < 1e-8, "{file} X⁻¹X d at {i}: {} vs {}", back[i], d[i]);
            }
            // And X (X⁻¹ y) = y, with the dense X.
            let mut xinv = vec![0.0; n];
            ldf.x_inv_times(&d, &mut xinv).unwrap();
            for (a, &i) in sens.buses.iter().enumerate() {
                let y: f64 = (0..m).map(|b| sens.x[(a, b)] * xinv[sens.buses[b]]).sum();
                assert!((y - d[i]).abs() < 1e-8, "{file} X X⁻¹ y at {i}");
            }
        }
    }
}

#[test]
fn sweep_solve_equals_the_matrix_form() {
    let mut rng = Lcg(11);
    for file in NETS {
        let net = network(file);
        let n = net.n_bus();
        let p: Vec<f64> = (0..n).map(|_| 0.05 * rng.next() * net.base_mva / 10.0).collect();
        let q: Vec<f64> = (0..n).map(|_| 0.05 * rng.next() * net.base_mva / 10.0).collect();
        for form in [LinDistFlowForm::Linear, LinDistFlowForm::Squared] {
            let mut ldf = LinDistFlow::new(&net, form).unwrap();
            let sens = ldf.sensitivities();
            let v0 = ldf.v0();
            let mut sol = Solution::new(n);
            ldf.solve(Injection { p_mw: &p, q_mvar: &q }, &mut sol).unwrap();
            let m = sens.buses.len();
            for (a, &i) in sens.buses.iter().enumerate() {
                let rp_xq: f64 = (0..m)
                    .map(|b| {
                        let j = sens.buses[b];
                        (sens.r[(a, b)] * p[j] + sens.x[(a, b)] * q[j]) / net.base_mva
                    })
                    .sum();
                let expect = match form {
                    LinDistFlowForm::Linear => v0 + rp_xq / v0,
                    LinDistFlowForm::Squared => (v0 * v0 + 2.0 * rp_xq).sqrt(),
                };
                assert!((sol.vm_pu[i] - expect).abs() < 1e-12, "{file} {form:?} bus {i}");
            }
        }
    }
}

#[test]
fn meshed_networks_are_refused_not_mishandled() {
    let mut net = network("case33bw.m");
    let mut tie = net.branches[10].clone();
    tie.from = 7;
    tie.to = 20;
    net.branches.push(tie);
    net.validate().unwrap();
    assert!(net.tree().is_none());
    assert!(LinDistFlow::new(&net, LinDistFlowForm::Linear).is_err());
    // The AC solver falls back to sparse Newton and still converges on the meshed case.
    let mut ac = voltarena_grid::AcSolver::new(&net, Default::default()).unwrap();
    assert_eq!(ac.algorithm(), voltarena_grid::Algorithm::Newton);
    let (p, q) = net.injections();
    let mut sol = Solution::new(net.n_bus());
    let info = ac.solve(Injection { p_mw: &p, q_mvar: &q }, &mut sol).unwrap();
    assert!(info.iterations <= 5);
    // Closing a tie raises the weakest voltage of the radial case (0.913090 pu).
    let vmin = sol.vm_pu.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(vmin > 0.9131, "{vmin}");
}
