//! The engine against pandapower 3.5.6 (Newton–Raphson, 1e-10 MVA): every base case and every
//! random operating point in `data/reference/`, read through the MATPOWER `.m` files.
//!
//! Tolerances (issue #2): |ΔV| ≤ 1e-8 pu without transformers; with transformers
//! ≤ 1.5 × `matpower_m_roundtrip_max_abs_dvm` + 1e-8, because the `.m` format drops the
//! transformer iron-loss conductance. LinDistFlow stays within the error figures pandapower's
//! authors of the reference set measured (docs/powerflow.md §5), with 1 % + 1e-5 pu slack for
//! the T-to-π transformer conversion in the `.m` rows.

use serde_json::Value;
use std::path::PathBuf;
use voltarena_grid::powerflow::{solve_batch, Method};
use voltarena_grid::{AcOptions, AcSolver, Algorithm, Injection, LinDistFlow, LinDistFlowForm, Network, Solution};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data")
}

const NETS: [&str; 12] = [
    "case33bw",
    "case141",
    "mapdn_case33",
    "mapdn_case141",
    "mapdn_case322",
    "lv_rural2_96",
    "sb_1-LV-rural1--0-sw",
    "sb_1-LV-rural2--0-sw",
    "sb_1-LV-rural3--0-sw",
    "sb_1-LV-semiurb4--0-sw",
    "sb_1-LV-semiurb5--0-sw",
    "sb_1-LV-urban6--0-sw",
];
const RANDOM: [&str; 5] = ["case33bw", "mapdn_case33", "mapdn_case322", "lv_rural2_96", "sb_1-LV-rural2--0-sw"];

fn network(name: &str) -> Network {
    let path = data().join("networks").join(format!("{}.m", name.replace('-', "_")));
    Network::from_matpower_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn reference(name: &str, kind: &str) -> Value {
    let path = data().join("reference").join(format!("{name}_{kind}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn vec_f64(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Angle difference in degrees, modulo 360.
fn max_angle_diff_deg(a_rad: &[f64], b_deg: &[f64]) -> f64 {
    a_rad
        .iter()
        .zip(b_deg)
        .map(|(a, b)| {
            let d = (a.to_degrees() - b).rem_euclid(360.0);
            d.min(360.0 - d)
        })
        .fold(0.0, f64::max)
}

/// Allowed |ΔV| for a network (issue #2).
fn tolerance(net: &Network, base: &Value) -> f64 {
    if net.has_transformers() {
        1.5 * base["matpower_m_roundtrip_max_abs_dvm"].as_f64().unwrap() + 1e-8
    } else {
        1e-8
    }
}

fn check_ac(name: &str, algorithm: Algorithm) {
    let net = network(name);
    let base = reference(name, "base");
    let tol = tolerance(&net, &base);
    let mut solver = AcSolver::new(&net, AcOptions { algorithm, ..Default::default() }).unwrap();
    let mut sol = Solution::new(net.n_bus());
    // Base case: the .m file's own injections must equal the reference's.
    let (p, q) = net.injections();
    assert!(max_abs_diff(&p, &vec_f64(&base["p_inj_mw"])) < 1e-9, "{name}: p injections");
    assert!(max_abs_diff(&q, &vec_f64(&base["q_inj_mvar"])) < 1e-9, "{name}: q injections");
    let info = solver.solve(Injection { p_mw: &p, q_mvar: &q }, &mut sol).unwrap();
    let dv = max_abs_diff(&sol.vm_pu, &vec_f64(&base["vm_pu"]));
    assert!(dv <= tol, "{name} base ({algorithm:?}): max |dV| = {dv:e} > {tol:e}");
    let da = max_angle_diff_deg(&sol.va_rad, &vec_f64(&base["va_degree"]));
    if net.has_transformers() {
        assert!(da < 0.05, "{name} base: max |dθ| = {da:e} deg");
    } else {
        assert!(da < 1e-6, "{name} base: max |dθ| = {da:e} deg");
        let dl = (info.p_loss_mw - base["loss_mw"].as_f64().unwrap()).abs();
        assert!(dl < 1e-8, "{name} base: loss differs by {dl:e} MW");
        let ds = (info.slack_p_mw - base["slack_p_mw"].as_f64().unwrap()).abs();
        assert!(ds < 1e-8, "{name} base: slack P differs by {ds:e} MW");
    }
    let ref_it = base["iterations"].as_u64().unwrap() as u32;
    assert!(info.iterations <= ref_it + 1, "{name}: {} iterations vs pandapower's {ref_it}", info.iterations);

    if !RANDOM.contains(&name) {
        return;
    }
    let random = reference(name, "random");
    let ops = random["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 50);
    for op in ops {
        let p = vec_f64(&op["p_inj_mw"]);
        let q = vec_f64(&op["q_inj_mvar"]);
        solver.solve(Injection { p_mw: &p, q_mvar: &q }, &mut sol).unwrap();
        let dv = max_abs_diff(&sol.vm_pu, &vec_f64(&op["vm_pu"]));
        assert!(dv <= tol, "{name} op {} ({algorithm:?}): max |dV| = {dv:e} > {tol:e}", op["k"]);
        if !net.has_transformers() {
            let da = max_angle_diff_deg(&sol.va_rad, &vec_f64(&op["va_degree"]));
            assert!(da < 1e-6, "{name} op {}: max |dθ| = {da:e} deg", op["k"]);
        }
    }
}

#[test]
fn radial_newton_matches_pandapower_on_every_base_case_and_operating_point() {
    for name in NETS {
        check_ac(name, Algorithm::Radial);
    }
}

#[test]
fn sparse_newton_matches_pandapower_on_every_base_case_and_operating_point() {
    for name in NETS {
        check_ac(name, Algorithm::Newton);
    }
}

#[test]
fn auto_picks_the_radial_solver_on_radial_feeders() {
    for name in NETS {
        let net = network(name);
        assert!(net.tree().is_some(), "{name} is radial");
        let s = AcSolver::new(&net, AcOptions::default()).unwrap();
        assert_eq!(s.algorithm(), Algorithm::Radial);
    }
}

#[test]
fn batch_equals_pandapower_and_single_solves_for_any_thread_count() {
    for name in RANDOM {
        let net = network(name);
        let base = reference(name, "base");
        let tol = tolerance(&net, &base);
        let random = reference(name, "random");
        let ops = random["ops"].as_array().unwrap();
        let p: Vec<f64> = ops.iter().flat_map(|o| vec_f64(&o["p_inj_mw"])).collect();
        let q: Vec<f64> = ops.iter().flat_map(|o| vec_f64(&o["q_inj_mvar"])).collect();
        let one = solve_batch(&net, Method::Ac(AcOptions::default()), &p, &q, 1).unwrap();
        let two = solve_batch(&net, Method::Ac(AcOptions::default()), &p, &q, 3).unwrap();
        assert_eq!(one, two, "{name}: thread count changed the results");
        for (s, op) in ops.iter().enumerate() {
            assert!(one.converged[s]);
            let dv = max_abs_diff(one.vm_row(s), &vec_f64(&op["vm_pu"]));
            assert!(dv <= tol, "{name} op {s}: batch |dV| = {dv:e}");
        }
    }
}

fn ldf_error(name: &str, form: LinDistFlowForm, p: &[f64], q: &[f64], vm_ref: &[f64]) -> f64 {
    let net = network(name);
    let mut ldf = LinDistFlow::new(&net, form).unwrap();
    let mut sol = Solution::new(net.n_bus());
    ldf.solve(Injection { p_mw: p, q_mvar: q }, &mut sol).unwrap();
    max_abs_diff(&sol.vm_pu, vm_ref)
}

#[test]
fn lindistflow_stays_within_the_published_error_figures() {
    for name in NETS {
        let base = reference(name, "base");
        let (p, q) = (vec_f64(&base["p_inj_mw"]), vec_f64(&base["q_inj_mvar"]));
        let vm = vec_f64(&base["vm_pu"]);
        let bound = |key: &str| base["lindistflow"][key].as_f64().unwrap() * 1.01 + 1e-5;
        let sq = ldf_error(name, LinDistFlowForm::Squared, &p, &q, &vm);
        let lin = ldf_error(name, LinDistFlowForm::Linear, &p, &q, &vm);
        assert!(sq <= bound("max_abs_err_squared_form"), "{name}: squared LDF error {sq:e}");
        assert!(lin <= bound("max_abs_err_linear_form"), "{name}: linear LDF error {lin:e}");
        // A model error this small would mean the comparison is vacuous.
        assert!(sq > 1e-6 && lin > 1e-6, "{name}: LDF suspiciously exact");
    }
    for name in RANDOM {
        let random = reference(name, "random");
        let bound_sq = random["summary"]["lindistflow_sq_max_err"].as_f64().unwrap() * 1.01 + 1e-5;
        let bound_lin = random["summary"]["lindistflow_lin_max_err"].as_f64().unwrap() * 1.01 + 1e-5;
        for op in random["ops"].as_array().unwrap() {
            let (p, q, vm) = (vec_f64(&op["p_inj_mw"]), vec_f64(&op["q_inj_mvar"]), vec_f64(&op["vm_pu"]));
            let sq = ldf_error(name, LinDistFlowForm::Squared, &p, &q, &vm);
            let lin = ldf_error(name, LinDistFlowForm::Linear, &p, &q, &vm);
            assert!(sq <= bound_sq, "{name} op {}: squared LDF error {sq:e} > {bound_sq:e}", op["k"]);
            assert!(lin <= bound_lin, "{name} op {}: linear LDF error {lin:e} > {bound_lin:e}", op["k"]);
        }
    }
}

/// Through the detailed JSON networks (exact branch rows, iron-loss conductance included) the
/// engine must match pandapower to 1e-8 pu on **every** network, transformers included.
#[test]
fn json_networks_match_pandapower_to_1e_8_including_transformers() {
    for name in NETS {
        let path = data().join("networks").join(format!("{name}.json"));
        let det = Network::from_json_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let net = &det.network;
        // The elements reproduce the stored bus injections: Σ sgen − Σ load per bus.
        let mut p = vec![0.0; net.n_bus()];
        let mut q = vec![0.0; net.n_bus()];
        for l in det.loads.iter().filter(|l| l.in_service) {
            p[l.bus] -= l.p_mw;
            q[l.bus] -= l.q_mvar;
        }
        for g in det.sgens.iter().filter(|g| g.in_service) {
            p[g.bus] += g.p_mw;
            q[g.bus] += g.q_mvar;
        }
        let base = reference(name, "base");
        assert!(max_abs_diff(&p, &vec_f64(&base["p_inj_mw"])) < 1e-12, "{name}: element p");
        assert!(max_abs_diff(&q, &vec_f64(&base["q_inj_mvar"])) < 1e-12, "{name}: element q");
        let mut points = vec![(p, q, vec_f64(&base["vm_pu"]), vec_f64(&base["va_degree"]))];
        if RANDOM.contains(&name) {
            for op in reference(name, "random")["ops"].as_array().unwrap() {
                points.push((vec_f64(&op["p_inj_mw"]), vec_f64(&op["q_inj_mvar"]), vec_f64(&op["vm_pu"]), vec_f64(&op["va_degree"])));
            }
        }
        for algorithm in [Algorithm::Radial, Algorithm::Newton] {
            let mut s = AcSolver::new(net, AcOptions { algorithm, ..Default::default() }).unwrap();
            let mut sol = Solution::new(net.n_bus());
            for (k, (p, q, vm, va)) in points.iter().enumerate() {
                s.solve(Injection { p_mw: p, q_mvar: q }, &mut sol).unwrap();
                let dv = max_abs_diff(&sol.vm_pu, vm);
                assert!(dv <= 1e-8, "{name} point {k} ({algorithm:?}): |dV| = {dv:e}");
                let da = max_angle_diff_deg(&sol.va_rad, va);
                assert!(da <= 1e-6, "{name} point {k} ({algorithm:?}): |dθ| = {da:e} deg");
            }
        }
        let info = AcSolver::new(net, AcOptions::default()).unwrap()
            .solve(Injection { p_mw: &points[0].0, q_mvar: &points[0].1 }, &mut Solution::new(net.n_bus())).unwrap();
        let dl = (info.p_loss_mw - base["loss_mw"].as_f64().unwrap()).abs();
        assert!(dl < 1e-8, "{name}: losses (iron losses included) differ by {dl:e} MW");
    }
}
